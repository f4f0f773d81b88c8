package tcp

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hyRounds drives a renoCC through slow-start rounds of ACKs, each ACK
// delivering one MSS, with the RTT of each round given by rtt(round, i).
type hyDriver struct {
	t         *testing.T
	r         *renoCC
	delivered uint64 // TotalDelivered
	roundEnd  uint64 // delivered when the current round's segments were sent
}

// round acks n segments that were all sent after the previous round
// began: the first ACK's PriorDelivered reaches the round's end, so it
// starts a new round, the rest carry the same PriorDelivered.
func (d *hyDriver) round(n int, rtt time.Duration) {
	prior := d.delivered
	for i := 0; i < n; i++ {
		d.delivered += ccDefaultMSS
		rs := &RateSample{Acked: ccDefaultMSS, Delivered: ccDefaultMSS, Interval: rtt,
			PriorDelivered: prior, TotalDelivered: d.delivered, RTT: rtt, MSS: ccDefaultMSS}
		d.r.OnAck(0, rs)
	}
}

func newHyDriver(t *testing.T, enabled bool) *hyDriver {
	r := &renoCC{newReno: *newNewReno(ccDefaultMSS), hy: newHyStart(enabled)}
	return &hyDriver{t: t, r: r}
}

func TestHyStartEntersCSSOnRTTRise(t *testing.T) {
	// RttThresh = clamp(20ms/8, 4ms, 16ms) = 4ms: a round whose minimum
	// of 8 samples is 23.9 ms stays in slow start, 24 ms enters CSS at the
	// eighth sample.
	d := newHyDriver(t, true)
	d.round(10, 20*time.Millisecond)
	d.round(10, 23900*time.Microsecond)
	require.False(t, d.r.HyStartCSS(), "a rise below RttThresh")
	d.round(7, 28*time.Millisecond) // last round's min is 23.9: thresh 4ms (23.9/8 < 4)
	require.False(t, d.r.HyStartCSS(), "fewer than N_RTT_SAMPLE samples")
	cw := d.r.CWnd()
	// The eighth sample of the round (same round: PriorDelivered below its end).
	rs := &RateSample{Acked: ccDefaultMSS, Delivered: ccDefaultMSS, PriorDelivered: d.delivered - 7*ccDefaultMSS,
		TotalDelivered: d.delivered + ccDefaultMSS, RTT: 28 * time.Millisecond}
	d.delivered += ccDefaultMSS
	d.r.OnAck(0, rs)
	require.True(t, d.r.HyStartCSS(), "8 samples, min 28 >= 23.9 + 4")
	// Entering CSS on this ACK already divides its increase by 4.
	require.Equal(t, cw+ccDefaultMSS/4, d.r.CWnd())
	require.Equal(t, uint32(math.MaxUint32), d.r.SSThresh())

	// In CSS each ACK of one MSS adds MSS/4.
	cw = d.r.CWnd()
	d.round(4, 28*time.Millisecond)
	require.Equal(t, cw+4*(ccDefaultMSS/4), d.r.CWnd())
}

func TestHyStartCSSEndsSlowStartAfterFiveRounds(t *testing.T) {
	d := newHyDriver(t, true)
	d.round(8, 20*time.Millisecond)
	d.round(8, 30*time.Millisecond) // enters CSS at the 8th sample
	require.True(t, d.r.HyStartCSS())
	for i := 1; i < hystartCSSRounds; i++ {
		d.round(8, 30*time.Millisecond)
		require.True(t, d.r.HyStartCSS(), "CSS round %d", i)
		require.Equal(t, uint32(math.MaxUint32), d.r.SSThresh())
	}
	// The first ACK of the sixth round ends the fifth CSS round: ssthresh =
	// cwnd, and that ACK already grows cwnd by congestion avoidance.
	cw := d.r.CWnd()
	d.round(1, 30*time.Millisecond)
	require.False(t, d.r.HyStartCSS())
	require.Equal(t, cw, d.r.SSThresh())
	require.Equal(t, cw, d.r.CWnd(), "one MSS acked in congestion avoidance adds less than one MSS")
}

func TestHyStartReturnsToSlowStartWhenRTTFalls(t *testing.T) {
	d := newHyDriver(t, true)
	d.round(8, 20*time.Millisecond)
	d.round(8, 30*time.Millisecond)
	require.True(t, d.r.HyStartCSS())
	// Baseline is 30 ms: a round whose 8-sample minimum is 29 ms returns to
	// slow start at its eighth sample, and growth is one MSS per MSS again.
	d.round(7, 29*time.Millisecond)
	require.True(t, d.r.HyStartCSS())
	d.r.OnAck(0, &RateSample{Acked: ccDefaultMSS, Delivered: ccDefaultMSS, PriorDelivered: d.delivered - 7*ccDefaultMSS,
		TotalDelivered: d.delivered + ccDefaultMSS, RTT: 29 * time.Millisecond})
	d.delivered += ccDefaultMSS
	require.False(t, d.r.HyStartCSS())
	cw := d.r.CWnd()
	d.round(2, 29*time.Millisecond)
	require.Equal(t, cw+2*ccDefaultMSS, d.r.CWnd())
}

func TestHyStartOffAndAfterLoss(t *testing.T) {
	d := newHyDriver(t, false)
	d.round(8, 20*time.Millisecond)
	d.round(8, 40*time.Millisecond)
	require.False(t, d.r.HyStartCSS(), "disabled")

	// Only the initial slow start uses it: once a loss set ssthresh, an RTT
	// rise changes nothing.
	d = newHyDriver(t, true)
	d.round(8, 20*time.Millisecond)
	d.r.OnEvent(0, CCEvent{Kind: CCTimeout, InFlight: 20 * ccDefaultMSS})
	d.round(8, 20*time.Millisecond)
	d.round(8, 40*time.Millisecond)
	require.False(t, d.r.HyStartCSS())
}

// TestHyStartDefaultFollowsLinux: unset, HyStart++ runs for CUBIC (Linux's
// CUBIC has its HyStart on) and not for NewReno (Linux's reno has none);
// HyStartOn and HyStartOff choose for both.
func TestHyStartDefaultFollowsLinux(t *testing.T) {
	for _, tc := range []struct {
		cc   string
		mode HyStartMode
		on   bool
	}{
		{"cubic", HyStartDefault, true},
		{"newreno", HyStartDefault, false},
		{"cubic", HyStartOff, false},
		{"newreno", HyStartOn, true},
	} {
		cfg := plainConfig()
		cfg.CongestionControl = tc.cc
		cfg.HyStart = tc.mode
		h := corkedPeer(t, cfg)
		var hy hystart
		switch cc := h.c.cc.(type) {
		case *cubicCC:
			hy = cc.hy
		case *renoCC:
			hy = cc.hy
		default:
			t.Fatalf("%s: congestion control %T", tc.cc, cc)
		}
		require.Equal(t, tc.on, hy.phase != hystartDisabledByUser, "%s, mode %d", tc.cc, tc.mode)
	}
}
