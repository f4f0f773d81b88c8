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

// budgetWriters spends the whole budget with hogs, connections to
// zero-window peers (nothing they are sent leaves the send buffer), opens n
// more such connections and starts a Write of size bytes on each, which
// gets its first 4 KiB and waits for the budget. It returns a function
// that resets the hogs (their memory comes back) and a channel that gets
// each Write's result.
func budgetWriters(t *testing.T, r *rawPeer, ln *Listener, n, size int) (func(), chan error) {
	t.Helper()
	st := r.s.Stats()
	var hogs []*limitConn
	for !r.s.tcpCfg.Memory.Spent() {
		require.Less(t, len(hogs), 16, "hogs do not spend the budget")
		hog := openLimitConn(t, r, ln, netip.AddrPortFrom(addrA, uint16(40000+len(hogs))), 0)
		hogs = append(hogs, hog)
		require.NoError(t, hog.c.SetWriteBuffer(4<<20))
		limited := st.TCPMemSendLimited.Load()
		wrote := make(chan struct{})
		go func() { hog.c.Write(make([]byte, 4<<20)); close(wrote) }()
		// The hog's Write stops at its send buffer or at the budget.
		waitFor(t, func() bool {
			select {
			case <-wrote:
				return true
			default:
				return st.TCPMemSendLimited.Load() > limited
			}
		}, "the hog's write")
	}
	done := make(chan error, n)
	limited := st.TCPMemSendLimited.Load()
	for i := range n {
		lc := openLimitConn(t, r, ln, netip.AddrPortFrom(addrA, uint16(41000+i)), 0)
		t.Cleanup(func() { lc.c.Close() })
		go func() {
			_, err := lc.c.Write(make([]byte, size))
			done <- err
		}()
	}
	waitStat(t, &st.TCPMemSendLimited, limited+uint64(n), "tcp_mem_send_limited")
	reset := func() {
		for _, hog := range hogs {
			rst := tcp.Segment{Seq: hog.seq, Flags: tcp.FlagRST}
			r.send(tcpPacket(hog.cli, srvB, &rst))
		}
	}
	return reset, done
}

// TestMemoryReliefWakesFew: 64 writers wait for a spent budget, each for
// much more than a relief frees. When the hogs' memory comes back, the
// relief wakes the first memReliefBatch writers, not all 64, and the baton
// stops once the budget is spent again.
func TestMemoryReliefWakesFew(t *testing.T) {
	r := newRawPeer(t, func(o *Options) { o.MemoryBudget = 512 << 10; o.Clock = NewManualClock(1e9) })
	ln, err := r.s.ListenBacklog("tcp", ":80", 128)
	require.NoError(t, err)
	reset, _ := budgetWriters(t, r, ln, 64, 1<<20)
	st := r.s.Stats()
	require.Zero(t, st.TCPMemWakeups.Load())
	reset()
	waitStat(t, &st.TCPMemWakeups, memReliefBatch, "tcp_mem_wakeups")
	waitFor(t, func() bool { return r.s.tcpCfg.Memory.Spent() }, "the budget spent again")
	time.Sleep(50 * time.Millisecond) // let the woken writers finish their tries
	require.LessOrEqual(t, st.TCPMemWakeups.Load(), uint64(memReliefBatch+4), "writers woken by one relief")
}

// TestMemoryReliefReachesAll: 64 writers wait for a spent budget, each for
// one more 4 KiB step; when the hogs' memory comes back there is room for
// all of them. The relief wakes 16, and each writer that finds memory left
// wakes the next: every Write completes, none waits forever.
func TestMemoryReliefReachesAll(t *testing.T) {
	r := newRawPeer(t, func(o *Options) { o.MemoryBudget = 640 << 10; o.Clock = NewManualClock(1e9) })
	ln, err := r.s.ListenBacklog("tcp", ":80", 128)
	require.NoError(t, err)
	const n = 64
	reset, done := budgetWriters(t, r, ln, n, 8<<10)
	reset()
	for i := range n {
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d writers completed; the rest wait with memory free", i, n)
		}
	}
	st := r.s.Stats()
	require.GreaterOrEqual(t, st.TCPMemWakeups.Load(), uint64(n))
	require.False(t, r.s.tcpCfg.Memory.Spent())
}
