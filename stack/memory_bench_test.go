package stack

import (
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// idleConns opens n passive connections on a stack over a nullLink by
// injecting each handshake (a ManualClock that never moves makes the ISS of
// every SYN-ACK computable), accepts them all and returns them.
func idleConns(tb testing.TB, s *Stack, ln *Listener, n int) []*Conn {
	tb.Helper()
	l := (*s.links.Load())[0]
	var batch rxBatch
	inject := func(pkt []byte) {
		now := s.clock.Now()
		s.input(l, pkt, tun.GSO{}, now, &batch)
		s.finishBatch(nil, &batch, now)
	}
	conns := make([]*Conn, 0, n)
	local := netip.AddrPortFrom(addrB, 7)
	for i := range n {
		// 50,000 ports per client address.
		a := addrA.As4()
		a[2] = byte(i / 50000)
		a[3] = 1
		cli := netip.AddrPortFrom(netip.AddrFrom4(a), uint16(10000+i%50000))
		syn := synSeg(1000)
		inject(tcpPacket(cli, local, &syn))
		iss := s.isn.isn(s.clock.Now(), local, cli)
		ack := tcp.Segment{Seq: 1001, Ack: iss + 1, Flags: tcp.FlagACK, Window: 65535}
		ack.Options.HasTimestamp, ack.Options.TSVal = true, 5001
		inject(tcpPacket(cli, local, &ack))
		c, err := ln.AcceptConn()
		require.NoError(tb, err)
		conns = append(conns, c)
	}
	return conns
}

// liveBytes is the heap in use by live objects plus goroutine stacks, after
// a full collection.
func liveBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// BenchmarkIdleConnMemory reports the memory one idle ESTABLISHED connection
// costs in-process (the issue 7 target is per idle connection): "stack" is
// the stack's own cost (table entry, endpoint, tcp.Conn, net.Conn), "reader"
// adds an application goroutine blocked in Read with a 512-byte buffer, as a
// server with a goroutine per connection has. Metric: bytes/conn.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 10000
	for _, reader := range []bool{false, true} {
		name := "stack"
		if reader {
			name = "reader"
		}
		b.Run(name, func(b *testing.B) {
			var per float64
			for range b.N {
				nl := newNullLink()
				// Few packet buffers: the pool (a fixed cost, bounded) must
				// not grow during the handshakes and count as per-connection
				// memory. SYN-ACKs it cannot hold are dropped, which does
				// not matter: the injected ACKs do not wait for them.
				s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Clock: NewManualClock(1e9),
					TxBuffers: 16, TxBigBuffers: 1})
				require.NoError(b, err)
				ln, err := s.ListenBacklog("tcp", ":7", n)
				require.NoError(b, err)
				before := liveBytes()
				conns := idleConns(b, s, ln, n)
				done := make(chan struct{}, n)
				if reader {
					var started sync.WaitGroup
					started.Add(n)
					for _, c := range conns {
						go func() {
							buf := make([]byte, 512)
							started.Done()
							c.Read(buf)
							done <- struct{}{}
						}()
					}
					started.Wait()
					time.Sleep(100 * time.Millisecond) // let them park in Read
				}
				after := liveBytes()
				per = float64(after-before) / n
				if f := os.Getenv("USTACK_MEMPROF"); f != "" {
					w, _ := os.Create(f + "." + name)
					pprof.Lookup("heap").WriteTo(w, 0)
					w.Close()
				}
				require.Equal(b, n, s.NumConns())
				runtime.KeepAlive(conns)
				s.Close()
				if reader {
					for range n {
						<-done
					}
				}
			}
			b.ReportMetric(per, "bytes/conn")
		})
	}
}
