package stack

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// Conn is a TCP connection of a Stack; it implements net.Conn with the
// methods of *net.TCPConn that make sense for a userspace socket. Errors
// match a kernel socket's: *net.OpError wrapping os.ErrDeadlineExceeded,
// net.ErrClosed, or an *os.SyscallError with ECONNRESET, ECONNREFUSED,
// ETIMEDOUT, EPIPE...; io.EOF after the peer's FIN.
type Conn struct {
	ep           *endpoint
	rdl, wdl     atomic.Pointer[deadline] // made by the first Set*Deadline
	readMu       sync.Mutex               // one Read at a time
	writeMu      sync.Mutex               // one Write at a time: writes are not interleaved
	closed       atomic.Bool
	readShutdown atomic.Bool
	// direct is the Read buffer lent to the tcp.Conn while Read waits
	// (tcp.StartDirectRead); guarded by readMu and sh.mu.
	direct tcp.DirectRead
}

var _ net.Conn = (*Conn)(nil)

func newConn(ep *endpoint) *Conn {
	c := &Conn{ep: ep}
	ep.sh.mu.Lock()
	ep.appOpen = true
	ep.sh.mu.Unlock()
	return c
}

// tcpAddr makes the *net.TCPAddr of a; made on demand, so that a connection
// whose addresses nobody asks for does not hold them.
func tcpAddr(a netip.AddrPort) *net.TCPAddr {
	return &net.TCPAddr{IP: addrIP(a.Addr()), Port: int(a.Port())}
}

// opErr wraps err as the net package does for a kernel socket; a Conn
// errno becomes an *os.SyscallError named after the system call.
func (c *Conn) opErr(op string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		sc := op
		if op == "dial" {
			sc = "connect"
		}
		err = os.NewSyscallError(sc, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: tcpAddr(c.ep.id.local), Addr: tcpAddr(c.ep.id.remote), Err: err}
}

// locked runs f with the connection's shard locked, then lets the Conn send
// what it has to (Output), updates events and timers, and wakes the writer.
func (c *Conn) locked(f func(tc *tcp.Conn)) {
	ep := c.ep
	s := ep.sh.s
	ep.sh.mu.Lock()
	now := s.clock.Now()
	f(ep.tc)
	if !ep.removed {
		ep.tc.Output(now, ep)
		s.afterOp(ep, now)
	}
	ep.sh.mu.Unlock()
	s.sendNow(ep.link)
}

// Read reads data received on the connection. It blocks until data, EOF,
// an error, Close or the read deadline.
func (c *Conn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opErr("read", net.ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	ep := c.ep
	s := ep.sh.s
	for {
		if c.closed.Load() {
			return 0, c.opErr("read", net.ErrClosed)
		}
		ep.sh.mu.Lock()
		n, err := ep.tc.Read(p)
		if n > 0 {
			// Reading opens the window: Output sends the update
			// when it is worth one (RFC 9293 §3.8.6.2.2).
			now := s.clock.Now()
			if !ep.removed {
				ep.tc.Output(now, ep)
				s.afterOp(ep, now)
			}
			ep.sh.mu.Unlock()
			s.kickLinks()
			return n, nil
		}
		if err != io.EOF || ep.stackErr != nil {
			e := ep.err()
			if e == nil {
				e = err
			}
			if e == nil && ep.removed {
				e = syscall.ECONNABORTED
			}
			err = e
		}
		wakeCh := waitCh(&ep.rdWake)
		// Close and CloseRead flag c, then wake under sh.mu: seen here,
		// or the wake finds the channel.
		closed, shut := c.closed.Load(), c.readShutdown.Load()
		// While it waits, in-order data goes straight into p (one copy
		// instead of two); takeDirect gets it back before Read returns.
		lent := err == nil && !closed && !shut && !ep.removed && ep.tc.StartDirectRead(&c.direct, p)
		ep.sh.mu.Unlock()
		if closed {
			return 0, c.opErr("read", net.ErrClosed)
		}
		if shut {
			return 0, io.EOF
		}
		if err == io.EOF {
			return 0, io.EOF
		}
		if err != nil {
			return 0, c.opErr("read", err)
		}
		if c.rdl.Load().expired() {
			if lent {
				if n := c.takeDirect(); n > 0 {
					return n, nil
				}
			}
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		select {
		case <-wakeCh:
		case <-c.rdl.Load().wait():
		}
		if lent {
			if n := c.takeDirect(); n > 0 {
				return n, nil
			}
		}
	}
}

// takeDirect ends the loan of Read's buffer and returns how many bytes were
// delivered into it. Those bytes never entered the receive buffer, so the
// window did not close for them: no window update is owed.
func (c *Conn) takeDirect() int {
	ep := c.ep
	ep.sh.mu.Lock()
	n := ep.tc.EndDirectRead()
	ep.sh.mu.Unlock()
	if n > 0 {
		ep.sh.s.stats.TCPRcvDirectBytes.Add(uint64(n))
	}
	return n
}

// Write writes p to the connection. It blocks until every byte is in the
// send buffer (backpressure), or an error, Close or the write deadline; on
// error it returns how many bytes were queued.
func (c *Conn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opErr("write", net.ErrClosed)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ep := c.ep
	s := ep.sh.s
	total := 0
	var mw *memWaiter // this Write's place among the writers waiting for memory
	defer func() {
		if mw != nil {
			s.memLeave(mw)
		}
	}()
	for {
		if c.closed.Load() {
			return total, c.opErr("write", net.ErrClosed)
		}
		ep.sh.mu.Lock()
		var n int
		var err error
		if ep.stackErr != nil {
			err = ep.stackErr
		} else {
			n, err = ep.tc.Write(p[total:])
			if err != nil && err != syscall.EPIPE {
				// Prefer the stack's view (ICMP soft error on timeout).
				if e := ep.err(); e != nil {
					err = e
				}
			}
		}
		total += n
		if n > 0 && !ep.removed {
			now := s.clock.Now()
			ep.tc.Output(now, ep)
			s.afterOp(ep, now)
		}
		var wakeCh, memCh chan struct{}
		retry := false
		if err == nil && total < len(p) {
			wakeCh = waitCh(&ep.wrWake)
			if b := s.tcpCfg.Memory; ep.tc.Writable() > 0 && b.Limit() > 0 {
				// Room in the send buffer but no memory for it: the
				// budget is spent. Queue for memory, or retry at once
				// if it was freed meanwhile (the relief clears Spent
				// before it wakes anyone).
				if mw == nil {
					mw = new(memWaiter)
				}
				s.memWait(mw)
				memCh = mw.ch
				retry = !b.Spent()
			}
		}
		closed := c.closed.Load()
		ep.sh.mu.Unlock()
		if mw != nil && memCh == nil {
			// Not waiting for memory (now): out of the queue, so that a
			// relief does not spend a wake-up on this writer.
			s.memLeave(mw)
		}
		if n > 0 {
			s.sendNow(ep.link)
		}
		if closed && err == nil && total < len(p) {
			return total, c.opErr("write", net.ErrClosed)
		}
		if err != nil {
			return total, c.opErr("write", err)
		}
		if total == len(p) {
			return total, nil
		}
		if c.wdl.Load().expired() {
			return total, c.opErr("write", os.ErrDeadlineExceeded)
		}
		if retry {
			continue
		}
		select {
		case <-wakeCh:
		case <-memCh:
		case <-c.wdl.Load().wait():
		}
	}
}

// Close closes the connection: queued data is still sent, then a FIN (a
// RST instead if received data was never read, or with SetLinger(0)).
// Blocked Reads and Writes return net.ErrClosed. The stack finishes the
// shutdown (FIN-WAIT, TIME-WAIT) on its own.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.opErr("close", net.ErrClosed)
	}
	ep := c.ep
	c.locked(func(tc *tcp.Conn) {
		// Blocked Reads and Writes see c.closed when they wake; a
		// blocked Read's buffer takes no more data.
		tc.EndDirectRead()
		ep.appOpen = false
		ep.wakeAll()
		if ep.removed {
			// Nobody will read what is left: free it.
			tc.ReleaseMemory(false)
			return
		}
		if ep.linger0 {
			tc.Abort()
		} else {
			tc.Close()
		}
	})
	c.rdl.Load().stop()
	c.wdl.Load().stop()
	return nil
}

// CloseWrite shuts down the sending side (a FIN after the queued data).
func (c *Conn) CloseWrite() error {
	if c.closed.Load() {
		return c.opErr("close", net.ErrClosed)
	}
	c.locked(func(tc *tcp.Conn) { tc.CloseWrite() })
	return nil
}

// CloseRead shuts down the receiving side as Linux's shutdown(SHUT_RD)
// does: Read returns what is already queued and then io.EOF instead of
// blocking. Data that arrives later is still acknowledged and queued, and
// Read still returns it (Linux never discards it: the corpus's
// shutdown-rd-wr-close.pkt reads it back); a Close with data unread
// resets the connection (RFC 9293 §3.10.4, as for any unread data).
func (c *Conn) CloseRead() error {
	if c.closed.Load() {
		return c.opErr("close", net.ErrClosed)
	}
	c.readShutdown.Store(true)
	// A Read blocked with its buffer lent keeps what was delivered into
	// it: it wakes, takes that, and sees the shutdown on its next call.
	c.wakeReader()
	return nil
}

// deadline returns the deadline *p, making it on first use: most
// connections never have one.
func (c *Conn) deadline(p *atomic.Pointer[deadline]) *deadline {
	if d := p.Load(); d != nil {
		return d
	}
	d := &deadline{}
	d.init(c.ep.sh.s.clock)
	if p.CompareAndSwap(nil, d) {
		return d
	}
	return p.Load()
}

// wakeReader wakes a Read blocked on c, to look again.
func (c *Conn) wakeReader() {
	c.ep.sh.mu.Lock()
	wake(c.ep.rdWake)
	c.ep.sh.mu.Unlock()
}

// wakeWriter wakes a Write blocked on c, to look again.
func (c *Conn) wakeWriter() {
	c.ep.sh.mu.Lock()
	wake(c.ep.wrWake)
	c.ep.sh.mu.Unlock()
}

// LocalAddr returns the local address (*net.TCPAddr).
func (c *Conn) LocalAddr() net.Addr { return tcpAddr(c.ep.id.local) }

// RemoteAddr returns the peer's address (*net.TCPAddr).
func (c *Conn) RemoteAddr() net.Addr { return tcpAddr(c.ep.id.remote) }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	if c.deadline(&c.rdl).set(t) {
		c.wakeReader()
	}
	if c.deadline(&c.wdl).set(t) {
		c.wakeWriter()
	}
	return nil
}

// SetReadDeadline sets the deadline of Read; the zero time clears it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	if c.deadline(&c.rdl).set(t) {
		c.wakeReader()
	}
	return nil
}

// SetWriteDeadline sets the deadline of Write; the zero time clears it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	if c.deadline(&c.wdl).set(t) {
		c.wakeWriter()
	}
	return nil
}

// Go's defaults for SetKeepAliveConfig fields left zero (net package).
const (
	defaultKeepAliveIdle     = 15 * time.Second
	defaultKeepAliveInterval = 15 * time.Second
	defaultKeepAliveCount    = 9
	// maxKeepCount is Linux's MAX_TCP_KEEPCNT: larger counts are clamped.
	maxKeepCount = 127
)

// keepalive applies the keepalive parameters of ep.
func (c *Conn) keepalive() {
	ep := c.ep
	c.locked(func(tc *tcp.Conn) { tc.SetKeepAlive(ep.kaOn, ep.kaIdle, ep.kaIntvl, int(ep.kaCount)) })
}

// SetKeepAlive turns keepalive probes on or off (SO_KEEPALIVE).
func (c *Conn) SetKeepAlive(on bool) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.ep.sh.mu.Lock()
	c.ep.kaOn = on
	c.ep.sh.mu.Unlock()
	c.keepalive()
	return nil
}

// SetKeepAlivePeriod sets both the idle time before the first probe and the
// interval between probes, as net.TCPConn does (TCP_KEEPIDLE, TCP_KEEPINTVL).
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	if d <= 0 {
		return nil
	}
	d = max(d, time.Second) // the kernel's granularity
	c.ep.sh.mu.Lock()
	c.ep.kaIdle, c.ep.kaIntvl = d, d
	c.ep.sh.mu.Unlock()
	c.keepalive()
	return nil
}

// SetKeepAliveConfig applies a net.KeepAliveConfig with the net package's
// conventions: a zero field takes Go's default (15 s, 15 s, 9), a negative
// one leaves the current value.
func (c *Conn) SetKeepAliveConfig(cfg net.KeepAliveConfig) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	ep := c.ep
	ep.sh.mu.Lock()
	ep.kaOn = cfg.Enable
	switch {
	case cfg.Idle == 0:
		ep.kaIdle = defaultKeepAliveIdle
	case cfg.Idle > 0:
		ep.kaIdle = max(cfg.Idle, time.Second)
	}
	switch {
	case cfg.Interval == 0:
		ep.kaIntvl = defaultKeepAliveInterval
	case cfg.Interval > 0:
		ep.kaIntvl = max(cfg.Interval, time.Second)
	}
	switch {
	case cfg.Count == 0:
		ep.kaCount = defaultKeepAliveCount
	case cfg.Count > 0:
		ep.kaCount = int32(min(cfg.Count, maxKeepCount))
	}
	ep.sh.mu.Unlock()
	c.keepalive()
	return nil
}

// SetNoDelay disables (true) or enables Nagle's algorithm (TCP_NODELAY).
func (c *Conn) SetNoDelay(noDelay bool) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.locked(func(tc *tcp.Conn) { tc.SetNoDelay(noDelay) })
	return nil
}

// SetLinger sets what Close does with unsent data (SO_LINGER): sec == 0
// discards it and resets the connection; any other value keeps the default
// (data sent in the background after Close returns).
func (c *Conn) SetLinger(sec int) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.ep.sh.mu.Lock()
	c.ep.linger0 = sec == 0
	c.ep.sh.mu.Unlock()
	return nil
}

// SetReadBuffer sets the receive buffer size (SO_RCVBUF).
func (c *Conn) SetReadBuffer(bytes int) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.locked(func(tc *tcp.Conn) { tc.SetRecvBufferSize(bytes) })
	return nil
}

// SetWriteBuffer sets the send buffer size (SO_SNDBUF).
func (c *Conn) SetWriteBuffer(bytes int) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.locked(func(tc *tcp.Conn) { tc.SetSendBufferSize(bytes) })
	return nil
}

// SetUserTimeout bounds how long sent data may stay unacknowledged before
// the connection fails with ETIMEDOUT (TCP_USER_TIMEOUT, RFC 5482); 0 turns
// it off.
func (c *Conn) SetUserTimeout(d time.Duration) error {
	if c.closed.Load() {
		return c.opErr("set", net.ErrClosed)
	}
	c.locked(func(tc *tcp.Conn) { tc.SetUserTimeout(d) })
	return nil
}

// Info returns a snapshot of the connection's TCP state (tcp_info-like).
func (c *Conn) Info() tcp.Info {
	ep := c.ep
	ep.sh.mu.Lock()
	defer ep.sh.mu.Unlock()
	return ep.tc.Info()
}

// State returns the connection's TCP state.
func (c *Conn) State() tcp.State {
	ep := c.ep
	ep.sh.mu.Lock()
	defer ep.sh.mu.Unlock()
	return ep.tc.State()
}
