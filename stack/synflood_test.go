package stack

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// blockingLink is a link that records the SYN blocks it is asked for.
type blockingLink struct {
	tun.Link
	mu     sync.Mutex
	blocks []netip.Addr
	durs   []time.Duration
}

func (b *blockingLink) BlockSYNs(src netip.Addr, d time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.blocks = append(b.blocks, src)
	b.durs = append(b.durs, d)
	return true
}

func (b *blockingLink) durations() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Duration(nil), b.durs...)
}

func (b *blockingLink) blocked() []netip.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]netip.Addr(nil), b.blocks...)
}

// wrappedLink hides a link's methods but for tun.Link and Inner.
type wrappedLink struct{ inner tun.Link }

func (w wrappedLink) Inner() tun.Link { return w.inner }
func (w wrappedLink) Read(b [][]byte, s []int, o int) (int, error) {
	return w.inner.Read(b, s, o)
}
func (w wrappedLink) ReadGSO(b [][]byte, s []int, g []tun.GSO, o int) (int, error) {
	return w.inner.ReadGSO(b, s, g, o)
}
func (w wrappedLink) Write(b [][]byte, o int) (int, error) { return w.inner.Write(b, o) }
func (w wrappedLink) WriteGSO(b [][]byte, g []tun.GSO, o int) (int, error) {
	return w.inner.WriteGSO(b, g, o)
}
func (w wrappedLink) MTU() int        { return w.inner.MTU() }
func (w wrappedLink) BatchSize() int  { return w.inner.BatchSize() }
func (w wrappedLink) GSOMaxSize() int { return w.inner.GSOMaxSize() }
func (w wrappedLink) Close() error    { return w.inner.Close() }

// When a source's budget runs out, a link that can block its SYNs is asked
// to, once per synBlockTime, and again after it.
func TestCookieSourceBlock(t *testing.T) {
	clk := NewManualClock(0)
	var bl *blockingLink
	r := newRawPeer(t, func(o *Options) {
		o.SYNBacklog = 1
		o.CookieSourceRate = 20 // burst 5, 2 tokens per synBlockTime
		o.Clock = clk
		// Under a wrapper, as serve --pcap puts it.
		bl = &blockingLink{Link: o.Links[0]}
		o.Links[0] = wrappedLink{bl}
	})
	ln, err := r.s.ListenBacklog("tcp", ":80", 16)
	require.NoError(t, err)
	defer ln.Close()
	st := r.s.Stats()
	flood := netip.MustParseAddr("198.18.0.77")
	for p := uint16(1); p <= 9; p++ {
		syn := synSeg(1000)
		r.send(tcpPacket(netip.AddrPortFrom(flood, p), srvB, &syn))
	}
	// One for the SYN queue, five cookies, three dropped: one block.
	waitStat(t, &st.TCPSynCookieRateLimited, 3, "tcp_syn_cookie_rate_limited")
	require.Equal(t, []netip.Addr{flood}, bl.blocked())
	require.Equal(t, uint64(1), st.TCPSynBlocks.Load())
	clk.Advance(synBlockTime)
	for p := uint16(10); p <= 13; p++ {
		syn := synSeg(1000)
		r.send(tcpPacket(netip.AddrPortFrom(flood, p), srvB, &syn))
	}
	// Two refilled tokens (two cookies), then a new block.
	waitStat(t, &st.TCPSynCookieRateLimited, 5, "tcp_syn_cookie_rate_limited")
	require.Equal(t, []netip.Addr{flood, flood}, bl.blocked())
	require.Equal(t, uint64(7), st.TCPCookiesSent.Load())
}

// A source that goes over its budget again within synBlockRepeat of its
// block's end is blocked twice as long each time, up to 1.6 s; one that
// stayed quiet for synBlockRepeat starts again at synBlockTime.
func TestCookieSourceBlockEscalates(t *testing.T) {
	clk := NewManualClock(0)
	var bl *blockingLink
	r := newRawPeer(t, func(o *Options) {
		o.SYNBacklog = 1
		o.CookieSourceRate = 20 // burst 5
		o.Clock = clk
		bl = &blockingLink{Link: o.Links[0]}
		o.Links[0] = bl
	})
	ln, err := r.s.ListenBacklog("tcp", ":80", 16)
	require.NoError(t, err)
	defer ln.Close()
	st := r.s.Stats()
	flood := netip.MustParseAddr("198.18.0.77")
	port := uint16(0)
	// burst sends SYNs until the source is blocked once more.
	burst := func() {
		t.Helper()
		want := st.TCPSynBlocks.Load() + 1
		for range 8 {
			port++
			syn := synSeg(1000)
			r.send(tcpPacket(netip.AddrPortFrom(flood, port), srvB, &syn))
		}
		waitStat(t, &st.TCPSynBlocks, want, "tcp_syn_blocks")
		// Every SYN handled before the clock moves: each went to the
		// SYN queue or found it full.
		waitStat(t, handled{st}, uint64(port), "SYNs handled")
	}
	ms := time.Millisecond
	burst()
	for _, d := range []time.Duration{100, 200, 400, 800, 1600} {
		clk.Advance(d * ms) // the block ends: the flood goes on at once
		burst()
	}
	require.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 1600 * ms}, bl.durations())
	// Quiet for synBlockRepeat after the last block: back to the start.
	clk.Advance(1600*ms + synBlockRepeat)
	burst()
	require.Equal(t, 100*ms, bl.durations()[6])
	// SYNs while a block holds are dropped by the stack without a new block.
	dropped := st.TCPSynCookieRateLimited.Load()
	syn := synSeg(1000)
	for range 2 {
		port++
		r.send(tcpPacket(netip.AddrPortFrom(flood, port), srvB, &syn))
	}
	waitStat(t, &st.TCPSynCookieRateLimited, dropped+2, "tcp_syn_cookie_rate_limited")
	require.Len(t, bl.durations(), 7)
}

// handled counts the SYNs a listener has taken: into its SYN queue, or
// onto a full one.
type handled struct{ st *Stats }

func (h handled) Load() uint64 { return h.st.TCPConnsOpened.Load() + h.st.TCPSynQueueFull.Load() }

// While the SYN queue overflows, one source gets CookieSourceRate cookie
// SYN-ACKs per second (a burst of a quarter of that); its SYNs beyond are
// dropped and counted, another source keeps its own budget, and a cookie
// that comes back valid returns its token.
func TestCookieSourceRateLimit(t *testing.T) {
	clk := NewManualClock(0)
	r := newRawPeer(t, func(o *Options) { o.SYNBacklog = 1; o.CookieSourceRate = 8; o.Clock = clk })
	ln, err := r.s.ListenBacklog("tcp", ":80", 16)
	require.NoError(t, err)
	defer ln.Close()
	st := r.s.Stats()
	flood := netip.MustParseAddr("198.18.0.77")
	send := func(src netip.Addr, port uint16) netip.AddrPort {
		cli := netip.AddrPortFrom(src, port)
		syn := synSeg(1000)
		r.send(tcpPacket(cli, srvB, &syn))
		return cli
	}
	// The first SYN takes the only SYN-queue slot.
	r.expectTCP(srvB, send(flood, 1000), tcp.FlagSYN|tcp.FlagACK)
	// Two cookies (the burst), then drops.
	for p := uint16(1001); p <= 1002; p++ {
		r.expectTCP(srvB, send(flood, p), tcp.FlagSYN|tcp.FlagACK)
	}
	for p := uint16(1003); p <= 1005; p++ {
		send(flood, p)
	}
	waitStat(t, &st.TCPSynCookieRateLimited, 3, "tcp_syn_cookie_rate_limited")
	r.none()
	require.Equal(t, uint64(2), st.TCPCookiesSent.Load())
	require.Equal(t, uint64(3), st.TCPSynDropped.Load())
	// Another address is not limited by the flood's budget.
	r.expectTCP(srvB, send(addrA, 2000), tcp.FlagSYN|tcp.FlagACK)
	require.Equal(t, uint64(3), st.TCPCookiesSent.Load())
	// 125 ms later the flood's bucket has one token again.
	clk.Advance(125 * time.Millisecond)
	r.expectTCP(srvB, send(flood, 1006), tcp.FlagSYN|tcp.FlagACK)
	send(flood, 1007)
	waitStat(t, &st.TCPSynCookieRateLimited, 4, "tcp_syn_cookie_rate_limited")
	r.none()

	// addrA has two tokens (one spent at 0, one refilled since); it spends
	// one and completes that handshake, which gives it back: two more SYNs
	// are answered at the same instant (without the refund only one), a
	// third is not.
	r.handshake(netip.AddrPortFrom(addrA, 2001), srvB, 1000)
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.TCPCookiesValid.Load())
	r.expectTCP(srvB, send(addrA, 2002), tcp.FlagSYN|tcp.FlagACK)
	r.expectTCP(srvB, send(addrA, 2003), tcp.FlagSYN|tcp.FlagACK)
	send(addrA, 2004)
	waitStat(t, &st.TCPSynCookieRateLimited, 5, "tcp_syn_cookie_rate_limited")
	r.none()
	c.SetLinger(0)
	c.Close()
}

// An embryo in a SYN queue that has overflowed gets two SYN-ACK
// retransmissions (at 1 s and 3 s) and is then dropped silently at 7 s
// instead of a third; without an overflow it keeps the whole schedule.
func TestSynQueuePrune(t *testing.T) {
	for _, overflow := range []bool{false, true} {
		name := "no-overflow"
		if overflow {
			name = "overflow"
		}
		t.Run(name, func(t *testing.T) {
			clk := NewManualClock(0)
			r := newRawPeer(t, func(o *Options) { o.SYNBacklog = 1; o.Clock = clk })
			ln, err := r.s.ListenBacklog("tcp", ":80", 16)
			require.NoError(t, err)
			defer ln.Close()
			st := r.s.Stats()
			syn := synSeg(1000)
			r.send(tcpPacket(cliA, srvB, &syn))
			r.expectTCP(srvB, cliA, tcp.FlagSYN|tcp.FlagACK)
			if overflow {
				other := netip.AddrPortFrom(addrA, 40001)
				r.send(tcpPacket(other, srvB, &syn))
				r.expectTCP(srvB, other, tcp.FlagSYN|tcp.FlagACK)
				require.Equal(t, uint64(1), st.TCPCookiesSent.Load())
			}
			clk.Advance(time.Second)
			r.expectTCP(srvB, cliA, tcp.FlagSYN|tcp.FlagACK)
			clk.Advance(2 * time.Second)
			r.expectTCP(srvB, cliA, tcp.FlagSYN|tcp.FlagACK)
			clk.Advance(4 * time.Second)
			_, synq, _ := ln.Backlog()
			if !overflow {
				r.expectTCP(srvB, cliA, tcp.FlagSYN|tcp.FlagACK)
				require.Equal(t, 1, synq)
				require.Equal(t, uint64(0), st.TCPSynQueuePruned.Load())
				return
			}
			r.none()
			require.Equal(t, 0, synq)
			require.Equal(t, uint64(1), st.TCPSynQueuePruned.Load())
			require.Empty(t, r.s.Connections())
			// The freed slot takes the next SYN normally.
			third := netip.AddrPortFrom(addrA, 40002)
			r.send(tcpPacket(third, srvB, &syn))
			r.expectTCP(srvB, third, tcp.FlagSYN|tcp.FlagACK)
			_, synq, _ = ln.Backlog()
			require.Equal(t, 1, synq)
			require.Equal(t, uint64(1), st.TCPCookiesSent.Load())
		})
	}
}

// BenchmarkFloodSYN measures one flood SYN to a listener whose SYN queue is
// full: answered with a cookie SYN-ACK (serialized and queued), or dropped
// because its source is over CookieSourceRate. Both keep no state: 0
// allocs/op.
func BenchmarkFloodSYN(b *testing.B) {
	for _, bc := range []struct {
		name string
		rate int
	}{{"cookie", -1}, {"rate-limited", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			nl := newNullLink()
			s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Shards: 1,
				SYNBacklog: 1, CookieSourceRate: bc.rate})
			require.NoError(b, err)
			b.Cleanup(func() { s.Close() })
			ln, err := s.Listen("tcp", ":80")
			require.NoError(b, err)
			defer ln.Close()
			l := (*s.links.Load())[0]
			var batch rxBatch
			inject := func(pkt []byte) {
				now := s.clock.Now()
				s.input(l, pkt, tun.GSO{}, now, &batch)
				s.finishBatch(nil, &batch, now)
			}
			syn := synSeg(1000)
			inject(tcpPacket(cliA, srvB, &syn)) // fills the SYN queue
			pkt := tcpPacket(netip.AddrPortFrom(netip.MustParseAddr("198.18.0.77"), 1), srvB, &syn)
			buf := make([]byte, len(pkt))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				copy(buf, pkt)
				inject(buf)
			}
			b.StopTimer()
			st := s.Stats()
			if bc.rate < 0 {
				require.Equal(b, uint64(b.N), st.TCPCookiesSent.Load())
			} else {
				// All but the burst and the tokens the run's seconds refilled.
				require.GreaterOrEqual(b, st.TCPSynCookieRateLimited.Load()+10, uint64(b.N))
			}
		})
	}
}
