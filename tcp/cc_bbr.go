package tcp

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// BBR congestion control as specified by draft-ietf-ccwg-bbr-02 (BBRv3), on
// the public CongestionControl interface: a model of the path (max_bw over
// the last two ProbeBW cycles, min_rtt over 10 s) sets the pacing rate and
// cwnd; the state machine Startup → Drain → ProbeBW (DOWN, CRUISE, REFILL,
// UP) ↔ ProbeRTT probes the model; loss bounds it (inflight_hi when a probe
// loses more than 2% of a flight, bw_lo/inflight_lo multiplicatively
// each round with loss outside probing). Function and field names follow
// the draft's pseudocode (BBRUpdateMaxBw → updateMaxBw, BBR.inflight_hi →
// inflightHi). Only loss is a congestion signal: CCECNEcho (an RFC 3168
// ECN-Echo) is ignored, as Linux mainline's tcp_bbr ignores TCP_CA_CWR; the
// engine still sends CWR. BBRv3's ECN response is meant for L4S-style
// shallow-threshold marking with per-packet CE counts (AccECN), which
// classic ECN's one bit per window does not give.

// bbrState is BBR.state.
type bbrState uint8

// BBR states (draft §4.1).
const (
	bbrStartup bbrState = iota
	bbrDrain
	bbrProbeBWDown
	bbrProbeBWCruise
	bbrProbeBWRefill
	bbrProbeBWUp
	bbrProbeRTT
)

// String returns the draft's name of the state.
func (s bbrState) String() string {
	switch s {
	case bbrStartup:
		return "Startup"
	case bbrDrain:
		return "Drain"
	case bbrProbeBWDown:
		return "ProbeBW_DOWN"
	case bbrProbeBWCruise:
		return "ProbeBW_CRUISE"
	case bbrProbeBWRefill:
		return "ProbeBW_REFILL"
	case bbrProbeBWUp:
		return "ProbeBW_UP"
	case bbrProbeRTT:
		return "ProbeRTT"
	}
	return "?"
}

// bbrAckPhase is BBR.ack_phase (which ACKs carry samples of a bandwidth
// probe).
type bbrAckPhase uint8

const (
	bbrAcksInit bbrAckPhase = iota
	bbrAcksRefilling
	bbrAcksProbeStarting
	bbrAcksProbeFeedback
	bbrAcksProbeStopping
)

// The draft's constants (§2.7 and the sections that use them).
const (
	bbrStartupPacingGain = 2.77 // 4*ln(2)
	bbrStartupCwndGain   = 2.0
	bbrDrainPacingGain   = 0.35
	bbrDefaultCwndGain   = 2.0
	bbrProbeDownGain     = 0.90
	bbrProbeUpPacingGain = 1.25
	bbrProbeUpCwndGain   = 2.25
	bbrProbeRTTCwndGain  = 0.5
	bbrPacingMargin      = 0.99 // BBRPacingMarginPercent = 1
	bbrLossThresh        = 0.02
	bbrBeta              = 0.7
	bbrHeadroom          = 0.15
	bbrMinPipeSegs       = 4 // BBRMinPipeCwnd, in segments
	bbrFullBWThresh      = 1.25
	bbrFullBWCount       = 3
	bbrStartupFullLoss   = 6 // BBRStartupFullLossCnt
	bbrMaxBwFilterLen    = 2 // ProbeBW cycles
	bbrExtraAckedLen     = 10
	bbrMinRTTFilterLen   = 10 * time.Second
	bbrProbeRTTInterval  = 5 * time.Second
	bbrProbeRTTDuration  = 200 * time.Millisecond
	bbrMaxProbeUpRounds  = 30
	bbrRenoMaxRounds     = 63
	bbrInfinity          = math.MaxUint64
)

// ccNameBBR is BBR's registered name.
const ccNameBBR = "bbr"

// bbrSeed makes each connection's probe timing differ (BBRPickProbeWait's
// randomness) without a clock or a global RNG.
var bbrSeed atomic.Uint64

// bbr is one connection's BBR.
type bbr struct {
	mss uint32
	iw  uint32

	state      bbrState
	pacingGain float64
	cwndGain   float64
	cwnd       uint64
	pacingRate uint64 // bytes per second
	sendQuant  uint64
	priorCwnd  uint64

	// Model.
	bw, maxBw, bwLo uint64 // bytes per second; bwLo bbrInfinity = unset
	bwHi            [2]uint64
	cycleCount      uint64
	minRTT          time.Duration // 0 = none yet (the draft's Infinity)
	minRTTStamp     Time
	probeRTTMin     time.Duration // BBR.probe_rtt_min_delay
	probeRTTStamp   Time
	probeRTTExpired bool
	hasRTT          bool
	extraAcked      bbrMaxFilter
	extraAckedStart Time
	extraAckedDlvd  uint64
	inflightHi      uint64 // bbrInfinity = unset
	inflightLo      uint64

	// Round counting (by delivered bytes).
	delivered          uint64 // C.delivered as of the last ACK
	nextRoundDelivered uint64
	roundCount         uint64
	roundStart         bool
	roundsSinceProbe   uint64

	// Startup and full pipe.
	filledPipe     bool
	fullBw         uint64
	fullBwCount    int
	fullBwNow      bool
	lossEventsInRd int

	// Congestion signals.
	lossRoundDelivered uint64
	lossRoundStart     bool
	lossInRound        bool
	bwLatest           uint64
	inflightLatest     uint64

	// ProbeBW.
	ackPhase       bbrAckPhase
	cycleStamp     Time
	bwProbeWait    time.Duration
	bwProbeSamples bool
	probeUpCnt     uint64 // bytes acked per segment of inflight_hi growth
	probeUpRounds  int
	probeUpAcks    uint64

	// ProbeRTT.
	probeRTTDone      Time
	probeRTTDoneSet   bool
	probeRTTRoundDone bool
	idleRestart       bool
	appLimitedMark    uint64 // delivered mark of MarkConnectionAppLimited

	// Loss recovery.
	inRecovery    bool
	conservation  bool
	rtoMark       uint64 // delivered bytes that end RTO recovery, 0 = none
	lastInFlight  uint32
	newlyAcked    uint64
	newlyLost     uint64
	cwndLimited   bool
	sampleApp     bool
	sampleRate    uint64
	sampleDlvd    uint64
	rng           uint64
	lastTxInFlt   uint64
	lastLostSince uint64
}

func newBBR(mss uint32, now Time, seed uint64) *bbr {
	b := &bbr{mss: mss, iw: ccInitialWindow(mss), rng: seed | 1}
	b.cwnd = uint64(b.iw)
	b.bwLo, b.inflightHi, b.inflightLo = bbrInfinity, bbrInfinity, bbrInfinity
	b.probeRTTStamp, b.minRTTStamp = now, now
	b.extraAckedStart = now
	b.initPacingRate(0)
	b.enterStartup()
	return b
}

// rand returns the next value of the connection's generator.
func (b *bbr) rand() uint64 { return xorshift64(&b.rng) }

// xorshift64 advances the xorshift64 generator state s (non-zero) and
// returns its next value.
func xorshift64(s *uint64) uint64 {
	*s ^= *s << 13
	*s ^= *s >> 7
	*s ^= *s << 17
	return *s
}

// bbrMul is x*g, saturating.
func bbrMul(x uint64, g float64) uint64 {
	v := float64(x) * g
	if v >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(v)
}

// bbrBytes is rate (bytes/s) times d in bytes, saturating.
func bbrBytes(rate uint64, d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(rate, uint64(d))
	if hi >= uint64(time.Second) {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, uint64(time.Second))
	return q
}

// initPacingRate is BBRInitPacingRate: StartupPacingGain * InitialCwnd /
// (SRTT, or 1 ms before an RTT sample).
func (b *bbr) initPacingRate(rtt time.Duration) {
	if rtt <= 0 {
		rtt = time.Millisecond
	}
	b.pacingRate = bbrMul(rateOf(uint64(b.iw), rtt), bbrStartupPacingGain)
}

func (b *bbr) minPipe() uint64 { return bbrMinPipeSegs * uint64(b.mss) }

func (b *bbr) isProbeBW() bool { return b.state >= bbrProbeBWDown && b.state <= bbrProbeBWUp }

// Name implements CongestionControl.
func (b *bbr) Name() string { return ccNameBBR }

// CWnd implements CongestionControl.
func (b *bbr) CWnd() uint32 { return ccSaturate(max(b.cwnd, uint64(b.mss))) }

// SSThresh implements CongestionControl: BBR has none.
func (b *bbr) SSThresh() uint32 { return math.MaxUint32 }

// PacingRate implements CongestionControl.
func (b *bbr) PacingRate() uint64 { return max(b.pacingRate, 1) }

// SetCWnd implements CongestionControl: BBR computes its own window in
// recovery (draft §4.6.4), so the engine's RFC 6582 inflation is ignored.
func (b *bbr) SetCWnd(uint32) {}

// OnAck implements CongestionControl: BBRUpdateOnACK (draft §4.2).
func (b *bbr) OnAck(now Time, rs *RateSample) {
	if rs.MSS > 0 {
		b.mss = rs.MSS
	}
	b.newlyAcked = rs.TotalDelivered - min(b.delivered, rs.TotalDelivered)
	b.delivered = rs.TotalDelivered
	b.newlyLost = uint64(rs.NewlyLost)
	b.lastInFlight = rs.InFlight
	b.cwndLimited = uint64(rs.PriorInFlight)+max(b.sendQuant, uint64(b.mss)) >= b.cwnd
	b.sampleRate = rs.DeliveryRate()
	b.sampleDlvd = rs.Delivered
	// A sample of a flight sent while MarkConnectionAppLimited held
	// (ProbeRTT) counts as application-limited.
	b.sampleApp = rs.AppLimited || (b.appLimitedMark != 0 && rs.PriorDelivered < b.appLimitedMark)
	if b.appLimitedMark != 0 && b.delivered > b.appLimitedMark {
		b.appLimitedMark = 0
	}
	b.lastTxInFlt, b.lastLostSince = uint64(rs.TxInFlight), rs.LostSinceSent
	if b.rtoMark != 0 && b.delivered >= b.rtoMark {
		// The flight outstanding at the RTO is delivered: the
		// recovery from it is over (BBRRestoreCwnd).
		b.rtoMark = 0
		b.restoreCwnd()
	}

	b.updateModelAndState(now, rs)
	b.updateControlParameters(rs)
}

// updateModelAndState is BBRUpdateModelAndState.
func (b *bbr) updateModelAndState(now Time, rs *RateSample) {
	if b.newlyLost > 0 {
		b.noteLoss()
	}
	b.updateLatestDeliverySignals(rs)
	b.updateCongestionSignals(rs)
	b.updateACKAggregation(now)
	b.checkFullBWReached()
	b.checkStartupDone()
	b.checkDrainDone(now)
	b.updateProbeBWCyclePhase(now)
	b.updateMinRTT(now, rs.RTT)
	b.checkProbeRTT(now)
	b.advanceLatestDeliverySignals()
	b.boundBWForModel()
}

// updateControlParameters is BBRUpdateControlParameters.
func (b *bbr) updateControlParameters(rs *RateSample) {
	b.setPacingRate()
	b.setSendQuantum()
	b.setCwnd()
}

// updateRound is BBRUpdateRound: a round trip ends when a segment sent
// after it began is delivered.
func (b *bbr) updateRound(rs *RateSample) {
	b.roundStart = false
	if b.newlyAcked > 0 && rs.PriorDelivered >= b.nextRoundDelivered {
		b.startRound()
		b.roundCount++
		b.roundsSinceProbe++
		b.roundStart = true
	}
}

// startRound is BBRStartRound.
func (b *bbr) startRound() { b.nextRoundDelivered = b.delivered }

// updateMaxBw is BBRUpdateMaxBw: the windowed max over the current and the
// previous ProbeBW cycle (BBRMaxBwFilterLen = 2).
func (b *bbr) updateMaxBw(rs *RateSample) {
	b.updateRound(rs)
	if b.sampleRate > 0 && (b.sampleRate >= b.maxBw || !b.sampleApp) {
		b.bwHi[1] = max(b.bwHi[1], b.sampleRate)
		b.maxBw = max(b.bwHi[0], b.bwHi[1])
	}
}

// advanceMaxBwFilter is BBRAdvanceMaxBwFilter: a new cycle of the filter.
func (b *bbr) advanceMaxBwFilter() {
	b.cycleCount++
	if b.bwHi[1] == 0 {
		return // no samples in this cycle: keep the older one
	}
	b.bwHi[0], b.bwHi[1] = b.bwHi[1], 0
	b.maxBw = b.bwHi[0]
}

// updateLatestDeliverySignals is BBRUpdateLatestDeliverySignals.
func (b *bbr) updateLatestDeliverySignals(rs *RateSample) {
	b.lossRoundStart = false
	b.bwLatest = max(b.bwLatest, b.sampleRate)
	b.inflightLatest = max(b.inflightLatest, b.sampleDlvd)
	if b.newlyAcked > 0 && rs.PriorDelivered >= b.lossRoundDelivered {
		b.lossRoundDelivered = b.delivered
		b.lossRoundStart = true
	}
}

// advanceLatestDeliverySignals is BBRAdvanceLatestDeliverySignals.
func (b *bbr) advanceLatestDeliverySignals() {
	if b.lossRoundStart {
		b.bwLatest = b.sampleRate
		b.inflightLatest = b.sampleDlvd
	}
}

// resetCongestionSignals is BBRResetCongestionSignals.
func (b *bbr) resetCongestionSignals() {
	b.lossInRound = false
	b.bwLatest = 0
	b.inflightLatest = 0
}

// noteLoss is BBRNoteLoss (draft §5.5.10.2), for the segments this ACK
// marked lost, before the ACK's rate sample is taken in (as Linux's
// bbr_skb_marked_lost runs before bbr_main): the first loss of a round
// restarts the loss round, so that bw_latest and inflight_latest, which
// bound the cut of bw_lo and inflight_lo, span a whole round trip of
// deliveries after the loss rather than the tail of one that ends at once.
func (b *bbr) noteLoss() {
	if !b.lossInRound {
		b.lossRoundDelivered = b.delivered
	}
	b.lossInRound = true
}

// updateCongestionSignals is BBRUpdateCongestionSignals.
func (b *bbr) updateCongestionSignals(rs *RateSample) {
	b.updateMaxBw(rs)
	if !b.lossRoundStart {
		return
	}
	b.adaptLowerBoundsFromCongestion()
	b.lossInRound = false
}

// isProbingBW is BBRIsProbingBW.
func (b *bbr) isProbingBW() bool {
	return b.state == bbrStartup || b.state == bbrProbeBWRefill || b.state == bbrProbeBWUp
}

// adaptLowerBoundsFromCongestion is BBRAdaptLowerBoundsFromCongestion:
// once per round with loss, outside bandwidth probing, bw_lo and
// inflight_lo fall to max(latest, β·previous).
func (b *bbr) adaptLowerBoundsFromCongestion() {
	if b.isProbingBW() || !b.lossInRound {
		return
	}
	if b.bwLo == bbrInfinity {
		b.bwLo = b.maxBw
	}
	if b.inflightLo == bbrInfinity {
		b.inflightLo = b.cwnd
	}
	b.bwLo = max(b.bwLatest, bbrMul(b.bwLo, bbrBeta))
	b.inflightLo = max(b.inflightLatest, bbrMul(b.inflightLo, bbrBeta))
}

// resetShortTermModel is BBRResetShortTermModel (BBRResetLowerBounds).
func (b *bbr) resetShortTermModel() { b.bwLo, b.inflightLo = bbrInfinity, bbrInfinity }

// boundBWForModel is BBRBoundBWForModel.
func (b *bbr) boundBWForModel() { b.bw = min(b.maxBw, b.bwLo) }

// updateACKAggregation is BBRUpdateACKAggregation: how far deliveries run
// ahead of bw over an interval, windowed max over 10 rounds.
func (b *bbr) updateACKAggregation(now Time) {
	interval := now.Sub(b.extraAckedStart)
	expected := bbrBytes(b.bw, interval)
	if b.extraAckedDlvd <= expected {
		b.extraAckedDlvd = 0
		b.extraAckedStart = now
		expected = 0
	}
	b.extraAckedDlvd += b.newlyAcked
	extra := min(b.extraAckedDlvd-expected, b.cwnd)
	b.extraAcked.update(b.roundCount, bbrExtraAckedLen, extra)
}

// resetFullBW is BBRResetFullBW.
func (b *bbr) resetFullBW() {
	b.fullBw, b.fullBwCount, b.fullBwNow = 0, 0, false
}

// checkFullBWReached is BBRCheckFullBWReached: the pipe is full after 3
// round trips whose delivery rate grew less than 25%.
func (b *bbr) checkFullBWReached() {
	if b.fullBwNow || !b.roundStart || b.sampleApp {
		return
	}
	if float64(b.sampleRate) >= float64(b.fullBw)*bbrFullBWThresh {
		b.resetFullBW()
		b.fullBw = b.sampleRate
		return
	}
	b.fullBwCount++
	b.fullBwNow = b.fullBwCount >= bbrFullBWCount
	if b.fullBwNow {
		b.filledPipe = true
	}
}

// isInflightTooHigh is IsInflightTooHigh: more than BBRLossThresh of the
// sampled flight was lost.
func (b *bbr) isInflightTooHigh() bool {
	return float64(b.lastLostSince) > float64(b.lastTxInFlt)*bbrLossThresh
}

// checkStartupHighLoss is BBRCheckStartupHighLoss: Startup also ends on a
// round in recovery with at least 6 loss events and a loss rate above 2%.
func (b *bbr) checkStartupHighLoss() {
	if b.filledPipe || b.state != bbrStartup {
		return
	}
	if b.newlyLost > 0 {
		b.lossEventsInRd++
	}
	if b.lossRoundStart && b.inRecovery && b.lossEventsInRd >= bbrStartupFullLoss && b.isInflightTooHigh() {
		b.inflightHi = max(b.bdpMultiple(b.maxBw, 1), b.inflightLatest)
		b.filledPipe = true
	}
	if b.lossRoundStart {
		b.lossEventsInRd = 0
	}
}

// checkStartupDone is BBRCheckStartupDone.
func (b *bbr) checkStartupDone() {
	b.checkStartupHighLoss()
	if b.state == bbrStartup && b.filledPipe {
		b.enterDrain()
	}
}

func (b *bbr) enterStartup() {
	b.state = bbrStartup
	b.pacingGain, b.cwndGain = bbrStartupPacingGain, bbrStartupCwndGain
}

func (b *bbr) enterDrain() {
	b.state = bbrDrain
	b.pacingGain, b.cwndGain = bbrDrainPacingGain, bbrStartupCwndGain
}

// checkDrainDone is BBRCheckDrainDone: Drain ends once in flight is at
// most the estimated BDP.
func (b *bbr) checkDrainDone(now Time) {
	if b.state == bbrDrain && uint64(b.lastInFlight) <= b.inflight(b.bw, 1) {
		b.startProbeBWDown(now)
	}
}

// bdpMultiple is BBRBDPMultiple: gain·bw·min_rtt (the initial window
// before an RTT sample).
func (b *bbr) bdpMultiple(bw uint64, gain float64) uint64 {
	if !b.hasRTT {
		return uint64(b.iw)
	}
	return bbrMul(bbrBytes(bw, b.minRTT), gain)
}

// bdp is BBR.bdp for the current bw.
func (b *bbr) bdp() uint64 { return b.bdpMultiple(b.bw, 1) }

// quantizationBudget is BBRQuantizationBudget.
func (b *bbr) quantizationBudget(inflight uint64) uint64 {
	inflight = max(inflight, 3*b.sendQuant, b.minPipe())
	if b.state == bbrProbeBWUp {
		inflight += 2 * uint64(b.mss)
	}
	return inflight
}

// inflight is BBRInflight(bw, gain).
func (b *bbr) inflight(bw uint64, gain float64) uint64 {
	return b.quantizationBudget(b.bdpMultiple(bw, gain))
}

// inflightWithHeadroom is BBRInflightWithHeadroom: inflight_hi less 15%.
func (b *bbr) inflightWithHeadroom() uint64 {
	if b.inflightHi == bbrInfinity {
		return bbrInfinity
	}
	headroom := max(uint64(b.mss), bbrMul(b.inflightHi, bbrHeadroom))
	if headroom > b.inflightHi {
		return b.minPipe()
	}
	return max(b.inflightHi-headroom, b.minPipe())
}

// targetInflight is BBRTargetInflight.
func (b *bbr) targetInflight() uint64 { return min(b.bdp(), b.cwnd) }

// ProbeBW (draft §4.3.3).

func (b *bbr) startProbeBWDown(now Time) {
	b.resetCongestionSignals()
	b.probeUpCnt = bbrInfinity
	b.pickProbeWait()
	b.cycleStamp = now
	b.ackPhase = bbrAcksProbeStopping
	b.startRound()
	b.state = bbrProbeBWDown
	b.pacingGain, b.cwndGain = bbrProbeDownGain, bbrDefaultCwndGain
}

func (b *bbr) startProbeBWCruise() {
	b.state = bbrProbeBWCruise
	b.pacingGain, b.cwndGain = 1, bbrDefaultCwndGain
}

func (b *bbr) startProbeBWRefill() {
	b.resetShortTermModel()
	b.probeUpRounds, b.probeUpAcks = 0, 0
	b.ackPhase = bbrAcksRefilling
	b.startRound()
	b.state = bbrProbeBWRefill
	b.pacingGain, b.cwndGain = 1, bbrDefaultCwndGain
}

func (b *bbr) startProbeBWUp(now Time) {
	b.ackPhase = bbrAcksProbeStarting
	b.startRound()
	b.resetFullBW()
	b.fullBw = b.sampleRate
	b.cycleStamp = now
	b.state = bbrProbeBWUp
	b.pacingGain, b.cwndGain = bbrProbeUpPacingGain, bbrProbeUpCwndGain
	b.raiseInflightHiSlope()
}

// pickProbeWait is BBRPickProbeWait: 0 or 1 rounds, 2-3 s.
func (b *bbr) pickProbeWait() {
	b.roundsSinceProbe = b.rand() & 1
	b.bwProbeWait = 2*time.Second + time.Duration(b.rand()%uint64(time.Second))
}

func (b *bbr) hasElapsedInPhase(now Time, d time.Duration) bool {
	return now.Sub(b.cycleStamp) > d
}

// isRenoCoexistenceProbeTime is BBRIsRenoCoexistenceProbeTime: probe no
// later than a Reno flow would have grown its window back (one round per
// segment of the target, at most 63).
func (b *bbr) isRenoCoexistenceProbeTime() bool {
	rounds := min(b.targetInflight()/uint64(b.mss), bbrRenoMaxRounds)
	return b.roundsSinceProbe >= rounds
}

// checkTimeToProbeBW is BBRCheckTimeToProbeBW.
func (b *bbr) checkTimeToProbeBW(now Time) bool {
	if b.hasElapsedInPhase(now, b.bwProbeWait) || b.isRenoCoexistenceProbeTime() {
		b.startProbeBWRefill()
		return true
	}
	return false
}

// checkTimeToCruise is BBRCheckTimeToCruise.
func (b *bbr) checkTimeToCruise() bool {
	in := uint64(b.lastInFlight)
	if in > b.inflightWithHeadroom() {
		return false
	}
	return in <= b.inflight(b.maxBw, 1)
}

// isTimeToGoDown is BBRIsTimeToGoDown: ProbeBW_UP ends when bandwidth stops
// growing, unless inflight_hi is what holds it back.
func (b *bbr) isTimeToGoDown() bool {
	if b.cwndLimited && b.cwnd >= b.inflightHi {
		b.resetFullBW()
		b.fullBw = b.sampleRate
	} else if b.fullBwNow {
		return true
	}
	return false
}

// updateProbeBWCyclePhase is BBRUpdateProbeBWCyclePhase.
func (b *bbr) updateProbeBWCyclePhase(now Time) {
	if !b.filledPipe {
		return
	}
	if b.adaptUpperBounds(now) {
		return // it already started ProbeBW_DOWN
	}
	if !b.isProbeBW() {
		return
	}
	switch b.state {
	case bbrProbeBWDown:
		if b.checkTimeToProbeBW(now) {
			return
		}
		if b.checkTimeToCruise() {
			b.startProbeBWCruise()
		}
	case bbrProbeBWCruise:
		b.checkTimeToProbeBW(now)
	case bbrProbeBWRefill:
		// After one round of REFILL, start UP.
		if b.roundStart {
			b.bwProbeSamples = true
			b.startProbeBWUp(now)
		}
	case bbrProbeBWUp:
		if b.isTimeToGoDown() {
			b.startProbeBWDown(now)
		}
	}
}

// adaptUpperBounds is BBRAdaptUpperBounds; it reports whether it ended
// ProbeBW_UP because the probe lost too much.
func (b *bbr) adaptUpperBounds(now Time) bool {
	if b.ackPhase == bbrAcksProbeStarting && b.roundStart {
		b.ackPhase = bbrAcksProbeFeedback // samples of the probe begin
	}
	if b.ackPhase == bbrAcksProbeStopping && b.roundStart {
		// The samples of the probe are over.
		b.bwProbeSamples = false
		b.ackPhase = bbrAcksInit
		if b.isProbeBW() && !b.sampleApp {
			b.advanceMaxBwFilter()
		}
	}
	if b.isInflightTooHigh() {
		if b.bwProbeSamples {
			return b.handleInflightTooHigh(now)
		}
		return false
	}
	// The loss rate is safe: inflight_hi may rise.
	if b.inflightHi == bbrInfinity {
		return false
	}
	if b.lastTxInFlt > b.inflightHi {
		b.inflightHi = b.lastTxInFlt
	}
	if b.state == bbrProbeBWUp {
		b.probeInflightHiUpward()
	}
	return false
}

// handleInflightTooHigh is BBRHandleInflightTooHigh: a probe that lost more
// than 2% of its flight sets inflight_hi and stops.
func (b *bbr) handleInflightTooHigh(now Time) bool {
	b.bwProbeSamples = false
	if !b.sampleApp {
		b.inflightHi = max(b.lastTxInFlt, bbrMul(b.targetInflight(), bbrBeta))
	}
	if b.state == bbrProbeBWUp {
		b.startProbeBWDown(now)
		return true
	}
	return false
}

// raiseInflightHiSlope is BBRRaiseInflightHiSlope: inflight_hi grows by
// 1, 2, 4, ... segments per round while probing.
func (b *bbr) raiseInflightHiSlope() {
	growth := uint64(1) << b.probeUpRounds
	b.probeUpRounds = min(b.probeUpRounds+1, bbrMaxProbeUpRounds)
	b.probeUpCnt = max(b.cwnd/growth, uint64(b.mss))
}

// probeInflightHiUpward is BBRProbeInflightHiUpward.
func (b *bbr) probeInflightHiUpward() {
	if !b.cwndLimited || b.cwnd < b.inflightHi {
		return // inflight_hi is not what limits the flow
	}
	b.probeUpAcks += b.newlyAcked
	if b.probeUpAcks >= b.probeUpCnt {
		delta := b.probeUpAcks / b.probeUpCnt
		b.probeUpAcks -= delta * b.probeUpCnt
		b.inflightHi += delta * uint64(b.mss)
	}
	if b.roundStart {
		b.raiseInflightHiSlope()
	}
}

// ProbeRTT (draft §4.3.4).

// updateMinRTT is BBRUpdateMinRTT: probe_rtt_min_delay over 5 s, min_rtt
// over 10 s.
func (b *bbr) updateMinRTT(now Time, rtt time.Duration) {
	b.probeRTTExpired = now.After(b.probeRTTStamp.Add(bbrProbeRTTInterval))
	if rtt > 0 && (!b.hasRTT || rtt < b.probeRTTMin || b.probeRTTExpired) {
		if !b.hasRTT && b.bw == 0 {
			b.initPacingRate(rtt)
		}
		b.probeRTTMin, b.probeRTTStamp = rtt, now
		if !b.hasRTT {
			b.minRTT, b.minRTTStamp, b.hasRTT = rtt, now, true
		}
	}
	minRTTExpired := now.After(b.minRTTStamp.Add(bbrMinRTTFilterLen))
	if b.hasRTT && (b.probeRTTMin < b.minRTT || minRTTExpired) {
		b.minRTT, b.minRTTStamp = b.probeRTTMin, b.probeRTTStamp
	}
}

// checkProbeRTT is BBRCheckProbeRTT.
func (b *bbr) checkProbeRTT(now Time) {
	if b.state != bbrProbeRTT && b.probeRTTExpired && !b.idleRestart {
		b.enterProbeRTT()
		b.saveCwnd()
		b.probeRTTDoneSet = false
		b.ackPhase = bbrAcksProbeStopping
		b.startRound()
	}
	if b.state == bbrProbeRTT {
		b.handleProbeRTT(now)
	}
	if b.newlyAcked > 0 {
		b.idleRestart = false
	}
}

func (b *bbr) enterProbeRTT() {
	b.state = bbrProbeRTT
	b.pacingGain, b.cwndGain = 1, bbrProbeRTTCwndGain
}

// probeRTTCwnd is BBRProbeRTTCwnd: half a BDP, at least 4 segments.
func (b *bbr) probeRTTCwnd() uint64 {
	return max(b.bdpMultiple(b.bw, bbrProbeRTTCwndGain), b.minPipe())
}

// handleProbeRTT is BBRHandleProbeRTT.
func (b *bbr) handleProbeRTT(now Time) {
	// MarkConnectionAppLimited: the low rate of ProbeRTT says nothing
	// of the path.
	b.appLimitedMark = max(b.delivered+uint64(b.lastInFlight), 1)
	switch {
	case !b.probeRTTDoneSet && uint64(b.lastInFlight) <= b.probeRTTCwnd():
		// At least 200 ms and one round at the low window.
		b.probeRTTDone, b.probeRTTDoneSet = now.Add(bbrProbeRTTDuration), true
		b.probeRTTRoundDone = false
		b.startRound()
	case b.probeRTTDoneSet:
		if b.roundStart {
			b.probeRTTRoundDone = true
		}
		if b.probeRTTRoundDone {
			b.checkProbeRTTDone(now)
		}
	}
}

// checkProbeRTTDone is BBRCheckProbeRTTDone.
func (b *bbr) checkProbeRTTDone(now Time) {
	if b.probeRTTDoneSet && now.After(b.probeRTTDone) {
		b.probeRTTStamp = now // schedule the next ProbeRTT
		b.restoreCwnd()
		b.exitProbeRTT(now)
	}
}

// exitProbeRTT is BBRExitProbeRTT.
func (b *bbr) exitProbeRTT(now Time) {
	b.resetShortTermModel()
	if b.filledPipe {
		b.startProbeBWDown(now)
		b.startProbeBWCruise()
	} else {
		b.enterStartup()
	}
}

// Control parameters (draft §4.6).

// setPacingRate is BBRSetPacingRate: gain·bw less a 1% margin; before the
// pipe is full it only rises.
func (b *bbr) setPacingRate() {
	rate := bbrMul(b.bw, b.pacingGain*bbrPacingMargin)
	if rate > 0 && (b.filledPipe || rate > b.pacingRate) {
		b.pacingRate = rate
	}
}

// setSendQuantum is BBRSetSendQuantum: 1 ms at the pacing rate, within
// [2 MSS, 64 KiB].
func (b *bbr) setSendQuantum() {
	b.sendQuant = max(min(b.pacingRate/1000, 64<<10), 2*uint64(b.mss))
}

// maxInflight is BBRUpdateMaxInflight.
func (b *bbr) maxInflight() uint64 {
	in := b.bdpMultiple(b.bw, b.cwndGain)
	if in != math.MaxUint64 {
		in += b.extraAcked.get()
	}
	return b.quantizationBudget(in)
}

func (b *bbr) saveCwnd() {
	if !b.inRecovery && b.state != bbrProbeRTT {
		b.priorCwnd = b.cwnd
	} else {
		b.priorCwnd = max(b.priorCwnd, b.cwnd)
	}
}

func (b *bbr) restoreCwnd() { b.cwnd = max(b.cwnd, b.priorCwnd) }

// setCwnd is BBRSetCwnd.
func (b *bbr) setCwnd() {
	maxIn := b.maxInflight()
	// BBRModulateCwndForRecovery.
	if b.newlyLost > 0 {
		b.cwnd = max(b.cwnd-min(b.cwnd, b.newlyLost), uint64(b.mss))
	}
	if b.conservation {
		b.cwnd = max(b.cwnd, uint64(b.lastInFlight)+b.newlyAcked)
		if b.roundStart {
			b.conservation = false // one round of packet conservation
		}
	}
	if !b.conservation {
		switch {
		case b.filledPipe:
			b.cwnd = min(b.cwnd+b.newlyAcked, maxIn)
		case b.cwnd < maxIn || b.delivered < uint64(b.iw):
			b.cwnd += b.newlyAcked
		}
		b.cwnd = max(b.cwnd, b.minPipe())
	}
	// BBRBoundCwndForProbeRTT.
	if b.state == bbrProbeRTT {
		b.cwnd = min(b.cwnd, b.probeRTTCwnd())
	}
	// BBRBoundCwndForModel.
	limit := uint64(bbrInfinity)
	switch {
	case b.isProbeBW() && b.state != bbrProbeBWCruise:
		limit = b.inflightHi
	case b.state == bbrProbeRTT || b.state == bbrProbeBWCruise:
		limit = b.inflightWithHeadroom()
	}
	limit = max(min(limit, b.inflightLo), b.minPipe())
	b.cwnd = min(b.cwnd, limit)
}

// OnEvent implements CongestionControl (draft §4.6.4 for loss recovery,
// §4.6.2 for the restart from idle).
func (b *bbr) OnEvent(now Time, ev CCEvent) {
	switch ev.Kind {
	case CCRecoveryStart:
		b.saveCwnd()
		b.inRecovery = true
		b.cwnd = uint64(b.lastInFlight) + max(b.newlyAcked, uint64(b.mss))
		b.conservation = true
		b.startRound() // packet conservation for one round trip
	case CCRecoveryEnd:
		b.inRecovery = false
		b.conservation = false
		b.restoreCwnd()
	case CCTimeout:
		b.saveCwnd()
		b.inRecovery, b.conservation = false, false
		b.cwnd = uint64(b.mss)
		b.rtoMark = max(b.delivered+uint64(ev.InFlight), 1)
		b.startRound()
	case CCUndo:
		// Linux bbr_undo_cwnd: the slow-down was spurious, so the
		// full-pipe detector and the short-term loss bounds start over;
		// the window saved when the RTO struck comes back (bbr's
		// restore on leaving the Loss state).
		b.inRecovery, b.conservation = false, false
		b.restoreCwnd()
		b.fullBw, b.fullBwCount = 0, 0
		b.lossInRound = false
		b.resetShortTermModel()
	case CCTxStart:
		// BBRHandleRestartFromIdle.
		b.idleRestart = true
		b.extraAckedStart = now
		if b.isProbeBW() {
			if rate := bbrMul(b.bw, bbrPacingMargin); rate > 0 {
				b.pacingRate = rate
			}
		} else if b.state == bbrProbeRTT {
			b.checkProbeRTTDone(now)
		}
	}
}

// BBRInfo is the state of a BBR connection for Info and `ss -i` (Linux's
// tcp_bbr_info plus the phase and the loss bounds of BBRv3).
type BBRInfo struct {
	// Phase is the draft's state name: Startup, Drain, ProbeBW_DOWN,
	// ProbeBW_CRUISE, ProbeBW_REFILL, ProbeBW_UP or ProbeRTT.
	Phase string
	// BW is the bandwidth the model uses (BBR.bw = min(max_bw, bw_lo)),
	// MaxBW the windowed max of the delivery rate, in bytes per second.
	BW, MaxBW uint64
	// MinRTT is BBR.min_rtt (0 before the first sample).
	MinRTT               time.Duration
	PacingGain, CWndGain float64
	// InflightHi, InflightLo and BWLo are the loss bounds, 0 when unset.
	InflightHi, InflightLo, BWLo uint64
	// Rounds counts round trips; FilledPipe reports that Startup found
	// the bottleneck's bandwidth.
	Rounds     uint64
	FilledPipe bool
}

// BBRInfo returns the connection's BBR state.
func (b *bbr) BBRInfo() BBRInfo {
	unset := func(v uint64) uint64 {
		if v == bbrInfinity {
			return 0
		}
		return v
	}
	return BBRInfo{
		Phase: b.state.String(), BW: b.bw, MaxBW: b.maxBw, MinRTT: b.minRTT,
		PacingGain: b.pacingGain, CWndGain: b.cwndGain,
		InflightHi: unset(b.inflightHi), InflightLo: unset(b.inflightLo), BWLo: unset(b.bwLo),
		Rounds: b.roundCount, FilledPipe: b.filledPipe,
	}
}

// bbrInfoer is implemented by algorithms that report BBRInfo.
type bbrInfoer interface{ BBRInfo() BBRInfo }

// HandlesUndo implements CCUndoer.
func (b *bbr) HandlesUndo() bool { return true }

// newBBRCC is the registry's factory for "bbr".
func newBBRCC(cfg CCConfig) CongestionControl {
	return newBBR(cfg.MSS, cfg.Now, bbrConnSeed(cfg))
}

// bbrConnSeed is a connection's seed for BBR's randomness (bbr and bbr1).
func bbrConnSeed(cfg CCConfig) uint64 {
	return uint64(cfg.Now)*0x9e3779b97f4a7c15 ^ bbrSeed.Add(0x632be59bd9b4e019)
}

// bbrMaxFilter is a windowed max over a count (round trips), kept as the
// best, second-best and third-best samples of the window's sub-windows
// (Kathleen Nichols' algorithm, as Linux lib/minmax does it).
type bbrMaxFilter struct{ s [3]struct{ t, v uint64 } }

func (f *bbrMaxFilter) get() uint64 { return f.s[0].v }

func (f *bbrMaxFilter) reset(t, v uint64) {
	for i := range f.s {
		f.s[i].t, f.s[i].v = t, v
	}
}

// update adds sample v at t for a window of win and returns the max.
func (f *bbrMaxFilter) update(t, win, v uint64) uint64 {
	if v >= f.s[0].v || t-f.s[2].t > win {
		f.reset(t, v)
		return v
	}
	if v >= f.s[1].v {
		f.s[1].t, f.s[1].v = t, v
		f.s[2] = f.s[1]
	} else if v >= f.s[2].v {
		f.s[2].t, f.s[2].v = t, v
	}
	dt := t - f.s[0].t
	switch {
	case dt > win:
		// The best sample left the window: promote the others.
		f.s[0], f.s[1] = f.s[1], f.s[2]
		f.s[2].t, f.s[2].v = t, v
		if t-f.s[0].t > win {
			f.s[0], f.s[1] = f.s[1], f.s[2]
			f.s[2].t, f.s[2].v = t, v
		}
	case f.s[1].t == f.s[0].t && dt > win/4:
		// A quarter of the window passed: a second-best from the
		// second quarter.
		f.s[1].t, f.s[1].v = t, v
		f.s[2] = f.s[1]
	case f.s[2].t == f.s[1].t && dt > win/2:
		f.s[2].t, f.s[2].v = t, v
	}
	return f.s[0].v
}
