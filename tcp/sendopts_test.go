package tcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// corkedPeer is an established connection whose peer sent MSS 1000 and a
// 32896-byte window (the corpus's numbers): our segments carry 1000 bytes.
func corkedPeer(t *testing.T, cfg Config) *harness {
	return establishRTT(t, cfg, 10*ms, Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 32896,
		Options: Options{HasMSS: true, MSS: 1000}})
}

// TestCorkHoldsPartialSegment: with TCP_CORK on, a 100-byte write waits
// (and full segments of a larger one go) until the cork comes off, which
// pushes the tail with PSH; TCP_NODELAY pushes through the cork once.
func TestCorkHoldsPartialSegment(t *testing.T) {
	h := corkedPeer(t, plainConfig())
	h.c.SetCork(true)
	require.True(t, h.c.Corked())
	h.c.Write(data(100, 0))
	h.expect(h.output())
	h.now += 50 * ms
	h.c.Write(data(2000, 0))
	h.expect(h.output(),
		"[.] seq 1001 ack 5001 win 4096 len 1000",
		"[.] seq 2001 ack 5001 win 4096 len 1000")
	h.now += 10 * ms
	h.c.SetCork(false)
	h.expect(h.output(), "[P.] seq 3001 ack 5001 win 4096 len 100")
	h.in(seg(FlagACK, tPeer+1, tISS+2101, 32896))

	h.c.SetCork(true)
	h.c.Write(data(40, 0))
	h.c.Write(data(40, 0))
	h.expect(h.output())
	h.c.SetNoDelay(true)
	h.expect(h.output(), "[P.] seq 3101 ack 5001 win 4096 len 80")
	// The push was once: still corked.
	h.c.Write(data(40, 0))
	h.expect(h.output())
}

// TestCorkCeilingIsPersistTimer: corked data with nothing in flight leaves
// when the persist timer fires, one RTO later (Linux's probe timer, the
// "200 ms ceiling" of tcp(7)), with PSH.
func TestCorkCeilingIsPersistTimer(t *testing.T) {
	h := corkedPeer(t, plainConfig())
	h.c.SetCork(true)
	h.c.Write(data(100, 0))
	t0 := h.now
	h.expect(h.output())
	at, ok := h.c.NextDeadline()
	require.True(t, ok)
	require.Equal(t, h.c.Info().RTO, at.Sub(t0))
	h.expect(h.advance(at - 1))
	h.expect(h.advance(at), "[P.] seq 1001 ack 5001 win 4096 len 100")
}

// TestWriteMoreHoldsTail: MSG_MORE holds the partial tail even with
// TCP_NODELAY, until a write without it (PSH on the end), or until
// TCP_NODELAY pushes it (no PSH: a MSG_MORE write marks none), or until a
// segment arrives; full segments go at once.
func TestWriteMoreHoldsTail(t *testing.T) {
	cfg := plainConfig()
	cfg.NoDelay = true
	h := corkedPeer(t, cfg)
	n, err := h.c.WriteMsg(data(40, 0), WriteMore)
	require.NoError(t, err)
	require.Equal(t, 40, n)
	h.expect(h.output())
	h.c.Write(data(20, 0))
	h.expect(h.output(), "[P.] seq 1001 ack 5001 win 4096 len 60")
	h.in(seg(FlagACK, tPeer+1, tISS+61, 32896))

	h.c.WriteMsg(data(40, 0), WriteMore)
	h.expect(h.output())
	h.c.SetNoDelay(true)
	h.expect(h.output(), "[.] seq 1061 ack 5001 win 4096 len 40")
	h.in(seg(FlagACK, tPeer+1, tISS+101, 32896))

	h.c.WriteMsg(data(2500, 0), WriteMore)
	h.expect(h.output(),
		"[.] seq 1101 ack 5001 win 4096 len 1000",
		"[.] seq 2101 ack 5001 win 4096 len 1000")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1101, 32896)), "[.] seq 3101 ack 5001 win 4096 len 500")
}

// TestWriteEORBoundsSegments: a MSG_EOR record's last byte ends a GSO
// super-segment (what follows starts the next one), a small record is not
// held by Nagle behind the one in flight (only the queue's last segment
// is), and an RTO retransmits no further than the record's end.
func TestWriteEORBoundsSegments(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.SendBufferSize = 64 << 10
	h := corkedPeer(t, cfg)
	h.c.WriteMsg(data(2500, 0), WriteEOR)
	h.c.Write(data(3000, 0))
	h.expect(h.output(),
		"[P.] seq 1001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 3001 ack 5001 win 4096 len 500",
		"[P.] seq 3501 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 5501 ack 5001 win 4096 len 1000")
	h.in(seg(FlagACK, tPeer+1, tISS+5501, 32896))

	// Without the flag the two writes share one super-segment.
	h.c.Write(data(2500, 0))
	h.c.Write(data(3000, 0))
	h.expect(h.output(),
		"[P.] seq 6501 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 8501 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 10501 ack 5001 win 4096 len 1500 gso 1000")
	h.in(seg(FlagACK, tPeer+1, tISS+11001, 32896))

	h.c.WriteMsg(data(400, 0), WriteEOR)
	h.c.WriteMsg(data(400, 0), WriteEOR)
	h.c.Write(data(400, 0))
	// The third, the queue's last and small, waits for Nagle.
	h.expect(h.output(),
		"[P.] seq 12001 ack 5001 win 4096 len 400",
		"[P.] seq 12401 ack 5001 win 4096 len 400")
	// After the RTO the records go again one per segment (a 1000-byte
	// window takes both, not one 800-byte segment).
	at, _ := h.c.NextDeadline()
	h.expect(h.advance(at),
		"[P.] seq 12001 ack 5001 win 4096 len 400",
		"[P.] seq 12401 ack 5001 win 4096 len 400")
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+11801, 32896)), "[P.] seq 12801 ack 5001 win 4096 len 400")
}

// TestNotSentLowatWrite: under TCP_NOTSENT_LOWAT a write fills the unsent
// tail to a whole size goal (the GSO size bounded by half the peer's
// window: 16000 here) and starts a new one only while fewer than lowat
// bytes are unsent, as Linux's tcp_sendmsg; the connection is writable
// again when what is sent brings the unsent bytes below the mark.
func TestNotSentLowatWrite(t *testing.T) {
	cfg := plainConfig()
	cfg.GSOMaxSize = 65535
	cfg.SendBufferSize = 256 << 10
	h := corkedPeer(t, cfg)
	h.c.SetNotSentLowat(4000)
	h.c.TakeEvents()
	p := data(59000, 0)
	n, _ := h.c.Write(p)
	require.Equal(t, 16000, n)
	require.Zero(t, h.c.Writable())
	h.expect(h.output(),
		"[P.] seq 1001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 3001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 5001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 7001 ack 5001 win 4096 len 2000 gso 1000",
		"[P.] seq 9001 ack 5001 win 4096 len 2000 gso 1000")
	// 6000 unsent: the tail's chunk takes 10000 more, then no new one.
	require.Positive(t, h.c.Writable())
	m, _ := h.c.Write(p[n:])
	require.Equal(t, 10000, m)
	require.Zero(t, h.c.Writable())
	in := h.c.Info()
	require.Equal(t, uint32(16000), in.NotSent)
	require.Equal(t, uint32(4000), in.NotSentLowat)
	require.True(t, h.c.lowatBlocked())
	// Each ACK of 2000 bytes lets 4000 more out (slow start), in
	// super-segments sized by tcp_tso_autosize at the growing rate; from
	// the third on a lone segment left over waits for the next ACK
	// (tcp_tso_should_defer).
	for i, ack := range []Seq{2001, 4001, 6001, 8001} {
		h.now += 10 * ms
		got := h.in(seg(FlagACK, tPeer+1, tISS+ack, 32896))
		sent := 0
		for _, s := range got {
			sent += len(s.Payload)
		}
		require.Equal(t, []int{4000, 4000, 3000, 3000}[i], sent, "ACK %d", i)
		require.Equal(t, i < 3, h.c.lowatBlocked(), "ACK %d: unsent %d", i, h.c.Info().NotSent)
	}
	h.c.SetNotSentLowat(0)
	require.False(t, h.c.lowatBlocked())
}

// TestInfoAdvMSSAndLastDataRecv: tcpi_advmss is the MSS we offered;
// tcpi_last_data_recv counts from the handshake, then from in-order data
// (InfoAt reads it at a later time than the connection has seen).
func TestInfoAdvMSSAndLastDataRecv(t *testing.T) {
	cfg := plainConfig()
	cfg.MSS = 1100
	h := corkedPeer(t, cfg)
	in := h.c.InfoAt(h.now + sec)
	require.Equal(t, uint16(1100), in.AdvMSS)
	require.Equal(t, uint16(1000), in.MSS)
	require.Equal(t, time.Second, in.LastDataRecv)
	h.now += sec
	h.in(seg(FlagACK|FlagPSH, tPeer+1, tISS+1, 32896, data(100, 0)...))
	require.Zero(t, h.c.InfoAt(h.now).LastDataRecv)
	require.Equal(t, 7*time.Millisecond, h.c.InfoAt(h.now+7*ms).LastDataRecv)
}

// TestInfoBusyAndRwndLimited: tcpi_busy_time runs while data is queued or
// in flight, tcpi_rwnd_limited while the peer's window holds the next
// segment back (the corpus's tcp-info-rwnd-limited.pkt timeline).
func TestInfoBusyAndRwndLimited(t *testing.T) {
	h := establishRTT(t, plainConfig(), 10*ms, Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 0,
		Options: Options{HasMSS: true, MSS: 1000}})
	require.Zero(t, h.c.Info().RwndLimited)
	h.c.Write(data(1000, 0))
	h.expect(h.output())
	t0 := h.now
	in := h.c.InfoAt(t0 + 100*ms)
	require.Equal(t, 100*time.Millisecond, in.RwndLimited)
	require.Equal(t, 100*time.Millisecond, in.BusyTime)
	h.now = t0 + 150*ms
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 2000)), "[P.] seq 1001 ack 5001 win 4096 len 1000")
	h.now += 30 * ms
	h.in(seg(FlagACK, tPeer+1, tISS+1001, 2000))
	in = h.c.InfoAt(h.now + sec)
	require.Equal(t, 150*time.Millisecond, in.RwndLimited)
	require.Equal(t, 180*time.Millisecond, in.BusyTime)
}

// TestWriteEORBoundsSACKRetransmission: a SACK recovery's retransmission
// of a hole holding two 300-byte records sends the first record alone.
func TestWriteEORBoundsSACKRetransmission(t *testing.T) {
	cfg := plainConfig()
	cfg.DisableSACK, cfg.Recovery, cfg.NoDelay = false, RecoverySACK, true
	h := establishRTT(t, cfg, 10*ms, Segment{Flags: FlagSYN | FlagACK, Seq: tPeer, Ack: tISS + 1, Window: 32896,
		Options: Options{HasMSS: true, MSS: 1000, SACKPermitted: true}})
	for range 8 {
		h.c.WriteMsg(data(300, 0), WriteEOR)
	}
	require.Len(t, h.output(), 8)
	var got []Segment
	for _, end := range []Seq{1901, 2201, 2501} {
		s := seg(FlagACK, tPeer+1, tISS+1, 32896)
		s.Options.NumSACK, s.Options.SACKBlocks[0] = 1, SACKBlock{Start: 1601, End: end}
		h.now += ms
		got = h.in(s)
	}
	h.expect(got, "[P.] seq 1001 ack 5001 win 4096 len 300")
}
