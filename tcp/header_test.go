package tcp_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
)

// wireSYNBytes is a SYN from port 40000 to 80 as Linux sends it: seq
// 0x11223344, window 64240, options MSS 1460, sackOK TS, nop wscale 7.
var wireSYNBytes = wireCat([]byte{
	0x9c, 0x40, 0x00, 0x50, // ports
	0x11, 0x22, 0x33, 0x44, // seq
	0x00, 0x00, 0x00, 0x00, // ack
	0xa0, 0x02, 0xfa, 0xf0, // doff 10, SYN, window
	0x12, 0x34, 0x00, 0x00, // checksum, urgent
	2, 4, 0x05, 0xb4, 4, 2}, wireTS, []byte{1, 3, 3, 7})

func wireRawHeader(doff byte, total int) []byte {
	b := make([]byte, total)
	if total > tcp.DataOffsetOffset {
		b[tcp.DataOffsetOffset] = doff << 4
	}
	return b
}

func TestParseHeaderTable(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		err  error
		hlen int
	}{
		{name: "nil", in: nil, err: tcp.ErrHeaderTruncated},
		{name: "19 bytes", in: wireRawHeader(5, 19), err: tcp.ErrHeaderTruncated},
		{name: "doff 0", in: wireRawHeader(0, 40), err: tcp.ErrDataOffsetTooSmall},
		{name: "doff 4", in: wireRawHeader(4, 40), err: tcp.ErrDataOffsetTooSmall},
		{name: "doff 6 in 20 bytes", in: wireRawHeader(6, 20), err: tcp.ErrDataOffsetTooLarge},
		{name: "doff 15 in 59 bytes", in: wireRawHeader(15, 59), err: tcp.ErrDataOffsetTooLarge},
		{name: "doff 5 exact", in: wireRawHeader(5, 20), hlen: 20},
		{name: "doff 15 exact (40 NOP... zero = EOL options)", in: wireRawHeader(15, 60), hlen: 60},
		{name: "doff 5 with payload", in: wireRawHeader(5, 1500), hlen: 20},
		{name: "reserved bits ignored", in: func() []byte { b := wireRawHeader(5, 20); b[12] |= 0x0f; return b }(), hlen: 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := tcp.ParseHeader(c.in)
			var seg tcp.Segment
			sp, dp, err2 := tcp.ParseSegment(c.in, &seg)
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
				require.Nil(t, h)
				require.ErrorIs(t, err2, c.err)
				assert.Zero(t, sp)
				assert.Zero(t, dp)
				return
			}
			require.NoError(t, err)
			require.NoError(t, err2)
			assert.Equal(t, c.hlen, h.DataOffset())
			assert.Len(t, h.OptionsBytes(), c.hlen-20)
			assert.Len(t, h.Payload(), len(c.in)-c.hlen)
			assert.Len(t, seg.Payload, len(c.in)-c.hlen)
		})
	}
}

func TestHeaderGettersSetters(t *testing.T) {
	h, err := tcp.ParseHeader(wireSYNBytes)
	require.NoError(t, err)
	assert.Equal(t, uint16(40000), h.SourcePort())
	assert.Equal(t, uint16(80), h.DestinationPort())
	assert.Equal(t, tcp.Seq(0x11223344), h.SequenceNumber())
	assert.Equal(t, tcp.Seq(0), h.AckNumber())
	assert.Equal(t, 40, h.DataOffset())
	assert.Equal(t, tcp.FlagSYN, h.Flags())
	assert.Equal(t, uint16(64240), h.Window())
	assert.Equal(t, uint16(0x1234), h.Checksum())
	assert.Equal(t, uint16(0), h.UrgentPointer())
	assert.Equal(t, wireSYNBytes[20:40], []byte(h.OptionsBytes()))
	assert.Empty(t, h.Payload())

	b := make([]byte, 24)
	h = tcp.Header(b)
	h.SetSourcePort(0xfffe)
	h.SetDestinationPort(1)
	h.SetSequenceNumber(0xfffffffe)
	h.SetAckNumber(0x80000001)
	h.SetDataOffset(24)
	h.SetFlags(tcp.FlagCWR | tcp.FlagECE | tcp.FlagURG | tcp.FlagACK | tcp.FlagPSH | tcp.FlagRST | tcp.FlagSYN | tcp.FlagFIN)
	h.SetWindow(0xabcd)
	h.SetChecksum(0xbeef)
	h.SetUrgentPointer(0x0102)
	assert.Equal(t, "ff fe 00 01 ff ff ff fe 80 00 00 01 60 ff ab cd be ef 01 02 00 00 00 00", fmt.Sprintf("% x", b))
	assert.Equal(t, tcp.Flags(0xff), h.Flags())
	assert.True(t, h.Flags().Has(tcp.FlagECE|tcp.FlagCWR))
	assert.Equal(t, 24, h.DataOffset())
}

func TestParseSegmentSYN(t *testing.T) {
	var seg tcp.Segment
	seg.GSOSize = 1448 // must be reset
	sp, dp, err := tcp.ParseSegment(wireSYNBytes, &seg)
	require.NoError(t, err)
	assert.Equal(t, uint16(40000), sp)
	assert.Equal(t, uint16(80), dp)
	assert.Equal(t, tcp.Segment{
		Seq: 0x11223344, Flags: tcp.FlagSYN, Window: 64240,
		Options: tcp.Options{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTimestamp: true,
			TSVal: 0x01020304, TSEcr: 0x0a0b0c0d, HasWindowScale: true, WindowScale: 7},
		Payload: []byte{},
	}, seg)
	assert.Equal(t, uint32(1), seg.Len())
}

func TestParseSegmentPayloadAliases(t *testing.T) {
	b := make([]byte, 32+100, 200)
	copy(b, []byte{0, 1, 0, 2, 0, 0, 0, 9, 0, 0, 0, 7, 0x80, 0x19, 0, 10, 0, 0, 0, 5, 1, 1, 8, 10})
	for i := range 100 {
		b[32+i] = byte(i)
	}
	var seg tcp.Segment
	_, _, err := tcp.ParseSegment(b, &seg)
	require.NoError(t, err)
	assert.Equal(t, tcp.FlagFIN|tcp.FlagACK|tcp.FlagPSH, seg.Flags)
	assert.Equal(t, uint16(5), seg.Urgent)
	require.Len(t, seg.Payload, 100)
	assert.Equal(t, 100, cap(seg.Payload), "payload cap must stop at the packet end")
	b[32] = 0xaa
	assert.Equal(t, byte(0xaa), seg.Payload[0], "payload must alias the packet")
	assert.Equal(t, uint32(101), seg.Len())
}

func TestParseSegmentOptionErrors(t *testing.T) {
	// Each option area goes into a header whose data offset covers it exactly.
	cases := []struct {
		name string
		opts []byte
		err  error
	}{
		{"len 0", []byte{30, 0, 0, 0}, tcp.ErrOptionLength},
		{"len 1", []byte{2, 1, 1, 1}, tcp.ErrOptionLength},
		{"overrun header", []byte{1, 1, 30, 3}, tcp.ErrOptionTruncated},
		{"mss len 3", []byte{2, 3, 1, 0}, tcp.ErrOptionSize},
		{"sack len 11", wireCat([]byte{5, 11}, make([]byte, 10)), tcp.ErrOptionSize},
		// 5 blocks need 42 bytes: one more than the 40-byte option area.
		{"5 sack blocks", wireCat([]byte{5, 42}, make([]byte, 38)), tcp.ErrOptionTruncated},
		{"option into payload", []byte{1, 1, 1, 8, 10, 0, 0, 0}, tcp.ErrOptionTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Zero(t, len(c.opts)%4)
			b := wireCat(wireRawHeader(byte(5+len(c.opts)/4), 20), c.opts, []byte{10, 9, 8, 7, 6, 5, 4, 3, 2, 1})
			h, err := tcp.ParseHeader(b)
			require.NoError(t, err, "header itself is fine")
			var seg tcp.Segment
			_, err = h.DecodeSegment(&seg)
			require.ErrorIs(t, err, c.err)
			_, _, err = tcp.ParseSegment(b, &seg)
			require.ErrorIs(t, err, c.err)
		})
	}
}

func TestDecodeSegmentNotes(t *testing.T) {
	b := wireCat(wireRawHeader(7, 20), []byte{1, 3, 3, 20, 30, 2, 0, 0})
	var seg tcp.Segment
	notes, err := tcp.Header(b).DecodeSegment(&seg)
	require.NoError(t, err)
	assert.Equal(t, tcp.NoteWindowScaleClamped|tcp.NoteUnknownOption, notes)
	assert.Equal(t, uint8(14), seg.Options.WindowScale)

	// An unvalidated short view is rejected, not a panic.
	_, err = tcp.Header(b[:10]).DecodeSegment(&seg)
	require.ErrorIs(t, err, tcp.ErrHeaderTruncated)
}

func TestEncodeSegmentExact(t *testing.T) {
	seg := tcp.Segment{
		Seq: 0xfffffff0, Ack: 0x01000002, Flags: tcp.FlagACK | tcp.FlagPSH | tcp.FlagECE, Window: 502, Urgent: 0,
		Options: tcp.Options{HasTimestamp: true, TSVal: 0x01020304, TSEcr: 0x0a0b0c0d},
		Payload: []byte("hello"),
	}
	require.Equal(t, 32, tcp.SegmentHeaderLen(&seg))
	require.Equal(t, 37, tcp.SegmentWireLen(&seg))
	buf := bytes.Repeat([]byte{0xee}, 64)
	n := tcp.EncodeSegment(buf, 443, 51000, &seg)
	require.Equal(t, 37, n)
	want := wireCat([]byte{
		0x01, 0xbb, 0xc7, 0x38,
		0xff, 0xff, 0xff, 0xf0,
		0x01, 0x00, 0x00, 0x02,
		0x80, 0x58, 0x01, 0xf6,
		0x00, 0x00, 0x00, 0x00,
		1, 1}, wireTS, []byte("hello"))
	assert.Equal(t, fmt.Sprintf("% x", want), fmt.Sprintf("% x", buf[:n]))
	assert.Equal(t, byte(0xee), buf[n])

	var back tcp.Segment
	sp, dp, err := tcp.ParseSegment(buf[:n], &back)
	require.NoError(t, err)
	assert.Equal(t, uint16(443), sp)
	assert.Equal(t, uint16(51000), dp)
	assert.Equal(t, seg, back)

	// EncodeHeader alone stops before the payload.
	buf2 := bytes.Repeat([]byte{0xee}, 64)
	require.Equal(t, 32, tcp.EncodeHeader(buf2, 443, 51000, &seg))
	assert.Equal(t, want[:32], buf2[:32])
	assert.Equal(t, byte(0xee), buf2[32])

	// The checksum field is zeroed even in a dirty buffer.
	assert.Equal(t, uint16(0), tcp.Header(buf2).Checksum())
}

func TestEncodeSegmentMaxPayload(t *testing.T) {
	// A 64 KiB super-segment: the largest TCP payload an IPv4 packet can carry.
	payload := make([]byte, 65535-20-20-12)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	seg := tcp.Segment{Seq: 1, Ack: 2, Flags: tcp.FlagACK, Window: 3, Payload: payload, GSOSize: 1448,
		Options: tcp.Options{HasTimestamp: true, TSVal: 9, TSEcr: 8}}
	buf := make([]byte, 65535)
	n := tcp.EncodeSegment(buf, 1, 2, &seg)
	require.Equal(t, 65535-20, n)
	var back tcp.Segment
	_, _, err := tcp.ParseSegment(buf[:n], &back)
	require.NoError(t, err)
	require.Equal(t, payload, back.Payload)
	assert.Zero(t, back.GSOSize, "GSOSize is output-only metadata, not on the wire")
}
