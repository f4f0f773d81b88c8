package tcp

import (
	"math"
	"time"
)

// RFC 9438 constants.
const (
	cubicC    = 0.4 // §4.1, in segments/s^3
	cubicBeta = 0.7 // §4.6 multiplicative decrease factor
	// cubicAlpha is the Reno-friendly additive increase α_cubic =
	// 3(1-β)/(1+β) (§4.3).
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
	// cubicBetaNum/Den express β for the integer ssthresh computation.
	cubicBetaNum = 7
	cubicBetaDen = 10
)

// cubic is CUBIC congestion control (RFC 9438); HyStart++ lives in cubicCC: slow start as
// in RFC 5681/3465, then W_cubic(t) = C*(t-K)^3 + W_max in congestion
// avoidance, with the Reno-friendly region (§4.3), fast convergence (§4.7)
// and the timeout rule of §4.8. Time comes only from the now arguments.
//
// Windows are kept in bytes as float64 (exact for integers up to 2^53) so the
// fractional per-ACK increments of §4.4/§4.5 accumulate; every write goes
// through cubicClamp, which removes NaN/Inf and saturates at MaxUint32.
type cubic struct {
	mss      float64
	mssU     uint32
	iw       uint32
	cwnd     float64
	ssthresh uint32

	wMax      float64 // W_max in bytes (window before the last reduction)
	wMaxValid bool
	cwndPrior float64 // cwnd at the last congestion event (§4.3 α switch)

	inEpoch    bool // a congestion-avoidance epoch is running
	epochStart Time // t_epoch
	cwndEpoch  float64
	k          float64 // K in seconds
	wEst       float64 // Reno-friendly estimate W_est, bytes

	afterRTO bool   // §4.8: next epoch uses K = 0, W_max = cwnd_epoch
	rtoHeld  bool   // ssthresh held across back-to-back timeouts (RFC 5681 §3.1)
	ssDiv    uint32 // HyStart++ CSS divisor of the slow-start increase (0/1: none)
	// ssDelivered is the bytes the current ACK delivered, cumulatively or
	// by SACK, each byte once (Linux's acked_sacked), when the caller
	// knows it: slow start then grows by all of it, as Linux's
	// tcp_slow_start does. Without ssKnown: RFC 3465's L = 2*SMSS per
	// ACK of Acked.
	ssDelivered uint32
	ssKnown     bool
}

func newCubic(mss uint32, now Time) *cubic {
	iw := ccInitialWindow(mss)
	return &cubic{
		mss:      float64(mss),
		mssU:     mss,
		iw:       iw,
		cwnd:     float64(iw),
		ssthresh: math.MaxUint32,
	}
}

// cubicClamp maps v into [lo, MaxUint32], turning NaN into lo and +Inf into
// MaxUint32.
func cubicClamp(v, lo float64) float64 {
	switch {
	case math.IsNaN(v) || v < lo:
		return lo
	case v > math.MaxUint32:
		return math.MaxUint32
	}
	return v
}

// Name implements congestionControl.
func (c *cubic) Name() string { return ccNameCubic }

// CWnd implements congestionControl.
func (c *cubic) CWnd() uint32 {
	return uint32(cubicClamp(c.cwnd, c.mss))
}

// SSThresh implements congestionControl.
func (c *cubic) SSThresh() uint32 { return c.ssthresh }

// WMax returns W_max in bytes (0 before the first congestion event).
func (c *cubic) WMax() float64 { return c.wMax }

// K returns the current epoch's K in seconds.
func (c *cubic) K() float64 { return c.k }

// wCubic is Figure 1 of RFC 9438 in bytes: C*(t-K)^3 segments + W_max.
func (c *cubic) wCubic(t float64) float64 {
	d := t - c.k
	return cubicClamp(c.mss*cubicC*d*d*d+c.wMax, 0)
}

// OnAck implements congestionControl.
func (c *cubic) OnAck(now Time, acked uint32, rtt time.Duration, inflight uint32) {
	if acked == 0 {
		return
	}
	c.rtoHeld = false
	a := float64(acked)
	if c.cwnd < float64(c.ssthresh) {
		// Slow start (RFC 9438 §4.10 defers to RFC 5681; ABC with L = 2,
		// or Linux's unlimited count of what the ACK delivered: a
		// receiver that coalesces ACKs, as Linux's does for the segments
		// that arrive while its reader holds the socket, would otherwise
		// hold slow start to 2*SMSS per ACK, far from doubling per RTT).
		inc := float64(ccSlowStartIncrease(acked, c.mssU))
		if c.ssKnown {
			inc = float64(c.ssDelivered)
		}
		if c.ssDiv > 1 {
			inc /= float64(c.ssDiv)
		}
		room := float64(c.ssthresh) - c.cwnd
		if inc <= room {
			c.cwnd = cubicClamp(c.cwnd+inc, c.mss)
			return
		}
		c.cwnd = float64(c.ssthresh)
		a = inc - room
	}
	if !c.inEpoch {
		c.startEpoch(now)
	}
	t := now.Sub(c.epochStart).Seconds()
	if t < 0 {
		t = 0
	}
	r := rtt.Seconds()
	if r < 0 {
		r = 0
	}

	// §4.3 Reno-friendly estimate, in bytes: W_est += α * acked*MSS/cwnd.
	alpha := cubicAlpha
	if c.wEst >= c.cwndPrior {
		alpha = 1
	}
	c.wEst = cubicClamp(c.wEst+alpha*a*c.mss/c.cwnd, c.mss)

	if c.wCubic(t) < c.wEst {
		// Reno-friendly region: cwnd = W_est (never shrink on an ACK).
		if c.wEst > c.cwnd {
			c.cwnd = c.wEst
		}
		return
	}
	// §4.2 target = W_cubic(t+RTT) bounded to [cwnd, 1.5*cwnd]; concave
	// (§4.4) and convex (§4.5) regions both add (target-cwnd)/cwnd per
	// segment acked, i.e. (target-cwnd)*acked/cwnd bytes.
	target := c.wCubic(t + r)
	if target < c.cwnd {
		target = c.cwnd
	}
	if hi := 1.5 * c.cwnd; target > hi {
		target = hi
	}
	c.cwnd = cubicClamp(c.cwnd+(target-c.cwnd)*a/c.cwnd, c.mss)
}

// startEpoch begins a congestion-avoidance stage at now (RFC 9438 §4.2).
func (c *cubic) startEpoch(now Time) {
	c.inEpoch = true
	c.epochStart = now
	c.cwndEpoch = c.cwnd
	c.wEst = c.cwnd
	if c.afterRTO || !c.wMaxValid {
		// §4.8 (and no congestion event yet): K = 0, W_max = cwnd_epoch.
		c.wMax = c.cwnd
		c.wMaxValid = true
		c.afterRTO = false
		c.k = 0
		return
	}
	// K = cbrt((W_max - cwnd_epoch)/C) in segments; negative when cwnd has
	// already passed W_max, which keeps W_cubic(0) = cwnd_epoch.
	c.k = math.Cbrt((c.wMax - c.cwndEpoch) / c.mss / cubicC)
	if math.IsNaN(c.k) || math.IsInf(c.k, 0) {
		c.k = 0
	}
}

// OnEnterRecovery implements congestionControl (RFC 9438 §4.6, §4.7).
func (c *cubic) OnEnterRecovery(now Time, inflight uint32) {
	c.congestionEvent()
	c.ssthresh = ccLossSSThresh(ccLossBase(uint32(c.cwnd), inflight), cubicBetaNum, cubicBetaDen, c.mssU)
	c.cwnd = float64(c.ssthresh) // already >= 2*MSS
}

// congestionEvent records W_max with fast convergence (§4.7) and cwnd_prior.
func (c *cubic) congestionEvent() {
	if c.wMaxValid && c.cwnd < c.wMax {
		// The flow lost before regaining its previous W_max: another flow
		// is probably joining, release bandwidth faster.
		c.wMax = c.cwnd * (1 + cubicBeta) / 2
	} else {
		c.wMax = c.cwnd
	}
	c.wMaxValid = true
	c.cwndPrior = c.cwnd
	c.inEpoch = false
}

// OnExitRecovery implements congestionControl.
func (c *cubic) OnExitRecovery(now Time) {
	c.cwnd = cubicClamp(float64(c.ssthresh), c.mss)
	c.inEpoch = false
}

// OnRTO implements congestionControl (RFC 9438 §4.8: Reno's loss window with
// ssthresh from β_cubic; the next epoch starts with K = 0).
func (c *cubic) OnRTO(now Time, inflight uint32) {
	if !c.rtoHeld {
		c.cwndPrior = c.cwnd
		c.ssthresh = ccLossSSThresh(ccLossBase(uint32(c.cwnd), inflight), cubicBetaNum, cubicBetaDen, c.mssU)
		c.rtoHeld = true
	}
	c.cwnd = c.mss
	c.afterRTO = true
	c.inEpoch = false
}

// SetCWnd implements congestionControl.
func (c *cubic) SetCWnd(cwnd uint32) { c.cwnd = cubicClamp(float64(cwnd), c.mss) }

// OnIdleRestart implements congestionControl: RW = min(IW, cwnd), and the
// epoch restarts so idle time does not count as growth time (RFC 9438 §5.8).
func (c *cubic) OnIdleRestart(now Time) {
	if iw := float64(c.iw); iw < c.cwnd {
		c.cwnd = iw
	}
	c.inEpoch = false
}

// cubicCC is CUBIC behind the public CongestionControl interface (see
// renoCC).
type cubicCC struct {
	cubic
	hy        hystart
	delivered uint64 // RateSample.TotalDelivered at the previous ACK
}

// OnAck implements CongestionControl.
func (c *cubicCC) OnAck(now Time, rs *RateSample) {
	delivered := rs.TotalDelivered - c.delivered
	c.delivered = rs.TotalDelivered
	if rs.InRecovery || rs.InCWR {
		return
	}
	// Linux's cubictcp_cong_avoid passes tcp_slow_start the ACK's
	// acked_sacked: every byte it newly delivered, counted once.
	c.ssDelivered = uint32(min(delivered, uint64(rs.Acked)+uint64(rs.NewlySACKed)))
	c.ssKnown = rs.TotalDelivered > 0
	if c.cwnd < float64(c.ssthresh) && rs.Acked > 0 {
		div, exit := c.hy.onAck(rs, c.ssthresh)
		if exit {
			// HyStart++ §4.2: after CSS_ROUNDS, ssthresh = cwnd and
			// congestion avoidance.
			c.ssthresh = c.CWnd()
		}
		c.ssDiv = div
	}
	c.cubic.OnAck(now, rs.Acked, rs.SRTT, rs.InFlight)
}

// HyStartCSS reports whether the initial slow start is in HyStart++'s
// Conservative Slow Start.
func (c *cubicCC) HyStartCSS() bool { return c.hy.inCSS() }

// PacingRate implements CongestionControl: CUBIC does not pace (see
// Config.Pacing).
func (c *cubicCC) PacingRate() uint64 { return 0 }

// OnEvent implements CongestionControl.
func (c *cubicCC) OnEvent(now Time, ev CCEvent) {
	switch ev.Kind {
	case CCRecoveryStart, CCECNEcho:
		c.OnEnterRecovery(now, ev.InFlight)
	case CCRecoveryEnd:
		c.OnExitRecovery(now)
	case CCTimeout:
		c.OnRTO(now, ev.InFlight)
	case CCIdleRestart:
		c.OnIdleRestart(now)
	case CCUndo:
		// Linux's cubic undoes as Reno does (tcp_reno_undo_cwnd); the
		// next epoch starts from the restored window.
		cw, ss := undoRestore(c.CWnd(), c.ssthresh, ev)
		c.cwnd, c.ssthresh = cubicClamp(float64(cw), c.mss), ss
		c.inEpoch, c.afterRTO, c.rtoHeld = false, false, false
	}
}

// HandlesUndo implements CCUndoer.
func (c *cubicCC) HandlesUndo() bool { return true }
