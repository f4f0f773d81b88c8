package tcp

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func lan() *simLink { return &simLink{delay: 5 * time.Millisecond} }

// pairEstablish dials from a to b (b created by AcceptSYN from a's SYN).
func pairEstablish(t *testing.T, cfgA, cfgB Config, issA, issB Seq, la, lb *simLink) *simNet {
	t.Helper()
	a := Dial(0, cfgA, issA)
	n := newSimNet(1, a, nil, la, lb)
	// Deliver a's SYN by hand to create b.
	var cap capture
	a.Output(0, &cap)
	require.Len(t, cap.segs, 1)
	n.now = Time(la.delay)
	b := AcceptSYN(n.now, cfgB, issB, &cap.segs[0])
	n.conns[1] = b
	n.output()
	require.True(t, n.runUntil(10*sec, func() bool {
		return a.State() == StateEstablished && b.State() == StateEstablished
	}), "a=%s b=%s", a.State(), b.State())
	return n
}

// pump moves data from src to dst until all of payload is read; returns the
// received bytes.
func pump(t *testing.T, n *simNet, from int, payload []byte, limit Time) []byte {
	t.Helper()
	src, dst := n.conns[from], n.conns[1-from]
	var got bytes.Buffer
	buf := make([]byte, 256<<10)
	off := 0
	ok := n.runUntil(limit, func() bool {
		progressed := true
		for progressed {
			progressed = false
			if off < len(payload) {
				k, err := src.Write(payload[off:])
				require.NoError(t, err)
				if k > 0 {
					off += k
					progressed = true
				}
			}
			for {
				k, err := dst.Read(buf)
				if err != nil && err != io.EOF {
					require.NoError(t, err)
				}
				if k == 0 {
					break
				}
				got.Write(buf[:k])
				progressed = true
			}
			if progressed {
				n.output()
			}
		}
		return got.Len() == len(payload)
	})
	require.True(t, ok, "transfer stalled at %d/%d bytes (sent %d) at %v; src %+v", got.Len(), len(payload), off, time.Duration(n.now), src.Info())
	return got.Bytes()
}

func TestPairHandshakeOrders(t *testing.T) {
	t.Run("active_passive", func(t *testing.T) {
		n := pairEstablish(t, DefaultConfig(), DefaultConfig(), 100, 200, lan(), lan())
		ia, ib := n.conns[0].Info(), n.conns[1].Info()
		require.True(t, ia.SACK && ia.Timestamps && ib.SACK && ib.Timestamps)
		require.Equal(t, int8(8), ia.RcvWScale) // covers 8 MiB (at least shift 7 like Linux)
		require.Equal(t, ia.RcvWScale, ib.SndWScale)
		require.Equal(t, uint16(1448), ia.MSS)
	})
	t.Run("simultaneous_open", func(t *testing.T) {
		a := Dial(0, DefaultConfig(), 100)
		b := Dial(0, DefaultConfig(), 900)
		n := newSimNet(1, a, b, lan(), lan())
		n.output()
		require.True(t, n.runUntil(10*sec, func() bool {
			return a.State() == StateEstablished && b.State() == StateEstablished
		}), "a=%s b=%s", a.State(), b.State())
		require.Equal(t, uint64(0), uint64(a.Info().Retransmits))
		got := pump(t, n, 0, []byte("simultaneous"), 20*sec)
		require.Equal(t, "simultaneous", string(got))
	})
	t.Run("syn_lost_once", func(t *testing.T) {
		la := lan()
		la.drop = func(k int, s *Segment) bool { return k == 1 }
		n := pairEstablish(t, DefaultConfig(), DefaultConfig(), 100, 200, lan(), lan())
		_ = la
		require.Equal(t, StateEstablished, n.conns[0].State())
	})
	t.Run("synack_lost", func(t *testing.T) {
		a := Dial(0, DefaultConfig(), 100)
		lb := lan()
		lb.drop = func(k int, s *Segment) bool { return k <= 2 }
		n := newSimNet(1, a, nil, lan(), lb)
		var cp capture
		a.Output(0, &cp)
		n.now = 5 * ms
		b := AcceptSYN(n.now, DefaultConfig(), 200, &cp.segs[0])
		n.conns[1] = b
		n.output()
		require.True(t, n.runUntil(20*sec, func() bool {
			return a.State() == StateEstablished && b.State() == StateEstablished
		}))
		// SYN-ACK at 5ms, 1005ms (lost), then a's SYN retransmit at 1s and
		// b's at 3005ms; whichever comes first completes the handshake.
		require.Less(t, n.now, 3*sec+100*ms)
	})
}

func TestPairCloseOrders(t *testing.T) {
	for _, tc := range []struct {
		name         string
		first        int // who closes first
		simultaneous bool
		wantA, wantB State
	}{
		{"a_closes_first", 0, false, StateTimeWait, StateClosed},
		{"b_closes_first", 1, false, StateClosed, StateTimeWait},
		{"simultaneous", 0, true, StateTimeWait, StateTimeWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := pairEstablish(t, DefaultConfig(), DefaultConfig(), 100, 200, lan(), lan())
			a, b := n.conns[0], n.conns[1]
			n.conns[tc.first].CloseWrite()
			if tc.simultaneous {
				n.conns[1-tc.first].CloseWrite()
			}
			n.output()
			other := n.conns[1-tc.first]
			if !tc.simultaneous {
				require.True(t, n.runUntil(n.now+sec, func() bool { return other.State() == StateCloseWait }))
				_, err := other.Read(make([]byte, 1))
				require.Equal(t, io.EOF, err)
				other.CloseWrite()
				n.output()
			}
			require.True(t, n.runUntil(n.now+5*sec, func() bool {
				return a.State() == tc.wantA && b.State() == tc.wantB
			}), "a=%s b=%s", a.State(), b.State())
			require.True(t, n.runUntil(n.now+120*sec, func() bool { return a.Done() && b.Done() }))
			require.NoError(t, a.Err())
			require.NoError(t, b.Err())
		})
	}
}

func TestPairHalfClose(t *testing.T) {
	n := pairEstablish(t, DefaultConfig(), DefaultConfig(), 100, 200, lan(), lan())
	a, b := n.conns[0], n.conns[1]
	a.CloseWrite()
	n.output()
	require.True(t, n.runUntil(n.now+sec, func() bool { return b.State() == StateCloseWait && a.State() == StateFinWait2 }))
	_, err := a.Write([]byte("x"))
	require.ErrorIs(t, err, errEPIPE())
	// b keeps sending to the half-closed a.
	got := pump(t, n, 1, bytes.Repeat([]byte("z"), 100000), n.now+10*sec)
	require.Len(t, got, 100000)
	b.Close()
	n.output()
	require.True(t, n.runUntil(n.now+sec, func() bool { return a.State() == StateTimeWait && b.State() == StateClosed }))
}

func TestPairISNWrap(t *testing.T) {
	for _, iss := range []Seq{0xffffffff - 10, 0xfffffff0, 0x7fffffff} {
		t.Run(fmt.Sprintf("%08x", uint32(iss)), func(t *testing.T) {
			n := pairEstablish(t, DefaultConfig(), DefaultConfig(), iss, iss-5000, lan(), lan())
			payload := make([]byte, 300000)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			got := pump(t, n, 0, payload, 30*sec)
			require.True(t, bytes.Equal(payload, got))
			got = pump(t, n, 1, payload[:70000], 60*sec)
			require.True(t, bytes.Equal(payload[:70000], got))
		})
	}
}

// bulk runs a one-way transfer of size bytes and checks it by hash.
func bulk(t *testing.T, cc string, size int, seed uint64, la, lb *simLink, cfgMod func(*Config)) *simNet {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CongestionControl = cc
	cfg.SendBufferSize = 1 << 20
	cfg.RecvBufferSize = 1 << 20
	if cfgMod != nil {
		cfgMod(&cfg)
	}
	// ISNs spread over the whole sequence space (and across 2^31).
	n := pairEstablish(t, cfg, cfg, Seq(seed*0x9e3779b9), Seq(seed*0x7f4a7c15+0x80000000), la, lb)
	n.rng = rand.New(rand.NewPCG(seed, seed+1))
	payload := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 42))
	for i := 0; i < len(payload); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(payload); j++ {
			payload[i+j] = byte(v >> (8 * j))
		}
	}
	got := pump(t, n, 0, payload, 3600*sec)
	require.Equal(t, sha256.Sum256(payload), sha256.Sum256(got))
	return n
}

func errEPIPE() error { return errPipe }

// A single loss is repaired by fast retransmit, not by the timer, whatever
// the ISN (including ISNs in the upper half of the sequence space).
func TestPairSingleLossFastRetransmit(t *testing.T) {
	for _, iss := range []Seq{1, 0x7fffff00, 0x90000000, 0xfffff000} {
		for _, sack := range []bool{true, false} {
			t.Run(fmt.Sprintf("%08x_sack_%v", uint32(iss), sack), func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.DisableSACK = !sack
				la := lan()
				la.drop = func(k int, s *Segment) bool { return k == 30 }
				n := pairEstablish(t, cfg, cfg, iss, iss+12345, la, lan())
				payload := make([]byte, 200000)
				got := pump(t, n, 0, payload, 10*sec)
				require.Len(t, got, len(payload))
				in := n.conns[0].Info()
				require.Equal(t, uint64(1), in.FastRecoveries)
				require.Zero(t, in.RTOExpirations)
				require.Equal(t, uint32(1), in.Retransmits)
			})
		}
	}
}
