package netstack

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// Benchmark parameters.
const (
	// benchChunk is the bytes each stream moves per op of a throughput
	// benchmark (SetBytes counts all streams).
	benchChunk = 1 << 20
	// benchStall bounds every read and write: a tunnel that stalls this
	// long fails the benchmark, naming the stream and its progress.
	benchStall = 10 * time.Second
	// echoSize is the message of the round-trip benchmark.
	echoSize = 64
	// idleConns is how many idle connections the memory benchmark holds.
	idleConns = 500
)

// benchPattern is the content every stream sends: stream i sends the
// pattern from offset i*patternStride, wrapping, so that bytes of another
// stream or position never compare equal by accident.
var benchPattern = func() []byte {
	p := make([]byte, benchChunk)
	r := mrand.NewChaCha8([32]byte{'w', 'g', 'b', 'e', 'n', 'c', 'h'})
	_, _ = r.Read(p)
	return p
}()

const patternStride = 4099 // prime, so streams start at distinct offsets

// BenchmarkWireGuard runs TCP through two wireguard-go devices in this
// process (loopback UDP between them) with each combination of ustack's and
// gVisor's netstack as the two TUNs. "X-to-Y" is a tunnel whose side A is X
// and side B is Y; data flows from A to B. gvisor-to-gvisor is what a
// wireguard-go program (wireproxy and the like) gets today.
//
// Sub-benchmarks, for each configuration:
//   - stream1, stream8: bulk TCP from A to B over 1 or 8 connections, every
//     byte compared with what was sent (MB/s);
//   - rtt64: a 64-byte echo round trip, A to B and back (ns/op);
//   - idle: the heap held by idleConns open idle connections, both ends
//     (B/conn: one ustack and one gVisor endpoint for the mixed tunnels,
//     two endpoints of the same stack otherwise).
//
// Every read and write has a deadline: a stalled tunnel fails the
// benchmark with the stream and byte count where it stopped.
func BenchmarkWireGuard(b *testing.B) {
	for _, cfg := range []struct {
		name             string
		aUstack, bUstack bool
	}{
		{"ustack-to-ustack", true, true},
		{"gvisor-to-gvisor", false, false},
		{"ustack-to-gvisor", true, false},
		{"gvisor-to-ustack", false, true},
	} {
		b.Run(cfg.name, func(b *testing.B) {
			tn := newTunnel(b, cfg.aUstack, cfg.bUstack)
			defer tn.Close()
			for _, sb := range []struct {
				name string
				port uint16
				run  func(b *testing.B, tn *tunnel, to netip.AddrPort, ln net.Listener)
			}{
				{"stream1", 9001, func(b *testing.B, tn *tunnel, to netip.AddrPort, ln net.Listener) { benchStreams(b, tn, to, ln, 1) }},
				{"stream8", 9008, func(b *testing.B, tn *tunnel, to netip.AddrPort, ln net.Listener) { benchStreams(b, tn, to, ln, 8) }},
				{"rtt64", 9064, benchEcho},
				{"idle", 9100, benchIdle},
			} {
				ln, err := tn.b.listen(sb.port)
				if err != nil {
					b.Fatalf("%s: listen on %d: %v", tn.b.name, sb.port, err)
				}
				to := netip.AddrPortFrom(addrB4, sb.port)
				b.Run(sb.name, func(b *testing.B) { sb.run(b, tn, to, ln) })
				_ = ln.Close()
			}
		})
	}
}

// acceptN accepts n connections on ln and sends them on the returned
// channel (closed after the nth, or with the error that ended accepting).
func acceptN(ln net.Listener, n int) (<-chan net.Conn, <-chan error) {
	conns := make(chan net.Conn, n)
	errc := make(chan error, 1)
	go func() {
		defer close(conns)
		for range n {
			c, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			conns <- c
		}
	}()
	return conns, errc
}

// dialPairs opens n connections from tn.a to to and returns them with their
// accepted ends on tn.b, in the same order. It waits for the tunnel's
// handshake on the first dial.
func dialPairs(b *testing.B, tn *tunnel, to netip.AddrPort, ln net.Listener, n int) (client, server []net.Conn) {
	b.Helper()
	waitTunnelAccept(b, tn, to, ln)
	accepted, errc := acceptN(ln, n)
	ctx, cancel := context.WithTimeout(context.Background(), benchStall)
	defer cancel()
	for i := range n {
		c, err := tn.a.dial(ctx, to)
		if err != nil {
			closeAll(client)
			b.Fatalf("%s: dial %d of %d to %v: %v", tn.a.name, i+1, n, to, err)
		}
		client = append(client, c)
	}
	// The accepted order need not be the dial order: pair them by the
	// client's local port.
	byPort := make(map[int]net.Conn, n)
	timeout := time.After(benchStall)
	for len(byPort) < n {
		select {
		case c, ok := <-accepted:
			if !ok {
				err := <-errc
				closeAll(client)
				b.Fatalf("%s: accept after %d of %d: %v", tn.b.name, len(byPort), n, err)
			}
			byPort[c.RemoteAddr().(*net.TCPAddr).Port] = c
		case <-timeout:
			closeAll(client)
			b.Fatalf("%s: %d of %d connections accepted after %v", tn.b.name, len(byPort), n, benchStall)
		}
	}
	for _, c := range client {
		s, ok := byPort[c.LocalAddr().(*net.TCPAddr).Port]
		if !ok {
			closeAll(client)
			b.Fatalf("no accepted connection from %v", c.LocalAddr())
		}
		server = append(server, s)
	}
	return client, server
}

// waitTunnelAccept is waitTunnel against a listener that someone must
// accept on: it dials once, accepts, and closes both ends.
func waitTunnelAccept(b *testing.B, tn *tunnel, to netip.AddrPort, ln net.Listener) {
	b.Helper()
	accepted, errc := acceptN(ln, 1)
	waitTunnel(b, tn.a, to)
	select {
	case c, ok := <-accepted:
		if !ok {
			b.Fatalf("%s: accept: %v", tn.b.name, <-errc)
		}
		_ = c.Close()
	case <-time.After(benchStall):
		b.Fatalf("%s: first connection not accepted after %v", tn.b.name, benchStall)
	}
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// benchStreams moves b.N chunks per stream from tn.a to tn.b over streams
// connections at once and compares every byte received with the pattern.
func benchStreams(b *testing.B, tn *tunnel, to netip.AddrPort, ln net.Listener, streams int) {
	client, server := dialPairs(b, tn, to, ln, streams)
	defer closeAll(server)
	defer closeAll(client)
	total := int64(b.N) * benchChunk
	b.SetBytes(int64(streams) * benchChunk)
	errc := make(chan error, 2*streams)
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range streams {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errc <- sendPattern(client[i], i, total)
		}()
		go func() {
			defer wg.Done()
			errc <- receivePattern(server[i], i, total)
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errc)
	for err := range errc {
		if err != nil {
			b.Fatalf("%s to %s: %v", tn.a.name, tn.b.name, err)
		}
	}
	// A ustack sender also reports the share of its bytes it sent again:
	// the tunnel loses nothing, so every retransmission is spurious.
	var retrans uint64
	for _, c := range client {
		sc, ok := c.(interface{ Info() tcp.Info })
		if !ok {
			return
		}
		retrans += sc.Info().BytesRetrans
	}
	b.ReportMetric(100*float64(retrans)/float64(total*int64(streams)), "%retrans")
}

// sendPattern writes n bytes of stream's pattern to c, then waits for the
// receiver's one-byte acknowledgement that it has checked them all.
func sendPattern(c net.Conn, stream int, n int64) error {
	off := int64(stream*patternStride) % benchChunk
	var sent int64
	for sent < n {
		p := benchPattern[off:]
		if int64(len(p)) > n-sent {
			p = p[:n-sent]
		}
		_ = c.SetWriteDeadline(time.Now().Add(benchStall))
		k, err := c.Write(p)
		sent += int64(k)
		if err != nil {
			return fmt.Errorf("stream %d: write stalled or failed after %d of %d bytes: %w", stream, sent, n, err)
		}
		off = (off + int64(k)) % benchChunk
	}
	var ack [1]byte
	_ = c.SetReadDeadline(time.Now().Add(benchStall))
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return fmt.Errorf("stream %d: no acknowledgement after sending %d bytes: %w", stream, n, err)
	}
	return nil
}

// receivePattern reads n bytes from c, each compared with stream's
// pattern, and acknowledges them with one byte.
func receivePattern(c net.Conn, stream int, n int64) error {
	off := int64(stream*patternStride) % benchChunk
	buf := make([]byte, 256<<10)
	var got int64
	for got < n {
		p := buf
		if int64(len(p)) > n-got {
			p = p[:n-got]
		}
		_ = c.SetReadDeadline(time.Now().Add(benchStall))
		k, err := c.Read(p)
		if k > 0 {
			if i := mismatch(p[:k], off); i >= 0 {
				return fmt.Errorf("stream %d: byte %d differs from what was sent", stream, got+int64(i))
			}
			got += int64(k)
			off = (off + int64(k)) % benchChunk
		}
		if err != nil && got < n {
			return fmt.Errorf("stream %d: read stalled or failed after %d of %d bytes: %w", stream, got, n, err)
		}
	}
	_ = c.SetWriteDeadline(time.Now().Add(benchStall))
	if _, err := c.Write([]byte{1}); err != nil {
		return fmt.Errorf("stream %d: acknowledging %d bytes: %w", stream, n, err)
	}
	return nil
}

// mismatch returns the index of the first byte of p that differs from the
// pattern starting at off (wrapping), or -1.
func mismatch(p []byte, off int64) int {
	done := 0
	for done < len(p) {
		want := benchPattern[off:]
		k := min(len(want), len(p)-done)
		if !bytes.Equal(p[done:done+k], want[:k]) {
			for j := range k {
				if p[done+j] != want[j] {
					return done + j
				}
			}
		}
		done += k
		off = 0
	}
	return -1
}

// benchEcho measures the round trip of a 64-byte message from tn.a to an
// echo on tn.b and back, one at a time.
func benchEcho(b *testing.B, tn *tunnel, to netip.AddrPort, ln net.Listener) {
	client, server := dialPairs(b, tn, to, ln, 1)
	defer closeAll(server)
	defer closeAll(client)
	c, s := client[0], server[0]
	echoErr := make(chan error, 1)
	go func() {
		var buf [echoSize]byte
		for {
			// The echo has no deadline of its own: the client's bounds
			// the exchange, and closing the connections ends this loop.
			if _, err := io.ReadFull(s, buf[:]); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
					err = nil
				}
				echoErr <- err
				return
			}
			if _, err := s.Write(buf[:]); err != nil {
				echoErr <- err
				return
			}
		}
	}()
	msg := make([]byte, echoSize)
	reply := make([]byte, echoSize)
	b.ResetTimer()
	for i := range b.N {
		if i%256 == 0 {
			_ = c.SetDeadline(time.Now().Add(benchStall))
		}
		binary.BigEndian.PutUint64(msg, uint64(i))
		if _, err := c.Write(msg); err != nil {
			b.Fatalf("round trip %d: write: %v", i, err)
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			b.Fatalf("round trip %d: no echo: %v", i, err)
		}
		if !bytes.Equal(reply, msg) {
			b.Fatalf("round trip %d: echo %x, want %x", i, reply, msg)
		}
	}
	b.StopTimer()
	_ = c.Close()
	select {
	case err := <-echoErr:
		if err != nil {
			b.Fatalf("echo: %v", err)
		}
	case <-time.After(benchStall):
		b.Fatalf("echo still running %v after the client closed", benchStall)
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// heapSettled is heapInUse once it has stopped moving: a burst of
// handshakes or FINs leaves wireguard-go's 64 KiB message buffers in its
// queues and pools for a while after the connections are quiet, and they
// are not the connections' memory.
func heapSettled() uint64 {
	h := heapInUse()
	for range 40 {
		time.Sleep(50 * time.Millisecond)
		next := heapInUse()
		d := int64(next) - int64(h)
		h = next
		if d < 64<<10 && d > -64<<10 {
			break
		}
	}
	return h
}

// benchIdle opens idleConns connections from tn.a to tn.b per op, lets
// them settle, and reports the heap they hold per connection (both ends,
// with the net.Conn values the benchmark keeps).
func benchIdle(b *testing.B, tn *tunnel, to netip.AddrPort, ln net.Listener) {
	waitTunnelAccept(b, tn, to, ln)
	var perConn float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		before := heapSettled()
		b.StartTimer()
		client, server := dialPairs(b, tn, to, ln, idleConns)
		b.StopTimer()
		// Idle: the handshake's last ACK delivered, nothing in flight.
		settle(b, client, server)
		after := heapSettled()
		perConn += (float64(after) - float64(before)) / idleConns
		runtime.KeepAlive(client)
		runtime.KeepAlive(server)
		closeAll(client)
		closeAll(server)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(perConn/float64(b.N), "B/conn")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*idleConns), "ns/dial")
}

// settle makes sure every pair carries a byte each way, so that both ends
// are established and have had their buffers touched as a real idle
// connection's would, then leaves them idle.
func settle(b *testing.B, client, server []net.Conn) {
	b.Helper()
	var one [1]byte
	for i, c := range client {
		s := server[i]
		_ = c.SetDeadline(time.Now().Add(benchStall))
		_ = s.SetDeadline(time.Now().Add(benchStall))
		if _, err := c.Write([]byte{'x'}); err != nil {
			b.Fatalf("idle connection %d: write: %v", i, err)
		}
		if _, err := io.ReadFull(s, one[:]); err != nil {
			b.Fatalf("idle connection %d: read: %v", i, err)
		}
		if _, err := s.Write(one[:]); err != nil {
			b.Fatalf("idle connection %d: write back: %v", i, err)
		}
		if _, err := io.ReadFull(c, one[:]); err != nil {
			b.Fatalf("idle connection %d: read back: %v", i, err)
		}
		_ = c.SetDeadline(time.Time{})
		_ = s.SetDeadline(time.Time{})
	}
}
