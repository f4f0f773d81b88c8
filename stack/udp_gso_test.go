package stack

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun"
)

// udpSuperPacket is udpPacket as a UDP super-datagram the way the kernel
// hands it over with USO: the checksum field holds the pseudo-header sum
// only (a partial checksum).
func udpSuperPacket(src, dst netip.AddrPort, payload []byte) []byte {
	p := udpPacket(src, dst, payload)
	iphl := 20
	if !src.Addr().Is4() {
		iphl = 40
	}
	sum := ip.PseudoHeaderChecksum(protoUDP, src.Addr().AsSlice(), dst.Addr().AsSlice(), uint16(len(p)-iphl))
	binary.BigEndian.PutUint16(p[iphl+6:], sum)
	return p
}

// TestUDPGSOInput: a UDP super-datagram from the link is queued on its
// socket as the datagrams its gso_size cuts it into, in both families; one
// whose datagrams overflow the queue loses those, counted; one without a
// partial checksum is dropped whole and counted (udp_bad_gso).
func TestUDPGSOInput(t *testing.T) {
	for _, tc := range []struct{ peer, us netip.Addr }{{addrA, addrB}, {addrA6, addrB6}} {
		r := newRawPeer(t, nil)
		srv, err := r.s.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 53))
		require.NoError(t, err)
		peer, us := netip.AddrPortFrom(tc.peer, 40000), netip.AddrPortFrom(tc.us, 53)
		iphl := 20
		if tc.peer.Is6() {
			iphl = 40
		}
		st := r.s.Stats()
		payload := make([]byte, 350)
		for i := range payload {
			payload[i] = byte(i)
		}
		write := func(pkt []byte, g tun.GSO) {
			t.Helper()
			_, err := r.l.WriteGSO([][]byte{append(make([]byte, headroom), pkt...)}, []tun.GSO{g}, headroom)
			require.NoError(t, err)
		}
		write(udpSuperPacket(peer, us, payload), tun.UDPGSO(iphl, 100))
		buf := make([]byte, 1000)
		for i, want := range []int{100, 100, 100, 50} {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			require.NoError(t, err)
			require.Equal(t, peer, from)
			require.Equal(t, payload[i*100:i*100+want], buf[:n], "datagram %d", i)
		}
		waitStat(t, &st.UDPInDatagrams, 4, "udp_in_datagrams")
		require.Equal(t, uint64(1), st.UDPGSOIn.Load())

		// Room for two datagrams: the other two of the next are dropped.
		require.NoError(t, srv.SetReadBuffer(2*(100+datagramOverhead)))
		write(udpSuperPacket(peer, us, payload), tun.UDPGSO(iphl, 100))
		waitStat(t, &st.UDPRcvBufErrors, 2, "udp_rcvbuf_errors")
		require.Equal(t, uint64(6), st.UDPInDatagrams.Load())
		for i := range 2 {
			n, _, err := srv.ReadFromUDPAddrPort(buf)
			require.NoError(t, err)
			require.Equal(t, payload[i*100:i*100+100], buf[:n])
		}

		// Without NEEDS_CSUM the datagrams' checksums cannot be checked.
		g := tun.UDPGSO(iphl, 100)
		g.NeedsCsum = false
		write(udpPacket(peer, us, payload), g)
		waitStat(t, &st.UDPBadGSO, 1, "udp_bad_gso")
		require.Equal(t, uint64(2), st.UDPGSOIn.Load())
		require.Equal(t, uint64(6), st.UDPInDatagrams.Load())
	}
}

// badGSOLink is a pipe end whose first ReadGSO refuses a packet for its
// offload metadata, as a TUN refuses a bad virtio-net header.
type badGSOLink struct {
	*tun.PipeEnd
	refused atomic.Bool
}

func (l *badGSOLink) ReadGSO(bufs [][]byte, sizes []int, gso []tun.GSO, offset int) (int, error) {
	if !l.refused.Swap(true) {
		// The link's own error for a UDP super-datagram with segment size 0.
		pkt := make([]byte, 28)
		pkt[0], pkt[9] = 0x45, protoUDP
		_, err := tun.Segment(pkt, tun.GSO{Type: tun.GSOUDP, NeedsCsum: true, CsumStart: 20, CsumOffset: 6}, nil, nil, 0)
		return 0, err
	}
	return l.PipeEnd.ReadGSO(bufs, sizes, gso, offset)
}

// TestLinkBadGSOCounted: a packet the link refuses for its GSO metadata is
// counted by reason (link_bad_gso_bad_size), not as a link read error, and
// the link keeps delivering.
func TestLinkBadGSOCounted(t *testing.T) {
	mine, theirs := tun.NewPipe(1500)
	s, err := New(Options{Links: []tun.Link{&badGSOLink{PipeEnd: theirs}}, Addrs: []netip.Addr{addrB}})
	require.NoError(t, err)
	defer s.Close()
	defer mine.Close()
	srv, err := s.ListenUDP(netip.AddrPortFrom(addrB, 53))
	require.NoError(t, err)
	_, err = mine.Write([][]byte{append(make([]byte, headroom), udpPacket(netip.AddrPortFrom(addrA, 1), netip.AddrPortFrom(addrB, 53), []byte("after"))...)}, headroom)
	require.NoError(t, err)
	buf := make([]byte, 100)
	n, _, err := srv.ReadFromUDPAddrPort(buf)
	require.NoError(t, err)
	require.Equal(t, "after", string(buf[:n]))
	m := s.Stats().Map()
	require.Equal(t, uint64(1), m["link_bad_gso_bad_size"])
	require.Zero(t, m["link_read_errors"])
}
