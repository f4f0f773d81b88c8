package stack

import "container/list"

// Memory reports the buffer memory budget (0: none), the bytes charged to it
// now and the most charged at once (Options.MemoryBudget).
func (s *Stack) Memory() (budget, used, peak int64) {
	m := s.tcpCfg.Memory
	return m.Limit(), m.Used(), m.Peak()
}

// Writers blocked because the memory budget is spent wait in a FIFO queue.
// When the budget frees enough (tcp.MemoryBudget's relief), the first
// memReliefBatch of them are woken, not all: with 100,000 blocked writers,
// waking every one at each relief would be 100,000 goroutine wake-ups and
// lock round trips to hand out one eighth of the budget, a storm repeated
// every time that much drains. A woken writer that stops waiting for memory
// (its Write done, or waiting for its own send buffer) with the budget not
// spent again wakes the next one, so the memory that is free keeps finding
// writers, in the order they came, until it is spent again; the rest wait
// for the next relief.
const memReliefBatch = 16

// memWaiter is one blocked Write's place in the queue.
type memWaiter struct {
	ch    chan struct{} // capacity 1: the wake-up
	elem  *list.Element // in the queue; nil when not queued
	woken bool          // woken, and the turn not used yet
}

// memWait queues w (once) for the next wake-up. A writer queues after a try
// that found the budget spent: a turn it was woken for is used, unless the
// budget is no longer spent (the writer retries at once, still holding it).
func (s *Stack) memWait(w *memWaiter) {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{}, 1)
	}
	if s.tcpCfg.Memory.Spent() {
		w.woken = false
	}
	if w.elem == nil {
		w.elem = s.memWaiters.PushBack(w)
	}
}

// memWake wakes the first n queued writers.
func (s *Stack) memWake(n int) {
	s.memMu.Lock()
	defer s.memMu.Unlock()
	for ; n > 0; n-- {
		e := s.memWaiters.Front()
		if e == nil {
			return
		}
		w := s.memWaiters.Remove(e).(*memWaiter)
		w.elem, w.woken = nil, true
		s.stats.TCPMemWakeups.Add(1)
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}

// memLeave takes w out of the queue when its writer no longer waits for
// memory (its Write returns, or it now waits for its own send buffer). If
// it was woken and the budget is not spent again, the next writer in the
// queue gets the turn: the baton passes on.
func (s *Stack) memLeave(w *memWaiter) {
	s.memMu.Lock()
	if w.elem != nil {
		s.memWaiters.Remove(w.elem)
		w.elem = nil
	}
	woken := w.woken
	w.woken = false
	s.memMu.Unlock()
	if woken && !s.tcpCfg.Memory.Spent() {
		s.memWake(1)
	}
}

// memRelief runs when the spent budget is back under its low-water mark
// (tcp.MemoryBudget.SetRelief), on whichever goroutine freed the memory,
// possibly under a shard lock: it wakes the first writers of the queue.
func (s *Stack) memRelief() { s.memWake(memReliefBatch) }

// memPressure runs when the budget refuses a charge (tcp.MemoryBudget's
// pressure hook), on the goroutine that asked, possibly under a shard
// lock: it starts one sweep, unless one is running, in which every
// connection gives back the memory it holds without using it
// (tcp.Conn.ReleaseIdleMemory): connections that are busy shrink their
// auto-tuned buffers as they run, but idle ones would keep what they grew.
func (s *Stack) memPressure() {
	if s.memSweeping.CompareAndSwap(false, true) {
		go s.memSweep()
	}
}

// memSweep is the sweep of memPressure, one shard at a time.
func (s *Stack) memSweep() {
	defer s.memSweeping.Store(false)
	for _, sh := range s.shards {
		sh.mu.Lock()
		for _, ep := range sh.conns {
			ep.tc.ReleaseIdleMemory()
		}
		sh.mu.Unlock()
	}
	s.stats.TCPMemSweeps.Add(1)
}
