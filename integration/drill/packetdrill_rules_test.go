package drill

import (
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

// SipHash-2-4's reference vector (the paper's appendix A: key 00..0f,
// message 00..0e).
func TestSipHash24(t *testing.T) {
	var m []byte
	for i := range 15 {
		m = append(m, byte(i))
	}
	require.Equal(t, uint64(0xa129ca6149be45e5), sipHash24(0x0706050403020100, 0x0f0e0d0c0b0a0908, m))
}

// The cookies google's run_all.py passes as TFO_COOKIE for its own
// addresses under defaults.sh's key are what the harness computes.
func TestLinuxFastOpenCookie(t *testing.T) {
	const key = "a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4"
	c, err := linuxFastOpenCookie(key, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.168.0.1"))
	require.NoError(t, err)
	require.Equal(t, "3021b9d889017eeb", hex.EncodeToString(c))
	c, err = linuxFastOpenCookie(key+"\n", netip.MustParseAddr("fd3d:fa7b:d17d::1"), netip.MustParseAddr("fd3d:a0b:17d6::1"))
	require.NoError(t, err)
	require.Equal(t, "c1d1e9742a47a9bc", hex.EncodeToString(c))
	_, err = linuxFastOpenCookie("a1a1a1a1", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.168.0.1"))
	require.Error(t, err)
}

// A Fast Open option goes into a segment's options before the padding, and
// is found again in them.
func TestFastOpenOption(t *testing.T) {
	s, err := Parse("t.pkt", "0 < S 0:10(10) win 32792 <mss 1460,sackOK,nop,nop,FOEXP TFO_COOKIE>\n0 > S. 0:0(0) ack 11 <mss 1460,FO 0011223344556677>\n0 < S 0:0(0) win 1 <FO>\n")
	require.NoError(t, err)
	require.Equal(t, &FastOpenOpt{Exp: true, Cookie: "TFO_COOKIE"}, s.Events[0].Packet.FastOpen)
	require.Equal(t, featureFastOpen, s.Events[0].Packet.Feature)
	require.Equal(t, &FastOpenOpt{Cookie: "0011223344556677"}, s.Events[1].Packet.FastOpen)
	require.Equal(t, &FastOpenOpt{}, s.Events[2].Packet.FastOpen)
	_, err = Parse("t.pkt", "0 < S 0:0(0) win 1 <FO 123>\n")
	require.Error(t, err)
	// An invalid cookie length parses: valid-cookie-format.pkt sends one.
	s, err = Parse("t.pkt", "0 < S. 0:0(0) ack 1 win 1 <FO 1122>\n")
	require.NoError(t, err)
	require.Equal(t, &FastOpenOpt{Cookie: "1122"}, s.Events[0].Packet.FastOpen)

	fo := encodeFastOpen(true, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	require.Equal(t, []byte{254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8}, fo)
	require.Equal(t, []byte{34, 2}, encodeFastOpen(false, nil))
	// A 20-byte header with MSS (4) and a NOP, EOL pad, then 3 payload bytes.
	seg := make([]byte, 20, 31)
	seg[12] = 7 << 4
	seg = append(seg, 2, 4, 5, 0xb4, 1, 0, 0, 0, 'a', 'b', 'c')
	out, err := withOption(seg, fo)
	require.NoError(t, err)
	require.Equal(t, byte(10<<4), out[12])
	require.Equal(t, []byte{2, 4, 5, 0xb4, 1}, out[20:25])
	require.Equal(t, fo, findFastOpen(out[20:40]))
	require.Equal(t, []byte{1, 1, 1}, out[37:40])
	require.Equal(t, "abc", string(out[40:]))
	require.Nil(t, findFastOpen(seg[20:28]))
	require.Equal(t, "FOEXP 0102030405060708", fastOpenText(fo))
	_, err = withOption(out, make([]byte, 30))
	require.Error(t, err)
}
