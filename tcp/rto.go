package tcp

import "time"

// RFC 6298 defaults (RTOMin like Linux's TCP_RTO_MIN rather than the RFC's 1 s,
// which §2.4 allows as a SHOULD).
const (
	rtoDefaultInitial     = time.Second
	rtoDefaultMin         = 200 * time.Millisecond
	rtoDefaultMax         = 120 * time.Second
	rtoDefaultGranularity = time.Millisecond

	// rtoK is K in RTO = SRTT + max(G, K*RTTVAR) (RFC 6298 §2).
	rtoK = 4

	// rtoSYNFloor is the RTO to resume data with after a SYN or SYN-ACK timed
	// out (RFC 6298 §5.7).
	rtoSYNFloor = 3 * time.Second

	// rtoSampleCeiling bounds a single RTT sample so that K*RTTVAR and the
	// EWMA sums can never overflow time.Duration whatever a peer echoes.
	rtoSampleCeiling = 24 * time.Hour
)

// rtoEstimator computes the retransmission timeout of RFC 6298: SRTT and
// RTTVAR from RTT samples, RTO = max(min, SRTT + max(G, 4*RTTVAR)) capped at
// max, and exponential backoff on timer expiry. The zero value is not usable;
// build one with newRTOEstimator.
type rtoEstimator struct {
	srtt, rttvar time.Duration
	base         time.Duration // RTO from the estimator, before backoff
	min, max     time.Duration
	g            time.Duration // clock granularity G
	backoff      uint32        // number of doublings applied since the last sample/reset
	hasSample    bool
}

// newRTOEstimator returns an estimator with no sample yet: RTO() = initial
// (RFC 6298 §2.1). Zero or negative arguments take the defaults (1 s, 200 ms,
// 120 s); min is raised to at most max, initial is clamped into [min, max].
func newRTOEstimator(initial, min, max time.Duration) rtoEstimator {
	if initial <= 0 {
		initial = rtoDefaultInitial
	}
	if min <= 0 {
		min = rtoDefaultMin
	}
	if max <= 0 {
		max = rtoDefaultMax
	}
	if min > max {
		min = max
	}
	r := rtoEstimator{min: min, max: max, g: rtoDefaultGranularity}
	r.base = r.clamp(initial)
	return r
}

// SetGranularity sets the clock granularity G of RFC 6298 §2 (the tick of the
// clock RTT samples are measured with). g <= 0 means "infinitely fine" (0).
// It takes effect at the next sample.
func (r *rtoEstimator) SetGranularity(g time.Duration) {
	if g < 0 {
		g = 0
	}
	r.g = g
}

// Granularity returns G.
func (r *rtoEstimator) Granularity() time.Duration { return r.g }

func (r *rtoEstimator) clamp(d time.Duration) time.Duration {
	if d < r.min {
		d = r.min
	}
	if d > r.max {
		d = r.max
	}
	return d
}

// Sample feeds one RTT measurement. The caller is responsible for Karn's rule
// (RFC 6298 §3: no samples from retransmitted segments unless timestamps
// disambiguate them) — see rtoSegmentTimer and rtoTimestampSample. A negative
// sample is ignored. A valid sample also clears the backoff: RFC 6298 §5.7's
// note that the backed-off RTO is kept only until a new RTT sample yields a
// fresh estimate.
func (r *rtoEstimator) Sample(rtt time.Duration) {
	if rtt < 0 {
		return
	}
	if rtt > rtoSampleCeiling {
		rtt = rtoSampleCeiling
	}
	if !r.hasSample {
		// RFC 6298 §2.2: first measurement.
		r.srtt = rtt
		r.rttvar = rtt / 2
		r.hasSample = true
	} else {
		// RFC 6298 §2.3, beta = 1/4 then alpha = 1/8; RTTVAR uses the old SRTT.
		diff := r.srtt - rtt
		if diff < 0 {
			diff = -diff
		}
		r.rttvar = (3*r.rttvar + diff) / 4
		r.srtt = (7*r.srtt + rtt) / 8
	}
	v := rtoK * r.rttvar
	if v < r.g {
		v = r.g
	}
	r.base = r.clamp(r.srtt + v)
	r.backoff = 0
}

// RTO returns the current timeout: the estimate doubled once per Backoff
// since the last sample or ResetBackoff, capped at max (RFC 6298 §5.5, §2.5).
func (r *rtoEstimator) RTO() time.Duration {
	d := r.base
	for i := uint32(0); i < r.backoff; i++ {
		if d >= r.max/2 {
			return r.max
		}
		d *= 2
	}
	return d
}

// Backoff doubles the RTO after the retransmission timer expired
// (RFC 6298 §5.5), up to max. The doubling stays until a new sample arrives or
// ResetBackoff is called: RFC 6298 §5.7 — with no new sample the backed-off
// RTO is what the next (re)transmission uses.
func (r *rtoEstimator) Backoff() {
	if r.RTO() < r.max {
		r.backoff++
	}
}

// ResetBackoff drops the accumulated doublings, returning RTO() to the
// estimate (used e.g. when an ACK for new data arrives and the engine restarts
// the timer, or for keepalive/persist bookkeeping).
func (r *rtoEstimator) ResetBackoff() { r.backoff = 0 }

// Backoffs returns how many times the RTO has been doubled since the last
// sample or reset (the "current retransmits" counter of tcp_info-like stats).
func (r *rtoEstimator) Backoffs() int { return int(r.backoff) }

// SYNTimedOut applies RFC 6298 §5.7: if the timer expired awaiting the ACK of
// a SYN (or SYN-ACK) and no RTT sample has been taken, the RTO used once data
// transmission begins is re-initialised to 3 s (not exceeding max). Call it
// when the handshake completes after a SYN retransmission.
func (r *rtoEstimator) SYNTimedOut() {
	r.backoff = 0
	if !r.hasSample && r.base < rtoSYNFloor {
		r.base = r.clamp(rtoSYNFloor)
	}
}

// SRTT returns the smoothed RTT (0 before the first sample).
func (r *rtoEstimator) SRTT() time.Duration { return r.srtt }

// RTTVar returns the RTT variation (0 before the first sample).
func (r *rtoEstimator) RTTVar() time.Duration { return r.rttvar }

// HasSample reports whether at least one RTT sample was taken.
func (r *rtoEstimator) HasSample() bool { return r.hasSample }

// Min returns the configured lower bound of the RTO.
func (r *rtoEstimator) Min() time.Duration { return r.min }

// Max returns the configured upper bound of the RTO.
func (r *rtoEstimator) Max() time.Duration { return r.max }

// rtoSegmentTimer measures the RTT without timestamps, one segment at a time
// (RFC 6298 §3 and Karn's algorithm): it times the segment that ends at end and
// yields a sample when an ACK covers end, unless that data was retransmitted
// meanwhile. The zero value is idle.
type rtoSegmentTimer struct {
	end     Seq // the timed segment's end (exclusive): an ACK >= end covers it
	running bool
	sent    Time // when it was first transmitted
}

// Start times a new transmission ending at end, sent at now, unless a
// measurement is already running (one sample per RTT, RFC 6298 §3).
// Call it only for first transmissions, never for retransmissions.
func (t *rtoSegmentTimer) Start(end Seq, now Time) {
	if t.running {
		return
	}
	t.end, t.sent, t.running = end, now, true
}

// Running reports whether a measurement is in progress.
func (t *rtoSegmentTimer) Running() bool { return t.running }

// Cancel abandons the measurement. Karn's algorithm: call it when any data is
// retransmitted, since an ACK can no longer be attributed to the timed copy.
func (t *rtoSegmentTimer) Cancel() { t.running = false }

// OnAck returns an RTT sample when ack covers the timed segment, and stops
// the measurement in that case.
func (t *rtoSegmentTimer) OnAck(ack Seq, now Time) (time.Duration, bool) {
	if !t.running || ack.LessThan(t.end) {
		return 0, false
	}
	t.running = false
	d := now.Sub(t.sent)
	if d < 0 {
		return 0, false
	}
	return d, true
}

// rtoTimestampSample turns an echoed timestamp into an RTT sample
// (RFC 7323 §4.1): RTT = (current TSval clock - TSecr) ticks. The engine calls
// it only for an acceptable ACK that advances SND.UNA (RFC 7323 §4.2: one
// sample per ACK of new data, which also keeps the RFC 6298 gains meaningful
// with many ACKs per RTT). Because a retransmission carries a fresh TSval,
// timestamp samples are immune to Karn's ambiguity (RFC 7323 §4.1).
//
// tsNow is the TSval the engine would send now, tsEcr the peer's echo, tick
// the duration of one timestamp unit. A TSecr "from the future" (negative
// difference) or older than maxAge ticks is rejected — it was not an echo of a
// value we sent recently (e.g. a peer that echoes garbage or 0).
func rtoTimestampSample(tsNow, tsEcr uint32, tick time.Duration, maxAge uint32) (time.Duration, bool) {
	diff := int32(tsNow - tsEcr)
	if diff < 0 || uint32(diff) > maxAge {
		return 0, false
	}
	d := time.Duration(diff) * tick
	if d > rtoSampleCeiling {
		d = rtoSampleCeiling
	}
	return d, true
}
