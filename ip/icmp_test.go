package ip

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestICMPv4EchoBuildParse(t *testing.T) {
	buf := make([]byte, 64)
	m, err := BuildICMPv4Echo(buf, false, 0x0102, 0x0304, []byte("ping"))
	require.NoError(t, err)
	// 08 00 csum 0102 0304 "ping": sum 0800+0102+0304+7069+6e67 = ead6, csum ^ead6 = 1529.
	require.Equal(t, []byte{0x08, 0x00, 0x15, 0x29, 0x01, 0x02, 0x03, 0x04, 'p', 'i', 'n', 'g'}, []byte(m))
	p, err := ParseICMPv4(m)
	require.NoError(t, err)
	require.Equal(t, ICMPv4Echo, p.Type())
	require.Equal(t, uint8(0), p.Code())
	require.Equal(t, uint16(0x0102), p.Ident())
	require.Equal(t, uint16(0x0304), p.Seq())
	require.Equal(t, []byte("ping"), p.Data())
	require.False(t, p.IsError())
	g := header.ICMPv4(m)
	require.Equal(t, header.ICMPv4Echo, g.Type())
	require.Equal(t, g.Checksum(), header.ICMPv4Checksum(g[:8], Checksum(g[8:], 0)))

	_, err = BuildICMPv4Echo(buf[:11], true, 1, 2, []byte("ping"))
	require.ErrorIs(t, err, ErrBufferTooSmall)
}

// invoking4 returns an IPv4/TCP packet quoted in errors: 20-byte header
// and the first 8 bytes of TCP.
func invoking4(t *testing.T) []byte {
	b := make([]byte, 40)
	copy(b[20:], []byte{0x30, 0x39, 0x00, 0x50, 1, 2, 3, 4})
	_, err := BuildIPv4(b, &IPv4Fields{TTL: 1, Protocol: ProtocolTCP, Src: testDst4, Dst: testSrc4})
	require.NoError(t, err)
	return b
}

func TestICMPv4Errors(t *testing.T) {
	inv := invoking4(t)
	tests := []struct {
		name       string
		typ, code  uint8
		mtu        uint16
		wantMTU    uint16
		wantPtr    uint8
		bufLen     int
		wantQuoted int
	}{
		{"port unreachable", ICMPv4DestUnreach, ICMPv4PortUnreachable, 0, 0, 0, 100, 40},
		{"protocol unreachable", ICMPv4DestUnreach, ICMPv4ProtoUnreachable, 0, 0, 0, 100, 40},
		{"host unreachable", ICMPv4DestUnreach, ICMPv4HostUnreachable, 0, 0, 0, 100, 40},
		{"frag needed", ICMPv4DestUnreach, ICMPv4FragNeeded, 1280, 1280, 0, 100, 40},
		{"ttl exceeded", ICMPv4TimeExceeded, ICMPv4TTLExceeded, 0, 0, 0, 100, 40},
		{"reassembly exceeded truncated quote", ICMPv4TimeExceeded, ICMPv4ReassemblyExceeded, 0, 0, 0, 8 + 28, 28},
		{"param problem", ICMPv4ParamProblem, 0, 9, 0, 9, 100, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := BuildICMPv4Error(make([]byte, tt.bufLen), tt.typ, tt.code, tt.mtu, inv)
			require.NoError(t, err)
			require.Len(t, m, 8+tt.wantQuoted)
			p, err := ParseICMPv4(m)
			require.NoError(t, err)
			require.True(t, p.IsError())
			require.Equal(t, tt.typ, p.Type())
			require.Equal(t, tt.code, p.Code())
			require.Equal(t, tt.wantMTU, p.MTU())
			require.Equal(t, tt.wantPtr, p.Pointer())
			require.Equal(t, inv[:tt.wantQuoted], p.Invoking())
			hdr, l4, err := ParseInvokingIPv4(p.Invoking())
			require.NoError(t, err)
			require.Equal(t, testSrc4, hdr.Dst())
			require.Equal(t, ProtocolTCP, hdr.Protocol())
			require.Equal(t, []byte{0x30, 0x39, 0x00, 0x50}, l4[:4])
			g := header.ICMPv4(m)
			require.Equal(t, tt.mtu, map[bool]uint16{true: g.MTU(), false: tt.mtu}[tt.code == ICMPv4FragNeeded && tt.typ == ICMPv4DestUnreach])
		})
	}
	_, err := BuildICMPv4Error(make([]byte, 64), ICMPv4Echo, 0, 0, inv)
	require.ErrorIs(t, err, ErrBadField)
	_, err = BuildICMPv4Error(make([]byte, 7), ICMPv4DestUnreach, 0, 0, inv)
	require.ErrorIs(t, err, ErrBufferTooSmall)
}

func TestParseICMPv4Malformed(t *testing.T) {
	inv := invoking4(t)
	build := func(typ uint8, quote []byte) []byte {
		m, err := BuildICMPv4Error(make([]byte, 8+len(quote)), typ, 0, 0, quote)
		require.NoError(t, err)
		return m
	}
	tests := []struct {
		name string
		b    []byte
		want DropReason
	}{
		{"empty", nil, DropTooShort},
		{"7 bytes", make([]byte, 7), DropTooShort},
		{"bad checksum", func() []byte { m, _ := BuildICMPv4Echo(make([]byte, 8), false, 1, 1, nil); m[2]++; return m }(), DropBadChecksum},
		{"all zero", make([]byte, 8), DropBadChecksum},
		{"error no quote", build(ICMPv4DestUnreach, nil), DropBadICMP},
		{"error quote 27 bytes", build(ICMPv4DestUnreach, inv[:27]), DropBadICMP},
		{"error quote v6", build(ICMPv4TimeExceeded, func() []byte { q := append([]byte(nil), inv[:28]...); q[0] = 0x65; return q }()), DropBadICMP},
		{"error quote IHL 4", build(ICMPv4ParamProblem, func() []byte { q := append([]byte(nil), inv[:28]...); q[0] = 0x44; return q }()), DropBadICMP},
		{"error quote IHL 6 short", build(ICMPv4DestUnreach, func() []byte { q := append([]byte(nil), inv[:28]...); q[0] = 0x46; return q }()), DropBadICMP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseICMPv4(tt.b)
			require.Nil(t, m)
			require.Equal(t, tt.want, ReasonOf(err))
		})
	}
}

func TestReplyToEchoIPv4(t *testing.T) {
	pkt := make([]byte, 20+8+5)
	_, err := BuildICMPv4Echo(pkt[20:], false, 77, 3, []byte("hello"))
	require.NoError(t, err)
	_, err = BuildIPv4(pkt, &IPv4Fields{ID: 5, TTL: 64, Protocol: ProtocolICMPv4, Src: testSrc4, Dst: testDst4})
	require.NoError(t, err)
	p, err := ParseIPv4(pkt)
	require.NoError(t, err)
	require.NoError(t, ReplyToEchoIPv4(p, 63))

	want := make([]byte, len(pkt))
	_, err = BuildICMPv4Echo(want[20:], true, 77, 3, []byte("hello"))
	require.NoError(t, err)
	_, err = BuildIPv4(want, &IPv4Fields{ID: 5, TTL: 63, Protocol: ProtocolICMPv4, Src: testDst4, Dst: testSrc4})
	require.NoError(t, err)
	require.Equal(t, want, pkt)
	_, err = ParseIPv4(pkt)
	require.NoError(t, err)

	// A reply is not a request: unchanged.
	require.ErrorIs(t, ReplyToEchoIPv4(p, 1), ErrNotEcho)
	require.Equal(t, want, pkt)
	require.ErrorIs(t, ReplyToEchoIPv4(IPv4(validIPv4()), 1), ErrNotEcho)
	require.ErrorIs(t, ReplyToEchoIPv4(IPv4(pkt[:10]), 1), ErrNotEcho)
}

func TestICMPv6EchoAndErrors(t *testing.T) {
	src, dst := testSrc6.AsSlice(), testDst6.AsSlice()
	m, err := BuildICMPv6Echo(make([]byte, 64), false, 9, 10, []byte("abc"), src, dst)
	require.NoError(t, err)
	require.Len(t, m, 11)
	p, err := ParseICMPv6(m, src, dst)
	require.NoError(t, err)
	require.Equal(t, ICMPv6EchoRequest, p.Type())
	require.Equal(t, uint16(9), p.Ident())
	require.Equal(t, uint16(10), p.Seq())
	require.Equal(t, []byte("abc"), p.Data())
	g := header.ICMPv6(m)
	require.Equal(t, g.Checksum(), header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: g[:8],
		Src: tcpip.AddrFrom16Slice(src), Dst: tcpip.AddrFrom16Slice(dst), PayloadCsum: Checksum(g[8:], 0), PayloadLen: 3}))
	// The pseudo-header is covered: another destination fails.
	other := testDst6.Next().AsSlice()
	_, err = ParseICMPv6(m, src, other)
	require.Equal(t, DropBadChecksum, ReasonOf(err))

	inv := buildIPv6(t, nil, ProtocolTCP, 20, 0, false)
	for _, tt := range []struct {
		name      string
		typ, code uint8
		param     uint32
	}{
		{"port unreachable", ICMPv6DestUnreach, ICMPv6PortUnreachable, 0},
		{"packet too big", ICMPv6PacketTooBig, 0, 1280},
		{"hop limit", ICMPv6TimeExceeded, ICMPv6HopLimitExceeded, 0},
		{"param problem", ICMPv6ParamProblem, 0, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := BuildICMPv6Error(make([]byte, 200), tt.typ, tt.code, tt.param, inv, dst, src)
			require.NoError(t, err)
			require.Len(t, m, 8+len(inv))
			p, err := ParseICMPv6(m, dst, src)
			require.NoError(t, err)
			require.True(t, p.IsError())
			require.Equal(t, tt.typ, p.Type())
			require.Equal(t, tt.code, p.Code())
			require.Equal(t, tt.param, p.MTU())
			require.Equal(t, tt.param, p.Pointer())
			require.Equal(t, inv, p.Invoking())
			require.Equal(t, tt.param, header.ICMPv6(m).MTU())
			require.True(t, p.ChecksumValid(dst, src))
		})
	}
	short, err := BuildICMPv6Error(make([]byte, 8+39), ICMPv6PacketTooBig, 0, 1280, inv, dst, src)
	require.NoError(t, err)
	_, err = ParseICMPv6(short, dst, src)
	require.Equal(t, DropBadICMP, ReasonOf(err))
	_, err = ParseICMPv6(make([]byte, 7), dst, src)
	require.Equal(t, DropTooShort, ReasonOf(err))
	_, err = BuildICMPv6Error(make([]byte, 64), ICMPv6EchoReply, 0, 0, inv, dst, src)
	require.ErrorIs(t, err, ErrBadField)
	_, err = BuildICMPv6Echo(make([]byte, 64), false, 0, 0, nil, src[:4], dst)
	require.ErrorIs(t, err, ErrBadAddress)
	_, err = BuildICMPv6Echo(make([]byte, 4), false, 0, 0, nil, src, dst)
	require.ErrorIs(t, err, ErrBufferTooSmall)
}

func TestReplyToEchoIPv6(t *testing.T) {
	b := buildIPv6(t, []ext{{ProtocolHopByHop, 8}}, ProtocolICMPv6, 8+4, 0, false)
	src, dst := testSrc6.AsSlice(), testDst6.AsSlice()
	_, err := BuildICMPv6Echo(b[48:], false, 1, 2, []byte("data"), src, dst)
	require.NoError(t, err)
	p, info, err := ParseIPv6(b)
	require.NoError(t, err)
	require.NoError(t, ReplyToEchoIPv6(p, info, 64))
	require.Equal(t, testDst6, p.Src())
	require.Equal(t, testSrc6, p.Dst())
	m, err := ParseICMPv6(p[info.Offset:], p.SrcSlice(), p.DstSlice())
	require.NoError(t, err)
	require.Equal(t, ICMPv6EchoReply, m.Type())
	require.Equal(t, []byte("data"), m.Data())
	require.ErrorIs(t, ReplyToEchoIPv6(p, info, 64), ErrNotEcho)
	info.Protocol = ProtocolTCP
	require.ErrorIs(t, ReplyToEchoIPv6(p, info, 64), ErrNotEcho)
}

// TestICMPVsGVisor builds random echo and error messages with gVisor's
// header.ICMPv4/ICMPv6 and parses them with ours, and the reverse.
func TestICMPVsGVisor(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	src6, dst6 := testSrc6.AsSlice(), testDst6.AsSlice()
	for i := 0; i < 3000; i++ {
		data := make([]byte, r.IntN(100))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		id, seq := uint16(r.Uint32()), uint16(r.Uint32())
		reply := r.IntN(2) == 0

		g4 := header.ICMPv4(make([]byte, 8+len(data)))
		g4.SetType(header.ICMPv4Echo)
		if reply {
			g4.SetType(header.ICMPv4EchoReply)
		}
		g4.SetIdent(id)
		g4.SetSequence(seq)
		copy(g4.Payload(), data)
		g4.SetChecksum(header.ICMPv4Checksum(g4[:8], Checksum(data, 0)))
		p4, err := ParseICMPv4(g4)
		require.NoError(t, err)
		require.Equal(t, uint8(g4.Type()), p4.Type())
		require.Equal(t, g4.Ident(), p4.Ident())
		require.Equal(t, g4.Sequence(), p4.Seq())
		o4, err := BuildICMPv4Echo(make([]byte, 8+len(data)), reply, id, seq, data)
		require.NoError(t, err)
		require.Equal(t, []byte(g4), []byte(o4))

		g6 := header.ICMPv6(make([]byte, 8+len(data)))
		g6.SetType(header.ICMPv6EchoRequest)
		if reply {
			g6.SetType(header.ICMPv6EchoReply)
		}
		g6.SetIdent(id)
		g6.SetSequence(seq)
		copy(g6.Payload(), data)
		g6.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: g6[:8],
			Src: tcpip.AddrFrom16Slice(src6), Dst: tcpip.AddrFrom16Slice(dst6), PayloadCsum: Checksum(data, 0), PayloadLen: len(data)}))
		p6, err := ParseICMPv6(g6, src6, dst6)
		require.NoError(t, err)
		require.Equal(t, uint8(g6.Type()), p6.Type())
		require.Equal(t, g6.Ident(), p6.Ident())
		require.Equal(t, g6.Sequence(), p6.Seq())
		o6, err := BuildICMPv6Echo(make([]byte, 8+len(data)), reply, id, seq, data, src6, dst6)
		require.NoError(t, err)
		require.Equal(t, []byte(g6), []byte(o6))

		// Packet Too Big with a random MTU.
		mtu := r.Uint32()
		inv := buildIPv6(t, nil, ProtocolTCP, len(data), 0, false)
		gp := header.ICMPv6(make([]byte, 8+len(inv)))
		gp.SetType(header.ICMPv6PacketTooBig)
		gp.SetMTU(mtu)
		copy(gp.Payload(), inv)
		gp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: gp[:8],
			Src: tcpip.AddrFrom16Slice(src6), Dst: tcpip.AddrFrom16Slice(dst6), PayloadCsum: Checksum(inv, 0), PayloadLen: len(inv)}))
		pp, err := ParseICMPv6(gp, src6, dst6)
		require.NoError(t, err)
		require.Equal(t, mtu, pp.MTU())
		op, err := BuildICMPv6Error(make([]byte, 2000), ICMPv6PacketTooBig, 0, mtu, inv, src6, dst6)
		require.NoError(t, err)
		require.Equal(t, []byte(gp), []byte(op))
	}
}

var sinkICMP ICMPv4

func BenchmarkParseICMPv4(b *testing.B) {
	m, err := BuildICMPv4Echo(make([]byte, 64), false, 1, 2, make([]byte, 56))
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParseICMPv4(m)
		if err != nil {
			b.Fatal(err)
		}
		sinkICMP = p
	}
}
