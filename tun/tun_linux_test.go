package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun/netnstest"
)

var hostAddrs = []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("2001:2::1/64")}

var offloadModes = []struct {
	name    string
	offload bool
}{{"offload", true}, {"no-offload", false}}

func TestClassify(t *testing.T) {
	tests := []struct {
		what  string
		err   error
		kind  error
		errno error
		msg   string
	}{
		{"open", unix.ENOENT, ErrNoTUN, syscall.ENOENT, "no /dev/net/tun: load the tun module (no such file or directory)"},
		{"open", unix.ENODEV, ErrNoTUN, syscall.ENODEV, "no /dev/net/tun: load the tun module (no such device)"},
		{"create", unix.EPERM, ErrPermission, syscall.EPERM, `create tun device "t0" needs root or CAP_NET_ADMIN (operation not permitted)`},
		{"open", unix.EACCES, ErrPermission, syscall.EACCES, `open tun device "t0" needs root or CAP_NET_ADMIN (permission denied)`},
		{"create", unix.EBUSY, ErrBusy, syscall.EBUSY, "tun device t0 is in use (device or resource busy)"},
		{"create", unix.EINVAL, nil, syscall.EINVAL, `create tun device "t0": invalid argument`},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			err := classify(tt.what, "t0", tt.err)
			assert.Equal(t, tt.msg, err.Error())
			assert.ErrorIs(t, err, tt.errno)
			for _, k := range []error{ErrNoTUN, ErrPermission, ErrBusy} {
				assert.Equal(t, k == tt.kind, errors.Is(err, k), "errors.Is(%v)", k)
			}
		})
	}
}

func TestTUNCreate(t *testing.T) {
	for _, m := range offloadModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			l, err := Create(Options{Name: "ust0", MTU: 1400, Offload: m.offload, HostAddrs: hostAddrs,
				Routes: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/16")}})
			require.NoError(t, err)
			var _ Link = l
			assert.Equal(t, "ust0", l.Name())
			assert.Equal(t, 1400, l.MTU())
			assert.Equal(t, m.offload, l.Offload())
			if m.offload {
				assert.Equal(t, 128, l.BatchSize())
				assert.Equal(t, MaxPacketSize, l.GSOMaxSize())
			} else {
				assert.Equal(t, 1, l.BatchSize())
				assert.Equal(t, 0, l.GSOMaxSize())
			}

			link, err := netlink.LinkByName("ust0")
			require.NoError(t, err)
			attrs := link.Attrs()
			assert.Equal(t, "tuntap", link.Type())
			assert.Equal(t, l.Index(), attrs.Index)
			assert.Equal(t, 1400, attrs.MTU)
			assert.NotZero(t, attrs.Flags&net.FlagUp, "link is up")

			v4, err := netlink.AddrList(link, netlink.FAMILY_V4)
			require.NoError(t, err)
			require.Len(t, v4, 1)
			assert.Equal(t, "198.18.0.1/24", v4[0].IPNet.String())
			v6, err := netlink.AddrList(link, netlink.FAMILY_V6)
			require.NoError(t, err)
			var global []netlink.Addr
			for _, a := range v6 {
				if a.IP.IsGlobalUnicast() {
					global = append(global, a)
				}
			}
			require.Len(t, global, 1)
			assert.Equal(t, "2001:2::1/64", global[0].IPNet.String())
			assert.NotZero(t, global[0].Flags&unix.IFA_F_NODAD, "nodad")
			assert.Zero(t, global[0].Flags&unix.IFA_F_TENTATIVE, "usable at once")

			for _, dst := range []string{"198.18.0.2", "2001:2::2", "198.19.7.7"} {
				routes, err := netlink.RouteGet(net.ParseIP(dst))
				require.NoError(t, err, dst)
				require.NotEmpty(t, routes, dst)
				assert.Equal(t, l.Index(), routes[0].LinkIndex, "%s routed into the tun", dst)
			}

			require.NoError(t, l.Close())
			_, err = netlink.LinkByName("ust0")
			assert.Error(t, err, "the device goes with its descriptor")
			_, err = l.Read(newBufs(1, 1500), make([]int, 1), Headroom)
			assert.ErrorIs(t, err, ErrClosed)
		})
	}
}

func TestTUNCreateErrors(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	l, err := Create(Options{Name: "ust0"})
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, DefaultMTU, l.MTU())

	for _, offload := range []bool{false, true} {
		_, err = Create(Options{Name: "ust0", Offload: offload})
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrBusy)
		assert.Contains(t, err.Error(), "tun device ust0 is in use")
	}
	_, err = Create(Options{Name: "lo"})
	assert.ErrorIs(t, err, ErrBusy, "a non-tun device of that name")
	assert.Contains(t, err.Error(), "tun device lo is in use")

	_, err = Create(Options{Name: "a-name-too-long-for-linux"})
	assert.ErrorContains(t, err, "longer than 15 bytes")
	_, err = Create(Options{MTU: 67})
	assert.ErrorContains(t, err, "MTU 67 out of [68, 65535]")

	// Without a name the kernel picks one.
	k, err := Create(Options{})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(k.Name(), "tun"), k.Name())
	require.NoError(t, k.Close())
}

// respondICMP answers ICMPv4 and ICMPv6 echo requests to 198.18.0.2 and
// 2001:2::2 read from l until l is closed, and reports the replies sent.
// It uses raw byte offsets: RFC 792 (type 8 → 0) and RFC 4443 §4 (128 →
// 129), checksums with ip.Checksum.
func respondICMP(l Link, replies chan<- string) {
	defer close(replies)
	bufs, sizes := newBufs(l.BatchSize(), Headroom+l.MTU()), make([]int, l.BatchSize())
	out := make([][]byte, 0, len(bufs))
	v4, v6 := stackV4.As4(), stackV6.As16()
	for {
		n, err := l.Read(bufs, sizes, Headroom)
		if errors.Is(err, ErrClosed) {
			return
		}
		out = out[:0]
		for i := range n {
			pkt := bufs[i][Headroom : Headroom+sizes[i]]
			switch {
			case len(pkt) >= 28 && pkt[0]>>4 == 4 && pkt[9] == 1 && bytes.Equal(pkt[16:20], v4[:]):
				iphLen := int(pkt[0]&0xf) * 4
				icmp := pkt[iphLen:]
				if len(icmp) < 8 || icmp[0] != 8 || ip.Checksum(icmp, 0) != 0xffff {
					continue
				}
				swap(pkt[12:16], pkt[16:20])
				icmp[0] = 0
				icmp[2], icmp[3] = 0, 0
				binary.BigEndian.PutUint16(icmp[2:], ^ip.Checksum(icmp, 0))
				pkt[10], pkt[11] = 0, 0
				binary.BigEndian.PutUint16(pkt[10:], ^ip.Checksum(pkt[:iphLen], 0))
				replies <- fmt.Sprintf("v4 seq %d", binary.BigEndian.Uint16(icmp[6:]))
			case len(pkt) >= 48 && pkt[0]>>4 == 6 && pkt[6] == 58 && bytes.Equal(pkt[24:40], v6[:]):
				icmp := pkt[40:]
				if icmp[0] != 128 || ip.Checksum(icmp, ip.PseudoHeaderChecksum(58, pkt[8:24], pkt[24:40], uint16(len(icmp)))) != 0xffff {
					continue
				}
				swap(pkt[8:24], pkt[24:40])
				icmp[0] = 129
				icmp[2], icmp[3] = 0, 0
				binary.BigEndian.PutUint16(icmp[2:], ^ip.Checksum(icmp, ip.PseudoHeaderChecksum(58, pkt[8:24], pkt[24:40], uint16(len(icmp)))))
				replies <- fmt.Sprintf("v6 seq %d", binary.BigEndian.Uint16(icmp[6:]))
			default:
				continue // router solicitations, MLD reports, ...
			}
			out = append(out, bufs[i][:Headroom+sizes[i]])
		}
		if len(out) > 0 {
			if _, err := l.Write(out, Headroom); err != nil {
				return
			}
		}
	}
}

func swap(a, b []byte) {
	for i := range a {
		a[i], b[i] = b[i], a[i]
	}
}

func TestTUNPing(t *testing.T) {
	for _, m := range offloadModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			ping, err := exec.LookPath("ping")
			if err != nil {
				netnstest.Unavailable(t, "ping not installed (apt-get install iputils-ping)")
				return
			}
			l, err := Create(Options{Name: "ust0", Offload: m.offload, HostAddrs: hostAddrs})
			require.NoError(t, err)
			replies := make(chan string, 100)
			go respondICMP(l, replies)
			for _, dst := range []string{"198.18.0.2", "2001:2::2"} {
				out, err := exec.Command(ping, "-c", "3", "-W", "1", "-i", "0.2", dst).CombinedOutput()
				require.NoError(t, err, "%s", out)
				assert.Contains(t, string(out), "3 packets transmitted, 3 received, 0% packet loss")
			}
			require.NoError(t, l.Close())
			var got []string
			for r := range replies {
				got = append(got, r)
			}
			assert.Equal(t, []string{"v4 seq 1", "v4 seq 2", "v4 seq 3", "v6 seq 1", "v6 seq 2", "v6 seq 3"}, got)
		})
	}
}

type received struct {
	pkt []byte
	gso GSO
}

// reader copies every packet read from l (with ReadGSO into buffers of
// bufSize bytes) to a channel.
func reader(l Link, bufSize int) <-chan received {
	ch := make(chan received, 1024)
	go func() {
		defer close(ch)
		bufs, sizes, gso := newBufs(l.BatchSize(), bufSize), make([]int, l.BatchSize()), make([]GSO, l.BatchSize())
		for {
			n, err := l.ReadGSO(bufs, sizes, gso, Headroom)
			if errors.Is(err, ErrClosed) {
				return
			}
			for i := range n {
				ch <- received{bytes.Clone(bufs[i][Headroom : Headroom+sizes[i]]), gso[i]}
			}
		}
	}()
	return ch
}

// TestTUNGSO runs a TCP connection between a kernel socket and raw packets
// written through the TUN: a 20000-byte super-packet written with WriteGSO
// and a batch of plain segments written with Write must reach the socket
// intact, and with offloads and 64 KiB read buffers the kernel's answer of
// 30000 bytes must arrive as super-packets through ReadGSO (with small
// buffers, split by wireguard's Read).
func TestTUNGSO(t *testing.T) {
	modes := []struct {
		name             string
		offload, bigRead bool
	}{{"offload", true, true}, {"offload-split", true, false}, {"no-offload", false, true}}
	for _, m := range modes {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/v6=%v", m.name, v6), func(t *testing.T) {
				if !netnstest.Enter(t) {
					return
				}
				testTUNGSO(t, m.offload, m.bigRead, v6)
			})
		}
	}
}

func testTUNGSO(t *testing.T, offload, bigRead, v6 bool) {
	l, err := Create(Options{Name: "ust0", Offload: offload, HostAddrs: hostAddrs})
	require.NoError(t, err)
	defer l.Close()
	us, them, network, iphLen := stackV4, hostV4, "tcp4", 20
	if v6 {
		us, them, network, iphLen = stackV6, hostV6, "tcp6", 40
	}
	mss := 1500 - iphLen - 20
	ln, err := net.Listen(network, netip.AddrPortFrom(them, 7000).String())
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	bufSize := Headroom + MaxPacketSize
	if !bigRead {
		bufSize = Headroom + 1500
	}
	rx := reader(l, bufSize)
	next := func(what string, match func(received) bool) received {
		t.Helper()
		deadline := time.After(5 * time.Second)
		var skipped []string
		for {
			select {
			case r := <-rx:
				if match(r) {
					return r
				}
				skipped = append(skipped, fmt.Sprintf("%d bytes %x", len(r.pkt), r.pkt[:min(len(r.pkt), 64)]))
			case <-deadline:
				t.Fatalf("no %s from the kernel; other packets:\n%s", what, strings.Join(skipped, "\n"))
			}
		}
	}
	fromPeer := func(r received) bool {
		if len(r.pkt) < iphLen+20 {
			return false
		}
		return (v6 && r.pkt[6] == 6 || !v6 && r.pkt[9] == 6) && binary.BigEndian.Uint16(r.pkt[iphLen+2:]) == 40000
	}
	write := func(p tcpPkt, g GSO) {
		t.Helper()
		p.src, p.dst, p.sport, p.dport, p.window = us, them, 40000, 7000, 65535
		b := p.build(Headroom)
		if g.NeedsCsum {
			binary.BigEndian.PutUint16(b[Headroom+iphLen+16:], pseudo(b[Headroom:], iphLen))
		}
		n, err := l.WriteGSO([][]byte{b}, []GSO{g}, Headroom)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}

	mssOpt := []byte{2, 4, byte(mss >> 8), byte(mss)}
	write(tcpPkt{seq: 1000, flags: flagSYN, options: mssOpt}, GSO{})
	synack := next("SYN-ACK", fromPeer)
	tcp := synack.pkt[iphLen:]
	require.Equal(t, uint8(flagSYN|flagACK), tcp[13])
	require.Equal(t, uint32(1001), binary.BigEndian.Uint32(tcp[8:]))
	irs := binary.BigEndian.Uint32(tcp[4:])
	write(tcpPkt{seq: 1001, ack: irs + 1, flags: flagACK}, GSO{})
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("kernel did not accept")
	}
	defer conn.Close()

	// ustack → kernel: one super-packet of 20000 bytes, MSS-sized segments.
	payload := patterned(20000, 5)
	write(tcpPkt{seq: 1001, ack: irs + 1, flags: flagACK | flagPSH, payload: payload}, TCPGSO(v6, iphLen, mss))
	got := make([]byte, len(payload))
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(conn, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, got), "kernel received the super-packet's payload")
	next("ACK of 20000 bytes", func(r received) bool {
		return fromPeer(r) && binary.BigEndian.Uint32(r.pkt[iphLen+8:]) == 1001+20000
	})

	// ustack → kernel: a batch of 5 plain segments (wireguard coalesces
	// them with offloads; the spare capacity is its room to do so).
	const nseg = 5
	batch := patterned(nseg*mss, 7)
	var bufs [][]byte
	for i := range nseg {
		p := tcpPkt{src: us, dst: them, sport: 40000, dport: 7000, window: 65535, seq: 1001 + 20000 + uint32(i*mss),
			ack: irs + 1, flags: flagACK, payload: batch[i*mss : (i+1)*mss]}
		b := p.build(Headroom)
		bufs = append(bufs, append(make([]byte, 0, 64<<10), b...))
	}
	orig := slices.Clone(bufs)
	n, err := l.Write(bufs, Headroom)
	require.NoError(t, err)
	assert.Equal(t, nseg, n)
	for i := range bufs {
		assert.Same(t, &orig[i][0], &bufs[i][0], "caller's bufs slice kept in order")
	}
	got = make([]byte, len(batch))
	_, err = io.ReadFull(conn, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(batch, got), "kernel received the batch")
	sent := uint32(20000 + len(batch))
	next("ACK of the batch", func(r received) bool {
		return fromPeer(r) && binary.BigEndian.Uint32(r.pkt[iphLen+8:]) == 1001+sent
	})

	// kernel → ustack: 30000 bytes.
	reply := patterned(30000, 11)
	_, err = conn.Write(reply)
	require.NoError(t, err)
	var stream []byte
	supers := 0
	for len(stream) < len(reply) {
		r := next("data", func(r received) bool { return fromPeer(r) && len(r.pkt) > iphLen+20 })
		if r.gso.IsGSO() {
			supers++
			assert.Equal(t, uint16(mss), r.gso.Size)
			assert.Greater(t, len(r.pkt), 1500)
		} else {
			assert.LessOrEqual(t, len(r.pkt), 1500)
		}
		// Segmenting verifies the metadata and yields checkable packets.
		bufs, sizes := newBufs(64, 1500), make([]int, 64)
		n, err := Segment(r.pkt, r.gso, bufs, sizes, 0)
		require.NoError(t, err)
		for i := range n {
			seg := bufs[i][:sizes[i]]
			require.True(t, tcpChecksumOK(seg), "segment checksum")
			thl := int(seg[iphLen+12]>>4) * 4
			seq := binary.BigEndian.Uint32(seg[iphLen+4:])
			require.Equal(t, irs+1+uint32(len(stream)), seq, "in order")
			stream = append(stream, seg[iphLen+thl:]...)
		}
		// Keep the window open so the kernel does not stall.
		write(tcpPkt{seq: 1001 + sent, ack: irs + 1 + uint32(len(stream)), flags: flagACK}, GSO{})
	}
	assert.True(t, bytes.Equal(reply, stream), "we received the kernel's bytes")
	if offload && bigRead {
		assert.Positive(t, supers, "the kernel sent super-packets")
	} else {
		assert.Zero(t, supers)
	}
	t.Logf("%d super-packets", supers)
}

// TestTUNReadGSOBatch: with offloads, one ReadGSO returns every packet the
// kernel has queued (up to the buffers given), not one per call, so the
// stack handles them as one batch; with one buffer it returns one.
func TestTUNReadGSOBatch(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	l, err := Create(Options{Name: "ust0", Offload: true, HostAddrs: hostAddrs[:1]})
	require.NoError(t, err)
	defer l.Close()
	c, err := net.Dial("udp", "198.18.0.2:9")
	require.NoError(t, err)
	defer c.Close()
	const sent = 5
	// The datagrams are in the device's queue when Write returns: the
	// kernel routes and queues them in the sending call.
	for i := range sent {
		_, err := c.Write([]byte{byte(i)})
		require.NoError(t, err)
	}
	udpPayloads := func(bufs [][]byte, sizes []int, n int) []byte {
		var got []byte
		for i := range n {
			p := bufs[i][Headroom : Headroom+sizes[i]]
			if len(p) == ip.IPv4MinHeaderLen+8+1 && p[0]>>4 == 4 && p[9] == syscall.IPPROTO_UDP {
				got = append(got, p[len(p)-1])
			}
		}
		return got
	}
	bufs, sizes, gso := newBufs(8, Headroom+MaxPacketSize), make([]int, 8), make([]GSO, 8)
	n, err := l.ReadGSO(bufs, sizes, gso, Headroom)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 2, 3, 4}, udpPayloads(bufs, sizes, n), "all five datagrams from one ReadGSO")

	// One buffer: one packet per call.
	for i := range 2 {
		_, err := c.Write([]byte{byte(10 + i)})
		require.NoError(t, err)
	}
	var got []byte
	for len(got) < 2 {
		n, err := l.ReadGSO(bufs[:1], sizes, gso, Headroom)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		got = append(got, udpPayloads(bufs, sizes, n)...)
	}
	assert.Equal(t, []byte{10, 11}, got)
}

// TestTUNBusyPoll: with Options.BusyPoll a read takes a queued packet by
// spinning (a hit), and one that finds nothing spins, then blocks until a
// packet comes (a block); without it nothing is counted. Out-of-range
// values are refused.
func TestTUNBusyPoll(t *testing.T) {
	for _, m := range offloadModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			l, err := Create(Options{Name: "ust0", Offload: m.offload, HostAddrs: hostAddrs[:1], BusyPoll: time.Millisecond})
			require.NoError(t, err)
			defer l.Close()
			assert.Equal(t, time.Millisecond, l.BusyPoll())
			c, err := net.Dial("udp", "198.18.0.2:9")
			require.NoError(t, err)
			defer c.Close()
			bufs, sizes, gso := newBufs(1, Headroom+MaxPacketSize), make([]int, 1), make([]GSO, 1)
			// readUDP reads until the datagram with payload b (the kernel
			// may send other packets, IPv6 router solicitations, first).
			readUDP := func(b byte) {
				for {
					n, err := l.ReadGSO(bufs, sizes, gso, Headroom)
					require.NoError(t, err)
					p := bufs[0][Headroom : Headroom+sizes[0]]
					if n == 1 && len(p) == ip.IPv4MinHeaderLen+9 && p[9] == syscall.IPPROTO_UDP && p[len(p)-1] == b {
						return
					}
				}
			}
			_, err = c.Write([]byte{1})
			require.NoError(t, err)
			readUDP(1)
			hits, blocks := l.BusyPollStats()
			assert.GreaterOrEqual(t, hits, uint64(1), "the queued datagram was taken by the spin")
			assert.Equal(t, uint64(0), blocks)

			done := make(chan struct{})
			go func() {
				defer close(done)
				readUDP(2)
			}()
			require.Eventually(t, func() bool { _, b := l.BusyPollStats(); return b >= 1 }, 5*time.Second, time.Millisecond,
				"an idle read spins for 1ms, then blocks")
			_, err = c.Write([]byte{2})
			require.NoError(t, err)
			<-done
		})
	}
	for _, d := range []time.Duration{-time.Microsecond, MaxBusyPoll + 1} {
		_, err := Create(Options{Name: "ust1", BusyPoll: d})
		assert.ErrorContains(t, err, "busy poll", "%v", d)
	}
}

// TestTUNWriteGSOUDP writes UDP super-datagrams with WriteGSO to a kernel
// UDP socket: with offloads the kernel cuts them (virtio GSO_UDP_L4, the
// checksum partial), without them the link does; either way the socket
// receives every datagram, of the segment size but the last, in order.
func TestTUNWriteGSOUDP(t *testing.T) {
	for _, m := range offloadModes {
		for _, v6 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/v6=%v", m.name, v6), func(t *testing.T) {
				if !netnstest.Enter(t) {
					return
				}
				l, err := Create(Options{Name: "ust0", Offload: m.offload, HostAddrs: hostAddrs})
				require.NoError(t, err)
				defer l.Close()
				us, them := stackV4, hostV4
				if v6 {
					us, them = stackV6, hostV6
				}
				ks, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(them, 7)))
				require.NoError(t, err)
				defer ks.Close()
				const size = 1000
				payload := patterned(5*size+123, 11)
				pkt, iphLen := udpSuper(us, them, 0x1234, payload, false)
				// A wrong length in the super-datagram's UDP header is the
				// link's to fix (GSO's doc: it is not used).
				binary.BigEndian.PutUint16(pkt[iphLen+4:], 9)
				n, err := l.WriteGSO([][]byte{append(make([]byte, Headroom), pkt...)}, []GSO{UDPGSO(iphLen, size)}, Headroom)
				require.NoError(t, err)
				require.Equal(t, 1, n)
				buf := make([]byte, 2000)
				var got []byte
				for off := 0; off < len(payload); off += size {
					require.NoError(t, ks.SetReadDeadline(time.Now().Add(5*time.Second)))
					k, from, err := ks.ReadFromUDPAddrPort(buf)
					require.NoError(t, err, "datagram at %d", off)
					require.Equal(t, min(size, len(payload)-off), k)
					require.Equal(t, netip.AddrPortFrom(us, 40000), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
					got = append(got, buf[:k]...)
				}
				require.Equal(t, payload, got)
			})
		}
	}
}
