package tcp

import (
	"fmt"
	"time"
)

// Recovery is a loss detection and recovery algorithm (Config.Recovery).
type Recovery uint8

// Loss recovery algorithms.
const (
	// RecoveryRACK is RFC 8985 RACK-TLP: segments are deemed lost by the
	// time they were sent (RACK) and a lost tail is probed after 2·SRTT
	// (TLP) rather than waiting for the RTO. Linux's default. It needs
	// SACK; a connection without it falls back to RecoveryNewReno.
	RecoveryRACK Recovery = iota
	// RecoverySACK is RFC 6675: a hole is lost once DupThresh segments
	// are SACKed above it.
	RecoverySACK
	// RecoveryNewReno is RFC 6582: three duplicate ACKs, SACK or not.
	RecoveryNewReno
)

var recoveryNames = [...]string{RecoveryRACK: "rack", RecoverySACK: "sack", RecoveryNewReno: "newreno"}

// String returns the name ParseRecovery takes.
func (r Recovery) String() string {
	if int(r) < len(recoveryNames) {
		return recoveryNames[r]
	}
	return fmt.Sprintf("Recovery(%d)", uint8(r))
}

// ParseRecovery returns the algorithm named "rack", "sack" or "newreno".
func ParseRecovery(name string) (Recovery, error) {
	for i, n := range recoveryNames {
		if n == name {
			return Recovery(i), nil
		}
	}
	return 0, fmt.Errorf("tcp: unknown recovery %q (rack, sack, newreno)", name)
}

// RecoveryNames lists the names ParseRecovery takes.
func RecoveryNames() []string { return append([]string(nil), recoveryNames[:]...) }

const (
	// tlpWCDelAckT is RFC 8985 §7.2's WCDelAckT, the worst-case delayed
	// ACK a lone segment may wait for at the receiver (Linux adds
	// TCP_RTO_MIN, the same 200 ms).
	tlpWCDelAckT = 200 * time.Millisecond
	// tlpMinPTO floors the PTO of a flight of several segments, Linux's
	// TCP_TIMEOUT_MIN: on a sub-millisecond path 2·SRTT is shorter than
	// the scheduling jitter of the ACK path and would probe for nothing.
	tlpMinPTO = 2 * time.Millisecond
	// tlpNoSRTT is the PTO before any RTT sample (RFC 8985 §7.2).
	tlpNoSRTT = time.Second
)

// rackTimer kinds: what rackState.timer is armed for.
const (
	rackTimerPTO uint8 = iota + 1 // tail-loss probe (RFC 8985 §7.2)
	rackTimerREO                  // reordering window (RFC 8985 §6.3)
)

// rackState is RACK-TLP's per-connection state (RFC 8985), kept in the
// rateState (only a sender has it). The loss-probe and reordering timers
// are one early timer that fires before the RTO; the RTO timer itself
// stays armed underneath, as RFC 8985 §7.3 re-arms it after each probe.
type rackState struct {
	timer     connTimer
	timerKind uint8

	// TLP (RFC 8985 §7): a probe is outstanding until the ACK of
	// TLP.end_seq (tlpEnd) tells whether it repaired a loss.
	tlpOut     bool
	tlpRetrans bool // the probe was a retransmission (TLP.is_retrans)
	tlpPending bool // the PTO fired: the probe goes in sendData
	tlpSending bool // the probe is being sent: cwnd does not hold it back
	tlpEnd     Seq
	tlpCWnd    uint32 // cwnd when the probe was sent

	tlpProbes, tlpRecoveries uint64
}

// recoveryInUse is the configured recovery, or RecoveryNewReno when it
// needs SACK and the peer did not agree to it.
func (c *Conn) recoveryInUse() Recovery {
	if !c.sackOK {
		return RecoveryNewReno
	}
	return c.cfg.Recovery
}

// sackLoss reports whether SACK information drives loss recovery (RFC 6675
// or RACK), as opposed to duplicate ACKs alone (RFC 6582).
func (c *Conn) sackLoss() bool { return c.recoveryInUse() != RecoveryNewReno }

// tlpEnabled reports whether the connection sends tail-loss probes:
// RACK-TLP with SACK (RFC 8985 §7.2; Linux also requires SACK).
func (c *Conn) tlpEnabled() bool { return c.cfg.Recovery == RecoveryRACK && c.sackOK }

// tlpPTO is RFC 8985 §7.2 TLP_calc_PTO without the RTO cap: 2·SRTT, plus
// WCDelAckT when one segment is in flight, 1 s before any RTT sample.
func (c *Conn) tlpPTO() time.Duration {
	if !c.rto.HasSample() {
		return tlpNoSRTT
	}
	pto := 2 * c.rto.SRTT()
	if c.sndUna.Size(c.sndMax) <= uint32(c.sndMSS) {
		return pto + tlpWCDelAckT
	}
	return max(pto, tlpMinPTO)
}

// tlpSchedule (re)arms the loss probe after new data was sent or an ACK
// advanced SND.UNA (RFC 8985 §7.2): in the open state (no recovery), with
// no probe outstanding, data in flight and the RTO armed. The PTO never
// fires after the RTO would: PTO = min(PTO, time left on the RTO), and at
// a tie the probe replaces the RTO.
func (c *Conn) tlpSchedule(now Time) {
	r := c.rate
	if r == nil || !c.tlpEnabled() {
		return
	}
	k := &r.rack
	if k.timerKind == rackTimerREO && k.timer.armed() {
		return // the reordering timer goes first (RFC 8985 §7.2)
	}
	if k.tlpSending {
		return
	}
	if c.inRecovery || k.tlpOut || k.tlpPending || c.sndUna == c.sndMax || c.sndNxt != c.sndMax ||
		!c.rtxTimer.armed() || !c.state.canSendData() || c.sndWnd == 0 {
		k.stopTimer(rackTimerPTO)
		return
	}
	at := now.Add(c.tlpPTO())
	if c.rtxTimer.at.Before(at) {
		at = c.rtxTimer.at
	}
	k.timer.set(at)
	k.timerKind = rackTimerPTO
}

// stopTimer stops the early timer if it is armed for kind.
func (k *rackState) stopTimer(kind uint8) {
	if k.timerKind == kind {
		k.timer.stop()
		k.timerKind = 0
	}
}

// fireRACKTimer runs the loss-probe or reordering timer when due.
func (c *Conn) fireRACKTimer(now Time) {
	r := c.rate
	if r == nil || !r.rack.timer.due(now) {
		return
	}
	k := &r.rack
	kind := k.timerKind
	k.timer.stop()
	k.timerKind = 0
	switch kind {
	case rackTimerPTO:
		if c.sndUna != c.sndMax && !c.inRecovery && c.state.canSendData() {
			k.tlpPending = true
			// The probe takes the RTO's place: the RTO restarts now
			// (RFC 8985 §7.3), so a tie does not fire both.
			c.rtxTimer.set(now.Add(c.rto.RTO()))
		}
	}
}

// sendLossProbe is RFC 8985 §7.3 TLP_send_probe: one segment of new data
// if the peer's window allows it (whatever cwnd says), else the
// highest-sequence segment again. Then the RTO is re-armed, not the PTO.
// It reports false when pacing holds the probe back.
func (c *Conn) sendLossProbe(now Time, e Emitter) bool {
	if c.paceBlocked(now) {
		return false
	}
	k := &c.rate.rack
	k.tlpPending = false
	if c.sndUna == c.sndMax {
		return true
	}
	cwnd := c.cc.CWnd()
	nxt := c.sndNxt
	k.tlpRetrans = false
	k.tlpSending = true
	sent := c.sendNewSegment(now, e, uint32(c.sndMSS))
	k.tlpSending = false
	if !sent || c.sndNxt == nxt {
		mss := uint32(c.sndMSS)
		start := c.sndUna
		if end := c.dataEnd(); end.GreaterThan(c.sndUna) && c.sndUna.Size(end) > mss {
			start = end - Seq(mss)
		} else if !end.GreaterThan(c.sndUna) && c.finSent() {
			start = c.finSeq
		}
		if c.retransmit(now, e, start, mss) == 0 {
			return true
		}
		k.tlpRetrans = true
	}
	k.tlpOut = true
	k.tlpEnd = c.sndMax
	k.tlpCWnd = cwnd
	k.tlpProbes++
	c.rtxTimer.set(now.Add(c.rto.RTO()))
	return true
}

// tlpOnAck is RFC 8985 §7.4 TLP_process_ack, with Linux's reading of a
// pure duplicate ACK (tcp_process_tlp_ack): once SND.UNA reaches
// TLP.end_seq, a probe of new data is done; a D-SACK of the probe says
// the original arrived too (no loss); an ACK beyond TLP.end_seq without
// that D-SACK says the probe repaired a loss, and the congestion window
// is reduced once, as after a recovery: from the cwnd of when the probe
// left, as Linux's tcp_init_cwnd_reduction does (the flight of a tail is
// too small a measure of the window the path took). dsack is the ACK's
// D-SACK block, if any.
func (c *Conn) tlpOnAck(now Time, ack Seq, dsack *SACKBlock, pureDup bool) {
	r := c.rate
	if r == nil || !r.rack.tlpOut {
		return
	}
	k := &r.rack
	if ack.LessThan(k.tlpEnd) {
		return
	}
	switch {
	case !k.tlpRetrans:
		k.tlpOut = false
	case dsack != nil && dsack.End == k.tlpEnd:
		k.tlpOut = false
	case ack.GreaterThan(k.tlpEnd):
		k.tlpOut = false
		k.tlpRecoveries++
		c.cc.OnEvent(now, CCEvent{Kind: CCRecoveryStart, InFlight: k.tlpCWnd})
		c.cc.OnEvent(now, CCEvent{Kind: CCRecoveryEnd, InFlight: c.sndUna.Size(c.sndMax)})
	case pureDup:
		k.tlpOut = false
	}
}
