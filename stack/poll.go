package stack

import (
	"fmt"

	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// The stack driven by hand (Options.Driven), smoltcp's iface.poll(now):
// a driver hands the stack each batch of packets with the time it arrived
// (Input), runs the timers due by a time (RunTimers), writes what the stack
// queued to the links (Flush), and asks when the next timer falls due
// (NextTimer). Nothing else moves the stack, so a driver with a
// ManualClock gets the same packets at the same virtual times on every run:
// the drill's ustack DUT and the stack's tests run the stack that ships
// this way. The link goroutines of an ordinary stack are a loop around the
// same inputBatch and runDue.
//
// Time: every call takes now, which must not go back, and should be the
// Clock's Now (application calls read the Clock): a driver with a
// ManualClock advances it first, then calls these with its Now.

// inputBatch runs one batch of packets read from l at time now: each
// packet through IP and TCP, then one Output per connection that received
// something, and the batch's writes. sizes and gso (nil: plain packets)
// describe bufs, each packet at headroom.
func (s *Stack) inputBatch(l *link, bufs [][]byte, sizes []int, gso []tun.GSO, now tcp.Time, b *rxBatch) {
	var bytes uint64
	for i := range bufs {
		bytes += uint64(sizes[i])
	}
	l.rxBatches.Add(1)
	l.rxPackets.Add(uint64(len(bufs)))
	l.rxBytes.Add(bytes)
	for i := range bufs {
		g := tun.GSO{}
		if gso != nil && l.gsoMax > 0 {
			g = gso[i]
		}
		s.input(l, bufs[i][headroom:headroom+sizes[i]], g, now, b)
	}
	s.finishBatch(l, b, now)
}

// Input runs a batch of packets received on link number idx (the order of
// Options.Links, then AddLink) at time now, as one read of that link does:
// connections that received get one Output each at the end (one ACK per
// batch). Each packet is pkts[i], plain (full checksums), at most the
// link's MTU, or a super-packet described by gso[i] (gso may be nil). The
// stack does not keep the slices. Input is for a Driven stack; what it
// sends waits for Flush.
func (s *Stack) Input(idx int, pkts [][]byte, gso []tun.GSO, now tcp.Time) error {
	links := *s.ifaces.Load()
	if idx < 0 || idx >= len(links) {
		return fmt.Errorf("stack: Input on link %d of %d", idx, len(links))
	}
	l := links[idx]
	s.driveMu.Lock()
	defer s.driveMu.Unlock()
	d := &s.drive
	d.bufs, d.sizes = d.bufs[:0], d.sizes[:0]
	for _, p := range pkts {
		if len(p) > tun.MaxPacketSize {
			s.stats.RxPackets.Add(1)
			s.stats.LinkReadErrors.Add(1)
			continue
		}
		// The parsers may rewrite headers in place (IPv4 checksum of a
		// super-packet), and the caller's slice is not ours: copy, at
		// the headroom the link reader would leave.
		n := len(d.bufs)
		if n == len(d.store) {
			d.store = append(d.store, make([]byte, headroom+tun.MaxPacketSize))
		}
		buf := d.store[n]
		copy(buf[headroom:], p)
		d.bufs = append(d.bufs, buf)
		d.sizes = append(d.sizes, len(p))
	}
	var g []tun.GSO
	if gso != nil && len(gso) == len(pkts) && len(d.bufs) == len(pkts) {
		g = gso
	}
	s.inputBatch(l, d.bufs, d.sizes, g, now, &d.batch)
	return nil
}

// RunTimers runs every connection timer due by now (retransmission,
// delayed ACK, persist, keepalive, TIME-WAIT...), as the shards' clock
// timers do on an ordinary stack. What they send waits for Flush.
func (s *Stack) RunTimers(now tcp.Time) {
	for _, sh := range s.shards {
		sh.mu.Lock()
		sh.runDue(now)
		sh.armTimer(now)
		sh.mu.Unlock()
	}
	s.kickLinks()
}

// NextTimer returns the earliest time RunTimers has work at; false when no
// connection has a timer. It may be earlier than the next real deadline
// (the heap is re-keyed lazily, see timerHeap): RunTimers then does nothing
// and NextTimer moves on.
func (s *Stack) NextTimer() (tcp.Time, bool) {
	var at tcp.Time
	found := false
	for _, sh := range s.shards {
		sh.mu.Lock()
		t, ok := sh.timers.min()
		sh.mu.Unlock()
		if ok && (!found || t.Before(at)) {
			at, found = t, true
		}
	}
	return at, found
}

// Flush writes every packet queued on the links, on the calling goroutine,
// in queue order.
func (s *Stack) Flush() {
	for _, l := range *s.links.Load() {
		if !l.pending.Load() {
			continue
		}
		l.flushMu.Lock()
		sc := &l.relief
		sc.q, sc.bufs, sc.gso = l.flush(sc.q, sc.bufs, sc.gso)
		l.flushMu.Unlock()
	}
}

// Poll runs the timers due by now and writes what is queued: the whole of
// a Driven stack's work at now, after Input has delivered what arrived.
func (s *Stack) Poll(now tcp.Time) {
	s.RunTimers(now)
	s.Flush()
}

// driveState is Input's working space; guarded by Stack.driveMu.
type driveState struct {
	store [][]byte // packet buffers, grown to the largest batch seen
	bufs  [][]byte
	sizes []int
	batch rxBatch
}
