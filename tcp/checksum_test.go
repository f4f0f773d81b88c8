package tcp_test

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
)

// wireNaiveChecksum is the RFC 1071 definition spelled out with an explicit
// pseudo-header buffer: the slow, obviously-correct reference.
func wireNaiveChecksum(seg, src, dst []byte) uint16 {
	var ph []byte
	ph = append(ph, src...)
	ph = append(ph, dst...)
	if len(src) == 4 {
		ph = append(ph, 0, 6, byte(len(seg)>>8), byte(len(seg)))
	} else {
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(seg)))
		ph = append(ph, 0, 0, 0, 6)
	}
	all := append(ph, seg...)
	all[len(ph)+tcp.ChecksumOffset], all[len(ph)+tcp.ChecksumOffset+1] = 0, 0
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var sum uint64
	for i := 0; i < len(all); i += 2 {
		sum += uint64(all[i])<<8 | uint64(all[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

var (
	wireV4Src = []byte{198, 18, 0, 1}
	wireV4Dst = []byte{198, 18, 0, 2}
	wireV6Src = []byte{0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	wireV6Dst = []byte{0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}
)

func TestChecksumKnownSegment(t *testing.T) {
	// The SYN of header_test.go from 198.18.0.1 to 198.18.0.2; 0xc5d2 was
	// computed independently (Python, struct-unpacked 16-bit words).
	seg := append([]byte(nil), wireSYNBytes...)
	got := tcp.Checksum(seg, wireV4Src, wireV4Dst)
	assert.Equal(t, wireNaiveChecksum(seg, wireV4Src, wireV4Dst), got)
	assert.Equal(t, uint16(0xc5d2), got)
	assert.False(t, tcp.VerifyChecksum(seg, wireV4Src, wireV4Dst), "field holds 0x1234")
	tcp.SetChecksumFull(seg, wireV4Src, wireV4Dst)
	assert.Equal(t, got, tcp.Header(seg).Checksum())
	assert.True(t, tcp.VerifyChecksum(seg, wireV4Src, wireV4Dst))
	// Swapping the addresses does not change a one's complement sum; changing one does.
	assert.True(t, tcp.VerifyChecksum(seg, wireV4Dst, wireV4Src))
	assert.False(t, tcp.VerifyChecksum(seg, wireV4Src, []byte{198, 18, 0, 3}))
	seg[30] ^= 0x40
	assert.False(t, tcp.VerifyChecksum(seg, wireV4Src, wireV4Dst), "one flipped bit")
	assert.False(t, tcp.VerifyChecksum(seg[:19], wireV4Src, wireV4Dst), "too short")
}

func TestChecksumRandomAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		v6 := i%2 == 1
		src, dst := make([]byte, 4), make([]byte, 4)
		if v6 {
			src, dst = make([]byte, 16), make([]byte, 16)
		}
		wireFillRand(r, src)
		wireFillRand(r, dst)
		n := 20 + r.IntN(1600)
		if i%100 == 0 {
			n = 20 + r.IntN(65535-20-40)
		}
		off := r.IntN(8) // any alignment
		buf := make([]byte, off+n)
		seg := buf[off:]
		wireFillRand(r, seg)
		want := wireNaiveChecksum(seg, src, dst)
		require.Equal(t, want, tcp.Checksum(seg, src, dst), "case %d len %d off %d", i, n, off)

		tcp.SetChecksumFull(seg, src, dst)
		require.True(t, tcp.VerifyChecksum(seg, src, dst))

		// The virtio-net NEEDS_CSUM path: partial, then completed by "the device".
		wireFillRand(r, seg[tcp.ChecksumOffset:tcp.ChecksumOffset+2])
		tcp.SetPartialChecksum(seg, src, dst)
		require.Equal(t, tcp.PseudoHeaderSum(src, dst, n), tcp.Header(seg).Checksum())
		tcp.CompletePartialChecksum(seg)
		require.Equal(t, want, tcp.Header(seg).Checksum(), "partial completion, case %d", i)
		require.True(t, tcp.VerifyChecksum(seg, src, dst))
	}
}

func TestPseudoHeaderSumJumbo(t *testing.T) {
	// IPv6 jumbograms have a 32-bit upper-layer length (RFC 2675): its high
	// half must be counted.
	n := 0x12345
	seg := make([]byte, n)
	assert.Equal(t, wireNaiveChecksum(seg, wireV6Src, wireV6Dst), tcp.Checksum(seg, wireV6Src, wireV6Dst))
}

func TestChecksumShortSegmentNoPanic(t *testing.T) {
	// Output-side helpers never see these; they must still not panic.
	for n := range 18 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i + 1)
		}
		_ = tcp.Checksum(b, wireV4Src, wireV4Dst)
		assert.False(t, tcp.VerifyChecksum(b, wireV4Src, wireV4Dst))
	}
}

func wireFillRand(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}
