package stack

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
)

// Route sends packets for the destinations in Prefix over one of the
// stack's links (Options.Routes).
type Route struct {
	// Prefix is the destinations the route covers; 0.0.0.0/0 or ::/0 is
	// a default route. The longest prefix that contains a destination
	// wins, as in the kernel's FIB.
	Prefix netip.Prefix
	// Link is the index of the link in Options.Links.
	Link int
	// Via is the next hop (a gateway); the zero Addr means the
	// destination is on the link itself. A TUN or a pipe is point to
	// point and has no link layer, so the packet is the same either
	// way; route returns the next hop for links that will need it.
	Via netip.Addr
}

// String formats r as `ip route` does: "10.0.0.0/8 via 198.18.0.1 link 1".
func (r Route) String() string {
	s := r.Prefix.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	return fmt.Sprintf("%s link %d", s, r.Link)
}

// routeTable is the stack's routes, longest prefix first (so the first
// match is the longest), IPv4 and IPv6 together.
type routeTable []Route

// newRouteTable validates routes against nLinks links and orders them for
// lookup.
func newRouteTable(routes []Route, nLinks int) (routeTable, error) {
	t := make(routeTable, 0, len(routes))
	seen := map[netip.Prefix]bool{}
	for i, r := range routes {
		if !r.Prefix.IsValid() {
			return nil, fmt.Errorf("stack: Routes[%d]: no prefix", i)
		}
		if r.Prefix.Addr().Is4In6() {
			return nil, fmt.Errorf("stack: Routes[%d] (%v): write an IPv4 prefix as IPv4", i, r.Prefix)
		}
		r.Prefix = r.Prefix.Masked()
		if r.Link < 0 || r.Link >= nLinks {
			return nil, fmt.Errorf("stack: Routes[%d] (%v): link %d, but there are %d links in Options.Links", i, r.Prefix, r.Link, nLinks)
		}
		if r.Via.IsValid() {
			r.Via = r.Via.Unmap()
			if r.Via.Is4() != r.Prefix.Addr().Is4() || r.Via.IsUnspecified() || r.Via.IsMulticast() {
				return nil, fmt.Errorf("stack: Routes[%d] (%v): gateway %v is not a unicast address of the prefix's family", i, r.Prefix, r.Via)
			}
		}
		if seen[r.Prefix] {
			return nil, fmt.Errorf("stack: Routes[%d]: a second route for %v", i, r.Prefix)
		}
		seen[r.Prefix] = true
		t = append(t, r)
	}
	slices.SortStableFunc(t, func(a, b Route) int { return cmp.Compare(b.Prefix.Bits(), a.Prefix.Bits()) })
	return t, nil
}

// lookup returns the route for dst (unmapped), the longest match.
func (t routeTable) lookup(dst netip.Addr) (Route, bool) {
	for _, r := range t {
		if r.Prefix.Contains(dst) {
			return r, true
		}
	}
	return Route{}, false
}

// route picks the link a packet to dst leaves by and its next hop: the
// longest-prefix route of Options.Routes, and without routes the only
// link, if there is just one. Otherwise (no route matches, or several
// links and no routes) the error is ENETUNREACH, as connect(2) and
// sendto(2) report it. Every sender of locally originated packets (Dial,
// UDP) takes its link from here.
func (s *Stack) route(dst netip.Addr) (*link, netip.Addr, error) {
	dst = dst.Unmap()
	links := *s.ifaces.Load()
	if len(s.routes) == 0 {
		if len(links) == 1 {
			return links[0], dst, nil
		}
		return nil, netip.Addr{}, syscall.ENETUNREACH
	}
	r, ok := s.routes.lookup(dst)
	if !ok || r.Link >= len(links) {
		return nil, netip.Addr{}, syscall.ENETUNREACH
	}
	hop := dst
	if r.Via.IsValid() {
		hop = r.Via
	}
	return links[r.Link], hop, nil
}

// replyLink is the link a reply to dst leaves by when the packet it answers
// came in on in: the route to dst when there is one (a client behind
// another link's gateway is answered over that link), else in itself.
func (s *Stack) replyLink(in *link, dst netip.Addr) *link {
	if len(s.routes) == 0 {
		return in
	}
	if l, _, err := s.route(dst); err == nil {
		if l.q != nil && l.q == in.q {
			return in // the same interface: stay on the queue
		}
		return l
	}
	return in
}

// Routes returns the stack's routing table, longest prefix first.
func (s *Stack) Routes() []Route { return slices.Clone(s.routes) }
