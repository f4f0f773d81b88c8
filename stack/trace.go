package stack

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// Trace event kinds, the "ev" field of every JSON line.
const (
	TraceSegment = "seg"   // a TCP segment into or out of a connection
	TraceState   = "state" // a connection changed state
	TraceTimer   = "timer" // a connection's timer came due and Output ran
)

// traceBufSize bounds the trace's buffering: a full buffer is written out
// under the tracer's lock, so a slow trace file slows the stack down rather
// than growing memory.
const traceBufSize = 64 << 10

// tracer writes the event trace of Options.Trace: one JSON object per line.
// Lines are encoded by hand into a reused buffer so that tracing costs no
// allocation per event; a nil *tracer (tracing off) costs the caller one nil
// check. All methods are safe for concurrent use by the shards.
type tracer struct {
	mu     sync.Mutex
	w      *bufio.Writer // nil once closed or after a write error
	closer io.Closer     // the trace writer, if the stack owns its closing
	start  tcp.Time      // "t" is nanoseconds since this instant
	line   []byte
	err    error
}

// newTracer returns nil when w is nil: tracing is off.
func newTracer(w io.Writer, start tcp.Time) *tracer {
	if w == nil {
		return nil
	}
	t := &tracer{w: bufio.NewWriterSize(w, traceBufSize), start: start, line: make([]byte, 0, 1024)}
	if c, ok := w.(io.Closer); ok {
		t.closer = c
	}
	return t
}

// begin starts a line for event ev of connection id at now; t.mu is held.
func (t *tracer) begin(now tcp.Time, ev string, id tuple) []byte {
	b := append(t.line[:0], `{"t":`...)
	b = strconv.AppendInt(b, int64(now.Sub(t.start)), 10)
	b = append(b, `,"ev":"`...)
	b = append(b, ev...)
	b = append(b, `","local":"`...)
	b = id.local.AppendTo(b)
	b = append(b, `","remote":"`...)
	b = id.remote.AppendTo(b)
	return append(b, '"')
}

// end finishes line b and writes it; t.mu is held.
func (t *tracer) end(b []byte) {
	b = append(b, "}\n"...)
	t.line = b
	if _, err := t.w.Write(b); err != nil {
		t.err = err
		t.w = nil
	}
}

// appendConn appends the connection's variables from tc and its Info.
func appendConn(b []byte, tc *tcp.Conn, in *tcp.Info) []byte {
	b = append(b, `,"state":"`...)
	b = append(b, in.State.String()...)
	b = appendU(b, `","snd_una":`, uint64(tc.SndUna()))
	b = appendU(b, `,"snd_nxt":`, uint64(tc.SndNxt()))
	b = appendU(b, `,"rcv_nxt":`, uint64(tc.RcvNxt()))
	b = appendU(b, `,"snd_wnd":`, uint64(in.SndWnd))
	b = appendU(b, `,"rcv_wnd":`, uint64(in.RcvWnd))
	b = appendU(b, `,"cwnd":`, uint64(in.CWnd))
	b = appendU(b, `,"ssthresh":`, uint64(in.SSThresh))
	b = appendU(b, `,"srtt_ns":`, uint64(in.RTT))
	b = appendU(b, `,"rto_ns":`, uint64(in.RTO))
	b = appendU(b, `,"retrans":`, uint64(in.Retransmits))
	return appendU(b, `,"sacked":`, uint64(in.SACKedBytes))
}

func appendU(b []byte, key string, v uint64) []byte {
	return strconv.AppendUint(append(b, key...), v, 10)
}

// flagLetters names the control bits in the order of tcp.Flags' bits.
const flagLetters = "FSRPAUEC"

// segment records seg passing in (in=true) or out of ep's connection, with
// the connection's variables as they are after Input for a segment in, and as
// the Conn has them while it emits for a segment out (new data goes out at
// snd_nxt: the Conn advances it after the emission). ep's shard lock is held.
func (t *tracer) segment(ep *endpoint, in bool, seg *tcp.Segment, now tcp.Time) {
	info := ep.tc.Info()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return
	}
	b := t.begin(now, TraceSegment, ep.id)
	dir, shift := `,"dir":"out"`, info.RcvWScale
	if in {
		dir, shift = `,"dir":"in"`, info.SndWScale
	}
	b = append(b, dir...)
	b = append(b, `,"flags":"`...)
	for i := range len(flagLetters) {
		if seg.Flags&(1<<i) != 0 {
			b = append(b, flagLetters[i])
		}
	}
	b = appendU(b, `","seq":`, uint64(seg.Seq))
	b = appendU(b, `,"ack":`, uint64(seg.Ack))
	b = appendU(b, `,"len":`, uint64(len(seg.Payload)))
	b = appendU(b, `,"win":`, uint64(seg.Window))
	// RFC 7323 §2.2: the window of a SYN is never scaled.
	win := uint64(seg.Window)
	if shift > 0 && seg.Flags&tcp.FlagSYN == 0 {
		win <<= uint(shift)
	}
	b = appendU(b, `,"win_bytes":`, win)
	if n := int(seg.Options.NumSACK); n > 0 {
		b = append(b, `,"sack":[`...)
		for i := range min(n, tcp.MaxSACKBlocks) {
			if i > 0 {
				b = append(b, ',')
			}
			blk := seg.Options.SACKBlocks[i]
			b = appendU(b, "[", uint64(blk.Start))
			b = appendU(b, ",", uint64(blk.End))
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	b = appendConn(b, ep.tc, &info)
	t.end(b)
}

// state records ep's connection moving from one state to another. The stack
// sees states between operations on the Conn, so a Conn that passes through
// several states in one input batch (FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT when
// the peer's ACK and FIN arrive together) shows as one change.
func (t *tracer) state(ep *endpoint, from, to tcp.State, now tcp.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return
	}
	b := t.begin(now, TraceState, ep.id)
	b = append(b, `,"from":"`...)
	b = append(b, from.String()...)
	b = append(b, `","to":"`...)
	b = append(b, to.String()...)
	t.end(append(b, '"'))
}

// timerNames name the timers of tcp.Info in the order timersOf lists them.
var timerNames = [...]string{"retransmit", "persist", "delayed_ack", "keepalive", "fin_wait2", "time_wait", "user_timeout"}

func timersOf(in *tcp.Info) [len(timerNames)]tcp.TimerInfo {
	return [...]tcp.TimerInfo{in.Retransmit, in.Persist, in.DelayedACK, in.Keepalive, in.FinWait2, in.TimeWait, in.UserTimeout}
}

// timer records that the shard is about to run ep's Output because its
// deadline came. It is called before Output, so Info still shows the timers
// armed; the ones due at now are listed as fired. A lazily re-keyed heap entry
// (see timerHeap) with nothing due is not a firing and is not recorded.
func (t *tracer) timer(ep *endpoint, now tcp.Time) {
	next, ok := ep.tc.NextDeadline()
	if !ok {
		return
	}
	info := ep.tc.Info()
	ts := timersOf(&info)
	// Info's times left are relative to the Conn's own latest time; the
	// earliest armed timer is NextDeadline, which anchors them to now.
	minLeft := time.Duration(-1)
	for _, ti := range ts {
		if ti.Armed && (minLeft < 0 || ti.Left < minLeft) {
			minLeft = ti.Left
		}
	}
	if minLeft < 0 || next.After(now) {
		return
	}
	base := next.Add(-minLeft) // the Conn's latest time
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return
	}
	b := t.begin(now, TraceTimer, ep.id)
	b = append(b, `,"fired":[`...)
	first := true
	for i, ti := range ts {
		if ti.Armed && !base.Add(ti.Left).After(now) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, timerNames[i]...)
			b = append(b, '"')
		}
	}
	b = append(b, `],"armed":{`...)
	first = true
	for i, ti := range ts {
		if ti.Armed {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, timerNames[i]...)
			b = strconv.AppendInt(append(b, `":`...), int64(base.Add(ti.Left).Sub(now)), 10)
		}
	}
	b = append(b, '}')
	b = appendConn(b, ep.tc, &info)
	t.end(b)
}

// close flushes the trace and closes its writer when that is an io.Closer;
// later events are dropped. It returns the first write, flush or close error.
func (t *tracer) close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w != nil {
		if err := t.w.Flush(); err != nil && t.err == nil {
			t.err = err
		}
		t.w = nil
	}
	if t.closer != nil {
		if err := t.closer.Close(); err != nil && t.err == nil {
			t.err = err
		}
		t.closer = nil
	}
	return t.err
}

// flush writes out the buffered events.
func (t *tracer) flush() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w != nil {
		if err := t.w.Flush(); err != nil {
			t.err = err
			t.w = nil
		}
	}
	return t.err
}

// FlushTrace writes out the events buffered for Options.Trace and returns
// the first error writing the trace met, if any.
func (s *Stack) FlushTrace() error { return s.trace.flush() }
