package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// stackPacedCC is a test algorithm: no window limit to speak of, and a
// fixed pacing rate of 3 MB/s (3000 bytes per millisecond).
type stackPacedCC struct{}

func (stackPacedCC) Name() string                           { return "stack-test-paced" }
func (stackPacedCC) CWnd() uint32                           { return 1 << 20 }
func (stackPacedCC) SSThresh() uint32                       { return 1 << 31 }
func (stackPacedCC) PacingRate() uint64                     { return 3000000 }
func (stackPacedCC) OnAck(now tcp.Time, rs *tcp.RateSample) {}
func (stackPacedCC) OnEvent(now tcp.Time, ev tcp.CCEvent)   {}
func (stackPacedCC) SetCWnd(cwnd uint32)                    {}

func init() {
	tcp.RegisterCongestionControl("stack-test-paced", func(tcp.CCConfig) tcp.CongestionControl { return stackPacedCC{} })
}

// TestPacedConnWokenByShardTimer: a paced connection sends one
// super-segment of 1 ms at its rate (3 segments of 1000 bytes: the pipe
// has offloads), then nothing until virtual time reaches the next
// departure; the shard's timer, armed from the Conn's NextDeadline, wakes
// it for each one.
func TestPacedConnWokenByShardTimer(t *testing.T) {
	clk := NewManualClock(0)
	r := newRawPeer(t, func(o *Options) {
		o.Clock = clk
		o.TCP.CongestionControl = "stack-test-paced"
	})
	ln, err := r.s.Listen("tcp", ":80")
	require.NoError(t, err)
	cli := netip.AddrPortFrom(addrA, 40000)
	syn := tcp.Segment{Seq: 100, Flags: tcp.FlagSYN, Window: 65535}
	syn.Options.HasMSS, syn.Options.MSS = true, 1000
	r.send(tcpPacket(cli, srvB, &syn))
	sa := r.expectTCP(srvB, cli, tcp.FlagSYN|tcp.FlagACK)
	ack := tcp.Segment{Seq: 101, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 65535}
	r.send(tcpPacket(cli, srvB, &ack))
	c, err := ln.Accept()
	require.NoError(t, err)
	require.Equal(t, uint64(3000000), c.(*Conn).Info().PacingRate)
	_, err = c.Write(make([]byte, 12000))
	require.NoError(t, err)

	start := clk.Now()
	next := sa.Seq + 1
	for i := 0; i < 4; i++ {
		if i > 0 {
			r.none() // nothing before the next departure, however long we wait in real time
			clk.Advance(time.Millisecond - time.Nanosecond)
			r.none()
			clk.Advance(time.Nanosecond)
			require.Equal(t, start.Add(time.Duration(i)*time.Millisecond), clk.Now())
		}
		for k := 0; k < 3; k++ {
			got := r.expectTCPAny(srvB, cli)
			require.Len(t, got.Payload, 1000, "departure %d segment %d", i, k)
			require.Equal(t, next, got.Seq, "departure %d segment %d", i, k)
			next += 1000
		}
	}
	r.none()
	require.Equal(t, sa.Seq+12001, next)
}
