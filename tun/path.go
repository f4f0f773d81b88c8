package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ustack-net/ustack/ip"
)

// A path emulator: the packets of one direction of a WAN path go through a
// PathLane, in this order (the order of netem followed by a token-bucket
// bottleneck, and then the wire):
//
//  1. random loss, duplication, corruption and reordering are drawn
//     (Impairment's knobs, drawn as Impaired draws them);
//  2. the bottleneck: packets queue in front of a link of Rate bit/s, a
//     byte-limited tail-drop queue of Queue bytes (the packet in service
//     included); a packet leaves when its last bit is serialised. With an
//     ECN threshold, an ECN-capable packet (ECT(0), ECT(1)) that will wait
//     longer than it before its serialisation starts (its sojourn time) is
//     marked CE (RFC 3168 §5) instead; packets that are not ECN-capable
//     are only ever tail-dropped;
//  3. the propagation delay, Delay plus a uniform jitter, keeping order
//     (a reordered packet is held back behind ReorderDepth later ones).
//
// The lane is a value fed with times, like the TCP core: Input(now, pkt),
// Due(now), Next(). A Path runs two lanes between two Links in real time;
// tests run a lane in virtual time and get exact delivery times.

// LaneConfig is what one direction of an emulated path does.
type LaneConfig struct {
	// Impairment is the loss, duplication, corruption, reordering, delay
	// and jitter. Its Limit bounds the packets on the wire (after the
	// bottleneck); DefaultLaneLimit when 0.
	Impairment
	// Rate is the bottleneck in bits per second of IP packets (no link
	// layer overhead); 0 is no bottleneck.
	Rate int64
	// Queue is how many bytes of IP packets the bottleneck holds, the one
	// being serialised included; a packet that does not fit is dropped
	// (tail drop). Needed when Rate is set; at least one MTU.
	Queue int
	// ECN, when > 0, is the sojourn time above which the bottleneck marks
	// ECN-capable packets CE (a step marker, like DCTCP's K threshold or
	// CoDel's target without its control law); 0 marks nothing.
	ECN time.Duration
}

// DefaultLaneLimit is how many packets a lane's wire holds when the
// impairment's Limit is 0: 100 ms at 5 Gbit/s of 1500-byte packets.
const DefaultLaneLimit = 1 << 16

// LaneStats counts what a lane did to the packets given to it.
type LaneStats struct {
	Packets    uint64 // packets given to the lane
	Bytes      uint64 // their bytes
	Dropped    uint64 // lost on purpose (Loss)
	QueueDrops uint64 // tail-dropped by a full bottleneck queue
	Duplicated uint64
	Reordered  uint64
	Corrupted  uint64
	Overflow   uint64 // dropped because the wire held Limit packets
	Delivered  uint64 // released to the far side (duplicates included)
	DelivBytes uint64 // their bytes
	// MaxQueue is the most bytes the bottleneck queue held.
	MaxQueue int
	// Marked counts the packets the bottleneck marked CE (LaneConfig.ECN).
	Marked uint64
	// Delay is the queueing delay of the packets the bottleneck took,
	// since the lane began or since the last ResetQueueDelay.
	Delay QueueDelay
}

// QueueDelay is how long the packets a bottleneck accepted waited in its
// queue before their serialisation began (the sojourn time less their own
// serialisation, which the bottleneck's rate sets): Count packets, their
// Sum and Max, and percentiles to queueDelayStep, each the upper bound
// of its histogram bucket (at most Max).
type QueueDelay struct {
	Count         uint64
	Sum, Max      time.Duration
	P50, P90, P99 time.Duration
}

// Mean is the mean queueing delay.
func (q QueueDelay) Mean() time.Duration {
	if q.Count == 0 {
		return 0
	}
	return q.Sum / time.Duration(q.Count)
}

// The queueing-delay histogram: queueDelayBuckets of queueDelayStep, the
// last one open-ended.
const (
	queueDelayStep    = 100 * time.Microsecond
	queueDelayBuckets = 4096
)

// queueDelayHist accumulates QueueDelay.
type queueDelayHist struct {
	q QueueDelay
	n [queueDelayBuckets]uint64
}

func (h *queueDelayHist) add(d time.Duration) {
	h.q.Count++
	h.q.Sum += d
	h.q.Max = max(h.q.Max, d)
	h.n[min(int(d/queueDelayStep), queueDelayBuckets-1)]++
}

// stats is the QueueDelay with its percentiles.
func (h *queueDelayHist) stats() QueueDelay {
	q := h.q
	if q.Count == 0 {
		return q
	}
	pct := func(p uint64) time.Duration {
		rank := (q.Count*p + 99) / 100 // the rank-th smallest, 1-based
		var seen uint64
		for i, n := range h.n {
			if seen += n; seen >= rank {
				return min(time.Duration(i+1)*queueDelayStep, q.Max)
			}
		}
		return q.Max
	}
	q.P50, q.P90, q.P99 = pct(50), pct(90), pct(99)
	return q
}

// PathLane is one direction of an emulated path as a state machine driven
// by the caller's clock. It is not safe for concurrent use.
type PathLane struct {
	cfg LaneConfig
	rng *rand.Rand

	// The bottleneck: busyUntil is when it finishes serialising what it
	// has accepted; backlog the accepted packets still in it (by the time
	// their last bit leaves), queued their bytes.
	busyUntil time.Duration
	backlog   []queuedPacket
	queued    int

	wire  []heldPacket // on the wire, release times non-decreasing
	holds []heldPacket // reordered, waiting for later packets to pass
	last  time.Duration
	stats LaneStats
	free  [][]byte
	delay queueDelayHist
}

type queuedPacket struct {
	done time.Duration
	size int
}

// NewPathLane returns a lane doing what cfg says, or an error if cfg is
// inconsistent (a Rate without a Queue, negative values).
func NewPathLane(cfg LaneConfig) (*PathLane, error) {
	if cfg.Rate < 0 || cfg.Queue < 0 || cfg.Delay < 0 || cfg.Jitter < 0 || cfg.ECN < 0 {
		return nil, errors.New("tun: path lane: negative rate, queue, delay, jitter or ECN threshold")
	}
	if cfg.ECN > 0 && cfg.Rate == 0 {
		return nil, errors.New("tun: path lane: an ECN threshold needs a rate (it marks the bottleneck's queue)")
	}
	if cfg.Rate > 0 && cfg.Queue < 576 {
		return nil, fmt.Errorf("tun: path lane: a %d-byte bottleneck queue holds no packet; want at least an MTU", cfg.Queue)
	}
	if cfg.ReorderDepth == 0 {
		cfg.ReorderDepth = DefaultReorderDepth
	}
	if cfg.Limit == 0 {
		cfg.Limit = DefaultLaneLimit
	}
	return &PathLane{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}, nil
}

// Config returns the lane's settings, defaults filled in.
func (l *PathLane) Config() LaneConfig { return l.cfg }

// Stats returns the counters.
func (l *PathLane) Stats() LaneStats {
	s := l.stats
	s.Delay = l.delay.stats()
	return s
}

// ResetQueueDelay starts the queueing-delay statistics afresh (to measure
// one workload of several) and returns what they were.
func (l *PathLane) ResetQueueDelay() QueueDelay {
	q := l.delay.stats()
	l.delay = queueDelayHist{}
	return q
}

// serialisation is how long the bottleneck takes to send size bytes.
func (l *PathLane) serialisation(size int) time.Duration {
	return time.Duration(int64(size) * 8 * int64(time.Second) / l.cfg.Rate)
}

// Input gives the lane one packet at time now; the lane copies it. Times
// must not go backwards.
func (l *PathLane) Input(now time.Duration, pkt []byte) {
	m := &l.cfg
	l.stats.Packets++
	l.stats.Bytes += uint64(len(pkt))
	// The same draws in the same order for every packet, so one knob does
	// not shift another's choices and a seed replays exactly.
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
	leave := now
	mark := false
	if m.Rate > 0 {
		l.drain(now)
		if l.queued+len(pkt) > m.Queue {
			l.stats.QueueDrops++
			return
		}
		start := max(now, l.busyUntil)
		sojourn := start - now
		l.delay.add(sojourn)
		if m.ECN > 0 && sojourn > m.ECN && ecnCapable(pkt) {
			mark = true
			l.stats.Marked++
		}
		leave = start + l.serialisation(len(pkt))
		l.busyUntil = leave
		l.backlog = append(l.backlog, queuedPacket{done: leave, size: len(pkt)})
		l.queued += len(pkt)
		l.stats.MaxQueue = max(l.stats.MaxQueue, l.queued)
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
	release := max(leave+m.Delay+jitter, leave, l.last)
	l.last = release
	for c := range copies {
		if len(l.wire)+len(l.holds) >= m.Limit {
			l.stats.Overflow++
			continue
		}
		h := heldPacket{buf: l.copyIn(pkt), release: release}
		if mark {
			markCE(h.buf[Headroom:])
		}
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
		l.wire = append(l.wire, h)
	}
}

// ecnCapable reports whether an IP packet's ECN field is ECT(0) or ECT(1)
// (RFC 3168 §5: a router marks only those; CE stays CE).
func ecnCapable(pkt []byte) bool {
	switch {
	case len(pkt) >= ip.IPv4MinHeaderLen && pkt[0]>>4 == 4:
		e := pkt[1] & 3
		return e == 1 || e == 2
	case len(pkt) >= ip.IPv6HeaderLen && pkt[0]>>4 == 6:
		e := pkt[1] >> 4 & 3
		return e == 1 || e == 2
	}
	return false
}

// markCE sets an ECN-capable packet's ECN field to CE, updating the IPv4
// header checksum (RFC 1624).
func markCE(pkt []byte) {
	if pkt[0]>>4 == 4 {
		old := binary.BigEndian.Uint16(pkt[0:2])
		pkt[1] |= 3
		sum := binary.BigEndian.Uint16(pkt[10:12])
		binary.BigEndian.PutUint16(pkt[10:12], ip.ChecksumUpdate16(sum, old, binary.BigEndian.Uint16(pkt[0:2])))
		return
	}
	// The traffic class spans bytes 0 and 1; its ECN bits are bits 5 and
	// 4 of byte 1.
	pkt[1] |= 3 << 4
}

// drain forgets the packets the bottleneck finished sending by now.
func (l *PathLane) drain(now time.Duration) {
	n := 0
	for n < len(l.backlog) && l.backlog[n].done <= now {
		l.queued -= l.backlog[n].size
		n++
	}
	if n > 0 {
		k := copy(l.backlog, l.backlog[n:])
		l.backlog = l.backlog[:k]
	}
}

// Queued returns the bytes in the bottleneck queue at time now.
func (l *PathLane) Queued(now time.Duration) int {
	l.drain(now)
	return l.queued
}

func (l *PathLane) copyIn(pkt []byte) []byte {
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

// Next returns when the next packet is due at the far side, or false if
// the lane holds none.
func (l *PathLane) Next() (time.Duration, bool) {
	var t time.Duration
	ok := false
	if len(l.wire) > 0 {
		t, ok = l.wire[0].release, true
	}
	for _, h := range l.holds {
		if !ok || h.release < t {
			t, ok = h.release, true
		}
	}
	return t, ok
}

// Due appends to out the packets due at the far side by now, in the order
// they arrive there, and returns it. Each is a buffer with Headroom bytes
// in front of the packet; hand them back with Recycle once written.
// Release, if not nil, receives each packet's due time (for precision
// accounting), in the same order.
func (l *PathLane) Due(now time.Duration, out [][]byte, release *[]time.Duration) [][]byte {
	emit := func(h heldPacket) {
		out = append(out, h.buf)
		l.stats.Delivered++
		l.stats.DelivBytes += uint64(len(h.buf) - Headroom)
		if release != nil {
			*release = append(*release, h.release)
		}
	}
	due := 0
	for due < len(l.wire) && l.wire[due].release <= now {
		emit(l.wire[due])
		due++
		kept := l.holds[:0]
		for _, r := range l.holds {
			r.overtake--
			if r.overtake <= 0 {
				emit(r)
				continue
			}
			kept = append(kept, r)
		}
		clear(l.holds[len(kept):])
		l.holds = kept
	}
	n := copy(l.wire, l.wire[due:])
	clear(l.wire[n:])
	l.wire = l.wire[:n]
	kept := l.holds[:0]
	for _, r := range l.holds {
		if r.release <= now {
			emit(r)
			continue
		}
		kept = append(kept, r)
	}
	clear(l.holds[len(kept):])
	l.holds = kept
	return out
}

// Recycle takes back buffers Due returned.
func (l *PathLane) Recycle(bufs [][]byte) {
	for _, b := range bufs {
		if len(l.free) < 4096 {
			l.free = append(l.free, b[:0])
		}
	}
}

// PathConfig is an emulated path: Up is what side A sends to side B (in the
// bench and `ustack path`, the client's side is A), Down the other way.
type PathConfig struct {
	Up, Down LaneConfig
	// RTT is the base round-trip time asked for (the two delays), kept to
	// report it and to size queues given in BDPs.
	RTT time.Duration
}

// pathKeys are the keys ParsePath accepts, alone or after "up." or "down.".
var pathKeys = []string{"rtt", "delay", "rate", "queue", "ecn", "loss", "jitter", "reorder", "depth", "dup", "corrupt", "limit", "seed"}

// ParsePath parses the command-line form of an emulated path:
//
//	rtt=40ms,rate=100mbit,loss=0.5%,queue=1bdp,jitter=1ms,reorder=1%,seed=N
//
// rtt is split evenly into the two one-way delays. A key applies to both
// directions; prefixed with "up." (A to B) or "down." (B to A) to one only,
// overriding the unprefixed one (up.delay and down.delay are one-way).
// Rates are in bit/s with an optional k, m or g prefix: "100mbit", "1gbit",
// "500kbit". The queue is bytes ("150000", "64KiB", "1MiB") or bandwidth-delay
// products of the base RTT ("1bdp", "0.5bdp"); it defaults to 1bdp and is at
// least 1500 bytes. Probabilities and durations are as in ParseImpairment.
// The seed of the down direction is seed+1, so the two directions draw
// independently.
func ParsePath(s string) (PathConfig, error) {
	var pc PathConfig
	var queues [2]string
	var queueBare [2]bool // the queue came from the unprefixed key
	var ecnBare [2]bool   // so did the ECN threshold
	cfg := [2]*LaneConfig{&pc.Up, &pc.Down}
	pc.Down.Seed = 1 // seed+1 for the default seed 0 too
	s = strings.TrimSpace(s)
	if s == "" {
		return pc, errors.New(`path: empty; want e.g. "rtt=40ms,rate=100mbit,loss=0.5%"`)
	}
	type setting struct{ dir, key, val, item string }
	var settings [3][]setting // 0: both directions, 1: up, 2: down
	seen := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		key, val, ok := strings.Cut(item, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" || val == "" {
			return PathConfig{}, fmt.Errorf("path %q: want key=value", item)
		}
		if seen[key] {
			return PathConfig{}, fmt.Errorf("path %q: %s given twice", item, key)
		}
		seen[key] = true
		slot := 0
		bare := key
		if k, ok := strings.CutPrefix(key, "up."); ok {
			slot, bare = 1, k
		} else if k, ok := strings.CutPrefix(key, "down."); ok {
			slot, bare = 2, k
		}
		if !slices.Contains(pathKeys, bare) || (slot != 0 && bare == "rtt") {
			return PathConfig{}, fmt.Errorf("path %q: unknown key %q (known: %s, each also as up.KEY or down.KEY but rtt)",
				item, key, strings.Join(pathKeys, ", "))
		}
		if slot == 0 && bare == "delay" {
			return PathConfig{}, fmt.Errorf("path %q: give rtt, or the one-way up.delay and down.delay", item)
		}
		settings[slot] = append(settings[slot], setting{key: bare, val: val, item: item})
	}
	for slot, list := range settings {
		for _, st := range list {
			dirs := []int{0, 1}
			if slot > 0 {
				dirs = []int{slot - 1}
			}
			for _, d := range dirs {
				c := cfg[d]
				var err error
				switch st.key {
				case "rtt":
					var rtt time.Duration
					if rtt, err = parseDuration(st.val); err == nil {
						pc.RTT = rtt
						// the up half rounds down, the down half takes the rest
						if d == 0 {
							c.Delay = rtt / 2
						} else {
							c.Delay = rtt - rtt/2
						}
					}
				case "delay":
					c.Delay, err = parseDuration(st.val)
				case "ecn":
					ecnBare[d] = slot == 0
					c.ECN, err = parseDuration(st.val)
					if err == nil && c.ECN <= 0 {
						err = errors.New("want a positive sojourn time such as 5ms")
					}
				case "rate":
					c.Rate, err = parseRate(st.val)
				case "queue":
					queues[d] = st.val
					queueBare[d] = slot == 0
				case "loss":
					c.Loss, err = parseProbability(st.val)
				case "dup":
					c.Dup, err = parseProbability(st.val)
				case "reorder":
					c.Reorder, err = parseProbability(st.val)
				case "corrupt":
					c.Corrupt, err = parseProbability(st.val)
				case "jitter":
					c.Jitter, err = parseDuration(st.val)
				case "depth":
					c.ReorderDepth, err = parseCount(st.val)
				case "limit":
					c.Limit, err = parseCount(st.val)
				case "seed":
					var seed uint64
					seed, err = strconv.ParseUint(st.val, 0, 64)
					if err != nil {
						err = errors.New("want an unsigned integer")
					}
					c.Seed = seed + uint64(d)
				}
				if err != nil {
					return PathConfig{}, fmt.Errorf("path %q: %v", st.item, err)
				}
			}
		}
	}
	if pc.RTT == 0 {
		pc.RTT = pc.Up.Delay + pc.Down.Delay
	}
	if pc.Up.Rate == 0 && pc.Down.Rate == 0 && queues[0] != "" {
		return PathConfig{}, fmt.Errorf("path: a queue needs a rate (the queue is the bottleneck's)")
	}
	if pc.Up.Rate == 0 && pc.Down.Rate == 0 && pc.Up.ECN > 0 {
		return PathConfig{}, fmt.Errorf("path: ecn needs a rate (it marks the bottleneck's queue)")
	}
	for d, c := range cfg {
		if c.Rate == 0 && c.ECN > 0 {
			if !ecnBare[d] {
				return PathConfig{}, fmt.Errorf("path: %s.ecn needs a %s.rate (it marks the bottleneck's queue)", []string{"up", "down"}[d], []string{"up", "down"}[d])
			}
			c.ECN = 0 // the bare key covers the direction that has a bottleneck
		}
		if c.Rate == 0 {
			if queues[d] != "" && !queueBare[d] {
				return PathConfig{}, fmt.Errorf("path: %s.queue needs a %s.rate (the queue is the bottleneck's)", []string{"up", "down"}[d], []string{"up", "down"}[d])
			}
			continue
		}
		q := queues[d]
		if q == "" {
			q = "1bdp"
		}
		n, err := parseQueue(q, c.Rate, pc.RTT)
		if err != nil {
			return PathConfig{}, fmt.Errorf("path: queue=%s: %v", q, err)
		}
		c.Queue = n
	}
	return pc, nil
}

// parseRate parses "100mbit", "1.5gbit", "800kbit" or "1000000bit" (bit/s).
func parseRate(v string) (int64, error) {
	lv := strings.ToLower(v)
	mult := 0.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if num, ok := strings.CutSuffix(lv, u.suffix); ok {
			lv, mult = num, u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(lv, 64)
	if mult == 0 || err != nil || f != f || math.IsInf(f, 0) {
		return 0, errors.New("want a rate such as 100mbit, 1gbit or 500kbit (bits per second)")
	}
	r := f * mult
	if r < 8000 || r > 1e12 {
		return 0, fmt.Errorf("rate %s out of [8kbit, 1000gbit]", v)
	}
	return int64(r), nil
}

// parseQueue parses a queue size in bytes or BDPs of rate and rtt.
func parseQueue(v string, rate int64, rtt time.Duration) (int, error) {
	var n float64
	if num, ok := strings.CutSuffix(strings.ToLower(v), "bdp"); ok {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || !(f > 0) || f > 1000 {
			return 0, errors.New("want a positive number of BDPs such as 1bdp or 0.5bdp")
		}
		if rtt == 0 {
			return 0, errors.New("a queue in BDPs needs an rtt (or delays)")
		}
		n = f * float64(rate) / 8 * rtt.Seconds()
	} else {
		mult := 1.0
		num := v
		for _, u := range []struct {
			suffix string
			mult   float64
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"B", 1}} {
			if s, ok := strings.CutSuffix(v, u.suffix); ok {
				num, mult = s, u.mult
				break
			}
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || !(f > 0) {
			return 0, errors.New("want bytes (150000, 64KiB, 1MiB) or BDPs (1bdp)")
		}
		n = f * mult
	}
	if n > 1<<30 {
		return 0, errors.New("more than 1 GiB")
	}
	return max(int(n), 1500), nil
}

// String formats the path in ParsePath's syntax, per direction where the
// two differ.
func (pc PathConfig) String() string {
	var parts []string
	add := func(prefix string, c LaneConfig, other *LaneConfig, rtt bool) {
		same := func(f func(LaneConfig) string) bool { return other != nil && f(c) == f(*other) }
		put := func(k string, f func(LaneConfig) string) {
			v := f(c)
			if v == "" || (prefix != "" && same(f)) {
				return
			}
			parts = append(parts, prefix+k+"="+v)
		}
		if !rtt {
			put("delay", func(c LaneConfig) string { return durStr(c.Delay) })
		}
		put("rate", func(c LaneConfig) string { return rateStr(c.Rate) })
		put("queue", func(c LaneConfig) string {
			if c.Queue == 0 {
				return ""
			}
			return strconv.Itoa(c.Queue)
		})
		put("ecn", func(c LaneConfig) string { return durStr(c.ECN) })
		put("loss", func(c LaneConfig) string { return pctStr(c.Loss) })
		put("jitter", func(c LaneConfig) string { return durStr(c.Jitter) })
		put("reorder", func(c LaneConfig) string { return pctStr(c.Reorder) })
		put("dup", func(c LaneConfig) string { return pctStr(c.Dup) })
		put("corrupt", func(c LaneConfig) string { return pctStr(c.Corrupt) })
	}
	sym := pc.Up.Delay == pc.RTT/2 && pc.Down.Delay == pc.RTT-pc.RTT/2
	if sym && pc.RTT > 0 {
		parts = append(parts, "rtt="+pc.RTT.String())
	}
	// Settings the two share are printed once, bare; the rest per direction.
	up, down := pc.Up, pc.Down
	common := LaneConfig{}
	if up.Rate == down.Rate {
		common.Rate = up.Rate
	}
	if up.Queue == down.Queue {
		common.Queue = up.Queue
	}
	if up.Loss == down.Loss {
		common.Loss = up.Loss
	}
	if up.ECN == down.ECN {
		common.ECN = up.ECN
	}
	if up.Jitter == down.Jitter {
		common.Jitter = up.Jitter
	}
	if up.Reorder == down.Reorder {
		common.Reorder = up.Reorder
	}
	if up.Dup == down.Dup {
		common.Dup = up.Dup
	}
	if up.Corrupt == down.Corrupt {
		common.Corrupt = up.Corrupt
	}
	add("", common, nil, true)
	add("up.", up, &common, sym)
	add("down.", down, &common, sym)
	return strings.Join(parts, ",")
}

func durStr(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func pctStr(f float64) string {
	if f == 0 {
		return ""
	}
	return strconv.FormatFloat(f*100, 'g', -1, 64) + "%"
}

func rateStr(r int64) string {
	switch {
	case r == 0:
		return ""
	case r%1e9 == 0:
		return strconv.FormatInt(r/1e9, 10) + "gbit"
	case r%1e6 == 0:
		return strconv.FormatInt(r/1e6, 10) + "mbit"
	case r%1e3 == 0:
		return strconv.FormatInt(r/1e3, 10) + "kbit"
	}
	return strconv.FormatInt(r, 10) + "bit"
}
