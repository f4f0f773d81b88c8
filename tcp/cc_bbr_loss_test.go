package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// BBR over the 40 ms, 100 Mbit/s, one-BDP path of the targets, with
// random loss both ways and segmentation offload (super-segments, cut on
// the wire): 16 MiB, Startup included, in virtual time. Before C.lost
// counted only the holes of a lost super-segment and RACK took a partly
// SACKed one's delivery once, this seed gave 66.3 and 44.4
// Mbit/s; before BBRNoteLoss restarted the loss round at a round's first
// loss, 76.6 and 68.7 (78.2 and 70.4 after it; 74.1 and 69.0 since
// super-segments follow Linux's TSO sizing and deferral).
func TestBBRGoodputAtLossWithGSO(t *testing.T) {
	const size = 16 << 20
	for _, tc := range []struct {
		loss, min float64
	}{{0.005, 72}, {0.02, 66}} {
		la, lb := bottleneck(tc.loss)
		lb.loss = tc.loss
		n := bulk(t, "bbr", size, 7, la, lb, func(c *Config) { c.GSOMaxSize = 65160 })
		in := n.conns[0].Info()
		mbps := float64(size) * 8 / time.Duration(n.now).Seconds() / 1e6
		t.Logf("loss %v: %.1f Mbit/s, retrans %d, rto %d, link %+v, bbr %+v", tc.loss, mbps, in.TotalRetrans, in.RTOExpirations, la.stats, in.BBR)
		assert.GreaterOrEqual(t, mbps, tc.min, "loss %v", tc.loss)
	}
}
