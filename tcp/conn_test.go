package tcp

import (
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStateString(t *testing.T) {
	want := map[State]string{
		StateClosed: "CLOSE", StateListen: "LISTEN", StateSynSent: "SYN-SENT", StateSynReceived: "SYN-RECV",
		StateEstablished: "ESTAB", StateFinWait1: "FIN-WAIT-1", StateFinWait2: "FIN-WAIT-2",
		StateCloseWait: "CLOSE-WAIT", StateClosing: "CLOSING", StateLastAck: "LAST-ACK", StateTimeWait: "TIME-WAIT",
	}
	for s, n := range want {
		require.Equal(t, n, s.String())
	}
	require.Equal(t, "UNKNOWN", State(200).String())
}

func TestActiveOpenHandshake(t *testing.T) {
	h := &harness{t: t, now: 10 * sec}
	h.c = Dial(h.now, plainConfig(), tISS)
	require.Equal(t, StateSynSent, h.c.State())
	h.expect(h.output(), "[S] seq 1000 win 4096 <mss 1460>")
	h.now += 30 * ms
	h.expect(h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192,
		Options: Options{HasMSS: true, MSS: 1400}}),
		"[.] seq 1001 ack 5001 win 4096")
	require.Equal(t, StateEstablished, h.c.State())
	require.Equal(t, EventEstablished|EventWritable, h.c.TakeEvents())
	in := h.c.Info()
	require.Equal(t, uint16(1400), in.MSS)
	require.Equal(t, 30*ms, Time(in.RTT))
}

func TestPassiveOpenHandshake(t *testing.T) {
	h := &harness{t: t, now: 10 * sec}
	syn := Segment{Flags: FlagSYN, Seq: tPeer, Window: 8192, Options: Options{HasMSS: true, MSS: 1460}}
	h.c = AcceptSYN(h.now, plainConfig(), tISS, &syn)
	require.Equal(t, StateSynReceived, h.c.State())
	h.expect(h.output(), "[S.] seq 1000 ack 5001 win 4096 <mss 1460>")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192)))
	require.Equal(t, StateEstablished, h.c.State())
	require.True(t, h.c.TakeEvents().Has(EventEstablished))
}

func TestDataBothWays(t *testing.T) {
	h := newEstablished(t, plainConfig())
	n, err := h.c.Write([]byte("hello"))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 5")
	h.expect(h.in(seg(FlagACK|FlagPSH, tPeer+1, tISS+6, 8192, []byte("world")...)))
	// Delayed ACK fires after 40 ms.
	h.expect(h.advance(h.now + 39*ms))
	h.expect(h.advance(h.now+1*ms), "[.] seq 1006 ack 5006 win 4091")
	buf := make([]byte, 10)
	n, err = h.c.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "world", string(buf[:n]))
	n, err = h.c.Read(buf)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestActiveCloseToTimeWait(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.Close()
	require.Equal(t, StateFinWait1, h.c.State())
	h.expect(h.output(), "[F.] seq 1001 ack 5001 win 4096")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2, 8192)))
	require.Equal(t, StateFinWait2, h.c.State())
	h.expect(h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+2, 8192)), "[.] seq 1002 ack 5002 win 4096")
	require.Equal(t, StateTimeWait, h.c.State())
	// A retransmitted FIN is re-ACKed and restarts the 2MSL timer.
	h.now += 30 * sec
	h.expect(h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+2, 8192)), "[.] seq 1002 ack 5002 win 4096")
	d, ok := h.c.NextDeadline()
	require.True(t, ok)
	require.Equal(t, h.now+60*sec, d)
	h.advance(d - 1)
	require.Equal(t, StateTimeWait, h.c.State())
	h.advance(d)
	require.Equal(t, StateClosed, h.c.State())
	require.True(t, h.c.Done())
	require.NoError(t, h.c.Err())
}

func TestPassiveClose(t *testing.T) {
	h := newEstablished(t, plainConfig())
	// The ACK of the FIN waits (delayed ACK, as Linux's pingpong mode) for
	// our own FIN to carry it.
	h.expect(h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+1, 8192)))
	require.Equal(t, StateCloseWait, h.c.State())
	ev := h.c.TakeEvents()
	require.True(t, ev.Has(EventEOF|EventReadable))
	_, err := h.c.Read(make([]byte, 1))
	require.Equal(t, io.EOF, err)
	h.c.Close()
	require.Equal(t, StateLastAck, h.c.State())
	h.expect(h.output(), "[F.] seq 1001 ack 5002 win 4096")
	h.expect(h.in(seg(FlagACK, tPeer+2, tISS+2, 8192)))
	require.Equal(t, StateClosed, h.c.State())
	require.True(t, h.c.Done())
}

// TestPassiveCloseAckTimer: an application that does not close soon after
// EOF still gets the peer's FIN acknowledged, by the delayed-ACK timer.
func TestPassiveCloseAckTimer(t *testing.T) {
	cfg := plainConfig()
	cfg.DelayedACK = 40 * time.Millisecond
	h := newEstablished(t, cfg)
	h.expect(h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+1, 8192)))
	at, ok := h.c.NextDeadline()
	require.True(t, ok)
	require.Equal(t, h.now.Add(40*time.Millisecond), at)
	h.now = at - 1
	h.expect(h.output())
	h.now = at
	h.expect(h.output(), "[.] seq 1001 ack 5002 win 4096")
	require.Equal(t, StateCloseWait, h.c.State())
}

// TestPassiveCloseAckAtOnceWithoutDelayedACK: with delayed ACKs off the FIN
// is acknowledged at once.
func TestPassiveCloseAckAtOnceWithoutDelayedACK(t *testing.T) {
	cfg := plainConfig()
	cfg.DelayedACK = -1
	h := newEstablished(t, cfg)
	h.expect(h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+1, 8192)), "[.] seq 1001 ack 5002 win 4096")
}

func TestRSTExactResets(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.expect(h.in(seg(FlagRST, tPeer+1, 0, 0)))
	require.Equal(t, StateClosed, h.c.State())
	require.ErrorIs(t, h.c.Err(), syscall.ECONNRESET)
	_, err := h.c.Write([]byte("x"))
	require.ErrorIs(t, err, syscall.ECONNRESET)
}

func TestSynRetransmitBackoffTimesOut(t *testing.T) {
	h := &harness{t: t, now: 0}
	h.c = Dial(h.now, plainConfig(), tISS)
	var times []Time
	h.output()
	times = append(times, h.now)
	for h.c.State() == StateSynSent {
		d, ok := h.c.NextDeadline()
		require.True(t, ok)
		h.now = d
		if got := h.output(); len(got) > 0 {
			require.Equal(t, "[S] seq 1000 win 4096 <mss 1460>", fmtSeg(&got[0]))
			times = append(times, h.now)
		}
	}
	require.Equal(t, []Time{0, 1 * sec, 3 * sec, 7 * sec, 15 * sec, 31 * sec, 63 * sec}, times)
	require.Equal(t, 127*sec, h.now)
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
	require.True(t, h.c.TakeEvents().Has(EventTimedOut|EventClosed))
}

func TestWindowScaleFor(t *testing.T) {
	for _, tc := range []struct {
		rcvbuf int
		want   uint8
	}{
		{0, 8},              // default buffer: the 8 MiB floor needs 65535<<8
		{16 << 20, 9},       // 16 MiB
		{MaxBufferSize, 11}, // 64 MiB
		{1 << 10, 8},        // clamped up to MinBufferSize, floor still 8 MiB
	} {
		require.Equal(t, tc.want, WindowScaleFor(Config{RecvBufferSize: tc.rcvbuf}), "rcvbuf %d", tc.rcvbuf)
	}
	require.Equal(t, uint32(1234+7), TSClock(Time(1234*time.Millisecond+999), 7))
}
