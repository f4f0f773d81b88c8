package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// bbrTransition is one state change seen by bbrTraceCC.
type bbrTransition struct {
	at       Time
	from, to bbrState
	rs       RateSample
	before   bbr // the state before the ACK (or event) that changed it
}

// bbrTraceCC is BBR recording its state changes, for the end-to-end tests.
type bbrTraceCC struct {
	*bbr
	log []bbrTransition
}

func (t *bbrTraceCC) OnAck(now Time, rs *RateSample) {
	before := *t.bbr
	t.bbr.OnAck(now, rs)
	if t.state != before.state {
		t.log = append(t.log, bbrTransition{at: now, from: before.state, to: t.state, rs: *rs, before: before})
	}
}

func (t *bbrTraceCC) OnEvent(now Time, ev CCEvent) {
	before := *t.bbr
	t.bbr.OnEvent(now, ev)
	if t.state != before.state {
		t.log = append(t.log, bbrTransition{at: now, from: before.state, to: t.state, before: before})
	}
}

var bbrTraces []*bbrTraceCC

func init() {
	RegisterCongestionControl("bbr-trace", func(cfg CCConfig) CongestionControl {
		tc := &bbrTraceCC{bbr: newBBR(cfg.MSS, cfg.Now, 12345)}
		bbrTraces = append(bbrTraces, tc)
		return tc
	})
}

// bottleneck is a 100 Mbit/s, 40 ms path with a one-BDP drop-tail queue
// and random loss on the data direction.
func bottleneck(loss float64) (*simLink, *simLink) {
	la := &simLink{delay: 20 * time.Millisecond, perByte: 80 * time.Nanosecond, maxQueue: 40 * time.Millisecond,
		loss: loss, splitGSO: true}
	lb := &simLink{delay: 20 * time.Millisecond}
	return la, lb
}

func TestBBRGoodputAtOnePercentLoss(t *testing.T) {
	const size = 16 << 20
	goodput := map[string]float64{}
	for _, cc := range []string{"cubic", "bbr"} {
		la, lb := bottleneck(0.01)
		n := bulk(t, cc, size, 7, la, lb, nil)
		in := n.conns[0].Info()
		secs := time.Duration(n.now).Seconds()
		goodput[cc] = float64(size) * 8 / secs / 1e6
		t.Logf("%s: %.1f Mbit/s (%v virtual), retrans %d, rto %d, link %+v, bbr %+v", cc, goodput[cc],
			time.Duration(n.now), in.Retransmits, in.RTOExpirations, la.stats, in.BBR)
	}
	assert.Greater(t, goodput["bbr"], 3*goodput["cubic"])
}
