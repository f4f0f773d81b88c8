package tun

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun/netnstest"
)

// synPacket is a TCP segment from src to port 7 of 198.18.0.2 (or of
// 2001:2::2 for an IPv6 src) with the given flags (checksums left to
// nobody: the filter does not look at them).
func synPacket(src netip.Addr, sport uint16, flags byte) []byte {
	var p []byte
	var err error
	if src.Is4() {
		p = make([]byte, 40)
		f := ip.IPv4Fields{ID: sport, TTL: 64, Protocol: syscall.IPPROTO_TCP, Src: src, Dst: netip.MustParseAddr("198.18.0.2")}
		_, err = ip.BuildIPv4(p, &f)
	} else {
		p = make([]byte, 60)
		f := ip.IPv6Fields{PayloadLength: 20, NextHeader: syscall.IPPROTO_TCP, HopLimit: 64, Src: src, Dst: netip.MustParseAddr("2001:2::2")}
		_, err = ip.BuildIPv6(p, &f)
	}
	if err != nil {
		panic(err)
	}
	th := p[len(p)-20:]
	binary.BigEndian.PutUint16(th[0:], sport)
	binary.BigEndian.PutUint16(th[2:], 7)
	th[12] = 5 << 4
	th[13] = flags
	return p
}

// The SYN filter drops SYNs (and only SYNs) of a blocked source in the
// kernel until the block's deadline: an IPv4 address, an IPv6 /64.
func TestSYNFilter(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	l, err := Create(Options{Name: "ust0", Offload: true, HostAddrs: hostAddrs})
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.EnableSYNFilter())
	rx := reader(l, MaxPacketSize)
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	require.NoError(t, err)
	defer syscall.Close(fd)
	fd6, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW) // the header included
	require.NoError(t, err)
	defer syscall.Close(fd6)
	to := &syscall.SockaddrInet4{Addr: [4]byte{198, 18, 0, 2}}
	to6 := &syscall.SockaddrInet6{Addr: netip.MustParseAddr("2001:2::2").As16()}
	flood, legit := netip.MustParseAddr("198.18.0.77"), netip.MustParseAddr("198.18.0.1")
	send := func(src netip.Addr, sport uint16, flags byte) {
		t.Helper()
		if src.Is4() {
			require.NoError(t, syscall.Sendto(fd, synPacket(src, sport, flags), 0, to))
		} else {
			require.NoError(t, syscall.Sendto(fd6, synPacket(src, sport, flags), 0, to6))
		}
	}
	// expect reads packets until one from sport arrives; every packet on
	// the way must be in want (by source port).
	expect := func(sport uint16, passed ...uint16) {
		t.Helper()
		for {
			select {
			case r := <-rx:
				var got uint16
				switch {
				case len(r.pkt) >= 40 && r.pkt[0]>>4 == 4 && r.pkt[9] == syscall.IPPROTO_TCP:
					got = binary.BigEndian.Uint16(r.pkt[20:])
				case len(r.pkt) >= 60 && r.pkt[0]>>4 == 6 && r.pkt[6] == syscall.IPPROTO_TCP:
					got = binary.BigEndian.Uint16(r.pkt[40:])
				default:
					continue // the kernel's own IPv6 chatter
				}
				if got == sport {
					return
				}
				require.Contains(t, passed, got, "a packet the filter should have dropped")
			case <-time.After(2 * time.Second):
				t.Fatalf("segment from port %d did not arrive", sport)
			}
		}
	}
	require.True(t, l.BlockSYNs(flood, time.Second))
	require.False(t, l.BlockSYNs(netip.Addr{}, time.Second))
	send(flood, 1, 0x02)      // SYN: dropped
	send(flood, 2, 0x12)      // SYN-ACK: passes
	send(flood, 3, 0x10)      // ACK: passes
	send(legit, 4, 0x02)      // another source's SYN: passes
	send(flood, 5, 0x02|0x08) // SYN|PSH: dropped
	send(legit, 6, 0x02)      // marker
	expect(6, 2, 3, 4)
	// A block whose deadline has passed drops nothing.
	require.True(t, l.BlockSYNs(flood, -time.Millisecond))
	send(flood, 7, 0x02)
	expect(7)

	// IPv6: the block covers the source's /64, and only SYNs.
	flood6 := netip.MustParseAddr("2001:2:0:77::1")
	require.True(t, l.BlockSYNs(flood6, time.Second))
	send(netip.MustParseAddr("2001:2:0:77::2"), 11, 0x02) // SYN from the same /64: dropped
	send(flood6, 12, 0x12)                                // SYN-ACK: passes
	send(netip.MustParseAddr("2001:2:0:78::1"), 13, 0x02) // SYN from the next /64: passes
	send(netip.MustParseAddr("2001:2::1"), 14, 0x02)      // marker
	expect(14, 12, 13)
	require.True(t, l.BlockSYNs(flood6, -time.Millisecond))
	send(flood6, 17, 0x02)
	expect(17)

	// The maps are bounded but never full: blocking more sources than
	// they hold evicts the oldest.
	for i := range synFilterMaxSources + 100 {
		src := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		require.True(t, l.BlockSYNs(src, time.Second), "block %v", src)
		src6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 1, 0, byte(i >> 8), byte(i)})
		require.True(t, l.BlockSYNs(src6, time.Second), "block %v", src6)
	}
}
