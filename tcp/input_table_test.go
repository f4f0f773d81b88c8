package tcp

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// tableEvent builds the arriving segment for an event from the connection's
// current RCV.NXT, RCV.WND and SND.NXT.
type tableEvent struct {
	name  string
	build func(c *Conn) Segment
}

func tableEvents() []tableEvent {
	rn := func(c *Conn) Seq {
		if c.state == StateSynSent {
			return tPeer // nothing received yet
		}
		return c.rcvNxt
	}
	sn := func(c *Conn) Seq { return c.sndMax }
	right := func(c *Conn) Seq { return c.rcvNxt + Seq(c.rcvWindow()) }
	return []tableEvent{
		{"syn", func(c *Conn) Segment { return seg(FlagSYN, rn(c), 0, 8192) }},
		{"syn_retransmit", func(c *Conn) Segment { return seg(FlagSYN, tPeer, 0, 8192) }},
		{"syn_ack", func(c *Conn) Segment { return seg(FlagSYN|FlagACK, tPeer, sn(c), 8192) }},
		{"ack_left_edge", func(c *Conn) Segment { return seg(FlagACK, rn(c), sn(c), 8192) }},
		{"ack_right_edge", func(c *Conn) Segment { return seg(FlagACK, right(c)-1, sn(c), 8192) }},
		{"ack_outside_left", func(c *Conn) Segment { return seg(FlagACK, rn(c)-1, sn(c), 8192) }},
		{"ack_outside_right", func(c *Conn) Segment { return seg(FlagACK, right(c), sn(c), 8192) }},
		{"ack_of_unsent_data", func(c *Conn) Segment { return seg(FlagACK, rn(c), sn(c)+100, 8192) }},
		{"rst_exact", func(c *Conn) Segment { return seg(FlagRST, rn(c), 0, 0) }},
		{"rst_in_window_not_exact", func(c *Conn) Segment { return seg(FlagRST, rn(c)+1, 0, 0) }},
		{"rst_outside_window", func(c *Conn) Segment { return seg(FlagRST, right(c), 0, 0) }},
		{"fin", func(c *Conn) Segment { return seg(FlagFIN|FlagACK, rn(c), sn(c), 8192) }},
		{"fin_retransmitted", func(c *Conn) Segment { return seg(FlagFIN|FlagACK, rn(c)-1, sn(c), 8192) }},
		{"data", func(c *Conn) Segment { return seg(FlagACK|FlagPSH, rn(c), sn(c), 8192, data(100, 'a')...) }},
	}
}

type tableWant struct {
	out   []string
	state State
	err   error
}

func w(st State, out ...string) tableWant { return tableWant{out: out, state: st} }

// TestInputTable runs every state × event of RFC 9293 §3.10.7 and asserts the
// exact segments emitted and the resulting state. Names read like
// "rst_in_window_not_exact_established_sends_challenge_ack".
func TestInputTable(t *testing.T) {
	const (
		ack1001 = "[.] seq 1001 ack 5001 win 4096"
		ack1002 = "[.] seq 1002 ack 5001 win 4096"
		ackCW   = "[.] seq 1001 ack 5002 win 4096"
		ackCl   = "[.] seq 1002 ack 5002 win 4096"
	)
	reset := tableWant{state: StateClosed, err: syscall.ECONNRESET}
	table := map[State]map[string]tableWant{
		StateSynSent: {
			"syn":                     w(StateSynReceived, "[S.] seq 1000 ack 5001 win 4096 <mss 1460>"),
			"syn_retransmit":          w(StateSynReceived, "[S.] seq 1000 ack 5001 win 4096 <mss 1460>"),
			"syn_ack":                 w(StateEstablished, ack1001),
			"ack_left_edge":           w(StateSynSent),
			"ack_right_edge":          w(StateSynSent),
			"ack_outside_left":        w(StateSynSent),
			"ack_outside_right":       w(StateSynSent),
			"ack_of_unsent_data":      w(StateSynSent, "[R] seq 1101 win 0"),
			"rst_exact":               w(StateSynSent),
			"rst_in_window_not_exact": w(StateSynSent),
			"rst_outside_window":      w(StateSynSent),
			"fin":                     w(StateSynSent),
			"fin_retransmitted":       w(StateSynSent),
			"data":                    w(StateSynSent),
		},
		StateSynReceived: {
			"syn":                     w(StateSynReceived, ack1001),
			"syn_retransmit":          w(StateSynReceived, "[S.] seq 1000 ack 5001 win 4096 <mss 1460>"),
			"syn_ack":                 w(StateEstablished),
			"ack_left_edge":           w(StateEstablished),
			"ack_right_edge":          w(StateEstablished),
			"ack_outside_left":        w(StateSynReceived, ack1001),
			"ack_outside_right":       w(StateSynReceived, ack1001),
			"ack_of_unsent_data":      w(StateSynReceived, "[R] seq 1101 win 0"),
			"rst_exact":               reset,
			"rst_in_window_not_exact": w(StateSynReceived, ack1001),
			"rst_outside_window":      w(StateSynReceived),
			"fin":                     w(StateCloseWait), // ACK delayed: our FIN usually carries it
			"fin_retransmitted":       w(StateSynReceived, ack1001),
			"data":                    w(StateEstablished),
		},
		StateEstablished: {
			"syn":                     w(StateEstablished, ack1001),
			"syn_retransmit":          w(StateEstablished, ack1001),
			"syn_ack":                 w(StateEstablished, ack1001),
			"ack_left_edge":           w(StateEstablished),
			"ack_right_edge":          w(StateEstablished),
			"ack_outside_left":        w(StateEstablished, ack1001),
			"ack_outside_right":       w(StateEstablished, ack1001),
			"ack_of_unsent_data":      w(StateEstablished, ack1001),
			"rst_exact":               reset,
			"rst_in_window_not_exact": w(StateEstablished, ack1001),
			"rst_outside_window":      w(StateEstablished),
			"fin":                     w(StateCloseWait), // ACK delayed: our FIN usually carries it
			"fin_retransmitted":       w(StateEstablished, ack1001),
			"data":                    w(StateEstablished), // delayed ACK
		},
		StateFinWait1: {
			"syn":                     w(StateFinWait1, ack1002),
			"syn_retransmit":          w(StateFinWait1, ack1002),
			"syn_ack":                 w(StateFinWait1, ack1002),
			"ack_left_edge":           w(StateFinWait2),
			"ack_right_edge":          w(StateFinWait2),
			"ack_outside_left":        w(StateFinWait1, ack1002),
			"ack_outside_right":       w(StateFinWait1, ack1002),
			"ack_of_unsent_data":      w(StateFinWait1, ack1002),
			"rst_exact":               reset,
			"rst_in_window_not_exact": w(StateFinWait1, ack1002),
			"rst_outside_window":      w(StateFinWait1),
			"fin":                     w(StateTimeWait, ackCl),
			"fin_retransmitted":       w(StateFinWait1, ack1002),
			"data":                    w(StateFinWait2),
		},
		StateFinWait2: {
			"syn":                     w(StateFinWait2, ack1002),
			"syn_retransmit":          w(StateFinWait2, ack1002),
			"syn_ack":                 w(StateFinWait2, ack1002),
			"ack_left_edge":           w(StateFinWait2),
			"ack_right_edge":          w(StateFinWait2),
			"ack_outside_left":        w(StateFinWait2, ack1002),
			"ack_outside_right":       w(StateFinWait2, ack1002),
			"ack_of_unsent_data":      w(StateFinWait2, ack1002),
			"rst_exact":               reset,
			"rst_in_window_not_exact": w(StateFinWait2, ack1002),
			"rst_outside_window":      w(StateFinWait2),
			"fin":                     w(StateTimeWait, ackCl),
			"fin_retransmitted":       w(StateFinWait2, ack1002),
			"data":                    w(StateFinWait2),
		},
		StateCloseWait: {
			"syn":                     w(StateCloseWait, ackCW),
			"syn_retransmit":          w(StateCloseWait, ackCW),
			"syn_ack":                 w(StateCloseWait, ackCW),
			"ack_left_edge":           w(StateCloseWait),
			"ack_right_edge":          w(StateCloseWait),
			"ack_outside_left":        w(StateCloseWait, ackCW),
			"ack_outside_right":       w(StateCloseWait, ackCW),
			"ack_of_unsent_data":      w(StateCloseWait, ackCW),
			"rst_exact":               reset,
			"rst_in_window_not_exact": w(StateCloseWait, ackCW),
			"rst_outside_window":      w(StateCloseWait),
			"fin":                     w(StateCloseWait),
			"fin_retransmitted":       w(StateCloseWait, ackCW),
			"data":                    w(StateCloseWait),
		},
		StateClosing: {
			"syn":                     w(StateClosing, ackCl),
			"syn_retransmit":          w(StateClosing, ackCl),
			"syn_ack":                 w(StateClosing, ackCl),
			"ack_left_edge":           w(StateTimeWait),
			"ack_right_edge":          w(StateTimeWait),
			"ack_outside_left":        w(StateClosing, ackCl),
			"ack_outside_right":       w(StateClosing, ackCl),
			"ack_of_unsent_data":      w(StateClosing, ackCl),
			"rst_exact":               w(StateClosed),
			"rst_in_window_not_exact": w(StateClosing, ackCl),
			"rst_outside_window":      w(StateClosing),
			"fin":                     w(StateTimeWait),
			"fin_retransmitted":       w(StateClosing, ackCl),
			"data":                    w(StateTimeWait),
		},
		StateLastAck: {
			"syn":                     w(StateLastAck, ackCl),
			"syn_retransmit":          w(StateLastAck, ackCl),
			"syn_ack":                 w(StateLastAck, ackCl),
			"ack_left_edge":           w(StateClosed),
			"ack_right_edge":          w(StateClosed),
			"ack_outside_left":        w(StateLastAck, ackCl),
			"ack_outside_right":       w(StateLastAck, ackCl),
			"ack_of_unsent_data":      w(StateLastAck, ackCl),
			"rst_exact":               w(StateClosed),
			"rst_in_window_not_exact": w(StateLastAck, ackCl),
			"rst_outside_window":      w(StateLastAck),
			"fin":                     w(StateClosed),
			"fin_retransmitted":       w(StateLastAck, ackCl),
			"data":                    w(StateClosed),
		},
		StateTimeWait: {
			"syn":                     w(StateTimeWait, ackCl),
			"syn_retransmit":          w(StateTimeWait, ackCl),
			"syn_ack":                 w(StateTimeWait, ackCl),
			"ack_left_edge":           w(StateTimeWait),
			"ack_right_edge":          w(StateTimeWait),
			"ack_outside_left":        w(StateTimeWait, ackCl),
			"ack_outside_right":       w(StateTimeWait, ackCl),
			"ack_of_unsent_data":      w(StateTimeWait, ackCl),
			"rst_exact":               w(StateClosed),
			"rst_in_window_not_exact": w(StateTimeWait, ackCl),
			"rst_outside_window":      w(StateTimeWait),
			"fin":                     w(StateTimeWait),
			"fin_retransmitted":       w(StateTimeWait, ackCl),
			"data":                    w(StateTimeWait),
		},
		StateClosed: {
			"syn":                     w(StateClosed, "[R.] seq 0 ack 5002 win 0"),
			"syn_retransmit":          w(StateClosed, "[R.] seq 0 ack 5001 win 0"),
			"syn_ack":                 w(StateClosed, "[R] seq 1001 win 0"),
			"ack_left_edge":           w(StateClosed, "[R] seq 1001 win 0"),
			"ack_right_edge":          w(StateClosed, "[R] seq 1001 win 0"),
			"ack_outside_left":        w(StateClosed, "[R] seq 1001 win 0"),
			"ack_outside_right":       w(StateClosed, "[R] seq 1001 win 0"),
			"ack_of_unsent_data":      w(StateClosed, "[R] seq 1101 win 0"),
			"rst_exact":               w(StateClosed),
			"rst_in_window_not_exact": w(StateClosed),
			"rst_outside_window":      w(StateClosed),
			"fin":                     w(StateClosed, "[R] seq 1001 win 0"),
			"fin_retransmitted":       w(StateClosed, "[R] seq 1001 win 0"),
			"data":                    w(StateClosed, "[R] seq 1001 win 0"),
		},
	}
	order := []State{StateSynSent, StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait,
		StateClosing, StateLastAck, StateTimeWait, StateClosed}
	for _, st := range order {
		for _, ev := range tableEvents() {
			want, ok := table[st][ev.name]
			require.True(t, ok, "missing table entry %s × %s", st, ev.name)
			name := fmt.Sprintf("%s_%s_%s", ev.name, stateTestName(st), describe(st, want))
			t.Run(name, func(t *testing.T) {
				h := inState(t, st)
				s := ev.build(h.c)
				h.expect(h.in(s), want.out...)
				require.Equal(t, want.state, h.c.State(), "state after %s", fmtSeg(&s))
				if want.err != nil {
					require.ErrorIs(t, h.c.Err(), want.err)
				} else if st != StateClosed {
					require.NoError(t, h.c.Err())
				}
			})
		}
	}
}

func stateTestName(s State) string {
	return map[State]string{StateSynSent: "syn_sent", StateSynReceived: "syn_received", StateEstablished: "established",
		StateFinWait1: "fin_wait_1", StateFinWait2: "fin_wait_2", StateCloseWait: "close_wait", StateClosing: "closing",
		StateLastAck: "last_ack", StateTimeWait: "time_wait", StateClosed: "closed"}[s]
}

func describe(from State, w tableWant) string {
	what := "sends_nothing"
	if len(w.out) > 0 {
		switch {
		case w.out[0][1] == 'R':
			what = "sends_rst"
		case w.out[0][1] == 'S':
			what = "sends_syn_ack"
		default:
			what = "sends_ack"
		}
	}
	if w.state != from {
		what += "_goes_" + stateTestName(w.state)
	}
	return what
}
