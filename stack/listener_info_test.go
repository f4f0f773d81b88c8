package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// Listeners reports each listener's queues as they fill: the SYN queue
// with a half-open handshake, the accept queue with a completed one, and
// cookies in use once the SYN queue has overflowed, until they expire.
func TestListenersSnapshot(t *testing.T) {
	clk := NewManualClock(0)
	r := newRawPeer(t, func(o *Options) { o.SYNBacklog = 1; o.Clock = clk })
	ln, err := r.s.ListenBacklog("tcp", ":80", 5)
	require.NoError(t, err)
	ln6, err := r.s.ListenBacklog("tcp6", ":7", 3)
	require.NoError(t, err)
	defer ln6.Close()
	byPort := func() map[uint16]ListenerSnapshot {
		m := map[uint16]ListenerSnapshot{}
		for _, l := range r.s.Listeners() {
			m[l.Port] = l
		}
		return m
	}
	got := byPort()
	require.Equal(t, ListenerSnapshot{Port: 80, Backlog: 5, SYNBacklog: 1, Cookies: true}, got[80])
	require.Equal(t, ListenerSnapshot{Addr: netip.IPv6Unspecified(), Port: 7, Backlog: 3, SYNBacklog: 1, Cookies: true}, got[7])

	// A completed handshake waits in the accept queue.
	r.handshake(netip.AddrPortFrom(addrA, 1000), srvB, 5000)
	waitFor(t, func() bool { return byPort()[80].AcceptQueue == 1 }, "accept queue 1")
	// A half-open one fills the SYN queue; the next SYN overflows it and
	// is answered with a cookie.
	syn := synSeg(6000)
	r.send(tcpPacket(netip.AddrPortFrom(addrA, 1001), srvB, &syn))
	r.expectTCP(srvB, netip.AddrPortFrom(addrA, 1001), tcp.FlagSYN|tcp.FlagACK)
	got = byPort()
	require.Equal(t, 1, got[80].SYNQueue)
	require.False(t, got[80].CookiesActive)
	r.send(tcpPacket(netip.AddrPortFrom(addrA, 1002), srvB, &syn))
	r.expectTCP(srvB, netip.AddrPortFrom(addrA, 1002), tcp.FlagSYN|tcp.FlagACK)
	got = byPort()
	require.Equal(t, ListenerSnapshot{Port: 80, AcceptQueue: 1, Backlog: 5, SYNQueue: 1, SYNBacklog: 1, Cookies: true, CookiesActive: true}, got[80])
	// Two cookie periods later no cookie can come back.
	clk.Advance(2*time.Minute + time.Second)
	require.False(t, byPort()[80].CookiesActive)

	require.NoError(t, ln.Close())
	_, open := byPort()[80]
	require.False(t, open, "a closed listener is gone")
}
