package netstack

import (
	"net"
	"net/netip"
	"time"

	"github.com/ustack-net/ustack/stack"
)

// PingAddr is the address of one end of a ping socket: an IP address, of
// network "ping4" or "ping6" ("ping" for the zero PingAddr).
type PingAddr struct{ addr netip.Addr }

// PingAddrFromAddr returns the PingAddr of addr.
func PingAddrFromAddr(addr netip.Addr) *PingAddr { return &PingAddr{addr} }

// String returns the address in netip.Addr's form.
func (ia PingAddr) String() string { return ia.addr.String() }

// Network returns "ping4" or "ping6" by the address's family.
func (ia PingAddr) Network() string {
	switch {
	case ia.addr.Is4():
		return "ping4"
	case ia.addr.Is6():
		return "ping6"
	}
	return "ping"
}

// Addr returns the IP address.
func (ia PingAddr) Addr() netip.Addr { return ia.addr }

// PingConn is an ICMP echo socket with the address types of wireguard's
// netstack.PingConn: LocalAddr and RemoteAddr return a PingAddr value (the
// zero PingAddr for the remote of an unconnected socket), ReadFrom a
// *PingAddr, and WriteTo takes a *PingAddr, a PingAddr or a *net.IPAddr.
// Writes are ICMP echo requests (type, code, checksum, identifier,
// sequence number, data) whose identifier and checksum the stack fills in;
// reads are the echo replies to the socket's identifier (Ident), without
// the IP header, as in wireguard's.
//
// It differs from wireguard's in that:
//   - LocalAddr of a socket dialled without a local address is the source
//     address the stack chose towards the peer, as getsockname(2) returns
//     after connect(2) (wireguard's reports the unspecified address);
//   - SetWriteDeadline works (wireguard's returns an error), and
//     SetDeadline sets both deadlines;
//   - errors are *net.OpError with an errno, net.ErrClosed or
//     os.ErrDeadlineExceeded inside (errors.Is finds them), whose addresses
//     are *net.IPAddr;
//   - Write on an unconnected socket fails with EDESTADDRREQ, and WriteTo on
//     a connected one to another address with EISCONN.
type PingConn struct {
	c            *stack.PingConn
	laddr, raddr PingAddr
}

var (
	_ net.Conn       = (*PingConn)(nil)
	_ net.PacketConn = (*PingConn)(nil)
)

// DialPingAddr opens a ping socket. With a valid raddr it is connected to
// raddr (Write sends there, reads take only its replies), from laddr if
// laddr is valid, else from our address towards raddr. Without raddr it is
// ListenPingAddr(laddr). Both invalid, an unspecified or multicast raddr,
// or laddr and raddr of different families fail (EINVAL, EAFNOSUPPORT), as
// does a laddr that is not local (EADDRNOTAVAIL). IPv4-mapped IPv6
// addresses are taken as IPv4.
func (n *Net) DialPingAddr(laddr, raddr netip.Addr) (*PingConn, error) {
	laddr, raddr = laddr.Unmap(), raddr.Unmap()
	c, err := n.stack.DialPing(laddr, raddr)
	if err != nil {
		return nil, err
	}
	pc := &PingConn{c: c, raddr: PingAddr{raddr}}
	if a, ok := c.LocalAddr().(*net.IPAddr); ok {
		ip, _ := netip.AddrFromSlice(a.IP)
		pc.laddr = PingAddr{ip.Unmap()}
	}
	return pc, nil
}

// ListenPingAddr opens an unconnected ping socket bound to laddr: an
// unspecified address (any local address of its family) or a local
// address. The invalid Addr fails with EINVAL: it names no family.
func (n *Net) ListenPingAddr(laddr netip.Addr) (*PingConn, error) {
	return n.DialPingAddr(laddr, netip.Addr{})
}

// DialPing is DialPingAddr with *PingAddrs; nil stands for the invalid
// Addr.
func (n *Net) DialPing(laddr, raddr *PingAddr) (*PingConn, error) {
	var la, ra netip.Addr
	if laddr != nil {
		la = laddr.addr
	}
	if raddr != nil {
		ra = raddr.addr
	}
	return n.DialPingAddr(la, ra)
}

// ListenPing is ListenPingAddr with a *PingAddr; nil fails with EINVAL.
func (n *Net) ListenPing(laddr *PingAddr) (*PingConn, error) {
	var la netip.Addr
	if laddr != nil {
		la = laddr.addr
	}
	return n.ListenPingAddr(la)
}

// Ident returns the socket's echo identifier, which the stack writes into
// every request and which every reply read carries.
func (pc *PingConn) Ident() uint16 { return pc.c.Ident() }

// LocalAddr returns the bound address (a PingAddr).
func (pc *PingConn) LocalAddr() net.Addr { return pc.laddr }

// RemoteAddr returns the peer (a PingAddr; the zero one if unconnected).
func (pc *PingConn) RemoteAddr() net.Addr { return pc.raddr }

// ReadFrom reads one echo reply (the ICMP message) into p, discarding what
// does not fit, and returns its sender as a *PingAddr.
func (pc *PingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := pc.c.ReadFromAddr(p)
	if err != nil {
		return 0, nil, err
	}
	return n, &PingAddr{from}, nil
}

// Read reads one echo reply.
func (pc *PingConn) Read(p []byte) (int, error) { return pc.c.Read(p) }

// WriteTo sends the echo request p to addr: a *PingAddr, a PingAddr or a
// *net.IPAddr (or another address the stack's PingConn takes).
func (pc *PingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	switch a := addr.(type) {
	case *PingAddr:
		if a == nil {
			return pc.c.WriteTo(p, nil)
		}
		return pc.writeToAddr(p, a.addr)
	case PingAddr:
		return pc.writeToAddr(p, a.addr)
	}
	return pc.c.WriteTo(p, addr)
}

func (pc *PingConn) writeToAddr(p []byte, dst netip.Addr) (int, error) {
	if !dst.IsValid() {
		return pc.c.WriteTo(p, nil)
	}
	return pc.c.WriteTo(p, &net.IPAddr{IP: dst.Unmap().AsSlice()})
}

// Write sends the echo request p to the peer of a connected socket.
func (pc *PingConn) Write(p []byte) (int, error) { return pc.c.Write(p) }

// Close closes the socket; blocked reads return net.ErrClosed.
func (pc *PingConn) Close() error { return pc.c.Close() }

// SetDeadline sets the read and write deadlines.
func (pc *PingConn) SetDeadline(t time.Time) error { return pc.c.SetDeadline(t) }

// SetReadDeadline sets the deadline of reads.
func (pc *PingConn) SetReadDeadline(t time.Time) error { return pc.c.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of writes (which never block: it only
// makes them fail once passed).
func (pc *PingConn) SetWriteDeadline(t time.Time) error { return pc.c.SetWriteDeadline(t) }
