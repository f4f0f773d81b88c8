package tcp

import (
	"math"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewCongestionControlNames(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"", "newreno"},
		{"newreno", "newreno"},
		{"cubic", "cubic"},
	}
	for _, tt := range tests {
		cc, err := newCongestionControl(tt.name, 1460, 0)
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want, cc.Name())
		assert.Equal(t, uint32(14600), cc.CWnd())
		assert.Equal(t, uint32(math.MaxUint32), cc.SSThresh())
	}
	_, err := newCongestionControl("vegas", 1460, 0)
	require.Error(t, err)
	assert.Equal(t, `tcp: unknown congestion control "vegas" (valid: newreno, cubic)`, err.Error())
	_, err = newCongestionControl("NewReno", 1460, 0)
	assert.Error(t, err, "names are case-sensitive like Linux's")
}

func TestCCInitialWindow(t *testing.T) {
	// RFC 6928 §2: min(10*MSS, max(2*MSS, 14600)).
	tests := []struct{ mss, want uint32 }{
		{536, 5360},
		{1000, 10000},
		{1220, 12200},
		{1460, 14600},
		{1461, 14600},
		{4000, 14600},
		{8960, 17920},
		{65535, 131070},
		{math.MaxUint32, math.MaxUint32},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ccInitialWindow(tt.mss), "mss %d", tt.mss)
	}
	cc, err := newCongestionControl("", 0, 0)
	require.NoError(t, err)
	assert.Equal(t, uint32(5360), cc.CWnd(), "MSS 0 falls back to 536")
}

func TestCCSaturatingHelpers(t *testing.T) {
	assert.Equal(t, uint32(math.MaxUint32), ccSaturatingAdd(math.MaxUint32-1, 2))
	assert.Equal(t, uint32(7), ccSaturatingAdd(3, 4))
	assert.Equal(t, uint32(2000), ccLossSSThresh(100, 1, 2, 1000))
	assert.Equal(t, uint32(math.MaxUint32/2), ccLossSSThresh(math.MaxUint32, 1, 2, 1000))
	assert.Equal(t, uint32(3006477106), ccLossSSThresh(math.MaxUint32, 7, 10, 1000))
	assert.Equal(t, uint32(math.MaxUint32), ccLossSSThresh(0, 1, 2, math.MaxUint32))
}

func TestNewRenoSlowStart(t *testing.T) {
	r := newNewReno(1000)
	require.Equal(t, uint32(10000), r.CWnd())
	steps := []struct {
		acked, want uint32
	}{
		{1000, 11000},
		{500, 11500},
		{5000, 13500}, // RFC 3465: at most L = 2*SMSS per ACK
		{2000, 15500},
		{0, 15500}, // nothing acked, nothing grows
	}
	for i, s := range steps {
		r.OnAck(0, s.acked, 0, 0)
		require.Equal(t, s.want, r.CWnd(), "step %d", i)
	}
}

func TestNewRenoCongestionAvoidance(t *testing.T) {
	r := newNewReno(1000)
	r.SetCWnd(40000)
	r.OnEnterRecovery(0, 20000) // ssthresh = 10000
	assert.Equal(t, uint32(10000), r.SSThresh())
	assert.Equal(t, uint32(10000), r.CWnd(), "deflated to ssthresh on entry")
	r.OnExitRecovery(0)
	assert.Equal(t, uint32(10000), r.CWnd())

	// RFC 3465 §2.1: +1 SMSS once a full cwnd of bytes has been acked.
	for i := 1; i <= 9; i++ {
		r.OnAck(0, 1000, 0, 0)
		require.Equal(t, uint32(10000), r.CWnd(), "ack %d", i)
	}
	r.OnAck(0, 1000, 0, 0)
	assert.Equal(t, uint32(11000), r.CWnd())
	// Next increase needs 11000 more bytes.
	for i := 0; i < 10; i++ {
		r.OnAck(0, 1000, 0, 0)
	}
	assert.Equal(t, uint32(11000), r.CWnd())
	r.OnAck(0, 1000, 0, 0)
	assert.Equal(t, uint32(12000), r.CWnd())
	// One enormous ACK still earns one SMSS only.
	r.OnAck(0, 1<<30, 0, 0)
	assert.Equal(t, uint32(13000), r.CWnd())
}

func TestNewRenoSlowStartCrossesSSThresh(t *testing.T) {
	r := newNewReno(1000)
	r.SetCWnd(23000)
	r.OnRTO(0, 23000) // ssthresh 11500, cwnd 1000
	assert.Equal(t, uint32(11500), r.SSThresh())
	assert.Equal(t, uint32(1000), r.CWnd())
	for r.CWnd() < 11000 {
		r.OnAck(0, 2000, 0, 0)
	}
	assert.Equal(t, uint32(11000), r.CWnd())
	// 2000 acked: 500 finish slow start at ssthresh, 1500 count for CA.
	r.OnAck(0, 2000, 0, 0)
	assert.Equal(t, uint32(11500), r.CWnd())
	r.OnAck(0, 9999, 0, 0) // 1500+9999 = 11499 < 11500
	assert.Equal(t, uint32(11500), r.CWnd())
	r.OnAck(0, 1, 0, 0)
	assert.Equal(t, uint32(12500), r.CWnd())
}

func TestNewRenoLossReactions(t *testing.T) {
	tests := []struct {
		name         string
		apply        func(cc congestionControl)
		cwnd, ssthr  uint32
		afterAckCwnd uint32
	}{
		{"recovery halves flight", func(cc congestionControl) { cc.SetCWnd(30000); cc.OnEnterRecovery(0, 30000) }, 15000, 15000, 15000},
		{"recovery halves cwnd below flight", func(cc congestionControl) {
			// SACKed bytes above the recovery point of an earlier
			// recovery make SND.MAX - SND.UNA several times cwnd.
			cc.SetCWnd(20000)
			cc.OnEnterRecovery(0, 80000)
		}, 10000, 10000, 10000},
		{"recovery floor 2 MSS", func(cc congestionControl) { cc.OnEnterRecovery(0, 1000) }, 2000, 2000, 2000},
		{"rto loss window", func(cc congestionControl) { cc.SetCWnd(30000); cc.OnRTO(0, 30000) }, 1000, 15000, 2000},
		{"rto twice holds ssthresh", func(cc congestionControl) {
			cc.SetCWnd(30000)
			cc.OnRTO(0, 30000)
			cc.OnRTO(0, 1000) // RFC 5681 §3.1: the retransmission timed out again
		}, 1000, 15000, 2000},
		{"rto after new ack recomputes", func(cc congestionControl) {
			cc.SetCWnd(30000)
			cc.OnRTO(0, 30000)
			cc.SetCWnd(8000)
			cc.OnAck(0, 1000, 0, 0)
			cc.OnRTO(0, 8000)
		}, 1000, 4000, 2000},
		{"inflation then exit", func(cc congestionControl) {
			cc.SetCWnd(30000)
			cc.OnEnterRecovery(0, 30000)
			cc.SetCWnd(cc.SSThresh() + 3*1000) // RFC 6582 step 3
			cc.SetCWnd(cc.CWnd() + 1000)
			cc.OnExitRecovery(0)
		}, 15000, 15000, 15000},
		{"setcwnd floor", func(cc congestionControl) { cc.SetCWnd(0) }, 1000, math.MaxUint32, 2000},
		{"idle restart", func(cc congestionControl) {
			cc.SetCWnd(50000)
			cc.OnIdleRestart(0)
		}, 10000, math.MaxUint32, 11000},
		{"idle restart small cwnd", func(cc congestionControl) {
			cc.SetCWnd(5000)
			cc.OnIdleRestart(0)
		}, 5000, math.MaxUint32, 6000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := congestionControl(newNewReno(1000))
			tt.apply(cc)
			assert.Equal(t, tt.cwnd, cc.CWnd(), "cwnd")
			assert.Equal(t, tt.ssthr, cc.SSThresh(), "ssthresh")
			cc.OnAck(0, 1000, 0, 0)
			assert.Equal(t, tt.afterAckCwnd, cc.CWnd(), "cwnd after one 1000-byte ACK")
		})
	}
}

// TestCCNoOverflow drives both algorithms at the edges of uint32: nothing may
// panic, wrap, reach 0, or become NaN (cf. gVisor #11632).
func TestCCNoOverflow(t *testing.T) {
	for _, name := range ccNames {
		t.Run(name, func(t *testing.T) {
			for _, mss := range []uint32{1, 536, 65535, math.MaxUint32 / 2, math.MaxUint32} {
				cc, err := newCongestionControl(name, mss, 0)
				require.NoError(t, err)
				cc.SetCWnd(math.MaxUint32 - 1)
				cc.OnAck(0, math.MaxUint32, time.Hour, math.MaxUint32)
				assert.Equal(t, uint32(math.MaxUint32), cc.CWnd(), "slow start saturates")
				cc.OnEnterRecovery(Time(time.Second), math.MaxUint32)
				cc.OnExitRecovery(Time(time.Second))
				exit := cc.CWnd()
				for i := 0; i < 100; i++ {
					cc.OnAck(Time(1<<62)+Time(i), math.MaxUint32, time.Duration(math.MaxInt64), math.MaxUint32)
				}
				assert.GreaterOrEqual(t, cc.CWnd(), exit, "congestion avoidance never wraps, mss %d", mss)
				cc.SetCWnd(math.MaxUint32 - 1)
				cc.OnAck(Time(1<<62).Add(1000*time.Hour), math.MaxUint32, time.Hour, math.MaxUint32)
				assert.Equal(t, uint32(math.MaxUint32), cc.CWnd(), "congestion avoidance saturates, mss %d", mss)
				cc.OnRTO(0, 0)
				assert.Equal(t, mss, cc.CWnd())
				assert.GreaterOrEqual(t, uint64(cc.SSThresh()), uint64(math.Min(2*float64(mss), math.MaxUint32)))
			}
		})
	}
}

// TestCCRandomInvariants feeds random event sequences (fixed seed) and checks
// the invariants every algorithm must keep.
func TestCCRandomInvariants(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	for _, name := range ccNames {
		for iter := 0; iter < 100; iter++ {
			mss := uint32(1 + rng.Intn(9000))
			cc, err := newCongestionControl(name, mss, 0)
			require.NoError(t, err)
			now := Time(0)
			for step := 0; step < 500; step++ {
				now = now.Add(time.Duration(rng.Int63n(int64(50 * time.Millisecond))))
				switch rng.Intn(10) {
				case 0:
					cc.OnEnterRecovery(now, rng.Uint32())
					require.GreaterOrEqual(t, cc.SSThresh(), 2*mss)
					require.Equal(t, cc.SSThresh(), cc.CWnd())
				case 1:
					cc.OnExitRecovery(now)
				case 2:
					cc.OnRTO(now, rng.Uint32())
					require.Equal(t, mss, cc.CWnd())
				case 3:
					cc.SetCWnd(rng.Uint32())
				case 4:
					cc.OnIdleRestart(now)
					require.LessOrEqual(t, cc.CWnd(), ccInitialWindow(mss))
				default:
					before := cc.CWnd()
					cc.OnAck(now, rng.Uint32()>>uint(rng.Intn(32)), time.Duration(rng.Int63n(int64(time.Second))), rng.Uint32())
					if cc.CWnd() < before {
						t.Fatalf("%s: an ACK shrank cwnd from %d to %d", name, before, cc.CWnd())
					}
				}
				if cc.CWnd() < mss {
					t.Fatalf("%s: cwnd %d below 1 MSS %d", name, cc.CWnd(), mss)
				}
			}
		}
	}
}
