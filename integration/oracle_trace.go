package integration

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// RelSeg is a segment as the oracle compares it: sequence numbers relative
// to the sender's ISS and acknowledgment numbers relative to the receiver's,
// so that two DUTs with different random ISSs produce identical traces.
type RelSeg struct {
	At    time.Duration
	Flags tcp.Flags
	Seq   uint32 // SEG.SEQ - sender's ISS
	Ack   uint32 // SEG.ACK - receiver's ISS (meaningful only with ACK)
	Len   int    // payload bytes
	Win   uint16 // raw window field (not compared: buffer sizes differ)
	Opts  tcp.Options
}

// Key is the part of a segment two conforming DUTs must agree on: time,
// flags, relative seq/ack, payload length and which options it carries.
func (r RelSeg) Key() string {
	ack := "-"
	if r.Flags&tcp.FlagACK != 0 {
		ack = fmt.Sprint(r.Ack)
	}
	return fmt.Sprintf("%s %s seq %d ack %s len %d opts [%s]", fmtDur(r.At), FlagString(r.Flags), r.Seq, ack, r.Len, OptionKinds(&r.Opts))
}

// String renders the segment tcpdump-style (relative numbers).
func (r RelSeg) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Flags [%s], seq %d", FlagString(r.Flags), r.Seq)
	if r.Len > 0 {
		fmt.Fprintf(&b, ":%d", r.Seq+uint32(r.Len))
	}
	if r.Flags&tcp.FlagACK != 0 {
		fmt.Fprintf(&b, ", ack %d", r.Ack)
	}
	fmt.Fprintf(&b, ", win %d", r.Win)
	if o := OptionString(&r.Opts); o != "" {
		fmt.Fprintf(&b, ", options [%s]", o)
	}
	fmt.Fprintf(&b, ", length %d", r.Len)
	return b.String()
}

// FlagString renders flags as tcpdump does: S, F, R, P, U, E, W, and "."
// for ACK, in tcpdump's order; "none" when no bit is set.
func FlagString(f tcp.Flags) string {
	var b strings.Builder
	for _, x := range []struct {
		f tcp.Flags
		c byte
	}{{tcp.FlagFIN, 'F'}, {tcp.FlagSYN, 'S'}, {tcp.FlagRST, 'R'}, {tcp.FlagPSH, 'P'}, {tcp.FlagACK, '.'}, {tcp.FlagURG, 'U'}, {tcp.FlagECE, 'E'}, {tcp.FlagCWR, 'W'}} {
		if f&x.f != 0 {
			b.WriteByte(x.c)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// OptionKinds lists which options a segment carries, with the MSS value,
// e.g. "mss 1460,wscale,sackOK,TS,sack 1", or "none". Values that
// legitimately differ between implementations (window shift, timestamp
// clocks) are left out.
func OptionKinds(o *tcp.Options) string {
	var p []string
	if o.HasMSS {
		p = append(p, fmt.Sprintf("mss %d", o.MSS))
	}
	if o.HasWindowScale {
		p = append(p, "wscale")
	}
	if o.SACKPermitted {
		p = append(p, "sackOK")
	}
	if o.HasTimestamp {
		p = append(p, "TS")
	}
	if o.NumSACK > 0 {
		p = append(p, fmt.Sprintf("sack %d", o.NumSACK))
	}
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, ",")
}

// OptionString renders options with their values, tcpdump-style.
func OptionString(o *tcp.Options) string {
	var p []string
	if o.HasMSS {
		p = append(p, fmt.Sprintf("mss %d", o.MSS))
	}
	if o.SACKPermitted {
		p = append(p, "sackOK")
	}
	if o.HasTimestamp {
		p = append(p, fmt.Sprintf("TS val %d ecr %d", o.TSVal, o.TSEcr))
	}
	if o.HasWindowScale {
		p = append(p, fmt.Sprintf("wscale %d", o.WindowScale))
	}
	if o.NumSACK > 0 {
		s := "sack"
		for i := range int(o.NumSACK) {
			s += fmt.Sprintf(" {%d:%d}", o.SACKBlocks[i].Start, o.SACKBlocks[i].End)
		}
		p = append(p, s)
	}
	return strings.Join(p, ",")
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%d.%06d", d/time.Second, (d%time.Second)/time.Microsecond)
}

// LineKind says what a trace line records.
type LineKind uint8

// The kinds of trace lines.
const (
	LineOut  LineKind = iota + 1 // a segment the DUT sent
	LineIn                       // a segment the peer injected
	LineNote                     // an application call or time step
)

// TraceLine is one line of a run's trace.
type TraceLine struct {
	Kind LineKind
	At   time.Duration
	Seg  RelSeg // LineOut, LineIn
	Text string // LineNote
	// Payload is the segment's payload (LineOut), for content checks.
	Payload []byte
	// Step is the index of the top-level script step whose Expect consumed
	// this emission (-1 while unconsumed).
	Step int
	// Divergence names the expected divergence the consuming step belongs
	// to; such lines are left out of the cross-DUT comparison.
	Divergence string
}

// Trace is everything that happened in one run, in order.
type Trace struct {
	DUT   string
	Lines []TraceLine
}

// String renders the trace, one line per event, tcpdump-like.
func (t *Trace) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s ---\n", t.DUT)
	for _, l := range t.Lines {
		switch l.Kind {
		case LineOut:
			fmt.Fprintf(&b, "%s %-6s > peer: %s", fmtDur(l.At), t.DUT, l.Seg)
			if l.Divergence != "" {
				fmt.Fprintf(&b, "   (divergence %s)", l.Divergence)
			}
		case LineIn:
			fmt.Fprintf(&b, "%s peer   > %s: %s", fmtDur(l.At), t.DUT, l.Seg)
		case LineNote:
			fmt.Fprintf(&b, "%s   # %s", fmtDur(l.At), l.Text)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// emissions returns the DUT's segments with the step that consumed them.
func (t *Trace) emissions() []TraceLine {
	var out []TraceLine
	for _, l := range t.Lines {
		if l.Kind == LineOut {
			out = append(out, l)
		}
	}
	return out
}

// CompareTraces checks that two runs of the same script emitted the same
// segments (RelSeg.Key: time, flags, relative seq/ack, length, option kinds),
// step by step, leaving out the emissions consumed inside a named expected
// divergence. On a mismatch the error shows both traces.
func CompareTraces(a, b *Trace) error {
	group := func(t *Trace) map[int][]TraceLine {
		m := map[int][]TraceLine{}
		for _, l := range t.emissions() {
			if l.Divergence == "" {
				m[l.Step] = append(m[l.Step], l)
			}
		}
		return m
	}
	ga, gb := group(a), group(b)
	steps := map[int]bool{}
	for k := range ga {
		steps[k] = true
	}
	for k := range gb {
		steps[k] = true
	}
	var diffs []string
	for _, s := range slices.Sorted(maps.Keys(steps)) {
		la, lb := ga[s], gb[s]
		for i := range max(len(la), len(lb)) {
			ka, kb := "(nothing)", "(nothing)"
			if i < len(la) {
				ka = la[i].Seg.Key()
			}
			if i < len(lb) {
				kb = lb[i].Seg.Key()
			}
			if ka != kb {
				diffs = append(diffs, fmt.Sprintf("step %d segment %d:\n  %-6s %s\n  %-6s %s", s, i, a.DUT, ka, b.DUT, kb))
			}
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("%s and %s differ:\n%s\n\n%s\n%s", a.DUT, b.DUT, strings.Join(diffs, "\n"), a, b)
}
