package tcp

// Storage classes of reassembly chunk buffers: multiples of 512 up to 4 KiB
// (an Ethernet MSS wastes < 5% in the 1536 class), then powers of two up to
// 64 KiB, the largest super-segment. Bigger inputs are cut into 64 KiB chunks.
const (
	reasmSmallStep    = 512
	reasmSmallClasses = 8 // 512 .. 4096
	reasmMaxChunk     = 64 << 10
	reasmClasses      = reasmSmallClasses + 4 // + 8K, 16K, 32K, 64K

	// reasmFreeMax bounds the buffers kept for reuse, by count and by bytes,
	// so that a connection does not hoard memory after a loss episode.
	reasmFreeMax      = 32
	reasmFreeMaxBytes = 256 << 10

	// reasmChunkBudget is the payload per chunk the chunk-count bound
	// assumes: at most limit/reasmChunkBudget (+reasmMinChunks) chunks may be
	// stored, so 1-byte segments cannot amplify memory use beyond ~2x the
	// byte limit.
	reasmChunkBudget = 256
	reasmMinChunks   = 64

	// reasmRecent is how many recently received segments are remembered for
	// the RFC 2018 §4 block order.
	reasmRecent = 8
)

// reasmClass returns the storage class index for n bytes (0 < n <= 64 KiB).
func reasmClass(n int) int {
	if n <= reasmSmallStep*reasmSmallClasses {
		return (n - 1) / reasmSmallStep
	}
	c := reasmSmallClasses
	for size := 8 << 10; size < n; size <<= 1 {
		c++
	}
	return c
}

// reasmClassSize is the buffer capacity of class c.
func reasmClassSize(c int) int {
	if c < reasmSmallClasses {
		return (c + 1) * reasmSmallStep
	}
	return (8 << 10) << (c - reasmSmallClasses)
}

// reasmChunk is one stored run of bytes [seq, seq+n) in mem[off:off+n].
type reasmChunk struct {
	seq Seq
	off uint32
	n   uint32
	mem []byte
}

func (c *reasmChunk) end() Seq { return c.seq.Add(c.n) }

// reassemblyQueue holds out-of-order bytes above RCV.NXT until the gap
// before them is filled (RFC 9293 §3.10.7.4: segments beyond RCV.NXT are
// queued for later processing). It copies payloads into chunk buffers reused
// through a small free list, keeps the union of stored bytes as sorted
// ranges for SACK generation (RFC 2018, RFC 2883), and refuses data beyond a
// byte limit instead of growing. Bytes already stored win on overlap: only
// the new parts of a segment are copied. The zero value has limit 0 (stores
// nothing); build it with newReassemblyQueue or call SetLimit.
type reassemblyQueue struct {
	chunks []reasmChunk // chunks[head:] are live, sorted, disjoint
	head   int
	ranges []SACKBlock // union of live chunks: sorted, disjoint, non-adjacent
	bytes  int
	limit  int

	free      [reasmClasses][][]byte
	freeCount int
	freeBytes int

	recent  [reasmRecent]Seq // seqs of recently received segments, newest first
	nRecent int

	// Refused counts Insert calls refused by the limit (the engine drops
	// those segments and counts the drop by reason).
	Refused uint64
	// budget is charged the bytes stored; nil: none.
	budget *MemoryBudget
}

// newReassemblyQueue returns an empty queue holding at most limit bytes.
func newReassemblyQueue(limit int) reassemblyQueue {
	var q reassemblyQueue
	q.SetLimit(limit)
	return q
}

// SetLimit changes the byte limit. Lowering it below Bytes() drops nothing;
// it only refuses new data until the queue drains.
func (q *reassemblyQueue) SetLimit(limit int) {
	if limit < 0 {
		limit = 0
	}
	q.limit = limit
}

// Limit returns the byte limit.
func (q *reassemblyQueue) Limit() int { return q.limit }

// Bytes returns the number of bytes stored.
func (q *reassemblyQueue) Bytes() int { return q.bytes }

// Len returns the number of disjoint byte ranges stored (SACK-able blocks).
func (q *reassemblyQueue) Len() int { return len(q.ranges) }

// Empty reports whether nothing is stored.
func (q *reassemblyQueue) Empty() bool { return q.bytes == 0 }

// Ranges returns the stored ranges in sequence order; the slice aliases the
// queue and is valid until the next call.
func (q *reassemblyQueue) Ranges() []SACKBlock { return q.ranges }

// maxChunks is the chunk-count bound derived from the byte limit.
func (q *reassemblyQueue) maxChunks() int { return q.limit/reasmChunkBudget + reasmMinChunks }

// Reset drops all stored data and releases every buffer (for a connection
// going idle or closing).
func (q *reassemblyQueue) Reset() {
	limit, refused, budget := q.limit, q.Refused, q.budget
	budget.uncharge(q.bytes)
	*q = reassemblyQueue{limit: limit, Refused: refused, budget: budget}
}

// sub removes n bytes from the count of bytes stored.
func (q *reassemblyQueue) sub(n int) {
	q.bytes -= n
	q.budget.uncharge(n)
}

// Insert stores the bytes of data (starting at seq) that lie above rcvNxt and
// are not stored yet. stored=false means the segment was refused because the
// new bytes would exceed the byte or chunk limit (nothing of it is kept);
// the engine drops it and counts. dup reports that some of the bytes were
// already held or already below rcvNxt, for a D-SACK (RFC 2883 §4). A
// segment entirely below rcvNxt or already stored is (true, true).
func (q *reassemblyQueue) Insert(seq Seq, data []byte, rcvNxt Seq) (stored bool, dup bool) {
	if len(data) == 0 {
		return true, false
	}
	if len(data) > sbMaxWindow {
		return false, false
	}
	q.dropBelow(rcvNxt)
	if seq.LessThan(rcvNxt) {
		off := seq.Size(rcvNxt)
		if uint64(off) >= uint64(len(data)) {
			return true, true
		}
		data = data[off:]
		seq = rcvNxt
		dup = true
	}
	end := seq.Add(uint32(len(data)))
	if rcvNxt.Size(end) > sbMaxWindow {
		// Not within any window we could have advertised.
		return false, dup
	}

	// How much is new, and how many chunks would it take?
	overlap, pieces := q.coverage(seq, end)
	newBytes := len(data) - overlap
	if overlap > 0 {
		dup = true
	}
	if newBytes == 0 {
		q.noteRecent(seq)
		return true, true
	}
	if q.bytes+newBytes > q.limit || len(q.chunks)-q.head+pieces > q.maxChunks() {
		q.Refused++
		q.budget.countOOO(false)
		return false, dup
	}
	if !q.budget.tryCharge(newBytes) {
		q.Refused++
		q.budget.countOOO(true)
		return false, dup
	}

	// Copy each uncovered gap of [seq, end) into new chunks.
	cur := seq
	ri := q.rangeIndexFrom(seq)
	for cur.LessThan(end) {
		gapEnd := end
		if ri < len(q.ranges) && q.ranges[ri].Start.LessThan(end) {
			r := q.ranges[ri]
			if r.Start.LessThanEq(cur) {
				cur = r.End
				ri++
				continue
			}
			gapEnd = r.Start
		}
		q.storeGap(cur, data[seq.Size(cur):seq.Size(gapEnd)])
		cur = gapEnd
	}
	q.bytes += newBytes
	q.addRange(SACKBlock{Start: seq, End: end})
	q.noteRecent(seq)
	return true, dup
}

// coverage returns the stored bytes inside [seq, end) and the number of
// chunks needed for the rest.
func (q *reassemblyQueue) coverage(seq, end Seq) (overlap, pieces int) {
	cur := seq
	for i := q.rangeIndexFrom(seq); i < len(q.ranges) && cur.LessThan(end); i++ {
		r := q.ranges[i]
		if !r.Start.LessThan(end) {
			break
		}
		if cur.LessThan(r.Start) {
			pieces += reasmPieces(cur.Size(r.Start))
		}
		s := r.Start.Max(cur)
		e := r.End.Min(end)
		if s.LessThan(e) {
			overlap += int(s.Size(e))
		}
		cur = r.End.Max(cur)
	}
	if cur.LessThan(end) {
		pieces += reasmPieces(cur.Size(end))
	}
	return overlap, pieces
}

func reasmPieces(n uint32) int { return int((n + reasmMaxChunk - 1) / reasmMaxChunk) }

// rangeIndexFrom returns the index of the first range ending after seq.
func (q *reassemblyQueue) rangeIndexFrom(seq Seq) int {
	lo, hi := 0, len(q.ranges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if q.ranges[m].End.LessThanEq(seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// storeGap copies b (bytes [seq, seq+len(b)) that are stored nowhere yet)
// into chunks at their sorted position.
func (q *reassemblyQueue) storeGap(seq Seq, b []byte) {
	for len(b) > 0 {
		n := len(b)
		if n > reasmMaxChunk {
			n = reasmMaxChunk
		}
		mem := q.getBuf(n)
		copy(mem, b[:n])
		q.insertChunk(reasmChunk{seq: seq, n: uint32(n), mem: mem})
		seq = seq.Add(uint32(n))
		b = b[n:]
	}
}

// insertChunk places c among the live chunks (appending in the common
// in-sequence case).
func (q *reassemblyQueue) insertChunk(c reasmChunk) {
	live := q.chunks[q.head:]
	if len(live) == 0 || live[len(live)-1].seq.LessThan(c.seq) {
		q.chunks = append(q.chunks, c)
		return
	}
	lo, hi := 0, len(live)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if live[m].seq.LessThan(c.seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if q.head > 0 {
		// Use the free slot before head: shift the lower part down.
		copy(q.chunks[q.head-1:], q.chunks[q.head:q.head+lo])
		q.head--
		q.chunks[q.head+lo] = c
		return
	}
	q.chunks = append(q.chunks, reasmChunk{})
	copy(q.chunks[lo+1:], q.chunks[lo:])
	q.chunks[lo] = c
}

// addRange merges b into the range set.
func (q *reassemblyQueue) addRange(b SACKBlock) {
	lo := 0
	for lo < len(q.ranges) && q.ranges[lo].End.LessThan(b.Start) {
		lo++
	}
	hi := lo
	for hi < len(q.ranges) && q.ranges[hi].Start.LessThanEq(b.End) {
		hi++
	}
	if lo == hi {
		q.ranges = append(q.ranges, SACKBlock{})
		copy(q.ranges[lo+1:], q.ranges[lo:])
		q.ranges[lo] = b
		return
	}
	m := SACKBlock{Start: b.Start.Min(q.ranges[lo].Start), End: b.End.Max(q.ranges[hi-1].End)}
	q.ranges[lo] = m
	n := copy(q.ranges[lo+1:], q.ranges[hi:])
	q.ranges = q.ranges[:lo+1+n]
}

// getBuf returns a buffer of length n from the free list or a new one.
func (q *reassemblyQueue) getBuf(n int) []byte {
	c := reasmClass(n)
	if l := len(q.free[c]); l > 0 {
		b := q.free[c][l-1]
		q.free[c][l-1] = nil
		q.free[c] = q.free[c][:l-1]
		q.freeCount--
		q.freeBytes -= cap(b)
		return b[:n]
	}
	return make([]byte, n, reasmClassSize(c))
}

// putBuf returns a chunk buffer for reuse, within the free-list bounds.
func (q *reassemblyQueue) putBuf(b []byte) {
	if q.freeCount >= reasmFreeMax || q.freeBytes+cap(b) > reasmFreeMaxBytes {
		return
	}
	c := reasmClass(cap(b))
	if reasmClassSize(c) != cap(b) {
		return
	}
	q.free[c] = append(q.free[c], b[:cap(b)])
	q.freeCount++
	q.freeBytes += cap(b)
}

// popChunk releases the first live chunk.
func (q *reassemblyQueue) popChunk() {
	q.putBuf(q.chunks[q.head].mem)
	q.chunks[q.head] = reasmChunk{}
	q.head++
	if q.head == len(q.chunks) {
		q.chunks = q.chunks[:0]
		q.head = 0
	} else if q.head >= 32 && q.head*2 >= len(q.chunks) {
		n := copy(q.chunks, q.chunks[q.head:])
		for i := n; i < len(q.chunks); i++ {
			q.chunks[i] = reasmChunk{}
		}
		q.chunks = q.chunks[:n]
		q.head = 0
	}
}

// dropBelow discards stored bytes below rcvNxt (delivered by other means).
func (q *reassemblyQueue) dropBelow(rcvNxt Seq) {
	if q.bytes == 0 {
		return
	}
	for q.head < len(q.chunks) {
		c := &q.chunks[q.head]
		if !c.seq.LessThan(rcvNxt) {
			break
		}
		if c.end().LessThanEq(rcvNxt) {
			q.sub(int(c.n))
			q.popChunk()
			continue
		}
		k := c.seq.Size(rcvNxt)
		c.seq = rcvNxt
		c.off += k
		c.n -= k
		q.sub(int(k))
		break
	}
	q.trimRanges(rcvNxt)
}

// trimRanges removes range parts below rcvNxt.
func (q *reassemblyQueue) trimRanges(rcvNxt Seq) {
	i := 0
	for i < len(q.ranges) && q.ranges[i].End.LessThanEq(rcvNxt) {
		i++
	}
	if i > 0 {
		n := copy(q.ranges, q.ranges[i:])
		q.ranges = q.ranges[:n]
	}
	if len(q.ranges) > 0 && q.ranges[0].Start.LessThan(rcvNxt) {
		q.ranges[0].Start = rcvNxt
	}
}

// Pop hands every stored byte that is now in order (starting at rcvNxt) to
// deliver, oldest first, possibly in several calls, and returns the new
// RCV.NXT. The slices passed to deliver are valid only during the call.
func (q *reassemblyQueue) Pop(rcvNxt Seq, deliver func([]byte)) Seq {
	return q.PopLimit(rcvNxt, -1, deliver)
}

// PopLimit is Pop delivering at most limit bytes (limit < 0: no limit); the
// rest stays queued.
func (q *reassemblyQueue) PopLimit(rcvNxt Seq, limit int, deliver func([]byte)) Seq {
	q.dropBelow(rcvNxt)
	for q.head < len(q.chunks) && limit != 0 {
		c := &q.chunks[q.head]
		if c.seq != rcvNxt {
			break
		}
		n := int(c.n)
		if limit > 0 && n > limit {
			n = limit
		}
		deliver(c.mem[c.off : c.off+uint32(n)])
		rcvNxt = rcvNxt.Add(uint32(n))
		q.sub(n)
		if limit > 0 {
			limit -= n
		}
		if uint32(n) == c.n {
			q.popChunk()
		} else {
			c.seq = rcvNxt
			c.off += uint32(n)
			c.n -= uint32(n)
		}
	}
	q.trimRanges(rcvNxt)
	return rcvNxt
}

// noteRecent records seq as the most recently received segment, dropping
// older entries now inside the same range (RFC 2018 §4 block order).
func (q *reassemblyQueue) noteRecent(seq Seq) {
	i := q.rangeIndexFrom(seq)
	var r SACKBlock
	inRange := i < len(q.ranges) && q.ranges[i].Start.LessThanEq(seq)
	if inRange {
		r = q.ranges[i]
	}
	n := 0
	for j := 0; j < q.nRecent; j++ {
		s := q.recent[j]
		if inRange && s.InRange(r.Start, r.End) {
			continue
		}
		q.recent[n] = s
		n++
	}
	if n == reasmRecent {
		n--
	}
	copy(q.recent[1:n+1], q.recent[:n])
	q.recent[0] = seq
	q.nRecent = n + 1
}

// SACKBlocks appends the SACK blocks to send (RFC 2018 §4) to dst, at most
// min(cap(dst)-len(dst), MaxSACKBlocks) of them: see SACKBlocksN.
func (q *reassemblyQueue) SACKBlocks(dst []SACKBlock, dsack *SACKBlock) []SACKBlock {
	n := cap(dst) - len(dst)
	if n > MaxSACKBlocks {
		n = MaxSACKBlocks
	}
	return q.SACKBlocksN(dst, n, dsack)
}

// SACKBlocksN appends at most n SACK blocks to dst (n = 4, or 3 beside the
// timestamp option): the D-SACK block first when dsack is non-nil
// (RFC 2883 §4), then the range holding the most recently received segment,
// then the ranges of the next most recent segments (RFC 2018 §4), then any
// other stored ranges, highest first. Ranges are never repeated.
func (q *reassemblyQueue) SACKBlocksN(dst []SACKBlock, n int, dsack *SACKBlock) []SACKBlock {
	if n <= 0 {
		return dst
	}
	base := len(dst)
	if dsack != nil && dsack.Start.LessThan(dsack.End) {
		dst = append(dst, *dsack)
		n--
		base++ // a D-SACK block may equal a range; do not dedupe against it
	}
	emitted := func(r SACKBlock) bool {
		for _, b := range dst[base:] {
			if b == r {
				return true
			}
		}
		return false
	}
	for j := 0; j < q.nRecent && n > 0; j++ {
		s := q.recent[j]
		i := q.rangeIndexFrom(s)
		if i >= len(q.ranges) || s.LessThan(q.ranges[i].Start) {
			continue // delivered or trimmed meanwhile
		}
		if r := q.ranges[i]; !emitted(r) {
			dst = append(dst, r)
			n--
		}
	}
	for i := len(q.ranges) - 1; i >= 0 && n > 0; i-- {
		if r := q.ranges[i]; !emitted(r) {
			dst = append(dst, r)
			n--
		}
	}
	return dst
}
