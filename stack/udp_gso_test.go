package stack

import (
	"encoding/binary"
	"net/netip"
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
