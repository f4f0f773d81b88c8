package stack

import (
	"sync"
	"time"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
)

// fragments is the stack's IPv4 reassembly state. Fragments are rare (our
// peers use PMTU discovery), so one lock for all links is enough; the
// reassembler bounds its own memory (Options.Reassembly) and expires
// incomplete datagrams whenever a fragment arrives.
type fragments struct {
	mu   sync.Mutex
	r    *ip.Reassembler
	peak int                // most bytes ever charged to the memory limit
	seen ip.ReassemblyStats // the reassembler's counters already added to Stats
}

// reassemble4 offers the fragment h to reassembly and returns the whole
// datagram once complete, nil while incomplete or when the fragment was
// refused (counted by reason).
func (s *Stack) reassemble4(h ip.IPv4, now tcp.Time) ip.IPv4 {
	s.stats.IPFragments.Add(1)
	f := &s.frags
	f.mu.Lock()
	if f.r == nil {
		f.r = ip.NewReassembler(s.opts.Reassembly)
	}
	whole, done, err := f.r.Reassemble(time.Duration(now), h)
	f.peak = max(f.peak, f.r.MemoryUsed())
	// Datagrams that timed out or were evicted are the reassembler's own
	// counts, not a reason of this fragment's.
	rs := f.r.Stats()
	s.stats.IPReassemblyTimeouts.Add(rs.Timeout - f.seen.Timeout)
	s.stats.IPReassemblyEvicted.Add(rs.Evicted - f.seen.Evicted)
	f.seen = rs
	f.mu.Unlock()
	if err != nil {
		s.stats.IP[ip.ReasonOf(err)].Add(1)
		return nil
	}
	if !done {
		return nil
	}
	s.stats.IPReassembled.Add(1)
	return ip.IPv4(whole)
}

// ReassemblyMemory returns the bytes IPv4 reassembly holds now, the most it
// ever held, and its cap (Options.Reassembly.MemoryLimit or the default).
func (s *Stack) ReassemblyMemory() (used, peak, limit int) {
	f := &s.frags
	f.mu.Lock()
	defer f.mu.Unlock()
	limit = s.opts.Reassembly.MemoryLimit
	if limit <= 0 {
		limit = ip.DefaultReassemblyMemoryLimit
	}
	if f.r != nil {
		used = f.r.MemoryUsed()
	}
	return used, f.peak, limit
}
