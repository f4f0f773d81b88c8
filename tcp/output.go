package tcp

import "time"

// Output fires the timers that are due, then emits every segment that should
// be sent now: a pending RST, a SYN or SYN-ACK, retransmissions, new data
// (subject to the peer's window, the congestion window, Nagle and sender SWS
// avoidance), probes, and a pure ACK if one is owed and nothing else carried
// it. Each segment is handed to e.Emit and is valid only during that call.
func (c *Conn) Output(now Time, e Emitter) {
	now = c.advanceClock(now)
	if c.sc == nil {
		c.sc = new(Scratch)
	}
	c.fireTimers(now)
	if c.ackOwed {
		c.ackOwed = false
		if !c.ackNow && !c.delackTimer.armed() && c.state.canReceiveData() {
			c.delackTimer.set(now.Add(c.cfg.DelayedACK))
		}
	}
	if c.rstPending {
		c.rstPending = false
		c.sc.seg = Segment{Seq: c.rs.rstSeq, Ack: c.rs.rstAck, Flags: c.rstFlags}
		if c.rstTS {
			c.sc.seg.Options.HasTimestamp = true
			c.sc.seg.Options.TSVal = c.tsNow(now)
			c.sc.seg.Options.TSEcr = c.tsRecent
		}
		c.stats.segsOut++
		e.Emit(&c.sc.seg)
	}
	switch c.state {
	case StateClosed, StateListen:
		return
	case StateSynSent:
		if c.synPending {
			c.sendSYN(now, e)
		}
		return
	case StateSynReceived:
		if c.synPending {
			c.sendSYN(now, e)
			return
		}
	}
	if c.state.canSendData() {
		c.sendData(now, e)
		c.rateCheckAppLimited()
		if c.rs != nil {
			c.rs.pushOnce = false // a push is for what is queued when it is asked
		}
		if c.sb.Len() > 0 || c.rate != nil {
			c.chronoOutput(now)
		}
	}
	if c.probePending {
		c.probePending = false
		c.sendProbe(now, e)
	}
	if c.ackNow {
		c.sendACK(now, e)
	}
}

// sendSYN emits our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED) with the
// options we offer (RFC 9293 §3.10.7.2-3, RFC 7323, RFC 2018), and arms the
// retransmission timer.
func (c *Conn) sendSYN(now Time, e Emitter) {
	seg := &c.sc.seg
	*seg = Segment{Seq: c.iss, Flags: FlagSYN}
	seg.Flags |= c.ecnSYNFlags()
	o := &seg.Options
	o.HasMSS, o.MSS = true, c.cfg.MSS
	wnd := uint16(min(c.rb.Free(), 65535))
	seg.Window = wnd // RFC 7323 §2.2: never scaled in a SYN
	if c.state == StateSynSent {
		o.HasWindowScale, o.WindowScale = !c.cfg.DisableWindowScale, c.offerWScale
		o.SACKPermitted = !c.cfg.DisableSACK
		if !c.cfg.DisableTimestamps {
			o.HasTimestamp, o.TSVal = true, c.tsNow(now)
		}
	} else {
		seg.Flags |= FlagACK
		seg.Ack = c.rcvNxt
		o.HasWindowScale, o.WindowScale = c.wsOK, c.offerWScale
		o.SACKPermitted = c.sackOK
		if c.tsOK {
			o.HasTimestamp, o.TSVal, o.TSEcr = true, c.tsNow(now), c.tsRecent
		}
		c.rcvAdv = c.rcvNxt + Seq(wnd)
		c.lastAckSent = c.rcvNxt
		c.ackNow = false
	}
	c.synPending = false
	if c.sndMax == c.iss {
		c.sndNxt, c.sndMax = c.iss+1, c.iss+1
		c.rttTimer.Start(c.iss+1, now)
	} else {
		c.rttTimer.Cancel() // Karn: a retransmitted SYN gives no sample
	}
	c.rtxTimer.set(now.Add(c.rto.RTO()))
	c.stats.segsOut++
	e.Emit(seg)
}

// nextWindow is the window the next segment would advertise, as the scaled
// field can express it. Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): the
// right edge moves only by at least min(RCV.BUFF/2, Eff.snd.MSS) (or to let
// the peer's FIN in); it never moves left (RFC 9293 §3.8.6: shrinking the
// window is strongly discouraged), so the result is RCV.WND or more, less
// only what the scaled field cannot express.
func (c *Conn) nextWindow() uint32 {
	free := c.rb.Free()
	if room := c.rb.r.growRoom(); room < free {
		// The memory budget is spent: offer only what can be stored.
		free = room
		c.cfg.Memory.countWindowLimited()
	}
	edge := c.rcvNxt + Seq(free)
	target := c.rcvAdv
	thresh := min(uint32(c.rb.Cap())/2, uint32(c.rcvMSS))
	if edge.GreaterThan(c.rcvAdv) && (c.rcvAdv.Max(c.rcvNxt).Size(edge) >= thresh || c.rdClosed) {
		target = edge
	}
	var wnd uint32
	if target.GreaterThan(c.rcvNxt) {
		wnd = c.rcvNxt.Size(target)
	}
	return min(wnd>>c.rcvWScale, 65535) << c.rcvWScale
}

// windowField computes the window field to advertise (nextWindow, scaled)
// and records the new right edge.
func (c *Conn) windowField() uint16 {
	wnd := c.nextWindow()
	if adv := c.rcvNxt + Seq(wnd); adv.GreaterThan(c.rcvAdv) {
		c.rcvAdv = adv
	}
	return uint16(wnd >> c.rcvWScale)
}

// sackCount returns how many SACK blocks the next segment carries: D-SACK
// first, then the reassembly queue's ranges; 3 fit beside timestamps, 4
// without (RFC 2018 §3).
func (c *Conn) sackCount() int {
	if !c.sackOK {
		return 0
	}
	n := c.oooRanges()
	if c.dsackPending {
		n++
	}
	limit := MaxSACKBlocks
	if c.tsOK {
		limit = 3
	}
	return min(n, limit)
}

// sackOptLen is the option space SACK blocks take on the next segment.
func (c *Conn) sackOptLen() int {
	if n := c.sackCount(); n > 0 {
		return 4 + 8*n // NOP NOP kind len + 8 per block
	}
	return 0
}

// finishAndEmit completes a non-SYN segment whose Seq, Flags and Payload are
// set in c.sc.seg: ACK, window, timestamps and SACK blocks. Every such segment
// acknowledges RCV.NXT, so it settles any owed (or delayed) ACK.
func (c *Conn) finishAndEmit(now Time, e Emitter) {
	seg := &c.sc.seg
	seg.Flags |= FlagACK
	seg.Ack = c.rcvNxt
	seg.Window = c.windowField()
	seg.Urgent = 0
	seg.Options = Options{}
	if c.tsOK {
		seg.Options.HasTimestamp = true
		seg.Options.TSVal = c.tsNow(now)
		seg.Options.TSEcr = c.tsRecent
	}
	if n := c.sackCount(); n > 0 {
		var ds *SACKBlock
		if c.dsackPending {
			ds = &c.rs.dsack
			c.rare().dsacksSent++
		}
		// The blocks are written straight into the segment's options.
		blocks := seg.Options.SACKBlocks[:0]
		if c.rq != nil {
			blocks = c.rq.SACKBlocksN(blocks, n, ds)
		} else if ds != nil {
			blocks = append(blocks, *ds)
		}
		seg.Options.NumSACK = uint8(len(blocks))
		c.dsackPending = false
	}
	c.lastAckSent = c.rcvNxt
	c.ackNow = false
	c.quickAckSent()
	c.rcvUnacked = 0
	c.delackTimer.stop()
	c.ecnOutput(seg)
	c.stats.segsOut++
	if len(seg.Payload) > 0 {
		c.stats.dataSegsOut++
	}
	e.Emit(seg)
}

// sendACK emits a pure ACK <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
func (c *Conn) sendACK(now Time, e Emitter) {
	c.sc.seg = Segment{Seq: c.sndMax}
	if c.state == StateSynReceived {
		c.sc.seg.Seq = c.iss + 1
	}
	c.finishAndEmit(now, e)
}

// segPayloadMax is the payload one wire segment may carry now: Eff.snd.MSS
// less any SACK blocks this segment carries.
func (c *Conn) segPayloadMax() uint32 {
	m := int(c.sndMSS) - c.sackOptLen()
	return uint32(max(m, 1))
}

// emitData emits [seq, seq+n) from the send buffer, with FIN if fin, as one
// segment (a GSO super-segment when n exceeds one wire segment).
func (c *Conn) emitData(now Time, e Emitter, seq Seq, n uint32, fin bool) {
	c.sc.seg = Segment{Seq: seq}
	if n > 0 {
		off := int(c.dataStart().Size(seq))
		p := c.sb.Peek(off, int(n))
		if uint32(len(p)) < n {
			// The ring wrapped: gather into the connection's scratch buffer.
			if cap(c.sc.buf) < int(n) {
				c.sc.buf = make([]byte, max(int(n), 64<<10))
			}
			buf := c.sc.buf[:n]
			k := copy(buf, p)
			for k < int(n) {
				k += copy(buf[k:], c.sb.Peek(off+k, int(n)-k))
			}
			p = buf
		}
		c.sc.seg.Payload = p
		if end := seq + Seq(n); end == c.dataEnd() && !c.unpushedTail() || c.eorAt(end) {
			// The end of the queue (unless a MSG_MORE write left it),
			// or of a MSG_EOR record: where Linux's tcp_push marks it.
			c.sc.seg.Flags |= FlagPSH
		}
		if seg := c.segPayloadMax(); n > seg {
			c.sc.seg.GSOSize = uint16(seg)
			// A super-segment of new data carries PSH, as Linux's TSO
			// skbs do (tcp_sendmsg marks each full skb it pushes, and
			// GSO keeps PSH on the last wire piece). A retransmitted
			// one does not: Linux's tcp_fragment leaves PSH only on the
			// tail of the original skb, which the rule above covers.
			// RFC 9293 §3.9.1 leaves PSH placement to the sender.
			if end := seq + Seq(n); end.GreaterThan(c.sndMax) && !(end == c.dataEnd() && c.unpushedTail()) {
				c.sc.seg.Flags |= FlagPSH
			}
		}
	}
	if fin {
		c.sc.seg.Flags |= FlagFIN
	}
	c.finishAndEmit(now, e)
}

// retransmit re-sends up to maxLen bytes starting at start (plus our FIN if
// it follows them), returning the sequence space covered.
func (c *Conn) retransmit(now Time, e Emitter, start Seq, maxLen uint32) uint32 {
	end := c.sentDataEnd()
	var n uint32
	if start.LessThan(end) {
		n = min(maxLen, start.Size(end))
	}
	fin := c.finSent() && start+Seq(n) == c.finSeq
	if n == 0 && !fin {
		return 0
	}
	if m, ok := c.eorLimit(start); ok && (start + Seq(n)).GreaterThan(m) {
		// A record's last byte ends the retransmission too (Linux does
		// not collapse an eor skb with the next).
		n, fin = start.Size(m), false
	}
	c.emitData(now, e, start, n, fin)
	c.rateOnSend(now, start, n+b2u(fin))
	c.paceSent(now, n)
	c.rttTimer.Cancel() // Karn's algorithm
	c.stats.retransSegs++
	c.stats.totalRetrans++
	c.stats.retransPkts += c.segsOf(n)
	c.stats.bytesRetrans += uint64(n)
	c.prrOnSend(n + b2u(fin))
	c.undoOnRetransmit(now, n+b2u(fin))
	if !c.rtxTimer.armed() {
		c.rtxTimer.set(now.Add(c.rto.RTO()))
	}
	if fin {
		n++
	}
	return n
}

// retransmitLost retransmits the segment [s, s+n) that recovery chose and
// returns how far HighRxt moves: what went (a MSG_EOR record end may cut
// it short), n if nothing did.
func (c *Conn) retransmitLost(now Time, e Emitter, s Seq, n uint32) uint32 {
	if got := c.retransmit(now, e, s, n); got > 0 {
		return got
	}
	return n
}

// cwndAvail is how many more bytes the congestion window allows in flight:
// cwnd - FlightSize, plus RFC 3042 limited transmit allowance on the first
// two duplicate ACKs, or cwnd - pipe during SACK recovery (RFC 6675).
func (c *Conn) cwndAvail() uint32 {
	if r := c.rate; r != nil && r.rack.tlpSending {
		return uint32(c.sndMSS) // a loss probe goes whatever cwnd says (RFC 8985 §7.3)
	}
	cwnd := c.cc.CWnd()
	if c.sackRecovery {
		if c.prrActive() {
			cwnd = c.rate.prr.cwnd // RFC 6937: pipe + sndcnt after the latest ACK
		}
		pipe := c.pipe()
		if pipe >= cwnd {
			return 0
		}
		return cwnd - pipe
	}
	allow := uint64(cwnd)
	if !c.inRecovery && c.dupAcks > 0 && c.dupAcks < 3 {
		allow += uint64(c.dupAcks) * uint64(c.sndMSS)
	}
	flight := uint64(c.sndUna.Size(c.sndNxt))
	if flight >= allow {
		return 0
	}
	return ccSaturate(allow - flight)
}

// inFlight is the sender's estimate of the bytes in flight, the measure
// cwndAvail compares with cwnd: the RFC 6675 pipe during SACK recovery,
// FlightSize (SND.NXT - SND.UNA) otherwise.
func (c *Conn) inFlight() uint32 {
	if c.sackRecovery {
		return c.pipe()
	}
	return c.sndUna.Size(c.sndNxt)
}

// pipe is the RFC 6675 pipe with the recovery's notion of lost.
func (c *Conn) pipe() uint32 {
	if c.rackActive() && c.rate != nil {
		return c.rackPipe()
	}
	return c.board.Pipe(c.sndUna, c.sndMax, c.highRxt)
}

// sendData emits retransmissions and new data as the windows allow.
func (c *Conn) sendData(now Time, e Emitter) {
	if r := c.rate; r != nil && r.rack.tlpPending {
		if !c.sendLossProbe(now, e) {
			return
		}
	}
	if c.rtxPending {
		if c.paceBlocked(now) {
			return // the retransmission leaves first, when pacing lets it
		}
		c.rtxPending = false
		mss := uint32(c.sndMSS)
		start, send := c.sndUna, true
		if c.sackRecovery {
			if s, n, ok := c.nextLostSeg(mss); ok {
				start, mss = s, n
			} else if c.rackActive() && c.highRxt.GreaterThan(c.sndUna) {
				// What RACK deems lost is already retransmitted
				// and in flight (see enterRecovery).
				send = false
			}
		}
		if send {
			if n := c.retransmit(now, e, start, mss); n > 0 && c.sackRecovery {
				c.highRxt = c.highRxt.Max(start + Seq(n))
			}
		}
	}
	if c.sackRecovery {
		// RFC 6675 §5 step (C): send while cwnd - pipe >= 1 SMSS.
		mss := uint32(c.sndMSS)
		for i := 0; i < 1<<16 && c.cwndAvail() >= mss; i++ {
			if c.paceBlocked(now) {
				break
			}
			if s, n, ok := c.nextLostSeg(mss); ok {
				c.highRxt = c.highRxt.Max(s + Seq(c.retransmitLost(now, e, s, n)))
				continue
			}
			if c.sendNewSegment(now, e, mss) {
				continue
			}
			if c.rackActive() {
				break // RACK retransmits only what it deems lost (RFC 8985 §6.3)
			}
			if s, n, ok := c.board.NextSegRule3(c.sndUna, c.sndMax, mss, c.highRxt); ok {
				c.highRxt = c.highRxt.Max(s + Seq(c.retransmitLost(now, e, s, n)))
				continue
			}
			break
		}
		return
	}
	for c.sendNewSegment(now, e, 0) {
	}
}

// sendNewSegment emits the next segment of unsent data (and/or our FIN)
// if the peer's window, the congestion window, Nagle's algorithm (RFC 896)
// and sender SWS avoidance (RFC 9293 §3.8.6.2.1) allow it. limit > 0 caps
// the payload. After a go-back-N rewind (RTO) "unsent" starts at SND.NXT.
func (c *Conn) sendNewSegment(now Time, e Emitter, limit uint32) bool {
	end := c.dataEnd()
	var avail uint32
	if c.sndNxt.LessThan(end) {
		avail = c.sndNxt.Size(end)
	}
	finHere := c.wrClosed && !c.sndNxt.GreaterThan(c.finSeq)
	if avail == 0 && !finHere {
		return false
	}
	// A MSG_EOR record's end bounds the segment, which then goes as if it
	// ended the queue but without Nagle's hold: Linux's eor skb is not the
	// queue's last, so tcp_nagle_test passes it.
	atRecordEnd := false
	if m, ok := c.eorLimit(c.sndNxt); ok && c.sndNxt.Size(m) < avail {
		avail, atRecordEnd, finHere = c.sndNxt.Size(m), true, false
	}
	outstanding := c.sndUna != c.sndMax
	if !outstanding && c.stats.dataSegsOut > 0 && now.Sub(c.lastSend) > c.rto.RTO() {
		c.cc.OnEvent(now, CCEvent{Kind: CCIdleRestart}) // RFC 5681 §4.1
	}
	var winAvail uint32
	if wndEdge := c.sndUna + Seq(c.sndWnd); wndEdge.GreaterThan(c.sndNxt) {
		winAvail = c.sndNxt.Size(wndEdge)
	}
	usable := min(winAvail, c.cwndAvail())
	seg := c.segPayloadMax()
	chunk := seg
	var full uint32 // with offloads, a whole super-segment before the windows cut it
	gso := c.cfg.GSOMaxSize > 0 && uint32(c.cfg.GSOMaxSize) > seg
	if gso {
		full = c.tsoSegs(seg) * seg
		if c.sndNxt.LessThan(c.sndMax) {
			// Resending after a go-back-N rewind: Linux resends its
			// skbs as sized when first sent, up to what cwnd allows.
			chunk = full
		} else {
			chunk = c.tsoChunk(full, seg) // tso.go
		}
	}
	if limit > 0 {
		chunk = min(chunk, limit)
	}
	if c.ecnCWRSegment() {
		chunk = min(chunk, seg)
	}
	n := min(avail, usable)
	// Nagle (RFC 896, RFC 1122 §4.2.3.4) as refined by Minshall and used by
	// Linux: a sub-MSS segment may go unless a previously sent sub-MSS
	// segment is still unacknowledged, so the tail of a large write costs no
	// round trip while a stream of tiny writes is still coalesced.
	// Retransmissions after a go-back-N rewind are exempt from Nagle and SWS
	// avoidance: the peer has already seen (or lost) those bytes.
	// TCP_CORK and a MSG_MORE write hold the partial tail whatever Nagle
	// says (Linux's TCP_NAGLE_CORK); an uncork or TCP_NODELAY push, and
	// the persist timer, send it.
	corked := c.corked()
	push := !corked && (c.cfg.NoDelay || !outstanding || !c.smallUnacked()) ||
		c.sndNxt.LessThan(c.sndMax) || c.pushing() || atRecordEnd
	switch {
	case n == 0 && avail > 0:
		c.armPersist(now, outstanding)
		return false
	case n < avail && n < seg:
		// Sender SWS avoidance: a partial segment only when it is at least
		// half the largest window the peer offered and Nagle allows. A
		// retransmission after a rewind that the peer's window cuts short
		// goes as far as the window lets it (Linux tcp_retransmit_skb
		// sends avail_wnd): holding it would leave no timer, since data
		// is outstanding and the persist timer waits for an empty flight.
		rtxIntoWindow := c.sndNxt.LessThan(c.sndMax) && n == winAvail
		if !(push && n >= c.maxSndWnd/2) && !c.forceSend && !rtxIntoWindow {
			c.armPersist(now, outstanding)
			return false
		}
	case n > chunk:
		n = chunk
	case n > seg && n%seg != 0:
		// The tail is sent inside the super-segment only if it may go now.
		if !(n == avail && (push || c.wrClosed)) {
			n -= n % seg
		}
	case n < seg && n == avail && n > 0:
		// Nagle: hold a small segment while an earlier small segment is
		// unacknowledged, unless it carries our FIN (as Linux does).
		if !push && !c.wrClosed {
			if corked {
				// Nothing may be in flight to release it: the persist
				// timer does (Linux's tcp_check_probe_timer).
				c.armPersist(now, outstanding)
			}
			return false
		}
	}
	fin := c.wrClosed && c.sndNxt+Seq(n) == c.finSeq
	if n == 0 && !fin {
		return false
	}
	if gso && !c.sndNxt.LessThan(c.sndMax) && c.tsoDefer(now, avail, usable, winAvail, full, seg) {
		return false // the next ACK grows the super-segment (tso.go)
	}
	if c.paceBlocked(now) {
		return false
	}
	if !outstanding {
		c.cc.OnEvent(now, CCEvent{Kind: CCTxStart})
	}
	if c.forceSend && c.rs != nil {
		// The persist timer sends the held tail with PSH, as Linux's
		// tcp_write_wakeup does.
		c.rs.noPSH = false
	}
	c.forceSend = false
	retrans := c.sndNxt.LessThan(c.sndMax)
	if !retrans && n > 0 {
		c.quickAckOnSend(now)
	}
	c.emitData(now, e, c.sndNxt, n, fin)
	c.rateOnSend(now, c.sndNxt, n+b2u(fin))
	c.paceSent(now, n)
	c.prrOnSend(n + b2u(fin))
	if retrans {
		c.undoOnRetransmit(now, n+b2u(fin))
		c.stats.retransSegs++
		c.stats.totalRetrans++
		c.stats.retransPkts += c.segsOf(n)
		// A go-back-N resend may run past SND.MAX into data never sent
		// (a tail Nagle held): that part is new.
		old := min(n, c.sndNxt.Size(c.sndMax))
		c.stats.bytesRetrans += uint64(old)
		c.stats.bytesSent += uint64(n - old)
		c.rttTimer.Cancel()
	} else {
		c.stats.bytesSent += uint64(n)
		if !c.tsOK {
			c.rttTimer.Start(c.sndNxt+Seq(n), now)
		}
		if n%seg != 0 {
			// A segment (or a super-segment's last one) shorter than the
			// MSS: Minshall's SND.SML (Linux tcp_minshall_update).
			c.sndSml = c.sndNxt + Seq(n)
		}
	}
	if !outstanding {
		c.firstUnacked = now
		if c.cfg.UserTimeout > 0 {
			c.userTimer.set(now.Add(c.cfg.UserTimeout))
		}
	}
	c.sndNxt += Seq(n)
	if fin {
		c.sndNxt++
	}
	c.sndMax = c.sndMax.Max(c.sndNxt)
	c.lastSend = now
	c.persistTimer.stop()
	if !c.rtxTimer.armed() {
		c.rtxTimer.set(now.Add(c.rto.RTO())) // RFC 6298 §5.1
	}
	if !retrans {
		c.tlpSchedule(now) // RFC 8985 §7.2: restart the PTO after new data
	}
	return true
}

// smallUnacked reports whether a sub-MSS segment we sent is still
// unacknowledged: SND.UNA < SND.SML <= SND.NXT (Linux tcp_minshall_check).
func (c *Conn) smallUnacked() bool {
	return c.sndSml.GreaterThan(c.sndUna) && c.sndSml.LessThanEq(c.sndNxt)
}

// armPersist starts the persist timer when data waits for the window and
// nothing is in flight to elicit a window update (RFC 9293 §3.8.6.1).
func (c *Conn) armPersist(now Time, outstanding bool) {
	if outstanding || c.persistTimer.armed() {
		return
	}
	c.persistTimer.set(now.Add(c.persistInterval(now)))
}

// persistInterval is the RTO backed off persistBackoff times, capped at
// RTOMax (like Linux's tcp_probe0_when), and cut short so that the timer
// fires when the user timeout of a probe episode runs out (Linux
// tcp_clamp_probe0_to_user_timeout).
func (c *Conn) persistInterval(now Time) time.Duration {
	d := min(c.backedOffRTO(), c.cfg.RTOMax)
	if ut := c.cfg.UserTimeout; ut > 0 && c.rs != nil && c.rs.probing {
		left := ut - now.Sub(c.rs.probesStart)
		d = min(d, max(left, minProbeInterval))
	}
	return d
}

// minProbeInterval is the shortest persist interval, so a user timeout that
// is (nearly) spent cannot re-arm the timer for now (Linux TCP_TIMEOUT_MIN).
const minProbeInterval = 2 * time.Millisecond

// sendProbe emits a zero-window probe (one byte of new data beyond the
// window, RFC 9293 §3.8.6.1) or a keepalive probe (SEG.SEQ = SND.NXT-1, no
// data, RFC 1122 §4.2.3.6).
func (c *Conn) sendProbe(now Time, e Emitter) {
	c.rare().probesSent++
	if c.probeData {
		if c.dataEnd().GreaterThan(c.probeSeq) {
			c.emitData(now, e, c.probeSeq, 1, false)
			c.zwpOut = true
			c.lastSend = now
			return
		}
	}
	c.sc.seg = Segment{Seq: c.probeSeq}
	c.finishAndEmit(now, e)
}

// segsOf is how many segments of the MSS n payload bytes make, at least one
// (a FIN alone counts one), as Linux's tcp_skb_pcount.
func (c *Conn) segsOf(n uint32) uint32 {
	mss := uint32(max(c.sndMSS, 1))
	return max((n+mss-1)/mss, 1)
}
