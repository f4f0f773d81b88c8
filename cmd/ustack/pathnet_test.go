package main

import (
	"errors"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tun"
	"github.com/ustack-net/ustack/tun/netnstest"
)

// TestPathRouterKernel measures the real router in namespaces against its
// own settings, with the kernel at both ends: the ping RTT to the hop, and
// a kernel-to-kernel TCP transfer to a kernel server behind the hop's veth
// (the bench's topology), each within 5% of what the path was set to. It
// runs about 6 seconds.
func TestPathRouterKernel(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	// A long RTT and a deep queue (100 ms of it) so that the router being
	// late on a busy machine neither shows much in the RTT nor lets the
	// queue run dry.
	const rate = 20e6
	cfg, err := tun.ParsePath("rtt=50ms,rate=20mbit,queue=2bdp")
	require.NoError(t, err)
	client, err := openNetns("/proc/self/ns/net")
	require.NoError(t, err)
	defer client.Close()
	hop, err := newNetns()
	require.NoError(t, err)
	defer hop.Close()
	r, err := startPathRouter(client, hop, cfg, 1500)
	require.NoError(t, err)
	defer r.Close()
	srvNS, err := kernelServerNetns(hop)
	require.NoError(t, err)
	defer srvNS.Close()

	rtts, err := pathPing(pathHopAddr.Addr(), 10, 2*time.Second)
	require.NoError(t, err)
	require.Len(t, rtts, 10, "no ping lost on a lossless path")
	slices.Sort(rtts)
	t.Logf("ping RTT min %v, median %v, max %v", rtts[0], rtts[5], rtts[9])
	// The quickest ping: the path's own delay; the others add whatever
	// this (shared) machine's scheduler made the router wait.
	assert.InEpsilon(t, float64(50*time.Millisecond), float64(rtts[0]), 0.05, "ping RTT")

	var ln net.Listener
	require.NoError(t, srvNS.do(func() error {
		var err error
		ln, err = net.Listen("tcp4", pathVethServer.Addr().String()+":5001")
		return err
	}))
	defer ln.Close()
	// The receiver notes when it has read each 128 KiB.
	marks := make(chan []time.Time, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			marks <- nil
			return
		}
		defer c.Close()
		var at []time.Time
		buf := make([]byte, 256<<10)
		var n int64
		for {
			k, err := c.Read(buf)
			for i := n >> 17; i < (n+int64(k))>>17; i++ {
				at = append(at, time.Now())
			}
			n += int64(k)
			if err != nil {
				break
			}
		}
		marks <- at
	}()
	c, err := net.DialTimeout("tcp4", pathVethServer.Addr().String()+":5001", 2*time.Second)
	require.NoError(t, err)
	// A 5-second transfer, measured from 2 s to 4.5 s: past slow start
	// and its losses, TCP keeps the bottleneck busy.
	start := time.Now()
	from, to := start.Add(2000*time.Millisecond), start.Add(4500*time.Millisecond)
	type sample struct {
		at    time.Time
		bytes uint64
	}
	samples := make(chan sample, 2)
	go func() {
		for _, when := range []time.Time{from, to} {
			time.Sleep(time.Until(when))
			samples <- sample{time.Now(), r.path.Stats().Up.DelivBytes}
		}
	}()
	end := start.Add(5 * time.Second)
	c.SetWriteDeadline(end)
	buf := make([]byte, 256<<10)
	for time.Now().Before(end) {
		if _, err := c.Write(buf); err != nil {
			require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "write: %v", err)
			break
		}
	}
	c.Close()
	at := <-marks
	s1, s2 := <-samples, <-samples
	delivered := float64(s2.bytes-s1.bytes) * 8 / s2.at.Sub(s1.at).Seconds()
	t.Logf("the router delivered %.2f Mbit/s of IP packets (asked: %.0f)", delivered/1e6, rate/1e6)
	assert.InEpsilon(t, rate, delivered, 0.05, "delivered rate")

	// The receiver's goodput over the same window. Each 1500-byte packet
	// carries 1448 bytes (20 IP, 20 TCP, 12 timestamps).
	var window []time.Time
	for _, m := range at {
		if !m.Before(from) && !m.After(to) {
			window = append(window, m)
		}
	}
	require.Greater(t, len(window), 20)
	goodput := float64(len(window)-1) * (128 << 10) * 8 / window[len(window)-1].Sub(window[0]).Seconds()
	want := rate * 1448 / 1500
	t.Logf("goodput %.2f Mbit/s (want %.2f); path: %+v", goodput/1e6, want/1e6, r.path.Stats())
	assert.InEpsilon(t, want, goodput, 0.05, "kernel-to-kernel goodput")
}
