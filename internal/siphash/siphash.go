// Package siphash is SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast
// short-input PRF", 2012), the keyed hash behind the stack's ISNs,
// ephemeral ports and SYN cookies, and the drill's TCP Fast Open cookies
// (as Linux computes them).
package siphash

import (
	"encoding/binary"
	"math/bits"
)

// Key is a 128-bit SipHash key.
type Key struct{ K0, K1 uint64 }

// Hasher computes SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast
// short-input PRF", 2012) over data written in 8-byte words. The ISN, port
// and SYN-cookie functions hash a few fixed-size fields, so the state lives on
// the stack and nothing allocates.
type Hasher struct {
	v0, v1, v2, v3 uint64
	tail           uint64 // pending bytes, little-endian
	ntail          int    // number of pending bytes (0..7)
	length         uint64 // total bytes written
}

// New starts a hash under k.
func New(k Key) Hasher {
	return Hasher{
		v0: k.K0 ^ 0x736f6d6570736575,
		v1: k.K1 ^ 0x646f72616e646f6d,
		v2: k.K0 ^ 0x6c7967656e657261,
		v3: k.K1 ^ 0x7465646279746573,
	}
}

func (h *Hasher) round() {
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

func (h *Hasher) block(m uint64) {
	h.v3 ^= m
	h.round()
	h.round()
	h.v0 ^= m
}

// WriteUint8 appends one byte to the message.
func (h *Hasher) WriteUint8(b byte) {
	h.tail |= uint64(b) << (8 * h.ntail)
	h.ntail++
	h.length++
	if h.ntail == 8 {
		h.block(h.tail)
		h.tail, h.ntail = 0, 0
	}
}

// Write appends b to the message.
func (h *Hasher) Write(b []byte) {
	for h.ntail != 0 && len(b) > 0 {
		h.WriteUint8(b[0])
		b = b[1:]
	}
	for len(b) >= 8 {
		h.block(binary.LittleEndian.Uint64(b))
		h.length += 8
		b = b[8:]
	}
	for _, c := range b {
		h.WriteUint8(c)
	}
}

// Write16 appends v big-endian (network order, as the fields appear on the wire).
func (h *Hasher) Write16(v uint16) {
	h.WriteUint8(byte(v >> 8))
	h.WriteUint8(byte(v))
}

// Write32 appends v big-endian.
func (h *Hasher) Write32(v uint32) {
	h.Write16(uint16(v >> 16))
	h.Write16(uint16(v))
}

// Sum64 finishes the hash. The hasher must not be used afterwards.
func (h *Hasher) Sum64() uint64 {
	b := h.tail | (h.length&0xff)<<56
	h.block(b)
	h.v2 ^= 0xff
	h.round()
	h.round()
	h.round()
	h.round()
	return h.v0 ^ h.v1 ^ h.v2 ^ h.v3
}

// Sum is SipHash-2-4 of msg under k.
func Sum(k Key, msg []byte) uint64 {
	h := New(k)
	h.Write(msg)
	return h.Sum64()
}
