package tcp

import (
	"math"
	"math/bits"
	"time"
)

// Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation-02,
// Linux tcp_rate.c): every transmission of a (super-)segment records a
// snapshot of how much had been delivered and when; an ACK that delivers
// segments (cumulatively or by SACK) turns the snapshot of the most recently
// sent of them into a rate sample: delivered bytes over max(send_elapsed,
// ack_elapsed).

// sentRecord is one transmitted segment or super-segment of
// [start, start+len) in sequence space (a FIN counts one), with the
// connection's delivery state when it was (last) sent: the draft's per-packet
// P.delivered, P.delivered_time, P.first_sent_time, P.is_app_limited, plus
// the bytes in flight and lost then, which BBRv2/v3 use to judge a flight's
// loss rate (Linux tcp_skb_cb.tx).
type sentRecord struct {
	start         Seq
	len           uint32
	sentTime      Time
	delivered     uint64 // C.delivered when sent
	deliveredTime Time   // C.delivered_time when sent
	firstSentTime Time   // C.first_sent_time when sent
	lost          uint64 // C.lost when sent
	inFlight      uint32 // bytes in flight just after it was sent
	// sacked is how many of its bytes were SACKed at the last look: a
	// super-segment's record partly SACKed tells RACK of a delivery only
	// when this grows, not on every ACK that repeats an older block.
	sacked uint32
	flags  uint8
}

// sentRecord flags.
const (
	srAppLimited uint8 = 1 << iota // sent in an application-limited phase
	srRetrans                      // (partly) retransmitted: no RTT sample (Karn)
	srDelivered                    // entirely SACKed: counted as delivered
	srLost                         // marked lost (counted in C.lost)
	srRelost                       // a retransmission RACK deems lost again, to be resent
	srRtxOut                       // its latest retransmission is in flight, not marked lost (Linux TCPCB_SACKED_RETRANS)
)

func (r *sentRecord) end() Seq { return r.start + Seq(r.len) }

// rateMaxRecords bounds the records a connection keeps. Beyond it, new data
// is merged into the newest record (its snapshot then covers more bytes,
// which makes later samples conservative), so a stream of tiny segments
// cannot grow the ring without bound.
const rateMaxRecords = 1 << 13

// rateMinRecords is the ring's first capacity: enough for a
// request/response connection's flights (224 bytes); bulk senders grow it.
const rateMinRecords = 4

// rateState is a sending connection's delivery-rate estimator: the
// connection-wide counters of the draft (C.delivered, C.delivered_time,
// C.first_sent_time, C.app_limited), the lost-byte counter, and a ring of
// sentRecords in sequence order, oldest first. It is made when the
// connection first sends data (Conn.rateState), so a connection that only
// receives does not carry it; the ring grows by doubling up to
// rateMaxRecords and is then reused, so the per-segment bookkeeping
// allocates nothing.
type rateState struct {
	delivered     uint64
	deliveredTime Time
	firstSentTime Time
	appLimited    uint64 // C.app_limited: delivered mark ending the app-limited phase, 0 = none
	lost          uint64 // bytes ever marked lost
	lostReported  uint64 // lost at the previous sample (RateSample.NewlyLost)
	lostScan      Seq    // records starting below it were considered for the SACK loss mark
	minRTT        time.Duration

	// The latest valid sample, for Info.
	lastDelivered  uint64
	lastInterval   time.Duration
	lastAppLimited bool

	recs []sentRecord // ring, len is a power of two
	head int
	n    int

	pace pacer
	rack rackState
	prr  prrState  // proportional rate reduction in recovery (prr.go)
	undo undoState // undo of spurious recoveries and RTOs (undo.go)

	chrono chrono // busy and window-limited times (chrono.go)
}

// rateState returns the connection's rate estimator, making it on first use.
func (c *Conn) rateState() *rateState {
	if c.rate == nil {
		// The first data: like Linux's first sendmsg, which finds the
		// write queue empty, the first flight is application-limited
		// until something has been delivered.
		c.rate = &rateState{lostScan: c.sndUna, appLimited: 1}
		c.rate.rack.lostEnd, c.rate.rack.reoWndMult = c.sndUna, 1
		// Before the first data the only RTT samples are the
		// handshake's: Linux's min_rtt counts the SYN-ACK's RTT, and
		// RACK's reordering window is RACK.min_RTT/4 from the first
		// loss on (RFC 8985 §6.2).
		c.rate.minRTT = c.rto.SRTT()
	}
	return c.rate
}

// at returns the i-th record from the oldest.
func (r *rateState) at(i int) *sentRecord { return &r.recs[(r.head+i)&(len(r.recs)-1)] }

// push appends a record, growing the ring or, at rateMaxRecords, merging
// into the newest record. It reports false when it merged.
func (r *rateState) push(rec sentRecord) bool {
	if !r.room() {
		last := r.at(r.n - 1)
		if last.end() == rec.start {
			last.len += rec.len
		}
		return false
	}
	*r.at(r.n) = rec
	r.n++
	return true
}

// room makes space for one more record, growing the ring; false when it is
// full at rateMaxRecords.
func (r *rateState) room() bool {
	if r.n < len(r.recs) {
		return true
	}
	if r.n >= rateMaxRecords {
		return false
	}
	nr := make([]sentRecord, max(rateMinRecords, 2*len(r.recs)))
	for i := 0; i < r.n; i++ {
		nr[i] = *r.at(i)
	}
	r.recs, r.head = nr, 0
	return true
}

// split cuts record i at seq, strictly inside it, into two records with
// the same snapshot, as Linux's tcp_fragment cuts a TSO skb that a SACK
// block starts or ends inside: each part of a super-segment is then
// delivered, marked lost and retransmitted on its own (RFC 8985 §6.2
// compares the send times of segments, not of the bursts they left in).
// It reports false, leaving the record whole, when the ring is full.
func (r *rateState) split(i int, seq Seq) bool {
	if !r.room() {
		return false
	}
	for j := r.n; j > i+1; j-- {
		*r.at(j) = *r.at(j - 1)
	}
	front := r.at(i)
	back := *front
	k := front.start.Size(seq)
	front.len = k
	back.start, back.len = seq, back.len-k
	*r.at(i + 1) = back
	r.n++
	return true
}

// search returns the index of the first record whose end is after seq.
func (r *rateState) search(seq Seq) int {
	lo, hi := 0, r.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.at(m).end().GreaterThan(seq) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// onSend is the draft's SendPacket for [seq, seq+n) (sequence space),
// sent at now with nothing outstanding before it if idle. Bytes already
// recorded (a retransmission) have their records re-stamped; bytes beyond
// the last record get a new one.
func (c *Conn) rateOnSend(now Time, seq Seq, n uint32) {
	if n == 0 {
		return
	}
	r := c.rateState()
	if c.sndUna == c.sndMax {
		// No packets in flight yet.
		r.firstSentTime, r.deliveredTime = now, now
	}
	snap := sentRecord{
		sentTime:      now,
		delivered:     r.delivered,
		deliveredTime: r.deliveredTime,
		firstSentTime: r.firstSentTime,
		lost:          r.lost,
	}
	if r.appLimited != 0 {
		snap.flags |= srAppLimited
	}
	end := seq + Seq(n)
	var tail Seq
	if r.n > 0 {
		tail = r.at(r.n - 1).end()
	} else {
		tail = c.sndUna.Max(seq)
	}
	flight := c.sndUna.Size(c.sndMax.Max(end))
	if seq.LessThan(tail) {
		// A retransmission: the records it touches get a new snapshot.
		// A record (a super-segment) that the retransmission covers only
		// in part is split first, so that the rest keeps the time it was
		// sent: stamped with the retransmission's time, its original
		// bytes SACKed later would move RACK.xmit_ts ahead of segments
		// still queued in the path, and RACK would mark those lost
		// (Linux likewise fragments the skb it retransmits,
		// tcp_retransmit_skb).
		for i := r.search(seq); i < r.n; i++ {
			rec := r.at(i)
			if !rec.start.LessThan(end) {
				break
			}
			if rec.flags&srDelivered != 0 {
				continue
			}
			// Only the retransmitted part of a super-segment's record
			// is sent anew (Linux's tcp_fragment before a retransmit):
			// a loss probe of its last segment leaves the others with
			// their first send time, which RACK judges them by.
			if rec.start.LessThan(seq) && r.split(i, seq) {
				continue
			}
			if end.LessThan(rec.end()) && r.split(i, end) {
				rec = r.at(i)
			}
			keep := rec.flags & srLost
			s, l, sacked := rec.start, rec.len, rec.sacked
			*rec = snap
			rec.start, rec.len, rec.inFlight, rec.sacked = s, l, flight, sacked
			rec.flags |= keep | srRetrans | srRtxOut
		}
		seq = tail
	}
	if end.GreaterThan(seq) {
		snap.start, snap.len, snap.inFlight = seq, seq.Size(end), flight
		r.push(snap)
	}
}

// rateDeliver is the draft's UpdateRateSample for record rec, of which
// bytes have just been delivered (all of it, or the front of it that a
// cumulative ACK covered): it counts them and makes rec the sample's
// packet if it is the most recently sent so far.
func (r *rateState) deliver(now Time, rec *sentRecord, bytes uint32, s *rateSampler) {
	r.delivered += uint64(bytes)
	r.deliveredTime = now
	if s.has && (rec.sentTime < s.sentTime || (rec.sentTime == s.sentTime && !rec.end().GreaterThan(s.end))) {
		return
	}
	s.has = true
	s.sentTime, s.end = rec.sentTime, rec.end()
	s.priorDelivered = rec.delivered
	s.priorTime = rec.deliveredTime
	s.appLimited = rec.flags&srAppLimited != 0
	s.sendElapsed = rec.sentTime.Sub(rec.firstSentTime)
	s.ackElapsed = now.Sub(rec.deliveredTime)
	s.txInFlight = rec.inFlight
	s.txLost = rec.lost
	s.retrans = rec.flags&srRetrans != 0
	r.firstSentTime = rec.sentTime
}

// rateSampler is the sample being built from one ACK (the draft's rs).
type rateSampler struct {
	has                     bool
	appLimited, retrans     bool
	sentTime                Time
	end                     Seq
	priorDelivered          uint64
	priorTime               Time
	sendElapsed, ackElapsed time.Duration
	txInFlight              uint32
	txLost                  uint64
}

// rateOnAck processes the delivery of one ACK: records below the new
// SND.UNA are delivered and dropped, records now entirely SACKed are
// delivered, SACK holes deemed lost (RFC 6675 IsLost) mark their records
// lost; then it fills rs's delivery fields (GenerateRateSample). blocks
// are the ACK's SACK blocks, already merged into c.board.
func (c *Conn) rateOnAck(now Time, blocks []SACKBlock, rs *RateSample) {
	r := c.rate
	var s rateSampler
	una := c.sndUna
	// Cumulatively acknowledged records.
	for r.n > 0 {
		rec := r.at(0)
		if rec.start.GreaterThanEq(una) {
			break
		}
		if rec.end().LessThanEq(una) {
			if rec.flags&srDelivered == 0 {
				r.deliver(now, rec, rec.len, &s)
				r.rackAdvance(now, rec, rec.end())
			}
			r.head = (r.head + 1) & (len(r.recs) - 1)
			r.n--
			continue
		}
		// Partly acknowledged: count the front, keep the rest with its
		// snapshot (Linux tcp_trim_head keeps tx.* too).
		k := rec.start.Size(una)
		if rec.flags&srDelivered == 0 {
			r.deliver(now, rec, k, &s)
			r.rackAdvance(now, rec, una)
		}
		rec.start, rec.len = una, rec.len-k
		break
	}
	if r.n == 0 && !r.lostScan.GreaterThanEq(una) {
		r.lostScan = una
	}
	// Records now entirely inside a SACKed range.
	if len(blocks) > 0 && c.board.Len() > 0 {
		for _, b := range blocks {
			if !b.Start.LessThan(b.End) || b.Start.LessThan(una) || c.sndMax.LessThan(b.End) {
				continue
			}
			for i := r.search(b.Start); i < r.n; i++ {
				rec := r.at(i)
				if !rec.start.LessThan(b.End) {
					break
				}
				if rec.flags&srDelivered != 0 {
					continue
				}
				if rec.start.LessThan(b.Start) && b.Start.LessThan(rec.end()) && r.split(i, b.Start) {
					continue // the next record starts at b.Start
				}
				if b.End.LessThan(rec.end()) && r.split(i, b.End) {
					rec = r.at(i)
				}
				if c.board.covers(rec.start, rec.end()) {
					rec.flags |= srDelivered
					r.deliver(now, rec, rec.len, &s)
					r.rackAdvance(now, rec, rec.end())
				} else if b.Start.LessThan(rec.end()) && rec.start.LessThan(b.End) {
					// Part of a super-segment's record: RACK learns
					// of its delivery all the same, once (later ACKs
					// repeat the block; RFC 8985 §6.2 takes newly
					// delivered segments only).
					covered := ccSaturate(uint64(rec.len) - c.unsackedIn(rec))
					if covered > rec.sacked {
						r.rackAdvance(now, rec, rec.end().Min(b.End))
					}
					rec.sacked = covered
				}
			}
		}
	}
	if c.rackActive() {
		c.rackUpdateReoWnd()
		c.rackDetectLoss(now)
	} else if c.sackOK && c.board.Len() > 0 {
		c.rateMarkSACKLost()
	}
	if r.appLimited != 0 && r.delivered > r.appLimited {
		r.appLimited = 0
	}

	rs.TotalDelivered = r.delivered
	rs.TotalLost = r.lost
	rs.NewlyLost = ccSaturate(r.lost - r.lostReported)
	r.lostReported = r.lost
	if !s.has {
		rs.MinRTT = r.minRTT
		return
	}
	if !s.retrans {
		rtt := now.Sub(s.sentTime)
		rs.RTT = rtt
		if r.minRTT == 0 || rtt < r.minRTT {
			r.minRTT = rtt
		}
	}
	rs.MinRTT = r.minRTT
	rs.PriorDelivered = s.priorDelivered
	rs.TxInFlight = s.txInFlight
	rs.LostSinceSent = r.lost - s.txLost
	rs.AppLimited = s.appLimited
	interval := max(s.sendElapsed, s.ackElapsed)
	delivered := r.delivered - s.priorDelivered
	// The draft: an interval shorter than the minimum RTT means ACK
	// compression or a stretched clock; such a sample is not valid.
	if interval <= 0 || interval < r.minRTT {
		return
	}
	rs.Delivered, rs.Interval = delivered, interval
	// Info's delivery rate, as Linux tcp_rate_gen keeps tcpi_delivery_rate:
	// an application-limited sample replaces the last only if it is not
	// lower (it shows at least that much capacity).
	if !s.appLimited || !rateLess(delivered, interval, r.lastDelivered, r.lastInterval) {
		r.lastDelivered, r.lastInterval, r.lastAppLimited = delivered, interval, s.appLimited
	}
}

// rateLess reports whether b1/d1 < b2/d2, exactly (b1·d2 < b2·d1 in 128 bits).
func rateLess(b1 uint64, d1 time.Duration, b2 uint64, d2 time.Duration) bool {
	h1, l1 := bits.Mul64(b1, uint64(d2))
	h2, l2 := bits.Mul64(b2, uint64(d1))
	return h1 < h2 || h1 == h2 && l1 < l2
}

// rateOf is bytes/d in bytes per second, saturating.
func rateOf(bytes uint64, d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(bytes, uint64(time.Second))
	if hi >= uint64(d) {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, uint64(d))
	return q
}

// rateMarkSACKLost marks lost the records in SACK holes that RFC 6675
// IsLost deems lost. Lost-ness only grows towards SND.UNA (a hole has at
// least as much SACKed above it as any hole above it), so the lost holes
// are those below the highest lost hole's end, and records already
// considered (below lostScan) need no second look.
func (c *Conn) rateMarkSACKLost() {
	r, b := c.rate, &c.board
	// Find the end of the highest lost hole, scanning from the top.
	var above uint64
	var lostEnd Seq
	found := false
	for i := len(b.ranges); i > 0; i-- {
		above += uint64(b.ranges[i-1].Start.Size(b.ranges[i-1].End))
		// The hole just below ranges[i-1].
		if b.sbHoleLost(i-1, above) {
			lostEnd, found = b.ranges[i-1].Start, true
			break
		}
	}
	if !found || !lostEnd.GreaterThan(r.lostScan) {
		return
	}
	for i := r.search(r.lostScan); i < r.n; i++ {
		rec := r.at(i)
		if !rec.start.LessThan(lostEnd) {
			break
		}
		if rec.flags&(srDelivered|srLost) == 0 {
			rec.flags |= srLost
			r.lost += c.unsackedIn(rec)
		}
	}
	r.lostScan = lostEnd
}

// rateMarkLost marks lost the records overlapping [from, to) that are
// neither delivered nor already lost: the segment a fast retransmit
// without SACK resends, or everything outstanding after an RTO.
func (c *Conn) rateMarkLost(from, to Seq) {
	r := c.rate
	if r == nil {
		return
	}
	for i := r.search(from); i < r.n; i++ {
		rec := r.at(i)
		if !rec.start.LessThan(to) {
			break
		}
		// Marking lost ends a retransmission's flight too (Linux
		// tcp_mark_skb_lost clears TCPCB_SACKED_RETRANS).
		rec.flags &^= srRtxOut
		if rec.flags&(srDelivered|srLost) == 0 {
			rec.flags |= srLost
			r.lost += c.unsackedIn(rec)
		}
	}
	r.lostScan = r.lostScan.Max(to)
}

// rateCheckAppLimited is the draft's application-limited check (Linux
// tcp_rate_check_app_limited), run after Output has sent what it could:
// when less than a segment is left to send while the congestion window
// would allow more, the delivery samples of what is in flight now, and of
// what the application writes next, do not show the path's capacity
// (C.app_limited).
func (c *Conn) rateCheckAppLimited() {
	r := c.rate
	if r == nil || !c.state.canSendData() || c.inRecovery {
		return
	}
	if end := c.dataEnd(); end.GreaterThan(c.sndNxt) && c.sndNxt.Size(end) >= uint32(c.sndMSS) {
		return // a full segment still waits: limited by the windows, not the application
	}
	inflight := c.inFlight()
	if inflight >= c.cc.CWnd() {
		return
	}
	r.appLimited = max(r.delivered+uint64(inflight), 1)
}

// unsackedIn is how many bytes of rec at or above SND.UNA the peer has not
// SACKed: what is lost when rec is marked lost. A super-segment's record
// partly SACKed lost only its holes, and counting all of it would make
// BBR's loss rate (lost / tx_in_flight) as many times too high as the
// record has segments.
func (c *Conn) unsackedIn(rec *sentRecord) uint64 {
	var n uint64
	c.board.holes(rec.start.Max(c.sndUna), rec.end(), func(s, e Seq) { n += uint64(s.Size(e)) })
	return n
}

// covers reports whether [start, end) lies entirely inside one SACKed range.
func (s *sendScoreboard) covers(start, end Seq) bool {
	for _, r := range s.ranges {
		if start.LessThan(r.Start) {
			return false
		}
		if start.LessThan(r.End) {
			return end.LessThanEq(r.End)
		}
	}
	return false
}

// b2u is 1 for true.
func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
