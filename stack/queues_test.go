package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

func TestShardCount(t *testing.T) {
	for _, tt := range []struct{ requested, procs, queues, want int }{
		{0, 2, 1, 2},
		{0, 2, 2, 2},
		{0, 2, 4, 4},
		{0, 3, 2, 4},
		{0, 8, 4, 8},
		{0, 1, 16, 16},
		{0, 0, 1, 1},
		{3, 8, 4, 3}, // an explicit count stays
		{1, 8, 2, 1},
	} {
		assert.Equal(t, tt.want, shardCount(tt.requested, tt.procs, tt.queues), "%+v", tt)
	}
}

// Every queue gets the same number of shards, and every shard a queue.
func TestQueueIndex(t *testing.T) {
	for nq := 1; nq <= tun.MaxQueues; nq++ {
		for procs := 1; procs <= 8; procs++ {
			n := shardCount(0, procs, nq)
			per := make([]int, nq)
			for sh := range n {
				q := queueIndex(sh, nq)
				require.True(t, q >= 0 && q < nq, "shard %d of %d → queue %d of %d", sh, n, q, nq)
				per[q]++
			}
			for q := range per {
				assert.Equal(t, n/nq, per[q], "queue %d of %d, %d shards", q, nq, n)
			}
		}
	}
	assert.Equal(t, 0, queueIndex(5, 1))
	assert.Equal(t, 0, queueIndex(5, 0))
}

// multiQueuePipe is a link of several pipe queues, as a multi-queue TUN
// shows itself to AddLink.
type multiQueuePipe struct {
	*tun.PipeEnd // queue 0
	qs           []tun.Link
}

func (m *multiQueuePipe) QueueLinks() []tun.Link { return m.qs }

// newMultiQueueRawPeers makes a stack on one link of nq pipe queues, with a
// raw peer on each queue's far end.
func newMultiQueueRawPeers(t *testing.T, nq int) (*Stack, []*rawPeer) {
	t.Helper()
	mine := make([]*tun.PipeEnd, nq)
	m := &multiQueuePipe{}
	for i := range mine {
		var theirs *tun.PipeEnd
		mine[i], theirs = tun.NewPipe(1500)
		m.qs = append(m.qs, theirs)
	}
	m.PipeEnd = m.qs[0].(*tun.PipeEnd)
	s, err := New(Options{Links: []tun.Link{m}, Addrs: []netip.Addr{addrB, addrB6}})
	require.NoError(t, err)
	peers := make([]*rawPeer, nq)
	done := make([]chan struct{}, nq)
	for i := range peers {
		r := &rawPeer{t: t, s: s, l: mine[i], in: make(chan []byte, 1024)}
		peers[i], done[i] = r, make(chan struct{})
		go func() {
			defer close(done[i])
			bufs := [][]byte{make([]byte, 65536)}
			sizes := []int{0}
			for {
				n, err := r.l.Read(bufs, sizes, 0)
				if err != nil {
					return
				}
				for j := range n {
					r.in <- append([]byte(nil), bufs[j][:sizes[j]]...)
				}
			}
		}()
	}
	t.Cleanup(func() {
		s.Close()
		for _, d := range done {
			<-d
		}
	})
	return s, peers
}

// A passive open answers on the queue its SYN came in on, whatever its
// shard; a Dial's SYN leaves by its shard's queue.
func TestQueueOfConnection(t *testing.T) {
	const nq = 2
	s, peers := newMultiQueueRawPeers(t, nq)
	require.Len(t, s.shards, shardCount(0, len(s.shards), nq))
	assert.Len(t, *s.links.Load(), nq)
	assert.Len(t, *s.ifaces.Load(), 1)
	ln, err := s.Listen("tcp", "198.18.0.2:80")
	require.NoError(t, err)
	defer ln.Close()

	srv := netip.AddrPortFrom(addrB, 80)
	for i := range 16 {
		cli := netip.AddrPortFrom(addrA, uint16(40000+i))
		in := i % nq
		syn := synSeg(tcp.Seq(1000 * i))
		peers[in].send(tcpPacket(cli, srv, &syn))
		synAck := peers[in].expectTCP(srv, cli, tcp.FlagSYN|tcp.FlagACK)
		// The handshake's ACK and data on the same queue: the data's
		// ACK comes back there too.
		ack := tcp.Segment{Seq: tcp.Seq(1000*i) + 1, Ack: synAck.Seq + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 1000, Payload: []byte("hello")}
		peers[in].send(tcpPacket(cli, srv, &ack))
		got := peers[in].expectTCP(srv, cli, tcp.FlagACK)
		assert.Equal(t, tcp.Seq(1000*i)+6, got.Ack)
		for q, p := range peers {
			if q != in {
				p.none()
			}
		}
	}

	for i := range 8 {
		remote := netip.AddrPortFrom(addrA, uint16(9000+i))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		go func() {
			defer cancel()
			s.DialAddrPort(ctx, remote)
		}()
		// The first SYN out of any queue (an abandoned dial's RST may
		// still come from an earlier one), and the queue it left by.
		got := -1
		var local netip.AddrPort
		deadline := time.After(2 * time.Second)
		for got < 0 {
			var p []byte
			q := 0
			select {
			case p = <-peers[0].in:
			case p = <-peers[1].in:
				q = 1
			case <-deadline:
				t.Fatalf("dial %v: no SYN", remote)
			}
			src, dst, sg := parseTCP(t, p)
			if sg.Flags == tcp.FlagSYN && dst == remote {
				got, local = q, src
			}
		}
		assert.Equal(t, queueIndex(s.shardFor(tuple{local: local, remote: remote}).idx, nq), got, "dial %v from %v", remote, local)
		<-ctx.Done()
	}

	qs := s.QueueStats()
	require.Len(t, qs, nq)
	for q := range nq {
		assert.EqualValues(t, 16, qs[q].RxPackets, "queue %d: 8 handshakes of 2 packets in", q)
		assert.Equal(t, 0, qs[q].Link)
		assert.Equal(t, q, qs[q].Queue)
		assert.NotZero(t, qs[q].TxPackets, "queue %d", q)
	}
}
