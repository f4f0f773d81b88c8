package stack

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/ip"
)

// PingConn is an ICMP echo socket, like a Linux ping socket
// (SOCK_DGRAM, IPPROTO_ICMP / IPPROTO_ICMPV6): the application writes ICMP
// echo requests (type, code, identifier, sequence number, data; the
// identifier and checksum are the stack's to fill) and reads the echo
// replies whose identifier is the socket's, as ICMP messages without the IP
// header. The identifier plays the part of a port: each socket has its own.
// It implements net.PacketConn and net.Conn; addresses are *net.IPAddr.
type PingConn struct {
	d  datagramSocket
	v6 bool
}

var (
	_ net.Conn       = (*PingConn)(nil)
	_ net.PacketConn = (*PingConn)(nil)
)

// DialPing opens a ping socket connected to raddr: Write sends to it and
// only its replies are read. laddr may be the zero Addr (our address
// towards raddr). Without a raddr it is ListenPing(laddr), as in
// wireguard's netstack.
func (s *Stack) DialPing(laddr, raddr netip.Addr) (*PingConn, error) {
	if !raddr.IsValid() {
		return s.ListenPing(laddr)
	}
	raddr = raddr.Unmap()
	if !raddr.IsValid() || raddr.IsUnspecified() || raddr.IsMulticast() {
		return nil, sockErr("dial", "connect", pingNet(raddr.Is6()), nil, ipAddr(raddr), syscall.EINVAL)
	}
	return s.openPing("dial", laddr, raddr)
}

// ListenPing opens an unconnected ping socket bound to laddr: an
// unspecified address (of the family to ping) or one of the stack's.
func (s *Stack) ListenPing(laddr netip.Addr) (*PingConn, error) {
	if !laddr.IsValid() {
		return nil, sockErr("listen", "bind", "ping", nil, nil, syscall.EINVAL)
	}
	return s.openPing("listen", laddr, netip.Addr{})
}

func pingNet(v6 bool) string {
	if v6 {
		return "ping6"
	}
	return "ping4"
}

// ipAddr makes the *net.IPAddr of a (nil for the zero Addr).
func ipAddr(a netip.Addr) *net.IPAddr {
	if !a.IsValid() {
		return nil
	}
	return &net.IPAddr{IP: addrIP(a)}
}

func (s *Stack) openPing(op string, laddr, raddr netip.Addr) (*PingConn, error) {
	laddr = laddr.Unmap()
	v6 := laddr.Is6()
	if raddr.IsValid() {
		v6 = raddr.Is6()
		if laddr.IsValid() && laddr.Is6() != v6 {
			return nil, sockErr(op, "connect", pingNet(v6), nil, ipAddr(raddr), syscall.EAFNOSUPPORT)
		}
	}
	network := pingNet(v6)
	if s.closed.Load() {
		return nil, sockErr(op, "bind", network, nil, ipAddr(raddr), net.ErrClosed)
	}
	if laddr.IsValid() && !laddr.IsUnspecified() && !s.isLocal(laddr) {
		return nil, sockErr(op, "bind", network, nil, ipAddr(raddr), syscall.EADDRNOTAVAIL)
	}
	if raddr.IsValid() {
		if !laddr.IsValid() || laddr.IsUnspecified() {
			src, ok := s.localAddrFor(raddr)
			if !ok {
				return nil, sockErr(op, "connect", network, nil, ipAddr(raddr), syscall.ENETUNREACH)
			}
			laddr = src
		}
		if _, _, err := s.route(raddr); err != nil {
			return nil, sockErr(op, "connect", network, nil, ipAddr(raddr), err)
		}
	}
	c := &PingConn{v6: v6}
	s.pingMu.Lock()
	defer s.pingMu.Unlock()
	if s.closed.Load() {
		return nil, sockErr(op, "bind", network, nil, ipAddr(raddr), net.ErrClosed)
	}
	old := *s.pings.Load()
	// Identifiers come from the ephemeral port allocator, in a table of
	// their own (Linux ping_get_port).
	ident, ok := s.ports.pick(laddr, netip.AddrPortFrom(raddr, 0), func(p uint16) bool {
		return boundConflict(old, listenKey{addr: laddr, port: p})
	})
	if !ok {
		return nil, sockErr(op, "bind", network, nil, ipAddr(raddr), syscall.EADDRINUSE)
	}
	key := listenKey{addr: laddr, port: ident}
	var remote netip.AddrPort
	if raddr.IsValid() {
		remote = netip.AddrPortFrom(raddr, 0)
	}
	c.d.init(s, key, remote)
	next := make(map[listenKey]*PingConn, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[key] = c
	s.pings.Store(&next)
	return c, nil
}

// Ident returns the socket's echo identifier.
func (c *PingConn) Ident() uint16 { return c.d.key.port }

// LocalAddr returns the bound address (*net.IPAddr).
func (c *PingConn) LocalAddr() net.Addr { return ipAddr(c.d.key.addr) }

// RemoteAddr returns the peer of a connected socket (*net.IPAddr), nil
// otherwise.
func (c *PingConn) RemoteAddr() net.Addr {
	if !c.d.connected() {
		return nil
	}
	return ipAddr(c.d.remote.Addr())
}

func (c *PingConn) opErr(op, sc string, dst netip.Addr, err error) error {
	var a net.Addr
	if dst.IsValid() {
		a = ipAddr(dst)
	} else if c.d.connected() {
		a = ipAddr(c.d.remote.Addr())
	}
	return sockErr(op, sc, pingNet(c.v6), c.LocalAddr(), a, err)
}

// ReadFromAddr reads one echo reply (the ICMP message) into b and returns
// its sender; the excess beyond len(b) is discarded.
func (c *PingConn) ReadFromAddr(b []byte) (int, netip.Addr, error) {
	n, _, from, _, err := c.d.pop(b)
	if err != nil {
		return 0, netip.Addr{}, c.opErr("read", "recvfrom", netip.Addr{}, err)
	}
	return n, from.Addr(), nil
}

// ReadFrom implements net.PacketConn (the address is a *net.IPAddr).
func (c *PingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddr(b)
	if err != nil {
		return 0, nil, err
	}
	return n, ipAddr(from), nil
}

// Read implements net.Conn: one echo reply per call.
func (c *PingConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFromAddr(b)
	return n, err
}

// WriteToAddr sends the echo request b to dst. b is an ICMP echo request
// (ICMPv4 type 8 or ICMPv6 type 128, code 0, at least 8 bytes); its
// identifier is replaced by the socket's and its checksum computed.
func (c *PingConn) WriteToAddr(b []byte, dst netip.Addr) (int, error) {
	dst = dst.Unmap()
	if err := c.send(b, dst); err != nil {
		return 0, c.opErr("write", "sendto", dst, err)
	}
	return len(b), nil
}

// WriteTo implements net.PacketConn: addr is a *net.IPAddr, a *net.UDPAddr
// (its port ignored), or any net.Addr whose String is a literal IP. A
// connected socket sends only to its peer (EISCONN otherwise).
func (c *PingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var dst netip.Addr
	switch a := addr.(type) {
	case *net.IPAddr:
		dst, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		dst, _ = netip.AddrFromSlice(a.IP)
	case nil:
		return 0, c.opErr("write", "sendto", netip.Addr{}, syscall.EDESTADDRREQ)
	default:
		var err error
		if dst, err = netip.ParseAddr(addr.String()); err != nil {
			return 0, c.opErr("write", "sendto", netip.Addr{}, syscall.EINVAL)
		}
	}
	dst = dst.Unmap()
	if c.d.connected() && dst != c.d.remote.Addr() {
		return 0, c.opErr("write", "sendto", dst, syscall.EISCONN)
	}
	return c.WriteToAddr(b, dst)
}

// Write sends the echo request b to the peer of a connected socket.
func (c *PingConn) Write(b []byte) (int, error) {
	if !c.d.connected() {
		return 0, c.opErr("write", "write", netip.Addr{}, syscall.EDESTADDRREQ)
	}
	return c.WriteToAddr(b, c.d.remote.Addr())
}

func (c *PingConn) send(b []byte, dst netip.Addr) error {
	if err := c.d.writeCheck(); err != nil {
		return err
	}
	if !dst.IsValid() || dst.IsUnspecified() || dst.IsMulticast() || dst.Is6() != c.v6 {
		return syscall.EINVAL
	}
	// Linux ping_common_sendmsg: only echo requests, code 0.
	want, proto := ip.ICMPv4Echo, uint8(protoICMP)
	if c.v6 {
		want, proto = ip.ICMPv6EchoRequest, protoICMPv6
	}
	if len(b) < ip.ICMPHeaderLen || b[0] != want || b[1] != 0 {
		return syscall.EINVAL
	}
	s := c.d.s
	src, err := s.sourceFor(c.d.key.addr, dst)
	if err != nil {
		return err
	}
	ident := c.d.key.port
	err = s.sendDatagram(c.d.replyHint(netip.AddrPortFrom(dst, 0)), src, dst, proto, len(b), func(p []byte) {
		copy(p, b)
		binary.BigEndian.PutUint16(p[4:], ident)
		p[2], p[3] = 0, 0
		if c.v6 {
			ip.ICMPv6(p).UpdateChecksum(src.AsSlice(), dst.AsSlice())
		} else {
			ip.ICMPv4(p).UpdateChecksum()
		}
	})
	if err != nil {
		return err
	}
	s.stats.PingOutRequests.Add(1)
	return nil
}

// Close removes the socket; blocked reads return net.ErrClosed.
func (c *PingConn) Close() error {
	if !c.d.close() {
		return c.opErr("close", "close", netip.Addr{}, net.ErrClosed)
	}
	s := c.d.s
	s.pingMu.Lock()
	old := *s.pings.Load()
	if old[c.d.key] == c {
		next := make(map[listenKey]*PingConn, len(old))
		for k, v := range old {
			if v != c {
				next[k] = v
			}
		}
		s.pings.Store(&next)
	}
	s.pingMu.Unlock()
	return nil
}

// SetDeadline sets the read and write deadlines.
func (c *PingConn) SetDeadline(t time.Time) error {
	if c.d.closed.Load() {
		return c.opErr("set", "setsockopt", netip.Addr{}, net.ErrClosed)
	}
	c.d.setDeadline(t)
	return nil
}

// SetReadDeadline sets the deadline of reads.
func (c *PingConn) SetReadDeadline(t time.Time) error {
	if c.d.closed.Load() {
		return c.opErr("set", "setsockopt", netip.Addr{}, net.ErrClosed)
	}
	c.d.setReadDeadline(t)
	return nil
}

// SetWriteDeadline sets the deadline of writes (which never block).
func (c *PingConn) SetWriteDeadline(t time.Time) error {
	if c.d.closed.Load() {
		return c.opErr("set", "setsockopt", netip.Addr{}, net.ErrClosed)
	}
	c.d.wdl.set(t)
	return nil
}

// SetReadBuffer bounds the receive queue, like SO_RCVBUF.
func (c *PingConn) SetReadBuffer(bytes int) error {
	if c.d.closed.Load() {
		return c.opErr("set", "setsockopt", netip.Addr{}, net.ErrClosed)
	}
	c.d.setReadBuffer(bytes)
	return nil
}

// inputEchoReply delivers an echo reply msg from src to dst to the ping
// socket of its identifier.
func (s *Stack) inputEchoReply(l *link, src, dst netip.Addr, ident uint16, msg []byte) {
	c, ok := findBound(*s.pings.Load(), netip.AddrPortFrom(dst, ident))
	if !ok || (c.d.connected() && c.d.remote.Addr() != src) {
		s.stats.PingNoSocket.Add(1)
		return
	}
	if !c.d.push(l, netip.AddrPortFrom(src, 0), dst, msg) {
		s.stats.PingRcvBufErrors.Add(1)
		return
	}
	s.stats.PingInReplies.Add(1)
}

// pingICMPError applies an ICMP error quoting an echo request we sent from
// local with identifier ident to remote: a hard error is reported to a
// connected socket's next read or write (Linux ping_err without IP_RECVERR).
func (s *Stack) pingICMPError(local, remote netip.Addr, ident uint16, act icmpAction) {
	c, ok := findBound(*s.pings.Load(), netip.AddrPortFrom(local, ident))
	if !ok || !c.d.connected() || c.d.remote.Addr() != remote {
		s.stats.ICMPErrorsNoConn.Add(1)
		return
	}
	if !act.fatal {
		s.stats.ICMPErrorsSoft.Add(1)
		return
	}
	s.stats.PingICMPErrors.Add(1)
	c.d.setErr(act.err)
}
