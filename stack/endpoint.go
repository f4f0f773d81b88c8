package stack

import (
	"syscall"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// endpoint is one connection in the table: the tcp.Conn and what the stack
// keeps around it. Every field is guarded by sh.mu unless noted.
type endpoint struct {
	sh   *shard // immutable; sh.s is the stack
	id   tuple  // immutable
	link *link  // immutable: where its packets go
	tc   *tcp.Conn

	timer timerSlot

	// ln is the listener that made a passive connection (immutable);
	// lnPhase is guarded by ln.mu.
	ln *Listener

	// stackErr is a hard error the stack decided (ICMP unreachable in
	// SYN-SENT, Stack.Close); it wins over the Conn's own error. softErr is
	// an ICMP error reported only if the connection later times out
	// (Linux sk_err_soft).
	stackErr error
	softErr  error

	// Keepalive parameters as the application set them.
	kaIdle, kaIntvl time.Duration
	kaCount         int32
	kaOn            bool

	// The small fields sit together: an endpoint is kept per connection.
	dirty   bool      // queued for Output at the end of an input batch
	state   tcp.State // last state seen by afterOp (for the per-state gauges)
	removed bool      // no longer in the table
	lnPhase lnPhase
	linger0 bool // SetLinger(0): Close sends RST
	appOpen bool // handed to the application, which has not closed it

	// rdWake and wrWake (capacity 1: "something changed") are made by the
	// first Read or Write that has to wait, so a connection nobody waits
	// on costs no channels; waking a nil one does nothing.
	rdWake, wrWake chan struct{}
}

// waitCh returns *ch, making it first if needed. sh.mu must be held.
func waitCh(ch *chan struct{}) chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{}, 1)
	}
	return *ch
}

// lnPhase is where a passive connection is in its listener's life cycle.
type lnPhase uint8

const (
	phaseSynQueue    lnPhase = iota // SYN-RECEIVED, counted in the SYN queue
	phaseAcceptQueue                // established, waiting for Accept
	phaseAccepted                   // handed to the application (or dropped)
)

// newEndpoint wraps tc, made with cfg, for the table.
// It sends on l, for a multi-queue link one queue (see queues.go).
func newEndpoint(s *Stack, sh *shard, id tuple, l *link, tc *tcp.Conn, cfg *tcp.Config) *endpoint {
	tc.ShareScratch(&sh.scratch)
	ep := &endpoint{
		sh: sh, id: id, link: l, tc: tc,
		timer:   timerSlot{idx: -1},
		state:   tcp.StateClosed,
		kaOn:    cfg.KeepAlive,
		kaIdle:  s.tcpCfg.KeepIdle,
		kaIntvl: s.tcpCfg.KeepInterval,
		kaCount: int32(min(s.tcpCfg.KeepCount, maxKeepCount)),
	}
	// A socket's own settings; zero ones are the stack's (made whole in New).
	if cfg.KeepIdle > 0 {
		ep.kaIdle = cfg.KeepIdle
	}
	if cfg.KeepInterval > 0 {
		ep.kaIntvl = cfg.KeepInterval
	}
	if cfg.KeepCount > 0 {
		ep.kaCount = int32(min(cfg.KeepCount, maxKeepCount))
	}
	return ep
}

// Err returns the connection's pending error, as getsockopt(SO_ERROR)
// reads it: the reset, refusal or timeout that ended it (nil while it is
// alive or after a clean close), without consuming it.
func (c *Conn) Err() error {
	ep := c.ep
	ep.sh.mu.Lock()
	defer ep.sh.mu.Unlock()
	return ep.err()
}

// Emit serializes one outgoing segment of the Conn into a packet (tcp.Emitter).
func (ep *endpoint) Emit(seg *tcp.Segment) {
	s := ep.sh.s
	if s.trace != nil {
		s.trace.segment(ep, false, seg, s.clock.Now())
	}
	s.emitTCP(ep.link, ep.id.local, ep.id.remote, seg)
}

// insert puts ep into its shard's table; sh.mu must be held.
func (s *Stack) insert(ep *endpoint) {
	ep.sh.conns[ep.id.key()] = ep
	s.nconns.Add(1)
	s.stats.TCPConnsOpened.Add(1)
	s.noteState(ep)
}

// noteState moves ep between the per-state gauges and applies the TIME-WAIT
// limit. sh.mu must be held.
func (s *Stack) noteState(ep *endpoint) bool {
	st := ep.tc.State()
	if st == ep.state && !ep.removed {
		return true
	}
	if s.trace != nil && st != ep.state {
		s.trace.state(ep, ep.state, st, s.clock.Now())
	}
	if ep.state == tcp.StateTimeWait {
		s.ntimewait.Add(-1)
	}
	s.states[ep.state&15].Add(-1)
	if ep.removed {
		return true
	}
	s.states[st&15].Add(1)
	if st == tcp.StateClosed {
		switch ep.state {
		case tcp.StateSynSent, tcp.StateSynReceived:
			s.stats.TCPAttemptFails.Add(1)
		case tcp.StateEstablished, tcp.StateCloseWait:
			s.stats.TCPEstabResets.Add(1)
		}
	}
	ep.state = st
	if st == tcp.StateTimeWait {
		if s.ntimewait.Add(1) > int64(s.opts.TimeWaitLimit) {
			// Linux tcp_time_wait: "TCP: time wait bucket table
			// overflow" — the connection is simply freed.
			s.stats.TCPTimeWaitOverflow.Add(1)
			return false
		}
	}
	return true
}

// afterOp is run after every call into ep's Conn: it hands events to the
// waiting application goroutines and the listener, keeps the gauges and the
// timer heap up to date, and frees the endpoint once the Conn is done.
// sh.mu must be held.
func (s *Stack) afterOp(ep *endpoint, now tcp.Time) {
	if ep.removed {
		return
	}
	tc := ep.tc
	ev := tc.TakeEvents()
	keep := s.noteState(ep)
	if ev != 0 {
		if ev&tcp.EventTimedOut != 0 {
			s.stats.TCPTimedOut.Add(1)
		}
		if ev&(tcp.EventReset|tcp.EventRefused) != 0 {
			s.stats.TCPPeerResets.Add(1)
		}
		if ev&tcp.EventUndo != 0 {
			s.countUndo(tc)
		}
		if ev&tcp.EventEstablished != 0 && ep.ln != nil {
			ep.ln.established(ep, now)
		}
		if ev&tcp.EventWritable != 0 {
			// Forward progress: an earlier ICMP soft error is stale
			// (Linux clears sk_err_soft on a new ACK).
			ep.softErr = nil
		}
		if ev&(tcp.EventReadable|tcp.EventEOF|tcp.EventReset|tcp.EventRefused|tcp.EventTimedOut|tcp.EventClosed) != 0 {
			wake(ep.rdWake)
		}
		if ev&(tcp.EventWritable|tcp.EventEstablished|tcp.EventReset|tcp.EventRefused|tcp.EventTimedOut|tcp.EventClosed) != 0 {
			wake(ep.wrWake)
		}
	}
	if !keep || tc.Done() {
		s.removeEP(ep)
		ep.wakeAll()
		return
	}
	if at, ok := tc.NextDeadline(); ok {
		if !at.After(now) {
			at = now.Add(minTimerStep)
		}
		ep.sh.timers.schedule(ep, at)
		ep.sh.armTimer(now)
	}
}

// countUndo counts the undo a connection just reported (tcp.EventUndo).
func (s *Stack) countUndo(tc *tcp.Conn) {
	rto, byTS := tc.LastUndo()
	if rto {
		s.stats.TCPUndoRTO.Add(1)
	} else {
		s.stats.TCPUndoRecovery.Add(1)
	}
	if byTS {
		s.stats.TCPUndoTS.Add(1)
	} else {
		s.stats.TCPUndoDSACK.Add(1)
	}
}

// removeEP takes ep out of the table. sh.mu must be held.
func (s *Stack) removeEP(ep *endpoint) {
	if ep.removed {
		return
	}
	if cur := ep.sh.conns[ep.id.key()]; cur == ep {
		delete(ep.sh.conns, ep.id.key())
	}
	ep.sh.timers.remove(ep)
	ep.removed = true
	// The Conn is done: give its buffer memory back to the budget, all but
	// received bytes the application may still read.
	ep.tc.ReleaseMemory(ep.appOpen)
	s.noteState(ep)
	s.nconns.Add(-1)
	s.stats.TCPConnsClosed.Add(1)
	if ep.ln != nil {
		ep.ln.forget(ep)
	}
}

// wakeAll wakes every goroutine that may wait on ep.
func (ep *endpoint) wakeAll() {
	wake(ep.rdWake)
	wake(ep.wrWake)
}

// wake posts a token on a capacity-1 notification channel without blocking.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// err returns the error the application should see for ep, nil if none:
// the stack's own decision first, then the Conn's sticky error, with an ICMP
// soft error replacing a timeout as Linux's tcp_write_err does.
func (ep *endpoint) err() error {
	if ep.stackErr != nil {
		return ep.stackErr
	}
	err := ep.tc.Err()
	if err == syscall.ETIMEDOUT && ep.softErr != nil {
		return ep.softErr
	}
	return err
}
