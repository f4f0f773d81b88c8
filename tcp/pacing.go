package tcp

import (
	"math"
	"math/bits"
	"time"
)

// Pacing (Linux's internal TCP pacing, tcp_internal_pacing): when the
// congestion control gives a pacing rate, or Config.Pacing asks for the
// default one, data segments leave no faster than that rate. After a
// (super-)segment of n payload bytes the next may leave n/rate later
// (Linux tcp_wstamp_ns); Output sends what is due and reports the next
// departure through NextDeadline, so the stack's per-shard timer heap wakes
// the connection: no goroutine, no per-connection timer outside the Conn.
// Credit does not accumulate while the sender has nothing to send: the
// departure clock never lags behind now. Pure ACKs, SYNs, RSTs and probes
// are not paced.

// pacer is the pacing state, kept in rateState (a connection that never
// sent data has none).
type pacer struct {
	next  Time      // earliest departure of the next data segment
	timer connTimer // armed at next while data waits for it
	// waited: the next data segment was held back for next, so leaving
	// after it is the timer's lateness (jitter), which paceSent credits.
	waited bool
}

// pacingRate is the rate data segments leave at, in bytes per second: the
// algorithm's (CongestionControl.PacingRate), else with Config.Pacing the
// default estimate (defaultPacingRate); 0 = not paced.
func (c *Conn) pacingRate() uint64 {
	if r := c.cc.PacingRate(); r > 0 || !c.cfg.Pacing {
		return r
	}
	return c.defaultPacingRate()
}

// defaultPacingRate is Linux's tcp_update_pacing_rate, the rate Linux keeps
// for every connection whatever its qdisc: max(cwnd, in flight) / SRTT
// times PacingSSRatio in slow start (cwnd < ssthresh/2) and PacingCARatio
// after; 0 before the first RTT sample (Linux's rate is then unbounded).
func (c *Conn) defaultPacingRate() uint64 {
	srtt := c.rto.SRTT()
	if srtt <= 0 {
		return 0
	}
	cwnd := c.cc.CWnd()
	ratio := uint64(c.cfg.PacingCARatio)
	if cwnd < c.cc.SSThresh()/2 {
		ratio = uint64(c.cfg.PacingSSRatio)
	}
	w := uint64(max(cwnd, c.sndUna.Size(c.sndNxt)))
	return rateOf(w*ratio/100, srtt)
}

// paceBlocked reports whether pacing holds the next data segment back at
// now, arming the pacing timer for its departure if so.
func (c *Conn) paceBlocked(now Time) bool {
	r := c.rate
	if r == nil {
		return false
	}
	if !now.Before(r.pace.next) || c.pacingRate() == 0 {
		r.pace.timer.stop()
		return false
	}
	r.pace.timer.set(r.pace.next)
	r.pace.waited = true
	return true
}

// paceSent advances the departure clock after n payload bytes left at now.
// A segment that waited for the pacer and left late (the timer woke after
// its departure time) has the next one's gap shortened by the lateness, at
// most by max(half the gap, paceCatchUp) (Linux tcp_update_skb_after_send's
// "take into account OS jitter" takes half), so timer jitter does not hold
// the rate achieved below the rate asked for; a sender that had nothing to
// send gets no such credit.
func (c *Conn) paceSent(now Time, n uint32) {
	rate := c.pacingRate()
	if rate == 0 || n == 0 {
		return
	}
	p := &c.rateState().pace
	d := pacingDelay(n, rate)
	base := max(p.next, now)
	if p.waited && now.After(p.next) {
		// Left late: the departure clock keeps up to max(d/2,
		// paceCatchUp) of the lateness, so that the segments it held
		// back leave at once until the rate is made good.
		base = max(p.next, now.Add(-max(d/2, paceCatchUp)))
	}
	p.next = base.Add(d)
	// Still behind: the next segment is due already and continues the
	// catch-up.
	p.waited = p.next.Before(now)
}

// paceCatchUp bounds the timer lateness a paced sender makes good by
// sending at once: about the 1 ms that a super-segment carries at the
// pacing rate (tsoAutosize), so that without offloads, where each segment
// is its own departure, a wake-up that comes tens of microseconds late
// (Go timers, a busy core) does not cap the rate achieved below the rate
// asked for. Linux credits half a gap (tcp_update_skb_after_send), but its
// hrtimers are late by microseconds, not by whole gaps.
const paceCatchUp = time.Millisecond

// pacingDelay is n bytes at rate bytes per second, rounded up to the
// nanosecond.
func pacingDelay(n uint32, rate uint64) time.Duration {
	hi, lo := bits.Mul64(uint64(n), uint64(time.Second))
	if hi >= rate {
		return math.MaxInt64
	}
	q, rem := bits.Div64(hi, lo, rate)
	if rem != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}
