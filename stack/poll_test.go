package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// recordLink is a link for a Driven stack: it keeps every packet written
// to it; nothing is ever read from it (the test hands packets to Input).
type recordLink struct{ out [][]byte }

func (l *recordLink) Read([][]byte, []int, int) (int, error) { return 0, tun.ErrClosed }
func (l *recordLink) ReadGSO([][]byte, []int, []tun.GSO, int) (int, error) {
	return 0, tun.ErrClosed
}
func (l *recordLink) Write(bufs [][]byte, offset int) (int, error) {
	return l.WriteGSO(bufs, nil, offset)
}
func (l *recordLink) WriteGSO(bufs [][]byte, _ []tun.GSO, offset int) (int, error) {
	for _, b := range bufs {
		l.out = append(l.out, bytes.Clone(b[offset:]))
	}
	return len(bufs), nil
}
func (l *recordLink) GSOMaxSize() int { return 0 }
func (l *recordLink) MTU() int        { return 1500 }
func (l *recordLink) BatchSize() int  { return 1 }
func (l *recordLink) Close() error    { return nil }

func (l *recordLink) take() [][]byte {
	o := l.out
	l.out = nil
	return o
}

// zeroReader makes every secret zero: repeatable ISNs and ports.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// drivenPassiveOpen runs a passive open with a lost first ACK on a Driven
// stack and returns every packet the stack wrote, in order.
func drivenPassiveOpen(t *testing.T) [][]byte {
	t.Helper()
	link := &recordLink{}
	clk := NewManualClock(tcp.Time(time.Hour))
	s, err := New(Options{Links: []tun.Link{link}, Addrs: []netip.Addr{addrB}, Clock: clk, Driven: true, Rand: zeroReader{}})
	require.NoError(t, err)
	defer s.Close()
	ln, err := s.ListenBacklog("tcp", ":80", 4)
	require.NoError(t, err)
	cli := netip.AddrPortFrom(addrA, 40000)
	var all [][]byte

	syn := synSeg(1000)
	t0 := clk.Now()
	require.NoError(t, s.Input(0, [][]byte{tcpPacket(cli, srvB, &syn)}, nil, t0))
	require.Empty(t, link.out, "nothing leaves before Flush: no writer goroutine")
	s.Poll(t0)
	out := link.take()
	require.Len(t, out, 1)
	_, _, sa := parseTCP(t, out[0])
	require.Equal(t, tcp.FlagSYN|tcp.FlagACK, sa.Flags)
	require.Equal(t, tcp.Seq(1001), sa.Ack)
	all = append(all, out...)

	// The SYN-ACK is not acknowledged: its retransmission timer (1 s,
	// RFC 6298 §2.1) is the next timer, and nothing fires before it.
	at, ok := s.NextTimer()
	require.True(t, ok)
	require.Equal(t, time.Second, at.Sub(t0))
	clk.Advance(at.Sub(t0) - time.Millisecond)
	s.Poll(clk.Now())
	require.Empty(t, link.take())
	clk.Advance(time.Millisecond)
	s.Poll(clk.Now())
	out = link.take()
	require.Len(t, out, 1)
	_, _, re := parseTCP(t, out[0])
	require.Equal(t, sa.Seq, re.Seq)
	require.Equal(t, tcp.FlagSYN|tcp.FlagACK, re.Flags)
	all = append(all, out...)

	// The ACK completes it; Accept under a passed deadline does not block.
	ack := tcp.Segment{Seq: 1001, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 512}
	ack.Options.HasTimestamp, ack.Options.TSVal, ack.Options.TSEcr = true, 5001, re.Options.TSVal
	require.NoError(t, s.Input(0, [][]byte{tcpPacket(cli, srvB, &ack)}, nil, clk.Now()))
	s.Poll(clk.Now())
	require.Empty(t, link.take())
	require.NoError(t, ln.SetDeadline(time.Unix(1, 0)))
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	_, err = ln.AcceptConn()
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "second Accept: %v", err)
	require.NoError(t, c.SetDeadline(time.Unix(1, 0)))
	n, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	s.Flush()
	out = link.take()
	require.Len(t, out, 1)
	_, _, data := parseTCP(t, out[0])
	require.Equal(t, "hello", string(data.Payload))
	require.Equal(t, sa.Seq+1, data.Seq)
	all = append(all, out...)
	_, err = c.Read(make([]byte, 10))
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "Read with nothing to read: %v", err)
	return all
}

// TestDrivenStack: a Driven stack moves only when Input, RunTimers and
// Flush are called, its timers fire exactly when NextTimer says, and two
// runs with the same secrets write byte-identical packets.
func TestDrivenStack(t *testing.T) {
	a := drivenPassiveOpen(t)
	b := drivenPassiveOpen(t)
	require.Equal(t, a, b)
}

// TestDrivenStartDial: StartDial returns in SYN-SENT with the SYN queued,
// with the socket's own configuration (an MSS set before connect), and
// the connection's error (the peer's refusal) is read with Err.
func TestDrivenStartDial(t *testing.T) {
	link := &recordLink{}
	clk := NewManualClock(tcp.Time(time.Hour))
	s, err := New(Options{Links: []tun.Link{link}, Addrs: []netip.Addr{addrB}, Clock: clk, Driven: true,
		EphemeralMin: 5001, EphemeralMax: 5001})
	require.NoError(t, err)
	defer s.Close()
	cfg := tcp.DefaultConfig()
	cfg.MSS = 1000
	remote := netip.AddrPortFrom(addrA, 8080)
	c, err := s.StartDial(remote, &cfg)
	require.NoError(t, err)
	require.Equal(t, tcp.StateSynSent, c.State())
	s.Flush()
	out := link.take()
	require.Len(t, out, 1)
	src, _, syn := parseTCP(t, out[0])
	require.Equal(t, uint16(5001), src.Port())
	require.Equal(t, uint16(1000), syn.Options.MSS)
	require.NoError(t, c.Err())
	rst := tcp.Segment{Seq: 0, Ack: syn.Seq + 1, Flags: tcp.FlagRST | tcp.FlagACK}
	require.NoError(t, s.Input(0, [][]byte{tcpPacket(remote, src, &rst)}, nil, clk.Now()))
	s.Poll(clk.Now())
	require.ErrorIs(t, c.Err(), syscall.ECONNREFUSED)
	require.Zero(t, s.NumConns())
}
