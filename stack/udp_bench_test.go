package stack

import (
	"net/netip"
	"testing"
)

// BenchmarkUDPEchoRoundTrip: one 64-byte datagram to an echo socket on the
// other stack of an in-memory pipe and back, per iteration.
func BenchmarkUDPEchoRoundTrip(b *testing.B) {
	p := newPair(b, nil)
	srv, err := p.b.ListenUDP(netip.AddrPortFrom(addrB, 7))
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			srv.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	c, err := p.a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addrB, 7))
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 64)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}
