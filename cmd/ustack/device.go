package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// deviceFlags are the flags serve and dial share: the TUN device, the kernel
// side's addresses on it, ustack's own addresses, and TCP knobs.
type deviceFlags struct {
	tun       string
	hostAddr  string
	addr      string
	hostAddr6 string
	addr6     string
	mtu       int
	offload   bool
	cc        string
	pcap      string
	trace     string
	busyPoll  time.Duration
	queues    queuesFlag
	knobs     knobFlags
	links     repeatedFlag // --link: more TUN devices
	routes    repeatedFlag // --route
}

func (d *deviceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.tun, "tun", "ustack0", "name of the TUN device to create")
	fs.StringVar(&d.hostAddr, "host-addr", "198.18.0.1/24", "kernel side IPv4 address/prefix on the TUN (\"\" for none)")
	fs.StringVar(&d.addr, "addr", "198.18.0.2", "ustack's IPv4 address (\"\" for none)")
	fs.StringVar(&d.hostAddr6, "host-addr6", "2001:2::1/64", "kernel side IPv6 address/prefix on the TUN (\"\" for none)")
	fs.StringVar(&d.addr6, "addr6", "2001:2::2", "ustack's IPv6 address (\"\" for none)")
	fs.IntVar(&d.mtu, "mtu", 1500, "MTU of the TUN device (576-65535)")
	fs.BoolVar(&d.offload, "offload", true, "use virtio-net offloads (TSO/checksum) on the TUN: 64 KiB super-segments both ways")
	fs.StringVar(&d.cc, "cc", "newreno", ccFlagHelp())
	fs.StringVar(&d.pcap, "pcap", "", "record every packet in and out to this pcap file (tcpdump -r FILE); super-segments are\nrecorded cut into the MSS-sized packets the wire carries, checksums complete")
	fs.StringVar(&d.trace, "trace", "", "write an event trace to this file: one JSON line per TCP segment in or out (with the\nconnection's state, SND.UNA/NXT, RCV.NXT, windows, cwnd, ssthresh, srtt), state change and\ntimer firing; draw it with ustack plot")
	fs.Var(&d.links, "link", "another TUN device, NAME,host-addr=PREFIX[,host-addr6=PREFIX] (repeatable): created like --tun,\nwith those kernel-side addresses; ustack's addresses are the same on every device")
	fs.Var(&d.routes, "route", "a route of ustack's own, PREFIX[,via=GATEWAY][,link=NAME|N] (repeatable): Dial and the replies to\npeers in PREFIX leave by that device (default link 0, --tun; 1, 2... are the --link devices), the\nlongest prefix winning. Without routes one device takes everything; with routes, a Dial matching\nnone fails (network unreachable) and a reply goes back by the device its peer came in on")
	fs.DurationVar(&d.busyPoll, "busy-poll", 0, busyPollHelp)
	fs.Var(&d.queues, "queues", queuesHelp)
	d.knobs.register(fs)
}

// device is the result of validating deviceFlags.
type device struct {
	name      string
	mtu       int
	offload   bool
	pcap      string
	trace     string
	impair    tun.Impairment
	hostAddrs []netip.Prefix
	addrs     []netip.Addr
	tcp       tcp.Config
	// txQueueLen, when set, is the TUN's txqueuelen (the kernel's ring
	// toward us); serve sets it, see defaultTxQueueLen.
	txQueueLen int
	// synFilter attaches the TUN's eBPF SYN filter (serve --syn-filter).
	synFilter bool
	// busyPoll is how long the TUN readers spin before they block
	// (--busy-poll; 0: they block at once).
	busyPoll time.Duration
	// queues is the --tun device's queue count (--queues); the --link
	// devices have one each.
	queues int
	// extra are the --link devices; routes the --route entries.
	extra  []extraLink
	routes []stack.Route
}

// parseHostPair checks one family's --host-addr/--addr pair.
func parseHostPair(hostFlag, addrFlag, host, addr string, want4 bool) (netip.Prefix, netip.Addr, error) {
	var p netip.Prefix
	var a netip.Addr
	if host == "" && addr == "" {
		return p, a, nil
	}
	if host == "" || addr == "" {
		return p, a, fmt.Errorf("--%s and --%s go together: set both or neither", hostFlag, addrFlag)
	}
	p, err := netip.ParsePrefix(host)
	if err != nil {
		return p, a, fmt.Errorf("--%s %q: want an address with a prefix length, e.g. 198.18.0.1/24", hostFlag, host)
	}
	a, err = netip.ParseAddr(addr)
	if err != nil {
		return p, a, fmt.Errorf("--%s %q: not an IP address", addrFlag, addr)
	}
	fam := "IPv6"
	if want4 {
		fam = "IPv4"
	}
	if p.Addr().Is4() != want4 || a.Is4() != want4 {
		return p, a, fmt.Errorf("--%s and --%s must be %s addresses", hostFlag, addrFlag, fam)
	}
	if a == p.Addr() {
		return p, a, fmt.Errorf("--%s %s is the kernel side's address too (--%s); pick another", addrFlag, a, hostFlag)
	}
	if !p.Masked().Contains(a) {
		return p, a, fmt.Errorf("--%s %s is outside --%s %s: the kernel would not route it into the TUN", addrFlag, a, hostFlag, p)
	}
	return p, a, nil
}

func (d *deviceFlags) validate() (*device, error) {
	if d.tun == "" || len(d.tun) > 15 || strings.ContainsAny(d.tun, "/ \t") {
		return nil, fmt.Errorf("--tun %q: want an interface name of 1-15 characters without '/' or spaces", d.tun)
	}
	if d.mtu < 576 || d.mtu > 65535 {
		return nil, fmt.Errorf("--mtu %d: want a value from 576 to 65535", d.mtu)
	}
	if err := checkBusyPoll(d.busyPoll); err != nil {
		return nil, err
	}
	dev := &device{name: d.tun, mtu: d.mtu, offload: d.offload, pcap: d.pcap, trace: d.trace, busyPoll: d.busyPoll}
	p4, a4, err := parseHostPair("host-addr", "addr", d.hostAddr, d.addr, true)
	if err != nil {
		return nil, err
	}
	p6, a6, err := parseHostPair("host-addr6", "addr6", d.hostAddr6, d.addr6, false)
	if err != nil {
		return nil, err
	}
	if a6.IsValid() && d.mtu < 1280 {
		return nil, fmt.Errorf("--mtu %d: IPv6 needs at least 1280 (or disable it with --addr6 '' --host-addr6 '')", d.mtu)
	}
	for _, pa := range []struct {
		p netip.Prefix
		a netip.Addr
	}{{p4, a4}, {p6, a6}} {
		if pa.a.IsValid() {
			dev.hostAddrs = append(dev.hostAddrs, pa.p)
			dev.addrs = append(dev.addrs, pa.a)
		}
	}
	if len(dev.addrs) == 0 {
		return nil, errors.New("no address: set --addr/--host-addr or --addr6/--host-addr6")
	}
	dev.tcp = tcp.DefaultConfig()
	if err := checkCC(d.cc); err != nil {
		return nil, err
	}
	dev.tcp.CongestionControl = d.cc
	if dev.impair, err = d.knobs.apply(&dev.tcp); err != nil {
		return nil, err
	}
	if err := d.validateLinks(dev); err != nil {
		return nil, err
	}
	single := ""
	switch {
	case d.pcap != "":
		single = "--pcap"
	case !dev.impair.IsZero():
		single = "--impair"
	}
	if dev.queues, err = d.queues.resolve(single); err != nil {
		return nil, err
	}
	return dev, nil
}

// open creates the TUN device, configures the kernel side, and starts a
// stack on it.
func (dev *device) open(log *slog.Logger, opts stack.Options) (*stack.Stack, error) {
	link, err := dev.createTUN(log, dev.name, dev.hostAddrs, dev.queues)
	if err != nil {
		return nil, err
	}
	// The --link devices: plain, without capture or impairment.
	var extra []tun.Link
	closeExtra := func() {
		for _, l := range extra {
			l.Close()
		}
	}
	for _, x := range dev.extra {
		l, err := dev.createTUN(log, x.name, x.hostAddrs, 1)
		if err != nil {
			link.Close()
			closeExtra()
			return nil, fmt.Errorf("--link %s: %w", x.name, err)
		}
		extra = append(extra, l)
		log.Info("device up", "tun", x.name, "host", x.hostAddrs)
	}
	var l tun.Link = link
	if dev.pcap != "" {
		p, err := tun.OpenPcap(link, dev.pcap, tun.PcapOptions{})
		if err != nil {
			link.Close()
			closeExtra()
			return nil, fmt.Errorf("--pcap: %w", err)
		}
		l = p
		log.Info("capturing", "pcap", dev.pcap)
	}
	// The impairment sits outside the capture, so the pcap shows what
	// reached the TUN: dropped packets are absent, duplicates twice.
	l, _ = dev.impairLink(log, l)
	opts.Links = append([]tun.Link{l}, extra...)
	opts.Routes = dev.routes
	opts.Addrs = dev.addrs
	opts.TCP = dev.tcp
	if dev.trace != "" {
		// The stack owns the file: Stack.Close flushes and closes it.
		f, err := os.Create(dev.trace)
		if err != nil {
			l.Close()
			closeExtra()
			return nil, fmt.Errorf("--trace: %w", err)
		}
		opts.Trace = f
		log.Info("tracing", "trace", dev.trace)
	}
	s, err := stack.New(opts)
	if err != nil {
		l.Close()
		closeExtra()
		if c, ok := opts.Trace.(io.Closer); ok {
			c.Close()
		}
		return nil, err
	}
	log.Info("device up", "tun", dev.name, "mtu", dev.mtu, "offload", dev.offload, "queues", dev.queues, "addrs", dev.addrs, "host", dev.hostAddrs)
	if dev.busyPoll > 0 {
		log.Info("busy polling: the TUN readers spin before they block, a core each while traffic waits", "busy_poll", dev.busyPoll)
	}
	for _, r := range dev.routes {
		log.Info("route", "route", r.String())
	}
	return s, nil
}

// createTUN makes one TUN device with the kernel side's addresses, its
// txqueuelen and, with --syn-filter, its SYN filter (the txqueuelen and
// the filter are the device's, all queues').
func (dev *device) createTUN(log *slog.Logger, name string, hostAddrs []netip.Prefix, queues int) (*tun.TUN, error) {
	link, err := tun.Create(tun.Options{Name: name, MTU: dev.mtu, Offload: dev.offload, HostAddrs: hostAddrs,
		BusyPoll: dev.busyPoll, Queues: queues})
	if err != nil {
		if errors.Is(err, tun.ErrMultiQueue) {
			return nil, fmt.Errorf("--queues %d: %w", queues, err)
		}
		return nil, err
	}
	if dev.txQueueLen > 0 {
		if err := setTxQueueLen(link.Index(), dev.txQueueLen); err != nil {
			link.Close()
			return nil, err
		}
	}
	if dev.offload {
		// USO needs Linux 6.2: without it the kernel cuts a UDP_SEGMENT
		// sender's super-datagrams before the TUN (udp_gso_in stays 0).
		log.Info("UDP segmentation offload", "tun", name, "udp_offload", link.UDPOffload())
	}
	if dev.synFilter {
		if err := link.EnableSYNFilter(); err != nil {
			log.Warn("no kernel-side SYN filter; SYN floods are dropped by ustack itself", "tun", name, "err", err)
		}
	}
	return link, nil
}

// parseKeepalive parses "idle,interval,count" (e.g. 30s,5s,3) or "off".
func parseKeepalive(s string) (enabled bool, idle, interval time.Duration, count int, err error) {
	if s == "off" || s == "0" {
		return false, 0, 0, 0, nil
	}
	parts := strings.Split(s, ",")
	bad := fmt.Errorf("--keepalive %q: want idle,interval,count such as 30s,5s,3, or off", s)
	if len(parts) != 3 {
		return false, 0, 0, 0, bad
	}
	idle, err1 := time.ParseDuration(parts[0])
	interval, err2 := time.ParseDuration(parts[1])
	var n int
	_, err3 := fmt.Sscanf(parts[2], "%d", &n)
	if err1 != nil || err2 != nil || err3 != nil || fmt.Sprint(n) != parts[2] {
		return false, 0, 0, 0, bad
	}
	if idle < time.Second || interval < time.Second || n < 1 || n > 127 {
		return false, 0, 0, 0, fmt.Errorf("--keepalive %q: idle and interval must be at least 1s and count 1-127", s)
	}
	return true, idle, interval, n, nil
}
