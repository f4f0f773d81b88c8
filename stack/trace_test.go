package stack

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// traceEvent is one line of the trace as a reader sees it.
type traceEvent struct {
	T        int64            `json:"t"`
	Ev       string           `json:"ev"`
	Local    string           `json:"local"`
	Remote   string           `json:"remote"`
	Dir      string           `json:"dir"`
	Flags    string           `json:"flags"`
	Seq      uint32           `json:"seq"`
	Ack      uint32           `json:"ack"`
	Len      int              `json:"len"`
	Win      uint32           `json:"win"`
	WinBytes uint64           `json:"win_bytes"`
	SACK     [][2]uint32      `json:"sack"`
	State    string           `json:"state"`
	SndUna   uint32           `json:"snd_una"`
	SndNxt   uint32           `json:"snd_nxt"`
	RcvNxt   uint32           `json:"rcv_nxt"`
	SndWnd   uint32           `json:"snd_wnd"`
	RcvWnd   uint32           `json:"rcv_wnd"`
	CWnd     uint32           `json:"cwnd"`
	SSThresh uint32           `json:"ssthresh"`
	SRTT     int64            `json:"srtt_ns"`
	From     string           `json:"from"`
	To       string           `json:"to"`
	Fired    []string         `json:"fired"`
	Armed    map[string]int64 `json:"armed"`
}

func parseTrace(t *testing.T, b []byte) []traceEvent {
	t.Helper()
	var evs []traceEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e traceEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), "line %q", sc.Text())
		evs = append(evs, e)
	}
	require.NoError(t, sc.Err())
	return evs
}

func filterEv(evs []traceEvent, keep func(e *traceEvent) bool) []traceEvent {
	var out []traceEvent
	for i := range evs {
		if keep(&evs[i]) {
			out = append(out, evs[i])
		}
	}
	return out
}

// TestTraceHandshakeTransferClose: both stacks of a pair trace an echo
// exchange; the segments, their connection variables and the state changes
// are all there and agree with each other.
func TestTraceHandshakeTransferClose(t *testing.T) {
	var bufA, bufB bytes.Buffer
	n := 0
	p := newPair(t, func(o *Options) {
		if n == 0 {
			o.Trace = &bufA
		} else {
			o.Trace = &bufB
		}
		n++
	})
	msg := []byte("hello, trace")
	local := echoExchange(t, p, msg)
	require.NoError(t, p.a.Close())
	require.NoError(t, p.b.Close())

	a, b := parseTrace(t, bufA.Bytes()), parseTrace(t, bufB.Bytes())
	for _, e := range a {
		require.Equal(t, local, e.Local)
		require.Equal(t, "198.18.0.2:7", e.Remote)
	}
	for _, e := range b {
		require.Equal(t, "198.18.0.2:7", e.Local)
		require.Equal(t, local, e.Remote)
	}
	segA := filterEv(a, func(e *traceEvent) bool { return e.Ev == TraceSegment })
	segB := filterEv(b, func(e *traceEvent) bool { return e.Ev == TraceSegment })
	require.GreaterOrEqual(t, len(segA), 5)

	// Handshake: A's SYN, B sees it (SYN-RECV), B's SYN-ACK acks it.
	syn := segA[0]
	require.Equal(t, "out", syn.Dir)
	require.Equal(t, "S", syn.Flags)
	require.Equal(t, "SYN-SENT", syn.State)
	require.Equal(t, 0, syn.Len)
	require.Equal(t, syn.Seq+1, syn.SndNxt)
	require.Equal(t, "in", segB[0].Dir)
	require.Equal(t, "S", segB[0].Flags)
	require.Equal(t, syn.Seq, segB[0].Seq)
	require.Equal(t, "SYN-RECV", segB[0].State)
	require.Equal(t, syn.Seq+1, segB[0].RcvNxt)
	synack := segB[1]
	require.Equal(t, "out", synack.Dir)
	require.Equal(t, "SA", synack.Flags)
	require.Equal(t, syn.Seq+1, synack.Ack)
	require.Equal(t, uint64(synack.Win), synack.WinBytes, "a SYN's window is not scaled")
	require.Equal(t, "in", segA[1].Dir)
	require.Equal(t, "SA", segA[1].Flags)
	require.Equal(t, "ESTAB", segA[1].State)
	require.Equal(t, synack.Seq+1, segA[1].RcvNxt)
	require.Equal(t, syn.Seq+1, segA[1].SndUna)

	// Transfer: A's data segment and B's view of it.
	dataA := filterEv(segA, func(e *traceEvent) bool { return e.Dir == "out" && e.Len > 0 })
	require.Len(t, dataA, 1)
	require.Equal(t, syn.Seq+1, dataA[0].Seq)
	require.Equal(t, len(msg), dataA[0].Len)
	// The Conn advances SND.NXT after it emits: new data goes out at it.
	require.Equal(t, dataA[0].Seq, dataA[0].SndNxt)
	require.NotZero(t, dataA[0].CWnd)
	require.NotZero(t, dataA[0].SSThresh)
	require.NotZero(t, dataA[0].SRTT, "the handshake gave an RTT sample")
	require.Equal(t, "ESTAB", dataA[0].State)
	inB := filterEv(segB, func(e *traceEvent) bool { return e.Dir == "in" && e.Len > 0 })
	require.Len(t, inB, 1)
	require.Equal(t, dataA[0].Seq, inB[0].Seq)
	require.Equal(t, inB[0].Seq+uint32(len(msg)), inB[0].RcvNxt)
	// The window scale is 2^k: win_bytes is win shifted.
	for _, e := range append(segA, segB...) {
		if e.Flags != "S" && e.Flags != "SA" && e.Win > 0 {
			require.Zero(t, e.WinBytes%uint64(e.Win), "%+v", e)
		}
	}
	// Close: A's FIN.
	fins := filterEv(segA, func(e *traceEvent) bool { return e.Dir == "out" && e.Flags == "FA" })
	require.NotEmpty(t, fins)
	require.Equal(t, "FIN-WAIT-1", fins[0].State)

	// State changes, in order, from A's point of view.
	var statesA []string
	for _, e := range filterEv(a, func(e *traceEvent) bool { return e.Ev == TraceState }) {
		statesA = append(statesA, e.From+">"+e.To)
	}
	require.GreaterOrEqual(t, len(statesA), 4, "%v", statesA)
	require.Equal(t, []string{"CLOSE>SYN-SENT", "SYN-SENT>ESTAB", "ESTAB>FIN-WAIT-1"}, statesA[:3])
	// B's ACK of our FIN and its own FIN may arrive in one batch, so
	// TIME-WAIT is entered from FIN-WAIT-2 or, collapsed, FIN-WAIT-1; the
	// stack's Close then aborts it.
	n = len(statesA)
	require.Contains(t, []string{"FIN-WAIT-2>TIME-WAIT", "FIN-WAIT-1>TIME-WAIT"}, statesA[n-2], "%v", statesA)
	require.Equal(t, "TIME-WAIT>CLOSE", statesA[n-1])
	var statesB []string
	for _, e := range filterEv(b, func(e *traceEvent) bool { return e.Ev == TraceState }) {
		statesB = append(statesB, e.From+">"+e.To)
	}
	require.Equal(t, []string{"CLOSE>SYN-RECV", "SYN-RECV>ESTAB", "ESTAB>CLOSE-WAIT", "CLOSE-WAIT>LAST-ACK", "LAST-ACK>CLOSE"}, statesB)

	// Times never go backwards within one connection's trace by more
	// than the batching of a shard (they are taken under its lock).
	for _, e := range a {
		require.GreaterOrEqual(t, e.T, int64(0))
	}
}

// TestTraceTimerFiring: in virtual time, a SYN into a black hole shows up
// as the SYN, then a retransmit-timer firing exactly one RTO (1 s) later,
// then the retransmitted SYN.
func TestTraceTimerFiring(t *testing.T) {
	clk := NewManualClock(0)
	var buf bytes.Buffer
	r := newRawPeer(t, func(o *Options) { o.Clock = clk; o.Trace = &buf })
	go r.s.Dial("tcp", "198.18.0.1:80") //nolint:errcheck // ends with the stack
	dst := netip.MustParseAddrPort("198.18.0.1:80")
	src, _, first := parseTCP(t, r.recv())
	clk.Advance(time.Second)
	seg := r.expectTCPAny(src, dst)
	require.Equal(t, first.Seq, seg.Seq)
	require.NoError(t, r.s.FlushTrace())
	evs := parseTrace(t, buf.Bytes())
	var kinds []string
	for _, e := range evs {
		k := e.Ev
		if e.Ev == TraceSegment {
			k += ":" + e.Dir + ":" + e.Flags
		}
		kinds = append(kinds, k)
	}
	require.Equal(t, []string{"state", "seg:out:S", "timer", "seg:out:S"}, kinds)
	tm := evs[2]
	require.Equal(t, int64(time.Second), tm.T)
	require.Equal(t, []string{"retransmit"}, tm.Fired)
	require.Equal(t, map[string]int64{"retransmit": 0}, tm.Armed)
	require.Equal(t, "SYN-SENT", tm.State)
	require.Equal(t, first.Seq+1, tcp.Seq(tm.SndNxt))
	require.Equal(t, first.Seq, tcp.Seq(tm.SndUna))
	require.Equal(t, int64(0), evs[1].T)
	require.Equal(t, int64(time.Second), evs[3].T)
	require.Equal(t, src.String(), evs[3].Local)
}

// failWriter fails every write.
type failWriter struct{ closed bool }

func (w *failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }
func (w *failWriter) Close() error              { w.closed = true; return nil }

// TestTraceWriteErrorAndClose: a failing trace writer stops tracing without
// hurting the stack, Close reports the error and closes the writer.
func TestTraceWriteErrorAndClose(t *testing.T) {
	w := &failWriter{}
	p := newPair(t, func(o *Options) { o.Trace = w })
	ln, err := p.b.Listen("tcp", ":9")
	require.NoError(t, err)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	// 64 KiB of buffering: enough connections to overflow it.
	for range 200 {
		c, err := p.a.Dial("tcp", "198.18.0.2:9")
		require.NoError(t, err)
		c.Close()
	}
	require.EqualError(t, p.a.FlushTrace(), "disk full")
	require.EqualError(t, p.a.Close(), "disk full")
	require.True(t, w.closed)
	require.NoError(t, p.a.Close(), "a second Close has nothing to report")
}

// TestTraceOffNoAllocs: with tracing off the hooks are a nil check.
func TestTraceOffNoAllocs(t *testing.T) {
	var tr *tracer
	require.NoError(t, tr.flush())
	require.NoError(t, tr.close())
	require.Nil(t, newTracer(nil, 0))
}
