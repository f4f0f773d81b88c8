package drill

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
)

// TCP Fast Open options (RFC 7413) on the linux DUT: the harness builds
// them on `<` lines and checks them on `>` lines. tcp.Options does not model
// them (ustack has no Fast Open), so they travel as raw option bytes.

const (
	optFastOpen    = 34     // RFC 7413 §4.1.1
	optExperiment  = 254    // RFC 6994
	fastOpenExpMag = 0xF989 // the experimental Fast Open option's ExID
)

// featureFastOpen is the feature name of Fast Open lines and calls.
const featureFastOpen = "TCP Fast Open"

// fastOpenCookier is a DUT that can say which Fast Open cookie its kernel
// gives a client: packetdrill's TFO_COOKIE, which google's run_all.py
// passes as a -D define for its own addresses.
type fastOpenCookier interface {
	FastOpenCookie() ([]byte, error)
}

// encodeFastOpen returns the option's bytes: kind, length, (ExID,) cookie.
func encodeFastOpen(exp bool, cookie []byte) []byte {
	if exp {
		b := []byte{optExperiment, byte(4 + len(cookie)), fastOpenExpMag >> 8, fastOpenExpMag & 0xff}
		return append(b, cookie...)
	}
	return append([]byte{optFastOpen, byte(2 + len(cookie))}, cookie...)
}

// findFastOpen returns the Fast Open option in a TCP header's option bytes,
// or nil.
func findFastOpen(opts []byte) []byte {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return nil
		case 1:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return nil
		}
		o := opts[i : i+int(opts[i+1])]
		if o[0] == optFastOpen || o[0] == optExperiment && len(o) >= 4 && binary.BigEndian.Uint16(o[2:]) == fastOpenExpMag {
			return append([]byte(nil), o...)
		}
		i += len(o)
	}
	return nil
}

// fastOpenText renders an option as a script writes it.
func fastOpenText(o []byte) string {
	if o == nil {
		return "(none)"
	}
	if o[0] == optExperiment {
		return strings.TrimSpace("FOEXP " + hex.EncodeToString(o[4:]))
	}
	return strings.TrimSpace("FO " + hex.EncodeToString(o[2:]))
}

// fastOpenBytes resolves a line's option: its cookie as written, or
// TFO_COOKIE as the DUT's kernel computes it.
func (r *runner) fastOpenBytes(o *FastOpenOpt) ([]byte, error) {
	var cookie []byte
	switch {
	case o.Cookie == "":
	case o.Cookie == "TFO_COOKIE":
		c, ok := r.dut.(fastOpenCookier)
		if !ok {
			return nil, fmt.Errorf("TFO_COOKIE needs a DUT that computes Fast Open cookies")
		}
		var err error
		if cookie, err = c.FastOpenCookie(); err != nil {
			return nil, err
		}
	default:
		var err error
		if cookie, err = hex.DecodeString(o.Cookie); err != nil {
			return nil, fmt.Errorf("bad Fast Open cookie %q", o.Cookie)
		}
	}
	return encodeFastOpen(o.Exp, cookie), nil
}

// linuxFastOpenCookie is the cookie Linux's TFO server gives client for
// server (net/ipv4/tcp_fastopen.c, __tcp_fastopen_cookie_gen_cipher):
// SipHash-2-4 of the SYN's source and destination addresses, keyed by the
// first net.ipv4.tcp_fastopen_key (four 32-bit hex words, each stored
// little-endian), the 64-bit result little-endian.
func linuxFastOpenCookie(key string, client, server netip.Addr) ([]byte, error) {
	first, _, _ := strings.Cut(strings.TrimSpace(key), ",")
	words := strings.Split(first, "-")
	if len(words) != 4 {
		return nil, fmt.Errorf("tcp_fastopen_key %q: want four hex words a-b-c-d", key)
	}
	var k [16]byte
	for i, w := range words {
		var v uint32
		if _, err := fmt.Sscanf(w, "%x", &v); err != nil {
			return nil, fmt.Errorf("tcp_fastopen_key %q: %v", key, err)
		}
		binary.LittleEndian.PutUint32(k[4*i:], v)
	}
	msg := append(client.AsSlice(), server.AsSlice()...)
	h := sipHash24(binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:]), msg)
	return binary.LittleEndian.AppendUint64(nil, h), nil
}

// sipHash24 is SipHash-2-4 (Aumasson and Bernstein, 2012).
func sipHash24(k0, k1 uint64, m []byte) uint64 {
	v0, v1 := k0^0x736f6d6570736575, k1^0x646f72616e646f6d
	v2, v3 := k0^0x6c7967656e657261, k1^0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(m)
	for ; len(m) >= 8; m = m[8:] {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		round()
		round()
		v0 ^= w
	}
	var tail [8]byte
	copy(tail[:], m)
	b := binary.LittleEndian.Uint64(tail[:]) | uint64(n)<<56
	v3 ^= b
	round()
	round()
	v0 ^= b
	v2 ^= 0xff
	for range 4 {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// withOption returns a TCP header plus payload with opt added to its
// options (before NOP padding to a 4-byte boundary), or an error if the
// options would not fit 40 bytes.
func withOption(seg []byte, opt []byte) ([]byte, error) {
	hl := int(seg[12]>>4) * 4
	var opts []byte
	for i := 20; i < hl; {
		if seg[i] == 0 {
			break
		}
		if seg[i] == 1 {
			opts = append(opts, 1)
			i++
			continue
		}
		l := int(seg[i+1])
		if l < 2 || i+l > hl {
			break
		}
		opts = append(opts, seg[i:i+l]...)
		i += l
	}
	opts = append(opts, opt...)
	for len(opts)%4 != 0 {
		opts = append(opts, 1)
	}
	if len(opts) > 40 {
		return nil, fmt.Errorf("TCP options of %d bytes do not fit 40", len(opts))
	}
	out := make([]byte, 0, 20+len(opts)+len(seg)-hl)
	out = append(out, seg[:20]...)
	out = append(out, opts...)
	out = append(out, seg[hl:]...)
	out[12] = byte((20+len(opts))/4)<<4 | seg[12]&0x0f
	return out, nil
}

// buildsFastOpen says whether the DUT takes p's Fast Open option: the
// linux DUT does, and the line needs nothing else the harness lacks.
func (r *runner) buildsFastOpen(p *Packet) bool {
	_, ok := r.dut.(fastOpenCookier)
	return ok && p.FastOpen != nil && p.Feature == featureFastOpen
}

// checkFastOpen compares a `>` line's Fast Open option with the one the DUT
// sent (nil: none), when the line gives options: a line without one wants
// none, as packetdrill compares the whole option list. It returns the
// difference and false when they differ.
func (r *runner) checkFastOpen(p *Packet, got []byte) (string, bool) {
	if _, ok := r.dut.(fastOpenCookier); !ok || p.Opts == nil {
		return "", true
	}
	var want []byte
	if p.FastOpen != nil {
		var err error
		if want, err = r.fastOpenBytes(p.FastOpen); err != nil {
			return err.Error(), false
		}
	}
	if string(want) != string(got) {
		return fmt.Sprintf("Fast Open option %s, want %s", fastOpenText(got), fastOpenText(want)), false
	}
	return "", true
}
