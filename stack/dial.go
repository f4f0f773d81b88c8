package stack

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/ustack-net/ustack/tcp"
)

// Dial connects to address on network ("tcp", "tcp4", "tcp6"), like
// net.Dial. address is "host:port"; a host name is resolved with the
// process's resolver.
func (s *Stack) Dial(network, address string) (net.Conn, error) {
	return s.DialContext(context.Background(), network, address)
}

// DialContext is Dial with a context: cancelling it (or its deadline)
// abandons the connect and returns the context's error in a *net.OpError.
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Err: err}
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, opErr(net.UnknownNetworkError(network))
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, opErr(err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		if p, lerr := net.DefaultResolver.LookupPort(ctx, network, portStr); lerr == nil {
			port = uint64(p)
		} else {
			return nil, opErr(&net.AddrError{Err: "invalid port", Addr: address})
		}
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil {
			return nil, opErr(lerr)
		}
		found := false
		for _, a := range addrs {
			a = a.Unmap()
			if !familyFits(network, a) {
				continue
			}
			if _, ok := s.localAddrFor(a); ok {
				addr, found = a, true
				break
			}
		}
		if !found {
			return nil, opErr(&net.AddrError{Err: "no suitable address found", Addr: host})
		}
	}
	addr = addr.Unmap()
	if !familyFits(network, addr) {
		return nil, opErr(&net.AddrError{Err: "address family mismatch", Addr: host})
	}
	c, err := s.DialAddrPort(ctx, netip.AddrPortFrom(addr, uint16(port)))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialAddrPort connects to remote and returns the concrete *Conn.
func (s *Stack) DialAddrPort(ctx context.Context, remote netip.AddrPort) (*Conn, error) {
	raddr := &net.TCPAddr{IP: addrIP(remote.Addr()), Port: int(remote.Port())}
	fail := func(laddr *net.TCPAddr, err error) error {
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError("connect", errno)
		}
		return &net.OpError{Op: "dial", Net: "tcp", Source: laddr, Addr: raddr, Err: err}
	}
	ep, err := s.startDial(remote, nil)
	if err != nil {
		return nil, fail(nil, err)
	}
	c := newConn(ep)

	for {
		ep.sh.mu.Lock()
		st := ep.tc.State()
		err := ep.err()
		removed := ep.removed
		ep.sh.mu.Unlock()
		switch {
		case err != nil:
			return nil, fail(tcpAddr(ep.id.local), err)
		case st != tcp.StateSynSent && st != tcp.StateSynReceived && st != tcp.StateClosed:
			// ESTABLISHED, or already further (the peer's FIN may have
			// come with its SYN-ACK): the connect succeeded.
			return c, nil
		case removed:
			return nil, fail(tcpAddr(ep.id.local), syscall.ECONNABORTED)
		}
		select {
		case <-ep.wrWake:
		case <-ctx.Done():
			// connect(2) interrupted: the half-open connection is
			// dropped without a RST (RFC 9293 §3.10.4, ABORT in
			// SYN-SENT: "delete the TCB").
			ep.sh.mu.Lock()
			if !ep.removed {
				ep.stackErr = ctx.Err()
				s.removeEP(ep)
			}
			ep.sh.mu.Unlock()
			return nil, fail(tcpAddr(ep.id.local), ctx.Err())
		}
	}
}

// StartDial begins an active open to remote and returns at once, as
// connect(2) on a non-blocking socket does: the SYN is queued, and State
// and Err tell how the handshake goes (Read and Write wait for it, or
// return at once under a passed deadline). cfg, when not nil, replaces the
// stack's TCP configuration for this connection, as socket options set
// before connect do (the stack still bounds the MSS by the link, sizes GSO
// and sets the timestamp offset; Memory is the stack's budget).
func (s *Stack) StartDial(remote netip.AddrPort, cfg *tcp.Config) (*Conn, error) {
	ep, err := s.startDial(remote, cfg)
	if err != nil {
		raddr := &net.TCPAddr{IP: addrIP(remote.Addr()), Port: int(remote.Port())}
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError("connect", errno)
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: raddr, Err: err}
	}
	return newConn(ep), nil
}

// startDial picks a local port, inserts a SYN-SENT connection to remote
// and sends its SYN; the error is an errno or net.ErrClosed.
func (s *Stack) startDial(remote netip.AddrPort, base *tcp.Config) (*endpoint, error) {
	if s.closed.Load() {
		return nil, net.ErrClosed
	}
	if !remote.Addr().IsValid() || remote.Addr().IsUnspecified() || remote.Addr().IsMulticast() || remote.Port() == 0 {
		return nil, syscall.EINVAL
	}
	local, ok := s.localAddrFor(remote.Addr())
	if !ok {
		return nil, syscall.ENETUNREACH
	}
	l, _, err := s.route(remote.Addr())
	if err != nil {
		return nil, err
	}
	if s.nconns.Load() >= int64(s.opts.MaxConns) {
		s.stats.TCPMaxConns.Add(1)
		return nil, syscall.EAGAIN
	}

	// Pick the port and insert the connection under the shard lock in one
	// step, so two Dials cannot take the same 4-tuple. The allocator's
	// lock is not held meanwhile (see pick): only the shard's is, as for
	// any other call into a Conn.
	var ep *endpoint
	closed := false
	now := s.clock.Now()
	_, ok = s.ports.pick(local, remote, func(port uint16) bool {
		id := tuple{local: netip.AddrPortFrom(local, port), remote: remote}
		if s.findListener(id.local) != nil {
			return true
		}
		sh := s.shardFor(id)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if s.closed.Load() {
			// Stack.Close set closed before it swept this shard: a
			// connection inserted now would never be swept.
			closed = true
			return false
		}
		if sh.conns[id.key()] != nil {
			return true
		}
		cfg := s.connConfigFrom(base, l, id)
		tc := tcp.Dial(now, cfg, s.isn.isn(now, id.local, id.remote))
		ep = newEndpoint(s, sh, id, l.queueFor(sh), tc, &cfg)
		waitCh(&ep.wrWake) // Dial waits on it for the handshake
		s.insert(ep)
		s.stats.TCPActiveOpens.Add(1)
		tc.Output(now, ep)
		s.afterOp(ep, now)
		return false
	})
	if closed {
		return nil, net.ErrClosed
	}
	if !ok {
		s.stats.TCPPortsExhausted.Add(1)
		return nil, syscall.EADDRNOTAVAIL
	}
	s.kickLinks()
	return ep, nil
}

// familyFits reports whether address a may be used with network: "tcp4"
// takes only IPv4, "tcp6" only IPv6, "tcp" either.
func familyFits(network string, a netip.Addr) bool {
	switch network {
	case "tcp4", "udp4":
		return a.Is4()
	case "tcp6", "udp6":
		return !a.Is4()
	}
	return true
}

// parseBindAddr parses the "host:port" of a Listen or ListenPacket on
// network ("tcp"/"udp" with an optional 4 or 6), as net.Listen reads it: an
// empty host is the unspecified address of a 4 or 6 network (none for the
// dual-stack one), a literal must fit the family, and port 0 is kept for the
// caller to pick. The error is the one net.Listen puts in its *net.OpError.
func parseBindAddr(network, address string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return netip.AddrPort{}, &net.AddrError{Err: "invalid port", Addr: address}
	}
	var addr netip.Addr
	switch {
	case host == "" && strings.HasSuffix(network, "4"):
		addr = netip.IPv4Unspecified()
	case host == "" && strings.HasSuffix(network, "6"):
		addr = netip.IPv6Unspecified()
	case host == "":
	default:
		a, err := netip.ParseAddr(host)
		if err != nil {
			return netip.AddrPort{}, &net.AddrError{Err: "not an IP address", Addr: host}
		}
		addr = a.Unmap()
		if !familyFits(network, addr) {
			return netip.AddrPort{}, &net.AddrError{Err: "address family mismatch", Addr: host}
		}
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
