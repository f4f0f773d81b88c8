package integration

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun"
	"github.com/ustack-net/ustack/tun/netnstest"
)

// TestMultiQueueStress runs 64 kernel connections at once to a ustack on a
// 2-queue TUN, half IPv4, half IPv6, each sending its own seeded stream
// up while ustack sends another down: every byte is checked by hash on both
// sides, and both queues must have carried traffic each way (the kernel
// spreads the flows; each connection keeps to its shard's queue).
func TestMultiQueueStress(t *testing.T) {
	for _, m := range kernelModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			testMultiQueueStress(t, m.offload)
		})
	}
}

func testMultiQueueStress(t *testing.T, offload bool) {
	const (
		nq    = 2
		conns = 64
		up    = 128 << 10
		down  = 96 << 10
	)
	dev, err := tun.Create(tun.Options{Name: kernelTUN, MTU: 1500, Offload: offload, HostAddrs: kernelPrefix, Queues: nq})
	require.NoError(t, err)
	require.Len(t, dev.Queues(), nq)
	st, err := stack.New(stack.Options{Links: []tun.Link{dev}, Addrs: []netip.Addr{ustackAddr4, ustackAddr6}})
	if err != nil {
		dev.Close()
		require.NoError(t, err)
	}
	defer st.Close()
	ln, err := st.Listen("tcp", ":5000")
	require.NoError(t, err)
	defer ln.Close()

	// The server: a connection starts with its 8-byte seed; ustack sends
	// down seed+1's stream while it hashes what comes up until EOF.
	serverErrs := make(chan error, conns)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serverErrs <- serveStress(c, up, down)
			}()
		}
	}()

	var wg sync.WaitGroup
	clientErrs := make(chan error, conns)
	for i := range conns {
		fam := kernelFamilies[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			clientErrs <- dialStress(joinAddrPort(fam.ustack, 5000), uint64(1000+i), up, down)
		}()
	}
	wg.Wait()
	for range conns {
		require.NoError(t, <-clientErrs)
	}
	for range conns {
		select {
		case err := <-serverErrs:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("a server connection did not finish")
		}
	}

	qs := st.QueueStats()
	require.Len(t, qs, nq)
	var rx, tx uint64
	for _, q := range qs {
		t.Logf("queue %d: rx %d packets %d bytes in %d reads, tx %d packets %d bytes in %d writes",
			q.Queue, q.RxPackets, q.RxBytes, q.RxBatches, q.TxPackets, q.TxBytes, q.TxBatches)
		assert.NotZero(t, q.RxPackets, "queue %d read nothing", q.Queue)
		assert.NotZero(t, q.TxPackets, "queue %d wrote nothing", q.Queue)
		rx += q.RxPackets
		tx += q.TxPackets
	}
	assert.Equal(t, st.Stats().RxPackets.Load(), rx, "the queues' reads are all the stack's")
	assert.Equal(t, st.Stats().TxPackets.Load(), tx, "the queues' writes are all the stack's")
	assert.Zero(t, st.Stats().LinkWriteDrops.Load())
}

// serveStress is ustack's side of one stress connection.
func serveStress(c net.Conn, up, down int64) error {
	var seedBuf [8]byte
	if _, err := io.ReadFull(c, seedBuf[:]); err != nil {
		return fmt.Errorf("server: seed: %w", err)
	}
	seed := binary.BigEndian.Uint64(seedBuf[:])
	werr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, seededStream(seed+1, down))
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		return fmt.Errorf("server %d: reading: %w", seed, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("server %d: writing: %w", seed, err)
	}
	if n != up || [32]byte(h.Sum(nil)) != seededSHA256(seed, up) {
		return fmt.Errorf("server %d: got %d bytes up with the wrong hash, want %d", seed, n, up)
	}
	return nil
}

// dialStress is the kernel's side of one stress connection.
func dialStress(addr string, seed uint64, up, down int64) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	werr := make(chan error, 1)
	go func() {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], seed)
		_, err := c.Write(b[:])
		if err == nil {
			_, err = io.Copy(c, seededStream(seed, up))
		}
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("client %d: reading: %w", seed, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("client %d: writing: %w", seed, err)
	}
	if n != down || [32]byte(h.Sum(nil)) != seededSHA256(seed+1, down) {
		return fmt.Errorf("client %d: got %d bytes down with the wrong hash, want %d", seed, n, down)
	}
	return nil
}
