package tun

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseImpairment(t *testing.T) {
	tests := []struct {
		in   string
		want Impairment
		str  string
	}{
		{"", Impairment{}, ""},
		{"loss=1%", Impairment{Loss: 0.01}, "loss=1%"},
		{"loss=1%,dup=0.1%,reorder=1%,delay=20ms,jitter=5ms,corrupt=0.01%,seed=42",
			Impairment{Loss: 0.01, Dup: 0.001, Reorder: 0.01, Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Corrupt: 0.0001, Seed: 42},
			"loss=1%,dup=0.1%,reorder=1%,delay=20ms,jitter=5ms,corrupt=0.01%,seed=42"},
		{" loss = 0.5 , depth=5,limit=10", Impairment{Loss: 0.5, ReorderDepth: 5, Limit: 10}, "loss=50%,depth=5,limit=10"},
		{"loss=100%,seed=0x10", Impairment{Loss: 1, Seed: 16}, "loss=100%,seed=16"},
		{"delay=1.5s", Impairment{Delay: 1500 * time.Millisecond}, "delay=1.5s"},
		{"loss=0", Impairment{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseImpairment(tt.in)
			require.NoError(t, err)
			assert.InDelta(t, tt.want.Loss, got.Loss, 1e-12)
			assert.InDelta(t, tt.want.Dup, got.Dup, 1e-12)
			assert.InDelta(t, tt.want.Reorder, got.Reorder, 1e-12)
			assert.InDelta(t, tt.want.Corrupt, got.Corrupt, 1e-12)
			got.Loss, got.Dup, got.Reorder, got.Corrupt = tt.want.Loss, tt.want.Dup, tt.want.Reorder, tt.want.Corrupt
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.str, got.String())
			again, err := ParseImpairment(got.String())
			require.NoError(t, err)
			assert.Equal(t, got, again, "String round-trips")
		})
	}
}

func TestParseImpairmentErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"loss", `impairment "loss": want key=value`},
		{"loss=", `impairment "loss=": want key=value`},
		{"=1%", `impairment "=1%": want key=value`},
		{"loss=1%,", `impairment "": want key=value`},
		{"drop=1%", `impairment "drop=1%": unknown key "drop" (known: loss, dup, reorder, depth, delay, jitter, corrupt, limit, seed)`},
		{"loss=1%,loss=2%", `impairment "loss=2%": loss given twice`},
		{"loss=abc", `impairment "loss=abc": want a probability such as 1% or 0.01`},
		{"loss=NaN", `impairment "loss=NaN": want a probability such as 1% or 0.01`},
		{"loss=5", `impairment "loss=5": probability 5 out of [0, 1]; write 5% for a percentage`},
		{"loss=101%", `impairment "loss=101%": probability 101% out of [0%, 100%]`},
		{"dup=-1%", `impairment "dup=-1%": probability -1% out of [0%, 100%]`},
		{"delay=20", `impairment "delay=20": want a duration such as 20ms`},
		{"jitter=-5ms", `impairment "jitter=-5ms": negative duration`},
		{"depth=0", `impairment "depth=0": want a positive integer`},
		{"limit=x", `impairment "limit=x": want a positive integer`},
		{"seed=-1", `impairment "seed=-1": want an unsigned integer`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseImpairment(tt.in)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

// recorder is a Link that remembers what was written to it and when.
type recorder struct {
	now  func() time.Duration
	pkts [][]byte
	at   []time.Duration
	gso  []GSO
}

func (r *recorder) Read([][]byte, []int, int) (int, error)           { return 0, ErrClosed }
func (r *recorder) ReadGSO([][]byte, []int, []GSO, int) (int, error) { return 0, ErrClosed }
func (r *recorder) Write(bufs [][]byte, offset int) (int, error) {
	return r.WriteGSO(bufs, nil, offset)
}
func (r *recorder) WriteGSO(bufs [][]byte, gso []GSO, offset int) (int, error) {
	for i, b := range bufs {
		r.pkts = append(r.pkts, bytes.Clone(b[offset:]))
		r.at = append(r.at, r.now())
		if gso != nil {
			r.gso = append(r.gso, gso[i])
		} else {
			r.gso = append(r.gso, GSO{})
		}
	}
	return len(bufs), nil
}
func (r *recorder) GSOMaxSize() int { return 1234 }
func (r *recorder) MTU() int        { return 1500 }
func (r *recorder) BatchSize() int  { return 7 }
func (r *recorder) Close() error    { return nil }

func (r *recorder) numbers() []int {
	var ns []int
	for _, p := range r.pkts {
		ns = append(ns, numberOf(p))
	}
	return ns
}

// manual is a virtual clock.
type manual struct{ t time.Duration }

func (m *manual) now() time.Duration { return m.t }

func newImpaired(t *testing.T, spec string) (*Impaired, *recorder, *manual) {
	t.Helper()
	imp, err := ParseImpairment(spec)
	require.NoError(t, err)
	clk := &manual{}
	rec := &recorder{now: clk.now}
	return NewImpaired(rec, imp, clk.now), rec, clk
}

// send writes packets numbered from..to-1, one per Write.
func send(t *testing.T, l Link, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		n, err := l.Write([][]byte{numbered(i)}, 0)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
}

func TestImpairedPassThrough(t *testing.T) {
	l, rec, _ := newImpaired(t, "")
	send(t, l, 0, 100)
	assert.Len(t, rec.pkts, 100)
	for i, p := range rec.pkts {
		assert.Equal(t, numbered(i), p)
	}
	assert.Equal(t, ImpairStats{Packets: 100, Released: 100}, l.Stats())
	assert.Equal(t, 1234, l.GSOMaxSize())
	assert.Equal(t, 7, l.BatchSize())
	assert.Equal(t, 1500, l.MTU())
}

func TestImpairedLoss(t *testing.T) {
	l, rec, _ := newImpaired(t, "loss=10%,seed=1")
	send(t, l, 0, 10000)
	st := l.Stats()
	// Exact for this seed and PCG: a change of draw order shows here.
	assert.Equal(t, uint64(1020), st.Dropped)
	assert.Equal(t, ImpairStats{Packets: 10000, Dropped: st.Dropped, Released: 10000 - st.Dropped}, st)
	got := rec.numbers()
	assert.Len(t, got, 10000-int(st.Dropped))
	for i := 1; i < len(got); i++ {
		require.Less(t, got[i-1], got[i], "order kept")
	}
}

func TestImpairedDuplicate(t *testing.T) {
	l, rec, _ := newImpaired(t, "dup=5%,seed=2")
	send(t, l, 0, 10000)
	st := l.Stats()
	assert.Equal(t, uint64(513), st.Duplicated)
	assert.Equal(t, ImpairStats{Packets: 10000, Duplicated: st.Duplicated, Released: 10000 + st.Duplicated}, st)
	got := rec.numbers()
	dups := 0
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			dups++
		} else {
			require.Equal(t, got[i-1]+1, got[i])
		}
	}
	assert.Equal(t, int(st.Duplicated), dups, "duplicates follow their original")
}

func TestImpairedCorrupt(t *testing.T) {
	l, rec, _ := newImpaired(t, "corrupt=1%,seed=3")
	send(t, l, 0, 10000)
	st := l.Stats()
	assert.Equal(t, uint64(91), st.Corrupted)
	corrupted := 0
	for i, p := range rec.pkts {
		want := numbered(i)
		var diff []int
		for j := range p {
			if p[j] != want[j] {
				diff = append(diff, j)
				assert.Equal(t, want[j]^0xff, p[j], "byte inverted")
			}
		}
		require.LessOrEqual(t, len(diff), 1, "packet %d", i)
		corrupted += len(diff)
	}
	assert.Equal(t, int(st.Corrupted), corrupted)
}

func TestImpairedReorder(t *testing.T) {
	l, rec, clk := newImpaired(t, "reorder=100%,depth=3,seed=4")
	// Every packet is held until 3 later ones pass; the first 3 are held
	// with nothing to pass them until the timeout.
	send(t, l, 0, 3)
	assert.Empty(t, rec.pkts)
	next, ok := l.NextRelease()
	require.True(t, ok)
	assert.Equal(t, ReorderTimeout, next)
	clk.t = ReorderTimeout - 1
	require.NoError(t, l.Flush())
	assert.Empty(t, rec.pkts)
	clk.t = ReorderTimeout
	require.NoError(t, l.Flush())
	assert.Equal(t, []int{0, 1, 2}, rec.numbers())
	_, ok = l.NextRelease()
	assert.False(t, ok)

	l, rec, _ = newImpaired(t, "reorder=25%,depth=3,seed=5")
	send(t, l, 0, 40)
	st := l.Stats()
	assert.Equal(t, uint64(11), st.Reordered)
	assert.Equal(t, 40-l.Held(), len(rec.pkts))
	assert.Equal(t, []int{1, 2, 3, 0, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 11, 15, 16, 17, 18, 19, 21, 22, 23, 20, 24, 28, 31, 32, 25, 26, 27, 33, 29, 30, 35, 36, 37, 34}, rec.numbers(),
		"each reordered packet comes %d places late (more when held ones pile up)", 3)
}

func TestImpairedDelayVirtualTime(t *testing.T) {
	l, rec, clk := newImpaired(t, "delay=20ms,jitter=5ms,seed=3")
	for i := range 5 {
		clk.t = time.Duration(i) * time.Millisecond
		send(t, l, i, i+1)
	}
	assert.Empty(t, rec.pkts, "nothing before the delay")
	assert.Equal(t, 5, l.Held())
	var releases []time.Duration
	for {
		next, ok := l.NextRelease()
		if !ok {
			break
		}
		clk.t = next
		require.NoError(t, l.Flush())
		releases = append(releases, next)
	}
	assert.Equal(t, []int{0, 1, 2, 3, 4}, rec.numbers(), "jitter does not reorder")
	for i, at := range rec.at {
		sent := time.Duration(i) * time.Millisecond
		assert.GreaterOrEqual(t, at, sent+15*time.Millisecond, "packet %d", i)
		assert.LessOrEqual(t, at, sent+25*time.Millisecond+4*time.Millisecond, "packet %d", i)
		if i > 0 {
			assert.GreaterOrEqual(t, at, rec.at[i-1])
		}
	}
	// Exact for this seed.
	assert.Equal(t, "[17.546047ms 23.682977ms 23.682977ms 23.682977ms 27.160988ms]", fmt.Sprint(rec.at))
	assert.Equal(t, ImpairStats{Packets: 5, Released: 5}, l.Stats())
}

func TestImpairedDeterministic(t *testing.T) {
	run := func(seed int) [][]byte {
		l, rec, clk := newImpaired(t, fmt.Sprintf("loss=5%%,dup=5%%,reorder=5%%,corrupt=5%%,delay=1ms,jitter=1ms,seed=%d", seed))
		for i := range 2000 {
			clk.t = time.Duration(i) * 100 * time.Microsecond
			send(t, l, i, i+1)
		}
		clk.t = time.Hour
		require.NoError(t, l.Flush())
		assert.Zero(t, l.Held())
		return rec.pkts
	}
	a, b, c := run(7), run(7), run(8)
	assert.Equal(t, a, b, "same seed, same packets")
	assert.NotEqual(t, a, c, "another seed, other packets")
}

func TestImpairedLimit(t *testing.T) {
	l, rec, clk := newImpaired(t, "delay=10ms,limit=4")
	send(t, l, 0, 6)
	assert.Equal(t, 4, l.Held())
	clk.t = 10 * time.Millisecond
	require.NoError(t, l.Flush())
	assert.Equal(t, []int{0, 1, 2, 3}, rec.numbers())
	assert.Equal(t, ImpairStats{Packets: 6, Overflow: 2, Released: 4}, l.Stats())
}

func TestImpairedGSOAndBatch(t *testing.T) {
	l, rec, _ := newImpaired(t, "")
	super := tcpPkt{src: stackV4, dst: hostV4, flags: flagACK, payload: patterned(3000, 0)}.build(Headroom)
	g := TCPGSO(false, 20, 1000)
	other := append(make([]byte, Headroom), numbered(5)...)
	n, err := l.WriteGSO([][]byte{super, other}, []GSO{g, {}}, Headroom)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, []GSO{g, {}}, rec.gso)
	assert.Equal(t, super[Headroom:], rec.pkts[0])
}

func TestImpairedClose(t *testing.T) {
	l, _, _ := newImpaired(t, "delay=1ms")
	send(t, l, 0, 2)
	require.NoError(t, l.Close())
	_, err := l.Write([][]byte{numbered(1)}, 0)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, l.Flush(), ErrClosed)
}

func TestImpairedRealTime(t *testing.T) {
	a, b := NewPipe(1500)
	imp, err := ParseImpairment("delay=2ms")
	require.NoError(t, err)
	l := NewImpaired(a, imp, nil)
	defer l.Close()
	start := time.Now()
	send(t, l, 0, 3)
	bufs, sizes := newBufs(4, 1500), make([]int, 4)
	var got []int
	for len(got) < 3 {
		n, err := b.Read(bufs, sizes, 0)
		require.NoError(t, err)
		for i := range n {
			got = append(got, numberOf(bufs[i]))
		}
	}
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Millisecond)
	assert.Equal(t, []int{0, 1, 2}, got)
}
