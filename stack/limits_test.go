package stack

import (
	"crypto/sha256"
	"io"
	"math/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// limitConn is a connection a rawPeer opened to the stack's port 80, with
// what the peer needs to keep talking on it.
type limitConn struct {
	c        *Conn
	cli      netip.AddrPort
	seq, ack tcp.Seq // the peer's next sequence number and what it acknowledges
	tsEcr    uint32
}

// openLimitConn handshakes from cli (window win) and accepts the connection.
func openLimitConn(t *testing.T, r *rawPeer, ln *Listener, cli netip.AddrPort, win uint16) *limitConn {
	t.Helper()
	syn := synSeg(1000)
	r.send(tcpPacket(cli, srvB, &syn))
	sa := r.expectTCP(srvB, cli, tcp.FlagSYN|tcp.FlagACK)
	ack := tcp.Segment{Seq: 1001, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: win}
	ack.Options.HasTimestamp, ack.Options.TSVal, ack.Options.TSEcr = true, 5001, sa.Options.TSVal
	r.send(tcpPacket(cli, srvB, &ack))
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	return &limitConn{c: c, cli: cli, seq: 1001, ack: sa.Seq + 1, tsEcr: sa.Options.TSVal}
}

// segment is a segment from the peer on lc carrying payload at off bytes
// past its next sequence number.
func (lc *limitConn) segment(off int, payload []byte, win uint16) []byte {
	s := tcp.Segment{Seq: lc.seq + tcp.Seq(off), Ack: lc.ack, Flags: tcp.FlagACK, Window: win, Payload: payload}
	s.Options.HasTimestamp, s.Options.TSVal, s.Options.TSEcr = true, 6000, lc.tsEcr
	return tcpPacket(lc.cli, srvB, &s)
}

// movesBytes checks that lc still carries data both ways, by hash: the peer
// sends 3000 seeded bytes the application reads, and the application writes
// 1000 the peer receives.
func movesBytes(t *testing.T, r *rawPeer, lc *limitConn) {
	t.Helper()
	rng := rand.New(rand.NewSource(int64(lc.cli.Port())))
	in := make([]byte, 3000)
	rng.Read(in)
	for off := 0; off < len(in); off += 1000 {
		r.send(lc.segment(off, in[off:off+1000], 65535))
	}
	lc.seq += tcp.Seq(len(in))
	got := make([]byte, len(in))
	lc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadFull(lc.c, got)
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(in), sha256.Sum256(got), "bytes the application read")

	out := make([]byte, 1000)
	rng.Read(out)
	_, err = lc.c.Write(out)
	require.NoError(t, err)
	var rcvd []byte
	for len(rcvd) < len(out) {
		_, _, seg := parseTCP(t, r.recv())
		if len(seg.Payload) > 0 && seg.Seq == lc.ack+tcp.Seq(len(rcvd)) {
			rcvd = append(rcvd, seg.Payload...)
		}
	}
	lc.ack += tcp.Seq(len(rcvd))
	require.Equal(t, sha256.Sum256(out), sha256.Sum256(rcvd), "bytes the peer received")
}

// TestLimitMaxConnsKeepsExisting: beyond MaxConns a SYN is dropped without an
// answer and counted; the connection already open still moves bytes.
func TestLimitMaxConnsKeepsExisting(t *testing.T) {
	r := newRawPeer(t, func(o *Options) { o.MaxConns = 1; o.Clock = NewManualClock(1e9) })
	ln, err := r.s.ListenBacklog("tcp", ":80", 8)
	require.NoError(t, err)
	lc := openLimitConn(t, r, ln, netip.AddrPortFrom(addrA, 40000), 65535)
	syn := synSeg(2000)
	r.send(tcpPacket(netip.AddrPortFrom(addrA, 40001), srvB, &syn))
	waitStat(t, &r.s.Stats().TCPMaxConns, 1, "tcp_max_conns")
	r.none()
	require.Equal(t, uint64(1), r.s.Stats().TCPSynDropped.Load())
	movesBytes(t, r, lc)
}

// TestLimitOOO: an out-of-order segment beyond the per-connection limit is
// dropped (not SACKed) and counted; in-order data still flows.
func TestLimitOOO(t *testing.T) {
	r := newRawPeer(t, func(o *Options) { o.TCP.OOOLimit = 4096; o.Clock = NewManualClock(1e9) })
	ln, err := r.s.ListenBacklog("tcp", ":80", 8)
	require.NoError(t, err)
	lc := openLimitConn(t, r, ln, netip.AddrPortFrom(addrA, 40000), 65535)

	// 3000 bytes after a 1000-byte hole fit: SACKed.
	for off := 1000; off < 4000; off += 1000 {
		r.send(lc.segment(off, make([]byte, 1000), 65535))
		a := r.expectTCP(srvB, lc.cli, tcp.FlagACK)
		require.Equal(t, lc.seq, a.Ack)
		require.Equal(t, tcp.SACKBlock{Start: lc.seq + 1000, End: lc.seq + tcp.Seq(off) + 1000}, a.Options.SACKBlocks[0])
	}
	// 1200 more would make 4200 > 4096: dropped, the SACK does not grow.
	r.send(lc.segment(4000, make([]byte, 1200), 65535))
	a := r.expectTCP(srvB, lc.cli, tcp.FlagACK)
	require.Equal(t, tcp.SACKBlock{Start: lc.seq + 1000, End: lc.seq + 4000}, a.Options.SACKBlocks[0])
	require.Equal(t, uint64(1), r.s.Stats().TCPOOOLimitDrops.Load())
	require.Equal(t, 3000, lc.c.Info().OOOBytes)

	// Filling the hole delivers the 4000 bytes; the connection goes on.
	r.send(lc.segment(0, make([]byte, 1000), 65535))
	got := make([]byte, 4000)
	_, err = io.ReadFull(lc.c, got)
	require.NoError(t, err)
	lc.seq += 4000
	for {
		_, _, seg := parseTCP(t, r.recv())
		if seg.Ack == lc.seq {
			break
		}
	}
	movesBytes(t, r, lc)
}

// TestLimitMemoryBudget: with the stack's buffer memory spent, a writer
// blocks (counted) and resumes when memory is freed; another connection's
// advertised window stops growing (counted) but it still moves bytes; the
// budget's usage never exceeds it by more than the guaranteed first send
// buffer of each connection.
func TestLimitMemoryBudget(t *testing.T) {
	const budget = 64 << 10
	r := newRawPeer(t, func(o *Options) { o.MemoryBudget = budget; o.Clock = NewManualClock(1e9) })
	ln, err := r.s.ListenBacklog("tcp", ":80", 8)
	require.NoError(t, err)
	other := openLimitConn(t, r, ln, netip.AddrPortFrom(addrA, 40001), 65535)
	hog := openLimitConn(t, r, ln, netip.AddrPortFrom(addrA, 40000), 0) // zero window: nothing leaves

	big := make([]byte, 256<<10)
	wrote := make(chan int, 1)
	go func() {
		n, _ := hog.c.Write(big)
		wrote <- n
	}()
	waitStat(t, &r.s.Stats().TCPMemSendLimited, 1, "tcp_mem_send_limited")
	select {
	case n := <-wrote:
		t.Fatalf("Write returned %d with the budget spent", n)
	case <-time.After(50 * time.Millisecond):
	}
	_, used, peak := r.s.Memory()
	require.LessOrEqual(t, peak, int64(budget))
	require.Greater(t, used, int64(budget/2))

	movesBytes(t, r, other)
	require.Greater(t, r.s.Stats().TCPMemWindowLimited.Load(), uint64(0))
	_, _, peak = r.s.Memory()
	require.LessOrEqual(t, peak, int64(budget+2*4096), "beyond the budget and the guaranteed first buffers")

	// The hog's peer closes: its memory goes back and the writer, woken,
	// fails instead of waiting forever.
	rst := tcp.Segment{Seq: hog.seq, Flags: tcp.FlagRST}
	r.send(tcpPacket(hog.cli, srvB, &rst))
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked writer did not return after its connection was reset")
	}
	waitFor(t, func() bool { _, used, _ := r.s.Memory(); return used <= 8192 }, "memory given back")
}

// waitFor polls cond for a few seconds (the stack's reader is asynchronous).
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: not after 2.5s", what)
}
