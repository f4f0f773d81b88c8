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
// runs about 5 seconds.
func TestPathRouterKernel(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	const rate = 50e6
	cfg, err := tun.ParsePath("rtt=20ms,rate=50mbit,queue=1bdp")
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

	rtts, err := pathPing(pathHopAddr.Addr(), 10, time.Second)
	require.NoError(t, err)
	require.Len(t, rtts, 10, "no ping lost on a lossless path")
	slices.Sort(rtts)
	t.Logf("ping RTT min %v, median %v, max %v", rtts[0], rtts[5], rtts[9])
	// The quickest ping: the path's own delay; the others add whatever
	// this (shared) machine's scheduler made the router wait.
	assert.InEpsilon(t, float64(20*time.Millisecond), float64(rtts[0]), 0.05, "ping RTT")

	var ln net.Listener
	require.NoError(t, srvNS.do(func() error {
		var err error
		ln, err = net.Listen("tcp4", pathVethServer.Addr().String()+":5001")
		return err
	}))
	defer ln.Close()
	// The receiver notes when it has read each MiB.
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
			for i := n >> 20; i < (n+int64(k))>>20; i++ {
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
	end := time.Now().Add(4 * time.Second)
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
	require.Greater(t, len(at), 10)
	// Goodput from the first second to the end: past slow start, and TCP
	// keeps a one-BDP tail-drop queue busy. Each 1500-byte packet carries
	// 1448 bytes (20 IP, 20 TCP, 12 timestamps).
	first := 0
	for first < len(at) && at[first].Sub(at[0]) < time.Second {
		first++
	}
	mib := len(at) - 1 - first
	require.Greater(t, mib, 5)
	goodput := float64(mib) * (1 << 20) * 8 / at[len(at)-1].Sub(at[first]).Seconds()
	want := rate * 1448 / 1500
	t.Logf("goodput %.2f Mbit/s (want %.2f); path: %+v", goodput/1e6, want/1e6, r.path.Stats())
	assert.InEpsilon(t, want, goodput, 0.05, "kernel-to-kernel goodput")
}
