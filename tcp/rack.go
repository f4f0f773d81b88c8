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

	// RACK (RFC 8985 §6): the most recently sent segment known delivered
	// (RACK.xmit_ts, RACK.end_seq), the RTT measured from it (RACK.rtt),
	// the highest delivered end (RACK.fack).
	has       bool
	xmitTS    Time
	endSeq    Seq
	fack      Seq
	rtt       time.Duration
	reordSeen bool // RACK.reordering_seen
	reordAck  bool // the ACK being processed showed reordering (Info.ReordSeen)
	// The reordering window, RACK.min_RTT/4 times reoWndMult, grows by one
	// per round trip that brings a D-SACK and returns to 1 after
	// reoWndPersist recoveries without one (RFC 8985 §6.2 step 4).
	reoWndMult    uint32
	reoWndPersist int32
	dsackRound    Seq
	dsackRoundOn  bool
	dsackSeen     bool   // the ACK being processed carries a D-SACK
	relost        bool   // some records are marked srRelost
	reordDist     uint32 // the largest reordering seen, bytes (Info.Reordering)
	// lostEnd: every byte of [SND.UNA, lostEnd) not SACKed is deemed lost
	// (first transmissions are sent in sequence order, so the lost ones
	// form a prefix); retransmissions found lost again are marked
	// srRelost instead.
	lostEnd Seq
	// reoTimeout is what the last RACK_detect_loss left for the
	// reordering timer (0 = nothing waits).
	reoTimeout time.Duration
}

// rackReoWndPersist is RFC 8985 §6.2's 16 recoveries.
const rackReoWndPersist = 16

// rackActive reports whether RACK detects losses on this connection.
func (c *Conn) rackActive() bool { return c.recoveryInUse() == RecoveryRACK }

// rackSentAfter is RFC 8985 RACK_sent_after: whether (t1, seq1) was sent
// after (t2, seq2), the sequence breaking ties of segments sent at once.
func rackSentAfter(t1 Time, seq1 Seq, t2 Time, seq2 Seq) bool {
	return t1 > t2 || (t1 == t2 && seq1.GreaterThan(seq2))
}

// rackAdvance is RFC 8985 §6.2 steps 2 and 3 for one newly delivered
// record, of which [.., end) is now acknowledged or SACKed: RACK.rtt,
// RACK.xmit_ts/end_seq, and RACK.fack with reordering detection. A
// retransmitted record acknowledged sooner than the minimum RTT after its
// retransmission was acknowledged for its original (RFC 8985 §6.2 step 2).
func (r *rateState) rackAdvance(now Time, rec *sentRecord, end Seq) {
	k := &r.rack
	rtt := now.Sub(rec.sentTime)
	retrans := rec.flags&srRetrans != 0
	if retrans && rtt < r.minRTT {
		return
	}
	if !k.has || rackSentAfter(rec.sentTime, end, k.xmitTS, k.endSeq) {
		k.xmitTS, k.endSeq = rec.sentTime, end
	}
	if !k.has || end.GreaterThan(k.fack) {
		k.fack = end
	} else if end.LessThan(k.fack) && !retrans {
		k.reordSeen = true
		// Linux tcp_check_sack_reordering's metric: how far below the
		// highest delivered byte this first transmission started.
		k.reordDist = max(k.reordDist, ccSaturate(uint64(rec.start.Size(k.fack))))
		k.reordAck = true
	}
	k.rtt, k.has = rtt, true
}

// rackReoWnd is RFC 8985 §6.2 RACK_update_reo_wnd's window: none before
// reordering was seen once in recovery or with DupThresh segments SACKed
// (RACK then behaves like RFC 6675 for the first loss), else
// min(RACK.min_RTT/4 · reo_wnd_mult, SRTT).
func (c *Conn) rackReoWnd() time.Duration {
	r := c.rate
	k := &r.rack
	if !k.reordSeen {
		if c.inRecovery || c.sndUna.LessThan(c.recover) {
			return 0
		}
		if c.board.SACKedBytes() >= sbDupThresh*uint32(c.sndMSS) {
			return 0
		}
	}
	w := r.minRTT / 4 * time.Duration(max(k.reoWndMult, 1))
	if srtt := c.rto.SRTT(); w > srtt {
		w = srtt
	}
	return w
}

// rackUpdateReoWnd is RFC 8985 §6.2 step 4 on an ACK: a D-SACK in a new
// round grows the window's multiplier.
func (c *Conn) rackUpdateReoWnd() {
	k := &c.rate.rack
	if k.dsackRoundOn && !c.sndUna.LessThan(k.dsackRound) {
		k.dsackRoundOn = false
	}
	if !k.dsackRoundOn && k.dsackSeen {
		k.dsackRoundOn, k.dsackRound = true, c.sndMax
		k.reoWndMult = max(k.reoWndMult, 1) + 1
		k.reoWndPersist = rackReoWndPersist
	}
}

// rackRecoveryEnded counts a recovery towards resetting the reordering
// window (RFC 8985 §6.2 step 4).
func (c *Conn) rackRecoveryEnded() {
	if c.rate == nil {
		return
	}
	k := &c.rate.rack
	if k.reoWndPersist > 0 {
		k.reoWndPersist--
		if k.reoWndPersist == 0 {
			k.reoWndMult = 1
		}
	}
}

// rackDetectLoss is RFC 8985 §6.2 step 5 (RACK_detect_loss): a segment
// sent before RACK.xmit_ts is lost once RACK.rtt + reo_wnd has passed
// since it was sent; for the others it leaves the time to wait in
// reoTimeout. Lost first transmissions extend lostEnd; lost
// retransmissions are marked srRelost. Lost records are counted in the
// rate estimator's lost bytes.
func (c *Conn) rackDetectLoss(now Time) {
	r := c.rate
	k := &r.rack
	k.reoTimeout = 0
	// lostEnd never lags SND.UNA, so it cannot look ahead of it again
	// once the sequence space wraps.
	k.lostEnd = k.lostEnd.Max(c.sndUna)
	if !k.has || c.sndUna == c.sndMax {
		return
	}
	reo := c.rackReoWnd()
	expired := func(rec *sentRecord) (bool, bool) {
		if !rackSentAfter(k.xmitTS, k.endSeq, rec.sentTime, rec.end()) {
			return false, false
		}
		left := rec.sentTime.Add(k.rtt + reo).Sub(now)
		if left > 0 {
			k.reoTimeout = max(k.reoTimeout, left)
			return false, true
		}
		return true, true
	}
	lost := k.lostEnd.Max(c.sndUna)
	if c.sackRecovery {
		// Retransmissions (below HighRxt) lost again.
		limit := lost.Min(c.highRxt)
		for i := r.search(c.sndUna); i < r.n; i++ {
			rec := r.at(i)
			if !rec.start.LessThan(limit) {
				break
			}
			if rec.flags&(srDelivered|srRelost) != 0 || rec.flags&srRetrans == 0 {
				continue
			}
			if gone, _ := expired(rec); gone {
				rec.flags |= srRelost
				rec.flags &^= srRtxOut
				k.relost = true
				r.lost += c.unsackedIn(rec)
			}
		}
	}
	for i := r.search(lost); i < r.n; i++ {
		rec := r.at(i)
		if rec.flags&srDelivered != 0 {
			continue
		}
		gone, _ := expired(rec)
		if !gone {
			break
		}
		lost = rec.end()
		if rec.flags&srLost == 0 {
			rec.flags |= srLost
			r.lost += c.unsackedIn(rec)
		}
	}
	k.lostEnd = lost
	r.lostScan = r.lostScan.Max(lost)
}

// rackLost reports whether RACK has deemed something lost that is not
// yet retransmitted.
func (c *Conn) rackLost() bool {
	k := &c.rate.rack
	return k.relost || k.lostEnd.GreaterThan(c.sndUna.Max(c.highRxt)) ||
		(!c.sackRecovery && k.lostEnd.GreaterThan(c.sndUna))
}

// rackArmReorderTimer arms the reordering timer (RFC 8985 §6.3) for the
// time RACK_detect_loss left, or stops it.
func (c *Conn) rackArmReorderTimer(now Time) {
	k := &c.rate.rack
	if k.reoTimeout <= 0 {
		k.stopTimer(rackTimerREO)
		return
	}
	k.timer.set(now.Add(k.reoTimeout))
	k.timerKind = rackTimerREO
}

// rackOnReorderTimeout is RFC 8985 §6.3: the reordering window of some
// segment ran out with no ACK; detect losses again and recover.
func (c *Conn) rackOnReorderTimeout(now Time) {
	if c.sndUna == c.sndMax || !c.state.canSendData() {
		return
	}
	c.rackDetectLoss(now)
	if c.rackLost() {
		if !c.inRecovery && !c.sndUna.LessThan(c.recover) {
			c.enterRecovery(now)
		} else if c.inRecovery {
			c.rtxPending = true
		}
	}
	c.rackArmReorderTimer(now)
	if !c.rtxTimer.armed() {
		c.rtxTimer.set(now.Add(c.rto.RTO()))
	}
}

// rackResetMarks forgets RACK's loss marks after an RTO, which marks
// everything lost and goes back to SND.UNA.
func (c *Conn) rackResetMarks() {
	r := c.rate
	if r == nil {
		return
	}
	k := &r.rack
	k.lostEnd = c.sndUna
	if k.relost {
		for i := 0; i < r.n; i++ {
			r.at(i).flags &^= srRelost
		}
		k.relost = false
	}
	k.stopTimer(rackTimerREO)
}

// nextLostSeg is RFC 6675 NextSeg() rule (1) with RACK's or RFC 6675's
// notion of lost: a retransmission found lost again first, then the first
// lost hole at or above HighRxt, at most mss bytes.
func (c *Conn) nextLostSeg(mss uint32) (Seq, uint32, bool) {
	if !c.rackActive() || c.rate == nil {
		return c.board.NextSegToRetransmit(c.sndUna, c.sndMax, mss, c.highRxt)
	}
	r := c.rate
	k := &r.rack
	if k.relost {
		for i := r.search(c.sndUna); i < r.n; i++ {
			rec := r.at(i)
			if rec.flags&srRelost == 0 {
				continue
			}
			if s, e, _, ok := c.board.firstHole(rec.start.Max(c.sndUna), rec.end(), rec.start); ok {
				return s, sbSegLen(s, e, mss), true
			}
			rec.flags &^= srRelost // SACKed meanwhile
		}
		k.relost = false
	}
	lost := k.lostEnd.Min(c.sndMax)
	if !lost.GreaterThan(c.sndUna) {
		return 0, 0, false
	}
	s, e, _, ok := c.board.firstHole(c.sndUna, lost, c.highRxt)
	if !ok {
		return 0, 0, false
	}
	return s, sbSegLen(s, e, mss), true
}

// rackPipe is RFC 6675 SetPipe() with RACK's notion of lost: unSACKed
// bytes count once unless deemed lost (below lostEnd), once more if
// retransmitted (below HighRxt), and not at all while a retransmission
// found lost again waits to be resent.
func (c *Conn) rackPipe() uint32 {
	una, nxt := c.sndUna, c.sndMax
	if !una.LessThan(nxt) {
		return 0
	}
	r := c.rate
	k := &r.rack
	lost := k.lostEnd.Max(una)
	rxt := c.highRxt.Max(una)
	var pipe uint64
	c.board.holes(una, nxt, func(hs, he Seq) {
		if from := hs.Max(lost); from.LessThan(he) {
			pipe += uint64(from.Size(he))
		}
		if to := he.Min(rxt); hs.LessThan(to) {
			pipe += uint64(hs.Size(to))
		}
	})
	if k.relost {
		for i := r.search(una); i < r.n; i++ {
			rec := r.at(i)
			if !rec.start.LessThan(rxt) {
				break
			}
			if rec.flags&srRelost != 0 {
				pipe -= min(pipe, uint64(rec.start.Max(una).Size(rec.end().Min(rxt))))
			}
		}
	}
	return ccSaturate(pipe)
}

// holes calls f for every unSACKed range of [una, nxt), in order.
func (s *sendScoreboard) holes(una, nxt Seq, f func(start, end Seq)) {
	at := una
	for _, r := range s.ranges {
		if !r.End.GreaterThan(at) {
			continue
		}
		if !r.Start.LessThan(nxt) {
			break
		}
		if at.LessThan(r.Start) {
			f(at, r.Start)
		}
		at = r.End
	}
	if at.LessThan(nxt) {
		f(at, nxt)
	}
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
func (c *Conn) tlpEnabled() bool {
	return c.cfg.Recovery == RecoveryRACK && c.sackOK && !c.cfg.DisableTLP
}

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
	case rackTimerREO:
		c.rackOnReorderTimeout(now)
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
		if end := c.sentDataEnd(); end.GreaterThan(c.sndUna) && c.sndUna.Size(end) > mss {
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
