package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/stack"
)

func TestParseReassembly(t *testing.T) {
	rc, err := parseReassembly("mem=256K,timeout=2s,datagrams=10,fragments=64")
	require.NoError(t, err)
	require.Equal(t, ip.ReassemblyConfig{MemoryLimit: 256 << 10, Timeout: 2 * time.Second, MaxDatagrams: 10, MaxFragments: 64}, rc)
	rc, err = parseReassembly("timeout=1m")
	require.NoError(t, err)
	require.Equal(t, ip.ReassemblyConfig{Timeout: time.Minute}, rc)
	for _, bad := range []string{"mem=1G", "mem=1K", "x=1", "fragments=0", "datagrams=x", "timeout=1ns", "mem"} {
		_, err := parseReassembly(bad)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "--reassembly")
	}
}

func TestHardeningFlags(t *testing.T) {
	var opts stack.Options
	var dev device
	h := hardeningFlags{cookieRate: 0, txQueueLen: 4096, reassembly: "mem=1M", synFilter: true}
	require.NoError(t, h.apply(&opts, &dev))
	require.Equal(t, stack.UnlimitedCookieRate, opts.CookieSourceRate, "0 on the command line means no limit")
	require.False(t, dev.synFilter, "no budget, nothing for the filter to enforce")
	require.Equal(t, 4096, dev.txQueueLen)
	require.Equal(t, 1<<20, opts.Reassembly.MemoryLimit)
	h = hardeningFlags{cookieRate: 500, txQueueLen: 1, reassembly: "", synFilter: true}
	require.NoError(t, h.apply(&opts, &dev))
	require.Equal(t, 500, opts.CookieSourceRate)
	require.True(t, dev.synFilter)
	// The flag's default is the stack's default, spelt out.
	h = hardeningFlags{cookieRate: stack.DefaultCookieSourceRate, txQueueLen: 1}
	require.NoError(t, h.apply(&opts, &dev))
	require.Equal(t, stack.DefaultCookieSourceRate, opts.CookieSourceRate)
	for _, bad := range []hardeningFlags{{cookieRate: -1, txQueueLen: 1}, {txQueueLen: 0}, {txQueueLen: 1, reassembly: "mem=1G"}} {
		require.Error(t, bad.apply(&opts, &dev))
	}
}
