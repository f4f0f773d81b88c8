package stack

import (
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/ip"
)

const protoUDP = 17

// UDPConn is a UDP socket of a Stack (RFC 768). It implements net.Conn and
// net.PacketConn with the methods of *net.UDPConn: a socket made by
// ListenUDP sends anywhere with WriteTo; one made by DialUDP is connected
// and takes only its peer's datagrams, and an ICMP port unreachable in
// answer to it makes its next read or write fail with ECONNREFUSED, as on
// Linux. Received datagrams wait in a bounded queue
// (Options.DatagramReceiveBuffer, SetReadBuffer); beyond it they are dropped
// and counted (udp_rcvbuf_errors). Errors are *net.OpError as the net
// package returns them: net.ErrClosed after Close, os.ErrDeadlineExceeded,
// *os.SyscallError with an errno.
type UDPConn struct {
	d       datagramSocket
	network string
}

var (
	_ net.Conn       = (*UDPConn)(nil)
	_ net.PacketConn = (*UDPConn)(nil)
)

// udpAddr makes the *net.UDPAddr of a (nil IP for the zero Addr: any).
func udpAddr(a netip.AddrPort) *net.UDPAddr {
	return &net.UDPAddr{IP: addrIP(a.Addr()), Port: int(a.Port())}
}

// ListenUDP opens an unconnected UDP socket bound to laddr: the zero Addr
// receives on every address of both families, an unspecified address on
// every address of its family, otherwise laddr must be one of the stack's
// addresses; port 0 picks an ephemeral port from the allocator Dial uses.
func (s *Stack) ListenUDP(laddr netip.AddrPort) (*UDPConn, error) {
	network := "udp"
	if a := laddr.Addr(); a.IsValid() {
		network = "udp6"
		if a.Unmap().Is4() {
			network = "udp4"
		}
	}
	return s.openUDP("listen", network, laddr, netip.AddrPort{})
}

// DialUDP opens a UDP socket connected to raddr: Write sends to it, Read
// returns only its datagrams. laddr may be zero (our address towards raddr
// and an ephemeral port) or name the local address and port. Without a
// raddr it is ListenUDP(laddr), as in wireguard's netstack.
func (s *Stack) DialUDP(laddr, raddr netip.AddrPort) (*UDPConn, error) {
	if !raddr.Addr().IsValid() {
		return s.ListenUDP(laddr)
	}
	network := "udp4"
	if !raddr.Addr().Unmap().Is4() {
		network = "udp6"
	}
	return s.openUDP("dial", network, laddr, raddr)
}

// ListenPacket is net.ListenPacket for UDP: network is "udp", "udp4" or
// "udp6"; address is "host:port", where host is empty, an unspecified
// address or one of the stack's addresses, and port 0 picks a free port.
func (s *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	opErr := func(err error) error { return &net.OpError{Op: "listen", Net: network, Err: err} }
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, opErr(net.UnknownNetworkError(network))
	}
	bind, err := parseBindAddr(network, address)
	if err != nil {
		return nil, opErr(err)
	}
	c, err := s.openUDP("listen", network, bind, netip.AddrPort{})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// openUDP binds a socket to laddr (connected to raddr if valid) and enters
// it in the UDP table.
func (s *Stack) openUDP(op, network string, laddr, raddr netip.AddrPort) (*UDPConn, error) {
	laddr = netip.AddrPortFrom(laddr.Addr().Unmap(), laddr.Port())
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	fail := func(err error) error {
		var dst net.Addr
		if raddr.Addr().IsValid() {
			dst = udpAddr(raddr)
		}
		return sockErr(op, "bind", network, nil, dst, err)
	}
	if s.closed.Load() {
		return nil, fail(net.ErrClosed)
	}
	la := laddr.Addr()
	if raddr.Addr().IsValid() {
		r := raddr.Addr()
		if r.IsUnspecified() || r.IsMulticast() || raddr.Port() == 0 {
			return nil, sockErr(op, "connect", network, nil, udpAddr(raddr), syscall.EINVAL)
		}
		if la.IsValid() && !la.IsUnspecified() && la.Is4() != r.Is4() {
			return nil, sockErr(op, "connect", network, nil, udpAddr(raddr), syscall.EAFNOSUPPORT)
		}
		if !la.IsValid() || la.IsUnspecified() {
			// connect(2) fixes the source address (Linux ip4_datagram_connect).
			src, ok := s.localAddrFor(r)
			if !ok {
				return nil, sockErr(op, "connect", network, nil, udpAddr(raddr), syscall.ENETUNREACH)
			}
			la = src
		}
		if _, _, err := s.route(r); err != nil {
			return nil, sockErr(op, "connect", network, nil, udpAddr(raddr), err)
		}
	}
	if la.IsValid() && !la.IsUnspecified() && !s.isLocal(la) {
		return nil, fail(syscall.EADDRNOTAVAIL)
	}
	c := &UDPConn{network: network}
	s.udpMu.Lock()
	defer s.udpMu.Unlock()
	if s.closed.Load() {
		return nil, fail(net.ErrClosed)
	}
	old := *s.udp.Load()
	port := laddr.Port()
	if port == 0 {
		p, ok := s.ports.pick(la, raddr, func(p uint16) bool {
			return boundConflict(old, listenKey{addr: la, port: p})
		})
		if !ok {
			s.stats.UDPPortsExhausted.Add(1)
			return nil, fail(syscall.EADDRINUSE)
		}
		port = p
	}
	key := listenKey{addr: la, port: port}
	if boundConflict(old, key) {
		return nil, fail(syscall.EADDRINUSE)
	}
	c.d.init(s, key, raddr)
	next := make(map[listenKey]*UDPConn, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[key] = c
	s.udp.Store(&next)
	return c, nil
}

// localAddrPort is the bound address as the socket reports it.
func (c *UDPConn) localAddrPort() netip.AddrPort {
	return netip.AddrPortFrom(c.d.key.addr, c.d.key.port)
}

// LocalAddr returns the bound address (*net.UDPAddr).
func (c *UDPConn) LocalAddr() net.Addr { return udpAddr(c.localAddrPort()) }

// RemoteAddr returns the peer of a connected socket (*net.UDPAddr), nil
// otherwise.
func (c *UDPConn) RemoteAddr() net.Addr {
	if !c.d.connected() {
		return nil
	}
	return udpAddr(c.d.remote)
}

// LocalAddrPort returns the bound address.
func (c *UDPConn) LocalAddrPort() netip.AddrPort { return c.localAddrPort() }

func (c *UDPConn) opErr(op, sc string, dst netip.AddrPort, err error) error {
	var a net.Addr
	if dst.Addr().IsValid() {
		a = udpAddr(dst)
	} else if c.d.connected() {
		a = udpAddr(c.d.remote)
	}
	return sockErr(op, sc, c.network, c.LocalAddr(), a, err)
}

// ReadMsgUDPAddrPort reads one datagram into b; oob receives no control
// messages (oobn is 0). flags has syscall.MSG_TRUNC when b was too short
// for the datagram, whose excess is discarded.
func (c *UDPConn) ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	n, full, from, _, err := c.d.pop(b)
	if err != nil {
		return 0, 0, 0, addr, c.opErr("read", "recvmsg", netip.AddrPort{}, err)
	}
	if full > n {
		flags |= syscall.MSG_TRUNC
	}
	return n, 0, flags, from, nil
}

// ReadFromUDPAddrPort reads one datagram into b (its excess beyond len(b)
// is discarded) and returns its sender.
func (c *UDPConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, _, from, _, err := c.d.pop(b)
	if err != nil {
		return 0, netip.AddrPort{}, c.opErr("read", "recvfrom", netip.AddrPort{}, err)
	}
	return n, from, nil
}

// ReadFromUDP is ReadFromUDPAddrPort with a *net.UDPAddr.
func (c *UDPConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, udpAddr(from), nil
}

// ReadFrom implements net.PacketConn (the address is a *net.UDPAddr).
func (c *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, udpAddr(from), nil
}

// Read implements net.Conn: one datagram per call.
func (c *UDPConn) Read(b []byte) (int, error) {
	n, _, _, _, err := c.d.pop(b)
	if err != nil {
		return 0, c.opErr("read", "read", netip.AddrPort{}, err)
	}
	return n, nil
}

// Write sends b as one datagram to the peer of a connected socket.
func (c *UDPConn) Write(b []byte) (int, error) {
	if !c.d.connected() {
		return 0, c.opErr("write", "write", netip.AddrPort{}, syscall.EDESTADDRREQ)
	}
	if err := c.send(b, c.d.remote); err != nil {
		return 0, c.opErr("write", "write", netip.AddrPort{}, err)
	}
	return len(b), nil
}

// WriteToUDPAddrPort sends b as one datagram to addr. A connected socket
// refuses it (as net.UDPConn does: net.ErrWriteToConnected).
func (c *UDPConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if c.d.connected() {
		return 0, &net.OpError{Op: "write", Net: c.network, Source: c.LocalAddr(), Addr: udpAddr(addr), Err: net.ErrWriteToConnected}
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if err := c.send(b, addr); err != nil {
		return 0, c.opErr("write", "sendto", addr, err)
	}
	return len(b), nil
}

// WriteMsgUDPAddrPort is WriteToUDPAddrPort; oob must be empty (no control
// messages are supported).
func (c *UDPConn) WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error) {
	if len(oob) > 0 {
		return 0, 0, c.opErr("write", "sendmsg", addr, syscall.EOPNOTSUPP)
	}
	if c.d.connected() && !addr.IsValid() {
		n, err = c.Write(b)
		return n, 0, err
	}
	n, err = c.WriteToUDPAddrPort(b, addr)
	return n, 0, err
}

// WriteToUDP is WriteToUDPAddrPort with a *net.UDPAddr.
func (c *UDPConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if addr == nil {
		return 0, c.opErr("write", "sendto", netip.AddrPort{}, syscall.EDESTADDRREQ)
	}
	return c.WriteToUDPAddrPort(b, addr.AddrPort())
}

// WriteTo implements net.PacketConn: addr is a *net.UDPAddr (or any
// net.Addr whose String is "host:port" with a literal IP).
func (c *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	switch a := addr.(type) {
	case *net.UDPAddr:
		return c.WriteToUDP(b, a)
	case nil:
		return 0, c.opErr("write", "sendto", netip.AddrPort{}, syscall.EDESTADDRREQ)
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return 0, &net.OpError{Op: "write", Net: c.network, Source: c.LocalAddr(), Addr: addr, Err: syscall.EINVAL}
		}
		return c.WriteToUDPAddrPort(b, ap)
	}
}

// send builds the datagram and hands it to IP.
func (c *UDPConn) send(b []byte, to netip.AddrPort) error {
	if err := c.d.writeCheck(); err != nil {
		return err
	}
	s := c.d.s
	dst := to.Addr()
	if !dst.IsValid() || dst.IsUnspecified() || to.Port() == 0 {
		return syscall.EINVAL
	}
	if c.network == "udp4" && !dst.Is4() || c.network == "udp6" && dst.Is4() {
		return syscall.EAFNOSUPPORT
	}
	if dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return syscall.ENETUNREACH // no multicast or broadcast on a point-to-point TUN
	}
	src, err := s.sourceFor(c.d.key.addr, dst)
	if err != nil {
		return err
	}
	if len(b) > 0xffff-ip.UDPHeaderLen {
		return syscall.EMSGSIZE
	}
	n := ip.UDPHeaderLen + len(b)
	sport := c.d.key.port
	err = s.sendDatagram(c.d.replyHint(to), src, dst, protoUDP, n, func(p []byte) {
		copy(p[ip.UDPHeaderLen:], b)
		ip.PutUDPHeader(p[:n], sport, to.Port(), src.AsSlice(), dst.AsSlice())
	})
	if err != nil {
		return err
	}
	s.stats.UDPOutDatagrams.Add(1)
	return nil
}

// Close removes the socket from the table; blocked reads return
// net.ErrClosed.
func (c *UDPConn) Close() error {
	if !c.d.close() {
		return c.opErr("close", "close", netip.AddrPort{}, net.ErrClosed)
	}
	s := c.d.s
	s.udpMu.Lock()
	old := *s.udp.Load()
	if old[c.d.key] == c {
		next := make(map[listenKey]*UDPConn, len(old))
		for k, v := range old {
			if v != c {
				next[k] = v
			}
		}
		s.udp.Store(&next)
	}
	s.udpMu.Unlock()
	return nil
}

// SetDeadline sets the read and write deadlines.
func (c *UDPConn) SetDeadline(t time.Time) error {
	if c.d.closed.Load() {
		return c.opErr("set", "setsockopt", netip.AddrPort{}, net.ErrClosed)
	}
	c.d.setDeadline(t)
	return nil
}

// SetReadDeadline sets the deadline of reads; the zero time clears it.
func (c *UDPConn) SetReadDeadline(t time.Time) error {
	if c.d.closed.Load() {
		return c.opErr("set", "setsockopt", netip.AddrPort{}, net.ErrClosed)
	}
	c.d.setReadDeadline(t)
	return nil
}

// SetWriteDeadline sets the deadline of writes (which never block: it only
// makes them fail once passed).
func (c *UDPConn) SetWriteDeadline(t time.Time) error {
	if c.d.closed.Load() {
		return c.opErr("set", "setsockopt", netip.AddrPort{}, net.ErrClosed)
	}
	c.d.wdl.set(t)
	return nil
}

// SetReadBuffer bounds the receive queue to bytes (datagram data plus a
// fixed overhead per datagram), like SO_RCVBUF.
func (c *UDPConn) SetReadBuffer(bytes int) error {
	if c.d.closed.Load() {
		return c.opErr("set", "setsockopt", netip.AddrPort{}, net.ErrClosed)
	}
	c.d.setReadBuffer(bytes)
	return nil
}

// UDPSnapshot describes one UDP socket (for ss -u).
type UDPSnapshot struct {
	Local, Remote netip.AddrPort // Remote is zero for an unconnected socket
	RecvQueue     int            // bytes charged to the receive queue
	Datagrams     int            // datagrams waiting
}

// UDPSockets returns a snapshot of every UDP socket.
func (s *Stack) UDPSockets() []UDPSnapshot {
	var out []UDPSnapshot
	for _, c := range *s.udp.Load() {
		c.d.mu.Lock()
		out = append(out, UDPSnapshot{Local: c.localAddrPort(), Remote: c.d.remote, RecvQueue: c.d.bytes, Datagrams: len(c.d.q) - c.d.head})
		c.d.mu.Unlock()
	}
	return out
}

// closeDatagramSockets closes every UDP and ping socket (Stack.Close).
func (s *Stack) closeDatagramSockets() {
	// The tables are read under their locks, after Close set closed:
	// openUDP and openPing check closed again under the same locks, so a
	// socket is either in the snapshot or refused.
	s.udpMu.Lock()
	udp := *s.udp.Load()
	s.udpMu.Unlock()
	for _, c := range udp {
		_ = c.Close()
	}
	s.pingMu.Lock()
	pings := *s.pings.Load()
	s.pingMu.Unlock()
	for _, c := range pings {
		_ = c.Close()
	}
}
