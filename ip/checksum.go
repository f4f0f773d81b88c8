// Package ip holds byte-slice views and builders for IPv4, IPv6, ICMPv4,
// ICMPv6 and UDP, the Internet checksum, and IPv4 and IPv6 fragment reassembly.
package ip

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the 16-bit one's complement sum (RFC 1071) of b, added to
// initial. It is not complemented: complement the final value before writing
// it into a header. b may start at any alignment and have any length; an odd
// final byte is summed as if padded with a zero byte (RFC 1071 §4.1).
//
// The sum is computed over little-endian words and byte-swapped once at the
// end: RFC 1071 §2(B) shows the one's complement sum is independent of byte
// order, and §2(C) that it may be accumulated in a wider register and folded
// later. Each 128-byte block feeds two independent streams (a 64-bit
// add-with-carry chain and 32-bit adds into spare accumulators) so that the
// carry chain's latency does not bound throughput. Unaligned loads are cheap
// on the platforms Go targets, so no alignment prologue is needed.
func Checksum(b []byte, initial uint16) uint16 {
	// Start from initial in the byte-swapped domain.
	acc := uint64(bits.ReverseBytes16(initial))
	var c uint64
	for len(b) >= 128 {
		// Two independent streams keep more ALUs busy than one carry
		// chain alone (whose latency bounds it to 8 bytes per cycle): half
		// of each block goes through an add-with-carry chain, the other
		// half is added as 32-bit words into 64-bit accumulators that
		// cannot overflow within a chunk of at most 1 GiB.
		var a0, a1 uint64
		for n := min(len(b)/128, 1<<23); n > 0; n-- {
			chunk := b[:128]
			acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(chunk[0:8]), 0)
			acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(chunk[8:16]), c)
			acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(chunk[16:24]), c)
			acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(chunk[24:32]), c)
			acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(chunk[32:40]), c)
			acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(chunk[40:48]), c)
			acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(chunk[48:56]), c)
			acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(chunk[56:64]), c)
			acc += c // end-around carry: a carry out of bit 63 re-enters at bit 0
			a0 += uint64(binary.LittleEndian.Uint32(chunk[64:68]))
			a1 += uint64(binary.LittleEndian.Uint32(chunk[68:72]))
			a0 += uint64(binary.LittleEndian.Uint32(chunk[72:76]))
			a1 += uint64(binary.LittleEndian.Uint32(chunk[76:80]))
			a0 += uint64(binary.LittleEndian.Uint32(chunk[80:84]))
			a1 += uint64(binary.LittleEndian.Uint32(chunk[84:88]))
			a0 += uint64(binary.LittleEndian.Uint32(chunk[88:92]))
			a1 += uint64(binary.LittleEndian.Uint32(chunk[92:96]))
			a0 += uint64(binary.LittleEndian.Uint32(chunk[96:100]))
			a1 += uint64(binary.LittleEndian.Uint32(chunk[100:104]))
			a0 += uint64(binary.LittleEndian.Uint32(chunk[104:108]))
			a1 += uint64(binary.LittleEndian.Uint32(chunk[108:112]))
			a0 += uint64(binary.LittleEndian.Uint32(chunk[112:116]))
			a1 += uint64(binary.LittleEndian.Uint32(chunk[116:120]))
			a0 += uint64(binary.LittleEndian.Uint32(chunk[120:124]))
			a1 += uint64(binary.LittleEndian.Uint32(chunk[124:128]))
			b = b[128:]
		}
		acc, c = bits.Add64(acc, a0, 0)
		acc += c
		acc, c = bits.Add64(acc, a1, 0)
		acc += c
	}
	if len(b) >= 64 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), 0)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:40]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:48]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:56]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:64]), c)
		acc += c
		b = b[64:]
	}
	if len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), 0)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		acc += c
		b = b[32:]
	}
	if len(b) >= 16 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), 0)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc += c
		b = b[16:]
	}
	if len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), 0)
		acc += c
		b = b[8:]
	}
	// At most 7 bytes remain: gather them into one word (each at its own
	// byte lane, so they cannot carry into each other) and add it once.
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		tail = tail<<16 | uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		// In the swapped domain a trailing byte is the low byte of its
		// word: it stands for the high byte of the zero-padded big-endian
		// word (RFC 1071 §4.1).
		tail = tail<<16 | uint64(b[0])
	}
	acc, c = bits.Add64(acc, tail, 0)
	acc += c
	return bits.ReverseBytes16(fold64(acc))
}

// fold64 reduces a 64-bit one's complement accumulator to 16 bits.
func fold64(acc uint64) uint16 {
	// Adding the two 32-bit halves with end-around carry, then the two
	// 16-bit halves twice, preserves the sum modulo 0xffff.
	hi, lo := acc>>32, acc&0xffffffff
	s := hi + lo // at most 0x1_ffff_fffe
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff) // at most 0x1_fffe
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// ChecksumCombine adds two one's complement sums.
func ChecksumCombine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s + s>>16)
}

// PseudoHeaderChecksum returns the one's complement sum of the IPv4 or IPv6
// pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1) for protocol proto between
// src and dst (both 4 or both 16 bytes), for an upper-layer length of length.
func PseudoHeaderChecksum(proto uint8, src, dst []byte, length uint16) uint16 {
	s := Checksum(src, 0)
	s = Checksum(dst, s)
	s = ChecksumCombine(s, uint16(proto))
	return ChecksumCombine(s, length)
}

// ChecksumUpdate16 returns the new value of a checksum field xsum (as it
// appears in the header, i.e. complemented) after a 16-bit field it covers
// changes from old to new, using RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
// Eqn. 3 is used rather than eqn. 2 of RFC 1141 because it never yields a
// spurious -0 (0xffff) when the true sum is +0.
func ChecksumUpdate16(xsum, old, new uint16) uint16 {
	s := ChecksumCombine(^xsum, ^old)
	s = ChecksumCombine(s, new)
	return ^s
}

// ChecksumUpdate32 is ChecksumUpdate16 for a 32-bit field aligned on a 16-bit
// boundary of the checksummed data (e.g. an IPv4 address or TCP sequence
// number).
func ChecksumUpdate32(xsum uint16, old, new uint32) uint16 {
	s := ChecksumCombine(^xsum, ^uint16(old>>16))
	s = ChecksumCombine(s, ^uint16(old))
	s = ChecksumCombine(s, uint16(new>>16))
	s = ChecksumCombine(s, uint16(new))
	return ^s
}

// ChecksumUpdateBytes is ChecksumUpdate16 for a field of any even length
// (e.g. a 16-byte IPv6 address) that changes from old to new. old and new
// must be the same length and start at an even offset of the checksummed
// data; if their lengths differ xsum is returned unchanged.
func ChecksumUpdateBytes(xsum uint16, old, new []byte) uint16 {
	if len(old) != len(new) {
		return xsum
	}
	// ~m summed over words equals ~(sum of m) in one's complement.
	s := ChecksumCombine(^xsum, ^Checksum(old, 0))
	s = ChecksumCombine(s, Checksum(new, 0))
	return ^s
}
