package tcp

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUndoSpuriousFastRetransmitByDSACK: the first of ten segments is only
// delayed. Three SACKs start recovery and its fast retransmission (NewReno:
// ssthresh = cwnd = 5000); the original then fills the hole (the full ACK
// ends recovery) and the retransmission arrives as a duplicate, which the
// receiver reports by D-SACK (RFC 2883). Every retransmission of the
// recovery was D-SACKed, so it was spurious (RFC 3708): cwnd and ssthresh
// come back (cwnd 10000, ssthresh unset: slow start goes on), and the next
// flight is ten segments, not five.
func TestUndoSpuriousFastRetransmitByDSACK(t *testing.T) {
	h := undoFlight(t, plainConfig()) // [2001, 12001), cwnd 11000
	b := func(s, e Seq) SACKBlock { return SACKBlock{Start: s, End: e} }
	var got []string
	for i := Seq(1); i <= 3; i++ {
		h.now += ms
		got = append(got, segSeqs(h.in(sackSeg(2001, b(3001, 3001+i*1000)))))
	}
	require.Equal(t, []string{"-", "-", "2001"}, got)
	in := h.c.Info()
	require.Equal(t, CARecovery, in.CAState)
	require.Equal(t, uint32(5000), in.SSThresh)

	h.now += ms
	h.expect(h.in(sackSeg(12001))) // the original: recovery ends
	in = h.c.Info()
	require.Equal(t, CAOpen, in.CAState)
	require.Equal(t, uint32(5000), in.CWnd)
	require.Zero(t, in.UndoRecovery)

	h.now += ms
	h.expect(h.in(sackSeg(12001, b(2001, 3001)))) // the retransmission: D-SACK
	in = h.c.Info()
	require.Equal(t, uint32(11000), in.CWnd)
	require.Equal(t, uint32(math.MaxUint32), in.SSThresh)
	require.Equal(t, uint64(1), in.UndoRecovery)
	require.Equal(t, uint64(1), in.UndoDSACK)
	require.Zero(t, in.UndoRTO)
	require.Zero(t, in.UndoTS)
	require.Equal(t, uint64(1), in.DSACKDups)
	require.Equal(t, uint64(1), in.FastRecoveries)
	require.True(t, h.c.TakeEvents().Has(EventUndo)) // the stack counts it (tcp_undo_*)
	rto, byTS := h.c.LastUndo()
	require.False(t, rto)
	require.False(t, byTS)

	h.c.Write(data(12000, 0))
	require.Equal(t, "12001 13001 14001 15001 16001 17001 18001 19001 20001 21001 22001", segSeqs(h.output()))
}

// undoFlight is sackEstablished after one round trip of one segment (so
// that RACK has its minimum RTT), with ten segments in flight,
// [2001, 12001), sent at once; cwnd is 11000.
func undoFlight(t *testing.T, cfg Config) *harness {
	h := sackEstablished(t, cfg)
	sendSegs(t, h, 1)
	h.now += 100 * ms
	h.expect(h.in(sackSeg(2001)))
	sendSegs(t, h, 10)
	require.Equal(t, uint32(11000), h.c.Info().CWnd)
	h.now += 100 * ms
	return h
}

// TestUndoDSACKOfSomeRetransmissionsOnly: with two segments retransmitted
// and one of them D-SACKed, the recovery was (at least partly) needed:
// nothing is undone.
func TestUndoDSACKOfSomeRetransmissionsOnly(t *testing.T) {
	h := undoFlight(t, plainConfig())
	b := func(s, e Seq) SACKBlock { return SACKBlock{Start: s, End: e} }
	var got []string
	for i := Seq(1); i <= 5; i++ {
		h.now += ms
		got = append(got, segSeqs(h.in(sackSeg(2001, b(4001, 4001+i*1000)))))
	}
	require.Equal(t, []string{"-", "-", "2001", "-", "3001"}, got) // PRR: the pipe is at ssthresh
	h.now += 100 * ms
	h.in(sackSeg(12001))
	h.now += ms
	h.in(sackSeg(12001, b(2001, 3001)))
	in := h.c.Info()
	require.Zero(t, in.UndoRecovery)
	require.Equal(t, uint32(5000), in.CWnd)
	require.Equal(t, uint64(1), in.DSACKDups)
}

// tsEstablished is sackEstablished with timestamps: the peer's TSval
// starts at 1000.
func tsEstablished(t *testing.T, cfg Config) *harness {
	cfg.DisableSACK, cfg.DisableTimestamps = false, false
	h := newDialed(t, cfg)
	h.now += 100 * ms
	h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1012, SACKPermitted: true, HasTimestamp: true, TSVal: 1000, TSEcr: h.c.tsNow(h.now - 100*ms)}})
	require.Equal(t, StateEstablished, h.c.State())
	in := h.c.Info()
	require.True(t, in.Timestamps)
	require.Equal(t, uint16(1000), in.MSS) // 1012 less the timestamps option
	h.c.TakeEvents()
	return h
}

// tsAck is the peer's ACK of ack echoing tsecr.
func tsAck(tsval, tsecr uint32, ack Seq) Segment {
	s := seg(FlagACK, tPeer+1, ack, 65535)
	s.Options.HasTimestamp, s.Options.TSVal, s.Options.TSEcr = true, tsval, tsecr
	return s
}

// TestUndoSpuriousRTOByEifel: four segments wait in a delay spike longer
// than the RTO. The RTO retransmits the first and collapses cwnd to one
// segment; then the ACK of the first two arrives, echoing the TSval of the
// original transmissions, older than the retransmission's: it acknowledges
// the originals (RFC 3522 Eifel detection). The RTO was spurious: cwnd and
// ssthresh come back, and the other two segments, still in flight, are not
// sent again (no go-back-N). Without timestamps the same ACK leaves the
// collapsed window and the go-back-N resend of the next segments.
func TestUndoSpuriousRTOByEifel(t *testing.T) {
	cfg := plainConfig()
	cfg.Recovery = RecoverySACK // no loss probe before the RTO
	h := tsEstablished(t, cfg)
	h.c.Write(data(4000, 0))
	sent := h.output()
	require.Equal(t, "1001 2001 3001 4001", segSeqs(sent))
	tsOrig := sent[0].Options.TSVal
	rto := h.c.Info().RTO
	at := h.now
	got := h.advance(at + Time(rto))
	require.Equal(t, "1001", segSeqs(got))
	require.Greater(t, got[0].Options.TSVal, tsOrig)
	in := h.c.Info()
	require.Equal(t, CALoss, in.CAState)
	require.Equal(t, uint32(1000), in.CWnd)

	h.now += 10 * ms
	h.expect(h.in(tsAck(1100, tsOrig, 3001)))
	in = h.c.Info()
	require.Equal(t, CAOpen, in.CAState)
	require.Equal(t, uint64(1), in.UndoRTO)
	require.Equal(t, uint64(1), in.UndoTS)
	require.Zero(t, in.UndoRecovery)
	require.Equal(t, uint32(math.MaxUint32), in.SSThresh)
	require.Equal(t, uint32(12000), in.CWnd) // 10000 restored, +2000 of slow start
	require.Equal(t, uint32(2000), in.Unacked)
	require.True(t, h.c.TakeEvents().Has(EventUndo))
	wasRTO, byTS := h.c.LastUndo()
	require.True(t, wasRTO)
	require.True(t, byTS)
	h.now += ms
	h.expect(h.in(tsAck(1101, tsOrig, 5001)))
	require.Zero(t, h.c.Info().Retransmit.Left)

	// Without timestamps: go-back-N, from a window of one segment.
	h = sackEstablished(t, cfg)
	sendSegs(t, h, 4)
	rto = h.c.Info().RTO
	require.Equal(t, "1001", segSeqs(h.advance(h.now+Time(rto))))
	h.now += 10 * ms
	require.Equal(t, "3001 4001", segSeqs(h.in(sackSeg(3001))))
	in = h.c.Info()
	require.Zero(t, in.UndoRTO)
	require.Equal(t, CALoss, in.CAState)
	require.Equal(t, uint32(2000), in.CWnd)
}

// TestUndoOnReorderingPath: on a path that reorders but never loses, the
// recoveries that reordering starts are found spurious and undone, and
// every byte arrives.
func TestUndoOnReorderingPath(t *testing.T) {
	for _, ts := range []bool{true, false} {
		t.Run(fmt.Sprintf("timestamps_%v", ts), func(t *testing.T) {
			la := &simLink{delay: 10 * time.Millisecond, perByte: 80 * time.Nanosecond, maxQueue: 200 * time.Millisecond, reorder: 0.01}
			lb := &simLink{delay: 10 * time.Millisecond}
			n := bulk(t, "cubic", 4<<20, 7, la, lb, func(c *Config) {
				c.DisableTimestamps = !ts
				c.RecvBufferMax = -1
			})
			in := n.conns[0].Info()
			t.Logf("reordered %d, fast recoveries %d, rto %d, undo %d/%d (dsack %d, ts %d), dsack_dups %d, reord_seen %d",
				la.stats.reordered, in.FastRecoveries, in.RTOExpirations, in.UndoRecovery, in.UndoRTO, in.UndoDSACK, in.UndoTS, in.DSACKDups, in.ReordSeen)
			require.Positive(t, in.FastRecoveries+in.RTOExpirations+in.TLPProbes)
			require.Positive(t, in.UndoRecovery+in.UndoRTO)
			require.Positive(t, in.DSACKDups)
			if ts {
				require.Positive(t, in.UndoTS)
			}
		})
	}
}

// TestNoUndoOfRealLosses: on a path that loses but never reorders or
// duplicates, no recovery or RTO is undone (neither D-SACK nor Eifel may
// mistake a real loss for a spurious one).
func TestNoUndoOfRealLosses(t *testing.T) {
	for _, ts := range []bool{true, false} {
		t.Run(fmt.Sprintf("timestamps_%v", ts), func(t *testing.T) {
			la := &simLink{delay: 10 * time.Millisecond, perByte: 80 * time.Nanosecond, maxQueue: 50 * time.Millisecond, loss: 0.01}
			lb := &simLink{delay: 10 * time.Millisecond, loss: 0.01}
			n := bulk(t, "cubic", 4<<20, 3, la, lb, func(c *Config) { c.DisableTimestamps = !ts })
			in := n.conns[0].Info()
			t.Logf("lost %d, fast recoveries %d, rto %d, tlp %d, dsack_dups %d", la.stats.lost, in.FastRecoveries, in.RTOExpirations, in.TLPProbes, in.DSACKDups)
			require.Positive(t, in.FastRecoveries)
			require.Zero(t, in.UndoRecovery+in.UndoRTO)
		})
	}
}
