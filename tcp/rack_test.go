package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sackEstablished is an established SACK connection (MSS 1000, no
// timestamps) whose handshake took 100 ms: SRTT 100 ms, RTTVAR 50 ms,
// RTO 300 ms.
func sackEstablished(t *testing.T, cfg Config) *harness {
	cfg.DisableSACK = false
	synack := Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1000, SACKPermitted: true}}
	h := establishRTT(t, cfg, 100*ms, synack)
	require.True(t, h.c.Info().SACK)
	return h
}

func TestTLPProbesLostTailAt2SRTT(t *testing.T) {
	h := sackEstablished(t, plainConfig())
	require.Equal(t, "rack", h.c.Info().Recovery)
	sendSegs(t, h, 4) // [1001,5001); the last two segments are lost
	h.now += 100 * ms
	h.expect(h.in(sackSeg(3001)))
	in := h.c.Info()
	require.Equal(t, 100*time.Millisecond, in.RTT)
	require.Equal(t, 250*time.Millisecond, in.RTO) // 100 + 4*37.5
	// The PTO (2·SRTT = 200 ms) comes before the RTO (250 ms); the probe
	// is the highest-sequence segment, there being no new data.
	at := h.now
	d, ok := h.c.NextDeadline()
	require.True(t, ok)
	require.Equal(t, at+200*ms, d)
	h.expect(h.advance(at + 199*ms))
	h.expect(h.advance(at+200*ms), "[P.] seq 4001 ack 5001 win 4096 len 1000")
	in = h.c.Info()
	require.Equal(t, uint64(1), in.TLPProbes)
	require.Zero(t, in.RTOExpirations)
	require.Equal(t, 250*time.Millisecond, in.Retransmit.Left) // the RTO restarts at the probe
}

func TestTLPOneSegmentWaitsForDelayedACKCappedByRTO(t *testing.T) {
	h := sackEstablished(t, plainConfig())
	sendSegs(t, h, 1)
	// PTO = 2·SRTT + WCDelAckT = 400 ms, capped by the RTO (300 ms): the
	// probe takes the RTO's place.
	at := h.now
	d, _ := h.c.NextDeadline()
	require.Equal(t, at+300*ms, d)
	h.expect(h.advance(at+300*ms), "[P.] seq 1001 ack 5001 win 4096 len 1000")
	in := h.c.Info()
	require.Equal(t, uint64(1), in.TLPProbes)
	require.Zero(t, in.RTOExpirations)
	require.Equal(t, 300*time.Millisecond, in.Retransmit.Left)
	require.Zero(t, in.CurrentRetransmits) // no backoff: it was a probe
	cwnd := in.CWnd
	// The probe's ACK reaches TLP.end_seq: whether the original was lost
	// is not known yet (a D-SACK may follow).
	h.now += 100 * ms
	h.expect(h.in(sackSeg(2001)))
	require.Zero(t, h.c.Info().TLPRecoveries)
	// An ACK beyond TLP.end_seq with no D-SACK: the probe repaired a loss,
	// and the window is reduced once (NewReno: ssthresh = cwnd/2).
	h.c.Write(data(1000, 0))
	h.expect(h.output(), "[P.] seq 2001 ack 5001 win 4096 len 1000")
	h.now += 100 * ms
	h.expect(h.in(sackSeg(3001)))
	in = h.c.Info()
	require.Equal(t, uint64(1), in.TLPRecoveries)
	require.False(t, in.InRecovery)
	require.Equal(t, cwnd/2, in.SSThresh)
	require.Equal(t, cwnd/2, in.CWnd)
	require.Zero(t, in.RTOExpirations)
}

func TestTLPSpuriousProbeDSACKed(t *testing.T) {
	h := sackEstablished(t, plainConfig())
	sendSegs(t, h, 1)
	h.expect(h.advance(h.now+300*ms), "[P.] seq 1001 ack 5001 win 4096 len 1000")
	cwnd := h.c.Info().CWnd
	// The original was only late: the receiver reports the probe as a
	// duplicate (D-SACK, RFC 2883). No loss, no reduction.
	h.now += 50 * ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 1001, End: 2001})))
	h.c.Write(data(1000, 0))
	h.output()
	h.now += 100 * ms
	h.in(sackSeg(3001))
	in := h.c.Info()
	require.Zero(t, in.TLPRecoveries)
	require.GreaterOrEqual(t, in.CWnd, cwnd)
}

func TestTLPSendsNewDataWhenCWndIsFull(t *testing.T) {
	h := sackEstablished(t, plainConfig())
	h.c.Write(data(12000, 0))
	require.Len(t, h.output(), 10) // IW = 10 segments; two wait for cwnd
	// The whole flight is lost. 2·SRTT after the last send the probe sends
	// the next new segment, past cwnd (RFC 8985 §7.3).
	at := h.now
	h.expect(h.advance(at+200*ms), "[.] seq 11001 ack 5001 win 4096 len 1000")
	require.Equal(t, uint64(1), h.c.Info().TLPProbes)
	// No second probe: the RTO (re-armed at the probe) fires next and
	// goes back to SND.UNA.
	h.expect(h.advance(at + 499*ms))
	h.expect(h.advance(at+500*ms), "[.] seq 1001 ack 5001 win 4096 len 1000")
	in := h.c.Info()
	require.Equal(t, uint64(1), in.RTOExpirations)
	require.Equal(t, uint64(1), in.TLPProbes)
}

func TestNoTLPWithOtherRecovery(t *testing.T) {
	for _, rec := range []Recovery{RecoverySACK, RecoveryNewReno} {
		cfg := plainConfig()
		cfg.Recovery = rec
		h := sackEstablished(t, cfg)
		require.Equal(t, rec.String(), h.c.Info().Recovery)
		sendSegs(t, h, 4)
		h.now += 100 * ms
		h.in(sackSeg(4001))
		// Nothing until the RTO, which retransmits the tail.
		at := h.now
		h.expect(h.advance(at + 249*ms))
		h.expect(h.advance(at+250*ms), "[P.] seq 4001 ack 5001 win 4096 len 1000")
		in := h.c.Info()
		require.Zero(t, in.TLPProbes)
		require.Equal(t, uint64(1), in.RTOExpirations)
	}
	// Without SACK, RACK-TLP is not available.
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	require.Equal(t, "newreno", h.c.Info().Recovery)
}

func TestParseRecovery(t *testing.T) {
	for _, n := range RecoveryNames() {
		r, err := ParseRecovery(n)
		require.NoError(t, err)
		require.Equal(t, n, r.String())
	}
	_, err := ParseRecovery("fack")
	require.Error(t, err)
	require.Error(t, Config{Recovery: 7}.Validate())
}

// rackWarm is sackEstablished after one segment was acknowledged 100 ms
// after it left: SRTT and RACK.min_RTT 100 ms, RTO 250 ms, SND.NXT 2001.
func rackWarm(t *testing.T, cfg Config) *harness {
	h := sackEstablished(t, cfg)
	sendSegs(t, h, 1)
	h.now += 100 * ms
	h.expect(h.in(sackSeg(2001)))
	require.Equal(t, 100*time.Millisecond, h.c.Info().MinRTT)
	return h
}

func TestRACKMarksLostAfterRTTPlusReoWnd(t *testing.T) {
	h := rackWarm(t, plainConfig())
	t0 := h.now
	sendSegs(t, h, 4) // [2001,6001); the first is lost
	h.now = t0 + 100*ms
	// One segment SACKed (fewer than DupThresh): the window is
	// min_RTT/4 = 25 ms, so [2001,3001), sent with the SACKed one, is
	// lost at its send time + RACK.rtt (100 ms) + 25 ms.
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 4001})))
	require.Equal(t, 25*time.Millisecond, h.c.rackReoWnd())
	d, _ := h.c.NextDeadline()
	require.Equal(t, t0+125*ms, d, "the reordering timer")
	h.expect(h.advance(t0 + 124*ms))
	require.False(t, h.c.Info().InRecovery)
	h.expect(h.advance(t0+125*ms), "[.] seq 2001 ack 5001 win 4096 len 1000")
	in := h.c.Info()
	require.True(t, in.InRecovery)
	require.Equal(t, uint64(1), in.FastRecoveries)
	// The segments sent after the SACKed one are not lost: nothing else.
	h.expect(h.advance(t0 + 200*ms))
	h.now = t0 + 230*ms
	h.expect(h.in(sackSeg(6001)))
	in = h.c.Info()
	require.False(t, in.InRecovery)
	require.Zero(t, in.RTOExpirations)
	require.Equal(t, uint32(1), in.Retransmits)
}

func TestRACKReorderedWithinWindowNotLost(t *testing.T) {
	h := rackWarm(t, plainConfig())
	t0 := h.now
	sendSegs(t, h, 4)
	h.now = t0 + 100*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 4001})))
	// [2001,3001) arrives 10 ms late, inside the 25 ms window.
	h.now = t0 + 110*ms
	h.expect(h.in(sackSeg(4001)))
	require.True(t, h.c.rate.rack.reordSeen, "delivered below RACK.fack: reordering")
	h.expect(h.advance(t0 + 150*ms))
	h.now = t0 + 160*ms
	h.expect(h.in(sackSeg(6001)))
	in := h.c.Info()
	require.Zero(t, in.FastRecoveries)
	require.Zero(t, in.Retransmits)
	// With reordering seen, DupThresh SACKed segments no longer close the
	// window (RFC 8985 §6.2): it stays min_RTT/4.
	require.Equal(t, 25*time.Millisecond, h.c.rackReoWnd())
}

func TestRACKDupThreshSACKedNoWindow(t *testing.T) {
	h := rackWarm(t, plainConfig())
	t0 := h.now
	sendSegs(t, h, 4)
	h.now = t0 + 100*ms
	// Three segments SACKed above the hole, no reordering seen yet: the
	// window is 0 and the hole is lost at once, as RFC 6675 would have it.
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 6001})), "[.] seq 2001 ack 5001 win 4096 len 1000")
	require.True(t, h.c.Info().InRecovery)
}

func TestRACKReoWndGrowsOnDSACK(t *testing.T) {
	h := rackWarm(t, plainConfig())
	t0 := h.now
	sendSegs(t, h, 4)
	h.now = t0 + 100*ms
	h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 4001}))
	h.expect(h.advance(t0+125*ms), "[.] seq 2001 ack 5001 win 4096 len 1000")
	// The original was only 30 ms late; the retransmission is then
	// reported as a duplicate (D-SACK): the window doubles for the next
	// 16 recoveries.
	h.now = t0 + 130*ms
	h.expect(h.in(sackSeg(6001)))
	h.now = t0 + 225*ms
	h.expect(h.in(sackSeg(6001, SACKBlock{Start: 2001, End: 3001})))
	k := &h.c.rate.rack
	require.Equal(t, uint32(2), k.reoWndMult)
	require.Equal(t, int32(rackReoWndPersist), k.reoWndPersist)
	// Next loss: marked after RACK.rtt + 50 ms.
	t1 := h.now
	sendSegs(t, h, 2) // [6001,8001)
	h.now = t1 + 100*ms
	h.expect(h.in(sackSeg(6001, SACKBlock{Start: 7001, End: 8001})))
	require.Equal(t, 50*time.Millisecond, h.c.rackReoWnd())
	h.expect(h.advance(t1 + 149*ms))
	h.expect(h.advance(t1+150*ms), "[.] seq 6001 ack 5001 win 4096 len 1000")
}

func TestRACKDetectsLostRetransmission(t *testing.T) {
	h := rackWarm(t, plainConfig())
	t0 := h.now
	sendSegs(t, h, 4)
	h.now = t0 + 100*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 6001})), "[.] seq 2001 ack 5001 win 4096 len 1000")
	// New data leaves after the retransmission (cwnd 2000 - pipe 1000).
	h.c.Write(data(2000, 0))
	h.expect(h.output(), "[.] seq 6001 ack 5001 win 4096 len 1000")
	// The new segment is SACKed a round trip later, the retransmission
	// sent before it is not: lost again, resent with no RTO; the SACKed
	// segment left room for the last new one.
	h.now = t0 + 200*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 7001})),
		"[.] seq 2001 ack 5001 win 4096 len 1000",
		"[P.] seq 7001 ack 5001 win 4096 len 1000")
	in := h.c.Info()
	require.Zero(t, in.RTOExpirations)
	require.Equal(t, uint32(2), in.Retransmits)
	h.now = t0 + 300*ms
	h.in(sackSeg(8001))
	require.Equal(t, uint64(1), h.c.Info().FastRecoveries)
}

// TestRACKLossInsideSuperSegment: with offloads the first flight leaves as
// one super-segment, one rate record until a SACK block cuts it (as a
// SACK cuts Linux's TSO skb): the unSACKed head is then a segment sent
// before the SACKed ones, lost at RACK.rtt + reo_wnd; the handshake's RTT
// is the first RACK.min_RTT, so the window is 25 ms from the start.
func TestRACKLossInsideSuperSegment(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.MinTSOSegs = 4 // one super-segment of 4 (Linux tcp_min_tso_segs=4)
	h := sackEstablished(t, cfg)
	t0 := h.now
	h.c.Write(data(4000, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 4000 gso 1000")
	h.now = t0 + 100*ms
	h.expect(h.in(sackSeg(1001, SACKBlock{Start: 2001, End: 3001})))
	require.Equal(t, 3, h.c.rate.n, "the record is cut at the SACK block's edges")
	require.Equal(t, 25*time.Millisecond, h.c.rackReoWnd())
	d, _ := h.c.NextDeadline()
	require.Equal(t, t0+125*ms, d, "the reordering timer")
	h.expect(h.advance(t0+125*ms), "[.] seq 1001 ack 5001 win 4096 len 1000")
}

// TestRACKDupThreshInsideSuperSegment: three segments of the super-segment
// SACKed, the head is lost at once (RFC 8985 §6.2: no window before
// reordering is seen), as Linux retransmits in fr-4pkt-sack.pkt.
func TestRACKDupThreshInsideSuperSegment(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.MinTSOSegs = 4 // one super-segment of 4 (Linux tcp_min_tso_segs=4)
	h := sackEstablished(t, cfg)
	h.c.Write(data(4000, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 4000 gso 1000")
	h.now += 100 * ms
	h.expect(h.in(sackSeg(1001, SACKBlock{Start: 2001, End: 3001})))
	h.expect(h.in(sackSeg(1001, SACKBlock{Start: 2001, End: 4001})))
	h.expect(h.in(sackSeg(1001, SACKBlock{Start: 2001, End: 5001})), "[.] seq 1001 ack 5001 win 4096 len 1000")
}

// TestTLPOffKeepsRACK: Config.DisableTLP (Linux tcp_early_retrans=0) sends
// no probe; the lost tail waits for the RTO, while RACK stays the
// recovery.
func TestTLPOffKeepsRACK(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableTLP = true
	h := sackEstablished(t, cfg)
	require.Equal(t, "rack", h.c.Info().Recovery)
	sendSegs(t, h, 4)
	h.now += 100 * ms
	h.expect(h.in(sackSeg(3001)))
	at := h.now
	h.expect(h.advance(at + 249*ms))
	h.expect(h.advance(at+250*ms), "[.] seq 3001 ack 5001 win 4096 len 1000")
	in := h.c.Info()
	require.Zero(t, in.TLPProbes)
	require.Equal(t, uint64(1), in.RTOExpirations)
}

// TestRetransmittedSuperSegmentNoPSH: a super-segment of new data carries
// PSH (as Linux's TSO packets do), one retransmitted after an RTO does not
// (Linux's tcp_fragment keeps PSH on the tail of the original skb only).
// The initial window goes as two super-segments, each half of cwnd
// (Linux's tcp_cwnd_test).
func TestRetransmittedSuperSegmentNoPSH(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.MinTSOSegs = 10
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.c.Write(data(10000, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 5000 gso 1000", "[P.] seq 6001 ack 5001 win 4096 len 5000 gso 1000")
	at := h.now
	h.expect(h.advance(at+300*ms), "[.] seq 1001 ack 5001 win 4096 len 1000")
	h.now = at + 400*ms
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 65535)), "[.] seq 2001 ack 5001 win 4096 len 2000 gso 1000")
}

// A retransmission of part of a super-segment re-stamps only that part:
// the rest keeps its send time, so an ACK that repeats the SACK block of
// the rest a round trip later does not move RACK.xmit_ts to the
// retransmission and mark segments still in the path lost.
func TestRACKPartRetransmissionOfSuperSegmentKeepsSendTimes(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65000
	cfg.MinTSOSegs = 4 // one super-segment of 4 (Linux tcp_min_tso_segs=4)
	h := rackWarm(t, cfg)
	t0 := h.now
	h.c.Write(data(4000, 0))
	h.expect(h.output(), "[P.] seq 2001 ack 5001 win 4096 len 4000 gso 1000")
	h.now = t0 + 10*ms
	h.c.Write(data(1000, 0))
	h.expect(h.output(), "[P.] seq 6001 ack 5001 win 4096 len 1000")
	h.now = t0 + 50*ms
	h.c.Write(data(1000, 0))
	h.expect(h.output(), "[P.] seq 7001 ack 5001 win 4096 len 1000")
	// [2001,3001) is lost; the rest of the super-segment arrives. The SACK
	// block cuts the record, three segments above the hole are SACKed, and
	// with no reordering seen RACK deems [2001,3001) lost at once (RFC 8985
	// §6.2, as Linux does in fr-4pkt-sack.pkt).
	h.now = t0 + 100*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 6001})), "[.] seq 2001 ack 5001 win 4096 len 1000")
	// [6001,7001), sent after it, is SACKed: nothing more is lost.
	h.now = t0 + 110*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 7001})))
	// A round trip after the retransmission the same ACK comes again (the
	// ACK of [7001,8001) is still queued in the path): nothing is lost.
	h.now = t0 + 210*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 7001})))
	in := h.c.Info()
	require.Equal(t, uint32(1), in.Retransmits)
	h.now = t0 + 220*ms
	h.expect(h.in(sackSeg(8001)))
	require.Equal(t, uint32(1), h.c.Info().Retransmits)
}

// A segment above the recovery point, lost and retransmitted during one
// recovery, is not sent a third time when the next recovery begins while
// its retransmission is still in flight: HighRxt carries over.
func TestRACKNewRecoveryKeepsRetransmissionsInFlight(t *testing.T) {
	h := rackWarm(t, plainConfig())
	t0 := h.now
	sendSegs(t, h, 10) // [2001,12001); [2001,3001) is lost
	h.now = t0 + 100*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 12001})), "[.] seq 2001 ack 5001 win 4096 len 1000")
	h.now = t0 + 105*ms
	h.c.Write(data(4000, 0))
	h.expect(h.output(), // above the recovery point; [12001,13001) is lost
		"[.] seq 12001 ack 5001 win 4096 len 1000",
		"[.] seq 13001 ack 5001 win 4096 len 1000",
		"[.] seq 14001 ack 5001 win 4096 len 1000",
		"[P.] seq 15001 ack 5001 win 4096 len 1000")
	// The segments after [12001,13001) are SACKed, the retransmission of
	// [2001,3001) is not yet: both are resent.
	h.now = t0 + 205*ms
	h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 12001}, SACKBlock{Start: 13001, End: 16001})),
		"[.] seq 2001 ack 5001 win 4096 len 1000",
		"[.] seq 12001 ack 5001 win 4096 len 1000")
	// The first recovery ends; [12001,13001) is still deemed lost, so a
	// second one begins, but its retransmission left only 95 ms ago.
	h.now = t0 + 300*ms
	h.expect(h.in(sackSeg(12001, SACKBlock{Start: 13001, End: 16001})))
	in := h.c.Info()
	require.Equal(t, uint64(2), in.FastRecoveries)
	require.Equal(t, uint32(3), in.Retransmits)
	h.now = t0 + 310*ms
	h.expect(h.in(sackSeg(16001)))
	require.False(t, h.c.Info().InRecovery)
}

// An ACK that repeats the SACK block of a partly SACKed super-segment is
// no news for RACK: it neither takes that super-segment's old send time
// as RACK.rtt nor sees it as delivered below RACK.fack (reordering).
func TestRACKPartlySACKedSuperSegmentAdvancesOnce(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableSACK = false
	cfg.GSOMaxSize = 8000
	synack := Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1000, SACKPermitted: true}}
	h, _ := fixedHarness(t, cfg, synack, 10000)
	t0 := h.now
	h.c.Write(data(5000, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 5000 gso 1000")
	h.now = t0 + 50*ms
	h.c.Write(data(1000, 0))
	h.expect(h.output(), "[P.] seq 6001 ack 5001 win 4096 len 1000")
	h.now = t0 + 100*ms
	h.in(sackSeg(1001, SACKBlock{Start: 3001, End: 4001}))
	k := &h.c.rate.rack
	require.Equal(t, 100*time.Millisecond, k.rtt)
	require.Equal(t, Seq(4001), k.fack)
	// The later segment is SACKed; the first block repeats.
	h.now = t0 + 150*ms
	h.in(sackSeg(1001, SACKBlock{Start: 6001, End: 7001}, SACKBlock{Start: 3001, End: 4001}))
	require.Equal(t, 100*time.Millisecond, k.rtt, "RACK.rtt of the segment just delivered")
	require.False(t, k.reordSeen)
	require.Equal(t, uint32(3), h.c.Info().Reordering)
}

// A loss probe with no new data to send (a sub-MSS tail held by cork)
// retransmits the last segment sent, [SND.MAX-MSS, SND.MAX), not the last
// MSS of the buffer: that would carry bytes never sent past SND.MAX, and
// the peer's ACK of them would be refused as an ACK of unsent data, for
// ever (the connection stalled so in TestBlindInjection).
func TestTLPProbeStopsAtSndMax(t *testing.T) {
	h := sackEstablished(t, plainConfig())
	h.c.SetCork(true)
	h.c.Write(data(3500, 0))
	require.Len(t, h.output(), 3) // [1001,4001); the last 500 bytes wait for the uncork
	in := h.c.Info()
	require.Equal(t, uint32(500), in.NotSent)
	at := h.now
	h.expect(h.advance(at+200*ms), "[.] seq 3001 ack 5001 win 4096 len 1000")
	require.Equal(t, uint64(1), h.c.Info().TLPProbes)
	// The peer got everything sent: its ACK is acceptable and the held
	// tail is still unsent.
	h.now += 100 * ms
	h.expect(h.in(sackSeg(4001)))
	in = h.c.Info()
	require.Equal(t, uint64(3000), in.BytesAcked)
	require.Zero(t, in.ChallengeACKs)
	require.Equal(t, uint32(500), in.NotSent)
	h.c.SetCork(false)
	h.expect(h.output(), "[P.] seq 4001 ack 5001 win 4096 len 500")
}

// After an RTO the go-back-N resend may carry a tail that Nagle held (the
// small segment it waited behind is being resent anyway): it goes as new
// data, SND.MAX moves with it, and the peer's ACK of it is accepted.
func TestRTOResendCarriesHeldTailAsSent(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	h.c.Write(data(500, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 500")
	h.c.Write(data(300, 1))
	h.expect(h.output()) // Nagle: a small segment is unacknowledged
	d, ok := h.c.NextDeadline()
	require.True(t, ok)
	h.expect(h.advance(d), "[P.] seq 1001 ack 5001 win 4096 len 800")
	in := h.c.Info()
	require.Equal(t, uint64(1), in.RTOExpirations)
	require.Equal(t, uint64(800), in.BytesSent)
	h.now += 100 * ms
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+801, 65535)))
	in = h.c.Info()
	require.Equal(t, uint64(800), in.BytesAcked)
	require.Zero(t, in.ChallengeACKs)
	require.Zero(t, in.Unacked)
}
