package stack

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
)

// TestUndoCounted: a fast recovery whose only retransmission comes back
// D-SACKed is undone by the connection, and the stack counts it in
// tcp_undo_recovery and tcp_undo_dsack (virtual time stands still, so no
// timer interferes).
func TestUndoCounted(t *testing.T) {
	clk := NewManualClock(0)
	r := newRawPeer(t, func(o *Options) { o.Clock = clk })
	ln, err := r.s.Listen("tcp", ":80")
	require.NoError(t, err)
	defer ln.Close()
	cli := netip.AddrPortFrom(addrA, 40000)
	syn := tcp.Segment{Seq: 100, Flags: tcp.FlagSYN, Window: 65535}
	syn.Options.HasMSS, syn.Options.MSS, syn.Options.SACKPermitted = true, 1000, true
	r.send(tcpPacket(cli, srvB, &syn))
	sa := r.expectTCP(srvB, cli, tcp.FlagSYN|tcp.FlagACK)
	ack := tcp.Segment{Seq: 101, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 65535}
	r.send(tcpPacket(cli, srvB, &ack))
	c, err := ln.Accept()
	require.NoError(t, err)
	defer c.Close()
	// One segment per write: RACK judges each segment on its own (the
	// pipe's offloads would make one record of a single write).
	una := sa.Seq + 1
	for i := 0; i < 10; i++ {
		_, err = c.Write(make([]byte, 1000))
		require.NoError(t, err)
		s := r.expectTCPAny(srvB, cli)
		require.Equal(t, una+tcp.Seq(i*1000), s.Seq)
		require.Len(t, s.Payload, 1000)
	}
	ackOf := func(a tcp.Seq, blocks ...tcp.SACKBlock) {
		s := tcp.Segment{Seq: 101, Ack: a, Flags: tcp.FlagACK, Window: 65535}
		s.Options.NumSACK = uint8(copy(s.Options.SACKBlocks[:], blocks))
		r.send(tcpPacket(cli, srvB, &s))
	}
	// The first segment is late: SACKs of the next three start recovery.
	for i := tcp.Seq(1); i <= 3; i++ {
		ackOf(una, tcp.SACKBlock{Start: una + 1000, End: una + 1000 + i*1000})
	}
	rtx := r.expectTCPAny(srvB, cli)
	require.Equal(t, una, rtx.Seq)
	st := r.s.Stats()
	ackOf(una + 10000)                                           // the original arrives: recovery ends
	ackOf(una+10000, tcp.SACKBlock{Start: una, End: una + 1000}) // the retransmission: D-SACK
	waitStat(t, &st.TCPUndoRecovery, 1, "tcp_undo_recovery")
	require.Equal(t, uint64(1), st.TCPUndoDSACK.Load())
	require.Zero(t, st.TCPUndoRTO.Load())
	require.Zero(t, st.TCPUndoTS.Load())
	in := c.(*Conn).Info()
	require.Equal(t, uint64(1), in.UndoRecovery)
	require.Equal(t, tcp.CAOpen, in.CAState)
}
