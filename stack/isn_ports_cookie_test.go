package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/internal/siphash"
	"github.com/ustack-net/ustack/tcp"
)

func TestISN(t *testing.T) {
	g := isnGenerator{key: siphash.Key{K0: 1, K1: 2}, tsKey: siphash.Key{K0: 3, K1: 4}}
	l := netip.MustParseAddrPort("198.18.0.2:80")
	r1 := netip.MustParseAddrPort("198.18.0.1:40000")
	r2 := netip.MustParseAddrPort("198.18.0.1:40001")
	// Distinct per tuple at the same instant.
	require.NotEqual(t, g.isn(0, l, r1), g.isn(0, l, r2))
	// Same tuple: M advances one per 4 µs (RFC 6528).
	a := g.isn(tcp.Time(time.Second), l, r1)
	b := g.isn(tcp.Time(time.Second).Add(4*time.Millisecond), l, r1)
	require.Equal(t, uint32(1000), uint32(b-a))
	require.True(t, a.LessThan(b))
	// A different key gives a different ISN.
	g2 := isnGenerator{key: siphash.Key{K0: 1, K1: 3}}
	require.NotEqual(t, g.isn(0, l, r1), g2.isn(0, l, r1))
	// The timestamp offset depends on the address pair only.
	require.Equal(t, g.tsOffset(l.Addr(), r1.Addr()), g.tsOffset(l.Addr(), r2.Addr()))
	require.NotEqual(t, g.tsOffset(l.Addr(), r1.Addr()), g.tsOffset(l.Addr(), netip.MustParseAddr("198.18.0.3")))
}

func TestEphemeralPorts(t *testing.T) {
	p := portAllocator{min: DefaultEphemeralMin, max: DefaultEphemeralMax, keyF: siphash.Key{K0: 5, K1: 6}, keyG: siphash.Key{K0: 7, K1: 8}}
	local := netip.MustParseAddr("198.18.0.2")
	remote := netip.MustParseAddrPort("198.18.0.1:80")
	used := map[uint16]bool{}
	inUse := func(port uint16) bool { return used[port] }
	first, ok := p.pick(local, remote, inUse)
	require.True(t, ok)
	require.GreaterOrEqual(t, first, uint16(DefaultEphemeralMin))
	require.LessOrEqual(t, first, uint16(DefaultEphemeralMax))
	// Algorithm 4: the next pick for the same destination is the next
	// port of its sequence, even though the first is free again.
	second, ok := p.pick(local, remote, inUse)
	require.True(t, ok)
	require.Equal(t, (first-DefaultEphemeralMin+1)%(DefaultEphemeralMax-DefaultEphemeralMin+1)+DefaultEphemeralMin, second)
	// Ports in use are skipped.
	used[second+1] = true
	third, ok := p.pick(local, remote, inUse)
	require.True(t, ok)
	require.Equal(t, second+2, third)
	// A small range, all taken: failure after trying each port once.
	small := portAllocator{min: 1000, max: 1009, keyF: siphash.Key{K0: 1, K1: 1}, keyG: siphash.Key{K0: 2, K1: 2}}
	tried := map[uint16]int{}
	_, ok = small.pick(local, remote, func(port uint16) bool { tried[port]++; return true })
	require.False(t, ok)
	require.Len(t, tried, 10)
	for port, n := range tried {
		require.Equal(t, 1, n, "port %d", port)
	}
}

func TestCookieMSSTable(t *testing.T) {
	for _, tc := range []struct {
		v6   bool
		mss  uint16
		has  bool
		want uint16
	}{
		{false, 1460, true, 1460},
		{false, 1459, true, 1440},
		{false, 1300, true, 1300},
		{false, 1299, true, 536},
		{false, 100, true, 536},
		{false, 9000, true, 1460},
		{false, 0, false, 536},
		{true, 1440, true, 1440},
		{true, 8940, true, 8940},
		{true, 1419, true, 1220},
		{true, 0, false, 1220},
	} {
		require.Equal(t, tc.want, cookieMSSValue(tc.v6, mssIndex(tc.v6, tc.mss, tc.has)), "%+v", tc)
	}
}

func TestCookieRoundTripAndExpiry(t *testing.T) {
	j := cookieJar{key1: siphash.Key{K0: 11, K1: 12}, key2: siphash.Key{K0: 13, K1: 14}}
	l := netip.MustParseAddrPort("198.18.0.2:80")
	r := netip.MustParseAddrPort("198.18.0.1:40000")
	irs := tcp.Seq(0xfffffff0) // wraps when the counter is added
	now := tcp.Time(10 * time.Hour)
	count := cookieCounter(now)
	for idx := uint32(0); idx < 4; idx++ {
		c := j.make(l, r, irs, idx, count)
		got, ok := j.check(l, r, irs, c, count)
		require.True(t, ok)
		require.Equal(t, idx, got)
		// Still valid one counter later (1-2 minutes)...
		got, ok = j.check(l, r, irs, c, count+1)
		require.True(t, ok)
		require.Equal(t, idx, got)
		// ...but not two counters later.
		_, ok = j.check(l, r, irs, c, count+2)
		require.False(t, ok)
		// Another tuple, or an IRS or cookie off by more than the
		// index's two bits can absorb, fail (as in Linux, an error of
		// up to 3 in the low bits can still decode to a valid index).
		_, ok = j.check(l, netip.MustParseAddrPort("198.18.0.1:40001"), irs, c, count)
		require.False(t, ok)
		_, ok = j.check(l, r, irs+1000, c, count)
		require.False(t, ok)
		_, ok = j.check(l, r, irs, c^(1<<20), count)
		require.False(t, ok)
	}
	// The counter is the minute.
	require.Equal(t, count+1, cookieCounter(now.Add(time.Minute)))
}

func TestCookieTimestampBits(t *testing.T) {
	for _, tc := range []struct {
		ws   int8
		sack bool
	}{{-1, false}, {-1, true}, {0, false}, {7, true}, {14, true}} {
		for _, now := range []uint32{0, 63, 64, 1000, 0xffffffff} {
			ts := cookieTSVal(now, tc.ws, tc.sack, false)
			require.LessOrEqual(t, int32(ts-now), int32(0), "TSval must not be ahead of the clock")
			require.Less(t, now-ts, uint32(64))
			ws, sack := cookieTSDecode(ts)
			require.Equal(t, tc.ws, ws)
			require.Equal(t, tc.sack, sack)
		}
	}
	// 0xf in the low nibble is "no window scale".
	ws, sack := cookieTSDecode(0x3f)
	require.Equal(t, int8(-1), ws)
	require.True(t, sack)
}
