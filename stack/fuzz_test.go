package stack

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
	"go.uber.org/goleak"
)

// FuzzStack feeds a whole Stack — listeners, an established connection,
// Dials, the application side, timers — with batches of packets decoded from
// the fuzz input (see fuzzProgram for the encoding). After every batch it
// checks the stack's invariants and limits; at the end it checks that Close
// returns promptly and no goroutine is left behind.
//
// The packet headers are small and relative: a packet names one of four
// peers, one of four peer ports and one of four local ports (two listeners,
// a closed port, the port of the last Dial), and its sequence and
// acknowledgment numbers are deltas from what the stack last sent on that
// 4-tuple, so the fuzzer reaches every state without guessing 32-bit
// numbers. Checksums are correct unless the input asks otherwise.
func FuzzStack(f *testing.F) {
	f.Fuzz(func(t *testing.T, prog []byte) {
		runFuzzProgram(t, prog)
	})
}

// Limits of the fuzzed stack: small, so inputs reach them.
const (
	fzMaxConns   = 12
	fzSYNBacklog = 3
	fzBacklog    = 2
	fzTimeWait   = 3
	fzBuf        = 8 << 10 // send and receive buffer
	fzMaxOps     = 512
	fzMaxBatch   = 48
	fzMTU        = 1500
	fzBarrierID  = 0xB0B0
	fzWait       = 5 * time.Second // "hang" if the stack takes longer
)

// Fuzz program opcodes (the first byte of each op, modulo fzNumOps).
const (
	fzOpPacket  = iota // a TCP segment on one of the 4×4×4 tuples
	fzOpAdvance        // flush the batch, advance virtual time
	fzOpApp            // an application call: accept, read, write, close, dial...
	fzOpICMP           // an ICMP error quoting a segment of a tuple
	fzOpRaw            // raw bytes as a packet, addresses optionally fixed up
	fzOpFrag           // a TCP segment cut into IPv4 fragments
	fzOpFlush          // write the batch and wait until the stack is idle
	fzOpV6Ext          // a TCP segment from an IPv6 peer behind extension headers
	fzNumOps
)

var (
	fzPeers = [4]netip.Addr{addrA, netip.MustParseAddr("198.18.0.3"), addrA6, netip.MustParseAddr("2001:2::3")}
	fzLocal = [3]uint16{80, 7, 81} // listener, listener, closed; index 3 is the last Dial's port
	// fzSteps are the virtual-time steps of fzOpAdvance: every timer of the
	// stack (delayed ACK, RTO, persist, keepalive, FIN-WAIT-2, TIME-WAIT,
	// user timeout, reassembly) is within reach.
	fzSteps = [16]time.Duration{0, time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond,
		200 * time.Millisecond, time.Second, 3 * time.Second, 10 * time.Second, 30 * time.Second,
		time.Minute, 75 * time.Second, 2 * time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 2 * time.Hour}
	fzICMP4 = [][2]uint8{{3, 0}, {3, 1}, {3, 2}, {3, 3}, {3, 4}, {3, 13}, {11, 0}, {12, 0}, {4, 0}, {5, 0}}
	fzICMP6 = [][2]uint8{{1, 0}, {1, 1}, {1, 3}, {1, 4}, {2, 0}, {3, 0}, {4, 0}, {4, 1}}
)

// flowKey names a 4-tuple from the stack's side: the peer and our port.
type flowKey struct {
	remote netip.AddrPort
	local  uint16
}

// flowState is what the harness learned from the stack's last segment on a
// tuple: the sequence number after it, its ACK and its timestamp.
type flowState struct {
	seq     tcp.Seq // SEG.SEQ + SEG.LEN of the stack's last segment
	lastSeq tcp.Seq // SEG.SEQ of it (what an ICMP error would quote)
	ack     tcp.Seq // what the stack expects from the peer next
	tsVal   uint32
}

// fuzzReader hands out the fuzz input byte by byte (zeros once exhausted).
type fuzzReader struct {
	b []byte
	i int
}

func (r *fuzzReader) more() bool { return r.i < len(r.b) }

func (r *fuzzReader) u8() uint8 {
	if r.i >= len(r.b) {
		return 0
	}
	v := r.b[r.i]
	r.i++
	return v
}

func (r *fuzzReader) u16() uint16 { return uint16(r.u8())<<8 | uint16(r.u8()) }

// bytes returns the next n bytes (fewer at the end of the input).
func (r *fuzzReader) bytes(n int) []byte {
	n = min(n, len(r.b)-r.i)
	v := r.b[r.i : r.i+n]
	r.i += n
	return v
}

// fuzzHarness is one run of a fuzz program against a fresh Stack.
type fuzzHarness struct {
	t     testing.TB
	clk   *ManualClock
	s     *Stack
	l     *tun.PipeEnd
	lns   []*Listener
	ctx   context.Context
	stop  context.CancelFunc
	dials sync.WaitGroup

	connMu sync.Mutex
	conns  []*Conn

	batch    [][]byte
	maxBatch int      // packets per write
	sent     uint64   // packets the stack has been given
	got      [][]byte // what the stack sent up to the last barrier

	outMu    sync.Mutex
	out      [][]byte // packets from the stack since the last barrier
	barrier  atomic.Uint32
	readDone chan struct{}
	echoSeq  uint16

	flows    map[flowKey]*flowState
	dialPort map[netip.AddrPort]uint16 // our port of the last Dial to a peer
	tsVal    uint32
	ipID     uint16
	rbuf     []byte
	wbuf     []byte
}

// runFuzzProgram runs prog against a fresh stack and checks it.
func runFuzzProgram(t testing.TB, prog []byte) {
	leakOpt := goleak.IgnoreCurrent()
	h := newFuzzHarness(t)
	h.setup()
	r := &fuzzReader{b: prog}
	for ops := 0; r.more() && ops < fzMaxOps; ops++ {
		h.op(r)
	}
	h.flush()
	h.close()
	if err := goleak.Find(leakOpt); err != nil {
		t.Fatalf("goroutines left after Close: %v", err)
	}
}

func newFuzzHarness(t testing.TB) *fuzzHarness {
	cfg := tcp.Config{SendBufferSize: fzBuf, RecvBufferSize: fzBuf,
		KeepAlive: true, KeepIdle: 30 * time.Second, KeepInterval: 5 * time.Second, KeepCount: 3}
	h := newPacketHarness(t, Options{TCP: cfg, MaxConns: fzMaxConns, SYNBacklog: fzSYNBacklog, TimeWaitLimit: fzTimeWait,
		Trace: io.Discard}) // the tracer sees every segment and state too
	for _, port := range fzLocal[:2] {
		h.listen(port, fzBacklog)
	}
	return h
}

// newPacketHarness starts a Stack with opts (its link, addresses, clock,
// shards and secrets filled in) on a pipe the harness drives with raw
// packets, collecting what the stack sends.
func newPacketHarness(t testing.TB, opts Options) *fuzzHarness {
	mine, theirs := tun.NewPipe(fzMTU)
	clk := NewManualClock(tcp.Time(time.Hour))
	opts.Links, opts.Addrs, opts.Clock, opts.Shards = []tun.Link{theirs}, []netip.Addr{addrB, addrB6}, clk, 2
	opts.Rand = bytes.NewReader(make([]byte, 256))
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &fuzzHarness{t: t, clk: clk, s: s, l: mine, readDone: make(chan struct{}), maxBatch: fzMaxBatch,
		flows: map[flowKey]*flowState{}, dialPort: map[netip.AddrPort]uint16{},
		rbuf: make([]byte, 64<<10), wbuf: make([]byte, 64<<10)}
	for i := range h.wbuf {
		h.wbuf[i] = byte(i % 251)
	}
	h.ctx, h.stop = context.WithCancel(context.Background())
	go h.readLoop()
	return h
}

// listen opens a listener whose Accept never blocks.
func (h *fuzzHarness) listen(port uint16, backlog int) *Listener {
	ln, err := h.s.ListenBacklog("tcp", fmt.Sprintf(":%d", port), backlog)
	if err != nil {
		h.t.Fatal(err)
	}
	ln.SetDeadline(time.Unix(1, 0))
	h.lns = append(h.lns, ln)
	return ln
}

// readLoop collects what the stack sends and notes barrier echo replies.
func (h *fuzzHarness) readLoop() {
	defer close(h.readDone)
	bufs := make([][]byte, h.l.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, 65536)
	}
	sizes := make([]int, len(bufs))
	for {
		n, err := h.l.Read(bufs, sizes, 0)
		if err != nil {
			return
		}
		for i := range n {
			p := bufs[i][:sizes[i]]
			if seq, ok := barrierReply(p); ok {
				h.barrier.Store(uint32(seq))
				continue
			}
			h.outMu.Lock()
			if len(h.out) < 1<<16 {
				h.out = append(h.out, append([]byte(nil), p...))
			}
			h.outMu.Unlock()
		}
	}
}

// barrierReply recognizes the echo reply to one of the harness's barriers.
func barrierReply(p []byte) (uint16, bool) {
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != protoICMP {
		return 0, false
	}
	hl := int(p[0]&15) * 4
	if len(p) < hl+8 || p[hl] != ip.ICMPv4EchoReply || binary.BigEndian.Uint16(p[hl+4:]) != fzBarrierID {
		return 0, false
	}
	return binary.BigEndian.Uint16(p[hl+6:]), true
}

// setup opens one connection to the port-80 listener with a full handshake
// from peer 0 port 40000 and accepts it, so every program starts with an
// ESTABLISHED connection.
func (h *fuzzHarness) setup() {
	peer := netip.AddrPortFrom(fzPeers[0], 40000)
	local := netip.AddrPortFrom(addrB, 80)
	h.tsVal = 1000
	syn := tcp.Segment{Seq: 5000, Flags: tcp.FlagSYN, Window: 65535, Options: tcp.Options{
		HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true,
		HasTimestamp: true, TSVal: h.tsVal}}
	h.queue(tcpPacket(peer, local, &syn))
	h.flush()
	st := h.flows[flowKey{peer, 80}]
	if st == nil {
		h.t.Fatal("setup: no SYN-ACK")
	}
	h.tsVal++
	ack := tcp.Segment{Seq: 5001, Ack: st.seq, Flags: tcp.FlagACK, Window: 512,
		Options: tcp.Options{HasTimestamp: true, TSVal: h.tsVal, TSEcr: st.tsVal}}
	h.queue(tcpPacket(peer, local, &ack))
	h.flush()
	h.accept()
	if len(h.conns) != 1 {
		h.t.Fatal("setup: handshake did not complete")
	}
}

// queue adds a packet to the batch, writing the batch when it is full.
func (h *fuzzHarness) queue(p []byte) {
	if len(p) > fzMTU {
		p = p[:fzMTU]
	}
	h.batch = append(h.batch, append(make([]byte, headroom), p...))
	if len(h.batch) >= h.maxBatch {
		h.flush()
	}
}

// flush writes the batch, waits until the stack has read it and answered a
// barrier echo (so everything it sent in response is collected), learns
// from what it sent and checks the invariants.
func (h *fuzzHarness) flush() {
	for off := 0; off < len(h.batch); {
		n, err := h.l.Write(h.batch[off:], headroom)
		h.sent += uint64(n)
		off += n
		if err != nil {
			off++ // a packet the pipe refuses (too big) is not sent
		}
	}
	h.batch = h.batch[:0]
	h.waitRead()
	// The barrier goes in a later read batch than everything above, so
	// its reply follows every segment the stack sent for them.
	h.echoSeq++
	var echo [64]byte
	m, _ := ip.BuildICMPv4Echo(echo[20:], false, fzBarrierID, h.echoSeq, nil)
	total := 20 + len(m)
	ip.BuildIPv4(echo[:total], &ip.IPv4Fields{TotalLength: uint16(total), TTL: 64, Protocol: protoICMP, Src: addrA, Dst: addrB})
	if _, err := h.l.Write([][]byte{append(make([]byte, headroom), echo[:total]...)}, headroom); err != nil {
		h.t.Fatalf("barrier: %v", err)
	}
	h.sent++
	deadline := time.Now().Add(fzWait)
	for uint16(h.barrier.Load()) != h.echoSeq {
		if time.Now().After(deadline) {
			h.t.Fatalf("stack hung: no answer to barrier %d (stats %v)", h.echoSeq, nonZero(h.s.Stats()))
		}
		runtime.Gosched()
	}
	h.learn()
	h.check()
}

// waitRead waits until the stack's reader has taken every packet given.
func (h *fuzzHarness) waitRead() {
	deadline := time.Now().Add(fzWait)
	for h.s.stats.RxPackets.Load() < h.sent {
		if time.Now().After(deadline) {
			h.t.Fatalf("stack hung: read %d of %d packets", h.s.stats.RxPackets.Load(), h.sent)
		}
		runtime.Gosched()
	}
}

func nonZero(s *Stats) map[string]uint64 {
	m := map[string]uint64{}
	s.Each(func(n string, v uint64) {
		if v != 0 {
			m[n] = v
		}
	})
	return m
}

// learn records, per tuple, what the stack last sent.
func (h *fuzzHarness) learn() {
	h.outMu.Lock()
	out := h.out
	h.out = nil
	h.outMu.Unlock()
	h.got = out
	for _, p := range out {
		src, dst, seg, ok := parseOut(p)
		if !ok {
			continue
		}
		k := flowKey{remote: dst, local: src.Port()}
		st := h.flows[k]
		if st == nil {
			st = &flowState{}
			h.flows[k] = st
		}
		st.lastSeq = seg.Seq
		st.seq = seg.Seq + tcp.Seq(seg.Len())
		if seg.Flags&tcp.FlagACK != 0 {
			st.ack = seg.Ack
		}
		if seg.Options.HasTimestamp {
			st.tsVal = seg.Options.TSVal
		}
		if seg.Flags&(tcp.FlagSYN|tcp.FlagACK) == tcp.FlagSYN {
			h.dialPort[dst] = src.Port()
		}
	}
}

// parseOut parses a TCP packet the stack sent (false for anything else).
func parseOut(p []byte) (src, dst netip.AddrPort, seg tcp.Segment, ok bool) {
	var l4 []byte
	var sa, da netip.Addr
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		h, err := ip.ParseIPv4(p)
		if err != nil || h.Protocol() != protoTCP {
			return src, dst, seg, false
		}
		l4, sa, da = h.Payload(), h.Src(), h.Dst()
	case len(p) >= 40 && p[0]>>4 == 6:
		h, info, err := ip.ParseIPv6(p)
		if err != nil || info.Protocol != protoTCP {
			return src, dst, seg, false
		}
		l4, sa, da = h[info.Offset:], h.Src(), h.Dst()
	default:
		return src, dst, seg, false
	}
	sp, dp, err := tcp.ParseSegment(l4, &seg)
	if err != nil {
		return src, dst, seg, false
	}
	return netip.AddrPortFrom(sa, sp), netip.AddrPortFrom(da, dp), seg, true
}

// check asserts the stack's invariants while it is idle (between batches):
// limits hold, gauges agree with the table, and every connection that has
// a deadline is in its shard's timer heap with the shard timer armed.
func (h *fuzzHarness) check() {
	t, s := h.t, h.s
	t.Helper()
	maxConns := s.opts.MaxConns
	def := s.opts.TCP
	def.Memory = nil
	def = def.WithDefaults()
	n := s.NumConns()
	if n > maxConns {
		t.Fatalf("%d connections, limit %d", n, maxConns)
	}
	if o, c := s.stats.TCPConnsOpened.Load(), s.stats.TCPConnsClosed.Load(); o-c != uint64(n) {
		t.Fatalf("opened %d - closed %d != %d connections", o, c, n)
	}
	snap := s.Connections()
	if len(snap) != n {
		t.Fatalf("table holds %d connections, count says %d", len(snap), n)
	}
	byState := map[tcp.State]int{}
	for _, c := range snap {
		byState[c.State]++
		in := c.Info
		// Auto-tuning moves each buffer between its initial size and
		// its maximum; what a connection holds stays within its
		// current size.
		if in.SndBuf > def.SendBufferMax || in.RcvBuf > def.RecvBufferMax ||
			in.SndBufMax > def.SendBufferMax || in.RcvBufMax > def.RecvBufferMax {
			t.Fatalf("%v-%v buffers %d/%d (max %d/%d), configured max %d/%d", c.Local, c.Remote,
				in.SndBuf, in.RcvBuf, in.SndBufMax, in.RcvBufMax, def.SendBufferMax, def.RecvBufferMax)
		}
		sndBuf, rcvBuf := in.SndBuf, in.RcvBuf
		if in.Readable+in.OOOBytes > rcvBuf {
			t.Fatalf("%v-%v holds %d readable + %d out-of-order bytes, buffer %d", c.Local, c.Remote, in.Readable, in.OOOBytes, rcvBuf)
		}
		// After a go-back-N rewind NotSent (from SND.NXT) and Unacked
		// (to SND.MAX) overlap, so each is bounded, not their sum.
		if int(in.NotSent) > sndBuf || int(in.Unacked) > sndBuf+2 {
			t.Fatalf("%v-%v holds %d unsent, %d unacked, buffer %d", c.Local, c.Remote, in.NotSent, in.Unacked, sndBuf)
		}
	}
	for st, k := range s.ConnStates() {
		if st != tcp.StateClosed && byState[st] != k {
			t.Fatalf("gauge %v = %d, table has %d (%v)", st, k, byState[st], byState)
		}
	}
	for st, k := range byState {
		if st != tcp.StateClosed && s.ConnStates()[st] != k {
			t.Fatalf("table has %d in %v, gauge %d", k, st, s.ConnStates()[st])
		}
	}
	if tw := s.ntimewait.Load(); tw > int64(s.opts.TimeWaitLimit) || int(tw) != byState[tcp.StateTimeWait] {
		t.Fatalf("TIME-WAIT count %d (table %d), limit %d", tw, byState[tcp.StateTimeWait], s.opts.TimeWaitLimit)
	}
	for _, ln := range h.lns {
		limit, syn, acc := ln.Backlog()
		if syn > s.opts.SYNBacklog || acc > limit {
			t.Fatalf("listener %v: SYN queue %d (limit %d), accept queue %d (limit %d)", ln.Addr(), syn, s.opts.SYNBacklog, acc, limit)
		}
	}
	// The SYN queues hold exactly the listeners' SYN-RECEIVED connections
	// that are in the table: a leak there would fill a queue for good.
	inSynq := map[*endpoint]bool{}
	lnClosed := map[*Listener]bool{}
	for _, ln := range h.lns {
		ln.mu.Lock()
		lnClosed[ln] = ln.closed
		for ep := range ln.synq {
			inSynq[ep] = true
			if ep.ln != ln || ep.lnPhase != phaseSynQueue {
				t.Fatalf("listener %v: SYN queue holds %v-%v in phase %d of another listener", ln.Addr(), ep.id.local, ep.id.remote, ep.lnPhase)
			}
		}
		ln.mu.Unlock()
	}
	for ep := range inSynq {
		ep.sh.mu.Lock()
		ok := !ep.removed && ep.sh.conns[ep.id.key()] == ep && ep.tc.State() == tcp.StateSynReceived
		st := ep.tc.State()
		ep.sh.mu.Unlock()
		if !ok {
			t.Fatalf("SYN queue holds %v-%v (%v, removed %v), not a SYN-RECEIVED connection of the table", ep.id.local, ep.id.remote, st, ep.removed)
		}
	}
	for _, sh := range s.shards {
		sh.mu.Lock()
		for _, ep := range sh.conns {
			id := ep.id
			if ep.ln != nil && ep.lnPhase == phaseSynQueue && !inSynq[ep] && !lnClosed[ep.ln] {
				sh.mu.Unlock()
				t.Fatalf("%v-%v is in phase SYN queue but not in its listener's queue", id.local, id.remote)
			}
		}
		sh.mu.Unlock()
	}
	s.frags.mu.Lock()
	if r := s.frags.r; r != nil && (r.MemoryUsed() > ip.DefaultReassemblyMemoryLimit || r.InFlight() > ip.DefaultReassemblyMaxDatagrams) {
		t.Fatalf("reassembly holds %d bytes in %d datagrams", r.MemoryUsed(), r.InFlight())
	}
	s.frags.mu.Unlock()
	for i, sh := range s.shards {
		sh.mu.Lock()
		if sh.timers.len() > len(sh.conns) {
			t.Fatalf("shard %d: %d timer entries for %d connections", i, sh.timers.len(), len(sh.conns))
		}
		for _, ep := range sh.timers.eps {
			if sh.conns[ep.id.key()] != ep {
				t.Fatalf("shard %d: timer entry for %v-%v, which is not in the table", i, ep.id.local, ep.id.remote)
			}
		}
		for _, ep := range sh.conns {
			id := ep.id
			// Data waiting to go or to be acknowledged needs the
			// retransmission or the persist timer (keepalive stands
			// aside while data is queued), or nothing would ever notice
			// a lost window update or a dead peer.
			if in := ep.tc.Info(); (in.Unacked > 0 || in.NotSent > 0) && !in.Retransmit.Armed && !in.Persist.Armed {
				t.Fatalf("%v-%v (%v) has %d bytes unacknowledged, %d unsent, and neither a retransmission nor a persist timer (%v)",
					id.local, id.remote, ep.tc.State(), in.Unacked, in.NotSent, armedTimers(in))
			}
			at, ok := ep.tc.NextDeadline()
			if !ok {
				continue
			}
			if ep.timer.idx < 0 || ep.timer.at.After(at) {
				t.Fatalf("%v-%v (%v) has a deadline at %v but no timer entry before it", id.local, id.remote, ep.tc.State(), at)
			}
			if !sh.timerArmed || sh.timerAt.After(ep.timer.at) {
				t.Fatalf("shard %d: clock timer not armed for %v-%v's deadline", i, id.local, id.remote)
			}
		}
		sh.mu.Unlock()
	}
	h.connMu.Lock()
	nc := len(h.conns)
	h.connMu.Unlock()
	// One clock timer per shard, one deadline timer per socket deadline.
	if p, limit := h.clk.Pending(), len(s.shards)+2*(nc+maxConns)+len(h.lns); p > limit {
		t.Fatalf("%d clock timers pending, at most %d expected", p, limit)
	}
}

// close ends the run: Close must return promptly, every Dial return, and
// the links' goroutines exit.
func (h *fuzzHarness) close() {
	h.stop()
	done := make(chan error, 1)
	go func() { done <- h.s.Close() }()
	select {
	case <-done:
	case <-time.After(fzWait):
		h.t.Fatal("Stack.Close did not return")
	}
	ok := make(chan struct{})
	go func() { h.dials.Wait(); close(ok) }()
	select {
	case <-ok:
	case <-time.After(fzWait):
		h.t.Fatal("a Dial did not return after Close")
	}
	<-h.readDone
}

// op decodes and runs one op of the program.
func (h *fuzzHarness) op(r *fuzzReader) {
	switch r.u8() % fzNumOps {
	case fzOpPacket:
		h.queue(h.tcpOp(r, false))
	case fzOpAdvance:
		h.flush()
		h.clk.Advance(fzSteps[r.u8()%16])
	case fzOpApp:
		h.appOp(r)
	case fzOpICMP:
		h.icmpOp(r)
	case fzOpRaw:
		h.rawOp(r)
	case fzOpFrag:
		h.fragOp(r)
	case fzOpFlush:
		h.flush()
	case fzOpV6Ext:
		h.v6ExtOp(r)
	}
}

// tuple decodes the who byte: peer, peer port, local port.
func (h *fuzzHarness) tuple(who uint8) (remote, local netip.AddrPort) {
	peer := fzPeers[who&3]
	remote = netip.AddrPortFrom(peer, 40000+uint16(who>>2&3))
	lp := uint16(80)
	if i := who >> 4 & 3; i < 3 {
		lp = fzLocal[i]
	} else if p, ok := h.dialPort[remote]; ok {
		lp = p
	}
	our := addrB
	if !peer.Is4() {
		our = addrB6
	}
	return remote, netip.AddrPortFrom(our, lp)
}

// tcpOp decodes a TCP segment op (12 bytes and a payload) into a packet.
//
//	who   peer(2) rport(2) lport(2) badsum(1) -
//	flags raw TCP flags
//	mode  bit0 seq relative, bit1 ack relative
//	seq   int16 delta (or the high half of an absolute value)
//	ack   int16 delta (likewise)
//	win   uint16
//	opts  bit0 MSS, bit1 WS, bit2 SACK-permitted, bit3 TS, bit4 SACK blocks
//	oval  option value
//	len   payload length (200+ means (len-200)*28 bytes)
func (h *fuzzHarness) tcpOp(r *fuzzReader, v4 bool) []byte {
	return h.tcpOpFamily(r, v4, false)
}

func (h *fuzzHarness) tcpOpFamily(r *fuzzReader, v4, v6 bool) []byte {
	who, flags, mode := r.u8(), r.u8(), r.u8()
	if v4 {
		who &^= 2 // peers 0 and 1 are the IPv4 ones
	}
	if v6 {
		who |= 2
	}
	sd, ad := int16(r.u16()), int16(r.u16())
	win, ob, ov, ln := r.u16(), r.u8(), r.u8(), int(r.u8())
	remote, local := h.tuple(who)
	st := h.flows[flowKey{remote, local.Port()}]
	if st == nil {
		st = &flowState{}
	}
	seg := tcp.Segment{Flags: tcp.Flags(flags), Window: win}
	seg.Seq = tcp.Seq(uint32(uint16(sd)) << 16)
	if mode&1 != 0 {
		seg.Seq = st.ack + tcp.Seq(int32(sd))
	}
	seg.Ack = tcp.Seq(uint32(uint16(ad)) << 16)
	if mode&2 != 0 {
		seg.Ack = st.seq + tcp.Seq(int32(ad))
	}
	o := &seg.Options
	if ob&1 != 0 {
		o.HasMSS, o.MSS = true, 88+uint16(ov)*8
	}
	if ob&2 != 0 {
		o.HasWindowScale, o.WindowScale = true, ov%16
	}
	o.SACKPermitted = ob&4 != 0
	if ob&8 != 0 {
		h.tsVal += uint32(ov)
		o.HasTimestamp, o.TSVal, o.TSEcr = true, h.tsVal, st.tsVal
	}
	if ob&16 != 0 {
		o.NumSACK = 1 + ov%4
		for i := range o.NumSACK {
			start := st.seq - tcp.Seq(uint32(ov)*uint32(i+1)*64)
			o.SACKBlocks[i] = tcp.SACKBlock{Start: start, End: start + tcp.Seq(uint32(ov)*16+1)}
		}
	}
	if ln >= 200 {
		ln = (ln - 200) * 28
	}
	pay := r.bytes(ln)
	if len(pay) < ln {
		pay = append(pay, h.wbuf[:ln-len(pay)]...)
	}
	seg.Payload = pay
	p := tcpPacket(remote, local, &seg)
	if who&64 != 0 {
		p[len(p)-1] ^= 0x5a // a corrupted byte: the checksum no longer matches
	}
	return p
}

// appOp runs one application call on a connection (or the stack):
//
//	sel  conn index(3) action(5)
//	arg  size or option value
func (h *fuzzHarness) appOp(r *fuzzReader) {
	sel, arg := r.u8(), r.u8()
	action := sel >> 3 % 16
	switch action {
	case 0:
		h.accept()
		return
	case 1:
		h.dial(arg)
		return
	}
	h.connMu.Lock()
	if len(h.conns) == 0 {
		h.connMu.Unlock()
		return
	}
	c := h.conns[int(sel&7)%len(h.conns)]
	h.connMu.Unlock()
	switch action {
	case 2, 3:
		c.Read(h.rbuf[:1+int(arg)*256])
	case 4, 5:
		c.Write(h.wbuf[:1+int(arg)*256])
	case 6:
		c.Close()
	case 7:
		c.CloseWrite()
	case 8:
		c.SetLinger(0)
		c.Close()
	case 9:
		c.SetReadBuffer(fzBuf / 2)
	case 10:
		c.SetKeepAliveConfig(fuzzKeepAlive(arg))
	case 11:
		c.SetUserTimeout(time.Duration(arg) * time.Second)
	case 12:
		c.SetNoDelay(arg&1 != 0)
	case 13:
		c.CloseRead()
	case 14:
		c.SetWriteBuffer(fzBuf / 2)
	default:
		c.Read(h.rbuf)
	}
}

// fuzzKeepAlive decodes a keepalive configuration: off for 0, else idle and
// interval of arg%8+1 seconds and arg>>3%4+1 probes.
func fuzzKeepAlive(arg uint8) net.KeepAliveConfig {
	if arg == 0 {
		return net.KeepAliveConfig{Enable: false}
	}
	d := time.Duration(arg%8+1) * time.Second
	return net.KeepAliveConfig{Enable: true, Idle: d, Interval: d, Count: int(arg>>3%4) + 1}
}

// accept takes every connection waiting on the listeners (never blocking).
func (h *fuzzHarness) accept() {
	for _, ln := range h.lns {
		for {
			c, err := ln.AcceptConn()
			if err != nil {
				break
			}
			h.addConn(c)
		}
	}
}

func (h *fuzzHarness) addConn(c *Conn) {
	past := time.Unix(1, 0)
	c.SetReadDeadline(past) // Read and Write never block
	c.SetWriteDeadline(past)
	h.connMu.Lock()
	h.conns = append(h.conns, c)
	h.connMu.Unlock()
}

// dial starts a Dial to a peer and waits until its SYN is queued (or the
// Dial failed at once); the Dial finishes in the background.
func (h *fuzzHarness) dial(arg uint8) {
	remote, _ := h.tuple(arg)
	before := h.s.stats.TCPActiveOpens.Load()
	done := make(chan struct{})
	h.dials.Add(1)
	go func() {
		defer h.dials.Done()
		defer close(done)
		c, err := h.s.DialAddrPort(h.ctx, remote)
		if err == nil {
			h.addConn(c)
		}
	}()
	for h.s.stats.TCPActiveOpens.Load() == before {
		select {
		case <-done:
			return
		default:
			runtime.Gosched()
		}
	}
}

// icmpOp sends an ICMP error quoting a segment of a tuple:
//
//	who   as in tcpOp (the family follows the peer)
//	kind  index into fzICMP4 / fzICMP6
//	seq   int16 delta from the stack's last SEG.SEQ on the tuple
//	mtu   uint16 (Fragmentation Needed / Packet Too Big)
func (h *fuzzHarness) icmpOp(r *fuzzReader) {
	who, kind := r.u8(), r.u8()
	sd, mtu := int16(r.u16()), r.u16()
	remote, local := h.tuple(who)
	st := h.flows[flowKey{remote, local.Port()}]
	if st == nil {
		st = &flowState{}
	}
	// The segment the error quotes: ours, from local to remote.
	quoted := tcp.Segment{Seq: st.lastSeq + tcp.Seq(int32(sd)), Ack: st.ack, Flags: tcp.FlagACK, Window: 100}
	inner := tcpPacket(local, remote, &quoted)
	var pkt []byte
	if remote.Addr().Is4() {
		typ := fzICMP4[int(kind)%len(fzICMP4)]
		buf := make([]byte, 8+len(inner))
		m, err := ip.BuildICMPv4Error(buf, typ[0], typ[1], mtu, inner)
		if err != nil {
			return
		}
		pkt = make([]byte, 20+len(m))
		ip.BuildIPv4(pkt, &ip.IPv4Fields{TotalLength: uint16(len(pkt)), TTL: 64, Protocol: protoICMP, Src: remote.Addr(), Dst: local.Addr()})
		copy(pkt[20:], m)
	} else {
		typ := fzICMP6[int(kind)%len(fzICMP6)]
		buf := make([]byte, 8+len(inner))
		src, dst := remote.Addr().AsSlice(), local.Addr().AsSlice()
		m, err := ip.BuildICMPv6Error(buf, typ[0], typ[1], uint32(mtu), inner, src, dst)
		if err != nil {
			return
		}
		pkt = make([]byte, 40+len(m))
		ip.BuildIPv6(pkt, &ip.IPv6Fields{PayloadLength: uint16(len(m)), NextHeader: protoICMPv6, HopLimit: 64, Src: remote.Addr(), Dst: local.Addr()})
		copy(pkt[40:], m)
	}
	h.queue(pkt)
}

// rawOp sends arbitrary bytes as a packet:
//
//	len   bytes that follow (200+ means (len-200)*28)
//	fix   bit0: make the addresses peer 0 → us and fix the IPv4 header checksum
func (h *fuzzHarness) rawOp(r *fuzzReader) {
	n, fix := int(r.u8()), r.u8()
	if n >= 200 {
		n = (n - 200) * 28
	}
	p := append([]byte(nil), r.bytes(n)...)
	if fix&1 != 0 {
		switch {
		case len(p) >= 20 && p[0]>>4 == 4:
			copy(p[12:16], addrA.AsSlice())
			copy(p[16:20], addrB.AsSlice())
			hdr := ip.IPv4(p)
			if hl := hdr.HeaderLen(); hl >= 20 && hl <= len(p) {
				hdr.SetChecksum(0)
				hdr.UpdateChecksum()
			}
		case len(p) >= 40 && p[0]>>4 == 6:
			copy(p[8:24], addrA6.AsSlice())
			copy(p[24:40], addrB6.AsSlice())
		}
	}
	h.queue(p)
}

// fragOp sends an IPv4 TCP segment (decoded as in tcpOp, always from an IPv4
// peer) as fragments:
//
//	cut   fragment payload size 8*(1+cut%16); cut>>4: 0 in order,
//	      1 reversed, 2 last one missing, 3 first one twice with other bytes
//	tcp   a tcpOp
func (h *fuzzHarness) fragOp(r *fuzzReader) {
	cut := r.u8()
	p := h.tcpOp(r, true)
	if len(p) < 28 {
		return
	}
	hdr := ip.IPv4(p)
	payload := p[20:]
	unit := 8 * (1 + int(cut%16))
	h.ipID++
	var frags [][]byte
	for off := 0; off < len(payload); off += unit {
		end := min(off+unit, len(payload))
		f := ip.IPv4Fields{TotalLength: uint16(20 + end - off), ID: h.ipID, TTL: 64, Protocol: protoTCP,
			FragmentOffset: uint16(off), Src: hdr.Src(), Dst: hdr.Dst()}
		if end < len(payload) {
			f.Flags = ip.IPv4FlagMoreFragments
		}
		fp := make([]byte, 20+end-off)
		ip.BuildIPv4(fp, &f)
		copy(fp[20:], payload[off:end])
		frags = append(frags, fp)
	}
	switch cut >> 4 & 3 {
	case 1:
		for i, j := 0, len(frags)-1; i < j; i, j = i+1, j-1 {
			frags[i], frags[j] = frags[j], frags[i]
		}
	case 2:
		frags = frags[:len(frags)-1]
	case 3:
		dup := append([]byte(nil), frags[0]...)
		for i := 20; i < len(dup); i++ {
			dup[i] ^= 0xff
		}
		frags = append(frags, dup)
	}
	for _, f := range frags {
		h.queue(f)
	}
}

// fzExtKinds are the IPv6 extension headers v6ExtOp chooses from:
// hop-by-hop, routing, fragment, destination options, AH, no next header.
var fzExtKinds = [6]uint8{0, 43, 44, 60, 51, 59}

// v6ExtOp sends a TCP segment from an IPv6 peer with extension headers
// between the fixed header and TCP:
//
//	n     headers: 1 + n%3
//	per header: kind (index into fzExtKinds), length byte, then its bytes
//	tcp   a tcpOp (always from an IPv6 peer)
func (h *fuzzHarness) v6ExtOp(r *fuzzReader) {
	count := 1 + int(r.u8()%3)
	type ext struct {
		kind uint8
		body []byte // everything after the next-header byte
	}
	exts := make([]ext, count)
	for i := range exts {
		kind := fzExtKinds[int(r.u8())%len(fzExtKinds)]
		ln := int(r.u8())
		var size int
		switch kind {
		case 44:
			size = 8
		case 51:
			size = (ln%8 + 2) * 4
		default:
			size = (ln%8 + 1) * 8
		}
		body := make([]byte, size-1)
		copy(body, r.bytes(size-1))
		switch kind {
		case 51:
			body[0] = uint8(size/4 - 2)
		case 44:
		default:
			body[0] = uint8(size/8 - 1)
		}
		exts[i] = ext{kind, body}
	}
	p := h.tcpOpFamily(r, false, true)
	if len(p) < 40 {
		return
	}
	next := p[6] // TCP
	var chain []byte
	for i := len(exts) - 1; i >= 0; i-- {
		hdr := append([]byte{next}, exts[i].body...)
		chain = append(hdr, chain...)
		next = exts[i].kind
	}
	out := make([]byte, 0, len(p)+len(chain))
	out = append(out, p[:40]...)
	out = append(out, chain...)
	out = append(out, p[40:]...)
	out[6] = next
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	h.queue(out)
}
