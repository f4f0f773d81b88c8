package tcp

import "time"

// Quick ACKs, as Linux sends them (tcp_input.c tcp_event_data_recv,
// tcp_incr_quickack; tcp_output.c tcp_dec_quickack_mode): a receiver that
// delays ACKs (RFC 1122 §4.2.3.2, RFC 5681 §4.2) still ACKs every data
// segment at once at the start of a connection, after a silence longer
// than the RTO, and after a retransmitted segment, so that the sender's
// slow start is not held back by the delayed-ACK timer. The budget is a
// count of ACKs of new data; an interactive connection (pingpong: our data
// answers the peer's within the delayed-ACK time) does not use it, its
// ACKs ride on the replies.

// quickAckMax is Linux's TCP_MAX_QUICKACKS, Config.QuickACKs's default.
const quickAckMax = 16

// quickAckMSS is Linux's first estimate of the peer's segment size
// (tcp_initialize_rcv_mss: at most TCP_MSS_DEFAULT), which sizes the
// budget: the window over two segments.
const quickAckMSS = 536

// msTick is the clock in wrapping milliseconds (lastDataMS).
func msTick(now Time) uint32 { return uint32(int64(now) / int64(time.Millisecond)) }

// incrQuickAck is tcp_incr_quickack: the budget grows to one ACK per two
// segments of the current window, between 2 and quickAckMax.
func (c *Conn) incrQuickAck() {
	if c.cfg.QuickACKs < 0 {
		return
	}
	mss := uint32(min(c.rcvMSS, quickAckMSS))
	if mss == 0 {
		mss = quickAckMSS
	}
	var win uint32
	if c.rcvNxt.LessThan(c.rcvAdv) {
		win = c.rcvNxt.Size(c.rcvAdv)
	}
	n := min(max(win/(2*mss), 2), uint32(c.cfg.QuickACKs))
	c.quickAcks = max(c.quickAcks, uint8(n))
}

// enterQuickAck is tcp_enter_quickack_mode: a budget and no pingpong.
func (c *Conn) enterQuickAck() {
	c.incrQuickAck()
	c.pingpong = false
}

// quickAckOnData is tcp_event_data_recv for in-order data arriving at now:
// the first data of the connection, or data after a gap longer than the
// RTO, earns a budget.
func (c *Conn) quickAckOnData(now Time) {
	t := msTick(now)
	if c.stats.bytesReceived == 0 || time.Duration(t-c.lastDataMS)*time.Millisecond > c.rto.RTO() {
		c.incrQuickAck()
	}
	c.lastDataMS = t
}

// quickAck reports whether data is to be ACKed at once (tcp_in_quickack_mode).
func (c *Conn) quickAck() bool { return c.quickAcks > 0 && !c.pingpong }

// quickAckSent is tcp_dec_quickack_mode for a segment that ACKs new data.
func (c *Conn) quickAckSent() {
	if c.quickAcks > 0 && c.rcvUnacked > 0 {
		c.quickAcks--
	}
}

// quickAckOnSend is tcp_event_data_sent's pingpong rule for new data sent
// at now: an answer within the delayed-ACK time of the peer's data makes
// the connection interactive.
func (c *Conn) quickAckOnSend(now Time) {
	if c.stats.bytesReceived > 0 && c.cfg.DelayedACK > 0 &&
		time.Duration(msTick(now)-c.lastDataMS)*time.Millisecond < c.cfg.DelayedACK {
		c.pingpong = true
	}
}
