package stack

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// Slow and misbehaving peers against a ustack server, many at once, in
// virtual time: a client that keeps its window shut forever, one that ACKs
// one byte at a time, one that sends one byte per RTO. Each test asserts the
// exact segments, and that the server's goroutines, clock timers, timers per
// connection and memory stay bounded while they misbehave.

// rawClient is one hand-driven peer of a slow-peer test.
type rawClient struct {
	remote, local netip.AddrPort
	seq           tcp.Seq // the peer's next sequence number
	ack           tcp.Seq // the next byte the peer expects from the server
	c             *Conn
}

// slowServer is a ustack server on a packet harness, with one listener on
// port 80 big enough for every client of the test.
func slowServer(t *testing.T, n int, cfg tcp.Config) *fuzzHarness {
	h := newPacketHarness(t, Options{TCP: cfg, MaxConns: 2 * n, SYNBacklog: 2 * n})
	h.maxBatch = 512
	h.listen(80, 2*n)
	t.Cleanup(func() {
		h.close()
	})
	return h
}

// openClients completes n handshakes from addrA ports 10000.. (the SYN
// carries opts, the ACK offers win) and accepts them.
func (h *fuzzHarness) openClients(n int, opts tcp.Options, win uint16) []*rawClient {
	t := h.t
	local := netip.AddrPortFrom(addrB, 80)
	cls := make([]*rawClient, n)
	for i := range cls {
		cls[i] = &rawClient{remote: netip.AddrPortFrom(addrA, uint16(10000+i)), local: local, seq: 1000}
		syn := tcp.Segment{Seq: 1000, Flags: tcp.FlagSYN, Window: win, Options: opts}
		h.queue(tcpPacket(cls[i].remote, local, &syn))
	}
	h.flush()
	for _, c := range cls {
		st := h.flows[flowKey{c.remote, 80}]
		require.NotNil(t, st, "SYN-ACK to %v", c.remote)
		c.seq, c.ack = 1001, st.seq
		h.send(c, tcp.FlagACK, win, nil)
	}
	h.flush()
	h.accept()
	require.Len(t, h.conns, n)
	byAddr := map[string]*Conn{}
	for _, c := range h.conns {
		byAddr[c.RemoteAddr().String()] = c
	}
	for _, c := range cls {
		c.c = byAddr[c.remote.String()]
		require.NotNil(t, c.c)
	}
	return cls
}

// send queues a segment from c: SEQ = c.seq, ACK = c.ack.
func (h *fuzzHarness) send(c *rawClient, flags tcp.Flags, win uint16, payload []byte) {
	seg := tcp.Segment{Seq: c.seq, Ack: c.ack, Flags: flags, Window: win, Payload: payload}
	h.queue(tcpPacket(c.remote, c.local, &seg))
	c.seq += tcp.Seq(len(payload))
}

// segsByPeer groups what the stack sent up to the last barrier by peer.
func (h *fuzzHarness) segsByPeer() map[netip.AddrPort][]tcp.Segment {
	m := map[netip.AddrPort][]tcp.Segment{}
	for _, p := range h.got {
		_, dst, seg, ok := parseOut(p)
		require.True(h.t, ok, "not TCP: %s", describe(p))
		m[dst] = append(m[dst], seg)
	}
	return m
}

// advanceTo moves virtual time to at, collecting what the stack sends.
func (h *fuzzHarness) advanceTo(at tcp.Time) {
	if d := at.Sub(h.clk.Now()); d > 0 {
		h.clk.Advance(d)
	}
	h.flush()
}

// armedTimers lists the engine timers a connection has armed.
func armedTimers(in tcp.Info) []string {
	var out []string
	for _, x := range []struct {
		name string
		ti   tcp.TimerInfo
	}{{"retransmit", in.Retransmit}, {"persist", in.Persist}, {"delayed-ack", in.DelayedACK},
		{"keepalive", in.Keepalive}, {"fin-wait-2", in.FinWait2}, {"time-wait", in.TimeWait}, {"user-timeout", in.UserTimeout}} {
		if x.ti.Armed {
			out = append(out, x.name)
		}
	}
	return out
}

// connInfo reads the engine's view of c's connection (also after Close).
func (h *fuzzHarness) connInfo(c *rawClient) tcp.Info {
	ep := c.c.ep
	ep.sh.mu.Lock()
	defer ep.sh.mu.Unlock()
	return ep.tc.Info()
}

// heapInuse is the live heap after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// fill writes into every client's connection until its send buffer is full
// (the server application always has more to say).
func (h *fuzzHarness) fill(cls []*rawClient) {
	for _, c := range cls {
		if _, err := c.c.Write(h.wbuf); !errors.Is(err, os.ErrDeadlineExceeded) {
			h.t.Fatalf("write to %v: %v", c.remote, err)
		}
	}
}

// TestSlowPeerZeroWindowForever: 1,000 clients take the first 1024 bytes and
// then advertise a zero window forever, answering every probe. The server
// persists (RFC 1122 §4.2.2.17): one-byte probes backing off from the RTO to
// RTOMax, one engine timer per connection, one clock timer per shard, no
// goroutine per connection, memory bounded by the send buffers. With a
// user timeout, every connection dies exactly UserTimeout after its first
// probe; closed by the application (orphaned), every one is given up as
// Linux gives up orphans (tcp_orphan_retries).
func TestSlowPeerZeroWindowForever(t *testing.T) {
	const n = 1000
	const sndBuf = 16 << 10
	for _, tc := range []struct {
		name   string
		ut     time.Duration
		orphan bool // the application closes every connection once its buffer is full
	}{{"answered-forever", 0, false}, {"user-timeout-90s", 90 * time.Second, false}, {"orphaned", 0, true}} {
		ut := tc.ut
		t.Run(tc.name, func(t *testing.T) {
			h := slowServer(t, n, tcp.Config{SendBufferSize: sndBuf, RecvBufferSize: 16 << 10, UserTimeout: ut})
			g0, heap0 := runtime.NumGoroutine(), heapInuse()
			cls := h.openClients(n, tcp.Options{HasMSS: true, MSS: 1460}, 1024)
			h.fill(cls)
			h.flush()
			segs := h.segsByPeer()
			for _, c := range cls {
				// The window's worth, in one segment (1024 >= half the
				// largest window the peer offered: SWS allows it).
				require.Len(t, segs[c.remote], 1, "to %v", c.remote)
				s := segs[c.remote][0]
				require.Equal(t, c.ack, s.Seq)
				require.Len(t, s.Payload, 1024)
				c.ack += 1024
				h.send(c, tcp.FlagACK, 0, nil) // took it; the window shuts
			}
			h.flush()
			require.Empty(t, h.got, "nothing may go into a zero window")
			h.fill(cls) // the application tops its buffer up
			if tc.orphan {
				for _, c := range cls {
					require.NoError(t, c.c.Close())
				}
				h.flush()
				require.Empty(t, h.got, "the FIN waits behind the data")
				require.Equal(t, map[tcp.State]int{tcp.StateFinWait1: n}, h.s.ConnStates())
			}
			t0 := h.clk.Now()
			rto := cls[0].c.Info().RTO
			require.Equal(t, 200*time.Millisecond, rto, "RTO after a zero-RTT handshake: RTOMin")

			// Probe, answer, repeat for 30 minutes of virtual time.
			var probeAt []time.Duration
			var probeStart tcp.Time
			maxHeap := uint64(0)
			for h.clk.Now().Sub(t0) < 30*time.Minute && h.s.NumConns() > 0 {
				at, ok := h.clk.Next()
				require.True(t, ok, "a timer must be armed")
				if ut > 0 && probeStart != 0 && at.Sub(probeStart) >= ut {
					break // the user timeout, checked below
				}
				h.advanceTo(at)
				if tc.orphan && h.s.NumConns() == 0 {
					require.Empty(t, h.got, "an orphan dies silently")
					break
				}
				segs := h.segsByPeer()
				for _, c := range cls {
					got := segs[c.remote]
					require.Len(t, got, 1, "one probe to %v at %v", c.remote, at.Sub(t0))
					require.Equal(t, c.ack, got[0].Seq, "a one-byte probe of new data")
					require.Len(t, got[0].Payload, 1)
					h.send(c, tcp.FlagACK, 0, nil) // answered: still closed
				}
				if probeStart == 0 {
					probeStart = h.clk.Now()
				}
				probeAt = append(probeAt, h.clk.Now().Sub(t0))
				h.flush()
				require.Empty(t, h.got)
				// Bounded: one clock timer per shard, one engine timer
				// (persist) per connection, no goroutine per connection.
				require.Equal(t, len(h.s.shards), h.clk.Pending(), "clock timers")
				for _, c := range cls {
					in := c.c.Info()
					if tc.orphan {
						in = h.connInfo(c)
					}
					require.Equal(t, []string{"persist"}, armedTimers(in), "timers of %v", c.remote)
					require.Equal(t, uint32(sndBuf), in.NotSent, "send buffer full, nothing more")
				}
				require.LessOrEqual(t, runtime.NumGoroutine(), g0, "goroutines")
				if len(probeAt)%4 == 0 {
					h.got = nil
					maxHeap = max(maxHeap, heapInuse())
				}
			}
			// The schedule: RTO, doubling, capped at RTOMax (120 s).
			want := []time.Duration{}
			for d, at := rto, rto; len(want) < len(probeAt); d = min(2*d, 120*time.Second) {
				want = append(want, at)
				at += min(2*d, 120*time.Second)
			}
			require.Equal(t, want, probeAt)
			perConn := int64(maxHeap-heap0) / n
			t.Logf("%d connections: %d probes each over %v, heap +%d KiB (%d B/conn, send buffer %d), goroutines %d",
				n, len(probeAt), probeAt[len(probeAt)-1], int64(maxHeap-heap0)>>10, perConn, sndBuf, g0)
			// The send ring mirrors min(size, 64 KiB) bytes past its end
			// (tcp/buffer.go), so a full 16 KiB buffer holds 32 KiB; the
			// receive ring is allocated only when data arrives; the rest is
			// the connection's own state (tcp.Conn, endpoint, Conn, map
			// entries, the harness's bookkeeping) and heap slack.
			require.Less(t, perConn, int64(2*sndBuf+16<<10), "heap per connection")

			if tc.orphan {
				// Nobody will read or close them: given up at the first
				// timeout after 8+ probes whose interval reached 120 s
				// (Linux tcp_orphan_retries): the 11th, 120 s after the
				// 10th probe (0.2 s << 10 = 204.8 s >= 120 s).
				require.Len(t, probeAt, 10)
				require.Equal(t, probeAt[9]+120*time.Second, h.clk.Now().Sub(t0))
				require.Equal(t, 0, h.s.NumConns())
				require.LessOrEqual(t, runtime.NumGoroutine(), g0)
				return
			}
			if ut == 0 {
				require.Equal(t, n, h.s.NumConns(), "answered probes never kill a connection")
				require.Equal(t, 120*time.Second, probeAt[len(probeAt)-1]-probeAt[len(probeAt)-2], "capped at RTOMax")
				return
			}
			// The user timeout: everyone is alive a microsecond before
			// the first probe + 90 s, and gone at it, without a RST.
			end := probeStart.Add(ut)
			h.advanceTo(end.Add(-time.Microsecond))
			require.Equal(t, n, h.s.NumConns())
			h.advanceTo(end)
			require.Empty(t, h.got, "tcp_write_err: no RST")
			require.Equal(t, 0, h.s.NumConns())
			for _, c := range cls {
				_, err := c.c.Read(make([]byte, 1))
				require.ErrorIs(t, err, syscall.ETIMEDOUT)
				c.c.Close()
			}
			h.conns = nil
			cls = nil
			require.LessOrEqual(t, runtime.NumGoroutine(), g0)
			left := int64(heapInuse()) - int64(heap0)
			// What stays is the packet buffer pool, filled when 1,000
			// probes left at once (bounded by TxBuffers), and heap
			// fragmentation: well under the 40 KiB a connection held.
			h.s.pool.mu.Lock()
			pool := int64(h.s.pool.nSmall*(headroom+smallBufSize) + h.s.pool.nBig*(headroom+65536))
			h.s.pool.mu.Unlock()
			t.Logf("after the user timeout: heap %+d KiB against the start (packet pool %d KiB)", left>>10, pool>>10)
			require.Less(t, left, pool+n*4<<10, "the connections' buffers are freed")
		})
	}
}

// TestSlowPeerOneByteACKs: 100 clients (no MSS option: the server's MSS is
// 536) offer a 2144-byte window, then acknowledge one byte at a time, every
// 100 ms, keeping the window field: the right edge creeps one byte per ACK.
// Sender SWS avoidance (RFC 9293 §3.8.6.2.1) must not answer with tiny
// segments: the server sends only full 536-byte segments, one each time the
// usable window reaches an MSS, and nothing else — bounded work per ACK.
func TestSlowPeerOneByteACKs(t *testing.T) {
	const n, acks, mss, win = 100, 1100, 536, 4 * 536
	h := slowServer(t, n, tcp.Config{SendBufferSize: 16 << 10})
	g0 := runtime.NumGoroutine()
	cls := h.openClients(n, tcp.Options{}, win)
	h.fill(cls)
	h.flush()
	sent := map[netip.AddrPort]int{}
	check := func(k int) {
		t.Helper()
		for peer, segs := range h.segsByPeer() {
			for _, s := range segs {
				require.Len(t, s.Payload, mss, "to %v after %d one-byte ACKs: %v", peer, k, s)
				sent[peer]++
			}
		}
	}
	check(0)
	for k := 1; k <= acks; k++ {
		for _, c := range cls {
			c.ack++
			h.send(c, tcp.FlagACK, win, nil)
		}
		h.flush()
		check(k)
		if k%100 == 0 {
			require.Equal(t, len(h.s.shards), h.clk.Pending(), "clock timers")
			require.LessOrEqual(t, runtime.NumGoroutine(), g0, "goroutines")
			for _, c := range cls {
				require.Equal(t, []string{"retransmit"}, armedTimers(c.c.Info()))
			}
		}
		h.clk.Advance(100 * time.Millisecond)
	}
	// Full segments only: the window's 4 at once, then one each time the
	// edge has crept a whole MSS (after 536 and 1072 one-byte ACKs).
	for _, c := range cls {
		require.Equal(t, 4+acks/mss, sent[c.remote], "segments to %v", c.remote)
		in := c.c.Info()
		require.Zero(t, in.Retransmits)
		require.Equal(t, uint32(mss*(4+acks/mss)-acks), in.Unacked)
	}
	t.Logf("%d clients x %d one-byte ACKs: %d segments each, all %d bytes", n, acks, 4+acks/mss, mss)
}

// TestSlowPeerOneBytePerRTO: 1,000 clients send one byte every 200 ms (the
// minimum RTO): 20 bytes the server application does not read, then 20 it
// reads one at a time; then they fall silent. Each byte costs the server one
// delayed ACK, 40 ms later, and nothing else; its window's right edge never
// moves by less than an MSS (receiver SWS avoidance, RFC 9293 §3.8.6.2.2),
// so a read sends no window update; timers stay one clock timer per shard.
// Keepalive (idle 30 s, interval 5 s, 3 probes) then reaps every client at
// exactly 30, 35, 40 s (probes) and 45 s (RST) after its last byte.
func TestSlowPeerOneBytePerRTO(t *testing.T) {
	const n, unread, read = 1000, 20, 20
	const rcvBuf = 16 << 10
	// QuickACKs off: the test counts the delayed ACKs of every byte (the
	// quick-ACK start would answer the first ones at once).
	h := slowServer(t, n, tcp.Config{RecvBufferSize: rcvBuf, QuickACKs: -1,
		KeepAlive: true, KeepIdle: 30 * time.Second, KeepInterval: 5 * time.Second, KeepCount: 3})
	g0, heap0 := runtime.NumGoroutine(), heapInuse()
	cls := h.openClients(n, tcp.Options{HasMSS: true, MSS: 1460}, 65535)
	edge := map[netip.AddrPort]tcp.Seq{}
	for _, c := range cls {
		edge[c.remote] = c.seq + rcvBuf
	}
	one := []byte{'x'}
	var last tcp.Time
	for k := 0; k < unread+read; k++ {
		t0 := h.clk.Now()
		for _, c := range cls {
			h.send(c, tcp.FlagACK|tcp.FlagPSH, 65535, one)
		}
		h.flush()
		require.Empty(t, h.got, "byte %d: the ACK is delayed", k)
		last = t0
		if k >= unread {
			for _, c := range cls {
				m, err := c.c.Read(h.rbuf[:1])
				require.NoError(t, err)
				require.Equal(t, 1, m)
			}
			h.flush()
			require.Empty(t, h.got, "byte %d: a one-byte read is worth no window update", k)
		}
		h.advanceTo(t0.Add(40*time.Millisecond - time.Microsecond))
		require.Empty(t, h.got)
		h.advanceTo(t0.Add(40 * time.Millisecond))
		segs := h.segsByPeer()
		for _, c := range cls {
			got := segs[c.remote]
			require.Len(t, got, 1, "byte %d: one ACK to %v", k, c.remote)
			s := got[0]
			require.Equal(t, tcp.FlagACK, s.Flags)
			require.Equal(t, c.seq, s.Ack)
			require.Empty(t, s.Payload)
			require.Equal(t, edge[c.remote], s.Ack+tcp.Seq(s.Window), "byte %d: the right edge stays put", k)
		}
		require.Equal(t, len(h.s.shards), h.clk.Pending(), "clock timers")
		for _, c := range cls[:10] {
			require.Equal(t, []string{"keepalive"}, armedTimers(c.c.Info()))
		}
		h.advanceTo(t0.Add(200 * time.Millisecond))
		require.Empty(t, h.got)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), g0, "goroutines")
	h.got = nil
	// The packet buffer pool fills as the batches need it (up to 16 MiB
	// of small buffers, 16 KiB a connection here): it is the stack's, not
	// the connections', so it is taken out.
	h.s.pool.mu.Lock()
	pool := int64(h.s.pool.nSmall*(headroom+smallBufSize) + h.s.pool.nBig*(headroom+65536))
	h.s.pool.mu.Unlock()
	perConn := (int64(heapInuse()) - int64(heap0) - pool) / n
	t.Logf("%d clients, %d bytes each one per 200 ms: heap %d B per connection (packet pool %d KiB taken out)", n, unread+read, perConn, pool>>10)
	// About 8 KiB here on a quiet machine; a full 16 KiB receive buffer and
	// its ring's mirror would be 32 KiB more. The bound leaves room for the
	// GC's and other tests' noise (21 KiB seen once on a loaded machine).
	require.Less(t, perConn, int64(24<<10), "heap per connection: a few bytes buffered, no full buffers")
	for _, c := range cls {
		require.Equal(t, unread, c.c.Info().Readable)
	}

	// Silence: keepalive probes at +30, +35, +40 s, the RST at +45 s.
	for i, off := range []time.Duration{30 * time.Second, 35 * time.Second, 40 * time.Second, 45 * time.Second} {
		h.advanceTo(last.Add(off - time.Microsecond))
		require.Empty(t, h.got, "nothing before %v", off)
		require.Equal(t, n, h.s.NumConns())
		h.advanceTo(last.Add(off))
		segs := h.segsByPeer()
		for _, c := range cls {
			got := segs[c.remote]
			require.Len(t, got, 1, "at +%v to %v", off, c.remote)
			if i < 3 {
				require.Equal(t, tcp.FlagACK, got[0].Flags, "keepalive probe")
				require.Equal(t, c.ack-1, got[0].Seq, "SEG.SEQ = SND.NXT-1")
			} else {
				require.Equal(t, tcp.FlagRST|tcp.FlagACK, got[0].Flags&(tcp.FlagRST|tcp.FlagACK), "the RST")
				require.Equal(t, c.ack, got[0].Seq)
			}
		}
	}
	require.Equal(t, 0, h.s.NumConns())
	for _, c := range cls {
		_, err := c.c.Read(h.rbuf)
		if err == nil {
			// The unread bytes come first, then the error.
			_, err = c.c.Read(h.rbuf)
		}
		require.ErrorIs(t, err, syscall.ETIMEDOUT)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), g0, "goroutines")
}
