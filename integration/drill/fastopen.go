package drill

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/internal/siphash"
	"github.com/ustack-net/ustack/tcp"
)

// TCP option kinds the engine's tcp.Options has no field for; the harness
// builds and checks them byte for byte on the linux DUT, as packetdrill
// writes them.
const (
	optKindMD5      = 19  // TCP MD5 signature (RFC 2385 §3.0): 16-byte digest
	optKindFastOpen = 34  // TCP Fast Open cookie (RFC 7413 §4.1.1)
	optKindExp      = 254 // experimental (RFC 6994), Fast Open with magic 0xF989
	fastOpenMagic   = 0xF989
	// maxOptLen is the most option bytes a TCP header holds (data
	// offset 15, RFC 9293 §3.1).
	maxOptLen = 40
)

// WireOpt is one TCP option of a packet line, in the order written, for a
// line the harness builds byte for byte (one with a Fast Open or MD5
// option). TS and SACK values are taken from Packet.Opts when the packet
// is built (after the runner maps TS ecr and SACK blocks onto the live
// numbers); Data holds the other options' bytes after kind and length.
type WireOpt struct {
	Kind byte
	Data []byte
	// Sym is a cookie given by name (TFO_COOKIE), resolved when the
	// packet is built.
	Sym string
}

// extra reports whether o is an option tcp.Options cannot carry.
func (o WireOpt) extra() bool {
	return o.Kind == optKindMD5 || o.Kind == optKindFastOpen || o.Kind == optKindExp
}

// parseHexBlob parses a cookie or digest as packetdrill does: an even
// number of hex digits (an empty one is a cookie request).
func parseHexBlob(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("%q has an odd number of hex digits", s)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a hex string", s)
	}
	return b, nil
}

// tfoCookieSymbol is the value packetdrill's run_all.py defines TFO_COOKIE
// as: the cookie the corpus's default key (defaults.sh) makes for
// run_all's default addresses.
func tfoCookieSymbol(ipv6 bool) []byte {
	if ipv6 {
		return []byte{0xc1, 0xd1, 0xe9, 0x74, 0x2a, 0x47, 0xa9, 0xbc}
	}
	return []byte{0x30, 0x21, 0xb9, 0xd8, 0x89, 0x01, 0x7e, 0xeb}
}

// scriptAddrs are the addresses a script's cookies were computed for: its
// --local_ip and --remote_ip, else run_all.py's defaults.
func scriptAddrs(s *Script) (local, remote netip.Addr) {
	local, remote = netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("192.0.2.1")
	if s.IPv6 {
		local, remote = netip.MustParseAddr("fd3d:a0b:17d6::1"), netip.MustParseAddr("fd3d:fa7b:d17d::1")
	}
	if a, err := netip.ParseAddr(s.Options["local_ip"]); err == nil {
		local = a
	}
	if a, err := netip.ParseAddr(s.Options["remote_ip"]); err == nil {
		remote = a
	}
	return local, remote
}

// FastOpenKey is a server's Fast Open key as Linux keeps it: the two
// SipHash key words (net/ipv4/tcp_fastopen.c).
type FastOpenKey [2]uint64

// parseFastOpenKeys parses net.ipv4.tcp_fastopen_key's text: one or two
// (primary, backup) keys of four 32-bit hex words, `-` between words.
// Linux stores word 1 above word 0 (and 3 above 2) in its 64-bit halves.
func parseFastOpenKeys(s string) ([]FastOpenKey, error) {
	var keys []FastOpenKey
	for _, k := range strings.Split(strings.TrimSpace(s), ",") {
		w := strings.Split(strings.TrimSpace(k), "-")
		if len(w) != 4 {
			return nil, fmt.Errorf("fastopen key %q: want four words a-b-c-d", k)
		}
		var v [4]uint64
		for i, x := range w {
			n, err := strconv.ParseUint(x, 16, 32)
			if err != nil {
				return nil, fmt.Errorf("fastopen key %q: bad word %q", k, x)
			}
			v[i] = n
		}
		keys = append(keys, FastOpenKey{v[1]<<32 | v[0], v[3]<<32 | v[2]})
	}
	return keys, nil
}

// fastOpenKeysFromBytes is TCP_FASTOPEN_KEY's value: 16 bytes per key, each
// half a little-endian 64-bit word.
func fastOpenKeysFromBytes(b []byte) []FastOpenKey {
	var keys []FastOpenKey
	for len(b) >= 16 {
		keys = append(keys, FastOpenKey{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])})
		b = b[16:]
	}
	return keys
}

// fastOpenCookie is the cookie Linux's server gives a client: SipHash-2-4
// of the SYN's source and destination addresses under the key, as 8
// little-endian bytes (__tcp_fastopen_cookie_gen_cipher).
func fastOpenCookie(k FastOpenKey, src, dst netip.Addr) []byte {
	m := append(src.AsSlice(), dst.AsSlice()...)
	var out [8]byte
	binary.LittleEndian.PutUint64(out[:], siphash.Sum(siphash.Key{K0: k[0], K1: k[1]}, m))
	return out[:]
}

// liveCookie maps a cookie the script wrote onto the one the DUT's
// addresses make: a script's server cookies were computed for its own
// addresses (packetdrill puts the script's addresses on its TUN; this
// harness uses the benchmarking range), so a cookie that one of the live
// keys makes for the script's addresses becomes the cookie the same key
// makes for the live ones. Any other cookie (a client script's, a
// deliberately wrong one) is sent and expected as written.
func liveCookie(c []byte, keys []FastOpenKey, scriptLocal, scriptRemote, local, remote netip.Addr) []byte {
	if len(c) != 8 {
		return c
	}
	for _, k := range keys {
		if bytes.Equal(c, fastOpenCookie(k, scriptRemote, scriptLocal)) {
			return fastOpenCookie(k, remote, local)
		}
	}
	return c
}

// encodeWireOpts writes a packet line's options in the order written,
// TS and SACK values from o, padded with EOL to a multiple of 4 bytes.
func encodeWireOpts(w []WireOpt, o *tcp.Options, cookie func(WireOpt) []byte) []byte {
	var b []byte
	for _, x := range w {
		switch x.Kind {
		case 0, 1:
			b = append(b, x.Kind)
		case 8: // TS
			b = append(b, 8, 10)
			b = binary.BigEndian.AppendUint32(b, o.TSVal)
			b = binary.BigEndian.AppendUint32(b, o.TSEcr)
		case 5: // SACK
			b = append(b, 5, byte(2+8*int(o.NumSACK)))
			for i := range int(o.NumSACK) {
				b = binary.BigEndian.AppendUint32(b, uint32(o.SACKBlocks[i].Start))
				b = binary.BigEndian.AppendUint32(b, uint32(o.SACKBlocks[i].End))
			}
		case optKindFastOpen, optKindExp:
			c := cookie(x)
			if x.Kind == optKindExp {
				b = append(b, optKindExp, byte(4+len(c)), fastOpenMagic>>8, fastOpenMagic&0xff)
			} else {
				b = append(b, optKindFastOpen, byte(2+len(c)))
			}
			b = append(b, c...)
		default:
			b = append(b, x.Kind, byte(2+len(x.Data)))
			b = append(b, x.Data...)
		}
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// extraOptions returns the options of a TCP header's option bytes that
// tcp.Options has no field for (Fast Open, experimental, MD5), each as
// kind, length and data, in wire order.
func extraOptions(opts []byte) []byte {
	var out []byte
	for i := 0; i < len(opts); {
		k := opts[i]
		if k == 0 {
			break
		}
		if k == 1 {
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break // malformed: the engine's parser reports it
		}
		n := int(opts[i+1])
		if (WireOpt{Kind: k}).extra() {
			out = append(out, opts[i:i+n]...)
		}
		i += n
	}
	return out
}

// extraText renders extra options in packetdrill notation: `FO`,
// `FO 0011…`, `FOEXP …`, `md5 …`, or `exp …` for another experiment.
func extraText(b []byte) string {
	var p []string
	for len(b) >= 2 && int(b[1]) >= 2 && int(b[1]) <= len(b) {
		k, d := b[0], b[2:b[1]]
		b = b[b[1]:]
		var s string
		switch {
		case k == optKindFastOpen:
			s = "FO"
		case k == optKindExp && len(d) >= 2 && binary.BigEndian.Uint16(d) == fastOpenMagic:
			s, d = "FOEXP", d[2:]
		case k == optKindMD5:
			s = "md5"
		default:
			s = fmt.Sprintf("kind%d", k)
		}
		if len(d) > 0 {
			s += " " + hex.EncodeToString(d)
		}
		p = append(p, s)
	}
	return strings.Join(p, ",")
}

// wireOpts reports whether the runner's DUT takes Fast Open and MD5
// options byte for byte (the kernel: packetdrill's own DUT).
func (r *runner) wireOpts(p *Packet) bool {
	_, ok := r.dut.(fastOpener)
	return ok && p.Wire != nil
}

// packetUnsupported reports a line needing a feature the DUT or the
// harness lacks (how says which the harness cannot do: "build", "check").
func (r *runner) packetUnsupported(ev *Event, how string) error {
	if _, linux := r.dut.(fastOpener); linux {
		return r.featureUnsupported(ev, ev.Packet.Feature+" (the harness cannot "+how+" them)")
	}
	return r.featureUnsupported(ev, ev.Packet.Feature)
}

// cookie is the Fast Open cookie a line's option stands for on the wire:
// TFO_COOKIE as run_all.py defines it, and a server cookie mapped onto the
// live addresses (liveCookie).
func (r *runner) cookie(o WireOpt) []byte {
	c := o.Data
	if o.Sym == "TFO_COOKIE" {
		c = tfoCookieSymbol(r.s.IPv6)
	}
	f, ok := r.dut.(fastOpener)
	if !ok || len(c) == 0 {
		return c
	}
	keys := append(f.FastOpenKeys(), r.foKeys...)
	sl, sr := scriptAddrs(r.s)
	l, rm := f.Addrs()
	return liveCookie(c, keys, sl, sr, l, rm)
}

// extraBytes are the Fast Open and MD5 options a `>` line expects, as on
// the wire (cookies as the live addresses make them).
func (r *runner) extraBytes(p *Packet) []byte {
	var w []WireOpt
	for _, o := range p.Wire {
		if o.extra() {
			w = append(w, o)
		}
	}
	if len(w) == 0 {
		return nil
	}
	return extraOptions(encodeWireOpts(w, &tcp.Options{}, r.cookie))
}

// renderEmission is render with the segment's extra options.
func (r *runner) renderEmission(e *integration.Emission) string {
	s := r.render(&e.Seg)
	t := extraText(e.ExtraOptions)
	switch {
	case t == "":
		return s
	case strings.HasSuffix(s, ">"):
		return s[:len(s)-1] + "," + t + ">"
	}
	return s + " <" + t + ">"
}

// wireText renders a line's options in the order written.
func wireText(p *Packet) string {
	var out []string
	o := p.Opts
	for _, w := range p.Wire {
		switch w.Kind {
		case 0:
			out = append(out, "eol")
		case 1:
			out = append(out, "nop")
		case 2:
			out = append(out, fmt.Sprintf("mss %d", o.MSS))
		case 3:
			out = append(out, fmt.Sprintf("wscale %d", o.WindowScale))
		case 4:
			out = append(out, "sackOK")
		case 5:
			s := "sack"
			for i := range int(o.NumSACK) {
				s += fmt.Sprintf(" %d:%d", uint32(o.SACKBlocks[i].Start), uint32(o.SACKBlocks[i].End))
			}
			out = append(out, s)
		case 8:
			out = append(out, fmt.Sprintf("TS val %d ecr %d", o.TSVal, o.TSEcr))
		default:
			t := map[byte]string{optKindFastOpen: "FO", optKindExp: "FOEXP", optKindMD5: "md5"}[w.Kind]
			if w.Sym != "" {
				t += " " + w.Sym
			} else if len(w.Data) > 0 {
				t += " " + hex.EncodeToString(w.Data)
			}
			out = append(out, t)
		}
	}
	return strings.Join(out, ",")
}

// unescapeC decodes a C string literal's escapes (\xHH, \NNN octal, \n,
// \t, \\, \").
func unescapeC(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b = append(b, s[i])
			continue
		}
		i++
		switch c := s[i]; {
		case c == 'x':
			j := i + 1
			for j < len(s) && j < i+3 && strings.IndexByte("0123456789abcdefABCDEF", s[j]) >= 0 {
				j++
			}
			v, _ := strconv.ParseUint(s[i+1:j], 16, 8)
			b = append(b, byte(v))
			i = j - 1
		case c >= '0' && c <= '7':
			j := i
			for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			v, _ := strconv.ParseUint(s[i:j], 8, 8)
			b = append(b, byte(v))
			i = j - 1
		case c == 'n':
			b = append(b, '\n')
		case c == 't':
			b = append(b, '\t')
		case c == 'r':
			b = append(b, '\r')
		default:
			b = append(b, c)
		}
	}
	return b
}
