package netstack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const bulkSize = 64 << 20

// TestWireGuardHTTP runs HTTP GETs of 64 MiB through wireguard-go between
// ustack's netstack (A) and gVisor's (B), in both directions and both IP
// families, and checks every body's SHA-256; then the tunnel closes and no
// goroutine may be left.
func TestWireGuardHTTP(t *testing.T) {
	defer goleak.VerifyNone(t)
	tn := newTunnel(t, true, false)
	defer tn.Close()
	want := contentSum(bulkSize)
	for i, tc := range []struct {
		name         string
		server, clnt *peer
		addr         netip.Addr
	}{
		{"gvisor-to-ustack/v4", tn.a, tn.b, addrA4},
		{"ustack-to-gvisor/v4", tn.b, tn.a, addrB4},
		{"gvisor-to-ustack/v6", tn.a, tn.b, addrA6},
		{"ustack-to-gvisor/v6", tn.b, tn.a, addrB6},
	} {
		// A port per case: gVisor keeps a closed listener's port a while.
		port := uint16(8080 + i)
		t.Run(tc.name, func(t *testing.T) {
			ln, err := tc.server.listen(port)
			if err != nil {
				t.Fatal(err)
			}
			stop := serveContent(ln)
			defer stop()
			to := netip.AddrPortFrom(tc.addr, port)
			waitTunnel(t, tc.clnt, to)
			c := httpClient(tc.clnt.dial)
			defer c.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			sum, n, err := getSum(ctx, c, httpURL(to, bulkSize))
			if err != nil {
				t.Fatalf("GET from %s (%s serving): %v after %d bytes", tc.clnt.name, tc.server.name, err, n)
			}
			if n != bulkSize || sum != want {
				t.Fatalf("GET: %d bytes, sha256 %s; want %d bytes, %s", n, sum, bulkSize, want)
			}
			t.Logf("%d MiB in %v (%.0f MB/s)", bulkSize>>20, time.Since(start).Round(time.Millisecond), float64(bulkSize)/time.Since(start).Seconds()/1e6)
		})
	}
}
