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

// synPacket is an IPv4 TCP segment from src to 198.18.0.2:7 with the given
// flags (checksums left to nobody: the filter does not look at them).
func synPacket(src netip.Addr, sport uint16, flags byte) []byte {
	p := make([]byte, 40)
	f := ip.IPv4Fields{ID: sport, TTL: 64, Protocol: syscall.IPPROTO_TCP, Src: src, Dst: netip.MustParseAddr("198.18.0.2")}
	if _, err := ip.BuildIPv4(p, &f); err != nil {
		panic(err)
	}
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], 7)
	p[32] = 5 << 4
	p[33] = flags
	return p
}

// The SYN filter drops SYNs (and only SYNs) of a blocked IPv4 source in the
// kernel until the block's deadline.
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
	to := &syscall.SockaddrInet4{Addr: [4]byte{198, 18, 0, 2}}
	flood, legit := netip.MustParseAddr("198.18.0.77"), netip.MustParseAddr("198.18.0.1")
	send := func(src netip.Addr, sport uint16, flags byte) {
		require.NoError(t, syscall.Sendto(fd, synPacket(src, sport, flags), 0, to))
	}
	// expect reads packets until one from sport arrives; every packet on
	// the way must be in want (by source port).
	expect := func(sport uint16, passed ...uint16) {
		t.Helper()
		for {
			select {
			case r := <-rx:
				if len(r.pkt) < 40 || r.pkt[9] != syscall.IPPROTO_TCP {
					continue // the kernel's own IPv6 chatter
				}
				got := binary.BigEndian.Uint16(r.pkt[20:])
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
	require.False(t, l.BlockSYNs(netip.MustParseAddr("2001:2::77"), time.Second), "IPv6 is not filtered")
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
	// The map is bounded but never full: blocking more sources than it
	// holds evicts the oldest.
	for i := range synFilterMaxSources + 100 {
		src := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		require.True(t, l.BlockSYNs(src, time.Second), "block %v", src)
	}
}
