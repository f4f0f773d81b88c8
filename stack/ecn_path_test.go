package stack

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// pathRun is a download from a Driven server stack to a Driven client
// stack through an emulated path (tun.PathLane, one per direction), in
// virtual time.
type pathRun struct {
	delivered  int64 // bytes the client read
	steady     int64 // of them, read after the first second
	down, up   tun.LaneStats
	srv, cli   tcp.Info
	duration   time.Duration
	steadyFrom time.Duration
}

// runPathDownload sends as much as the path takes from the server (cubic,
// with srvECN) to the client (with cliECN) for d of virtual time.
func runPathDownload(t *testing.T, spec string, srvECN, cliECN tcp.ECNMode, d time.Duration) pathRun {
	t.Helper()
	pc, err := tun.ParsePath(spec)
	require.NoError(t, err)
	downLane, err := tun.NewPathLane(pc.Down)
	require.NoError(t, err)
	upLane, err := tun.NewPathLane(pc.Up)
	require.NoError(t, err)

	clk := NewManualClock(tcp.Time(time.Hour))
	base := clk.Now()
	srvLink, cliLink := &recordLink{}, &recordLink{}
	srvCfg := tcp.Config{CongestionControl: "cubic", ECN: srvECN}
	srv, err := New(Options{Links: []tun.Link{srvLink}, Addrs: []netip.Addr{addrB}, Clock: clk, Driven: true, TCP: srvCfg})
	require.NoError(t, err)
	defer srv.Close()
	cli, err := New(Options{Links: []tun.Link{cliLink}, Addrs: []netip.Addr{addrA}, Clock: clk, Driven: true})
	require.NoError(t, err)
	defer cli.Close()
	ln, err := srv.ListenBacklog("tcp", ":80", 4)
	require.NoError(t, err)
	require.NoError(t, ln.SetDeadline(time.Unix(1, 0)))
	cfg := tcp.DefaultConfig()
	cfg.ECN = cliECN
	cc, err := cli.StartDial(srvB, &cfg)
	require.NoError(t, err)
	require.NoError(t, cc.SetDeadline(time.Unix(1, 0)))

	var sc *Conn
	chunk := make([]byte, 256<<10)
	rbuf := make([]byte, 256<<10)
	var run pathRun
	run.duration, run.steadyFrom = d, time.Second
	var batch [][]byte
	var pkts [][]byte
	deliver := func(l *tun.PathLane, s *Stack, now tcp.Time) {
		batch = l.Due(now.Sub(base), batch[:0], nil)
		if len(batch) == 0 {
			return
		}
		pkts = pkts[:0]
		for _, b := range batch {
			pkts = append(pkts, b[tun.Headroom:])
		}
		require.NoError(t, s.Input(0, pkts, nil, now))
		l.Recycle(batch)
	}
	for {
		now := clk.Now()
		deliver(downLane, cli, now)
		deliver(upLane, srv, now)
		if sc == nil {
			if c, err := ln.AcceptConn(); err == nil {
				sc = c
				require.NoError(t, sc.SetDeadline(time.Unix(1, 0)))
			}
		}
		if sc != nil {
			_, err := sc.Write(chunk)
			require.True(t, err == nil || errors.Is(err, os.ErrDeadlineExceeded), "server write: %v", err)
		}
		for {
			n, err := cc.Read(rbuf)
			run.delivered += int64(n)
			if now.Sub(base) >= run.steadyFrom {
				run.steady += int64(n)
			}
			if n == 0 || err != nil {
				break
			}
		}
		srv.Poll(now)
		cli.Poll(now)
		for _, p := range srvLink.take() {
			downLane.Input(now.Sub(base), p)
		}
		for _, p := range cliLink.take() {
			upLane.Input(now.Sub(base), p)
		}
		if now.Sub(base) >= d {
			break
		}
		next := base.Add(d)
		for _, l := range []*tun.PathLane{downLane, upLane} {
			if at, ok := l.Next(); ok {
				next = min(next, base.Add(at))
			}
		}
		for _, s := range []*Stack{srv, cli} {
			if at, ok := s.NextTimer(); ok {
				next = min(next, at)
			}
		}
		if next.After(now) {
			clk.Advance(next.Sub(now))
		} else if next.Before(now) {
			// A timer the heap has yet to re-key: Poll did it at now.
			clk.Advance(time.Microsecond)
		}
	}
	require.NotNil(t, sc, "the connection was accepted")
	run.down, run.up = downLane.Stats(), upLane.Stats()
	run.srv, run.cli = sc.Info(), cc.Info()
	return run
}

func (r pathRun) steadyMbps() float64 {
	return float64(r.steady) * 8 / (r.duration - r.steadyFrom).Seconds() / 1e6
}

// TestECNThroughMarkingPath: a CUBIC download over rtt=40ms, rate=100mbit,
// queue=1bdp with a CE marker at 5 ms of sojourn, for 20 s of virtual time.
// With ECN negotiated (the client asks, the server accepts by default), the
// bottleneck marks instead of dropping: not one packet is lost or
// retransmitted, the sender cuts its window on the echoes (once per
// window, one CWR each), the queueing delay stays below the threshold on
// average, and the goodput stays above 80 Mbit/s (CUBIC's β = 0.7 of
// BDP + 5 ms is 79% of the BDP, and its cubic regrowth is slow at 40 ms;
// the first mark comes in slow start). Without ECN the same path
// tail-drops (and retransmits) and its queue runs full. Its goodput is not
// compared: with a 1-BDP queue CUBIC's β = 0.7 never leaves the link idle,
// while a 5 ms marker makes it regrow from 79% of the BDP, so on this path
// ECN's gain is the loss and the delay, not the rate (as on Linux).
func TestECNThroughMarkingPath(t *testing.T) {
	const spec = "rtt=40ms,rate=100mbit,ecn=5ms"
	ecn := runPathDownload(t, spec, tcp.ECNAccept, tcp.ECNOn, 20*time.Second)
	t.Logf("ECN: %.1f Mbit/s after 1 s, %d CE marks, %d queue drops, mean queueing delay %v (worst %v), %d reductions, %d retransmits",
		ecn.steadyMbps(), ecn.down.Marked, ecn.down.QueueDrops, ecn.down.Delay.Mean(), ecn.down.Delay.Max,
		ecn.srv.ECNReductions, ecn.srv.Retransmits)
	require.True(t, ecn.srv.ECN && ecn.cli.ECN, "negotiated on both ends")
	require.True(t, ecn.cli.ECNSeen)
	require.NotZero(t, ecn.down.Marked, "the queue went above 5 ms")
	require.Zero(t, ecn.down.QueueDrops, "no packet dropped")
	require.Zero(t, ecn.srv.Retransmits, "nothing to retransmit")
	require.Greater(t, ecn.srv.ECNReductions, uint64(1))
	require.Less(t, ecn.srv.ECNReductions, ecn.srv.ECERcvd, "many echoes, one reduction per window")
	require.Equal(t, ecn.srv.ECNReductions, ecn.srv.CWRSent, "one CWR per reduction")
	require.Equal(t, ecn.down.Marked, ecn.cli.CERcvd)
	require.Zero(t, ecn.up.Marked, "ACKs are not ECT")
	require.Less(t, ecn.down.Delay.Mean(), 5*time.Millisecond)
	require.Greater(t, ecn.steadyMbps(), 80.0)

	plain := runPathDownload(t, spec, tcp.ECNAccept, tcp.ECNAccept, 5*time.Second)
	t.Logf("no ECN: %.1f Mbit/s after 1 s, %d CE marks, %d queue drops, mean queueing delay %v (worst %v), %d retransmits",
		plain.steadyMbps(), plain.down.Marked, plain.down.QueueDrops, plain.down.Delay.Mean(), plain.down.Delay.Max, plain.srv.Retransmits)
	require.False(t, plain.srv.ECN)
	require.Zero(t, plain.down.Marked, "Not-ECT packets are never marked")
	require.NotZero(t, plain.down.QueueDrops, "they are tail-dropped")
	require.Greater(t, plain.down.Delay.Mean(), 4*ecn.down.Delay.Mean())
}
