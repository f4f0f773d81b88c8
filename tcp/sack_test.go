package tcp

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sbBase makes every scoreboard test cross the 2^32 sequence wrap.
const sbBase = Seq(0xFFFFF000)

func sq(rel uint32) Seq { return sbBase.Add(rel) }

func blk(a, b uint32) SACKBlock { return SACKBlock{Start: sq(a), End: sq(b)} }

func newTestScoreboard() *sendScoreboard {
	s := &sendScoreboard{}
	s.SetMSS(1000)
	return s
}

// TestScoreboardSingleLoss is the RFC 6675 basic case: ten 1000-byte
// segments, the first lost; SACKs arrive for segments 2, 3, 4. The first is
// deemed lost once more than (DupThresh-1)*SMSS bytes above it are SACKed.
func TestScoreboardSingleLoss(t *testing.T) {
	s := newTestScoreboard()
	una, nxt := sq(0), sq(10000)
	steps := []struct {
		blocks  []SACKBlock
		newly   uint32
		lost    bool
		pipe    uint32
		ranges  []SACKBlock
		sacked  uint32
		nextOK  bool
		nextLen uint32
	}{
		{[]SACKBlock{blk(1000, 2000)}, 1000, false, 9000, []SACKBlock{blk(1000, 2000)}, 1000, false, 0},
		{[]SACKBlock{blk(1000, 3000)}, 1000, false, 8000, []SACKBlock{blk(1000, 3000)}, 2000, false, 0},
		// 3000 > 2*SMSS: segment 1 is lost, pipe no longer counts it.
		{[]SACKBlock{blk(1000, 4000)}, 1000, true, 6000, []SACKBlock{blk(1000, 4000)}, 3000, true, 1000},
		// A stale repeat changes nothing.
		{[]SACKBlock{blk(1000, 2000)}, 0, true, 6000, []SACKBlock{blk(1000, 4000)}, 3000, true, 1000},
	}
	for i, st := range steps {
		newly, dsack := s.UpdateSACK(una, nxt, st.blocks)
		require.False(t, dsack, "step %d", i)
		assert.Equal(t, st.newly, newly, "step %d newly", i)
		assert.Equal(t, st.lost, s.IsLost(una), "step %d IsLost", i)
		assert.Equal(t, st.pipe, s.Pipe(una, nxt, una), "step %d pipe", i)
		assert.Equal(t, st.ranges, s.Ranges(), "step %d ranges", i)
		assert.Equal(t, st.sacked, s.SACKedBytes(), "step %d sacked", i)
		start, n, ok := s.NextSegToRetransmit(una, nxt, 1000, una)
		assert.Equal(t, st.nextOK, ok, "step %d NextSeg", i)
		if ok {
			assert.Equal(t, una, start)
			assert.Equal(t, st.nextLen, n)
		}
	}
	// After retransmitting segment 1 (HighRxt = 1000): rule 1 has nothing
	// more, and pipe counts the retransmission (RFC 6675 SetPipe (b)).
	_, _, ok := s.NextSegToRetransmit(una, nxt, 1000, sq(1000))
	assert.False(t, ok)
	assert.Equal(t, uint32(7000), s.Pipe(una, nxt, sq(1000)))
	assert.False(t, s.IsLost(sq(5000)), "nothing SACKed above segment 6")
	assert.False(t, s.IsLost(sq(1500)), "a SACKed byte is never lost")
	assert.True(t, s.IsSACKed(sq(1000)))
	assert.True(t, s.IsSACKed(sq(3999)))
	assert.False(t, s.IsSACKed(sq(4000)))
	assert.False(t, s.IsSACKed(sq(999)))

	// The cumulative ACK for the retransmission covers everything SACKed.
	newly, _ := s.UpdateSACK(sq(4000), nxt, nil)
	assert.Equal(t, uint32(0), newly)
	assert.Equal(t, 0, s.Len())
	assert.Equal(t, uint32(0), s.SACKedBytes())
	assert.Equal(t, uint32(6000), s.Pipe(sq(4000), nxt, sq(1000)))
}

// TestScoreboardMultipleLosses: segments 1, 4 and 7 of ten lost; the
// receiver SACKs the rest. All three holes are lost and NextSeg walks them
// in order as HighRxt advances — several losses repaired in one RTT.
func TestScoreboardMultipleLosses(t *testing.T) {
	s := newTestScoreboard()
	una, nxt := sq(0), sq(10000)
	s.UpdateSACK(una, nxt, []SACKBlock{blk(1000, 3000)})
	s.UpdateSACK(una, nxt, []SACKBlock{blk(4000, 6000), blk(1000, 3000)})
	newly, _ := s.UpdateSACK(una, nxt, []SACKBlock{blk(7000, 10000), blk(4000, 6000), blk(1000, 3000)})
	assert.Equal(t, uint32(3000), newly)
	assert.Equal(t, []SACKBlock{blk(1000, 3000), blk(4000, 6000), blk(7000, 10000)}, s.Ranges())
	assert.True(t, s.IsLost(sq(0)), "3 discontiguous ranges above")
	assert.True(t, s.IsLost(sq(3000)), "5000 bytes above")
	assert.True(t, s.IsLost(sq(6000)), "3000 bytes above")
	assert.Equal(t, uint32(0), s.Pipe(una, nxt, una), "everything unSACKed is lost")

	highRxt := una
	var got []SACKBlock
	for {
		start, n, ok := s.NextSegToRetransmit(una, nxt, 1000, highRxt)
		if !ok {
			break
		}
		got = append(got, SACKBlock{Start: start, End: start.Add(n)})
		highRxt = start.Add(n)
	}
	assert.Equal(t, []SACKBlock{blk(0, 1000), blk(3000, 4000), blk(6000, 7000)}, got)
	assert.Equal(t, uint32(3000), s.Pipe(una, nxt, highRxt), "each retransmission counts once")
}

// TestScoreboardDiscontiguousRule exercises the DupThresh discontiguous
// ranges rule of IsLost with little SACKed data.
func TestScoreboardDiscontiguousRule(t *testing.T) {
	s := newTestScoreboard()
	una, nxt := sq(0), sq(6000)
	s.UpdateSACK(una, nxt, []SACKBlock{blk(1000, 1100), blk(3000, 3100), blk(5000, 5100)})
	assert.True(t, s.IsLost(sq(0)), "three ranges above, only 300 bytes")
	assert.False(t, s.IsLost(sq(1100)), "two ranges, 200 bytes")
	assert.False(t, s.IsLost(sq(5100)))
	// Pipe: hole [0,1000) lost; [1100,3000), [3100,5000), [5100,6000) not lost.
	assert.Equal(t, uint32(1900+1900+900), s.Pipe(una, nxt, una))
	start, n, ok := s.NextSegToRetransmit(una, nxt, 1460, una)
	require.True(t, ok)
	assert.Equal(t, sq(0), start)
	assert.Equal(t, uint32(1000), n, "never crosses into SACKed data")
	_, _, ok = s.NextSegToRetransmit(una, nxt, 1460, sq(1000))
	assert.False(t, ok, "the next hole is not lost")

	// Rule 3: an unSACKed, not-retransmitted byte below the highest SACK.
	start, n, ok = s.NextSegRule3(una, nxt, 1460, sq(1000))
	require.True(t, ok)
	assert.Equal(t, sq(1100), start)
	assert.Equal(t, uint32(1460), n)
	_, _, ok = s.NextSegRule3(una, nxt, 1460, sq(5100))
	assert.False(t, ok, "nothing below the highest SACKed byte is left")
}

func TestScoreboardDSACK(t *testing.T) {
	tests := []struct {
		name   string
		una    uint32
		blocks []SACKBlock
		dsack  bool
		newly  uint32
		ranges []SACKBlock
	}{
		{"first block below cumulative ACK", 3000, []SACKBlock{blk(1000, 2000), blk(5000, 6000)}, true, 1000,
			[]SACKBlock{blk(5000, 6000)}},
		{"first block inside second", 0, []SACKBlock{blk(5000, 5500), blk(4000, 6000)}, true, 2000,
			[]SACKBlock{blk(4000, 6000)}},
		{"plain SACK", 0, []SACKBlock{blk(5000, 5500), blk(7000, 8000)}, false, 1500,
			[]SACKBlock{blk(5000, 5500), blk(7000, 8000)}},
		{"only a D-SACK", 3000, []SACKBlock{blk(2000, 3000)}, true, 0, []SACKBlock{}},
		{"D-SACK straddling SND.UNA ignored", 3000, []SACKBlock{blk(2000, 4000)}, true, 0, []SACKBlock{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestScoreboard()
			newly, dsack := s.UpdateSACK(sq(tt.una), sq(10000), tt.blocks)
			assert.Equal(t, tt.dsack, dsack)
			assert.Equal(t, tt.newly, newly)
			if len(tt.ranges) == 0 {
				assert.Empty(t, s.Ranges())
			} else {
				assert.Equal(t, tt.ranges, s.Ranges())
			}
		})
	}
}

func TestScoreboardRejectsBogusBlocks(t *testing.T) {
	s := newTestScoreboard()
	una, nxt := sq(1000), sq(10000)
	bogus := []SACKBlock{
		blk(9000, 11000),                         // beyond SND.NXT
		blk(5000, 5000),                          // empty
		blk(6000, 5000),                          // reversed
		{Start: sq(5000), End: sq(5000) + 1<<31}, // half the sequence space
		{Start: sq(1000) - 1<<31, End: sq(2000)}, // far below
	}
	for _, b := range bogus {
		newly, _ := s.UpdateSACK(una, nxt, []SACKBlock{blk(3000, 3001), b})
		_ = newly
	}
	assert.Equal(t, []SACKBlock{blk(3000, 3001)}, s.Ranges())
	assert.Equal(t, uint32(1), s.SACKedBytes())

	// Update without SND.NXT still refuses blocks beyond 2^30.
	s.Reset()
	s.Update(una, []SACKBlock{{Start: una.Add(1 << 30), End: una.Add(1<<30 + 10)}, blk(2000, 2500)})
	assert.Equal(t, []SACKBlock{blk(2000, 2500)}, s.Ranges())
}

// TestScoreboardBounded floods the scoreboard with disjoint blocks: it must
// stay at its bound, sbMaxRanges or one range per two segments of the
// flight, forgetting the ranges farthest from SND.UNA.
func TestScoreboardBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nxt   Seq
		limit int
	}{
		{"small_flight", sq(1 << 18), sbMaxRanges},
		{"4MiB_flight", sq(4 << 20), (4 << 20) / 2000}, // MSS 1000
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestScoreboard()
			una := sq(0)
			n := uint32(4 * tc.limit)
			for i := uint32(0); i < n; i++ {
				// Blocks arrive in a scrambled order.
				j := (i * 7919) % n
				s.UpdateSACK(una, tc.nxt, []SACKBlock{blk(10+j*10, 15+j*10)})
				require.LessOrEqual(t, s.Len(), tc.limit)
			}
			assert.Equal(t, tc.limit, s.Len())
			assert.Equal(t, uint32(5*tc.limit), s.SACKedBytes())
			assert.Equal(t, uint64(3*tc.limit), s.Dropped)
			// What remains are the lowest ranges.
			assert.Equal(t, blk(10, 15), s.Ranges()[0])
			assert.Equal(t, blk(10+uint32(tc.limit-1)*10, 15+uint32(tc.limit-1)*10), s.Ranges()[tc.limit-1])
		})
	}
}

func TestScoreboardTrimAndMerge(t *testing.T) {
	s := newTestScoreboard()
	nxt := sq(10000)
	s.UpdateSACK(sq(0), nxt, []SACKBlock{blk(2000, 3000), blk(4000, 5000), blk(6000, 7000)})
	s.UpdateSACK(sq(0), nxt, []SACKBlock{blk(3000, 4000)}) // adjacent on both sides
	assert.Equal(t, []SACKBlock{blk(2000, 5000), blk(6000, 7000)}, s.Ranges())
	s.UpdateSACK(sq(0), nxt, []SACKBlock{blk(1500, 6500)}) // overlaps both
	assert.Equal(t, []SACKBlock{blk(1500, 7000)}, s.Ranges())
	assert.Equal(t, uint32(5500), s.SACKedBytes())
	// Cumulative ACK into the middle of the range.
	s.UpdateSACK(sq(2500), nxt, nil)
	assert.Equal(t, []SACKBlock{blk(2500, 7000)}, s.Ranges())
	assert.Equal(t, uint32(4500), s.SACKedBytes())
	hs, ok := s.HighestSACKed()
	assert.True(t, ok)
	assert.Equal(t, sq(7000), hs)
	s.Reset()
	_, ok = s.HighestSACKed()
	assert.False(t, ok)
	assert.Equal(t, uint32(0), s.Pipe(sq(100), sq(100), sq(0)))
}

// sbModel is a per-byte reference scoreboard implementing RFC 6675's
// definitions literally.
type sbModel struct {
	una    uint32 // relative
	nxt    uint32
	sacked map[uint32]bool
	mss    uint32
}

// lostTable returns IsLost for every byte of [una, nxt), counting the SACKed
// bytes and discontiguous SACKed runs above each byte in one backward pass.
func (m *sbModel) lostTable() []bool {
	lost := make([]bool, m.nxt-m.una)
	var bytes uint32
	runs := 0
	for x := m.nxt; x > m.una; x-- {
		lost[x-1-m.una] = runs >= 3 || bytes > 2*m.mss
		if m.sacked[x-1] {
			bytes++
			if x == m.nxt || !m.sacked[x] {
				runs++
			}
		}
	}
	return lost
}

func (m *sbModel) pipe(lost []bool, highRxt uint32) uint32 {
	var p uint32
	for x := m.una; x < m.nxt; x++ {
		if m.sacked[x] {
			continue
		}
		if !lost[x-m.una] {
			p++
		}
		if x < highRxt {
			p++
		}
	}
	return p
}

// TestScoreboardAgainstModel compares random SACK sequences (fixed seed)
// with the literal per-byte definitions.
func TestScoreboardAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for iter := 0; iter < 60; iter++ {
		s := &sendScoreboard{}
		s.SetMSS(20)
		m := &sbModel{nxt: 400, sacked: map[uint32]bool{}, mss: 20}
		for step := 0; step < 40; step++ {
			if rng.Intn(5) == 0 && m.una < m.nxt {
				m.una += uint32(rng.Intn(int(m.nxt-m.una) + 1))
			}
			if rng.Intn(4) == 0 {
				m.nxt += uint32(rng.Intn(50))
			}
			var blocks []SACKBlock
			for b := rng.Intn(4); b > 0; b-- {
				a := uint32(rng.Intn(int(m.nxt + 20)))
				l := uint32(rng.Intn(40))
				blocks = append(blocks, blk(a, a+l))
			}
			before := 0
			for x := range m.sacked {
				if x >= m.una {
					before++
				}
			}
			for x := range m.sacked {
				if x < m.una {
					delete(m.sacked, x)
				}
			}
			for i, b := range blocks {
				a, e := uint32(b.Start-sbBase), uint32(b.End-sbBase)
				if i == 0 && a < m.una {
					continue
				}
				if a >= e || a < m.una || e > m.nxt {
					continue
				}
				for x := a; x < e; x++ {
					m.sacked[x] = true
				}
			}
			newly, _ := s.UpdateSACK(sq(m.una), sq(m.nxt), blocks)
			require.Equal(t, uint32(len(m.sacked)-before), newly, "iter %d step %d newly", iter, step)
			require.Equal(t, uint32(len(m.sacked)), s.SACKedBytes())
			lost := m.lostTable()
			for x := m.una; x < m.nxt; x++ {
				if m.sacked[x] != s.IsSACKed(sq(x)) {
					t.Fatalf("iter %d step %d: IsSACKed(%d) = %v, model %v", iter, step, x, !m.sacked[x], m.sacked[x])
				}
				if !m.sacked[x] && lost[x-m.una] != s.IsLost(sq(x)) {
					t.Fatalf("iter %d step %d: IsLost(%d) = %v, model %v", iter, step, x, !lost[x-m.una], lost[x-m.una])
				}
			}
			highRxt := m.una + uint32(rng.Intn(int(m.nxt-m.una)+1))
			require.Equal(t, m.pipe(lost, highRxt), s.Pipe(sq(m.una), sq(m.nxt), sq(highRxt)), "iter %d step %d pipe", iter, step)

			// NextSeg rule 1: first unSACKed lost byte >= highRxt.
			want, wantOK := uint32(0), false
			for x := highRxt; x < m.nxt; x++ {
				if !m.sacked[x] {
					want, wantOK = x, lost[x-m.una]
					break
				}
			}
			start, n, ok := s.NextSegToRetransmit(sq(m.una), sq(m.nxt), 20, sq(highRxt))
			require.Equal(t, wantOK, ok, "iter %d step %d NextSeg", iter, step)
			if ok {
				require.Equal(t, sq(want), start)
				require.LessOrEqual(t, n, uint32(20))
				for x := want; x < want+n; x++ {
					require.False(t, m.sacked[x])
				}
			}
		}
	}
}
