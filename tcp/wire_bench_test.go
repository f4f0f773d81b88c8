package tcp_test

import (
	"testing"

	"github.com/ustack-net/ustack/tcp"
)

// wireBenchData is a typical bulk-data segment: ACK+PSH, nop nop TS, 1448 bytes.
func wireBenchData() tcp.Segment {
	return tcp.Segment{
		Seq: 1000, Ack: 2000, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 502,
		Options: tcp.Options{HasTimestamp: true, TSVal: 1, TSEcr: 2},
		Payload: make([]byte, 1448),
	}
}

func BenchmarkWireParseSegmentData(b *testing.B) {
	seg := wireBenchData()
	buf := make([]byte, tcp.SegmentWireLen(&seg))
	tcp.EncodeSegment(buf, 1, 2, &seg)
	var out tcp.Segment
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tcp.ParseSegment(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWireParseSegmentSYN(b *testing.B) {
	var out tcp.Segment
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tcp.ParseSegment(wireSYNBytes, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWireParseSegmentSACK(b *testing.B) {
	seg := tcp.Segment{Flags: tcp.FlagACK, Options: tcp.Options{HasTimestamp: true, NumSACK: 3,
		SACKBlocks: [4]tcp.SACKBlock{{1, 2}, {3, 4}, {5, 6}}}}
	buf := make([]byte, tcp.SegmentWireLen(&seg))
	tcp.EncodeSegment(buf, 1, 2, &seg)
	var out tcp.Segment
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tcp.ParseSegment(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWireEncodeHeader(b *testing.B) {
	seg := wireBenchData()
	buf := make([]byte, tcp.SegmentWireLen(&seg))
	b.ReportAllocs()
	for b.Loop() {
		tcp.EncodeHeader(buf, 1, 2, &seg)
	}
}

func BenchmarkWireEncodeSegmentSYN(b *testing.B) {
	seg := tcp.Segment{Seq: 1, Flags: tcp.FlagSYN, Window: 65535, Options: tcp.Options{
		HasMSS: true, MSS: 1460, SACKPermitted: true, HasTimestamp: true, HasWindowScale: true, WindowScale: 7}}
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		tcp.EncodeSegment(buf, 1, 2, &seg)
	}
}

func BenchmarkWireEncodeSegmentData(b *testing.B) {
	seg := wireBenchData()
	buf := make([]byte, tcp.SegmentWireLen(&seg))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		tcp.EncodeSegment(buf, 1, 2, &seg)
	}
}

func BenchmarkWireChecksum1480(b *testing.B) {
	seg := wireBenchData()
	buf := make([]byte, tcp.SegmentWireLen(&seg))
	tcp.EncodeSegment(buf, 1, 2, &seg)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		tcp.SetChecksumFull(buf, wireV4Src, wireV4Dst)
	}
}

func BenchmarkWireVerifyChecksum64K(b *testing.B) {
	buf := make([]byte, 65535-40)
	buf[tcp.DataOffsetOffset] = 5 << 4
	tcp.SetChecksumFull(buf, wireV6Src, wireV6Dst)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if !tcp.VerifyChecksum(buf, wireV6Src, wireV6Dst) {
			b.Fatal("bad checksum")
		}
	}
}
