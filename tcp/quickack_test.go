package tcp

import (
	"testing"
	"time"
)

// TestQuickACKStart: with delayed ACKs on, the first data segments are
// ACKed at once, as Linux does (tcp_incr_quickack): a budget of the window
// over two 536-byte segments (4096/1072 = 3 here, at most 16). Then the
// delayed-ACK rules apply, until a silence longer than the RTO earns a new
// budget.
func TestQuickACKStart(t *testing.T) {
	cfg := plainConfig()
	cfg.QuickACKs = 0 // Linux's
	h := newEstablished(t, cfg)
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5011 win 4086")
	h.expect(h.in(seg(FlagACK, tPeer+11, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5021 win 4076")
	h.expect(h.in(seg(FlagACK, tPeer+21, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5031 win 4066")
	// The budget is spent: the fourth waits for the 40 ms timer.
	h.expect(h.in(seg(FlagACK, tPeer+31, tISS+1, 8192, data(10, 0)...)))
	h.expect(h.advance(h.now + 39*ms))
	h.expect(h.advance(h.now+1*ms), "[.] seq 1001 ack 5041 win 4056")
	// Silence for longer than the RTO: quick ACKs again.
	h.now = h.now.Add(2 * time.Second)
	h.expect(h.in(seg(FlagACK, tPeer+41, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5051 win 4046")
}

// TestQuickACKPingpong: a reply sent within the delayed-ACK time makes the
// connection interactive (Linux's pingpong mode): the next request's ACK
// waits to ride on a reply though budget is left; a delayed ACK that finds
// no reply ends it.
func TestQuickACKPingpong(t *testing.T) {
	cfg := plainConfig()
	cfg.QuickACKs = 0
	h := newEstablished(t, cfg)
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5011 win 4086")
	h.now += 5 * ms
	h.c.Write(data(10, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5011 win 4086 len 10")
	h.now += 5 * ms
	h.expect(h.in(seg(FlagACK, tPeer+11, tISS+11, 8192, data(10, 0)...)))
	h.expect(h.advance(h.now + 39*ms))
	h.expect(h.advance(h.now+1*ms), "[.] seq 1011 ack 5021 win 4076")
	h.expect(h.in(seg(FlagACK, tPeer+21, tISS+11, 8192, data(10, 0)...)), "[.] seq 1011 ack 5031 win 4066")
}

// TestQuickACKOff: QuickACKs < 0 leaves the delayed-ACK rules alone.
func TestQuickACKOff(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...)))
	h.expect(h.advance(h.now+40*ms), "[.] seq 1001 ack 5011 win 4086")
}

// TestQuickACKAfterDuplicate: a retransmission of data already received (a
// tail-loss probe or an RTO of a segment whose ACK was lost) is answered at
// once with a D-SACK, and, as Linux's tcp_send_dupack
// (tcp_enter_quickack_mode), earns a new quick-ACK budget: the sender's
// restarted window is ACKed segment by segment, not every other segment or
// after the 40 ms timer.
func TestQuickACKAfterDuplicate(t *testing.T) {
	cfg := plainConfig()
	cfg.QuickACKs = 0
	cfg.DisableSACK = false
	h := newDialed(t, cfg)
	h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192,
		Options: Options{HasMSS: true, MSS: 1460, SACKPermitted: true}})
	for i := Seq(0); i < 3; i++ {
		h.in(seg(FlagACK, tPeer+1+10*i, tISS+1, 8192, data(10, 0)...))
	}
	// The start's budget is spent: the next segment waits for the timer.
	h.expect(h.in(seg(FlagACK, tPeer+31, tISS+1, 8192, data(10, 0)...)))
	h.expect(h.advance(h.now+40*ms), "[.] seq 1001 ack 5041 win 4056")
	// The peer resends its last segment (a TLP): D-SACK at once, and a
	// new budget (4056/1072 = 3 ACKs).
	h.expect(h.in(seg(FlagACK, tPeer+31, tISS+1, 8192, data(10, 0)...)),
		"[.] seq 1001 ack 5041 win 4056 <sack {5031:5041}>")
	h.expect(h.in(seg(FlagACK, tPeer+41, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5051 win 4046")
	h.expect(h.in(seg(FlagACK, tPeer+51, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5061 win 4036")
	h.expect(h.in(seg(FlagACK, tPeer+61, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5071 win 4026")
	h.expect(h.in(seg(FlagACK, tPeer+71, tISS+1, 8192, data(10, 0)...)))
}
