package netstack

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/ustack-net/ustack/stack"
)

// newTestNet makes a Net with the given addresses (no tunnel behind it),
// closed at the end of the test.
func newTestNet(t *testing.T, addrs ...netip.Addr) *Net {
	t.Helper()
	dev, n, err := CreateNetTUN(addrs, nil, tunnelMTU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return n
}

// wantErrno checks that err is a *net.OpError carrying errno.
func wantErrno(t *testing.T, what string, err error, errno syscall.Errno) {
	t.Helper()
	var oe *net.OpError
	if !errors.As(err, &oe) || !errors.Is(err, errno) {
		t.Errorf("%s: error %v (%T), want a *net.OpError with %v", what, err, err, errno)
	}
}

var (
	ap     = netip.MustParseAddrPort
	noAddr = netip.AddrPort{}
)

// TestUDPArguments opens UDP sockets through every argument form of
// wireguard's netstack methods and checks the bound and peer addresses of
// those that succeed and the errno of those that fail.
func TestUDPArguments(t *testing.T) {
	n := newTestNet(t, addrA4, addrA6)
	v4only := newTestNet(t, addrA4)
	for _, tc := range []struct {
		name          string
		open          func() (*stack.UDPConn, error)
		local, remote string // "" remote: unconnected; "*" local port: any port
		err           syscall.Errno
	}{
		{"ListenUDP(nil)", func() (*stack.UDPConn, error) { return n.ListenUDP(nil) }, ":*", "", 0},
		{"ListenUDPAddrPort(zero)", func() (*stack.UDPConn, error) { return n.ListenUDPAddrPort(noAddr) }, ":*", "", 0},
		{"DialUDP(nil, nil)", func() (*stack.UDPConn, error) { return n.DialUDP(nil, nil) }, ":*", "", 0},
		{"port only", func() (*stack.UDPConn, error) { return n.ListenUDP(&net.UDPAddr{Port: 5000}) }, ":5000", "", 0},
		{"0.0.0.0", func() (*stack.UDPConn, error) { return n.ListenUDPAddrPort(ap("0.0.0.0:5001")) }, "0.0.0.0:5001", "", 0},
		{"[::]", func() (*stack.UDPConn, error) { return n.ListenUDPAddrPort(ap("[::]:5001")) }, "[::]:5001", "", 0},
		{"local v4", func() (*stack.UDPConn, error) { return n.ListenUDPAddrPort(ap("198.18.0.2:5002")) }, "198.18.0.2:5002", "", 0},
		{"v4-mapped", func() (*stack.UDPConn, error) {
			return n.ListenUDP(&net.UDPAddr{IP: net.ParseIP("198.18.0.2"), Port: 5003})
		}, "198.18.0.2:5003", "", 0},
		{"local v6", func() (*stack.UDPConn, error) { return n.ListenUDPAddrPort(ap("[2001:2::2]:0")) }, "[2001:2::2]:*", "", 0},
		{"not local", func() (*stack.UDPConn, error) { return n.ListenUDPAddrPort(ap("198.18.0.9:0")) }, "", "", syscall.EADDRNOTAVAIL},
		{"port in use", func() (*stack.UDPConn, error) {
			first, err := n.ListenUDP(&net.UDPAddr{Port: 5006})
			if err != nil {
				return nil, err
			}
			defer first.Close()
			return n.ListenUDPAddrPort(ap("198.18.0.2:5006"))
		}, "", "", syscall.EADDRINUSE},
		{"dial v4", func() (*stack.UDPConn, error) { return n.DialUDPAddrPort(noAddr, ap("198.18.0.1:53")) }, "198.18.0.2:*", "198.18.0.1:53", 0},
		{"dial v6", func() (*stack.UDPConn, error) {
			return n.DialUDP(nil, &net.UDPAddr{IP: net.ParseIP("2001:2::1"), Port: 53})
		}, "[2001:2::2]:*", "[2001:2::1]:53", 0},
		{"dial v4-mapped", func() (*stack.UDPConn, error) { return n.DialUDPAddrPort(noAddr, ap("[::ffff:198.18.0.1]:53")) }, "198.18.0.2:*", "198.18.0.1:53", 0},
		{"dial from port", func() (*stack.UDPConn, error) {
			return n.DialUDPAddrPort(netip.AddrPortFrom(netip.Addr{}, 5004), ap("198.18.0.1:53"))
		}, "198.18.0.2:5004", "198.18.0.1:53", 0},
		{"dial from local", func() (*stack.UDPConn, error) { return n.DialUDPAddrPort(ap("198.18.0.2:5005"), ap("198.18.0.1:53")) }, "198.18.0.2:5005", "198.18.0.1:53", 0},
		{"dial families differ", func() (*stack.UDPConn, error) { return n.DialUDPAddrPort(ap("198.18.0.2:0"), ap("[2001:2::1]:53")) }, "", "", syscall.EAFNOSUPPORT},
		{"dial unspecified", func() (*stack.UDPConn, error) { return n.DialUDPAddrPort(noAddr, ap("0.0.0.0:53")) }, "", "", syscall.EINVAL},
		{"dial port only", func() (*stack.UDPConn, error) { return n.DialUDP(nil, &net.UDPAddr{Port: 53}) }, "", "", syscall.EINVAL},
		{"dial port 0", func() (*stack.UDPConn, error) { return n.DialUDPAddrPort(noAddr, ap("198.18.0.1:0")) }, "", "", syscall.EINVAL},
		{"dial multicast", func() (*stack.UDPConn, error) { return n.DialUDPAddrPort(noAddr, ap("224.0.0.251:5353")) }, "", "", syscall.EINVAL},
		{"dial v6 without v6", func() (*stack.UDPConn, error) { return v4only.DialUDPAddrPort(noAddr, ap("[2001:2::1]:53")) }, "", "", syscall.ENETUNREACH},
		{"port out of range", func() (*stack.UDPConn, error) { return n.ListenUDP(&net.UDPAddr{Port: 70000}) }, "", "", syscall.EINVAL},
		{"negative port", func() (*stack.UDPConn, error) {
			return n.DialUDP(nil, &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: -1})
		}, "", "", syscall.EINVAL},
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
			t.Cleanup(func() { c.Close() })
			la := c.LocalAddr().(*net.UDPAddr)
			if la.Port == 0 || !matchAddr(la.String(), tc.local) {
				t.Errorf("LocalAddr %v, want %s", la, tc.local)
			}
			switch ra := c.RemoteAddr(); {
			case tc.remote == "" && ra != nil:
				t.Errorf("RemoteAddr %v of an unconnected socket, want nil", ra)
			case tc.remote != "" && (ra == nil || ra.String() != tc.remote):
				t.Errorf("RemoteAddr %v, want %s", ra, tc.remote)
			}
		})
	}
}

// matchAddr reports whether got matches want, where a port of "*" in want
// is any port.
func matchAddr(got, want string) bool {
	wh, wp, err := net.SplitHostPort(want)
	if err != nil {
		return false
	}
	gh, gp, err := net.SplitHostPort(got)
	if err != nil {
		return false
	}
	return gh == wh && (wp == "*" || gp == wp)
}

// TestUDPBadIP checks that a *net.UDPAddr whose IP has a length of neither
// 4 nor 16 fails with the net package's *net.AddrError (wireguard's netstack
// takes it as no address).
func TestUDPBadIP(t *testing.T) {
	n := newTestNet(t, addrA4, addrA6)
	bad := &net.UDPAddr{IP: net.IP{198, 18, 0}, Port: 53}
	for name, open := range map[string]func() (*stack.UDPConn, error){
		"laddr": func() (*stack.UDPConn, error) { return n.ListenUDP(bad) },
		"raddr": func() (*stack.UDPConn, error) { return n.DialUDP(nil, bad) },
	} {
		c, err := open()
		var ae *net.AddrError
		var oe *net.OpError
		if c != nil || !errors.As(err, &oe) || !errors.As(err, &ae) {
			t.Errorf("%s %v: got %v, %v; want a *net.OpError with a *net.AddrError", name, bad, c, err)
		}
	}
}

// TestUDPClosedNet checks that sockets opened after the device closed fail
// with net.ErrClosed, and that sockets open at the time are closed.
func TestUDPClosedNet(t *testing.T) {
	dev, n, err := CreateNetTUN([]netip.Addr{addrA4}, nil, tunnelMTU)
	if err != nil {
		t.Fatal(err)
	}
	c, err := n.ListenUDPAddrPort(noAddr)
	if err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if _, _, err := c.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom on a socket of a closed device: %v, want net.ErrClosed", err)
	}
	if _, err := n.DialUDPAddrPort(noAddr, ap("198.18.0.1:53")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("DialUDPAddrPort after Close: %v, want net.ErrClosed", err)
	}
	if _, err := n.ListenUDP(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ListenUDP after Close: %v, want net.ErrClosed", err)
	}
}
