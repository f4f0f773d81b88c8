package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tun"
	"github.com/ustack-net/ustack/tun/netnstest"
)

func TestPathFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		rc     int
		stderr string
	}{
		{[]string{"path", "--help"}, 0, "usage: ustack path --path SPEC [flags]"},
		{[]string{"path"}, exitUsage, "--path is required, e.g. --path rtt=40ms,rate=100mbit,loss=0.5%"},
		{[]string{"path", "--path", "rtt=40ms", "x"}, exitUsage, `unexpected argument "x"`},
		{[]string{"path", "--path", "rtt=40ms,loss=3"}, exitUsage, "--path: path \"loss=3\": probability 3 out of [0, 1]; write 3% for a percentage"},
		{[]string{"path", "--path", "rtt=40ms", "--mtu", "100"}, exitUsage, "--mtu 100: want a value from 1280 to 65535"},
		{[]string{"path", "--path", "rtt=40ms", "--client", "a", "--server", "a"}, exitUsage, `--client and --server are both "a"`},
		{[]string{"path", "--path", "rtt=40ms", "--ping", "-1"}, exitUsage, "--ping -1: want 0 to 100"},
		{[]string{"path", "--path", "rtt=40ms", "--rt-prio", "100"}, exitUsage, "--rt-prio 100: want 0 (off) or 1 to 99"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			rc := run(tc.args, &stdout, &stderr)
			assert.Equal(t, tc.rc, rc, "stderr: %s", stderr.String())
			assert.Contains(t, stderr.String(), tc.stderr)
		})
	}
	_, _, err := namedNetns("../etc")
	assert.EqualError(t, err, `namespace name "../etc": want a plain name, as ip netns takes`)
}

// TestPathCommand runs `ustack path` between a namespace it creates and
// one that exists already: the path answers pings from the client
// namespace at its RTT, and at the end the command deletes the namespace
// it created and leaves the other.
func TestPathCommand(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	clientName := fmt.Sprintf("ustack-test-c%d", os.Getpid())
	serverName := fmt.Sprintf("ustack-test-s%d", os.Getpid())
	server, created, err := namedNetns(serverName)
	require.NoError(t, err)
	require.True(t, created)
	server.Close()
	defer deleteNamedNetns(serverName)
	_, err = os.Stat(filepath.Join(netnsDir, clientName))
	require.True(t, os.IsNotExist(err), "%s exists already", clientName)

	cfg, err := tun.ParsePath("rtt=30ms,rate=10mbit,seed=1")
	require.NoError(t, err)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runPathRouter(ctx, pathFlags{client: clientName, server: serverName, mtu: 1500, pings: 3}, cfg, w)
		w.Close()
	}()
	sc := bufio.NewScanner(r)
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
		if sc.Text() == "running; Ctrl-C stops it" {
			break
		}
	}
	require.Contains(t, out, "running; Ctrl-C stops it", "output: %q", out)
	assert.Equal(t, "ustack path: rtt=30ms,rate=10mbit,queue=37500", out[0])
	assert.Contains(t, out[3], "(3 of 3 answered; asked for rtt 30ms)")

	client, err := openNetns(filepath.Join(netnsDir, clientName))
	require.NoError(t, err)
	var rtts []time.Duration
	require.NoError(t, client.do(func() error {
		var err error
		rtts, err = pathPing(pathHopAddr.Addr(), 3, time.Second)
		return err
	}))
	client.Close()
	require.Len(t, rtts, 3)
	for _, rtt := range rtts {
		assert.GreaterOrEqual(t, rtt, 30*time.Millisecond)
	}

	cancel()
	require.NoError(t, <-done)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	all := strings.Join(out, "\n")
	assert.Contains(t, all, "ustack path: stopped")
	// Six pings each way, and whatever IPv6 the devices sent coming up.
	for _, dir := range []string{"up (client to server)", "down (server to client)"} {
		m := regexp.MustCompile(regexp.QuoteMeta(dir) + `: (\d+) packets \(\d+ bytes\) in, (\d+) delivered .*; dropped: 0 lost, 0 by the full queue`).FindStringSubmatch(all)
		if assert.NotNil(t, m, "%s in:\n%s", dir, all) {
			assert.Equal(t, m[1], m[2])
			n, _ := strconv.Atoi(m[1])
			assert.GreaterOrEqual(t, n, 6)
		}
	}
	_, err = os.Stat(filepath.Join(netnsDir, clientName))
	assert.True(t, os.IsNotExist(err), "the namespace it created is gone")
	_, err = os.Stat(filepath.Join(netnsDir, serverName))
	assert.NoError(t, err, "the one it was given is left")
}
