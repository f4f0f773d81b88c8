package stack

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
)

// udpPacket builds an IPv4 or IPv6 packet carrying a UDP datagram from src
// to dst with a correct checksum.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	iphl := 20
	if !src.Addr().Is4() {
		iphl = 40
	}
	total := iphl + 8 + len(payload)
	p := make([]byte, total)
	writeIPHeader(p, src.Addr(), dst.Addr(), protoUDP, total, 1, false)
	copy(p[iphl+8:], payload)
	ip.PutUDPHeader(p[iphl:], src.Port(), dst.Port(), src.Addr().AsSlice(), dst.Addr().AsSlice())
	return p
}

// parseUDP checks p is a UDP packet from src to dst with a valid checksum
// and returns its payload.
func parseUDP(t testing.TB, p []byte, src, dst netip.AddrPort) []byte {
	t.Helper()
	var l4, sb, db []byte
	switch p[0] >> 4 {
	case 4:
		h, err := ip.ParseIPv4(p)
		require.NoError(t, err)
		require.Equal(t, uint8(protoUDP), h.Protocol(), describe(p))
		require.False(t, h.IsFragment())
		require.Equal(t, uint8(defaultTTL), h.TTL())
		l4, sb, db = h.Payload(), h.SrcSlice(), h.DstSlice()
		require.Equal(t, src.Addr(), h.Src())
		require.Equal(t, dst.Addr(), h.Dst())
	case 6:
		h, info, err := ip.ParseIPv6(p)
		require.NoError(t, err)
		require.Equal(t, uint8(protoUDP), info.Protocol, describe(p))
		l4, sb, db = h[info.Offset:], h.SrcSlice(), h.DstSlice()
		require.Equal(t, src.Addr(), h.Src())
		require.Equal(t, dst.Addr(), h.Dst())
	}
	u := ip.UDP(l4)
	require.Equal(t, src.Port(), u.SourcePort())
	require.Equal(t, dst.Port(), u.DestinationPort())
	require.Equal(t, len(l4), int(u.Length()))
	require.NotZero(t, u.Checksum())
	require.True(t, ip.UDPChecksumValid(u, sb, db), "UDP checksum")
	return u.Payload()
}

// TestUDPExactEcho: a datagram in, the echo server's reply out, byte for
// byte, in both families.
func TestUDPExactEcho(t *testing.T) {
	for _, tc := range []struct{ peer, us netip.Addr }{{addrA, addrB}, {addrA6, addrB6}} {
		r := newRawPeer(t, nil)
		srv, err := r.s.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 53))
		require.NoError(t, err)
		peer := netip.AddrPortFrom(tc.peer, 40000)
		us := netip.AddrPortFrom(tc.us, 53)
		r.send(udpPacket(peer, us, []byte("query")))
		buf := make([]byte, 100)
		n, _, flags, from, err := srv.ReadMsgUDPAddrPort(buf[:3], nil)
		require.NoError(t, err)
		require.Equal(t, peer, from)
		require.Equal(t, "que", string(buf[:n]))
		require.NotZero(t, flags&0x20, "MSG_TRUNC")
		_, err = srv.WriteToUDPAddrPort([]byte("answer"), from)
		require.NoError(t, err)
		p := r.recv()
		want := udpPacket(us, peer, []byte("answer"))
		if tc.peer.Is4() {
			binary.BigEndian.PutUint16(want[4:], binary.BigEndian.Uint16(p[4:])) // the IPv4 ID is the link's counter
			ip.IPv4(want).UpdateChecksum()
		}
		require.Equal(t, want, p, describe(p))
		st := r.s.Stats()
		require.Equal(t, uint64(1), st.UDPInDatagrams.Load())
		require.Equal(t, uint64(1), st.UDPOutDatagrams.Load())
	}
}

// TestUDPMalformedCounted: every malformation is dropped and counted by
// its reason, and the socket sees nothing.
func TestUDPMalformedCounted(t *testing.T) {
	peer4, us4 := netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 53)
	peer6, us6 := netip.AddrPortFrom(addrA6, 40000), netip.AddrPortFrom(addrB6, 53)
	fixLen := func(p []byte) []byte {
		if p[0]>>4 == 4 {
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
			ip.IPv4(p).UpdateChecksum()
		} else {
			binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		}
		return p
	}
	for _, tc := range []struct {
		name string
		pkt  func() []byte
		ctr  func(s *Stats) *atomic.Uint64
	}{
		{"bad checksum v4", func() []byte { p := udpPacket(peer4, us4, []byte("x")); p[28] ^= 1; return p }, func(s *Stats) *atomic.Uint64 { return &s.UDPBadChecksum }},
		{"bad checksum v6", func() []byte { p := udpPacket(peer6, us6, []byte("x")); p[48] ^= 1; return p }, func(s *Stats) *atomic.Uint64 { return &s.UDPBadChecksum }},
		{"zero checksum v6", func() []byte { p := udpPacket(peer6, us6, []byte("x")); p[46], p[47] = 0, 0; return p }, func(s *Stats) *atomic.Uint64 { return &s.UDPZeroChecksum6 }},
		{"length beyond IP v4", func() []byte { p := udpPacket(peer4, us4, []byte("xy")); return fixLen(p[:len(p)-1]) }, func(s *Stats) *atomic.Uint64 { return &s.UDPBadLength }},
		{"length beyond IP v6", func() []byte { p := udpPacket(peer6, us6, []byte("xy")); return fixLen(p[:len(p)-1]) }, func(s *Stats) *atomic.Uint64 { return &s.UDPBadLength }},
		{"length below header", func() []byte {
			p := udpPacket(peer4, us4, []byte("xy"))
			binary.BigEndian.PutUint16(p[24:], 7)
			return p
		}, func(s *Stats) *atomic.Uint64 { return &s.UDPBadLength }},
		{"too short v4", func() []byte { p := udpPacket(peer4, us4, nil); return fixLen(p[:27]) }, func(s *Stats) *atomic.Uint64 { return &s.UDPTooShort }},
		{"too short v6", func() []byte { p := udpPacket(peer6, us6, nil); return fixLen(p[:44]) }, func(s *Stats) *atomic.Uint64 { return &s.UDPTooShort }},
		{"port 0", func() []byte { return udpPacket(peer4, netip.AddrPortFrom(addrB, 0), []byte("x")) }, func(s *Stats) *atomic.Uint64 { return &s.UDPBadPort }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRawPeer(t, nil)
			srv, err := r.s.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 53))
			require.NoError(t, err)
			r.send(tc.pkt())
			waitStat(t, tc.ctr(r.s.Stats()), 1, tc.name)
			require.Zero(t, r.s.Stats().UDPInDatagrams.Load())
			require.Empty(t, r.s.UDPSockets()[0].Datagrams)
			r.none() // no ICMP for a malformed datagram
			_ = srv
		})
	}
}

// TestUDPSurplusTrimmed: an IP payload longer than the UDP length carries
// a surplus (RFC 9868) the checksum does not cover: the datagram is taken
// without it, as Linux does.
func TestUDPSurplusTrimmed(t *testing.T) {
	r := newRawPeer(t, nil)
	srv, err := r.s.ListenUDP(netip.AddrPortFrom(addrB, 53))
	require.NoError(t, err)
	p := udpPacket(netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 53), []byte("data"))
	p = append(p, 0xde, 0xad)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	ip.IPv4(p).UpdateChecksum()
	r.send(p)
	buf := make([]byte, 10)
	n, err := srv.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "data", string(buf[:n]))
	require.Equal(t, uint64(1), r.s.Stats().UDPSurplusTrimmed.Load())
}

// TestUDPPortUnreachableExact: a datagram to a closed port is answered
// with ICMP port unreachable quoting it, in both families; a burst beyond
// the ICMP token bucket is rate limited.
func TestUDPPortUnreachableExact(t *testing.T) {
	clk := NewManualClock(0)
	r := newRawPeer(t, func(o *Options) { o.Clock = clk })
	in4 := udpPacket(netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 9), []byte("hello"))
	r.send(in4)
	p := r.recv()
	h, err := ip.ParseIPv4(p)
	require.NoError(t, err)
	require.Equal(t, addrB, h.Src())
	require.Equal(t, addrA, h.Dst())
	m, err := ip.ParseICMPv4(h.Payload())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv4DestUnreach, m.Type())
	require.Equal(t, ip.ICMPv4PortUnreachable, m.Code())
	require.Equal(t, in4, []byte(m.Invoking()))

	in6 := udpPacket(netip.AddrPortFrom(addrA6, 40000), netip.AddrPortFrom(addrB6, 9), []byte("hello"))
	r.send(in6)
	p = r.recv()
	h6, info, err := ip.ParseIPv6(p)
	require.NoError(t, err)
	require.Equal(t, uint8(protoICMPv6), info.Protocol)
	m6, err := ip.ParseICMPv6(h6[info.Offset:], h6.SrcSlice(), h6.DstSlice())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv6DestUnreach, m6.Type())
	require.Equal(t, ip.ICMPv6PortUnreachable, m6.Code())
	require.Equal(t, in6, []byte(m6.Invoking()))

	// The bucket holds 50 (2 spent); 60 more at the same instant get 48.
	for range 60 {
		r.send(in4)
	}
	waitStat(t, &r.s.Stats().UDPNoPorts, 62, "udp_no_ports")
	require.Equal(t, uint64(12), r.s.Stats().ICMPRateLimited.Load())
	require.Equal(t, uint64(50), r.s.Stats().ICMPUnreachSent.Load())
	for range 48 {
		r.recv()
	}
	r.none()
}

// TestUDPQueueFullDrops: a socket's queue holds its bound; datagrams
// beyond it are dropped and counted, and reading makes room again.
func TestUDPQueueFullDrops(t *testing.T) {
	r := newRawPeer(t, func(o *Options) { o.DatagramReceiveBuffer = 4 * (1000 + datagramOverhead) })
	srv, err := r.s.ListenUDP(netip.AddrPortFrom(addrB, 53))
	require.NoError(t, err)
	payload := make([]byte, 1000)
	for i := range 6 {
		payload[0] = byte(i)
		r.send(udpPacket(netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 53), payload))
	}
	waitStat(t, &r.s.Stats().UDPRcvBufErrors, 2, "udp_rcvbuf_errors")
	require.Equal(t, uint64(4), r.s.Stats().UDPInDatagrams.Load())
	snap := r.s.UDPSockets()
	require.Equal(t, 4, snap[0].Datagrams)
	require.Equal(t, 4*(1000+datagramOverhead), snap[0].RecvQueue)
	buf := make([]byte, 2000)
	for i := range 4 {
		n, err := srv.Read(buf)
		require.NoError(t, err)
		require.Equal(t, 1000, n)
		require.Equal(t, byte(i), buf[0], "FIFO")
	}
	require.Zero(t, r.s.UDPSockets()[0].RecvQueue)
}

// TestUDPFragmentedSendExact: a datagram bigger than the MTU leaves as
// fragments of the link MTU with data in multiples of 8, in both families.
func TestUDPFragmentedSendExact(t *testing.T) {
	for _, tc := range []struct{ peer, us netip.Addr }{{addrA, addrB}, {addrA6, addrB6}} {
		r := newRawPeer(t, nil)
		c, err := r.s.DialUDP(netip.AddrPortFrom(netip.Addr{}, 5000), netip.AddrPortFrom(tc.peer, 6000))
		require.NoError(t, err)
		msg := make([]byte, 4000)
		for i := range msg {
			msg[i] = byte(i)
		}
		_, err = c.Write(msg)
		require.NoError(t, err)
		re := ip.NewReassembler(ip.ReassemblyConfig{})
		var sizes []int
		var whole []byte
		for whole == nil {
			p := r.recv()
			sizes = append(sizes, len(p))
			var done bool
			if tc.peer.Is4() {
				h, err := ip.ParseIPv4(p)
				require.NoError(t, err)
				require.False(t, h.DontFragment())
				whole, done, err = re.Reassemble(0, h)
				require.NoError(t, err)
			} else {
				h, info, err := ip.ParseIPv6(p)
				require.NoError(t, err)
				require.True(t, info.HasFragment)
				whole, done, err = re.ReassembleIPv6(0, h, info)
				require.NoError(t, err)
			}
			if !done {
				whole = nil
			}
		}
		got := parseUDP(t, whole, netip.AddrPortFrom(tc.us, 5000), netip.AddrPortFrom(tc.peer, 6000))
		require.Equal(t, msg, got)
		if tc.peer.Is4() {
			require.Equal(t, []int{1500, 1500, 20 + 4008 - 2*1480}, sizes)
		} else {
			require.Equal(t, []int{1496, 1496, 48 + 4008 - 2*1448}, sizes)
		}
		require.Equal(t, uint64(3), r.s.Stats().IPFragmentsSent.Load())
	}
}

// TestSYNInEightByteFragments: a SYN cut into 8- and 16-byte IPv4
// fragments is reassembled and answered (RFC 791 allows 8-byte fragments;
// RFC 1858's tiny-fragment rule is for packet filters).
func TestSYNInEightByteFragments(t *testing.T) {
	for _, size := range []int{8, 16} {
		r := newRawPeer(t, nil)
		ln, err := r.s.Listen("tcp", ":80")
		require.NoError(t, err)
		defer ln.Close()
		peer, us := netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 80)
		syn := tcpPacket(peer, us, &tcp.Segment{Seq: 1000, Flags: tcp.FlagSYN, Window: 65535, Options: tcp.Options{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true}})
		l4 := syn[20:]
		for off := 0; off < len(l4); off += size {
			n := min(size, len(l4)-off)
			f := make([]byte, 20+n)
			fl := ip.IPv4Fields{ID: 77, TTL: 64, Protocol: protoTCP, Src: addrA, Dst: addrB, FragmentOffset: uint16(off)}
			if off+n < len(l4) {
				fl.Flags = ip.IPv4FlagMoreFragments
			}
			copy(f[20:], l4[off:off+n])
			_, err := ip.BuildIPv4(f, &fl)
			require.NoError(t, err)
			r.send(f)
		}
		seg := r.expectTCP(us, peer, tcp.FlagSYN|tcp.FlagACK)
		require.Equal(t, tcp.Seq(1001), seg.Ack)
		require.Equal(t, uint64(1), r.s.Stats().IPReassembled.Load())
	}
}

// fragments6 cuts the IPv6 packet p (no extension headers) into fragments
// carrying size bytes of its payload each.
func fragments6(t testing.TB, p []byte, size int, id uint32) [][]byte {
	var out [][]byte
	h := ip.IPv6(p)
	l4 := p[40:]
	for off := 0; off < len(l4); off += size {
		n := min(size, len(l4)-off)
		f := make([]byte, 48+n)
		_, err := ip.BuildIPv6(f, &ip.IPv6Fields{NextHeader: ip.ProtocolFragment, HopLimit: 64, Src: h.Src(), Dst: h.Dst()})
		require.NoError(t, err)
		require.NoError(t, ip.PutIPv6FragmentHeader(f[40:], h.NextHeader(), uint16(off), off+n < len(l4), id))
		copy(f[48:], l4[off:off+n])
		out = append(out, f)
	}
	return out
}

// TestIPv6ReassemblyStack: a fragmented IPv6 datagram reaches its socket
// whole, out of order; an atomic fragment is taken as it is (RFC 6946),
// without touching a reassembly in progress with the same identification.
func TestIPv6ReassemblyStack(t *testing.T) {
	r := newRawPeer(t, nil)
	srv, err := r.s.ListenUDP(netip.AddrPortFrom(addrB6, 53))
	require.NoError(t, err)
	peer, us := netip.AddrPortFrom(addrA6, 40000), netip.AddrPortFrom(addrB6, 53)
	msg := make([]byte, 3000)
	for i := range msg {
		msg[i] = byte(i * 3)
	}
	fs := fragments6(t, udpPacket(peer, us, msg), 1232, 5)
	r.send(fs[2])
	r.send(fs[0])
	// An atomic fragment with the same identification in between.
	atomicPkt := fragments6(t, udpPacket(peer, us, []byte("atomic")), 1232, 5)
	require.Len(t, atomicPkt, 1)
	r.send(atomicPkt[0])
	r.send(fs[1])
	buf := make([]byte, 4000)
	n, err := srv.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "atomic", string(buf[:n]))
	n, err = srv.Read(buf)
	require.NoError(t, err)
	require.Equal(t, msg, buf[:n])
	st := r.s.Stats()
	require.Equal(t, uint64(3), st.IPv6Fragments.Load())
	require.Equal(t, uint64(1), st.IPReassembled.Load())

	// RFC 5722: an overlapping fragment drops the datagram, and its
	// remaining fragments are discarded.
	fs = fragments6(t, udpPacket(peer, us, msg), 1232, 6)
	r.send(fs[0])
	ov := fragments6(t, udpPacket(peer, us, msg), 1024, 6)[1] // starts at 1024, inside fs[0]
	r.send(ov)
	r.send(fs[1])
	r.send(fs[2])
	waitStat(t, &st.IP[ip.DropFragDiscarded], 2, "discarded")
	require.Equal(t, uint64(1), st.IP[ip.DropFragOverlap].Load())
	require.Equal(t, uint64(1), st.IPReassembled.Load())
}

// TestReassemblyTimeExceeded: a datagram missing a fragment is dropped at
// the reassembly deadline, in virtual time, and its sender gets ICMP Time
// Exceeded (fragment reassembly) quoting the first fragment; a datagram
// whose first fragment never came gets none.
func TestReassemblyTimeExceeded(t *testing.T) {
	clk := NewManualClock(0)
	r := newRawPeer(t, func(o *Options) { o.Clock = clk; o.Reassembly.Timeout = 60 * time.Second })
	peer, us := netip.AddrPortFrom(addrA6, 40000), netip.AddrPortFrom(addrB6, 53)
	fs := fragments6(t, udpPacket(peer, us, make([]byte, 3000)), 1232, 9)
	r.send(fs[0])
	r.send(fs[1])
	other := fragments6(t, udpPacket(peer, us, make([]byte, 3000)), 1232, 10)
	r.send(other[1])
	peer4, us4 := netip.AddrPortFrom(addrA, 40000), netip.AddrPortFrom(addrB, 53)
	in4 := udpPacket(peer4, us4, make([]byte, 100))
	first4 := make([]byte, 20+64)
	_, err := ip.BuildIPv4(first4, &ip.IPv4Fields{ID: 3, TTL: 64, Protocol: protoUDP, Src: addrA, Dst: addrB, Flags: ip.IPv4FlagMoreFragments})
	require.NoError(t, err)
	copy(first4[20:], in4[20:84])
	r.send(first4)
	waitStat(t, &r.s.Stats().IPFragments, 4, "ip_fragments")
	clk.Advance(59 * time.Second)
	r.none()
	clk.Advance(time.Second)
	got := map[int][]byte{}
	for range 2 {
		p := r.recv()
		got[int(p[0]>>4)] = p
	}
	r.none()
	h6, info, err := ip.ParseIPv6(got[6])
	require.NoError(t, err)
	m6, err := ip.ParseICMPv6(h6[info.Offset:], h6.SrcSlice(), h6.DstSlice())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv6TimeExceeded, m6.Type())
	require.Equal(t, ip.ICMPv6ReassemblyTimeout, m6.Code())
	require.True(t, bytes.Equal(fs[0][:ip.IPv6MinMTU-48], m6.Invoking()), "quotes the first fragment, within 1280 bytes")
	require.Equal(t, addrA6, h6.Dst())
	h4, err := ip.ParseIPv4(got[4])
	require.NoError(t, err)
	m4, err := ip.ParseICMPv4(h4.Payload())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv4TimeExceeded, m4.Type())
	require.Equal(t, ip.ICMPv4ReassemblyExceeded, m4.Code())
	require.Equal(t, first4, []byte(m4.Invoking()))
	st := r.s.Stats()
	require.Equal(t, uint64(3), st.IPReassemblyTimeouts.Load())
	require.Equal(t, uint64(2), st.ICMPTimeExceededSent.Load())
	used, _, _ := r.s.ReassemblyMemory()
	require.Zero(t, used)
}

// TestPingExact: the stack sets the identifier and checksum of what a ping
// socket writes, and only replies with its identifier reach it.
func TestPingExact(t *testing.T) {
	r := newRawPeer(t, nil)
	c, err := r.s.DialPing(netip.Addr{}, addrA)
	require.NoError(t, err)
	_, err = c.Write([]byte{8, 0, 0xff, 0xff, 0xab, 0xcd, 0, 9, 'p', 'i', 'n', 'g'})
	require.NoError(t, err)
	p := r.recv()
	h, err := ip.ParseIPv4(p)
	require.NoError(t, err)
	require.Equal(t, uint8(protoICMP), h.Protocol())
	m, err := ip.ParseICMPv4(h.Payload()) // checks the checksum
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv4Echo, m.Type())
	require.Equal(t, c.Ident(), m.Ident())
	require.Equal(t, uint16(9), m.Seq())
	require.Equal(t, "ping", string(m.Data()))

	reply := func(ident uint16, from netip.Addr) []byte {
		pkt := make([]byte, 20+12)
		_, err := ip.BuildICMPv4Echo(pkt[20:], true, ident, 9, []byte("pong"))
		require.NoError(t, err)
		writeIPHeader(pkt, from, addrB, protoICMP, len(pkt), 1, false)
		return pkt
	}
	r.send(reply(c.Ident()+1, addrA))                           // another identifier
	r.send(reply(c.Ident(), netip.MustParseAddr("198.18.0.9"))) // another peer
	r.send(reply(c.Ident(), addrA))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	require.NoError(t, err)
	require.Equal(t, 12, n)
	require.Equal(t, ip.ICMPv4EchoReply, buf[0])
	require.Equal(t, "pong", string(buf[8:n]))
	require.Equal(t, uint64(2), r.s.Stats().PingNoSocket.Load())
	// Anything but an echo request is refused.
	_, err = c.Write([]byte{13, 0, 0, 0, 0, 0, 0, 0})
	require.Error(t, err)
}

// TestIPv6FirstFragmentHeaderChain: a first fragment cut inside the TCP
// header is dropped and answered with Parameter Problem, code 3, pointer 0
// (RFC 8200 §4.5).
func TestIPv6FirstFragmentHeaderChain(t *testing.T) {
	r := newRawPeer(t, nil)
	peer, us := netip.AddrPortFrom(addrA6, 40000), netip.AddrPortFrom(addrB6, 80)
	syn := tcpPacket(peer, us, &tcp.Segment{Seq: 1, Flags: tcp.FlagSYN, Window: 65535})
	fs := fragments6(t, syn, 16, 4)
	r.send(fs[0])
	p := r.recv()
	h, info, err := ip.ParseIPv6(p)
	require.NoError(t, err)
	m, err := ip.ParseICMPv6(h[info.Offset:], h.SrcSlice(), h.DstSlice())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv6ParamProblem, m.Type())
	require.Equal(t, ip.ICMPv6IncompleteHeaderChain, m.Code())
	require.Zero(t, m.Pointer())
	require.Equal(t, fs[0], []byte(m.Invoking()))
	require.Equal(t, uint64(1), r.s.Stats().IP[ip.DropFragHeaderChain].Load())
	require.Equal(t, uint64(1), r.s.Stats().ICMPParamProblemSent.Load())
}

// TestUDPReplyRoute: a UDP reply follows the stack's routes, and to a
// peer no route covers it leaves by the link the peer's datagram came in
// on, as TCP's replies do.
func TestUDPReplyRoute(t *testing.T) {
	routed := netip.MustParseAddr("198.18.5.9")
	s, peers := newTwoLinkStack(t, []Route{{Prefix: netip.MustParsePrefix("198.18.5.0/24"), Link: 0}})
	srv, err := s.ListenUDP(netip.AddrPortFrom(addrB, 53))
	require.NoError(t, err)
	us := netip.AddrPortFrom(addrB, 53)
	buf := make([]byte, 100)
	for _, tc := range []struct {
		peer     netip.Addr
		in, out  int
		describe string
	}{{addrA, 1, 1, "no route: back by the incoming link"}, {routed, 1, 0, "the route's link"}} {
		peer := netip.AddrPortFrom(tc.peer, 40000)
		peers[tc.in].send(udpPacket(peer, us, []byte("q")))
		_, from, err := srv.ReadFromUDPAddrPort(buf)
		require.NoError(t, err)
		_, err = srv.WriteToUDPAddrPort([]byte("a"), from)
		require.NoError(t, err, tc.describe)
		require.Equal(t, []byte("a"), parseUDP(t, peers[tc.out].recv(), us, peer), tc.describe)
	}
	// A peer never heard from, covered by no route: ENETUNREACH.
	_, err = srv.WriteToUDPAddrPort([]byte("a"), netip.MustParseAddrPort("198.18.9.9:1"))
	require.ErrorIs(t, err, syscall.ENETUNREACH)
}

// TestICMPErrorsToDatagramSockets: a hard ICMP error quoting what a
// connected socket sent fails its next read (ECONNREFUSED for port
// unreachable, EHOSTUNREACH for administratively prohibited), IPv6 errors
// quoting a first fragment included; a soft one (host unreachable) does
// nothing, as on Linux without IP_RECVERR.
func TestICMPErrorsToDatagramSockets(t *testing.T) {
	r := newRawPeer(t, nil)
	// IPv6 UDP: the socket's 3000-byte datagram leaves in fragments; the
	// peer's port unreachable quotes the first.
	c6, err := r.s.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addrA6, 53))
	require.NoError(t, err)
	_, err = c6.Write(make([]byte, 3000))
	require.NoError(t, err)
	first := r.recv()
	r.recv()
	r.recv()
	icmp6 := func(typ, code uint8, quoted []byte) []byte {
		n := min(len(quoted), 1232)
		p := make([]byte, 48+n)
		writeIPHeader(p, addrA6, addrB6, protoICMPv6, len(p), 0, false)
		_, err := ip.BuildICMPv6Error(p[40:], typ, code, 0, quoted[:n], p[8:24], p[24:40])
		require.NoError(t, err)
		return p
	}
	r.send(icmp6(ip.ICMPv6DestUnreach, ip.ICMPv6AddressUnreach, first)) // soft: ignored
	r.send(icmp6(ip.ICMPv6DestUnreach, ip.ICMPv6PortUnreachable, first))
	_, err = c6.Read(make([]byte, 10))
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.Equal(t, uint64(1), r.s.Stats().UDPICMPErrors.Load())
	require.Equal(t, uint64(1), r.s.Stats().ICMPErrorsSoft.Load())
	// The error is reported once.
	require.NoError(t, c6.SetReadDeadline(time.Now().Add(-time.Second)))
	_, err = c6.Read(make([]byte, 10))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	// IPv4 ping: communication administratively prohibited.
	pc, err := r.s.DialPing(netip.Addr{}, addrA)
	require.NoError(t, err)
	_, err = pc.Write([]byte{8, 0, 0, 0, 0, 0, 0, 1})
	require.NoError(t, err)
	req := r.recv()
	e := make([]byte, 20+8+len(req))
	_, err = ip.BuildICMPv4Error(e[20:], ip.ICMPv4DestUnreach, ip.ICMPv4AdminProhibited, 0, req)
	require.NoError(t, err)
	writeIPHeader(e, addrA, addrB, protoICMP, len(e), 1, false)
	r.send(e)
	_, err = pc.Read(make([]byte, 10))
	require.ErrorIs(t, err, syscall.EHOSTUNREACH)
	require.Equal(t, uint64(1), r.s.Stats().PingICMPErrors.Load())
	// A write after the error works again.
	_, err = pc.Write([]byte{8, 0, 0, 0, 0, 0, 0, 2})
	require.NoError(t, err)
}

// TestIPv6BadFragmentParamProblem: a non-last fragment whose length is not
// a multiple of 8, and one that would make the packet exceed 65535 bytes,
// are answered with Parameter Problem pointing at Payload Length and at
// Fragment Offset (RFC 8200 §4.5).
func TestIPv6BadFragmentParamProblem(t *testing.T) {
	r := newRawPeer(t, nil)
	frag := func(off, n int, more bool, id uint32) []byte {
		f := make([]byte, 48+n)
		_, err := ip.BuildIPv6(f, &ip.IPv6Fields{NextHeader: ip.ProtocolFragment, HopLimit: 64, Src: addrA6, Dst: addrB6})
		require.NoError(t, err)
		require.NoError(t, ip.PutIPv6FragmentHeader(f[40:], protoUDP, uint16(off), more, id))
		return f
	}
	for _, tc := range []struct {
		pkt     []byte
		pointer uint32
		reason  ip.DropReason
	}{
		{frag(1000, 1001, true, 1), 4, ip.DropFragBad},
		{frag(65528, 16, false, 2), 42, ip.DropFragTooBig},
	} {
		r.send(tc.pkt)
		p := r.recv()
		h, info, err := ip.ParseIPv6(p)
		require.NoError(t, err)
		m, err := ip.ParseICMPv6(h[info.Offset:], h.SrcSlice(), h.DstSlice())
		require.NoError(t, err)
		require.Equal(t, ip.ICMPv6ParamProblem, m.Type())
		require.Equal(t, ip.ICMPv6ErroneousHeader, m.Code())
		require.Equal(t, tc.pointer, m.Pointer())
		require.Equal(t, uint64(1), r.s.Stats().IP[tc.reason].Load())
	}
	require.Equal(t, uint64(2), r.s.Stats().ICMPParamProblemSent.Load())
}
