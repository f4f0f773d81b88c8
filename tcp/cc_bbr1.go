package tcp

import (
	"math"
	"time"
)

// BBRv1 as Linux's net/ipv4/tcp_bbr.c runs it (--cc bbr1), beside the
// draft's BBRv3 (--cc bbr, cc_bbr.go). The model is max_bw (a windowed max
// of delivery-rate samples over 10 round trips, bbrMaxFilter) and min_rtt
// (10 s); the modes are Startup (gain 2/ln2) → Drain (its inverse) →
// ProbeBW (an 8-phase pacing-gain cycle) ↔ ProbeRTT (cwnd 4 segments for
// 200 ms and a round). Loss is not a signal of the model: it lowers cwnd
// by the bytes lost, recovery's first round conserves packets, and the
// window before recovery comes back after it. The one use of loss is
// the long-term ("lt") bandwidth: a policer shows as two 4-to-16-round
// intervals with ≥ 20% loss and the same delivery rate, and BBR then paces
// at that rate for 48 rounds. ECN-Echo (CCECNEcho) is ignored, as tcp_bbr's
// cong_control leaves TCP_CA_CWR alone, and so is CCIdleRestart, as in
// bbr. Function names follow tcp_bbr.c
// (bbr_update_bw → updateBw); units are bytes and bytes per second.

// ccNameBBR1 is BBRv1's registered name.
const ccNameBBR1 = "bbr1"

// bbr1Mode is tcp_bbr.c's bbr_mode.
type bbr1Mode uint8

const (
	bbr1Startup bbr1Mode = iota
	bbr1Drain
	bbr1ProbeBW
	bbr1ProbeRTT
)

func (m bbr1Mode) String() string {
	return [...]string{"Startup", "Drain", "ProbeBW", "ProbeRTT"}[m]
}

// tcp_bbr.c's constants.
const (
	bbr1HighGain        = 2.885 // 2/ln(2): doubles the rate each round
	bbr1DrainGain       = 1 / bbr1HighGain
	bbr1CwndGain        = 2.0
	bbr1CycleLen        = 8
	bbr1CycleRand       = 7
	bbr1BwRTTs          = bbr1CycleLen + 2 // max_bw's window, rounds
	bbr1MinRTTWin       = 10 * time.Second
	bbr1ProbeRTTTime    = 200 * time.Millisecond
	bbr1CwndMinSegs     = 4
	bbr1FullBwThresh    = 1.25
	bbr1FullBwCnt       = 3
	bbr1MinTSORate      = 1200000 / 8 // bytes/s below which one segment a TSO burst
	bbr1LtIntvlMinRTTs  = 4
	bbr1LtLossThresh    = 50.0 / 256
	bbr1LtBwRatio       = 1.0 / 8
	bbr1LtBwDiff        = 4000 / 8 // bytes/s
	bbr1LtBwMaxRTTs     = 48
	bbr1ExtraAckedRTTs  = 5
	bbr1ExtraAckedMax   = 100 * time.Millisecond
	bbr1AckEpochResetPk = 1 << 20 // segments
	bbr1GSOMax          = 65536 - 1 - 320
)

// bbr1PacingGain is the ProbeBW cycle: probe, drain, then cruise.
var bbr1PacingGain = [bbr1CycleLen]float64{1.25, 0.75, 1, 1, 1, 1, 1, 1}

// bbr1 is one connection's BBRv1.
type bbr1 struct {
	mss, iw    uint32
	rng        uint64
	mode       bbr1Mode
	pacingGain float64
	cwndGain   float64
	cwnd       uint64
	priorCwnd  uint64
	pacingRate uint64
	hasSeenRTT bool

	bw          bbrMaxFilter // max_bw over bbr1BwRTTs rounds
	minRTT      time.Duration
	minRTTStamp Time

	delivered, lost   uint64 // tp->delivered, tp->lost
	nextRTTDelivered  uint64
	rttCnt            uint64
	roundStart        bool
	cycleIdx          int
	cycleStamp        Time
	fullBw            uint64
	fullBwCnt         int
	fullBwReached     bool
	idleRestart       bool
	appLimitedMark    uint64
	probeRTTDone      Time
	probeRTTDoneSet   bool
	probeRTTRoundDone bool

	// Loss recovery (bbr_set_cwnd_to_recover_or_restore).
	inRecovery   bool
	conservation bool
	rtoMark      uint64

	// Long-term bandwidth (policer detection).
	ltIsSampling bool
	ltUseBw      bool
	ltBw         uint64
	ltRTTCnt     int
	ltLastStamp  Time
	ltLastDlvd   uint64
	ltLastLost   uint64

	// ACK aggregation.
	extraAcked     [2]uint64
	extraAckedIdx  int
	extraAckedRTTs int
	ackEpochStamp  Time
	ackEpochAcked  uint64
	lastInFlight   uint64
	priorInFlight  uint64
	newlyAcked     uint64
	newlyLost      uint64
	sampleApp      bool
	sampleValid    bool
}

func newBBR1(mss uint32, now Time, seed uint64) *bbr1 {
	b := &bbr1{mss: mss, iw: ccInitialWindow(mss), rng: seed | 1}
	b.cwnd = uint64(b.iw)
	b.minRTTStamp, b.ackEpochStamp = now, now
	b.initPacingRate(0)
	b.resetLtBwSampling(now)
	b.mode = bbr1Startup
	b.updateGains()
	return b
}

// newBBR1CC is the registry's factory for "bbr1".
func newBBR1CC(cfg CCConfig) CongestionControl {
	return newBBR1(cfg.MSS, cfg.Now, bbrConnSeed(cfg))
}

// Name implements CongestionControl.
func (b *bbr1) Name() string { return ccNameBBR1 }

// CWnd implements CongestionControl.
func (b *bbr1) CWnd() uint32 { return ccSaturate(max(b.cwnd, uint64(b.mss))) }

// SSThresh implements CongestionControl: BBR keeps none that matters.
func (b *bbr1) SSThresh() uint32 { return math.MaxUint32 }

// PacingRate implements CongestionControl.
func (b *bbr1) PacingRate() uint64 { return max(b.pacingRate, 1) }

// SetCWnd implements CongestionControl: BBR sets its own window in
// recovery.
func (b *bbr1) SetCWnd(uint32) {}

// HandlesUndo implements CCUndoer.
func (b *bbr1) HandlesUndo() bool { return true }

// initPacingRate is bbr_init_pacing_rate_from_rtt: high_gain × cwnd / SRTT
// (1 ms before a sample).
func (b *bbr1) initPacingRate(srtt time.Duration) {
	if srtt > 0 {
		b.hasSeenRTT = true
	} else {
		srtt = time.Millisecond
	}
	b.pacingRate = bbrMul(rateOf(b.cwnd, srtt), bbr1HighGain*bbrPacingMargin)
}

// maxBw is bbr_max_bw, bwEst bbr_bw (the policed rate when one is found).
func (b *bbr1) maxBw() uint64 { return b.bw.get() }

func (b *bbr1) bwEst() uint64 {
	if b.ltUseBw {
		return b.ltBw
	}
	return b.maxBw()
}

func (b *bbr1) minCwnd() uint64 { return bbr1CwndMinSegs * uint64(b.mss) }

// OnAck implements CongestionControl: bbr_main.
func (b *bbr1) OnAck(now Time, rs *RateSample) {
	if rs.MSS > 0 {
		b.mss = rs.MSS
	}
	b.newlyAcked = rs.TotalDelivered - min(b.delivered, rs.TotalDelivered)
	b.delivered, b.lost = rs.TotalDelivered, rs.TotalLost
	b.newlyLost = uint64(rs.NewlyLost)
	b.lastInFlight, b.priorInFlight = uint64(rs.InFlight), uint64(rs.PriorInFlight)
	b.sampleValid = rs.Interval > 0
	// A flight sent in ProbeRTT (tp->app_limited set by BBR) is
	// application-limited.
	b.sampleApp = rs.AppLimited || (b.appLimitedMark != 0 && rs.PriorDelivered < b.appLimitedMark)
	if b.appLimitedMark != 0 && b.delivered > b.appLimitedMark {
		b.appLimitedMark = 0
	}
	if b.rtoMark != 0 && b.delivered >= b.rtoMark {
		// Leaving the Loss state: the window before the RTO returns.
		b.rtoMark = 0
		b.cwnd = max(b.cwnd, b.priorCwnd)
	}

	// bbr_update_model.
	b.updateBw(now, rs)
	b.updateAckAggregation(now)
	b.updateCyclePhase(now)
	b.checkFullBwReached()
	b.checkDrain(now)
	b.updateMinRTT(now, rs.RTT)
	b.updateGains()

	if !b.hasSeenRTT && rs.SRTT > 0 {
		b.initPacingRate(rs.SRTT)
	}
	b.setPacingRate(b.bwEst(), b.pacingGain)
	b.setCwnd()
}

// updateBw is bbr_update_bw: round counting and the max_bw filter.
func (b *bbr1) updateBw(now Time, rs *RateSample) {
	b.roundStart = false
	if !b.sampleValid {
		return
	}
	if rs.PriorDelivered >= b.nextRTTDelivered {
		b.nextRTTDelivered = b.delivered
		b.rttCnt++
		b.roundStart = true
		b.conservation = false
	}
	b.ltBwSampling(now)
	bw := rs.DeliveryRate()
	if !b.sampleApp || bw >= b.maxBw() {
		b.bw.update(b.rttCnt, bbr1BwRTTs, bw)
	}
}

// Long-term bandwidth sampling (bbr_lt_bw_sampling and its helpers).

func (b *bbr1) resetLtBwSamplingInterval(now Time) {
	b.ltLastStamp, b.ltLastDlvd, b.ltLastLost, b.ltRTTCnt = now, b.delivered, b.lost, 0
}

func (b *bbr1) resetLtBwSampling(now Time) {
	b.ltBw, b.ltUseBw, b.ltIsSampling = 0, false, false
	b.resetLtBwSamplingInterval(now)
}

// ltBwIntervalDone is bbr_lt_bw_interval_done: two intervals of similar
// rate (within 1/8 or 4 kbit/s) mean a policer; pace at their mean.
func (b *bbr1) ltBwIntervalDone(now Time, bw uint64) {
	if b.ltBw != 0 {
		diff := max(bw, b.ltBw) - min(bw, b.ltBw)
		if float64(diff) <= bbr1LtBwRatio*float64(b.ltBw) || diff <= bbr1LtBwDiff {
			b.ltBw = (bw + b.ltBw) / 2
			b.ltUseBw = true
			b.pacingGain = 1
			b.ltRTTCnt = 0
			return
		}
	}
	b.ltBw = bw
	b.resetLtBwSamplingInterval(now)
}

func (b *bbr1) ltBwSampling(now Time) {
	if b.ltUseBw {
		if b.mode == bbr1ProbeBW && b.roundStart {
			if b.ltRTTCnt++; b.ltRTTCnt >= bbr1LtBwMaxRTTs {
				b.resetLtBwSampling(now)
				b.resetProbeBWMode(now)
			}
		}
		return
	}
	if !b.ltIsSampling {
		if b.newlyLost == 0 {
			return
		}
		b.resetLtBwSamplingInterval(now)
		b.ltIsSampling = true
	}
	if b.sampleApp {
		b.resetLtBwSampling(now)
		return
	}
	if b.roundStart {
		b.ltRTTCnt++
	}
	if b.ltRTTCnt < bbr1LtIntvlMinRTTs {
		return
	}
	if b.ltRTTCnt > 4*bbr1LtIntvlMinRTTs {
		b.resetLtBwSampling(now)
		return
	}
	if b.newlyLost == 0 {
		return // an interval ends at a loss
	}
	lost, dlvd := b.lost-b.ltLastLost, b.delivered-b.ltLastDlvd
	if dlvd == 0 || float64(lost) < bbr1LtLossThresh*float64(dlvd) {
		return
	}
	t := now.Sub(b.ltLastStamp).Truncate(time.Millisecond) // tcp_bbr.c's ms stamps
	if t < time.Millisecond {
		return
	}
	b.ltBwIntervalDone(now, rateOf(dlvd, t))
}

// updateAckAggregation is bbr_update_ack_aggregation: the bytes ACKed
// beyond what bw explains, max over 5-10 rounds.
func (b *bbr1) updateAckAggregation(now Time) {
	if b.newlyAcked == 0 || !b.sampleValid {
		return
	}
	if b.roundStart {
		b.extraAckedRTTs = min(0x1f, b.extraAckedRTTs+1)
		if b.extraAckedRTTs >= bbr1ExtraAckedRTTs {
			b.extraAckedRTTs = 0
			b.extraAckedIdx ^= 1
			b.extraAcked[b.extraAckedIdx] = 0
		}
	}
	expected := bbrBytes(b.bwEst(), now.Sub(b.ackEpochStamp))
	if b.ackEpochAcked <= expected || b.ackEpochAcked+b.newlyAcked >= bbr1AckEpochResetPk*uint64(b.mss) {
		b.ackEpochAcked, b.ackEpochStamp, expected = 0, now, 0
	}
	b.ackEpochAcked += b.newlyAcked
	extra := min(b.ackEpochAcked-expected, b.cwnd)
	b.extraAcked[b.extraAckedIdx] = max(b.extraAcked[b.extraAckedIdx], extra)
}

// ackAggregationCwnd is bbr_ack_aggregation_cwnd.
func (b *bbr1) ackAggregationCwnd() uint64 {
	if !b.fullBwReached {
		return 0
	}
	return min(max(b.extraAcked[0], b.extraAcked[1]), bbrBytes(b.bwEst(), bbr1ExtraAckedMax))
}

// ProbeBW's gain cycle.

// isNextCyclePhase is bbr_is_next_cycle_phase.
func (b *bbr1) isNextCyclePhase(now Time) bool {
	fullLength := b.minRTT > 0 && now.Sub(b.cycleStamp) > b.minRTT
	if b.pacingGain == 1 {
		return fullLength
	}
	inflight := b.inNetAtEDT(b.priorInFlight)
	if b.pacingGain > 1 {
		// Probe until the pipe holds gain × BDP, or a loss says it
		// cannot.
		return fullLength && (b.newlyLost > 0 || inflight >= b.inflight(b.maxBw(), b.pacingGain))
	}
	// Drain until the queue the probe built is gone.
	return fullLength || inflight <= b.inflight(b.maxBw(), 1)
}

// inNetAtEDT is bbr_packets_in_net_at_edt: what will be in flight when
// the next burst leaves, a TSO burst more while probing. The engine paces
// each segment as it comes due, so the wait to that departure (during
// which the ACKs due then drain the pipe, the rest of Linux's estimate) is
// taken as none.
func (b *bbr1) inNetAtEDT(inflight uint64) uint64 {
	if b.pacingGain > 1 {
		inflight += b.tsoGoal()
	}
	return inflight
}

func (b *bbr1) advanceCyclePhase(now Time) {
	b.cycleIdx = (b.cycleIdx + 1) % bbr1CycleLen
	b.cycleStamp = now
}

func (b *bbr1) updateCyclePhase(now Time) {
	if b.mode == bbr1ProbeBW && b.isNextCyclePhase(now) {
		b.advanceCyclePhase(now)
	}
}

// resetProbeBWMode is bbr_reset_probe_bw_mode: a random phase other than
// the 0.75 one, so that flows do not probe in step and a new cycle never
// starts by draining.
func (b *bbr1) resetProbeBWMode(now Time) {
	b.mode = bbr1ProbeBW
	b.cycleIdx = bbr1CycleLen - 1 - int(xorshift64(&b.rng)%bbr1CycleRand)
	b.advanceCyclePhase(now)
}

func (b *bbr1) resetMode(now Time) {
	if b.fullBwReached {
		b.resetProbeBWMode(now)
	} else {
		b.mode = bbr1Startup
	}
}

// checkFullBwReached is bbr_check_full_bw_reached: three rounds without
// 25% growth.
func (b *bbr1) checkFullBwReached() {
	if b.fullBwReached || !b.roundStart || b.sampleApp {
		return
	}
	if float64(b.maxBw()) >= float64(b.fullBw)*bbr1FullBwThresh {
		b.fullBw, b.fullBwCnt = b.maxBw(), 0
		return
	}
	b.fullBwCnt++
	b.fullBwReached = b.fullBwCnt >= bbr1FullBwCnt
}

// checkDrain is bbr_check_drain.
func (b *bbr1) checkDrain(now Time) {
	if b.mode == bbr1Startup && b.fullBwReached {
		b.mode = bbr1Drain
	}
	if b.mode == bbr1Drain && b.inNetAtEDT(b.lastInFlight) <= b.inflight(b.maxBw(), 1) {
		b.resetProbeBWMode(now)
	}
}

// updateMinRTT is bbr_update_min_rtt, with ProbeRTT's entry and exit.
func (b *bbr1) updateMinRTT(now Time, rtt time.Duration) {
	expired := now.After(b.minRTTStamp.Add(bbr1MinRTTWin))
	if rtt > 0 && (b.minRTT == 0 || rtt < b.minRTT || expired) {
		b.minRTT, b.minRTTStamp = rtt, now
	}
	if expired && !b.idleRestart && b.mode != bbr1ProbeRTT {
		b.mode = bbr1ProbeRTT
		b.saveCwnd()
		b.probeRTTDoneSet = false
	}
	if b.mode == bbr1ProbeRTT {
		b.appLimitedMark = max(b.delivered+b.lastInFlight, 1)
		switch {
		case !b.probeRTTDoneSet && b.lastInFlight <= b.minCwnd():
			b.probeRTTDone, b.probeRTTDoneSet = now.Add(bbr1ProbeRTTTime), true
			b.probeRTTRoundDone = false
			b.nextRTTDelivered = b.delivered
		case b.probeRTTDoneSet:
			if b.roundStart {
				b.probeRTTRoundDone = true
			}
			if b.probeRTTRoundDone {
				b.checkProbeRTTDone(now)
			}
		}
	}
	if b.newlyAcked > 0 {
		b.idleRestart = false
	}
}

// checkProbeRTTDone is bbr_check_probe_rtt_done.
func (b *bbr1) checkProbeRTTDone(now Time) {
	if !b.probeRTTDoneSet || !now.After(b.probeRTTDone) {
		return
	}
	b.minRTTStamp = now // wait another 10 s
	b.cwnd = max(b.cwnd, b.priorCwnd)
	b.resetMode(now)
}

// updateGains is bbr_update_gains.
func (b *bbr1) updateGains() {
	switch b.mode {
	case bbr1Startup:
		b.pacingGain, b.cwndGain = bbr1HighGain, bbr1HighGain
	case bbr1Drain:
		b.pacingGain, b.cwndGain = bbr1DrainGain, bbr1HighGain // keep cwnd
	case bbr1ProbeBW:
		b.pacingGain, b.cwndGain = bbr1PacingGain[b.cycleIdx], bbr1CwndGain
		if b.ltUseBw {
			b.pacingGain = 1
		}
	case bbr1ProbeRTT:
		b.pacingGain, b.cwndGain = 1, 1
	}
}

// setPacingRate is bbr_set_pacing_rate: gain × bw less 1%; before the
// pipe is full it only rises.
func (b *bbr1) setPacingRate(bw uint64, gain float64) {
	rate := bbrMul(bw, gain*bbrPacingMargin)
	if rate > 0 && (b.fullBwReached || rate > b.pacingRate) {
		b.pacingRate = rate
	}
}

// tsoGoal is bbr_tso_segs_goal in bytes: about 1 ms at the pacing rate
// (sk_pacing_shift 10), at least 2 segments (1 below 1.2 Mbit/s), at most
// 127 or a 64 KiB GSO packet.
func (b *bbr1) tsoGoal() uint64 {
	mss := uint64(b.mss)
	minSegs := uint64(2)
	if b.pacingRate < bbr1MinTSORate {
		minSegs = 1
	}
	bytes := min(b.pacingRate>>10, bbr1GSOMax)
	return min(max(bytes/mss, minSegs), 0x7f) * mss
}

// bdp is bbr_bdp: gain × bw × min_rtt, IW before an RTT sample.
func (b *bbr1) bdp(bw uint64, gain float64) uint64 {
	if b.minRTT == 0 {
		return uint64(b.iw)
	}
	return uint64(math.Ceil(float64(bbrBytes(bw, b.minRTT)) * gain))
}

// quantizationBudget is bbr_quantization_budget: room for 3 TSO bursts in
// flight, an even number of segments, 2 more in the probing phase.
func (b *bbr1) quantizationBudget(cwnd uint64) uint64 {
	mss := uint64(b.mss)
	cwnd += 3 * b.tsoGoal()
	cwnd = (cwnd + 2*mss - 1) / (2 * mss) * (2 * mss)
	if b.mode == bbr1ProbeBW && b.cycleIdx == 0 {
		cwnd += 2 * mss
	}
	return cwnd
}

// inflight is bbr_inflight.
func (b *bbr1) inflight(bw uint64, gain float64) uint64 {
	return b.quantizationBudget(b.bdp(bw, gain))
}

// saveCwnd is bbr_save_cwnd.
func (b *bbr1) saveCwnd() {
	if !b.inRecovery && b.rtoMark == 0 && b.mode != bbr1ProbeRTT {
		b.priorCwnd = b.cwnd
	} else {
		b.priorCwnd = max(b.priorCwnd, b.cwnd)
	}
}

// setCwnd is bbr_set_cwnd with bbr_set_cwnd_to_recover_or_restore (the
// transitions are in OnEvent).
func (b *bbr1) setCwnd() {
	if b.newlyAcked > 0 {
		if b.newlyLost > 0 {
			b.cwnd = max(b.cwnd-min(b.cwnd, b.newlyLost), uint64(b.mss))
		}
		if b.conservation {
			b.cwnd = max(b.cwnd, b.lastInFlight+b.newlyAcked)
		} else {
			target := b.bdp(b.bwEst(), b.cwndGain) + b.ackAggregationCwnd()
			target = b.quantizationBudget(target)
			switch {
			case b.fullBwReached:
				b.cwnd = min(b.cwnd+b.newlyAcked, target)
			case b.cwnd < target || b.delivered < uint64(b.iw):
				b.cwnd += b.newlyAcked
			}
			b.cwnd = max(b.cwnd, b.minCwnd())
		}
	}
	if b.mode == bbr1ProbeRTT {
		b.cwnd = min(b.cwnd, b.minCwnd())
	}
}

// OnEvent implements CongestionControl: bbr_set_state, bbr_ssthresh's
// save of cwnd, bbr_undo_cwnd and bbr_cwnd_event.
func (b *bbr1) OnEvent(now Time, ev CCEvent) {
	switch ev.Kind {
	case CCRecoveryStart:
		// Entering Recovery: one round of packet conservation, the
		// round starting now.
		b.saveCwnd()
		b.inRecovery, b.conservation = true, true
		b.nextRTTDelivered = b.delivered
		b.cwnd = b.lastInFlight + max(b.newlyAcked, uint64(b.mss))
	case CCRecoveryEnd:
		b.inRecovery, b.conservation = false, false
		b.cwnd = max(b.cwnd, b.priorCwnd)
	case CCTimeout:
		// Entering Loss: the full-pipe count restarts, and the RTO
		// counts as a lossy round end for the lt sampler.
		b.saveCwnd()
		b.inRecovery, b.conservation = false, false
		b.cwnd = uint64(b.mss)
		b.rtoMark = max(b.delivered+uint64(ev.InFlight), 1)
		b.fullBw = 0
		b.roundStart = true
		lost := b.newlyLost
		b.newlyLost = 1
		b.ltBwSampling(now)
		b.newlyLost = lost
	case CCUndo:
		b.inRecovery, b.conservation, b.rtoMark = false, false, 0
		b.cwnd = max(b.cwnd, b.priorCwnd)
		b.fullBw, b.fullBwCnt = 0, 0
		b.resetLtBwSampling(now)
	case CCTxStart:
		b.idleRestart = true
		b.ackEpochStamp, b.ackEpochAcked = now, 0
		switch b.mode {
		case bbr1ProbeBW:
			b.setPacingRate(b.bwEst(), 1)
		case bbr1ProbeRTT:
			b.checkProbeRTTDone(now)
		}
	}
}

// BBRInfo returns the connection's state for Info and `ss -i` (Linux's
// tcp_bbr_info; Phase is Startup, Drain, ProbeBW or ProbeRTT; the loss
// bounds are BBRv3's and stay 0).
func (b *bbr1) BBRInfo() BBRInfo {
	return BBRInfo{
		Phase: b.mode.String(), BW: b.bwEst(), MaxBW: b.maxBw(), MinRTT: b.minRTT,
		PacingGain: b.pacingGain, CWndGain: b.cwndGain,
		Rounds: b.rttCnt, FilledPipe: b.fullBwReached,
	}
}
