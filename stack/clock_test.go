package stack

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

func TestManualClockFiresInTimeOrder(t *testing.T) {
	c := NewManualClock(1000)
	var got []string
	var at []tcp.Time
	rec := func(name string) func() {
		return func() { got = append(got, name); at = append(at, c.Now()) }
	}
	c.AfterFunc(30*time.Millisecond, rec("c30"))
	c.AfterFunc(10*time.Millisecond, rec("a10"))
	c.AfterFunc(10*time.Millisecond, rec("b10")) // same deadline: arming order
	stopped := c.AfterFunc(20*time.Millisecond, rec("never"))
	require.True(t, stopped.Stop())
	require.False(t, stopped.Stop())
	// A callback arming a timer due within the same Advance runs too.
	c.AfterFunc(15*time.Millisecond, func() {
		got = append(got, "d15")
		at = append(at, c.Now())
		c.AfterFunc(5*time.Millisecond, rec("e20"))
	})
	require.Equal(t, 4, c.Pending())
	next, ok := c.Next()
	require.True(t, ok)
	require.Equal(t, tcp.Time(1000).Add(10*time.Millisecond), next)

	c.Advance(25 * time.Millisecond)
	require.Equal(t, []string{"a10", "b10", "d15", "e20"}, got)
	ms := func(d int) tcp.Time { return tcp.Time(1000).Add(time.Duration(d) * time.Millisecond) }
	require.Equal(t, []tcp.Time{ms(10), ms(10), ms(15), ms(20)}, at)
	require.Equal(t, ms(25), c.Now())

	c.Advance(5 * time.Millisecond)
	require.Equal(t, "c30", got[len(got)-1])
	require.Equal(t, 0, c.Pending())
}

func TestManualTimerReset(t *testing.T) {
	c := NewManualClock(0)
	n := 0
	tm := c.AfterFunc(time.Second, func() { n++ })
	c.Advance(500 * time.Millisecond)
	require.True(t, tm.Reset(time.Second)) // now due at 1.5 s
	c.Advance(900 * time.Millisecond)
	require.Equal(t, 0, n)
	c.Advance(100 * time.Millisecond)
	require.Equal(t, 1, n)
	require.False(t, tm.Reset(0))
	c.Advance(0)
	require.Equal(t, 2, n)
}

func TestTimerHeapLazy(t *testing.T) {
	var h timerHeap
	mk := func() *endpoint { return &endpoint{timer: timerSlot{idx: -1}} }
	a, b, c := mk(), mk(), mk()
	h.schedule(a, 30)
	h.schedule(b, 10)
	h.schedule(c, 20)
	m, ok := h.min()
	require.True(t, ok)
	require.Equal(t, tcp.Time(10), m)
	// Later deadline: lazily ignored (key stays 10).
	h.schedule(b, 50)
	require.Equal(t, tcp.Time(10), b.timer.at)
	// Earlier deadline: moves up at once.
	h.schedule(a, 5)
	require.Same(t, a, h.popDue(5))
	require.Nil(t, h.popDue(9))
	require.Same(t, b, h.popDue(15))
	h.remove(c)
	require.Equal(t, -1, c.timer.idx)
	require.Equal(t, 0, h.len())
	require.Nil(t, h.popDue(100))
	_, ok = h.min()
	require.False(t, ok)
}

func TestDeadlineVirtualTime(t *testing.T) {
	c := NewManualClock(0)
	var d deadline
	d.init(c)
	d.set(time.Now().Add(time.Hour))
	require.False(t, d.expired())
	c.Advance(59 * time.Minute)
	require.False(t, d.expired())
	c.Advance(2 * time.Minute)
	require.True(t, d.expired())
	select {
	case <-d.wait():
	default:
		t.Fatal("deadline channel not closed")
	}
	// Moving the deadline into the future re-arms it with a new channel.
	d.set(time.Now().Add(time.Minute))
	require.False(t, d.expired())
	d.set(time.Time{})
	c.Advance(time.Hour)
	require.False(t, d.expired())
	d.set(time.Unix(1, 0)) // in the past: expired at once
	require.True(t, d.expired())
	d.stop()
}
