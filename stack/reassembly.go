package stack

import (
	"sync"
	"time"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
)

// fragments is the stack's IPv4 reassembly state. Fragments are rare (our
// peers use PMTU discovery), so one lock for all links is enough; the
// reassembler bounds its own memory and expires incomplete datagrams
// whenever a fragment arrives.
type fragments struct {
	mu sync.Mutex
	r  *ip.Reassembler
}

// reassemble4 offers the fragment h to reassembly and returns the whole
// datagram once complete, nil while incomplete or when the fragment was
// refused (counted by reason).
func (s *Stack) reassemble4(h ip.IPv4, now tcp.Time) ip.IPv4 {
	s.stats.IPFragments.Add(1)
	f := &s.frags
	f.mu.Lock()
	if f.r == nil {
		f.r = ip.NewReassembler(ip.ReassemblyConfig{})
	}
	whole, done, err := f.r.Reassemble(time.Duration(now), h)
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
