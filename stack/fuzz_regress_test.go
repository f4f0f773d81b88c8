package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// Regression tests for the bugs FuzzStack found; each crasher stays in
// testdata/fuzz/FuzzStack as well.

// TestAcceptQueueBoundWithinOneBatch: three handshakes complete in one read
// batch on a listener with backlog 2. The accept-queue check and the move
// to the accept queue must be one step: the third ACK is dropped (Linux
// ListenOverflows), its connection stays in SYN-RECEIVED, and it completes
// once Accept made room. (FuzzStack crasher: accept queue 5, limit 2.)
func TestAcceptQueueBoundWithinOneBatch(t *testing.T) {
	r := newRawPeer(t, nil)
	ln, err := r.s.ListenBacklog("tcp", ":80", 2)
	require.NoError(t, err)
	var acks [][]byte
	for i := range 3 {
		cli := netip.AddrPortFrom(addrA, uint16(40000+i))
		syn := synSeg(1000)
		r.send(tcpPacket(cli, srvB, &syn))
		sa := r.expectTCP(srvB, cli, tcp.FlagSYN|tcp.FlagACK)
		ack := tcp.Segment{Seq: 1001, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 1000}
		ack.Options.HasTimestamp, ack.Options.TSVal, ack.Options.TSEcr = true, 5001, sa.Options.TSVal
		acks = append(acks, append(make([]byte, headroom), tcpPacket(cli, srvB, &ack)...))
	}
	// One Write: the stack's reader takes all three in one batch.
	_, err = r.l.Write(acks, headroom)
	require.NoError(t, err)
	st := r.s.Stats()
	waitStat(t, &st.TCPListenOverflows, 1, "tcp_listen_overflows")
	_, synq, accq := ln.Backlog()
	require.Equal(t, 2, accq, "accept queue at its bound, not beyond")
	require.Equal(t, 1, synq, "the third connection waits in the SYN queue")
	require.Equal(t, uint64(2), st.TCPPassiveOpens.Load())
	require.Equal(t, map[tcp.State]int{tcp.StateEstablished: 2, tcp.StateSynReceived: 1}, r.s.ConnStates())

	// Accept makes room; the peer's retransmitted ACK now completes it.
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	defer c.Close()
	_, err = r.l.Write(acks[2:], headroom)
	require.NoError(t, err)
	waitStat(t, &st.TCPPassiveOpens, 3, "tcp_passive_opens")
	_, synq, accq = ln.Backlog()
	require.Equal(t, 2, accq)
	require.Equal(t, 0, synq)
	require.Equal(t, uint64(1), st.TCPListenOverflows.Load())
}

// TestSYNAfterRSTInOneBatch: a peer resets a connection and at once opens a
// new one from the same port (a client whose keepalive gave up, reusing the
// freed port), and both segments arrive in one read batch. The first
// connection ends with the RST; the SYN is a new connection's and gets a
// SYN-ACK, not the RST of the dead one (which the client would take as
// ECONNREFUSED). Found by the 100,000-connection zero-window test.
func TestSYNAfterRSTInOneBatch(t *testing.T) {
	r := newRawPeer(t, nil)
	ln, err := r.s.Listen("tcp", ":80")
	require.NoError(t, err)
	defer ln.Close()
	cli := netip.AddrPortFrom(addrA, 40000)
	sa := r.handshake(cli, srvB, 1000)
	st := r.s.Stats()
	waitStat(t, &st.TCPPassiveOpens, 1, "tcp_passive_opens")

	rst := tcp.Segment{Seq: 1001, Ack: sa.Seq + 1, Flags: tcp.FlagRST | tcp.FlagACK}
	syn := synSeg(50000)
	batch := [][]byte{
		append(make([]byte, headroom), tcpPacket(cli, srvB, &rst)...),
		append(make([]byte, headroom), tcpPacket(cli, srvB, &syn)...),
	}
	_, err = r.l.Write(batch, headroom)
	require.NoError(t, err)
	sa2 := r.expectTCP(srvB, cli, tcp.FlagSYN|tcp.FlagACK)
	require.Equal(t, tcp.Seq(50001), sa2.Ack)
	require.Equal(t, uint64(1), st.TCPPeerResets.Load())
	require.Equal(t, uint64(1), st.TCPEstabResets.Load())
	require.Equal(t, uint64(2), st.TCPConnsOpened.Load())
	require.Equal(t, uint64(1), st.TCPConnsClosed.Load())
	require.Equal(t, map[tcp.State]int{tcp.StateSynReceived: 1}, r.s.ConnStates())
}

// TestTxBurstBeyondPoolIsPaced: one read batch of 64 SYNs makes 64 SYN-ACKs
// before the writer is woken, four times the packet pool. On a link whose
// writes never block, the sender that finds the pool spent writes the
// queue itself and reuses the buffers: every SYN-ACK leaves, none is lost
// for a buffer. (At 100,000 connections a timer pass sends a probe for
// each; the pool's 8,192 buffers dropped 100,000 packets, keepalive answers
// among them.)
func TestTxBurstBeyondPoolIsPaced(t *testing.T) {
	nl := newNullLink()
	s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Shards: 1,
		TxBuffers: 16, TxBigBuffers: 1})
	require.NoError(t, err)
	defer s.Close()
	ln, err := s.ListenBacklog("tcp", ":80", 128)
	require.NoError(t, err)
	defer ln.Close()
	l := (*s.links.Load())[0]
	var b rxBatch
	now := s.clock.Now()
	const n = 64
	for i := range n {
		syn := synSeg(tcp.Seq(1000 * i))
		s.input(l, tcpPacket(netip.AddrPortFrom(addrA, uint16(40000+i)), srvB, &syn), tun.GSO{}, now, &b)
	}
	s.finishBatch(nil, &b, now)
	st := s.Stats()
	// The writer's flush of the first 16 ends the batch either way: wait
	// until the link saw them all or a second passed, then count.
	deadline := time.Now().Add(time.Second)
	for nl.written.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.Equal(t, uint64(n), nl.written.Load(), "SYN-ACKs written")
	require.Zero(t, st.TCPOutputNoBuffer.Load(), "tcp_output_no_buffer")
	require.Equal(t, map[tcp.State]int{tcp.StateSynReceived: n}, s.ConnStates())
}

// TestEndingCounters: how connections end is counted as Linux's MIB does.
// A handshake reset by the peer in SYN-RECEIVED is an attempt failure and a
// peer reset; an established connection reset by the peer is an
// established reset and a peer reset; one the application closes is
// neither.
func TestEndingCounters(t *testing.T) {
	r := newRawPeer(t, nil)
	ln, err := r.s.Listen("tcp", ":80")
	require.NoError(t, err)
	defer ln.Close()
	st := r.s.Stats()

	// SYN-RECEIVED, reset by the peer.
	c1 := netip.AddrPortFrom(addrA, 40001)
	syn := synSeg(1000)
	r.send(tcpPacket(c1, srvB, &syn))
	sa := r.expectTCP(srvB, c1, tcp.FlagSYN|tcp.FlagACK)
	rst := tcp.Segment{Seq: 1001, Flags: tcp.FlagRST}
	r.send(tcpPacket(c1, srvB, &rst))
	waitStat(t, &st.TCPAttemptFails, 1, "tcp_attempt_fails")
	require.Equal(t, uint64(1), st.TCPPeerResets.Load())
	require.Zero(t, st.TCPEstabResets.Load())

	// ESTABLISHED, reset by the peer.
	c2 := netip.AddrPortFrom(addrA, 40002)
	sa = r.handshake(c2, srvB, 2000)
	a2, err := ln.Accept()
	require.NoError(t, err)
	defer a2.Close()
	rst = tcp.Segment{Seq: 2001, Ack: sa.Seq + 1, Flags: tcp.FlagRST | tcp.FlagACK}
	r.send(tcpPacket(c2, srvB, &rst))
	waitStat(t, &st.TCPEstabResets, 1, "tcp_estab_resets")
	require.Equal(t, uint64(2), st.TCPPeerResets.Load())
	require.Equal(t, uint64(1), st.TCPAttemptFails.Load())

	// Closed by the application with a FIN: neither.
	c3 := netip.AddrPortFrom(addrA, 40003)
	sa = r.handshake(c3, srvB, 3000)
	c, err := ln.Accept()
	require.NoError(t, err)
	require.NoError(t, c.Close())
	fin := r.expectTCP(srvB, c3, tcp.FlagFIN|tcp.FlagACK)
	ack := tcp.Segment{Seq: 3001, Ack: fin.Seq + 1, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 1000}
	r.send(tcpPacket(c3, srvB, &ack))
	r.expectTCP(srvB, c3, tcp.FlagACK)
	require.Equal(t, uint64(1), st.TCPEstabResets.Load())
	require.Equal(t, uint64(1), st.TCPAttemptFails.Load())
	require.Equal(t, uint64(2), st.TCPPeerResets.Load())
}
