package stack

import (
	"encoding/binary"
	"math/bits"
)

// sipKey is a 128-bit SipHash key.
type sipKey struct{ k0, k1 uint64 }

// sipHasher computes SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast
// short-input PRF", 2012) over data written in 8-byte words. The ISN, port
// and SYN-cookie functions hash a few fixed-size fields, so the state lives on
// the stack and nothing allocates.
type sipHasher struct {
	v0, v1, v2, v3 uint64
	tail           uint64 // pending bytes, little-endian
	ntail          int    // number of pending bytes (0..7)
	length         uint64 // total bytes written
}

func newSipHasher(k sipKey) sipHasher {
	return sipHasher{
		v0: k.k0 ^ 0x736f6d6570736575,
		v1: k.k1 ^ 0x646f72616e646f6d,
		v2: k.k0 ^ 0x6c7967656e657261,
		v3: k.k1 ^ 0x7465646279746573,
	}
}

func (h *sipHasher) round() {
	h.v0 += h.v1
	h.v1 = bits.RotateLeft64(h.v1, 13)
	h.v1 ^= h.v0
	h.v0 = bits.RotateLeft64(h.v0, 32)
	h.v2 += h.v3
	h.v3 = bits.RotateLeft64(h.v3, 16)
	h.v3 ^= h.v2
	h.v0 += h.v3
	h.v3 = bits.RotateLeft64(h.v3, 21)
	h.v3 ^= h.v0
	h.v2 += h.v1
	h.v1 = bits.RotateLeft64(h.v1, 17)
	h.v1 ^= h.v2
	h.v2 = bits.RotateLeft64(h.v2, 32)
}

func (h *sipHasher) block(m uint64) {
	h.v3 ^= m
	h.round()
	h.round()
	h.v0 ^= m
}

// writeByte appends one byte to the message.
func (h *sipHasher) writeByte(b byte) {
	h.tail |= uint64(b) << (8 * h.ntail)
	h.ntail++
	h.length++
	if h.ntail == 8 {
		h.block(h.tail)
		h.tail, h.ntail = 0, 0
	}
}

// write appends b to the message.
func (h *sipHasher) write(b []byte) {
	for h.ntail != 0 && len(b) > 0 {
		h.writeByte(b[0])
		b = b[1:]
	}
	for len(b) >= 8 {
		h.block(binary.LittleEndian.Uint64(b))
		h.length += 8
		b = b[8:]
	}
	for _, c := range b {
		h.writeByte(c)
	}
}

// write16 appends v big-endian (network order, as the fields appear on the wire).
func (h *sipHasher) write16(v uint16) {
	h.writeByte(byte(v >> 8))
	h.writeByte(byte(v))
}

// write32 appends v big-endian.
func (h *sipHasher) write32(v uint32) {
	h.write16(uint16(v >> 16))
	h.write16(uint16(v))
}

// sum64 finishes the hash. The hasher must not be used afterwards.
func (h *sipHasher) sum64() uint64 {
	b := h.tail | (h.length&0xff)<<56
	h.block(b)
	h.v2 ^= 0xff
	h.round()
	h.round()
	h.round()
	h.round()
	return h.v0 ^ h.v1 ^ h.v2 ^ h.v3
}

// sipHash64 is SipHash-2-4 of msg under k.
func sipHash64(k sipKey, msg []byte) uint64 {
	h := newSipHasher(k)
	h.write(msg)
	return h.sum64()
}
