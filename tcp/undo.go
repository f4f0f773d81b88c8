package tcp

import "fmt"

// Undo of spurious loss recovery and retransmission timeouts, as Linux does
// it (tcp_try_undo_recovery, tcp_try_undo_dsack, tcp_try_undo_loss). When a
// fast recovery or an RTO begins, the window it is about to reduce is saved
// (prior cwnd and ssthresh, tcp_init_undo). The reduction was for nothing
// when every retransmission of the episode arrived as a duplicate (RFC 3708:
// each was D-SACKed), or when the first ACK of new data after a
// retransmission echoes a timestamp older than that retransmission, so
// acknowledges the original (RFC 3522 Eifel detection). The response is
// RFC 4015's, in Linux's form (tcp_undo_cwnd_reduction): cwnd =
// max(cwnd, prior cwnd), ssthresh = max(ssthresh, prior ssthresh), through
// CCUndo; after an RTO the go-back-N resend stops, the original
// transmissions being in flight still.
//
// An episode stays undoable after its recovery ended, for the D-SACKs of its
// retransmissions that arrive after the full ACK (they usually do: the
// original fills the hole first), until an ACK goes past what was sent when
// it ended, or a new episode begins. Eifel detection is only tried on the
// first ACK of new data after the episode's first retransmission, during
// the recovery or the RTO's loss state.

// CAState is the sender's congestion-avoidance state as Linux reports it
// (tcp_info's tcpi_ca_state).
type CAState uint8

// Congestion-avoidance states.
const (
	// CAOpen: no loss suspected.
	CAOpen CAState = iota
	// CADisorder: duplicate ACKs or SACKs show reordering or a possible
	// loss, not yet enough for recovery.
	CADisorder
	// CACWR: the window is being reduced without a loss: an ECN-Echo
	// (RFC 3168) started a reduction that is under way.
	CACWR
	// CARecovery: fast recovery (RFC 5681 §3.2, RFC 6675, RFC 8985).
	CARecovery
	// CALoss: after a retransmission timeout, until what was outstanding
	// then is acknowledged.
	CALoss
)

var caStateNames = [...]string{CAOpen: "Open", CADisorder: "Disorder", CACWR: "CWR", CARecovery: "Recovery", CALoss: "Loss"}

// String returns Linux's name of the state.
func (s CAState) String() string {
	if int(s) < len(caStateNames) {
		return caStateNames[s]
	}
	return fmt.Sprintf("CAState(%d)", uint8(s))
}

// undoState is the undo episode and the counters of the recovery block of
// Info (kept in the rateState: only a sender has them).
type undoState struct {
	active bool // an episode can be undone (Linux undo_marker != 0)
	ended  bool // its recovery or loss state is over: expire applies
	rto    bool // the episode includes an RTO
	// What the latest undo was (LastUndo).
	lastRTO, lastTS bool
	loss            bool // ca_state Loss: after an RTO, until SND.UNA reaches recover
	// rtxSent: something was retransmitted in the episode, the first at
	// TSval rtxTS; rtxBytes of it not yet D-SACKed (Linux undo_retrans).
	rtxSent  bool
	eifel    bool // the Eifel check is still to be made
	rtxTS    uint32
	rtxBytes uint64
	marker   Seq // SND.UNA when the episode began (undo_marker)
	expire   Seq // an ACK beyond it ends an episode that has ended
	// The window to restore.
	priorCWnd, priorSSThresh uint32

	recoveryUndos, rtoUndos uint64 // undone fast recoveries, RTOs
	dsackUndos, tsUndos     uint64 // ... detected by D-SACK, by timestamps
	dsackDups               uint64 // segments the peer reported duplicate (tcpi_dsack_dups)
	reordSeen               uint64 // ACKs that showed reordering (tcpi_reord_seen)
}

// undoStart begins an undo episode as a reduction begins (enterRecovery, or
// an RTO), saving the window (Linux tcp_init_undo with prior_ssthresh =
// tcp_current_ssthresh). An RTO inside an episode still undoable in
// recovery or loss (a backed-off RTO, an RTO during recovery) keeps it.
func (c *Conn) undoStart(rto bool) {
	u := &c.rateState().undo
	if rto {
		inEpisode := u.active && !u.ended && (c.inRecovery || u.loss) && c.sndUna.LessThan(c.recover)
		u.loss = true
		if inEpisode {
			u.rto = true
			return
		}
	}
	cwnd, ss := c.cc.CWnd(), c.cc.SSThresh()
	u.active, u.ended, u.rto = true, false, rto
	u.rtxSent, u.eifel, u.rtxBytes, u.rtxTS = false, false, 0, 0
	u.marker = c.sndUna
	u.priorCWnd = cwnd
	u.priorSSThresh = max(ss, cwnd/4*3)
}

// undoOnRetransmit counts a retransmission of n bytes in the episode.
func (c *Conn) undoOnRetransmit(now Time, n uint32) {
	if c.rate == nil {
		return
	}
	u := &c.rate.undo
	if !u.active || u.ended {
		return
	}
	if !u.rtxSent {
		u.rtxSent, u.eifel, u.rtxTS = true, true, c.tsNow(now)
	}
	u.rtxBytes += uint64(n)
}

// undoEnded notes that the episode's recovery (or loss state) is over: it
// stays undoable by D-SACK until an ACK goes past what is outstanding now.
func (c *Conn) undoEnded() {
	if c.rate == nil {
		return
	}
	u := &c.rate.undo
	if u.active && !u.ended {
		u.ended, u.expire = true, c.sndMax
	}
}

// undoOnAck is the undo step of one ACK (processACK), after the cumulative
// ACK and the SACK blocks were processed: count the D-SACK, end the loss
// state, and undo when the episode proves spurious. wasRecovery and wasLoss
// are the state before the ACK, advanced whether SND.UNA moved.
func (c *Conn) undoOnAck(now Time, seg *Segment, dsack *SACKBlock, advanced, wasRecovery, wasLoss bool) {
	r := c.rate
	if r == nil {
		return
	}
	u := &r.undo
	var dsackLen uint32
	if dsack != nil {
		// Linux tcp_dsack_seen: a block longer than the window is bogus;
		// duplicates beyond what was ever retransmitted are not ours.
		if n := dsack.Start.Size(dsack.End); n > 0 && n <= max(c.maxSndWnd, c.sndWnd) {
			segs := uint64(ceilDiv(uint64(n), uint64(c.sndMSS)))
			if u.dsackDups+segs <= uint64(c.stats.totalRetrans) {
				u.dsackDups += segs
				dsackLen = n
			}
		}
	}
	if u.loss && !c.sndUna.LessThan(c.recover) {
		u.loss = false
		c.undoEnded()
	}
	if !u.active {
		return
	}
	if u.ended && seg.Ack.GreaterThan(u.expire) {
		u.active = false
		return
	}
	spurious, byTS := false, false
	if dsackLen > 0 && u.rtxSent && dsack.End.GreaterThan(u.marker) {
		u.rtxBytes -= min(u.rtxBytes, uint64(dsackLen))
		spurious = u.rtxBytes == 0
	}
	if advanced && u.eifel && (wasLoss || wasRecovery && !c.sndUna.LessThan(c.recover)) {
		// RFC 3522 §2: the first ACK of new data after the
		// retransmission tells by its TSecr whether it was for the
		// original. After an RTO that is the ACK of SND.UNA's
		// retransmission. In a fast recovery only the ACK that completes
		// it is asked (Linux tcp_try_undo_recovery's tcp_packet_delayed):
		// an earlier partial ACK may echo an original whose ACK was lost
		// while other segments of the window are really lost, and
		// undoing then would restore a window the path cannot carry.
		u.eifel = false
		o := &seg.Options
		if c.tsOK && o.HasTimestamp && o.TSEcr != 0 && int32(o.TSEcr-u.rtxTS) < 0 {
			spurious, byTS = true, true
		}
	}
	if spurious {
		c.undo(now, byTS)
	}
}

// undo restores the window the episode reduced (RFC 4015 §3.2's response in
// Linux's form) and ends its recovery or loss state.
func (c *Conn) undo(now Time, byTS bool) {
	u := &c.rate.undo
	flight := c.sndUna.Size(c.sndMax)
	if c.inRecovery {
		// Undone in the middle: the recovery ends here. (recover stays,
		// so that the same window does not start another at once.)
		c.inRecovery, c.sackRecovery = false, false
		c.prrStop()
		c.rackRecoveryEnded()
		c.cc.OnEvent(now, CCEvent{Kind: CCRecoveryEnd, InFlight: flight})
	}
	if u.loss {
		// A spurious RTO: what was sent before it is still in flight, so
		// the go-back-N resend stops (Linux clears the loss marks).
		u.loss = false
		c.sndNxt = c.sndMax
		c.rtxPending = false
		c.rto.ResetBackoff()
		if c.sndUna != c.sndMax {
			c.rtxTimer.set(now.Add(c.rto.RTO()))
		}
	}
	ev := CCEvent{Kind: CCUndo, InFlight: flight, PriorCWnd: u.priorCWnd, PriorSSThresh: u.priorSSThresh}
	c.cc.OnEvent(now, ev)
	if h, ok := c.cc.(CCUndoer); !ok || !h.HandlesUndo() {
		if c.cc.CWnd() < u.priorCWnd {
			c.cc.SetCWnd(u.priorCWnd)
		}
	}
	if u.rto {
		u.rtoUndos++
	} else {
		u.recoveryUndos++
	}
	if byTS {
		u.tsUndos++
	} else {
		u.dsackUndos++
	}
	u.lastRTO, u.lastTS = u.rto, byTS
	u.active = false
	c.events |= EventUndo
}

// LastUndo reports what the latest undo (EventUndo) undid: an RTO rather
// than a fast recovery, and whether timestamps (Eifel) rather than D-SACK
// showed it spurious.
func (c *Conn) LastUndo() (rto, byTimestamps bool) {
	if c.rate == nil {
		return false, false
	}
	return c.rate.undo.lastRTO, c.rate.undo.lastTS
}

// caState is the connection's CAState now.
func (c *Conn) caState() CAState {
	if c.rate != nil && c.rate.undo.loss {
		return CALoss
	}
	if c.inRecovery {
		return CARecovery
	}
	if c.ecn&ecnInCWR != 0 {
		return CACWR
	}
	if c.dupAcks > 0 || c.board.SACKedBytes() > 0 {
		return CADisorder
	}
	if r := c.rate; r != nil && r.rack.tlpOut && r.rack.tlpRetrans {
		return CADisorder // a retransmitted probe is outstanding
	}
	return CAOpen
}

// undoRestore is the built-in algorithms' CCUndo: cwnd = max(cwnd, prior),
// ssthresh = max(ssthresh, prior ssthresh).
func undoRestore(cwnd, ssthresh uint32, ev CCEvent) (uint32, uint32) {
	return max(cwnd, ev.PriorCWnd), max(ssthresh, ev.PriorSSThresh)
}
