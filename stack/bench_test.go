package stack

import (
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// nullLink is a Link that never delivers packets and swallows writes,
// optionally keeping a copy of the last one: the stack's own cost, alone.
type nullLink struct {
	closeOnce sync.Once
	closed    chan struct{}
	capture   atomic.Bool
	mu        sync.Mutex
	last      []byte
	written   atomic.Uint64
	gsoMax    int                         // what GSOMaxSize reports: 0, or super-packets pass whole
	onWrite   atomic.Pointer[func(n int)] // called with each write's packet count
}

func newNullLink() *nullLink { return &nullLink{closed: make(chan struct{})} }

func (l *nullLink) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	<-l.closed
	return 0, tun.ErrClosed
}

func (l *nullLink) ReadGSO(bufs [][]byte, sizes []int, gso []tun.GSO, offset int) (int, error) {
	return l.Read(bufs, sizes, offset)
}

func (l *nullLink) Write(bufs [][]byte, offset int) (int, error) {
	return l.WriteGSO(bufs, nil, offset)
}

func (l *nullLink) WriteGSO(bufs [][]byte, gso []tun.GSO, offset int) (int, error) {
	if l.capture.Load() {
		l.mu.Lock()
		l.last = append(l.last[:0], bufs[len(bufs)-1][offset:]...)
		l.mu.Unlock()
	}
	if f := l.onWrite.Load(); f != nil {
		(*f)(len(bufs))
	}
	l.written.Add(uint64(len(bufs)))
	return len(bufs), nil
}

func (l *nullLink) lastPacket() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.last...)
}

// WritesNeverBlock: like a TUN, the null link takes every packet at once.
func (l *nullLink) WritesNeverBlock() bool { return true }

func (l *nullLink) GSOMaxSize() int { return l.gsoMax }
func (l *nullLink) MTU() int        { return 1500 }
func (l *nullLink) BatchSize() int  { return 64 }
func (l *nullLink) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// benchConn sets up an ESTABLISHED passive connection on a stack over a
// nullLink by injecting the handshake, and returns what the benchmarks need.
type benchConn struct {
	s      *Stack
	nl     *nullLink
	l      *link
	c      *Conn
	cli    netip.AddrPort
	rcvNxt tcp.Seq // the client's next sequence number
	sndNxt tcp.Seq // what the client acknowledges
	batch  rxBatch
}

func newBenchConn(tb testing.TB) *benchConn { return newBenchConnOn(tb, newNullLink()) }

func newBenchConnOn(tb testing.TB, nl *nullLink) *benchConn {
	s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Shards: 1})
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	ln, err := s.Listen("tcp", ":80")
	require.NoError(tb, err)
	b := &benchConn{s: s, nl: nl, l: (*s.links.Load())[0], cli: cliA}
	nl.capture.Store(true)
	syn := synSeg(1000)
	syn.Options.HasTimestamp = false
	b.inject(tcpPacket(b.cli, srvB, &syn))
	var sa tcp.Segment
	require.Eventually(tb, func() bool {
		p := nl.lastPacket()
		if len(p) == 0 {
			return false
		}
		if nl.gsoMax > 0 {
			// A partial checksum, for the link to finish: finish it.
			tcp.SetChecksumFull(p[20:], addrB.AsSlice(), addrA.AsSlice())
		}
		_, _, sa = parseTCP(tb, p)
		return sa.Flags == tcp.FlagSYN|tcp.FlagACK
	}, 5e9, 1e6)
	nl.capture.Store(false)
	ack := tcp.Segment{Seq: 1001, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 65535}
	b.inject(tcpPacket(b.cli, srvB, &ack))
	c, err := ln.(*Listener).AcceptConn()
	require.NoError(tb, err)
	b.c = c
	b.rcvNxt, b.sndNxt = 1001, sa.Seq+1
	ln.Close()
	return b
}

func (b *benchConn) inject(pkt []byte) {
	now := b.s.clock.Now()
	b.s.input(b.l, pkt, tun.GSO{}, now, &b.batch)
	b.s.finishBatch(nil, &b.batch, now)
}

// BenchmarkReceiveSegment measures one 1448-byte data segment through the
// receive path: IP parse, TCP checksum and parse, demux, Conn.Input, the
// batch's Output (the ACK serialized and queued) and the application Read.
func BenchmarkReceiveSegment(b *testing.B) {
	bc := newBenchConn(b)
	payload := make([]byte, 1448)
	seg := tcp.Segment{Seq: bc.rcvNxt, Ack: bc.sndNxt, Flags: tcp.FlagACK, Window: 65535, Payload: payload}
	pkt := tcpPacket(bc.cli, srvB, &seg)
	buf := make([]byte, len(pkt))
	rd := make([]byte, 64<<10)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		// Patch the sequence number and checksum in place: the cost of
		// building the packet is not the stack's.
		seg.Seq = bc.rcvNxt
		tcp.EncodeHeader(pkt[20:], bc.cli.Port(), srvB.Port(), &seg)
		tcp.SetChecksumFull(pkt[20:], addrA.AsSlice(), addrB.AsSlice())
		copy(buf, pkt)
		bc.inject(buf)
		bc.rcvNxt += tcp.Seq(len(payload))
		if _, err := bc.c.Read(rd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransmitSegment measures one 1448-byte application Write through
// the transmit path (Conn.Write, Output, IP and TCP serialization with
// checksum into a pooled buffer, the queue to the link writer) plus the
// ACK that frees the send buffer again.
func BenchmarkTransmitSegment(b *testing.B) {
	bc := newBenchConn(b)
	bc.c.SetNoDelay(true)
	data := make([]byte, 1448)
	ack := tcp.Segment{Seq: bc.rcvNxt, Flags: tcp.FlagACK, Window: 65535}
	pkt := tcpPacket(bc.cli, srvB, &ack)
	buf := make([]byte, len(pkt))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := bc.c.Write(data); err != nil {
			b.Fatal(err)
		}
		bc.sndNxt += tcp.Seq(len(data))
		ack.Ack = bc.sndNxt
		tcp.EncodeHeader(pkt[20:], bc.cli.Port(), srvB.Port(), &ack)
		tcp.SetChecksumFull(pkt[20:], addrA.AsSlice(), addrB.AsSlice())
		copy(buf, pkt)
		bc.inject(buf)
	}
}

// superPayload is the payload of a 64 KiB super-segment: the largest
// multiple of the MSS (1448 with timestamps off... 1460 here) under the
// 16-bit IPv4 total length.
const superPayload = 44 * 1460

// BenchmarkReceiveSuperSegment is BenchmarkReceiveSegment for what the
// kernel hands a TUN with offloads during an upload: one TCP super-packet
// of 44 segments (64 KiB) with a partial checksum, taken in one piece.
func BenchmarkReceiveSuperSegment(b *testing.B) {
	nl := newNullLink()
	nl.gsoMax = tun.MaxPacketSize
	bc := newBenchConnOn(b, nl)
	bc.c.SetReadBuffer(1 << 20)
	recv := bc.receiveSuper(b)
	b.SetBytes(superPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		recv()
	}
}

// receiveSuper returns a function that injects the next 64 KiB
// super-segment and reads it back.
func (bc *benchConn) receiveSuper(tb testing.TB) func() {
	seg := tcp.Segment{Seq: bc.rcvNxt, Ack: bc.sndNxt, Flags: tcp.FlagACK, Window: 65535, Payload: make([]byte, superPayload)}
	pkt := tcpPacket(bc.cli, srvB, &seg)
	buf := make([]byte, len(pkt))
	rd := make([]byte, 256<<10)
	g := tun.TCPGSO(false, 20, 1460)
	return func() {
		seg.Seq = bc.rcvNxt
		tcp.EncodeHeader(pkt[20:], bc.cli.Port(), srvB.Port(), &seg)
		copy(buf, pkt)
		now := bc.s.clock.Now()
		bc.s.input(bc.l, buf, g, now, &bc.batch)
		bc.s.finishBatch(nil, &bc.batch, now)
		bc.rcvNxt += tcp.Seq(superPayload)
		for got := 0; got < superPayload; {
			n, err := bc.c.Read(rd)
			if err != nil {
				tb.Fatal(err)
			}
			got += n
		}
	}
}

// BenchmarkTransmitSuperSegment is BenchmarkTransmitSegment for a download
// on a link that takes super-packets: a 64 KiB Write leaves as GSO
// super-segments, and one ACK frees the send buffer again.
func BenchmarkTransmitSuperSegment(b *testing.B) {
	nl := newNullLink()
	nl.gsoMax = tun.MaxPacketSize
	bc := newBenchConnOn(b, nl)
	send := bc.transmitSuper(b)
	b.SetBytes(superPayload)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		send()
	}
}

func (bc *benchConn) transmitSuper(tb testing.TB) func() {
	bc.c.SetNoDelay(true)
	bc.c.SetWriteBuffer(1 << 20)
	data := make([]byte, superPayload)
	ack := tcp.Segment{Seq: bc.rcvNxt, Flags: tcp.FlagACK, Window: 65535}
	pkt := tcpPacket(bc.cli, srvB, &ack)
	buf := make([]byte, len(pkt))
	return func() {
		if _, err := bc.c.Write(data); err != nil {
			tb.Fatal(err)
		}
		// Acknowledge whatever is in flight until all of it was sent
		// (the congestion window may hold some back at first).
		for {
			inflight := bc.c.Info().Unacked
			if inflight == 0 {
				return
			}
			bc.sndNxt += tcp.Seq(inflight)
			ack.Ack = bc.sndNxt
			tcp.EncodeHeader(pkt[20:], bc.cli.Port(), srvB.Port(), &ack)
			tcp.SetChecksumFull(pkt[20:], addrA.AsSlice(), addrB.AsSlice())
			copy(buf, pkt)
			bc.inject(buf)
		}
	}
}

// TestSuperSegmentPathsAllocateNothing holds the benchmarks above to the
// issue's target: no allocation per super-segment received or sent, once
// the connection's buffers and the pool are warm.
func TestSuperSegmentPathsAllocateNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(*benchConn, testing.TB) func()
	}{
		{"receive", (*benchConn).receiveSuper},
		{"transmit", (*benchConn).transmitSuper},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nl := newNullLink()
			nl.gsoMax = tun.MaxPacketSize
			bc := newBenchConnOn(t, nl)
			bc.c.SetReadBuffer(1 << 20)
			step := tc.op(bc, t)
			// Wait for the link writer to have written (and returned to
			// the pool) what the step queued: without it the pool grows
			// (within its bounds) whenever the writer goroutine lags,
			// which is warm-up, not a per-segment cost.
			op := func() {
				step()
				for bc.l.pending.Load() || bc.s.pool.inUse() > 0 {
					runtime.Gosched()
				}
			}
			for range 50 {
				op()
			}
			before := bc.s.stats.TxPackets.Load()
			allocs := testing.AllocsPerRun(200, op)
			assert.Zero(t, allocs)
			require.Eventually(t, func() bool { return bc.s.stats.TxPackets.Load() > before }, 5e9, 1e6, "the path sent packets")
		})
	}
}

// inUse reports how many buffers are out of the pool (queued or being written).
func (p *bufPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nSmall + p.nBig - len(p.small) - len(p.big)
}
