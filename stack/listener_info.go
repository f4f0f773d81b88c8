package stack

import (
	"net/netip"
)

// ListenerSnapshot describes one listener (for `ss -l` listings).
type ListenerSnapshot struct {
	// Addr is the bound address: one of ours, an unspecified address (any
	// of its family), or the zero Addr (any address of either family).
	Addr netip.Addr
	Port uint16
	// AcceptQueue is the connections established and waiting for Accept;
	// Backlog bounds it (listen(2)'s backlog).
	AcceptQueue, Backlog int
	// SYNQueue is the connections in SYN-RECEIVED; SYNBacklog bounds it.
	SYNQueue, SYNBacklog int
	// Cookies reports whether a full SYN queue is answered with SYN
	// cookies (Options.DisableSYNCookies unset); CookiesActive that the
	// queue overflowed recently enough for cookies to be in use (sent, or
	// still valid to come back).
	Cookies, CookiesActive bool
}

// Listeners returns a snapshot of every open listener.
func (s *Stack) Listeners() []ListenerSnapshot {
	now := s.clock.Now()
	var out []ListenerSnapshot
	for _, ln := range *s.listeners.Load() {
		ln.mu.Lock()
		if !ln.closed {
			out = append(out, ListenerSnapshot{
				Addr: ln.key.addr, Port: ln.key.port,
				AcceptQueue: len(ln.acceptq), Backlog: ln.backlog,
				SYNQueue: len(ln.synq), SYNBacklog: ln.synBacklog,
				Cookies:       !s.opts.DisableSYNCookies,
				CookiesActive: !s.opts.DisableSYNCookies && ln.overflowed && now.Sub(ln.lastOverflow) < cookieMaxAge*cookiePeriod,
			})
		}
		ln.mu.Unlock()
	}
	return out
}
