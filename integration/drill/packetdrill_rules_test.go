package drill

import (
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
)

// The rules below are google packetdrill's (gtests/net/packetdrill), which
// the linux DUT is measured against: see docs/drill-corpus.md.

// An untimed shell line before any event is packetdrill's init command; a
// later or timed one is not.
func TestParseInitCommand(t *testing.T) {
	s, err := Parse("t.pkt", "`true`\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 `true`\n`true`\n")
	require.NoError(t, err)
	require.Len(t, s.Events, 4)
	require.True(t, s.Events[0].Init)
	require.False(t, s.Events[2].Init)
	require.False(t, s.Events[3].Init)
	s, err = Parse("t.pkt", "0 `true`\n")
	require.NoError(t, err)
	require.False(t, s.Events[0].Init)
}

// The tolerance is at least --tolerance_percent (12.5 by default) of the
// time since the previous event.
func TestTolerancePercent(t *testing.T) {
	s, err := Parse("t.pkt", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	require.NoError(t, err)
	require.Equal(t, 12.5, s.TolerancePercent)
	s, err = Parse("t.pkt", "--tolerance_percent=50\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	require.NoError(t, err)
	require.Equal(t, 50.0, s.TolerancePercent)
	_, err = Parse("t.pkt", "--tolerance_percent=101\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	require.Error(t, err)

	r := &runner{tol: 4 * time.Millisecond, pct: 12.5}
	require.Equal(t, 4*time.Millisecond, r.tolFor(10*time.Millisecond))
	require.Equal(t, 12500*time.Microsecond, r.tolFor(100*time.Millisecond))
	r.pct = 0 // virtual-time DUTs
	require.Equal(t, 4*time.Millisecond, r.tolFor(time.Second))
}

// As in packetdrill, a SYN line's sequence number is the ISN itself and the
// lines after it count from it: `< . 1:1(0) ack 1` after `< S 999000:...`
// and `> S. 1234:...` is sequence 999001, ACK of the DUT's ISN + 1.
func TestSynSequenceNumbersAreTheISN(t *testing.T) {
	src := `0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 999000:999000(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0 > S. 1234:1234(0) ack 999001 <mss 1460,nop,nop,sackOK,nop,wscale 8>
+.01 < . 1:1(0) ack 1 win 257
+0 accept(3, ..., ...) = 4
+0 write(4, ..., 100) = 100
+0 > P. 1:101(100) ack 1
+.01 < . 1:1(0) ack 101 win 257
`
	s, err := Parse("isn.pkt", src)
	require.NoError(t, err)
	r := Run(s, "tcp", Strict, nil)
	require.Equal(t, Pass, r.Status, "%s\n%v", r.Detail, r.Trace)
}

// The cookies google's run_all.py passes as TFO_COOKIE for its own
// addresses under defaults.sh's key are what the harness computes.
func TestLinuxFastOpenCookie(t *testing.T) {
	const key = "a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4"
	cookie := func(key, client, server string) ([]byte, error) {
		keys, err := parseFastOpenKeys(key)
		if err != nil {
			return nil, err
		}
		return fastOpenCookie(keys[0], netip.MustParseAddr(client), netip.MustParseAddr(server)), nil
	}
	c, err := cookie(key, "192.0.2.1", "192.168.0.1")
	require.NoError(t, err)
	require.Equal(t, "3021b9d889017eeb", hex.EncodeToString(c))
	require.Equal(t, c, tfoCookieSymbol(false))
	c, err = cookie(key+"\n", "fd3d:fa7b:d17d::1", "fd3d:a0b:17d6::1")
	require.NoError(t, err)
	require.Equal(t, "c1d1e9742a47a9bc", hex.EncodeToString(c))
	require.Equal(t, c, tfoCookieSymbol(true))
	_, err = cookie("a1a1a1a1", "192.0.2.1", "192.168.0.1")
	require.Error(t, err)
}

// A Fast Open option keeps its place in a line's option list, encodes to
// its bytes, and is found again in a segment's options.
func TestFastOpenOption(t *testing.T) {
	s, err := Parse("t.pkt", "0 < S 0:10(10) win 32792 <mss 1460,sackOK,nop,nop,FOEXP TFO_COOKIE>\n0 > S. 0:0(0) ack 11 <mss 1460,FO 0011223344556677>\n0 < S 0:0(0) win 1 <FO>\n")
	require.NoError(t, err)
	require.Equal(t, WireOpt{Kind: optKindExp, Sym: "TFO_COOKIE"}, s.Events[0].Packet.Wire[4])
	require.Equal(t, "TCP Fast Open", s.Events[0].Packet.Feature)
	require.Equal(t, WireOpt{Kind: optKindFastOpen, Data: []byte{0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}}, s.Events[1].Packet.Wire[1])
	require.Equal(t, []WireOpt{{Kind: optKindFastOpen}}, s.Events[2].Packet.Wire)
	_, err = Parse("t.pkt", "0 < S 0:0(0) win 1 <FO 123>\n")
	require.Error(t, err)
	// An invalid cookie length parses: valid-cookie-format.pkt sends one.
	s, err = Parse("t.pkt", "0 < S. 0:0(0) ack 1 win 1 <FO 1122>\n")
	require.NoError(t, err)
	require.Equal(t, []WireOpt{{Kind: optKindFastOpen, Data: []byte{0x11, 0x22}}}, s.Events[0].Packet.Wire)

	data := func(o WireOpt) []byte { return o.Data }
	fo := encodeWireOpts([]WireOpt{{Kind: optKindExp, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}}}, &tcp.Options{}, data)
	require.Equal(t, []byte{254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8}, fo)
	require.Equal(t, []byte{34, 2}, extraOptions(encodeWireOpts([]WireOpt{{Kind: optKindFastOpen}}, &tcp.Options{}, data)))
	// MSS (4) and a NOP, then the option, EOL-padded to a multiple of 4.
	s, err = Parse("t.pkt", "0 < S 0:3(3) win 1 <mss 1460,nop,FOEXP 0102030405060708>\n")
	require.NoError(t, err)
	p := s.Events[0].Packet
	out := encodeWireOpts(p.Wire, p.Opts, data)
	require.Len(t, out, 20)
	require.Equal(t, []byte{2, 4, 5, 0xb4, 1}, out[:5])
	require.Equal(t, fo, extraOptions(out))
	require.Equal(t, []byte{0, 0, 0}, out[17:20])
	require.Nil(t, extraOptions([]byte{2, 4, 5, 0xb4, 1, 0, 0, 0}))
	require.Equal(t, "FOEXP 0102030405060708", extraText(fo))
	// A list longer than the header's 40 option bytes is refused.
	_, err = Parse("t.pkt", "0 < S 0:0(0) win 1 <mss 1460,FOEXP "+hex.EncodeToString(make([]byte, 34))+">\n")
	require.ErrorContains(t, err, "do not fit 40")
}
