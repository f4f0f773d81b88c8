package netstack

import (
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/ustack-net/ustack/stack"
)

// udpAddrPort converts a *net.UDPAddr (nil: the zero AddrPort). An IP that
// is neither 4 nor 16 bytes, or a port outside 0-65535, is an error, as the
// net package's conversion to a sockaddr makes it; wireguard's netstack
// truncates the port and takes a bad IP as none.
func udpAddrPort(a *net.UDPAddr) (netip.AddrPort, error) {
	if a == nil {
		return netip.AddrPort{}, nil
	}
	var ip netip.Addr
	if len(a.IP) != 0 {
		var ok bool
		if ip, ok = netip.AddrFromSlice(a.IP); !ok {
			return netip.AddrPort{}, &net.AddrError{Err: "invalid IP address", Addr: a.IP.String()}
		}
	}
	if a.Port < 0 || a.Port > 0xffff {
		return netip.AddrPort{}, os.NewSyscallError("bind", syscall.EINVAL)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port)), nil
}

// DialUDPAddrPort opens a UDP socket, as wireguard's netstack does:
//   - with a raddr it is connected to raddr (Write sends there, Read takes
//     only its datagrams), from laddr if laddr is valid or has a port, else
//     from our address towards raddr and an ephemeral port;
//   - without one (the zero AddrPort) it is unconnected, bound to laddr
//     (ListenUDPAddrPort).
//
// laddr's address may be absent (any address of both families),
// unspecified (any of its family) or one of the local addresses; port 0
// picks an ephemeral port. IPv4-mapped IPv6 addresses are taken as IPv4.
// A raddr with a port and no address, which wireguard's netstack hands to
// gVisor as an empty address, is refused with EINVAL as one with the
// unspecified address is; so are a zero port and a multicast address.
// The socket is a *stack.UDPConn (wireguard's is a *gonet.UDPConn): it has
// the methods of *net.UDPConn and implements net.Conn and net.PacketConn.
func (n *Net) DialUDPAddrPort(laddr, raddr netip.AddrPort) (*stack.UDPConn, error) {
	laddr = netip.AddrPortFrom(laddr.Addr().Unmap(), laddr.Port())
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	if !raddr.Addr().IsValid() {
		if raddr.Port() == 0 {
			return n.stack.ListenUDP(laddr)
		}
		// The family of an address-less raddr is laddr's, else IPv6 as
		// wireguard's convertToFullAddr picks it.
		unspec := netip.IPv6Unspecified()
		if laddr.Addr().Is4() {
			unspec = netip.IPv4Unspecified()
		}
		raddr = netip.AddrPortFrom(unspec, raddr.Port())
	}
	return n.stack.DialUDP(laddr, raddr)
}

// ListenUDPAddrPort opens an unconnected UDP socket bound to laddr: the
// zero AddrPort or a port alone receives on every local address of both
// families, an unspecified address on those of its family; port 0 picks an
// ephemeral port. (Wireguard's netstack, given the zero AddrPort, makes an
// endpoint of no network protocol; this one listens as
// net.ListenUDP("udp", nil) does.)
func (n *Net) ListenUDPAddrPort(laddr netip.AddrPort) (*stack.UDPConn, error) {
	return n.DialUDPAddrPort(laddr, netip.AddrPort{})
}

// DialUDP is DialUDPAddrPort with *net.UDPAddrs; nil stands for the zero
// AddrPort (so DialUDP(laddr, nil) is ListenUDP(laddr)). An IP of a bad
// length or a port out of range fails with the net package's error.
func (n *Net) DialUDP(laddr, raddr *net.UDPAddr) (*stack.UDPConn, error) {
	op := "dial"
	if raddr == nil {
		op = "listen"
	}
	fail := func(err error) error {
		e := &net.OpError{Op: op, Net: "udp", Err: err}
		if laddr != nil {
			e.Source = laddr
		}
		if raddr != nil {
			e.Addr = raddr
		}
		return e
	}
	la, err := udpAddrPort(laddr)
	if err != nil {
		return nil, fail(err)
	}
	ra, err := udpAddrPort(raddr)
	if err != nil {
		return nil, fail(err)
	}
	return n.DialUDPAddrPort(la, ra)
}

// ListenUDP is ListenUDPAddrPort with a *net.UDPAddr (nil: any address of
// both families, an ephemeral port).
func (n *Net) ListenUDP(laddr *net.UDPAddr) (*stack.UDPConn, error) {
	return n.DialUDP(laddr, nil)
}
