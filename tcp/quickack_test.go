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
