package ip

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	testSrc4 = netip.MustParseAddr("198.18.0.1")
	testDst4 = netip.MustParseAddr("198.18.0.2")
)

// validIPv4 returns a 20-byte-header packet with payload "abcd" and a
// correct checksum.
func validIPv4() []byte {
	b := make([]byte, 24)
	copy(b[20:], "abcd")
	_, err := BuildIPv4(b, &IPv4Fields{ID: 0x1234, Flags: IPv4FlagDontFragment, TTL: 64, Protocol: ProtocolTCP, Src: testSrc4, Dst: testDst4})
	if err != nil {
		panic(err)
	}
	return b
}

func fixIPv4Checksum(b []byte) []byte {
	hl := int(b[0]&0xf) * 4
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^Checksum(b[:hl], 0))
	return b
}

func TestParseIPv4Valid(t *testing.T) {
	b := validIPv4()
	// Known bytes: 45 00 0018 1234 4000 40 06 csum c6120001 c6120002.
	require.Equal(t, []byte{0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06}, b[:10])
	require.Equal(t, []byte{198, 18, 0, 1, 198, 18, 0, 2}, b[12:20])
	p, err := ParseIPv4(b)
	require.NoError(t, err)
	require.Equal(t, uint8(4), p.Version())
	require.Equal(t, uint8(5), p.IHL())
	require.Equal(t, 20, p.HeaderLen())
	require.Equal(t, uint8(0), p.TOS())
	require.Equal(t, uint16(24), p.TotalLength())
	require.Equal(t, uint16(0x1234), p.ID())
	require.Equal(t, IPv4FlagDontFragment, p.Flags())
	require.True(t, p.DontFragment())
	require.False(t, p.MoreFragments())
	require.False(t, p.IsFragment())
	require.Equal(t, uint16(0), p.FragmentOffset())
	require.Equal(t, uint8(64), p.TTL())
	require.Equal(t, ProtocolTCP, p.Protocol())
	require.Equal(t, testSrc4, p.Src())
	require.Equal(t, testDst4, p.Dst())
	require.Equal(t, []byte{198, 18, 0, 1}, p.SrcSlice())
	require.Equal(t, []byte{198, 18, 0, 2}, p.DstSlice())
	require.Empty(t, p.Options())
	require.Equal(t, []byte("abcd"), p.Payload())
	require.True(t, p.ChecksumValid())
	require.Equal(t, p.Checksum(), p.ComputeChecksum())
}

func TestParseIPv4Malformed(t *testing.T) {
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   DropReason
	}{
		{"empty", func(b []byte) []byte { return nil }, DropTooShort},
		{"19 bytes", func(b []byte) []byte { return b[:19] }, DropTooShort},
		{"version 6", func(b []byte) []byte { b[0] = 0x65; return fixIPv4Checksum(b) }, DropBadVersion},
		{"version 0", func(b []byte) []byte { b[0] = 0x05; return b }, DropBadVersion},
		{"IHL 0", func(b []byte) []byte { b[0] = 0x40; return b }, DropBadHeaderLength},
		{"IHL 4", func(b []byte) []byte { b[0] = 0x44; return b }, DropBadHeaderLength},
		{"IHL 6 past 24-byte buffer", func(b []byte) []byte { b[0] = 0x47; return b }, DropBadHeaderLength},
		{"IHL 15 short buffer", func(b []byte) []byte { b[0] = 0x4f; return b }, DropBadHeaderLength},
		{"total length 0", func(b []byte) []byte { b[2], b[3] = 0, 0; return fixIPv4Checksum(b) }, DropBadTotalLength},
		{"total length 19", func(b []byte) []byte { b[2], b[3] = 0, 19; return fixIPv4Checksum(b) }, DropBadTotalLength},
		{"total length > buffer", func(b []byte) []byte { b[2], b[3] = 0, 25; return fixIPv4Checksum(b) }, DropTruncated},
		{"total length 65535", func(b []byte) []byte { b[2], b[3] = 0xff, 0xff; return fixIPv4Checksum(b) }, DropTruncated},
		{"checksum off by one", func(b []byte) []byte { b[11]++; return b }, DropBadChecksum},
		{"header bit flip", func(b []byte) []byte { b[8] ^= 0x80; return b }, DropBadChecksum},
		{"zero checksum", func(b []byte) []byte { b[10], b[11] = 0, 0; return b }, DropBadChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseIPv4(tt.mutate(validIPv4()))
			require.Nil(t, p)
			require.Equal(t, tt.want, ReasonOf(err))
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestParseIPv4Accepts(t *testing.T) {
	t.Run("trailing bytes trimmed", func(t *testing.T) {
		b := append(validIPv4(), 0xee, 0xee, 0xee)
		p, err := ParseIPv4(b)
		require.NoError(t, err)
		require.Len(t, p, 24)
		require.Equal(t, []byte("abcd"), p.Payload())
	})
	t.Run("TTL 0 parses", func(t *testing.T) {
		b := validIPv4()
		b[8] = 0
		p, err := ParseIPv4(fixIPv4Checksum(b))
		require.NoError(t, err)
		require.Equal(t, uint8(0), p.TTL())
	})
	t.Run("options skipped", func(t *testing.T) {
		b := make([]byte, 28)
		copy(b[24:], "wxyz")
		opts := []byte{0x94, 0x04, 0x00, 0x00} // router alert (RFC 2113)
		_, err := BuildIPv4(b, &IPv4Fields{TTL: 1, Protocol: 2, Src: testSrc4, Dst: testDst4, Options: opts})
		require.NoError(t, err)
		p, err := ParseIPv4(b)
		require.NoError(t, err)
		require.Equal(t, 24, p.HeaderLen())
		require.Equal(t, opts, p.Options())
		require.Equal(t, []byte("wxyz"), p.Payload())
	})
	t.Run("header only", func(t *testing.T) {
		b := validIPv4()[:20]
		b[3] = 20
		p, err := ParseIPv4(fixIPv4Checksum(b))
		require.NoError(t, err)
		require.Empty(t, p.Payload())
	})
	t.Run("fragment fields", func(t *testing.T) {
		b := make([]byte, 28)
		_, err := BuildIPv4(b, &IPv4Fields{ID: 7, Flags: IPv4FlagMoreFragments, FragmentOffset: 8 * 1000, TTL: 9, Protocol: ProtocolUDP, Src: testSrc4, Dst: testDst4})
		require.NoError(t, err)
		p, err := ParseIPv4(b)
		require.NoError(t, err)
		require.True(t, p.IsFragment())
		require.True(t, p.MoreFragments())
		require.Equal(t, uint16(8000), p.FragmentOffset())
		require.Equal(t, []byte{0x20 | 0x03, 0xe8}, []byte(p[6:8]))
	})
}

func TestBuildIPv4Errors(t *testing.T) {
	buf := make([]byte, 40)
	base := IPv4Fields{TTL: 1, Src: testSrc4, Dst: testDst4}
	tests := []struct {
		name string
		edit func(f *IPv4Fields) []byte
		want error
	}{
		{"v6 source", func(f *IPv4Fields) []byte { f.Src = netip.MustParseAddr("::1"); return buf }, ErrBadAddress},
		{"zero dest", func(f *IPv4Fields) []byte { f.Dst = netip.Addr{}; return buf }, ErrBadAddress},
		{"options not multiple of 4", func(f *IPv4Fields) []byte { f.Options = []byte{1, 1, 1}; return buf }, ErrBadOptions},
		{"options > 40", func(f *IPv4Fields) []byte { f.Options = make([]byte, 44); return make([]byte, 100) }, ErrBadOptions},
		{"offset not multiple of 8", func(f *IPv4Fields) []byte { f.FragmentOffset = 12; return buf }, ErrBadField},
		{"flags > 7", func(f *IPv4Fields) []byte { f.Flags = 8; return buf }, ErrBadField},
		{"total < header", func(f *IPv4Fields) []byte { f.TotalLength = 10; return buf }, ErrBadField},
		{"buffer < total", func(f *IPv4Fields) []byte { f.TotalLength = 41; return buf }, ErrBufferTooSmall},
		{"buffer < header", func(f *IPv4Fields) []byte { return buf[:19] }, ErrBadField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			b := tt.edit(&f)
			_, err := BuildIPv4(b, &f)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestIPv4Setters(t *testing.T) {
	b := IPv4(validIPv4())
	b.SetTTL(3)
	require.Equal(t, uint8(3), b.TTL())
	require.True(t, b.ChecksumValid())
	b.SwapAddrs()
	require.Equal(t, testDst4, b.Src())
	require.Equal(t, testSrc4, b.Dst())
	require.True(t, b.ChecksumValid())
	b.SetID(99)
	b.SetTotalLength(24)
	require.False(t, b.ChecksumValid())
	b.UpdateChecksum()
	require.True(t, b.ChecksumValid())
	require.Equal(t, uint16(99), b.ID())
}

func randAddr4(r *rand.Rand) netip.Addr {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], r.Uint32())
	return netip.AddrFrom4(a)
}

// TestIPv4VsGVisor builds random packets with gVisor's header.IPv4, parses
// them with ours, and the reverse.
func TestIPv4VsGVisor(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 5000; i++ {
		optLen := 4 * r.IntN(11)
		payLen := r.IntN(200)
		total := 20 + optLen + payLen
		opts := make([]byte, optLen)
		for j := range opts {
			opts[j] = byte(r.Uint32())
		}
		src, dst := randAddr4(r), randAddr4(r)
		tos, id, flags := uint8(r.Uint32()), uint16(r.Uint32()), uint8(r.IntN(8))
		fragOff := uint16(r.IntN(8192)) * 8
		ttl, proto := uint8(r.Uint32()), uint8(r.Uint32())

		// gVisor → ours.
		g := make([]byte, total+r.IntN(4))
		for j := 20 + optLen; j < len(g); j++ {
			g[j] = byte(r.Uint32())
		}
		gh := header.IPv4(g)
		gh.Encode(&header.IPv4Fields{TOS: tos, TotalLength: uint16(total), ID: id, Flags: flags,
			FragmentOffset: fragOff, TTL: ttl, Protocol: proto,
			SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
		copy(g[20:], opts)
		g[0] = 0x40 | uint8((20+optLen)/4)
		gh.SetChecksum(0)
		gh.SetChecksum(^gh.CalculateChecksum())
		require.True(t, gh.IsChecksumValid())
		p, err := ParseIPv4(g)
		require.NoError(t, err, "case %d", i)
		require.Len(t, p, total)
		gtos, _ := gh.TOS()
		require.Equal(t, gtos, p.TOS())
		require.Equal(t, gh.TotalLength(), p.TotalLength())
		require.Equal(t, int(gh.HeaderLength()), p.HeaderLen())
		require.Equal(t, gh.ID(), p.ID())
		require.Equal(t, gh.Flags(), p.Flags())
		require.Equal(t, gh.More(), p.MoreFragments())
		require.Equal(t, gh.FragmentOffset(), p.FragmentOffset())
		require.Equal(t, gh.TTL(), p.TTL())
		require.Equal(t, gh.Protocol(), p.Protocol())
		require.Equal(t, gh.Checksum(), p.Checksum())
		require.Equal(t, gh.SourceAddressSlice(), p.SrcSlice())
		require.Equal(t, gh.DestinationAddressSlice(), p.DstSlice())
		require.Equal(t, []byte(gh.Options()), p.Options())
		require.Equal(t, []byte(gh[gh.HeaderLength():total]), p.Payload())

		// Ours → gVisor.
		o := make([]byte, total)
		copy(o[20+optLen:], g[20+optLen:total])
		ob, err := BuildIPv4(o, &IPv4Fields{TOS: tos, ID: id, Flags: flags, FragmentOffset: fragOff,
			TTL: ttl, Protocol: proto, Src: src, Dst: dst, Options: opts})
		require.NoError(t, err)
		require.Equal(t, []byte(p), []byte(ob), "case %d: builders disagree", i)
		oh := header.IPv4(ob)
		require.True(t, oh.IsValid(len(ob)))
		require.True(t, oh.IsChecksumValid())
		require.Equal(t, tcpip.AddrFrom4(src.As4()), oh.SourceAddress())
		require.Equal(t, tcpip.AddrFrom4(dst.As4()), oh.DestinationAddress())
		require.Equal(t, fragOff, oh.FragmentOffset())
		require.Equal(t, flags, oh.Flags())
		require.Equal(t, uint16(total), oh.TotalLength())
	}
}

var sinkIPv4 IPv4

func BenchmarkParseIPv4(b *testing.B) {
	pkt := make([]byte, 1500)
	_, err := BuildIPv4(pkt, &IPv4Fields{TTL: 64, Protocol: ProtocolTCP, Src: testSrc4, Dst: testDst4})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParseIPv4(pkt)
		if err != nil {
			b.Fatal(err)
		}
		sinkIPv4 = p
	}
}

func BenchmarkBuildIPv4(b *testing.B) {
	pkt := make([]byte, 1500)
	f := IPv4Fields{TTL: 64, Protocol: ProtocolTCP, Src: testSrc4, Dst: testDst4}
	b.ReportAllocs()
	for b.Loop() {
		p, err := BuildIPv4(pkt, &f)
		if err != nil {
			b.Fatal(err)
		}
		sinkIPv4 = p
	}
}

func BenchmarkParseIPv4Error(b *testing.B) {
	pkt := validIPv4()
	pkt[11]++
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseIPv4(pkt); ReasonOf(err) != DropBadChecksum {
			b.Fatal(err)
		}
	}
}
