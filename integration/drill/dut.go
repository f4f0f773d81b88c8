package drill

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/tcp"
)

// DUT is a TCP implementation under test behind a socket API, the way a
// packetdrill script sees a kernel: system calls on file descriptors, and
// packets to and from one peer.
//
// Addressing. Every socket of a script uses one 4-tuple, as packetdrill's
// scripts do: the DUT's address and integration.DUTPort on its side, the
// peer's address and integration.PeerPort on the other (bind and connect
// take no addresses: the script's `...` means exactly that). A new socket
// may reuse the tuple once the previous connection on it is gone or in
// TIME-WAIT; an inbound segment goes to the connection that owns the tuple
// (not Done), else to a listener (a SYN opens a new connection on it, queued
// for Accept), else it is answered as a closed port answers (RFC 9293
// §3.10.7.1).
//
// File descriptors. The fds a DUT returns are its own handles for its
// sockets; the runner maps the script's fd numbers onto them (a script's
// fd is the number its socket or accept line names as the result, as in
// packetdrill, else the lowest free from 3; the runner's epoll fds share
// that numbering). Handing them out as a kernel does, lowest free from 3
// (fdTable), keeps traces readable.
//
// Calls never block. A call that would block returns EAGAIN (accept, read,
// write), EINPROGRESS (the first connect) or EALREADY (a connect while one
// is in progress); the runner implements blocking sockets (no O_NONBLOCK)
// by letting time pass (Advance) and retrying until the call completes or
// the line's time range ends. O_NONBLOCK is the runner's, not the DUT's.
//
// Errors are errno values (0 = success), named as Linux names them
// (unix.ErrnoName). A socket option, ioctl or flag the DUT does not
// implement returns ENOPROTOOPT (options) or EOPNOTSUPP (flags, ioctls);
// the runner reports those as "unsupported by the DUT: NAME" rather than as
// a script failure.
//
// Time. A virtual-time DUT's clock moves only in Advance, which fires every
// timer due on the way at its exact time; every method returns once the DUT
// is quiescent (everything it sends in response has been recorded). A
// real-time DUT (linux) implements realTimer.
type DUT interface {
	// Name identifies the implementation ("tcp", "ustack", "gvisor", "linux").
	Name() string
	// Now is the DUT's clock: time since it was created.
	Now() time.Duration
	// Advance lets d pass (virtual time: fires the timers due on the way).
	Advance(d time.Duration)
	// Inject delivers a packet from the peer at the current time. The DUT
	// builds the IP header from p.IP (TTL 0 means 64) and computes the
	// checksums.
	Inject(p *Inbound)
	// TakeEmitted returns the segments the DUT sent since the previous
	// call, in order, with their IP header fields.
	TakeEmitted() []integration.Emission

	// Socket creates a TCP stream socket (AF_INET or AF_INET6 as the DUT
	// was created) and returns its fd.
	Socket() (fd int, errno syscall.Errno)
	// Bind binds fd to the DUT's address and DUTPort (EADDRINUSE if a
	// listener or connection holds it, EINVAL if already bound).
	Bind(fd int) syscall.Errno
	// Listen makes fd a listener with the given backlog (of established
	// connections not yet accepted).
	Listen(fd, backlog int) syscall.Errno
	// Accept takes the oldest established connection off listener fd and
	// returns its new fd; EAGAIN when there is none.
	Accept(fd int) (nfd int, errno syscall.Errno)
	// Connect starts an active open to the peer. The first call returns
	// EINPROGRESS once the SYN is out; while the handshake runs, EALREADY;
	// once established, EISCONN; after a failure, the failure's errno once
	// (ECONNREFUSED, ETIMEDOUT...), as a non-blocking Linux socket does.
	Connect(fd int) syscall.Errno
	// Send queues p on fd with send(2) flags (MSG_MORE, MSG_DONTWAIT,
	// MSG_NOSIGNAL are the corpus's; others may return EOPNOTSUPP) and
	// returns how much was accepted; EAGAIN when none fits, EPIPE after
	// SHUT_WR or close by the peer's RST (no signal), ECONNRESET...
	Send(fd int, p []byte, flags int) (int, syscall.Errno)
	// Recv reads up to n bytes from fd with recv(2) flags (MSG_PEEK,
	// MSG_TRUNC, MSG_DONTWAIT...): an empty slice and 0 at EOF, EAGAIN
	// when nothing is readable.
	Recv(fd int, n int, flags int) ([]byte, syscall.Errno)
	// Shutdown is shutdown(2): how is unix.SHUT_RD, SHUT_WR or SHUT_RDWR.
	Shutdown(fd, how int) syscall.Errno
	// Close closes fd (a listener's queued connections are reset; a
	// connection with SO_LINGER {1, 0} is aborted with a RST).
	Close(fd int) syscall.Errno
	// SetSockopt is setsockopt(2) at unix.SOL_SOCKET, IPPROTO_TCP, IPPROTO_IP
	// or IPPROTO_IPV6 with Linux's option numbers. Options set on a
	// listener are inherited by the connections it accepts, as on Linux.
	SetSockopt(fd, level, name int, v OptVal) syscall.Errno
	// GetSockopt is getsockopt(2): the value as Linux would return it
	// (SO_ERROR returns and clears the pending error).
	GetSockopt(fd, level, name int) (OptVal, syscall.Errno)
	// TCPInfo is getsockopt(TCP_INFO) as a map of Linux's struct tcp_info
	// field names ("tcpi_state", "tcpi_snd_cwnd" in packets, "tcpi_rtt" in
	// µs, "tcpi_options" as TCPI_OPT_* bits...). A field the DUT cannot
	// provide is absent; the runner reports it as unsupported.
	TCPInfo(fd int) (map[string]int64, syscall.Errno)
	// Poll returns fd's readiness as poll(2) revents: POLLIN, POLLOUT,
	// POLLRDHUP, POLLERR, POLLHUP (level-triggered; epoll is built on it by
	// the runner). EBADF-like misuse returns POLLNVAL.
	Poll(fd int) int16
	// Ioctl is ioctl(2) for unix.SIOCINQ (bytes readable), SIOCOUTQ
	// (bytes not yet acknowledged, including unsent) and SIOCOUTQNSD
	// (bytes not yet sent); others return EOPNOTSUPP.
	Ioctl(fd, req int) (int, syscall.Errno)
	// Sysctl sets a kernel setting by its sysctl name
	// ("net.ipv4.tcp_sack") for sockets created from now on. A setting
	// with no equivalent in the implementation returns an error wrapping
	// ErrNoEquivalent; one whose value it cannot take, another error.
	Sysctl(key, value string) error
	// Destroy releases everything the DUT holds.
	Destroy()
}

// Inbound is a packet the scripted peer sends.
type Inbound struct {
	// Seg is the TCP segment, with absolute sequence numbers.
	Seg tcp.Segment
	// IP holds the IP header fields to send it with.
	IP integration.IPFields
	// Options, when not nil, are the TCP options as on the wire, in place
	// of Seg.Options' encoding: a line with an option tcp.Options cannot
	// carry (Fast Open, MD5), which only the linux DUT is given.
	Options []byte
	// PeerPort, when not 0, is the peer's port from this packet on: a
	// passive open after the first comes from a new port, as each of
	// packetdrill's remote connections takes a fresh ephemeral port
	// (only the linux DUT is given one).
	PeerPort uint16
}

// OptVal is a socket option value. Which field is meaningful depends on the
// option: Int for integer and boolean options (`[1]`, `[IP_PMTUDISC_DONT]`),
// Linger for SO_LINGER (`{onoff=1, linger=0}`), Str for TCP_CONGESTION
// (`"cubic"`).
type OptVal struct {
	Int    int
	Linger unix.Linger
	Str    string
}

// Options configure a DUT when it is created, from the script's
// command-line options.
type Options struct {
	// IPv6 makes the sockets AF_INET6 (--ip_version=ipv6).
	IPv6 bool
	// MTU is the link MTU (--mtu); 0 means 1500.
	MTU int
	// MSS is the segment size (--mss; 0: the MTU's) a DUT that takes
	// inbound packets through a link with an MTU cuts a packet larger
	// than the MTU into (linux: one GSO write, as packetdrill's GRO-style
	// injection).
	MSS int
}

// ErrNoEquivalent is wrapped by Sysctl for a setting the DUT has no
// equivalent for.
var ErrNoEquivalent = errors.New("no equivalent setting")

// MissingFeature is returned by Sysctl for a setting that turns on a
// feature the DUT does not have (net.ipv4.tcp_ecn=1: ECN): the script
// tests that feature, so it is reported unsupported by the DUT with the
// feature's name rather than run without it.
type MissingFeature struct {
	Feature string // as the report names it: "ECN (RFC 3168)"
	Setting string // the sysctl assignment that asked for it
}

func (m *MissingFeature) Error() string {
	return m.Setting + ": the DUT has no " + m.Feature
}

// DUTNames are the DUT names NewDUT takes, in the order `--dut all` runs
// them.
var DUTNames = []string{"tcp", "ustack", "gvisor", "linux"}

// NewDUT creates a DUT by name.
func NewDUT(name string, o Options) (DUT, error) {
	if o.MTU == 0 {
		o.MTU = 1500
	}
	switch name {
	case "tcp":
		return newTCPDUT(o), nil
	case "ustack":
		return newUstackDUT(o), nil
	case "gvisor":
		return newGVisorDUT(o)
	case "linux":
		return newLinuxDUT(o)
	}
	return nil, fmt.Errorf("unknown DUT %q (want one of %v)", name, DUTNames)
}

// Optional DUT capabilities, found by type assertion.
type (
	// realTimer is a DUT whose clock is the wall clock (linux): its
	// timing tolerance is scaled by RunOptions.ToleranceScale.
	realTimer interface{ RealTime() bool }
	// clockRestarter is a real-time DUT whose clock can start again at 0:
	// after the init command, as packetdrill starts its clock only then.
	clockRestarter interface{ RestartClock() }
	// emissionWaiter is a real-time DUT that can block until it emits
	// something or its clock reaches deadline.
	emissionWaiter interface{ WaitEmitted(deadline time.Duration) }
	// sheller runs a script's backquoted shell line (in dir, the script's
	// directory); DUTs without it get the line's sysctl settings through
	// Sysctl instead.
	sheller interface {
		Shell(dir, command string) (string, error)
	}
	// malformer reports emitted packets the DUT adapter could not turn
	// into the connection's segments (bad checksum, foreign ports).
	malformer interface{ Malformed() []string }
	// controlReceiver is recvmsg with control messages (linux): the data,
	// the raw control buffer, and the errno.
	controlReceiver interface {
		RecvMsg(fd, n, flags int) (data, oob []byte, errno syscall.Errno)
	}
	// packetBuilder serializes segments with the DUT's own addresses, for
	// captures.
	packetBuilder interface {
		BuildPacket(toPeer bool, seg *tcp.Segment, ip integration.IPFields) []byte
	}
	// freshPeerPorter is a DUT that takes Inbound.PeerPort: each passive
	// open after the first comes from a new peer port, as in packetdrill
	// (linux, ustack). The others keep one port, and a second passive open
	// on the same four-tuple meets the first connection.
	freshPeerPorter interface {
		FreshPeerPorts()
	}

	// fastOpener is a DUT that runs TCP Fast Open (linux): it sends with
	// MSG_FASTOPEN (connecting on the way, SYN data when it holds a
	// cookie), tells the keys its server cookies are made with, and
	// builds packets with options given as bytes.
	fastOpener interface {
		// SendFastOpen sends to the peer (unspec: to an AF_UNSPEC
		// address instead).
		SendFastOpen(fd int, p []byte, flags int, unspec bool) (int, syscall.Errno)
		FastOpenKeys() []FastOpenKey
		Addrs() (local, remote netip.Addr)
		BuildPacketOpts(toPeer bool, seg *tcp.Segment, opts []byte, ip integration.IPFields) []byte
	}
)

// fdTable hands out fds as a kernel does: the lowest free number from 3.
type fdTable[T any] struct {
	m map[int]T
}

func (t *fdTable[T]) add(v T) int {
	if t.m == nil {
		t.m = map[int]T{}
	}
	fd := 3
	for {
		if _, used := t.m[fd]; !used {
			t.m[fd] = v
			return fd
		}
		fd++
	}
}

func (t *fdTable[T]) get(fd int) (T, bool) {
	v, ok := t.m[fd]
	return v, ok
}

func (t *fdTable[T]) del(fd int) { delete(t.m, fd) }

// each calls f for every fd in increasing order.
func (t *fdTable[T]) each(f func(fd int, v T)) {
	n := 0
	for fd := 3; n < len(t.m); fd++ {
		if v, ok := t.m[fd]; ok {
			f(fd, v)
			n++
		}
	}
}

// errnoName names an errno as Linux does ("" for 0).
func errnoName(e syscall.Errno) string {
	switch e {
	case 0:
		return ""
	case unix.EOPNOTSUPP:
		return "EOPNOTSUPP" // the name the corpus uses for 95 (also ENOTSUP)
	case unix.EAGAIN:
		return "EAGAIN"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// errnoOf maps an error from the oracle harness or a system call to errno.
func errnoOf(err error) syscall.Errno {
	var en syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &en):
		return en
	case errors.Is(err, integration.ErrConnReset):
		return unix.ECONNRESET
	case errors.Is(err, integration.ErrConnRefused):
		return unix.ECONNREFUSED
	case errors.Is(err, integration.ErrConnTimedOut):
		return unix.ETIMEDOUT
	case errors.Is(err, integration.ErrConnClosed):
		return unix.EPIPE
	case errors.Is(err, integration.ErrNoConn):
		return unix.ENOTCONN
	}
	return unix.EIO
}
