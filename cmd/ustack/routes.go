package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ustack-net/ustack/stack"
)

// repeatedFlag collects the values of a flag given several times.
type repeatedFlag []string

func (r *repeatedFlag) String() string     { return strings.Join(*r, " ") }
func (r *repeatedFlag) Set(v string) error { *r = append(*r, v); return nil }

// extraLink is one --link: a further TUN device with the kernel side's
// addresses on it.
type extraLink struct {
	name      string
	hostAddrs []netip.Prefix
}

// parseLink parses --link NAME,host-addr=PREFIX[,host-addr6=PREFIX].
func parseLink(v string) (extraLink, error) {
	parts := strings.Split(v, ",")
	l := extraLink{name: parts[0]}
	bad := func(why string) (extraLink, error) {
		return extraLink{}, fmt.Errorf("--link %q: %s (want NAME,host-addr=PREFIX[,host-addr6=PREFIX], e.g. ustack1,host-addr=198.18.1.1/24)", v, why)
	}
	if !validTUNName(l.name) {
		return bad("the device name must be 1-15 characters without '/', ',' or spaces")
	}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok || (k != "host-addr" && k != "host-addr6") || seen[k] {
			return bad(fmt.Sprintf("%q is not host-addr=PREFIX or host-addr6=PREFIX, once each", p))
		}
		seen[k] = true
		pfx, err := netip.ParsePrefix(val)
		if err != nil {
			return bad(fmt.Sprintf("%s %q: want an address with a prefix length", k, val))
		}
		if pfx.Addr().Is4() != (k == "host-addr") {
			return bad(fmt.Sprintf("%s %s: wrong family", k, pfx))
		}
		l.hostAddrs = append(l.hostAddrs, pfx)
	}
	if len(l.hostAddrs) == 0 {
		return bad("no host-addr or host-addr6")
	}
	return l, nil
}

// validTUNName reports whether s can name a network interface.
func validTUNName(s string) bool {
	return s != "" && len(s) <= 15 && !strings.ContainsAny(s, "/, \t")
}

// parseRoute parses --route PREFIX[,via=GW][,link=NAME|N]; names are the
// devices in order (--tun is link 0, the --link devices 1, 2, ...).
func parseRoute(v string, names []string) (stack.Route, error) {
	parts := strings.Split(v, ",")
	bad := func(why string) (stack.Route, error) {
		return stack.Route{}, fmt.Errorf("--route %q: %s (want PREFIX[,via=GATEWAY][,link=NAME|N], e.g. 198.19.0.0/16,via=198.18.1.1,link=ustack1)", v, why)
	}
	pfx, err := netip.ParsePrefix(parts[0])
	if err != nil {
		return bad("the first part must be a prefix such as 10.0.0.0/8 or 0.0.0.0/0")
	}
	if pfx.Addr().Is4In6() {
		return bad("write an IPv4 prefix as IPv4")
	}
	r := stack.Route{Prefix: pfx.Masked()}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok || (k != "via" && k != "link") || seen[k] {
			return bad(fmt.Sprintf("%q is not via=GATEWAY or link=NAME|N, once each", p))
		}
		seen[k] = true
		switch k {
		case "via":
			gw, err := netip.ParseAddr(val)
			if err != nil || gw.Is4() != pfx.Addr().Is4() || gw.IsUnspecified() || gw.IsMulticast() {
				return bad(fmt.Sprintf("via %q: want a unicast address of the prefix's family", val))
			}
			r.Via = gw
		case "link":
			r.Link = -1
			for i, n := range names {
				if n == val {
					r.Link = i
				}
			}
			if i, err := strconv.Atoi(val); r.Link < 0 && err == nil && i >= 0 && i < len(names) {
				r.Link = i
			}
			if r.Link < 0 {
				return bad(fmt.Sprintf("link %q: no such device (have %s, or 0-%d)", val, strings.Join(names, ", "), len(names)-1))
			}
		}
	}
	return r, nil
}

// validateLinks checks the --link and --route flags against the device
// and records them in dev.
func (d *deviceFlags) validateLinks(dev *device) error {
	names := []string{dev.name}
	prefixes := append([]netip.Prefix(nil), dev.hostAddrs...)
	for _, v := range d.links {
		l, err := parseLink(v)
		if err != nil {
			return err
		}
		for _, n := range names {
			if n == l.name {
				return fmt.Errorf("--link %s: device %s is named twice", v, n)
			}
		}
		for _, p := range l.hostAddrs {
			for _, q := range prefixes {
				if p.Masked().Overlaps(q.Masked()) {
					return fmt.Errorf("--link %s: %s overlaps %s of another device; each device needs a network of its own", v, p, q)
				}
			}
			if p.Addr().Is6() && dev.mtu < 1280 {
				return fmt.Errorf("--link %s: IPv6 needs an --mtu of at least 1280", v)
			}
			prefixes = append(prefixes, p)
		}
		names = append(names, l.name)
		dev.extra = append(dev.extra, l)
	}
	for _, v := range d.routes {
		r, err := parseRoute(v, names)
		if err != nil {
			return err
		}
		for _, o := range dev.routes {
			if o.Prefix == r.Prefix {
				return fmt.Errorf("--route %s: %s has a route already", v, r.Prefix)
			}
		}
		dev.routes = append(dev.routes, r)
	}
	return nil
}
