package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pacedRun drives h's Output at every deadline it reports until nothing is
// left to send (at most limit steps), returning the departure time of
// every data segment, relative to t0.
func pacedRun(t *testing.T, h *harness, t0 Time, limit int) (times []time.Duration, segs []Segment) {
	for i := 0; i < limit; i++ {
		for _, s := range h.output() {
			if len(s.Payload) > 0 {
				times = append(times, h.now.Sub(t0))
				segs = append(segs, s)
			}
		}
		at, ok := h.c.NextDeadline()
		if !ok || h.c.rate == nil || !h.c.rate.pace.timer.armed() {
			return times, segs
		}
		require.Equal(t, h.c.rate.pace.timer.at, at, "the pacing timer is the next deadline")
		h.now = at
	}
	t.Fatalf("still sending after %d steps", limit)
	return nil, nil
}

func TestPacingFixedRateSpacing(t *testing.T) {
	cfg := plainConfig()
	cfg.SendBufferSize = 64 << 10
	h, f := fixedHarness(t, cfg, Segment{}, 100000)
	f.rate = 100000 // bytes/s: a 1000-byte segment every 10 ms
	t0 := h.now
	h.c.Write(data(4500, 0))
	require.Equal(t, uint64(100000), h.c.Info().PacingRate)
	// The first segment leaves at once, the next 10 ms later.
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 1000")
	at, ok := h.c.NextDeadline()
	require.True(t, ok)
	require.Equal(t, t0+10*ms, at)
	h.now = t0 + 10*ms - 1
	h.expect(h.output()) // 1 ns early: nothing
	h.now = t0 + 10*ms
	h.expect(h.output(), "[.] seq 2001 ack 5001 win 4096 len 1000")
	times, segs := pacedRun(t, h, t0, 100)
	assert.Equal(t, []time.Duration{20 * time.Millisecond, 30 * time.Millisecond, 40 * time.Millisecond}, times)
	assert.Equal(t, "[.] seq 3001 ack 5001 win 4096 len 1000\n[.] seq 4001 ack 5001 win 4096 len 1000\n"+
		"[P.] seq 5001 ack 5001 win 4096 len 500", fmtSegs(segs))
	// The 500-byte tail delays the next departure by 5 ms.
	assert.Equal(t, t0+45*ms, h.c.rate.pace.next)

	// An ACK does not let segments jump the queue: new data written at
	// t0+41ms waits for t0+45ms.
	h.now = t0 + 41*ms
	h.in(seg(FlagACK, tPeer+1, tISS+4501, 65535))
	h.c.Write(data(2000, 0))
	h.expect(h.output())
	times, _ = pacedRun(t, h, t0, 100)
	assert.Equal(t, []time.Duration{45 * time.Millisecond, 55 * time.Millisecond}, times)

	// After an idle period no credit has built up: a burst written at
	// t0+1s goes out at the rate again.
	h.in(seg(FlagACK, tPeer+1, tISS+6501, 65535))
	h.now = t0.Add(time.Second)
	h.c.Write(data(3000, 0))
	times, _ = pacedRun(t, h, t0, 100)
	assert.Equal(t, []time.Duration{time.Second, time.Second + 10*time.Millisecond, time.Second + 20*time.Millisecond}, times)
}

func TestPacingDefaultRateLikeLinux(t *testing.T) {
	cfg := plainConfig()
	cfg.Pacing = true
	cfg.SendBufferSize = 64 << 10
	h := establishRTT(t, cfg, 100*ms, Segment{})
	in := h.c.Info()
	require.Equal(t, 100*time.Millisecond, in.RTT)
	// Slow start: 2 * cwnd/SRTT = 2 * 10000 B / 100 ms = 200000 B/s, one
	// 1000-byte segment every 5 ms.
	require.Equal(t, uint64(200000), in.PacingRate)
	t0 := h.now
	h.c.Write(data(10000, 0))
	times, _ := pacedRun(t, h, t0, 100)
	want := make([]time.Duration, 10)
	for i := range want {
		want[i] = time.Duration(i) * 5 * time.Millisecond
	}
	assert.Equal(t, want, times)

	// Congestion avoidance (cwnd >= ssthresh/2): 1.2 * cwnd/SRTT.
	h.c.cc.(*renoCC).ssthresh = 10000
	assert.Equal(t, uint64(120000), h.c.Info().PacingRate)
}

func TestPacingOffSendsAtOnce(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	require.Zero(t, h.c.Info().PacingRate)
	sendSegs(t, h, 10)
	_, ok := h.c.NextDeadline()
	require.True(t, ok) // the RTO only
	require.False(t, h.c.rate.pace.timer.armed())
}

func TestPacingDelay(t *testing.T) {
	assert.Equal(t, 10*time.Millisecond, pacingDelay(1000, 100000))
	assert.Equal(t, time.Duration(334), pacingDelay(1, 3e6), "rounded up")
	assert.Equal(t, time.Duration(1<<32-1)*time.Second, pacingDelay(1<<32-1, 1), "no overflow")
}

// TestTSOAutosize: Linux's tcp_tso_autosize, 2^-10 s of data at the rate,
// plus GSO bytes halved for every 512 µs of minimum RTT, in whole segments,
// at least the minimum.
func TestTSOAutosize(t *testing.T) {
	const gso = 65535
	for _, tc := range []struct {
		rate    uint64
		minRTT  time.Duration
		seg     uint32
		minSegs uint32
		want    uint32
	}{
		{100000, 100 * time.Millisecond, 1000, 2, 2},   // 97 bytes: the 2-segment floor
		{100000, 100 * time.Millisecond, 1000, 10, 10}, // tcp_min_tso_segs=10
		{5000000, 100 * time.Millisecond, 1000, 2, 4},  // 4882 bytes: 4 segments
		{12500000, 100 * time.Millisecond, 1448, 2, 8}, // 100 Mbit/s: 12207 bytes
		{5000000, 0, 1000, 2, 4},                       // no min RTT yet: the rate alone
		{5000000, time.Millisecond, 1000, 2, 37},       // 1 ms: + gso/2
		{5000000, 100 * time.Microsecond, 1000, 2, 65}, // under 512 µs: + gso, capped at gso
		{0, 0, 1448, 2, 45},                            // no rate yet: gso
		{1 << 62, 100 * time.Millisecond, 1448, 2, 45}, // capped at gso
	} {
		assert.Equal(t, tc.want, tsoAutosize(tc.rate, tc.minRTT, gso, tc.seg, tc.minSegs), "%+v", tc)
	}
}

// TestPacingSizesSuperSegments: with offloads, a paced connection emits
// super-segments of about 1 ms at its rate, one per millisecond, where
// an unpaced one sends the whole window in one 64 KiB-class burst.
func TestPacingSizesSuperSegments(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.SendBufferSize = 256 << 10
	h, f := fixedHarness(t, cfg, Segment{}, 1<<20)
	h.c.sndWnd = 1 << 20
	f.rate = 5000000 // 5000 bytes per ms: 5 segments of 1000
	t0 := h.now
	h.c.Write(data(20000, 0))
	times, segs := pacedRun(t, h, t0, 100)
	assert.Equal(t, []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}, times)
	assert.Equal(t, "[P.] seq 1001 ack 5001 win 4096 len 5000 gso 1000\n[P.] seq 6001 ack 5001 win 4096 len 5000 gso 1000\n"+
		"[P.] seq 11001 ack 5001 win 4096 len 5000 gso 1000\n[P.] seq 16001 ack 5001 win 4096 len 5000 gso 1000", fmtSegs(segs))

	// A slow rate still sends two segments at a time: 100 kB/s, 2000
	// bytes every 20 ms.
	h.in(seg(FlagACK, tPeer+1, tISS+20001, 65535))
	h.c.sndWnd = 1 << 20
	f.rate = 100000
	t1 := h.now.Add(time.Second)
	h.now = t1
	h.c.Write(data(6000, 0))
	times, segs = pacedRun(t, h, t1, 100)
	assert.Equal(t, []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond}, times)
	for _, s := range segs {
		assert.Len(t, s.Payload, 2000)
		assert.Equal(t, uint16(1000), s.GSOSize)
	}

	// Unpaced: the window goes out in super-segments of GSOMaxSize.
	h.in(seg(FlagACK, tPeer+1, tISS+26001, 65535))
	h.c.sndWnd = 1 << 20
	f.rate = 0
	h.c.Write(data(100000, 0))
	got := h.output()
	require.Len(t, got, 2)
	assert.Len(t, got[0].Payload, 65000)
	assert.Len(t, got[1].Payload, 35000)
}

// TestPacedSendAndAckAllocateNothing: the per-segment bookkeeping (rate
// records, samples, the pacer) allocates nothing once warm.
func TestPacedSendAndAckAllocateNothing(t *testing.T) {
	for _, pacing := range []bool{false, true} {
		cfg := plainConfig()
		cfg.Pacing = pacing
		cfg.SendBufferSize = 64 << 10
		h := establishRTT(t, cfg, 100*ms, Segment{})
		var e nopEmitter
		paced := 0
		step := func() {
			h.c.Write(data1000)
			h.c.Output(h.now, &e)
			if at, ok := h.c.NextDeadline(); ok && h.c.rate.pace.timer.armed() {
				paced++
				h.now = at
				h.c.Output(h.now, &e)
			}
			h.now += ms
			ack := seg(FlagACK, tPeer+1, h.c.SndNxt(), 65535)
			h.c.Input(h.now, &ack)
		}
		for i := 0; i < 100; i++ {
			step()
		}
		assert.Zero(t, testing.AllocsPerRun(1000, step), "pacing %v", pacing)
		in := h.c.Info()
		assert.Equal(t, pacing, in.PacingRate > 0)
		assert.Equal(t, pacing, paced > 0, "the pacing timer was used")
		assert.Greater(t, in.BytesAcked, uint64(1000*1000))
		assert.Greater(t, in.DeliveryRate, uint64(0))
	}
}

var data1000 = data(1000, 0)

// A pacing timer that wakes late shortens the next gap by its lateness, at
// most by half a gap (Linux's credit for OS jitter), so the rate achieved
// keeps to the rate asked for.
func TestPacingCreditsTimerLateness(t *testing.T) {
	cfg := plainConfig()
	cfg.SendBufferSize = 64 << 10
	h, f := fixedHarness(t, cfg, Segment{}, 100000)
	f.rate = 100000 // a 1000-byte segment every 10 ms
	t0 := h.now
	h.c.Write(data(5000, 0))
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 1000")
	// The timer for t0+10ms wakes 4 ms late: the next gap is 6 ms.
	h.now = t0 + 14*ms
	h.expect(h.output(), "[.] seq 2001 ack 5001 win 4096 len 1000")
	require.Equal(t, t0+20*ms, h.c.rate.pace.next)
	// On time: a full gap.
	h.now = t0 + 20*ms
	h.expect(h.output(), "[.] seq 3001 ack 5001 win 4096 len 1000")
	require.Equal(t, t0+30*ms, h.c.rate.pace.next)
	// 8 ms late: the gap shrinks by half of it at most, to 5 ms.
	h.now = t0 + 38*ms
	h.expect(h.output(), "[.] seq 4001 ack 5001 win 4096 len 1000")
	require.Equal(t, t0+43*ms, h.c.rate.pace.next)
}

// TestPacingCatchesUpShortGaps: at 10 MB/s a 1000-byte segment leaves every
// 100 µs. A pacing timer that wakes 450 µs late (Go timers on a busy core)
// sends at once the segments due meanwhile, five, and the departure clock
// stays on its 100 µs grid: the rate asked for is the rate achieved. With
// half a gap of credit only (Linux's rule, built for hrtimers) each late
// wake-up would cost its lateness, and the rate would fall to a fifth.
func TestPacingCatchesUpShortGaps(t *testing.T) {
	cfg := plainConfig()
	cfg.SendBufferSize = 64 << 10
	h, f := fixedHarness(t, cfg, Segment{}, 100000)
	f.rate = 10000000
	const us = Time(time.Microsecond)
	t0 := h.now
	h.c.Write(data(10000, 0))
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 1000")
	require.Equal(t, t0+100*us, h.c.rate.pace.next)
	h.now = t0 + 550*us
	h.expect(h.output(),
		"[.] seq 2001 ack 5001 win 4096 len 1000",
		"[.] seq 3001 ack 5001 win 4096 len 1000",
		"[.] seq 4001 ack 5001 win 4096 len 1000",
		"[.] seq 5001 ack 5001 win 4096 len 1000",
		"[.] seq 6001 ack 5001 win 4096 len 1000")
	require.Equal(t, t0+600*us, h.c.rate.pace.next, "back on the grid")
	// A wake-up 3 ms late makes good 1 ms (paceCatchUp), not all of it:
	// the clock restarts at 2600 µs, and the four segments left leave at
	// once, each 100 µs on it.
	h.now = t0 + 3600*us
	require.Len(t, h.output(), 4)
	require.Equal(t, t0+3000*us, h.c.rate.pace.next, "the departure clock")
}
