package tcp

import (
	"math"
	"math/bits"
)

// Proportional Rate Reduction (RFC 6937) with the slow-start reduction bound
// (PRR-SSRB), as Linux's tcp_cwnd_reduction does it. During SACK-based loss
// recovery the congestion control's window (cwnd = ssthresh at once) would
// let nothing go until the pipe has drained below ssthresh, then a burst.
// PRR instead spreads the reduction over the recovery's round trip: while
// the pipe is above ssthresh it sends ssthresh/RecoverFS of what is
// delivered, and once the pipe is at or below ssthresh it sends what is
// delivered, plus one segment per ACK that advances SND.UNA without
// reporting a new loss (growing back toward ssthresh no faster than slow
// start would). Like Linux, after each ACK the allowance is the window
// pipe + sndcnt, so the sending loop is the ordinary cwnd - pipe one.
//
// Linux counts packets; this counts bytes, with the proportional target
// rounded up to whole segments so that with full-sized segments the
// numbers are Linux's. RecoverFS is RFC 6937's FlightSize at the start of
// recovery (Linux divides by prior_cwnd: its ssthresh is derived from cwnd,
// ours, RFC 5681's, from FlightSize, so each divides by its own base).

// prrState is one recovery's PRR accounting (RFC 6937 §3 variables).
type prrState struct {
	on        bool   // PRR governs sending in this recovery
	recoverFS uint64 // RecoverFS: FlightSize when recovery began
	delivered uint64 // prr_delivered: bytes delivered to the receiver since
	out       uint64 // prr_out: bytes sent since
	cwnd      uint32 // the window after the latest ACK: pipe + sndcnt
}

// prrStart begins PRR for the recovery enterRecovery just started, with
// flight = SND.MAX - SND.UNA. PRR needs the RFC 6675 pipe (SACK recovery)
// and an ssthresh to reduce to: an algorithm without one (BBR) keeps its
// own window.
func (c *Conn) prrStart(flight uint32) {
	r := c.rateState()
	p := &r.prr
	*p = prrState{}
	if c.cfg.DisablePRR || !c.sackRecovery || c.cc.SSThresh() == math.MaxUint32 {
		return
	}
	p.on = true
	p.recoverFS = uint64(max(flight, 1))
	// Until the first ACK counts its delivered data, only the fast
	// retransmission (sent whatever the window) goes.
	p.cwnd = c.pipe()
}

// prrStop ends PRR (the recovery ended, was undone or an RTO fired).
func (c *Conn) prrStop() {
	if c.rate != nil {
		c.rate.prr.on = false
	}
}

// prrActive reports whether PRR sets the sending window now.
func (c *Conn) prrActive() bool {
	return c.rate != nil && c.rate.prr.on && c.sackRecovery
}

// prrOnSend counts n bytes sent (new data or retransmission) in prr_out.
func (c *Conn) prrOnSend(n uint32) {
	if c.prrActive() {
		c.rate.prr.out += uint64(n)
	}
}

// prrOnAck is RFC 6937 §3's per-ACK step (Linux tcp_cwnd_reduction) for an
// ACK that delivered bytes (DeliveredData: the change in SND.UNA plus the
// change in SACKed bytes). advanced tells that SND.UNA moved, newlyLost that
// the ACK marked more segments lost. It sets the window to pipe + sndcnt.
func (c *Conn) prrOnAck(delivered uint32, advanced, newlyLost bool) {
	if !c.prrActive() || delivered == 0 {
		return
	}
	p := &c.rate.prr
	p.delivered += uint64(delivered)
	pipe := uint64(c.pipe())
	ss := uint64(c.cc.SSThresh())
	mss := uint64(c.sndMSS)
	var sndcnt uint64
	if pipe > ss {
		// Proportional part: sndcnt = CEIL(prr_delivered * ssthresh /
		// RecoverFS) - prr_out, in whole segments.
		target := ceilDiv(mulSat(p.delivered, ss), p.recoverFS)
		target = ceilDiv(target, mss) * mss
		if target > p.out {
			sndcnt = target - p.out
		}
	} else {
		// PRR-SSRB: limit = MAX(prr_delivered - prr_out, DeliveredData)
		// + MSS, the MSS only on an ACK that advances SND.UNA and marks
		// no new loss (Linux; RFC 6937 adds it on every ACK).
		limit := uint64(delivered)
		if p.delivered > p.out {
			limit = max(limit, p.delivered-p.out)
		}
		if advanced && !newlyLost {
			limit += mss
		}
		sndcnt = min(ss-pipe, limit)
	}
	if p.out == 0 {
		// The fast retransmission goes on entering recovery (Linux:
		// sndcnt = max(sndcnt, 1) while prr_out is 0).
		sndcnt = max(sndcnt, mss)
	}
	p.cwnd = ccSaturate(pipe + sndcnt)
}

// ceilDiv is ceil(a/b) for b > 0 (a below 2^63).
func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// mulSat is a*b, saturating at 2^62 (ample for byte counts: PRR's target
// then exceeds any window).
func mulSat(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 || lo > 1<<62 {
		return 1 << 62
	}
	return lo
}
