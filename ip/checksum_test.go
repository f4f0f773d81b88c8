package ip

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// naiveChecksum is the RFC 1071 §4.1 reference loop, used as a second oracle.
func naiveChecksum(b []byte, initial uint16) uint16 {
	sum := uint32(initial)
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

func TestChecksumKnownValues(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		initial uint16
		want    uint16
	}{
		{"empty", nil, 0, 0},
		{"empty initial", nil, 0x1234, 0x1234},
		{"one byte", []byte{0xab}, 0, 0xab00},
		{"two bytes", []byte{0xab, 0xcd}, 0, 0xabcd},
		{"three bytes", []byte{0xab, 0xcd, 0xef}, 0, 0xabcd + 0xef00 - 0xffff},
		// RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
		{"rfc1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0, 0xddf2},
		{"all ones 8", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0, 0xffff},
		{"carry from initial", []byte{0xff, 0xff}, 0x0001, 0x0001},
		{"zero initial ffff", []byte{0x00, 0x00}, 0xffff, 0xffff},
		// A classic IPv4 header (checksum field zeroed): sum is ^0xb861.
		{"ipv4 header", []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0, ^uint16(0xb861)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Checksum(tt.in, tt.initial))
			require.Equal(t, tt.want, naiveChecksum(tt.in, tt.initial))
		})
	}
}

func TestChecksumLongAllOnes(t *testing.T) {
	// Saturate every carry path: 64 KiB of 0xff sums to 0xffff.
	b := make([]byte, 65535+1)
	for i := range b {
		b[i] = 0xff
	}
	for _, n := range []int{127, 128, 129, 255, 256, 4095, 65535, 65536} {
		require.Equal(t, naiveChecksum(b[:n], 0xffff), Checksum(b[:n], 0xffff), "n=%d", n)
		require.Equal(t, naiveChecksum(b[1:n], 0xfffe), Checksum(b[1:n], 0xfffe), "n=%d", n)
	}
}

// TestChecksumVsGVisor compares against gVisor's checksum.Checksum on random
// data, random lengths, random start offsets (alignments) and random initial
// values.
func TestChecksumVsGVisor(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 70000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for i := 0; i < 20000; i++ {
		off := r.IntN(16)
		var n int
		switch r.IntN(4) {
		case 0:
			n = r.IntN(64)
		case 1:
			n = r.IntN(1600)
		case 2:
			n = r.IntN(65536 - off)
		default:
			n = r.IntN(300)
		}
		b := buf[off : off+n]
		initial := uint16(r.Uint32())
		want := checksum.Checksum(b, initial)
		got := Checksum(b, initial)
		if got != want {
			t.Fatalf("case %d: off=%d len=%d initial=%#04x: got %#04x, gVisor %#04x", i, off, n, initial, got, want)
		}
		if n < 2000 {
			require.Equal(t, naiveChecksum(b, initial), got)
		}
	}
}

func TestChecksumCombine(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 3000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for i := 0; i < 2000; i++ {
		n := r.IntN(len(buf))
		split := r.IntN(n+1) &^ 1 // split at an even offset
		whole := Checksum(buf[:n], 0)
		parts := ChecksumCombine(Checksum(buf[:split], 0), Checksum(buf[split:n], 0))
		// 0x0000 and 0xffff are both zero in one's complement.
		if whole == 0xffff {
			whole = 0
		}
		if parts == 0xffff {
			parts = 0
		}
		require.Equal(t, whole, parts, "n=%d split=%d", n, split)
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	src4 := []byte{198, 18, 0, 1}
	dst4 := []byte{198, 18, 0, 2}
	// Hand-computed: c612+0001+c612+0002+0006+0014.
	want := naiveChecksum([]byte{0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x02, 0x00, 0x06, 0x00, 0x14}, 0)
	require.Equal(t, want, PseudoHeaderChecksum(6, src4, dst4, 20))
	src6 := make([]byte, 16)
	dst6 := make([]byte, 16)
	src6[0], src6[1], src6[2], src6[15] = 0x20, 0x01, 0x00, 0x02
	dst6[0], dst6[1], dst6[2], dst6[15] = 0x20, 0x01, 0x00, 0x01
	ph := append(append(append([]byte{}, src6...), dst6...), 0, 0, 0x12, 0x34, 0, 0, 0, 58)
	require.Equal(t, naiveChecksum(ph, 0), PseudoHeaderChecksum(58, src6, dst6, 0x1234))
}

// TestChecksumUpdate checks RFC 1624 incremental updates against a full
// recomputation.
func TestChecksumUpdate(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	norm := func(x uint16) uint16 {
		if x == 0xffff {
			return 0
		}
		return x
	}
	for i := 0; i < 5000; i++ {
		n := 20 + 2*r.IntN(30)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		xsum := ^Checksum(b, 0)
		switch i % 3 {
		case 0:
			off := 2 * r.IntN(n/2)
			old := binary.BigEndian.Uint16(b[off:])
			nw := uint16(r.Uint32())
			binary.BigEndian.PutUint16(b[off:], nw)
			require.Equal(t, norm(^Checksum(b, 0)), norm(ChecksumUpdate16(xsum, old, nw)))
		case 1:
			off := 2 * r.IntN(n/2-1)
			old := binary.BigEndian.Uint32(b[off:])
			nw := r.Uint32()
			binary.BigEndian.PutUint32(b[off:], nw)
			require.Equal(t, norm(^Checksum(b, 0)), norm(ChecksumUpdate32(xsum, old, nw)))
		default:
			off := 2 * r.IntN(n/2-8)
			old := append([]byte(nil), b[off:off+16]...)
			for j := off; j < off+16; j++ {
				b[j] = byte(r.Uint32())
			}
			require.Equal(t, norm(^Checksum(b, 0)), norm(ChecksumUpdateBytes(xsum, old, b[off:off+16])))
		}
	}
	// RFC 1624 §3 example: a header whose sum is 0xcd7a changes 0x5555 to
	// 0x3285; the checksum goes from 0x3285 to 0x0000 (eqn. 3), not 0xffff.
	require.Equal(t, uint16(0x0000), ChecksumUpdate16(0xdd2f, 0x5555, 0x3285))
	// Mismatched lengths leave the checksum alone.
	require.Equal(t, uint16(0x1234), ChecksumUpdateBytes(0x1234, []byte{1, 2}, []byte{1, 2, 3, 4}))
}

var sinkSum uint16

func benchSizes(b *testing.B, f func([]byte, uint16) uint16) {
	for _, n := range []int{64, 1500, 65535} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]byte, n+1)
			for i := range buf {
				buf[i] = byte(i * 7)
			}
			// Start at an odd address to include the unaligned case.
			p := buf[1:]
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sinkSum = f(p, 0)
			}
		})
	}
}

func BenchmarkChecksum(b *testing.B)       { benchSizes(b, Checksum) }
func BenchmarkChecksumGVisor(b *testing.B) { benchSizes(b, checksum.Checksum) }
