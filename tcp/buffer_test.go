package tcp

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func bufPattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + i) * 7)
	}
	return b
}

func TestSendBufferLazyAllocation(t *testing.T) {
	var b sendBuffer
	b.SetCap(256 << 10)
	assert.Equal(t, 0, b.Allocated(), "no storage before the first write")
	assert.Equal(t, 256<<10, b.Free())
	assert.Nil(t, b.Peek(0, 10))

	assert.Equal(t, 10, b.Write(bufPattern(0, 10)))
	assert.Equal(t, 4<<10, b.Allocated(), "4 KiB ring, no mirror below 64 KiB")
	assert.Equal(t, bufPattern(0, 10), b.Peek(0, 100))

	// Storage doubles as needed and keeps the contents.
	assert.Equal(t, 20000, b.Write(bufPattern(10, 20000)))
	assert.Equal(t, 32<<10, b.Allocated())
	assert.Equal(t, bufPattern(0, 20010), b.Peek(0, 20010))

	b.Ack(20010)
	assert.Equal(t, 0, b.Len())
	assert.True(t, b.Release())
	assert.Equal(t, 0, b.Allocated())
	assert.Equal(t, 256<<10, b.Cap())

	// Never beyond the capacity.
	b.SetCap(10000)
	assert.Equal(t, 10000, b.Write(make([]byte, 50000)))
	assert.Equal(t, 0, b.Write([]byte{1}))
	assert.Equal(t, 0, b.Free())
	assert.Equal(t, 10000, b.Allocated(), "storage capped at the capacity")

	// From 64 KiB of storage on, the first 64 KiB are mirrored.
	b.Ack(10000)
	b.SetCap(256 << 10)
	assert.Equal(t, 100000, b.Write(make([]byte, 100000)))
	assert.Equal(t, 160000+64<<10, b.Allocated(), "10000 doubled to 160000, and the mirror")
	assert.False(t, b.Release(), "not empty")
}

func TestSendBufferPeekAcrossWrap(t *testing.T) {
	var b sendBuffer
	b.SetCap(128 << 10)
	require.Equal(t, 128<<10, b.Write(bufPattern(0, 128<<10)))
	b.Ack(100 << 10)
	// 28 KiB left at the end of the ring; 80 KiB more wraps to the start.
	require.Equal(t, 80<<10, b.Write(bufPattern(128<<10, 80<<10)))
	// A 64 KiB super-segment starting 4 KiB before the wrap is contiguous.
	off := 24 << 10
	p := b.Peek(off, 64<<10)
	require.Len(t, p, 64<<10)
	assert.Equal(t, bufPattern(100<<10+off, 64<<10), p)
	assert.Equal(t, 64<<10, cap(p), "callers cannot append into the ring")
	// Beyond the mirrored prefix it is short, and ReadAt copies the rest.
	p = b.Peek(off, 100<<10)
	assert.Equal(t, 4<<10+64<<10, len(p))
	assert.Equal(t, bufPattern(100<<10+off, len(p)), p)
	dst := make([]byte, 100<<10)
	n := b.ReadAt(dst, 8<<10)
	assert.Equal(t, 100<<10, n)
	assert.Equal(t, bufPattern(108<<10, 100<<10), dst)
	assert.Equal(t, 0, b.ReadAt(dst, 108<<10), "offset at Len")
	assert.Nil(t, b.Peek(-1, 5))
	assert.Nil(t, b.Peek(108<<10, 5))
}

func TestBufferSetCap(t *testing.T) {
	var b recvBuffer
	b.SetCap(1000)
	b.Write(bufPattern(0, 800))
	b.SetCap(100)
	assert.Equal(t, 800, b.Cap(), "never below Len")
	assert.Equal(t, 0, b.Free())
	b.SetCap(64 << 20)
	assert.Equal(t, 64<<20, b.Cap(), "16 MiB+ windows")
	b.SetCap(1 << 40)
	assert.Equal(t, 1<<30, b.Cap())
	assert.Equal(t, 5000, b.Write(bufPattern(800, 5000)))
	out := make([]byte, 10000)
	assert.Equal(t, 5800, b.Read(out))
	assert.Equal(t, bufPattern(0, 5800), out[:5800])
	// Shrinking an empty buffer below its storage releases it.
	b.SetCap(1000)
	assert.Equal(t, 0, b.Allocated())
}

func TestRecvBufferReadWrite(t *testing.T) {
	var b recvBuffer
	assert.Equal(t, 0, b.Write([]byte{1}), "zero capacity")
	b.SetCap(4096)
	p := make([]byte, 3000)
	assert.Equal(t, 3000, b.Write(bufPattern(0, 3000)))
	assert.Equal(t, 4096, b.Allocated(), "no mirror on the receive side")
	assert.Equal(t, 2000, b.Read(p[:2000]))
	assert.Equal(t, bufPattern(0, 2000), p[:2000])
	assert.Equal(t, 3000, b.Write(bufPattern(3000, 3000))) // wraps
	assert.Equal(t, 4000, b.Len())
	assert.Equal(t, 96, b.Free())
	// Peek is contiguous only up to the wrap.
	pk := b.Peek(0, 4000)
	assert.Equal(t, bufPattern(2000, 2096), pk)
	b.Discard(100)
	n := b.Read(p)
	assert.Equal(t, 3000, n)
	assert.Equal(t, bufPattern(2100, 3000), p)
	assert.Equal(t, 900, b.Read(p))
	assert.Equal(t, 0, b.Read(p))
	assert.True(t, b.Release())
}

// TestBuffersAgainstModel runs random operations (fixed seed, so a failure
// reproduces exactly) on both buffers and compares with a bytes.Buffer
// model. Storage is bounded by the largest capacity the buffer ever had, not
// the current one: SetCap never drops stored bytes, so storage allocated
// before a shrink (e.g. a 349756-byte ring + 64 KiB mirror = 415292 bytes
// at iter 0 step 38, kept after SetCap lowers the capacity at step 53)
// stays until the buffer empties; then it is released.
func TestBuffersAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for iter := 0; iter < 20; iter++ {
		var sb sendBuffer
		var rb recvBuffer
		capacity := 1 + rng.Intn(300<<10)
		sb.SetCap(capacity)
		rb.SetCap(capacity)
		capR, maxCap := capacity, capacity
		var ms, mr bytes.Buffer
		written := 0
		for step := 0; step < 250; step++ {
			switch op := rng.Intn(10); {
			case op < 4:
				n := rng.Intn(100 << 10)
				p := bufPattern(written, n)
				written += n
				free := capacity - ms.Len()
				want := n
				if want > free {
					want = free
				}
				require.Equal(t, want, sb.Write(p))
				ms.Write(p[:want])
				require.Equal(t, capR-mr.Len(), rb.Free())
				w := rb.Write(p)
				mr.Write(p[:w])
			case op < 6:
				n := rng.Intn(ms.Len() + 10)
				sb.Ack(n)
				if n > ms.Len() {
					n = ms.Len()
				}
				ms.Next(n)
				out := make([]byte, rng.Intn(mr.Len()+10))
				k := rb.Read(out)
				require.True(t, bytes.Equal(mr.Next(k), out[:k]), "iter %d step %d: Read", iter, step)
			case op < 9:
				if ms.Len() == 0 {
					require.Nil(t, sb.Peek(0, 1))
					continue
				}
				off := rng.Intn(ms.Len())
				n := 1 + rng.Intn(70<<10)
				p := sb.Peek(off, n)
				want := ms.Bytes()[off:]
				if len(want) > n {
					want = want[:n]
				}
				if len(want) <= bufMirror && sb.r.sz() >= bufMirror {
					// Storage of 64 KiB or more is mirrored: contiguous.
					require.Equal(t, want, p, "iter %d step %d: Peek(%d,%d)", iter, step, off, n)
				} else {
					require.NotEmpty(t, p)
					require.Equal(t, want[:len(p)], p)
				}
				dst := make([]byte, n)
				k := sb.ReadAt(dst, off)
				require.Equal(t, want, dst[:k])
			default:
				c := rng.Intn(400 << 10)
				sb.SetCap(c)
				rb.SetCap(c)
				capacity, capR = sb.Cap(), rb.Cap()
				require.Equal(t, max(c, ms.Len()), capacity)
				require.Equal(t, max(c, mr.Len()), capR)
				maxCap = max(maxCap, capacity, capR)
			}
			require.Equal(t, ms.Len(), sb.Len())
			require.Equal(t, mr.Len(), rb.Len())
			// Storage never exceeds the largest capacity (+ the mirror),
			// and an empty buffer holds none beyond its current capacity.
			require.LessOrEqual(t, sb.Allocated(), 2*max(maxCap, bufMinAlloc), "iter %d step %d", iter, step)
			require.LessOrEqual(t, rb.Allocated(), max(maxCap, bufMinAlloc), "iter %d step %d", iter, step)
			if sb.Len() == 0 {
				require.LessOrEqual(t, sb.Allocated(), 2*max(capacity, bufMinAlloc), "iter %d step %d", iter, step)
			}
			if rb.Len() == 0 {
				require.LessOrEqual(t, rb.Allocated(), max(capR, bufMinAlloc), "iter %d step %d", iter, step)
			}
		}
	}
}

// An empty ring of a pooled size (4 to 32 KiB) holds no storage: an idle
// connection costs nothing, the next write takes storage from the pool, and
// growing gives the old storage back. Other sizes stay with their ring.
func TestBufRingPooledRelease(t *testing.T) {
	var b sendBuffer
	b.SetCap(256 << 10)
	require.Equal(t, 100, b.Write(bufPattern(0, 100)))
	require.Equal(t, 4<<10, b.Allocated())
	b.Ack(100)
	assert.Equal(t, 0, b.Allocated(), "empty 4 KiB ring: storage pooled")

	require.Equal(t, 20000, b.Write(bufPattern(100, 20000)))
	assert.Equal(t, 32<<10, b.Allocated())
	assert.Equal(t, bufPattern(100, 20000), b.Peek(0, 20000))
	b.Ack(20000)
	assert.Equal(t, 0, b.Allocated(), "empty 32 KiB ring: storage pooled")

	var r recvBuffer
	r.SetCap(10000)
	require.Equal(t, 10000, r.Write(bufPattern(0, 10000)))
	require.Equal(t, 10000, r.Allocated(), "capped at an odd capacity")
	require.Equal(t, 10000, r.Read(make([]byte, 10000)))
	assert.Equal(t, 10000, r.Allocated(), "not a pooled size: kept")

	budget := NewMemoryBudget(0, MemoryCounters{})
	r2 := recvBuffer{r: bufRing{budget: budget}}
	r2.SetCap(64 << 10)
	require.Equal(t, 3000, r2.Write(bufPattern(0, 3000)))
	assert.Equal(t, int64(4<<10), budget.Used())
	got := make([]byte, 3000)
	require.Equal(t, 3000, r2.Read(got))
	assert.Equal(t, bufPattern(0, 3000), got)
	assert.Equal(t, int64(0), budget.Used(), "pooled storage is not charged")
}

// A request-response exchange through pooled rings allocates nothing.
func TestBufRingPooledNoAlloc(t *testing.T) {
	var b sendBuffer
	b.SetCap(64 << 10)
	msg := bufPattern(0, 512)
	allocs := testing.AllocsPerRun(1000, func() {
		b.Write(msg)
		b.Ack(len(msg))
	})
	assert.Zero(t, allocs)
}
