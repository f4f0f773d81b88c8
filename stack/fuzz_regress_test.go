package stack

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
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
