package stack

import (
	"net/netip"
	"sync"
	"time"

	"github.com/ustack-net/ustack/internal/siphash"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// SYN-flood defences beyond the cookies themselves (RFC 4987 §3).
//
// A cookie SYN-ACK costs no memory but one packet write, and a link write
// costs more than the read of the SYN that caused it. A flood from one
// address (hping3 --flood -a X) therefore keeps the writer busier than the
// reader, and the packets the kernel cannot hand us while we are behind are
// dropped at random in the TUN's queue, legitimate SYNs and ACKs among
// them. While a listener's SYN queue overflows, each source address (an
// IPv6 source by its /64, the unit an attacker owns) may therefore make us
// send at most CookieSourceRate cookie SYN-ACKs per second; the SYNs beyond
// are dropped (tcp_syn_cookie_rate_limited). Other sources keep their own
// budget, so clients keep connecting while one address floods. A source
// whose cookie comes back valid gets its token back: a client that completes
// its handshakes is never limited, however fast it connects, while a spoofed
// flood (whose SYN-ACKs go nowhere) gets only the base rate.
//
// The SYN-RECEIVED connections a flood left in the SYN queue would otherwise
// hold it for the whole SYN-ACK retransmission schedule (63 s by default).
// While the queue has overflowed within the cookie lifetime (cookies answer
// new clients anyway), an embryo that has had synQueuePruneRetries SYN-ACK
// retransmissions without an answer is dropped silently instead of the next
// one (tcp_syn_queue_pruned), as Linux's reqsk_timer_handler does when old
// embryos clog the queue.

// A link that can drop a source's SYNs before they reach us (a TUN with its
// eBPF SYN filter, tun.TUN.EnableSYNFilter) is asked to, for synBlockTime,
// whenever a source's budget runs out: the flood's SYNs then cost its own
// sendmsg in the kernel instead of a TUN read of ours each, so they cannot
// crowd other packets out of the TUN's queue. When the block ends, the SYNs
// that arrive meet a bucket refilled for synBlockTime at the base rate, so
// the source still gets its budget of cookies. The block covers the
// source's SYNs to every port, not only the overflowing listener's: a source
// that spends a cookie budget without completing handshakes is spoofed or
// hostile, and a legitimate one (whose cookies come back) never runs out.

// SYNBlocker is implemented by links that can drop the SYNs of a source in
// the kernel for a while (tun.TUN with EnableSYNFilter: an IPv4 address, or
// an IPv6 address's /64).
type SYNBlocker interface {
	BlockSYNs(src netip.Addr, d time.Duration) bool
}

// A source over its cookie budget is blocked for synBlockTime. One that is
// over it again within synBlockRepeat of its last block's end is blocked
// twice as long as the last time, up to synBlockTime<<synBlockMaxLevel
// (1.6 s): a flood that keeps going leaks a burst of SYNs into the stack
// at the end of each block (the budget refilled meanwhile, and what the TUN
// queued before the block was in place), so a short block leaks that burst
// ten times a second, a long one less than once. A source that stays quiet
// for synBlockRepeat starts again from synBlockTime.
const (
	synBlockTime     = 100 * time.Millisecond
	synBlockRepeat   = time.Second
	synBlockMaxLevel = 4
)

// DefaultCookieSourceRate is the default of Options.CookieSourceRate.
const DefaultCookieSourceRate = 1000

// UnlimitedCookieRate, as Options.CookieSourceRate, turns the per-source
// cookie rate limit off (0 picks DefaultCookieSourceRate).
const UnlimitedCookieRate = -1

// synQueuePruneRetries is the number of SYN-ACK retransmissions an embryo
// gets while its SYN queue is overflowing (Linux keeps at least 2).
const synQueuePruneRetries = 2

// sourceBuckets is the number of token buckets: sources hash into them with
// a secret key, so an attacker cannot aim at a victim's bucket; addresses
// that share a bucket share its budget.
const sourceBuckets = 4096

// sourceLimiter is a fixed table of per-source token buckets: no
// allocation and no map insert on the SYN path.
type sourceLimiter struct {
	key   siphash.Key
	rate  int // tokens per second; <= 0: unlimited
	burst int

	mu      sync.Mutex
	buckets []sourceBucket // allocated at the first overflow
}

type sourceBucket struct {
	used   bool
	tokens int32
	last   tcp.Time
	// blockedUntil is the end of the block last installed for this
	// bucket (by the SYNBlocker, or by the stack's own drops); blockLevel
	// how many times its length doubled (synBlockRepeat).
	blockedUntil tcp.Time
	blocked      bool
	blockLevel   uint8
}

func (r *sourceLimiter) init(key siphash.Key, rate int) {
	r.key, r.rate = key, rate
	// A quarter of a second of budget, at least one SYN-ACK: room for that
	// many handshakes of one source in flight at once.
	r.burst = max(rate/4, 1)
}

// bucket returns the index of src's bucket.
func (r *sourceLimiter) bucket(src netip.Addr) uint64 {
	h := siphash.New(r.key)
	if src.Is4() {
		a := src.As4()
		h.Write(a[:])
	} else {
		a := src.As16()
		h.Write(a[:8])
	}
	return h.Sum64() % sourceBuckets
}

// allow takes a token from the bucket of src at now. When there is none,
// block is non-zero when a block of that length is to be (re)installed on a
// link that can drop the source's SYNs before they reach us.
func (r *sourceLimiter) allow(src netip.Addr, now tcp.Time) (ok bool, block time.Duration) {
	if r.rate <= 0 {
		return true, 0
	}
	i := r.bucket(src)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buckets == nil {
		r.buckets = make([]sourceBucket, sourceBuckets)
	}
	b := &r.buckets[i]
	if !b.used {
		b.used, b.tokens, b.last = true, int32(r.burst), now
	}
	if add := int64(now.Sub(b.last)) * int64(r.rate) / int64(time.Second); add > 0 {
		b.tokens = int32(min(int64(r.burst), int64(b.tokens)+add))
		b.last = now
	}
	if b.tokens <= 0 {
		if b.blocked && now.Before(b.blockedUntil) {
			return false, 0
		}
		if b.blocked && now.Sub(b.blockedUntil) < synBlockRepeat {
			b.blockLevel = min(b.blockLevel+1, synBlockMaxLevel)
		} else {
			b.blockLevel = 0
		}
		d := synBlockTime << b.blockLevel
		b.blocked, b.blockedUntil = true, now.Add(d)
		return false, d
	}
	b.tokens--
	return true, 0
}

// refund gives src back the token of a cookie that came back valid.
func (r *sourceLimiter) refund(src netip.Addr) {
	if r.rate <= 0 {
		return
	}
	i := r.bucket(src)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buckets != nil && r.buckets[i].used {
		r.buckets[i].tokens = min(r.buckets[i].tokens+1, int32(r.burst))
	}
}

// pruneEmbryo drops ep instead of its next SYN-ACK retransmission when it
// waits in an overflowing SYN queue and has had synQueuePruneRetries already
// (see above). It reports whether ep is gone. sh.mu is held.
func (s *Stack) pruneEmbryo(ep *endpoint, now tcp.Time) bool {
	ln := ep.ln
	if ln == nil || ep.tc.State() != tcp.StateSynReceived {
		return false
	}
	ln.mu.Lock()
	prune := ep.lnPhase == phaseSynQueue && ln.overflowed && now.Sub(ln.lastOverflow) < cookieMaxAge*cookiePeriod
	ln.mu.Unlock()
	if !prune || ep.tc.Info().CurrentRetransmits < synQueuePruneRetries {
		return false
	}
	s.stats.TCPSynQueuePruned.Add(1)
	s.removeEP(ep)
	ep.wakeAll()
	return true
}

// blockSYNs asks l's device (under any wrappers with an Inner method, such
// as a pcap recorder) to drop src's SYNs for d, counted in
// tcp_syn_blocks when the device did.
func (s *Stack) blockSYNs(l *link, src netip.Addr, d time.Duration) {
	for dev := l.l; dev != nil; {
		if b, ok := dev.(SYNBlocker); ok {
			if b.BlockSYNs(src, d) {
				s.stats.TCPSynBlocks.Add(1)
			}
			return
		}
		w, ok := dev.(interface{ Inner() tun.Link })
		if !ok {
			return
		}
		dev = w.Inner()
	}
}
