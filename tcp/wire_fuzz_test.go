package tcp_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ustack-net/ustack/tcp"
)

// FuzzSegment feeds arbitrary bytes to the header, segment and option parsers
// and the checksum helpers. None may panic; every rejection must be a
// ParseError; ParseHeader and ParseSegment must agree; and a segment that
// parses must survive EncodeSegment → ParseSegment unchanged (except SACK
// blocks that no longer fit beside the other options in our NOP-aligned
// layout), with the second encoding byte-identical to the first.
func FuzzSegment(f *testing.F) {
	f.Add(wireSYNBytes)
	f.Add(wireRawHeader(5, 20))
	f.Add(wireCat(wireRawHeader(8, 20), []byte{1, 1}, wireTS, []byte("payload")))
	f.Add(wireCat(wireRawHeader(15, 20), []byte{1, 1, 5, 34}, make([]byte, 36)))
	f.Add(wireCat(wireRawHeader(6, 20), []byte{2, 0, 0, 0}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var pe tcp.ParseError
		var o tcp.Options
		// The data as a bare option area.
		if err := tcp.ParseOptions(b, &o); err != nil && !errors.As(err, &pe) {
			t.Fatalf("ParseOptions: non-ParseError %v", err)
		}
		if o.NumSACK > tcp.MaxSACKBlocks || (o.HasWindowScale && o.WindowScale > 14) {
			t.Fatalf("ParseOptions produced out-of-range options %+v", o)
		}

		src, dst := wireV4Src, wireV4Dst
		if len(b)%2 == 1 {
			src, dst = wireV6Src, wireV6Dst
		}
		ok := tcp.VerifyChecksum(b, src, dst)
		if len(b) >= tcp.HeaderMinLen {
			c := append([]byte(nil), b...)
			want := tcp.Checksum(c, src, dst)
			if ok != (tcp.Header(c).Checksum() == want) {
				t.Fatalf("VerifyChecksum=%v but field %#x, computed %#x", ok, tcp.Header(c).Checksum(), want)
			}
			tcp.SetPartialChecksum(c, src, dst)
			tcp.CompletePartialChecksum(c)
			if got := tcp.Header(c).Checksum(); got != want {
				t.Fatalf("partial completed to %#x, full is %#x", got, want)
			}
			if !tcp.VerifyChecksum(c, src, dst) {
				t.Fatal("completed checksum does not verify")
			}
		} else if ok {
			t.Fatal("VerifyChecksum accepted a segment shorter than a header")
		}

		h, herr := tcp.ParseHeader(b)
		var seg tcp.Segment
		sp, dp, serr := tcp.ParseSegment(b, &seg)
		if herr != nil {
			if !errors.As(herr, &pe) || !errors.Is(serr, herr) {
				t.Fatalf("ParseHeader %v, ParseSegment %v", herr, serr)
			}
			return
		}
		if serr != nil {
			if !errors.As(serr, &pe) || pe < tcp.ErrOptionTruncated {
				t.Fatalf("valid header but ParseSegment %v", serr)
			}
			return
		}
		if sp != h.SourcePort() || dp != h.DestinationPort() || seg.Seq != h.SequenceNumber() ||
			seg.Ack != h.AckNumber() || seg.Flags != h.Flags() || seg.Window != h.Window() ||
			seg.Urgent != h.UrgentPointer() || !bytes.Equal(seg.Payload, h.Payload()) {
			t.Fatalf("segment %+v disagrees with header view", seg)
		}
		if len(seg.Payload) != len(b)-h.DataOffset() {
			t.Fatalf("payload %d bytes, want %d", len(seg.Payload), len(b)-h.DataOffset())
		}

		out := make([]byte, tcp.SegmentWireLen(&seg))
		n := tcp.EncodeSegment(out, sp, dp, &seg)
		if n != len(out) {
			t.Fatalf("EncodeSegment wrote %d, SegmentWireLen %d", n, len(out))
		}
		var back tcp.Segment
		sp2, dp2, err := tcp.ParseSegment(out, &back)
		if err != nil {
			t.Fatalf("re-encoded segment does not parse: %v\n% x", err, out)
		}
		want := seg
		want.Options.NumSACK = uint8(wireSACKFit(&seg.Options))
		for j := want.Options.NumSACK; j < tcp.MaxSACKBlocks; j++ {
			want.Options.SACKBlocks[j] = tcp.SACKBlock{}
		}
		if sp2 != sp || dp2 != dp || back.Seq != want.Seq || back.Ack != want.Ack || back.Flags != want.Flags ||
			back.Window != want.Window || back.Urgent != want.Urgent || back.Options != want.Options ||
			!bytes.Equal(back.Payload, want.Payload) {
			t.Fatalf("round trip changed the segment:\n got %+v\nwant %+v", back, want)
		}
		out2 := make([]byte, tcp.SegmentWireLen(&back))
		tcp.EncodeSegment(out2, sp2, dp2, &back)
		if !bytes.Equal(out, out2) {
			t.Fatalf("second encoding differs:\n% x\n% x", out, out2)
		}
	})
}
