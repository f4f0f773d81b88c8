package tun

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePath(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		in       string
		up, down LaneConfig
		rtt      time.Duration
		str      string
	}{
		{"rtt=40ms,rate=100mbit,loss=0.5%",
			LaneConfig{Impairment: Impairment{Loss: 0.005, Delay: 20 * ms}, Rate: 100e6, Queue: 500000},
			LaneConfig{Impairment: Impairment{Loss: 0.005, Delay: 20 * ms, Seed: 1}, Rate: 100e6, Queue: 500000},
			40 * ms, "rtt=40ms,rate=100mbit,queue=500000,loss=0.5%"},
		{"rtt=41ms,rate=1gbit,queue=2bdp,jitter=1ms,reorder=1%,seed=7",
			LaneConfig{Impairment: Impairment{Delay: 20500 * time.Microsecond, Jitter: ms, Reorder: 0.01, Seed: 7}, Rate: 1e9, Queue: 10250000},
			LaneConfig{Impairment: Impairment{Delay: 20500 * time.Microsecond, Jitter: ms, Reorder: 0.01, Seed: 8}, Rate: 1e9, Queue: 10250000},
			41 * ms, "rtt=41ms,rate=1gbit,queue=10250000,jitter=1ms,reorder=1%"},
		{"rtt=10ms,rate=10mbit,queue=64KiB,up.loss=1%,down.rate=500kbit,down.queue=1500",
			LaneConfig{Impairment: Impairment{Loss: 0.01, Delay: 5 * ms}, Rate: 10e6, Queue: 65536},
			LaneConfig{Impairment: Impairment{Delay: 5 * ms, Seed: 1}, Rate: 500e3, Queue: 1500},
			10 * ms, "rtt=10ms,up.rate=10mbit,up.queue=65536,up.loss=1%,down.rate=500kbit,down.queue=1500"},
		{"up.delay=30ms,down.delay=10ms,rate=8kbit,queue=1",
			LaneConfig{Impairment: Impairment{Delay: 30 * ms}, Rate: 8000, Queue: 1500},
			LaneConfig{Impairment: Impairment{Delay: 10 * ms, Seed: 1}, Rate: 8000, Queue: 1500},
			40 * ms, "rate=8kbit,queue=1500,up.delay=30ms,down.delay=10ms"},
		{"rtt=20ms,up.rate=1mbit,queue=3000",
			LaneConfig{Impairment: Impairment{Delay: 10 * ms}, Rate: 1e6, Queue: 3000},
			LaneConfig{Impairment: Impairment{Delay: 10 * ms, Seed: 1}},
			20 * ms, "rtt=20ms,up.rate=1mbit,up.queue=3000"},
		{"loss=2%", LaneConfig{Impairment: Impairment{Loss: 0.02}}, LaneConfig{Impairment: Impairment{Loss: 0.02, Seed: 1}}, 0, "loss=2%"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePath(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.up, got.Up, "up")
			assert.Equal(t, tt.down, got.Down, "down")
			assert.Equal(t, tt.rtt, got.RTT)
			assert.Equal(t, tt.str, got.String())
			again, err := ParsePath(got.String())
			require.NoError(t, err)
			again.Up.Seed, again.Down.Seed = got.Up.Seed, got.Down.Seed // String leaves the seed out
			assert.Equal(t, got, again, "String round-trips")
		})
	}
}

func TestParsePathErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `path: empty; want e.g. "rtt=40ms,rate=100mbit,loss=0.5%"`},
		{"rtt", `path "rtt": want key=value`},
		{"rtt=40ms,rtt=20ms", `path "rtt=20ms": rtt given twice`},
		{"bw=1mbit", `path "bw=1mbit": unknown key "bw" (known: rtt, delay, rate, queue, ecn, loss, jitter, reorder, depth, dup, corrupt, limit, seed, each also as up.KEY or down.KEY but rtt)`},
		{"up.rtt=1ms", `path "up.rtt=1ms": unknown key "up.rtt" (known: rtt, delay, rate, queue, ecn, loss, jitter, reorder, depth, dup, corrupt, limit, seed, each also as up.KEY or down.KEY but rtt)`},
		{"delay=10ms", `path "delay=10ms": give rtt, or the one-way up.delay and down.delay`},
		{"rate=100mbps", `path "rate=100mbps": want a rate such as 100mbit, 1gbit or 500kbit (bits per second)`},
		{"rate=1kbit", `path "rate=1kbit": rate 1kbit out of [8kbit, 1000gbit]`},
		{"loss=5", `path "loss=5": probability 5 out of [0, 1]; write 5% for a percentage`},
		{"rtt=-1ms", `path "rtt=-1ms": negative duration`},
		{"rate=1mbit,queue=1bdp", `path: queue=1bdp: a queue in BDPs needs an rtt (or delays)`},
		{"rtt=1ms,queue=1500", `path: a queue needs a rate (the queue is the bottleneck's)`},
		{"rtt=1ms,up.rate=1mbit,down.queue=1500", `path: down.queue needs a down.rate (the queue is the bottleneck's)`},
		{"rtt=1ms,rate=1mbit,queue=lots", `path: queue=lots: want bytes (150000, 64KiB, 1MiB) or BDPs (1bdp)`},
		{"rtt=1ms,rate=1mbit,queue=-1bdp", `path: queue=-1bdp: want a positive number of BDPs such as 1bdp or 0.5bdp`},
	}
	for _, tt := range tests {
		_, err := ParsePath(tt.in)
		if assert.Error(t, err, tt.in) {
			assert.Equal(t, tt.want, err.Error(), tt.in)
		}
	}
}

// delivery is one packet coming out of a lane in virtual time.
type delivery struct {
	at  time.Duration
	seq uint32
}

// seqPacket is a size-byte packet carrying seq in its first four bytes.
func seqPacket(seq uint32, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, seq)
	return p
}

// runLane steps a lane through its due times up to until, collecting what
// comes out at exactly the time it is due.
func runLane(l *PathLane, until time.Duration) []delivery {
	var out []delivery
	var batch [][]byte
	for {
		next, ok := l.Next()
		if !ok || next > until {
			return out
		}
		batch = l.Due(next, batch[:0], nil)
		for _, b := range batch {
			out = append(out, delivery{next, binary.BigEndian.Uint32(b[Headroom:])})
		}
		l.Recycle(batch)
	}
}

func newLane(t *testing.T, cfg LaneConfig) *PathLane {
	l, err := NewPathLane(cfg)
	require.NoError(t, err)
	return l
}

// TestPathLaneDelay: a packet comes out exactly Delay after it went in,
// and Next says when.
func TestPathLaneDelay(t *testing.T) {
	l := newLane(t, LaneConfig{Impairment: Impairment{Delay: 20 * time.Millisecond}})
	_, ok := l.Next()
	assert.False(t, ok)
	l.Input(time.Second, seqPacket(1, 100))
	l.Input(time.Second+3*time.Microsecond, seqPacket(2, 100))
	next, ok := l.Next()
	require.True(t, ok)
	assert.Equal(t, time.Second+20*time.Millisecond, next)
	assert.Empty(t, l.Due(next-1, nil, nil), "not a nanosecond early")
	got := runLane(l, 2*time.Second)
	assert.Equal(t, []delivery{{1020 * time.Millisecond, 1}, {1020*time.Millisecond + 3*time.Microsecond, 2}}, got)
}

// TestPathLaneBottleneck: a burst leaves the bottleneck one serialisation
// time apart (1500 bytes at 100 Mbit/s: 120 µs), and what does not fit the
// byte-limited queue is tail-dropped.
func TestPathLaneBottleneck(t *testing.T) {
	const d = 5 * time.Millisecond
	l := newLane(t, LaneConfig{Impairment: Impairment{Delay: d}, Rate: 100e6, Queue: 10 * 1500})
	for i := range 15 {
		l.Input(0, seqPacket(uint32(i), 1500))
	}
	st := l.Stats()
	assert.Equal(t, uint64(5), st.QueueDrops, "10 packets fit the queue")
	assert.Equal(t, 15000, st.MaxQueue)
	assert.Equal(t, 15000, l.Queued(0))
	// Half-way through the fourth packet's serialisation three are gone.
	assert.Equal(t, 7*1500, l.Queued(420*time.Microsecond))
	// The queue has room again: this one leaves after the ten.
	l.Input(420*time.Microsecond, seqPacket(100, 1500))
	got := runLane(l, time.Second)
	require.Len(t, got, 11)
	for i := range 10 {
		assert.Equal(t, delivery{time.Duration(i+1)*120*time.Microsecond + d, uint32(i)}, got[i])
	}
	assert.Equal(t, delivery{11*120*time.Microsecond + d, 100}, got[10])
	assert.Equal(t, uint64(11), l.Stats().Delivered)
	assert.Equal(t, uint64(11*1500), l.Stats().DelivBytes)
}

// TestPathLaneMatchesSettings drives a lane pair as a path of rtt=40ms,
// rate=100mbit, queue=1bdp in virtual time and measures it: the rate a
// saturating sender gets through, the RTT of a ping, and the loss rate, each
// within 5% of what was asked (the rate and RTT are in fact exact).
func TestPathLaneMatchesSettings(t *testing.T) {
	pc, err := ParsePath("rtt=40ms,rate=100mbit")
	require.NoError(t, err)

	t.Run("rate", func(t *testing.T) {
		up := newLane(t, pc.Up)
		// Offer 120 Mbit/s of 1500-byte packets for 10 s: the queue fills,
		// and the bottleneck delivers its rate.
		const gap = 100 * time.Microsecond
		var out []delivery
		for i := range 100000 {
			now := time.Duration(i) * gap
			out = append(out, runLane(up, now)...)
			up.Input(now, seqPacket(uint32(i), 1500))
		}
		out = append(out, runLane(up, time.Hour)...)
		st := up.Stats()
		assert.Greater(t, st.QueueDrops, uint64(10000), "an overloaded bottleneck drops")
		assert.LessOrEqual(t, st.MaxQueue, pc.Up.Queue)
		assert.Greater(t, st.MaxQueue, pc.Up.Queue-1500)
		span := out[len(out)-1].at - out[0].at
		rate := float64(len(out)-1) * 1500 * 8 / span.Seconds()
		assert.InEpsilon(t, 100e6, rate, 0.05, "delivered rate")
		assert.InEpsilon(t, 100e6, rate, 1e-9, "delivered rate, exactly")
	})

	t.Run("rtt", func(t *testing.T) {
		up, down := newLane(t, pc.Up), newLane(t, pc.Down)
		// A 100-byte ping every 100 ms, echoed at once: its RTT is the two
		// delays plus two serialisation times (8 µs each).
		for i := range 10 {
			sent := time.Duration(i) * 100 * time.Millisecond
			up.Input(sent, seqPacket(uint32(i), 100))
			there := runLane(up, time.Hour)
			require.Len(t, there, 1)
			down.Input(there[0].at, seqPacket(uint32(i), 100))
			back := runLane(down, time.Hour)
			require.Len(t, back, 1)
			rtt := back[0].at - sent
			assert.InEpsilon(t, float64(40*time.Millisecond), float64(rtt), 0.05)
			assert.Equal(t, 40*time.Millisecond+16*time.Microsecond, rtt)
		}
	})

	t.Run("loss", func(t *testing.T) {
		for _, loss := range []float64{0.005, 0.02} {
			l := newLane(t, LaneConfig{Impairment: Impairment{Loss: loss, Seed: 3}})
			const n = 400000
			pkt := seqPacket(0, 40)
			var out [][]byte
			for i := range n {
				l.Input(time.Duration(i), pkt)
				out = l.Due(time.Duration(i), out[:0], nil)
				l.Recycle(out)
			}
			assert.Equal(t, l.Stats().Packets-l.Stats().Dropped, l.Stats().Delivered)
			got := float64(l.Stats().Dropped) / n
			assert.InEpsilon(t, loss, got, 0.05, "loss %v", loss)
		}
	})
}

// TestPathLaneDeterministic: a seed replays the same losses; another seed
// draws others.
func TestPathLaneDeterministic(t *testing.T) {
	survivors := func(seed uint64) []uint32 {
		l := newLane(t, LaneConfig{Impairment: Impairment{Loss: 0.1, Jitter: time.Millisecond, Delay: time.Millisecond, Seed: seed}, Rate: 10e6, Queue: 100000})
		for i := range 1000 {
			l.Input(time.Duration(i)*time.Millisecond, seqPacket(uint32(i), 1000))
		}
		var seqs []uint32
		for _, d := range runLane(l, time.Hour) {
			seqs = append(seqs, d.seq)
		}
		return seqs
	}
	a := survivors(42)
	assert.Equal(t, a, survivors(42))
	assert.NotEqual(t, a, survivors(43))
	assert.InDelta(t, 900, len(a), 40)
}

// TestPathLaneJitterKeepsOrder: jitter moves packets in time but never
// past one another.
func TestPathLaneJitterKeepsOrder(t *testing.T) {
	l := newLane(t, LaneConfig{Impairment: Impairment{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Seed: 1}})
	for i := range 1000 {
		l.Input(time.Duration(i)*2*time.Millisecond, seqPacket(uint32(i), 100))
	}
	got := runLane(l, time.Hour)
	require.Len(t, got, 1000)
	spread := map[bool]int{}
	for i, d := range got {
		assert.Equal(t, uint32(i), d.seq)
		sent := time.Duration(i) * 2 * time.Millisecond
		assert.GreaterOrEqual(t, d.at-sent, 5*time.Millisecond)
		assert.LessOrEqual(t, d.at-sent, 15*time.Millisecond)
		spread[d.at-sent > 10*time.Millisecond]++
	}
	assert.Greater(t, spread[true], 100)
	assert.Greater(t, spread[false], 100)
}

// TestPathLaneReorder: a reordered packet is overtaken by depth later ones.
func TestPathLaneReorder(t *testing.T) {
	l := newLane(t, LaneConfig{Impairment: Impairment{Delay: time.Millisecond, Reorder: 1, ReorderDepth: 2}})
	l.Input(0, seqPacket(0, 100))
	l.cfg.Reorder = 0
	for i := 1; i < 5; i++ {
		l.Input(time.Duration(i)*time.Microsecond, seqPacket(uint32(i), 100))
	}
	var seqs []uint32
	for _, d := range runLane(l, time.Hour) {
		seqs = append(seqs, d.seq)
	}
	assert.Equal(t, []uint32{1, 2, 0, 3, 4}, seqs)
	assert.Equal(t, uint64(1), l.Stats().Reordered)
}

// TestPathLaneDupCorrupt: a duplicate arrives twice, a corrupted packet
// with one byte inverted.
func TestPathLaneDupCorrupt(t *testing.T) {
	l := newLane(t, LaneConfig{Impairment: Impairment{Dup: 1, Corrupt: 1}})
	pkt := seqPacket(7, 64)
	l.Input(0, pkt)
	out := l.Due(0, nil, nil)
	require.Len(t, out, 2)
	for _, b := range out {
		diff := 0
		for i := range pkt {
			if b[Headroom+i] != pkt[i] {
				diff++
				assert.Equal(t, pkt[i]^0xff, b[Headroom+i])
			}
		}
		assert.Equal(t, 1, diff)
	}
	st := l.Stats()
	assert.Equal(t, uint64(1), st.Duplicated)
	assert.Equal(t, uint64(1), st.Corrupted)
}

func TestNewPathLaneErrors(t *testing.T) {
	_, err := NewPathLane(LaneConfig{Rate: 1e6})
	assert.EqualError(t, err, "tun: path lane: a 0-byte bottleneck queue holds no packet; want at least an MTU")
	_, err = NewPathLane(LaneConfig{Rate: -1})
	assert.Error(t, err)
}

// TestPathLaneLimit: the wire holds at most Limit packets.
func TestPathLaneLimit(t *testing.T) {
	l := newLane(t, LaneConfig{Impairment: Impairment{Delay: time.Second, Limit: 3}})
	for i := range 5 {
		l.Input(0, seqPacket(uint32(i), 10))
	}
	assert.Equal(t, uint64(2), l.Stats().Overflow)
	assert.Len(t, runLane(l, time.Hour), 3)
}

// TestPathForwardsRealTime runs a Path between two pipes in real time:
// every packet crosses in order and intact, in both directions, no sooner
// than the delay, and the lateness is accounted for each one. (Timing
// upper bounds are the namespace test's business: a loaded machine can
// delay this process arbitrarily.)
func TestPathForwardsRealTime(t *testing.T) {
	aOuter, aInner := NewPipe(1500)
	bInner, bOuter := NewPipe(1500)
	pc, err := ParsePath("rtt=4ms,rate=100mbit,queue=1MiB")
	require.NoError(t, err)
	p, err := NewPath(aInner, bInner, pc)
	require.NoError(t, err)
	defer p.Close()
	timer := time.AfterFunc(10*time.Second, func() { p.Close(); aOuter.Close(); bOuter.Close() })
	defer timer.Stop()

	const n = 200
	check := func(from, to *PipeEnd, oneWay time.Duration) {
		sent := time.Now()
		for i := range n {
			pkt := append(make([]byte, Headroom), seqPacket(uint32(i), 1000)...)
			pkt[Headroom+999] = byte(i)
			_, err := from.Write([][]byte{pkt}, Headroom)
			require.NoError(t, err)
		}
		bufs, sizes := [][]byte{make([]byte, Headroom+1500)}, []int{0}
		for i := range n {
			_, err := to.Read(bufs, sizes, Headroom)
			require.NoError(t, err, "packet %d", i)
			got := bufs[0][Headroom : Headroom+sizes[0]]
			require.Len(t, got, 1000)
			assert.Equal(t, uint32(i), binary.BigEndian.Uint32(got))
			assert.Equal(t, byte(i), got[999])
		}
		assert.GreaterOrEqual(t, time.Since(sent), oneWay+n*80*time.Microsecond)
	}
	check(aOuter, bOuter, 2*time.Millisecond)
	check(bOuter, aOuter, 2*time.Millisecond)
	st := p.Stats()
	assert.Equal(t, uint64(n), st.Up.Delivered)
	assert.Equal(t, uint64(n), st.Down.Delivered)
	assert.Equal(t, uint64(n), st.UpLate.Count)
	assert.Equal(t, uint64(n), st.DownLate.Count)
	t.Logf("lateness up: mean %v, max %v; down: mean %v, max %v", st.UpLate.Mean(), st.UpLate.Max, st.DownLate.Mean(), st.DownLate.Max)
	require.NoError(t, p.Close())
	_, err = aOuter.Write([][]byte{make([]byte, Headroom+20)}, Headroom)
	assert.ErrorIs(t, err, ErrClosed, "Close closes the links")
}

// TestPathLaneQueueDelay: each packet the bottleneck takes waits for those
// ahead of it (a burst of ten at 100 Mbit/s: 0, 120, …, 1080 µs; one more
// at 420 µs behind them waits 780 µs); the tail-dropped ones count not.
func TestPathLaneQueueDelay(t *testing.T) {
	const us = time.Microsecond
	l := newLane(t, LaneConfig{Impairment: Impairment{Delay: 5 * time.Millisecond}, Rate: 100e6, Queue: 10 * 1500})
	for i := range 15 {
		l.Input(0, seqPacket(uint32(i), 1500))
	}
	l.Input(420*us, seqPacket(100, 1500))
	want := QueueDelay{Count: 11, Sum: 45*120*us + 780*us, Max: 1080 * us,
		P50: 700 * us, P90: 1000 * us, P99: 1080 * us} // bucket bounds: 600, 960, 1080 µs fall in them
	assert.Equal(t, want, l.Stats().Delay)
	assert.Equal(t, 561818*time.Nanosecond, want.Mean()) // 6180 µs / 11
	assert.Equal(t, want, l.ResetQueueDelay())
	assert.Equal(t, QueueDelay{}, l.Stats().Delay)
	// Once the queue has drained, a packet waits for nothing.
	l.Input(time.Second, seqPacket(101, 1500))
	assert.Equal(t, QueueDelay{Count: 1}, l.Stats().Delay)
}
