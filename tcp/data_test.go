package tcp

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// establishRTT completes an active open whose SYN-ACK arrives rtt later.
func establishRTT(t *testing.T, cfg Config, rtt Time, synack Segment) *harness {
	h := newDialed(t, cfg)
	h.now += rtt
	if synack.Flags == 0 {
		synack = Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
			Options: Options{HasMSS: true, MSS: 1000}}
	}
	h.in(synack)
	require.Equal(t, StateEstablished, h.c.State())
	h.c.TakeEvents()
	return h
}

func TestRTOTimingAndBackoffKarn(t *testing.T) {
	cfg := plainConfig()
	h := establishRTT(t, cfg, 100*ms, Segment{})
	in := h.c.Info()
	require.Equal(t, 100*time.Millisecond, in.RTT)
	require.Equal(t, 50*time.Millisecond, in.RTTVar)
	require.Equal(t, 300*time.Millisecond, in.RTO) // SRTT + 4*RTTVAR
	h.c.Write(data(100, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 100")
	t0 := h.now
	var at []Time
	for i := 0; i < 4; i++ {
		d, _ := h.c.NextDeadline()
		got := h.advance(d)
		require.Len(t, got, 1)
		require.Equal(t, "[P.] seq 1001 ack 5001 win 4096 len 100", fmtSeg(&got[0]))
		at = append(at, h.now-t0)
	}
	require.Equal(t, []Time{300 * ms, 900 * ms, 2100 * ms, 4500 * ms}, at)
	require.Equal(t, 4, h.c.Info().CurrentRetransmits)
	// The ACK of the retransmitted data gives no sample (Karn): SRTT unchanged
	// and the backed-off RTO stays for the next segment (RFC 6298 §5.7).
	h.now += 50 * ms
	h.in(seg(FlagACK, tPeer+1, tISS+101, 65535))
	in = h.c.Info()
	require.Equal(t, 100*time.Millisecond, in.RTT)
	require.Equal(t, 4800*time.Millisecond, in.RTO)
	// A fresh segment acked after 200ms yields a sample and clears backoff.
	h.c.Write(data(10, 0))
	h.output()
	h.now += 200 * ms
	h.in(seg(FlagACK, tPeer+1, tISS+111, 65535))
	in = h.c.Info()
	// RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
	require.Equal(t, 112500*time.Microsecond, in.RTT)
	require.Equal(t, 62500*time.Microsecond, in.RTTVar)
	require.Equal(t, 362500*time.Microsecond, in.RTO)
	require.Equal(t, 0, in.CurrentRetransmits)
}

func TestRetries2TimesOut(t *testing.T) {
	cfg := plainConfig()
	cfg.Retries2 = 3
	cfg.RTOMax = 2 * time.Second
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.c.Write(data(10, 0))
	h.output()
	t0 := h.now
	n := 0
	for h.c.State() == StateEstablished {
		d, ok := h.c.NextDeadline()
		require.True(t, ok)
		n += len(h.advance(d))
	}
	require.Equal(t, 3, n)
	// 300 + 600 + 1200 + 2000 (capped)
	require.Equal(t, 4100*ms, h.now-t0)
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
	require.True(t, h.c.TakeEvents().Has(EventTimedOut))
	_, err := h.c.Read(make([]byte, 1))
	require.ErrorIs(t, err, syscall.ETIMEDOUT)
}

// TestRetries2IsATimeBound: like Linux's tcp_retries2, Retries2 bounds the
// time data may stay unacknowledged (as if the RTO had started at RTOMin
// and doubled up to RTOMax: 924.6 s for 15), checked when the timer fires;
// a large RTO therefore means fewer retransmissions, not a longer wait.
func TestRetries2IsATimeBound(t *testing.T) {
	secs := func(v ...float64) []Time {
		out := make([]Time, len(v))
		for i, x := range v {
			out[i] = Time(x * float64(sec))
		}
		return out
	}
	cases := []struct {
		name     string
		rtt      Time
		retries2 int
		rtx      []Time // retransmission times after the first send
		timeout  Time   // ETIMEDOUT
	}{
		{
			// RTO at the 200 ms floor: the bound is exactly 15
			// retransmissions (0.2 s doubling to 102.4 s, then 120 s).
			name: "rto_at_floor", rtt: 10 * ms,
			rtx: secs(0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4, 51.0, 102.2, 204.6,
				324.6, 444.6, 564.6, 684.6, 804.6),
			timeout: 924600 * ms,
		},
		{
			// RTO 3 s: the 12th retransmission's timer expires past 924.6 s.
			name: "rto_3s", rtt: 1 * sec,
			rtx:     secs(3, 9, 21, 45, 93, 189, 309, 429, 549, 669, 789, 909),
			timeout: 1029 * sec,
		},
		{
			// RTO 60 s: 8 retransmissions instead of 15 (which would take
			// 1860 s).
			name: "rto_60s", rtt: 20 * sec,
			rtx:     secs(60, 180, 300, 420, 540, 660, 780, 900),
			timeout: 1020 * sec,
		},
		{
			// Retries2 = 3: 0.2+0.4+0.8+1.6 = 3 s.
			name: "retries2_3", rtt: 100 * ms, retries2: 3,
			rtx:     secs(0.3, 0.9, 2.1),
			timeout: 4500 * ms,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plainConfig()
			cfg.Retries2 = tc.retries2
			h := establishRTT(t, cfg, tc.rtt, Segment{})
			h.c.Write(data(10, 0))
			h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 10")
			t0 := h.now
			var rtx []Time
			for h.c.State() == StateEstablished {
				d, ok := h.c.NextDeadline()
				require.True(t, ok)
				for _, s := range h.advance(d) {
					require.Equal(t, "[P.] seq 1001 ack 5001 win 4096 len 10", fmtSeg(&s))
					rtx = append(rtx, h.now-t0)
				}
			}
			require.Equal(t, tc.rtx, rtx)
			require.Equal(t, tc.timeout, h.now-t0)
			require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
			require.True(t, h.c.TakeEvents().Has(EventTimedOut))
		})
	}
}

func TestUserTimeout(t *testing.T) {
	cfg := plainConfig()
	cfg.UserTimeout = 1 * time.Second
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.c.Write(data(10, 0))
	h.output()
	t0 := h.now
	for h.c.State() == StateEstablished {
		d, _ := h.c.NextDeadline()
		h.advance(d)
	}
	require.Equal(t, 1*sec, h.now-t0)
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
}

// sendSegs writes n full segments (MSS 1000) and returns them.
func sendSegs(t *testing.T, h *harness, n int) []Segment {
	h.c.Write(data(n*1000, 0))
	got := h.output()
	require.Len(t, got, n)
	return got
}

func TestFastRetransmitNewReno(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	sendSegs(t, h, 6) // 1001..7001, second one lost
	// ACK of the first segment, then dupacks.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 65535)))
	// Limited transmit (RFC 3042): nothing new to send, so nothing.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 65535)))
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 65535)))
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1001, 65535)), "[.] seq 2001 ack 5001 win 4096 len 1000")
	in := h.c.Info()
	require.True(t, in.InRecovery)
	require.Equal(t, uint32(2500), in.SSThresh) // FlightSize/2
	require.Equal(t, uint32(2500)+3000, in.CWnd)
	// Partial ACK (RFC 6582): the next hole (4001) is retransmitted at once.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+3001, 65535)), "[.] seq 4001 ack 5001 win 4096 len 1000")
	// Full ACK ends recovery, cwnd = ssthresh.
	h.in(seg(FlagACK, tPeer+1, tISS+6001, 65535))
	in = h.c.Info()
	require.False(t, in.InRecovery)
	require.Equal(t, uint32(2500), in.CWnd)
}

func TestLimitedTransmit(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	sendSegs(t, h, 10) // fills IW = 10 segments
	h.c.Write(data(3000, 0))
	h.expect(h.output()) // cwnd full
	// The first two duplicate ACKs each release one new segment (RFC 3042).
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 65535)), "[.] seq 11001 ack 5001 win 4096 len 1000")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 65535)), "[.] seq 12001 ack 5001 win 4096 len 1000")
	// The third triggers fast retransmit; ssthresh is half the flight
	// without the two limited-transmit segments (RFC 3042 §2, RFC 5681
	// §3.2 step 2), i.e. half of cwnd; cwnd = 5000+3000 < flight.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 65535)), "[.] seq 1001 ack 5001 win 4096 len 1000")
	require.Equal(t, uint32(5000), h.c.Info().SSThresh)
}

func sackSeg(ack Seq, blocks ...SACKBlock) Segment {
	s := seg(FlagACK, tPeer+1, ack, 65535)
	s.Options.NumSACK = uint8(copy(s.Options.SACKBlocks[:], blocks))
	return s
}

func TestSACKRecoveryRepairsSeveralLossesInOneRTT(t *testing.T) {
	for _, rec := range []Recovery{RecoveryRACK, RecoverySACK} {
		t.Run(rec.String(), func(t *testing.T) { testSACKRecoveryRepairsSeveralLossesInOneRTT(t, rec) })
	}
}

func testSACKRecoveryRepairsSeveralLossesInOneRTT(t *testing.T, rec Recovery) {
	cfg := plainConfig()
	cfg.DisableSACK = false
	cfg.Recovery = rec
	synack := Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 65535,
		Options: Options{HasMSS: true, MSS: 1000, SACKPermitted: true}}
	h := establishRTT(t, cfg, 100*ms, synack)
	require.True(t, h.c.Info().SACK)
	// Segments [1001,2001) ... [10001,11001); [2001,3001), [5001,6001) and
	// [8001,9001) are lost. The receiver's ACKs as the rest arrives:
	sendSegs(t, h, 10)
	b := func(s, e Seq) SACKBlock { return SACKBlock{Start: s, End: e} }
	h.now += 100 * ms
	var got []Segment
	for _, a := range []Segment{
		sackSeg(2001),
		sackSeg(2001, b(3001, 4001)),
		sackSeg(2001, b(3001, 5001)),
		sackSeg(2001, b(6001, 7001), b(3001, 5001)),
		sackSeg(2001, b(6001, 8001), b(3001, 5001)),
		sackSeg(2001, b(9001, 10001), b(6001, 8001), b(3001, 5001)),
		sackSeg(2001, b(9001, 11001), b(6001, 8001), b(3001, 5001)),
	} {
		got = append(got, h.in(a)...)
	}
	// All three holes are retransmitted within this RTT, each once.
	require.Equal(t, "[.] seq 2001 ack 5001 win 4096 len 1000\n"+
		"[.] seq 5001 ack 5001 win 4096 len 1000\n"+
		"[.] seq 8001 ack 5001 win 4096 len 1000", fmtSegs(got))
	// All repaired within the same RTT (no timer needed): the cumulative ACK
	// jumps to the end.
	h.now += 100 * ms
	h.in(seg(FlagACK, tPeer+1, 11001, 65535))
	in := h.c.Info()
	require.False(t, in.InRecovery)
	require.Zero(t, in.RTOExpirations)
	require.Equal(t, uint64(1), in.FastRecoveries)
}

func TestDSACKReportedForDuplicate(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableSACK = false
	h := newDialed(t, cfg)
	h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192,
		Options: Options{HasMSS: true, MSS: 1460, SACKPermitted: true}})
	h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(100, 0)...))
	h.advance(h.now + 40*ms)
	// The same segment again: ACK at once with a D-SACK block.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(100, 0)...)),
		"[.] seq 1001 ack 5101 win 3996 <sack {5001:5101}>")
	// Out of order: SACK block; a duplicate of it: D-SACK first.
	h.expect(h.in(seg(FlagACK, tPeer+201, tISS+1, 8192, data(100, 0)...)),
		"[.] seq 1001 ack 5101 win 3996 <sack {5201:5301}>")
	h.expect(h.in(seg(FlagACK, tPeer+201, tISS+1, 8192, data(100, 0)...)),
		"[.] seq 1001 ack 5101 win 3996 <sack {5201:5301}{5201:5301}>")
	require.Equal(t, uint64(2), h.c.Info().DSACKsSent)
}

func TestZeroWindowProbeBackoff(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	h.c.Write(data(2000, 0))
	h.output()
	// Peer acks everything but closes its window.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 0)))
	h.c.Write(data(500, 0))
	h.expect(h.output())
	t0 := h.now
	r := Time(h.c.Info().RTO)
	require.Equal(t, 337500*Time(time.Microsecond), r) // SRTT 87.5 ms, RTTVAR 62.5 ms
	var at []Time
	for i := 0; i < 5; i++ {
		d, ok := h.c.NextDeadline()
		require.True(t, ok)
		got := h.advance(d)
		require.Len(t, got, 1)
		require.Equal(t, "[.] seq 3001 ack 5001 win 4096 len 1", fmtSeg(&got[0]))
		at = append(at, h.now-t0)
		// The peer answers each probe: still zero window.
		h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 0)))
	}
	// The probe interval doubles from the RTO: r, 2r, 4r, 8r, 16r.
	require.Equal(t, []Time{r, 3 * r, 7 * r, 15 * r, 31 * r}, at)
	// Answered probes never kill the connection (RFC 1122 4.2.2.17).
	for i := 0; i < 40; i++ {
		d, _ := h.c.NextDeadline()
		h.advance(d)
		h.in(seg(FlagACK, tPeer+1, tISS+2001, 0))
	}
	require.Equal(t, StateEstablished, h.c.State())
	d, _ := h.c.NextDeadline()
	require.Equal(t, 120*time.Second, time.Duration(d-h.now)) // capped at RTOMax
	// The window opens: data resumes.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2001, 1000)), "[P.] seq 3001 ack 5001 win 4096 len 500")
}

func TestZeroWindowUnansweredProbesTimeOut(t *testing.T) {
	cfg := plainConfig()
	cfg.Retries2 = 2
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.in(seg(FlagACK, tPeer+1, tISS+1, 0))
	h.c.Write(data(10, 0))
	h.output()
	probes := 0
	for h.c.State() == StateEstablished {
		d, _ := h.c.NextDeadline()
		probes += len(h.advance(d))
	}
	require.Equal(t, 2, probes) // like Linux: Retries2 unanswered probes
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
}

func TestZeroWindowUserTimeout(t *testing.T) {
	cfg := plainConfig()
	cfg.UserTimeout = 2 * time.Second
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.in(seg(FlagACK, tPeer+1, tISS+1, 0))
	t0 := h.now
	h.c.Write(data(10, 0))
	h.output()
	for h.c.State() == StateEstablished {
		d, _ := h.c.NextDeadline()
		h.advance(d)
	}
	// Probes at 0.3, 0.9, 2.1: at 2.1 s more than 2 s passed since the last ACK.
	require.Equal(t, 2100*ms, h.now-t0)
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
}

func TestKeepalive(t *testing.T) {
	cfg := plainConfig()
	cfg.KeepAlive = true
	h := newEstablished(t, cfg)
	t0 := h.now
	// Probes at idle, idle+interval, ...; contents SEG.SEQ = SND.NXT-1.
	got := h.advance(t0 + 2*3600*sec)
	h.expect(got, "[.] seq 1000 ack 5001 win 4096")
	// A reply resets the idle timer.
	h.now += 10 * sec
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192)))
	t1 := h.now
	d, _ := h.c.NextDeadline()
	require.Equal(t, t1+7200*sec, d)
	var at []Time
	for h.c.State() == StateEstablished {
		d, _ := h.c.NextDeadline()
		got := h.advance(d)
		for _, s := range got {
			if s.Flags&FlagRST != 0 {
				require.Equal(t, "[R.] seq 1001 ack 5001 win 0", fmtSeg(&s))
			} else {
				require.Equal(t, "[.] seq 1000 ack 5001 win 4096", fmtSeg(&s))
			}
			at = append(at, h.now-t1)
		}
	}
	want := []Time{}
	for i := 0; i < 9; i++ {
		want = append(want, 7200*sec+Time(i)*75*sec)
	}
	want = append(want, 7200*sec+9*75*sec) // the RST
	require.Equal(t, want, at)
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
	require.True(t, h.c.Done())
}

func TestKeepaliveSetAfterwardAndUserTimeout(t *testing.T) {
	h := newEstablished(t, plainConfig())
	h.c.SetKeepAlive(true, 10*time.Second, 5*time.Second, 3)
	h.c.SetUserTimeout(12 * time.Second)
	t0 := h.now
	for h.c.State() == StateEstablished {
		d, _ := h.c.NextDeadline()
		h.advance(d)
	}
	// Probes at 10, 15; at 20 s idle >= 12 s user timeout with a probe out.
	require.Equal(t, 15*sec, h.now-t0)
	require.ErrorIs(t, h.c.Err(), syscall.ETIMEDOUT)
}

func TestDelayedACKRules(t *testing.T) {
	cfg := plainConfig()
	cfg.RecvBufferSize = 64 << 10
	h := newEstablished(t, cfg)
	// rcvMSS = 1460: the first full segment waits, the second is ACKed.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(1460, 0)...)))
	h.expect(h.in(seg(FlagACK, tPeer+1461, tISS+1, 8192, data(1460, 0)...)), "[.] seq 1001 ack 7921 win 62615")
	// A small segment waits for the 40 ms timer.
	h.expect(h.in(seg(FlagACK, tPeer+2921, tISS+1, 8192, data(10, 0)...)))
	h.expect(h.advance(h.now + 39*ms))
	h.expect(h.advance(h.now+1*ms), "[.] seq 1001 ack 7931 win 62605")
	// Out of order: immediately.
	h.expect(h.in(seg(FlagACK, tPeer+3000, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 7931 win 62605")
	// Gap fill: immediately.
	h.expect(h.in(seg(FlagACK, tPeer+2931, tISS+1, 8192, data(69, 0)...)), "[.] seq 1001 ack 8010 win 62526")
}

func TestDelayedACKDisabled(t *testing.T) {
	cfg := plainConfig()
	cfg.DelayedACK = -1
	h := newEstablished(t, cfg)
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...)), "[.] seq 1001 ack 5011 win 4086")
}

// TestNagle: Nagle's algorithm with Minshall's refinement (Linux): a
// sub-MSS segment waits only while an earlier sub-MSS segment is
// unacknowledged.
func TestNagle(t *testing.T) {
	type op struct {
		write int // bytes to write, or
		ack   Seq // the peer ACKs up to this sequence number
		want  []string
	}
	cases := []struct {
		name    string
		noDelay bool
		ops     []op
	}{
		{
			name: "tiny_writes_coalesced",
			ops: []op{
				{write: 1, want: []string{"[P.] seq 1001 ack 5001 win 4096 len 1"}},
				{write: 1}, // held while the first small segment is out
				{write: 1},
				{ack: 1002, want: []string{"[P.] seq 1002 ack 5001 win 4096 len 2"}},
			},
		},
		{
			name:    "tiny_writes_nodelay",
			noDelay: true,
			ops: []op{
				{write: 1, want: []string{"[P.] seq 1001 ack 5001 win 4096 len 1"}},
				{write: 1, want: []string{"[P.] seq 1002 ack 5001 win 4096 len 1"}},
			},
		},
		{
			name: "large_write_tail_goes_at_once",
			ops: []op{
				{write: 3000, want: []string{"[.] seq 1001 ack 5001 win 4096 len 1460",
					"[.] seq 2461 ack 5001 win 4096 len 1460", "[P.] seq 3921 ack 5001 win 4096 len 80"}},
				{write: 10}, // the 80-byte tail is an unacknowledged small segment
				{ack: 3921}, // the full segments acknowledged: still held
				{ack: 4001, want: []string{"[P.] seq 4001 ack 5001 win 4096 len 10"}},
			},
		},
		{
			name: "small_write_after_full_segments",
			ops: []op{
				{write: 2920, want: []string{"[.] seq 1001 ack 5001 win 4096 len 1460",
					"[P.] seq 2461 ack 5001 win 4096 len 1460"}},
				{write: 100, want: []string{"[P.] seq 3921 ack 5001 win 4096 len 100"}},
				{write: 100},
				{write: 100},
				{ack: 4021, want: []string{"[P.] seq 4021 ack 5001 win 4096 len 200"}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newEstablished(t, plainConfig())
			h.c.SetNoDelay(tc.noDelay)
			for _, o := range tc.ops {
				if o.write > 0 {
					n, err := h.c.Write(data(o.write, 0))
					require.NoError(t, err)
					require.Equal(t, o.write, n)
					h.expect(h.output(), o.want...)
					continue
				}
				h.expect(h.in(seg(FlagACK, tPeer+1, o.ack, 8192)), o.want...)
			}
		})
	}
}

func TestPAWS(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableTimestamps = false
	h := newDialed(t, cfg)
	sa := Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192,
		Options: Options{HasMSS: true, MSS: 1460, HasTimestamp: true, TSVal: 1000, TSEcr: h.c.tsNow(h.now)}}
	h.in(sa)
	require.True(t, h.c.Info().Timestamps)
	ts := func(val uint32, s Segment) Segment {
		s.Options.HasTimestamp, s.Options.TSVal, s.Options.TSEcr = true, val, 1
		return s
	}
	h.in(ts(1010, seg(FlagACK, tPeer+1, tISS+1, 8192, data(10, 0)...)))
	require.Equal(t, 10, h.c.Readable())
	// An old timestamp: dropped, ACKed (RFC 7323 §5.3 R1).
	got := h.in(ts(1005, seg(FlagACK, tPeer+11, tISS+1, 8192, data(10, 0)...)))
	require.Len(t, got, 1)
	require.Equal(t, tPeer+11, got[0].Ack)
	require.Equal(t, uint32(1010), got[0].Options.TSEcr)
	require.Equal(t, 10, h.c.Readable())
	require.Equal(t, uint64(1), h.c.Info().PAWSDrops)
	// RST is exempt from PAWS.
	// After 24 days of idleness TS.Recent is invalid: accepted.
	h.now += Time(25 * 24 * time.Hour)
	h.in(ts(1005, seg(FlagACK, tPeer+11, tISS+1, 8192, data(10, 0)...)))
	require.Equal(t, 20, h.c.Readable())
}

// TestWindowUpdateOnRead: a read sends a pure window update only when the
// window we could now advertise (after receiver SWS avoidance: the edge
// moves by at least min(RCV.BUFF/2, MSS) = 1460 here) is at least twice the
// window the peer holds, like Linux's tcp_cleanup_rbuf. Receive buffer 4096,
// no scaling, every segment ACKed at once.
func TestWindowUpdateOnRead(t *testing.T) {
	type read struct {
		n    int
		want []string
	}
	cases := []struct {
		name  string
		recv  []int // in-order payload sizes from the peer
		fin   bool  // the last one carries a FIN
		acks  []string
		reads []read
	}{
		{
			name: "zero_window_reopened_once_an_mss_is_free",
			recv: []int{1460, 1460, 1176},
			acks: []string{"[.] seq 1001 ack 6461 win 2636", "[.] seq 1001 ack 7921 win 1176", "[.] seq 1001 ack 9097 win 0"},
			reads: []read{
				{100, nil},  // 100 free: below the SWS threshold, the window stays shut
				{1300, nil}, // 1400 free: still below
				{60, []string{"[.] seq 1001 ack 9097 win 1460"}},
			},
		},
		{
			name: "small_window_doubled",
			recv: []int{1460, 1540},
			acks: []string{"[.] seq 1001 ack 6461 win 2636", "[.] seq 1001 ack 8001 win 1096"},
			reads: []read{
				{1000, nil}, // the edge could move by 1000 < 1460
				{500, []string{"[.] seq 1001 ack 8001 win 2596"}}, // 2596 >= 2*1096
			},
		},
		{
			name: "window_not_doubled_no_update",
			recv: []int{1000, 1000},
			acks: []string{"[.] seq 1001 ack 6001 win 3096", "[.] seq 1001 ack 7001 win 2096"},
			reads: []read{
				{2000, nil}, // 4096 < 2*2096: the next segment carries it
			},
		},
		{
			name: "window_exactly_doubled",
			recv: []int{1024, 1024},
			acks: []string{"[.] seq 1001 ack 6025 win 3072", "[.] seq 1001 ack 7049 win 2048"},
			reads: []read{
				{2048, []string{"[.] seq 1001 ack 7049 win 4096"}},
			},
		},
		{
			name: "no_update_after_fin",
			recv: []int{1460, 1460, 1176},
			fin:  true,
			acks: []string{"[.] seq 1001 ack 6461 win 2636", "[.] seq 1001 ack 7921 win 1176", "[.] seq 1001 ack 9098 win 0"},
			reads: []read{
				{4096, nil}, // nothing more will come: an update is useless
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plainConfig()
			cfg.DelayedACK = -1
			h := newEstablished(t, cfg)
			seq := tPeer + 1
			for i, n := range tc.recv {
				f := FlagACK
				if tc.fin && i == len(tc.recv)-1 {
					f |= FlagFIN
				}
				h.expect(h.in(seg(f, seq, tISS+1, 8192, data(n, 0)...)), tc.acks[i])
				seq += Seq(n)
			}
			for i, r := range tc.reads {
				buf := make([]byte, r.n)
				k, err := h.c.Read(buf)
				require.NoError(t, err)
				require.Equal(t, r.n, k, "read %d", i)
				h.expect(h.output(), r.want...)
			}
		})
	}
}

// TestGSOSuperSegments: super-segments are sized as Linux sizes its TSO
// packets: about 2^-10 s of data at the pacing-rate estimate (2 x 10000
// bytes per 100 ms is 195 bytes: the 2-segment floor, tcp_min_tso_segs),
// each with PSH.
func TestGSOSuperSegments(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.c.Write(data(12500, 0))
	h.expect(h.output(),
		"[P.] seq 1001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 3001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 5001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 7001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 9001 ack 5001 win 4096 len 2000 gso 1000")
	h.c.SetNoDelay(true)
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+10001, 65535)),
		"[P.] seq 11001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 13001 ack 5001 win 4096 len 500")
}

// TestGSOMinTSOSegs: with a floor of 10 segments (Linux
// tcp_min_tso_segs=10) a super-segment still carries at most half of cwnd,
// so that two are in flight (Linux tcp_cwnd_test): the initial window of 10
// goes as two of 5, as in the corpus's slow_start/slow-start-after-idle.
func TestGSOMinTSOSegs(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.MinTSOSegs = 10
	cfg.SendBufferSize = 64 << 10
	h := establishRTT(t, cfg, 100*ms, Segment{})
	h.c.Write(data(26000, 0))
	h.expect(h.output(),
		"[P.] seq 1001 ack 5001 win 4096 len 5000 gso 1000",
		"[P.] seq 6001 ack 5001 win 4096 len 5000 gso 1000")
	// One ACK of 10 segments grows cwnd to 12 (RFC 3465's L = 2 SMSS):
	// two of 6.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+10001, 65535)),
		"[P.] seq 11001 ack 5001 win 4096 len 6000 gso 1000",
		"[P.] seq 17001 ack 5001 win 4096 len 6000 gso 1000")
}

// TestGSOShortRTTFullSize: on a path of a few hundred microseconds the
// super-segment is GSOMaxSize whatever the rate (Linux's tcp_tso_rtt_log
// adds GSO bytes halved for every 512 µs of minimum RTT), within half of
// cwnd.
func TestGSOShortRTTFullSize(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.SendBufferSize = 1 << 20
	h := establishRTT(t, cfg, Time(200*time.Microsecond), Segment{})
	h.c.Write(data(100000, 0))
	h.expect(h.output(),
		"[P.] seq 1001 ack 5001 win 4096 len 5000 gso 1000",
		"[P.] seq 6001 ack 5001 win 4096 len 5000 gso 1000")
}

func TestSixteenMiBWindow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RecvBufferSize = 16 << 20
	cfg.SendBufferSize = 16 << 20
	la := &simLink{delay: 50 * time.Millisecond, perByte: 4 * time.Nanosecond} // 2 Gbit/s, 100 ms RTT
	lb := &simLink{delay: 50 * time.Millisecond}
	n := pairEstablish(t, cfg, cfg, 1, 2, la, lb)
	a, b := n.conns[0], n.conns[1]
	require.Equal(t, int8(9), b.Info().RcvWScale)
	payload := make([]byte, 64<<20)
	for i := range payload {
		payload[i] = byte(i)
	}
	maxWnd := uint32(0)
	n.trace = func(from int, s *Segment) {
		if from == 1 {
			maxWnd = max(maxWnd, uint32(s.Window)<<9)
		}
	}
	got := pump(t, n, 0, payload, 3600*sec)
	require.Equal(t, len(payload), len(got))
	require.GreaterOrEqual(t, maxWnd, uint32(16<<20)-65536)
	require.Greater(t, a.Info().CWnd, uint32(8<<20))
}

func TestZeroWindowProbeByteAccepted(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	h.in(seg(FlagACK, tPeer+1, tISS+1, 0))
	h.c.Write(data(10, 0))
	h.expect(h.output())
	d, _ := h.c.NextDeadline()
	h.expect(h.advance(d), "[.] seq 1001 ack 5001 win 4096 len 1")
	// The window had opened meanwhile: the peer takes the byte.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+2, 1000)), "[P.] seq 1002 ack 5001 win 4096 len 9")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+11, 1000)))
	require.Zero(t, h.c.Info().Unacked)
}

func TestSetPathMSS(t *testing.T) {
	h := establishRTT(t, plainConfig(), 100*ms, Segment{})
	sendSegs(t, h, 2)
	require.Equal(t, tISS+1, h.c.SndUna())
	require.Equal(t, tISS+2001, h.c.SndNxt())
	require.Equal(t, tPeer+1, h.c.RcvNxt())
	_, ok := h.c.TSRecent()
	require.False(t, ok)
	require.False(t, h.c.SetPathMSS(h.now, 1200)) // not smaller than 1000
	require.True(t, h.c.SetPathMSS(h.now, 600))
	h.expect(h.output(), "[.] seq 1001 ack 5001 win 4096 len 600", "[.] seq 1601 ack 5001 win 4096 len 600",
		"[.] seq 2201 ack 5001 win 4096 len 600", "[P.] seq 2801 ack 5001 win 4096 len 200")
	require.Equal(t, uint16(600), h.c.Info().MSS)
}

// TestWindowUpdateOnReadDeferred: when the peer still holds a window of at
// least urgentWindow, the update a read owes waits for our next segment
// (here the reply) or the delayed-ACK timer instead of costing a pure ACK
// of its own: a request/response exchange on a fresh connection (65535
// offered in the SYN-ACK, 256 KiB of buffer) sends one segment, not two.
func TestWindowUpdateOnReadDeferred(t *testing.T) {
	for _, reply := range []bool{true, false} {
		t.Run(fmt.Sprintf("reply=%v", reply), func(t *testing.T) {
			cfg := plainConfig()
			cfg.RecvBufferSize = 256 << 10
			cfg.DisableWindowScale = false
			cfg.DelayedACK = 40 * time.Millisecond
			// Passive open: the SYN-ACK offers at most 65535 (never
			// scaled), and nothing else goes out before the first read.
			h := &harness{t: t, now: 10 * sec}
			syn := Segment{Flags: FlagSYN, Seq: tPeer, Window: 8192,
				Options: Options{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7}}
			h.c = AcceptSYN(h.now, cfg, tISS, &syn)
			got := h.output()
			require.Len(t, got, 1)
			require.Equal(t, uint16(65535), got[0].Window)
			scale := WindowScaleFor(cfg) // ours, offered in the SYN-ACK
			require.NotZero(t, scale)
			h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192)))
			require.Equal(t, StateEstablished, h.c.State())
			h.expect(h.in(seg(FlagACK|FlagPSH, tPeer+1, tISS+1, 8192, data(1, 0)...)))
			n, err := h.c.Read(make([]byte, 10))
			require.NoError(t, err)
			require.Equal(t, 1, n)
			h.expect(h.output()) // no pure window update
			at, ok := h.c.NextDeadline()
			require.True(t, ok)
			require.Equal(t, h.now.Add(40*time.Millisecond), at)
			if reply {
				_, err := h.c.Write([]byte("y"))
				require.NoError(t, err)
				out := h.output()
				require.Len(t, out, 1)
				require.Len(t, out[0].Payload, 1)
				require.GreaterOrEqual(t, uint32(out[0].Window)<<scale, uint32(128<<10), "the reply carries the opened window")
				return
			}
			h.now = at
			out := h.output()
			require.Len(t, out, 1)
			require.Empty(t, out[0].Payload)
			require.GreaterOrEqual(t, uint32(out[0].Window)<<scale, uint32(128<<10))
		})
	}
}

// On a SACK connection an ACK that SACKs nothing new is not a duplicate
// ACK (RFC 6675 §2, §5): four identical ACKs, as a receiver sends when
// several wakeups each acknowledge, neither release limited-transmit
// segments nor start a recovery, with either SACK-based recovery; ACKs
// that SACK new data still do.
func TestSACKRepeatedACKsAreNotDuplicates(t *testing.T) {
	for _, rec := range []Recovery{RecoveryRACK, RecoverySACK} {
		t.Run(rec.String(), func(t *testing.T) {
			cfg := plainConfig()
			cfg.Recovery = rec
			h := rackWarm(t, cfg) // SND.NXT 2001, min RTT 100 ms
			t0 := h.now
			h.c.Write(data(14000, 0))
			require.Equal(t, 11, len(h.output())) // [2001,13001) fills cwnd
			h.now = t0 + 100*ms
			for i := 0; i < 4; i++ {
				h.expect(h.in(sackSeg(2001)))
			}
			in := h.c.Info()
			require.False(t, in.InRecovery)
			require.Zero(t, in.Retransmits)
			require.Equal(t, uint64(0), in.DupAcksIn)
			if rec == RecoverySACK {
				// ACKs that SACK new data: RFC 3042 limited transmit on
				// the first two, fast retransmit on the third.
				h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 4001})), "[.] seq 13001 ack 5001 win 4096 len 1000")
				h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 5001})), "[.] seq 14001 ack 5001 win 4096 len 1000")
				h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 6001})), "[.] seq 2001 ack 5001 win 4096 len 1000")
			} else {
				// Three segments SACKed: RACK's window is zero, and the
				// segment sent before them is lost. PRR lets the three
				// delivered send ceil(3·5500/11000) = 2 segments, the
				// retransmission and one new (as Linux's
				// tcp_cwnd_reduction on the ACK that enters recovery).
				h.expect(h.in(sackSeg(2001, SACKBlock{Start: 3001, End: 6001})),
					"[.] seq 2001 ack 5001 win 4096 len 1000",
					"[.] seq 13001 ack 5001 win 4096 len 1000")
			}
			in = h.c.Info()
			require.True(t, in.InRecovery)
			require.Equal(t, uint32(1), in.Retransmits)
		})
	}
}

// The stack's goroutines read the clock before they take a connection's
// lock, so an entry point can be handed a time earlier than one the
// connection has already seen (a reader's batch time after an application
// Write's). The connection's clock never goes back: a TSval lower than one
// already sent would make the peer discard the segment (PAWS, RFC 7323
// §5), a loss on a lossless path.
func TestTimeNeverGoesBack(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableTimestamps = false
	cfg.NoDelay = true
	h := newDialed(t, cfg)
	sa := Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192,
		Options: Options{HasMSS: true, MSS: 1460, HasTimestamp: true, TSVal: 1000, TSEcr: h.c.tsNow(h.now)}}
	h.in(sa)
	t0 := h.now
	h.now = t0 + 5*ms
	h.c.Write(data(10, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 10 <TS val 10005 ecr 1000>")
	// A goroutine that read the clock 1.5 ms earlier runs next.
	h.now = t0 + 3500*Time(time.Microsecond)
	h.c.Write(data(10, 0))
	h.expect(h.output(), "[P.] seq 1011 ack 5001 win 4096 len 10 <TS val 10005 ecr 1000>")
	require.Equal(t, t0+5*ms+Time(h.c.Info().RTO), h.c.rtxTimer.at, "the RTO runs from the later time")
	// So does an arriving segment.
	ack := seg(FlagACK, tPeer+1, tISS+21, 8192)
	ack.Options.HasTimestamp, ack.Options.TSVal, ack.Options.TSEcr = true, 1010, 10005
	h.expect(h.in(ack))
	require.Equal(t, uint64(0), h.c.Info().PAWSDrops)
}

// TestACKAtOnceForPartOfAGap: RFC 5681 §4.2 asks for an immediate ACK of a
// segment that fills part of a gap, not only of one that reaches the next
// stored range. Two segments are lost; the retransmission of the first is
// acknowledged at once (with the SACK block still there), not after the
// delayed-ACK timeout; the second closes the gap, at once too.
func TestACKAtOnceForPartOfAGap(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableSACK = false
	cfg.RecvBufferSize = 8192
	h := newDialed(t, cfg)
	h.in(Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 8192,
		Options: Options{HasMSS: true, MSS: 1000, SACKPermitted: true}})
	// [5001,6001) in order: one segment, the ACK is delayed.
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(1000, 0)...)))
	// [6001,8001) lost; [8001,9001) out of order: ACK at once with SACK.
	h.expect(h.in(seg(FlagACK, tPeer+3001, tISS+1, 8192, data(1000, 0)...)),
		"[.] seq 1001 ack 6001 win 7192 <sack {8001:9001}>")
	// The retransmission of [6001,7001): part of the gap, ACK at once.
	h.expect(h.in(seg(FlagACK, tPeer+1001, tISS+1, 8192, data(1000, 0)...)),
		"[.] seq 1001 ack 7001 win 6192 <sack {8001:9001}>")
	// [7001,8001) fills it: ACK at once, up to the end of the stored range.
	// (The application reads nothing: the right edge stays at 13193.)
	h.expect(h.in(seg(FlagACK, tPeer+2001, tISS+1, 8192, data(1000, 0)...)),
		"[.] seq 1001 ack 9001 win 4192")
	// Back in order: one segment waits for the delayed-ACK timer again.
	h.expect(h.in(seg(FlagACK, tPeer+4001, tISS+1, 8192, data(1000, 0)...)))
	h.expect(h.advance(h.now+40*ms), "[.] seq 1001 ack 10001 win 3192")
}

// TestGSODefersShortSuperSegment: after a full super-segment, the one
// segment cwnd still allows waits for the next ACK while that ACK is near
// (the oldest data left 100 ms ago, SRTT 100 ms) and the window is mostly
// used (Linux tcp_tso_should_defer); a divisor that makes one segment a
// large enough fraction of the window (TSOWinDivisor 12: 12000/12) sends
// it at once.
func TestGSODefersShortSuperSegment(t *testing.T) {
	for _, tc := range []struct {
		divisor int8
		want    []string
	}{
		{0, []string{"[P.] seq 11001 ack 5001 win 4096 len 4000 gso 1000"}},
		{12, []string{"[P.] seq 11001 ack 5001 win 4096 len 4000 gso 1000", "[.] seq 15001 ack 5001 win 4096 len 1000"}},
	} {
		cfg := plainConfig()
		cfg.GSOMaxSize = 65535
		cfg.MinTSOSegs = 4
		cfg.TSOWinDivisor = tc.divisor
		cfg.SendBufferSize = 64 << 10
		h := establishRTT(t, cfg, 100*ms, Segment{})
		h.c.Write(data(30000, 0))
		h.expect(h.output(),
			"[P.] seq 1001 ack 5001 win 4096 len 4000 gso 1000",
			"[P.] seq 5001 ack 5001 win 4096 len 4000 gso 1000",
			"[P.] seq 9001 ack 5001 win 4096 len 2000 gso 1000")
		h.now += 100 * ms
		h.expect(h.in(seg(FlagACK, tPeer+1, tISS+3001, 65535)), tc.want...)
		// The next ACK sends what waited.
		h.now += 2 * ms
		got := h.in(seg(FlagACK, tPeer+1, tISS+5001, 65535))
		require.NotEmpty(t, got)
		require.Equal(t, tISS+1+Seq(14000+1000*len(tc.want)-1000), got[0].Seq, fmtSegs(got))
	}
}
