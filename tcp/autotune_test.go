package tcp

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Buffer auto-tuning in virtual time (autotune.go). The peer is scripted:
// it sends rounds of full-sized segments one RTT (40 ms) apart, each echoing
// the timestamp of our ACKs of the round before, and the application reads
// every segment as it arrives.

const (
	tuneRTT = 40 * ms
	tuneSeg = 1448 // 1460 less the timestamp option
	tuneWS  = 8    // our window scale: covers 8 MiB (WindowScaleFor)
)

// tuneConfig: timestamps and window scaling on, every segment ACKed at once.
func tuneConfig() Config {
	return Config{RecvBufferSize: 64 << 10, RecvBufferMax: 1 << 20, SendBufferSize: 16 << 10,
		SendBufferMax: 256 << 10, DelayedACK: -1, DisableSACK: true}
}

// newTuneConn returns an ESTABLISHED connection (active open) whose peer
// offers window scale 7, timestamps and a 64 KiB window (8 MiB scaled).
func newTuneConn(t *testing.T, cfg Config) *harness {
	h := newDialed(t, cfg)
	got := h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7,
			HasTimestamp: true, TSVal: 1, TSEcr: TSClock(h.now, 0)}})
	require.Len(t, got, 1)
	require.Equal(t, StateEstablished, h.c.State())
	require.True(t, h.c.Info().Timestamps)
	return h
}

// tunePeer scripts the sending peer.
type tunePeer struct {
	h       *harness
	seq     Seq
	buf     []byte
	lastWnd uint32 // the last window we advertised, in bytes
	rightEd Seq    // the right edge we advertised (RCV.NXT + window), never moving left
}

func newTunePeer(h *harness) *tunePeer {
	return &tunePeer{h: h, seq: tPeer + 1, buf: make([]byte, 256<<10), rightEd: h.c.rcvAdv}
}

// round sends segs full-sized segments at the harness's time, echoing the
// timestamp we sent one RTT ago, reading each at once when read is set
// (and draining read bytes of the buffer per segment otherwise).
func (p *tunePeer) round(segs int, read int) {
	h := p.h
	ecr := TSClock(h.now-tuneRTT, 0)
	for range segs {
		s := Segment{Flags: FlagACK, Seq: p.seq, Ack: tISS + 1, Window: 65535, Payload: data(tuneSeg, byte(p.seq)),
			Options: Options{HasTimestamp: true, TSVal: 100, TSEcr: ecr}}
		p.seq += tuneSeg
		p.check(h.in(s))
		if read > 0 {
			n, err := h.c.Read(p.buf[:read])
			require.NoError(h.t, err)
			require.Positive(h.t, n)
			p.check(h.output())
		}
	}
}

// check follows the windows we advertise: the right edge never moves left
// (RFC 9293 §3.8.6) and the script never sends beyond it.
func (p *tunePeer) check(segs []Segment) {
	for i := range segs {
		s := &segs[i]
		wnd := uint32(s.Window) << tuneWS
		edge := s.Ack + Seq(wnd)
		// Less only what the scaled field cannot express.
		require.False(p.h.t, (edge + 1<<tuneWS - 1).LessThan(p.rightEd), "right edge moved left: %s", fmtSeg(s))
		p.rightEd, p.lastWnd = p.rightEd.Max(edge), wnd
	}
	require.False(p.h.t, p.seq.GreaterThan(p.rightEd), "the script sent beyond the window")
}

// The receive buffer grows with what the application reads per RTT, round
// after round, as tcp_rcv_space_adjust computes it, and stops at
// RecvBufferMax; the window we advertise follows it.
func TestRcvTuneGrowsWithDrainRate(t *testing.T) {
	h := newTuneConn(t, tuneConfig())
	p := newTunePeer(h)
	require.Equal(t, int8(tuneWS), h.c.Info().RcvWScale)
	// Segments per round (a sender in slow start) and the buffer after
	// each. Round 1 reads 10 segments: no more than the first measure.
	// Round 2 passes it at its 1st segment: the measure starts there.
	// Round 3 (1st segment) ends it: 20 segments read in the RTT, more
	// than 10: 2*28960 + 16*1448 = 81088, plus 2*81088*(20-10)/10.
	// Round 4: 40 against 20: (2*57920+23168)*(1+2*20/20) = 417024.
	// Round 5: 80 against 40: 764544. Round 6: 160 against 80: 1459584,
	// above the 1 MiB maximum. Round 7: it stays there.
	for i, tc := range []struct{ segs, buf int }{
		{10, 64 << 10}, {20, 64 << 10}, {40, 243264}, {80, 417024}, {160, 764544}, {320, 1 << 20}, {500, 1 << 20},
	} {
		h.now += tuneRTT
		p.round(tc.segs, 64<<10)
		in := h.c.Info()
		require.Equal(t, tc.buf, in.RcvBuf, "receive buffer after round %d", i+1)
		// The last segment's ACK: the buffer less that segment.
		require.Equal(t, (in.RcvBuf-tuneSeg)>>tuneWS<<tuneWS, int(p.lastWnd), "window after round %d", i+1)
		if i >= 1 {
			require.Equal(t, tuneRTT, Time(in.RcvRTT), "receiver RTT from the echoed timestamps")
		}
	}
	require.Equal(t, 320*tuneSeg, h.c.Info().RcvSpace, "the most read in one RTT so far (round 6)")
}

// A slower reader gets a smaller buffer: at 20 segments per RTT the buffer
// grows once, to what 20 segments need, and then holds.
func TestRcvTuneFollowsSlowReader(t *testing.T) {
	h := newTuneConn(t, tuneConfig())
	p := newTunePeer(h)
	for i := range 8 {
		h.now += tuneRTT
		p.round(20, 64<<10)
		want := 64 << 10
		if i >= 2 {
			// The measure starts at the 11th segment of round 1; at
			// round 2 it has read 10 (no more than the first
			// measure), at round 3 20 since round 2.
			want = 243264
		}
		require.Equal(t, want, h.c.Info().RcvBuf, "round %d", i+1)
	}
	require.Equal(t, 20*tuneSeg, h.c.Info().RcvSpace)
}

// An application that does not read gets nothing: the buffer grows on
// reads only, and the window closes as it fills.
func TestRcvTuneNeedsReads(t *testing.T) {
	h := newTuneConn(t, tuneConfig())
	p := newTunePeer(h)
	for range 4 {
		h.now += tuneRTT
		p.round(10, 0)
	}
	in := h.c.Info()
	require.Equal(t, 64<<10, in.RcvBuf)
	require.Zero(t, in.RcvSpace)
	require.Nil(t, h.c.tune, "no tuning state before the application read ten segments")
	require.Equal(t, uint32((64<<10-40*tuneSeg)>>tuneWS<<tuneWS), p.lastWnd)
}

// SetRecvBufferSize locks the size, as SO_RCVBUF does: the reader that
// grew the buffer to 1 MiB above keeps 64 KiB, and the tuning state goes.
func TestRcvTuneLockedBySetRecvBufferSize(t *testing.T) {
	h := newTuneConn(t, tuneConfig())
	p := newTunePeer(h)
	h.now += tuneRTT
	p.round(20, 64<<10)
	require.NotNil(t, h.c.tune)
	h.c.SetRecvBufferSize(64 << 10)
	for _, segs := range []int{40, 40, 40, 40} {
		h.now += tuneRTT
		p.round(segs, 64<<10)
	}
	in := h.c.Info()
	require.Equal(t, 64<<10, in.RcvBuf)
	require.Equal(t, 64<<10, in.RcvBufMax)
	require.Nil(t, h.c.tune)
	require.Equal(t, uint32((64<<10-tuneSeg)>>tuneWS<<tuneWS), p.lastWnd)
}

// Under memory pressure the grown receive buffer goes back to its initial
// size as the peer uses up the window already offered (never moving its
// right edge left), the storage goes with it, and once the pressure is
// over the buffer grows again from the first measure.
func TestRcvTuneShrinksUnderPressure(t *testing.T) {
	var grown, shrunk atomic.Uint64
	cfg := tuneConfig()
	cfg.Memory = NewMemoryBudget(8<<20, MemoryCounters{RcvBufGrown: &grown, BufShrunk: &shrunk})
	h := newTuneConn(t, cfg)
	p := newTunePeer(h)
	for _, segs := range []int{10, 20, 40, 80, 160} {
		h.now += tuneRTT
		p.round(segs, 64<<10)
	}
	require.Equal(t, 764544, h.c.Info().RcvBuf)
	require.Equal(t, uint64(3), grown.Load())

	// Someone else takes the memory: more than 7 MiB of the 8 are in
	// use (the connection's own rings, emptied by each read, hold none).
	cfg.Memory.force(7<<20 + 1)
	require.True(t, cfg.Memory.underPressure())
	// The peer keeps sending into the window it has (the script checks
	// it stays inside and the edge never moves left); each read takes the
	// buffer down to what is still offered.
	for h.c.Info().RcvBuf > 64<<10 {
		h.now += tuneRTT
		p.round(min(160, int(p.lastWnd)/tuneSeg), 64<<10)
	}
	in := h.c.Info()
	require.Equal(t, 64<<10, in.RcvBuf)
	require.LessOrEqual(t, in.RcvAlloc, 64<<10, "storage given back")
	require.Positive(t, shrunk.Load())
	require.Equal(t, 10*tuneSeg, in.RcvSpace, "measure restarted")
	require.Equal(t, uint64(3), grown.Load(), "no growth under pressure")

	// Pressure over: growth resumes from the first measure.
	cfg.Memory.uncharge(7 << 20)
	for range 2 {
		h.now += tuneRTT
		p.round(40, 64<<10)
	}
	require.Greater(t, h.c.Info().RcvBuf, 64<<10)
	require.Equal(t, uint64(4), grown.Load())
}

// The send buffer follows cwnd: while the application keeps it full, each
// ACK makes it twice cwnd, up to SendBufferMax; under memory pressure the
// ACKs drain it back to its initial size, and its storage is compacted.
func TestSndTuneFollowsCwnd(t *testing.T) {
	var grown, shrunk atomic.Uint64
	cfg := tuneConfig()
	cfg.Memory = NewMemoryBudget(8<<20, MemoryCounters{SndBufGrown: &grown, BufShrunk: &shrunk})
	h := newTuneConn(t, cfg)
	src := make([]byte, 1<<20)
	fill := func() {
		for {
			n, err := h.c.Write(src)
			require.NoError(t, err)
			if n == 0 {
				return
			}
		}
	}
	// ackAll acknowledges everything sent, one RTT later, in one ACK per
	// two segments as a delayed-ACK receiver does; the application
	// writes after each ACK, keeping the buffer full.
	ackAll := func() {
		sent := h.output()
		h.now += tuneRTT
		for i := range sent {
			if i%2 == 0 && i != len(sent)-1 {
				continue
			}
			end := sent[i].Seq + Seq(len(sent[i].Payload))
			h.c.Input(h.now, &Segment{Flags: FlagACK, Seq: tPeer + 1, Ack: end, Window: 65535,
				Options: Options{HasTimestamp: true, TSVal: 100, TSEcr: sent[i].Options.TSVal}})
			fill()
		}
	}
	prev := h.c.Info().SndBuf
	require.Equal(t, 16<<10, prev)
	for range 8 {
		fill()
		ackAll()
		in := h.c.Info()
		// Every ACK found the buffer full and took it to twice the
		// cwnd it left.
		want := max(prev, min(2*int(in.CWnd), 256<<10))
		require.Equal(t, want, in.SndBuf, "cwnd %d", in.CWnd)
		prev = in.SndBuf
	}
	require.Equal(t, 256<<10, prev)
	require.Positive(t, grown.Load())

	// An application that writes little does not grow it.
	h2 := newTuneConn(t, cfg)
	for range 4 {
		_, err := h2.c.Write(src[:1000])
		require.NoError(t, err)
		sent := h2.output()
		h2.now += tuneRTT
		end := sent[len(sent)-1].Seq + Seq(len(sent[len(sent)-1].Payload))
		h2.in(Segment{Flags: FlagACK, Seq: tPeer + 1, Ack: end, Window: 65535})
	}
	require.Equal(t, 16<<10, h2.c.Info().SndBuf)

	// Pressure: writes stop, the ACKs take the buffer down.
	fill()
	require.Greater(t, h.c.Info().SndAlloc, 256<<10)
	cfg.Memory.force(7 << 20)
	before := shrunk.Load()
	for h.c.Info().SndBuf > 16<<10 {
		fill()
		ackAll()
	}
	in := h.c.Info()
	require.Equal(t, 16<<10, in.SndBuf)
	require.Greater(t, shrunk.Load(), before)
	fill()
	require.LessOrEqual(t, h.c.Info().SndAlloc, 32<<10, "storage compacted")
}

// The window scale offered on the SYN covers the largest receive buffer.
func TestWindowScaleCoversRecvBufferMax(t *testing.T) {
	for _, tc := range []struct {
		max  int
		want uint8
	}{{0, 8}, {-1, 8}, {6 << 20, 8}, {16 << 20, 9}, {64 << 20, 11}} {
		require.Equal(t, tc.want, WindowScaleFor(Config{RecvBufferMax: tc.max}), "RecvBufferMax %d", tc.max)
		var syn capture
		Dial(0, Config{RecvBufferMax: tc.max}, tISS).Output(0, &syn)
		require.Equal(t, tc.want, syn.segs[0].Options.WindowScale, fmtSeg(&syn.segs[0]))
	}
	cfg := DefaultConfig()
	require.Equal(t, DefaultRecvBufferMax, cfg.RecvBufferMax)
	require.Equal(t, DefaultSendBufferMax, cfg.SendBufferMax)
	require.Equal(t, 6<<20, cfg.RecvBufferMax)
	require.Equal(t, 4<<20, cfg.SendBufferMax)
}

// An idle connection that grew its buffers gives their memory back when
// asked (the stack asks every connection when the budget refuses a charge):
// no storage, sizes down as far as the window offered allows, the tuning
// measure restarted.
func TestReleaseIdleMemory(t *testing.T) {
	cfg := tuneConfig()
	cfg.Memory = NewMemoryBudget(0, MemoryCounters{})
	h := newTuneConn(t, cfg)
	p := newTunePeer(h)
	for _, segs := range []int{10, 20, 40, 80} {
		h.now += tuneRTT
		p.round(segs, 64<<10)
	}
	// Forty segments left unread grow the receive storage past the
	// sizes empty rings give back to the pool by themselves; then they
	// are read.
	h.now += tuneRTT
	p.round(40, 0)
	for h.c.Info().Readable > 0 {
		_, err := h.c.Read(p.buf)
		require.NoError(t, err)
	}
	h.output()
	_, err := h.c.Write(make([]byte, 8000))
	require.NoError(t, err)
	sent := h.output()
	h.in(Segment{Flags: FlagACK, Seq: p.seq, Ack: sent[len(sent)-1].Seq + Seq(len(sent[len(sent)-1].Payload)), Window: 65535})
	in := h.c.Info()
	require.Equal(t, 1<<20, in.RcvBuf, "the unread round grew it again")
	require.Positive(t, in.RcvAlloc)
	require.Zero(t, in.SndAlloc, "8 KiB of storage, back in the pool once acknowledged")
	require.Positive(t, cfg.Memory.Used())

	h.c.ReleaseIdleMemory()
	in = h.c.Info()
	// The window already offered must still fit: the buffer's size goes
	// no lower than that (the pressure test shows it going down as the
	// peer uses the window), but its storage is gone.
	require.Equal(t, int(h.c.rcvWindow()), in.RcvBuf)
	require.Zero(t, in.RcvAlloc)
	require.Zero(t, in.SndAlloc)
	require.Zero(t, cfg.Memory.Used())
	require.Equal(t, 10*tuneSeg, in.RcvSpace)
}

// The budget calls its pressure hook once per refusal episode: at the first
// refused charge, not again until usage fell under the low-water mark.
func TestMemoryBudgetPressureHook(t *testing.T) {
	m := NewMemoryBudget(100<<10, MemoryCounters{})
	calls := 0
	m.SetPressure(func() { calls++ })
	require.True(t, m.tryCharge(90<<10))
	require.False(t, m.tryCharge(20<<10))
	require.False(t, m.tryCharge(20<<10))
	require.Equal(t, 1, calls)
	require.True(t, m.underPressure())
	require.False(t, m.mayGrow())
	m.uncharge(60 << 10) // 30 KiB: under 7/8 and 3/4
	require.False(t, m.underPressure())
	require.True(t, m.mayGrow())
	require.True(t, m.tryCharge(60<<10))
	require.False(t, m.tryCharge(20<<10))
	require.Equal(t, 2, calls)
}
