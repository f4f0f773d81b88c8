// Package tun moves batches of IP packets between ustack and the outside
// world: the Link interface, the real Linux TUN device (over
// golang.zx2c4.com/wireguard/tun, with or without virtio-net offloads), an
// in-memory pipe, and an impairment wrapper for any Link.
package tun

import (
	"errors"
	"os"
)

// Headroom is the minimum offset callers should leave in front of every
// packet: a TUN link with offloads writes the 10-byte virtio-net header
// (struct virtio_net_hdr, include/uapi/linux/virtio_net.h) there, so
// packets go to the kernel without a copy. Other links accept any offset.
const Headroom = 10

// MaxPacketSize is the largest packet (IP header included) any Link carries:
// a GSO super-packet is bounded by the 16-bit IPv4 total length field.
const MaxPacketSize = 65535

// Link is a network interface seen as batches of IP packets.
//
// Buffers: packet i lives at bufs[i][offset:offset+size]; the offset bytes
// before it are headroom the link may use. Read needs len(bufs[i])-offset
// of at least MTU() (MaxPacketSize for ReadGSO super-packets); len(sizes)
// and len(gso) must be at least len(bufs). Write may scribble on bufs[i]
// (headroom, headers, capacity beyond len): the caller owns the buffers
// again when Write returns, but not their contents.
//
// Read and Write are safe to call concurrently with each other; Read is
// not safe to call concurrently with Read, nor Write with Write.
type Link interface {
	// Read fills bufs with plain packets (at most MTU bytes, transport
	// checksums complete) and returns how many. It blocks until at least
	// one packet arrives or the link is closed (os.ErrClosed).
	Read(bufs [][]byte, sizes []int, offset int) (int, error)

	// ReadGSO is Read that may also deliver super-packets: gso[i]
	// describes packet i (GSO{} for a plain packet with a full checksum).
	ReadGSO(bufs [][]byte, sizes []int, gso []GSO, offset int) (int, error)

	// Write sends plain IP packets (at most MTU bytes, full checksums) and
	// returns how many were sent before the first error.
	Write(bufs [][]byte, offset int) (int, error)

	// WriteGSO is Write where gso[i] describes packet i; gso may be nil
	// (all plain). A GSO packet is segmented into MSS-sized packets by the
	// link or the kernel, never by the caller.
	WriteGSO(bufs [][]byte, gso []GSO, offset int) (int, error)

	// GSOMaxSize is the largest GSO packet the link passes on unsplit, or
	// 0 when it would segment in software (WriteGSO still works, but
	// building super-packets buys nothing).
	GSOMaxSize() int

	// MTU is the largest plain packet, IP header included.
	MTU() int

	// BatchSize is how many buffers Read wants: one super-packet read from
	// the kernel may come out as up to BatchSize packets.
	BatchSize() int

	// Close stops the link; blocked and later calls return os.ErrClosed.
	Close() error
}

// Errors shared by all links.
var (
	// ErrClosed is returned (possibly wrapped) by calls on a closed link;
	// it is os.ErrClosed, which is what the underlying *os.File reports.
	ErrClosed = os.ErrClosed

	// ErrPacketTooBig reports a plain packet larger than the MTU, or any
	// packet larger than MaxPacketSize.
	ErrPacketTooBig = errors.New("tun: packet larger than MTU")

	// ErrBadGSO reports GSO metadata that does not match the packet.
	ErrBadGSO = errors.New("tun: GSO metadata does not match packet")

	// ErrShortBuffer reports read buffers too small for the packet
	// waiting, or too few of them for its segments.
	ErrShortBuffer = errors.New("tun: read buffers too small")
)
