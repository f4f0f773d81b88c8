package ip

import "errors"

// DropReason says why a packet was rejected. It is an error, so parse and
// reassembly functions return it directly; the stack recovers it with
// ReasonOf and counts drops in an array indexed by reason.
type DropReason uint8

// Drop reasons, one per distinct malformation or policy.
const (
	// DropNone is the zero value: not a drop.
	DropNone DropReason = iota
	// DropTooShort: buffer shorter than the fixed header.
	DropTooShort
	// DropBadVersion: IP version field does not match the parser.
	DropBadVersion
	// DropBadHeaderLength: IPv4 IHL < 5 or the header runs past the buffer.
	DropBadHeaderLength
	// DropBadTotalLength: IPv4 total length smaller than the header.
	DropBadTotalLength
	// DropTruncated: the length field claims more bytes than the buffer has.
	DropTruncated
	// DropBadChecksum: header (IPv4) or message (ICMP) checksum is wrong.
	DropBadChecksum
	// DropExtHeaderTruncated: an IPv6 extension header runs past the payload.
	DropExtHeaderTruncated
	// DropExtHeaderChainTooLong: more IPv6 extension headers than allowed.
	DropExtHeaderChainTooLong
	// DropExtHeaderOrder: Hop-by-Hop not first, or a second Fragment header.
	DropExtHeaderOrder
	// DropBadICMP: ICMP error message without a usable invoking packet.
	DropBadICMP
	// DropFragOverlap: a fragment overlaps another one (RFC 5722 policy).
	DropFragOverlap
	// DropFragDuplicate: exact duplicate of a fragment already held.
	DropFragDuplicate
	// DropFragTooBig: reassembled datagram would exceed 65535 bytes.
	DropFragTooBig
	// DropFragBad: inconsistent fragment (length not a multiple of 8, two
	// different ends, data past the end, first fragment too short).
	DropFragBad
	// DropFragMemory: the reassembly memory cap is reached.
	DropFragMemory
	// DropFragTooMany: too many fragments for one datagram.
	DropFragTooMany
	// DropFragDiscarded: fragment of a datagram already discarded.
	DropFragDiscarded
	// DropFragHeaderChain: an IPv6 first fragment without the whole
	// header chain through the upper-layer header (RFC 8200 §4.5, RFC 7112).
	DropFragHeaderChain
	// NumDropReasons is the number of reasons, for sizing counter arrays.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	DropNone:                  "none",
	DropTooShort:              "too short",
	DropBadVersion:            "bad version",
	DropBadHeaderLength:       "bad header length",
	DropBadTotalLength:        "bad total length",
	DropTruncated:             "truncated",
	DropBadChecksum:           "bad checksum",
	DropExtHeaderTruncated:    "extension header truncated",
	DropExtHeaderChainTooLong: "extension header chain too long",
	DropExtHeaderOrder:        "extension header out of order",
	DropBadICMP:               "bad icmp message",
	DropFragOverlap:           "fragment overlap",
	DropFragDuplicate:         "duplicate fragment",
	DropFragTooBig:            "reassembled datagram too big",
	DropFragBad:               "bad fragment",
	DropFragMemory:            "reassembly memory limit",
	DropFragTooMany:           "too many fragments",
	DropFragDiscarded:         "fragment of discarded datagram",
	DropFragHeaderChain:       "first fragment without header chain",
}

// String returns a short lower-case name of the reason.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// Error implements error.
func (r DropReason) Error() string { return "ip: " + r.String() }

// ReasonOf returns the DropReason carried by err, or DropNone if err is nil
// or not a DropReason.
func ReasonOf(err error) DropReason {
	if r, ok := err.(DropReason); ok {
		return r
	}
	var r DropReason
	if errors.As(err, &r) {
		return r
	}
	return DropNone
}

// Builder errors: programming mistakes of the caller, not drops.
var (
	// ErrBufferTooSmall: the destination buffer cannot hold what is built.
	ErrBufferTooSmall = errors.New("ip: buffer too small")
	// ErrBadAddress: an address of the wrong family or an invalid address.
	ErrBadAddress = errors.New("ip: bad address")
	// ErrBadOptions: IPv4 options longer than 40 bytes or not a multiple of 4.
	ErrBadOptions = errors.New("ip: bad options length")
	// ErrBadField: a field value that does not fit its header field.
	ErrBadField = errors.New("ip: field out of range")
	// ErrNotEcho: the packet is not an ICMP echo request.
	ErrNotEcho = errors.New("ip: not an echo request")
)
