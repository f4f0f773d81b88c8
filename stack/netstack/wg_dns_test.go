package netstack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestWireGuardDNS looks names up from ustack's netstack (A) through
// wireguard-go, answered by a small DNS server on gVisor's netstack (B)
// at B's address, the DNS server A was made with: an answer over UDP, a
// truncated UDP answer retried over TCP, NXDOMAIN, a forged answer before
// the real one; then a TCP dial by name; no goroutine may be left.
func TestWireGuardDNS(t *testing.T) {
	defer goleak.VerifyNone(t)
	tn := newTunnel(t, true, false)
	defer tn.Close()
	udp, err := tn.b.gv.ListenUDPAddrPort(netip.AddrPortFrom(addrB4, 53))
	if err != nil {
		t.Fatal(err)
	}
	spoof, err := tn.b.gv.ListenUDPAddrPort(netip.AddrPortFrom(addrB4, 5353))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tn.b.gv.ListenTCPAddrPort(netip.AddrPortFrom(addrB4, 53))
	if err != nil {
		t.Fatal(err)
	}
	zone := map[string]zoneEntry{
		"gvisor.test.": {a: []netip.Addr{addrB4}, aaaa: []netip.Addr{addrB6}},
		"big.test.":    testZone["big.test."],
	}
	zone["forged.gvisor.test."] = zone["gvisor.test."]
	srv := startDNSServer(udp, spoof, ln, func(q dnsQuery) []dnsSend {
		real := zoneAnswer(zone, q)
		if q.tcp || q.msg.Questions[0].Name.String() != "forged.gvisor.test." {
			return []dnsSend{{b: real}}
		}
		forged := q.msg
		forged.ID ^= 1
		evil := []netip.Addr{netip.MustParseAddr("198.18.66.6")}
		return []dnsSend{{b: dnsAnswer(forged, 0, evil, false)}, {b: dnsAnswer(q.msg, 0, evil, false), spoof: true}, {b: real}}
	})
	defer srv.Close()
	// The first packets wait for the WireGuard handshake.
	waitTunnel(t, tn.a, netip.AddrPortFrom(addrB4, 53))

	n := tn.a.us
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		host string
		want []string
	}{
		{"gvisor.test", []string{"2001:2::1", "198.18.0.1"}},
		{"big.test", []string{"2001:2::6:1", "198.18.6.1", "198.18.6.2", "198.18.6.3"}},
		{"forged.gvisor.test", []string{"2001:2::1", "198.18.0.1"}},
	} {
		got, err := n.LookupContextHost(ctx, tc.host)
		if err != nil {
			t.Fatalf("lookup %s: %v", tc.host, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("lookup %s: %v, want %v", tc.host, got, tc.want)
		}
	}
	_, err = n.LookupContextHost(ctx, "missing.test")
	if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound || de.Server != "198.18.0.1:53" {
		t.Fatalf("lookup missing.test: %#v, want a not-found *net.DNSError from 198.18.0.1:53", err)
	}
	st := n.DNSStats()
	want := DNSStats{QueriesUDP: 8, QueriesTCP: 2, Truncated: 2, IgnoredWrongID: 2}
	if st != want {
		t.Fatalf("DNS stats %+v, want %+v", st, want)
	}

	// A dial by name: gVisor's netstack echoes on port 7, IPv6 first.
	echo, err := tn.b.gv.ListenTCPAddrPort(netip.AddrPortFrom(netip.Addr{}, 7))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	c, err := n.DialContext(ctx, "tcp", "gvisor.test:7")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RemoteAddr().String(); got != "[2001:2::1]:7" {
		t.Fatalf("dialled %s, want [2001:2::1]:7", got)
	}
	msg := []byte("through the tunnel by name")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(msg) {
		t.Fatalf("echo %q, %v; want %q", buf, err, msg)
	}
	c.Close()
	<-done
	echo.Close()
}
