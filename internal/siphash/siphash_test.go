package siphash

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSipHashVectors checks the reference test vectors of the SipHash paper
// (appendix A / vectors.h): key 00..0f, messages 00, 00 01, ... of length 0..63.
func TestSipHashVectors(t *testing.T) {
	k := Key{K0: 0x0706050403020100, K1: 0x0f0e0d0c0b0a0908}
	want := map[int]uint64{
		0:  0x726fdb47dd0e0e31,
		1:  0x74f839c593dc67fd,
		7:  0xab0200f58b01d137,
		8:  0x93f5f5799a932462,
		15: 0xa129ca6149be45e5,
		63: 0x958a324ceb064572,
	}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for n, w := range want {
		require.Equalf(t, w, Sum(k, msg[:n]), "length %d", n)
		// Byte-at-a-time writing must give the same result.
		h := New(k)
		for _, b := range msg[:n] {
			h.WriteUint8(b)
		}
		require.Equalf(t, w, h.Sum64(), "length %d bytewise", n)
	}
}
