package tcp

// DirectRead is an application's read buffer lent to a Conn while the
// application waits in Read with nothing to read: in-order data then goes
// from the segment straight into it, not through the receive buffer, which
// saves one copy per byte on the receive path (Linux's old prequeue
// "ucopy"). Bytes delivered this way count as read the moment they arrive:
// they never occupy the receive buffer, so the window does not shrink for
// them and no memory is charged for them.
type DirectRead struct {
	buf []byte
	n   int
}

// StartDirectRead lends p to c through d until EndDirectRead, if nothing is
// waiting to be read (the receive buffer is empty; otherwise new data must
// queue behind what is there). It reports whether p
// was taken. d must stay valid, and p untouched, until EndDirectRead.
func (c *Conn) StartDirectRead(d *DirectRead, p []byte) bool {
	if len(p) == 0 || c.rb.Len() > 0 || !c.state.canReceiveData() || c.rdClosed {
		return false
	}
	d.buf, d.n = p, 0
	c.direct = d
	return true
}

// EndDirectRead takes the lent buffer back and returns how many bytes were
// delivered into it (p[:n] of StartDirectRead). Call it before the Read
// that lent the buffer returns, whatever it returns.
func (c *Conn) EndDirectRead() int {
	d := c.direct
	if d == nil {
		return 0
	}
	c.direct = nil
	n := d.n
	d.buf, d.n = nil, 0
	return n
}

// directCopy delivers as much of b as fits into the lent buffer, if there is
// one and nothing is queued in the receive buffer (which the application
// reads first), and returns the count; the caller queues the rest in the
// receive buffer, behind it.
func (c *Conn) directCopy(b []byte) int {
	d := c.direct
	if d == nil || c.rb.Len() > 0 {
		return 0
	}
	k := copy(d.buf[d.n:], b)
	d.n += k
	return k
}
