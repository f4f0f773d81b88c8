package tcp_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// This file runs the example algorithm (example_cc_test.go) through a pair
// of tcp.Conns in virtual time, using only the package's public API: a
// sender behind a 10 Mbit/s bottleneck with an unbounded FIFO queue and a
// 40 ms round trip, so a window larger than the path's 50 kB
// bandwidth-delay product shows up as queueing delay.

// hop is a segment on its way, arriving at at.
type hop struct {
	at  tcp.Time
	seg tcp.Segment
}

// pathEnd is one side's Emitter: segments leave through a bottleneck of
// rate bytes/s (0: none) and arrive delay later.
type pathEnd struct {
	c     *tcp.Conn
	now   tcp.Time
	rate  uint64
	delay time.Duration
	busy  tcp.Time // when the bottleneck is free again
	out   []hop    // FIFO: arrival times never decrease
}

func (p *pathEnd) Emit(seg *tcp.Segment) {
	cp := *seg
	cp.Payload = append([]byte(nil), seg.Payload...)
	dep := p.now
	if p.rate > 0 {
		wire := uint64(len(cp.Payload) + 52) // IPv4 + TCP with timestamps
		p.busy = max(p.busy, p.now).Add(time.Duration(wire * uint64(time.Second) / p.rate))
		dep = p.busy
	}
	p.out = append(p.out, hop{at: dep.Add(p.delay), seg: cp})
}

// pathResult is what one transfer through the path showed.
type pathResult struct {
	done       time.Duration // when the receiver had read everything
	maxSRTT    time.Duration // largest smoothed RTT the sender saw
	maxPacing  uint64
	received   []byte
	sentOK     bool
	senderInfo tcp.Info
}

// transfer sends size bytes from a (running cc) to b through the path.
func transfer(t *testing.T, cc string, size int) pathResult {
	t.Helper()
	const (
		rate  = 10e6 / 8
		delay = 20 * time.Millisecond
	)
	cfg := tcp.Config{CongestionControl: cc}
	require.NoError(t, cfg.Validate())
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*7 + i>>11)
	}
	var now tcp.Time
	a := &pathEnd{rate: rate, delay: delay}
	b := &pathEnd{delay: delay}
	a.c = tcp.Dial(now, cfg, 1000)
	a.c.Output(now, a)
	var res pathResult
	written := 0
	buf := make([]byte, 64<<10)
	for step := 0; step < 1<<20; step++ {
		// The next event: an arrival or a timer.
		next, ok := tcp.Time(0), false
		consider := func(at tcp.Time) {
			if !ok || at < next {
				next, ok = at, true
			}
		}
		for _, p := range []*pathEnd{a, b} {
			if len(p.out) > 0 {
				consider(p.out[0].at)
			}
			if p.c != nil {
				if at, armed := p.c.NextDeadline(); armed {
					consider(at)
				}
			}
		}
		require.True(t, ok, "nothing left to happen")
		now = max(now, next)
		a.now, b.now = now, now
		for _, p := range []*pathEnd{a, b} {
			peer := b
			if p == b {
				peer = a
			}
			for len(p.out) > 0 && p.out[0].at <= now {
				seg := &p.out[0].seg
				if peer.c == nil {
					peer.c = tcp.AcceptSYN(now, cfg, 5000, seg) // the SYN
				} else {
					peer.c.Input(now, seg)
				}
				p.out = p.out[1:]
			}
		}
		if a.c.State() == tcp.StateEstablished && written < size {
			n, err := a.c.Write(payload[written:])
			require.NoError(t, err)
			written += n
			if written == size {
				a.c.CloseWrite()
			}
		}
		if b.c != nil {
			for {
				n, _ := b.c.Read(buf)
				if n == 0 {
					break
				}
				res.received = append(res.received, buf[:n]...)
			}
			b.c.Output(now, b)
		}
		a.c.Output(now, a)
		in := a.c.Info()
		res.maxSRTT = max(res.maxSRTT, in.RTT)
		res.maxPacing = max(res.maxPacing, in.PacingRate)
		if len(res.received) == size {
			res.done = time.Duration(now)
			res.sentOK = bytes.Equal(res.received, payload)
			res.senderInfo = in
			return res
		}
	}
	t.Fatalf("%s: transfer did not finish (%d of %d bytes)", cc, len(res.received), size)
	return res
}

// TestExampleCongestionControlKeepsTheQueueShort: NewReno fills the
// bottleneck's queue until the receive window stops it (the RTT grows far
// beyond the path's 40 ms); the example delay-based algorithm keeps it
// short while moving the data nearly as fast.
func TestExampleCongestionControlKeepsTheQueueShort(t *testing.T) {
	const size = 2 << 20
	reno := transfer(t, "newreno", size)
	ex := transfer(t, "delayaimd", size)
	t.Logf("newreno:   done in %v, max srtt %v", reno.done, reno.maxSRTT)
	t.Logf("delayaimd: done in %v, max srtt %v, max pacing %d B/s, cwnd at the end %d",
		ex.done, ex.maxSRTT, ex.maxPacing, ex.senderInfo.CWnd)
	require.True(t, reno.sentOK, "newreno: content")
	require.True(t, ex.sentOK, "delayaimd: content")
	assert.Equal(t, "delayaimd", ex.senderInfo.CC)

	assert.Greater(t, reno.maxSRTT, 150*time.Millisecond, "newreno fills the queue")
	assert.Less(t, ex.maxSRTT, 80*time.Millisecond, "delayaimd keeps the RTT near the path's 40 ms")
	assert.Greater(t, ex.maxPacing, uint64(0), "delayaimd paces")
	// 2 MiB at 10 Mbit/s takes 1.75 s on the wire: within 25% of that.
	assert.Less(t, ex.done, reno.done*5/4, "and is not much slower")
	assert.Less(t, ex.done, 2200*time.Millisecond)
}
