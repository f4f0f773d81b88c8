package drill

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/tcp"
)

// DUT is what the runner drives: the oracle's one-connection DUT plus the
// socket-level knobs scripts reach through setsockopt, getsockopt and poll.
type DUT interface {
	integration.DUT
	// SetNoDelay is TCP_NODELAY.
	SetNoDelay(on bool) error
	// SetRecvBuffer is SO_RCVBUF (bytes).
	SetRecvBuffer(n int) error
	// SetUserTimeout is TCP_USER_TIMEOUT.
	SetUserTimeout(d time.Duration) error
	// SoError returns and clears the pending error (SO_ERROR): "" or an
	// errno name.
	SoError() string
	// Poll reports the connection's readiness (POLLIN, POLLOUT, POLLERR,
	// POLLHUP), or the listener's when there is no connection.
	Poll() (in, out, err, hup bool)
	// CloseListener closes the listener only.
	CloseListener() error
	// Attached is called once the script's connection exists (after
	// accept or connect) to apply options set before it did.
	Attached()
}

// NewDUT creates a DUT by name ("ustack" or "gvisor").
func NewDUT(name string, ipv6 bool) (DUT, error) {
	switch name {
	case "ustack":
		return &ustackDUT{UstackDUT: integration.NewUstackDUT(integration.UstackOptions{})}, nil
	case "gvisor":
		g, err := integration.NewGVisorDUT(integration.GVisorOptions{IPv6: ipv6})
		if err != nil {
			return nil, err
		}
		return &gvisorDUT{GVisorDUT: g}, nil
	case "linux":
		return newLinuxDUT(ipv6)
	}
	return nil, fmt.Errorf("unknown DUT %q", name)
}

// Optional DUT capabilities, found by type assertion.
type (
	// realTimer is a DUT whose clock is the wall clock (linux): its
	// timing tolerance is scaled by RunOptions.ToleranceScale.
	realTimer interface{ RealTime() bool }
	// emissionWaiter is a real-time DUT that can block until it emits
	// something or its clock reaches deadline.
	emissionWaiter interface{ WaitEmitted(deadline time.Duration) }
	// sheller runs a script's backquoted shell line; DUTs without it
	// skip those lines.
	sheller interface {
		Shell(command string) (string, error)
	}
	// malformer reports emitted packets the DUT adapter could not turn
	// into the connection's segments (bad checksum, foreign ports).
	malformer interface{ Malformed() []string }
	// packetBuilder serializes segments with the DUT's own addresses, for
	// captures.
	packetBuilder interface {
		BuildPacket(toPeer bool, seg *tcp.Segment) []byte
	}
)

func errnoOf(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, integration.ErrConnReset):
		return "ECONNRESET"
	case errors.Is(err, integration.ErrConnRefused):
		return "ECONNREFUSED"
	case errors.Is(err, integration.ErrConnTimedOut):
		return "ETIMEDOUT"
	case errors.Is(err, integration.ErrConnClosed):
		return "EPIPE"
	case errors.Is(err, integration.ErrNoConn):
		return "ENOTCONN"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if n := unix.ErrnoName(en); n != "" {
			return n
		}
	}
	return err.Error()
}

// ustackDUT adapts the oracle's bare-engine DUT.
type ustackDUT struct {
	*integration.UstackDUT
	errTaken bool
}

func (u *ustackDUT) SetNoDelay(on bool) error {
	if c := u.Conn(); c != nil {
		c.SetNoDelay(on)
		return nil
	}
	u.UpdateConfig(func(cfg *tcp.Config) { cfg.NoDelay = on })
	return nil
}

func (u *ustackDUT) SetRecvBuffer(n int) error {
	if c := u.Conn(); c != nil {
		c.SetRecvBufferSize(n)
		return nil
	}
	u.UpdateConfig(func(cfg *tcp.Config) { cfg.RecvBufferSize = n })
	return nil
}

func (u *ustackDUT) SetUserTimeout(d time.Duration) error {
	if c := u.Conn(); c != nil {
		c.SetUserTimeout(d)
		return nil
	}
	u.UpdateConfig(func(cfg *tcp.Config) { cfg.UserTimeout = d })
	return nil
}

func (u *ustackDUT) SoError() string {
	c := u.Conn()
	if c == nil || c.Err() == nil || u.errTaken {
		return ""
	}
	// SO_ERROR clears the pending error.
	u.errTaken = true
	var en syscall.Errno
	if errors.As(c.Err(), &en) {
		if n, ok := errnoNames[en]; ok {
			return n
		}
	}
	return "EIO"
}

var errnoNames = map[syscall.Errno]string{
	syscall.ECONNRESET: "ECONNRESET", syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.ETIMEDOUT: "ETIMEDOUT", syscall.EPIPE: "EPIPE",
}

func (u *ustackDUT) Poll() (in, out, perr, hup bool) {
	c := u.Conn()
	if c == nil || !u.Accepted() {
		return false, false, false, false
	}
	in = c.Readable() > 0
	switch c.State() {
	case tcp.StateCloseWait, tcp.StateLastAck, tcp.StateClosing, tcp.StateTimeWait, tcp.StateClosed:
		in = true
	}
	if c.Err() != nil {
		in, perr = true, true
	}
	out = c.Writable() > 0 && (c.State() == tcp.StateEstablished || c.State() == tcp.StateCloseWait)
	hup = c.State() == tcp.StateClosed || c.Done() && c.Err() != nil
	return in, out, perr, hup
}

func (u *ustackDUT) Attached() {}

// gvisorDUT adapts the oracle's gVisor DUT; options set before the
// endpoint exists are applied when it does.
type gvisorDUT struct {
	*integration.GVisorDUT
	pending []func(ep tcpip.Endpoint) error
}

func (g *gvisorDUT) apply(f func(ep tcpip.Endpoint) error) error {
	if ep := g.Endpoint(); ep != nil {
		err := f(ep)
		g.Settle()
		return err
	}
	if l := g.Listener(); l != nil {
		if err := f(l); err != nil {
			return err
		}
	}
	g.pending = append(g.pending, f)
	return nil
}

func (g *gvisorDUT) Attached() {
	ep := g.Endpoint()
	if ep == nil {
		return
	}
	for _, f := range g.pending {
		_ = f(ep) // each was accepted when set; the endpoint takes the same values
	}
	g.pending = nil
	g.Settle()
}

func (g *gvisorDUT) SetNoDelay(on bool) error {
	return g.apply(func(ep tcpip.Endpoint) error { ep.SocketOptions().SetDelayOption(!on); return nil })
}

func (g *gvisorDUT) SetRecvBuffer(n int) error {
	return g.apply(func(ep tcpip.Endpoint) error {
		ep.SocketOptions().SetReceiveBufferSize(int64(n), true)
		return nil
	})
}

func (g *gvisorDUT) SetUserTimeout(d time.Duration) error {
	return g.apply(func(ep tcpip.Endpoint) error {
		o := tcpip.TCPUserTimeoutOption(d)
		if err := ep.SetSockOpt(&o); err != nil {
			return fmt.Errorf("gvisor: TCP_USER_TIMEOUT: %s", err)
		}
		return nil
	})
}

func (g *gvisorDUT) SoError() string {
	ep := g.Endpoint()
	if ep == nil {
		return ""
	}
	switch ep.LastError().(type) {
	case nil:
		return ""
	case *tcpip.ErrConnectionRefused:
		return "ECONNREFUSED"
	case *tcpip.ErrConnectionReset, *tcpip.ErrConnectionAborted:
		return "ECONNRESET"
	case *tcpip.ErrTimeout:
		return "ETIMEDOUT"
	default:
		return "EIO"
	}
}

func (g *gvisorDUT) Poll() (in, out, perr, hup bool) {
	ep := g.Endpoint()
	if ep == nil {
		return false, false, false, false
	}
	m := ep.Readiness(waiter.ReadableEvents | waiter.WritableEvents | waiter.EventErr | waiter.EventHUp)
	return m&waiter.ReadableEvents != 0, m&waiter.WritableEvents != 0, m&waiter.EventErr != 0, m&waiter.EventHUp != 0
}
