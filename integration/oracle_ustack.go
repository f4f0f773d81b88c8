package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// UstackOptions configure a UstackDUT.
type UstackOptions struct {
	// Config is the engine configuration. Its zero value gets the engine's
	// defaults, except that the oracle turns delayed ACK off (DelayedACK -1)
	// unless KeepDelayedACK is set, because gVisor always ACKs at once: the
	// comparison would otherwise be about nothing but that.
	Config tcp.Config
	// KeepDelayedACK keeps Config.DelayedACK as given (0 = the 40 ms default).
	KeepDelayedACK bool
	// ISS is the connection's initial send sequence number; 0 = 0xffffff00,
	// so the DUT's sequence numbers wrap through zero after 255 bytes.
	ISS tcp.Seq
}

// UstackDUT drives a bare tcp.Conn — no stack, no ports, no IP — in virtual
// time: Inject is Conn.Input followed by Output, Advance calls Output at
// each NextDeadline on the way, and a segment that hits no connection gets
// tcp.ResetFor's answer, as stack/ would send. It plays the part of the
// stack for exactly one connection plus a listener.
type UstackDUT struct {
	cfg tcp.Config
	iss tcp.Seq
	now tcp.Time

	listening bool
	conn      *tcp.Conn
	accepted  bool

	emitted []Emission
	// stuck records Advance loops where the conn kept asking to be called
	// at a time it had already been called at without making progress.
	stuck []string
}

var _ DUT = (*UstackDUT)(nil)

// ustackBase is where the DUT's clock stands at virtual time 0 (as for
// gVisor, keep clear of Time(0)).
const ustackBase = tcp.Time(time.Hour)

// NewUstackDUT returns a DUT with no connection yet.
func NewUstackDUT(opts UstackOptions) *UstackDUT {
	cfg := opts.Config
	if !opts.KeepDelayedACK {
		cfg.DelayedACK = -1
	}
	iss := opts.ISS
	if iss == 0 {
		iss = 0xffffff00
	}
	return &UstackDUT{cfg: cfg, iss: iss, now: ustackBase}
}

// Name implements DUT.
func (u *UstackDUT) Name() string { return "ustack" }

// Conn returns the current connection (nil before Connect or a SYN), for
// checks the DUT interface does not cover (Info, Err, events).
func (u *UstackDUT) Conn() *tcp.Conn { return u.conn }

// Now implements DUT.
func (u *UstackDUT) Now() time.Duration { return u.now.Sub(ustackBase) }

// Emit implements tcp.Emitter: the segment is copied, payload included,
// because it is valid only during the call.
func (u *UstackDUT) Emit(seg *tcp.Segment) {
	s := *seg
	s.Payload = bytes.Clone(seg.Payload)
	u.emitted = append(u.emitted, Emission{At: u.Now(), Seg: s, IP: IPFields{TTL: 64}})
}

// TakeEmitted implements DUT.
func (u *UstackDUT) TakeEmitted() []Emission {
	e := u.emitted
	u.emitted = nil
	return e
}

// Stuck reports Advance loops in which the connection asked for a deadline
// that Output did not move; an oracle run requires it to be empty.
func (u *UstackDUT) Stuck() []string { return u.stuck }

func (u *UstackDUT) flush() {
	if u.conn != nil {
		u.conn.Output(u.now, u)
	}
}

// live reports whether there is a connection that has not finished.
func (u *UstackDUT) live() bool { return u.conn != nil && !u.conn.Done() }

// Advance implements DUT.
func (u *UstackDUT) Advance(d time.Duration) {
	target := u.now.Add(d)
	spins := 0
	for u.conn != nil {
		dl, ok := u.conn.NextDeadline()
		if !ok || dl.After(target) {
			break
		}
		if dl.After(u.now) {
			u.now, spins = dl, 0
		} else if spins++; spins > 100 {
			u.stuck = append(u.stuck, fmt.Sprintf("deadline %s stays due at %s", fmtDur(dl.Sub(ustackBase)), fmtDur(u.Now())))
			break
		}
		u.conn.Output(u.now, u)
	}
	u.now = target
}

// Inject implements DUT.
func (u *UstackDUT) Inject(seg *tcp.Segment) {
	if !u.live() {
		if u.listening && seg.Flags&(tcp.FlagSYN|tcp.FlagACK|tcp.FlagRST) == tcp.FlagSYN {
			u.conn = tcp.AcceptSYN(u.now, u.cfg, u.iss, seg)
			u.accepted = false
			u.flush()
			return
		}
		// RFC 9293 §3.10.7.1: CLOSED (or LISTEN for a non-SYN, §3.10.7.2)
		// answers with a reset.
		if rst, ok := tcp.ResetFor(seg); ok {
			u.Emit(&rst)
		}
		return
	}
	u.conn.Input(u.now, seg)
	u.flush()
}

// Listen implements DUT.
func (u *UstackDUT) Listen() error {
	u.listening = true
	return nil
}

// Accept implements DUT.
func (u *UstackDUT) Accept() error {
	if !u.listening {
		return errors.New("ustack: accept without listen")
	}
	if u.conn == nil || u.accepted {
		return errors.New("ustack: accept: no connection")
	}
	switch u.conn.State() {
	case tcp.StateListen, tcp.StateSynSent, tcp.StateSynReceived, tcp.StateClosed:
		return fmt.Errorf("ustack: accept: connection in %s", u.conn.State())
	}
	u.accepted = true
	return nil
}

// Connect implements DUT.
func (u *UstackDUT) Connect() error {
	if u.live() {
		return errors.New("ustack: connect: already connected")
	}
	u.conn = tcp.Dial(u.now, u.cfg, u.iss)
	u.flush()
	return nil
}

func ustackErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return io.EOF
	case errors.Is(err, syscall.ECONNRESET):
		return ErrConnReset
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrConnRefused
	case errors.Is(err, syscall.ETIMEDOUT):
		return ErrConnTimedOut
	case errors.Is(err, syscall.EPIPE):
		return ErrConnClosed
	}
	return fmt.Errorf("ustack: %w", err)
}

// Write implements DUT.
func (u *UstackDUT) Write(p []byte) (int, error) {
	if u.conn == nil {
		return 0, ErrNoConn
	}
	n, err := u.conn.Write(p)
	u.flush()
	return n, ustackErr(err)
}

// Read implements DUT.
func (u *UstackDUT) Read(n int) ([]byte, error) {
	if u.conn == nil {
		return nil, ErrNoConn
	}
	b := make([]byte, n)
	m, err := u.conn.Read(b)
	u.flush()
	if err != nil {
		return nil, ustackErr(err)
	}
	if m == 0 {
		return nil, nil
	}
	return b[:m], nil
}

// Shutdown implements DUT.
func (u *UstackDUT) Shutdown() error {
	if u.conn == nil {
		return ErrNoConn
	}
	u.conn.CloseWrite()
	u.flush()
	return nil
}

// Close implements DUT.
func (u *UstackDUT) Close() error {
	switch {
	case u.conn != nil:
		u.conn.Close()
		u.flush()
	case u.listening:
		u.listening = false
	default:
		return ErrNoConn
	}
	return nil
}

// Abort implements DUT.
func (u *UstackDUT) Abort() error {
	if u.conn == nil {
		return ErrNoConn
	}
	u.conn.Abort()
	u.flush()
	return nil
}

// SetKeepAlive implements DUT.
func (u *UstackDUT) SetKeepAlive(idle, interval time.Duration, count int) error {
	if u.conn == nil {
		return ErrNoConn
	}
	u.conn.SetKeepAlive(true, idle, interval, count)
	u.flush()
	return nil
}

// State implements DUT. Like a socket API, a passive connection is only
// visible once accepted; until then the listener's state is reported.
func (u *UstackDUT) State() string {
	switch {
	case u.conn != nil && (!u.listening || u.accepted):
		return u.conn.State().String()
	case u.listening:
		return tcp.StateListen.String()
	}
	return tcp.StateClosed.String()
}

// Destroy implements DUT.
func (u *UstackDUT) Destroy() {}

// UpdateConfig changes the configuration used for connections created from
// now on (socket options set before connect or on the listener).
func (u *UstackDUT) UpdateConfig(f func(cfg *tcp.Config)) { f(&u.cfg) }

// CloseListener closes the listener only, leaving any connection alone.
func (u *UstackDUT) CloseListener() error {
	if !u.listening {
		return ErrNoConn
	}
	u.listening = false
	return nil
}

// Accepted reports whether the application has taken the connection
// (always true for an active open).
func (u *UstackDUT) Accepted() bool { return u.conn != nil && (u.accepted || !u.listening) }
