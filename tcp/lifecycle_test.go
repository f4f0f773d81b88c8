package tcp

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRSTWithAcceptableACKInSynSentRefuses(t *testing.T) {
	h := newDialed(t, plainConfig())
	h.expect(h.in(seg(FlagRST|FlagACK, 0, tISS+1, 0)))
	require.Equal(t, StateClosed, h.c.State())
	require.ErrorIs(t, h.c.Err(), syscall.ECONNREFUSED)
	require.True(t, h.c.TakeEvents().Has(EventRefused|EventClosed))
	require.True(t, h.c.Done())
}

func TestRSTWithWrongACKInSynSentIgnored(t *testing.T) {
	h := newDialed(t, plainConfig())
	h.expect(h.in(seg(FlagRST|FlagACK, 0, tISS+5, 0)))
	require.Equal(t, StateSynSent, h.c.State())
}

func TestChallengeACKRateLimit(t *testing.T) {
	cfg := plainConfig()
	cfg.ChallengeACKLimit = 3
	h := newEstablished(t, cfg)
	for i := 0; i < 3; i++ {
		h.expect(h.in(seg(FlagRST, tPeer+10, 0, 0)), "[.] seq 1001 ack 5001 win 4096")
	}
	h.expect(h.in(seg(FlagRST, tPeer+10, 0, 0)))
	h.expect(h.in(seg(FlagSYN, tPeer+10, 0, 0)))
	require.Equal(t, uint64(2), h.c.Info().ChallengeSuppress)
	h.now += sec
	h.expect(h.in(seg(FlagSYN, tPeer+10, 0, 0)), "[.] seq 1001 ack 5001 win 4096")
	require.Equal(t, StateEstablished, h.c.State())
}

func TestResetFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Segment
		want string
		ok   bool
	}{
		{"syn_gets_rst_ack", seg(FlagSYN, 100, 0, 0), "[R.] seq 0 ack 101 win 0", true},
		{"data_without_ack", seg(FlagPSH, 100, 0, 0, 1, 2, 3), "[R.] seq 0 ack 103 win 0", true},
		{"fin_without_ack", seg(FlagFIN, 100, 0, 0), "[R.] seq 0 ack 101 win 0", true},
		{"ack_gets_rst_at_ack", seg(FlagACK, 100, 777, 0), "[R] seq 777 win 0", true},
		{"syn_ack", seg(FlagSYN|FlagACK, 100, 777, 0), "[R] seq 777 win 0", true},
		{"rst_never_answered", seg(FlagRST|FlagACK, 100, 777, 0), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rst, ok := ResetFor(&tc.in)
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.want, fmtSeg(&rst))
			}
		})
	}
}

func TestAcceptCookie(t *testing.T) {
	h := &harness{t: t, now: sec}
	n := Negotiated{ISS: tISS, IRS: tPeer, MSS: 1400, SndWScale: 2, RcvWScale: 7, SACK: true, Timestamps: true, TSRecent: 77}
	ack := seg(FlagACK|FlagPSH, tPeer+1, tISS+1, 1000, []byte("hello")...)
	ack.Options = Options{HasTimestamp: true, TSVal: 78, TSEcr: 5}
	h.c = AcceptCookie(h.now, DefaultConfig(), n, &ack)
	require.Equal(t, StateEstablished, h.c.State())
	in := h.c.Info()
	require.Equal(t, uint32(4000), in.SndWnd)
	require.Equal(t, uint16(1388), in.MSS)
	require.Equal(t, int8(2), in.SndWScale)
	require.Equal(t, 5, h.c.Readable())
	require.True(t, h.c.TakeEvents().Has(EventEstablished|EventReadable))
	// The delayed ACK acknowledges the data and echoes the newest TSval.
	got := h.advance(h.now + 40*ms)
	require.Len(t, got, 1)
	require.Equal(t, tPeer+6, got[0].Ack)
	require.Equal(t, uint32(78), got[0].Options.TSEcr)
}

func TestCloseWithUnreadDataSendsRST(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...))
	h.c.Close()
	h.expect(h.output(), "[R.] seq 1001 ack 5011 win 0")
	require.Equal(t, StateClosed, h.c.State())
	require.True(t, h.c.Done())
	require.NoError(t, h.c.Err())
}

func TestAbortSendsRST(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.Write([]byte("abc"))
	h.output()
	h.c.Abort()
	h.expect(h.output(), "[R.] seq 1004 ack 5001 win 0")
	require.Equal(t, StateClosed, h.c.State())
	_, err := h.c.Write([]byte("x"))
	require.ErrorIs(t, err, syscall.EPIPE)
	require.True(t, h.c.TakeEvents().Has(EventClosed))
}

// TestRSTCarriesTimestamps: on a timestamps connection the RSTs the
// connection sends of its own accord carry TSopt (RFC 7323 §3.2 SHOULD, like
// Linux's tcp_send_active_reset); a RST answering an unacceptable segment is
// a reply without options, like Linux's tcp_v4_send_reset.
func TestRSTCarriesTimestamps(t *testing.T) {
	cases := []struct {
		name string
		do   func(h *harness) []Segment
		want string
	}{
		{"abort", func(h *harness) []Segment {
			h.now += 5 * sec
			h.c.Abort()
			return h.output()
		}, "[R.] seq 1001 ack 5001 win 0 <TS val 15000 ecr 700>"},
		{"close_with_unread_data", func(h *harness) []Segment {
			h.now += 1 * sec
			in := seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...)
			in.Options = Options{HasTimestamp: true, TSVal: 800, TSEcr: 10000}
			h.in(in)
			h.c.Close()
			return h.output()
		}, "[R.] seq 1001 ack 5011 win 0 <TS val 11000 ecr 800>"},
		{"keepalive_exhaustion", func(h *harness) []Segment {
			h.c.SetKeepAlive(true, 10*time.Second, 5*time.Second, 1)
			got := h.advance(h.now + 15*sec)
			require.Len(h.t, got, 2)
			return got[1:]
		}, "[R.] seq 1001 ack 5001 win 0 <TS val 25000 ecr 700>"},
		{"orphan_receiving_data_replies_without_options", func(h *harness) []Segment {
			h.c.Close()
			h.output()
			in := seg(FlagACK, tPeer+1, tISS+2, 8192, data(5, 0)...)
			in.Options = Options{HasTimestamp: true, TSVal: 800, TSEcr: 10000}
			return h.in(in)
		}, "[R] seq 1002 win 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plainConfig()
			cfg.DisableTimestamps = false
			h := newDialed(t, cfg)
			h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192,
				Options: Options{HasMSS: true, MSS: 1460, HasTimestamp: true, TSVal: 700, TSEcr: 10000}})
			require.Equal(t, StateEstablished, h.c.State())
			h.expect(tc.do(h), tc.want)
			require.Equal(t, StateClosed, h.c.State())
		})
	}
}

func TestAbortInSynSentSendsNothing(t *testing.T) {
	h := newDialed(t, plainConfig())
	h.c.Abort()
	h.expect(h.output())
	require.True(t, h.c.Done())
}

func TestOrphanFinWait2Timeout(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.Close()
	h.expect(h.output(), "[F.] seq 1001 ack 5001 win 4096")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2, 8192)))
	require.Equal(t, StateFinWait2, h.c.State())
	d, ok := h.c.NextDeadline()
	require.True(t, ok)
	require.Equal(t, h.now+60*sec, d)
	h.expect(h.advance(d))
	require.Equal(t, StateClosed, h.c.State())
	require.True(t, h.c.Done())
}

func TestHalfClosedFinWait2HasNoTimeout(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.CloseWrite()
	h.output()
	h.in(seg(FlagACK, tPeer+1, tISS+2, 8192))
	require.Equal(t, StateFinWait2, h.c.State())
	_, ok := h.c.NextDeadline()
	require.False(t, ok)
}

func TestOrphanReceivingDataResets(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.Close()
	h.output()
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2, 8192, data(5, 0)...)), "[R] seq 1002 win 0")
	require.Equal(t, StateClosed, h.c.State())
}

func TestFINRetransmission(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.CloseWrite()
	h.expect(h.output(), "[F.] seq 1001 ack 5001 win 4096")
	// RTT sample from the handshake was 0 → RTO = RTOMin 200ms.
	h.expect(h.advance(h.now+200*ms), "[F.] seq 1001 ack 5001 win 4096")
	h.expect(h.advance(h.now+400*ms), "[F.] seq 1001 ack 5001 win 4096")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2, 8192)))
	require.Equal(t, StateFinWait2, h.c.State())
}

func TestFINWithData(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.Write([]byte("bye"))
	h.c.CloseWrite()
	h.expect(h.output(), "[FP.] seq 1001 ack 5001 win 4096 len 3")
	// Peer sends data with its FIN too.
	h.expect(h.in(seg(FlagFIN|FlagACK, tPeer+1, tISS+5, 8192, []byte("ok")...)), "[.] seq 1005 ack 5004 win 4094")
	require.Equal(t, StateTimeWait, h.c.State())
	buf := make([]byte, 10)
	n, err := h.c.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "ok", string(buf[:n]))
}

func TestWriteBeforeEstablishedIsSentAfter(t *testing.T) {
	h := newDialed(t, plainConfig())
	n, err := h.c.Write([]byte("early"))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	h.expect(h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192}),
		"[P.] seq 1001 ack 5001 win 4096 len 5")
}

func TestOutOfOrderQueuedAndDelivered(t *testing.T) {
	h := newEstablished(t, plainConfig())
	// Second and third chunk first, then a FIN out of order.
	h.expect(h.in(seg(FlagACK, tPeer+11, tISS+1, 8192, data(10, 10)...)), "[.] seq 1001 ack 5001 win 4096")
	h.expect(h.in(seg(FlagACK|FlagFIN, tPeer+21, tISS+1, 8192, data(10, 20)...)), "[.] seq 1001 ack 5001 win 4096")
	require.Zero(t, h.c.Readable())
	// Filling the gap delivers everything and processes the FIN.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5032 win 4066")
	require.Equal(t, StateCloseWait, h.c.State())
	buf := make([]byte, 100)
	n, _ := h.c.Read(buf)
	require.Equal(t, data(30, 0), buf[:n])
}

func TestOverlappingSegmentsTrimmed(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...))
	// Overlaps 5 old bytes and brings 5 new ones.
	h.in(seg(FlagACK, tPeer+6, tISS+1, 8192, data(10, 5)...))
	buf := make([]byte, 100)
	n, _ := h.c.Read(buf)
	require.Equal(t, data(15, 0), buf[:n])
}

func TestWriteAfterCloseWriteEPIPE(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.CloseWrite()
	_, err := h.c.Write([]byte("x"))
	require.ErrorIs(t, err, syscall.EPIPE)
	require.Zero(t, h.c.Writable())
}

func TestEventsString(t *testing.T) {
	require.Equal(t, "none", Events(0).String())
	require.Equal(t, "established|writable", (EventEstablished | EventWritable).String())
}

func TestSimultaneousCloseClosing(t *testing.T) {
	h := inState(t, StateClosing)
	require.Equal(t, StateClosing, h.c.State())
	h.expect(h.in(seg(FlagACK, tPeer+2, tISS+2, 8192)))
	require.Equal(t, StateTimeWait, h.c.State())
	h.advance(h.now + 60*sec)
	require.True(t, h.c.Done())
}

func TestSynAckRetransmitLimit(t *testing.T) {
	h := newAccepted(t, plainConfig())
	var times []Time
	start := h.now
	for h.c.State() == StateSynReceived {
		d, ok := h.c.NextDeadline()
		require.True(t, ok)
		h.now = d
		if got := h.output(); len(got) > 0 {
			times = append(times, h.now-start)
		}
	}
	require.Equal(t, []Time{1 * sec, 3 * sec, 7 * sec, 15 * sec, 31 * sec}, times)
	require.Equal(t, 63*sec, h.now-start)
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
}

func TestInputInClosedAfterTimeWait(t *testing.T) {
	h := inState(t, StateTimeWait)
	h.advance(h.now + 60*sec)
	require.Equal(t, StateClosed, h.c.State())
	h.expect(h.in(seg(FlagACK, tPeer+2, tISS+2, 8192)), "[R] seq 1002 win 0")
}

func TestSuperSegmentReceive(t *testing.T) {
	cfg := plainConfig()
	cfg.RecvBufferSize = 128 << 10
	cfg.DisableWindowScale = false
	h := newDialed(t, cfg)
	h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 2}})
	// Our SYN advertised 65535 unscaled (RFC 7323 §2.2); the 65000-byte
	// super-segment fits; the ACK's window is the free space (131072-65000)
	// scaled by our shift 8.
	big := data(65000, 3)
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 1000, big...)), "[.] seq 1001 ack 70001 win 258")
	buf := make([]byte, 70000)
	n, _ := h.c.Read(buf)
	require.Equal(t, big, buf[:n])
	// Reading it all could open the window from 66048 to the whole buffer,
	// 131072: less than twice, so no update of its own (Linux's
	// tcp_cleanup_rbuf rule); the next segment carries it (131072 >> 8).
	h.expect(h.output())
	h.c.Write([]byte("x"))
	h.expect(h.output(), "[P.] seq 1001 ack 70001 win 512 len 1")
}

func TestTrimToWindow(t *testing.T) {
	h := newEstablished(t, plainConfig()) // window 4096: [5001, 9097)
	// Straddles the right edge: only the in-window part is taken, FIN dropped.
	h.in(seg(FlagACK|FlagFIN, tPeer+4001, tISS+1, 8192, data(200, 0)...))
	require.Equal(t, 96, h.c.Info().OOOBytes)
	// Straddles the left edge (old bytes + new bytes).
	h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(100, 0)...))
	h.in(seg(FlagACK, tPeer+51, tISS+1, 8192, data(100, 50)...))
	require.Equal(t, 150, h.c.Readable())
	require.Equal(t, StateEstablished, h.c.State())
}

func TestShrunkWindowStopsSending(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	h.in(seg(FlagACK, tPeer+1, tISS+1, 3000))
	h.c.Write(data(5000, 0))
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 1000", "[.] seq 2001 ack 5001 win 4096 len 1000",
		"[.] seq 3001 ack 5001 win 4096 len 1000")
	// The peer shrinks its window below what is in flight: nothing new goes.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 500)))
	// It opens again.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 3000)), "[.] seq 4001 ack 5001 win 4096 len 1000",
		"[P.] seq 5001 ack 5001 win 4096 len 1000")
}

func TestSettersAndValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	require.Error(t, Config{CongestionControl: "vegas"}.Validate())
	require.Error(t, Config{SendBufferSize: MaxBufferSize + 1}.Validate())
	c := Dial(0, Config{CongestionControl: "vegas", RecvBufferSize: 1}, 1)
	require.Equal(t, "newreno", c.Info().CC)
	require.Equal(t, MinBufferSize, c.Info().RcvBuf)
	c.SetRecvBufferSize(1 << 30)
	require.Equal(t, MaxBufferSize, c.Info().RcvBuf)
	c.SetSendBufferSize(100000)
	require.Equal(t, 100000, c.Info().SndBuf)
	require.Equal(t, 100000, c.Writable())
	c.SetUserTimeout(-1)
	c.SetUserTimeout(5)
	cu := Dial(0, Config{CongestionControl: "cubic"}, 1)
	require.Equal(t, "cubic", cu.Info().CC)
}

func TestUnackedFINInSynReceivedAfterClose(t *testing.T) {
	h := newAccepted(t, plainConfig())
	h.c.Close()
	require.Equal(t, StateSynReceived, h.c.State())
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192)), "[F.] seq 1001 ack 5001 win 4096")
	require.Equal(t, StateFinWait1, h.c.State())
}

func TestZeroReceiveWindowStillProcessesACK(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.Write(data(10, 0))
	h.output()
	// Fill our 4 KiB window completely.
	h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(2048, 0)...))
	h.in(seg(FlagACK, tPeer+2049, tISS+1, 8192, data(2048, 0)...))
	require.Zero(t, h.c.rcvWindow())
	// More data at RCV.NXT with an ACK of our 10 bytes: the data is not
	// acceptable (ACKed with window 0) but the ACK is processed (§3.10.7.4).
	h.expect(h.in(seg(FlagACK, tPeer+4097, tISS+11, 8192, data(100, 0)...)), "[.] seq 1011 ack 9097 win 0")
	require.Equal(t, uint32(0), h.c.Info().Unacked)
}
