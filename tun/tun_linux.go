package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/ustack-net/ustack/ip"
)

// Options configures a TUN link.
type Options struct {
	// Name is the interface name; "" lets the kernel pick tunN.
	Name string
	// MTU of the device; DefaultMTU when 0.
	MTU int
	// Offload opens the device with a virtio-net header (IFF_VNET_HDR) and
	// turns on checksum and TCP segmentation offload (TSO4/TSO6), so TCP
	// super-packets of up to 64 KiB cross in both directions, and UDP
	// segmentation offload (USO4/USO6) where the kernel has it (Linux 6.2
	// on): a kernel socket's UDP_SEGMENT super-datagram then reaches
	// ReadGSO whole (GSOUDP), and UDPOffload reports it. An older kernel
	// segments those itself and the link reads plain datagrams.
	Offload bool
	// NoUDPOffload keeps UDP segmentation offload off even where the
	// kernel has it (Offload still turns on the TCP ones).
	NoUDPOffload bool
	// HostAddrs are the kernel side's addresses on the device, e.g.
	// 198.18.0.1/24 and 2001:2::1/64; IPv6 ones skip duplicate address
	// detection so they are usable at once. Their prefixes are routed into
	// the device.
	HostAddrs []netip.Prefix
	// Routes are further prefixes the kernel routes into the device.
	Routes []netip.Prefix
	// BusyPoll, when positive, makes a read that finds no packet keep
	// trying without blocking for up to this long before it waits (the idea
	// of Linux SO_BUSY_POLL): a packet arriving meanwhile is taken without
	// the wake-up of a blocked reader, at the cost of a core spinning.
	// 0 (the default) blocks at once; at most MaxBusyPoll.
	BusyPoll time.Duration
	// Queues is the number of queues of the device: more than 1 opens it
	// with IFF_MULTI_QUEUE, one descriptor per queue (Queues), and the
	// kernel spreads the flows it sends us across them by flow hash. 0 or
	// 1 opens one queue without IFF_MULTI_QUEUE, as a plain TUN; at most
	// MaxQueues.
	Queues int
}

// MaxQueues bounds Options.Queues.
const MaxQueues = 16

// ErrMultiQueue reports that the kernel refused IFF_MULTI_QUEUE (too old,
// or the name belongs to a single-queue device).
var ErrMultiQueue = errors.New("the kernel refused a multi-queue tun device (IFF_MULTI_QUEUE)")

// MaxBusyPoll bounds Options.BusyPoll: a spin longer than this is a core
// burnt, not a latency saved.
const MaxBusyPoll = 10 * time.Millisecond

// DefaultMTU is the MTU of a TUN link whose Options leave it 0.
const DefaultMTU = 1500

// Errors from Create, usable with errors.Is. The error returned also wraps
// the errno (syscall.ENOENT, EPERM, EBUSY, ...).
var (
	ErrNoTUN      = errors.New("no /dev/net/tun: load the tun module")
	ErrPermission = errors.New("needs root or CAP_NET_ADMIN")
	ErrBusy       = errors.New("tun device is in use")
)

// createError carries a message naming the device, a sentinel and an errno.
type createError struct {
	msg          string
	kind, reason error
}

func (e *createError) Error() string   { return e.msg + " (" + e.reason.Error() + ")" }
func (e *createError) Unwrap() []error { return []error{e.kind, e.reason} }

// classify maps an errno from creating or configuring device name to one of
// the sentinels, or wraps it with what was being done.
func classify(what, name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO):
		if what == "open" {
			return &createError{ErrNoTUN.Error(), ErrNoTUN, err}
		}
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return &createError{fmt.Sprintf("%s tun device %q %s", what, name, ErrPermission), ErrPermission, err}
	case errors.Is(err, unix.EBUSY):
		return &createError{fmt.Sprintf("tun device %s is in use", name), ErrBusy, err}
	}
	return fmt.Errorf("%s tun device %q: %w", what, name, err)
}

// TUN is a Link over a Linux TUN device (golang.zx2c4.com/wireguard/tun).
//
// With offloads, wireguard's tun does two things behind our back. Its Read
// takes one packet from the kernel and, if it is a TCP or UDP super-packet,
// cuts it into MSS-sized (gso_size) packets with full checksums (gsoSplit) and completes
// partial checksums of plain packets, so Read only ever returns plain
// packets (up to BatchSize of them for one kernel packet). Its Write looks
// for runs of TCP packets of one flow (same ACK, adjacent sequence numbers,
// only ACK/PSH set, valid checksums) within the batch and coalesces them
// into super-packets (GRO) before writing, and on a kernel with USO does the
// same for runs of same-flow UDP datagrams (GSO_UDP_L4), appending payload into the
// capacity of the first packet's buffer and permuting bufs; the kernel then
// receives fewer, bigger packets. Our ReadGSO bypasses the split to hand
// super-packets up whole, and WriteGSO writes the caller's own virtio-net
// header instead of wireguard's.
type TUN struct {
	dev  wgtun.Device
	file *os.File
	raw  syscall.RawConn // file's, for reads that must not wait
	// Read-side state of ReadGSO (one reader at a time): whether its last
	// look for queued packets found some, and reads since it last looked.
	rdMore bool
	rdSkip int
	// busyPoll is Options.BusyPoll; busyHits counts reads whose packet a
	// spin found, busyBlocks spins that ended with nothing and blocked.
	busyPoll   time.Duration
	busyHits   atomic.Uint64
	busyBlocks atomic.Uint64
	name       string
	index      int
	mtu        int
	offload    bool
	uso        bool // the kernel took TUN_F_USO4|TUN_F_USO6
	closed     atomic.Bool
	// gsoDrops counts packets from the kernel whose virtio-net header
	// ReadGSO refused, by reason.
	gsoDrops [NumGSODropReasons]atomic.Uint64

	synFilter *synFilter // nil until EnableSYNFilter

	// queues are the device's queues, this one first, when it was made
	// with Options.Queues > 1 (and this is queue 0); nil otherwise.
	queues []*TUN
	queue  int  // this queue's number
	first  *TUN // queue 0 of a multi-queue device, on its other queues; nil on queue 0

	wmu     sync.Mutex // guards the write scratch below
	wbufs   [][]byte
	segBufs [][]byte
	segSize []int
}

// Create makes a TUN device in the current network namespace, configures
// the kernel side over netlink and brings it up. Close removes the device.
func Create(opts Options) (*TUN, error) {
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if opts.MTU < 68 || opts.MTU > MaxPacketSize {
		return nil, fmt.Errorf("tun: MTU %d out of [68, %d]", opts.MTU, MaxPacketSize)
	}
	if opts.BusyPoll < 0 || opts.BusyPoll > MaxBusyPoll {
		return nil, fmt.Errorf("tun: busy poll %v out of [0, %v]", opts.BusyPoll, MaxBusyPoll)
	}
	if len(opts.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tun: name %q longer than %d bytes", opts.Name, unix.IFNAMSIZ-1)
	}
	n := max(opts.Queues, 1)
	if opts.Queues < 0 || n > MaxQueues {
		return nil, fmt.Errorf("tun: %d queues out of [1, %d]", opts.Queues, MaxQueues)
	}
	first, err := openQueue(opts, opts.Name, n > 1, false)
	if err != nil {
		return nil, err
	}
	first.queue = 0
	if n > 1 {
		// Every further queue attaches to the device by the name the
		// kernel gave the first one.
		first.queues = []*TUN{first}
		for q := 1; q < n; q++ {
			t, err := openQueue(opts, first.name, true, true)
			if err != nil {
				first.Close()
				return nil, fmt.Errorf("tun device %s: queue %d: %w", first.name, q, err)
			}
			t.queue, t.first = q, first
			first.queues = append(first.queues, t)
		}
	}
	// After every queue: each one's wireguard set-up turns on offloads
	// for the whole device, which configure narrows down.
	if err := first.configure(opts); err != nil {
		first.Close()
		return nil, err
	}
	for _, t := range first.queues[min(len(first.queues), 1):] {
		t.index, t.uso = first.index, first.uso
	}
	return first, nil
}

// openQueue opens /dev/net/tun and attaches it to device name (a new one
// when name is "" or unknown), with IFF_MULTI_QUEUE when multi; attach
// says the device is our own, made by an earlier openQueue.
func openQueue(opts Options, name string, multi, attach bool) (*TUN, error) {
	// This is what wireguard's CreateTUN does, done here to tell the
	// failures apart and to open without IFF_VNET_HDR when asked.
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, classify("open", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if opts.Offload {
		flags |= unix.IFF_VNET_HDR
	}
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		// An existing device of another kind (or a tun with other flags)
		// makes TUNSETIFF fail with EINVAL: the name is taken all the same.
		// On our own device the flags are ours: it is the extra queue
		// that the kernel does not take.
		if errors.Is(err, unix.EINVAL) && name != "" && !attach {
			if _, lerr := netlink.LinkByName(name); lerr == nil {
				return nil, &createError{fmt.Sprintf("tun device %s is in use", name), ErrBusy, err}
			}
		}
		if multi && errors.Is(err, unix.EINVAL) {
			return nil, &createError{ErrMultiQueue.Error(), ErrMultiQueue, err}
		}
		return nil, classify("create", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	file := os.NewFile(uintptr(fd), "/dev/net/tun")
	dev, err := wgtun.CreateTUNFromFile(file, opts.MTU)
	if err != nil {
		file.Close()
		return nil, classify("set up", name, err)
	}
	// wireguard's listeners block once their event channel fills up.
	go func() {
		for range dev.Events() {
		}
	}()
	devName, err := dev.Name()
	if err != nil {
		dev.Close()
		return nil, err
	}
	raw, err := file.SyscallConn()
	if err != nil {
		dev.Close()
		return nil, err
	}
	return &TUN{dev: dev, file: file, raw: raw, rdMore: true, name: devName, mtu: opts.MTU, offload: opts.Offload,
		busyPoll: opts.BusyPoll}, nil
}

// Queues returns the device's queues, t first, each a Link of its own with
// its own descriptor: one reader per queue, each writing to any queue it
// likes. A single-queue device returns t alone. The kernel gives a flow to
// the queue its packets were last written to (the tun driver's automatic
// flow steering), else to one picked by the flow's hash.
func (t *TUN) Queues() []*TUN {
	if len(t.queues) == 0 {
		return []*TUN{t}
	}
	return append([]*TUN(nil), t.queues...)
}

// QueueLinks is Queues as Links (what stack.AddLink looks for).
func (t *TUN) QueueLinks() []Link {
	qs := t.Queues()
	ls := make([]Link, len(qs))
	for i, q := range qs {
		ls[i] = q
	}
	return ls
}

// Queue returns this queue's number (0 for the first).
func (t *TUN) Queue() int { return t.queue }

// configure sets the offloads and sets up the kernel side.
func (t *TUN) configure(opts Options) error {
	if t.offload {
		// Checksum offload and TSO, plus USO where the kernel has it
		// (Linux 6.2; older kernels refuse the unknown bits with EINVAL,
		// and then segment UDP super-datagrams before the TUN). ECN-marked
		// TCP super-packets are segmented by the kernel (no TUN_F_TSO_ECN).
		const tcpOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
		const udpOffloads = unix.TUN_F_USO4 | unix.TUN_F_USO6
		// Not t.file.Fd(): that would switch the descriptor to blocking
		// mode and Close could no longer interrupt a Read.
		sc, err := t.file.SyscallConn()
		if err != nil {
			return err
		}
		if cerr := sc.Control(func(fd uintptr) {
			if !opts.NoUDPOffload && unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, tcpOffloads|udpOffloads) == nil {
				t.uso = true
				return
			}
			err = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, tcpOffloads)
		}); cerr != nil {
			return cerr
		}
		if err != nil {
			return classify("set offloads on", t.name, err)
		}
	}
	link, err := netlink.LinkByName(t.name)
	if err != nil {
		return classify("find", t.name, err)
	}
	t.index = link.Attrs().Index
	// Up first: IPv6 addresses added to a down device only become usable
	// some time after it comes up.
	if err := netlink.LinkSetUp(link); err != nil {
		return classify("bring up", t.name, err)
	}
	for _, p := range opts.HostAddrs {
		addr := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return classify("add address "+p.String()+" to", t.name, err)
		}
	}
	if err := waitLocal(opts.HostAddrs); err != nil {
		return fmt.Errorf("tun device %s: %w", t.name, err)
	}
	for _, p := range opts.Routes {
		r := &netlink.Route{LinkIndex: t.index, Dst: prefixNet(p.Masked())}
		if err := netlink.RouteAdd(r); err != nil {
			return classify("add route "+p.String()+" via", t.name, err)
		}
	}
	return nil
}

// waitLocal waits until the kernel treats every address as its own. An
// IPv6 address, even with IFA_F_NODAD, gets its local route from a
// workqueue after RTM_NEWADDR returns; a packet arriving before that is
// dropped (Ip6InAddrErrors).
func waitLocal(addrs []netip.Prefix) error {
	deadline := time.Now().Add(2 * time.Second)
	for _, p := range addrs {
		for {
			routes, err := netlink.RouteGet(net.IP(p.Addr().Unmap().AsSlice()))
			if err == nil && len(routes) > 0 && routes[0].Type == unix.RTN_LOCAL {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("address %v not usable after 2s (route %v, %v)", p.Addr(), routes, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().Unmap()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// Name returns the interface name.
func (t *TUN) Name() string { return t.name }

// Index returns the interface index.
func (t *TUN) Index() int { return t.index }

// RawFD returns the device's descriptor, still owned by t (Close closes
// it), for a packet engine of its own that reads and writes it directly
// (the bench's gVisor fdbased endpoint); Read and Write must then not be
// used. The descriptor stays non-blocking.
func (t *TUN) RawFD() (int, error) {
	sc, err := t.file.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := sc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// BusyPoll returns how long a read spins before it blocks (Options.BusyPoll).
func (t *TUN) BusyPoll() time.Duration { return t.busyPoll }

// BusyPollStats returns how many reads got their packet while spinning
// (hits) and how many spins found none and blocked (blocks).
// For queue 0 of a multi-queue device, the sums over its queues.
func (t *TUN) BusyPollStats() (hits, blocks uint64) {
	for _, q := range t.Queues() {
		hits += q.busyHits.Load()
		blocks += q.busyBlocks.Load()
	}
	return hits, blocks
}

// spin reads one packet into buf without blocking, retrying until one comes
// or busyPoll has passed; ok is false when none came (the caller blocks).
// Between tries it yields, so goroutines made runnable by the last packet
// (an application woken by the stack) run on this thread meanwhile.
func (t *TUN) spin(buf []byte) (n int, ok bool, err error) {
	deadline := time.Now().Add(t.busyPoll)
	for {
		n, err := t.readNow(buf)
		if err == nil && n > 0 {
			t.busyHits.Add(1)
			return n, true, nil
		}
		if err != nil && !errors.Is(err, unix.EAGAIN) {
			return 0, true, t.readErr(err)
		}
		if !time.Now().Before(deadline) {
			t.busyBlocks.Add(1)
			return 0, false, nil
		}
		runtime.Gosched()
	}
}

// Offload reports whether the device uses virtio-net headers.
func (t *TUN) Offload() bool { return t.offload }

// UDPOffload reports whether UDP segmentation offload is on: the kernel
// took TUN_F_USO4|TUN_F_USO6, so ReadGSO may return UDP super-datagrams.
// False without Offload, with NoUDPOffload, or on a kernel before 6.2.
func (t *TUN) UDPOffload() bool { return t.uso }

// GSODrops returns how many packets from the kernel ReadGSO refused for
// their virtio-net header, by reason (GSODropReason's names), zeros left out.
func (t *TUN) GSODrops() map[string]uint64 {
	m := map[string]uint64{}
	for r := range NumGSODropReasons {
		if v := t.gsoDrops[r].Load(); v > 0 {
			m[r.String()] = v
		}
	}
	return m
}

// MTU implements Link.
func (t *TUN) MTU() int { return t.mtu }

// BatchSize implements Link: 128 with offloads (one kernel read may yield
// that many segments), else 1.
func (t *TUN) BatchSize() int { return t.dev.BatchSize() }

// GSOMaxSize implements Link.
func (t *TUN) GSOMaxSize() int {
	if t.offload {
		return MaxPacketSize
	}
	return 0
}

// Close implements Link: the device disappears with its last descriptor.
// Closing queue 0 closes every queue.
func (t *TUN) Close() error {
	t.closed.Store(true)
	err := t.dev.Close()
	for _, q := range t.queues[min(len(t.queues), 1):] {
		q.Close()
	}
	t.closeSYNFilter()
	return err
}

// readErr reports ErrClosed for any failure after Close: wireguard's
// netlink listener may post its own shutdown error for Read to return.
func (t *TUN) readErr(err error) error {
	if err != nil && t.closed.Load() {
		return ErrClosed
	}
	return err
}

// Read implements Link. With offloads, len(bufs) should be BatchSize():
// segments of a super-packet that do not fit are lost (TCP resends them).
// Errors other than ErrClosed concern one read; the link stays usable.
func (t *TUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if t.busyPoll > 0 && !t.offload && len(bufs) > 0 {
		// Without a virtio-net header a read is one plain packet.
		n, ok, err := t.spin(bufs[0][offset:])
		if ok {
			if err != nil {
				return 0, err
			}
			sizes[0] = n
			return 1, nil
		}
	}
	n, err := t.dev.Read(bufs, sizes, offset)
	if errors.Is(err, wgtun.ErrTooManySegments) {
		return max(n, 0), nil
	}
	return n, t.readErr(err)
}

// ReadGSO implements Link. With offloads and a first buffer holding
// MaxPacketSize bytes after offset >= Headroom, one packet is read as the
// kernel sent it, super-packet or partial checksum included (a partial
// checksum means the kernel vouches for the data); otherwise it is Read.
func (t *TUN) ReadGSO(bufs [][]byte, sizes []int, gso []GSO, offset int) (int, error) {
	if !t.offload || offset < Headroom || len(bufs) == 0 || len(bufs[0])-offset < MaxPacketSize {
		n, err := t.Read(bufs, sizes, offset)
		clear(gso[:n])
		return n, err
	}
	buf := bufs[0][offset-Headroom : offset+MaxPacketSize]
	var n int
	var err error
	spun := false
	if t.busyPoll > 0 {
		n, spun, err = t.spin(buf)
	}
	if !spun {
		n, err = t.file.Read(buf)
	}
	if err != nil {
		return 0, t.readErr(err)
	}
	if err := t.decodeGSORead(buf, n, &sizes[0], &gso[0]); err != nil {
		return 0, err
	}
	// Then whatever else the kernel has queued, without waiting, so the
	// caller handles it as one batch (one ACK and one wake-up per
	// connection per batch). The bytes bound keeps the ACK of the first
	// packet from waiting behind too much work. Looking costs a read that
	// fails with EAGAIN when nothing is queued, which a request/response
	// exchange would pay on every packet, on its critical path: so look
	// after a super-packet (bulk), while the last look found packets (a
	// backlog), and otherwise on every readProbeEvery-th read only.
	if !gso[0].IsGSO() && !t.rdMore && t.rdSkip < readProbeEvery-1 {
		t.rdSkip++
		return 1, nil
	}
	t.rdSkip = 0
	k, total := 1, n
	defer func() { t.rdMore = k > 1 }()
	for k < len(bufs) && total < readBatchBytes && len(bufs[k])-offset >= MaxPacketSize {
		buf := bufs[k][offset-Headroom : offset+MaxPacketSize]
		n, err := t.readNow(buf)
		if err != nil || n == 0 {
			if errors.Is(err, unix.EAGAIN) || err == nil {
				err = nil
			}
			return k, t.readErr(err)
		}
		if err := t.decodeGSORead(buf, n, &sizes[k], &gso[k]); err != nil {
			return k, err
		}
		k++
		total += n
	}
	return k, nil
}

// readBatchBytes bounds the bytes one ReadGSO gathers after its first packet.
const readBatchBytes = 256 << 10

// readProbeEvery: without a backlog, one ReadGSO in this many looks for
// more packets after its first.
const readProbeEvery = 8

// readNow reads one packet if one is queued, EAGAIN if none.
func (t *TUN) readNow(buf []byte) (int, error) {
	var n int
	var err error
	if cerr := t.raw.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), buf)
		return true
	}); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// decodeGSORead checks one read of n bytes (virtio-net header first) and
// fills in its size and GSO description. A header it refuses is counted by
// reason (GSODrops) and its packet dropped.
func (t *TUN) decodeGSORead(buf []byte, n int, size *int, gso *GSO) error {
	if n < Headroom {
		t.gsoDrops[GSOShort].Add(1)
		return badGSO(GSOShort, "%d-byte read shorter than the virtio-net header", n)
	}
	err := decodeGSOPacket(buf[:n], size, gso)
	if r, ok := GSOReasonOf(err); ok {
		t.gsoDrops[r].Add(1)
	}
	return err
}

// decodeGSOPacket decodes the virtio-net header at the start of b and
// checks the packet after it against it.
func decodeGSOPacket(b []byte, size *int, gso *GSO) error {
	g, err := decodeVirtioHdr(b[:Headroom])
	if err != nil {
		return err
	}
	pkt := b[Headroom:]
	if _, err := g.check(pkt); err != nil {
		return err
	}
	*size, *gso = len(pkt), g
	return nil
}

// Virtio-net header layout (struct virtio_net_hdr; native endian for a
// legacy TUN device).
const (
	virtioFlagNeedsCsum = 1
	virtioGSONone       = 0
	virtioGSOTCPv4      = 1
	virtioGSOTCPv6      = 4
	virtioGSOUDPL4      = 5
)

func decodeVirtioHdr(h []byte) (GSO, error) {
	g := GSO{
		NeedsCsum:  h[0]&virtioFlagNeedsCsum != 0,
		Size:       binary.NativeEndian.Uint16(h[4:]),
		CsumStart:  binary.NativeEndian.Uint16(h[6:]),
		CsumOffset: binary.NativeEndian.Uint16(h[8:]),
	}
	switch h[1] {
	case virtioGSONone:
		g.Size = 0
	case virtioGSOTCPv4:
		g.Type = GSOTCPv4
	case virtioGSOTCPv6:
		g.Type = GSOTCPv6
	case virtioGSOUDPL4:
		g.Type = GSOUDP
		if !g.NeedsCsum {
			// The segments' checksums can only be computed, not checked:
			// virtio allows UDP_L4 only with NEEDS_CSUM.
			return GSO{}, badGSO(GSONoCsum, "virtio-net UDP_L4 packet without NEEDS_CSUM")
		}
	default:
		return GSO{}, badGSO(GSOBadType, "unsupported virtio-net GSO type %#x", h[1])
	}
	if !g.NeedsCsum {
		g.CsumStart, g.CsumOffset = 0, 0
	}
	return g, nil
}

func encodeVirtioHdr(h []byte, g GSO, hdrLen int) {
	clear(h[:Headroom])
	if g.NeedsCsum || g.IsGSO() {
		h[0] = virtioFlagNeedsCsum
		binary.NativeEndian.PutUint16(h[6:], g.CsumStart)
		binary.NativeEndian.PutUint16(h[8:], g.CsumOffset)
	}
	switch g.Type {
	case GSOTCPv4:
		h[1] = virtioGSOTCPv4
	case GSOTCPv6:
		h[1] = virtioGSOTCPv6
	case GSOUDP:
		h[1] = virtioGSOUDPL4
	}
	if g.IsGSO() {
		binary.NativeEndian.PutUint16(h[2:], uint16(hdrLen))
		binary.NativeEndian.PutUint16(h[4:], g.Size)
	}
}

// Write implements Link. With offloads, offset must be at least Headroom;
// runs of one TCP flow are coalesced for the kernel (see TUN).
func (t *TUN) Write(bufs [][]byte, offset int) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.write(bufs, offset)
}

func (t *TUN) write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if len(b)-offset > t.mtu {
			return i, ErrPacketTooBig
		}
	}
	if !t.offload {
		for i, b := range bufs {
			if _, err := t.file.Write(b[offset:]); err != nil {
				return i, err
			}
		}
		return len(bufs), nil
	}
	if offset < Headroom {
		return 0, fmt.Errorf("tun: offset %d below Headroom %d", offset, Headroom)
	}
	// wireguard permutes the slice it is given; keep the caller's intact.
	t.wbufs = append(t.wbufs[:0], bufs...)
	_, err := t.dev.Write(t.wbufs, offset)
	clear(t.wbufs)
	if err != nil {
		return 0, err
	}
	return len(bufs), nil
}

// WriteGSO implements Link. With offloads, super-packets and partial
// checksums go to the kernel as they are, behind a virtio-net header built
// in the headroom (offset >= Headroom); without, they are segmented and
// checksummed here first.
func (t *TUN) WriteGSO(bufs [][]byte, gso []GSO, offset int) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	special := false
	for _, g := range gso {
		special = special || g.IsGSO() || g.NeedsCsum
	}
	if !special {
		return t.write(bufs, offset)
	}
	if t.offload && offset < Headroom {
		return 0, fmt.Errorf("tun: offset %d below Headroom %d", offset, Headroom)
	}
	for i, b := range bufs {
		pkt, g := b[offset:], gso[i]
		hdrLen, err := g.check(pkt)
		if err != nil {
			return i, err
		}
		if !g.IsGSO() && len(pkt) > t.mtu {
			return i, ErrPacketTooBig
		}
		if t.offload {
			if g.Type == GSOUDP {
				// The kernel derives each datagram's checksum from the
				// super-datagram's by the change of this length
				// (__udp_gso_segment), so it must be the whole one's.
				binary.BigEndian.PutUint16(pkt[int(g.CsumStart)+4:], uint16(len(pkt)-int(g.CsumStart)))
			}
			if g.IsGSO() && !g.NeedsCsum {
				// The kernel wants the pseudo-header sum in the field.
				fillPseudoSum(pkt, g)
				g.NeedsCsum = true
			}
			encodeVirtioHdr(b[offset-Headroom:offset], g, hdrLen)
			if _, err := t.file.Write(b[offset-Headroom:]); err != nil {
				return i, err
			}
			continue
		}
		if !g.IsGSO() && !g.NeedsCsum {
			if _, err := t.file.Write(pkt); err != nil {
				return i, err
			}
			continue
		}
		segs := g.Segments(len(pkt), hdrLen)
		for len(t.segBufs) < segs {
			t.segBufs = append(t.segBufs, make([]byte, t.mtu))
			t.segSize = append(t.segSize, 0)
		}
		n, err := Segment(pkt, g, t.segBufs, t.segSize, 0)
		if err != nil {
			return i, err
		}
		for j := range n {
			if _, err := t.file.Write(t.segBufs[j][:t.segSize[j]]); err != nil {
				return i, err
			}
		}
	}
	return len(bufs), nil
}

// fillPseudoSum puts the pseudo-header sum of a TCP or UDP super-packet
// into its checksum field, the form a partial checksum takes (RFC 9293
// §3.1, RFC 768 pseudo-header).
func fillPseudoSum(pkt []byte, g GSO) {
	var src, dst []byte
	if pkt[0]>>4 == 6 {
		src, dst = pkt[8:24], pkt[24:40]
	} else {
		src, dst = pkt[12:16], pkt[16:20]
	}
	proto := uint8(syscall.IPPROTO_TCP)
	if g.Type == GSOUDP {
		proto = syscall.IPPROTO_UDP
	}
	sum := ip.PseudoHeaderChecksum(proto, src, dst, uint16(len(pkt)-int(g.CsumStart)))
	binary.BigEndian.PutUint16(pkt[int(g.CsumStart)+int(g.CsumOffset):], sum)
}
