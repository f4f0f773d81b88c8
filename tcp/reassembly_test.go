package tcp

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rqPayload returns n bytes whose values encode their sequence number, so
// any misplaced byte shows.
func rqPayload(seq Seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint32(seq)+uint32(i)) ^ 0x5a
	}
	return b
}

func rqCollect(q *reassemblyQueue, rcvNxt Seq) (Seq, []byte) {
	var got []byte
	next := q.Pop(rcvNxt, func(b []byte) { got = append(got, b...) })
	return next, got
}

func TestReassemblyInsertMergePop(t *testing.T) {
	q := newReassemblyQueue(1 << 20)
	rcvNxt := sq(0)

	stored, dup := q.Insert(sq(2000), rqPayload(sq(2000), 1000), rcvNxt)
	assert.True(t, stored)
	assert.False(t, dup)
	assert.Equal(t, 1000, q.Bytes())
	assert.Equal(t, []SACKBlock{blk(2000, 3000)}, q.Ranges())

	// Overlap with different bytes: the stored bytes win, the new tail is kept.
	other := bytes.Repeat([]byte{0xEE}, 1000)
	stored, dup = q.Insert(sq(2500), other, rcvNxt)
	assert.True(t, stored)
	assert.True(t, dup, "overlap is reported for D-SACK")
	assert.Equal(t, 1500, q.Bytes())
	assert.Equal(t, []SACKBlock{blk(2000, 3500)}, q.Ranges())

	// Adjacent range merges.
	q.Insert(sq(3500), rqPayload(sq(3500), 500), rcvNxt)
	assert.Equal(t, []SACKBlock{blk(2000, 4000)}, q.Ranges())
	// A separate range.
	q.Insert(sq(5000), rqPayload(sq(5000), 100), rcvNxt)
	assert.Equal(t, []SACKBlock{blk(2000, 4000), blk(5000, 5100)}, q.Ranges())
	assert.Equal(t, 2, q.Len())

	// Full duplicate.
	stored, dup = q.Insert(sq(2100), rqPayload(sq(2100), 200), rcvNxt)
	assert.True(t, stored)
	assert.True(t, dup)
	assert.Equal(t, 2100, q.Bytes())

	// Nothing is in order yet.
	next, got := rqCollect(&q, rcvNxt)
	assert.Equal(t, rcvNxt, next)
	assert.Empty(t, got)

	// The engine delivered [0, 2000) itself; Pop hands over the rest in order.
	next, got = rqCollect(&q, sq(2000))
	assert.Equal(t, sq(4000), next)
	require.Len(t, got, 2000)
	assert.Equal(t, rqPayload(sq(2000), 1000), got[:1000], "original bytes kept on overlap")
	assert.Equal(t, other[500:], got[1000:1500], "new part of the overlapping segment")
	assert.Equal(t, rqPayload(sq(3500), 500), got[1500:])
	assert.Equal(t, []SACKBlock{blk(5000, 5100)}, q.Ranges())
	assert.Equal(t, 100, q.Bytes())
}

func TestReassemblyBelowRcvNxt(t *testing.T) {
	q := newReassemblyQueue(1 << 20)
	stored, dup := q.Insert(sq(0), rqPayload(sq(0), 1000), sq(1000))
	assert.True(t, stored)
	assert.True(t, dup, "old data is a duplicate")
	assert.Equal(t, 0, q.Bytes())

	// Straddling RCV.NXT: only the part above is stored.
	stored, dup = q.Insert(sq(500), rqPayload(sq(500), 1000), sq(1000))
	assert.True(t, stored)
	assert.True(t, dup)
	assert.Equal(t, []SACKBlock{blk(1000, 1500)}, q.Ranges())
	next, got := rqCollect(&q, sq(1000))
	assert.Equal(t, sq(1500), next)
	assert.Equal(t, rqPayload(sq(1000), 500), got)

	// Stale chunks below a RCV.NXT advanced by other means are dropped.
	q.Insert(sq(3000), rqPayload(sq(3000), 1000), sq(1500))
	next, got = rqCollect(&q, sq(3500))
	assert.Equal(t, sq(4000), next)
	assert.Equal(t, rqPayload(sq(3500), 500), got)
	assert.Equal(t, 0, q.Bytes())
	assert.True(t, q.Empty())
}

func TestReassemblyLimit(t *testing.T) {
	q := newReassemblyQueue(3000)
	stored, _ := q.Insert(sq(1000), rqPayload(sq(1000), 2000), sq(0))
	require.True(t, stored)
	stored, dup := q.Insert(sq(5000), rqPayload(sq(5000), 1001), sq(0))
	assert.False(t, stored, "would exceed the byte limit")
	assert.False(t, dup)
	assert.Equal(t, uint64(1), q.Refused)
	assert.Equal(t, 2000, q.Bytes())
	assert.Equal(t, []SACKBlock{blk(1000, 3000)}, q.Ranges(), "nothing of a refused segment is kept")
	// Overlapping data only counts its new bytes.
	stored, dup = q.Insert(sq(2000), rqPayload(sq(2000), 2000), sq(0))
	assert.True(t, stored)
	assert.True(t, dup)
	assert.Equal(t, 3000, q.Bytes())
	// Exactly full; a duplicate still fits.
	stored, _ = q.Insert(sq(1500), rqPayload(sq(1500), 10), sq(0))
	assert.True(t, stored)

	q.SetLimit(0)
	stored, _ = q.Insert(sq(9000), []byte{1}, sq(0))
	assert.False(t, stored)
	var zero reassemblyQueue
	stored, _ = zero.Insert(sq(9000), []byte{1}, sq(0))
	assert.False(t, stored, "the zero value stores nothing")

	// Not within any possible window.
	q = newReassemblyQueue(1 << 20)
	stored, _ = q.Insert(sq(0).Add(1<<30), []byte{1}, sq(0))
	assert.False(t, stored)
}

// TestReassemblyChunkBound: 1-byte segments at odd offsets cannot make the
// queue hold more than limit/256+64 chunks.
func TestReassemblyChunkBound(t *testing.T) {
	q := newReassemblyQueue(64 << 10)
	n := 0
	for i := uint32(0); i < 1000; i++ {
		if stored, _ := q.Insert(sq(10+2*i), []byte{byte(i)}, sq(0)); stored {
			n++
		}
	}
	assert.Equal(t, (64<<10)/256+64, n)
	assert.Equal(t, n, q.Bytes())
	assert.Equal(t, uint64(1000-n), q.Refused)
}

func TestReassemblySuperSegments(t *testing.T) {
	q := newReassemblyQueue(16 << 20)
	// A 100000-byte input (bigger than any single segment) is cut into
	// 64 KiB chunks; a 64 KiB super-segment takes one.
	big := rqPayload(sq(100000), 100000)
	stored, _ := q.Insert(sq(100000), big, sq(0))
	require.True(t, stored)
	assert.Equal(t, 2, len(q.chunks)-q.head)
	seg := rqPayload(sq(200000), 65536)
	q.Insert(sq(200000), seg, sq(0))
	assert.Equal(t, 3, len(q.chunks)-q.head)
	assert.Equal(t, 65536, cap(q.chunks[len(q.chunks)-1].mem))
	assert.Equal(t, []SACKBlock{blk(100000, 265536)}, q.Ranges())
	next, got := rqCollect(&q, sq(100000))
	assert.Equal(t, sq(265536), next)
	assert.Equal(t, append(big, seg...), got)
	// Buffers went to the free list and are reused.
	assert.Equal(t, 3, q.freeCount)
	q.Insert(sq(300000), rqPayload(sq(300000), 65536), next)
	assert.Equal(t, 2, q.freeCount)
}

func TestReassemblyPopLimit(t *testing.T) {
	q := newReassemblyQueue(1 << 20)
	q.Insert(sq(100), rqPayload(sq(100), 1000), sq(0))
	var got []byte
	next := q.PopLimit(sq(100), 300, func(b []byte) { got = append(got, b...) })
	assert.Equal(t, sq(400), next)
	assert.Equal(t, rqPayload(sq(100), 300), got)
	assert.Equal(t, 700, q.Bytes())
	assert.Equal(t, []SACKBlock{blk(400, 1100)}, q.Ranges())
	next, got = rqCollect(&q, next)
	assert.Equal(t, sq(1100), next)
	assert.Equal(t, rqPayload(sq(400), 700), got)
}

// TestReassemblySACKBlocksRFC2018 replays RFC 2018 §5 "case 3" (eight
// 500-byte segments from 5000, the 2nd, 4th, 6th and 8th dropped), then the
// later arrival of the 4th and the 2nd, checking the exact SACK option each
// ACK carries.
func TestReassemblySACKBlocksRFC2018(t *testing.T) {
	q := newReassemblyQueue(1 << 20)
	rcvNxt := sq(5500) // the first segment arrived in order
	var buf [4]SACKBlock
	steps := []struct {
		seq  uint32
		want []SACKBlock
	}{
		{6000, []SACKBlock{blk(6000, 6500)}},
		{7000, []SACKBlock{blk(7000, 7500), blk(6000, 6500)}},
		{8000, []SACKBlock{blk(8000, 8500), blk(7000, 7500), blk(6000, 6500)}},
		// The 4th segment (6500) arrives: the block holding it comes first.
		{6500, []SACKBlock{blk(6000, 7500), blk(8000, 8500)}},
	}
	for _, st := range steps {
		stored, dup := q.Insert(sq(st.seq), rqPayload(sq(st.seq), 500), rcvNxt)
		require.True(t, stored)
		require.False(t, dup)
		assert.Equal(t, st.want, q.SACKBlocks(buf[:0], nil), "after %d", st.seq)
	}
	// The 2nd segment fills the gap: ACK 7500, SACK 8000-8500.
	rcvNxt = rcvNxt.Add(500)
	rcvNxt, _ = rqCollect(&q, rcvNxt)
	assert.Equal(t, sq(7500), rcvNxt)
	assert.Equal(t, []SACKBlock{blk(8000, 8500)}, q.SACKBlocks(buf[:0], nil))

	// Limit to 3 blocks (timestamps on): the oldest is left out.
	q2 := newReassemblyQueue(1 << 20)
	for _, s := range []uint32{1000, 3000, 5000, 7000} {
		q2.Insert(sq(s), rqPayload(sq(s), 100), sq(0))
	}
	assert.Equal(t, []SACKBlock{blk(7000, 7100), blk(5000, 5100), blk(3000, 3100)},
		q2.SACKBlocksN(buf[:0], 3, nil))
	assert.Equal(t, []SACKBlock{blk(7000, 7100), blk(5000, 5100), blk(3000, 3100), blk(1000, 1100)},
		q2.SACKBlocks(buf[:0], nil))
	assert.Equal(t, []SACKBlock{blk(7000, 7100), blk(5000, 5100)}, q2.SACKBlocks(buf[:0:2], nil),
		"SACKBlocks respects cap(dst)")
	// A segment into an old range makes that range first again.
	q2.Insert(sq(1100), rqPayload(sq(1100), 100), sq(0))
	assert.Equal(t, []SACKBlock{blk(1000, 1200), blk(7000, 7100), blk(5000, 5100)},
		q2.SACKBlocksN(buf[:0], 3, nil))
}

// TestReassemblyDSACK follows RFC 2883 §4.2 example 2-style reporting: a
// duplicate of data inside a SACKed range is reported first, followed by the
// range containing it.
func TestReassemblyDSACK(t *testing.T) {
	q := newReassemblyQueue(1 << 20)
	var buf [4]SACKBlock
	q.Insert(sq(3000), rqPayload(sq(3000), 1000), sq(0))
	q.Insert(sq(5000), rqPayload(sq(5000), 500), sq(0))
	stored, dup := q.Insert(sq(3500), rqPayload(sq(3500), 500), sq(0))
	require.True(t, stored)
	require.True(t, dup)
	d := blk(3500, 4000)
	assert.Equal(t, []SACKBlock{blk(3500, 4000), blk(3000, 4000), blk(5000, 5500)},
		q.SACKBlocksN(buf[:0], 3, &d))
	// D-SACK of data below RCV.NXT (RFC 2883 §4.1): D-SACK then the SACKs.
	old := blk(1000, 1500)
	assert.Equal(t, []SACKBlock{blk(1000, 1500), blk(3000, 4000), blk(5000, 5500)},
		q.SACKBlocksN(buf[:0], 4, &old))
	// Nothing stored: the D-SACK alone.
	var e reassemblyQueue
	assert.Equal(t, []SACKBlock{blk(1000, 1500)}, e.SACKBlocksN(buf[:0], 4, &old))
	assert.Empty(t, e.SACKBlocksN(buf[:0], 4, nil))
	assert.Empty(t, q.SACKBlocksN(buf[:0], 0, &old))
}

func TestReassemblyReset(t *testing.T) {
	q := newReassemblyQueue(1 << 20)
	q.Insert(sq(3000), rqPayload(sq(3000), 1000), sq(0))
	q.Reset()
	assert.Equal(t, 0, q.Bytes())
	assert.Equal(t, 0, q.Len())
	assert.Equal(t, 1<<20, q.Limit())
	assert.Empty(t, q.SACKBlocksN(nil, 4, nil))
	assert.Nil(t, q.chunks)
}

// rqModel is the per-byte reference: present[x] says whether relative
// sequence x is stored; the first copy of a byte wins.
type rqModel struct {
	val     []byte
	present []bool
	count   int
}

func (m *rqModel) has(x uint32) bool { return int(x) < len(m.present) && m.present[x] }

func (m *rqModel) put(x uint32, b byte) {
	for int(x) >= len(m.present) {
		m.present = append(m.present, false)
		m.val = append(m.val, 0)
	}
	if !m.present[x] {
		m.present[x], m.val[x] = true, b
		m.count++
	}
}

func (m *rqModel) del(x uint32) {
	if m.has(x) {
		m.present[x] = false
		m.count--
	}
}

// TestReassemblyAgainstModel compares random arrivals (fixed seed; overlaps,
// duplicates, in-order fills, the 2^32 wrap) with a per-byte model.
func TestReassemblyAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewSource(99))
	const window = 4000
	for iter := 0; iter < 40; iter++ {
		limit := 500 + rng.Intn(4000)
		q := newReassemblyQueue(limit)
		var stream, want []byte // delivered by the queue+engine / by the model
		m := &rqModel{}
		rcvNxt := uint32(0)
		for step := 0; step < 300; step++ {
			seqRel := rcvNxt + uint32(rng.Intn(window))
			if rng.Intn(6) == 0 && rcvNxt > 50 {
				seqRel = rcvNxt - uint32(rng.Intn(50)) // partly old
			}
			n := 1 + rng.Intn(300)
			end := seqRel + uint32(n)
			data := make([]byte, n)
			rng.Read(data)

			newBytes, dupModel := 0, false
			for x := seqRel; x < end; x++ {
				switch {
				case x < rcvNxt || m.has(x):
					dupModel = true
				default:
					newBytes++
				}
			}
			fits := m.count+newBytes <= limit
			if lo := sq(seqRel).Max(sq(rcvNxt)); lo.LessThan(sq(end)) {
				_, pieces := q.coverage(lo, sq(end))
				if len(q.chunks)-q.head+pieces > q.maxChunks() {
					fits = false // the chunk-count bound bites
				}
			}
			stored, dup := q.Insert(sq(seqRel), data, sq(rcvNxt))
			if newBytes > 0 {
				require.Equal(t, fits, stored, "iter %d step %d stored", iter, step)
			} else {
				require.True(t, stored)
			}
			require.Equal(t, dupModel, dup, "iter %d step %d dup", iter, step)
			if stored {
				for x := seqRel; x < end; x++ {
					if x >= rcvNxt {
						m.put(x, data[x-seqRel])
					}
				}
			}
			require.Equal(t, m.count, q.Bytes())

			var ranges []SACKBlock
			for x := rcvNxt; int(x) < len(m.present); x++ {
				if !m.present[x] {
					continue
				}
				if len(ranges) > 0 && ranges[len(ranges)-1].End == sq(x) {
					ranges[len(ranges)-1].End++
				} else {
					ranges = append(ranges, SACKBlock{Start: sq(x), End: sq(x + 1)})
				}
			}
			if len(ranges) == 0 {
				require.Empty(t, q.Ranges())
			} else {
				require.Equal(t, ranges, q.Ranges(), "iter %d step %d", iter, step)
			}
			blocks := q.SACKBlocksN(nil, 4, nil)
			require.LessOrEqual(t, len(blocks), 4)
			require.Equal(t, len(blocks) == 0, len(ranges) == 0)
			if stored && newBytes > 0 {
				// RFC 2018 §4: the first block holds the newest segment.
				require.True(t, sq(seqRel).Max(sq(rcvNxt)).InRange(blocks[0].Start, blocks[0].End))
			}

			// Sometimes the in-order segment at RCV.NXT arrives: the engine
			// delivers it itself, then Pops what became in order.
			if rng.Intn(3) == 0 {
				k := 1 + rng.Intn(200)
				fill := make([]byte, k)
				rng.Read(fill)
				stream = append(stream, fill...)
				want = append(want, fill...)
				for i := 0; i < k; i++ {
					m.del(rcvNxt + uint32(i))
				}
				rcvNxt += uint32(k)
				engineNxt := rcvNxt
				for m.has(rcvNxt) {
					want = append(want, m.val[rcvNxt])
					m.del(rcvNxt)
					rcvNxt++
				}
				next := q.Pop(sq(engineNxt), func(b []byte) { stream = append(stream, b...) })
				require.Equal(t, sq(rcvNxt), next)
				require.Equal(t, want, stream)
				require.Equal(t, m.count, q.Bytes())
			}
		}
	}
}
