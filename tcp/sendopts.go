package tcp

import "syscall"

// Send-side socket options, as Linux's socket layer has them:
// TCP_NOTSENT_LOWAT (Config.NotSentLowat, SetNotSentLowat), TCP_CORK
// (SetCork), and the send flags MSG_MORE and MSG_EOR (WriteMsg). Their
// state is in rareState, made by the first use: a connection that uses
// none of them pays one nil test per decision.

// WriteFlags are the send(2) flags WriteMsg takes.
type WriteFlags uint8

const (
	// WriteMore is MSG_MORE: more data follows soon, so a partial segment
	// at the end of this write is held (as TCP_CORK holds it) until the
	// next write without WriteMore, an arriving segment (Linux sends on
	// ACKs by the plain Nagle rules), or the persist timer (an RTO with
	// nothing in flight, as Linux's probe timer sends it); its last
	// segment carries no PSH unless that timer sends it.
	WriteMore WriteFlags = 1 << iota
	// WriteEOR is MSG_EOR: the write ends a record. Nothing written later
	// is sent in the same segment (or GSO super-segment) as the record's
	// last byte, first transmission or retransmission, as Linux keeps an
	// skb with eor set from being appended to or collapsed; the segment
	// ending the record carries PSH, and is not held by Nagle.
	WriteEOR
)

// maxEORMarks bounds the record ends a connection tracks; a WriteEOR
// write beyond it queues nothing until the peer acknowledges records
// (backpressure: Linux's per-skb memory accounting has the same effect).
const maxEORMarks = 4096

// WriteMsg is Write with send flags. The flags apply when the whole of p
// is queued; a short write ends no record and holds nothing (Linux sets
// an skb's eor, and corks for MSG_MORE, only once the message is copied).
func (c *Conn) WriteMsg(p []byte, flags WriteFlags) (int, error) {
	if err := c.Err(); err != nil {
		return 0, err
	}
	if c.wrClosed || c.state == StateClosed || c.state == StateListen {
		return 0, syscall.EPIPE
	}
	if flags&WriteEOR != 0 && c.rs != nil && len(c.rs.eor) >= maxEORMarks {
		c.pruneEOR()
		if len(c.rs.eor) >= maxEORMarks {
			return 0, nil
		}
	}
	return c.write(p, flags), nil
}

// write queues what of p the send buffer and the not-sent low-water mark
// take, and applies flags if all of p was queued.
func (c *Conn) write(p []byte, flags WriteFlags) int {
	var n int
	if lowat := c.cfg.NotSentLowat; lowat == 0 {
		n = c.sb.Write(p)
	} else {
		// tcp_sendmsg_locked: data fills the tail skb up to the size
		// goal; a new skb starts only while fewer than lowat bytes are
		// unsent (sk_stream_memory_free).
		goal := c.sizeGoal()
		for n < len(p) {
			room := c.lowatRoom(goal, lowat)
			if room == 0 {
				break
			}
			want := min(room, uint32(len(p)-n))
			k := c.sb.Write(p[n : n+int(want)])
			n += k
			if uint32(k) < want {
				break
			}
		}
	}
	if c.rs == nil && flags == 0 {
		return n
	}
	r := c.rare()
	done := n == len(p) && n > 0
	r.moreHold = done && flags&WriteMore != 0
	r.noPSH = r.moreHold
	if done && flags&WriteEOR != 0 {
		r.eor = append(r.eor, c.dataEnd())
	}
	return n
}

// sizeGoal is the chunk a writer fills before the low-water mark is
// tested again: Linux's tcp_xmit_size_goal, the GSO size bounded by half
// the largest window the peer offered, in whole segments (one segment
// without GSO).
func (c *Conn) sizeGoal() uint32 {
	mss := uint32(max(c.sndMSS, 1))
	if c.cfg.GSOMaxSize <= int(mss) {
		return mss
	}
	g := uint32(c.cfg.GSOMaxSize)
	if half := c.maxSndWnd / 2; c.maxSndWnd > defaultPeerMSS && half < g {
		g = half
	} else if c.maxSndWnd > 0 && c.maxSndWnd <= defaultPeerMSS && c.maxSndWnd < g {
		g = c.maxSndWnd
	}
	return max(g/mss*mss, mss)
}

// notSent is the bytes in the send buffer not yet sent.
func (c *Conn) notSent() uint32 {
	if end := c.dataEnd(); end.GreaterThan(c.sndNxt) {
		return c.sndNxt.Size(end)
	}
	return 0
}

// lowatRoom is how much a write may queue now under the low-water mark:
// the rest of the unsent tail's size-goal chunk, or a whole new chunk
// while fewer than lowat bytes are unsent.
func (c *Conn) lowatRoom(goal, lowat uint32) uint32 {
	u := c.notSent()
	room := (goal - u%goal) % goal
	if room == 0 && u < lowat {
		room = goal
	}
	return room
}

// lowatBlocked reports that the not-sent low-water mark keeps a writer
// out (Linux's tcp_stream_memory_free with wake = 0: poll's POLLOUT).
func (c *Conn) lowatBlocked() bool {
	lowat := c.cfg.NotSentLowat
	return lowat != 0 && c.notSent() >= lowat
}

// SetNotSentLowat sets TCP_NOTSENT_LOWAT (see Config.NotSentLowat); 0
// turns it off.
func (c *Conn) SetNotSentLowat(n uint32) {
	c.cfg.NotSentLowat = n
	if n == 0 || !c.lowatBlocked() {
		c.events |= EventWritable
	}
}

// NotSentLowat returns the not-sent low-water mark in force (0: none).
func (c *Conn) NotSentLowat() uint32 { return c.cfg.NotSentLowat }

// SetCork sets TCP_CORK: while on, a partial segment at the end of the
// queue is held (full segments still go), until the cork is removed, a
// FIN follows the data, or the persist timer sends it (an RTO with
// nothing in flight: Linux's 200 ms ceiling is its probe timer).
// Removing the cork pushes what is queued once.
func (c *Conn) SetCork(on bool) {
	if c.rs == nil && !on {
		return
	}
	r := c.rare()
	if r.cork && !on {
		r.pushOnce = true
	}
	r.cork = on
}

// Corked reports whether TCP_CORK is on.
func (c *Conn) Corked() bool { return c.rs != nil && c.rs.cork }

// corked reports that a partial segment at the queue's end is held now:
// TCP_CORK or a MSG_MORE write, unless a push overrides them.
func (c *Conn) corked() bool {
	r := c.rs
	return r != nil && (r.cork || r.moreHold) && !r.pushOnce && !c.forceSend
}

// pushing reports a push through Nagle and the cork (uncork,
// TCP_NODELAY being set): Linux's TCP_NAGLE_PUSH.
func (c *Conn) pushing() bool { return c.rs != nil && c.rs.pushOnce }

// unpushedTail reports that the queue ends with a MSG_MORE write: its
// last segment carries no PSH.
func (c *Conn) unpushedTail() bool { return c.rs != nil && c.rs.noPSH }

// pruneEOR drops the record ends the peer has acknowledged.
func (c *Conn) pruneEOR() {
	r := c.rs
	i := 0
	for i < len(r.eor) && !r.eor[i].GreaterThan(c.sndUna) {
		i++
	}
	if i > 0 {
		r.eor = append(r.eor[:0], r.eor[i:]...)
	}
	if len(r.eor) == 0 {
		r.eor = nil
	}
}

// eorLimit is how far a segment starting at seq may extend without
// crossing a record end: to the first record end after seq (ok), or
// nothing (not ok).
func (c *Conn) eorLimit(seq Seq) (end Seq, ok bool) {
	r := c.rs
	if r == nil || len(r.eor) == 0 {
		return 0, false
	}
	if !r.eor[0].GreaterThan(c.sndUna) {
		c.pruneEOR()
	}
	for _, m := range r.eor {
		if m.GreaterThan(seq) {
			return m, true
		}
	}
	return 0, false
}

// eorAt reports whether a record ends at seq.
func (c *Conn) eorAt(seq Seq) bool {
	if c.rs == nil {
		return false
	}
	for _, m := range c.rs.eor {
		if m == seq {
			return true
		}
		if m.GreaterThan(seq) {
			break
		}
	}
	return false
}
