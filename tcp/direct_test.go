package tcp

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// In-order data goes into a lent read buffer first, the receive buffer gets
// only what does not fit, and the bytes delivered directly never take window.
func TestDirectRead(t *testing.T) {
	h := newEstablished(t, plainConfig()) // RCV.NXT 5001, our window 4096
	var d DirectRead
	p := make([]byte, 1000)
	require.True(t, h.c.StartDirectRead(&d, p))

	a, b := data(600, 1), data(600, 101)
	h.expect(h.in(seg(FlagACK|FlagPSH, tPeer+1, tISS+1, 8192, a...))) // delayed ACK
	require.Zero(t, h.c.Readable(), "a fits the lent buffer")
	require.Equal(t, EventReadable, h.c.TakeEvents()&EventReadable)
	// b: 400 bytes complete the lent buffer, 200 queue in the receive
	// buffer. Only those 200 take window.
	h.expect(h.in(seg(FlagACK|FlagPSH, tPeer+601, tISS+1, 8192, b...)))
	require.Equal(t, 200, h.c.Readable())
	require.Equal(t, 3896, h.c.rb.Free(), "the receive buffer holds only the 200")
	// The delayed ACK: receiver SWS avoidance keeps the right edge at 9097
	// until it can move by an MSS (RFC 9293 §3.8.6.2.2).
	h.expect(h.advance(h.now+sec), "[.] seq 1001 ack 6201 win 2896")

	require.Equal(t, 1000, h.c.EndDirectRead())
	all := append(append([]byte(nil), a...), b...)
	require.True(t, bytes.Equal(all[:1000], p), "lent buffer holds the first 1000 bytes in order")
	require.Zero(t, h.c.EndDirectRead(), "a second End has nothing")

	// With bytes queued the buffer is not taken: they must be read first.
	require.False(t, h.c.StartDirectRead(&d, p))
	rest := make([]byte, 300)
	n, err := h.c.Read(rest)
	require.NoError(t, err)
	require.Equal(t, all[1000:], rest[:n])

	// After the loan ends, data goes to the receive buffer, never to p.
	require.True(t, h.c.StartDirectRead(&d, p))
	require.Zero(t, h.c.EndDirectRead())
	clear(p)
	h.in(seg(FlagACK|FlagPSH, tPeer+1201, tISS+1, 8192, data(10, 7)...))
	require.Equal(t, 10, h.c.Readable())
	require.Equal(t, make([]byte, 1000), p)
	require.Equal(t, uint64(1210), h.c.Info().BytesReceived)
}

// Out-of-order data waits in the reassembly queue; the segment that fills the
// gap goes to the lent buffer, and what it releases queues behind it.
func TestDirectReadWithReordering(t *testing.T) {
	h := newEstablished(t, plainConfig())
	var d DirectRead
	p := make([]byte, 4096)
	require.True(t, h.c.StartDirectRead(&d, p))
	a, b := data(500, 1), data(500, 77)
	h.in(seg(FlagACK, tPeer+501, tISS+1, 8192, b...)) // out of order
	require.Zero(t, h.c.Readable())
	h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, a...))
	require.Equal(t, 500, h.c.Readable(), "b came out of the reassembly queue behind a")
	require.Equal(t, 500, h.c.EndDirectRead())
	require.Equal(t, a, p[:500])
	got := make([]byte, 1000)
	n, _ := h.c.Read(got)
	require.Equal(t, b, got[:n])
}

// TestDirectReadCoalescesACKs: segments that arrive while the reader is busy
// with the data lent to it are ACKed together when it takes its buffer back,
// as Linux coalesces the segments arriving while its reader owns the socket
// (tcp_add_backlog) and ACKs them on release (tcp_cleanup_rbuf): a train of
// three is ACKed whole, not as a pair plus an odd segment left for the
// delayed-ACK timer. Without a busy reader, every second segment is ACKed.
func TestDirectReadCoalescesACKs(t *testing.T) {
	cfg := plainConfig()
	cfg.RecvBufferSize = 64 << 10
	h := newEstablished(t, cfg) // RCV.NXT 5001, the peer's MSS 1460
	var d DirectRead
	p := make([]byte, 64<<10)
	require.True(t, h.c.StartDirectRead(&d, p))
	h.expect(h.in(seg(FlagACK, tPeer+1, tISS+1, 8192, data(1460, 0)...)))
	h.expect(h.in(seg(FlagACK, tPeer+1461, tISS+1, 8192, data(1460, 0)...)))
	h.expect(h.in(seg(FlagACK, tPeer+2921, tISS+1, 8192, data(1460, 0)...)))
	require.Equal(t, 3*1460, h.c.EndDirectRead())
	h.expect(h.output(), "[.] seq 1001 ack 9381 win 65535")
	// A reader that took one segment and let go: the pair rule again.
	h.expect(h.in(seg(FlagACK, tPeer+4381, tISS+1, 8192, data(1460, 0)...)))
	h.expect(h.in(seg(FlagACK, tPeer+5841, tISS+1, 8192, data(1460, 0)...)), "[.] seq 1001 ack 12301 win 62615")
	// A lone segment taken back by the reader waits for the timer, as
	// Linux's tcp_cleanup_rbuf wants more than one full segment.
	h.c.Read(make([]byte, 64<<10))
	require.True(t, h.c.StartDirectRead(&d, p))
	h.expect(h.in(seg(FlagACK, tPeer+7301, tISS+1, 8192, data(1460, 0)...)))
	require.Equal(t, 1460, h.c.EndDirectRead())
	h.expect(h.output())
	h.expect(h.advance(h.now+40*ms), "[.] seq 1001 ack 13761 win 65535")
}
