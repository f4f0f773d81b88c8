package tcp_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
)

// wireTS is a timestamp option TSval=0x01020304 TSecr=0x0a0b0c0d.
var wireTS = []byte{8, 10, 1, 2, 3, 4, 0xa, 0xb, 0xc, 0xd}

func wireCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func wireSACKOpt(blocks ...uint32) []byte {
	b := []byte{5, byte(2 + 4*len(blocks))}
	for _, v := range blocks {
		b = append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return b
}

func TestParseOptionsTable(t *testing.T) {
	linuxSYN := wireCat([]byte{2, 4, 0x05, 0xb4, 4, 2}, wireTS, []byte{1, 3, 3, 7})
	cases := []struct {
		name  string
		in    []byte
		want  tcp.Options
		notes tcp.OptionNotes
		err   error
	}{
		{name: "empty", in: nil},
		{name: "nops only", in: []byte{1, 1, 1, 1}},
		{name: "eol only", in: []byte{0, 0, 0, 0}},
		{name: "linux syn", in: linuxSYN, want: tcp.Options{
			HasMSS: true, MSS: 1460, SACKPermitted: true, HasTimestamp: true,
			TSVal: 0x01020304, TSEcr: 0x0a0b0c0d, HasWindowScale: true, WindowScale: 7}},
		{name: "eol in middle stops parsing", in: []byte{2, 4, 1, 0, 0, 3, 0, 99, 1},
			want: tcp.Options{HasMSS: true, MSS: 256}},
		{name: "eol first hides mss", in: []byte{0, 2, 4, 1, 0}},
		{name: "mss", in: []byte{2, 4, 0xff, 0xff}, want: tcp.Options{HasMSS: true, MSS: 65535}},
		{name: "mss len 3", in: []byte{2, 3, 5, 1}, err: tcp.ErrOptionSize},
		{name: "mss len 5", in: []byte{2, 5, 5, 0xb4, 0}, err: tcp.ErrOptionSize},
		{name: "mss truncated", in: []byte{2, 4, 5}, err: tcp.ErrOptionTruncated},
		{name: "kind without length byte", in: []byte{1, 1, 1, 2}, err: tcp.ErrOptionTruncated},
		{name: "unknown kind without length byte", in: []byte{30}, err: tcp.ErrOptionTruncated},
		{name: "len 0", in: []byte{2, 0, 0, 0}, err: tcp.ErrOptionLength},
		{name: "len 1", in: []byte{2, 1, 0, 0}, err: tcp.ErrOptionLength},
		{name: "unknown len 0", in: []byte{30, 0, 1, 1}, err: tcp.ErrOptionLength},
		{name: "unknown len 1", in: []byte{254, 1, 1, 1}, err: tcp.ErrOptionLength},
		{name: "unknown len overruns", in: []byte{30, 255, 1, 1}, err: tcp.ErrOptionTruncated},
		{name: "unknown len overruns by one", in: []byte{30, 5, 1, 1}, err: tcp.ErrOptionTruncated},
		{name: "unknown skipped", in: wireCat([]byte{30, 4, 0xaa, 0xbb}, wireTS, []byte{1, 1}),
			want: tcp.Options{HasTimestamp: true, TSVal: 0x01020304, TSEcr: 0x0a0b0c0d}, notes: tcp.NoteUnknownOption},
		{name: "unknown len 2 skipped", in: []byte{254, 2, 2, 4, 0, 100},
			want: tcp.Options{HasMSS: true, MSS: 100}, notes: tcp.NoteUnknownOption},
		{name: "wscale 0", in: []byte{1, 3, 3, 0}, want: tcp.Options{HasWindowScale: true}},
		{name: "wscale 14", in: []byte{1, 3, 3, 14}, want: tcp.Options{HasWindowScale: true, WindowScale: 14}},
		{name: "wscale 15 clamped", in: []byte{1, 3, 3, 15},
			want: tcp.Options{HasWindowScale: true, WindowScale: 14}, notes: tcp.NoteWindowScaleClamped},
		{name: "wscale 255 clamped", in: []byte{1, 3, 3, 255},
			want: tcp.Options{HasWindowScale: true, WindowScale: 14}, notes: tcp.NoteWindowScaleClamped},
		{name: "wscale len 4", in: []byte{3, 4, 7, 0}, err: tcp.ErrOptionSize},
		{name: "wscale len 2", in: []byte{3, 2, 1, 1}, err: tcp.ErrOptionSize},
		{name: "sack permitted", in: []byte{1, 1, 4, 2}, want: tcp.Options{SACKPermitted: true}},
		{name: "sack permitted len 3", in: []byte{4, 3, 0, 1}, err: tcp.ErrOptionSize},
		{name: "timestamp", in: wireCat([]byte{1, 1}, wireTS),
			want: tcp.Options{HasTimestamp: true, TSVal: 0x01020304, TSEcr: 0x0a0b0c0d}},
		{name: "timestamp len 8", in: []byte{8, 8, 0, 0, 0, 0, 0, 0}, err: tcp.ErrOptionSize},
		{name: "timestamp len 11", in: []byte{8, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0}, err: tcp.ErrOptionSize},
		{name: "timestamp truncated", in: wireTS[:9], err: tcp.ErrOptionTruncated},
		{name: "sack 1 block", in: wireSACKOpt(1, 2),
			want: tcp.Options{NumSACK: 1, SACKBlocks: [4]tcp.SACKBlock{{1, 2}}}},
		{name: "sack 4 blocks", in: wireSACKOpt(1, 2, 3, 4, 0xfffffff0, 0x10, 7, 8),
			want: tcp.Options{NumSACK: 4, SACKBlocks: [4]tcp.SACKBlock{{1, 2}, {3, 4}, {0xfffffff0, 0x10}, {7, 8}}}},
		{name: "sack 5 blocks impossible", in: wireSACKOpt(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), err: tcp.ErrOptionSize},
		{name: "sack len 11", in: wireCat([]byte{5, 11}, make([]byte, 9)), err: tcp.ErrOptionSize},
		{name: "sack len 2", in: []byte{5, 2, 1, 1}, err: tcp.ErrOptionSize},
		{name: "sack len 18 with 10 bytes", in: wireCat([]byte{5, 18}, make([]byte, 8)), err: tcp.ErrOptionTruncated},
		{name: "duplicate mss last wins", in: []byte{2, 4, 0, 1, 2, 4, 0, 2},
			want: tcp.Options{HasMSS: true, MSS: 2}, notes: tcp.NoteDuplicateOption},
		{name: "duplicate sack last wins, stale blocks cleared", in: wireCat(wireSACKOpt(1, 2, 3, 4, 5, 6), wireSACKOpt(9, 10)),
			want: tcp.Options{NumSACK: 1, SACKBlocks: [4]tcp.SACKBlock{{9, 10}}}, notes: tcp.NoteDuplicateOption},
		{name: "error after good option", in: []byte{2, 4, 0, 9, 8, 0}, want: tcp.Options{HasMSS: true, MSS: 9},
			err: tcp.ErrOptionLength},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Start from garbage: the parser must reset everything.
			o := tcp.Options{HasMSS: true, MSS: 1, NumSACK: 3, SACKBlocks: [4]tcp.SACKBlock{{5, 6}, {7, 8}, {9, 9}, {1, 1}},
				HasTimestamp: true, TSVal: 77, SACKPermitted: true, HasWindowScale: true, WindowScale: 3}
			notes, err := tcp.ParseOptionsNotes(c.in, &o)
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, c.notes, notes)
			assert.Equal(t, c.want, o)

			var o2 tcp.Options
			assert.Equal(t, err, tcp.ParseOptions(c.in, &o2))
			assert.Equal(t, c.want, o2)
		})
	}
}

func TestEncodeOptionsLayout(t *testing.T) {
	ts := tcp.Options{HasTimestamp: true, TSVal: 0x01020304, TSEcr: 0x0a0b0c0d}
	withTS := func(o tcp.Options) tcp.Options {
		o.HasTimestamp, o.TSVal, o.TSEcr = true, ts.TSVal, ts.TSEcr
		return o
	}
	blocks := [4]tcp.SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}
	sackBytes := func(n int) []byte {
		b := []byte{1, 1, 5, byte(2 + 8*n)}
		for i := range n {
			s, e := uint32(blocks[i].Start), uint32(blocks[i].End)
			b = append(b, 0, 0, 0, byte(s), 0, 0, 0, byte(e))
		}
		return b
	}
	nopTS := wireCat([]byte{1, 1}, wireTS)
	cases := []struct {
		name     string
		o        tcp.Options
		want     []byte
		wantSACK uint8 // blocks that survive the 40-byte limit
	}{
		{name: "none", o: tcp.Options{}, want: []byte{}},
		{name: "linux syn", o: withTS(tcp.Options{HasMSS: true, MSS: 1460, SACKPermitted: true, HasWindowScale: true, WindowScale: 7}),
			want: wireCat([]byte{2, 4, 5, 0xb4, 4, 2}, wireTS, []byte{1, 3, 3, 7})},
		{name: "syn no timestamps", o: tcp.Options{HasMSS: true, MSS: 1460, SACKPermitted: true, HasWindowScale: true, WindowScale: 9},
			want: []byte{2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 9}},
		{name: "syn ts no sack", o: withTS(tcp.Options{HasMSS: true, MSS: 536, HasWindowScale: true}),
			want: wireCat([]byte{2, 4, 2, 0x18}, nopTS, []byte{1, 3, 3, 0})},
		{name: "mss only", o: tcp.Options{HasMSS: true, MSS: 1220}, want: []byte{2, 4, 4, 0xc4}},
		{name: "data ts", o: ts, want: nopTS},
		{name: "ts + 1 sack", o: withTS(tcp.Options{NumSACK: 1, SACKBlocks: blocks}), want: wireCat(nopTS, sackBytes(1)), wantSACK: 1},
		{name: "ts + 3 sack = 40 bytes", o: withTS(tcp.Options{NumSACK: 3, SACKBlocks: blocks}), want: wireCat(nopTS, sackBytes(3)), wantSACK: 3},
		{name: "ts + 4 sack trims to 3", o: withTS(tcp.Options{NumSACK: 4, SACKBlocks: blocks}), want: wireCat(nopTS, sackBytes(3)), wantSACK: 3},
		{name: "4 sack alone", o: tcp.Options{NumSACK: 4, SACKBlocks: blocks}, want: sackBytes(4), wantSACK: 4},
		{name: "garbage NumSACK clamps to 4", o: tcp.Options{NumSACK: 200, SACKBlocks: blocks}, want: sackBytes(4), wantSACK: 4},
		{name: "everything: 2 sack fit", o: withTS(tcp.Options{HasMSS: true, MSS: 1460, SACKPermitted: true, HasWindowScale: true, WindowScale: 14, NumSACK: 4, SACKBlocks: blocks}),
			want: wireCat([]byte{2, 4, 5, 0xb4, 4, 2}, wireTS, []byte{1, 3, 3, 14}, sackBytes(2)), wantSACK: 2},
		{name: "mss+wscale+sack no ts", o: tcp.Options{HasMSS: true, MSS: 1, HasWindowScale: true, WindowScale: 1, NumSACK: 4, SACKBlocks: blocks},
			want: wireCat([]byte{2, 4, 0, 1, 1, 3, 3, 1}, sackBytes(3)), wantSACK: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, len(c.want), c.o.EncodedLen())
			require.Zero(t, len(c.want)%4, "not 4-byte aligned")
			require.LessOrEqual(t, len(c.want), tcp.MaxOptionsLen)
			buf := bytes.Repeat([]byte{0xee}, 64)
			n := c.o.Encode(buf)
			require.Equal(t, len(c.want), n)
			assert.Equal(t, fmt.Sprintf("% x", c.want), fmt.Sprintf("% x", buf[:n]))
			assert.Equal(t, byte(0xee), buf[n], "wrote past its length")

			// Parses back to the same options (minus the trimmed blocks).
			var back tcp.Options
			require.NoError(t, tcp.ParseOptions(buf[:n], &back))
			want := c.o
			want.NumSACK = c.wantSACK
			for i := c.wantSACK; i < tcp.MaxSACKBlocks; i++ {
				want.SACKBlocks[i] = tcp.SACKBlock{}
			}
			assert.Equal(t, want, back)
		})
	}
}

func TestEncodeOptionsShortBufferPanics(t *testing.T) {
	o := tcp.Options{HasMSS: true, MSS: 1460}
	assert.Panics(t, func() { o.Encode(make([]byte, 3)) })
}

func TestParseErrorText(t *testing.T) {
	seen := map[string]bool{}
	for e := tcp.ParseError(1); int(e) < tcp.NumParseErrors; e++ {
		assert.NotEqual(t, "tcp: unknown parse error", e.Error())
		assert.NotEqual(t, "tcp_unknown", e.Reason())
		assert.False(t, seen[e.Reason()], "duplicate reason %q", e.Reason())
		seen[e.Reason()] = true
	}
	assert.Equal(t, "tcp: unknown parse error", tcp.ParseError(0).Error())
	assert.Equal(t, "tcp_unknown", tcp.ParseError(tcp.NumParseErrors).Reason())
	assert.Equal(t, "tcp_option_size", tcp.ErrOptionSize.Reason())
}

// wireSACKFit restates, independently of options.go, how many SACK blocks
// our encoder keeps: the other options take 4 (MSS) + 12 (TS, with or
// without sackOK) or 4 (sackOK alone) + 4 (wscale), and the SACK option
// takes 4 + 8n of what is left of 40 bytes.
func wireSACKFit(o *tcp.Options) int {
	base := 0
	if o.HasMSS {
		base += 4
	}
	switch {
	case o.HasTimestamp:
		base += 12
	case o.SACKPermitted:
		base += 4
	}
	if o.HasWindowScale {
		base += 4
	}
	return max(0, min(int(o.NumSACK), 4, (40-base-4)/8))
}
