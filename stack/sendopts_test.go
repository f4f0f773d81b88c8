package stack

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// gsoRecordLink is a recordLink with segmentation offload: the stack
// writes super-packets to it.
type gsoRecordLink struct{ recordLink }

func (l *gsoRecordLink) GSOMaxSize() int { return tun.MaxPacketSize }

// WriteGSO completes the partial checksums a device would (of a
// super-packet, over all of it) and keeps the packets.
func (l *gsoRecordLink) WriteGSO(bufs [][]byte, gso []tun.GSO, offset int) (int, error) {
	for i, b := range bufs {
		var g tun.GSO
		if i < len(gso) {
			g = gso[i]
		}
		g.Type = tun.GSONone
		if err := tun.CompleteChecksum(b[offset:], g); err != nil {
			return i, err
		}
	}
	return l.recordLink.WriteGSO(bufs, gso, offset)
}

func (l *gsoRecordLink) Write(bufs [][]byte, offset int) (int, error) {
	return l.WriteGSO(bufs, nil, offset)
}

// drivenSender is an accepted connection on a Driven stack with GSO whose
// peer offered MSS 1000 and a 32896-byte window, without timestamps: the
// corpus's notsent_lowat numbers. seq is the stack's next sequence number.
type drivenSender struct {
	s    *Stack
	clk  *ManualClock
	link *gsoRecordLink
	c    *Conn
	cli  netip.AddrPort
	iss  tcp.Seq
}

func newDrivenSender(t *testing.T) *drivenSender {
	t.Helper()
	d := &drivenSender{link: &gsoRecordLink{}, clk: NewManualClock(tcp.Time(time.Hour)), cli: netip.AddrPortFrom(addrA, 40000)}
	s, err := New(Options{Links: []tun.Link{d.link}, Addrs: []netip.Addr{addrB}, Clock: d.clk, Driven: true, Rand: zeroReader{}})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	d.s = s
	ln, err := s.ListenBacklog("tcp", ":80", 4)
	require.NoError(t, err)
	syn := synSeg(1000)
	syn.Options.MSS, syn.Options.HasTimestamp, syn.Window = 1000, false, 32792
	d.input(t, syn)
	_, _, sa := parseTCP(t, d.link.take()[0])
	d.iss = sa.Seq
	d.clk.Advance(10 * time.Millisecond)
	d.input(t, tcp.Segment{Seq: 1001, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 257})
	require.NoError(t, ln.SetDeadline(time.Unix(1, 0)))
	d.c, err = ln.AcceptConn()
	require.NoError(t, err)
	require.NoError(t, d.c.SetDeadline(time.Unix(1, 0)))
	return d
}

func (d *drivenSender) input(t *testing.T, seg tcp.Segment) {
	t.Helper()
	require.NoError(t, d.s.Input(0, [][]byte{tcpPacket(d.cli, srvB, &seg)}, nil, d.clk.Now()))
	d.s.Poll(d.clk.Now())
}

// ack acknowledges up to the stack's byte n (1 is its first data byte).
func (d *drivenSender) ack(t *testing.T, n int) {
	d.clk.Advance(10 * time.Millisecond)
	d.input(t, tcp.Segment{Seq: 1001, Ack: d.iss + tcp.Seq(n), Flags: tcp.FlagACK, Window: 257})
}

// sent returns what the stack wrote since the last call, as payload
// lengths with a P for PSH ("10000", "100P").
func (d *drivenSender) sent(t *testing.T) []string {
	t.Helper()
	d.s.Flush()
	var out []string
	for _, p := range d.link.take() {
		_, _, seg := parseTCP(t, p)
		s := itoa(len(seg.Payload))
		if seg.Flags&tcp.FlagPSH != 0 {
			s += "P"
		}
		out = append(out, s)
	}
	return out
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// TestConnNotSentLowat: with SetNotSentLowat(4000) a non-blocking Write of
// 59000 bytes queues 26000 (the first 16000-byte chunk, whose first 10000
// leave at once, then the rest of its tail's chunk), as Linux's does in the
// corpus's notsent-lowat-setsockopt.pkt; a new chunk starts again once
// what the ACKs let out brings the unsent bytes below the mark.
func TestConnNotSentLowat(t *testing.T) {
	d := newDrivenSender(t)
	require.NoError(t, d.c.SetNotSentLowat(4000))
	n, err := d.c.Write(make([]byte, 59000))
	require.Equal(t, 26000, n)
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "%v", err)
	require.Equal(t, []string{"2000P", "2000P", "2000P", "2000P", "2000P"}, d.sent(t))
	in := d.c.Info()
	require.Equal(t, uint32(16000), in.NotSent)
	require.Equal(t, uint32(4000), in.NotSentLowat)
	// Each ACK lets out what slow start allows, in super-segments sized
	// as Linux's TSO packets; a lone segment left over waits for the next
	// ACK (tcp_tso_should_defer).
	unsent := 16000
	for i, a := range []int{2001, 4001, 6001, 8001} {
		d.ack(t, a)
		want := [][]string{{"2000P", "2000P"}, {"2000P", "2000P"}, {"3000P"}, {"3000P"}}[i]
		require.Equal(t, want, d.sent(t), "after ACK %d", a)
		unsent -= []int{4000, 4000, 3000, 3000}[i]
		require.Equal(t, uint32(unsent), d.c.Info().NotSent, "after ACK %d", a)
	}
	// Below the mark (poll's POLLOUT): the 2000 unsent bytes' chunk is
	// filled to the 16000-byte size goal.
	n, _ = d.c.Write(make([]byte, 20000))
	require.Equal(t, 14000, n)
}

// TestConnCorkMoreEOR: SetCork holds a 100-byte write until the cork comes
// off; a WriteMsg with tcp.WriteMore holds its tail until the next plain
// write; a tcp.WriteEOR record ends its super-segment.
func TestConnCorkMoreEOR(t *testing.T) {
	d := newDrivenSender(t)
	require.NoError(t, d.c.SetCork(true))
	n, err := d.c.Write(make([]byte, 100))
	require.NoError(t, err)
	require.Equal(t, 100, n)
	require.Empty(t, d.sent(t))
	d.clk.Advance(50 * time.Millisecond)
	d.s.Poll(d.clk.Now())
	require.Empty(t, d.sent(t))
	require.NoError(t, d.c.SetCork(false))
	require.Equal(t, []string{"100P"}, d.sent(t))
	d.ack(t, 101)

	require.NoError(t, d.c.SetNoDelay(true))
	_, err = d.c.WriteMsg(make([]byte, 40), tcp.WriteMore)
	require.NoError(t, err)
	require.Empty(t, d.sent(t))
	_, err = d.c.Write(make([]byte, 20))
	require.NoError(t, err)
	require.Equal(t, []string{"60P"}, d.sent(t))
	d.ack(t, 161)

	_, err = d.c.WriteMsg(make([]byte, 2500), tcp.WriteEOR)
	require.NoError(t, err)
	_, err = d.c.Write(make([]byte, 3000))
	require.NoError(t, err)
	// The record ends a super-segment (sized as Linux's TSO packets: two
	// segments at this rate), and what follows starts the next one.
	require.Equal(t, []string{"2000P", "500P", "2000P", "1000P"}, d.sent(t))
}
