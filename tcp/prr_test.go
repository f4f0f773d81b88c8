package tcp

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// prrFlight is a SACK connection (NewReno, MSS 1000, RTT 100 ms) whose
// window slow start has grown to 20 segments, with those 20 in flight:
// [11001, 31001), sent at the same time, and 30 more segments queued.
func prrFlight(t *testing.T, cfg Config) *harness {
	cfg.SendBufferSize = 64 << 10
	h := sackEstablished(t, cfg)
	h.c.Write(data(60000, 0))
	require.Len(t, h.output(), 10)
	h.now += 100 * ms
	for a := Seq(3001); a <= 11001; a += 2000 {
		require.Len(t, h.in(sackSeg(a)), 4) // +2 MSS per ACK (RFC 3465 L=2)
	}
	in := h.c.Info()
	require.Equal(t, uint32(20000), in.CWnd)
	require.Equal(t, uint32(20000), in.Unacked)
	h.now += 100 * ms
	return h
}

// segSeqs lists the sequence numbers of segs ("11001 31001"), "-" for none.
func segSeqs(segs []Segment) string {
	if len(segs) == 0 {
		return "-"
	}
	var b []string
	for _, s := range segs {
		b = append(b, fmt.Sprint(uint32(s.Seq)))
	}
	return strings.Join(b, " ")
}

// TestPRRProportionalThenOneForOne: one segment, [11001, 12001), of a
// 20-segment flight is lost and the receiver SACKs the rest one by one, 1
// ms apart. The first two SACKs release one new segment each (limited
// transmit, RFC 3042); the third starts recovery with FlightSize =
// RecoverFS = 22000 and ssthresh = 10000 (half the 20-segment cwnd, as
// Linux's tcp_reno_ssthresh). While the pipe is above ssthresh PRR sends
// ceil(prr_delivered * ssthresh / RecoverFS) - prr_out: about one segment
// per 2.2 delivered (RFC 6937 §3). Once the pipe is at ssthresh it sends
// one segment per segment delivered.
func TestPRRProportionalThenOneForOne(t *testing.T) {
	h := prrFlight(t, plainConfig())
	b := func(s, e Seq) SACKBlock { return SACKBlock{Start: s, End: e} }
	want := []string{
		"31001", "32001", // limited transmit
		"11001", // recovery: the fast retransmission
		"-", "33001", "-", "34001", "-", "35001", "-", "36001", "-", "-", "37001", "-", "38001",
		"-", "-", // the pipe reaches ssthresh
		"39001", // one for one
	}
	for i := 1; i <= len(want); i++ {
		h.now += ms
		got := h.in(sackSeg(11001, b(12001, 12001+Seq(i)*1000)))
		require.Equal(t, want[i-1], segSeqs(got), "SACK of [12001, %d)", 12001+i*1000)
		in := h.c.Info()
		if i < 3 {
			require.Equal(t, CADisorder, in.CAState)
			continue
		}
		require.Equal(t, CARecovery, in.CAState)
		require.True(t, in.PRR)
		require.Equal(t, uint32(10000), in.SSThresh)
		p := h.c.rate.prr
		require.Equal(t, uint64(22000), p.recoverFS)
		require.Equal(t, uint64(i-2)*1000, p.delivered)
		pipe := uint64(h.c.pipe())
		if i <= 17 {
			// Above ssthresh (before the ACK's sends): prr_out
			// is exactly the proportional share, in segments.
			require.Equal(t, ceilDiv(ceilDiv(p.delivered*10000, 22000), 1000)*1000, p.out, "ACK %d", i)
			require.Greater(t, pipe, uint64(10000))
		} else {
			require.Equal(t, uint64(10000), pipe, "ACK %d", i)
		}
	}
}

// TestPRRSlowStartReductionBound: twelve segments of the flight,
// [11001, 23001), are lost. When recovery starts the pipe (8 segments) is
// below ssthresh (10): PRR-SSRB sends one segment per segment delivered
// while SND.UNA stands still, and once the retransmissions are
// acknowledged, at most delivered + 1 MSS per ACK (slow start) up to
// ssthresh, then one for one.
func TestPRRSlowStartReductionBound(t *testing.T) {
	h := prrFlight(t, plainConfig())
	b := func(s, e Seq) SACKBlock { return SACKBlock{Start: s, End: e} }
	var got []string
	for i := 1; i <= 8; i++ {
		h.now += ms
		got = append(got, segSeqs(h.in(sackSeg(11001, b(23001, 23001+Seq(i)*1000)))))
	}
	require.Equal(t, []string{"31001", "32001", // limited transmit
		"11001", "12001", "13001", "14001", "15001", "16001"}, got)
	p := h.c.rate.prr
	require.Equal(t, p.delivered, p.out) // one for one
	require.Equal(t, uint32(8000), h.c.pipe())

	// The retransmissions' ACKs (the new segments SACKed on the first).
	h.now += 100 * ms
	got = nil
	for i := 1; i <= 6; i++ {
		h.now += ms
		got = append(got, segSeqs(h.in(sackSeg(11001+Seq(i)*1000, b(23001, 31001), b(31001, 33001)))))
	}
	require.Equal(t, []string{
		"17001 18001 19001 20001", // 3 delivered: max(3, prr_delivered-prr_out) + 1
		"21001 22001",             // 1 delivered + 1
		"33001",                   // 1 + 1, cut to ssthresh - pipe: the pipe reaches ssthresh
		"34001", "35001", "36001", // one for one
	}, got)
	require.Equal(t, uint32(10000), h.c.pipe())
	require.Equal(t, uint32(10000), h.c.Info().SSThresh)
}

// TestPRROffOrWithoutSSThresh: --prr off lets the congestion control's
// window (cwnd = ssthresh) hold everything back until the pipe has
// drained below it; BBR, which has no ssthresh, gets no PRR.
func TestPRROffOrWithoutSSThresh(t *testing.T) {
	cfg := plainConfig()
	cfg.DisablePRR = true
	h := prrFlight(t, cfg)
	b := func(s, e Seq) SACKBlock { return SACKBlock{Start: s, End: e} }
	var got []string
	for i := 1; i <= 19; i++ {
		h.now += ms
		got = append(got, segSeqs(h.in(sackSeg(11001, b(12001, 12001+Seq(i)*1000)))))
	}
	// Silence for nine ACKs, then one per ACK (RFC 6675 alone).
	require.Equal(t, "31001 32001 11001 - - - - - - - - - 33001 34001 35001 36001 37001 38001 39001", strings.Join(got, " "))
	require.False(t, h.c.Info().PRR)

	cfg = plainConfig()
	cfg.CongestionControl = "bbr"
	h = sackEstablished(t, cfg)
	require.Equal(t, uint32(math.MaxUint32), h.c.cc.SSThresh())
	h.c.sackRecovery = true
	h.c.prrStart(20000)
	require.False(t, h.c.prrActive())
}
