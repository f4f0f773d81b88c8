package integration

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tun/netnstest"
)

// TestServeRoutes runs `ustack serve` with a second device (--link
// ustack1 with the kernel at 198.18.1.1) and a route to 198.18.1.0/24
// over it. A kernel client bound to 198.18.1.1 reaches ustack's address
// through ustack0, the kernel's route to it, and ustack's answers come
// back through ustack1, its own route to the client; a client at
// 198.18.0.1 is answered through ustack0. The kernel's receive counters
// of the two devices tell which one carried the answers. Both devices go
// when serve stops.
func TestServeRoutes(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	srv := launchServe(t, true, "--link", "ustack1,host-addr=198.18.1.1/24", "--route", "198.18.1.0/24,link=ustack1")
	// The answers to 198.18.1.1 come in on a device that is not the
	// kernel's route back to their source: no reverse-path filter in
	// this namespace.
	for _, c := range []string{"all", "default", "ustack0", "ustack1"} {
		require.NoError(t, os.WriteFile("/proc/sys/net/ipv4/conf/"+c+"/rp_filter", []byte("0"), 0o644))
	}
	// /proc/net/dev is this namespace's (/sys/class/net may show
	// another's).
	rx := func(dev string) uint64 {
		b, err := os.ReadFile("/proc/net/dev")
		require.NoError(t, err)
		for _, l := range strings.Split(string(b), "\n") {
			name, counters, ok := strings.Cut(l, ":")
			if ok && strings.TrimSpace(name) == dev {
				f := strings.Fields(counters) // rx bytes, rx packets, ...
				n, err := strconv.ParseUint(f[1], 10, 64)
				require.NoError(t, err)
				return n
			}
		}
		t.Fatalf("no %s in /proc/net/dev:\n%s", dev, b)
		return 0
	}
	for _, tc := range []struct {
		client  string
		answers string
		other   string
	}{
		{"198.18.1.1", "ustack1", "ustack0"},
		{"198.18.0.1", "ustack0", "ustack1"},
	} {
		t.Run("from-"+tc.client, func(t *testing.T) {
			before, otherBefore := rx(tc.answers), rx(tc.other)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(tc.client), 0))}
			c, err := d.DialContext(ctx, "tcp", joinAddrPort(ustackAddr4, serveEchoPort))
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
			msg := seededBytes(3, 100000)
			go func() {
				c.Write(msg)
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			require.NoError(t, err)
			require.True(t, bytes.Equal(msg, got), "echo: %d bytes back of %d", len(got), len(msg))
			answers, other := rx(tc.answers)-before, rx(tc.other)-otherBefore
			t.Logf("from %s: %d packets from ustack on %s, %d on %s", tc.client, answers, tc.answers, other, tc.other)
			assert.GreaterOrEqual(t, answers, uint64(3), "SYN-ACK, data and FIN came through %s", tc.answers)
			assert.Zero(t, other, "nothing from ustack on %s", tc.other)
		})
	}
	assert.Contains(t, srv.stderr.String(), `msg=route route="198.18.1.0/24 link 1"`)
	srv.stop(t)
	b, err := os.ReadFile("/proc/net/dev")
	require.NoError(t, err)
	assert.NotContains(t, string(b), "ustack1:", "the --link device goes with serve")
}
