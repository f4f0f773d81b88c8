package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bbrTransition is one state change seen by bbrTraceCC.
type bbrTransition struct {
	at       Time
	from, to bbrState
	rs       RateSample
	before   bbr // the state before the ACK (or event) that changed it
}

// bbrTraceCC is BBR recording its state changes, for the end-to-end tests.
type bbrTraceCC struct {
	*bbr
	log []bbrTransition
}

func (t *bbrTraceCC) OnAck(now Time, rs *RateSample) {
	before := *t.bbr
	t.bbr.OnAck(now, rs)
	if t.state != before.state {
		t.log = append(t.log, bbrTransition{at: now, from: before.state, to: t.state, rs: *rs, before: before})
	}
}

func (t *bbrTraceCC) OnEvent(now Time, ev CCEvent) {
	before := *t.bbr
	t.bbr.OnEvent(now, ev)
	if t.state != before.state {
		t.log = append(t.log, bbrTransition{at: now, from: before.state, to: t.state, before: before})
	}
}

var bbrTraces []*bbrTraceCC

func init() {
	RegisterCongestionControl("bbr-trace", func(cfg CCConfig) CongestionControl {
		tc := &bbrTraceCC{bbr: newBBR(cfg.MSS, cfg.Now, 12345)}
		bbrTraces = append(bbrTraces, tc)
		return tc
	})
}

// bottleneck is a 100 Mbit/s, 40 ms path with a one-BDP drop-tail queue
// and random loss on the data direction.
func bottleneck(loss float64) (*simLink, *simLink) {
	la := &simLink{delay: 20 * time.Millisecond, perByte: 80 * time.Nanosecond, maxQueue: 40 * time.Millisecond,
		loss: loss, splitGSO: true}
	lb := &simLink{delay: 20 * time.Millisecond}
	return la, lb
}

func TestBBRGoodputAtOnePercentLoss(t *testing.T) {
	const size = 16 << 20
	goodput := map[string]float64{}
	for _, cc := range []string{"cubic", "bbr"} {
		la, lb := bottleneck(0.01)
		n := bulk(t, cc, size, 7, la, lb, nil)
		in := n.conns[0].Info()
		secs := time.Duration(n.now).Seconds()
		goodput[cc] = float64(size) * 8 / secs / 1e6
		t.Logf("%s: %.1f Mbit/s (%v virtual), retrans %d, rto %d, link %+v, bbr %+v", cc, goodput[cc],
			time.Duration(n.now), in.Retransmits, in.RTOExpirations, la.stats, in.BBR)
		// No spurious retransmission: one per segment lost or dropped.
		require.LessOrEqual(t, int(in.Retransmits), la.stats.lost+la.stats.queueDrops)
		require.Zero(t, n.conns[1].Info().DSACKsSent)
	}
	assert.Greater(t, goodput["bbr"], 3*goodput["cubic"])
}

// bbrSim feeds a bbr synthetic rate samples in virtual time: rounds of
// perRound ACKs over rtt, each delivering per bytes; the first ACK of a
// round acknowledges a segment sent when the previous round began, so it
// starts a round (BBRUpdateRound), the others do not. cc is b, or the
// bbr1 of newBBR1Sim (b nil).
type bbrSim struct {
	t         *testing.T
	b         *bbr
	cc        CongestionControl
	now       Time
	rtt       time.Duration
	perRound  int
	per       uint64
	delivered uint64
	base      uint64 // delivered at the start of the current round
	inflight  uint32
	mod       func(rs *RateSample) // adjusts each sample
}

func newBBRSim(t *testing.T, rtt time.Duration, perRound int, per uint64) *bbrSim {
	b := newBBR(1448, 0, 12345)
	return &bbrSim{t: t, b: b, cc: b, rtt: rtt, perRound: perRound, per: per}
}

// ack is one ACK, at rate bytes/s; first starts a round.
func (s *bbrSim) ack(first bool, rate uint64) {
	if first {
		s.base = s.delivered
	}
	s.now = s.now.Add(s.rtt / time.Duration(s.perRound))
	s.delivered += s.per
	rs := RateSample{PriorDelivered: s.base, TotalDelivered: s.delivered, Delivered: s.delivered - s.base,
		RTT: s.rtt, MinRTT: s.rtt, InFlight: s.inflight, PriorInFlight: s.inflight, MSS: 1448, Acked: uint32(s.per)}
	rs.Interval = time.Duration(rs.Delivered * uint64(time.Second) / rate)
	require.Equal(s.t, rate, rs.DeliveryRate(), "the driver's sample is exact")
	if s.mod != nil {
		s.mod(&rs)
	}
	s.cc.OnAck(s.now, &rs)
}

// round runs one round trip of ACKs at rate.
func (s *bbrSim) round(rate uint64) {
	for i := 0; i < s.perRound; i++ {
		s.ack(i == 0, rate)
	}
}

// until runs rounds at rate until cond holds after an ACK, at most limit
// ACKs; it reports whether cond held.
func (s *bbrSim) until(rate uint64, limit int, cond func() bool) bool {
	for i := 0; i < limit; i++ {
		s.ack(i%s.perRound == 0, rate)
		if cond() {
			return true
		}
	}
	return false
}

// Startup ends after three round trips in a row whose delivery rate did
// not grow 25% over the baseline; growth of 25% restarts the count.
func TestBBRStartupExitsAfterThreeRoundsWithoutGrowth(t *testing.T) {
	s := newBBRSim(t, 40*time.Millisecond, 1, 14480)
	s.inflight = 800000
	b := s.b
	assert.Equal(t, bbrStartup, b.state)
	assert.Equal(t, 2.77, b.pacingGain)
	assert.Equal(t, 2.0, b.cwndGain)
	for _, r := range []uint64{1e6, 2e6, 4e6, 8e6} {
		s.round(r)
		require.Equal(t, bbrStartup, b.state)
		require.Equal(t, r, b.fullBw, "each doubling is a new baseline")
		require.Zero(t, b.fullBwCount)
	}
	s.round(9.05e6) // +13%
	s.round(9.05e6)
	assert.Equal(t, 2, b.fullBwCount)
	s.round(10e6) // exactly 1.25 * 8e6: growth, the count restarts
	assert.Equal(t, uint64(10e6), b.fullBw)
	assert.Zero(t, b.fullBwCount)
	s.round(11.584e6) // +15.8%
	s.round(11.584e6)
	require.Equal(t, bbrStartup, b.state, "two rounds without growth")
	s.round(11.584e6)
	assert.Equal(t, bbrDrain, b.state, "the third round without growth fills the pipe")
	assert.True(t, b.filledPipe)
	assert.Equal(t, uint64(10), b.roundCount)
	assert.Equal(t, 0.35, b.pacingGain)
	assert.Equal(t, 2.0, b.cwndGain)
	assert.Equal(t, uint64(11.584e6), b.maxBw)

	// Application-limited samples do not count as rounds without growth.
	s = newBBRSim(t, 40*time.Millisecond, 1, 14480)
	s.inflight = 800000
	s.round(1e6)
	s.mod = func(rs *RateSample) { rs.AppLimited = true }
	for i := 0; i < 5; i++ {
		s.round(1e6)
	}
	assert.Equal(t, bbrStartup, s.b.state)
	assert.Zero(t, s.b.fullBwCount)
}

// Startup also ends on excessive loss: a round in recovery with at least
// six loss events and more than 2% of the flight lost.
func TestBBRStartupExitsOnExcessiveLoss(t *testing.T) {
	s := newBBRSim(t, 40*time.Millisecond, 8, 14480)
	s.inflight = 800000
	b := s.b
	s.round(1e6)
	s.round(2e6)
	s.round(4e6)
	b.OnEvent(s.now, CCEvent{Kind: CCRecoveryStart, InFlight: 400000})
	// Six ACKs with loss in a round, the flight's loss at 2% exactly:
	// not yet excessive.
	s.mod = func(rs *RateSample) { rs.NewlyLost, rs.TxInFlight, rs.LostSinceSent = 1448, 400000, 8000 }
	s.round(8e6)
	s.round(16e6)
	require.Equal(t, bbrStartup, b.state)
	// The next round start judges a round of 8 loss events, with this
	// ACK's sample above 2%.
	s.mod = func(rs *RateSample) { rs.NewlyLost, rs.TxInFlight, rs.LostSinceSent = 1448, 400000, 8001 }
	s.ack(true, 16e6)
	assert.Equal(t, bbrDrain, b.state)
	assert.True(t, b.filledPipe)
	assert.Less(t, b.fullBwCount, 3, "not by the bandwidth plateau")
	// inflight_hi = max(BDP, the latest round's delivered).
	assert.Equal(t, max(bbrBytes(16e6, 40*time.Millisecond), b.inflightLatest), b.inflightHi)
}

// bbrToDrain runs a sim through Startup at a plateau of rate.
func bbrToDrain(t *testing.T, s *bbrSim, rate uint64) {
	t.Helper()
	for r := rate / 8; r < rate; r *= 2 {
		s.round(r)
	}
	for i := 0; i < 4 && s.b.state == bbrStartup; i++ {
		s.round(rate)
	}
	require.Equal(t, bbrDrain, s.b.state)
}

// Drain ends at the first ACK that leaves at most the estimated BDP in
// flight (BBRInflight(bw, 1): here bw·min_rtt = 10 MB/s · 40 ms, above the
// quantization budget). That also meets ProbeBW_DOWN's goal, so the same
// ACK moves on to CRUISE, as the draft's order of checks has it.
func TestBBRDrainExitsAtBDP(t *testing.T) {
	s := newBBRSim(t, 40*time.Millisecond, 4, 15000)
	s.inflight = 1200000
	bbrToDrain(t, s, 10e6)
	b := s.b
	const bdp = 400000
	require.Equal(t, uint64(bdp), b.inflight(b.bw, 1))
	for in := uint32(1100000); in > bdp; in -= 100000 {
		s.inflight = in
		s.ack(false, 10e6)
		require.Equal(t, bbrDrain, b.state, "in flight %d", in)
	}
	s.inflight = bdp + 1
	s.ack(false, 10e6)
	require.Equal(t, bbrDrain, b.state)
	s.inflight = bdp
	s.ack(false, 10e6)
	assert.Equal(t, bbrProbeBWCruise, b.state)
	assert.Equal(t, s.now, b.cycleStamp, "ProbeBW_DOWN started the cycle at this ACK")
	assert.Equal(t, 1.0, b.pacingGain)
	assert.Equal(t, 2.0, b.cwndGain)
	assert.Equal(t, uint64(10e6*0.99), b.pacingRate)
}

// ProbeBW goes DOWN → CRUISE (in flight at most the BDP) → REFILL (after
// bw_probe_wait, 2-3 s, or the Reno-coexistence rounds) → UP (after one
// round) → DOWN (bandwidth stopped growing for three rounds); the max-bw
// filter spans two cycles.
func TestBBRProbeBWCycle(t *testing.T) {
	t.Run("wall_clock", func(t *testing.T) {
		// 100 ms RTT: 63 Reno rounds take 6.3 s, the 2-3 s wait comes first.
		s := newBBRSim(t, 100*time.Millisecond, 4, 15000)
		s.inflight = 3000000
		bbrToDrain(t, s, 10e6)
		b := s.b
		const bdp = 1000000
		s.inflight = bdp
		s.ack(false, 10e6)
		require.Equal(t, bbrProbeBWCruise, b.state)
		down := b.cycleStamp
		wait := b.bwProbeWait
		require.True(t, wait >= 2*time.Second && wait < 3*time.Second, "bw_probe_wait %v", wait)
		require.True(t, s.until(10e6, 1000, func() bool { return b.state != bbrProbeBWCruise }))
		assert.Equal(t, bbrProbeBWRefill, b.state)
		assert.Greater(t, s.now.Sub(down), wait)
		assert.LessOrEqual(t, s.now.Sub(down), wait+25*time.Millisecond, "at the first ACK after the wait")
		assert.Less(t, b.roundsSinceProbe, uint64(63))
		assert.Equal(t, 1.0, b.pacingGain)
		// REFILL → UP at the next round start.
		refillRound := b.roundCount
		require.True(t, s.until(10e6, 100, func() bool { return b.state != bbrProbeBWRefill }))
		assert.Equal(t, bbrProbeBWUp, b.state)
		assert.Equal(t, refillRound+1, b.roundCount)
		assert.Equal(t, 1.25, b.pacingGain)
		assert.Equal(t, 2.25, b.cwndGain)
		assert.True(t, b.bwProbeSamples)
		// UP finds 12 MB/s (+20%: not growth by 25%), then no more:
		// DOWN after three rounds without growth.
		upRound, upCycle := b.roundCount, b.cycleCount
		require.True(t, s.until(12e6, 100, func() bool { return b.state != bbrProbeBWUp }))
		assert.Equal(t, bbrProbeBWDown, b.state)
		assert.Equal(t, upRound+3, b.roundCount)
		assert.Equal(t, uint64(12e6), b.maxBw)
		assert.Equal(t, 0.9, b.pacingGain)
		// DOWN → CRUISE once in flight <= BDP (now 12 MB/s · 100 ms).
		s.inflight = 1200001
		s.ack(false, 10e6)
		require.Equal(t, bbrProbeBWDown, b.state)
		s.inflight = 1200000
		s.ack(false, 10e6)
		require.Equal(t, bbrProbeBWCruise, b.state)
		// The 12 MB/s sample stays in the filter for this cycle and
		// the next, then ages out.
		// (A ProbeRTT comes in between: in flight follows its window.)
		s.inflight = bdp
		follow := func(n uint64) func() bool {
			return func() bool {
				s.inflight = bdp
				if b.state == bbrProbeRTT {
					s.inflight = uint32(b.probeRTTCwnd())
				}
				return b.cycleCount == n
			}
		}
		cycle := upCycle
		require.Equal(t, cycle, b.cycleCount, "the filter advances a round after DOWN began")
		require.True(t, s.until(10e6, 10000, follow(cycle+1)))
		assert.Equal(t, uint64(12e6), b.maxBw, "one cycle later")
		require.True(t, s.until(10e6, 10000, follow(cycle+2)))
		assert.Equal(t, uint64(10e6), b.maxBw, "two cycles later")
	})
	t.Run("reno_rounds", func(t *testing.T) {
		// 100 kB/s · 100 ms: a BDP of 10 kB, 6 segments, so REFILL
		// comes after 6 rounds, long before 2 s.
		s := newBBRSim(t, 100*time.Millisecond, 2, 1000)
		s.inflight = 30000
		bbrToDrain(t, s, 1e5)
		b := s.b
		s.inflight = 9000
		require.True(t, s.until(1e5, 10, func() bool { return b.state == bbrProbeBWCruise }))
		down := b.cycleStamp
		require.Equal(t, uint64(6), b.targetInflight()/1448)
		require.True(t, s.until(1e5, 100, func() bool { return b.state != bbrProbeBWCruise }))
		assert.Equal(t, bbrProbeBWRefill, b.state)
		assert.Equal(t, uint64(6), b.roundsSinceProbe)
		assert.Less(t, s.now.Sub(down), time.Second)
	})
}

// ProbeRTT comes 5 s after probe_rtt_min_delay was last refreshed, holds
// cwnd at BBRProbeRTTCwnd (here 4 segments: half of a 4 kB BDP is less)
// for at least 200 ms and one round at that window, then goes back to
// ProbeBW (CRUISE) with the window restored. min_rtt itself expires after
// 10 s.
func TestBBRProbeRTT(t *testing.T) {
	s := newBBRSim(t, 40*time.Millisecond, 4, 1000)
	s.inflight = 12000
	bbrToDrain(t, s, 1e5)
	b := s.b
	firstRTT := b.probeRTTStamp
	require.Equal(t, Time(10*time.Millisecond), firstRTT, "stamped by the first sample")
	s.inflight = 8000
	var last Time
	require.True(t, s.until(1e5, 10000, func() bool {
		if b.state != bbrProbeRTT {
			last = s.now
			return false
		}
		return true
	}))
	assert.LessOrEqual(t, last, firstRTT.Add(5*time.Second))
	assert.Greater(t, s.now, firstRTT.Add(5*time.Second))
	const minPipe = 4 * 1448
	assert.Equal(t, uint64(minPipe), b.probeRTTCwnd())
	assert.Equal(t, uint32(minPipe), b.CWnd(), "4 segments from the first ACK in ProbeRTT")
	assert.Equal(t, 1.0, b.pacingGain)
	assert.Greater(t, b.priorCwnd, uint64(minPipe))
	// In flight drops to the ProbeRTT window: 200 ms and a round begin.
	s.inflight = minPipe
	s.ack(false, 1e5)
	require.True(t, b.probeRTTDoneSet)
	low := s.now
	require.True(t, s.until(1e5, 1000, func() bool {
		if b.state == bbrProbeRTT {
			require.Equal(t, uint32(minPipe), b.CWnd())
			return false
		}
		return true
	}))
	assert.Greater(t, s.now.Sub(low), 200*time.Millisecond)
	assert.LessOrEqual(t, s.now.Sub(low), 210*time.Millisecond, "at the first ACK after 200 ms")
	assert.Equal(t, bbrProbeBWCruise, b.state)
	assert.Greater(t, b.CWnd(), uint32(minPipe), "the window is restored")
	assert.Equal(t, s.now, b.probeRTTStamp, "the next ProbeRTT is 5 s from now")

	// min_rtt: a longer RTT replaces it only once it is 10 s old.
	// (ProbeRTT's 5 s refresh of probe_rtt_min_delay renews the 40 ms
	// min_rtt's stamp once before 60 ms samples reach it.)
	s.rtt = 60 * time.Millisecond
	var stamp Time
	require.True(t, s.until(1e5, 100000, func() bool {
		if b.minRTT == 40*time.Millisecond {
			stamp = b.minRTTStamp
			return false
		}
		return true
	}))
	assert.Greater(t, s.now, stamp.Add(10*time.Second))
	assert.LessOrEqual(t, s.now, stamp.Add(10*time.Second+15*time.Millisecond))
	assert.Equal(t, 60*time.Millisecond, b.minRTT)
}

// A probe that loses more than BBRLossThresh (2%) of its flight in
// ProbeBW_UP sets inflight_hi = max(tx_in_flight, β·target) and goes DOWN;
// cwnd then stays within inflight_hi (and 85% of it in CRUISE).
func TestBBRLossInProbeUpBoundsInflightHi(t *testing.T) {
	s := newBBRSim(t, 40*time.Millisecond, 4, 15000)
	s.inflight = 1200000
	bbrToDrain(t, s, 10e6)
	b := s.b
	s.inflight = 400000
	require.True(t, s.until(10e6, 100000, func() bool { return b.state == bbrProbeBWUp }))
	require.Equal(t, uint64(bbrInfinity), b.inflightHi)
	s.mod = func(rs *RateSample) { rs.TxInFlight, rs.LostSinceSent, rs.NewlyLost = 500000, 10000, 1448 }
	s.ack(false, 10e6)
	require.Equal(t, bbrProbeBWUp, b.state, "2%% exactly is tolerated")
	require.Equal(t, uint64(bbrInfinity), b.inflightHi)
	s.mod = func(rs *RateSample) { rs.TxInFlight, rs.LostSinceSent, rs.NewlyLost = 500000, 10001, 1448 }
	s.ack(false, 10e6)
	assert.Equal(t, bbrProbeBWDown, b.state)
	assert.Equal(t, uint64(500000), b.inflightHi, "max(500000, 0.7 * min(BDP 400000, cwnd))")
	assert.False(t, b.bwProbeSamples)
	assert.LessOrEqual(t, b.cwnd, uint64(500000))
	s.mod = nil
	require.True(t, s.until(10e6, 100, func() bool { return b.state == bbrProbeBWCruise }))
	s.ack(false, 10e6)
	assert.LessOrEqual(t, b.cwnd, uint64(500000-75000), "inflight_hi less 15% headroom")
}

// BBRNoteLoss (draft §5.5.10.2): the first loss of a round restarts the
// loss round, so the cut of bw_lo and inflight_lo waits for the ACK of
// data sent after the loss and is bounded below by the best rate and volume
// delivered over that whole round trip (bw_latest, inflight_latest), not by
// the few samples left in the round the loss fell into.
func TestBBRLossRoundRestartsAtFirstLoss(t *testing.T) {
	s := newBBRSim(t, 40*time.Millisecond, 4, 15000)
	s.inflight = 1200000
	bbrToDrain(t, s, 10e6)
	b := s.b
	s.inflight = 400000
	s.ack(false, 10e6)
	require.Equal(t, bbrProbeBWCruise, b.state)
	require.Equal(t, uint64(bbrInfinity), b.bwLo)
	// From here each ACK's sample spans the round trip of deliveries
	// before it (an ACK clock: the segment it acknowledges left when the
	// ACK one round earlier came), at rate, with lost bytes newly lost.
	const perRound = 4 * 15000
	ack := func(rate uint64, lost uint32) {
		s.now = s.now.Add(10 * time.Millisecond)
		s.delivered += 15000
		rs := RateSample{PriorDelivered: s.delivered - perRound, TotalDelivered: s.delivered, Delivered: perRound,
			Interval: time.Duration(perRound * uint64(time.Second) / rate), RTT: s.rtt, MinRTT: s.rtt,
			InFlight: s.inflight, PriorInFlight: s.inflight, MSS: 1448, Acked: 15000, NewlyLost: lost}
		b.OnAck(s.now, &rs)
	}
	for i := 0; i < 6; i++ {
		ack(8e6, 0)
	}
	ack(8e6, 1448)
	lossAt := s.delivered
	assert.Equal(t, lossAt, b.lossRoundDelivered, "the loss starts a loss round")
	assert.True(t, b.lossInRound)
	// The round trip after the loss: one ACK in it carries a 9 MB/s
	// sample; until the ACK of data sent after the loss, nothing is cut.
	for i, rate := range []uint64{8e6, 9e6, 8e6} {
		ack(rate, 0)
		require.Equal(t, uint64(bbrInfinity), b.bwLo, "ACK %d after the loss", i+1)
		require.Equal(t, uint64(bbrInfinity), b.inflightLo)
	}
	ack(8e6, 0) // PriorDelivered = lossAt: the loss round ends
	assert.Equal(t, uint64(9e6), b.bwLo, "max(bw_latest over the round, 0.7·max_bw)")
	assert.Equal(t, b.bwLo, b.bw)
	assert.False(t, b.lossInRound)
	// The next round trip has no loss: no further cut.
	for i := 0; i < 8; i++ {
		ack(8e6, 0)
	}
	assert.Equal(t, uint64(9e6), b.bwLo)
}
