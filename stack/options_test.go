package stack

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// New refuses a TCP.Memory it would otherwise replace, and names the field
// to use instead.
func TestOptionsTCPMemoryRefused(t *testing.T) {
	l, _ := tun.NewPipe(1500)
	_, err := New(Options{Links: []tun.Link{l}, Addrs: []netip.Addr{addrB},
		TCP: tcp.Config{Memory: tcp.NewMemoryBudget(1<<20, tcp.MemoryCounters{})}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "Options.TCP.Memory")
	require.Contains(t, err.Error(), "Options.MemoryBudget")
}

// CookieSourceRate 0 is the default rate (a burst of 250 cookies per
// source), UnlimitedCookieRate no limit: 300 SYNs of one source onto a full
// SYN queue get 250 cookies and then drops, or 300 cookies.
func TestCookieSourceRateZeroAndUnlimited(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rate    int
		cookies uint64
	}{
		{"zero is the default", 0, DefaultCookieSourceRate / 4},
		{"unlimited", UnlimitedCookieRate, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRawPeer(t, func(o *Options) { o.SYNBacklog = 1; o.CookieSourceRate = tc.rate; o.Clock = NewManualClock(0) })
			ln, err := r.s.ListenBacklog("tcp", ":80", 16)
			require.NoError(t, err)
			defer ln.Close()
			st := r.s.Stats()
			src := netip.MustParseAddr("198.18.0.77")
			for p := range uint16(301) {
				syn := synSeg(1000)
				r.send(tcpPacket(netip.AddrPortFrom(src, 1000+p), srvB, &syn))
			}
			waitStat(t, handled{st}, 301, "SYNs handled")
			require.Equal(t, tc.cookies, st.TCPCookiesSent.Load())
			require.Equal(t, 300-tc.cookies, st.TCPSynCookieRateLimited.Load())
		})
	}
}
