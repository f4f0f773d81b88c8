package tcp

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fmtSeg renders a segment in tcpdump-like notation, e.g.
// "[S.] seq 100 ack 201 win 65535 <mss 1460,sackOK,TS val 1 ecr 0,wscale 7>".
func fmtSeg(s *Segment) string {
	var b strings.Builder
	b.WriteByte('[')
	for _, f := range []struct {
		f Flags
		c byte
	}{{FlagFIN, 'F'}, {FlagSYN, 'S'}, {FlagRST, 'R'}, {FlagPSH, 'P'}, {FlagACK, '.'}, {FlagURG, 'U'}, {FlagECE, 'E'}, {FlagCWR, 'W'}} {
		if s.Flags&f.f != 0 {
			b.WriteByte(f.c)
		}
	}
	if s.Flags == 0 {
		b.WriteString("none")
	}
	fmt.Fprintf(&b, "] seq %d", uint32(s.Seq))
	if s.Flags&FlagACK != 0 {
		fmt.Fprintf(&b, " ack %d", uint32(s.Ack))
	}
	fmt.Fprintf(&b, " win %d", s.Window)
	if len(s.Payload) > 0 {
		fmt.Fprintf(&b, " len %d", len(s.Payload))
	}
	if s.GSOSize > 0 {
		fmt.Fprintf(&b, " gso %d", s.GSOSize)
	}
	var opts []string
	o := &s.Options
	if o.HasMSS {
		opts = append(opts, fmt.Sprintf("mss %d", o.MSS))
	}
	if o.SACKPermitted {
		opts = append(opts, "sackOK")
	}
	if o.HasTimestamp {
		opts = append(opts, fmt.Sprintf("TS val %d ecr %d", o.TSVal, o.TSEcr))
	}
	if o.HasWindowScale {
		opts = append(opts, fmt.Sprintf("wscale %d", o.WindowScale))
	}
	if o.NumSACK > 0 {
		var bl []string
		for _, sb := range o.SACKBlocks[:o.NumSACK] {
			bl = append(bl, fmt.Sprintf("{%d:%d}", uint32(sb.Start), uint32(sb.End)))
		}
		opts = append(opts, "sack "+strings.Join(bl, ""))
	}
	if len(opts) > 0 {
		b.WriteString(" <" + strings.Join(opts, ",") + ">")
	}
	if s.ECN != ECNNotECT {
		b.WriteString(" " + s.ECN.String())
	}
	return b.String()
}

// capture is an Emitter that keeps deep copies of what it is given.
type capture struct{ segs []Segment }

func (c *capture) Emit(s *Segment) {
	cp := *s
	cp.Payload = append([]byte(nil), s.Payload...)
	c.segs = append(c.segs, cp)
}

func (c *capture) take() []Segment {
	s := c.segs
	c.segs = nil
	return s
}

func fmtSegs(segs []Segment) string {
	if len(segs) == 0 {
		return "(nothing)"
	}
	var parts []string
	for i := range segs {
		parts = append(parts, fmtSeg(&segs[i]))
	}
	return strings.Join(parts, "\n")
}

// Test numbers: our ISS, the peer's ISS.
const (
	tISS  Seq = 1000
	tPeer Seq = 5000
	ms        = Time(time.Millisecond)
	sec       = Time(time.Second)
)

// plainConfig has no options beyond MSS and a 4 KiB receive buffer, so that
// segments are easy to predict in table tests.
func plainConfig() Config {
	return Config{
		RecvBufferSize:     4096,
		SendBufferSize:     16384,
		DisableSACK:        true,
		DisableTimestamps:  true,
		DisableWindowScale: true,
		QuickACKs:          -1, // the delayed-ACK rules alone; quickack_test.go has the budget
	}
}

// harness drives one Conn against a scripted peer in virtual time.
type harness struct {
	t   *testing.T
	c   *Conn
	now Time
	out capture
}

// out runs Output and returns the emitted segments.
func (h *harness) output() []Segment {
	h.c.Output(h.now, &h.out)
	return h.out.take()
}

// in feeds a segment, then runs Output and returns what was emitted.
func (h *harness) in(seg Segment) []Segment {
	h.c.Input(h.now, &seg)
	return h.output()
}

// advance moves virtual time to t, running Output at every deadline on the
// way, and returns everything emitted.
func (h *harness) advance(to Time) []Segment {
	var all []Segment
	for {
		d, ok := h.c.NextDeadline()
		if !ok || d.After(to) {
			break
		}
		if d.After(h.now) {
			h.now = d
		}
		all = append(all, h.output()...)
	}
	h.now = to
	all = append(all, h.output()...)
	return all
}

// expect asserts the emitted segments, as tcpdump-like lines.
func (h *harness) expect(got []Segment, want ...string) {
	h.t.Helper()
	w := strings.Join(want, "\n")
	if len(want) == 0 {
		w = "(nothing)"
	}
	require.Equal(h.t, w, fmtSegs(got), "emitted segments (state %s)", h.c.State())
}

// peer segment builders.
func seg(flags Flags, seq, ack Seq, win uint16, payload ...byte) Segment {
	return Segment{Flags: flags, Seq: seq, Ack: ack, Window: win, Payload: payload}
}

func data(n int, fill byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = fill + byte(i)
	}
	return b
}

// newDialed returns a harness with a Conn that sent its SYN.
func newDialed(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, now: 10 * sec}
	h.c = Dial(h.now, cfg, tISS)
	h.output()
	return h
}

// newEstablished returns an ESTABLISHED connection (active open): our
// SND.NXT = 1001, RCV.NXT = 5001, peer window 8192, our window 4096.
func newEstablished(t *testing.T, cfg Config) *harness {
	h := newDialed(t, cfg)
	got := h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192,
		Options: Options{HasMSS: true, MSS: 1460}})
	require.Len(t, got, 1)
	require.Equal(t, StateEstablished, h.c.State())
	h.c.TakeEvents()
	return h
}

// newAccepted returns a SYN-RECEIVED connection (passive open).
func newAccepted(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, now: 10 * sec}
	syn := Segment{Flags: FlagSYN, Seq: tPeer, Window: 8192, Options: Options{HasMSS: true, MSS: 1460}}
	h.c = AcceptSYN(h.now, cfg, tISS, &syn)
	got := h.output()
	require.Len(t, got, 1)
	return h
}

// inState builds a connection in the given state with the standard numbers.
// In FIN-WAIT-1, CLOSING and LAST-ACK our FIN (seq 1001) is unacknowledged;
// RCV.NXT is 5001, or 5002 once the peer's FIN was received.
func inState(t *testing.T, st State) *harness { return inStateCfg(t, st, plainConfig()) }

func inStateCfg(t *testing.T, st State, cfg Config) *harness {
	switch st {
	case StateSynSent:
		return newDialed(t, cfg)
	case StateSynReceived:
		return newAccepted(t, cfg)
	}
	h := newEstablished(t, cfg)
	switch st {
	case StateEstablished:
	case StateFinWait1:
		h.c.CloseWrite()
		h.output() // FIN 1001
	case StateFinWait2:
		h.c.CloseWrite()
		h.output()
		h.in(seg(FlagACK, tPeer+1, tISS+2, 8192))
	case StateCloseWait:
		h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+1, 8192))
	case StateClosing:
		h.c.CloseWrite()
		h.output()
		h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+1, 8192))
	case StateLastAck:
		h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+1, 8192))
		h.c.CloseWrite()
		h.output()
	case StateTimeWait:
		h.c.CloseWrite()
		h.output()
		h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+2, 8192))
	case StateClosed:
		h.c.Abort()
		h.output()
	}
	require.Equal(t, st, h.c.State())
	h.c.TakeEvents()
	return h
}

var errPipe = syscall.EPIPE
