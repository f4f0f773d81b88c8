package drill

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
)

// The cookies the corpus's scripts were written with: Linux's SipHash of
// the SYN's addresses under the script's key.
func TestFastOpenCookieAsLinuxMakesIt(t *testing.T) {
	for _, c := range []struct {
		key, src, dst, want string
	}{
		// run_all.py's TFO_COOKIE for defaults.sh's key.
		{"a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4", "192.0.2.1", "192.168.0.1", "3021b9d889017eeb"},
		{"a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4", "fd3d:fa7b:d17d::1", "fd3d:a0b:17d6::1", "c1d1e9742a47a9bc"},
		// fastopen/server/simple1.pkt's addresses and key.
		{"a0bf63f7-ed803d81-cd641d30-cebc4a90", "10.248.0.2", "192.168.0.2", "00abaaabe8e954c2"},
	} {
		keys, err := parseFastOpenKeys(c.key)
		require.NoError(t, err)
		got := fastOpenCookie(keys[0], netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst))
		require.Equal(t, c.want, hex.EncodeToString(got), c.key)
	}
	// TCP_FASTOPEN_KEY's bytes for the same key as the sysctl text.
	b := unescapeC(`\xf7\x63\xbf\xa0\x81\x3d\x80\xed\x30\x1d\x64\xcd\x90\x4a\xbc\xce`)
	k, err := parseFastOpenKeys("a0bf63f7-ed803d81-cd641d30-cebc4a90")
	require.NoError(t, err)
	require.Equal(t, k, fastOpenKeysFromBytes(b))
	two, err := parseFastOpenKeys("a0bf63f7-ed803d81-cd641d30-cebc4a90,00000000-00000000-00000000-00000001")
	require.NoError(t, err)
	require.Len(t, two, 2)
	_, err = parseFastOpenKeys("a0bf63f7-ed803d81")
	require.Error(t, err)
}

func TestLiveCookieMapsOnlyTheScriptsServerCookies(t *testing.T) {
	keys, _ := parseFastOpenKeys("a0bf63f7-ed803d81-cd641d30-cebc4a90")
	sl, sr := netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("10.248.0.2")
	l, r := LinuxKernelAddr4, LinuxPeerAddr4
	script := fastOpenCookie(keys[0], sr, sl)
	require.Equal(t, fastOpenCookie(keys[0], r, l), liveCookie(script, keys, sl, sr, l, r))
	other := []byte{0x12, 0x34, 0xab, 0xcd, 0x56, 0x78, 0xdc, 0xba}
	require.Equal(t, other, liveCookie(other, keys, sl, sr, l, r), "a cookie no key makes stays as written")
	require.Equal(t, []byte{1, 2, 3, 4}, liveCookie([]byte{1, 2, 3, 4}, keys, sl, sr, l, r))
}

// Packet lines with Fast Open and MD5 options keep the option list in the
// order written and encode to packetdrill's bytes.
func TestFastOpenOptionsEncodeAsWritten(t *testing.T) {
	s, err := Parse("t.pkt", "0 < S 0:10(10) win 32792 <mss 1012,FOEXP 00abaaabe8e954c2,sackOK,TS val 10 ecr 0,nop,wscale 7>\n"+
		"+0 > S 0:0(0) <mss 1460,nop,nop,sackOK,nop,wscale 8,FO,nop,nop>\n"+
		"+0 < . 1:1(0) ack 1 win 514 <md5 000102030405060708090a0b0c0d0e0f,nop,nop>\n"+
		"+0 < S 0:0(0) win 100 <mss 1460,FOEXP TFO_COOKIE>\n"+
		"+0 < S 0:0(0) win 100 <FO 1122>\n")
	require.NoError(t, err)
	no := func(o WireOpt) []byte { return o.Data }
	p := s.Events[0].Packet
	require.Equal(t, "TCP Fast Open", p.Feature)
	require.Equal(t, []byte{
		2, 4, 0x03, 0xf4, // mss 1012
		254, 12, 0xf9, 0x89, 0x00, 0xab, 0xaa, 0xab, 0xe8, 0xe9, 0x54, 0xc2, // FOEXP
		4, 2, // sackOK
		8, 10, 0, 0, 0, 10, 0, 0, 0, 0, // TS val 10 ecr 0
		1,       // nop
		3, 3, 7, // wscale 7
	}, encodeWireOpts(p.Wire, p.Opts, no))
	require.Equal(t, "mss 1012,FOEXP 00abaaabe8e954c2,sackOK,TS val 10 ecr 0,nop,wscale 7", wireText(p))

	p = s.Events[1].Packet
	require.Equal(t, []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 8, 34, 2, 1, 1}, encodeWireOpts(p.Wire, p.Opts, no))
	require.Equal(t, "FO", extraText(extraOptions(encodeWireOpts(p.Wire, p.Opts, no))))

	p = s.Events[2].Packet
	require.Equal(t, "TCP MD5 signatures", p.Feature)
	enc := encodeWireOpts(p.Wire, p.Opts, no)
	require.Equal(t, append(append([]byte{19, 18}, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}...), 1, 1), enc)
	require.Equal(t, "md5 000102030405060708090a0b0c0d0e0f", extraText(extraOptions(enc)))

	p = s.Events[3].Packet
	require.Equal(t, "TFO_COOKIE", p.Wire[1].Sym)

	// An odd-length cookie pads the list with EOL to a multiple of 4.
	p = s.Events[4].Packet
	require.Equal(t, []byte{34, 4, 0x11, 0x22}, encodeWireOpts(p.Wire, p.Opts, no))

	// A list without Fast Open or MD5 keeps the engine's encoding.
	o, wire, feature, err := parseOptions("mss 1460,nop,wscale 7")
	require.NoError(t, err)
	require.Nil(t, wire)
	require.Empty(t, feature)
	require.True(t, o.HasMSS)
}

func TestFastOpenOptionErrors(t *testing.T) {
	for _, bad := range []string{"FO 123", "FO xyz1", "FOEXP 00 11", "md5 0011223344556677889900112233445566"} {
		_, _, _, err := parseOptions(bad)
		require.Error(t, err, bad)
	}
}

// The options of a kernel segment tcp.Options cannot carry are kept in
// wire order, each whole.
func TestExtraOptionsFromTheWire(t *testing.T) {
	opts := []byte{2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 8, 254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 0, 0}
	x := extraOptions(opts)
	require.Equal(t, []byte{254, 12, 0xf9, 0x89, 1, 2, 3, 4, 5, 6, 7, 8}, x)
	require.Equal(t, "FOEXP 0102030405060708", extraText(x))
	require.Nil(t, extraOptions([]byte{2, 4, 5, 0xb4, 34}), "a truncated option ends the list")
	var o tcp.Options
	require.NoError(t, tcp.ParseOptions(opts, &o))
	require.True(t, o.HasMSS && o.SACKPermitted && o.HasWindowScale)
}
