package integration

import (
	"errors"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// Ports and addresses the oracle harnesses use for their one connection. The
// DUT owns .2 / ::2 of the benchmarking ranges, the scripted peer .1 / ::1.
const (
	// DUTPort is the DUT's port, for listening and as the source port of an
	// active open (bound explicitly so traces are deterministic).
	DUTPort = 5001
	// PeerPort is the scripted peer's port.
	PeerPort = 40001
)

// Emission is one segment a DUT sent, stamped with the virtual time it left.
type Emission struct {
	// At is the virtual time of the emission since the DUT was created.
	At time.Duration
	// Seg is the segment; its Payload is a private copy. A DUT that does
	// segmentation offload may emit more than one MSS of payload in one
	// Emission (Seg.GSOSize then says the wire segment size), as Linux's
	// TSO/GSO hands the device a super-packet.
	Seg tcp.Segment
	// IP holds the IP header fields the segment was sent with. A DUT that
	// does not see its IP headers (the bare engine) fills in what its IP
	// layer would write.
	IP IPFields
	// ExtraOptions are the TCP options the segment carried that
	// tcp.Options has no field for (Fast Open, experimental, MD5), each as
	// kind, length and data, in wire order; only a DUT that sees the wire
	// (the kernel through a TUN) fills it.
	ExtraOptions []byte
}

// IPFields are the IP header fields of a packet other than addresses,
// lengths, protocol and checksum: what a script may write on a `<` line and
// check on a `>` line.
type IPFields struct {
	// TOS is the IPv4 type-of-service byte or the IPv6 traffic class:
	// DSCP in the upper six bits, ECN (RFC 3168 §5) in the lower two.
	TOS uint8
	// TTL is the IPv4 time to live or the IPv6 hop limit. On a packet to
	// inject, 0 means 64.
	TTL uint8
	// FlowLabel is the IPv6 flow label (20 bits); 0 for IPv4.
	FlowLabel uint32
	// ID is the IPv4 identification field; 0 for IPv6.
	ID uint16
	// DF is the IPv4 don't-fragment flag; false for IPv6.
	DF bool
}

// ECN returns the ECN codepoint (RFC 3168 §5): 0 Not-ECT, 1 ECT(1),
// 2 ECT(0), 3 CE.
func (f IPFields) ECN() uint8 { return f.TOS & 3 }

// DUT is a TCP implementation under test driven in virtual time, holding at
// most one connection (plus one listener) with the scripted peer. Calls are
// made from one goroutine; every call returns only once the DUT is quiescent,
// i.e. everything it will send in response has been recorded.
type DUT interface {
	// Name identifies the implementation in traces ("gvisor", "ustack").
	Name() string
	// Now is the virtual time since the DUT was created.
	Now() time.Duration
	// Advance moves virtual time forward by d, firing every timer that falls
	// due on the way at its exact time.
	Advance(d time.Duration)
	// Inject delivers seg, sent by the peer, at the current virtual time.
	Inject(seg *tcp.Segment)
	// TakeEmitted returns what the DUT sent since the previous call, in order.
	TakeEmitted() []Emission

	// Listen opens a listener on DUTPort.
	Listen() error
	// Accept takes the established connection off the listener; it fails if
	// there is none yet.
	Accept() error
	// Connect starts an active open from DUTPort to the peer.
	Connect() error
	// Write queues p for sending and returns how much was accepted.
	Write(p []byte) (int, error)
	// Read returns up to n bytes: (nil, nil) when nothing is readable,
	// io.EOF after the peer's FIN, or an ErrConn* error.
	Read(n int) ([]byte, error)
	// Shutdown closes the sending direction (SHUT_WR).
	Shutdown() error
	// Close closes the connection (or the listener if there is none).
	Close() error
	// Abort closes with a RST (SO_LINGER 0).
	Abort() error
	// SetKeepAlive enables keepalive with the given idle time, interval
	// and probe count (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT).
	SetKeepAlive(idle, interval time.Duration, count int) error
	// State is the connection's state as ss(8) names it (ESTAB, TIME-WAIT,
	// CLOSE...), or the listener's (LISTEN) if there is no connection yet.
	State() string
	// Destroy releases everything the DUT holds.
	Destroy()
}

// Connection errors as a DUT reports them, independent of implementation.
var (
	ErrConnReset    = errors.New("ECONNRESET")
	ErrConnRefused  = errors.New("ECONNREFUSED")
	ErrConnTimedOut = errors.New("ETIMEDOUT")
	ErrConnClosed   = errors.New("EPIPE")
	ErrNoConn       = errors.New("no connection")
)
