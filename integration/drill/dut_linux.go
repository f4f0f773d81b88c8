package drill

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// Addresses of the linux DUT's TUN: the kernel (the DUT) owns .1 / ::1 and
// the scripted peer is .2 / ::2, routed into the TUN, as the project's
// network rules put the kernel side on .1.
var (
	LinuxKernelAddr4 = netip.MustParseAddr("198.18.0.1")
	LinuxPeerAddr4   = netip.MustParseAddr("198.18.0.2")
	LinuxKernelAddr6 = netip.MustParseAddr("2001:2::1")
	LinuxPeerAddr6   = netip.MustParseAddr("2001:2::2")
)

// LinuxUnavailable returns why this process cannot run the linux DUT, or
// "" when it can: it needs root (CAP_SYS_ADMIN for a network namespace,
// CAP_NET_ADMIN for the TUN device) and /dev/net/tun.
func LinuxUnavailable() string {
	if os.Geteuid() != 0 {
		return "needs root or CAP_NET_ADMIN"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "no /dev/net/tun (" + err.Error() + ")"
	}
	return ""
}

// nsThread is an OS thread that lives in a network namespace of its own,
// created for one script run. Everything that binds to a namespace when it
// is created — the TUN device and its netlink configuration, the kernel
// sockets, the shell commands' processes (and so the sysctls they write,
// which are per namespace) — is created on it; descriptors are then usable
// from any thread. The thread is never unlocked, so when its goroutine
// ends the runtime ends the thread and the namespace goes with its last
// user: no state (TIME-WAIT sockets, sysctls) leaks from one script into
// the next.
type nsThread struct {
	calls chan func()
}

func newNSThread() (*nsThread, error) {
	t := &nsThread{calls: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		errc <- nil
		for f := range t.calls {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return t, nil
}

// do runs f on the namespace's thread and waits for it.
func (t *nsThread) do(f func()) {
	done := make(chan struct{})
	t.calls <- func() { f(); close(done) }
	<-done
}

func (t *nsThread) stop() { close(t.calls) }

// linuxDUT is the running kernel as DUT, the way packetdrill drives it:
// script packets are written into a TUN device with offloads on (TSO and
// checksum offload, as packetdrill's TUN), so the kernel sends TCP
// super-packets as its TSO engine builds them, which a `>` line describes
// as one segment (the runner splits one when a line expects MSS-sized
// pieces), and
// whatever TCP the kernel sends out of it is read back; socket calls are
// real, non-blocking system calls on real sockets in the namespace; time
// is real time.
type linuxDUT struct {
	ns    *nsThread
	dev   *tun.TUN
	o     Options
	start time.Time

	kernel, peer netip.Addr

	// fds maps the script's fds to the kernel's.
	fds fdTable[int]

	mu sync.Mutex
	// ports are the kernel-side ports the script's sockets use: DUTPort,
	// and the next ones for a client socket while an earlier connection
	// holds the tuple in TIME-WAIT (packetdrill's client sockets take an
	// ephemeral port each); inPort is where injected packets go (the
	// last socket bound or connected, packetdrill's socket under test).
	ports  map[uint16]bool
	inPort uint16
	// peerPorts are the peer's ports (Inbound.PeerPort), peerPort the
	// current one.
	peerPorts map[uint16]bool
	peerPort  uint16
	// otherConns counts packets of the script's earlier connections,
	// not recorded.
	otherConns int
	emitted    []integration.Emission
	bad        []string
	nonTCP     int
	readErr    error
	done       chan struct{}
	// arrived is signalled (without blocking) when a segment is recorded.
	arrived chan struct{}

	// cc is the congestion control the script asked for as the default
	// (net.ipv4.tcp_congestion_control, from a sysctl line or a shell
	// command such as common/defaults.sh), set on each socket the script
	// creates: a namespace other than the root one may only default to an
	// algorithm in tcp_allowed_congestion_control (here reno and bbr),
	// but a socket of root may pick any (TCP_CONGESTION). shims holds the
	// sysctl(8) wrapper that notes the name for shell commands.
	cc    string
	shims string
}

func newLinuxDUT(o Options) (*linuxDUT, error) {
	if reason := LinuxUnavailable(); reason != "" {
		return nil, errors.New("linux DUT: " + reason)
	}
	ns, err := newNSThread()
	if err != nil {
		return nil, fmt.Errorf("linux DUT: %w", err)
	}
	d := &linuxDUT{ns: ns, o: o, done: make(chan struct{}), arrived: make(chan struct{}, 1),
		ports: map[uint16]bool{integration.DUTPort: true}, inPort: integration.DUTPort,
		peerPorts: map[uint16]bool{integration.PeerPort: true}, peerPort: integration.PeerPort}
	d.kernel, d.peer = LinuxKernelAddr4, LinuxPeerAddr4
	pfx := 24
	if o.IPv6 {
		d.kernel, d.peer, pfx = LinuxKernelAddr6, LinuxPeerAddr6, 64
	}
	ns.do(func() {
		d.dev, err = tun.Create(tun.Options{
			// tun0, as packetdrill names it: scripts' tc and ip lines
			// say `dev tun0` (the namespace is private, so the name is free).
			Name:      "tun0",
			Offload:   true,
			MTU:       o.MTU,
			HostAddrs: []netip.Prefix{netip.PrefixFrom(d.kernel, pfx)},
		})
	})
	if err != nil {
		ns.stop()
		return nil, fmt.Errorf("linux DUT: %w", err)
	}
	d.start = time.Now()
	go d.reader()
	return d, nil
}

// reader takes every packet the kernel sends into the TUN. TCP between the
// script's endpoints is recorded; other TCP is recorded as a malformed
// emission (never hidden); the rest (IPv6 ND, MLD) is noise the kernel
// makes on any new link and is counted only.
func (d *linuxDUT) reader() {
	defer close(d.done)
	buf := make([]byte, tun.Headroom+tun.MaxPacketSize)
	bufs, sizes, gso := [][]byte{buf}, []int{0}, []tun.GSO{{}}
	for {
		n, err := d.dev.ReadGSO(bufs, sizes, gso, tun.Headroom)
		if err != nil {
			if errors.Is(err, tun.ErrClosed) {
				return
			}
			d.mu.Lock()
			d.readErr = err
			d.mu.Unlock()
			return
		}
		if n == 1 {
			d.record(bytes.Clone(buf[tun.Headroom:tun.Headroom+sizes[0]]), gso[0])
		}
	}
}

// record takes one packet the kernel sent: with offloads on, a TSO
// super-packet (one Emission with all its payload, Seg.GSOSize its MSS) or a
// packet whose checksum the kernel left partial (it vouches for the data).
func (d *linuxDUT) record(b []byte, g tun.GSO) {
	at := d.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	var tcpBytes, src, dst []byte
	var ip integration.IPFields
	switch header.IPVersion(b) {
	case header.IPv4Version:
		h := header.IPv4(b)
		if !h.IsValid(len(b)) {
			d.bad = append(d.bad, "invalid IPv4 header")
			return
		}
		if h.TransportProtocol() != header.TCPProtocolNumber {
			d.nonTCP++
			return
		}
		tos, _ := h.TOS()
		ip = integration.IPFields{TOS: tos, TTL: h.TTL(), ID: h.ID(), DF: h.Flags()&header.IPv4FlagDontFragment != 0}
		s, t := h.SourceAddress().As4(), h.DestinationAddress().As4()
		tcpBytes, src, dst = b[h.HeaderLength():h.TotalLength()], s[:], t[:]
	case header.IPv6Version:
		h := header.IPv6(b)
		if !h.IsValid(len(b)) {
			d.bad = append(d.bad, "invalid IPv6 header")
			return
		}
		if h.TransportProtocol() != header.TCPProtocolNumber {
			d.nonTCP++
			return
		}
		tc, fl := h.TOS()
		ip = integration.IPFields{TOS: tc, TTL: h.HopLimit(), FlowLabel: fl}
		s, t := h.SourceAddress().As16(), h.DestinationAddress().As16()
		tcpBytes, src, dst = h.Payload(), s[:], t[:]
	default:
		d.bad = append(d.bad, fmt.Sprintf("IP version %d", header.IPVersion(b)))
		return
	}
	if !g.NeedsCsum && !tcp.VerifyChecksum(tcpBytes, src, dst) {
		d.bad = append(d.bad, "bad TCP checksum")
		return
	}
	var seg tcp.Segment
	sport, dport, err := tcp.ParseSegment(tcpBytes, &seg)
	if err != nil {
		d.bad = append(d.bad, err.Error())
		return
	}
	from, _ := netip.AddrFromSlice(src)
	to, _ := netip.AddrFromSlice(dst)
	if from != d.kernel || to != d.peer || !d.ports[sport] || !d.peerPorts[dport] {
		d.bad = append(d.bad, fmt.Sprintf("TCP %s:%d > %s:%d outside the script's connection", from, sport, to, dport))
		return
	}
	if sport != d.inPort || dport != d.peerPort {
		// An earlier connection of the script (a FIN retransmitted from
		// TIME-WAIT...): packetdrill reads only the socket under test's
		// packets.
		d.otherConns++
		return
	}
	seg.Payload = bytes.Clone(seg.Payload)
	if g.IsGSO() {
		seg.GSOSize = g.Size
	}
	extra := extraOptions(tcpBytes[tcp.HeaderMinLen:tcp.Header(tcpBytes).DataOffset()])
	d.emitted = append(d.emitted, integration.Emission{At: at, Seg: seg, IP: ip, ExtraOptions: extra})
	select {
	case d.arrived <- struct{}{}:
	default:
	}
}

// WaitEmitted blocks until the kernel has sent a segment not yet taken or
// the clock reaches deadline, so an expected packet is seen when it
// leaves rather than at the end of its tolerance window.
func (d *linuxDUT) WaitEmitted(deadline time.Duration) {
	for {
		d.mu.Lock()
		n := len(d.emitted)
		d.mu.Unlock()
		left := deadline - d.Now()
		if n > 0 || left <= 0 {
			return
		}
		t := time.NewTimer(left)
		select {
		case <-d.arrived:
		case <-t.C:
		}
		t.Stop()
	}
}

func (d *linuxDUT) Name() string { return "linux" }

func (d *linuxDUT) Now() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Since(d.start)
}

// RestartClock makes now time 0, dropping what the kernel sent before
// (nothing on the script's connection can exist yet: the init command
// comes before every other line).
func (d *linuxDUT) RestartClock() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.start = time.Now()
	d.emitted = nil
}

// Advance lets real time pass.
func (d *linuxDUT) Advance(dt time.Duration) { time.Sleep(dt) }

// RealTime marks the DUT's clock as the wall clock.
func (d *linuxDUT) RealTime() bool { return true }

func (d *linuxDUT) TakeEmitted() []integration.Emission {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.emitted
	d.emitted = nil
	return e
}

// Malformed returns packets the kernel sent that are not the script's
// connection's well-formed TCP, and any TUN read failure.
func (d *linuxDUT) Malformed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]string(nil), d.bad...)
	if d.readErr != nil {
		out = append(out, "reading the TUN: "+d.readErr.Error())
	}
	return out
}

// BuildPacket serializes seg between the peer and the kernel with the TUN's
// addresses: toPeer=false is what Inject writes.
func (d *linuxDUT) BuildPacket(toPeer bool, seg *tcp.Segment, ip integration.IPFields) []byte {
	return d.BuildPacketOpts(toPeer, seg, nil, ip)
}

// BuildPacketOpts is BuildPacket with the TCP options given as bytes
// (nil: seg.Options').
func (d *linuxDUT) BuildPacketOpts(toPeer bool, seg *tcp.Segment, opts []byte, ip integration.IPFields) []byte {
	src, dst := d.peer, d.kernel
	d.mu.Lock()
	sport, dport := d.peerPort, d.inPort
	d.mu.Unlock()
	if toPeer {
		src, dst, sport, dport = dst, src, dport, sport
	}
	return buildIPPacket(src, dst, sport, dport, seg, opts, ip)
}

// buildIPPacket serializes a TCP segment in an IPv4 or IPv6 packet with
// correct checksums and the given header fields (TTL 0 means 64). opts,
// when not nil, are the TCP options as on the wire (a multiple of 4
// bytes), in place of seg.Options'.
func buildIPPacket(src, dst netip.Addr, sport, dport uint16, seg *tcp.Segment, opts []byte, ip integration.IPFields) []byte {
	if ip.TTL == 0 {
		ip.TTL = 64
	}
	if opts != nil {
		bare := *seg
		bare.Options = tcp.Options{}
		seg = &bare
	}
	tcpLen := tcp.SegmentWireLen(seg) + len(opts)
	var b []byte
	var hdr int
	if src.Is6() {
		hdr = header.IPv6MinimumSize
		b = make([]byte, hdr+tcpLen)
		header.IPv6(b).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(tcpLen),
			TransportProtocol: header.TCPProtocolNumber,
			HopLimit:          ip.TTL,
			TrafficClass:      ip.TOS,
			FlowLabel:         ip.FlowLabel,
			SrcAddr:           tcpip.AddrFrom16(src.As16()),
			DstAddr:           tcpip.AddrFrom16(dst.As16()),
		})
	} else {
		hdr = header.IPv4MinimumSize
		b = make([]byte, hdr+tcpLen)
		ih := header.IPv4(b)
		var flags uint8
		if ip.DF {
			flags = header.IPv4FlagDontFragment
		}
		ih.Encode(&header.IPv4Fields{
			TotalLength: uint16(hdr + tcpLen),
			TOS:         ip.TOS,
			ID:          ip.ID,
			Flags:       flags,
			TTL:         ip.TTL,
			Protocol:    uint8(header.TCPProtocolNumber),
			SrcAddr:     tcpip.AddrFrom4(src.As4()),
			DstAddr:     tcpip.AddrFrom4(dst.As4()),
		})
		ih.SetChecksum(^ih.CalculateChecksum())
	}
	if opts == nil {
		tcp.EncodeSegment(b[hdr:], sport, dport, seg)
	} else {
		t := b[hdr:]
		tcp.EncodeHeader(t, sport, dport, seg)
		copy(t[tcp.HeaderMinLen:], opts)
		copy(t[tcp.HeaderMinLen+len(opts):], seg.Payload)
		tcp.Header(t).SetDataOffset(tcp.HeaderMinLen + len(opts))
	}
	tcp.SetChecksumFull(b[hdr:], src.AsSlice(), dst.AsSlice())
	return b
}

// Inject writes the peer's packet into the TUN. The kernel processes a
// TUN write in the writing thread's softirq context, so by the time Write
// returns its answer is usually already queued for the reader.
func (d *linuxDUT) Inject(p *Inbound) {
	d.mu.Lock()
	if p.PeerPort != 0 {
		d.peerPort, d.peerPorts[p.PeerPort] = p.PeerPort, true
	}
	if d.inPort == 0 {
		d.inPort = integration.DUTPort
	}
	d.mu.Unlock()
	pkt := d.BuildPacketOpts(false, &p.Seg, p.Options, p.IP)
	buf := make([]byte, tun.Headroom+len(pkt))
	copy(buf[tun.Headroom:], pkt)
	var err error
	if len(pkt) > d.o.MTU {
		// Larger than the link: one GSO super-packet the kernel cuts
		// into MSS-sized segments (GRO'd on the way in, as packetdrill
		// injects them); the link fills in the checksums.
		hdr := header.IPv4MinimumSize
		mss := d.o.MTU - 40
		if d.o.IPv6 {
			hdr, mss = header.IPv6MinimumSize, d.o.MTU-60
		}
		if d.o.MSS > 0 {
			mss = d.o.MSS
		}
		g := tun.TCPGSO(d.o.IPv6, hdr, mss)
		g.NeedsCsum = false
		_, err = d.dev.WriteGSO([][]byte{buf}, []tun.GSO{g}, tun.Headroom)
	} else {
		_, err = d.dev.Write([][]byte{buf}, tun.Headroom)
	}
	if err != nil {
		d.mu.Lock()
		d.bad = append(d.bad, "writing to the TUN: "+err.Error())
		d.mu.Unlock()
	}
}

func (d *linuxDUT) sockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is6() {
		return &unix.SockaddrInet6{Port: port, Addr: a.As16()}
	}
	return &unix.SockaddrInet4{Port: port, Addr: a.As4()}
}

func sysErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return unix.EIO
}

// kfd returns the kernel fd behind a script fd.
func (d *linuxDUT) kfd(fd int) (int, syscall.Errno) {
	k, ok := d.fds.get(fd)
	if !ok {
		return -1, unix.EBADF
	}
	return k, 0
}

// Socket creates the socket in the namespace, non-blocking: the runner
// decides what would block.
func (d *linuxDUT) Socket() (int, syscall.Errno) {
	fam := unix.AF_INET
	if d.o.IPv6 {
		fam = unix.AF_INET6
	}
	var k int
	var err error
	d.ns.do(func() {
		k, err = unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	})
	if err != nil {
		return -1, sysErrno(err)
	}
	if d.cc != "" {
		if err := unix.SetsockoptString(k, unix.IPPROTO_TCP, unix.TCP_CONGESTION, d.cc); err != nil {
			_ = unix.Close(k)
			d.mu.Lock()
			d.bad = append(d.bad, fmt.Sprintf("TCP_CONGESTION %q (the script's net.ipv4.tcp_congestion_control): %v", d.cc, err))
			d.mu.Unlock()
			return -1, sysErrno(err)
		}
	}
	// The new socket is packetdrill's socket under test: no packet is
	// its until it is bound, connects, or a packet is injected.
	d.mu.Lock()
	d.inPort = 0
	d.mu.Unlock()
	return d.fds.add(k), 0
}

func (d *linuxDUT) Bind(fd int) syscall.Errno {
	k, e := d.kfd(fd)
	if e != 0 {
		return e
	}
	d.mu.Lock()
	d.inPort = integration.DUTPort
	d.mu.Unlock()
	return sysErrno(unix.Bind(k, d.sockaddr(d.kernel, integration.DUTPort)))
}

func (d *linuxDUT) Listen(fd, backlog int) syscall.Errno {
	k, e := d.kfd(fd)
	if e != 0 {
		return e
	}
	return sysErrno(unix.Listen(k, backlog))
}

// settle gives the kernel a moment (well inside any tolerance) to finish
// processing an injected packet before a call that would block.
func settle(k int, ev int16) {
	_, _ = unix.Poll([]unix.PollFd{{Fd: int32(k), Events: ev}}, 2)
}

func (d *linuxDUT) Accept(fd int) (int, syscall.Errno) {
	k, e := d.kfd(fd)
	if e != 0 {
		return -1, e
	}
	nk, _, err := unix.Accept4(k, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err == unix.EAGAIN {
		settle(k, unix.POLLIN)
		nk, _, err = unix.Accept4(k, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	}
	if err != nil {
		return -1, sysErrno(err)
	}
	return d.fds.add(nk), 0
}

func (d *linuxDUT) Connect(fd int) syscall.Errno {
	k, e := d.kfd(fd)
	if e != 0 {
		return e
	}
	if e := d.bindScriptPort(k); e != 0 {
		return e
	}
	return sysErrno(unix.Connect(k, d.sockaddr(d.peer, integration.PeerPort)))
}

// bindScriptPort binds an unbound client socket to the script's address
// and port, or the next free one while an earlier connection holds it (in
// TIME-WAIT), and makes it the port injected packets go to.
func (d *linuxDUT) bindScriptPort(k int) syscall.Errno {
	sa, err := unix.Getsockname(k)
	if err != nil {
		return sysErrno(err)
	}
	port := sockPort(sa)
	for p := integration.DUTPort; port == 0; p++ {
		err := unix.Bind(k, d.sockaddr(d.kernel, p))
		if err == nil {
			port = p
		} else if err != unix.EADDRINUSE || p >= integration.DUTPort+64 {
			return sysErrno(err)
		}
	}
	d.mu.Lock()
	d.ports[uint16(port)], d.inPort = true, uint16(port)
	d.peerPort = integration.PeerPort
	d.mu.Unlock()
	return 0
}

func sockPort(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

func (d *linuxDUT) Send(fd int, p []byte, flags int) (int, syscall.Errno) {
	k, e := d.kfd(fd)
	if e != 0 {
		return -1, e
	}
	// MSG_NOSIGNAL: EPIPE, not SIGPIPE, as the script expects.
	n, err := unix.SendmsgN(k, p, nil, nil, flags|unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	if err != nil {
		return -1, sysErrno(err)
	}
	return n, 0
}

// SendFastOpen is sendto(2) with the peer as destination (binding the
// script's port first, as Connect does), for MSG_FASTOPEN: the kernel
// connects and, holding a cookie, puts the data in the SYN.
func (d *linuxDUT) SendFastOpen(fd int, p []byte, flags int, unspec bool) (int, syscall.Errno) {
	k, e := d.kfd(fd)
	if e != 0 {
		return -1, e
	}
	if e := d.bindScriptPort(k); e != 0 {
		return -1, e
	}
	flags |= unix.MSG_NOSIGNAL | unix.MSG_DONTWAIT
	if unspec {
		// struct sockaddr with sa_family AF_UNSPEC, which x/sys/unix
		// has no Sockaddr for.
		var sa [unix.SizeofSockaddrInet6]byte
		var buf unsafe.Pointer
		if len(p) > 0 {
			buf = unsafe.Pointer(&p[0])
		}
		n, _, en := unix.Syscall6(unix.SYS_SENDTO, uintptr(k), uintptr(buf), uintptr(len(p)), uintptr(flags), uintptr(unsafe.Pointer(&sa[0])), uintptr(len(sa)))
		if en != 0 {
			return -1, en
		}
		return int(n), 0
	}
	n, err := unix.SendmsgN(k, p, nil, d.sockaddr(d.peer, integration.PeerPort), flags|unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	if err != nil {
		return -1, sysErrno(err)
	}
	return n, 0
}

// FastOpenKeys returns the namespace's net.ipv4.tcp_fastopen_key keys
// (primary and backup).
func (d *linuxDUT) FastOpenKeys() []FastOpenKey {
	var b []byte
	d.ns.do(func() { b, _ = os.ReadFile("/proc/sys/net/ipv4/tcp_fastopen_key") })
	keys, _ := parseFastOpenKeys(string(b))
	return keys
}

// Addrs returns the kernel's and the peer's addresses.
func (d *linuxDUT) Addrs() (local, remote netip.Addr) { return d.kernel, d.peer }

func (d *linuxDUT) Recv(fd int, n int, flags int) ([]byte, syscall.Errno) {
	k, e := d.kfd(fd)
	if e != 0 {
		return nil, e
	}
	b := make([]byte, n)
	m, _, _, _, err := unix.Recvmsg(k, b, nil, flags|unix.MSG_DONTWAIT)
	if err == unix.EAGAIN {
		settle(k, unix.POLLIN)
		m, _, _, _, err = unix.Recvmsg(k, b, nil, flags|unix.MSG_DONTWAIT)
	}
	if err != nil {
		return nil, sysErrno(err)
	}
	return b[:min(m, n)], 0
}

func (d *linuxDUT) Shutdown(fd, how int) syscall.Errno {
	k, e := d.kfd(fd)
	if e != 0 {
		return e
	}
	return sysErrno(unix.Shutdown(k, how))
}

func (d *linuxDUT) Close(fd int) syscall.Errno {
	k, e := d.kfd(fd)
	if e != 0 {
		return e
	}
	d.fds.del(fd)
	return sysErrno(unix.Close(k))
}

func (d *linuxDUT) SetSockopt(fd, level, name int, v OptVal) syscall.Errno {
	k, e := d.kfd(fd)
	if e != 0 {
		return e
	}
	switch {
	case level == unix.SOL_SOCKET && name == unix.SO_LINGER:
		l := v.Linger
		return sysErrno(unix.SetsockoptLinger(k, level, name, &l))
	case level == unix.IPPROTO_TCP && (name == unix.TCP_CONGESTION || name == unix.TCP_FASTOPEN_KEY):
		return sysErrno(unix.SetsockoptString(k, level, name, v.Str))
	}
	return sysErrno(unix.SetsockoptInt(k, level, name, v.Int))
}

func (d *linuxDUT) GetSockopt(fd, level, name int) (OptVal, syscall.Errno) {
	k, e := d.kfd(fd)
	if e != 0 {
		return OptVal{}, e
	}
	switch {
	case level == unix.SOL_SOCKET && name == unix.SO_LINGER:
		l, err := unix.GetsockoptLinger(k, level, name)
		if err != nil {
			return OptVal{}, sysErrno(err)
		}
		return OptVal{Linger: *l}, 0
	case level == unix.IPPROTO_TCP && name == unix.TCP_CONGESTION:
		s, err := unix.GetsockoptString(k, level, name)
		return OptVal{Str: s}, sysErrno(err)
	}
	n, err := unix.GetsockoptInt(k, level, name)
	return OptVal{Int: n}, sysErrno(err)
}

func (d *linuxDUT) TCPInfo(fd int) (map[string]int64, syscall.Errno) {
	k, e := d.kfd(fd)
	if e != 0 {
		return nil, e
	}
	i, err := unix.GetsockoptTCPInfo(k, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return nil, sysErrno(err)
	}
	return linuxInfo(i), 0
}

// linuxInfo is struct tcp_info as field names.
func linuxInfo(i *unix.TCPInfo) map[string]int64 {
	return map[string]int64{
		"tcpi_state": int64(i.State), "tcpi_ca_state": int64(i.Ca_state),
		"tcpi_retransmits": int64(i.Retransmits), "tcpi_probes": int64(i.Probes),
		"tcpi_backoff": int64(i.Backoff), "tcpi_options": int64(i.Options),
		"tcpi_rto": int64(i.Rto), "tcpi_ato": int64(i.Ato),
		"tcpi_snd_mss": int64(i.Snd_mss), "tcpi_rcv_mss": int64(i.Rcv_mss),
		"tcpi_unacked": int64(i.Unacked), "tcpi_sacked": int64(i.Sacked),
		"tcpi_lost": int64(i.Lost), "tcpi_retrans": int64(i.Retrans), "tcpi_fackets": int64(i.Fackets),
		"tcpi_last_data_sent": int64(i.Last_data_sent), "tcpi_last_ack_sent": int64(i.Last_ack_sent),
		"tcpi_last_data_recv": int64(i.Last_data_recv), "tcpi_last_ack_recv": int64(i.Last_ack_recv),
		"tcpi_pmtu": int64(i.Pmtu), "tcpi_rcv_ssthresh": int64(i.Rcv_ssthresh),
		"tcpi_rtt": int64(i.Rtt), "tcpi_rttvar": int64(i.Rttvar),
		"tcpi_snd_ssthresh": int64(i.Snd_ssthresh), "tcpi_snd_cwnd": int64(i.Snd_cwnd),
		"tcpi_advmss": int64(i.Advmss), "tcpi_reordering": int64(i.Reordering),
		"tcpi_rcv_rtt": int64(i.Rcv_rtt), "tcpi_rcv_space": int64(i.Rcv_space),
		"tcpi_total_retrans": int64(i.Total_retrans),
		"tcpi_pacing_rate":   int64(i.Pacing_rate), "tcpi_max_pacing_rate": int64(i.Max_pacing_rate),
		"tcpi_bytes_acked": int64(i.Bytes_acked), "tcpi_bytes_received": int64(i.Bytes_received),
		"tcpi_segs_out": int64(i.Segs_out), "tcpi_segs_in": int64(i.Segs_in),
		"tcpi_notsent_bytes": int64(i.Notsent_bytes), "tcpi_min_rtt": int64(i.Min_rtt),
		"tcpi_data_segs_in": int64(i.Data_segs_in), "tcpi_data_segs_out": int64(i.Data_segs_out),
		"tcpi_delivery_rate": int64(i.Delivery_rate),
		"tcpi_busy_time":     int64(i.Busy_time), "tcpi_rwnd_limited": int64(i.Rwnd_limited),
		"tcpi_sndbuf_limited": int64(i.Sndbuf_limited),
		"tcpi_delivered":      int64(i.Delivered), "tcpi_delivered_ce": int64(i.Delivered_ce),
		"tcpi_bytes_sent": int64(i.Bytes_sent), "tcpi_bytes_retrans": int64(i.Bytes_retrans),
		"tcpi_dsack_dups": int64(i.Dsack_dups), "tcpi_reord_seen": int64(i.Reord_seen),
		"tcpi_rcv_ooopack": int64(i.Rcv_ooopack), "tcpi_snd_wnd": int64(i.Snd_wnd),
	}
}

func (d *linuxDUT) Poll(fd int) int16 {
	k, e := d.kfd(fd)
	if e != 0 {
		return unix.POLLNVAL
	}
	p := []unix.PollFd{{Fd: int32(k), Events: unix.POLLIN | unix.POLLOUT | unix.POLLRDHUP | unix.POLLPRI}}
	if _, err := unix.Poll(p, 0); err != nil {
		return unix.POLLERR
	}
	return p[0].Revents
}

func (d *linuxDUT) Ioctl(fd, req int) (int, syscall.Errno) {
	k, e := d.kfd(fd)
	if e != 0 {
		return -1, e
	}
	n, err := unix.IoctlGetInt(k, uint(req))
	return n, sysErrno(err)
}

// Sysctl writes /proc/sys in the DUT's namespace (per-namespace settings
// only reach this run's kernel).
func (d *linuxDUT) Sysctl(key, value string) error {
	var out []byte
	var err error
	d.ns.do(func() {
		out, err = exec.Command("sysctl", "-q", "-w", key+"="+value).CombinedOutput()
	})
	if isCCKey(key) {
		// Refused for a restricted algorithm outside the root namespace;
		// each socket gets it instead (see linuxDUT.cc).
		d.cc = strings.TrimSpace(value)
		return nil
	}
	if err != nil {
		return fmt.Errorf("sysctl %s=%s: %v: %s", key, value, err, bytes.TrimSpace(out))
	}
	return nil
}

// Shell runs a backquoted script line with sh in the DUT's namespace (in
// the script's directory, so `../common/defaults.sh` resolves), so `sysctl
// -w net.ipv4...` changes only this run's kernel settings.
func (d *linuxDUT) Shell(dir, command string) (string, error) {
	var out []byte
	var err error
	// A program run by a relative path may be a symlink stored as text
	// (common/defaults.sh, common/set_sysctls.py); run its target.
	lines := strings.Split(command, "\n")
	for i, l := range lines {
		w := strings.Fields(l)
		if len(w) == 0 || dir == "" || !strings.HasPrefix(w[0], ".") {
			continue
		}
		if p, err := resolveScript(dir, w[0]); err == nil {
			at := strings.Index(l, w[0])
			lines[i] = l[:at] + p + l[at+len(w[0]):]
		}
	}
	command = strings.Join(lines, "\n")
	shims, serr := d.sysctlShim()
	if serr != nil {
		return "", serr
	}
	ccFile := filepath.Join(shims, "cc")
	d.ns.do(func() {
		cmd := exec.Command("/bin/bash", "-c", command)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), fmt.Sprintf("PACKETDRILL_PID=%d", os.Getpid()),
			"PATH="+shims+":"+os.Getenv("PATH"), "DRILL_CC_FILE="+ccFile)
		out, err = cmd.CombinedOutput()
	})
	if b, rerr := os.ReadFile(ccFile); rerr == nil && len(bytes.TrimSpace(b)) > 0 {
		d.cc = string(bytes.TrimSpace(b))
	}
	return string(out), err
}

// isCCKey reports whether a sysctl key names the default congestion
// control, in either spelling.
func isCCKey(key string) bool {
	return strings.ReplaceAll(key, "/", ".") == "net.ipv4.tcp_congestion_control"
}

// sysctlShimScript stands in for sysctl(8) in shell commands. It passes
// every setting to the real sysctl except the default congestion control,
// which it notes in $DRILL_CC_FILE and, when the namespace refuses it (a
// restricted algorithm), accepts if the kernel has the algorithm: the DUT
// then sets it on each socket, so the script gets what it asked for.
const sysctlShimScript = `#!/bin/bash
PATH="${PATH#*:}"
args=() rc=0
for a in "$@"; do
	case "$a" in
	net.ipv4.tcp_congestion_control=*|net/ipv4/tcp_congestion_control=*)
		cc="${a#*=}"
		printf '%s' "$cc" > "$DRILL_CC_FILE"
		if ! sysctl -q -w "$a" 2>/dev/null; then
			grep -qw -- "$cc" /proc/sys/net/ipv4/tcp_available_congestion_control ||
				modprobe -q "tcp_$cc" 2>/dev/null ||
				{ echo "sysctl: congestion control \"$cc\" is not available" >&2; rc=1; }
		fi;;
	*) args+=("$a");;
	esac
done
case " ${args[*]} " in
*=*) sysctl "${args[@]}" || rc=$?;;
*) [ ${#args[@]} -gt 0 ] && [ -n "${args[*]//-*/}" ] && { sysctl "${args[@]}" || rc=$?; };;
esac
exit $rc
`

// sysctlShim makes (once per DUT) the directory that puts the sysctl
// wrapper first on a shell command's PATH.
func (d *linuxDUT) sysctlShim() (string, error) {
	if d.shims != "" {
		return d.shims, nil
	}
	dir, err := os.MkdirTemp("", "drill-linux-")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "sysctl"), []byte(sysctlShimScript), 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	d.shims = dir
	return dir, nil
}

// Destroy aborts whatever the script left open (a RST rather than minutes
// of orphaned retransmissions), removes the TUN and ends the namespace.
func (d *linuxDUT) Destroy() {
	d.fds.each(func(_ int, k int) {
		_ = unix.SetsockoptLinger(k, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		_ = unix.Close(k)
	})
	d.fds = fdTable[int]{}
	_ = d.dev.Close()
	<-d.done
	d.ns.stop()
	if d.shims != "" {
		_ = os.RemoveAll(d.shims)
	}
}

// RecvMsg implements controlReceiver: recvmsg(2) with room for control
// messages.
func (d *linuxDUT) RecvMsg(fd, n, flags int) ([]byte, []byte, syscall.Errno) {
	k, e := d.kfd(fd)
	if e != 0 {
		return nil, nil, e
	}
	b, oob := make([]byte, n), make([]byte, 1024)
	m, oobn, _, _, err := unix.Recvmsg(k, b, oob, flags|unix.MSG_DONTWAIT)
	if err == unix.EAGAIN && flags&unix.MSG_ERRQUEUE == 0 {
		settle(k, unix.POLLIN)
		m, oobn, _, _, err = unix.Recvmsg(k, b, oob, flags|unix.MSG_DONTWAIT)
	}
	if err != nil {
		return nil, nil, sysErrno(err)
	}
	return b[:min(m, n)], oob[:oobn], 0
}

// OpenFile implements fileDUT: open(2), non-blocking like the sockets.
func (d *linuxDUT) OpenFile(path string, flags int) (int, syscall.Errno) {
	k, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return -1, sysErrno(err)
	}
	return d.fds.add(k), 0
}

// Pipe implements fileDUT: pipe2(2), non-blocking.
func (d *linuxDUT) Pipe() (int, int, syscall.Errno) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, -1, sysErrno(err)
	}
	return d.fds.add(p[0]), d.fds.add(p[1]), 0
}

// Sendfile implements fileDUT: sendfile(2) from offset.
func (d *linuxDUT) Sendfile(out, in int, offset int64, n int) (int, syscall.Errno) {
	ko, e := d.kfd(out)
	if e != 0 {
		return -1, e
	}
	ki, e := d.kfd(in)
	if e != 0 {
		return -1, e
	}
	m, err := unix.Sendfile(ko, ki, &offset, n)
	if err != nil {
		return -1, sysErrno(err)
	}
	return m, 0
}

// Splice implements fileDUT: splice(2) without offsets, non-blocking.
func (d *linuxDUT) Splice(in, out int, n, flags int) (int, syscall.Errno) {
	ki, e := d.kfd(in)
	if e != 0 {
		return -1, e
	}
	ko, e := d.kfd(out)
	if e != 0 {
		return -1, e
	}
	m, err := unix.Splice(ki, nil, ko, nil, n, flags|unix.SPLICE_F_NONBLOCK)
	if err != nil {
		return -1, sysErrno(err)
	}
	return int(m), 0
}

// FreshPeerPorts implements freshPeerPorter.
func (d *linuxDUT) FreshPeerPorts() {}
