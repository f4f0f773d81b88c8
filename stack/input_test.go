package stack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
)

var (
	cliA  = netip.AddrPortFrom(addrA, 40000)
	srvB  = netip.AddrPortFrom(addrB, 80)
	cliA6 = netip.AddrPortFrom(addrA6, 40000)
	srvB6 = netip.AddrPortFrom(addrB6, 80)
)

func synSeg(seq tcp.Seq) tcp.Segment {
	s := tcp.Segment{Seq: seq, Flags: tcp.FlagSYN, Window: 65535}
	s.Options.HasMSS, s.Options.MSS = true, 1460
	s.Options.HasWindowScale, s.Options.WindowScale = true, 7
	s.Options.SACKPermitted = true
	s.Options.HasTimestamp, s.Options.TSVal = true, 5000
	return s
}

func TestResetForClosedPort(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cli, srv netip.AddrPort
	}{{"ipv4", cliA, srvB}, {"ipv6", cliA6, srvB6}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRawPeer(t, nil)
			syn := synSeg(1000)
			r.send(tcpPacket(tc.cli, tc.srv, &syn))
			rst := r.expectTCP(tc.srv, tc.cli, tcp.FlagRST|tcp.FlagACK)
			require.Equal(t, tcp.Seq(0), rst.Seq)
			require.Equal(t, tcp.Seq(1001), rst.Ack)
			// An ACK-bearing segment gets <SEQ=SEG.ACK><CTL=RST>.
			ack := tcp.Segment{Seq: 5, Ack: 777, Flags: tcp.FlagACK, Window: 100, Payload: []byte("x")}
			r.send(tcpPacket(tc.cli, tc.srv, &ack))
			rst = r.expectTCP(tc.srv, tc.cli, tcp.FlagRST)
			require.Equal(t, tcp.Seq(777), rst.Seq)
			// A RST is never answered.
			rs := tcp.Segment{Seq: 5, Flags: tcp.FlagRST}
			r.send(tcpPacket(tc.cli, tc.srv, &rs))
			r.none()
			st := r.s.Stats()
			require.Equal(t, uint64(3), st.TCPNoSocket.Load())
			require.Equal(t, uint64(2), st.TCPResetsSent.Load())
		})
	}
}

// TestMalformedCounted feeds broken packets and checks each is dropped,
// unanswered, and counted under its own reason.
func TestMalformedCounted(t *testing.T) {
	good := func() []byte {
		s := synSeg(1)
		return tcpPacket(cliA, srvB, &s)
	}
	good6 := func() []byte {
		s := synSeg(1)
		return tcpPacket(cliA6, srvB6, &s)
	}
	fixIP := func(p []byte) []byte {
		h := ip.IPv4(p)
		h.SetChecksum(0)
		h.UpdateChecksum()
		return p
	}
	for _, tc := range []struct {
		name    string
		pkt     func() []byte
		counter func(s *Stats) *atomic.Uint64
	}{
		{"empty", func() []byte { return []byte{} }, func(s *Stats) *atomic.Uint64 { return &s.IP[ip.DropTooShort] }},
		{"bad version", func() []byte { p := good(); p[0] = 0x55; return p }, func(s *Stats) *atomic.Uint64 { return &s.IP[ip.DropBadVersion] }},
		{"short ipv4", func() []byte { return good()[:19] }, func(s *Stats) *atomic.Uint64 { return &s.IP[ip.DropTooShort] }},
		{"ihl too small", func() []byte { p := good(); p[0] = 0x44; return fixIP(p) }, func(s *Stats) *atomic.Uint64 { return &s.IP[ip.DropBadHeaderLength] }},
		{"truncated", func() []byte { p := good(); return p[:len(p)-4] }, func(s *Stats) *atomic.Uint64 { return &s.IP[ip.DropTruncated] }},
		{"ip checksum", func() []byte { p := good(); p[10] ^= 0xff; return p }, func(s *Stats) *atomic.Uint64 { return &s.IP[ip.DropBadChecksum] }},
		{"not for us", func() []byte {
			s := synSeg(1)
			return tcpPacket(cliA, netip.AddrPortFrom(netip.MustParseAddr("198.18.0.9"), 80), &s)
		}, func(s *Stats) *atomic.Uint64 { return &s.IPNotForUs }},
		{"source is ours", func() []byte { s := synSeg(1); return tcpPacket(srvB, srvB, &s) }, func(s *Stats) *atomic.Uint64 { return &s.IPBadSource }},
		{"multicast source", func() []byte {
			s := synSeg(1)
			return tcpPacket(netip.AddrPortFrom(netip.MustParseAddr("224.0.0.1"), 1), srvB, &s)
		}, func(s *Stats) *atomic.Uint64 { return &s.IPBadSource }},
		{"tcp checksum", func() []byte { p := good(); p[len(p)-1] ^= 1; return p }, func(s *Stats) *atomic.Uint64 { return &s.TCPBadChecksum }},
		{"tcp checksum v6", func() []byte { p := good6(); p[len(p)-1] ^= 1; return p }, func(s *Stats) *atomic.Uint64 { return &s.TCPBadChecksum }},
		{"tcp data offset small", func() []byte {
			p := good()
			p[20+12] = 4 << 4
			fixTCP(p)
			return p
		}, func(s *Stats) *atomic.Uint64 { return &s.TCPParse[tcp.ErrDataOffsetTooSmall] }},
		{"tcp header truncated", func() []byte {
			p := good()[:20+12]
			binary.BigEndian.PutUint16(p[2:], 32)
			return fixIP(p)
		}, func(s *Stats) *atomic.Uint64 { return &s.TCPParse[tcp.ErrHeaderTruncated] }},
		{"tcp option length", func() []byte {
			p := good()
			p[20+20] = tcp.OptionMSS
			p[20+21] = 1 // length below 2
			fixTCP(p)
			return p
		}, func(s *Stats) *atomic.Uint64 { return &s.TCPParse[tcp.ErrOptionLength] }},
		{"port zero", func() []byte {
			s := synSeg(1)
			return tcpPacket(netip.AddrPortFrom(addrA, 0), srvB, &s)
		}, func(s *Stats) *atomic.Uint64 { return &s.TCPBadPort }},
		{"ipv6 short", func() []byte { return good6()[:39] }, func(s *Stats) *atomic.Uint64 { return &s.IP[ip.DropTooShort] }},
		{"unknown protocol v6", func() []byte {
			p := good6()
			p[6] = 132 // SCTP
			return p
		}, func(s *Stats) *atomic.Uint64 { return &s.IPUnknownProtocol }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRawPeer(t, nil)
			r.send(tc.pkt())
			waitStat(t, tc.counter(r.s.Stats()), 1, tc.name)
			r.none()
			// No other drop counter moved.
			total := uint64(0)
			r.s.Stats().Each(func(name string, v uint64) {
				switch name {
				case "rx_packets", "rx_bytes":
					return
				}
				total += v
			})
			require.Equal(t, uint64(1), total, "exactly one counter")
		})
	}
}

// fixTCP recomputes the TCP checksum of an IPv4 packet with a 20-byte header.
func fixTCP(p []byte) {
	h := ip.IPv4(p)
	seg := p[20:]
	seg[16], seg[17] = 0, 0
	binary.BigEndian.PutUint16(seg[16:], tcp.Checksum(seg, h.SrcSlice(), h.DstSlice()))
}

func TestICMPEcho(t *testing.T) {
	r := newRawPeer(t, nil)
	// IPv4.
	msg := make([]byte, 8+5)
	_, err := ip.BuildICMPv4Echo(msg, false, 0x1234, 7, []byte("hello"))
	require.NoError(t, err)
	p := make([]byte, 20+len(msg))
	writeIPHeader(p, addrA, addrB, protoICMP, len(p), 99, false)
	copy(p[20:], msg)
	r.send(p)
	rep := r.recv()
	h, err := ip.ParseIPv4(rep)
	require.NoError(t, err)
	require.Equal(t, addrB, h.Src())
	require.Equal(t, addrA, h.Dst())
	m, err := ip.ParseICMPv4(h.Payload())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv4EchoReply, m.Type())
	require.Equal(t, uint16(0x1234), m.Ident())
	require.Equal(t, uint16(7), m.Seq())
	require.Equal(t, []byte("hello"), []byte(m.Data()))
	// IPv6.
	p6 := make([]byte, 40+8+5)
	writeIPHeader(p6, addrA6, addrB6, protoICMPv6, len(p6), 0, false)
	_, err = ip.BuildICMPv6Echo(p6[40:], false, 0x4321, 9, []byte("world"), addrA6.AsSlice(), addrB6.AsSlice())
	require.NoError(t, err)
	r.send(p6)
	rep = r.recv()
	h6, info, err := ip.ParseIPv6(rep)
	require.NoError(t, err)
	require.Equal(t, addrB6, h6.Src())
	m6, err := ip.ParseICMPv6(h6[info.Offset:], h6.SrcSlice(), h6.DstSlice())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv6EchoReply, m6.Type())
	require.Equal(t, uint16(0x4321), m6.Ident())
	require.Equal(t, []byte("world"), []byte(m6.Data()))
	require.Equal(t, uint64(2), r.s.Stats().ICMPEchoReplies.Load())
}

// TestICMPEchoFragmented: a 3000-byte echo request arrives in fragments
// (ping -s 3000 over a 1500-byte MTU), is reassembled and answered; its
// reply, as big, leaves in fragments of at most the MTU, without DF, which
// reassemble into the reply. The request's fragments carry DF or not
// (gVisor sets DF on the fragments it sends).
func TestICMPEchoFragmented(t *testing.T) {
	for _, df := range []bool{false, true} {
		t.Run(fmt.Sprintf("DF=%v", df), func(t *testing.T) { testICMPEchoFragmented(t, df) })
	}
}

func testICMPEchoFragmented(t *testing.T, df bool) {
	r := newRawPeer(t, nil)
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i)
	}
	msg := make([]byte, 8+len(data))
	_, err := ip.BuildICMPv4Echo(msg, false, 0x1234, 7, data)
	require.NoError(t, err)
	req := make([]byte, 20+len(msg))
	writeIPHeader(req, addrA, addrB, protoICMP, len(req), 99, false)
	copy(req[20:], msg)
	var frags [][]byte
	_, err = ip.FragmentIPv4(ip.IPv4(req), 1500, func(n int) []byte {
		frags = append(frags, make([]byte, n))
		return frags[len(frags)-1]
	})
	require.NoError(t, err)
	for _, f := range frags {
		if df {
			f[6] |= ip.IPv4FlagDontFragment << 5
			ip.IPv4(f).UpdateChecksum()
		}
		r.send(f)
	}

	re := ip.NewReassembler(ip.ReassemblyConfig{})
	var sizes []int
	for {
		p := r.recv()
		h, err := ip.ParseIPv4(p)
		require.NoError(t, err)
		require.LessOrEqual(t, len(p), 1500)
		require.False(t, h.DontFragment())
		require.Equal(t, addrB, h.Src())
		sizes = append(sizes, len(p))
		whole, done, err := re.Reassemble(0, h)
		require.NoError(t, err)
		if !done {
			continue
		}
		m, err := ip.ParseICMPv4(ip.IPv4(whole).Payload())
		require.NoError(t, err)
		require.Equal(t, ip.ICMPv4EchoReply, m.Type())
		require.Equal(t, uint16(7), m.Seq())
		require.Equal(t, data, []byte(m.Data()))
		break
	}
	require.Equal(t, []int{1500, 1500, 20 + 3008 - 2*1480}, sizes)
	st := r.s.Stats()
	require.Equal(t, uint64(1), st.IPReassembled.Load())
	require.Equal(t, uint64(1), st.ICMPEchoReplies.Load())
	require.Equal(t, uint64(3), st.IPFragmentsSent.Load())
}

func TestProtocolUnreachable(t *testing.T) {
	r := newRawPeer(t, nil)
	p := make([]byte, 20+8)
	writeIPHeader(p, addrA, addrB, 132, len(p), 5, false) // SCTP
	r.send(p)
	rep := r.recv()
	h, err := ip.ParseIPv4(rep)
	require.NoError(t, err)
	require.Equal(t, uint8(protoICMP), h.Protocol())
	m, err := ip.ParseICMPv4(h.Payload())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv4DestUnreach, m.Type())
	require.Equal(t, ip.ICMPv4ProtoUnreachable, m.Code())
	require.Equal(t, p, []byte(m.Invoking()))
	require.Equal(t, uint64(1), r.s.Stats().IPUnknownProtocol.Load())
}
