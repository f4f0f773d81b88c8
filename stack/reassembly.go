package stack

import (
	"sync"
	"time"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
)

// fragments is the stack's IPv4 and IPv6 reassembly state, one
// reassembler under one set of bounds (Options.Reassembly) for both.
// Fragments are rare (our peers use PMTU discovery), so one lock for all
// links is enough. Incomplete datagrams expire whenever a fragment arrives
// and, so that the sender hears of it in time (ICMP Time Exceeded), at
// their deadline by a clock timer.
type fragments struct {
	mu    sync.Mutex
	r     *ip.Reassembler
	peak  int                // most bytes ever charged to the memory limit
	seen  ip.ReassemblyStats // the reassembler's counters already added to Stats
	timer Timer
	at    tcp.Time // when timer fires, if armed
	armed bool
	// expired collects the first fragments of datagrams that timed out
	// during a call, answered once the lock is released.
	expired [][]byte
}

// reassembler returns the reassembler, made on first use. f.mu is held.
func (s *Stack) reassembler() *ip.Reassembler {
	f := &s.frags
	if f.r == nil {
		f.r = ip.NewReassembler(s.opts.Reassembly)
		f.r.OnTimeout(func(first []byte) {
			if len(f.expired) < icmpBurst {
				f.expired = append(f.expired, append([]byte(nil), first...))
			}
		})
	}
	return f.r
}

// reassemble4 offers the fragment h to reassembly and returns the whole
// datagram once complete, nil while incomplete or when the fragment was
// refused (counted by reason).
func (s *Stack) reassemble4(h ip.IPv4, now tcp.Time) ip.IPv4 {
	s.stats.IPFragments.Add(1)
	f := &s.frags
	f.mu.Lock()
	whole, done, err := s.reassembler().Reassemble(time.Duration(now), h)
	whole = s.afterReassembly(now, whole, done, err)
	if whole == nil {
		return nil
	}
	return ip.IPv4(whole)
}

// reassemble6 is reassemble4 for an IPv6 fragment (RFC 8200 §4.5); the
// result is the reassembled packet, to be parsed again.
func (s *Stack) reassemble6(l *link, h ip.IPv6, info ip.IPv6Info, now tcp.Time) []byte {
	s.stats.IPFragments.Add(1)
	s.stats.IPv6Fragments.Add(1)
	f := &s.frags
	f.mu.Lock()
	whole, done, err := s.reassembler().ReassembleIPv6(time.Duration(now), h, info)
	// RFC 8200 §4.5: the fragments the sender must hear about, with
	// Parameter Problem pointing at the field at fault (as Linux's
	// ipv6_frag_rcv does).
	data := len(h) - info.Offset
	switch ip.ReasonOf(err) {
	case ip.DropFragHeaderChain:
		defer s.sendICMPv6Error(l, h, ip.ICMPv6ParamProblem, ip.ICMPv6IncompleteHeaderChain, 0, now)
	case ip.DropFragBad:
		if info.MoreFragments && data%8 != 0 {
			defer s.sendICMPv6Error(l, h, ip.ICMPv6ParamProblem, ip.ICMPv6ErroneousHeader, 4, now) // Payload Length
		}
	case ip.DropFragTooBig:
		if int(info.FragmentOffset)+data > 0xffff-(info.FragmentHeaderOffset-ip.IPv6HeaderLen) {
			defer s.sendICMPv6Error(l, h, ip.ICMPv6ParamProblem, ip.ICMPv6ErroneousHeader, uint32(info.FragmentHeaderOffset+2), now) // Fragment Offset
		}
	}
	return s.afterReassembly(now, whole, done, err)
}

// afterReassembly does the bookkeeping of one reassembly call: counters,
// the expiry timer, and Time Exceeded for what timed out. f.mu is held on
// entry and released.
func (s *Stack) afterReassembly(now tcp.Time, whole []byte, done bool, err error) []byte {
	f := &s.frags
	s.syncReassemblyStats()
	s.armReassemblyTimer(now)
	expired := f.expired
	f.expired = nil
	f.mu.Unlock()
	s.timeExceeded(expired, now)
	if err != nil {
		s.stats.IP[ip.ReasonOf(err)].Add(1)
		return nil
	}
	if !done {
		return nil
	}
	s.stats.IPReassembled.Add(1)
	return whole
}

// syncReassemblyStats adds the reassembler's own counts (datagrams that
// timed out or were evicted: not a reason of any one fragment's) to Stats.
// f.mu is held.
func (s *Stack) syncReassemblyStats() {
	f := &s.frags
	f.peak = max(f.peak, f.r.MemoryUsed())
	rs := f.r.Stats()
	s.stats.IPReassemblyTimeouts.Add(rs.Timeout - f.seen.Timeout)
	s.stats.IPReassemblyEvicted.Add(rs.Evicted - f.seen.Evicted)
	f.seen = rs
}

// armReassemblyTimer arms the clock timer for the earliest reassembly
// deadline. f.mu is held.
func (s *Stack) armReassemblyTimer(now tcp.Time) {
	f := &s.frags
	d, ok := f.r.NextDeadline()
	if !ok || s.closed.Load() {
		return
	}
	at := tcp.Time(d)
	if f.armed && !at.Before(f.at) {
		return
	}
	f.at, f.armed = at, true
	wait := time.Duration(at.Sub(now))
	if f.timer == nil {
		f.timer = s.clock.AfterFunc(wait, s.expireFragments)
		return
	}
	f.timer.Reset(wait)
}

// expireFragments runs at a reassembly deadline.
func (s *Stack) expireFragments() {
	f := &s.frags
	now := s.clock.Now()
	f.mu.Lock()
	f.armed = false
	f.r.Expire(time.Duration(now))
	s.syncReassemblyStats()
	s.armReassemblyTimer(now)
	expired := f.expired
	f.expired = nil
	f.mu.Unlock()
	s.timeExceeded(expired, now)
	s.kickLinks()
}

// timeExceeded answers each first fragment of a datagram that timed out
// with ICMP Time Exceeded, "fragment reassembly time exceeded" (RFC 792,
// RFC 4443 §3.3), by the route back to its source.
func (s *Stack) timeExceeded(firsts [][]byte, now tcp.Time) {
	for _, p := range firsts {
		if s.closed.Load() {
			return
		}
		if p[0]>>4 == 4 {
			h := ip.IPv4(p)
			l, _, err := s.route(h.Src())
			if err != nil {
				s.stats.ICMPNoRoute.Add(1)
				continue
			}
			s.sendICMPv4Error(l, h, ip.ICMPv4TimeExceeded, ip.ICMPv4ReassemblyExceeded, now)
			continue
		}
		h := ip.IPv6(p)
		l, _, err := s.route(h.Src())
		if err != nil {
			s.stats.ICMPNoRoute.Add(1)
			continue
		}
		s.sendICMPv6Error(l, h, ip.ICMPv6TimeExceeded, ip.ICMPv6ReassemblyTimeout, 0, now)
	}
}

// ReassemblyMemory returns the bytes reassembly (both families) holds now, the most it
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
