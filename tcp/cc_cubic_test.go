package tcp

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cubicTestCurve is RFC 9438 Figure 1 written out independently of the
// implementation: W_cubic(t) = C*(t-K)^3 + W_max with K = cbrt(W_max*(1-β)/C),
// in segments, returned in bytes.
func cubicTestCurve(wMaxSeg, mss, tSec float64) float64 {
	k := math.Cbrt(wMaxSeg * (1 - 0.7) / 0.4)
	d := tSec - k
	return (0.4*d*d*d + wMaxSeg) * mss
}

// cubicAfterLoss returns a CUBIC sender (MSS 1000) that lost at 100
// segments, already out of recovery, with its epoch started at epoch.
func cubicAfterLoss(t *testing.T, epoch Time) *cubic {
	c := newCubic(1000, 0)
	c.SetCWnd(100000)
	c.OnEnterRecovery(0, 100000)
	require.Equal(t, uint32(70000), c.SSThresh(), "ssthresh = 0.7 * flight")
	require.Equal(t, uint32(70000), c.CWnd())
	require.Equal(t, 100000.0, c.WMax())
	c.OnExitRecovery(0)
	c.OnAck(epoch, 1, 0, 100000) // starts the epoch; 1 byte moves nothing measurable
	require.InDelta(t, math.Cbrt(75), c.K(), 1e-12, "K = cbrt(W_max*(1-β)/C) = cbrt(75) s")
	return c
}

func TestCubicFollowsCurve(t *testing.T) {
	epoch := Time(5 * time.Second)
	c := cubicAfterLoss(t, epoch)
	// At each instant ACK a whole cwnd of bytes with RTT 0: the RFC 9438 §4.4
	// increase (target-cwnd)/cwnd per segment then lands exactly on
	// target = W_cubic(t), as long as it is below 1.5*cwnd.
	prevInc := math.Inf(1)
	k := math.Cbrt(75)
	for _, sec := range []float64{1, 2, 3, 4, 4.5, 5, 6, 7, 8} {
		before := c.CWnd()
		now := epoch.Add(time.Duration(sec * float64(time.Second)))
		c.OnAck(now, before, 0, before)
		want := cubicTestCurve(100, 1000, sec)
		require.InDelta(t, want, float64(c.CWnd()), 1.0, "t=%vs: cwnd %d, W_cubic %f", sec, c.CWnd(), want)
		inc := float64(c.CWnd()) - float64(before)
		switch {
		case sec < k-0.5:
			// Concave region (§4.4): growth slows towards W_max.
			assert.Less(t, inc, prevInc, "concave at t=%v", sec)
			assert.Less(t, float64(c.CWnd()), 100000.0)
		case sec > k+0.5:
			// Convex region (§4.5): growth accelerates past W_max.
			assert.Greater(t, inc, prevInc, "convex at t=%v", sec)
			assert.Greater(t, float64(c.CWnd()), 100000.0)
		}
		prevInc = inc
	}
}

func TestCubicTargetUsesRTT(t *testing.T) {
	epoch := Time(time.Second)
	c := cubicAfterLoss(t, epoch)
	before := c.CWnd()
	c.OnAck(epoch.Add(2*time.Second), before, 100*time.Millisecond, before)
	// §4.2: target = W_cubic(t + RTT).
	assert.InDelta(t, cubicTestCurve(100, 1000, 2.1), float64(c.CWnd()), 1.0)

	// Half a cwnd acked moves half-way to the target.
	c2 := cubicAfterLoss(t, epoch)
	before = c2.CWnd()
	c2.OnAck(epoch.Add(2*time.Second), before/2, 0, before)
	want := float64(before) + (cubicTestCurve(100, 1000, 2)-float64(before))/2
	assert.InDelta(t, want, float64(c2.CWnd()), 1.0)
}

func TestCubicTargetCappedAt1Point5(t *testing.T) {
	epoch := Time(0)
	c := cubicAfterLoss(t, epoch)
	// Far in the convex region W_cubic explodes; one ACK of a full cwnd may
	// grow cwnd to 1.5x at most (§4.2).
	c.OnAck(epoch.Add(60*time.Second), 70000, 0, 70000)
	assert.Equal(t, uint32(105000), c.CWnd())
}

func TestCubicRenoFriendly(t *testing.T) {
	// Small W_max (10 segments) and 1 ms RTT: CUBIC's curve grows slowly in
	// wall time, while Reno's per-ACK estimate grows per RTT; §4.3 makes
	// cwnd follow W_est.
	c := newCubic(1000, 0)
	c.SetCWnd(10000)
	c.OnEnterRecovery(0, 10000)
	c.OnExitRecovery(0)
	require.Equal(t, uint32(7000), c.CWnd())

	// Reference: W_est per §4.3, in segments, starting at cwnd_epoch = 7,
	// α = 3(1-β)/(1+β) until W_est reaches cwnd_prior = 10, then 1.
	west, cwndSeg := 7.0, 7.0
	alphaC := 3 * (1 - 0.7) / (1 + 0.7)
	now := Time(0)
	for i := 0; i < 1000; i++ {
		now = now.Add(time.Millisecond)
		c.OnAck(now, 1000, time.Millisecond, c.CWnd())
		a := alphaC
		if west >= 10 {
			a = 1
		}
		west += a * 1 / cwndSeg
		if west > cwndSeg {
			cwndSeg = west
		}
	}
	tSec := 0.999 // the epoch began at the first ACK (1 ms)
	k := math.Cbrt((10 - 7) / 0.4)
	wc := 0.4*math.Pow(tSec-k, 3) + 10
	require.Less(t, wc, west, "the scenario must be in the Reno-friendly region")
	assert.InDelta(t, west*1000, float64(c.CWnd()), 2.0, "cwnd = W_est")
	assert.Greater(t, float64(c.CWnd()), wc*1000+10000, "well above the cubic curve")
}

func TestCubicFastConvergence(t *testing.T) {
	c := newCubic(1000, 0)
	c.SetCWnd(100000)
	c.OnEnterRecovery(0, 100000)
	assert.Equal(t, 100000.0, c.WMax())
	c.OnExitRecovery(0)
	// Loses again before regaining W_max: W_max = cwnd*(1+β)/2 (§4.7).
	c.SetCWnd(80000)
	c.OnEnterRecovery(0, 80000)
	assert.InDelta(t, 68000.0, c.WMax(), 1e-9)
	assert.Equal(t, uint32(56000), c.SSThresh())
	c.OnExitRecovery(0)
	// Loses above the previous W_max: plain W_max = cwnd.
	c.SetCWnd(120000)
	c.OnEnterRecovery(0, 120000)
	assert.Equal(t, 120000.0, c.WMax())
	assert.Equal(t, uint32(84000), c.SSThresh())
}

func TestCubicAfterRTO(t *testing.T) {
	c := newCubic(1000, 0)
	c.SetCWnd(100000)
	c.OnRTO(0, 100000)
	assert.Equal(t, uint32(1000), c.CWnd())
	assert.Equal(t, uint32(70000), c.SSThresh())
	c.OnRTO(0, 1000)
	assert.Equal(t, uint32(70000), c.SSThresh(), "held across back-to-back timeouts")
	// Slow start up to ssthresh.
	for c.CWnd() < 70000 {
		c.OnAck(Time(time.Second), 1000, 0, 0) // lands exactly on ssthresh
	}
	require.Equal(t, uint32(70000), c.CWnd())
	// §4.8: first CA stage after a timeout has K = 0 and W_max = cwnd_epoch,
	// so W_cubic(t) = 70000 + 1000*0.4*t^3.
	epoch := Time(2 * time.Second)
	c.OnAck(epoch, 1, 0, 0)
	assert.Equal(t, 0.0, c.K())
	assert.Equal(t, 70000.0, c.WMax())
	before := c.CWnd()
	c.OnAck(epoch.Add(3*time.Second), before, 0, 0)
	assert.InDelta(t, 70000+400*27.0, float64(c.CWnd()), 1.0)
}

func TestCubicIdleRestartAndSlowStart(t *testing.T) {
	c := newCubic(1000, 0)
	assert.Equal(t, uint32(10000), c.CWnd())
	c.OnAck(0, 5000, 0, 0)
	assert.Equal(t, uint32(12000), c.CWnd(), "slow start with L = 2*SMSS")
	c.SetCWnd(90000)
	c.OnIdleRestart(Time(time.Minute))
	assert.Equal(t, uint32(10000), c.CWnd(), "RFC 5681 §4.1 restart window")
}

func TestCubicClamp(t *testing.T) {
	assert.Equal(t, 5.0, cubicClamp(math.NaN(), 5))
	assert.Equal(t, 5.0, cubicClamp(math.Inf(-1), 5))
	assert.Equal(t, float64(math.MaxUint32), cubicClamp(math.Inf(1), 5))
	assert.Equal(t, 7.5, cubicClamp(7.5, 5))
}

// TestCubicSlowStartCountsStretchACKs: CUBIC's slow start grows by every
// byte an ACK delivers, as Linux's tcp_slow_start does with acked_sacked,
// not by RFC 3465's L = 2*SMSS: a receiver that ACKs four segments at once
// (Linux coalesces the segments that arrive while its reader holds the
// socket) still doubles the window per round trip. NewReno keeps L = 2.
func TestCubicSlowStartCountsStretchACKs(t *testing.T) {
	for _, tc := range []struct {
		cc           string
		cwnd, sent   uint32 // after the ACK of 4 of the first 10 segments
		cwnd2, sent2 uint32 // after the ACK of the other 6
	}{
		{"cubic", 14000, 8, 20000, 12},
		{"newreno", 12000, 6, 14000, 8},
	} {
		t.Run(tc.cc, func(t *testing.T) {
			cfg := plainConfig()
			cfg.CongestionControl = tc.cc
			cfg.SendBufferSize = 64 << 10
			h := sackEstablished(t, cfg)
			h.c.Write(data(60000, 0))
			require.Len(t, h.output(), 10) // IW [1001, 11001)
			h.now += 100 * ms
			out := h.in(sackSeg(5001))
			require.Len(t, out, int(tc.sent))
			assert.Equal(t, Seq(11001), out[0].Seq)
			assert.Equal(t, tc.cwnd, h.c.Info().CWnd)
			// The rest of the flight, one ACK: 6 more segments' worth.
			out = h.in(sackSeg(11001))
			require.Len(t, out, int(tc.sent2))
			assert.Equal(t, Seq(11001)+Seq(1000*tc.sent), out[0].Seq)
			assert.Equal(t, tc.cwnd2, h.c.Info().CWnd)
		})
	}
}
