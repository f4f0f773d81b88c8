package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	wgnetstack "golang.zx2c4.com/wireguard/tun/netstack"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	gtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/ustack-net/ustack/tun"
)

// The comparison servers of `ustack bench`: gVisor's netstack behind the same
// kind of TUN as `ustack serve`, and the kernel's own TCP on loopback. Both
// serve the same echo, discard and HTTP handlers as `ustack serve`, on the
// same ports, and print the same "ready DEVICE ADDR" line. DESIGN.md allows
// gVisor here: it is the yardstick of the bench, never ustack's data path.

// Addresses the bench gives every server: the kernel side of the TUN and the
// userspace stack's own address (DESIGN.md's benchmarking ranges).
var (
	benchHostAddrs = []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("2001:2::1/64")}
	benchAddrs     = []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:2::2")}
	benchLoopback  = netip.MustParseAddr("127.0.0.1")
)

// Service ports, as in `ustack serve`.
const (
	benchEchoPort    = 7
	benchDiscardPort = 9
	benchHTTPPort    = 80
)

type benchServerFlags struct {
	stack   string
	link    string
	tun     string
	mtu     int
	offload bool
	listen  string // kernel: the address to listen on
	cc      string // kernel: TCP_CONGESTION of the listeners ("": the default)
}

// gvisorLinks are the two ways a Go program usually puts gVisor's netstack on
// a TUN; the bench measures both and reports the better per workload.
//   - wgnetstack: wireguard's tun (virtio-net offloads, GRO on write) bridged
//     packet by packet to wireguard's tun/netstack (a channel endpoint).
//   - fdbased: gVisor's own fdbased endpoint reading and writing the TUN fd.
//     It only speaks virtio-net headers on sockets, so its TUN has none:
//     plain MTU-sized packets both ways, with the offloads it has for that
//     case: received checksums trusted (the kernel computed them) and
//     gVisor's software GRO in front of its TCP.
var gvisorLinks = []string{"wgnetstack", "fdbased"}

// runBenchServer is `ustack bench server`, internal to `ustack bench`: it
// serves echo, discard and HTTP on gVisor's netstack behind a TUN
// (--stack gvisor) or on the kernel's loopback (--stack kernel).
func runBenchServer(args []string, stdout, stderr io.Writer) int {
	var f benchServerFlags
	fs := flag.NewFlagSet("bench server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.stack, "stack", "", "which stack serves: gvisor (netstack behind a TUN) or kernel (127.0.0.1)")
	fs.StringVar(&f.link, "link", "wgnetstack", "how gVisor meets the TUN: wgnetstack (wireguard's tun bridged to its\n"+
		"tun/netstack) or fdbased (gVisor's fdbased endpoint on the TUN fd, no virtio-net header)")
	fs.StringVar(&f.tun, "tun", "ustack0", "name of the TUN device to create (gvisor)")
	fs.IntVar(&f.mtu, "mtu", 1500, "MTU of the TUN device (gvisor; 1280-65535)")
	fs.BoolVar(&f.offload, "offload", true, "virtio-net offloads on the TUN (gvisor)")
	fs.StringVar(&f.listen, "listen", benchLoopback.String(), "address to listen on (kernel)")
	fs.StringVar(&f.cc, "cc", "", "congestion control of the kernel's sockets, set with TCP_CONGESTION (kernel;\n"+
		"one of net.ipv4.tcp_available_congestion_control; default: the namespace's)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack bench server --stack gvisor|kernel [flags]\n\n"+
			"Internal to `ustack bench`, which runs it in a private network namespace. With\n"+
			"--stack gvisor it creates a TUN (kernel side %s and %s), runs gVisor's netstack\n"+
			"(see --link) on %s and %s behind it; with --stack kernel it listens\n"+
			"on %s. Either way it serves echo (%d, TCP and UDP), discard (%d) and HTTP (%d) with the handlers\n"+
			"of `ustack serve` and prints 'ready DEVICE ADDR'. SIGINT/SIGTERM stop it.\n\nflags:\n",
			benchHostAddrs[0], benchHostAddrs[1], benchAddrs[0], benchAddrs[1], benchLoopback,
			benchEchoPort, benchDiscardPort, benchHTTPPort)
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ustack bench server: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	switch f.stack {
	case "gvisor", "kernel":
	case "":
		fmt.Fprintf(stderr, "ustack bench server: --stack is required: gvisor or kernel\n")
		return exitUsage
	default:
		fmt.Fprintf(stderr, "ustack bench server: --stack %q: want gvisor or kernel\n", f.stack)
		return exitUsage
	}
	if !slices.Contains(gvisorLinks, f.link) {
		fmt.Fprintf(stderr, "ustack bench server: --link %q: want one of %s\n", f.link, strings.Join(gvisorLinks, ","))
		return exitUsage
	}
	if f.mtu < 1280 || f.mtu > 65535 {
		fmt.Fprintf(stderr, "ustack bench server: --mtu %d: want a value from 1280 to 65535\n", f.mtu)
		return exitUsage
	}
	if f.tun == "" || len(f.tun) > 15 {
		fmt.Fprintf(stderr, "ustack bench server: --tun %q: want an interface name of 1-15 characters\n", f.tun)
		return exitUsage
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var listen func(port int) (net.Listener, error)
	var listenUDP func(port int) (net.PacketConn, error)
	var device, addr string
	var cleanup func()
	switch f.stack {
	case "kernel":
		la, err := netip.ParseAddr(f.listen)
		if err != nil {
			fmt.Fprintf(stderr, "ustack bench server: --listen %q: want an IP address\n", f.listen)
			return exitUsage
		}
		device, addr = "lo", la.String()
		if !la.IsLoopback() {
			device = "kernel"
		}
		var lc net.ListenConfig
		if f.cc != "" {
			lc.Control = func(_, _ string, c syscall.RawConn) error {
				var serr error
				if err := c.Control(func(fd uintptr) {
					serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, f.cc)
				}); err != nil {
					return err
				}
				if serr != nil {
					return fmt.Errorf("TCP_CONGESTION %s: %w (see net.ipv4.tcp_available_congestion_control)", f.cc, serr)
				}
				return nil
			}
		}
		listen = func(port int) (net.Listener, error) {
			return lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(la, uint16(port)).String())
		}
		listenUDP = func(port int) (net.PacketConn, error) {
			return net.ListenPacket("udp", netip.AddrPortFrom(la, uint16(port)).String())
		}
		cleanup = func() {}
	case "gvisor":
		var name string
		var err error
		if f.link == "fdbased" {
			var g *gvisorFdbased
			g, err = startGvisorFdbased(f, log)
			if err == nil {
				name, listen, listenUDP, cleanup = g.link.Name(), g.listen, g.listenUDP, g.close
			}
		} else {
			var g *gvisorServer
			g, err = startGvisor(f, log)
			if err == nil {
				name, cleanup = g.link.Name(), g.close
				listen = func(port int) (net.Listener, error) {
					return g.net.ListenTCPAddrPort(netip.AddrPortFrom(benchAddrs[0], uint16(port)))
				}
				listenUDP = func(port int) (net.PacketConn, error) {
					return g.net.ListenUDPAddrPort(netip.AddrPortFrom(benchAddrs[0], uint16(port)))
				}
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "ustack bench server: %v\n", err)
			return 1
		}
		device, addr = name, benchAddrs[0].String()
	}
	defer cleanup()

	services := []service{{"echo", benchEchoPort}, {"discard", benchDiscardPort}, {"http", benchHTTPPort}}
	set, err := startServices(ctx, services, listen, addr, log, nil)
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench server: %v\n", err)
		return 1
	}
	// The UDP echo, as `ustack serve --udp-echo` runs it.
	uc, err := listenUDP(benchEchoPort)
	if err != nil {
		set.stop(time.Second)
		fmt.Fprintf(stderr, "ustack bench server: UDP echo: %v\n", err)
		return 1
	}
	udpDone := make(chan struct{})
	go func() {
		defer close(udpDone)
		servePacketEcho(uc, log)
	}()
	defer func() {
		uc.Close()
		<-udpDone
	}()
	fmt.Fprintf(stdout, "ready %s %s\n", device, addr)
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	<-ctx.Done()
	if !set.stop(5 * time.Second) {
		log.Warn("connections still open after 5s; leaving them")
	}
	return 0
}

// gvisorServer is gVisor's netstack (through wireguard's tun/netstack, the way
// Go programs usually embed it) bridged to a real TUN device.
type gvisorServer struct {
	link *tun.TUN
	dev  interface {
		Read([][]byte, []int, int) (int, error)
		Write([][]byte, int) (int, error)
		Close() error
	}
	net  *wgnetstack.Net
	wg   sync.WaitGroup
	once sync.Once
}

// bridgeQueue bounds the packets in flight from netstack to the TUN: the
// netstack reader blocks when it is full (backpressure, not drops).
const bridgeQueue = 256

// bridgeBatch is the most packets one TUN write carries; wireguard's tun
// coalesces runs of one flow within a batch into super-packets (GRO).
const bridgeBatch = 64

// startGvisor creates the TUN with the same options `ustack serve` uses
// (tun.Create is wireguard's tun with TSO/checksum offloads) and pumps
// packets both ways between it and the netstack device.
func startGvisor(f benchServerFlags, log *slog.Logger) (*gvisorServer, error) {
	link, err := tun.Create(tun.Options{Name: f.tun, MTU: f.mtu, Offload: f.offload, HostAddrs: benchHostAddrs})
	if err != nil {
		return nil, err
	}
	dev, tnet, err := wgnetstack.CreateNetTUN(benchAddrs, nil, f.mtu)
	if err != nil {
		link.Close()
		return nil, fmt.Errorf("gVisor netstack: %w", err)
	}
	go func() {
		for range dev.Events() {
		}
	}()
	g := &gvisorServer{link: link, dev: dev, net: tnet}
	g.wg.Add(3)
	go g.tunToNetstack(log)
	free := make(chan []byte, bridgeQueue)
	full := make(chan []byte, bridgeQueue)
	for range bridgeQueue {
		// Capacity for a whole super-packet: wireguard's GRO appends the
		// payload of later packets into the first one's buffer.
		free <- make([]byte, tun.Headroom+f.mtu, tun.Headroom+tun.MaxPacketSize)
	}
	go g.netstackReader(free, full, log)
	go g.tunWriter(free, full, log)
	log.Info("device up", "tun", link.Name(), "mtu", f.mtu, "offload", f.offload, "stack", "gvisor", "addrs", benchAddrs)
	return g, nil
}

// tunToNetstack reads batches from the TUN (super-packets arrive already cut
// into MTU-sized packets) and injects them into netstack.
func (g *gvisorServer) tunToNetstack(log *slog.Logger) {
	defer g.wg.Done()
	n := max(g.link.BatchSize(), 1)
	bufs := make([][]byte, n)
	pkts := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, tun.Headroom+g.link.MTU())
	}
	for {
		k, err := g.link.Read(bufs, sizes, tun.Headroom)
		if err != nil {
			if !errors.Is(err, tun.ErrClosed) {
				log.Error("reading the TUN", "err", err)
				continue
			}
			return
		}
		for i := range k {
			pkts[i] = bufs[i][tun.Headroom : tun.Headroom+sizes[i]]
		}
		if _, err := g.dev.Write(pkts[:k], 0); err != nil {
			log.Warn("injecting into netstack", "err", err)
		}
	}
}

// netstackReader takes packets netstack sends, one per Read (its device has
// a batch size of 1), and queues them for tunWriter.
func (g *gvisorServer) netstackReader(free, full chan []byte, log *slog.Logger) {
	defer g.wg.Done()
	defer close(full)
	sizes := make([]int, 1)
	one := make([][]byte, 1)
	for {
		b := <-free
		one[0] = b[:cap(b)]
		if _, err := g.dev.Read(one, sizes, tun.Headroom); err != nil {
			if !errors.Is(err, os.ErrClosed) {
				log.Error("reading netstack", "err", err)
			}
			return
		}
		full <- b[:tun.Headroom+sizes[0]]
	}
}

// tunWriter writes whatever netstack queued since the last write as one
// batch, so wireguard can coalesce it.
func (g *gvisorServer) tunWriter(free, full chan []byte, log *slog.Logger) {
	defer g.wg.Done()
	batch := make([][]byte, 0, bridgeBatch)
	for {
		b, ok := <-full
		if !ok {
			return
		}
		batch = append(batch[:0], b)
	drain:
		for len(batch) < bridgeBatch {
			select {
			case b, ok := <-full:
				if !ok {
					break drain
				}
				batch = append(batch, b)
			default:
				break drain
			}
		}
		if _, err := g.link.Write(batch, tun.Headroom); err != nil && !errors.Is(err, tun.ErrClosed) {
			log.Warn("writing the TUN", "err", err)
		}
		for _, b := range batch {
			free <- b
		}
	}
}

// close stops netstack and removes the TUN device.
func (g *gvisorServer) close() {
	g.once.Do(func() {
		g.dev.Close()
		g.link.Close()
		g.wg.Wait()
	})
}

// gvisorFdbased is gVisor's netstack on its own fdbased endpoint, reading and
// writing the TUN's descriptor directly (no bridge goroutines of ours).
type gvisorFdbased struct {
	link *tun.TUN
	st   *gstack.Stack
	once sync.Once
}

// startGvisorFdbased creates a TUN without virtio-net header (fdbased uses
// one only on sockets) and builds the stack wireguard's tun/netstack builds
// (same protocols, SACK on, HandleLocal), so the two variants differ only
// in how packets reach netstack.
func startGvisorFdbased(f benchServerFlags, log *slog.Logger) (*gvisorFdbased, error) {
	link, err := tun.Create(tun.Options{Name: f.tun, MTU: f.mtu, Offload: false, HostAddrs: benchHostAddrs})
	if err != nil {
		return nil, err
	}
	fd, err := link.RawFD()
	if err != nil {
		link.Close()
		return nil, err
	}
	ep, err := fdbased.New(&fdbased.Options{
		FDs: []int{fd}, MTU: uint32(f.mtu),
		RXChecksumOffload: true, // the kernel checksummed what it hands the TUN
		GRO:               true,
	})
	if err != nil {
		link.Close()
		return nil, fmt.Errorf("gVisor fdbased endpoint: %w", err)
	}
	st := gstack.New(gstack.Options{
		NetworkProtocols:   []gstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gstack.TransportProtocolFactory{gtcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol6, icmp.NewProtocol4},
		HandleLocal:        true,
	})
	g := &gvisorFdbased{link: link, st: st}
	sack := tcpip.TCPSACKEnabled(true)
	if terr := st.SetTransportProtocolOption(gtcp.ProtocolNumber, &sack); terr != nil {
		g.close()
		return nil, fmt.Errorf("gVisor: enabling SACK: %v", terr)
	}
	if terr := st.CreateNIC(1, ep); terr != nil {
		g.close()
		return nil, fmt.Errorf("gVisor: CreateNIC: %v", terr)
	}
	for _, a := range benchAddrs {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if terr := st.AddProtocolAddress(1, pa, gstack.AddressProperties{}); terr != nil {
			g.close()
			return nil, fmt.Errorf("gVisor: adding %v: %v", a, terr)
		}
	}
	st.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: 1},
		{Destination: header.IPv6EmptySubnet, NIC: 1},
	})
	log.Info("device up", "tun", link.Name(), "mtu", f.mtu, "offload", "rx-checksum,gro", "stack", "gvisor-fdbased", "addrs", benchAddrs)
	return g, nil
}

func (g *gvisorFdbased) listen(port int) (net.Listener, error) {
	a := benchAddrs[0]
	return gonet.ListenTCP(g.st, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: uint16(port)}, ipv4.ProtocolNumber)
}

func (g *gvisorFdbased) listenUDP(port int) (net.PacketConn, error) {
	a := benchAddrs[0]
	return gonet.DialUDP(g.st, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: uint16(port)}, nil, ipv4.ProtocolNumber)
}

// servePacketEcho sends every datagram c receives back to its sender until
// c is closed: the UDP echo of the gVisor and kernel bench servers, with
// each one's own socket API (net.PacketConn, as a Go program uses them).
func servePacketEcho(c net.PacketConn, log *slog.Logger) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("udp-echo: read", "err", err)
			}
			return
		}
		if _, err := c.WriteTo(buf[:n], from); err != nil {
			log.Debug("udp-echo: write", "to", from, "err", err)
		}
	}
}

// close stops netstack (which stops the endpoint's readers) and removes the
// TUN device.
func (g *gvisorFdbased) close() {
	g.once.Do(func() {
		g.st.Close()
		g.st.Wait()
		g.link.Close()
	})
}
