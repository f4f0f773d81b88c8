package stack

import (
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// timerHeap is a shard's timer structure: a binary min-heap of endpoints keyed
// by the deadline each Conn last reported (NextDeadline). It is updated
// lazily: a deadline that moves earlier sifts the endpoint up at once, one
// that moves later (an RTO re-armed by an ACK, the common case) is left in
// place, and the endpoint is re-keyed when its stale, earlier entry comes due
// and Output finds nothing to do. That keeps the per-ACK cost at a compare.
// The heap is guarded by its shard's lock.
type timerHeap struct {
	eps []*endpoint
}

// timerSlot is an endpoint's place in its shard's timerHeap.
type timerSlot struct {
	at  tcp.Time // key in the heap (may be earlier than the Conn's real deadline)
	idx int      // index in timerHeap.eps; -1 when not in the heap
}

// schedule makes sure ep is in the heap with a key no later than at.
func (h *timerHeap) schedule(ep *endpoint, at tcp.Time) {
	t := &ep.timer
	if t.idx < 0 {
		t.at = at
		t.idx = len(h.eps)
		h.eps = append(h.eps, ep)
		h.up(t.idx)
		return
	}
	if at.Before(t.at) {
		t.at = at
		h.up(t.idx)
	}
}

// remove takes ep out of the heap if it is there.
func (h *timerHeap) remove(ep *endpoint) {
	i := ep.timer.idx
	if i < 0 {
		return
	}
	last := len(h.eps) - 1
	if i != last {
		h.swap(i, last)
	}
	h.eps[last] = nil
	h.eps = h.eps[:last]
	ep.timer.idx = -1
	if i < last {
		h.down(i)
		h.up(i)
	}
}

// min returns the earliest key.
func (h *timerHeap) min() (tcp.Time, bool) {
	if len(h.eps) == 0 {
		return 0, false
	}
	return h.eps[0].timer.at, true
}

// popDue removes and returns the endpoint with the earliest key if that key
// is not after now; nil otherwise.
func (h *timerHeap) popDue(now tcp.Time) *endpoint {
	if len(h.eps) == 0 || h.eps[0].timer.at.After(now) {
		return nil
	}
	ep := h.eps[0]
	h.remove(ep)
	return ep
}

// len returns the number of endpoints in the heap.
func (h *timerHeap) len() int { return len(h.eps) }

func (h *timerHeap) less(i, j int) bool { return h.eps[i].timer.at.Before(h.eps[j].timer.at) }

func (h *timerHeap) swap(i, j int) {
	h.eps[i], h.eps[j] = h.eps[j], h.eps[i]
	h.eps[i].timer.idx = i
	h.eps[j].timer.idx = j
}

func (h *timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *timerHeap) down(i int) {
	n := len(h.eps)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// armTimer makes the shard's clock timer fire no later than the heap's
// earliest key. A timer armed for an earlier time is left alone: firing
// early costs one empty pass, re-arming on every change would cost a Reset
// per ACK. sh.mu must be held.
func (sh *shard) armTimer(now tcp.Time) {
	if sh.s.opts.Driven {
		return // the driver asks NextTimer and calls RunTimers
	}
	at, ok := sh.timers.min()
	if !ok {
		return
	}
	if sh.timerArmed && !at.Before(sh.timerAt) {
		return
	}
	sh.timerArmed = true
	sh.timerAt = at
	d := at.Sub(now)
	if d < 0 {
		d = 0
	}
	if sh.clockTimer == nil {
		sh.clockTimer = sh.s.clock.AfterFunc(d, sh.onTimer)
		return
	}
	sh.clockTimer.Reset(d)
}

// onTimer runs the Conns whose deadlines have come: Output fires their due
// timers (RTO, delayed ACK, keepalive, TIME-WAIT...) and emits what they send.
//
// The clock runs each firing on a goroutine of its own. While one of them
// is still waiting for the lock, later firings leave the work to it (it
// reads the time after they fired, so it runs their timers too): under
// load, firings would otherwise pile up goroutines on the lock, and the
// runtime keeps every goroutine it ever had, with its stack, for reuse.
func (sh *shard) onTimer() {
	s := sh.s
	if s.closed.Load() {
		return
	}
	if !sh.timerPending.CompareAndSwap(false, true) {
		return
	}
	sh.mu.Lock()
	now := s.clock.Now()
	sh.timerPending.Store(false)
	sh.timerArmed = false
	sh.runDue(now)
	sh.armTimer(now)
	sh.mu.Unlock()
	s.kickLinks()
}

// runDue runs the Conns of the shard whose timer keys are due by now.
// sh.mu must be held.
func (sh *shard) runDue(now tcp.Time) {
	s := sh.s
	// Collect first: Output may re-key an endpoint to a time that is
	// already due (a Conn reporting a past deadline), which must wait for
	// the next pass rather than spin here.
	due := sh.due[:0]
	sh.due = nil // another pass may run while this one lets go of sh.mu (below)
	for ep := sh.timers.popDue(now); ep != nil; ep = sh.timers.popDue(now) {
		due = append(due, ep)
	}
	for i, ep := range due {
		due[i] = nil
		if ep.tc != nil && !ep.removed && !s.pruneEmbryo(ep, now) {
			if s.trace != nil {
				s.trace.timer(ep, now)
			}
			ep.tc.Output(now, ep)
			s.afterOp(ep, now)
		}
		if s.txLow.Load() && i+1 < len(due) {
			// The packet pool runs low: write the links' queues out
			// without the shard's lock (relieve), then go on. The rest
			// of due may change meanwhile; each is checked again.
			sh.mu.Unlock()
			s.relieve()
			sh.mu.Lock()
		}
	}
	sh.due = due[:0]
}

// minTimerStep keeps a Conn that reports a deadline at or before now from
// being run again in the same instant.
const minTimerStep = time.Microsecond
