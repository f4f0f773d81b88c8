package stack

import (
	"sync/atomic"

	"github.com/ustack-net/ustack/tun"
)

// Multi-queue links. A TUN opened with several queues (tun.Options.Queues,
// IFF_MULTI_QUEUE) is one interface with a descriptor per queue; the stack
// runs a reader and a writer per queue, each queue a *link of its own, and
// the kernel spreads the flows it sends across the queues.
//
// Which queue a connection sends on, for its whole life: it must be one
// queue, since a connection's segments leave in the order they were
// emitted only because one queue's writer writes them in queue order.
//
// A passive open answers on the queue its SYN came in on, so a flow's
// replies go out through the queue it arrives on. This follows the
// kernel's choice, which is sticky: a kernel TCP socket caches the queue it
// transmits on (sk_tx_queue_mapping) and picks again only when it has
// nothing in flight (skb->ooo_okay), so answering on another queue would
// not move the flow but make every batch of ACKs a hand-off from the
// reader to the other queue's writer (measured: a third of the connection
// rate and a fifth of 8-stream upload at --queues 2). On a pick the tun
// driver takes the queue the flow's packets were last written to
// (automatic flow steering, tun_flow_update in drivers/net/tun.c; see
// tun.TestTUNMultiQueue) and that is the arrival queue again. So every
// packet of a flow is read by one queue's goroutine, which also writes
// the flow's ACKs itself (flushInline).
//
// A Dial has no arrival queue yet: it takes its shard's queue (queueFor),
// and the kernel's SYN-ACK and everything after follow our SYN there by
// the same flow steering. The shards are as many as a multiple of the
// queues (shardCount), so every queue has dialled connections, and as
// many.
//
// Shards stay keyed by the 4-tuple alone (every packet, and every
// application call, must find a connection without knowing its queue), so
// two queues' readers may take one shard's lock; the lock is per shard and
// held for one segment's work. A shard's timers queue their segments on
// each connection's own queue.
//
// Stateless answers (a RST to a segment of no connection, a SYN cookie's
// SYN-ACK) leave by the queue the packet they answer came in on.

// queueLinksOf returns the queues of l: those of a multi-queue TUN (a link
// with a QueueLinks method), else l alone.
func queueLinksOf(l tun.Link) []tun.Link {
	if m, ok := l.(interface{ QueueLinks() []tun.Link }); ok {
		if qs := m.QueueLinks(); len(qs) > 1 {
			return qs
		}
	}
	return []tun.Link{l}
}

// linkQueues is what the queues of one interface share.
type linkQueues struct {
	all []*link // queue i is all[i]
	// open counts the queues whose writers have not finished: the last
	// one closes the device (queue 0's Close closes every queue), so no
	// queue is closed while another still writes its final segments.
	open atomic.Int32
}

// queueIndex is the queue of a connection of shard number sh among nq
// queues.
func queueIndex(sh, nq int) int {
	if nq <= 1 {
		return 0
	}
	return sh % nq
}

// shardCount is the number of shards of a stack asked for requested (0:
// the default, procs) whose links have at most maxQueues queues: the
// default is rounded up to a multiple of maxQueues, so each queue gets
// the same number of shards. An explicit request is kept as it is.
func shardCount(requested, procs, maxQueues int) int {
	if requested > 0 {
		return requested
	}
	n := max(procs, 1)
	if maxQueues > 1 {
		n = (n + maxQueues - 1) / maxQueues * maxQueues
	}
	return n
}

// queueFor returns the queue of l's interface a Dial's connection of
// shard sh sends on (see above).
func (l *link) queueFor(sh *shard) *link {
	if l.q == nil || len(l.q.all) <= 1 {
		return l
	}
	return l.q.all[queueIndex(sh.idx, len(l.q.all))]
}

// closeLink closes l's device once l's writer is done: at once for a
// single queue, after the last queue's writer for a multi-queue one.
func (l *link) closeLink() {
	if l.q == nil {
		_ = l.l.Close()
		return
	}
	if l.q.open.Add(-1) == 0 {
		for _, q := range l.q.all {
			_ = q.l.Close()
		}
	}
}

// QueueStats are the traffic counters of one queue of one link.
type QueueStats struct {
	Link, Queue          int // the link's number (Options.Links order), the queue's
	RxPackets, RxBytes   uint64
	TxPackets, TxBytes   uint64
	RxBatches, TxBatches uint64 // reads and writes (batches of packets)
}

// QueueStats returns the counters of every queue of every link, in link
// then queue order; a link of one queue has one entry.
func (s *Stack) QueueStats() []QueueStats {
	var out []QueueStats
	for _, l := range *s.links.Load() {
		out = append(out, QueueStats{Link: l.idx, Queue: l.queue,
			RxPackets: l.rxPackets.Load(), RxBytes: l.rxBytes.Load(),
			TxPackets: l.txPackets.Load(), TxBytes: l.txBytes.Load(),
			RxBatches: l.rxBatches.Load(), TxBatches: l.txBatches.Load()})
	}
	return out
}
