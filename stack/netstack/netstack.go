// Package netstack is a drop-in for golang.zx2c4.com/wireguard/tun/netstack
// built on ustack instead of gVisor: CreateNetTUN returns a tun.Device for
// wireguard-go to drive and a *Net whose methods have the names and
// parameters of wireguard's, returning ustack's net.Conn, net.Listener and
// net.PacketConn implementations. A program that uses the results through
// the net interfaces changes its import line and nothing else.
package netstack

import (
	"errors"
	"fmt"
	"net/netip"

	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun"
)

// Net is the socket side of a device made by CreateNetTUN: dial, listen and
// resolve names through the tunnel.
type Net struct {
	stack        *stack.Stack
	dev          *netTUN
	dnsServers   []netip.Addr
	hasV4, hasV6 bool
	dns          resolver // LookupHost's configuration and counters
}

// CreateNetTUN makes a userspace network endpoint with the given addresses
// and MTU: the tun.Device to hand to wireguard-go's device.NewDevice, and
// the *Net to open connections with. dnsServers are the resolvers
// LookupHost asks (through the tunnel).
func CreateNetTUN(localAddresses, dnsServers []netip.Addr, mtu int) (wgtun.Device, *Net, error) {
	return createNetTUN(localAddresses, dnsServers, mtu, stack.Options{})
}

// createNetTUN is CreateNetTUN with stack options (tests set the clock or
// limits); Links and Addrs are filled in here.
func createNetTUN(localAddresses, dnsServers []netip.Addr, mtu int, opts stack.Options) (wgtun.Device, *Net, error) {
	if mtu < 576 || mtu > tun.MaxPacketSize {
		return nil, nil, fmt.Errorf("netstack: MTU %d out of range [576, %d]", mtu, tun.MaxPacketSize)
	}
	if len(localAddresses) == 0 {
		return nil, nil, errors.New("netstack: no local addresses")
	}
	n := &Net{}
	for _, a := range localAddresses {
		a = a.Unmap()
		if a.Is4() {
			n.hasV4 = true
		} else {
			n.hasV6 = true
		}
		opts.Addrs = append(opts.Addrs, a)
	}
	for _, a := range dnsServers {
		n.dnsServers = append(n.dnsServers, a.Unmap())
	}
	link, far := newStackLink(mtu)
	opts.Links = []tun.Link{link}
	s, err := stack.New(opts)
	if err != nil {
		_ = far.Close()
		return nil, nil, fmt.Errorf("netstack: %w", err)
	}
	d := &netTUN{end: far, stack: s, mtu: mtu, events: make(chan wgtun.Event, 1)}
	d.events <- wgtun.EventUp
	n.stack, n.dev = s, d
	return d, n, nil
}

// Stack returns the ustack stack behind n, for its counters and
// connection table.
func (n *Net) Stack() *stack.Stack { return n.stack }
