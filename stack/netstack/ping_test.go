package netstack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/ustack-net/ustack/ip"
)

var addr = netip.MustParseAddr

// TestPingAddr checks PingAddr's methods against wireguard's definitions.
func TestPingAddr(t *testing.T) {
	for _, tc := range []struct {
		a             netip.Addr
		network, name string
	}{
		{addrA4, "ping4", "198.18.0.2"},
		{addrA6, "ping6", "2001:2::2"},
		{netip.Addr{}, "ping", "invalid IP"},
	} {
		p := PingAddrFromAddr(tc.a)
		if p.Addr() != tc.a || p.Network() != tc.network || p.String() != tc.name {
			t.Errorf("PingAddrFromAddr(%v): Addr %v Network %q String %q, want %v %q %q", tc.a, p.Addr(), p.Network(), p.String(), tc.a, tc.network, tc.name)
		}
	}
}

// TestPingArguments opens ping sockets through every argument form and
// checks the PingAddr values LocalAddr and RemoteAddr return (wireguard's
// type), or the errno of those that fail.
func TestPingArguments(t *testing.T) {
	n := newTestNet(t, addrA4, addrA6)
	v4only := newTestNet(t, addrA4)
	for _, tc := range []struct {
		name          string
		open          func() (*PingConn, error)
		local, remote netip.Addr
		err           syscall.Errno
	}{
		{"ListenPingAddr(0.0.0.0)", func() (*PingConn, error) { return n.ListenPingAddr(netip.IPv4Unspecified()) }, netip.IPv4Unspecified(), netip.Addr{}, 0},
		{"ListenPing(::)", func() (*PingConn, error) { return n.ListenPing(PingAddrFromAddr(netip.IPv6Unspecified())) }, netip.IPv6Unspecified(), netip.Addr{}, 0},
		{"ListenPingAddr(local)", func() (*PingConn, error) { return n.ListenPingAddr(addrA6) }, addrA6, netip.Addr{}, 0},
		{"DialPingAddr(zero, v4)", func() (*PingConn, error) { return n.DialPingAddr(netip.Addr{}, addrB4) }, addrA4, addrB4, 0},
		{"DialPing(nil, v6)", func() (*PingConn, error) { return n.DialPing(nil, PingAddrFromAddr(addrB6)) }, addrA6, addrB6, 0},
		{"DialPingAddr(unspecified, v4)", func() (*PingConn, error) { return n.DialPingAddr(netip.IPv4Unspecified(), addrB4) }, addrA4, addrB4, 0},
		{"DialPingAddr(v4-mapped)", func() (*PingConn, error) { return n.DialPingAddr(netip.Addr{}, addr("::ffff:198.18.0.1")) }, addrA4, addrB4, 0},
		{"DialPing(local, nil)", func() (*PingConn, error) { return n.DialPing(PingAddrFromAddr(addrA4), nil) }, addrA4, netip.Addr{}, 0},
		{"ListenPing(nil)", func() (*PingConn, error) { return n.ListenPing(nil) }, netip.Addr{}, netip.Addr{}, syscall.EINVAL},
		{"ListenPingAddr(zero)", func() (*PingConn, error) { return n.ListenPingAddr(netip.Addr{}) }, netip.Addr{}, netip.Addr{}, syscall.EINVAL},
		{"DialPing(nil, nil)", func() (*PingConn, error) { return n.DialPing(nil, nil) }, netip.Addr{}, netip.Addr{}, syscall.EINVAL},
		{"not local", func() (*PingConn, error) { return n.ListenPingAddr(addr("198.18.0.9")) }, netip.Addr{}, netip.Addr{}, syscall.EADDRNOTAVAIL},
		{"families differ", func() (*PingConn, error) { return n.DialPingAddr(addrA4, addrB6) }, netip.Addr{}, netip.Addr{}, syscall.EAFNOSUPPORT},
		{"dial unspecified", func() (*PingConn, error) { return n.DialPingAddr(netip.Addr{}, netip.IPv6Unspecified()) }, netip.Addr{}, netip.Addr{}, syscall.EINVAL},
		{"dial multicast", func() (*PingConn, error) { return n.DialPingAddr(netip.Addr{}, addr("224.0.0.1")) }, netip.Addr{}, netip.Addr{}, syscall.EINVAL},
		{"dial v6 without v6", func() (*PingConn, error) { return v4only.DialPingAddr(netip.Addr{}, addrB6) }, netip.Addr{}, netip.Addr{}, syscall.ENETUNREACH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.open()
			if tc.err != 0 {
				if c != nil {
					c.Close()
				}
				wantErrno(t, tc.name, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			la, ok := c.LocalAddr().(PingAddr)
			if !ok || la.Addr() != tc.local {
				t.Errorf("LocalAddr %#v, want PingAddr %v", c.LocalAddr(), tc.local)
			}
			wantNet := "ping4"
			if tc.local.Is6() {
				wantNet = "ping6"
			}
			if la.Network() != wantNet {
				t.Errorf("LocalAddr().Network() %q, want %q", la.Network(), wantNet)
			}
			ra, ok := c.RemoteAddr().(PingAddr)
			if !ok || ra.Addr() != tc.remote {
				t.Errorf("RemoteAddr %#v, want PingAddr %v", c.RemoteAddr(), tc.remote)
			}
		})
	}
}

// echoRequest is an ICMP echo request (v6: ICMPv6) with identifier 0 and
// an unset checksum, as a program hands it to a ping socket.
func echoRequest(v6 bool, seq uint16, data []byte) []byte {
	b := make([]byte, ip.ICMPHeaderLen+len(data))
	b[0] = ip.ICMPv4Echo
	if v6 {
		b[0] = ip.ICMPv6EchoRequest
	}
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[ip.ICMPHeaderLen:], data)
	return b
}

// TestPingWrites checks the errors of writes that a ping socket refuses.
func TestPingWrites(t *testing.T) {
	n := newTestNet(t, addrA4, addrA6)
	ln, err := n.ListenPingAddr(netip.IPv4Unspecified())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := n.DialPingAddr(netip.Addr{}, addrB4)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := echoRequest(false, 1, []byte("x"))
	reply := append([]byte(nil), req...)
	reply[0] = ip.ICMPv4EchoReply
	var nilAddr *PingAddr
	for _, tc := range []struct {
		name  string
		write func() (int, error)
		err   syscall.Errno
	}{
		{"Write unconnected", func() (int, error) { return ln.Write(req) }, syscall.EDESTADDRREQ},
		{"WriteTo nil *PingAddr", func() (int, error) { return ln.WriteTo(req, nilAddr) }, syscall.EDESTADDRREQ},
		{"WriteTo nil", func() (int, error) { return ln.WriteTo(req, nil) }, syscall.EDESTADDRREQ},
		{"WriteTo zero PingAddr", func() (int, error) { return ln.WriteTo(req, PingAddr{}) }, syscall.EDESTADDRREQ},
		{"WriteTo other family", func() (int, error) { return ln.WriteTo(req, PingAddrFromAddr(addrB6)) }, syscall.EINVAL},
		{"WriteTo not a request", func() (int, error) { return ln.WriteTo(reply, PingAddrFromAddr(addrB4)) }, syscall.EINVAL},
		{"WriteTo short", func() (int, error) { return ln.WriteTo(req[:4], PingAddrFromAddr(addrB4)) }, syscall.EINVAL},
		{"WriteTo connected elsewhere", func() (int, error) { return conn.WriteTo(req, PingAddrFromAddr(addr("198.18.0.3"))) }, syscall.EISCONN},
	} {
		_, err := tc.write()
		wantErrno(t, tc.name, err, tc.err)
	}
	if err := ln.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ln.ReadFrom(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadFrom past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if _, err := ln.Read(make([]byte, 64)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
}

// TestPingDevice sends echo requests from ping sockets of both families
// into the tun.Device, answers them at the packet level, and checks what
// the device carried (the socket's identifier, a valid checksum, the
// sequence number and data) and what ReadFrom returns (the reply, from a
// *PingAddr).
func TestPingDevice(t *testing.T) {
	dev, n, err := CreateNetTUN([]netip.Addr{addrA4, addrA6}, nil, tunnelMTU)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	for _, peerAddr := range []netip.Addr{addrB4, addrB6} {
		v6 := peerAddr.Is6()
		unspec := netip.IPv4Unspecified()
		if v6 {
			unspec = netip.IPv6Unspecified()
		}
		c, err := n.ListenPingAddr(unspec)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte("ustack ping payload")
		if _, err := c.WriteTo(echoRequest(v6, 7, data), PingAddrFromAddr(peerAddr)); err != nil {
			t.Fatalf("WriteTo %v: %v", peerAddr, err)
		}
		pkt := readPacket(t, dev)
		var msg []byte
		if v6 {
			h, info, err := ip.ParseIPv6(pkt)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ip.ParseICMPv6(pkt[info.Offset:], h.Src().AsSlice(), h.Dst().AsSlice())
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			msg = m
			if err := ip.ReplyToEchoIPv6(h, info, 64); err != nil {
				t.Fatal(err)
			}
		} else {
			h, err := ip.ParseIPv4(pkt)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ip.ParseICMPv4(h.Payload())
			if err != nil || !m.ChecksumValid() {
				t.Fatalf("request: %v (checksum valid %v)", err, err == nil && m.ChecksumValid())
			}
			msg = m
			if err := ip.ReplyToEchoIPv4(h, 64); err != nil {
				t.Fatal(err)
			}
		}
		if id, seq := binary.BigEndian.Uint16(msg[4:]), binary.BigEndian.Uint16(msg[6:]); id != c.Ident() || seq != 7 || !bytes.Equal(msg[ip.ICMPHeaderLen:], data) {
			t.Errorf("%v: request id %d seq %d data %q, want id %d seq 7 data %q", peerAddr, id, seq, msg[ip.ICMPHeaderLen:], c.Ident(), data)
		}
		if _, err := dev.Write([][]byte{pkt}, 0); err != nil {
			t.Fatal(err)
		}
		if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		got, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%v: ReadFrom: %v", peerAddr, err)
		}
		pa, ok := from.(*PingAddr)
		if !ok || pa.Addr() != peerAddr {
			t.Errorf("ReadFrom address %#v, want *PingAddr %v", from, peerAddr)
		}
		wantType := ip.ICMPv4EchoReply
		if v6 {
			wantType = ip.ICMPv6EchoReply
		}
		if r := buf[:got]; len(r) != ip.ICMPHeaderLen+len(data) || r[0] != wantType || binary.BigEndian.Uint16(r[4:]) != c.Ident() || !bytes.Equal(r[ip.ICMPHeaderLen:], data) {
			t.Errorf("%v: read % x, want the echo reply to id %d", peerAddr, r, c.Ident())
		}
		c.Close()
	}
}

// readPacket reads one packet from a device.
func readPacket(t *testing.T, dev wgtun.Device) []byte {
	t.Helper()
	bufs := make([][]byte, dev.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, tunnelMTU)
	}
	sizes := make([]int, len(bufs))
	k, err := dev.Read(bufs, sizes, 0)
	if err != nil || k != 1 {
		t.Fatalf("device Read: %d packets, %v; want 1", k, err)
	}
	return bufs[0][:sizes[0]]
}
