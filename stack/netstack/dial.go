package netstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Errors in a Dial's *net.OpError, worded as the net package words them.
var (
	errNoSuitableAddress = errors.New("no suitable address found")
	errMissingAddress    = errors.New("missing address")
)

// Dial connects to address on network, like net.Dial. See DialContext.
func (n *Net) Dial(network, address string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, address)
}

// DialContext connects to address on network, as wireguard's netstack
// does: "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6" with a "host:port"
// address (a *stack.Conn or a connected *stack.UDPConn), or "ping",
// "ping4", "ping6" with a bare host (a connected *stack.PingConn). A host
// name is resolved with LookupContextHost and its addresses of the
// network's family are tried in order until one connects, each with an
// equal share of what is left of ctx's deadline (2 s at least), as the
// net package shares it. Errors are *net.OpError; the first address's
// error is returned when none connects.
func (n *Net) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if ctx == nil {
		panic("netstack: nil context")
	}
	opErr := func(err error) error { return &net.OpError{Op: "dial", Net: network, Err: err} }
	proto, want4, want6, ok := splitNetwork(network)
	if !ok {
		return nil, opErr(net.UnknownNetworkError(network))
	}
	host, port := address, 0
	if proto != "ping" {
		h, sport, err := net.SplitHostPort(address)
		if err != nil {
			return nil, opErr(err)
		}
		p, err := strconv.ParseUint(sport, 10, 16)
		if err != nil {
			return nil, opErr(&net.AddrError{Err: "invalid port", Addr: address})
		}
		host, port = h, int(p)
	}
	if host == "" {
		return nil, opErr(errMissingAddress)
	}
	names, err := n.LookupContextHost(ctx, host)
	if err != nil {
		return nil, opErr(err)
	}
	var addrs []netip.AddrPort
	for _, s := range names {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		a = a.Unmap()
		if a.Is4() && want4 || a.Is6() && want6 {
			addrs = append(addrs, netip.AddrPortFrom(a, uint16(port)))
		}
	}
	if len(addrs) == 0 {
		return nil, opErr(&net.AddrError{Err: errNoSuitableAddress.Error(), Addr: host})
	}
	var firstErr error
	for i, a := range addrs {
		if err := ctx.Err(); err != nil {
			return nil, opErr(contextDialErr(err))
		}
		dctx := ctx
		if deadline, ok := ctx.Deadline(); ok {
			part, err := partialDeadline(time.Now(), deadline, len(addrs)-i)
			if err != nil {
				if firstErr == nil {
					firstErr = opErr(err)
				}
				break
			}
			if part.Before(deadline) {
				var cancel context.CancelFunc
				dctx, cancel = context.WithDeadline(ctx, part)
				defer cancel()
			}
		}
		c, err := n.dialOne(dctx, proto, a)
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// splitNetwork parses "tcp", "udp" or "ping" with an optional "4" or "6".
func splitNetwork(network string) (proto string, want4, want6, ok bool) {
	for _, p := range []string{"tcp", "udp", "ping"} {
		switch network {
		case p:
			return p, true, true, true
		case p + "4":
			return p, true, false, true
		case p + "6":
			return p, false, true, true
		}
	}
	return "", false, false, false
}

// dialOne connects to one address (the port unused for ping), keeping a
// typed nil out of the net.Conn.
func (n *Net) dialOne(ctx context.Context, proto string, a netip.AddrPort) (net.Conn, error) {
	switch proto {
	case "tcp":
		c, err := n.stack.DialAddrPort(ctx, a)
		if err != nil {
			return nil, err
		}
		return c, nil
	case "udp":
		c, err := n.stack.DialUDP(netip.AddrPort{}, a)
		if err != nil {
			return nil, err
		}
		return c, nil
	default:
		c, err := n.stack.DialPing(netip.Addr{}, a.Addr())
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// contextDialErr is the net package's error for a dial whose context
// ended: errors.Is finds the context's error in it.
func contextDialErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &dialTimeoutError{}
	}
	return &dialCanceledError{}
}

// dialTimeoutError is "i/o timeout" that errors.Is matches with
// context.DeadlineExceeded, as the net package's is.
type dialTimeoutError struct{ timeoutError }

func (*dialTimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// dialCanceledError is "operation was canceled", matching context.Canceled.
type dialCanceledError struct{}

func (*dialCanceledError) Error() string        { return errCanceled.Error() }
func (*dialCanceledError) Is(target error) bool { return target == context.Canceled }

// partialDeadline is the deadline of one of addrsRemaining attempts that
// share what is left until deadline: an equal share, but no less than 2 s
// (or all that is left, when that is less).
func partialDeadline(now, deadline time.Time, addrsRemaining int) (time.Time, error) {
	left := deadline.Sub(now)
	if left <= 0 {
		return time.Time{}, &dialTimeoutError{}
	}
	const saneMinimum = 2 * time.Second
	share := left / time.Duration(addrsRemaining)
	if share < saneMinimum {
		share = min(left, saneMinimum)
	}
	return now.Add(share), nil
}
