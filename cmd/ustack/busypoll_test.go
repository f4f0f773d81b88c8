package main

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tun/netnstest"
)

// TestBusyPollFlagErrors: negative or absurd values of --busy-poll exit 2
// with a message saying what is wanted, from serve, dial and bench alike.
func TestBusyPollFlagErrors(t *testing.T) {
	const want = "want 0 (off) to 10ms: the reader spins a core for that long before it blocks\n"
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"serve", "--busy-poll", "-1us"}, "ustack serve: --busy-poll -1µs: " + want},
		{[]string{"serve", "--busy-poll", "1h"}, "ustack serve: --busy-poll 1h0m0s: " + want},
		{[]string{"serve", "--busy-poll", "10.001ms"}, "ustack serve: --busy-poll 10.001ms: " + want},
		{[]string{"dial", "--busy-poll", "-5ms", "198.18.0.1:7"}, "ustack dial: --busy-poll -5ms: " + want},
		{[]string{"bench", "--busy-poll", "1s"}, "ustack bench: --busy-poll 1s: " + want},
	} {
		var out, errOut strings.Builder
		assert.Equal(t, exitUsage, run(tc.args, &out, &errOut), "%v", tc.args)
		assert.Equal(t, tc.msg, errOut.String(), "%v", tc.args)
	}
	var out, errOut strings.Builder
	assert.Equal(t, exitUsage, run([]string{"serve", "--busy-poll", "fast"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `invalid value "fast" for flag -busy-poll`)
}

// TestBusyPollParsed: the flag reaches the device, 0 (off) by default.
func TestBusyPollParsed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 0},
		{[]string{"--busy-poll", "50us"}, 50 * time.Microsecond},
		{[]string{"--busy-poll=10ms"}, 10 * time.Millisecond},
		{[]string{"--busy-poll", "0"}, 0},
	} {
		var d deviceFlags
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		d.register(fs)
		require.NoError(t, fs.Parse(tc.args))
		dev, err := d.validate()
		require.NoError(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, dev.busyPoll, "%v", tc.args)
	}
}

// TestBusyPollApplied: serve's device opens its TUN with the spin asked
// for (in a private namespace).
func TestBusyPollApplied(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	var d deviceFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	d.register(fs)
	require.NoError(t, fs.Parse([]string{"--busy-poll", "200us", "--tun", "ustbp0"}))
	dev, err := d.validate()
	require.NoError(t, err)
	link, err := dev.createTUN(slog.New(slog.NewTextHandler(io.Discard, nil)), dev.name, dev.hostAddrs, 1)
	require.NoError(t, err)
	defer link.Close()
	assert.Equal(t, 200*time.Microsecond, link.BusyPoll())
}
