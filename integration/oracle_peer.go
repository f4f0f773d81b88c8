package integration

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// PeerConfig is what the scripted peer offers in its SYN and how it fills
// in the segments it sends. The zero value is a Linux-like peer: ISS
// 0xfffffff0 (its data wraps through zero after 15 bytes), MSS 1460, window
// scale 7, SACK-permitted and timestamps.
type PeerConfig struct {
	// ISS is the peer's initial sequence number; 0 = 0xfffffff0.
	ISS tcp.Seq
	// MSS offered in the SYN; 0 = 1460.
	MSS uint16
	// WScale is the shift offered in the SYN; 0 = 7, negative = no option.
	WScale int
	// NoSACK leaves SACK-permitted out of the SYN.
	NoSACK bool
	// NoTimestamps leaves the timestamp option out of the SYN (and so of
	// every later segment).
	NoTimestamps bool
	// Window is the raw window field of non-SYN segments; 0 = 512
	// (64 KiB with shift 7).
	Window uint16
	// SYNWindow is the window field of the SYN; 0 = 64240 (Linux's).
	SYNWindow uint16
}

func (c *PeerConfig) fill() {
	if c.ISS == 0 {
		c.ISS = 0xfffffff0
	}
	if c.MSS == 0 {
		c.MSS = 1460
	}
	if c.WScale == 0 {
		c.WScale = 7
	}
	if c.Window == 0 {
		c.Window = 512
	}
	if c.SYNWindow == 0 {
		c.SYNWindow = 64240
	}
}

// Seg describes a segment in a script, with relative numbers: Seq is
// relative to the sender's ISS, Ack to the receiver's (so a SYN has Seq 0,
// the first data byte Seq 1). In Send it is what the peer sends; in Expect
// what the DUT must emit.
type Seg struct {
	Flags tcp.Flags
	Seq   uint32
	Ack   uint32
	// Len is the payload length. Send fills the payload with the peer's
	// byte pattern for that stream offset; Expect checks the DUT's payload
	// against the DUT's stream pattern.
	Len int
	// At (Expect only) is the emission time; 0 means "now", the virtual
	// time at which the Expect step runs.
	At time.Duration
	// Opts (Expect only) if not empty must equal OptionKinds of the
	// emitted segment, e.g. "mss 1460,wscale,sackOK,TS".
	Opts string
	// AnyPayload (Expect only) skips the payload content check, for
	// segments whose bytes are not application data (gVisor's zero-window
	// probe re-sends a junk byte).
	AnyPayload bool
	// ZeroWindow (Send only) advertises a zero window.
	ZeroWindow bool
	// Window (Send only), if nonzero, is the raw window field instead of
	// PeerConfig.Window.
	Window uint16
	// SACK (Send only) are SACK blocks, relative to the DUT's ISS.
	SACK [][2]uint32
}

// Flag shorthands for scripts.
const (
	SYN = tcp.FlagSYN
	ACK = tcp.FlagACK
	FIN = tcp.FlagFIN
	RST = tcp.FlagRST
	PSH = tcp.FlagPSH
)

// Divergence is a documented, expected difference between ustack and
// gVisor: who is right is decided by the cited RFC section. Every
// divergence used in a script is listed in docs/divergences.md.
type Divergence struct {
	// Name is the short identifier used in traces and docs.
	Name string
	// RFC is the section that decides.
	RFC string
	// Summary says what differs and who is right.
	Summary string
}

// Step is one step of a peer script; build them with the constructors
// (Send, Expect, Wait, Listen, Write, ...).
type Step interface {
	run(r *Run) error
	String() string
}

// Run is one execution of a script against one DUT.
type Run struct {
	dut DUT
	cfg PeerConfig

	dutISS   tcp.Seq
	issKnown bool
	tsOK     bool // the peer offered timestamps and the DUT's SYN carried them
	tsRecent uint32

	trace   Trace
	pending []int // indices into trace.Lines of unconsumed emissions
	step    int   // index of the top-level step running
	div     string

	wrote int // bytes the DUT application has written (stream offset)
	read  int // bytes the DUT application has read
}

// RunScript executes steps against dut as the peer described by cfg. It
// stops at the first failing step; the error includes the trace so far.
// Every emission must be consumed by an Expect: leftovers fail the run.
func RunScript(dut DUT, cfg PeerConfig, steps []Step) (*Trace, error) {
	cfg.fill()
	r := &Run{dut: dut, cfg: cfg, trace: Trace{DUT: dut.Name()}}
	for i, s := range steps {
		r.step = i
		if err := r.do(s); err != nil {
			return &r.trace, fmt.Errorf("%s: step %d (%s): %w\n%s", dut.Name(), i, s, err, &r.trace)
		}
	}
	r.collect()
	if len(r.pending) > 0 {
		return &r.trace, fmt.Errorf("%s: %d unexpected segment(s) at the end of the script\n%s", dut.Name(), len(r.pending), &r.trace)
	}
	return &r.trace, nil
}

func (r *Run) do(s Step) error {
	r.collect()
	err := s.run(r)
	r.collect()
	return err
}

func (r *Run) note(format string, args ...any) {
	r.trace.Lines = append(r.trace.Lines, TraceLine{Kind: LineNote, At: r.dut.Now(), Text: fmt.Sprintf(format, args...), Step: r.step})
}

// collect moves the DUT's new emissions into the trace, learning its ISS
// from its first SYN and its timestamps as it goes.
func (r *Run) collect() {
	for _, e := range r.dut.TakeEmitted() {
		s := &e.Seg
		if s.Flags&tcp.FlagSYN != 0 && !r.issKnown {
			r.dutISS, r.issKnown = s.Seq, true
			r.tsOK = !r.cfg.NoTimestamps && s.Options.HasTimestamp
		}
		if s.Options.HasTimestamp {
			r.tsRecent = s.Options.TSVal
		}
		rel := RelSeg{At: e.At, Flags: s.Flags, Seq: uint32(s.Seq - r.dutISS), Ack: uint32(s.Ack - r.cfg.ISS), Len: len(s.Payload), Win: s.Window, Opts: s.Options}
		r.trace.Lines = append(r.trace.Lines, TraceLine{Kind: LineOut, At: e.At, Seg: rel, Step: -1, Payload: s.Payload})
		r.pending = append(r.pending, len(r.trace.Lines)-1)
	}
}

// peerPattern and dutPattern are the bytes at a stream offset of the peer's
// and the DUT's data: different periods, so a misdirected or shifted byte
// shows.
func peerPattern(off int) byte { return byte(off%241) + 1 }
func dutPattern(off int) byte  { return byte(off % 251) }

func fill(p []byte, off int, pat func(int) byte) {
	for i := range p {
		p[i] = pat(off + i)
	}
}

// tsVal is the peer's timestamp clock: 1 ms ticks from an arbitrary base.
func (r *Run) tsVal() uint32 { return 1000 + uint32(r.dut.Now()/time.Millisecond) }

type sendStep struct{ s Seg }

// Send injects a segment from the peer. Options are filled in as the peer
// config says: MSS, window scale, SACK-permitted and timestamps on a SYN;
// timestamps on every later segment once the DUT agreed to them.
func Send(s Seg) Step { return sendStep{s} }

func (st sendStep) String() string { return "send " + relSegOf(st.s).String() }

func relSegOf(s Seg) RelSeg {
	return RelSeg{Flags: s.Flags, Seq: s.Seq, Ack: s.Ack, Len: s.Len}
}

func (st sendStep) run(r *Run) error {
	s := st.s
	seg := tcp.Segment{Seq: r.cfg.ISS + tcp.Seq(s.Seq), Flags: s.Flags, Window: r.cfg.Window}
	if s.Flags&tcp.FlagACK != 0 {
		seg.Ack = r.dutISS + tcp.Seq(s.Ack)
	}
	if s.Window != 0 {
		seg.Window = s.Window
	}
	if s.ZeroWindow {
		seg.Window = 0
	}
	o := &seg.Options
	if s.Flags&tcp.FlagSYN != 0 {
		seg.Window = r.cfg.SYNWindow
		o.HasMSS, o.MSS = true, r.cfg.MSS
		if r.cfg.WScale > 0 {
			o.HasWindowScale, o.WindowScale = true, uint8(r.cfg.WScale)
		}
		o.SACKPermitted = !r.cfg.NoSACK
		if !r.cfg.NoTimestamps {
			o.HasTimestamp = true
			o.TSVal = r.tsVal()
			if s.Flags&tcp.FlagACK != 0 {
				o.TSEcr = r.tsRecent
			}
			if !r.issKnown {
				// The peer opened: the DUT's answer decides tsOK.
				r.tsOK = true
			}
		}
	} else if r.tsOK {
		o.HasTimestamp, o.TSVal, o.TSEcr = true, r.tsVal(), r.tsRecent
	}
	for i, b := range s.SACK {
		if i == tcp.MaxSACKBlocks {
			return errors.New("too many SACK blocks")
		}
		o.SACKBlocks[i] = tcp.SACKBlock{Start: r.dutISS + tcp.Seq(b[0]), End: r.dutISS + tcp.Seq(b[1])}
		o.NumSACK++
	}
	if s.Len > 0 {
		seg.Payload = make([]byte, s.Len)
		off := int(s.Seq) - 1
		if s.Flags&tcp.FlagSYN != 0 {
			off = 0
		}
		fill(seg.Payload, off, peerPattern)
	}
	rel := RelSeg{At: r.dut.Now(), Flags: seg.Flags, Seq: s.Seq, Ack: s.Ack, Len: s.Len, Win: seg.Window, Opts: seg.Options}
	r.trace.Lines = append(r.trace.Lines, TraceLine{Kind: LineIn, At: rel.At, Seg: rel, Step: r.step})
	r.dut.Inject(&seg)
	return nil
}

type expectStep struct{ want []Seg }

// Expect checks that the DUT emitted exactly want, in order, since the
// previous Expect: flags, relative seq/ack, payload length and bytes, and
// emission time. Expect() with no segments asserts silence.
func Expect(want ...Seg) Step { return expectStep{want} }

func (st expectStep) String() string {
	if len(st.want) == 0 {
		return "expect nothing"
	}
	p := make([]string, len(st.want))
	for i, w := range st.want {
		rs := relSegOf(w)
		rs.At = w.At
		p[i] = rs.Key()
	}
	return "expect " + strings.Join(p, "; ")
}

func (st expectStep) run(r *Run) error {
	got := r.pending
	r.pending = nil
	now := r.dut.Now()
	for _, i := range got {
		r.trace.Lines[i].Step = r.step
		r.trace.Lines[i].Divergence = r.div
	}
	var errs []string
	for i := range max(len(got), len(st.want)) {
		switch {
		case i >= len(got):
			w := relSegOf(st.want[i])
			errs = append(errs, fmt.Sprintf("missing segment %d: want %s", i, w))
			continue
		case i >= len(st.want):
			errs = append(errs, fmt.Sprintf("unexpected segment %d: %s at %s", i, r.trace.Lines[got[i]].Seg, fmtDur(r.trace.Lines[got[i]].At)))
			continue
		}
		w, l := st.want[i], r.trace.Lines[got[i]]
		g := l.Seg
		at := w.At
		if at == 0 {
			at = now
		}
		var bad []string
		if g.Flags != w.Flags {
			bad = append(bad, fmt.Sprintf("flags %s, want %s", FlagString(g.Flags), FlagString(w.Flags)))
		}
		if g.Seq != w.Seq {
			bad = append(bad, fmt.Sprintf("seq %d, want %d", g.Seq, w.Seq))
		}
		if w.Flags&tcp.FlagACK != 0 && g.Ack != w.Ack {
			bad = append(bad, fmt.Sprintf("ack %d, want %d", g.Ack, w.Ack))
		}
		if g.Len != w.Len {
			bad = append(bad, fmt.Sprintf("length %d, want %d", g.Len, w.Len))
		} else if g.Len > 0 && !w.AnyPayload {
			want := make([]byte, g.Len)
			fill(want, int(g.Seq)-1, dutPattern)
			if !bytes.Equal(l.Payload, want) {
				bad = append(bad, "payload differs from the application's bytes at that offset")
			}
		}
		if g.At != at {
			bad = append(bad, fmt.Sprintf("sent at %s, want %s", fmtDur(g.At), fmtDur(at)))
		}
		if w.Opts != "" && OptionKinds(&g.Opts) != w.Opts {
			bad = append(bad, fmt.Sprintf("options [%s], want [%s]", OptionKinds(&g.Opts), w.Opts))
		}
		if len(bad) > 0 {
			errs = append(errs, fmt.Sprintf("segment %d (%s): %s", i, g, strings.Join(bad, "; ")))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

type waitStep struct {
	d     time.Duration
	until bool
}

// Wait advances virtual time by d.
func Wait(d time.Duration) Step { return waitStep{d: d} }

// WaitUntil advances virtual time to t (since the DUT was created).
func WaitUntil(t time.Duration) Step { return waitStep{d: t, until: true} }

func (st waitStep) String() string {
	if st.until {
		return "wait until " + fmtDur(st.d)
	}
	return "wait " + st.d.String()
}

func (st waitStep) run(r *Run) error {
	d := st.d
	if st.until {
		d = st.d - r.dut.Now()
		if d < 0 {
			return fmt.Errorf("already at %s", fmtDur(r.dut.Now()))
		}
	}
	r.dut.Advance(d)
	return nil
}

type appStep struct {
	name string
	fn   func(r *Run) error
}

func (st appStep) String() string { return st.name }
func (st appStep) run(r *Run) error {
	r.note("%s", st.name)
	return st.fn(r)
}

// Listen opens the DUT's listener.
func Listen() Step { return appStep{"listen", func(r *Run) error { return r.dut.Listen() }} }

// Accept takes the established connection off the DUT's listener.
func Accept() Step { return appStep{"accept", func(r *Run) error { return r.dut.Accept() }} }

// Connect starts the DUT's active open.
func Connect() Step { return appStep{"connect", func(r *Run) error { return r.dut.Connect() }} }

// Write has the DUT application write n bytes of its stream pattern; all n
// must be accepted.
func Write(n int) Step {
	return appStep{fmt.Sprintf("write %d", n), func(r *Run) error {
		p := make([]byte, n)
		fill(p, r.wrote, dutPattern)
		w, err := r.dut.Write(p)
		r.wrote += w
		if err != nil {
			return err
		}
		if w != n {
			return fmt.Errorf("wrote %d of %d bytes", w, n)
		}
		return nil
	}}
}

// Read has the DUT application read: exactly n bytes of the peer's stream,
// which must match the peer's pattern.
func Read(n int) Step {
	return appStep{fmt.Sprintf("read %d", n), func(r *Run) error {
		b, err := r.dut.Read(n)
		if err != nil {
			return err
		}
		if len(b) != n {
			return fmt.Errorf("read %d bytes, want %d", len(b), n)
		}
		want := make([]byte, n)
		fill(want, r.read, peerPattern)
		r.read += n
		if !bytes.Equal(b, want) {
			return errors.New("read bytes differ from the peer's")
		}
		return nil
	}}
}

// ReadErr has the DUT application read and expects err (io.EOF, or one of
// the ErrConn* errors).
func ReadErr(want error) Step {
	return appStep{fmt.Sprintf("read → %v", want), func(r *Run) error {
		b, err := r.dut.Read(1)
		if !errors.Is(err, want) {
			return fmt.Errorf("read returned %d bytes, err %v; want %v", len(b), err, want)
		}
		return nil
	}}
}

// ReadNone checks that the DUT application has nothing to read and no error.
func ReadNone() Step {
	return appStep{"read → nothing", func(r *Run) error {
		b, err := r.dut.Read(1)
		if len(b) != 0 || err != nil {
			return fmt.Errorf("read returned %d bytes, err %v; want nothing", len(b), err)
		}
		return nil
	}}
}

// Shutdown closes the DUT's sending direction.
func Shutdown() Step {
	return appStep{"shutdown(SHUT_WR)", func(r *Run) error { return r.dut.Shutdown() }}
}

// Close closes the DUT's connection.
func Close() Step { return appStep{"close", func(r *Run) error { return r.dut.Close() }} }

// Abort closes the DUT's connection with a RST.
func Abort() Step { return appStep{"abort (SO_LINGER 0)", func(r *Run) error { return r.dut.Abort() }} }

// KeepAlive enables keepalive on the DUT's connection.
func KeepAlive(idle, interval time.Duration, count int) Step {
	return appStep{fmt.Sprintf("keepalive idle %s intvl %s cnt %d", idle, interval, count), func(r *Run) error {
		return r.dut.SetKeepAlive(idle, interval, count)
	}}
}

// State checks the DUT connection's state (ss names).
func State(want string) Step {
	return appStep{"state " + want, func(r *Run) error {
		if got := r.dut.State(); got != want {
			return fmt.Errorf("state %s, want %s", got, want)
		}
		return nil
	}}
}

type divergeStep struct {
	d      *Divergence
	ustack []Step
	gvisor []Step
}

// Diverge runs DUT-specific steps under a named expected divergence: the
// "ustack" DUT runs ustack, the "gvisor" DUT runs gvisor (any other DUT
// runs the ustack steps, which are the ones the RFC asks for). Emissions
// consumed inside are left out of CompareTraces.
func Diverge(d *Divergence, ustack, gvisor []Step) Step { return divergeStep{d, ustack, gvisor} }

func (st divergeStep) String() string { return "divergence " + st.d.Name }

func (st divergeStep) run(r *Run) error {
	steps := st.ustack
	if r.dut.Name() == "gvisor" {
		steps = st.gvisor
	}
	r.note("divergence %s (%s) begins", st.d.Name, st.d.RFC)
	r.div = st.d.Name
	defer func() { r.div = "" }()
	for i, s := range steps {
		if err := r.do(s); err != nil {
			return fmt.Errorf("%s step %d (%s): %w", st.d.Name, i, s, err)
		}
	}
	r.note("divergence %s ends", st.d.Name)
	return nil
}
