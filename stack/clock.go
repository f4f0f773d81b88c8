package stack

import (
	"sync"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// Clock is the stack's source of time: a monotonic Now for the TCP engine and
// one-shot timers for the shard timer heaps and the net.Conn deadlines. Tests
// substitute a ManualClock so every timer fires in virtual time.
type Clock interface {
	// Now returns the current monotonic time.
	Now() tcp.Time
	// AfterFunc arranges for f to run once d has elapsed (at once for
	// d <= 0) and returns a Timer that can stop or re-arm it. f runs on a
	// goroutine of the clock's choosing and must not assume a caller lock.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a one-shot timer made by Clock.AfterFunc. Its methods behave like
// those of *time.Timer.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it was pending.
	Stop() bool
	// Reset re-arms the timer to fire after d; it reports whether it was pending.
	Reset(d time.Duration) bool
}

// realClock is the Clock backed by the runtime's monotonic clock.
type realClock struct{ epoch time.Time }

// NewRealClock returns a Clock that reads the runtime's monotonic clock; its
// Now counts nanoseconds since the call.
func NewRealClock() Clock { return &realClock{epoch: time.Now()} }

// Now returns the nanoseconds elapsed since the clock was made (monotonic).
func (c *realClock) Now() tcp.Time { return tcp.Time(time.Since(c.epoch)) }

// AfterFunc is time.AfterFunc.
func (c *realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// ManualClock is a Clock that moves only when Advance is called: timers fire
// inside Advance, on the caller's goroutine, in deadline order (ties in the
// order they were armed). It makes timer behaviour deterministic in tests.
type ManualClock struct {
	mu     sync.Mutex
	now    tcp.Time
	seq    uint64
	timers []*manualTimer // min-heap by (when, seq)
}

// NewManualClock returns a ManualClock reading start.
func NewManualClock(start tcp.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's current virtual time.
func (c *ManualClock) Now() tcp.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a virtual timer that runs f when Advance reaches now+d.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) Timer {
	t := &manualTimer{c: c, f: f, idx: -1}
	t.Reset(d)
	return t
}

// Pending returns the number of armed timers.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next returns the deadline of the earliest armed timer; false when none.
func (c *ManualClock) Next() (tcp.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	return c.timers[0].when, true
}

// Advance moves the clock forward by d, running every timer that falls due on
// the way at its own deadline (Now reads the deadline while it runs), earliest
// first. Timers armed by a callback for a time within the step also fire.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	for len(c.timers) > 0 && !c.timers[0].when.After(target) {
		t := c.timers[0]
		c.remove(t)
		if t.when.After(c.now) {
			c.now = t.when
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	if target.After(c.now) {
		c.now = target
	}
	c.mu.Unlock()
}

// manualTimer is one virtual timer of a ManualClock.
type manualTimer struct {
	c    *ManualClock
	f    func()
	when tcp.Time
	seq  uint64
	idx  int // position in c.timers, -1 when not armed
}

// Stop disarms the timer.
func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.idx < 0 {
		return false
	}
	t.c.remove(t)
	return true
}

// Reset re-arms the timer for now+d.
func (t *manualTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	was := t.idx >= 0
	if was {
		c.remove(t)
	}
	if d < 0 {
		d = 0
	}
	t.when = c.now.Add(d)
	c.seq++
	t.seq = c.seq
	t.idx = len(c.timers)
	c.timers = append(c.timers, t)
	c.up(t.idx)
	return was
}

func (c *ManualClock) less(i, j int) bool {
	a, b := c.timers[i], c.timers[j]
	if a.when != b.when {
		return a.when.Before(b.when)
	}
	return a.seq < b.seq
}

func (c *ManualClock) swap(i, j int) {
	c.timers[i], c.timers[j] = c.timers[j], c.timers[i]
	c.timers[i].idx = i
	c.timers[j].idx = j
}

func (c *ManualClock) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !c.less(i, p) {
			return
		}
		c.swap(i, p)
		i = p
	}
}

func (c *ManualClock) down(i int) {
	n := len(c.timers)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && c.less(r, l) {
			m = r
		}
		if !c.less(m, i) {
			return
		}
		c.swap(i, m)
		i = m
	}
}

// remove takes t out of the heap; c.mu must be held and t armed.
func (c *ManualClock) remove(t *manualTimer) {
	i := t.idx
	last := len(c.timers) - 1
	if i != last {
		c.swap(i, last)
	}
	c.timers[last] = nil
	c.timers = c.timers[:last]
	t.idx = -1
	if i < last {
		c.down(i)
		c.up(i)
	}
}
