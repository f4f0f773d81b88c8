package tcp_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"

	"github.com/ustack-net/ustack/tcp"
)

// wireOracleCases is how many random segments each oracle direction checks.
const wireOracleCases = 5000

// wireGVisorBuild writes random options with gVisor's encoders, in random
// order, with random NOPs between them and maybe an unknown option, and
// returns the padded option bytes and what our parser must make of them.
func wireGVisorBuild(r *rand.Rand) ([]byte, tcp.Options) {
	var want tcp.Options
	buf := make([]byte, 40)
	n := 0
	room := func(k int) bool { return n+k <= 40 }
	nops := func() {
		for k := r.IntN(3); k > 0 && room(1); k-- {
			n += header.EncodeNOP(buf[n:])
		}
	}
	order := r.Perm(6)
	for _, which := range order {
		if r.IntN(2) == 0 {
			continue
		}
		nops()
		switch which {
		case 0:
			if room(4) {
				mss := uint16(header.TCPMinimumSendMSS + r.IntN(65536-header.TCPMinimumSendMSS))
				n += header.EncodeMSSOption(uint32(mss), buf[n:])
				want.HasMSS, want.MSS = true, mss
			}
		case 1:
			if room(3) {
				ws := r.IntN(20) // includes 15..19, which must clamp to 14
				if r.IntN(10) == 0 {
					ws = 255
				}
				n += header.EncodeWSOption(ws, buf[n:])
				want.HasWindowScale, want.WindowScale = true, uint8(min(ws, 14))
			}
		case 2:
			if room(2) {
				n += header.EncodeSACKPermittedOption(buf[n:])
				want.SACKPermitted = true
			}
		case 3:
			if room(10) {
				v, e := r.Uint32(), r.Uint32()
				n += header.EncodeTSOption(v, e, buf[n:])
				want.HasTimestamp, want.TSVal, want.TSEcr = true, v, e
			}
		case 4:
			k := min(1+r.IntN(4), (40-n-2)/8)
			if k > 0 {
				blocks := make([]header.SACKBlock, k)
				want.NumSACK = uint8(k)
				want.SACKBlocks = [4]tcp.SACKBlock{}
				for j := range blocks {
					s, e := r.Uint32(), r.Uint32()
					blocks[j] = header.SACKBlock{Start: seqnum.Value(s), End: seqnum.Value(e)}
					want.SACKBlocks[j] = tcp.SACKBlock{Start: tcp.Seq(s), End: tcp.Seq(e)}
				}
				n += header.EncodeSACKBlocks(blocks, buf[n:])
			}
		case 5:
			// An option kind neither side knows (RFC 9293 §3.2: skip by length).
			l := 2 + r.IntN(5)
			if room(l) {
				buf[n], buf[n+1] = byte(30+r.IntN(200)), byte(l)
				wireFillRand(r, buf[n+2:n+l])
				n += l
			}
		}
	}
	nops()
	n += header.AddTCPOptionPadding(buf, n)
	return buf[:n], want
}

// wireRandOptions returns random options for our encoder to write.
func wireRandOptions(r *rand.Rand) tcp.Options {
	var o tcp.Options
	if r.IntN(2) == 0 {
		o.HasMSS, o.MSS = true, uint16(header.TCPMinimumSendMSS+r.IntN(65536-header.TCPMinimumSendMSS))
	}
	if r.IntN(2) == 0 {
		o.HasWindowScale, o.WindowScale = true, uint8(r.IntN(15))
	}
	o.SACKPermitted = r.IntN(2) == 0
	if r.IntN(2) == 0 {
		o.HasTimestamp, o.TSVal, o.TSEcr = true, r.Uint32(), r.Uint32()
	}
	o.NumSACK = uint8(r.IntN(5))
	for j := range int(o.NumSACK) {
		o.SACKBlocks[j] = tcp.SACKBlock{Start: tcp.Seq(r.Uint32()), End: tcp.Seq(r.Uint32())}
	}
	return o
}

func wireRandPayload(r *rand.Rand, i int) []byte {
	n := r.IntN(300)
	switch {
	case i%500 == 0:
		n = 65535 - 60 - 20 // largest IPv4 super-segment payload
	case i%50 == 0:
		n = r.IntN(65535 - 60 - 20)
	}
	p := make([]byte, n)
	wireFillRand(r, p)
	return p
}

// TestGVisorBuiltParsesIdentically: segments built with gVisor's header
// package parse to the same fields with ours, and our options agree with
// gVisor's own option parsers.
func TestGVisorBuiltParsesIdentically(t *testing.T) {
	r := rand.New(rand.NewPCG(0x75737461, 0x636b))
	for i := range wireOracleCases {
		opts, wantOpts := wireGVisorBuild(r)
		payload := wireRandPayload(r, i)
		f := header.TCPFields{
			SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()),
			SeqNum: r.Uint32(), AckNum: r.Uint32(),
			DataOffset: uint8(header.TCPMinimumSize + len(opts)),
			Flags:      header.TCPFlags(r.Uint32()),
			WindowSize: uint16(r.Uint32()), Checksum: uint16(r.Uint32()), UrgentPointer: uint16(r.Uint32()),
		}
		b := make([]byte, int(f.DataOffset)+len(payload))
		g := header.TCP(b)
		g.Encode(&f)
		copy(b[header.TCPMinimumSize:], opts)
		copy(b[f.DataOffset:], payload)

		h, err := tcp.ParseHeader(b)
		require.NoError(t, err, "case %d", i)
		require.Equal(t, f.SrcPort, h.SourcePort())
		require.Equal(t, f.DstPort, h.DestinationPort())
		require.Equal(t, tcp.Seq(g.SequenceNumber()), h.SequenceNumber())
		require.Equal(t, tcp.Seq(g.AckNumber()), h.AckNumber())
		require.Equal(t, int(g.DataOffset()), h.DataOffset())
		require.Equal(t, uint8(g.Flags()), uint8(h.Flags()))
		require.Equal(t, g.WindowSize(), h.Window())
		require.Equal(t, g.Checksum(), h.Checksum())
		require.Equal(t, g.UrgentPointer(), h.UrgentPointer())
		require.Equal(t, g.Options(), []byte(h.OptionsBytes()))
		require.Equal(t, g.Payload(), []byte(h.Payload()))

		var seg tcp.Segment
		sp, dp, err := tcp.ParseSegment(b, &seg)
		require.NoError(t, err, "case %d opts % x", i, opts)
		require.Equal(t, f.SrcPort, sp)
		require.Equal(t, f.DstPort, dp)
		require.Equal(t, tcp.Seq(f.SeqNum), seg.Seq)
		require.Equal(t, tcp.Seq(f.AckNum), seg.Ack)
		require.Equal(t, tcp.Flags(f.Flags), seg.Flags)
		require.Equal(t, f.WindowSize, seg.Window)
		require.Equal(t, f.UrgentPointer, seg.Urgent)
		require.Equal(t, payload, seg.Payload)
		require.Equal(t, wantOpts, seg.Options, "case %d opts % x", i, opts)
		wireRequireSameAsGVisor(t, opts, &seg.Options)
	}
}

// wireRequireSameAsGVisor checks our parse of opts against gVisor's parsers.
func wireRequireSameAsGVisor(t *testing.T, opts []byte, o *tcp.Options) {
	t.Helper()
	syn := header.ParseSynOptions(opts, true)
	if o.HasMSS {
		require.Equal(t, o.MSS, syn.MSS)
	} else {
		require.Equal(t, uint16(header.TCPDefaultMSS), syn.MSS)
	}
	if o.HasWindowScale {
		require.Equal(t, int(o.WindowScale), syn.WS)
	} else {
		require.Equal(t, -1, syn.WS)
	}
	require.Equal(t, o.SACKPermitted, syn.SACKPermitted)
	require.Equal(t, o.HasTimestamp, syn.TS)
	if o.HasTimestamp {
		require.Equal(t, o.TSVal, syn.TSVal)
		require.Equal(t, o.TSEcr, syn.TSEcr)
	}
	to := header.ParseTCPOptions(opts)
	require.Equal(t, o.HasTimestamp, to.TS)
	require.Equal(t, o.TSVal, to.TSVal)
	require.Equal(t, o.TSEcr, to.TSEcr)
	require.Len(t, to.SACKBlocks, int(o.NumSACK))
	for j, blk := range to.SACKBlocks {
		require.Equal(t, o.SACKBlocks[j], tcp.SACKBlock{Start: tcp.Seq(blk.Start), End: tcp.Seq(blk.End)})
	}
}

// TestOursParseIdenticallyInGVisor: segments we build read back the same in
// gVisor's header package.
func TestOursParseIdenticallyInGVisor(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	buf := make([]byte, 65536)
	for i := range wireOracleCases {
		seg := tcp.Segment{
			Seq: tcp.Seq(r.Uint32()), Ack: tcp.Seq(r.Uint32()), Flags: tcp.Flags(r.Uint32()),
			Window: uint16(r.Uint32()), Urgent: uint16(r.Uint32()),
			Options: wireRandOptions(r), Payload: wireRandPayload(r, i),
		}
		sp, dp := uint16(r.Uint32()), uint16(r.Uint32())
		n := tcp.EncodeSegment(buf, sp, dp, &seg)
		require.Equal(t, tcp.SegmentWireLen(&seg), n)
		g := header.TCP(buf[:n])
		require.Equal(t, sp, g.SourcePort())
		require.Equal(t, dp, g.DestinationPort())
		require.Equal(t, uint32(seg.Seq), g.SequenceNumber())
		require.Equal(t, uint32(seg.Ack), g.AckNumber())
		require.Equal(t, tcp.SegmentHeaderLen(&seg), int(g.DataOffset()))
		require.Zero(t, g.DataOffset()%4)
		require.LessOrEqual(t, int(g.DataOffset()), header.TCPHeaderMaximumSize)
		require.Equal(t, uint8(seg.Flags), uint8(g.Flags()))
		require.Equal(t, seg.Window, g.WindowSize())
		require.Equal(t, seg.Urgent, g.UrgentPointer())
		require.Equal(t, uint16(0), g.Checksum())
		require.Equal(t, seg.Payload, g.Payload())

		want := seg.Options
		want.NumSACK = uint8(wireSACKFit(&seg.Options))
		for j := want.NumSACK; j < tcp.MaxSACKBlocks; j++ {
			want.SACKBlocks[j] = tcp.SACKBlock{}
		}
		wireRequireSameAsGVisor(t, g.Options(), &want)
	}
}

// TestChecksumMatchesGVisor: our TCP checksum (full and partial-then-
// completed) equals gVisor's pseudo-header + header.TCP.CalculateChecksum, for
// IPv4 and IPv6, random segments at random alignments.
func TestChecksumMatchesGVisor(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for i := range wireOracleCases {
		alen := 4
		if i%2 == 1 {
			alen = 16
		}
		src, dst := make([]byte, alen), make([]byte, alen)
		wireFillRand(r, src)
		wireFillRand(r, dst)
		seg := tcp.Segment{
			Seq: tcp.Seq(r.Uint32()), Ack: tcp.Seq(r.Uint32()), Flags: tcp.Flags(r.Uint32()),
			Window: uint16(r.Uint32()), Options: wireRandOptions(r), Payload: wireRandPayload(r, i),
		}
		off := r.IntN(8)
		buf := make([]byte, off+tcp.SegmentWireLen(&seg))
		n := tcp.EncodeSegment(buf[off:], uint16(r.Uint32()), uint16(r.Uint32()), &seg)
		b := buf[off : off+n]

		g := header.TCP(b)
		sa, da := tcpip.AddrFromSlice(src), tcpip.AddrFromSlice(dst)
		ph := header.PseudoHeaderChecksum(header.TCPProtocolNumber, sa, da, uint16(n))
		require.Equal(t, ph, tcp.PseudoHeaderSum(src, dst, n))
		payloadSum := checksum.Checksum(g.Payload(), 0)
		want := ^g.CalculateChecksum(checksum.Combine(ph, payloadSum))
		require.Equal(t, want, tcp.Checksum(b, src, dst), "case %d len %d", i, n)

		tcp.SetChecksumFull(b, src, dst)
		require.True(t, g.IsChecksumValid(sa, da, payloadSum, uint16(len(g.Payload()))))
		require.True(t, tcp.VerifyChecksum(b, src, dst))

		tcp.SetPartialChecksum(b, src, dst)
		require.Equal(t, ph, g.Checksum())
		tcp.CompletePartialChecksum(b)
		require.Equal(t, want, g.Checksum())
	}
}
