package tcp_test

import (
	"fmt"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// delayAIMD is the example of docs/congestion-control.md: a delay-based
// AIMD algorithm of the kind one writes in an afternoon. It slow-starts
// until the RTT of a rate sample exceeds the minimum RTT by a quarter (a
// queue is building at the bottleneck), then grows by one MSS per window
// acknowledged while the RTT stays low and cuts the window by an eighth,
// at most once per RTT, when it does not. It paces at 5/4 of cwnd/minRTT
// (twice that in slow start), so its flights do not arrive as bursts.
type delayAIMD struct {
	mss, cwnd  uint32
	slowStart  bool
	minRTT     time.Duration
	lastCut    tcp.Time
	ackedBytes uint32 // towards the next additive increase
}

func newDelayAIMD(cfg tcp.CCConfig) tcp.CongestionControl {
	return &delayAIMD{mss: cfg.MSS, cwnd: cfg.InitialWindow, slowStart: true}
}

func init() { tcp.RegisterCongestionControl("delayaimd", newDelayAIMD) }

func (d *delayAIMD) Name() string     { return "delayaimd" }
func (d *delayAIMD) CWnd() uint32     { return d.cwnd }
func (d *delayAIMD) SSThresh() uint32 { return 1<<32 - 1 } // no slow-start threshold
func (d *delayAIMD) SetCWnd(uint32)   {}                   // it keeps its own window in recovery

func (d *delayAIMD) PacingRate() uint64 {
	if d.minRTT == 0 {
		return 0 // no RTT yet: let the initial window go
	}
	gain := uint64(5) // 5/4
	if d.slowStart {
		gain = 10 // 10/4
	}
	return uint64(d.cwnd) * gain / 4 * uint64(time.Second) / uint64(d.minRTT)
}

func (d *delayAIMD) OnAck(now tcp.Time, rs *tcp.RateSample) {
	d.mss = rs.MSS
	d.minRTT = rs.MinRTT
	acked := rs.Acked + rs.NewlySACKed
	if rs.RTT == 0 || acked == 0 {
		return // nothing delivered, or no RTT to judge by
	}
	if rs.RTT > d.minRTT+d.minRTT/4 {
		// Queueing delay: back off, once per round trip.
		d.slowStart = false
		if now.Sub(d.lastCut) >= rs.RTT {
			d.cwnd = max(d.cwnd-d.cwnd/8, 2*d.mss)
			d.lastCut = now
		}
		return
	}
	if d.slowStart {
		d.cwnd += acked
		return
	}
	d.ackedBytes += acked
	if d.ackedBytes >= d.cwnd {
		d.ackedBytes -= d.cwnd
		d.cwnd += d.mss
	}
}

func (d *delayAIMD) OnEvent(now tcp.Time, ev tcp.CCEvent) {
	switch ev.Kind {
	case tcp.CCRecoveryStart: // a loss: halve what was in flight
		d.cwnd = max(ev.InFlight/2, 2*d.mss)
		d.slowStart = false
	case tcp.CCTimeout:
		d.cwnd = d.mss
		d.slowStart = false
	case tcp.CCIdleRestart:
		d.cwnd = min(d.cwnd, tcp.InitialWindow(d.mss))
	}
}

// Example_congestionControl selects the registered delayaimd algorithm for
// a connection; ustack's --cc delayaimd would do the same for every
// connection of serve or dial built with this file.
func Example_congestionControl() {
	cfg := tcp.Config{CongestionControl: "delayaimd"}
	fmt.Println(cfg.Validate())
	c := tcp.Dial(0, cfg, 1)
	fmt.Println(c.Info().CC, c.Info().CWnd)
	// Output:
	// <nil>
	// delayaimd 5360
}
