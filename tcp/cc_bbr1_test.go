package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// BBRv1 over the path of TestBBRGoodputAtLossWithGSO: it ignores random
// loss as Linux's tcp_bbr does, so it keeps near the link's rate at 0.5%
// and 2% loss where BBRv3 slides to its bw_lo: 48 MiB (about the 5 s of
// `ustack bench --path`), Startup and its queue drops included, 91.1 and
// 87.4 Mbit/s.
func TestBBR1GoodputAtLossWithGSO(t *testing.T) {
	const size = 48 << 20
	for _, loss := range []float64{0.005, 0.02} {
		la, lb := bottleneck(loss)
		lb.loss = loss
		n := bulk(t, "bbr1", size, 7, la, lb, func(c *Config) { c.GSOMaxSize = 65160 })
		in := n.conns[0].Info()
		mbps := float64(size) * 8 / time.Duration(n.now).Seconds() / 1e6
		t.Logf("loss %v: %.1f Mbit/s, retrans %d, rto %d, link %+v, bbr %+v", loss, mbps, in.TotalRetrans, in.RTOExpirations, la.stats, in.BBR)
		assert.GreaterOrEqual(t, mbps, 80.0, "loss %v", loss)
		require.NotNil(t, in.BBR, "Info (and ss -i) show bbr1's state")
		assert.Equal(t, "ProbeBW", in.BBR.Phase)
		assert.Equal(t, 2.0, in.BBR.CWndGain)
	}
}

func newBBR1Sim(t *testing.T, rtt time.Duration, perRound int, per uint64, seed uint64) (*bbrSim, *bbr1) {
	b := newBBR1(1448, 0, seed)
	return &bbrSim{t: t, cc: b, rtt: rtt, perRound: perRound, per: per}, b
}

// bbr1ToProbeBW runs Startup at rate until three rounds without growth
// and Drain until in flight is one BDP.
func bbr1ToProbeBW(t *testing.T, s *bbrSim, b *bbr1, rate uint64) {
	s.inflight = 800000
	require.True(t, s.until(rate, 100, func() bool { return b.mode == bbr1Drain }))
	s.inflight = uint32(b.inflight(b.maxBw(), 1))
	s.ack(false, rate)
	require.Equal(t, bbr1ProbeBW, b.mode)
}

// Startup paces and sizes cwnd at 2/ln2 until three rounds in a row grow
// max_bw less than 25% (a 25% growth restarts the count); Drain paces at
// ln2/2, keeping Startup's cwnd gain, until in flight is at most one BDP
// (with the quantization budget), and ProbeBW begins in a random phase
// other than the 0.75 one, with cwnd gain 2.
func TestBBR1StartupDrainProbeBW(t *testing.T) {
	s, b := newBBR1Sim(t, 40*time.Millisecond, 1, 14480, 1)
	s.inflight = 800000
	assert.Equal(t, bbr1Startup, b.mode)
	assert.Equal(t, 2.885, b.pacingGain)
	s.round(1e6) // full_bw = 1e6
	s.round(1e6)
	s.round(1e6)
	require.Equal(t, 2, b.fullBwCnt)
	s.round(1.25e6) // 25% more: the count restarts
	require.Equal(t, 0, b.fullBwCnt)
	s.round(1.25e6 - 1e3)
	s.round(1.25e6 - 1e3)
	require.Equal(t, bbr1Startup, b.mode)
	assert.Equal(t, 2.885, b.pacingGain)
	assert.Equal(t, 2.885, b.cwndGain)
	s.round(1.25e6 - 1e3)
	require.Equal(t, bbr1Drain, b.mode, "the third round without growth")
	assert.InDelta(t, 1/2.885, b.pacingGain, 1e-9)
	assert.Equal(t, 2.885, b.cwndGain, "Drain keeps cwnd")
	assert.Equal(t, bbrMul(1.25e6, 0.99/2.885), b.pacingRate)

	bdp := b.inflight(b.maxBw(), 1)
	assert.Equal(t, uint64(50000+3*2*1448+2*1448-50000%(2*1448)), bdp, "50 kB BDP, 3 TSO bursts, even segments")
	s.inflight = uint32(bdp + 1)
	s.ack(false, 1.25e6)
	require.Equal(t, bbr1Drain, b.mode)
	s.inflight = uint32(bdp)
	s.ack(false, 1.25e6)
	require.Equal(t, bbr1ProbeBW, b.mode)
	assert.Equal(t, 2.0, b.cwndGain)
	assert.Equal(t, bbr1PacingGain[b.cycleIdx], b.pacingGain)

	// The start phase is random over 1.25 and the cruise phases, never
	// 0.75.
	seen := map[int]bool{}
	for seed := uint64(1); seed < 200; seed++ {
		s, b := newBBR1Sim(t, 40*time.Millisecond, 1, 14480, seed*0x9e3779b97f4a7c15)
		bbr1ToProbeBW(t, s, b, 1e6)
		seen[b.cycleIdx] = true
	}
	assert.Equal(t, map[int]bool{0: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true}, seen)
}

// ProbeBW's phases last min_rtt; the 1.25 probe also needs in flight at
// 1.25 BDP (or a loss) to end, and the 0.75 drain ends early once in
// flight is down to one BDP.
func TestBBR1ProbeBWCycle(t *testing.T) {
	s, b := newBBR1Sim(t, 40*time.Millisecond, 4, 2000, 1)
	bbr1ToProbeBW(t, s, b, 1e6)
	bdp := uint32(b.inflight(b.maxBw(), 1))
	s.inflight = bdp + 1
	b.cycleIdx, b.cycleStamp = 7, s.now
	for range 4 { // 40 ms: not yet more than min_rtt
		s.ack(false, 1e6)
		require.Equal(t, 7, b.cycleIdx)
	}
	s.ack(false, 1e6)
	require.Equal(t, 0, b.cycleIdx, "after min_rtt")
	assert.Equal(t, 1.25, b.pacingGain)
	assert.Equal(t, bbrMul(1e6, 1.25*0.99), b.pacingRate)

	// The probe goes on past min_rtt until in flight reaches 1.25 BDP.
	for range 12 {
		s.ack(false, 1e6)
		require.Equal(t, 0, b.cycleIdx)
	}
	// In flight plus the TSO burst about to leave (bbr_packets_in_net_at_edt).
	probe := uint32(b.inflight(b.maxBw(), 1.25) - b.tsoGoal())
	s.inflight = probe - 1
	s.ack(false, 1e6)
	require.Equal(t, 0, b.cycleIdx)
	s.inflight = probe
	s.ack(false, 1e6)
	require.Equal(t, 1, b.cycleIdx)
	assert.Equal(t, 0.75, b.pacingGain)
	// 0.75 ends at one BDP in flight, before min_rtt.
	s.inflight = bdp + 1
	s.ack(false, 1e6)
	require.Equal(t, 1, b.cycleIdx)
	s.inflight = bdp
	s.ack(false, 1e6)
	require.Equal(t, 2, b.cycleIdx)
	assert.Equal(t, 1.0, b.pacingGain)

	// A loss ends a full-length probe without the 1.25 BDP.
	b.cycleIdx, b.cycleStamp, b.pacingGain = 0, s.now, 1.25
	for range 5 {
		s.ack(false, 1e6)
	}
	require.Equal(t, 0, b.cycleIdx)
	s.mod = func(rs *RateSample) { rs.NewlyLost = 1448 }
	s.ack(false, 1e6)
	require.Equal(t, 1, b.cycleIdx)
}

// ProbeRTT begins at the first ACK after 10 s without a lower RTT: cwnd
// is 4 segments until 200 ms after in flight reached it and a round has
// passed; then the window before ProbeRTT is back and ProbeBW resumes.
func TestBBR1ProbeRTT(t *testing.T) {
	s, b := newBBR1Sim(t, 40*time.Millisecond, 4, 2000, 1)
	bbr1ToProbeBW(t, s, b, 1e6)
	stamp := b.minRTTStamp
	require.Equal(t, Time(10*time.Millisecond), stamp, "the first sample")
	var last Time
	require.True(t, s.until(1e6, 100000, func() bool {
		if b.mode != bbr1ProbeRTT {
			last = s.now
			return false
		}
		return true
	}))
	assert.LessOrEqual(t, last, stamp.Add(10*time.Second))
	assert.Greater(t, s.now, stamp.Add(10*time.Second))
	const four = 4 * 1448
	assert.Equal(t, uint32(four), b.CWnd())
	assert.Equal(t, 1.0, b.pacingGain)
	assert.Equal(t, 1.0, b.cwndGain)
	prior := b.priorCwnd
	assert.Greater(t, prior, uint64(four))
	s.ack(false, 1e6)
	assert.False(t, b.probeRTTDoneSet, "in flight is not down to 4 segments yet")
	s.inflight = four
	s.ack(false, 1e6)
	require.True(t, b.probeRTTDoneSet)
	low := s.now
	require.True(t, s.until(1e6, 1000, func() bool {
		if b.mode == bbr1ProbeRTT {
			require.Equal(t, uint32(four), b.CWnd())
			return false
		}
		return true
	}))
	assert.Greater(t, s.now.Sub(low), 200*time.Millisecond)
	assert.LessOrEqual(t, s.now.Sub(low), 210*time.Millisecond)
	assert.Equal(t, bbr1ProbeBW, b.mode)
	target := b.quantizationBudget(b.bdp(b.bwEst(), 2) + b.ackAggregationCwnd())
	assert.Equal(t, min(prior+2000, target), b.cwnd, "the window before ProbeRTT, within ProbeBW's target")
	assert.Equal(t, s.now, b.minRTTStamp, "the next ProbeRTT in 10 s")
}

// Random loss (2%, below the policer detector's 20%) changes neither the
// model nor the pacing: cwnd loses the bytes lost and grows back to its
// target. Recovery's first round conserves packets (cwnd = in flight +
// acked), and its end restores the window from before it.
func TestBBR1IgnoresLossOutsideConservation(t *testing.T) {
	s, b := newBBR1Sim(t, 40*time.Millisecond, 4, 2000, 1)
	bbr1ToProbeBW(t, s, b, 1e6)
	s.inflight = uint32(b.inflight(b.maxBw(), 1))
	for range 40 {
		s.round(1e6)
	}
	bw, rtt := b.maxBw(), b.minRTT
	target := func() uint64 { return b.quantizationBudget(b.bdp(bw, 2) + b.ackAggregationCwnd()) }
	require.Equal(t, target(), b.cwnd)
	n := 0
	s.mod = func(rs *RateSample) {
		if n++; n%25 == 0 {
			rs.NewlyLost = 1448
		}
	}
	for range 200 {
		prev, lost := b.cwnd, uint64(0)
		if (n+1)%25 == 0 {
			lost = 1448
		}
		s.ack(false, 1e6)
		assert.Equal(t, bw, b.bwEst())
		assert.Equal(t, bbrMul(bw, b.pacingGain*0.99), b.pacingRate)
		assert.Equal(t, min(prev-lost+2000, target()), b.cwnd)
	}
	assert.Equal(t, rtt, b.minRTT)
	assert.False(t, b.ltUseBw)
	s.mod = nil

	// Recovery: one round of conservation from here.
	before := b.cwnd
	s.inflight = 30000
	s.ack(false, 1e6)
	b.OnEvent(s.now, CCEvent{Kind: CCRecoveryStart})
	assert.Equal(t, uint64(30000+2000), b.cwnd)
	s.ack(false, 1e6)
	assert.Equal(t, uint64(30000+2000), b.cwnd, "conservation: in flight + acked")
	s.inflight = 20000
	s.ack(false, 1e6)
	assert.Equal(t, uint64(30000+2000), b.cwnd, "conservation never shrinks cwnd")
	s.round(1e6) // the round ends: growth toward the target again
	assert.False(t, b.conservation)
	assert.Equal(t, uint64(30000+2000+4*2000), b.cwnd)
	b.OnEvent(s.now, CCEvent{Kind: CCRecoveryEnd})
	assert.Equal(t, before, b.cwnd, "restored")
	assert.Equal(t, bw, b.bwEst())
}

// A policer: two intervals of at least 4 rounds, each losing 20% or more
// and delivering at the same rate, make that rate the model's (lt_bw,
// pacing gain 1) for 48 rounds; then ProbeBW probes again.
func TestBBR1LongTermBwPolicer(t *testing.T) {
	s, b := newBBR1Sim(t, 40*time.Millisecond, 4, 2000, 1)
	bbr1ToProbeBW(t, s, b, 1e6)
	s.inflight = uint32(b.inflight(b.maxBw(), 1))
	var total uint64
	s.mod = func(rs *RateSample) {
		total += 1000 // a third of what is sent is lost
		rs.NewlyLost, rs.TotalLost = 1000, total
	}
	start := b.rttCnt
	require.True(t, s.until(1e6, 200, func() bool { return b.ltUseBw }))
	assert.Equal(t, uint64(8), b.rttCnt-start, "two intervals of 4 round starts (the first counts the round of the first loss)")
	// 4 × 2000 bytes delivered each 40 ms round.
	assert.InDelta(t, 200000, float64(b.ltBw), 200000*0.02)
	assert.Equal(t, b.ltBw, b.bwEst())
	assert.Equal(t, 1.0, b.pacingGain)
	assert.Equal(t, bbrMul(b.ltBw, 0.99), b.pacingRate)
	s.mod = nil
	start = b.rttCnt
	require.True(t, s.until(1e6, 1000, func() bool { return !b.ltUseBw }))
	assert.Equal(t, uint64(bbr1LtBwMaxRTTs), b.rttCnt-start)
	assert.Equal(t, bbr1ProbeBW, b.mode)
	assert.Equal(t, uint64(1e6), b.bwEst())
}
