package tcp

import "syscall"

// keepaliveActive reports whether keepalive probing applies in the current
// state (RFC 1122 §4.2.3.6: an idle synchronized connection we may still
// send on).
func (c *Conn) keepaliveActive() bool {
	return c.cfg.KeepAlive && (c.state == StateEstablished || c.state == StateCloseWait)
}

// armKeepalive (re)starts the idle period at last (the last time an
// acceptable segment arrived).
func (c *Conn) armKeepalive(last Time) {
	if !c.keepaliveActive() {
		c.keepTimer.stop()
		return
	}
	c.keepTimer.set(last.Add(c.cfg.KeepIdle))
}

// onKeepaliveTimeout sends the next keepalive probe, or gives up after
// KeepCount unanswered probes (at idle + count*interval) or, with a user
// timeout, once that has elapsed since the last segment received and a probe
// is out (Linux semantics): RST, ETIMEDOUT, CLOSED.
func (c *Conn) onKeepaliveTimeout(now Time) {
	if !c.keepaliveActive() {
		return
	}
	idle := now.Sub(c.lastRecv)
	if idle < c.cfg.KeepIdle {
		c.keepTimer.set(c.lastRecv.Add(c.cfg.KeepIdle))
		return
	}
	if c.sndUna != c.sndMax || c.dataEnd().GreaterThan(c.sndNxt) {
		// Data is in flight or queued: the retransmission and persist
		// timers watch the peer; look again after another idle period.
		c.keepTimer.set(now.Add(c.cfg.KeepIdle))
		return
	}
	giveUp := int(c.kaProbes) >= c.cfg.KeepCount
	if c.cfg.UserTimeout > 0 {
		giveUp = c.kaProbes > 0 && idle >= c.cfg.UserTimeout
	}
	if giveUp {
		c.queueRST(c.sndMax, c.rcvNxt, true)
		c.fail(syscall.ETIMEDOUT, EventTimedOut)
		return
	}
	c.kaProbes++
	c.probePending = true
	c.probeData = false
	c.probeSeq = c.sndMax - 1 // SEG.SEQ = SND.NXT-1: elicits an ACK
	c.keepTimer.set(now.Add(c.cfg.KeepInterval))
}
