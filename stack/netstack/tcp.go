package netstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"

	"github.com/ustack-net/ustack/stack"
)

// errNilAddr reports a nil *net.TCPAddr, *net.UDPAddr or *PingAddr where a
// remote address is required (wireguard's netstack would panic).
var errNilAddr = errors.New("netstack: nil address")

// tcpAddrPort converts a *net.TCPAddr (nil: the unspecified address, port 0).
func tcpAddrPort(a *net.TCPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ip, _ := netip.AddrFromSlice(a.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
}

// DialContextTCPAddrPort connects to addr over TCP; ctx bounds the
// handshake.
func (n *Net) DialContextTCPAddrPort(ctx context.Context, addr netip.AddrPort) (*stack.Conn, error) {
	return n.stack.DialAddrPort(ctx, netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()))
}

// DialContextTCP is DialContextTCPAddrPort with a *net.TCPAddr.
func (n *Net) DialContextTCP(ctx context.Context, addr *net.TCPAddr) (*stack.Conn, error) {
	if addr == nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errNilAddr}
	}
	return n.DialContextTCPAddrPort(ctx, tcpAddrPort(addr))
}

// DialTCPAddrPort connects to addr over TCP.
func (n *Net) DialTCPAddrPort(addr netip.AddrPort) (*stack.Conn, error) {
	return n.DialContextTCPAddrPort(context.Background(), addr)
}

// DialTCP connects to addr over TCP.
func (n *Net) DialTCP(addr *net.TCPAddr) (*stack.Conn, error) {
	return n.DialContextTCP(context.Background(), addr)
}

// ListenTCPAddrPort listens for TCP connections on addr; an invalid or
// unspecified address listens on all of n's addresses (of both families
// for the invalid one), port 0 picks a free port.
func (n *Net) ListenTCPAddrPort(addr netip.AddrPort) (*stack.Listener, error) {
	host := ""
	network := "tcp"
	if a := addr.Addr().Unmap(); a.IsValid() {
		host = a.String()
		if a.Is4() {
			network = "tcp4"
		} else {
			network = "tcp6"
		}
	}
	return n.stack.ListenBacklog(network, net.JoinHostPort(host, strconv.Itoa(int(addr.Port()))), 0)
}

// ListenTCP is ListenTCPAddrPort with a *net.TCPAddr (nil: any address,
// a free port).
func (n *Net) ListenTCP(addr *net.TCPAddr) (*stack.Listener, error) {
	return n.ListenTCPAddrPort(tcpAddrPort(addr))
}
