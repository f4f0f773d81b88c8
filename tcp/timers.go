package tcp

import (
	"math"
	"syscall"
	"time"
)

// NextDeadline returns the earliest time at which Output must be called again
// because a timer fires (retransmission, persist, delayed ACK, keepalive,
// FIN-WAIT-2, TIME-WAIT, user timeout) or a paced segment is due. ok is
// false when no timer is armed.
func (c *Conn) NextDeadline() (t Time, ok bool) {
	for _, tm := range [...]*connTimer{&c.rtxTimer, &c.persistTimer, &c.delackTimer,
		&c.keepTimer, &c.fw2Timer, &c.twTimer, &c.userTimer} {
		if tm.armed() && (!ok || tm.at.Before(t)) {
			t, ok = tm.at, true
		}
	}
	if r := c.rate; r != nil && r.pace.timer.armed() && (!ok || r.pace.timer.at.Before(t)) {
		t, ok = r.pace.timer.at, true
	}
	if r := c.rate; r != nil && r.rack.timer.armed() && (!ok || r.rack.timer.at.Before(t)) {
		t, ok = r.rack.timer.at, true
	}
	return t, ok
}

// advanceClock returns the time an entry point runs at: now, or the latest
// time the connection has seen if now is earlier. The stack's goroutines
// read the clock before they take the connection's lock (a reader's whole
// batch runs at the time it was read), so an application's Write can run
// at a later time than the reader's Output that follows it. Time going
// back would send a TSval lower than one already sent, and the peer's
// PAWS check (RFC 7323 §5) would discard that segment: a loss on a
// lossless path, answered by a duplicate ACK.
func (c *Conn) advanceClock(now Time) Time {
	if now.Before(c.clock) {
		return c.clock
	}
	c.clock = now
	return now
}

// fireTimers runs every timer that is due at now.
func (c *Conn) fireTimers(now Time) {
	if c.twTimer.due(now) {
		c.twTimer.stop()
		c.toClosed() // TIME-WAIT over: delete the TCB
		return
	}
	if c.orphaned && c.state == StateFinWait2 && !c.fw2Timer.armed() {
		c.fw2Timer.set(now.Add(c.cfg.FinWait2Timeout))
	}
	if c.fw2Timer.due(now) {
		c.fw2Timer.stop()
		if c.state == StateFinWait2 {
			// Orphaned FIN-WAIT-2 bounded like Linux's tcp_fin_timeout:
			// the connection silently goes away.
			c.toClosed()
			return
		}
	}
	if c.userTimer.due(now) {
		c.userTimer.stop()
		if c.sndUna != c.sndMax {
			// RFC 5482: data stayed unacknowledged for the user timeout.
			c.fail(syscall.ETIMEDOUT, EventTimedOut)
			return
		}
	}
	c.fireRACKTimer(now)
	if c.rtxTimer.due(now) {
		c.rtxTimer.stop()
		c.onRetransmitTimeout(now)
		if c.state == StateClosed {
			return
		}
	}
	if c.persistTimer.due(now) {
		c.persistTimer.stop()
		c.onPersistTimeout(now)
		if c.state == StateClosed {
			return
		}
	}
	if c.keepTimer.due(now) {
		c.keepTimer.stop()
		c.onKeepaliveTimeout(now)
		if c.state == StateClosed {
			return
		}
	}
	if c.delackTimer.due(now) {
		c.delackTimer.stop()
		c.ackNow = true
		c.pingpong = false // the delayed ACK found no reply to ride on (Linux tcp_delack_timer_handler)
	}
	if r := c.rate; r != nil && r.pace.timer.due(now) {
		r.pace.timer.stop() // the segment it waited for goes in sendData
	}
}

// onRetransmitTimeout is RFC 6298 §5.4-5.6: retransmit the earliest
// unacknowledged segment, back the timer off, and give up with ETIMEDOUT
// after SynRetries / SynAckRetries retransmissions or, for data, once the
// Retries2 time bound (retries2Timeout) has passed since the oldest
// unacknowledged data was first sent.
func (c *Conn) onRetransmitTimeout(now Time) {
	c.rare().rtoExpirations++
	switch c.state {
	case StateSynSent, StateSynReceived:
		limit := c.cfg.SynRetries
		if c.state == StateSynReceived && c.passive {
			limit = c.cfg.SynAckRetries
		}
		if int(c.synRetransmits) >= limit {
			c.fail(syscall.ETIMEDOUT, EventTimedOut)
			return
		}
		c.synRetransmits++
		c.stats.retransSegs++
		c.stats.totalRetrans++
		c.stats.retransPkts++
		c.rto.Backoff()
		c.synPending = true
		return
	}
	if c.sndUna == c.sndMax {
		return // everything was acknowledged meanwhile
	}
	// The peer shut its window with our data in flight (it shrank the
	// window, or dropped what it could not queue). Nothing may go into
	// the window, so without a probe no timer would be left to notice the
	// window opening or the peer dying: retransmit SND.UNA's segment
	// anyway as the probe (RFC 9293 §3.8.6.1), backing off, and give up
	// only when the peer has answered nothing for RTOMax, like Linux's
	// tcp_retransmit_timer ("receiver dastardly shrinks window"); an
	// orphaned connection gets no such grace.
	zeroWnd := c.sndWnd == 0 && !c.orphaned
	if zeroWnd && now.Sub(c.lastAckRecv) > c.cfg.RTOMax {
		c.fail(syscall.ETIMEDOUT, EventTimedOut)
		return
	}
	if !zeroWnd && c.retries > 0 && now.Sub(c.firstUnacked) >= c.retries2Timeout() {
		c.fail(syscall.ETIMEDOUT, EventTimedOut)
		return
	}
	c.retries++
	c.rto.Backoff()
	if r := c.rate; r != nil {
		// The RTO ends any probe (Linux clears tlp_high_seq).
		k := &r.rack
		k.timer.stop()
		k.timerKind, k.tlpOut, k.tlpPending = 0, false, false
	}
	flight := c.sndUna.Size(c.sndMax)
	c.undoStart(true)
	c.prrStop()
	c.cc.OnEvent(now, CCEvent{Kind: CCTimeout, InFlight: flight})
	c.ecnReduced()
	c.rateMarkLost(c.sndUna, c.sndMax)
	// RFC 6582 §3.2 step 1 / RFC 6675 §5.1: no new recovery until all data
	// outstanding now is acknowledged.
	c.recover = c.sndMax
	c.inRecovery = false
	c.sackRecovery = false
	c.dupAcks = 0
	c.rtxPending = false
	// RFC 2018 §8: after a timeout, SACK information is not trusted.
	c.board.Reset()
	c.highRxt = c.sndUna
	c.rackResetMarks()
	c.rttTimer.Cancel()
	// Go back N: resend from SND.UNA as the (now one-segment) window allows.
	c.sndNxt = c.sndUna
	c.rtxPending = zeroWnd // the window allows nothing: SND.UNA's segment is the probe
}

// retries2Timeout is how long SND.UNA's data may stay unacknowledged, with
// at least one retransmission, before the connection gives up: Linux's
// tcp_retries2 semantics (retransmits_timed_out / tcp_model_timeout), where
// the count is converted into the time from the first transmission until the
// timer after the Retries2-th retransmission would fire if the RTO started
// at RTOMin and doubled up to RTOMax. With the defaults (15, 200 ms, 120 s)
// that is 0.2·(2^10-1) + 6·120 = 924.6 s. A connection whose RTO is larger than
// RTOMin therefore gives up after fewer retransmissions instead of hanging
// for Retries2 capped RTOs; RFC 1122 §4.2.3.5 leaves R2 to the
// implementation (at least 100 s).
func (c *Conn) retries2Timeout() time.Duration {
	n, limit := c.cfg.Retries2, c.cfg.RTOMax
	var total time.Duration
	rto := c.cfg.RTOMin
	i := 0
	for ; i <= n && rto < limit; i++ { // the doubling part
		total += rto
		rto = min(2*rto, limit)
	}
	// The capped part, saturating for an absurd Retries2.
	if rest := time.Duration(n - i + 1); rest > 0 {
		if rest > (math.MaxInt64-total)/limit {
			return math.MaxInt64
		}
		total += rest * limit
	}
	return total
}

// orphanRetries is how many zero-window probes an orphaned connection gets
// at least before it may be given up (Linux tcp_orphan_retries = 0 means 8).
const orphanRetries = 8

// backedOffRTO is the RTO backed off persistBackoff times, not capped
// (Linux inet_csk_rto_backoff), saturating at RTOMax.
func (c *Conn) backedOffRTO() time.Duration {
	d := max(c.rto.RTO(), c.cfg.RTOMin)
	for i := int32(0); i < c.persistBackoff && d < c.cfg.RTOMax; i++ {
		d *= 2
	}
	return d
}

// onPersistTimeout sends a window probe (RFC 9293 §3.8.6.1, RFC 1122
// §4.2.2.17) and backs the persist timer off. Probes that are answered reset
// the failure count, so without a user timeout a zero window never kills a
// live connection; only Retries2 unanswered probes do. With a user timeout
// the connection fails once the timeout has passed since the last ACK with a
// probe out, or since the first probe of the episode even if every probe is
// answered (Linux ≥ 5.17, icsk_probes_tstamp): a peer that keeps its window
// shut for longer than the user timeout is treated as dead. An orphaned
// connection is given up after orphanRetries probes once the interval has
// reached RTOMax.
func (c *Conn) onPersistTimeout(now Time) {
	// The episode state lives in rareState, made only when a probe goes
	// out: the persist timer also fires as the SWS override, which needs
	// none of it.
	r := c.rs
	probing := r != nil && r.probing
	if !c.state.canSendData() || c.sndUna != c.sndMax {
		if probing {
			r.probing = false
		}
		return
	}
	if ut := c.cfg.UserTimeout; ut > 0 && probing && now.Sub(r.probesStart) >= ut {
		c.fail(syscall.ETIMEDOUT, EventTimedOut)
		return
	}
	if c.cfg.UserTimeout > 0 && c.probesOut > 0 && now.Sub(c.lastAckRecv) >= c.cfg.UserTimeout {
		c.fail(syscall.ETIMEDOUT, EventTimedOut)
		return
	}
	if int(c.probesOut) >= c.cfg.Retries2 {
		c.fail(syscall.ETIMEDOUT, EventTimedOut)
		return
	}
	if c.orphaned && c.persistBackoff >= orphanRetries && c.backedOffRTO() >= c.cfg.RTOMax {
		// Nobody will read or close an orphan, and answered probes would
		// keep it forever: like Linux's tcp_probe_timer for a dead socket
		// (tcp_orphan_retries), give up once the backed-off interval has
		// reached RTOMax after at least orphanRetries probes.
		c.fail(syscall.ETIMEDOUT, EventTimedOut)
		return
	}
	if c.sndWnd > 0 {
		// Sender SWS avoidance held back a small segment with nothing in
		// flight: the persist timer is the override timeout.
		c.forceSend = true
		return
	}
	if !c.dataEnd().GreaterThan(c.sndNxt) {
		return
	}
	if !probing {
		r = c.rare()
		r.probing, r.probesStart = true, now
	}
	c.probesOut++
	c.persistBackoff++
	c.probePending = true
	c.probeData = true
	c.probeSeq = c.sndNxt
	c.persistTimer.set(now.Add(c.persistInterval(now)))
}
