package netstack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	mrand "math/rand/v2"

	"go.uber.org/goleak"

	"github.com/ustack-net/ustack/ip"
)

// udpSizes are the datagram sizes of the echo test: empty, tiny, each side
// of the tunnel MTU for IPv6 (1420-48) and IPv4 (1420-28), several
// fragments, and the largest IPv4 datagram.
var udpSizes = []int{0, 1, 1372, 1373, 1392, 1393, 8000, 30000, 65507}

// datagram is the content of the echo test's datagram of n bytes: a
// pseudo-random stream seeded with n, so that the server can check what
// it got by its length alone.
func datagram(n int) []byte {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(n))
	b := make([]byte, n)
	_, _ = mrand.NewChaCha8(seed).Read(b)
	return b
}

// echoed is what the echo server answers to b: its complement, so that a
// datagram that merely came back unprocessed is told apart.
func echoed(b []byte) []byte {
	r := make([]byte, len(b))
	for i, c := range b {
		r[i] = ^c
	}
	return r
}

// udpEchoServer answers every datagram on pc with echoed(datagram) after
// checking it against datagram(len); stop closes pc and returns the
// datagrams it answered and the first content error.
func udpEchoServer(pc net.PacketConn) (stop func() (int, error)) {
	var (
		wg       sync.WaitGroup
		answered int
		bad      error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if !bytes.Equal(buf[:n], datagram(n)) && bad == nil {
				bad = fmt.Errorf("server got a datagram of %d bytes from %v that differs from the one sent", n, from)
			}
			if _, err := pc.WriteTo(echoed(buf[:n]), from); err != nil && bad == nil {
				bad = fmt.Errorf("server WriteTo %v: %w", from, err)
			}
			answered++
		}
	}()
	return func() (int, error) {
		pc.Close()
		wg.Wait()
		return answered, bad
	}
}

// udpClient is a client socket of the echo test: connected (a net.Conn
// whose Write and Read are used) or not (a net.PacketConn writing to to).
type udpClient struct {
	conn net.Conn
	pc   net.PacketConn
	to   net.Addr
}

func (c udpClient) send(b []byte) error {
	if c.conn != nil {
		_, err := c.conn.Write(b)
		return err
	}
	_, err := c.pc.WriteTo(b, c.to)
	return err
}

// recv reads one datagram; an unconnected socket checks its sender.
func (c udpClient) recv(b []byte, deadline time.Time) (int, error) {
	if c.conn != nil {
		if err := c.conn.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
		return c.conn.Read(b)
	}
	if err := c.pc.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, from, err := c.pc.ReadFrom(b)
	if err == nil && from.String() != c.to.String() {
		return 0, fmt.Errorf("datagram from %v, want %v", from, c.to)
	}
	return n, err
}

// roundTrip sends b until its echo comes back (the first datagrams wait
// for the WireGuard handshake, and UDP may lose any), skipping late echoes
// of earlier datagrams (told apart by their length), and checks the echo.
func roundTrip(t *testing.T, c udpClient, b []byte) {
	t.Helper()
	want := echoed(b)
	buf := make([]byte, 1<<16+1)
	for try := 0; try < 20; try++ {
		if err := c.send(b); err != nil {
			t.Fatalf("send %d bytes: %v", len(b), err)
		}
		deadline := time.Now().Add(time.Second)
		for {
			n, err := c.recv(buf, deadline)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatalf("recv (%d bytes sent): %v", len(b), err)
			}
			if n != len(b) {
				continue
			}
			if !bytes.Equal(buf[:n], want) {
				t.Fatalf("echo of %d bytes differs from what the server must send", len(b))
			}
			return
		}
	}
	t.Fatalf("no echo of %d bytes after 20 tries", len(b))
}

// TestWireGuardUDPEcho sends datagrams of udpSizes (up to 46 times the
// tunnel MTU, so fragmented and reassembled by both stacks) through
// wireguard-go between ustack's netstack (A) and gVisor's (B), with ustack
// as client (connected and unconnected sockets) and as server, in both
// families. The server checks every datagram's content and answers its
// complement, which the client checks. No goroutine may be left.
func TestWireGuardUDPEcho(t *testing.T) {
	defer goleak.VerifyNone(t)
	tn := newTunnel(t, true, false)
	defer tn.Close()
	for i, tc := range []struct {
		name      string
		ustackSrv bool
		connected bool
		to        netip.Addr
	}{
		{"ustack-client/v4", false, true, addrB4},
		{"ustack-client-unconnected/v4", false, false, addrB4},
		{"ustack-server/v4", true, true, addrA4},
		{"ustack-client/v6", false, true, addrB6},
		{"ustack-client-unconnected/v6", false, false, addrB6},
		{"ustack-server/v6", true, true, addrA6},
	} {
		port := uint16(7000 + i)
		t.Run(tc.name, func(t *testing.T) {
			to := netip.AddrPortFrom(tc.to, port)
			var (
				srv net.PacketConn
				c   udpClient
				err error
			)
			if tc.ustackSrv {
				if srv, err = tn.a.us.ListenUDPAddrPort(netip.AddrPortFrom(netip.Addr{}, port)); err != nil {
					t.Fatal(err)
				}
				if c.conn, err = tn.b.gv.DialUDPAddrPort(netip.AddrPort{}, to); err != nil {
					t.Fatal(err)
				}
			} else {
				if srv, err = tn.b.gv.ListenUDPAddrPort(netip.AddrPortFrom(netip.Addr{}, port)); err != nil {
					t.Fatal(err)
				}
				if tc.connected {
					c.conn, err = tn.a.us.DialUDPAddrPort(netip.AddrPort{}, to)
				} else {
					c.pc, err = tn.a.us.ListenUDP(nil)
					c.to = net.UDPAddrFromAddrPort(to)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			stop := udpEchoServer(srv)
			st := tn.a.us.Stack().Stats()
			sent0, whole0 := st.IPFragmentsSent.Load(), st.IPReassembled.Load()
			for _, n := range udpSizes {
				roundTrip(t, c, datagram(n))
			}
			// Every datagram over the MTU went out of ustack in fragments
			// and came back to it in fragments.
			limit := tunnelMTU - 28
			if tc.to.Is6() {
				limit = tunnelMTU - 48
			}
			big := 0
			for _, n := range udpSizes {
				if n > limit {
					big++
				}
			}
			if sent, whole := st.IPFragmentsSent.Load()-sent0, st.IPReassembled.Load()-whole0; sent < uint64(2*big) || whole < uint64(big) {
				t.Errorf("ustack sent %d fragments and reassembled %d datagrams; want at least %d and %d", sent, whole, 2*big, big)
			}
			if c.conn != nil {
				c.conn.Close()
			} else {
				c.pc.Close()
			}
			answered, err := stop()
			if err != nil {
				t.Fatal(err)
			}
			if answered < len(udpSizes) {
				t.Errorf("server answered %d datagrams, want at least %d", answered, len(udpSizes))
			}
		})
	}
}

// pingSizes are the echo data sizes of the ping test: none, ping(8)'s
// default, and one that fragments in the tunnel.
var pingSizes = []int{0, 56, 3000}

// TestWireGuardPing sends ICMP echo requests from ustack's ping sockets
// (connected and unconnected) to gVisor's netstack through wireguard-go,
// and from gVisor's to ustack's stack, in both families; every reply must
// carry the socket's identifier (for ustack's), the request's sequence
// number and its data, and an unconnected socket's ReadFrom must name the
// peer as a *PingAddr.
func TestWireGuardPing(t *testing.T) {
	defer goleak.VerifyNone(t)
	tn := newTunnel(t, true, false)
	defer tn.Close()
	for _, tc := range []struct {
		name      string
		gvisor    bool // gVisor pings ustack
		connected bool
		to        netip.Addr
	}{
		{"ustack-pings/v4", false, true, addrB4},
		{"ustack-pings-unconnected/v4", false, false, addrB4},
		{"gvisor-pings/v4", true, true, addrA4},
		{"ustack-pings/v6", false, true, addrB6},
		{"ustack-pings-unconnected/v6", false, false, addrB6},
		{"gvisor-pings/v6", true, true, addrA6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				c     net.PacketConn
				ident = -1 // unknown for gVisor's socket
				err   error
			)
			switch {
			case tc.gvisor:
				c, err = tn.b.gv.DialPingAddr(netip.Addr{}, tc.to)
			case tc.connected:
				var pc *PingConn
				if pc, err = tn.a.us.DialPingAddr(netip.Addr{}, tc.to); err == nil {
					c, ident = pc, int(pc.Ident())
				}
			default:
				unspec := netip.IPv4Unspecified()
				if tc.to.Is6() {
					unspec = netip.IPv6Unspecified()
				}
				var pc *PingConn
				if pc, err = tn.a.us.ListenPingAddr(unspec); err == nil {
					c, ident = pc, int(pc.Ident())
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			seq := uint16(0)
			for _, size := range pingSizes {
				seq++
				ping(t, c, tc.connected, tc.to, seq, datagram(size), ident)
			}
		})
	}
}

// ping sends echo request seq with data until its reply comes (skipping
// replies to earlier requests) and checks the reply.
func ping(t *testing.T, c net.PacketConn, connected bool, to netip.Addr, seq uint16, data []byte, ident int) {
	t.Helper()
	v6 := to.Is6()
	req := echoRequest(v6, seq, data)
	wantType := ip.ICMPv4EchoReply
	if v6 {
		wantType = ip.ICMPv6EchoReply
	}
	buf := make([]byte, 1<<16)
	for try := 0; try < 20; try++ {
		var err error
		if connected {
			_, err = c.(net.Conn).Write(req)
		} else {
			_, err = c.WriteTo(req, PingAddrFromAddr(to))
		}
		if err != nil {
			t.Fatalf("echo request %d: %v", seq, err)
		}
		if err := c.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		for {
			n, from, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatalf("read reply %d: %v", seq, err)
			}
			if pa, ok := from.(*PingAddr); ident >= 0 && (!ok || pa.Addr() != to) {
				t.Fatalf("reply from %#v, want *PingAddr %v", from, to)
			}
			m := buf[:n]
			if n < ip.ICMPHeaderLen {
				t.Fatalf("reply of %d bytes", n)
			}
			if got := binary.BigEndian.Uint16(m[6:]); got != seq {
				continue // a late reply to an earlier request
			}
			if m[0] != wantType || m[1] != 0 {
				t.Fatalf("reply %d: type %d code %d, want %d 0", seq, m[0], m[1], wantType)
			}
			if id := binary.BigEndian.Uint16(m[4:]); ident >= 0 && int(id) != ident {
				t.Fatalf("reply %d: identifier %d, want the socket's %d", seq, id, ident)
			}
			if !bytes.Equal(m[ip.ICMPHeaderLen:], data) {
				t.Fatalf("reply %d: %d bytes of data that differ from the request's %d", seq, n-ip.ICMPHeaderLen, len(data))
			}
			return
		}
	}
	t.Fatalf("no reply to echo request %d (%d bytes of data) after 20 tries", seq, len(data))
}
