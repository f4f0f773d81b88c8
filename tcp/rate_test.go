package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedHarness is an established connection (MSS 1000) run by the
// test-fixed algorithm with a window of cwnd bytes.
func fixedHarness(t *testing.T, cfg Config, synack Segment, cwnd uint32) (*harness, *fixedCC) {
	cfg.CongestionControl = "test-fixed"
	cfg.MSS = 1000
	h := newDialed(t, cfg)
	if synack.Flags == 0 {
		synack = Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
			Options: Options{HasMSS: true, MSS: 1000}}
	}
	require.Len(t, h.in(synack), 1)
	require.Equal(t, StateEstablished, h.c.State())
	f := lastFixed
	f.cwnd = cwnd
	return h, f
}

func TestRateSampleDeliveryRate(t *testing.T) {
	cfg := plainConfig()
	cfg.SendBufferSize = 64 << 10
	h, f := fixedHarness(t, cfg, Segment{}, 3000)
	t0 := h.now
	h.c.Write(data(20000, 0))
	require.Len(t, h.output(), 3)

	// 100 ms later two segments are acknowledged: 2000 bytes over the
	// 100 ms since the flight began (send_elapsed 0, ack_elapsed 100 ms).
	h.now = t0 + 100*ms
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 65535)), "[.] seq 4001 ack 5001 win 4096 len 1000",
		"[.] seq 5001 ack 5001 win 4096 len 1000")
	require.Len(t, f.acks, 1)
	rs := f.acks[0]
	assert.Equal(t, uint64(2000), rs.Delivered)
	assert.Equal(t, 100*time.Millisecond, rs.Interval)
	assert.Equal(t, uint64(20000), rs.DeliveryRate())
	assert.Equal(t, 100*time.Millisecond, rs.RTT)
	assert.Equal(t, 100*time.Millisecond, rs.MinRTT)
	assert.Equal(t, uint64(0), rs.PriorDelivered)
	assert.Equal(t, uint64(2000), rs.TotalDelivered)
	assert.Equal(t, uint32(2000), rs.TxInFlight, "in flight after [2001,3001) was sent")
	assert.True(t, rs.AppLimited, "the first flight is application-limited, as on Linux")
	assert.Zero(t, rs.NewlyLost)

	// 50 ms later the third: its snapshot says 0 delivered at t0, so 3000
	// bytes over 150 ms.
	h.now = t0 + 150*ms
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+3001, 65535)), "[.] seq 6001 ack 5001 win 4096 len 1000")
	rs = f.acks[1]
	assert.Equal(t, uint64(3000), rs.Delivered)
	assert.Equal(t, 150*time.Millisecond, rs.Interval)
	assert.Equal(t, uint64(20000), rs.DeliveryRate())
	assert.Equal(t, 150*time.Millisecond, rs.RTT)
	assert.Equal(t, 100*time.Millisecond, rs.MinRTT)

	// At t0+200ms the two segments sent at t0+100ms arrive: the newest
	// was sent when 2000 bytes had been delivered (at t0+100ms), and the
	// flight it belongs to began at t0 (C.first_sent_time): send_elapsed
	// = ack_elapsed = 100 ms for 5000-2000 bytes. It is the first sample
	// of a flight sent after the first delivery: not app-limited.
	h.now = t0 + 200*ms
	h.in(seg(FlagACK, tPeer+1, tISS+5001, 65535))
	rs = f.acks[2]
	assert.Equal(t, uint64(3000), rs.Delivered)
	assert.Equal(t, 100*time.Millisecond, rs.Interval)
	assert.Equal(t, uint64(30000), rs.DeliveryRate())
	assert.Equal(t, uint64(2000), rs.PriorDelivered)
	assert.Equal(t, 100*time.Millisecond, rs.RTT)
	assert.False(t, rs.AppLimited)
	assert.Equal(t, uint64(30000), h.c.Info().DeliveryRate)

	// A duplicate ACK delivers nothing: no sample.
	h.in(seg(FlagACK, tPeer+1, tISS+5001, 65535))
	rs = f.acks[3]
	assert.Zero(t, rs.Delivered)
	assert.Zero(t, rs.DeliveryRate())
	assert.Zero(t, rs.RTT)
	assert.Equal(t, uint64(5000), rs.TotalDelivered)
}

func TestRateSampleAppLimited(t *testing.T) {
	h, f := fixedHarness(t, plainConfig(), Segment{}, 5000)
	t0 := h.now
	// The application writes one segment's worth and waits: the window
	// would allow five.
	h.c.Write(data(1000, 0))
	require.Len(t, h.output(), 1)
	h.now = t0 + 100*ms
	h.in(seg(FlagACK, tPeer+1, tISS+1001, 65535))
	assert.True(t, f.acks[0].AppLimited)
	assert.Equal(t, uint64(10000), f.acks[0].DeliveryRate())

	// Now it writes plenty: what goes out while the application-limited
	// phase lasts (until the bytes in flight at its start are delivered)
	// is marked, what goes out after is not.
	h.c.Write(data(8000, 0))
	require.Len(t, h.output(), 5)
	h.now = t0 + 200*ms
	h.in(seg(FlagACK, tPeer+1, tISS+2001, 65535))
	assert.True(t, f.acks[1].AppLimited, "sent while app-limited")
	h.in(seg(FlagACK, tPeer+1, tISS+6001, 65535))
	assert.True(t, f.acks[2].AppLimited, "still sent in the app-limited phase")
	h.now = t0 + 300*ms
	h.in(seg(FlagACK, tPeer+1, tISS+9001, 65535))
	assert.False(t, f.acks[3].AppLimited, "sent once the window, not the application, was the limit")
	assert.Equal(t, 0, h.c.rate.n, "every record acknowledged and dropped")
}

func TestRateSampleSACKAndLoss(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableSACK = false
	cfg.Recovery = RecoverySACK // losses by RFC 6675 IsLost (see TestRACKRateSampleLoss)
	synack := Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1000, SACKPermitted: true}}
	h, f := fixedHarness(t, cfg, synack, 10000)
	t0 := h.now
	h.c.Write(data(10000, 0))
	require.Len(t, h.output(), 10)
	b := func(s, e Seq) SACKBlock { return SACKBlock{Start: s, End: e} }
	h.now = t0 + 100*ms
	// [1001,2001) arrives, [2001,3001) is lost, the rest arrives.
	h.in(sackSeg(2001, b(3001, 4001)))
	rs := f.acks[0]
	assert.Equal(t, uint32(1000), rs.Acked)
	assert.Equal(t, uint32(1000), rs.NewlySACKed)
	assert.Equal(t, uint64(2000), rs.TotalDelivered, "cumulatively acked plus SACKed")
	assert.Equal(t, uint64(2000), rs.Delivered)
	assert.Zero(t, rs.NewlyLost)
	h.in(sackSeg(2001, b(3001, 5001)))
	assert.Zero(t, f.acks[1].NewlyLost, "2 MSS SACKed above the hole: not lost yet (RFC 6675 IsLost)")
	h.in(sackSeg(2001, b(3001, 6001)))
	rs = f.acks[2]
	assert.Equal(t, uint32(1000), rs.NewlyLost, "more than 2 MSS SACKed above it: the hole is lost")
	assert.Equal(t, uint64(1000), rs.TotalLost)
	assert.Equal(t, uint64(4000), rs.TotalDelivered)
	assert.False(t, rs.InRecovery)
	require.Len(t, f.lossEvents(), 1)
	assert.Equal(t, CCEvent{Kind: CCRecoveryStart, InFlight: 9000}, f.lossEvents()[0])
	// The fast retransmission of [2001,3001) and the remaining SACKs.
	h.in(sackSeg(2001, b(3001, 11001)))
	rs = f.acks[3]
	assert.True(t, rs.InRecovery)
	assert.Zero(t, rs.NewlyLost, "already counted")
	assert.Equal(t, uint64(9000), rs.TotalDelivered)
	assert.Equal(t, uint64(1000), rs.LostSinceSent)
	// The retransmission arrives: the cumulative ACK delivers only it
	// (the rest was SACKed), and it gives no RTT (Karn).
	h.now = t0 + 200*ms
	h.in(seg(FlagACK, tPeer+1, 11001, 65535))
	rs = f.acks[4]
	assert.Equal(t, uint64(10000), rs.TotalDelivered)
	assert.Zero(t, rs.RTT)
	assert.Equal(t, 100*time.Millisecond, rs.MinRTT)
	assert.Equal(t, CCRecoveryEnd, f.lossEvents()[1].Kind)
	assert.Equal(t, 0, h.c.rate.n)
}

func TestRateSampleTimeoutMarksFlightLost(t *testing.T) {
	h, f := fixedHarness(t, plainConfig(), Segment{}, 3000)
	h.c.Write(data(3000, 0))
	require.Len(t, h.output(), 3)
	h.now = h.now.Add(time.Second) // the initial RTO
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 1000", "[.] seq 2001 ack 5001 win 4096 len 1000",
		"[P.] seq 3001 ack 5001 win 4096 len 1000")
	require.Equal(t, CCEvent{Kind: CCTimeout, InFlight: 3000}, f.lossEvents()[0])
	h.in(seg(FlagACK, tPeer+1, tISS+3001, 65535))
	rs := f.acks[0]
	assert.Equal(t, uint32(3000), rs.NewlyLost)
	assert.Equal(t, uint64(3000), rs.TotalDelivered)
	assert.Zero(t, rs.RTT, "retransmitted")
}

func TestRateRingBounded(t *testing.T) {
	cfg := plainConfig()
	cfg.NoDelay = true
	cfg.SendBufferSize = 4 * rateMaxRecords
	h, _ := fixedHarness(t, cfg, Segment{}, 1<<30)
	h.c.sndWnd = 1 << 30
	for i := 0; i < 2*rateMaxRecords; i++ {
		h.c.Write([]byte{byte(i)})
		h.c.Output(h.now, &h.out)
	}
	h.out.take()
	require.Equal(t, rateMaxRecords, h.c.rate.n)
	require.Equal(t, uint32(2*rateMaxRecords), h.c.rate.at(0).start.Size(h.c.rate.at(h.c.rate.n-1).end()),
		"the excess merged into the newest record")
	h.in(seg(FlagACK, tPeer+1, tISS+1+Seq(2*rateMaxRecords), 65535))
	require.Equal(t, 0, h.c.rate.n)
	require.Equal(t, uint64(2*rateMaxRecords), h.c.rate.delivered)
}

func TestInfoDeliveryRateKeepsHigherThanAppLimited(t *testing.T) {
	h, f := fixedHarness(t, plainConfig(), Segment{}, 5000)
	t0 := h.now
	h.c.Write(data(3000, 0))
	require.Len(t, h.output(), 3)
	h.now = t0 + 100*ms
	h.in(seg(FlagACK, tPeer+1, tISS+3001, 65535))
	in := h.c.Info()
	require.Equal(t, uint64(30000), in.DeliveryRate)
	require.True(t, in.DeliveryAppLimited)
	// One segment, application-limited: a 10000 B/s sample, lower, does
	// not replace it (Linux tcp_rate_gen).
	h.c.Write(data(1000, 0))
	require.Len(t, h.output(), 1)
	h.now = t0 + 200*ms
	h.in(seg(FlagACK, tPeer+1, tISS+4001, 65535))
	require.Equal(t, uint64(10000), f.acks[len(f.acks)-1].DeliveryRate())
	require.Equal(t, uint64(30000), h.c.Info().DeliveryRate)
	// A higher application-limited one does: 2000 bytes in 50 ms.
	h.c.Write(data(2000, 0))
	require.Len(t, h.output(), 2)
	h.now = t0 + 250*ms
	h.in(seg(FlagACK, tPeer+1, tISS+6001, 65535))
	require.Equal(t, uint64(40000), h.c.Info().DeliveryRate)
}

// A super-segment partly SACKed loses only its holes: C.lost (the
// RateSample's TotalLost and NewlyLost, BBR's loss rate) counts them, not
// the whole super-segment.
func TestRateLostCountsOnlyHolesOfASuperSegment(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableSACK = false
	cfg.GSOMaxSize = 8000
	synack := Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1000, SACKPermitted: true}}
	h, f := fixedHarness(t, cfg, synack, 10000)
	t0 := h.now
	h.c.Write(data(5000, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 5000 gso 1000")
	require.Equal(t, 1, h.c.rate.n, "one record for the super-segment")
	h.c.Write(data(1000, 0))
	h.expect(h.output(), "[P.] seq 6001 ack 5001 win 4096 len 1000")
	// [1001,2001) is lost, the rest SACKed: the later segment delivered,
	// RACK marks the hole lost at once (DupThresh segments above it).
	h.now = t0 + 100*ms
	h.in(sackSeg(1001, SACKBlock{Start: 2001, End: 7001}))
	rs := f.acks[len(f.acks)-1]
	assert.Equal(t, uint64(1000), rs.TotalLost)
	assert.Equal(t, uint32(1000), rs.NewlyLost)
	in := h.c.Info()
	assert.Equal(t, uint32(1), in.Lost)
	assert.Equal(t, uint32(5), in.SACKed)
}
