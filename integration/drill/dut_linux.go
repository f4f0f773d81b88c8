package drill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

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
// script packets are written into a TUN device (offloads off, so the kernel
// sees and sends plain MTU-sized packets with full checksums) and whatever
// TCP the kernel sends out of it is read back; socket calls are real system
// calls on real sockets; time is real time.
type linuxDUT struct {
	ns    *nsThread
	dev   *tun.TUN
	ipv6  bool
	start time.Time

	kernel, peer netip.Addr

	sock     int // the script's socket before listen/connect, or the listener
	listener bool
	conn     int // the accepted or connected socket; -1 before

	mu      sync.Mutex
	emitted []integration.Emission
	bad     []string
	nonTCP  int
	readErr error
	done    chan struct{}
	// arrived is signalled (without blocking) when a segment is recorded.
	arrived chan struct{}
}

func newLinuxDUT(ipv6 bool) (*linuxDUT, error) {
	if reason := LinuxUnavailable(); reason != "" {
		return nil, errors.New("linux DUT: " + reason)
	}
	ns, err := newNSThread()
	if err != nil {
		return nil, fmt.Errorf("linux DUT: %w", err)
	}
	d := &linuxDUT{ns: ns, ipv6: ipv6, sock: -1, conn: -1, done: make(chan struct{}), arrived: make(chan struct{}, 1)}
	d.kernel, d.peer = LinuxKernelAddr4, LinuxPeerAddr4
	pfx := 24
	if ipv6 {
		d.kernel, d.peer, pfx = LinuxKernelAddr6, LinuxPeerAddr6, 64
	}
	ns.do(func() {
		d.dev, err = tun.Create(tun.Options{
			Offload:   false,
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
	buf := make([]byte, tun.MaxPacketSize)
	bufs, sizes := [][]byte{buf}, []int{0}
	for {
		n, err := d.dev.Read(bufs, sizes, 0)
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
			d.record(bytes.Clone(buf[:sizes[0]]))
		}
	}
}

func (d *linuxDUT) record(b []byte) {
	at := d.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	var tcpBytes, src, dst []byte
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
		s, t := h.SourceAddress().As16(), h.DestinationAddress().As16()
		tcpBytes, src, dst = h.Payload(), s[:], t[:]
	default:
		d.bad = append(d.bad, fmt.Sprintf("IP version %d", header.IPVersion(b)))
		return
	}
	if !tcp.VerifyChecksum(tcpBytes, src, dst) {
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
	if from != d.kernel || to != d.peer || sport != integration.DUTPort || dport != integration.PeerPort {
		d.bad = append(d.bad, fmt.Sprintf("TCP %s:%d > %s:%d outside the script's connection", from, sport, to, dport))
		return
	}
	seg.Payload = bytes.Clone(seg.Payload)
	d.emitted = append(d.emitted, integration.Emission{At: at, Seg: seg})
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

func (d *linuxDUT) Now() time.Duration { return time.Since(d.start) }

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
func (d *linuxDUT) BuildPacket(toPeer bool, seg *tcp.Segment) []byte {
	src, dst := d.peer, d.kernel
	sport, dport := uint16(integration.PeerPort), uint16(integration.DUTPort)
	if toPeer {
		src, dst, sport, dport = dst, src, dport, sport
	}
	return buildIPPacket(src, dst, sport, dport, seg)
}

// buildIPPacket serializes a TCP segment in an IPv4 or IPv6 packet with
// correct checksums.
func buildIPPacket(src, dst netip.Addr, sport, dport uint16, seg *tcp.Segment) []byte {
	tcpLen := tcp.SegmentWireLen(seg)
	var b []byte
	var hdr int
	if src.Is6() {
		hdr = header.IPv6MinimumSize
		b = make([]byte, hdr+tcpLen)
		header.IPv6(b).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(tcpLen),
			TransportProtocol: header.TCPProtocolNumber,
			HopLimit:          64,
			SrcAddr:           tcpip.AddrFrom16(src.As16()),
			DstAddr:           tcpip.AddrFrom16(dst.As16()),
		})
	} else {
		hdr = header.IPv4MinimumSize
		b = make([]byte, hdr+tcpLen)
		ih := header.IPv4(b)
		ih.Encode(&header.IPv4Fields{
			TotalLength: uint16(hdr + tcpLen),
			TTL:         64,
			Protocol:    uint8(header.TCPProtocolNumber),
			SrcAddr:     tcpip.AddrFrom4(src.As4()),
			DstAddr:     tcpip.AddrFrom4(dst.As4()),
		})
		ih.SetChecksum(^ih.CalculateChecksum())
	}
	tcp.EncodeSegment(b[hdr:], sport, dport, seg)
	tcp.SetChecksumFull(b[hdr:], src.AsSlice(), dst.AsSlice())
	return b
}

// Inject writes the peer's segment into the TUN. The kernel processes a
// TUN write in the writing thread's softirq context, so by the time Write
// returns its answer is usually already queued for the reader.
func (d *linuxDUT) Inject(seg *tcp.Segment) {
	pkt := d.BuildPacket(false, seg)
	if _, err := d.dev.Write([][]byte{pkt}, 0); err != nil {
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

// socket returns the script's socket, creating it (in the namespace,
// non-blocking: the runner decides what would block) on first use so that
// options set before listen or connect reach it.
func (d *linuxDUT) socket() (int, error) {
	if d.sock >= 0 {
		return d.sock, nil
	}
	fam := unix.AF_INET
	if d.ipv6 {
		fam = unix.AF_INET6
	}
	var fd int
	var err error
	d.ns.do(func() {
		fd, err = unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	})
	if err != nil {
		return -1, err
	}
	d.sock = fd
	return fd, nil
}

// target is the socket options and reads apply to: the connection, or the
// script's socket before there is one.
func (d *linuxDUT) target() (int, error) {
	if d.conn >= 0 {
		return d.conn, nil
	}
	return d.socket()
}

func (d *linuxDUT) Listen() error {
	fd, err := d.socket()
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, d.sockaddr(d.kernel, integration.DUTPort)); err != nil {
		return err
	}
	if err := unix.Listen(fd, 8); err != nil {
		return err
	}
	d.listener = true
	return nil
}

// waitReadable gives the kernel a moment (well inside any tolerance) to
// finish processing an injected packet before a call that would block.
func waitReadable(fd int) {
	_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 2)
}

func (d *linuxDUT) Accept() error {
	if !d.listener {
		return unix.EINVAL
	}
	nfd, _, err := unix.Accept4(d.sock, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err == unix.EAGAIN {
		waitReadable(d.sock)
		nfd, _, err = unix.Accept4(d.sock, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	}
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	d.conn = nfd
	return nil
}

func (d *linuxDUT) Connect() error {
	fd, err := d.socket()
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, d.sockaddr(d.kernel, integration.DUTPort)); err != nil {
		return err
	}
	err = unix.Connect(fd, d.sockaddr(d.peer, integration.PeerPort))
	if err != nil && err != unix.EINPROGRESS {
		return err
	}
	d.conn = fd
	return nil
}

func (d *linuxDUT) Write(p []byte) (int, error) {
	fd, err := d.target()
	if err != nil {
		return 0, err
	}
	// MSG_NOSIGNAL: EPIPE, not SIGPIPE, as the script expects.
	n, err := unix.SendmsgN(fd, p, nil, nil, unix.MSG_NOSIGNAL)
	if err == unix.EAGAIN {
		return 0, nil
	}
	return n, err
}

func (d *linuxDUT) Read(n int) ([]byte, error) {
	fd, err := d.target()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	m, err := unix.Read(fd, b)
	if err == unix.EAGAIN {
		waitReadable(fd)
		m, err = unix.Read(fd, b)
	}
	switch {
	case err == unix.EAGAIN:
		return nil, nil
	case err != nil:
		return nil, err
	case m == 0:
		return nil, io.EOF
	}
	return b[:m], nil
}

func (d *linuxDUT) Shutdown() error {
	fd, err := d.target()
	if err != nil {
		return err
	}
	return unix.Shutdown(fd, unix.SHUT_WR)
}

func (d *linuxDUT) closeFD(fd *int) error {
	err := unix.Close(*fd)
	*fd = -1
	return err
}

func (d *linuxDUT) Close() error {
	if d.conn >= 0 {
		if d.conn == d.sock {
			d.sock = -1
		}
		return d.closeFD(&d.conn)
	}
	if d.sock >= 0 {
		return d.closeFD(&d.sock)
	}
	return integration.ErrNoConn
}

func (d *linuxDUT) Abort() error {
	if d.conn < 0 {
		return integration.ErrNoConn
	}
	if err := unix.SetsockoptLinger(d.conn, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return err
	}
	return d.Close()
}

func (d *linuxDUT) CloseListener() error {
	if !d.listener || d.sock < 0 {
		return integration.ErrNoConn
	}
	d.listener = false
	return d.closeFD(&d.sock)
}

func (d *linuxDUT) setInt(level, opt, v int) error {
	fd, err := d.target()
	if err != nil {
		return err
	}
	return unix.SetsockoptInt(fd, level, opt, v)
}

func (d *linuxDUT) SetKeepAlive(idle, interval time.Duration, count int) error {
	for _, o := range []struct{ level, opt, v int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(idle / time.Second)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(interval / time.Second)},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, count},
	} {
		if err := d.setInt(o.level, o.opt, o.v); err != nil {
			return err
		}
	}
	return nil
}

func (d *linuxDUT) SetNoDelay(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return d.setInt(unix.IPPROTO_TCP, unix.TCP_NODELAY, v)
}

func (d *linuxDUT) SetRecvBuffer(n int) error { return d.setInt(unix.SOL_SOCKET, unix.SO_RCVBUF, n) }

func (d *linuxDUT) SetUserTimeout(t time.Duration) error {
	return d.setInt(unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(t/time.Millisecond))
}

func (d *linuxDUT) SoError() string {
	fd, err := d.target()
	if err != nil {
		return errnoOf(err)
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return errnoOf(err)
	}
	if v == 0 {
		return ""
	}
	return errnoOf(syscall.Errno(v))
}

func (d *linuxDUT) Poll() (in, out, perr, hup bool) {
	fd := d.conn
	if fd < 0 {
		fd = d.sock
	}
	if fd < 0 {
		return false, false, false, false
	}
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLOUT}}
	if _, err := unix.Poll(p, 0); err != nil {
		return false, false, true, false
	}
	r := p[0].Revents
	return r&unix.POLLIN != 0, r&unix.POLLOUT != 0, r&unix.POLLERR != 0, r&unix.POLLHUP != 0
}

func (d *linuxDUT) Attached() {}

// linuxStates are tcpi_state values (include/net/tcp_states.h) as ss(8)
// names them.
var linuxStates = map[uint8]string{
	1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
	6: "TIME-WAIT", 7: "CLOSE", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING",
}

func (d *linuxDUT) State() string {
	fd := d.conn
	if fd < 0 {
		fd = d.sock
	}
	if fd < 0 {
		return "CLOSE"
	}
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return "CLOSE"
	}
	if s, ok := linuxStates[info.State]; ok {
		return s
	}
	return fmt.Sprintf("state-%d", info.State)
}

// Shell runs a backquoted script line with sh in the DUT's namespace, so
// `sysctl -w net.ipv4...` changes only this run's kernel settings.
func (d *linuxDUT) Shell(command string) (string, error) {
	var out []byte
	var err error
	d.ns.do(func() {
		out, err = exec.Command("/bin/sh", "-c", command).CombinedOutput()
	})
	return string(out), err
}

// Destroy aborts whatever the script left open (a RST rather than minutes
// of orphaned retransmissions), removes the TUN and ends the namespace.
func (d *linuxDUT) Destroy() {
	if d.conn >= 0 {
		_ = d.Abort()
	}
	for _, fd := range []*int{&d.conn, &d.sock} {
		if *fd >= 0 {
			_ = d.closeFD(fd)
		}
	}
	_ = d.dev.Close()
	<-d.done
	d.ns.stop()
}
