package tcp

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

// simLink is one direction of a simulated path: a bottleneck of a given rate
// with a drop-tail queue, a propagation delay, and deterministic (seeded)
// loss, duplication, reordering and corruption. Corrupted segments are
// dropped, as the stack's checksum check would.
type simLink struct {
	delay    time.Duration
	perByte  time.Duration // serialization time per byte (0 = infinite rate)
	maxQueue time.Duration // drop-tail when the queue is this long
	loss     float64
	dup      float64
	reorder  float64 // probability of an extra delay of up to 2*delay
	corrupt  float64
	splitGSO bool // cut super-segments into wire segments (like the kernel)

	busyUntil Time
	// drop, when set, decides loss deterministically per transmitted segment
	// (n counts segments sent on this link).
	drop func(n int, s *Segment) bool
	n    int

	stats struct{ sent, lost, dups, reordered, corrupted, queueDrops int }
}

type simPacket struct {
	at  Time
	ord int
	to  int
	seg Segment
}

// simNet connects two Conns back to back in virtual time.
type simNet struct {
	now   Time
	conns [2]*Conn
	links [2]*simLink // links[i] carries segments from conns[i]
	rng   *rand.Rand
	q     simQueue
	ord   int
	trace func(from int, s *Segment)
}

func newSimNet(seed uint64, a, b *Conn, la, lb *simLink) *simNet {
	return &simNet{conns: [2]*Conn{a, b}, links: [2]*simLink{la, lb}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

type simEmitter struct {
	n    *simNet
	from int
}

func (e simEmitter) Emit(s *Segment) {
	n := e.n
	if n.trace != nil {
		n.trace(e.from, s)
	}
	if s.GSOSize > 0 && n.links[e.from].splitGSO && len(s.Payload) > int(s.GSOSize) {
		p := s.Payload
		seq := s.Seq
		for len(p) > 0 {
			k := min(len(p), int(s.GSOSize))
			part := *s
			part.GSOSize = 0
			part.Seq = seq
			part.Payload = p[:k]
			if k < len(p) {
				part.Flags &^= FlagFIN | FlagPSH
			}
			n.send(e.from, &part)
			p = p[k:]
			seq += Seq(k)
		}
		return
	}
	n.send(e.from, s)
}

func (n *simNet) send(from int, s *Segment) {
	l := n.links[from]
	l.n++
	l.stats.sent++
	if l.drop != nil && l.drop(l.n, s) {
		l.stats.lost++
		return
	}
	if l.loss > 0 && n.rng.Float64() < l.loss {
		l.stats.lost++
		return
	}
	if l.corrupt > 0 && n.rng.Float64() < l.corrupt {
		l.stats.corrupted++
		return
	}
	size := len(s.Payload) + 40
	start := n.now
	if l.busyUntil.After(start) {
		start = l.busyUntil
	}
	if l.maxQueue > 0 && start.Sub(n.now) > l.maxQueue {
		l.stats.queueDrops++
		return
	}
	l.busyUntil = start.Add(time.Duration(size) * l.perByte)
	at := l.busyUntil.Add(l.delay)
	cp := *s
	cp.Payload = append([]byte(nil), s.Payload...)
	copies := 1
	if l.dup > 0 && n.rng.Float64() < l.dup {
		copies = 2
		l.stats.dups++
	}
	for i := 0; i < copies; i++ {
		t := at
		if l.reorder > 0 && n.rng.Float64() < l.reorder {
			t = t.Add(time.Duration(n.rng.Int64N(int64(2*l.delay) + 1)))
			l.stats.reordered++
		}
		n.ord++
		heap.Push(&n.q, simPacket{at: t, ord: n.ord, to: 1 - from, seg: cp})
	}
}

// output runs Output on both connections.
func (n *simNet) output() {
	for i, c := range n.conns {
		if c != nil {
			c.Output(n.now, simEmitter{n, i})
		}
	}
}

// step advances to the next event (packet arrival or timer) and processes
// it. It returns false when nothing is left to happen.
func (n *simNet) step() bool {
	next, ok := Time(0), false
	if len(n.q) > 0 {
		next, ok = n.q[0].at, true
	}
	for _, c := range n.conns {
		if c == nil {
			continue
		}
		if d, has := c.NextDeadline(); has && (!ok || d.Before(next)) {
			next, ok = d, true
		}
	}
	if !ok {
		return false
	}
	if next.After(n.now) {
		n.now = next
	}
	for len(n.q) > 0 && !n.q[0].at.After(n.now) {
		p := heap.Pop(&n.q).(simPacket)
		if c := n.conns[p.to]; c != nil {
			c.Input(n.now, &p.seg)
			// Output after each arrival, as the stack does.
			n.output()
		}
	}
	n.output()
	return true
}

// runUntil steps until cond holds or virtual time passes limit; it reports
// whether cond held.
func (n *simNet) runUntil(limit Time, cond func() bool) bool {
	for !cond() {
		if n.now.After(limit) || !n.step() {
			return cond()
		}
	}
	return true
}

// simQueue is a min-heap of packets by arrival time, then send order.
type simQueue []simPacket

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].ord < q[j].ord
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simPacket)) }
func (q *simQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}
