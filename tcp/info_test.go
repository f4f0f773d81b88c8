package tcp

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// lossCounts is Info's Linux loss counters, for comparing in one line.
type lossCounts struct{ Lost, SACKed, Retrans, TotalRetrans, Reordering uint32 }

func lossCountsOf(c *Conn) lossCounts {
	in := c.Info()
	return lossCounts{in.Lost, in.SACKed, in.Retrans, in.TotalRetrans, in.Reordering}
}

func TestInfoLossCountersRACKLostRetransmission(t *testing.T) {
	h := rackWarm(t, plainConfig())
	require.Equal(t, lossCounts{Reordering: 3}, lossCountsOf(h.c))
	t0 := h.now
	sendSegs(t, h, 5) // [2001,7001); the first is lost
	h.now = t0 + 100*ms
	// Four SACKed above the hole: lost at once, retransmitted.
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 7001})), "[.] seq 2001 ack 5001 win 4096 len 1000")
	require.Equal(t, lossCounts{Lost: 1, SACKed: 4, Retrans: 1, TotalRetrans: 1, Reordering: 3}, lossCountsOf(h.c))
	// New data leaves after the retransmission and is SACKed a round
	// trip later, the retransmission is not: lost again (Retrans drops
	// with the mark) and resent at once (Retrans is back to 1).
	h.c.Write(data(1000, 0))
	h.expect(h.output(), "[P.] seq 7001 ack 5001 win 4096 len 1000")
	h.now = t0 + 200*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 8001})), "[.] seq 2001 ack 5001 win 4096 len 1000")
	require.Equal(t, lossCounts{Lost: 1, SACKed: 5, Retrans: 1, TotalRetrans: 2, Reordering: 3}, lossCountsOf(h.c))
	// The cumulative ACK clears all but the total.
	h.now = t0 + 300*ms
	h.in(sackSeg(8001))
	require.Equal(t, lossCounts{TotalRetrans: 2, Reordering: 3}, lossCountsOf(h.c))
}

func TestInfoLossCountersRTOMarksAllLost(t *testing.T) {
	cfg := plainConfig()
	cfg.Recovery = RecoverySACK // no tail-loss probe before the RTO
	h := sackEstablished(t, cfg)
	sendSegs(t, h, 4) // [1001,5001), all lost
	at := h.now
	// The RTO (300 ms) marks the four lost and resends the first.
	h.expect(h.advance(at+300*ms), "[.] seq 1001 ack 5001 win 4096 len 1000")
	require.Equal(t, lossCounts{Lost: 4, Retrans: 1, TotalRetrans: 1, Reordering: 3}, lossCountsOf(h.c))
	// The second RTO marks the retransmission lost too before resending
	// it: still one in flight, two in all.
	h.expect(h.advance(at+900*ms), "[.] seq 1001 ack 5001 win 4096 len 1000")
	require.Equal(t, lossCounts{Lost: 4, Retrans: 1, TotalRetrans: 2, Reordering: 3}, lossCountsOf(h.c))
	// Its ACK opens cwnd to two: two more retransmissions.
	h.now = at + 1000*ms
	h.expect(h.in(sackSeg(2001)), "[.] seq 2001 ack 5001 win 4096 len 1000", "[.] seq 3001 ack 5001 win 4096 len 1000")
	require.Equal(t, lossCounts{Lost: 3, Retrans: 2, TotalRetrans: 4, Reordering: 3}, lossCountsOf(h.c))
}

func TestInfoLossCountersSACKAndNewReno(t *testing.T) {
	cfg := plainConfig()
	cfg.Recovery = RecoverySACK
	h := rackWarm(t, cfg)
	sendSegs(t, h, 4) // [2001,6001); the first is lost
	h.now += 100 * ms
	// RFC 6675: DupThresh segments SACKed above make the hole lost.
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 6001})), "[.] seq 2001 ack 5001 win 4096 len 1000")
	require.Equal(t, lossCounts{Lost: 1, SACKed: 3, Retrans: 1, TotalRetrans: 1, Reordering: 3}, lossCountsOf(h.c))

	h = establishRTT(t, plainConfig(), 100*ms, Segment{}) // no SACK
	sendSegs(t, h, 5)                                     // [1001,6001); the first is lost
	h.in(seg(FlagACK, tPeer+1, tISS+1, 65535))
	h.in(seg(FlagACK, tPeer+1, tISS+1, 65535))
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 65535)), "[.] seq 1001 ack 5001 win 4096 len 1000")
	require.Equal(t, lossCounts{Lost: 1, Retrans: 1, TotalRetrans: 1, Reordering: 3}, lossCountsOf(h.c))
}

func TestInfoReorderingDegree(t *testing.T) {
	h := rackWarm(t, plainConfig())
	t0 := h.now
	sendSegs(t, h, 6) // [2001,8001)
	h.now = t0 + 100*ms
	// One SACKed segment, five below it: none lost yet (reo_wnd 25 ms).
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 6001, End: 7001})))
	require.Equal(t, lossCounts{SACKed: 1, Reordering: 3}, lossCountsOf(h.c))
	// The four arrive 10 ms late: delivered 5 segments below the highest
	// SACKed byte (7001 - 2001), Linux's metric.
	h.now = t0 + 110*ms
	h.expect(h.in(sackSeg(7001)))
	require.Equal(t, lossCounts{Reordering: 5}, lossCountsOf(h.c))
	require.Zero(t, h.c.Info().Retransmits)
}
