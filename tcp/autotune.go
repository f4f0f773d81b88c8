package tcp

import "time"

// Buffer auto-tuning, as Linux does it. The send and receive buffers start
// at Config.SendBufferSize and RecvBufferSize and grow only when used:
//
//   - The receive buffer grows toward what the application reads per round
//     trip (dynamic right-sizing, Linux's tcp_rcv_space_adjust): once per
//     RTT, if the application read more than in any round trip before, the
//     buffer becomes twice that plus 16 segments, more while the rate is
//     still rising (the sender is in slow start, and the window offered now
//     is used one RTT later), up to RecvBufferMax. The RTT is the receiver's
//     own estimate (from the timestamps the sender echoes, else from the time
//     a window takes to arrive), or the sender-side SRTT.
//   - The send buffer grows with the congestion window (tcp_sndbuf_expand):
//     on an ACK that finds the application kept it full while cwnd is not
//     used up, it becomes twice cwnd, up to SendBufferMax.
//
// Growing a buffer only raises its size: storage is allocated as bytes
// arrive and charged to the MemoryBudget, which bounds it as before (the
// window covers only storage that exists or fits). Under memory pressure
// (the budget refused a charge, or is more than 7/8 used) buffers stop
// growing and go back toward their initial sizes as they drain, never below
// what they hold or what an advertised window lets in; they grow again once
// usage is under 3/4. SetRecvBufferSize and SetSendBufferSize lock a size,
// as SO_RCVBUF and SO_SNDBUF do.

const (
	// rcvSpaceInitSegs is the first measure of what the application reads
	// per RTT, in segments (Linux: TCP_INIT_CWND).
	rcvSpaceInitSegs = 10
	// rcvSpaceCushion is the segments added to twice the bytes read per
	// RTT, for small variations (Linux: 16 * advmss).
	rcvSpaceCushion = 16
)

// rcvTuning is the receive side's auto-tuning state (Linux's rcvq_space and
// rcv_rtt_est). A connection makes it once the application has read more
// than the first measure: before that no round trip can have read more.
type rcvTuning struct {
	space int  // most bytes the application read in one measured round trip
	time  Time // when the current measure started
	rtt   time.Duration
	// Without timestamps, a window-based RTT measure started at rttTime
	// (0: none) ends when RCV.NXT reaches rttSeq (Linux tcp_rcv_rtt_measure).
	rttTime   Time
	seq       Seq    // the first byte the application had not read when the measure started
	rttSeq    Seq    // see rttTime
	lastTSecr uint32 // TSecr of the last timestamp sample: one sample per TSecr
}

// copiedSeq is the sequence number of the first byte the application has
// not read (Linux copied_seq).
func (c *Conn) copiedSeq() Seq {
	s := c.rcvNxt - Seq(c.rb.Len())
	if c.rdClosed {
		s-- // the FIN
	}
	return s
}

// rcvSpaceInit is the first measure of the bytes read per RTT.
func (c *Conn) rcvSpaceInit() int {
	return min(c.cfg.RecvBufferSize, rcvSpaceInitSegs*int(c.rcvMSS))
}

// rcvTuned reports whether the receive buffer is auto-tuned (not locked).
func (c *Conn) rcvTuned() bool { return c.cfg.RecvBufferMax > c.cfg.RecvBufferSize }

// rcvSpaceAdjust runs after the application read: once per RTT it compares
// the bytes read in the round trip with the most read before and grows the
// receive buffer (tcp_rcv_space_adjust). Under memory pressure it shrinks
// it instead.
func (c *Conn) rcvSpaceAdjust(now Time) {
	if !c.rcvTuned() || !c.state.canReceiveData() {
		return
	}
	m := c.cfg.Memory
	copied := c.copiedSeq()
	if m.underPressure() {
		c.rcvShrink(now, copied)
		return
	}
	t := c.tune
	if t == nil {
		init := c.rcvSpaceInit()
		if (c.irs + 1).Size(copied) <= uint32(init) {
			return
		}
		c.tune = &rcvTuning{space: init, seq: copied, time: now}
		return
	}
	rtt := t.rtt
	if rtt == 0 {
		rtt = c.rto.SRTT()
	}
	if rtt == 0 || now.Sub(t.time) < rtt {
		return
	}
	n := int(t.seq.Size(copied))
	if n > t.space {
		if c.rb.Cap() < c.cfg.RecvBufferMax && m.mayGrow() {
			// Twice what was read, for losses, plus a cushion; and
			// while the rate rises (slow start doubles it each RTT),
			// twice the rise again: the window offered now is used
			// one RTT later (Linux's "bit of theory").
			win := int64(2*n + rcvSpaceCushion*int(c.rcvMSS))
			win += 2 * win * int64(n-t.space) / int64(t.space)
			if want := int(min(win, int64(c.cfg.RecvBufferMax))); want > c.rb.Cap() {
				c.rb.SetCap(want)
				m.countGrow(false)
			}
		}
		t.space = n
	}
	t.seq, t.time = copied, now
}

// rcvShrink takes the receive buffer back toward its initial size under
// memory pressure, never below the bytes it holds plus the window already
// advertised (those bytes must still fit), and restarts the measure of the
// bytes read per RTT from the beginning.
func (c *Conn) rcvShrink(now Time, copied Seq) {
	want := max(c.cfg.RecvBufferSize, c.rb.Len()+int(c.rcvWindow()))
	if want < c.rb.Cap() {
		c.rb.SetCap(want)
		c.cfg.Memory.countShrink()
	}
	if t := c.tune; t != nil {
		t.space, t.seq, t.time = c.rcvSpaceInit(), copied, now
	}
}

// rcvRTTMeasure updates the receiver's RTT estimate from an in-order data
// segment (Linux tcp_rcv_rtt_measure_ts and tcp_rcv_rtt_measure): with
// timestamps, the age of the echoed TSval, once per TSecr and only from
// full-sized segments (a smaller one may have waited for the application);
// without, the time a window takes to arrive, the smallest such time.
func (c *Conn) rcvRTTMeasure(now Time, seg *Segment) {
	t := c.tune
	if c.tsOK {
		o := &seg.Options
		if !o.HasTimestamp || o.TSEcr == 0 || o.TSEcr == t.lastTSecr || len(seg.Payload) < int(c.rcvMSS) {
			return
		}
		t.lastTSecr = o.TSEcr
		maxAge := uint32(c.cfg.RTOMax/tsTick) * 4
		d, ok := rtoTimestampSample(c.tsNow(now), o.TSEcr, tsTick, maxAge)
		if !ok {
			return
		}
		d = max(d, tsTick) // an echo of this tick: less than one
		if t.rtt == 0 {
			t.rtt = d
		} else {
			t.rtt += (d - t.rtt) / 8
		}
		return
	}
	if t.rttTime != 0 && c.rcvNxt.LessThan(t.rttSeq) {
		return
	}
	if t.rttTime != 0 {
		if d := max(now.Sub(t.rttTime), time.Microsecond); t.rtt == 0 || d < t.rtt {
			t.rtt = d
		}
	}
	t.rttSeq, t.rttTime = c.rcvNxt+Seq(c.rcvWindow()), max(now, 1)
}

// sndBufTune runs after an ACK: it grows the send buffer to twice cwnd
// (tcp_sndbuf_expand) when the application kept it full (full: it had less
// than a segment free before the ACK) and cwnd and the peer's window, not
// the buffer, have room (tcp_should_expand_sndbuf); under memory pressure
// it shrinks it toward its initial size as the ACKs drain it.
func (c *Conn) sndBufTune(full bool) {
	if c.cfg.SendBufferMax <= c.cfg.SendBufferSize {
		return
	}
	m := c.cfg.Memory
	if m.underPressure() {
		if want := max(c.cfg.SendBufferSize, c.sb.Len()); want < c.sb.Cap() {
			c.sb.SetCap(want)
			m.countShrink()
		}
		return
	}
	if !full || c.sb.Cap() >= c.cfg.SendBufferMax || !m.mayGrow() {
		return
	}
	cwnd := max(c.cc.CWnd(), uint32(c.sndMSS))
	if f := c.inFlight(); f >= cwnd || f >= c.sndWnd {
		return // the windows, not the buffer, hold the sender back
	}
	if want := min(2*int(cwnd), c.cfg.SendBufferMax); want > c.sb.Cap() {
		c.sb.SetCap(want)
		m.countGrow(true)
		c.events |= EventWritable
	}
}

// ReleaseIdleMemory gives back what the connection holds without using it,
// for the stack to call on every connection when the memory budget comes
// under pressure (MemoryBudget.SetPressure): auto-tuned buffers go back to
// their initial sizes (never below what they hold or an advertised window
// lets in), and the storage of empty buffers is freed (the next bytes
// allocate again). An idle connection that once moved megabytes then costs
// what a fresh one does.
func (c *Conn) ReleaseIdleMemory() {
	if c.rcvTuned() {
		c.rcvShrink(c.clock, c.copiedSeq())
	}
	if c.cfg.SendBufferMax > c.cfg.SendBufferSize {
		if want := max(c.cfg.SendBufferSize, c.sb.Len()); want < c.sb.Cap() {
			c.sb.SetCap(want)
			c.cfg.Memory.countShrink()
		}
	}
	c.sb.Release()
	c.rb.Release()
}
