package tcp

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// bbrTimelineCC is BBR logging, once per round trip, its phase, model and
// bounds and what limited the round (the share of ACKs that found the
// flow cwnd-limited, or in recovery), for TestBBRTimeline.
type bbrTimelineCC struct {
	*bbr
	t                          *testing.T
	start                      Time
	lastRound                  uint64
	acks, cwndLim, inRec, lost uint64
}

func (d *bbrTimelineCC) OnAck(now Time, rs *RateSample) {
	st := d.state
	d.bbr.OnAck(now, rs)
	if d.delivered <= 4096 {
		return // the receiver's BBR: it has sent no data
	}
	d.acks++
	if d.cwndLimited {
		d.cwndLim++
	}
	if d.inRecovery {
		d.inRec++
	}
	d.lost += uint64(rs.NewlyLost)
	at := now.Sub(d.start).Seconds()
	if d.state != st {
		d.t.Logf("%7.3f  %v -> %v", at, st, d.state)
	}
	if d.roundCount == d.lastRound {
		return
	}
	d.lastRound = d.roundCount
	kb := func(v uint64) string {
		if v == bbrInfinity {
			return "-"
		}
		return strconv.FormatUint(v/1000, 10)
	}
	mbit := func(v uint64) string {
		if v == bbrInfinity {
			return "-"
		}
		return strconv.FormatFloat(float64(v)*8/1e6, 'f', 1, 64)
	}
	d.t.Logf("%7.3f r%-3d %-14v bw %5s max %5s bw_lo %5s pace %5s | cwnd %4skB inflight_hi %5s inflight_lo %5s in-flight %4s | lost %4skB cwnd-limited %3d%% recovery %3d%%",
		at, d.roundCount, d.state, mbit(d.bw), mbit(d.maxBw), mbit(d.bwLo), mbit(d.pacingRate),
		kb(d.cwnd), kb(d.inflightHi), kb(d.inflightLo), kb(uint64(rs.InFlight)), kb(d.lost),
		100*d.cwndLim/max(d.acks, 1), 100*d.inRec/max(d.acks, 1))
	d.acks, d.cwndLim, d.inRec, d.lost = 0, 0, 0, 0
}

var timelineT *testing.T

func init() {
	RegisterCongestionControl("bbr-timeline", func(cfg CCConfig) CongestionControl {
		return &bbrTimelineCC{bbr: newBBR(cfg.MSS, cfg.Now, 12345), t: timelineT, start: cfg.Now}
	})
}

// TestBBRTimeline is a tool, not a check: with BBR_TIMELINE=LOSS (a
// fraction, 0.005 for 0.5%) it runs BBR over the 40 ms, 100 Mbit/s,
// one-BDP path with that random loss both ways and GSO (BBR_NOGSO=1: none,
// as the bench's path TUNs), BBR_SIZE bytes
// (default 64 MiB, about the 5 s of `ustack bench --path`), seed BBR_SEED
// (default 7), and logs the sender's round-by-round timeline (-v).
func TestBBRTimeline(t *testing.T) {
	lossArg := os.Getenv("BBR_TIMELINE")
	if lossArg == "" {
		t.Skip("set BBR_TIMELINE=LOSS to run")
	}
	loss, err := strconv.ParseFloat(lossArg, 64)
	if err != nil {
		t.Fatal(err)
	}
	size, seed := 64<<20, uint64(7)
	if v := os.Getenv("BBR_SIZE"); v != "" {
		size, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("BBR_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	timelineT = t
	la, lb := bottleneck(loss)
	lb.loss = loss
	gso := 65160
	if os.Getenv("BBR_NOGSO") != "" {
		gso = 0
	}
	n := bulk(t, "bbr-timeline", size, seed, la, lb, func(c *Config) { c.GSOMaxSize = gso })
	in := n.conns[0].Info()
	t.Logf("loss %v seed %d: %.1f Mbit/s, retrans %d, rto %d, link %+v", loss, seed,
		float64(size)*8/time.Duration(n.now).Seconds()/1e6, in.TotalRetrans, in.RTOExpirations, la.stats)
}
