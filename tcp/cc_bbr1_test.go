package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// BBRv1 over the path of TestBBRGoodputAtLossWithGSO: it ignores random
// loss as Linux's tcp_bbr does, so it keeps near the link's rate at 0.5%
// and 2% loss where BBRv3 slides to its bw_lo.
func TestBBR1GoodputAtLossWithGSO(t *testing.T) {
	const size = 16 << 20
	for _, loss := range []float64{0.005, 0.02} {
		la, lb := bottleneck(loss)
		lb.loss = loss
		n := bulk(t, "bbr1", size, 7, la, lb, func(c *Config) { c.GSOMaxSize = 65160 })
		in := n.conns[0].Info()
		mbps := float64(size) * 8 / time.Duration(n.now).Seconds() / 1e6
		t.Logf("loss %v: %.1f Mbit/s, retrans %d, rto %d, link %+v, bbr %+v", loss, mbps, in.TotalRetrans, in.RTOExpirations, la.stats, in.BBR)
		assert.GreaterOrEqual(t, mbps, 80.0, "loss %v", loss)
	}
}
