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

var (
	hostV4  = netip.MustParseAddr("198.18.0.1")
	stackV4 = netip.MustParseAddr("198.18.0.2")
	hostV6  = netip.MustParseAddr("2001:2::1")
	stackV6 = netip.MustParseAddr("2001:2::2")
)

func TestSegment(t *testing.T) {
	tsOpt := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2} // NOP NOP TS
	tests := []struct {
		name      string
		src, dst  netip.Addr
		options   []byte
		payload   int
		mss       int
		flags     uint8
		wantSizes []int
	}{
		{"v4 even", stackV4, hostV4, nil, 3000, 1000, flagACK | flagPSH | flagFIN, []int{1040, 1040, 1040}},
		{"v4 tail", stackV4, hostV4, tsOpt, 2500, 1000, flagACK | flagCWR | flagPSH, []int{1052, 1052, 552}},
		{"v6 tail", stackV6, hostV6, tsOpt, 4001, 1428, flagACK | flagPSH, []int{1500, 1500, 1217}},
		{"v4 single", stackV4, hostV4, nil, 10, 1460, flagACK | flagFIN, []int{50}},
		{"v6 64KiB", stackV6, hostV6, nil, 65535 - 60, 1440, flagACK, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := patterned(tt.payload, 3)
			p := tcpPkt{src: tt.src, dst: tt.dst, sport: 5001, dport: 80, seq: 0xfffffe00, ack: 77,
				flags: tt.flags, window: 512, options: tt.options, payload: payload, id: 0xfffe}
			pkt := p.build(0)
			iphLen := 20
			if tt.src.Is6() {
				iphLen = 40
			}
			g := TCPGSO(tt.src.Is6(), iphLen, tt.mss)
			bufs, sizes := newBufs(64, 1600), make([]int, 64)
			n, err := Segment(pkt, g, bufs, sizes, 4)
			require.NoError(t, err)
			hdrLen := iphLen + 20 + len(tt.options)
			wantN := (tt.payload + tt.mss - 1) / tt.mss
			require.Equal(t, wantN, n)
			if tt.wantSizes != nil {
				assert.Equal(t, tt.wantSizes, sizes[:n])
			}
			var got []byte
			for i := range n {
				seg := bufs[i][4 : 4+sizes[i]]
				require.True(t, tcpChecksumOK(seg), "segment %d checksum", i)
				tcp := seg[iphLen:]
				assert.Equal(t, uint32(0xfffffe00)+uint32(i*tt.mss), binary.BigEndian.Uint32(tcp[4:]), "seq of %d", i)
				assert.Equal(t, uint32(77), binary.BigEndian.Uint32(tcp[8:]))
				wantFlags := tt.flags
				if i != n-1 {
					wantFlags &^= flagFIN | flagPSH
				}
				if i != 0 {
					wantFlags &^= flagCWR
				}
				assert.Equalf(t, wantFlags, tcp[13], "flags of %d", i)
				assert.Equal(t, tt.options, nilIfEmpty(tcp[20:hdrLen-iphLen]))
				if tt.src.Is6() {
					assert.Equal(t, sizes[i]-40, int(binary.BigEndian.Uint16(seg[4:])))
				} else {
					assert.Equal(t, sizes[i], int(binary.BigEndian.Uint16(seg[2:])))
					assert.Equal(t, uint16(0xfffe+i), binary.BigEndian.Uint16(seg[4:]), "IPv4 ID of %d", i)
				}
				got = append(got, seg[hdrLen:]...)
			}
			assert.True(t, bytes.Equal(payload, got), "payload reassembles")
		})
	}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func TestSegmentPartialChecksumInput(t *testing.T) {
	// A super-packet whose checksum field holds only the pseudo-header sum
	// (what the kernel hands over) segments into packets with full sums.
	p := tcpPkt{src: hostV4, dst: stackV4, sport: 80, dport: 5001, seq: 1, flags: flagACK, payload: patterned(3000, 9)}
	pkt := p.build(0)
	binary.BigEndian.PutUint16(pkt[36:], pseudo(pkt, 20))
	bufs, sizes := newBufs(4, 1500), make([]int, 4)
	n, err := Segment(pkt, TCPGSO(false, 20, 1460), bufs, sizes, 0)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	for i := range n {
		assert.True(t, tcpChecksumOK(bufs[i][:sizes[i]]))
	}
}

func TestCompleteChecksum(t *testing.T) {
	for _, src := range []netip.Addr{stackV4, stackV6} {
		dst := hostV4
		iphLen := 20
		if src.Is6() {
			dst, iphLen = hostV6, 40
		}
		p := tcpPkt{src: src, dst: dst, sport: 1, dport: 2, flags: flagACK, payload: patterned(333, 1)}
		want := p.build(0)
		pkt := bytes.Clone(want)
		binary.BigEndian.PutUint16(pkt[iphLen+16:], pseudo(pkt, iphLen))
		require.NoError(t, CompleteChecksum(pkt, TCPGSO(src.Is6(), iphLen, 0)))
		assert.Equal(t, want, pkt, "%v", src)
		// A complete checksum is left alone.
		require.NoError(t, CompleteChecksum(pkt, GSO{}))
		assert.Equal(t, want, pkt)
	}
}

func TestGSOCheckErrors(t *testing.T) {
	v4 := tcpPkt{src: stackV4, dst: hostV4, flags: flagACK, payload: patterned(3000, 0)}.build(0)
	v6 := tcpPkt{src: stackV6, dst: hostV6, flags: flagACK, payload: patterned(3000, 0)}.build(0)
	badTHL := bytes.Clone(v4)
	badTHL[20+12] = 4 << 4
	longTHL := bytes.Clone(v4)[:20+20]
	longTHL[20+12] = 15 << 4
	tests := []struct {
		name string
		pkt  []byte
		g    GSO
		want error
	}{
		{"v4 packet as v6", v4, TCPGSO(true, 40, 1000), ErrBadGSO},
		{"v6 packet as v4", v6, TCPGSO(false, 20, 1000), ErrBadGSO},
		{"v4 wrong IHL", v4, TCPGSO(false, 24, 1000), ErrBadGSO},
		{"v6 short start", v6, TCPGSO(true, 20, 1000), ErrBadGSO},
		{"zero size", v4, GSO{Type: GSOTCPv4, CsumStart: 20, CsumOffset: 16}, ErrBadGSO},
		{"udp offset", v4, GSO{Type: GSOTCPv4, Size: 100, CsumStart: 20, CsumOffset: 6}, ErrBadGSO},
		{"unknown type", v4, GSO{Type: 9, Size: 100, CsumStart: 20, CsumOffset: 16}, ErrBadGSO},
		{"empty", nil, TCPGSO(false, 20, 1000), ErrBadGSO},
		{"no tcp header", v4[:30], TCPGSO(false, 20, 1000), ErrBadGSO},
		{"tcp header len 16", badTHL, TCPGSO(false, 20, 1000), ErrBadGSO},
		{"tcp header overruns", longTHL, TCPGSO(false, 20, 1000), ErrBadGSO},
		{"partial csum beyond end", v4[:30], GSO{NeedsCsum: true, CsumStart: 20, CsumOffset: 16}, ErrBadGSO},
		{"too big", make([]byte, MaxPacketSize+1), GSO{}, ErrPacketTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Segment(tt.pkt, tt.g, newBufs(8, 1500), make([]int, 8), 0)
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

func TestSegmentShortBuffers(t *testing.T) {
	pkt := tcpPkt{src: stackV4, dst: hostV4, flags: flagACK, payload: patterned(3000, 0)}.build(0)
	g := TCPGSO(false, 20, 1000)
	_, err := Segment(pkt, g, newBufs(2, 1500), make([]int, 2), 0)
	assert.True(t, errors.Is(err, ErrShortBuffer), "too few buffers: %v", err)
	_, err = Segment(pkt, g, newBufs(3, 1039), make([]int, 3), 0)
	assert.True(t, errors.Is(err, ErrShortBuffer), "too small buffers: %v", err)
	n, err := Segment(pkt, g, newBufs(3, 1040), make([]int, 3), 0)
	assert.NoError(t, err)
	assert.Equal(t, 3, n)
}

func BenchmarkSegment64K(b *testing.B) {
	pkt := tcpPkt{src: stackV4, dst: hostV4, flags: flagACK, payload: patterned(65535-40, 0)}.build(0)
	g := TCPGSO(false, 20, 1460)
	bufs, sizes := newBufs(64, 1500), make([]int, 64)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Segment(pkt, g, bufs, sizes, 0); err != nil {
			b.Fatal(err)
		}
	}
}
