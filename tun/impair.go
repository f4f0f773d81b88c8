package tun

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Impairment describes what an impaired link does to the packets written
// through it. Probabilities are in [0, 1]; each is drawn independently per
// packet from a PCG generator seeded with Seed, so a seed replays exactly.
type Impairment struct {
	Loss    float64 // probability a packet is dropped
	Dup     float64 // probability a packet is sent twice
	Reorder float64 // probability a packet is held back behind ReorderDepth later ones
	Corrupt float64 // probability one byte of a packet is inverted

	// ReorderDepth is how many later packets overtake a reordered one
	// (DefaultReorderDepth when 0). A held packet leaves at the latest
	// ReorderTimeout after it would have, so a lone packet is late, not lost.
	ReorderDepth int

	// Delay is added to every packet; Jitter adds a uniform [-Jitter,
	// +Jitter] to it. Packets still leave in the order written (reordering
	// is Reorder's job).
	Delay, Jitter time.Duration

	// Limit is how many packets may be held (delayed or reordered) at once;
	// DefaultImpairLimit when 0. Beyond it packets are dropped, as netem's
	// limit does, and counted as Overflow.
	Limit int

	// Seed seeds the generator.
	Seed uint64
}

// Defaults for Impairment's zero fields.
const (
	DefaultReorderDepth = 3
	DefaultImpairLimit  = 1000
	ReorderTimeout      = 10 * time.Millisecond
)

// IsZero reports whether the impairment does nothing.
func (m Impairment) IsZero() bool {
	return m.Loss == 0 && m.Dup == 0 && m.Reorder == 0 && m.Corrupt == 0 && m.Delay == 0 && m.Jitter == 0
}

// impairKeys lists the keys ParseImpairment accepts, in String's order.
var impairKeys = []string{"loss", "dup", "reorder", "depth", "delay", "jitter", "corrupt", "limit", "seed"}

// ParseImpairment parses the command-line form
// "loss=1%,dup=0.1%,reorder=1%,depth=3,delay=20ms,jitter=5ms,corrupt=0.01%,limit=1000,seed=N".
// Probabilities are a percentage ("1%") or a fraction ("0.01"); durations use
// time.ParseDuration. Every key is optional; "" is no impairment.
func ParseImpairment(s string) (Impairment, error) {
	var m Impairment
	s = strings.TrimSpace(s)
	if s == "" {
		return m, nil
	}
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		key, val, ok := strings.Cut(item, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" || val == "" {
			return Impairment{}, fmt.Errorf("impairment %q: want key=value", item)
		}
		if !slices.Contains(impairKeys, key) {
			return Impairment{}, fmt.Errorf("impairment %q: unknown key %q (known: %s)", item, key, strings.Join(impairKeys, ", "))
		}
		if seen[key] {
			return Impairment{}, fmt.Errorf("impairment %q: %s given twice", item, key)
		}
		seen[key] = true
		var err error
		switch key {
		case "loss":
			m.Loss, err = parseProbability(val)
		case "dup":
			m.Dup, err = parseProbability(val)
		case "reorder":
			m.Reorder, err = parseProbability(val)
		case "corrupt":
			m.Corrupt, err = parseProbability(val)
		case "delay":
			m.Delay, err = parseDuration(val)
		case "jitter":
			m.Jitter, err = parseDuration(val)
		case "depth":
			m.ReorderDepth, err = parseCount(val)
		case "limit":
			m.Limit, err = parseCount(val)
		case "seed":
			m.Seed, err = strconv.ParseUint(val, 0, 64)
			if err != nil {
				err = errors.New("want an unsigned integer")
			}
		}
		if err != nil {
			return Impairment{}, fmt.Errorf("impairment %q: %v", item, err)
		}
	}
	return m, nil
}

func parseProbability(v string) (float64, error) {
	pct := strings.HasSuffix(v, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || f != f {
		return 0, errors.New("want a probability such as 1% or 0.01")
	}
	if pct {
		f /= 100
	}
	if f < 0 || f > 1 {
		if !pct && f > 1 && f <= 100 {
			return 0, fmt.Errorf("probability %v out of [0, 1]; write %v%% for a percentage", f, f)
		}
		return 0, fmt.Errorf("probability %v out of [0%%, 100%%]", v)
	}
	return f, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want a duration such as 20ms")
	}
	if d < 0 {
		return 0, errors.New("negative duration")
	}
	return d, nil
}

func parseCount(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errors.New("want a positive integer")
	}
	return n, nil
}

// String formats m in ParseImpairment's syntax, zero fields left out.
func (m Impairment) String() string {
	var parts []string
	pct := func(k string, f float64) {
		if f != 0 {
			parts = append(parts, k+"="+strconv.FormatFloat(f*100, 'g', -1, 64)+"%")
		}
	}
	pct("loss", m.Loss)
	pct("dup", m.Dup)
	pct("reorder", m.Reorder)
	if m.ReorderDepth != 0 {
		parts = append(parts, "depth="+strconv.Itoa(m.ReorderDepth))
	}
	if m.Delay != 0 {
		parts = append(parts, "delay="+m.Delay.String())
	}
	if m.Jitter != 0 {
		parts = append(parts, "jitter="+m.Jitter.String())
	}
	pct("corrupt", m.Corrupt)
	if m.Limit != 0 {
		parts = append(parts, "limit="+strconv.Itoa(m.Limit))
	}
	if m.Seed != 0 {
		parts = append(parts, "seed="+strconv.FormatUint(m.Seed, 10))
	}
	return strings.Join(parts, ",")
}

// ImpairStats counts what an impaired link did.
type ImpairStats struct {
	Packets    uint64 // packets written to the impaired link
	Dropped    uint64 // lost on purpose (Loss)
	Duplicated uint64 // sent twice (Dup)
	Reordered  uint64 // held back (Reorder)
	Corrupted  uint64 // had a byte inverted (Corrupt)
	Overflow   uint64 // dropped because Limit packets were already held
	Released   uint64 // handed to the inner link (duplicates included)
	Errors     uint64 // inner link writes that failed
}

// Impaired wraps a Link and impairs the packets written through it; reads
// pass straight through. To impair both directions of a pipe, wrap both
// ends; for a TUN, the kernel-to-ustack direction is best impaired with
// netem on the TUN device inside the test's namespace.
//
// In real-time mode (nil clock) delayed packets leave from a timer. In
// virtual-time mode the caller's clock is read on every call and nothing
// happens by itself: advance the clock, then call Flush; NextRelease says
// when the next held packet is due.
type Impaired struct {
	inner Link
	imp   Impairment
	now   func() time.Duration
	start time.Time // real-time mode's epoch

	mu     sync.Mutex
	rng    *rand.Rand
	queue  []heldPacket // delayed packets, release times non-decreasing
	holds  []heldPacket // reordered packets waiting for later ones to pass
	last   time.Duration
	stats  ImpairStats
	free   [][]byte
	out    [][]byte // scratch batch for the inner link
	outGSO []GSO
	timer  *time.Timer
	closed bool
}

type heldPacket struct {
	buf      []byte // Headroom bytes, then the packet
	gso      GSO
	release  time.Duration
	overtake int // reordered: later packets still to pass it
}

// NewImpaired wraps inner. clock returns the current (virtual) time; nil
// selects real time.
func NewImpaired(inner Link, imp Impairment, clock func() time.Duration) *Impaired {
	if imp.ReorderDepth == 0 {
		imp.ReorderDepth = DefaultReorderDepth
	}
	if imp.Limit == 0 {
		imp.Limit = DefaultImpairLimit
	}
	l := &Impaired{
		inner: inner,
		imp:   imp,
		now:   clock,
		rng:   rand.New(rand.NewPCG(imp.Seed, imp.Seed^0x9e3779b97f4a7c15)),
	}
	if clock == nil {
		l.start = time.Now()
		l.now = func() time.Duration { return time.Since(l.start) }
		l.timer = time.AfterFunc(time.Hour, l.onTimer)
		l.timer.Stop()
	}
	return l
}

// Impairment returns the impairment in effect (defaults filled in).
func (l *Impaired) Impairment() Impairment { return l.imp }

// Inner returns the wrapped link.
func (l *Impaired) Inner() Link { return l.inner }

// Stats returns the counters.
func (l *Impaired) Stats() ImpairStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Read implements Link by reading from the inner link.
func (l *Impaired) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return l.inner.Read(bufs, sizes, offset)
}

// ReadGSO implements Link by reading from the inner link.
func (l *Impaired) ReadGSO(bufs [][]byte, sizes []int, gso []GSO, offset int) (int, error) {
	return l.inner.ReadGSO(bufs, sizes, gso, offset)
}

// Write implements Link.
func (l *Impaired) Write(bufs [][]byte, offset int) (int, error) {
	return l.WriteGSO(bufs, nil, offset)
}

// WriteGSO implements Link: every packet is impaired, then whatever is due
// now goes to the inner link. An error from the inner link is returned by
// the call that released the packets (all of bufs counts as accepted).
func (l *Impaired) WriteGSO(bufs [][]byte, gso []GSO, offset int) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	now := l.now()
	for i, b := range bufs {
		pkt := b[offset:]
		var g GSO
		if gso != nil {
			g = gso[i]
		}
		l.impair(now, pkt, g)
	}
	return len(bufs), l.flush(now)
}

// impair decides the fate of one packet. Every packet draws the same
// numbers in the same order, so one knob does not shift another's choices.
func (l *Impaired) impair(now time.Duration, pkt []byte, g GSO) {
	m := &l.imp
	l.stats.Packets++
	lose, corrupt, dup, reorder := l.rng.Float64() < m.Loss, l.rng.Float64() < m.Corrupt,
		l.rng.Float64() < m.Dup, l.rng.Float64() < m.Reorder
	var jitter time.Duration
	if m.Jitter > 0 {
		jitter = time.Duration(l.rng.Int64N(2*int64(m.Jitter)+1)) - m.Jitter
	}
	if lose {
		l.stats.Dropped++
		return
	}
	copies := 1
	if dup {
		l.stats.Duplicated++
		copies = 2
	}
	var flip int
	if corrupt && len(pkt) > 0 {
		l.stats.Corrupted++
		flip = l.rng.IntN(len(pkt))
	}
	release := max(now+m.Delay+jitter, now, l.last)
	l.last = release
	for c := range copies {
		if len(l.queue)+len(l.holds) >= m.Limit {
			l.stats.Overflow++
			continue
		}
		h := heldPacket{buf: l.copyIn(pkt), gso: g, release: release}
		if corrupt && len(pkt) > 0 {
			h.buf[Headroom+flip] ^= 0xff
		}
		if reorder && c == 0 {
			l.stats.Reordered++
			h.overtake = m.ReorderDepth
			h.release += ReorderTimeout
			l.holds = append(l.holds, h)
			continue
		}
		l.queue = append(l.queue, h)
	}
}

func (l *Impaired) copyIn(pkt []byte) []byte {
	var b []byte
	if n := len(l.free); n > 0 {
		b, l.free = l.free[n-1], l.free[:n-1]
	}
	if cap(b) < Headroom+len(pkt) {
		b = make([]byte, Headroom+len(pkt), max(Headroom+len(pkt), Headroom+1500))
	}
	b = b[:Headroom+len(pkt)]
	copy(b[Headroom:], pkt)
	return b
}

// Flush hands every packet due at the clock's current time to the inner
// link. Virtual-time users call it after advancing their clock.
func (l *Impaired) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.flush(l.now())
}

// NextRelease returns when the next held packet is due, or false if none is.
func (l *Impaired) NextRelease() (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nextRelease()
}

func (l *Impaired) nextRelease() (time.Duration, bool) {
	var t time.Duration
	ok := false
	if len(l.queue) > 0 {
		t, ok = l.queue[0].release, true
	}
	for _, h := range l.holds {
		if !ok || h.release < t {
			t, ok = h.release, true
		}
	}
	return t, ok
}

// Held returns how many packets are waiting (delayed or reordered).
func (l *Impaired) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue) + len(l.holds)
}

// flush releases due packets: each one released from the delay queue lets
// the reordered packets behind it count down, and those at zero follow it.
func (l *Impaired) flush(now time.Duration) error {
	l.out, l.outGSO = l.out[:0], l.outGSO[:0]
	due := 0
	for due < len(l.queue) && l.queue[due].release <= now {
		h := l.queue[due]
		l.emit(h)
		due++
		kept := l.holds[:0]
		for _, r := range l.holds {
			r.overtake--
			if r.overtake <= 0 {
				l.emit(r)
				continue
			}
			kept = append(kept, r)
		}
		clear(l.holds[len(kept):])
		l.holds = kept
	}
	n := copy(l.queue, l.queue[due:])
	clear(l.queue[n:])
	l.queue = l.queue[:n]
	kept := l.holds[:0]
	for _, r := range l.holds {
		if r.release <= now {
			l.emit(r)
			continue
		}
		kept = append(kept, r)
	}
	clear(l.holds[len(kept):])
	l.holds = kept

	var err error
	if len(l.out) > 0 {
		l.stats.Released += uint64(len(l.out))
		if _, err = l.inner.WriteGSO(l.out, l.outGSO, Headroom); err != nil {
			l.stats.Errors++
		}
		for i, b := range l.out {
			l.free = append(l.free, b[:0])
			l.out[i] = nil
		}
	}
	if l.timer != nil {
		if t, ok := l.nextRelease(); ok {
			l.timer.Reset(t - now)
		}
	}
	return err
}

func (l *Impaired) emit(h heldPacket) {
	l.out = append(l.out, h.buf)
	l.outGSO = append(l.outGSO, h.gso)
}

// onTimer releases delayed packets in real-time mode; inner errors are
// only counted (Stats.Errors), as there is no caller to return them to.
func (l *Impaired) onTimer() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		_ = l.flush(l.now())
	}
}

// GSOMaxSize implements Link.
func (l *Impaired) GSOMaxSize() int { return l.inner.GSOMaxSize() }

// MTU implements Link.
func (l *Impaired) MTU() int { return l.inner.MTU() }

// BatchSize implements Link.
func (l *Impaired) BatchSize() int { return l.inner.BatchSize() }

// Close closes the inner link and discards held packets.
func (l *Impaired) Close() error {
	err := l.inner.Close() // first: it unblocks a flush stuck in inner.Write
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.queue, l.holds, l.free = nil, nil, nil
	return err
}
