package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const cmpMS = time.Millisecond // shorthand for the component tests

func TestRTOEstimatorDefaults(t *testing.T) {
	r := newRTOEstimator(0, 0, 0)
	assert.Equal(t, time.Second, r.RTO())
	assert.Equal(t, 200*cmpMS, r.Min())
	assert.Equal(t, 120*time.Second, r.Max())
	assert.Equal(t, cmpMS, r.Granularity())
	assert.False(t, r.HasSample())
	assert.Equal(t, time.Duration(0), r.SRTT())
	assert.Equal(t, time.Duration(0), r.RTTVar())
}

func TestRTOEstimatorSamples(t *testing.T) {
	// Each row feeds samples in order and expects SRTT/RTTVAR/RTO after the
	// last one, computed by hand from RFC 6298 §2.2/§2.3.
	tests := []struct {
		name               string
		initial, min, max  time.Duration
		g                  time.Duration
		samples            []time.Duration
		srtt, rttvar, want time.Duration
	}{
		{"first sample", time.Second, 200 * cmpMS, 120 * time.Second, cmpMS,
			[]time.Duration{100 * cmpMS}, 100 * cmpMS, 50 * cmpMS, 300 * cmpMS},
		{"second sample", time.Second, 200 * cmpMS, 120 * time.Second, cmpMS,
			// RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
			[]time.Duration{100 * cmpMS, 200 * cmpMS}, 112500 * time.Microsecond, 62500 * time.Microsecond, 362500 * time.Microsecond},
		{"third sample uses old SRTT for RTTVAR", time.Second, 200 * cmpMS, 120 * time.Second, cmpMS,
			// RTTVAR = 3/4*62.5 + 1/4*|112.5-50| = 62.5; SRTT = 7/8*112.5 + 50/8 = 104.6875
			[]time.Duration{100 * cmpMS, 200 * cmpMS, 50 * cmpMS}, 104687500, 62500 * time.Microsecond, 354687500},
		{"min clamps", time.Second, 200 * cmpMS, 120 * time.Second, cmpMS,
			[]time.Duration{10 * cmpMS}, 10 * cmpMS, 5 * cmpMS, 200 * cmpMS},
		{"granularity dominates 4*RTTVAR", time.Second, cmpMS, 120 * time.Second, 100 * cmpMS,
			[]time.Duration{10 * cmpMS}, 10 * cmpMS, 5 * cmpMS, 110 * cmpMS},
		{"zero sample", time.Second, cmpMS, 120 * time.Second, cmpMS,
			[]time.Duration{0}, 0, 0, cmpMS},
		{"max clamps", time.Second, 200 * cmpMS, 120 * time.Second, cmpMS,
			[]time.Duration{100 * time.Second}, 100 * time.Second, 50 * time.Second, 120 * time.Second},
		{"negative ignored", time.Second, 200 * cmpMS, 120 * time.Second, cmpMS,
			[]time.Duration{100 * cmpMS, -5 * cmpMS}, 100 * cmpMS, 50 * cmpMS, 300 * cmpMS},
		{"huge sample capped", time.Second, 200 * cmpMS, 120 * time.Second, cmpMS,
			[]time.Duration{1 << 62}, 24 * time.Hour, 12 * time.Hour, 120 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRTOEstimator(tt.initial, tt.min, tt.max)
			r.SetGranularity(tt.g)
			for _, s := range tt.samples {
				r.Sample(s)
			}
			assert.True(t, r.HasSample())
			assert.Equal(t, tt.srtt, r.SRTT(), "SRTT")
			assert.Equal(t, tt.rttvar, r.RTTVar(), "RTTVAR")
			assert.Equal(t, tt.want, r.RTO(), "RTO")
		})
	}
}

func TestRTOEstimatorBackoff(t *testing.T) {
	r := newRTOEstimator(time.Second, 200*cmpMS, 120*time.Second)
	r.Sample(100 * cmpMS) // RTO 300 cmpMS
	want := []time.Duration{600 * cmpMS, 1200 * cmpMS, 2400 * cmpMS, 4800 * cmpMS, 9600 * cmpMS, 19200 * cmpMS,
		38400 * cmpMS, 76800 * cmpMS, 120 * time.Second, 120 * time.Second}
	for i, w := range want {
		r.Backoff()
		require.Equal(t, w, r.RTO(), "after %d backoffs", i+1)
	}
	assert.Equal(t, 9, r.Backoffs(), "doublings stop counting at max")

	// RFC 6298 §5.7: without a new sample the backed-off value stays.
	assert.Equal(t, 120*time.Second, r.RTO())
	r.ResetBackoff()
	assert.Equal(t, 300*cmpMS, r.RTO())
	assert.Equal(t, 0, r.Backoffs())

	r.Backoff()
	r.Backoff()
	assert.Equal(t, 1200*cmpMS, r.RTO())
	r.Sample(100 * cmpMS) // SRTT 100, RTTVAR 37.5 → 250 cmpMS; clears backoff
	assert.Equal(t, 250*cmpMS, r.RTO())
	assert.Equal(t, 0, r.Backoffs())
}

func TestRTOEstimatorBackoffWithoutSample(t *testing.T) {
	r := newRTOEstimator(time.Second, 200*cmpMS, 120*time.Second)
	var got []time.Duration
	for i := 0; i < 9; i++ {
		r.Backoff()
		got = append(got, r.RTO())
	}
	assert.Equal(t, []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, 64 * time.Second, 120 * time.Second, 120 * time.Second, 120 * time.Second}, got)
}

func TestRTOEstimatorClampsConfig(t *testing.T) {
	r := newRTOEstimator(500*time.Second, 300*time.Second, 60*time.Second)
	assert.Equal(t, 60*time.Second, r.Min(), "min above max is lowered to max")
	assert.Equal(t, 60*time.Second, r.RTO(), "initial clamped to max")
	r = newRTOEstimator(10*cmpMS, 200*cmpMS, 120*time.Second)
	assert.Equal(t, 200*cmpMS, r.RTO(), "initial clamped to min")
}

func TestRTOEstimatorSYNTimedOut(t *testing.T) {
	r := newRTOEstimator(time.Second, 200*cmpMS, 120*time.Second)
	r.Backoff()
	r.SYNTimedOut()
	assert.Equal(t, 3*time.Second, r.RTO(), "RFC 6298 §5.7: 3 s after a SYN timeout")
	assert.Equal(t, 0, r.Backoffs())

	r = newRTOEstimator(time.Second, 200*cmpMS, 2*time.Second)
	r.SYNTimedOut()
	assert.Equal(t, 2*time.Second, r.RTO(), "never above max")

	r = newRTOEstimator(time.Second, 200*cmpMS, 120*time.Second)
	r.Sample(100 * cmpMS)
	r.Backoff()
	r.SYNTimedOut()
	assert.Equal(t, 300*cmpMS, r.RTO(), "a measured RTT wins over the 3 s rule")
}

func TestRTOSegmentTimer(t *testing.T) {
	var tm rtoSegmentTimer
	_, ok := tm.OnAck(100, 5)
	assert.False(t, ok, "idle timer yields nothing")

	tm.Start(1000, Time(10*cmpMS))
	assert.True(t, tm.Running())
	tm.Start(2000, Time(20*cmpMS)) // one measurement at a time
	_, ok = tm.OnAck(999, Time(30*cmpMS))
	assert.False(t, ok, "ACK below the timed segment's end")
	d, ok := tm.OnAck(1000, Time(110*cmpMS))
	require.True(t, ok)
	assert.Equal(t, 100*cmpMS, d)
	assert.False(t, tm.Running())

	// Karn: a retransmission cancels the measurement.
	tm.Start(3000, Time(200*cmpMS))
	tm.Cancel()
	_, ok = tm.OnAck(3000, Time(300*cmpMS))
	assert.False(t, ok)

	// Sequence wrap-around.
	tm.Start(Seq(0xFFFFFFF0).Add(0x20), Time(0))
	_, ok = tm.OnAck(0xFFFFFFF8, Time(cmpMS))
	assert.False(t, ok)
	d, ok = tm.OnAck(0x10, Time(7*cmpMS))
	require.True(t, ok)
	assert.Equal(t, 7*cmpMS, d)
}

func TestRTOTimestampSample(t *testing.T) {
	tests := []struct {
		name     string
		now, ecr uint32
		maxAge   uint32
		want     time.Duration
		ok       bool
		tick     time.Duration
	}{
		{"plain", 1000, 900, 1 << 20, 100 * cmpMS, true, cmpMS},
		{"zero rtt", 1000, 1000, 1 << 20, 0, true, cmpMS},
		{"wraps", 5, 0xFFFFFFFB, 1 << 20, 10 * cmpMS, true, cmpMS},
		{"future echo", 1000, 1001, 1 << 20, 0, false, cmpMS},
		{"too old", 1000000, 1, 1000, 0, false, cmpMS},
		{"10ms tick", 110, 100, 1 << 20, 100 * cmpMS, true, 10 * cmpMS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := rtoTimestampSample(tt.now, tt.ecr, tt.tick, tt.maxAge)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, d)
		})
	}
}
