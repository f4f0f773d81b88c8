package tcp

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixedCC is a test algorithm: a constant window, recording what it is told.
type fixedCC struct {
	cwnd    uint32
	acks    []RateSample
	events  []CCEvent
	setCWnd int
	rate    uint64
}

func (f *fixedCC) Name() string                   { return "test-fixed" }
func (f *fixedCC) CWnd() uint32                   { return f.cwnd }
func (f *fixedCC) SSThresh() uint32               { return 1 << 31 }
func (f *fixedCC) OnAck(now Time, rs *RateSample) { f.acks = append(f.acks, *rs) }
func (f *fixedCC) OnEvent(now Time, ev CCEvent)   { f.events = append(f.events, ev) }
func (f *fixedCC) SetCWnd(cwnd uint32)            { f.setCWnd++ }
func (f *fixedCC) PacingRate() uint64             { return f.rate }

// lossEvents returns the events other than CCTxStart.
func (f *fixedCC) lossEvents() []CCEvent {
	var evs []CCEvent
	for _, ev := range f.events {
		if ev.Kind != CCTxStart {
			evs = append(evs, ev)
		}
	}
	return evs
}

// lastFixed is the instance the factory made last.
var lastFixed *fixedCC

func init() {
	RegisterCongestionControl("test-fixed", func(cfg CCConfig) CongestionControl {
		lastFixed = &fixedCC{cwnd: 3 * cfg.MSS}
		return lastFixed
	})
}

func TestCongestionControlRegistry(t *testing.T) {
	names := CongestionControls()
	require.GreaterOrEqual(t, len(names), 3)
	assert.Equal(t, []string{"newreno", "cubic", "bbr", "bbr1"}, names[:4], "built-ins first")
	assert.Contains(t, names, "test-fixed")
	require.NoError(t, Config{CongestionControl: "test-fixed"}.Validate())
	err := Config{CongestionControl: "nope"}.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "registered: newreno, cubic, bbr, bbr1")
	assert.Contains(t, err.Error(), "test-fixed")
	_, err = NewCongestionControl("nope", 1000, 0)
	require.Error(t, err)
	assert.Panics(t, func() { RegisterCongestionControl("cubic", func(CCConfig) CongestionControl { return nil }) })
	assert.Panics(t, func() { RegisterCongestionControl("", func(CCConfig) CongestionControl { return nil }) })
	assert.Panics(t, func() { RegisterCongestionControl("x", nil) })
	cc, err := NewCongestionControl("", 0, 0)
	require.NoError(t, err)
	assert.Equal(t, "newreno", cc.Name())
	assert.Equal(t, uint32(5360), cc.CWnd())
	assert.Equal(t, uint32(14600), InitialWindow(1460))
}

// TestUserCongestionControlDrivesTheConnection runs a registered algorithm
// with a fixed window of 3 segments: the connection sends exactly three,
// and the algorithm sees every ACK with what it acknowledged.
func TestUserCongestionControlDrivesTheConnection(t *testing.T) {
	cfg := plainConfig()
	cfg.CongestionControl = "test-fixed"
	cfg.MSS = 1000
	h := newEstablished(t, cfg)
	require.Equal(t, "test-fixed", h.c.Info().CC)
	f := lastFixed
	require.Equal(t, uint32(3000), f.cwnd, "made with the negotiated MSS")
	h.c.Write(data(10000, 0))
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 1000", "[.] seq 2001 ack 5001 win 4096 len 1000",
		"[.] seq 3001 ack 5001 win 4096 len 1000")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 8192)), "[.] seq 4001 ack 5001 win 4096 len 1000",
		"[.] seq 5001 ack 5001 win 4096 len 1000")
	require.Len(t, f.acks, 1)
	assert.Equal(t, uint32(2000), f.acks[0].Acked)
	assert.Equal(t, uint32(3000), f.acks[0].PriorInFlight)
	assert.Equal(t, uint32(1000), f.acks[0].InFlight)
	assert.Equal(t, uint32(1000), f.acks[0].MSS)
	assert.False(t, f.acks[0].InRecovery)
	// A duplicate ACK is reported too, with nothing acked.
	h.in(seg(FlagACK, tPeer+1, tISS+2001, 8192))
	require.Len(t, f.acks, 2)
	assert.Zero(t, f.acks[1].Acked)
	assert.Equal(t, []CCEvent{{Kind: CCTxStart}}, f.events, "the first flight started with nothing in flight")
	// Once everything sent is acknowledged, the next segment starts a
	// flight again.
	// (The duplicate ACK released [6001,7001) by limited transmit.)
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+6001, 8192)), "[.] seq 7001 ack 5001 win 4096 len 1000",
		"[.] seq 8001 ack 5001 win 4096 len 1000", "[.] seq 9001 ack 5001 win 4096 len 1000")
	assert.Equal(t, []CCEvent{{Kind: CCTxStart}, {Kind: CCTxStart}}, f.events)
	assert.Equal(t, "tx-start", CCTxStart.String())
	assert.Equal(t, "recovery-start", CCRecoveryStart.String())
}
