package tcp

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBulkTransfer(t *testing.T) {
	mk := func(loss, dup, reorder, corrupt float64) func() (*simLink, *simLink) {
		return func() (*simLink, *simLink) {
			la := &simLink{delay: 10 * time.Millisecond, perByte: 80 * time.Nanosecond, maxQueue: 50 * time.Millisecond,
				loss: loss, dup: dup, reorder: reorder, corrupt: corrupt, splitGSO: true}
			lb := &simLink{delay: 10 * time.Millisecond, loss: loss, dup: dup, reorder: reorder}
			return la, lb
		}
	}
	cases := []struct {
		name  string
		links func() (*simLink, *simLink)
		size  int
		gso   bool
		sack  bool
	}{
		{"clean", mk(0, 0, 0, 0), 32 << 20, false, true},
		{"clean_gso", mk(0, 0, 0, 0), 8 << 20, true, true},
		{"loss1pct", mk(0.01, 0, 0, 0), 8 << 20, false, true},
		{"loss1pct_nosack", mk(0.01, 0, 0, 0), 8 << 20, false, false},
		{"impaired", mk(0.01, 0.01, 0.02, 0.005), 32 << 20, true, true},
		{"impaired_nosack", mk(0.01, 0.01, 0.02, 0.005), 8 << 20, false, false},
	}
	gro := func() (*simLink, *simLink) {
		la, lb := mk(0.005, 0.005, 0.01, 0)()
		la.splitGSO = false // super-segments arrive whole, as with GRO
		return la, lb
	}
	cases = append(cases, struct {
		name  string
		links func() (*simLink, *simLink)
		size  int
		gso   bool
		sack  bool
	}{"gso_gro_impaired", gro, 16 << 20, true, true})
	for _, cc := range []string{"newreno", "cubic"} {
		for i, tc := range cases {
			t.Run(cc+"_"+tc.name, func(t *testing.T) {
				la, lb := tc.links()
				n := bulk(t, cc, tc.size, uint64(i+1), la, lb, func(c *Config) {
					c.DisableSACK = !tc.sack
					if tc.gso {
						c.GSOMaxSize = 65000
					}
					if strings.HasPrefix(tc.name, "clean") {
						// The 1 MiB window keeps the flight within
						// the link's queue: no loss, so the ACKs
						// counted below are the delayed ACKs alone.
						// Auto-tuned buffers would let cwnd overflow
						// the queue, as a real sender does.
						c.RecvBufferMax = -1
					}
				})
				in := n.conns[0].Info()
				if strings.HasPrefix(tc.name, "clean") {
					// Delayed ACK acknowledges every second full-sized
					// segment, and reads during bulk transfer send no window
					// updates of their own (tcp_cleanup_rbuf's rule, see
					// afterRead): about one ACK per two data segments (one per
					// data segment with a window update on every read).
					// The slow-start overshoot still drops ~135 segments at
					// the queue, and each out-of-order arrival during that
					// recovery is ACKed at once (RFC 5681 §4.2): 62% allows
					// for those, one ACK per segment would be 100%.
					rcv := n.conns[1].Info()
					require.LessOrEqual(t, rcv.SegsOut*100, rcv.DataSegsIn*62,
						"receiver sent %d segments for %d data segments", rcv.SegsOut, rcv.DataSegsIn)
					// The queue's drops are the only losses: each is
					// retransmitted once, and nothing that arrived is
					// sent again (no D-SACK).
					require.Equal(t, la.stats.queueDrops, int(in.Retransmits), "retransmissions for %d drops", la.stats.queueDrops)
					require.Zero(t, rcv.DSACKsSent)
				}
				t.Logf("%s: %v virtual, retrans %d, rto %d, fastrec %d, tlp %d/%d, cwnd %d, link %+v", tc.name,
					time.Duration(n.now), in.Retransmits, in.RTOExpirations, in.FastRecoveries, in.TLPProbes, in.TLPRecoveries, in.CWnd, la.stats)
			})
		}
	}
}

// CUBIC fills a clean 40 ms, 100 Mbit/s path with a one-BDP queue, send and
// receive buffers auto-tuned (up to 4 and 6 MiB, several times what the path
// holds): the slow-start overshoot costs one recovery, and a loss right
// after it reduces from cwnd, not from SND.MAX - SND.UNA swollen by what the
// receiver SACKed meanwhile (which set ssthresh above the cwnd that had just
// overflowed the queue: 68 Mbit/s, two RTOs and 8,265 drops before). The
// overshoot drops about every other segment of a 2 MB flight: the
// scoreboard keeps all those ranges, so nothing that arrived is resent (a
// fixed 256-range bound made 404 retransmissions spurious).
func TestCUBICFillsCleanBottleneckAutoTuned(t *testing.T) {
	const size = 32 << 20
	la, lb := bottleneck(0)
	n := bulk(t, "cubic", size, 7, la, lb, func(c *Config) {
		c.SendBufferSize = 0 // the defaults, auto-tuned
		c.RecvBufferSize = 0
	})
	in := n.conns[0].Info()
	mbps := float64(size) * 8 / time.Duration(n.now).Seconds() / 1e6
	t.Logf("%.1f Mbit/s (%v virtual), retrans %d, rto %d, fastrec %d, link %+v, sndbuf %d", mbps,
		time.Duration(n.now), in.Retransmits, in.RTOExpirations, in.FastRecoveries, la.stats, in.SndBuf)
	require.Zero(t, in.RTOExpirations)
	require.Greater(t, mbps, 88.0)
	require.Less(t, la.stats.queueDrops, 1600)
	require.Equal(t, la.stats.queueDrops, int(in.Retransmits))
	require.Zero(t, n.conns[1].Info().DSACKsSent)
}
