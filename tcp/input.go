package tcp

import "syscall"

// Input processes one arriving segment: RFC 9293 §3.10.7 "SEGMENT ARRIVES",
// in the RFC's order, with RFC 5961 (RST/SYN/ACK hardening) and RFC 7323
// (PAWS). The payload may be of any length up to 64 KiB (a GRO
// super-segment); it is copied before Input returns.
func (c *Conn) Input(now Time, seg *Segment) {
	now = c.advanceClock(now)
	c.stats.segsIn++
	if len(seg.Payload) > 0 {
		c.stats.dataSegsIn++
	}
	switch c.state {
	case StateClosed:
		c.inputClosed(seg)
	case StateListen:
		// Listening is the stack's business (it calls AcceptSYN); a Conn
		// never sits in LISTEN.
	case StateSynSent:
		c.inputSynSent(now, seg)
	default:
		c.inputSynchronized(now, seg)
	}
}

// inputClosed is §3.10.7.1: everything but a RST is answered with a RST.
func (c *Conn) inputClosed(seg *Segment) {
	if rst, ok := ResetFor(seg); ok {
		c.replyRST(rst)
	}
}

// ResetFor returns the RST that answers seg when it matched no connection
// (RFC 9293 §3.10.7.1): <SEQ=SEG.ACK><CTL=RST> if seg carries an ACK, else
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. ok is false for a RST, which is
// never answered.
func ResetFor(seg *Segment) (rst Segment, ok bool) {
	if seg.Flags&FlagRST != 0 {
		return Segment{}, false
	}
	if seg.Flags&FlagACK != 0 {
		return Segment{Seq: seg.Ack, Flags: FlagRST}, true
	}
	return Segment{Ack: seg.Seq + Seq(seg.Len()), Flags: FlagRST | FlagACK}, true
}

// inputSynSent is §3.10.7.3.
func (c *Conn) inputSynSent(now Time, seg *Segment) {
	c.lastRecv = now
	// First: check the ACK bit.
	ackOK := false
	if seg.Flags&FlagACK != 0 {
		if seg.Ack.LessThanEq(c.iss) || seg.Ack.GreaterThan(c.sndMax) {
			if seg.Flags&FlagRST == 0 {
				c.queueRST(seg.Ack, 0, false)
			}
			return
		}
		ackOK = true // SND.UNA < SEG.ACK =< SND.NXT
	}
	// Second: the RST bit. RFC 5961 §3.2 keeps RFC 793's rule here: a RST
	// is acceptable if its ACK acknowledges our SYN.
	if seg.Flags&FlagRST != 0 {
		if ackOK {
			c.fail(syscall.ECONNREFUSED, EventRefused)
		} else {
			c.rare().rstIgnored++
		}
		return
	}
	// Fourth: the SYN bit.
	if seg.Flags&FlagSYN == 0 {
		return
	}
	c.irs = seg.Seq
	c.rcvNxt = seg.Seq + 1
	c.lastAckSent = c.rcvNxt
	c.rcvAdv = c.rcvNxt + Seq(min(c.rb.Free(), 65535))
	c.negotiate(&seg.Options, false)
	c.takeTimestamp(now, seg)
	// RFC 7323 §2.2: the window of a SYN or SYN-ACK is never scaled.
	c.sndWnd = uint32(seg.Window)
	c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
	c.sndWl1 = seg.Seq
	if !ackOK {
		// Simultaneous open (Figure 8): SYN-RECEIVED, send SYN,ACK with
		// our ISS; its retransmission is driven by the same timer.
		c.sndWl2 = c.iss
		c.state = StateSynReceived
		c.synPending = true
		c.rtxTimer.stop()
		return
	}
	c.sampleRTT(now, seg, seg.Ack)
	c.ecnOnSYNACK(seg)
	c.sndUna = seg.Ack
	c.sndWl2 = seg.Ack
	c.rtxTimer.stop()
	c.userTimer.stop()
	c.enterEstablished(now)
	c.ackNow = true
	if c.wrClosed {
		c.state = StateFinWait1
	}
	// Data or a FIN on the SYN-ACK: continue with the sixth step.
	rest := *seg
	rest.Seq++
	rest.Flags &^= FlagSYN
	c.trimToWindow(&rest)
	c.processText(now, &rest)
	c.processFIN(now, &rest)
}

// rcvWindow is RCV.WND: what is left of the window we last advertised.
func (c *Conn) rcvWindow() uint32 {
	if c.rcvAdv.GreaterThan(c.rcvNxt) {
		return c.rcvNxt.Size(c.rcvAdv)
	}
	return 0
}

// acceptable is the segment acceptability test of §3.10.7.4 (the four cases).
func (c *Conn) acceptable(seg *Segment) bool {
	segLen := seg.Len()
	wnd := c.rcvWindow()
	switch {
	case segLen == 0 && wnd == 0:
		return seg.Seq == c.rcvNxt
	case segLen == 0:
		return seg.Seq.InWindow(c.rcvNxt, wnd)
	case wnd == 0:
		return false
	default:
		return seg.Seq.InWindow(c.rcvNxt, wnd) ||
			(seg.Seq+Seq(segLen)-1).InWindow(c.rcvNxt, wnd)
	}
}

// inputSynchronized is §3.10.7.4, for SYN-RECEIVED and every later state.
func (c *Conn) inputSynchronized(now Time, seg *Segment) {
	if c.state == StateSynReceived && seg.Flags&FlagSYN != 0 && seg.Seq == c.irs && seg.Flags&FlagRST == 0 {
		if seg.Flags&FlagACK == 0 {
			// The peer retransmitted its SYN: our SYN-ACK was lost.
			c.synPending = true
			return
		}
		// The peer's SYN-ACK in a simultaneous open: its SYN is already
		// accounted for; process the rest.
		rest := *seg
		rest.Seq++
		rest.Flags &^= FlagSYN
		seg = &rest
	}

	// RFC 7323 §5.3 R1: PAWS, before the sequence number check.
	if c.tsOK && seg.Options.HasTimestamp && seg.Flags&FlagRST == 0 &&
		int32(seg.Options.TSVal-c.tsRecent) < 0 {
		if now.Sub(c.tsRecentAt) <= pawsIdleLimit {
			c.rare().pawsDrops++
			c.ackNow = true
			return
		}
		// §5.5: TS.Recent is more than 24 days old and no longer valid.
		c.tsRecent = seg.Options.TSVal
		c.tsRecentAt = now
	}

	// First: check the sequence number.
	if !c.acceptable(seg) {
		if seg.Flags&FlagRST != 0 {
			c.rare().rstIgnored++
			return
		}
		c.rare().outOfWindow++
		if seg.Flags&FlagSYN != 0 {
			// RFC 5961 §4.2: a SYN, whatever its sequence number, is
			// answered with a (rate-limited) challenge ACK.
			c.challengeACK(now)
			return
		}
		if len(seg.Payload) == 0 && seg.Flags&FlagFIN == 0 && !c.oowACKAllowed(now) {
			// A bare ACK outside the window (a forgery, or one side of an
			// ACK loop) gets at most one answer per interval.
			return
		}
		c.ackNow = true
		if len(seg.Payload) > 0 && seg.Seq.LessThan(c.rcvNxt) {
			// Data we already have: the peer retransmitted it (an RTO,
			// a tail-loss probe), so our ACKs may be lost or late. As
			// Linux's tcp_send_dupack, ACK the next segments at once
			// too (tcp_enter_quickack_mode), so that the sender's
			// restarted window opens at the rate of its segments.
			c.enterQuickAck()
		}
		if len(seg.Payload) > 0 && c.sackOK && (seg.Seq + Seq(len(seg.Payload))).LessThanEq(c.rcvNxt) {
			// RFC 2883: report the duplicate.
			c.setDSACK(seg.Seq, seg.Seq+Seq(len(seg.Payload)))
		}
		if c.state == StateTimeWait && seg.Flags&FlagFIN != 0 && seg.Seq+Seq(seg.Len()) == c.rcvNxt {
			// §3.10.7.4 eighth step, TIME-WAIT: a retransmitted FIN is
			// acknowledged and restarts the 2 MSL timeout.
			c.twTimer.set(now.Add(c.cfg.TimeWaitTimeout))
			return
		}
		// RFC 9293 §3.10.7.4: with a zero receive window, valid ACKs must
		// still be processed.
		if c.rcvWindow() == 0 && seg.Seq == c.rcvNxt && seg.Flags&FlagACK != 0 &&
			seg.Flags&(FlagSYN) == 0 {
			rest := *seg
			rest.Payload = nil
			rest.Flags &^= FlagFIN
			c.processACK(now, &rest)
		}
		return
	}

	c.lastRecv = now
	c.kaProbes = 0
	c.armKeepalive(now)

	// Second: the RST bit (RFC 5961 §3.2).
	if seg.Flags&FlagRST != 0 {
		if seg.Seq != c.rcvNxt {
			c.challengeACK(now)
			return
		}
		c.resetByPeer()
		return
	}

	// Fourth: the SYN bit. RFC 5961 §4.2: a SYN in a synchronized state
	// (in window or not) is answered with a challenge ACK.
	if seg.Flags&FlagSYN != 0 {
		c.challengeACK(now)
		return
	}

	// RFC 7323 §4.3 R3: update TS.Recent.
	if c.tsOK && seg.Options.HasTimestamp && int32(seg.Options.TSVal-c.tsRecent) >= 0 &&
		seg.Seq.LessThanEq(c.lastAckSent) {
		c.tsRecent = seg.Options.TSVal
		c.tsRecentAt = now
	}

	// Fifth: the ACK field.
	if seg.Flags&FlagACK == 0 {
		return
	}
	if c.state == StateSynReceived {
		if !seg.Ack.InRange(c.sndUna+1, c.sndMax+1) {
			c.queueRST(seg.Ack, 0, false)
			return
		}
		c.sampleRTT(now, seg, seg.Ack)
		c.enterEstablished(now)
		c.sndUna = c.iss + 1
		c.sndWnd = uint32(seg.Window) << c.sndWScale
		c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
		c.sndWl1, c.sndWl2 = seg.Seq, seg.Ack
		c.rtxTimer.stop()
		c.userTimer.stop()
		if c.wrClosed {
			// CLOSE in SYN-RECEIVED queued a FIN (§3.10.4).
			c.state = StateFinWait1
		}
	}
	if !c.processACK(now, seg) {
		return
	}
	if c.state == StateClosed {
		return
	}

	// Sixth: the URG bit. Urgent data is delivered inline as ordinary data
	// (like SO_OOBINLINE); the urgent pointer is ignored (RFC 6093 §5
	// recommends that new applications not use it).

	// Seventh: the segment text, eighth: the FIN bit.
	c.trimToWindow(seg)
	if c.orphaned && (c.state == StateFinWait1 || c.state == StateFinWait2) && len(seg.Payload) > 0 &&
		(seg.Seq + Seq(len(seg.Payload))).GreaterThan(c.rcvNxt) {
		// Nobody will read it: like Linux, reset the connection.
		if rst, ok := ResetFor(seg); ok {
			c.replyRST(rst)
		}
		c.toClosed()
		return
	}
	if c.ecn&ecnOK != 0 && seg.Len() > 0 {
		c.ecnInput(seg, len(seg.Payload) > 0)
	}
	c.processText(now, seg)
	c.processFIN(now, seg)
}

// trimToWindow cuts the parts of seg outside [RCV.NXT, RCV.NXT+RCV.WND)
// (§3.10.7.4: "only the portion in the window is processed"). seg is a copy
// the caller may modify (or the caller's segment: only Seq, Payload and the
// FIN flag change, and Input owns it for the call).
func (c *Conn) trimToWindow(seg *Segment) {
	if seg.Seq.LessThan(c.rcvNxt) {
		skip := seg.Seq.Size(c.rcvNxt)
		if skip >= uint32(len(seg.Payload)) {
			if len(seg.Payload) > 0 {
				// A retransmission of what we have: our ACKs may be
				// lost, ACK quickly (Linux tcp_data_queue).
				c.enterQuickAck()
			}
			if len(seg.Payload) > 0 && c.sackOK {
				c.setDSACK(seg.Seq, seg.Seq+Seq(len(seg.Payload)))
			}
			if skip > uint32(len(seg.Payload)) {
				seg.Flags &^= FlagFIN // the FIN is old too
			}
			seg.Payload = nil
		} else {
			if c.sackOK {
				c.setDSACK(seg.Seq, c.rcvNxt)
			}
			seg.Payload = seg.Payload[skip:]
		}
		seg.Seq = c.rcvNxt
	}
	wnd := c.rcvWindow()
	right := c.rcvNxt + Seq(wnd)
	if end := seg.Seq + Seq(len(seg.Payload)); end.GreaterThan(right) {
		keep := uint32(0)
		if right.GreaterThan(seg.Seq) {
			keep = seg.Seq.Size(right)
		}
		seg.Payload = seg.Payload[:keep]
		seg.Flags &^= FlagFIN // the FIN lies beyond the window
	}
}

// resetByPeer handles an acceptable RST (SEG.SEQ = RCV.NXT), per state.
func (c *Conn) resetByPeer() {
	switch c.state {
	case StateSynReceived:
		if c.passive {
			// "Return to LISTEN": the stack's listener simply forgets it.
			c.fail(syscall.ECONNRESET, EventReset)
		} else {
			c.fail(syscall.ECONNREFUSED, EventRefused)
		}
	case StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait:
		c.fail(syscall.ECONNRESET, EventReset)
	default: // CLOSING, LAST-ACK, TIME-WAIT
		c.toClosed()
	}
}

// challengeACK queues an RFC 5961 §3.2/§4.2 challenge ACK
// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at most ChallengeACKLimit per second.
func (c *Conn) challengeACK(now Time) {
	r := c.rare()
	if r.chalCount == 0 || now.Sub(r.chalStart) >= 1e9 {
		r.chalStart = now
		r.chalCount = 0
	}
	if r.chalCount >= c.cfg.ChallengeACKLimit {
		r.challengeSuppressed++
		return
	}
	r.chalCount++
	r.challengeACKs++
	c.ackNow = true
}

// oowACKAllowed reports whether an answer to a bare out-of-window segment
// may go out now (OutOfWindowACKInterval), and counts it either way.
func (c *Conn) oowACKAllowed(now Time) bool {
	r := c.rare()
	if iv := c.cfg.OutOfWindowACKInterval; iv > 0 && r.oowSent && now.Sub(r.oowLast) < iv {
		r.oowACKSuppressed++
		return false
	}
	r.oowSent, r.oowLast = true, now
	return true
}

// setDSACK records a duplicate range to report first in the next ACK
// (RFC 2883) and asks for that ACK now.
func (c *Conn) setDSACK(start, end Seq) {
	if !c.sackOK || start == end {
		return
	}
	c.rare().dsack = SACKBlock{Start: start, End: end}
	c.dsackPending = true
	c.ackNow = true
}

// takeTimestamp records the peer's TSval from a SYN or SYN-ACK.
func (c *Conn) takeTimestamp(now Time, seg *Segment) {
	if c.tsOK && seg.Options.HasTimestamp {
		c.tsRecent = seg.Options.TSVal
		c.tsRecentAt = now
	}
}

// tsNow is our timestamp clock (RFC 7323 §5.4): milliseconds plus the
// per-connection offset.
func (c *Conn) tsNow(now Time) uint32 { return TSClock(now, c.cfg.TSOffset) }

// TSClock is the timestamp clock (RFC 7323 §5.4) of a connection whose
// Config.TSOffset is offset: 1 ms ticks of the stack's clock plus the offset.
// SYN cookies use it to stamp a SYN-ACK the way the connection will.
func TSClock(now Time, offset uint32) uint32 {
	return uint32(int64(now)/int64(tsTick)) + offset
}

// sampleRTT takes an RTT sample for an ACK that advances SND.UNA to ack:
// from the echoed timestamp if there is one (RFC 7323 §4), else from the
// timed segment (RFC 6298 §3, Karn's algorithm).
func (c *Conn) sampleRTT(now Time, seg *Segment, ack Seq) {
	if c.tsOK && seg.Options.HasTimestamp && seg.Options.TSEcr != 0 {
		c.rttTimer.Cancel()
		maxAge := uint32(c.cfg.RTOMax/tsTick) * 4
		if d, ok := rtoTimestampSample(c.tsNow(now), seg.Options.TSEcr, tsTick, maxAge); ok {
			c.rto.Sample(d)
		}
		return
	}
	if d, ok := c.rttTimer.OnAck(ack, now); ok {
		c.rto.Sample(d)
	}
}

// processACK is the fifth step for ESTABLISHED and later states. It returns
// false when the segment must be dropped.
func (c *Conn) processACK(now Time, seg *Segment) bool {
	ack := seg.Ack
	// RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA-MAX.SND.WND, SND.NXT].
	if ack.GreaterThan(c.sndMax) {
		if !(c.zwpOut && ack == c.sndMax+1) {
			// ACK of unsent data: drop, and ACK (§3.10.7.4) within
			// the challenge-ACK budget (RFC 5961 §5.2, §7), as a
			// forgery that guessed the window but not SND.NXT would
			// otherwise be reflected one for one.
			c.challengeACK(now)
			return false
		}
		// The peer took our zero-window probe byte.
		c.sndMax = ack
	}
	if ack.GreaterThan(c.sndUna) {
		c.zwpOut = false
	}
	if ack.LessThan(c.sndUna - Seq(c.maxSndWnd)) {
		c.challengeACK(now)
		return false
	}
	c.lastAckRecv = now
	c.probesOut = 0
	if c.state == StateTimeWait {
		return true
	}

	wnd := uint32(seg.Window) << c.sndWScale
	outstanding := c.sndMax != c.sndUna
	isDup := ack == c.sndUna && outstanding && len(seg.Payload) == 0 &&
		seg.Flags&(FlagSYN|FlagFIN) == 0 && wnd == c.sndWnd

	if c.sc == nil {
		c.sc = new(Scratch)
	}
	// The sample lives in the scratch space: handed to an interface method
	// it would escape, and the ACK path allocates nothing.
	rs := &c.sc.rs
	*rs = RateSample{InRecovery: c.inRecovery, PriorInFlight: c.inFlight()}
	priorFlight := c.sndUna.Size(c.sndMax)
	wasRecovery, wasLoss := c.inRecovery, c.rate != nil && c.rate.undo.loss
	sackedBefore := c.board.SACKedBytes()
	pureDup := isDup && seg.Options.NumSACK == 0
	advanced := ack.GreaterThan(c.sndUna)
	sbFull := c.sb.Free() < int(c.sndMSS) // the application keeps it full
	var newlySACKed uint32
	if advanced {
		rs.Acked = c.sndUna.Size(ack)
		c.ackNewData(now, seg, ack)
	}
	var blocks []SACKBlock
	var dsack *SACKBlock
	if c.sackOK && (outstanding || seg.Options.NumSACK > 0) {
		// (With nothing outstanding, a D-SACK still tells of a
		// spurious retransmission.)
		blocks = c.sackBlocksOf(seg)
		var ds bool
		newlySACKed, ds = c.board.UpdateSACK(c.sndUna, c.sndMax, blocks)
		if ds {
			dsack = &blocks[0]
		}
		if c.sackLoss() {
			// RFC 6675 §2 and §5: with SACK a duplicate ACK is one that
			// SACKs new data. An ACK that only repeats what the sender
			// already knows (a receiver's window update or a repeated
			// ACK; the timestamps differ) says nothing of a loss, and
			// three of them must not start a recovery, as Linux counts
			// duplicates by sacked_out.
			isDup = ack == c.sndUna && outstanding && newlySACKed > 0 && len(seg.Payload) == 0
		}
	}
	rs.NewlySACKed = newlySACKed
	if c.rate != nil {
		c.rate.rack.dsackSeen = dsack != nil
		c.rateOnAck(now, blocks, rs)
	}
	c.ecnOnAck(now, seg, priorFlight)
	rs.InCWR = c.ecn&ecnInCWR != 0
	if r := c.rate; r != nil && r.rack.reordAck {
		r.rack.reordAck = false
		r.undo.reordSeen++
	}
	c.undoOnAck(now, seg, dsack, advanced, wasRecovery, wasLoss)
	rs.InFlight, rs.SRTT, rs.MSS = c.inFlight(), c.rto.SRTT(), uint32(c.sndMSS)
	c.cc.OnAck(now, rs)
	if isDup {
		c.stats.dupAcksIn++
	}
	c.tlpOnAck(now, ack, dsack, pureDup)
	c.lossDetection(now, isDup, ack)
	// RFC 6937 DeliveredData: the change in SND.UNA plus the change in
	// SACKed bytes.
	if d := int64(rs.Acked) + int64(c.board.SACKedBytes()) - int64(sackedBefore); d > 0 {
		c.prrOnAck(uint32(min(d, 1<<32-1)), advanced, rs.NewlyLost > 0)
	}

	// Update the send window (§3.10.7.4, SND.WL1/SND.WL2 rule).
	if c.sndWl1.LessThan(seg.Seq) || (c.sndWl1 == seg.Seq && c.sndWl2.LessThanEq(ack)) {
		opened := c.sndWnd == 0 && wnd > 0
		c.sndWnd = wnd
		c.sndWl1, c.sndWl2 = seg.Seq, ack
		c.maxSndWnd = max(c.maxSndWnd, wnd)
		if opened || wnd > 0 {
			c.persistTimer.stop()
			c.persistBackoff = 0
			if c.rs != nil {
				c.rs.probing = false
			}
		}
	}
	if advanced {
		c.tlpSchedule(now) // RFC 8985 §7.2: restart the PTO on an ACK of new data
	}
	c.sndBufTune(sbFull)
	return true
}

// sackBlocksOf returns seg's SACK blocks (a view into the segment).
func (c *Conn) sackBlocksOf(seg *Segment) []SACKBlock {
	n := min(int(seg.Options.NumSACK), MaxSACKBlocks)
	return seg.Options.SACKBlocks[:n]
}

// ackNewData handles SND.UNA < SEG.ACK =< SND.MAX: drop acknowledged bytes,
// take an RTT sample, restart the retransmission timer (RFC 6298 §5.3),
// grow the window and advance the closing states.
func (c *Conn) ackNewData(now Time, seg *Segment, ack Seq) {
	acked := c.sndUna.Size(ack)
	dataAcked := acked
	if c.sndUna == c.iss {
		dataAcked-- // our SYN
	}
	finNowAcked := false
	if c.wrClosed && ack.GreaterThan(c.finSeq) && !c.sndUna.GreaterThan(c.finSeq) {
		dataAcked--
		finNowAcked = true
	}
	if ack.GreaterThan(c.sndNxt) {
		// After a go-back-N rewind or a window probe, the peer had more.
		c.sndNxt = ack
	}
	c.sampleRTT(now, seg, ack)
	c.sb.Ack(int(dataAcked))
	c.sndUna = ack
	if !c.sndSml.GreaterThan(ack) {
		// Keep SND.SML within the window so that it cannot look
		// unacknowledged again after the sequence space wraps.
		c.sndSml = ack
	}
	c.stats.bytesAcked += uint64(dataAcked)
	c.retries = 0
	if dataAcked > 0 {
		c.events |= EventWritable
	}
	if c.highRxt.LessThan(ack) {
		c.highRxt = ack
	}

	if c.sndUna == c.sndMax {
		c.rtxTimer.stop()
		c.userTimer.stop()
	} else {
		c.rtxTimer.set(now.Add(c.rto.RTO()))
		c.firstUnacked = now
		if c.cfg.UserTimeout > 0 {
			c.userTimer.set(now.Add(c.cfg.UserTimeout))
		}
	}

	flight := c.sndUna.Size(c.sndMax)
	if c.inRecovery {
		if !ack.LessThan(c.recover) {
			// Full acknowledgment (RFC 6582 §3.2 step 3, RFC 6675 §5).
			c.inRecovery = false
			c.sackRecovery = false
			c.prrStop()
			c.undoEnded()
			c.rackRecoveryEnded()
			c.cc.OnEvent(now, CCEvent{Kind: CCRecoveryEnd, InFlight: flight})
		} else if !c.sackRecovery {
			// Partial acknowledgment (RFC 6582 §3.2 step 4): retransmit
			// the next hole, deflate by the amount acked, add back one
			// MSS if at least one MSS was acked.
			c.rtxPending = true
			cw := c.cc.CWnd()
			if acked < cw {
				cw -= acked
			} else {
				cw = 0
			}
			if acked >= uint32(c.sndMSS) {
				cw += uint32(c.sndMSS)
			}
			c.cc.SetCWnd(cw)
			c.rateMarkLost(ack, ack+Seq(c.sndMSS))
		}
	}
	c.dupAcks = 0

	if finNowAcked {
		switch c.state {
		case StateFinWait1:
			c.state = StateFinWait2
			if c.orphaned {
				c.fw2Timer.set(now.Add(c.cfg.FinWait2Timeout))
			}
		case StateClosing:
			c.enterTimeWait(now)
		case StateLastAck:
			c.toClosed()
		}
	}
}

// lossDetection counts duplicate ACKs and starts fast retransmit / fast
// recovery: RFC 5681 §3.2 with RFC 6582 NewReno without SACK, RFC 6675
// with SACK.
func (c *Conn) lossDetection(now Time, isDup bool, ack Seq) {
	if c.state == StateClosed || c.sndUna == c.sndMax {
		c.dupAcks = 0
		return
	}
	rack := c.rackActive() && c.rate != nil
	if rack {
		c.rackArmReorderTimer(now)
	}
	if c.inRecovery {
		if isDup && !c.sackRecovery {
			// RFC 6582 §3.2 step 4 (RFC 5681 §3.2 step 4): inflate.
			c.cc.SetCWnd(ccSaturatingAdd(c.cc.CWnd(), uint32(c.sndMSS)))
		}
		return
	}
	if isDup {
		c.dupAcks++
	}
	var lost bool
	if rack {
		// RFC 8985 §6: RACK's marks alone start recovery.
		lost = c.rackLost()
	} else {
		lost = c.dupAcks >= 3 || (c.sackLoss() && c.dupAcks > 0 && c.board.IsLost(c.sndUna))
	}
	if !lost || c.sndUna.LessThan(c.recover) {
		return
	}
	c.enterRecovery(now)
}

// enterRecovery starts fast retransmit and fast recovery (RFC 5681 §3.2,
// RFC 6582, RFC 6675 §5, RFC 8985 §6.3).
func (c *Conn) enterRecovery(now Time) {
	flight := c.sndUna.Size(c.sndMax)
	c.inRecovery = true
	c.recover = c.sndMax
	if c.rackActive() && c.rate != nil {
		// Retransmissions of the previous recovery above its recovery
		// point may still be in flight: RACK resends them only once it
		// deems them lost again (srRelost), not because a new episode
		// began, as Linux keeps an skb's RETRANS mark across episodes.
		c.highRxt = c.highRxt.Max(c.sndUna)
	} else {
		c.highRxt = c.sndUna
	}
	c.rare().fastRecoveries++
	c.rttTimer.Cancel()
	c.undoStart(false)
	c.cc.OnEvent(now, CCEvent{Kind: CCRecoveryStart, InFlight: flight})
	c.ecnReduced()
	c.rateMarkLost(c.sndUna, c.sndUna+Seq(c.sndMSS))
	if c.sackLoss() {
		c.sackRecovery = true
	} else {
		c.cc.SetCWnd(ccSaturatingAdd(c.cc.SSThresh(), 3*uint32(c.sndMSS)))
	}
	c.prrStart(flight)
	// Retransmit the first unacknowledged segment at once, whatever the
	// window (RFC 5681 §3.2 step 2, RFC 6675 §5 step 4.2 (2)).
	c.rtxPending = true
}

// processText is the seventh step: queue in-window data, in order into the
// receive buffer, out of order into the reassembly queue.
func (c *Conn) processText(now Time, seg *Segment) {
	if len(seg.Payload) == 0 || !c.state.canReceiveData() {
		return
	}
	if seg.Seq == c.rcvNxt {
		c.quickAckOnData(now)
		// The payload is inside the window (trimToWindow): what the
		// waiting reader's buffer takes, the receive buffer need not.
		direct := c.directCopy(seg.Payload)
		n := direct + c.rb.Write(seg.Payload[direct:])
		c.stats.bytesReceived += uint64(n)
		c.rcvNxt += Seq(n)
		c.rcvUnacked += uint32(n)
		if c.tune != nil {
			c.rcvRTTMeasure(now, seg)
		}
		if direct > 0 {
			c.rcvSpaceAdjust(now) // the application has read them
		}
		if c.oooRanges() > 0 {
			// RFC 5681 §4.2: a segment that fills all or part of a
			// gap is acknowledged at once, whether or not it reaches
			// the next stored range; while a hole remains, the sender
			// in recovery clocks its retransmissions out on these ACKs
			// (Linux: __tcp_ack_snd_check sends at once while the
			// out-of-order queue is not empty).
			c.rcvNxt = c.rq.Pop(c.rcvNxt, c.deliverInOrder)
			c.ackNow = true
			c.oooRelease()
		}
		c.events |= EventReadable
		if c.cfg.DelayedACK < 0 || c.rcvUnacked >= 2*uint32(c.rcvMSS) || c.quickAck() {
			c.ackNow = true
		} else if !c.delackTimer.armed() {
			c.delackTimer.set(now.Add(c.cfg.DelayedACK))
		}
		return
	}
	// Out of order (RFC 5681 §4.2: ACK immediately).
	stored, dup := c.oooInsert(seg.Seq, seg.Payload)
	if dup {
		c.setDSACK(seg.Seq, seg.Seq+Seq(len(seg.Payload)))
	}
	_ = stored
	c.stats.reordering++
	c.ackNow = true
}

// processFIN is the eighth step. An out-of-order FIN is remembered and
// processed when RCV.NXT reaches it.
func (c *Conn) processFIN(now Time, seg *Segment) {
	if seg.Flags&FlagFIN != 0 && !c.rdClosed {
		finAt := seg.Seq + Seq(len(seg.Payload))
		if finAt != c.rcvNxt {
			if c.rcvNxt.LessThan(finAt) {
				c.finRcvd = true
				c.finRcvdSeq = finAt
				c.ackNow = true
			}
			return
		}
	} else if !(c.finRcvd && c.finRcvdSeq == c.rcvNxt && !c.rdClosed) {
		return
	}
	switch c.state {
	case StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2:
	default:
		return
	}
	c.rcvNxt++
	c.rdClosed = true
	c.finRcvd = false
	c.events |= EventEOF | EventReadable
	switch c.state {
	case StateSynReceived, StateEstablished:
		c.state = StateCloseWait
		// The peer closed first; our own FIN usually follows as soon as
		// the application sees EOF, so the ACK waits for it (or for the
		// delayed-ACK timer) and the close costs one segment less, as
		// Linux does (tcp_fin enters pingpong mode: delayed ACK). Before
		// any data has arrived Linux has no ACK timeout estimate yet
		// (icsk_ack.ato is 0) and its delayed ACK goes at once.
		if c.cfg.DelayedACK < 0 || (c.cfg.QuickACKs >= 0 && c.stats.bytesReceived == 0) {
			c.ackNow = true
		} else if !c.ackNow && !c.delackTimer.armed() {
			c.delackTimer.set(now.Add(c.cfg.DelayedACK))
		}
		return
	}
	c.ackNow = true
	switch c.state {
	case StateFinWait1:
		if c.finAcked() {
			c.enterTimeWait(now)
		} else {
			c.state = StateClosing
		}
	case StateFinWait2:
		c.enterTimeWait(now)
	}
}

// enterTimeWait starts TIME-WAIT: 2*MSL, then CLOSED.
func (c *Conn) enterTimeWait(now Time) {
	c.state = StateTimeWait
	c.rtxTimer.stop()
	c.persistTimer.stop()
	c.keepTimer.stop()
	c.fw2Timer.stop()
	c.userTimer.stop()
	c.twTimer.set(now.Add(c.cfg.TimeWaitTimeout))
}
