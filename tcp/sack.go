package tcp

import "sort"

// sbDupThresh is DupThresh of RFC 6675 §2 (and RFC 5681's three duplicate
// ACKs).
const sbDupThresh = 3

// sbMaxRanges is the least bound on the scoreboard: at most this many
// disjoint SACKed ranges are remembered, or one per two segments of the
// flight if that is more (sbRangeLimit). A receiver reports at most 4 blocks
// per ACK, but over a large window many holes coexist: a slow-start
// overshoot into a drop-tail queue loses about every other segment of a
// flight of megabytes. Bounding by the flight keeps the scoreboard at 8
// bytes per two segments in flight (0.3% of the send buffer that holds
// them), which no receiver can exceed, whatever blocks it sends. Beyond the
// bound the ranges farthest from SND.UNA are forgotten: forgetting SACK
// information is safe (the data is merely treated as not SACKed, RFC 2018
// §8 already lets a receiver renege), whereas inventing SACKed bytes would
// stall recovery; but what is forgotten is retransmitted although it
// arrived, so the bound must not bite on a real path.
const sbMaxRanges = 256

// sbRangeLimit is the scoreboard's bound for a flight of flight bytes.
func sbRangeLimit(flight, mss uint32) int {
	return max(sbMaxRanges, int(flight/(2*max(mss, 1))))
}

// sbMaxWindow bounds a SACK block's distance from SND.UNA when the caller
// does not give SND.NXT (Update): the largest window RFC 7323 §2.3 allows.
const sbMaxWindow = 1 << 30

// sendScoreboard is the sender's SACK scoreboard of RFC 6675: which bytes of
// [SND.UNA, SND.NXT) the receiver has selectively acknowledged, kept as a
// sorted set of disjoint, non-adjacent ranges. Retransmission state (HighRxt,
// RecoveryPoint, RescueRxt) belongs to the caller. The zero value is an empty
// scoreboard with an MSS of ccDefaultMSS until SetMSS is called.
type sendScoreboard struct {
	ranges []SACKBlock // sorted by Start, disjoint and non-adjacent
	sacked uint32      // total bytes in ranges
	mss    uint32
	// Dropped counts ranges forgotten because of the bound (sbRangeLimit).
	Dropped uint64
}

// SetMSS sets SMSS, used by the IsLost byte rule (RFC 6675 §4).
func (s *sendScoreboard) SetMSS(mss uint32) { s.mss = mss }

func (s *sendScoreboard) smss() uint32 {
	if s.mss == 0 {
		return ccDefaultMSS
	}
	return s.mss
}

// Reset forgets all SACK information (e.g. after an RTO, RFC 6675 §5.1
// allows the sender to discard it), keeping the storage.
func (s *sendScoreboard) Reset() {
	s.ranges = s.ranges[:0]
	s.sacked = 0
}

// SACKedBytes returns the number of bytes currently marked SACKed.
func (s *sendScoreboard) SACKedBytes() uint32 { return s.sacked }

// Len returns the number of disjoint SACKed ranges.
func (s *sendScoreboard) Len() int { return len(s.ranges) }

// Ranges returns the SACKed ranges in sequence order. The slice aliases the
// scoreboard and is valid until the next update.
func (s *sendScoreboard) Ranges() []SACKBlock { return s.ranges }

// HighestSACKed returns the end of the highest SACKed range.
func (s *sendScoreboard) HighestSACKed() (Seq, bool) {
	if len(s.ranges) == 0 {
		return 0, false
	}
	return s.ranges[len(s.ranges)-1].End, true
}

// Update is UpdateSACK for callers that do not pass SND.NXT: blocks further
// than 2^30 bytes (the largest scaled window) above SND.UNA are ignored.
// Prefer UpdateSACK, which also rejects blocks above SND.NXT.
func (s *sendScoreboard) Update(sndUna Seq, blocks []SACKBlock) (newlySACKed uint32) {
	n, _ := s.UpdateSACK(sndUna, sndUna.Add(sbMaxWindow), blocks)
	return n
}

// UpdateSACK processes the cumulative ACK sndUna and the SACK blocks of one
// ACK. Ranges below sndUna are dropped. Blocks that are empty, reversed, or
// reach outside [sndUna, sndNxt] are ignored, so hostile blocks can neither
// grow the scoreboard beyond sbMaxRanges nor mark unsent data. dsack reports
// an RFC 2883 §4 D-SACK: the first block lies below the cumulative ACK, or
// within the second block. It returns the number of bytes newly SACKed.
func (s *sendScoreboard) UpdateSACK(sndUna, sndNxt Seq, blocks []SACKBlock) (newlySACKed uint32, dsack bool) {
	s.trimBelow(sndUna)
	limit := sbRangeLimit(sndUna.Size(sndNxt), s.smss())
	before := s.sacked
	if len(blocks) > 0 {
		b0 := blocks[0]
		if b0.Start.LessThan(b0.End) {
			if b0.Start.LessThan(sndUna) {
				dsack = true
			} else if len(blocks) > 1 {
				b1 := blocks[1]
				if b1.Start.LessThanEq(b0.Start) && b0.End.LessThanEq(b1.End) && b1.Start.LessThan(b1.End) {
					dsack = true
				}
			}
		}
	}
	for i, b := range blocks {
		if i == 0 && dsack && b.Start.LessThan(sndUna) {
			continue // D-SACK of already cumulatively acked data
		}
		if !b.Start.LessThan(b.End) || b.Start.LessThan(sndUna) || sndNxt.LessThan(b.End) {
			continue
		}
		s.insert(b, limit)
	}
	return s.sacked - before, dsack
}

// trimBelow drops everything below una.
func (s *sendScoreboard) trimBelow(una Seq) {
	i := 0
	for i < len(s.ranges) && s.ranges[i].End.LessThanEq(una) {
		s.sacked -= s.ranges[i].Start.Size(s.ranges[i].End)
		i++
	}
	if i > 0 {
		n := copy(s.ranges, s.ranges[i:])
		s.ranges = s.ranges[:n]
	}
	if len(s.ranges) > 0 && s.ranges[0].Start.LessThan(una) {
		s.sacked -= s.ranges[0].Start.Size(una)
		s.ranges[0].Start = una
	}
}

// insert adds b, merging overlapping and adjacent ranges.
func (s *sendScoreboard) insert(b SACKBlock, limit int) {
	// First range whose End >= b.Start (it may touch or overlap b), found
	// by binary search: the scoreboard may hold thousands of ranges.
	lo := sort.Search(len(s.ranges), func(i int) bool { return !s.ranges[i].End.LessThan(b.Start) })
	// hi: first range that starts strictly after b.End (no contact).
	hi := lo
	for hi < len(s.ranges) && s.ranges[hi].Start.LessThanEq(b.End) {
		hi++
	}
	if lo == hi {
		// No contact: plain insertion at lo.
		if len(s.ranges) >= limit {
			if lo == len(s.ranges) {
				s.Dropped++
				return // b itself is the farthest range
			}
			last := s.ranges[len(s.ranges)-1]
			s.sacked -= last.Start.Size(last.End)
			s.ranges = s.ranges[:len(s.ranges)-1]
			s.Dropped++
		}
		if s.ranges == nil {
			s.ranges = make([]SACKBlock, 0, 8)
		}
		s.ranges = append(s.ranges, SACKBlock{})
		copy(s.ranges[lo+1:], s.ranges[lo:])
		s.ranges[lo] = b
		s.sacked += b.Start.Size(b.End)
		return
	}
	merged := SACKBlock{Start: b.Start.Min(s.ranges[lo].Start), End: b.End.Max(s.ranges[hi-1].End)}
	for i := lo; i < hi; i++ {
		s.sacked -= s.ranges[i].Start.Size(s.ranges[i].End)
	}
	s.ranges[lo] = merged
	s.sacked += merged.Start.Size(merged.End)
	n := copy(s.ranges[lo+1:], s.ranges[hi:])
	s.ranges = s.ranges[:lo+1+n]
}

// IsSACKed reports whether the byte seq has been SACKed.
func (s *sendScoreboard) IsSACKed(seq Seq) bool {
	for _, r := range s.ranges {
		if seq.LessThan(r.Start) {
			return false
		}
		if seq.LessThan(r.End) {
			return true
		}
	}
	return false
}

// IsLost is RFC 6675 §4 IsLost(SeqNum): a byte not SACKed is deemed lost when
// DupThresh discontiguous SACKed ranges lie above it, or more than
// (DupThresh-1)*SMSS SACKed bytes do.
func (s *sendScoreboard) IsLost(seq Seq) bool {
	if len(s.ranges) == 0 {
		return false
	}
	var bytes uint64
	n := 0
	for i := len(s.ranges) - 1; i >= 0; i-- {
		r := s.ranges[i]
		if seq.GreaterThanEq(r.End) {
			break
		}
		if seq.GreaterThanEq(r.Start) {
			return false // seq itself is SACKed
		}
		n++
		bytes += uint64(r.Start.Size(r.End))
	}
	return n >= sbDupThresh || bytes > uint64(sbDupThresh-1)*uint64(s.smss())
}

// sbHoleLost is IsLost for a hole lying just below range index i (all of
// ranges[i:] above it): the same rule, precomputed per hole.
func (s *sendScoreboard) sbHoleLost(i int, aboveBytes uint64) bool {
	return len(s.ranges)-i >= sbDupThresh || aboveBytes > uint64(sbDupThresh-1)*uint64(s.smss())
}

// NextSegToRetransmit is RFC 6675 §4 NextSeg() rule (1): the first unSACKed
// sequence at or above max(highRxt, sndUna) that IsLost deems lost, at most
// mss bytes and never crossing into SACKed data or beyond sndNxt. highRxt is
// the caller's exclusive bound of what this recovery already retransmitted
// (set it to SND.UNA on entry and to start+length after each
// retransmission). ok=false means rule (1) has nothing; the caller goes on
// with rule (2) (new data) and optionally NextSegRule3.
func (s *sendScoreboard) NextSegToRetransmit(sndUna, sndNxt Seq, mss uint32, highRxt Seq) (start Seq, length uint32, ok bool) {
	start, end, i, ok := s.firstHole(sndUna, sndNxt, highRxt)
	if !ok {
		return 0, 0, false
	}
	// IsLost is the same for every byte of a hole and only weakens for
	// higher holes, so checking the first candidate hole is enough.
	var above uint64
	for _, r := range s.ranges[i:] {
		above += uint64(r.Start.Size(r.End))
	}
	if !s.sbHoleLost(i, above) {
		return 0, 0, false
	}
	return start, sbSegLen(start, end, mss), true
}

// NextSegRule3 is RFC 6675 NextSeg() rule (3), used when rules (1) and (2)
// found nothing: the first unSACKed, not-yet-retransmitted byte below the
// highest SACKed byte, even if not deemed lost.
func (s *sendScoreboard) NextSegRule3(sndUna, sndNxt Seq, mss uint32, highRxt Seq) (start Seq, length uint32, ok bool) {
	hs, has := s.HighestSACKed()
	if !has {
		return 0, 0, false
	}
	start, end, _, ok := s.firstHole(sndUna, sndNxt.Min(hs), highRxt)
	if !ok {
		return 0, 0, false
	}
	return start, sbSegLen(start, end, mss), true
}

// sbSegLen is min(mss, end-start), at least 1 when the hole is non-empty.
func sbSegLen(start, end Seq, mss uint32) uint32 {
	n := start.Size(end)
	if mss > 0 && n > mss {
		n = mss
	}
	return n
}

// firstHole finds the first unSACKed byte at or above max(sndUna, highRxt)
// and below sndNxt, returning the hole [start, end) and the index of the
// first range above it.
func (s *sendScoreboard) firstHole(sndUna, sndNxt, highRxt Seq) (start, end Seq, idx int, ok bool) {
	start = sndUna.Max(highRxt)
	if !start.LessThan(sndNxt) {
		return 0, 0, 0, false
	}
	for i, r := range s.ranges {
		if start.LessThan(r.Start) {
			return start, r.Start.Min(sndNxt), i, true
		}
		if start.LessThan(r.End) {
			start = r.End // inside a SACKed range: skip it
			if !start.LessThan(sndNxt) {
				return 0, 0, 0, false
			}
		}
	}
	return start, sndNxt, len(s.ranges), true
}

// Pipe is RFC 6675 §4 SetPipe(): the sender's estimate of bytes in flight.
// For every byte of [sndUna, sndNxt) not SACKed: +1 if it is not lost
// (IsLost false), and +1 more if it was retransmitted (below highRxt, the
// caller's exclusive HighRxt). Computed per hole from the top down, so each
// hole's IsLost is O(1).
func (s *sendScoreboard) Pipe(sndUna, sndNxt, highRxt Seq) uint32 {
	if !sndUna.LessThan(sndNxt) {
		return 0
	}
	rxtEnd := highRxt.Max(sndUna)
	var pipe, above uint64 // above = SACKed bytes in ranges[i:]
	n := len(s.ranges)
	for i := n; i >= 0; i-- {
		// The hole between ranges[i-1] (or SND.UNA) and ranges[i] (or SND.NXT).
		hEnd := sndNxt
		if i < n {
			hEnd = s.ranges[i].Start.Min(sndNxt)
		}
		hStart := sndUna
		if i > 0 {
			hStart = s.ranges[i-1].End.Max(sndUna)
		}
		if hStart.LessThan(hEnd) {
			if !s.sbHoleLost(i, above) {
				pipe += uint64(hStart.Size(hEnd))
			}
			if hStart.LessThan(rxtEnd) {
				pipe += uint64(hStart.Size(hEnd.Min(rxtEnd)))
			}
		}
		if i > 0 {
			above += uint64(s.ranges[i-1].Start.Size(s.ranges[i-1].End))
		}
	}
	return ccSaturate(pipe)
}
