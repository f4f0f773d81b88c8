package tcp

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Blind injection (RFC 5961) beyond RSTs: the answers to forged segments are
// rate-limited so that a flood is not reflected one for one.

// A SYN outside the window gets a challenge ACK too (RFC 5961 §4.2:
// "irrespective of the sequence number"), from the same budget.
func TestOutOfWindowSYNChallenge(t *testing.T) {
	cfg := plainConfig()
	cfg.ChallengeACKLimit = 2
	h := newEstablished(t, cfg)
	far := tPeer + 1<<30
	h.expect(h.in(seg(FlagSYN, far, 0, 0)), "[.] seq 1001 ack 5001 win 4096")
	h.expect(h.in(seg(FlagSYN|FlagACK, far, tISS+1, 0)), "[.] seq 1001 ack 5001 win 4096")
	h.expect(h.in(seg(FlagSYN, far, 0, 0)))
	in := h.c.Info()
	require.Equal(t, uint64(2), in.ChallengeACKs)
	require.Equal(t, uint64(1), in.ChallengeSuppress)
	require.Equal(t, StateEstablished, h.c.State())
}

// An in-window segment acknowledging data never sent is dropped and
// answered within the challenge-ACK budget (RFC 5961 §5.2, §7), its data
// unread.
func TestACKOfUnsentDataChallenge(t *testing.T) {
	cfg := plainConfig()
	cfg.ChallengeACKLimit = 1
	h := newEstablished(t, cfg)
	h.expect(h.in(seg(FlagACK|FlagPSH, tPeer+1, tISS+1+1<<31, 8192, 'x')), "[.] seq 1001 ack 5001 win 4096")
	h.expect(h.in(seg(FlagACK|FlagFIN, tPeer+1, tISS+1+1<<31, 8192)))
	require.Equal(t, 0, h.c.Readable())
	require.Equal(t, uint64(1), h.c.Info().ChallengeSuppress)
	require.Equal(t, StateEstablished, h.c.State())
	// The real peer's data is taken as usual (its ACK is delayed).
	h.in(seg(FlagACK|FlagPSH, tPeer+1, tISS+1, 8192, 'y'))
	require.Equal(t, 1, h.c.Readable())
}

// Bare out-of-window segments get one ACK per OutOfWindowACKInterval (500
// ms); segments with data or a FIN are answered every time.
func TestOutOfWindowACKInterval(t *testing.T) {
	h := newEstablished(t, plainConfig())
	old := tPeer + 3<<30 // far outside the window
	ack := "[.] seq 1001 ack 5001 win 4096"
	h.expect(h.in(seg(FlagACK, old, tISS+1, 8192)), ack)
	h.expect(h.in(seg(FlagACK, old, tISS+1, 8192)))
	h.expect(h.in(seg(FlagACK, old+7, tISS+9, 1)))
	h.expect(h.in(seg(FlagACK|FlagPSH, old, tISS+1, 8192, 'x')), ack)
	h.expect(h.in(seg(FlagACK|FlagFIN, old, tISS+1, 8192)), ack)
	require.Equal(t, uint64(2), h.c.Info().OOWACKSuppress)
	h.now += 499 * ms
	h.expect(h.in(seg(FlagACK, old, tISS+1, 8192)))
	h.now += ms
	h.expect(h.in(seg(FlagACK, old, tISS+1, 8192)), ack)
	require.Equal(t, uint64(3), h.c.Info().OOWACKSuppress)

	// A negative interval answers every one (RFC 9293 §3.10.7.4 as written).
	cfg := plainConfig()
	cfg.OutOfWindowACKInterval = -1
	h = newEstablished(t, cfg)
	for range 3 {
		h.expect(h.in(seg(FlagACK, old, tISS+1, 8192)), ack)
	}
}
