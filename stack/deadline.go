package stack

import (
	"sync"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// deadline is one of a socket's deadlines (read, write, accept): a channel
// closed when the deadline passes, re-armed by set. It runs on the stack's
// Clock so deadlines fire in virtual time under a ManualClock; the absolute
// time.Time given to set is converted to a duration from the wall clock.
type deadline struct {
	mu    sync.Mutex
	clock Clock
	timer Timer
	at    tcp.Time // clock time the current deadline falls at
	armed bool
	fired bool
	// ch is closed once the deadline has passed. It is made by the first
	// set with a deadline: until then wait returns nil (a socket that never
	// has a deadline holds no channel, and a select on it costs nothing).
	ch chan struct{}
}

func (d *deadline) init(c Clock) { d.clock = c }

// set arms the deadline for t; the zero time clears it. A time in the past
// expires it at once (how net/http interrupts a blocked Read). It reports
// whether it made the channel wait returns: a caller already waiting on
// the nil one must be woken to wait on the new one.
func (d *deadline) set(t time.Time) (made bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.armed = false
	if d.fired {
		d.ch = make(chan struct{})
		d.fired = false
	}
	if t.IsZero() {
		return false
	}
	if d.ch == nil {
		d.ch = make(chan struct{})
		made = true
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		d.fired = true
		return made
	}
	d.at = d.clock.Now().Add(dur)
	d.armed = true
	if d.timer == nil {
		d.timer = d.clock.AfterFunc(dur, d.fire)
		return made
	}
	d.timer.Reset(dur)
	return made
}

// fire closes the channel if the armed deadline has really passed: a
// callback of an earlier arming that could not be stopped in time finds the
// deadline moved later and does nothing.
func (d *deadline) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.armed || d.fired || d.clock.Now().Before(d.at) {
		return
	}
	d.armed = false
	d.fired = true
	close(d.ch)
}

// expired reports whether the deadline has passed (never for a nil d: no
// deadline was ever set).
func (d *deadline) expired() bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fired
}

// wait returns a channel closed when the deadline passes (nil, which never
// fires, for a nil d).
func (d *deadline) wait() <-chan struct{} {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

// stop releases the timer.
func (d *deadline) stop() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.armed = false
}
