package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// udpSuper builds a UDP super-datagram from src to dst: IP and UDP headers
// and the payload, the UDP length the whole transport's, the checksum field
// holding the pseudo-header sum (a partial checksum, as the kernel sends
// it), IPv4 ID id. With ext, an IPv6 packet carries an 8-byte destination
// options header before UDP.
func udpSuper(src, dst netip.Addr, id uint16, payload []byte, ext bool) (pkt []byte, iphLen int) {
	v6 := src.Is6()
	iphLen = 20
	if v6 {
		iphLen = 40
		if ext {
			iphLen = 48
		}
	}
	total := iphLen + 8 + len(payload)
	pkt = make([]byte, total)
	if v6 {
		pkt[0] = 0x60
		binary.BigEndian.PutUint16(pkt[4:], uint16(total-40))
		pkt[6], pkt[7] = 17, 64
		if ext {
			pkt[6] = 60              // destination options
			pkt[40], pkt[41] = 17, 0 // next header UDP, 8 bytes
			pkt[42], pkt[43] = 1, 4  // PadN of 4
		}
		s, d := src.As16(), dst.As16()
		copy(pkt[8:], s[:])
		copy(pkt[24:], d[:])
	} else {
		pkt[0] = 0x45
		binary.BigEndian.PutUint16(pkt[2:], uint16(total))
		binary.BigEndian.PutUint16(pkt[4:], id)
		pkt[8], pkt[9] = 64, 17
		s, d := src.As4(), dst.As4()
		copy(pkt[12:], s[:])
		copy(pkt[16:], d[:])
		binary.BigEndian.PutUint16(pkt[10:], ^sum1071(pkt[:20], 0))
	}
	u := pkt[iphLen:]
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], 7)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	binary.BigEndian.PutUint16(u[6:], sum1071(udpPseudo(pkt, iphLen, len(u)), 0))
	return pkt, iphLen
}

// sum1071 is the RFC 1071 one's complement sum of b added to initial,
// folded, written independently of ip.Checksum so the tests check it.
func sum1071(b []byte, initial uint32) uint16 {
	s := initial
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// udpPseudo is the pseudo-header of pkt's UDP datagram of n bytes, as bytes
// to sum (RFC 768; RFC 8200 §8.1).
func udpPseudo(pkt []byte, iphLen, n int) []byte {
	var p []byte
	if pkt[0]>>4 == 6 {
		p = append(p, pkt[8:40]...)
		p = binary.BigEndian.AppendUint32(p, uint32(n))
		p = append(p, 0, 0, 0, 17)
	} else {
		p = append(p, pkt[12:20]...)
		p = append(p, 0, 17)
		p = binary.BigEndian.AppendUint16(p, uint16(n))
	}
	return p
}

// udpChecksumOK verifies an IP packet's UDP checksum (and IPv4 header's).
func udpChecksumOK(pkt []byte, iphLen int) bool {
	if pkt[0]>>4 == 4 && sum1071(pkt[:iphLen], 0) != 0xffff {
		return false
	}
	u := pkt[iphLen:]
	ps := sum1071(udpPseudo(pkt, iphLen, len(u)), 0)
	return binary.BigEndian.Uint16(u[6:]) != 0 && sum1071(u, uint32(ps)) == 0xffff
}

func TestSegmentUDP(t *testing.T) {
	tests := []struct {
		name      string
		src, dst  netip.Addr
		ext       bool
		payload   int
		size      int
		wantSizes []int
	}{
		{"v4 even", hostV4, stackV4, false, 3 * 1200, 1200, []int{1228, 1228, 1228}},
		{"v4 tail, ID wraps", hostV4, stackV4, false, 2*1000 + 17, 1000, []int{1028, 1028, 45}},
		{"v6 tail", hostV6, stackV6, false, 4*1400 + 1, 1400, []int{1448, 1448, 1448, 1448, 49}},
		{"v6 extension header", hostV6, stackV6, true, 2500, 1000, []int{1056, 1056, 556}},
		{"v4 one short datagram", hostV4, stackV4, false, 64, 1472, []int{92}},
		{"v4 64 KiB of 64-byte datagrams", hostV4, stackV4, false, 65535 - 28, 64, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := patterned(tt.payload, 5)
			pkt, iphLen := udpSuper(tt.src, tt.dst, 0xfffe, payload, tt.ext)
			orig := bytes.Clone(pkt)
			g := UDPGSO(iphLen, tt.size)
			bufs, sizes := newBufs(1100, 1600), make([]int, 1100)
			n, err := Segment(pkt, g, bufs, sizes, 4)
			require.NoError(t, err)
			assert.Equal(t, orig, pkt, "the super-datagram is left alone")
			require.Equal(t, (tt.payload+tt.size-1)/tt.size, n)
			if tt.wantSizes != nil {
				assert.Equal(t, tt.wantSizes, sizes[:n])
			}
			var got []byte
			for i := range n {
				seg := bufs[i][4 : 4+sizes[i]]
				require.Truef(t, udpChecksumOK(seg, iphLen), "datagram %d checksum", i)
				assert.Equal(t, orig[:2], seg[:2], "version, header length, TOS of %d", i)
				u := seg[iphLen:]
				assert.Equal(t, uint16(40000), binary.BigEndian.Uint16(u[0:]))
				assert.Equal(t, uint16(7), binary.BigEndian.Uint16(u[2:]))
				assert.Equal(t, len(u), int(binary.BigEndian.Uint16(u[4:])), "UDP length of %d", i)
				if tt.src.Is6() {
					assert.Equal(t, sizes[i]-40, int(binary.BigEndian.Uint16(seg[4:])), "payload length of %d", i)
					assert.Equal(t, orig[6:iphLen], seg[6:iphLen], "next header, hop limit, addresses, extension of %d", i)
				} else {
					assert.Equal(t, sizes[i], int(binary.BigEndian.Uint16(seg[2:])), "total length of %d", i)
					assert.Equal(t, uint16(0xfffe+i), binary.BigEndian.Uint16(seg[4:]), "IPv4 ID of %d", i)
					assert.Equal(t, orig[6:10], seg[6:10], "flags, TTL, protocol of %d", i)
				}
				got = append(got, u[8:]...)
			}
			assert.True(t, bytes.Equal(payload, got), "the payloads, in order, are the super-datagram's")
		})
	}
}

func TestCompleteChecksumUDPZero(t *testing.T) {
	// A partial UDP checksum that completes to zero is sent as all ones
	// (RFC 768), never as "no checksum".
	pkt, iphLen := udpSuper(hostV4, stackV4, 1, make([]byte, 4), false)
	// The completed checksum is the complement of the sum over the datagram
	// with the pseudo-header sum in its field: make that sum 0xffff.
	s0 := sum1071(pkt[iphLen:], 0)
	binary.BigEndian.PutUint16(pkt[iphLen+8:], 0xffff-s0)
	require.Equal(t, uint16(0xffff), sum1071(pkt[iphLen:], 0))
	require.NoError(t, CompleteChecksum(pkt, UDPGSO(iphLen, 0)))
	assert.Equal(t, uint16(0xffff), binary.BigEndian.Uint16(pkt[iphLen+6:]))
	assert.True(t, udpChecksumOK(pkt, iphLen))
}

func TestGSOCheckReasons(t *testing.T) {
	u4, _ := udpSuper(hostV4, stackV4, 1, patterned(3000, 0), false)
	u6, _ := udpSuper(hostV6, stackV6, 1, patterned(3000, 0), false)
	tcp4 := tcpPkt{src: stackV4, dst: hostV4, flags: flagACK, payload: patterned(3000, 0)}.build(0)
	tcp6 := tcpPkt{src: stackV6, dst: hostV6, flags: flagACK, payload: patterned(3000, 0)}.build(0)
	tests := []struct {
		name string
		pkt  []byte
		g    GSO
		want GSODropReason
	}{
		{"udp v4 wrong IHL", u4, UDPGSO(24, 1000), GSOBadFamily},
		{"udp v6 short start", u6, UDPGSO(20, 1000), GSOBadFamily},
		{"udp v4 carries TCP", tcp4, UDPGSO(20, 1000), GSOBadProtocol},
		{"udp v6 carries TCP", tcp6, UDPGSO(40, 1000), GSOBadProtocol},
		{"udp size 0", u4, GSO{Type: GSOUDP, NeedsCsum: true, CsumStart: 20, CsumOffset: 6}, GSOBadSize},
		{"udp TCP checksum offset", u4, GSO{Type: GSOUDP, Size: 1000, NeedsCsum: true, CsumStart: 20, CsumOffset: 16}, GSOBadCsum},
		{"tcp UDP checksum offset", tcp4, GSO{Type: GSOTCPv4, Size: 1000, CsumStart: 20, CsumOffset: 6}, GSOBadCsum},
		{"udp no UDP header", u4[:24], UDPGSO(20, 1000), GSOShort},
		{"udp IP header beyond the packet", u4[:12], UDPGSO(20, 1000), GSOShort},
		{"udp empty", nil, UDPGSO(20, 1000), GSOShort},
		{"unknown type", u4, GSO{Type: 9, Size: 100, CsumStart: 20, CsumOffset: 6}, GSOBadType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Segment(tt.pkt, tt.g, newBufs(8, 1500), make([]int, 8), 0)
			require.ErrorIs(t, err, ErrBadGSO)
			r, ok := GSOReasonOf(err)
			require.True(t, ok, "%v has a reason", err)
			assert.Equal(t, tt.want, r, "%v", err)
		})
	}
}

// virtioHdr is a virtio-net header (native endian, as a legacy TUN has it).
func virtioHdr(flags, gsoType uint8, hdrLen, size, start, off uint16) []byte {
	h := make([]byte, Headroom)
	h[0], h[1] = flags, gsoType
	binary.NativeEndian.PutUint16(h[2:], hdrLen)
	binary.NativeEndian.PutUint16(h[4:], size)
	binary.NativeEndian.PutUint16(h[6:], start)
	binary.NativeEndian.PutUint16(h[8:], off)
	return h
}

func TestDecodeVirtioUDP(t *testing.T) {
	u4, _ := udpSuper(hostV4, stackV4, 1, patterned(3000, 0), false)
	u6, _ := udpSuper(hostV6, stackV6, 1, patterned(3000, 0), false)
	var tn TUN
	var size int
	var g GSO
	// Good ones: the kernel's GSO_UDP_L4 with NEEDS_CSUM, in both families.
	require.NoError(t, tn.decodeGSORead(append(virtioHdr(1, 5, 28, 1200, 20, 6), u4...), Headroom+len(u4), &size, &g))
	assert.Equal(t, GSO{Type: GSOUDP, Size: 1200, NeedsCsum: true, CsumStart: 20, CsumOffset: 6}, g)
	assert.Equal(t, len(u4), size)
	require.NoError(t, tn.decodeGSORead(append(virtioHdr(1, 5, 48, 1400, 40, 6), u6...), Headroom+len(u6), &size, &g))
	assert.Equal(t, UDPGSO(40, 1400), g)

	bad := []struct {
		name string
		b    []byte
		want GSODropReason
	}{
		{"UDP_L4 without NEEDS_CSUM", append(virtioHdr(0, 5, 28, 1200, 0, 0), u4...), GSONoCsum},
		{"UFO (type 3)", append(virtioHdr(1, 3, 28, 1200, 20, 6), u4...), GSOBadType},
		{"ECN bit", append(virtioHdr(1, 0x85, 28, 1200, 20, 6), u4...), GSOBadType},
		{"gso size 0", append(virtioHdr(1, 5, 28, 0, 20, 6), u4...), GSOBadSize},
		{"TCP checksum offset", append(virtioHdr(1, 5, 28, 1200, 20, 16), u4...), GSOBadCsum},
		{"v6 start on v4", append(virtioHdr(1, 5, 48, 1200, 40, 6), u4...), GSOBadFamily},
		{"TCPV4 type on UDP offsets", append(virtioHdr(1, 1, 28, 1200, 20, 6), u4...), GSOBadCsum},
		{"short read", virtioHdr(1, 5, 28, 1200, 20, 6)[:6], GSOShort},
	}
	for _, tt := range bad {
		err := tn.decodeGSORead(tt.b, len(tt.b), &size, &g)
		require.ErrorIs(t, err, ErrBadGSO, tt.name)
		r, _ := GSOReasonOf(err)
		assert.Equal(t, tt.want, r, "%s: %v", tt.name, err)
	}
	assert.Equal(t, map[string]uint64{"no_partial_csum": 1, "bad_type": 2, "bad_size": 1, "bad_csum": 2, "bad_family": 1, "short": 1},
		tn.GSODrops())
}

func TestEncodeVirtioUDP(t *testing.T) {
	h := make([]byte, Headroom)
	encodeVirtioHdr(h, UDPGSO(40, 1400), 48)
	assert.Equal(t, virtioHdr(1, 5, 48, 1400, 40, 6), h)
}

// FuzzSegment cuts fuzzed packets with fuzzed GSO metadata: it must never
// panic, refuse with ErrBadGSO (with a reason), ErrShortBuffer or
// ErrPacketTooBig, or return segments whose payloads, in order, are the
// packet's, each with a valid transport checksum.
func FuzzSegment(f *testing.F) {
	u4, _ := udpSuper(hostV4, stackV4, 1, patterned(3000, 0), false)
	u6, _ := udpSuper(hostV6, stackV6, 1, patterned(2000, 0), true)
	t4 := tcpPkt{src: stackV4, dst: hostV4, flags: flagACK, payload: patterned(3000, 0)}.build(0)
	f.Add(u4, uint8(GSOUDP), uint16(1000), true, uint16(20), uint16(6))
	f.Add(u6, uint8(GSOUDP), uint16(700), true, uint16(48), uint16(6))
	f.Add(t4, uint8(GSOTCPv4), uint16(1460), true, uint16(20), uint16(16))
	f.Add(u4[:30], uint8(GSONone), uint16(0), true, uint16(20), uint16(6))
	bufs, sizes := newBufs(80, 1600), make([]int, 80)
	f.Fuzz(func(t *testing.T, pkt []byte, typ uint8, size uint16, csum bool, start, off uint16) {
		g := GSO{Type: GSOType(typ), Size: size, NeedsCsum: csum, CsumStart: start, CsumOffset: off}
		orig := bytes.Clone(pkt)
		n, err := Segment(pkt, g, bufs, sizes, 0)
		if err != nil {
			if _, ok := GSOReasonOf(err); !ok && !errors.Is(err, ErrShortBuffer) && !errors.Is(err, ErrPacketTooBig) {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if !g.IsGSO() {
			return
		}
		hdrLen, _ := g.check(orig)
		var got []byte
		for i := range n {
			seg := bufs[i][:sizes[i]]
			if g.Type == GSOUDP && !udpChecksumOK(seg, int(g.CsumStart)) {
				t.Fatalf("datagram %d: bad checksum", i)
			}
			if g.Type != GSOUDP && !tcpChecksumOK(seg) && seg[0]>>4 == 4 {
				t.Fatalf("segment %d: bad checksum", i)
			}
			got = append(got, seg[hdrLen:]...)
		}
		if !bytes.Equal(got, orig[hdrLen:]) {
			t.Fatalf("payloads do not reassemble the packet's")
		}
	})
}
