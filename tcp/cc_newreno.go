package tcp

import (
	"math"
	"time"
)

// newReno is RFC 5681 congestion control with appropriate byte counting
// (RFC 3465): slow start grows cwnd by min(acked, 2*SMSS) per ACK, congestion
// avoidance by one SMSS per cwnd of bytes acked. The fast-recovery window
// dance of RFC 6582 is driven by the engine through SetCWnd.
type newReno struct {
	mss      uint32
	iw       uint32
	cwnd     uint32
	ssthresh uint32
	// caAcked counts bytes acked in congestion avoidance towards the next
	// one-MSS increase (RFC 3465 §2.1 byte counting).
	caAcked uint64
	// rtoHeld is set after an RTO and cleared by an ACK of new data: while
	// set, further timeouts keep ssthresh (RFC 5681 §3.1: when the segment
	// has already been retransmitted by the timer, ssthresh is held).
	rtoHeld bool
	// ssDiv divides the slow-start increase (HyStart++ CSS sets it to
	// CSS_GROWTH_DIVISOR; 0 or 1 is plain slow start).
	ssDiv uint32
}

func newNewReno(mss uint32) *newReno {
	iw := ccInitialWindow(mss)
	return &newReno{mss: mss, iw: iw, cwnd: iw, ssthresh: math.MaxUint32}
}

// Name implements congestionControl.
func (r *newReno) Name() string { return ccNameNewReno }

// CWnd implements congestionControl.
func (r *newReno) CWnd() uint32 { return r.cwnd }

// SSThresh implements congestionControl.
func (r *newReno) SSThresh() uint32 { return r.ssthresh }

// OnAck implements congestionControl.
func (r *newReno) OnAck(now Time, acked uint32, rtt time.Duration, inflight uint32) {
	if acked == 0 {
		return
	}
	r.rtoHeld = false
	if r.cwnd < r.ssthresh {
		// RFC 5681 §3.1 slow start with RFC 3465 L = 2*SMSS. Growth stops at
		// ssthresh; the remainder of this ACK counts towards congestion
		// avoidance, so crossing the threshold is exact.
		inc := ccSlowStartIncrease(acked, r.mss)
		if r.ssDiv > 1 {
			inc /= uint64(r.ssDiv)
		}
		room := uint64(r.ssthresh - r.cwnd)
		if inc <= room {
			r.cwnd = ccSaturate(uint64(r.cwnd) + inc)
			return
		}
		r.cwnd = r.ssthresh
		acked = uint32(inc - room)
	}
	// Congestion avoidance (RFC 5681 eq. (3), byte-counting form of
	// RFC 3465 §2.1): +1 SMSS each time a full cwnd of bytes has been acked.
	r.caAcked += uint64(acked)
	if r.caAcked >= uint64(r.cwnd) {
		r.caAcked -= uint64(r.cwnd)
		r.cwnd = ccSaturatingAdd(r.cwnd, r.mss)
		if r.caAcked >= uint64(r.cwnd) {
			// A single huge ACK: never credit more than one MSS per ACK.
			r.caAcked = 0
		}
	}
}

// OnEnterRecovery implements congestionControl: ssthresh = max(FlightSize/2,
// 2*SMSS) (RFC 5681 eq. (4)), FlightSize at most cwnd (ccLossBase), cwnd =
// ssthresh.
func (r *newReno) OnEnterRecovery(now Time, inflight uint32) {
	r.ssthresh = ccLossSSThresh(ccLossBase(r.cwnd, inflight), 1, 2, r.mss)
	r.cwnd = ccFloorMSS(r.ssthresh, r.mss)
	r.caAcked = 0
}

// OnExitRecovery implements congestionControl: deflate to ssthresh
// (RFC 6582 §3.2 step 3).
func (r *newReno) OnExitRecovery(now Time) {
	r.cwnd = ccFloorMSS(r.ssthresh, r.mss)
	r.caAcked = 0
}

// OnRTO implements congestionControl (RFC 5681 §3.1 eq. (4) and the loss
// window LW = 1 SMSS).
func (r *newReno) OnRTO(now Time, inflight uint32) {
	if !r.rtoHeld {
		r.ssthresh = ccLossSSThresh(ccLossBase(r.cwnd, inflight), 1, 2, r.mss)
		r.rtoHeld = true
	}
	r.cwnd = r.mss
	r.caAcked = 0
}

// SetCWnd implements congestionControl.
func (r *newReno) SetCWnd(cwnd uint32) { r.cwnd = ccFloorMSS(cwnd, r.mss) }

// OnIdleRestart implements congestionControl: RW = min(IW, cwnd)
// (RFC 5681 §4.1).
func (r *newReno) OnIdleRestart(now Time) {
	if r.iw < r.cwnd {
		r.cwnd = r.iw
	}
	r.caAcked = 0
}

// renoCC is NewReno behind the public CongestionControl interface: it grows
// on the cumulatively acked bytes of ACKs that arrive outside recovery, as
// RFC 5681 does.
type renoCC struct {
	newReno
	hy hystart
}

// OnAck implements CongestionControl.
func (r *renoCC) OnAck(now Time, rs *RateSample) {
	if rs.InRecovery || rs.InCWR {
		return
	}
	if r.cwnd < r.ssthresh && rs.Acked > 0 {
		div, exit := r.hy.onAck(rs, r.ssthresh)
		if exit {
			// HyStart++ §4.2: after CSS_ROUNDS, ssthresh = cwnd and
			// congestion avoidance.
			r.ssthresh = r.cwnd
		}
		r.ssDiv = div
	}
	r.newReno.OnAck(now, rs.Acked, rs.SRTT, rs.InFlight)
}

// HyStartCSS reports whether the initial slow start is in HyStart++'s
// Conservative Slow Start.
func (r *renoCC) HyStartCSS() bool { return r.hy.inCSS() }

// PacingRate implements CongestionControl: NewReno does not pace (see
// Config.Pacing).
func (r *renoCC) PacingRate() uint64 { return 0 }

// OnEvent implements CongestionControl.
func (r *renoCC) OnEvent(now Time, ev CCEvent) {
	switch ev.Kind {
	case CCRecoveryStart, CCECNEcho:
		r.OnEnterRecovery(now, ev.InFlight)
	case CCRecoveryEnd:
		r.OnExitRecovery(now)
	case CCTimeout:
		r.OnRTO(now, ev.InFlight)
	case CCIdleRestart:
		r.OnIdleRestart(now)
	case CCUndo:
		r.cwnd, r.ssthresh = undoRestore(r.cwnd, r.ssthresh, ev)
		r.caAcked, r.rtoHeld = 0, false
	}
}

// HandlesUndo implements CCUndoer.
func (r *renoCC) HandlesUndo() bool { return true }
