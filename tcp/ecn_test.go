package tcp

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// ecnSYNACK is the peer's SYN-ACK to our SYN, with flags extra.
func ecnSYNACK(extra Flags) Segment {
	return Segment{Flags: FlagSYN | FlagACK | extra, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1460}}
}

// newECNEstablished returns an ESTABLISHED active open that negotiated ECN
// (peer window 65535, our window 4096, SND.NXT 1001, RCV.NXT 5001).
func newECNEstablished(t *testing.T, cfg Config) *harness {
	cfg.ECN = ECNOn
	h := newDialed(t, cfg)
	got := h.in(ecnSYNACK(FlagECE))
	require.Len(t, got, 1)
	require.Equal(t, FlagACK, got[0].Flags, "the handshake's ACK: %s", fmtSeg(&got[0]))
	require.Equal(t, ECNNotECT, got[0].ECN)
	require.True(t, h.c.ECNNegotiated())
	h.c.TakeEvents()
	return h
}

// TestECNActiveOpen: an ECNOn active open sends an ECN-setup SYN [SEW] and
// has ECN only if the SYN-ACK is an ECN-setup SYN-ACK (ECE without CWR,
// RFC 3168 §6.1.1); an ECNAccept (default) or ECNOff one never asks.
func TestECNActiveOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   ECNMode
		syn    string
		synack Flags
		ok     bool
	}{
		{"on/ece", ECNOn, "[SEW] seq 1000 win 4096 <mss 1460>", FlagECE, true},
		{"on/plain", ECNOn, "[SEW] seq 1000 win 4096 <mss 1460>", 0, false},
		{"on/ece+cwr", ECNOn, "[SEW] seq 1000 win 4096 <mss 1460>", FlagECE | FlagCWR, false},
		{"accept/ece", ECNAccept, "[S] seq 1000 win 4096 <mss 1460>", FlagECE, false},
		{"off/ece", ECNOff, "[S] seq 1000 win 4096 <mss 1460>", FlagECE, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plainConfig()
			cfg.ECN = tc.mode
			h := &harness{t: t, now: 10 * sec}
			h.c = Dial(h.now, cfg, tISS)
			h.expect(h.output(), tc.syn)
			h.expect(h.in(ecnSYNACK(tc.synack)), "[.] seq 1001 ack 5001 win 4096")
			require.Equal(t, tc.ok, h.c.ECNNegotiated())
			require.Equal(t, tc.ok, h.c.Info().ECN)
			// Data is ECT(0) only when ECN is on.
			h.c.Write(data(100, 0))
			want := "[P.] seq 1001 ack 5001 win 4096 len 100"
			if tc.ok {
				want += " ect0"
			}
			h.expect(h.output(), want)
		})
	}
}

// TestECNSYNRetransmitFallsBack: a retransmitted SYN is not an ECN-setup
// SYN (Linux tcp_ecn_clear_syn, RFC 3168 §6.1.1.1), and an ECN-setup
// SYN-ACK to the first SYN still turns ECN on, as on Linux.
func TestECNSYNRetransmitFallsBack(t *testing.T) {
	cfg := plainConfig()
	cfg.ECN = ECNOn
	h := &harness{t: t, now: 10 * sec}
	h.c = Dial(h.now, cfg, tISS)
	h.expect(h.output(), "[SEW] seq 1000 win 4096 <mss 1460>")
	h.expect(h.advance(h.now+sec), "[S] seq 1000 win 4096 <mss 1460>")
	h.in(ecnSYNACK(FlagECE))
	require.True(t, h.c.ECNNegotiated())
}

// TestECNPassiveOpen: a passive open answers an ECN-setup SYN (ECE and CWR,
// not itself ECT) with an ECN-setup SYN-ACK [S.E] unless ECNOff; every other
// SYN gets a plain SYN-ACK and no ECN (Linux tcp_ecn_create_request).
func TestECNPassiveOpen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  ECNMode
		flags Flags
		ip    ECN
		ok    bool
	}{
		{"accept/setup", ECNAccept, FlagECE | FlagCWR, ECNNotECT, true},
		{"on/setup", ECNOn, FlagECE | FlagCWR, ECNNotECT, true},
		{"off/setup", ECNOff, FlagECE | FlagCWR, ECNNotECT, false},
		{"accept/plain", ECNAccept, 0, ECNNotECT, false},
		{"accept/ece-only", ECNAccept, FlagECE, ECNNotECT, false},
		{"accept/cwr-only", ECNAccept, FlagCWR, ECNNotECT, false},
		{"accept/ect-syn", ECNAccept, FlagECE | FlagCWR, ECNECT0, false},
		{"accept/ce-syn", ECNAccept, FlagECE | FlagCWR, ECNCE, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plainConfig()
			cfg.ECN = tc.mode
			h := &harness{t: t, now: 10 * sec}
			syn := Segment{Flags: FlagSYN | tc.flags, Seq: tPeer, Window: 65535, ECN: tc.ip,
				Options: Options{HasMSS: true, MSS: 1460}}
			h.c = AcceptSYN(h.now, cfg, tISS, &syn)
			want := "[S.] seq 1000 ack 5001 win 4096 <mss 1460>"
			if tc.ok {
				want = "[S.E] seq 1000 ack 5001 win 4096 <mss 1460>"
			}
			h.expect(h.output(), want)
			// The retransmitted SYN-ACK says the same.
			h.expect(h.advance(h.now+sec), want)
			h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 65535)))
			require.Equal(t, StateEstablished, h.c.State())
			require.Equal(t, tc.ok, h.c.ECNNegotiated())
			h.c.Write(data(10, 0))
			want = "[P.] seq 1001 ack 5001 win 4096 len 10"
			if tc.ok {
				want += " ect0"
			}
			h.expect(h.output(), want)
		})
	}
}

// TestECNAcceptCookie: a connection rebuilt from a SYN cookie keeps the ECN
// its SYN-ACK agreed to.
func TestECNAcceptCookie(t *testing.T) {
	for _, on := range []bool{false, true} {
		n := Negotiated{ISS: tISS, IRS: tPeer, MSS: 1460, SndWScale: -1, RcvWScale: -1, ECN: on}
		ack := seg(FlagACK, tPeer+1, tISS+1, 65535)
		c := AcceptCookie(10*sec, plainConfig(), n, &ack)
		require.Equal(t, on, c.ECNNegotiated())
	}
}

// TestECNECTOnNewDataOnly: ECT(0) goes on new data segments only; pure
// ACKs, window probes without data, and retransmissions (after an RTO and
// fast ones) go Not-ECT (RFC 3168 §6.1.5, Linux tcp_ecn_send).
func TestECNECTOnNewDataOnly(t *testing.T) {
	h := newECNEstablished(t, plainConfig())
	h.c.Write(data(3000, 0))
	h.expect(h.output(),
		"[.] seq 1001 ack 5001 win 4096 len 1460 ect0",
		"[.] seq 2461 ack 5001 win 4096 len 1460 ect0",
		"[P.] seq 3921 ack 5001 win 4096 len 80 ect0")
	// The peer's data is acknowledged with a Not-ECT pure ACK.
	h.expect(h.in(seg(FlagACK|FlagPSH, tPeer+1, tISS+1, 65535, data(3000, 0)...)),
		"[.] seq 4001 ack 8001 win 1096")
	// The RTO retransmits Not-ECT.
	h.expect(h.advance(h.now+300*ms), "[.] seq 1001 ack 8001 win 1096 len 1460")
	require.Equal(t, uint64(0), h.c.Info().CWRSent, "no new data has gone since the RTO")
	// The go-back-N resend after the ACK is a retransmission too; new
	// data after it is ECT(0) and carries the CWR the RTO queued.
	h.expect(h.in(seg(FlagACK, tPeer+3001, tISS+1+1460, 65535)),
		"[.] seq 2461 ack 8001 win 1096 len 1460",
		"[P.] seq 3921 ack 8001 win 1096 len 80",
	)
	h.expect(h.in(seg(FlagACK, tPeer+3001, tISS+1+3000, 65535)))
	h.c.Write(data(100, 0))
	h.expect(h.output(), "[P.W] seq 4001 ack 8001 win 1096 len 100 ect0")
	h.expect(h.in(seg(FlagACK, tPeer+3001, tISS+1+3100, 65535)))
	h.c.Write(data(100, 0))
	h.expect(h.output(), "[P.] seq 4101 ack 8001 win 1096 len 100 ect0")
	require.Equal(t, uint64(1), h.c.Info().CWRSent)
}

// TestECNEchoUntilCWR: a CE-marked data segment is acknowledged at once
// with ECE, and every segment we send carries ECE until a segment with CWR
// arrives (RFC 3168 §6.1.3); a CE mark after the CWR starts the echo again.
func TestECNEchoUntilCWR(t *testing.T) {
	cfg := plainConfig()
	cfg.RecvBufferSize = 64 << 10
	h := newECNEstablished(t, cfg)
	p := data(1000, 0)
	in := func(seq Seq, flags Flags, ecn ECN) []Segment {
		s := seg(FlagACK|flags, seq, tISS+1, 65535, p...)
		s.ECN = ecn
		return h.in(s)
	}
	// ECT(0) without CE: delayed ACK as usual, ecnseen.
	h.expect(in(tPeer+1, 0, ECNECT0))
	require.True(t, h.c.Info().ECNSeen)
	// CE: the ACK goes at once, with ECE.
	h.expect(in(tPeer+1001, 0, ECNCE), "[.E] seq 1001 ack 7001 win 63535")
	// Unmarked segments keep being answered with ECE.
	h.expect(in(tPeer+2001, 0, ECNECT0))
	h.expect(in(tPeer+3001, 0, ECNECT0))
	h.expect(h.advance(h.now+50*ms), "[.E] seq 1001 ack 9001 win 61535")
	// Our data carries ECE too.
	h.c.Write(data(10, 0))
	h.expect(h.output(), "[P.E] seq 1001 ack 9001 win 61535 len 10 ect0")
	// The CWR ends it; a CWR with data is acknowledged at once.
	h.expect(in(tPeer+4001, FlagCWR, ECNECT0), "[.] seq 1011 ack 10001 win 60535")
	h.expect(in(tPeer+5001, 0, ECNECT0))
	h.expect(h.advance(h.now+50*ms), "[.] seq 1011 ack 11001 win 59535")
	// A CE after it: echo again.
	h.expect(in(tPeer+6001, 0, ECNCE), "[.E] seq 1011 ack 12001 win 58535")
	// CWR and CE on one segment: the CE wins (the CWR is taken first).
	h.expect(in(tPeer+7001, FlagCWR, ECNCE), "[.E] seq 1011 ack 13001 win 57535")
	require.Equal(t, uint64(3), h.c.Info().CERcvd)
	// A duplicate (old) CE segment is not counted.
	h.expect(h.in(func() Segment { s := seg(FlagACK, tPeer+1, tISS+1, 65535, p...); s.ECN = ECNCE; return s }()),
		"[.E] seq 1011 ack 13001 win 57535")
	require.Equal(t, uint64(3), h.c.Info().CERcvd)
}

// TestECNOneReductionPerWindow: the first ECN-Echo cuts the window as a
// loss would (NewReno: ssthresh = cwnd = FlightSize/2; CUBIC: 0.7, of the
// FlightSize before the ACK that carried it), without
// a retransmission; the next new data segment carries CWR; the ECN-Echoes
// of the same window neither cut again nor let cwnd grow, and the first
// ECN-Echo after something beyond that window is acknowledged cuts again
// (RFC 3168 §6.1.2).
func TestECNOneReductionPerWindow(t *testing.T) {
	for _, tc := range []struct {
		cc       string
		ssthresh uint32 // after the first ECE, with 14600 bytes in flight before it
	}{
		{"newreno", 7300},
		{"cubic", 10220},
	} {
		t.Run(tc.cc, func(t *testing.T) {
			cfg := plainConfig()
			cfg.CongestionControl = tc.cc
			cfg.SendBufferSize = 64 << 10
			cfg.SendBufferMax = -1
			cfg.NoDelay = true
			h := newECNEstablished(t, cfg)
			h.c.Write(data(30000, 0))
			got := h.output()
			require.Len(t, got, 10, "the initial window: %s", fmtSegs(got))
			for i := range got {
				require.Equal(t, ECNECT0, got[i].ECN)
				require.Zero(t, got[i].Flags&FlagCWR)
			}
			ack := func(n uint32, flags Flags) []Segment {
				return h.in(seg(FlagACK|flags, tPeer+1, tISS+1+Seq(n), 65535))
			}
			// The first ECE (acking two of the 14600 bytes in flight):
			// one reduction, nothing sent, nothing retransmitted.
			h.expect(ack(2920, FlagECE))
			in := h.c.Info()
			require.Equal(t, tc.ssthresh, in.SSThresh)
			require.Equal(t, tc.ssthresh, in.CWnd)
			require.Equal(t, uint64(1), in.ECNReductions)
			require.Equal(t, uint64(1), in.ECERcvd)
			require.Zero(t, in.Retransmits)
			require.Equal(t, CACWR, in.CAState, "tcpi_ca_state during the reduction")
			// More ECEs for the same window: no further cut, no growth;
			// once in flight is below cwnd, new data goes, the first
			// segment with CWR and alone (no GSO).
			var sent []Segment
			for n := uint32(4380); n <= 14600; n += 1460 {
				sent = append(sent, ack(n, FlagECE)...)
				in = h.c.Info()
				require.Equal(t, tc.ssthresh, in.CWnd, "cwnd after the ACK of %d", n)
				require.Equal(t, uint64(1), in.ECNReductions)
			}
			require.NotEmpty(t, sent)
			require.Equal(t, FlagACK|FlagCWR, sent[0].Flags, "the first new segment: %s", fmtSeg(&sent[0]))
			require.Equal(t, Seq(tISS+1+14600), sent[0].Seq)
			for i := range sent[1:] {
				require.Zero(t, sent[1+i].Flags&FlagCWR, "CWR once: %s", fmtSegs(sent))
				require.Equal(t, ECNECT0, sent[1+i].ECN)
			}
			require.Equal(t, uint64(1), h.c.Info().CWRSent)
			require.Equal(t, uint64(9), h.c.Info().ECERcvd)
			// The ACK of SND.MAX at the reduction (15601) still holds it;
			// the next ECE beyond it is a new window's: cut again.
			ack(14600, 0)
			require.Equal(t, uint64(1), h.c.Info().ECNReductions)
			ack(14600+1460, FlagECE)
			require.Equal(t, uint64(2), h.c.Info().ECNReductions)
			require.Less(t, h.c.Info().CWnd, tc.ssthresh)
		})
	}
}

// TestECNNoEchoWithoutNegotiation: without ECN, a CE mark is ignored
// (no ECE), and an ECE from the peer changes nothing.
func TestECNNoEchoWithoutNegotiation(t *testing.T) {
	h := newEstablished(t, plainConfig())
	s := seg(FlagACK, tPeer+1, tISS+1, 8192, data(100, 0)...)
	s.ECN = ECNCE
	h.in(s)
	h.expect(h.advance(h.now+50*ms), "[.] seq 1001 ack 5101 win 3996")
	h.c.Write(data(100, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5101 win 3996 len 100")
	cw := h.c.Info().CWnd
	h.in(seg(FlagACK|FlagECE, tPeer+101, tISS+101, 8192))
	require.Equal(t, cw+100, h.c.Info().CWnd, "slow start goes on")
	in := h.c.Info()
	require.False(t, in.ECN)
	require.Zero(t, in.CERcvd+in.ECERcvd+in.ECNReductions)
}

// TestECNCWRNotInSuperSegment: with segmentation offload, the segment that
// carries CWR goes alone (one MSS), and the data after it in super-segments
// again.
func TestECNCWRNotInSuperSegment(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.SendBufferSize = 64 << 10
	cfg.SendBufferMax = -1
	cfg.NoDelay = true
	h := newECNEstablished(t, cfg)
	h.c.Write(data(60000, 0))
	got := h.output()
	// The initial window in two super-segments, each half of cwnd
	// (Linux's tcp_cwnd_test).
	require.Len(t, got, 2, fmtSegs(got))
	require.Equal(t, 7300, len(got[0].Payload))
	require.Equal(t, 7300, len(got[1].Payload))
	// The ECE of the whole initial window: reduced; the window is now
	// ssthresh (nothing in flight), so new data goes: CWR alone first.
	got = h.in(seg(FlagACK|FlagECE, tPeer+1, tISS+1+14600, 65535))
	require.GreaterOrEqual(t, len(got), 2, fmtSegs(got))
	require.Equal(t, "[.W] seq 15601 ack 5001 win 4096 len 1460 ect0", fmtSeg(&got[0]))
	require.Equal(t, uint16(1460), got[1].GSOSize, "then super-segments: %s", fmtSeg(&got[1]))
	require.Zero(t, got[1].Flags&FlagCWR)
	require.Greater(t, len(got[1].Payload), 1460)
}

// TestECNEchoIgnoredInRecovery: an ECE during fast recovery cuts nothing
// more (the recovery is this window's reduction), and the recovery's CWR
// goes on the first new data segment after it.
func TestECNEchoIgnoredInRecovery(t *testing.T) {
	cfg := plainConfig()
	cfg.Recovery = RecoveryNewReno
	cfg.SendBufferSize = 64 << 10
	cfg.SendBufferMax = -1
	cfg.NoDelay = true
	h := newECNEstablished(t, cfg)
	h.c.Write(data(30000, 0))
	require.Len(t, h.output(), 10)
	// Three duplicate ACKs: fast retransmit of 1001.
	h.in(seg(FlagACK, tPeer+1, tISS+1, 65535))
	h.in(seg(FlagACK, tPeer+1, tISS+1, 65535))
	got := h.in(seg(FlagACK, tPeer+1, tISS+1, 65535))
	require.NotEmpty(t, got)
	require.Equal(t, "[.] seq 1001 ack 5001 win 4096 len 1460", fmtSeg(&got[0]), "the retransmission is Not-ECT, no CWR")
	in := h.c.Info()
	require.True(t, in.InRecovery)
	ssthresh := in.SSThresh
	// ECEs inside recovery (duplicate ACKs that inflate the window until
	// new data may go): counted, not reacted to.
	got = nil
	for range 6 {
		got = append(got, h.in(seg(FlagACK|FlagECE, tPeer+1, tISS+1, 65535))...)
	}
	in = h.c.Info()
	require.Equal(t, uint64(6), in.ECERcvd)
	require.Zero(t, in.ECNReductions)
	require.Equal(t, ssthresh, in.SSThresh)
	// New data sent in recovery carries the recovery's CWR, once (15601
	// and 17061 went before it, by limited transmit).
	require.NotEmpty(t, got)
	require.Equal(t, "[.W] seq 18521 ack 5001 win 4096 len 1460 ect0", fmtSeg(&got[0]))
	for _, s := range got[1:] {
		require.Zero(t, s.Flags&FlagCWR, fmtSegs(got))
	}
	require.Equal(t, uint64(1), h.c.Info().CWRSent)
}
