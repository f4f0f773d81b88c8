package tcp

import (
	"sync"
	"sync/atomic"
)

// MemoryBudget bounds the buffer memory of all the connections that share it
// (one per stack), like Linux's tcp_mem: send and receive buffer storage and
// out-of-order chunks are charged to it as they are allocated and credited
// when they are freed. Once it is spent, connections stop growing: a send
// buffer takes no more bytes than its storage already holds (writers block),
// the advertised window covers only storage that exists or still fits, and
// out-of-order segments that would need new memory are dropped. Nothing
// already accepted is dropped: bytes inside a window already advertised are
// always stored, even beyond the budget (counted as overcommit).
//
// It is safe for concurrent use; a nil *MemoryBudget means no budget.
type MemoryBudget struct {
	limit int64
	used  atomic.Int64
	peak  atomic.Int64

	// spent is set when a charge was refused; relief runs once usage is
	// back under the low-water mark (so blocked writers retry).
	spent    atomic.Bool
	mu       sync.Mutex
	relief   func()
	pressure func()

	c MemoryCounters
}

// MemoryCounters are the counters a MemoryBudget moves; nil ones are not
// counted. The stack points them at its Stats.
type MemoryCounters struct {
	// SendLimited counts writes cut short because the budget was spent.
	SendLimited *atomic.Uint64
	// WindowLimited counts window advertisements held back by the budget.
	WindowLimited *atomic.Uint64
	// OOOLimitDrops counts out-of-order segments refused by the
	// per-connection out-of-order limit; OOOBudgetDrops those refused
	// because the budget was spent.
	OOOLimitDrops, OOOBudgetDrops *atomic.Uint64
	// Overcommit counts bytes stored beyond the budget because they were
	// inside a window already advertised.
	Overcommit *atomic.Uint64
	// RcvBufGrown and SndBufGrown count the times auto-tuning grew a
	// receive or send buffer; BufShrunk the times memory pressure took one
	// back toward its initial size.
	RcvBufGrown, SndBufGrown, BufShrunk *atomic.Uint64
}

// NewMemoryBudget returns a budget of limit bytes (limit <= 0: unlimited,
// only counting) moving the counters c.
func NewMemoryBudget(limit int64, c MemoryCounters) *MemoryBudget {
	if limit < 0 {
		limit = 0
	}
	return &MemoryBudget{limit: limit, c: c}
}

// SetRelief sets f to run (on whichever goroutine frees memory, possibly
// holding the caller's locks: f must not block) when usage falls back under
// the low-water mark after a refused charge.
func (m *MemoryBudget) SetRelief(f func()) {
	m.mu.Lock()
	m.relief = f
	m.mu.Unlock()
}

// SetPressure sets f to run (on the goroutine whose charge was refused,
// possibly holding the caller's locks: f must not block) when a charge is
// refused with the budget not spent before: the moment to ask idle
// connections for their memory (Conn.ReleaseIdleMemory).
func (m *MemoryBudget) SetPressure(f func()) {
	m.mu.Lock()
	m.pressure = f
	m.mu.Unlock()
}

// Limit returns the budget in bytes (0: unlimited).
func (m *MemoryBudget) Limit() int64 {
	if m == nil {
		return 0
	}
	return m.limit
}

// Used returns the bytes charged now.
func (m *MemoryBudget) Used() int64 {
	if m == nil {
		return 0
	}
	return m.used.Load()
}

// Peak returns the most bytes charged at once.
func (m *MemoryBudget) Peak() int64 {
	if m == nil {
		return 0
	}
	return m.peak.Load()
}

// Spent reports whether a charge has been refused since usage was last
// under the low-water mark.
func (m *MemoryBudget) Spent() bool { return m != nil && m.spent.Load() }

// underPressure reports that auto-tuned buffers should give memory back: a
// charge was refused since usage was last under the low-water mark, or
// usage is above it (7/8 of the limit).
func (m *MemoryBudget) underPressure() bool {
	if m == nil || m.limit == 0 {
		return false
	}
	return m.spent.Load() || m.used.Load() > m.limit-m.limit/8
}

// mayGrow reports that auto-tuning may grow buffers: usage is under 3/4 of
// the limit (between that and 7/8, sizes hold), and no charge was refused.
func (m *MemoryBudget) mayGrow() bool {
	if m == nil || m.limit == 0 {
		return true
	}
	return !m.spent.Load() && m.used.Load() < m.limit-m.limit/4
}

// room returns the bytes that may still be charged (a large number when
// unlimited).
func (m *MemoryBudget) room() int {
	if m == nil || m.limit == 0 {
		return bufMaxCap
	}
	r := m.limit - m.used.Load()
	if r < 0 {
		return 0
	}
	return int(min(r, bufMaxCap))
}

func (m *MemoryBudget) notePeak(u int64) {
	for {
		p := m.peak.Load()
		if u <= p || m.peak.CompareAndSwap(p, u) {
			return
		}
	}
}

// tryCharge charges n bytes if they fit in the budget.
func (m *MemoryBudget) tryCharge(n int) bool {
	if m == nil || n <= 0 {
		return true
	}
	if m.limit == 0 {
		m.notePeak(m.used.Add(int64(n)))
		return true
	}
	for {
		u := m.used.Load()
		if u+int64(n) > m.limit {
			if m.spent.CompareAndSwap(false, true) {
				m.mu.Lock()
				f := m.pressure
				m.mu.Unlock()
				if f != nil {
					f()
				}
			}
			return false
		}
		if m.used.CompareAndSwap(u, u+int64(n)) {
			m.notePeak(u + int64(n))
			return true
		}
	}
}

// force charges n bytes whether or not they fit (data inside a window
// already advertised); the part beyond the budget is counted as overcommit.
func (m *MemoryBudget) force(n int) {
	if m == nil || n <= 0 {
		return
	}
	u := m.used.Add(int64(n))
	m.notePeak(u)
	if m.limit > 0 && u > m.limit {
		over := min(u-m.limit, int64(n))
		count(m.c.Overcommit, uint64(over))
	}
}

// uncharge credits n bytes and runs the relief function when a spent budget
// is back under its low-water mark (7/8 of the limit).
func (m *MemoryBudget) uncharge(n int) {
	if m == nil || n <= 0 {
		return
	}
	u := m.used.Add(-int64(n))
	if m.spent.Load() && u <= m.limit-m.limit/8 && m.spent.CompareAndSwap(true, false) {
		m.mu.Lock()
		f := m.relief
		m.mu.Unlock()
		if f != nil {
			f()
		}
	}
}

// count adds n to c if it is set.
func count(c *atomic.Uint64, n uint64) {
	if c != nil {
		c.Add(n)
	}
}

func (m *MemoryBudget) countSendLimited() {
	if m != nil {
		count(m.c.SendLimited, 1)
	}
}

func (m *MemoryBudget) countWindowLimited() {
	if m != nil {
		count(m.c.WindowLimited, 1)
	}
}

func (m *MemoryBudget) countOOO(budget bool) {
	if m == nil {
		return
	}
	if budget {
		count(m.c.OOOBudgetDrops, 1)
	} else {
		count(m.c.OOOLimitDrops, 1)
	}
}

func (m *MemoryBudget) countGrow(send bool) {
	if m == nil {
		return
	}
	if send {
		count(m.c.SndBufGrown, 1)
	} else {
		count(m.c.RcvBufGrown, 1)
	}
}

func (m *MemoryBudget) countShrink() {
	if m != nil {
		count(m.c.BufShrunk, 1)
	}
}
