package ip

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	testSrc6 = netip.MustParseAddr("2001:2::1")
	testDst6 = netip.MustParseAddr("2001:2::2")
)

// ext is an extension header for buildIPv6: kind and total length in bytes
// (a multiple of 8, or of 4 for AH).
type ext struct {
	kind uint8
	len  int
}

// buildIPv6 builds a packet with the given extension headers, upper-layer
// protocol and upper-layer data length. Fragment headers get frag.
func buildIPv6(t testing.TB, exts []ext, proto uint8, dataLen int, fragOff uint16, more bool) []byte {
	n := IPv6HeaderLen + dataLen
	for _, e := range exts {
		n += e.len
	}
	b := make([]byte, n)
	first := proto
	if len(exts) > 0 {
		first = exts[0].kind
	}
	_, err := BuildIPv6(b, &IPv6Fields{TrafficClass: 0xb8, FlowLabel: 0x12345, NextHeader: first, HopLimit: 64, Src: testSrc6, Dst: testDst6})
	require.NoError(t, err)
	off := IPv6HeaderLen
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1].kind
		}
		switch e.kind {
		case ProtocolFragment:
			require.NoError(t, PutIPv6FragmentHeader(b[off:], next, fragOff, more, 0xdeadbeef))
		case ProtocolAH:
			b[off], b[off+1] = next, uint8(e.len/4-2)
		default:
			b[off], b[off+1] = next, uint8(e.len/8-1)
			if e.len == 8 {
				b[off+2], b[off+3] = 1, 4 // PadN option covering the rest
			}
		}
		off += e.len
	}
	for i := off; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

func TestParseIPv6Valid(t *testing.T) {
	b := buildIPv6(t, nil, ProtocolTCP, 20, 0, false)
	require.Equal(t, []byte{0x6b, 0x81, 0x23, 0x45, 0x00, 0x14, 0x06, 0x40}, b[:8])
	p, info, err := ParseIPv6(b)
	require.NoError(t, err)
	require.Equal(t, uint8(6), p.Version())
	require.Equal(t, uint8(0xb8), p.TrafficClass())
	require.Equal(t, uint32(0x12345), p.FlowLabel())
	require.Equal(t, uint16(20), p.PayloadLength())
	require.Equal(t, ProtocolTCP, p.NextHeader())
	require.Equal(t, uint8(64), p.HopLimit())
	require.Equal(t, testSrc6, p.Src())
	require.Equal(t, testDst6, p.Dst())
	require.Equal(t, testSrc6.AsSlice(), p.SrcSlice())
	require.Equal(t, testDst6.AsSlice(), p.DstSlice())
	require.Len(t, p.Payload(), 20)
	require.Equal(t, IPv6Info{Protocol: ProtocolTCP, Offset: 40}, info)
}

func TestParseIPv6ExtHeaders(t *testing.T) {
	tests := []struct {
		name    string
		exts    []ext
		proto   uint8
		fragOff uint16
		more    bool
		want    IPv6Info
	}{
		{"hop-by-hop", []ext{{ProtocolHopByHop, 8}}, ProtocolTCP, 0, false,
			IPv6Info{Protocol: ProtocolTCP, Offset: 48, ExtHeaders: 1}},
		{"rfc 8200 order", []ext{{ProtocolHopByHop, 8}, {ProtocolDstOpts, 16}, {ProtocolRouting, 24}, {ProtocolAH, 12}, {ProtocolDstOpts, 8}}, ProtocolICMPv6, 0, false,
			IPv6Info{Protocol: ProtocolICMPv6, Offset: 40 + 68, ExtHeaders: 5}},
		{"atomic fragment walks on", []ext{{ProtocolFragment, 8}, {ProtocolDstOpts, 8}}, ProtocolTCP, 0, false,
			IPv6Info{Protocol: ProtocolTCP, Offset: 56, ExtHeaders: 2, HasFragment: true, FragmentID: 0xdeadbeef, FragmentHeaderOffset: 40}},
		{"first fragment stops", []ext{{ProtocolRouting, 8}, {ProtocolFragment, 8}}, ProtocolTCP, 0, true,
			IPv6Info{Protocol: ProtocolTCP, Offset: 56, ExtHeaders: 2, HasFragment: true, MoreFragments: true, FragmentID: 0xdeadbeef, FragmentHeaderOffset: 48}},
		{"later fragment stops", []ext{{ProtocolFragment, 8}}, ProtocolDstOpts, 1448, false,
			IPv6Info{Protocol: ProtocolDstOpts, Offset: 48, ExtHeaders: 1, HasFragment: true, FragmentOffset: 1448, FragmentID: 0xdeadbeef, FragmentHeaderOffset: 40}},
		{"esp stops", []ext{{ProtocolDstOpts, 8}}, ProtocolESP, 0, false,
			IPv6Info{Protocol: ProtocolESP, Offset: 48, ExtHeaders: 1}},
		{"no next header", []ext{{ProtocolHopByHop, 8}}, ProtocolNoNext, 0, false,
			IPv6Info{Protocol: ProtocolNoNext, Offset: 48, ExtHeaders: 1}},
		{"unknown protocol", nil, 200, 0, false, IPv6Info{Protocol: 200, Offset: 40}},
		{"experimental 253", []ext{{ProtocolExp1, 16}}, ProtocolTCP, 0, false,
			IPv6Info{Protocol: ProtocolTCP, Offset: 56, ExtHeaders: 1}},
		{"8 headers allowed", []ext{{ProtocolDstOpts, 8}, {ProtocolDstOpts, 8}, {ProtocolDstOpts, 8}, {ProtocolDstOpts, 8},
			{ProtocolDstOpts, 8}, {ProtocolDstOpts, 8}, {ProtocolDstOpts, 8}, {ProtocolDstOpts, 8}}, ProtocolTCP, 0, false,
			IPv6Info{Protocol: ProtocolTCP, Offset: 40 + 64, ExtHeaders: 8}},
		{"max hdr ext len", []ext{{ProtocolDstOpts, 2048}}, ProtocolTCP, 0, false,
			IPv6Info{Protocol: ProtocolTCP, Offset: 40 + 2048, ExtHeaders: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildIPv6(t, tt.exts, tt.proto, 20, tt.fragOff, tt.more)
			p, info, err := ParseIPv6(b)
			require.NoError(t, err)
			require.Len(t, p, len(b))
			require.Equal(t, tt.want, info)
		})
	}
}

func TestParseIPv6Malformed(t *testing.T) {
	tests := []struct {
		name string
		pkt  func() []byte
		want DropReason
	}{
		{"empty", func() []byte { return nil }, DropTooShort},
		{"39 bytes", func() []byte { return buildIPv6(t, nil, ProtocolTCP, 0, 0, false)[:39] }, DropTooShort},
		{"version 4", func() []byte { b := buildIPv6(t, nil, ProtocolTCP, 0, 0, false); b[0] = 0x45; return b }, DropBadVersion},
		{"version 0", func() []byte { b := buildIPv6(t, nil, ProtocolTCP, 0, 0, false); b[0] = 0x0b; return b }, DropBadVersion},
		{"payload length > buffer", func() []byte { return buildIPv6(t, nil, ProtocolTCP, 20, 0, false)[:59] }, DropTruncated},
		{"jumbogram", func() []byte {
			b := buildIPv6(t, []ext{{ProtocolHopByHop, 8}}, ProtocolTCP, 20, 0, false)
			b[4], b[5] = 0, 0
			return b
		}, DropExtHeaderTruncated},
		{"ext header past payload", func() []byte {
			b := buildIPv6(t, []ext{{ProtocolDstOpts, 16}}, ProtocolTCP, 0, 0, false)
			b[41] = 2 // claims 24 bytes, 16 present
			return b
		}, DropExtHeaderTruncated},
		{"ext header 1 byte", func() []byte {
			b := buildIPv6(t, nil, ProtocolTCP, 1, 0, false)
			b[6] = ProtocolRouting
			return b
		}, DropExtHeaderTruncated},
		{"fragment header cut", func() []byte {
			b := buildIPv6(t, []ext{{ProtocolFragment, 8}}, ProtocolTCP, 0, 0, true)
			b[5] = 7
			return b[:47]
		}, DropExtHeaderTruncated},
		{"AH past payload", func() []byte {
			b := buildIPv6(t, []ext{{ProtocolAH, 12}}, ProtocolTCP, 0, 0, false)
			b[41] = 2 // (2+2)*4 = 16 > 12
			return b
		}, DropExtHeaderTruncated},
		{"9 headers", func() []byte {
			e := make([]ext, 9)
			for i := range e {
				e[i] = ext{ProtocolDstOpts, 8}
			}
			return buildIPv6(t, e, ProtocolTCP, 0, 0, false)
		}, DropExtHeaderChainTooLong},
		{"hop-by-hop second", func() []byte {
			return buildIPv6(t, []ext{{ProtocolDstOpts, 8}, {ProtocolHopByHop, 8}}, ProtocolTCP, 0, 0, false)
		}, DropExtHeaderOrder},
		{"two fragment headers", func() []byte {
			return buildIPv6(t, []ext{{ProtocolFragment, 8}, {ProtocolFragment, 8}}, ProtocolTCP, 0, 0, false)
		}, DropExtHeaderOrder},
		{"hop-by-hop loop", func() []byte {
			b := buildIPv6(t, []ext{{ProtocolHopByHop, 8}}, ProtocolHopByHop, 0, 0, false)
			return b
		}, DropExtHeaderOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, err := ParseIPv6(tt.pkt())
			require.Nil(t, p)
			require.Equal(t, tt.want, ReasonOf(err))
		})
	}
}

func TestParseIPv6TrimsPadding(t *testing.T) {
	b := append(buildIPv6(t, nil, ProtocolTCP, 4, 0, false), 1, 2, 3)
	p, _, err := ParseIPv6(b)
	require.NoError(t, err)
	require.Len(t, p, 44)
}

func TestBuildIPv6Errors(t *testing.T) {
	buf := make([]byte, 60)
	for _, tt := range []struct {
		name string
		f    IPv6Fields
		buf  []byte
		want error
	}{
		{"v4 source", IPv6Fields{Src: testSrc4, Dst: testDst6}, buf, ErrBadAddress},
		{"zero dest", IPv6Fields{Src: testSrc6}, buf, ErrBadAddress},
		{"flow label 21 bits", IPv6Fields{Src: testSrc6, Dst: testDst6, FlowLabel: 1 << 20}, buf, ErrBadField},
		{"buffer < 40", IPv6Fields{Src: testSrc6, Dst: testDst6}, buf[:39], ErrBufferTooSmall},
		{"payload > buffer", IPv6Fields{Src: testSrc6, Dst: testDst6, PayloadLength: 21}, buf, ErrBufferTooSmall},
		{"payload > 65535", IPv6Fields{Src: testSrc6, Dst: testDst6}, make([]byte, 40+65536), ErrBadField},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BuildIPv6(tt.buf, &tt.f)
			require.ErrorIs(t, err, tt.want)
		})
	}
	require.ErrorIs(t, PutIPv6FragmentHeader(buf[:7], 6, 0, false, 1), ErrBufferTooSmall)
	require.ErrorIs(t, PutIPv6FragmentHeader(buf, 6, 3, false, 1), ErrBadField)
}

func TestIPv6Setters(t *testing.T) {
	p := IPv6(buildIPv6(t, nil, ProtocolTCP, 4, 0, false))
	p.SwapAddrs()
	p.SetHopLimit(7)
	p.SetPayloadLength(2)
	require.Equal(t, testDst6, p.Src())
	require.Equal(t, testSrc6, p.Dst())
	require.Equal(t, uint8(7), p.HopLimit())
	require.Equal(t, uint16(2), p.PayloadLength())
}

func randAddr6(r *rand.Rand) netip.Addr {
	var a [16]byte
	for i := range a {
		a[i] = byte(r.Uint32())
	}
	return netip.AddrFrom16(a)
}

// gvisorWalk returns the upper-layer protocol and offset gVisor's
// extension header iterator finds.
func gvisorWalk(t *testing.T, p header.IPv6) (uint8, int, bool) {
	it := header.MakeIPv6PayloadIterator(header.IPv6ExtensionHeaderIdentifier(p.NextHeader()),
		buffer.MakeWithData(append([]byte(nil), p.Payload()...)))
	defer it.Release()
	for {
		h, done, err := it.Next()
		require.NoError(t, err)
		if done {
			return ProtocolNoNext, 0, false
		}
		switch h := h.(type) {
		case header.IPv6RawPayloadHeader:
			h.Release()
			return uint8(h.Identifier), int(it.HeaderOffset()), true
		default:
			h.Release()
		}
	}
}

// TestIPv6VsGVisor builds random packets with gVisor's header.IPv6 and
// random extension header chains, parses them with ours and compares with
// gVisor's accessors and its extension header iterator; then ours built
// back must parse identically in gVisor.
func TestIPv6VsGVisor(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	kinds := []uint8{ProtocolRouting, ProtocolDstOpts, ProtocolFragment}
	for i := 0; i < 3000; i++ {
		var exts []ext
		if r.IntN(3) == 0 {
			exts = append(exts, ext{ProtocolHopByHop, 8 * (1 + r.IntN(4))})
		}
		sawFrag := false
		for n := r.IntN(4); n > 0; n-- {
			k := kinds[r.IntN(len(kinds))]
			if k == ProtocolFragment {
				if sawFrag {
					continue
				}
				sawFrag = true
				exts = append(exts, ext{k, 8})
				continue
			}
			// gVisor's iterator computes offsets in uint8: keep Hdr Ext Len < 31.
			exts = append(exts, ext{k, 8 * (1 + r.IntN(30))})
		}
		proto := []uint8{ProtocolTCP, ProtocolUDP, ProtocolICMPv6, 200}[r.IntN(4)]
		dataLen := r.IntN(100)
		// Atomic fragments only: gVisor stops after any fragment header
		// with M set only when the offset is non-zero; ours stops for M too.
		b := buildIPv6(t, exts, proto, dataLen, 0, false)
		src, dst := randAddr6(r), randAddr6(r)
		tc, fl, hl := uint8(r.Uint32()), r.Uint32()&0xfffff, uint8(r.Uint32())
		gh := header.IPv6(b)
		gh.Encode(&header.IPv6Fields{TrafficClass: tc, FlowLabel: fl, PayloadLength: uint16(len(b) - 40),
			TransportProtocol: tcpip.TransportProtocolNumber(b[6]), HopLimit: hl,
			SrcAddr: tcpip.AddrFrom16(src.As16()), DstAddr: tcpip.AddrFrom16(dst.As16())})
		require.True(t, gh.IsValid(len(b)))
		p, info, err := ParseIPv6(b)
		require.NoError(t, err, "case %d", i)
		gtc, gfl := gh.TOS()
		require.Equal(t, gtc, p.TrafficClass())
		require.Equal(t, gfl, p.FlowLabel())
		require.Equal(t, gh.PayloadLength(), p.PayloadLength())
		require.Equal(t, gh.NextHeader(), p.NextHeader())
		require.Equal(t, gh.HopLimit(), p.HopLimit())
		require.Equal(t, gh.SourceAddressSlice(), p.SrcSlice())
		require.Equal(t, gh.DestinationAddressSlice(), p.DstSlice())
		gproto, goff, ok := gvisorWalk(t, gh)
		require.True(t, ok)
		require.Equal(t, gproto, info.Protocol, "case %d exts %v", i, exts)
		require.Equal(t, goff, info.Offset)
		require.Equal(t, len(exts), info.ExtHeaders)
		require.Equal(t, sawFrag, info.HasFragment)

		o := make([]byte, len(b))
		copy(o[40:], b[40:])
		ob, err := BuildIPv6(o, &IPv6Fields{TrafficClass: tc, FlowLabel: fl, NextHeader: b[6], HopLimit: hl, Src: src, Dst: dst})
		require.NoError(t, err)
		require.Equal(t, b, []byte(ob))
	}
}

var sinkIPv6Info IPv6Info

func BenchmarkParseIPv6(b *testing.B) {
	pkt := buildIPv6(b, nil, ProtocolTCP, 1440, 0, false)
	b.ReportAllocs()
	for b.Loop() {
		_, info, err := ParseIPv6(pkt)
		if err != nil {
			b.Fatal(err)
		}
		sinkIPv6Info = info
	}
}

func BenchmarkParseIPv6ExtHeaders(b *testing.B) {
	pkt := buildIPv6(b, []ext{{ProtocolHopByHop, 8}, {ProtocolDstOpts, 16}, {ProtocolRouting, 24}, {ProtocolFragment, 8}}, ProtocolTCP, 1400, 0, false)
	b.ReportAllocs()
	for b.Loop() {
		_, info, err := ParseIPv6(pkt)
		if err != nil {
			b.Fatal(err)
		}
		sinkIPv6Info = info
	}
}
