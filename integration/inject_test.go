package integration

// Blind injection against a live connection (issue 9, RFC 5961): while the
// kernel downloads 1 GiB from `ustack serve`, a raw socket in the namespace
// spoofs the client's 4-tuple and floods ustack with RSTs, SYNs, bare ACKs,
// FINs and data segments. The connection must survive with every byte
// exact, and ustack's challenge ACKs must stay within their rate limit.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun/netnstest"
)

const (
	injectDownload = 1 << 30
	// injectRate and injectMax bound the attack: packets per second, and
	// in all (the attack also stops when the transfer nears its end).
	injectRate = 22000
	injectMax  = 400000
	// injectStopBefore: the attack stops this many bytes before the end of
	// the download, so the connection's counters can be read while it is
	// still in the table.
	injectStopBefore = 64 << 20
	// injectTTL marks the forged packets, so that the packet socket, which
	// sees them leave, does not take their numbers for the client's.
	injectTTL = 77
)

// flowView is what a packet socket on the TUN shows of the attacked flow:
// the kernel's last sequence and acknowledgment numbers (ustack's RCV.NXT
// and, about, SND.UNA), and ustack's pure ACKs.
type flowView struct {
	kernelSeq, kernelAck atomic.Uint32
	seen                 atomic.Bool
	ustackPureACKs       atomic.Int64
	counting             atomic.Bool
}

// sniff reads every packet on the TUN until stop and keeps v up to date for
// the flow client -> server.
func sniff(t *testing.T, client, server netip.AddrPort, v *flowView, stop <-chan struct{}) (done <-chan struct{}) {
	t.Helper()
	ifi, err := net.InterfaceByName(kernelTUN)
	require.NoError(t, err)
	const ethPAll = 0x0003
	proto := int(ethPAll<<8 | ethPAll>>8) // htons(ETH_P_ALL)
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, proto)
	require.NoError(t, err, "packet socket")
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}))
	require.NoError(t, syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<20))
	tv := syscall.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	require.NoError(t, syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv))
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer syscall.Close(fd)
		buf := make([]byte, 128) // headers are enough; the rest is truncated
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, from, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // timeout: look at stop
			}
			ll, ok := from.(*syscall.SockaddrLinklayer)
			if !ok || n < ip.IPv4MinHeaderLen+tcp.HeaderMinLen || buf[0]>>4 != 4 || buf[9] != syscall.IPPROTO_TCP {
				continue
			}
			h := ip.IPv4(buf[:n])
			hl := h.HeaderLen()
			if n < hl+tcp.HeaderMinLen {
				continue
			}
			th := tcp.Header(buf[hl:n])
			src := netip.AddrPortFrom(h.Src(), th.SourcePort())
			dst := netip.AddrPortFrom(h.Dst(), th.DestinationPort())
			total := int(binary.BigEndian.Uint16(buf[2:4]))
			payload := total - hl - th.DataOffset()
			switch {
			case h.TTL() == injectTTL:
				// Our own forgery: the packet socket sees it leave too.
			case ll.Pkttype == syscall.PACKET_OUTGOING && src == client && dst == server:
				v.kernelSeq.Store(uint32(th.SequenceNumber()))
				v.kernelAck.Store(uint32(th.AckNumber()))
				v.seen.Store(true)
			case ll.Pkttype != syscall.PACKET_OUTGOING && src == server && dst == client:
				if v.counting.Load() && th.Flags() == tcp.FlagACK && payload == 0 {
					v.ustackPureACKs.Add(1)
				}
			}
		}
	}()
	return ch
}

// injector sends spoofed TCP segments from the client's 4-tuple through a
// raw socket (IPPROTO_RAW: the IP header is ours), IPv4 or IPv6.
type injector struct {
	fd             int
	to             syscall.Sockaddr
	client, server netip.AddrPort
	buf            []byte
	sent           map[string]int
}

func newInjector(t *testing.T, client, server netip.AddrPort) *injector {
	t.Helper()
	family, to := syscall.AF_INET6, syscall.Sockaddr(&syscall.SockaddrInet6{Addr: server.Addr().As16()})
	if server.Addr().Is4() {
		family, to = syscall.AF_INET, &syscall.SockaddrInet4{Addr: server.Addr().As4()}
	}
	fd, err := syscall.Socket(family, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	require.NoError(t, err, "raw socket")
	t.Cleanup(func() { syscall.Close(fd) })
	return &injector{fd: fd, to: to, client: client, server: server, buf: make([]byte, 1500), sent: map[string]int{}}
}

// send writes seg as if the client had sent it and counts it under kind.
func (in *injector) send(kind string, seg *tcp.Segment) error {
	src, dst := in.client.Addr(), in.server.Addr()
	hl := ip.IPv4MinHeaderLen
	if !src.Is4() {
		hl = ip.IPv6HeaderLen
	}
	p := in.buf[:hl+tcp.SegmentWireLen(seg)]
	var err error
	if src.Is4() {
		f := ip.IPv4Fields{ID: uint16(len(in.sent) + in.sent[kind]), TTL: injectTTL, Protocol: syscall.IPPROTO_TCP,
			Src: src, Dst: dst, Flags: ip.IPv4FlagDontFragment}
		_, err = ip.BuildIPv4(p, &f)
	} else {
		f := ip.IPv6Fields{PayloadLength: uint16(len(p) - hl), NextHeader: syscall.IPPROTO_TCP, HopLimit: injectTTL, Src: src, Dst: dst}
		_, err = ip.BuildIPv6(p, &f)
	}
	if err != nil {
		return err
	}
	th := p[hl:]
	tcp.EncodeSegment(th, in.client.Port(), in.server.Port(), seg)
	tcp.SetChecksumFull(th, src.AsSlice(), dst.AsSlice())
	in.sent[kind]++
	return syscall.Sendto(in.fd, p, 0, in.to)
}

// attack is one round of the flood: every kind of forged segment once.
// Blind ones carry random sequence and acknowledgment numbers. The
// window-guess ones model an attacker whose sequence guess landed in
// ustack's receive window (RCV.NXT+1 .. RCV.NXT+64 KiB, never RCV.NXT
// itself) but whose acknowledgment number did not: it lies 2^31 away from
// anything ustack has sent. RFC 5961 answers the in-window RST and any SYN
// with a challenge ACK (§3.2, §4.2), and drops the segment whose ACK is
// unacceptable (§5.2).
func (in *injector) attack(r *rand.Rand, v *flowView, payload []byte) (int, error) {
	blind := func() (tcp.Seq, tcp.Seq) { return tcp.Seq(r.Uint32()), tcp.Seq(r.Uint32()) }
	var errs []error
	add := func(kind string, seg tcp.Segment) {
		seg.Window = uint16(r.Uint32())
		if err := in.send(kind, &seg); err != nil {
			errs = append(errs, err)
		}
	}
	s, a := blind()
	add("blind RST", tcp.Segment{Seq: s, Flags: tcp.FlagRST})
	s, a = blind()
	add("blind RST|ACK", tcp.Segment{Seq: s, Ack: a, Flags: tcp.FlagRST | tcp.FlagACK})
	s, _ = blind()
	add("blind SYN", tcp.Segment{Seq: s, Flags: tcp.FlagSYN})
	s, a = blind()
	add("blind ACK", tcp.Segment{Seq: s, Ack: a, Flags: tcp.FlagACK})
	s, a = blind()
	add("blind FIN|ACK", tcp.Segment{Seq: s, Ack: a, Flags: tcp.FlagFIN | tcp.FlagACK})
	s, a = blind()
	add("blind data", tcp.Segment{Seq: s, Ack: a, Flags: tcp.FlagPSH | tcp.FlagACK, Payload: payload})
	if v == nil || !v.seen.Load() {
		// No window to guess in (the upload's window moves too fast for
		// a guess not to hit RCV.NXT itself some day): blind only.
		return 6, errors.Join(errs...)
	}
	rcvNxt := tcp.Seq(v.kernelSeq.Load())
	badAck := tcp.Seq(v.kernelAck.Load()) + 1<<31
	guess := rcvNxt + tcp.Seq(1+r.IntN(64<<10))
	add("in-window RST", tcp.Segment{Seq: guess, Flags: tcp.FlagRST})
	add("in-window SYN", tcp.Segment{Seq: guess, Flags: tcp.FlagSYN})
	add("in-window data, bad ACK", tcp.Segment{Seq: guess, Ack: badAck, Flags: tcp.FlagPSH | tcp.FlagACK, Payload: payload})
	add("in-window FIN, bad ACK", tcp.Segment{Seq: guess, Ack: badAck, Flags: tcp.FlagFIN | tcp.FlagACK})
	add("in-window FIN, no ACK", tcp.Segment{Seq: guess, Flags: tcp.FlagFIN})
	return 11, errors.Join(errs...)
}

// attackRun is a bounded flood of attack rounds at injectRate.
type attackRun struct {
	stop       chan struct{}
	done       chan error
	start, end time.Time
}

// startAttack floods from the moment begin is closed until halt, or until
// injectMax segments. v (nil for blind only) supplies the window guesses.
func startAttack(in *injector, v *flowView, begin <-chan struct{}) *attackRun {
	a := &attackRun{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		r := rand.New(rand.NewPCG(9, 9))
		payload := bytes.Repeat([]byte{'X'}, 100)
		<-begin
		if v != nil {
			// Only once the request is through is the kernel's sequence
			// number ustack's RCV.NXT for good (the kernel sends nothing
			// more but ACKs), so that no in-window guess can be RCV.NXT
			// itself.
			time.Sleep(20 * time.Millisecond)
			if !v.seen.Load() {
				a.done <- fmt.Errorf("the packet socket saw none of the client's segments")
				return
			}
			v.counting.Store(true)
		}
		a.start = time.Now()
		defer func() { a.end = time.Now() }()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for total := 0; total < injectMax; {
			select {
			case <-a.stop:
				a.done <- nil
				return
			case <-tick.C:
			}
			// injectRate/1000 segments per millisecond, in whole rounds.
			for sent := 0; sent < injectRate/1000; {
				n, err := in.attack(r, v, payload)
				if err != nil {
					a.done <- err
					return
				}
				sent += n
				total += n
			}
		}
		a.done <- nil
	}()
	return a
}

// halt stops the flood and returns its error.
func (a *attackRun) halt() error {
	close(a.stop)
	err := <-a.done
	return err
}

// connRow is the part of GET /conns this test reads.
type connRow struct {
	Local, Remote     string
	State             string
	ChallengeACKs     uint64
	ChallengeSuppress uint64
	OutOfWindow       uint64
	OOWACKSuppress    uint64
	SegsIn            uint64
	SegsOut           uint64
	BytesReceived     uint64
	DataSegsIn        uint64
	Readable          int
}

func (a *attackServe) connRow(t *testing.T, remote netip.AddrPort) (connRow, bool) {
	t.Helper()
	var ct struct {
		Conns []connRow `json:"conns"`
	}
	require.NoError(t, json.Unmarshal(a.get(t, "/conns"), &ct))
	for _, c := range ct.Conns {
		if c.Remote == remote.String() {
			return c, true
		}
	}
	return connRow{}, false
}

// gate calls pause once, when at bytes have passed: allow cuts a read or
// write short at that point, and pauses when it is reached.
type gate struct {
	n, at int64
	pause func()
	once  sync.Once
}

// allow returns how many of k bytes may pass now (k itself once at has
// passed, after pause).
func (g *gate) allow(k int) int {
	if g.n >= g.at {
		g.once.Do(g.pause)
		return k
	}
	return int(min(int64(k), g.at-g.n))
}

// gateReader passes r through, pausing once at bytes.
type gateReader struct {
	r io.Reader
	gate
}

func (g *gateReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p[:g.allow(len(p))])
	g.n += int64(n)
	return n, err
}

func TestBlindInjection(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	srv := startAttackServe(t)
	m0 := srv.metrics(t)
	server := netip.AddrPortFrom(ustackAddr4, serveHTTPPort)
	conn, err := net.DialTimeout("tcp", server.String(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	client := addrPortOf(conn.LocalAddr())

	var view flowView
	stopSniff := make(chan struct{})
	sniffDone := sniff(t, client, server, &view, stopSniff)
	defer func() { close(stopSniff); <-sniffDone }()

	// The attack runs from the first byte of the response until the gate
	// near the end of the body, or until injectMax.
	in := newInjector(t, client, server)
	responding := make(chan struct{})
	attack := startAttack(in, &view, responding)

	var snap connRow
	var snapOK bool
	var pureACKs int64
	pause := func() {
		require.NoError(t, attack.halt(), "injecting")
		time.Sleep(100 * time.Millisecond) // the last forged segments arrive
		view.counting.Store(false)
		pureACKs = view.ustackPureACKs.Load()
		snap, snapOK = srv.connRow(t, client)
		t.Logf("ustack's view of the connection after the attack: %+v", snap)
	}

	start := time.Now()
	require.NoError(t, conn.SetDeadline(time.Now().Add(2*time.Minute)))
	_, err = fmt.Fprintf(conn, "GET /bytes/%d HTTP/1.1\r\nHost: ustack\r\nConnection: close\r\n\r\n", injectDownload)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1<<20), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	close(responding)
	body := &gateReader{r: resp.Body, gate: gate{at: injectDownload - injectStopBefore, pause: pause}}
	n, bad, err := checkBytesPattern(body)
	elapsed := time.Since(start)
	resp.Body.Close()
	if err != nil {
		t.Logf("ustack's /conns at the failure: %s", srv.get(t, "/conns"))
		t.Logf("stack counters that moved: %s", moved(m0, srv.metrics(t)))
		out, _ := exec.Command("ss", "-tinoe").CombinedOutput()
		t.Logf("the kernel's ss -tinoe: %s", out)
	}
	require.NoError(t, err, "download under attack, after %d bytes", n)
	require.Equal(t, int64(injectDownload), n, "bytes downloaded under attack")
	require.Equal(t, int64(-1), bad, "first byte off the i mod 251 pattern")
	t.Logf("download under attack: %s", fmtThroughput(n, elapsed))

	attackTime := attack.end.Sub(attack.start)
	sent := 0
	for _, c := range in.sent {
		sent += c
	}
	t.Logf("forged %d segments in %v (%.0f/s): %v", sent, attackTime.Round(time.Millisecond), float64(sent)/attackTime.Seconds(), in.sent)
	require.True(t, snapOK, "the attacked connection was not in ustack's table at the snapshot")
	t.Logf("pure ACKs from ustack on the wire during the attack: %d", pureACKs)
	require.Equal(t, "ESTAB", snap.State)

	// Challenge ACKs within ChallengeACKLimit (1000/s by default) over the
	// attack, which asked for far more (in-window RSTs and SYNs).
	limit := 1000 * (attackTime.Seconds() + 1)
	asked := float64(in.sent["in-window RST"] + in.sent["in-window SYN"])
	require.Greater(t, asked, limit, "the attack did not ask for more challenge ACKs than the limit allows")
	require.Greater(t, snap.ChallengeACKs, uint64(0))
	require.LessOrEqual(t, float64(snap.ChallengeACKs), limit, "challenge ACKs sent")
	require.Greater(t, snap.ChallengeSuppress, uint64(0), "challenge ACKs suppressed by the limit")
	require.Greater(t, snap.OutOfWindow, uint64(0), "out-of-window segments counted")
	require.Greater(t, snap.OOWACKSuppress, uint64(0), "answers to bare out-of-window segments withheld")
	// On the wire, ustack's pure ACKs are the challenge ACKs, one answer
	// per forged out-of-window segment with data or FIN (RFC 9293 answers
	// each; so does Linux), and at most two a second for bare ones
	// (OutOfWindowACKInterval 500 ms); a few more for the real exchange.
	// Nothing else is reflected.
	answered := float64(snap.ChallengeACKs) + float64(in.sent["blind data"]+in.sent["blind FIN|ACK"]) + 2*(attackTime.Seconds()+1) + 50
	require.LessOrEqual(t, float64(pureACKs), answered, "pure ACKs from ustack during the attack")
	m1 := srv.metrics(t)
	t.Logf("stack counters that moved: %s", moved(m0, m1))
	// The server closed first (Connection: close); once the client closes
	// too, only ustack's TIME-WAIT is left.
	t.Logf("peak RSS of ustack serve: %d KiB", srv.peakRSS(t))
	require.NoError(t, conn.Close())
	srv.waitNoConns(t, 5*time.Second, "TIME-WAIT")
}

// gateWriter passes writes to w, pausing once at bytes.
type gateWriter struct {
	w io.Writer
	gate
}

func (g *gateWriter) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		k := g.allow(len(p))
		n, err := g.w.Write(p[:k])
		g.n += int64(n)
		total += n
		if err != nil {
			return total, err
		}
		p = p[k:]
	}
	return total, nil
}

// The same flood, blind only, while the kernel uploads 1 GiB to ustack: here
// ustack is the receiver, and a forged segment it accepted would change the
// sha256 it answers.
func TestBlindInjectionUpload(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	srv := startAttackServe(t)
	server := netip.AddrPortFrom(ustackAddr4, serveHTTPPort)
	conn, err := net.DialTimeout("tcp", server.String(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	client := addrPortOf(conn.LocalAddr())
	in := newInjector(t, client, server)
	begin := make(chan struct{})
	attack := startAttack(in, nil, begin)

	const seed = 5961
	want := seededSHA256(seed, injectDownload)
	require.NoError(t, conn.SetDeadline(time.Now().Add(2*time.Minute)))
	_, err = fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: ustack\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", injectDownload)
	require.NoError(t, err)
	close(begin)
	var snap connRow
	var snapOK bool
	body := &gateWriter{w: conn, gate: gate{at: injectDownload - injectStopBefore, pause: func() {
		require.NoError(t, attack.halt(), "injecting")
		time.Sleep(100 * time.Millisecond)
		snap, snapOK = srv.connRow(t, client)
		t.Logf("ustack's view of the connection after the attack: %+v", snap)
	}}}
	start := time.Now()
	n, err := io.Copy(body, seededStream(seed, injectDownload))
	require.NoError(t, err, "upload under attack, after %d bytes", n)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", answer)
	require.Equal(t, fmt.Sprintf("%d %s\n", injectDownload, hex.EncodeToString(want[:])), string(answer),
		"ustack's count and sha256 of the upload")
	t.Logf("upload under attack: %s", fmtThroughput(n, elapsed))

	attackTime := attack.end.Sub(attack.start)
	sent := 0
	for _, c := range in.sent {
		sent += c
	}
	t.Logf("forged %d segments in %v (%.0f/s): %v", sent, attackTime.Round(time.Millisecond), float64(sent)/attackTime.Seconds(), in.sent)
	require.True(t, snapOK, "the attacked connection was not in ustack's table at the snapshot")
	require.Equal(t, "ESTAB", snap.State)
	// The blind SYNs alone ask for more challenge ACKs than the limit.
	limit := 1000 * (attackTime.Seconds() + 1)
	require.Greater(t, float64(in.sent["blind SYN"]), limit)
	require.LessOrEqual(t, float64(snap.ChallengeACKs), limit, "challenge ACKs sent")
	require.Greater(t, snap.ChallengeSuppress, uint64(0))
	require.Greater(t, snap.OutOfWindow, uint64(0))
	require.Greater(t, snap.OOWACKSuppress, uint64(0))
	t.Logf("peak RSS of ustack serve: %d KiB", srv.peakRSS(t))
	require.NoError(t, conn.Close())
	srv.waitNoConns(t, 5*time.Second, "TIME-WAIT")
}
