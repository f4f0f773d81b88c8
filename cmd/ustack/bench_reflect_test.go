package main

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun"
)

var (
	reflectClient4 = netip.MustParseAddr("198.18.0.1")
	reflectClient6 = netip.MustParseAddr("2001:2::1")
)

// udpPacket builds a UDP datagram of payload from src:sport to dst:dport,
// with valid checksums and a TTL of 3.
func udpPacket(t *testing.T, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	n := ip.UDPHeaderLen + len(payload)
	if src.Is4() {
		pkt := make([]byte, ip.IPv4MinHeaderLen+n)
		h, err := ip.BuildIPv4(pkt, &ip.IPv4Fields{TTL: 3, Protocol: ip.ProtocolUDP, Src: src, Dst: dst, ID: 7})
		require.NoError(t, err)
		copy(h.Payload()[ip.UDPHeaderLen:], payload)
		ip.PutUDPHeader(h.Payload(), sport, dport, h.SrcSlice(), h.DstSlice())
		return pkt
	}
	pkt := make([]byte, ip.IPv6HeaderLen+n)
	h, err := ip.BuildIPv6(pkt, &ip.IPv6Fields{PayloadLength: uint16(n), NextHeader: ip.ProtocolUDP, HopLimit: 3, Src: src, Dst: dst})
	require.NoError(t, err)
	copy(h.Payload()[ip.UDPHeaderLen:], payload)
	ip.PutUDPHeader(h.Payload(), sport, dport, h.SrcSlice(), h.DstSlice())
	return pkt
}

func TestReflectPacket(t *testing.T) {
	payload := benchEchoMessage()
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
	}{
		{"IPv4", reflectClient4, benchAddrs[0]},
		{"IPv6", reflectClient6, benchAddrs[1]},
	} {
		pkt := udpPacket(t, tc.src, tc.dst, 40000, 7, payload)
		ok, why := reflectPacket(pkt, benchAddrs)
		require.True(t, ok, "%s: dropped as %s", tc.name, why)
		want := udpPacket(t, tc.dst, tc.src, 7, 40000, payload)
		if tc.src.Is4() {
			h, err := ip.ParseIPv4(pkt) // checks the header checksum
			require.NoError(t, err, tc.name)
			assert.Equal(t, uint8(reflectTTL), h.TTL())
			assert.Equal(t, tc.dst, h.Src())
			assert.Equal(t, tc.src, h.Dst())
			assert.True(t, ip.UDPChecksumValid(h.Payload(), h.SrcSlice(), h.DstSlice()), tc.name)
			assert.Equal(t, want[ip.IPv4MinHeaderLen:], []byte(h.Payload()), "%s: the UDP datagram mirrored", tc.name)
		} else {
			h, _, err := ip.ParseIPv6(pkt)
			require.NoError(t, err, tc.name)
			assert.Equal(t, uint8(reflectTTL), h.HopLimit())
			assert.True(t, ip.UDPChecksumValid(h.Payload(), h.SrcSlice(), h.DstSlice()), tc.name)
			ip.IPv6(want).SetHopLimit(reflectTTL)
			assert.Equal(t, want, pkt, "%s: the whole packet mirrored", tc.name)
		}
	}
}

func TestReflectPacketDrops(t *testing.T) {
	ok4 := func() []byte { return udpPacket(t, reflectClient4, benchAddrs[0], 40000, 7, []byte("x")) }
	tcp := ok4()
	tcp[9] = ip.ProtocolTCP
	ip.IPv4(tcp).UpdateChecksum()
	frag := ok4()
	binary.BigEndian.PutUint16(frag[6:], 0x2000) // more fragments
	ip.IPv4(frag).UpdateChecksum()
	badSum := ok4()
	badSum[10] ^= 0xff
	udpLen := ok4()
	binary.BigEndian.PutUint16(udpLen[ip.IPv4MinHeaderLen+4:], 100)
	short := ok4()
	short = short[:ip.IPv4MinHeaderLen+4]
	binary.BigEndian.PutUint16(short[2:], uint16(len(short)))
	ip.IPv4(short).UpdateChecksum()
	// A destination options header (next: UDP, PadN) before the datagram.
	ext6 := udpPacket(t, reflectClient6, benchAddrs[1], 40000, 7, []byte("x"))
	ext6 = append(ext6[:ip.IPv6HeaderLen:ip.IPv6HeaderLen], append([]byte{ip.ProtocolUDP, 0, 1, 4, 0, 0, 0, 0}, ext6[ip.IPv6HeaderLen:]...)...)
	ext6[6] = ip.ProtocolDstOpts
	binary.BigEndian.PutUint16(ext6[4:], uint16(len(ext6)-ip.IPv6HeaderLen))
	for name, tc := range map[string]struct {
		pkt  []byte
		want string
	}{
		"empty":             {nil, reflectBadIP},
		"version 5":         {[]byte{0x50, 0, 0, 0}, reflectBadIP},
		"bad header sum":    {badSum, reflectBadIP},
		"TCP":               {tcp, reflectNotUDP},
		"fragment":          {frag, reflectFragment},
		"not ours":          {udpPacket(t, reflectClient4, netip.MustParseAddr("198.18.0.3"), 1, 7, nil), reflectNotOurs},
		"not ours, IPv6":    {udpPacket(t, reflectClient6, netip.MustParseAddr("2001:2::3"), 1, 7, nil), reflectNotOurs},
		"UDP length":        {udpLen, reflectBadUDP},
		"short UDP header":  {short, reflectBadUDP},
		"IPv6 ext. headers": {ext6, reflectNotUDP},
	} {
		before := append([]byte(nil), tc.pkt...)
		ok, why := reflectPacket(tc.pkt, benchAddrs)
		assert.False(t, ok, name)
		assert.Equal(t, tc.want, why, name)
		assert.Equal(t, before, tc.pkt, "%s: a dropped packet is left as it was", name)
	}
}

// TestReflectorRun runs the reflector on one end of a pipe: datagrams
// written to the other come back mirrored, and what it cannot answer is
// counted by reason.
func TestReflectorRun(t *testing.T) {
	a, b := tun.NewPipe(1500)
	r := &reflector{link: b, ours: benchAddrs, drops: map[string]uint64{}}
	done := make(chan error, 1)
	go func() { done <- r.run() }()
	stray := udpPacket(t, reflectClient4, netip.MustParseAddr("198.18.0.9"), 1, 7, nil)
	req := udpPacket(t, reflectClient4, benchAddrs[0], 40000, 7, benchEchoMessage())
	req6 := udpPacket(t, reflectClient6, benchAddrs[1], 40001, 7, benchEchoMessage())
	var bufs [][]byte
	for _, p := range [][]byte{stray, req, req6} {
		bufs = append(bufs, append(make([]byte, tun.Headroom), p...))
	}
	n, err := a.Write(bufs, tun.Headroom)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	got := make([][]byte, 0, 2)
	rb := [][]byte{make([]byte, tun.Headroom+2048)}
	sizes := []int{0}
	for len(got) < 2 {
		k, err := a.Read(rb, sizes, tun.Headroom)
		require.NoError(t, err)
		if k == 1 {
			got = append(got, append([]byte(nil), rb[0][tun.Headroom:tun.Headroom+sizes[0]]...))
		}
	}
	want6 := udpPacket(t, benchAddrs[1], reflectClient6, 7, 40001, benchEchoMessage())
	ip.IPv6(want6).SetHopLimit(reflectTTL)
	assert.Equal(t, want6, got[1])
	h, err := ip.ParseIPv4(got[0])
	require.NoError(t, err)
	assert.Equal(t, benchAddrs[0], h.Src())
	assert.Equal(t, uint16(40000), ip.UDP(h.Payload()).DestinationPort())
	require.NoError(t, b.Close())
	require.NoError(t, <-done)
	assert.Equal(t, uint64(2), r.reflected)
	assert.Equal(t, map[string]uint64{reflectNotOurs: 1}, r.drops)
	assert.Equal(t, "reflected 2, dropped not-ours 1", r.summary())
}
