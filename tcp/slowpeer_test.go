package tcp

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestZeroWindowAnsweredProbesUserTimeout: a peer that answers every
// zero-window probe but never opens its window is alive by RFC 1122
// §4.2.2.17, so without a user timeout the sender persists forever
// (TestZeroWindowProbeBackoff). With one, Linux (since 5.17,
// icsk_probes_tstamp and tcp_clamp_probe0_to_user_timeout) gives up once the
// user timeout has passed since the first probe, answered or not, and cuts
// the last probe interval short so that it happens exactly then.
func TestZeroWindowAnsweredProbesUserTimeout(t *testing.T) {
	cfg := plainConfig()
	cfg.UserTimeout = 10 * time.Second
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.c.Write(data(2000, 0))
	h.output()
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 0)))
	h.c.Write(data(500, 0))
	h.expect(h.output())
	t0 := h.now
	r := Time(h.c.Info().RTO) // 337.5 ms
	var at []Time
	for i := 0; h.c.State() == StateEstablished; i++ {
		require.Less(t, i, 10, "still probing at %v", h.now-t0)
		d, ok := h.c.NextDeadline()
		require.True(t, ok)
		got := h.advance(d)
		if h.c.State() != StateEstablished {
			h.expect(got) // the connection just dies: no RST (Linux tcp_write_err)
			break
		}
		h.expect(got, "[.] seq 3001 ack 5001 win 4096 len 1")
		at = append(at, h.now-t0)
		h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 0)))
		require.Equal(t, 0, h.c.Info().ZeroWindowProbes, "answered")
	}
	// Probes at r, 3r, 7r, 15r; the next would be at 31r = r + 10.125 s,
	// past the user timeout: the timer fires at r + 10 s instead.
	require.Equal(t, []Time{r, 3 * r, 7 * r, 15 * r}, at)
	require.Equal(t, r+10*sec, h.now-t0)
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
	require.NotZero(t, h.c.TakeEvents()&EventTimedOut)
}

// TestZeroWindowUserTimeoutRestartsWhenWindowOpens: the episode ends when
// the window opens; a later zero window starts a new one with a full user
// timeout.
func TestZeroWindowUserTimeoutRestartsWhenWindowOpens(t *testing.T) {
	cfg := plainConfig()
	cfg.UserTimeout = 10 * time.Second
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.c.Write(data(2000, 0))
	h.output()
	h.in(seg(FlagACK, tPeer+1, tISS+2001, 0))
	h.c.Write(data(500, 0))
	h.output()
	// Probe for 9 s (probes at r, 3r, 7r, 15r = 5.06 s; the next is due
	// at 10.125 s, clamped to r+10 s), then the window opens.
	h.advance(h.now + 9*sec)
	require.Equal(t, StateEstablished, h.c.State())
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 1000)), "[P.] seq 3001 ack 5001 win 4096 len 500")
	// Everything acknowledged, the window shuts again with data waiting.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2501, 0)))
	h.c.Write(data(500, 0))
	h.expect(h.output())
	t1 := h.now
	for i := 0; h.c.State() == StateEstablished; i++ {
		require.Less(t, i, 10, "still probing at %v", h.now-t1)
		d, _ := h.c.NextDeadline()
		h.advance(d)
		if h.c.State() == StateEstablished {
			h.in(seg(FlagACK, tPeer+1, tISS+2501, 0))
		}
	}
	r := Time(h.c.Info().RTO)
	require.Equal(t, r+10*sec, h.now-t1, "a full user timeout from the new episode's first probe")
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
}

// TestZeroWindowWithDataInFlight: the peer acknowledges part of what is in
// flight and shuts its window (it shrank it, or dropped what it could not
// queue, as a Linux receiver with a tiny buffer does). Nothing may go into
// the window and nothing is "unsent", yet a timer must stay armed: the RTO
// retransmits SND.UNA's segment into the zero window as the probe, backing
// off; answered probes keep the connection alive, and RTOMax without an
// answer ends it (Linux tcp_retransmit_timer). Found by
// integration.TestServeZeroWindowClients: connections stuck in zero window
// with no timer armed at all.
func TestZeroWindowWithDataInFlight(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	h.c.Write(data(2000, 0))
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 1000", "[P.] seq 2001 ack 5001 win 4096 len 1000")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 0)))
	t0 := h.now
	r := Time(h.c.Info().RTO)
	var at []Time
	for i := 0; i < 4; i++ {
		d, ok := h.c.NextDeadline()
		require.True(t, ok, "a timer must be armed with data in flight")
		h.expect(h.advance(d), "[P.] seq 2001 ack 5001 win 4096 len 1000")
		at = append(at, h.now-t0)
		h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 0))) // answered, still shut
	}
	require.Equal(t, []Time{r, 3 * r, 7 * r, 15 * r}, at, "RTO backoff")
	require.Equal(t, StateEstablished, h.c.State())
	// The window opens: the rest goes at once.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 4000)), "[P.] seq 2001 ack 5001 win 4096 len 1000")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 4000)))

	// Again, but the peer goes silent: the connection ends at the first
	// RTO more than RTOMax (120 s) after its last ACK.
	h.c.Write(data(2000, 0))
	h.output()
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+3001, 0)))
	last := h.now
	rto := Time(h.c.Info().RTO)
	var want Time // the first RTO firing more than 120 s after the last ACK
	for d := rto; want <= 120*sec; d = min(2*d, 120*sec) {
		want += d
	}
	for i := 0; h.c.State() == StateEstablished; i++ {
		require.Less(t, i, 20)
		d, _ := h.c.NextDeadline()
		h.advance(d)
	}
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
	require.Equal(t, want, h.now-last)
}

// TestZeroWindowOrphanGivesUp: the application closed a connection whose
// peer keeps its window shut and answers every probe. Nobody will ever read
// or close it again, so like Linux (tcp_probe_timer, tcp_orphan_retries = 8)
// it is given up once the backed-off interval reaches RTOMax after at least
// 8 probes: with RTO 337.5 ms that is the 10th persist timeout (337.5 ms <<
// 9 = 172.8 s >= 120 s), silently.
func TestZeroWindowOrphanGivesUp(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	h.c.Write(data(2000, 0))
	h.output()
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 0)))
	h.c.Write(data(500, 0))
	h.c.Close()
	h.expect(h.output())
	require.Equal(t, StateFinWait1, h.c.State())
	t0 := h.now
	r := Time(h.c.Info().RTO)
	var at []Time
	for i := 0; h.c.State() != StateClosed; i++ {
		require.Less(t, i, 20, "orphan still probing at %v", h.now-t0)
		d, _ := h.c.NextDeadline()
		got := h.advance(d)
		if h.c.State() == StateClosed {
			h.expect(got)
			break
		}
		h.expect(got, "[.] seq 3001 ack 5001 win 4096 len 1")
		at = append(at, h.now-t0)
		h.in(seg(FlagACK, tPeer+1, tISS+2001, 0))
	}
	// Nine probes at r·(2^k − 1), the interval reaching 120 s after the 9th.
	want := []Time{}
	for k := 1; k <= 9; k++ {
		want = append(want, r*Time(1<<k-1))
	}
	require.Equal(t, want, at)
	require.Equal(t, r*511+120*sec, h.now-t0, "given up at the 10th timeout")
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
}

// TestRTOIntoWindowSmallerThanMSS: the peer shrinks its window below an MSS
// (and below half its largest window) with data in flight. After the RTO's
// rewind, sender SWS avoidance must not hold the retransmission: it goes as
// far as the window allows, like Linux's tcp_retransmit_skb, and keeps the
// retransmission timer armed. (FuzzStack crasher cc12c535c5860dfe: 8 KiB in
// flight, window 1024, MSS 1448, no timer left.)
func TestRTOIntoWindowSmallerThanMSS(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	h.c.Write(data(2000, 0))
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 1000", "[P.] seq 2001 ack 5001 win 4096 len 1000")
	// A window update on the same SEG.SEQ/SEG.ACK shrinks the window to 500.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 500)))
	d, ok := h.c.NextDeadline()
	require.True(t, ok)
	h.expect(h.advance(d), "[.] seq 1001 ack 5001 win 4096 len 500")
	in := h.c.Info()
	require.True(t, in.Retransmit.Armed, "the retransmission timer stays armed")
	// The peer takes it; the window slides on by 500: the rest follows.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+501, 500)), "[.] seq 1501 ack 5001 win 4096 len 500")
}
