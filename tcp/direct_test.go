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
