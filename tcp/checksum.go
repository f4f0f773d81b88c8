package tcp

import "github.com/ustack-net/ustack/ip"

// wireProtoTCP is TCP's IP protocol number, part of the pseudo-header.
const wireProtoTCP = 6

// PseudoHeaderSum returns the uncomplemented one's complement sum of the TCP
// pseudo-header (RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6) between the
// addresses src and dst (both 4 or both 16 bytes) for a TCP length of n bytes
// (header plus payload).
func PseudoHeaderSum(src, dst []byte, n int) uint16 {
	s := ip.PseudoHeaderChecksum(wireProtoTCP, src, dst, uint16(n))
	if n > 0xffff {
		// The IPv6 pseudo-header length is 32 bits: its high half is one
		// more 16-bit word of the sum (only jumbograms get here).
		s = ip.ChecksumCombine(s, uint16(n>>16))
	}
	return s
}

// Checksum returns the TCP checksum of the segment seg (header, options and
// payload) between src and dst, complemented and ready for the checksum
// field. The current content of the checksum field is ignored, so it may hold
// anything, including a partial checksum.
func Checksum(seg, src, dst []byte) uint16 {
	s := PseudoHeaderSum(src, dst, len(seg))
	if len(seg) < ChecksumOffset+2 {
		return ^ip.Checksum(seg, s)
	}
	// The field starts at an even offset, so summing around it keeps every
	// other byte in its 16-bit column.
	s = ip.Checksum(seg[:ChecksumOffset], s)
	return ^ip.Checksum(seg[ChecksumOffset+2:], s)
}

// SetChecksumFull computes the TCP checksum of seg between src and dst and
// writes it into seg's checksum field. seg must hold at least HeaderMinLen bytes.
func SetChecksumFull(seg, src, dst []byte) {
	Header(seg).SetChecksum(Checksum(seg, src, dst))
}

// VerifyChecksum reports whether the checksum field of the received segment
// seg is correct for src and dst: the sum over pseudo-header and the whole
// segment, checksum field included, must be 0xffff (RFC 1071). A segment too
// short to hold a header fails.
func VerifyChecksum(seg, src, dst []byte) bool {
	if len(seg) < HeaderMinLen {
		return false
	}
	return ip.Checksum(seg, PseudoHeaderSum(src, dst, len(seg))) == 0xffff
}

// SetPartialChecksum prepares seg for checksum offload, as a virtio-net
// packet with VIRTIO_NET_HDR_F_NEEDS_CSUM: it writes the uncomplemented
// pseudo-header sum for the full segment length into the checksum field. The
// device (or the kernel, or CompletePartialChecksum) then sums the bytes from
// csum_start to the end of the packet, complements the result and stores it at
// csum_start+csum_offset, where csum_start is the offset of the TCP header in
// the packet (the IP header length) and csum_offset is ChecksumOffset (16).
// With GSO the sum is over the whole super-segment length; Linux's
// tcp_gso_segment adjusts it per segment. seg must hold at least HeaderMinLen bytes.
func SetPartialChecksum(seg, src, dst []byte) {
	Header(seg).SetChecksum(PseudoHeaderSum(src, dst, len(seg)))
}

// CompletePartialChecksum finishes a partial checksum left by
// SetPartialChecksum (or received in a NEEDS_CSUM packet): it sums seg, whose
// checksum field holds the pseudo-header sum, and stores the complement.
// seg starts at csum_start. seg must hold at least HeaderMinLen bytes.
func CompletePartialChecksum(seg []byte) {
	Header(seg).SetChecksum(^ip.Checksum(seg, 0))
}
