package tcp

import "sync"

const (
	// bufMinAlloc is the first storage allocation of a ring; storage then
	// doubles on demand up to the capacity, so a connection that only ever
	// exchanges a few small messages never holds its full buffer size.
	bufMinAlloc = 4 << 10
	// bufMaxCap bounds SetCap: the largest window RFC 7323 §2.3 allows.
	bufMaxCap = 1 << 30
	// bufMirror is how many bytes from the start of a send ring's storage
	// are mirrored past its end, so that Peek returns up to one 64 KiB
	// super-segment contiguously even across the wrap.
	bufMirror = 64 << 10
)

// bufRing is a bounded FIFO byte ring with lazily grown storage. With mirror
// on and S >= 64 KiB, storage is S+M bytes where the M = bufMirror bytes after S
// repeat storage[0:M] (kept in sync by write), which makes any M-byte window
// of the ring contiguous in memory.
type bufRing struct {
	mem      []byte
	head     int // index of the first byte
	n        int // bytes stored
	capacity int // logical capacity (the buffer size)
	mirror   bool
	// forced rings (receive) always grow, charging the budget even beyond
	// its limit: what they store was inside an advertised window.
	forced bool
	budget *MemoryBudget // storage is charged here; nil: none
}

// Len returns the bytes stored.
func (r *bufRing) Len() int { return r.n }

// Cap returns the capacity.
func (r *bufRing) Cap() int { return r.capacity }

// Free returns Cap() - Len().
func (r *bufRing) Free() int { return r.capacity - r.n }

// Allocated returns the bytes of storage currently held.
func (r *bufRing) Allocated() int { return len(r.mem) }

// SetCap sets the capacity, clamped to [Len(), 1 GiB]: growing keeps the
// contents (storage grows lazily on later writes); shrinking never drops
// stored bytes, and storage larger than the new capacity is released once
// the ring is empty (now, or when the bytes it holds are consumed).
func (r *bufRing) SetCap(n int) {
	if n > bufMaxCap {
		n = bufMaxCap
	}
	if n < r.n {
		n = r.n
	}
	r.capacity = n
	if r.n == 0 && r.sz() > n {
		r.Release()
	}
}

// Release frees the storage if the ring is empty (an idle connection then
// costs nothing; the next write allocates again). It reports whether it did.
func (r *bufRing) Release() bool {
	if r.n != 0 {
		return false
	}
	r.budget.uncharge(len(r.mem))
	putStorage(r.mem)
	r.mem, r.head = nil, 0
	return true
}

// drop frees the storage even if bytes are stored (the connection is gone).
func (r *bufRing) drop() {
	r.n = 0
	r.Release()
}

// growRoom returns how many more bytes the ring can take now: its free
// capacity, bounded by the storage it holds plus what the budget still has.
func (r *bufRing) growRoom() int {
	free := r.capacity - r.n
	if r.budget == nil || r.budget.limit == 0 {
		return free
	}
	return min(free, r.sz()-r.n+r.budget.room())
}

// grow makes room for need bytes of content, relinearizing into new storage.
// It fails, changing nothing, when the budget cannot pay for the new storage
// (never for a forced ring).
func (r *bufRing) grow(need int) bool {
	s := r.sz()
	if s < bufMinAlloc {
		s = bufMinAlloc
	}
	for s < need {
		s *= 2
	}
	if s > r.capacity {
		s = r.capacity
	}
	if s < need {
		s = need
	}
	m := r.mirrorFor(s)
	if delta := s + m - len(r.mem); r.forced {
		r.budget.force(delta)
	} else if !r.budget.tryCharge(delta) {
		// Not the doubling: what still fits, in 4 KiB steps, up to need.
		s = (r.budget.room() + len(r.mem)) / bufMinAlloc * bufMinAlloc
		if s >= 2*bufMirror {
			s -= bufMirror // the mirror of a large ring
		} else if r.mirror {
			s = min(s, bufMirror-bufMinAlloc) // small enough to need none
		}
		s = min(s, (need+bufMinAlloc-1)/bufMinAlloc*bufMinAlloc, r.capacity)
		m = r.mirrorFor(s)
		switch {
		case s > r.sz() && r.budget.tryCharge(s+m-len(r.mem)):
		case len(r.mem) == 0:
			// Every connection may hold its first allocation whatever
			// the budget (like Linux's tcp_wmem[0] under tcp_mem
			// pressure): a writer must be able to send something, or
			// it would wait for others' memory while its connection,
			// with nothing outstanding, never times out.
			s = min(bufMinAlloc, r.capacity)
			m = r.mirrorFor(s)
			r.budget.force(s + m)
		default:
			return false
		}
	}
	r.relocate(s, m)
	return true
}

// relocate moves the contents into new storage of ring size s with a mirror
// of m bytes (already charged or credited by the caller), starting at index 0.
// Storage of a pooled size comes from the pool. The storage it grows out of
// is left to the collector, not pooled: a ring grows while it is busy, and
// pooling what no idle ring is about to take back kept that memory alive
// for two more GC cycles, outside --mem-budget's account (with 100,000
// connections growing at once, the server fell behind its TUN and the
// clients' keepalives reset connections in TestZeroWindowMemoryBudget).
func (r *bufRing) relocate(s, m int) {
	mem := getStorage(s + m)
	if mem == nil {
		mem = make([]byte, s+m)
	}
	r.readAt(mem[:r.n], 0)
	copy(mem[s:], mem[:r.n]) // mirror of the prefix [0, min(n, M))
	r.mem, r.head = mem[:s+m], 0
}

// Ring storage of 4, 8, 16 and 32 KiB (the sizes a small ring doubles
// through; none has a mirror) lives in shared pools while its ring is empty:
// an idle connection holds no buffer memory, and a request-response
// connection, whose rings empty at every exchange, takes its storage back
// from the pool without allocating. Storage of other sizes (capped at an
// odd capacity, or large and mirrored) stays with its ring, as before.
var (
	storagePool4K  = sync.Pool{New: func() any { return new([4 << 10]byte) }}
	storagePool8K  = sync.Pool{New: func() any { return new([8 << 10]byte) }}
	storagePool16K = sync.Pool{New: func() any { return new([16 << 10]byte) }}
	storagePool32K = sync.Pool{New: func() any { return new([32 << 10]byte) }}
)

// pooledSize reports whether storage of n bytes lives in a pool.
func pooledSize(n int) bool {
	return n == 4<<10 || n == 8<<10 || n == 16<<10 || n == 32<<10
}

// getStorage returns pooled storage of n bytes, or nil if n is not a pooled
// size. Its contents are arbitrary.
func getStorage(n int) []byte {
	switch n {
	case 4 << 10:
		return storagePool4K.Get().(*[4 << 10]byte)[:]
	case 8 << 10:
		return storagePool8K.Get().(*[8 << 10]byte)[:]
	case 16 << 10:
		return storagePool16K.Get().(*[16 << 10]byte)[:]
	case 32 << 10:
		return storagePool32K.Get().(*[32 << 10]byte)[:]
	}
	return nil
}

// putStorage gives storage of a pooled size back to its pool; other storage
// is left to the collector. The caller must hold no slice of it.
func putStorage(mem []byte) {
	switch len(mem) {
	case 4 << 10:
		storagePool4K.Put((*[4 << 10]byte)(mem))
	case 8 << 10:
		storagePool8K.Put((*[8 << 10]byte)(mem))
	case 16 << 10:
		storagePool16K.Put((*[16 << 10]byte)(mem))
	case 32 << 10:
		storagePool32K.Put((*[32 << 10]byte)(mem))
	}
}

// compact moves the contents into storage of the capacity's size once the
// storage is at least twice that (a capacity lowered under memory pressure,
// see autotune.go): the memory goes back without waiting for the ring to
// empty, which a busy one seldom does.
func (r *bufRing) compact() {
	s := max(r.capacity, bufMinAlloc)
	if r.sz() < 2*s || r.n > s {
		return
	}
	m := r.mirrorFor(s)
	r.budget.uncharge(len(r.mem) - (s + m))
	r.relocate(s, m)
}

// sz returns S, the ring size within mem (len(mem) = S + M; the ring keeps
// no field for it: an idle connection's rings are part of what it costs).
func (r *bufRing) sz() int {
	l := len(r.mem)
	switch {
	case !r.mirror:
		return l
	case l < 2*bufMirror:
		// S < 64 KiB has no mirror (S >= 64 KiB makes l >= 128 KiB).
		return l
	}
	return l - bufMirror
}

// mirrorFor returns the mirror length of storage of size s.
func (r *bufRing) mirrorFor(s int) int {
	// Small rings have none: a wrapped payload of a few KiB is gathered
	// (Conn.emitData), and a connection with little to send, the common
	// case among many, holds no second copy.
	if !r.mirror || s < bufMirror {
		return 0
	}
	return bufMirror
}

// put copies b to storage index idx (no wrap within b) and mirrors the part
// below M.
func (r *bufRing) put(idx int, b []byte) {
	copy(r.mem[idx:r.sz()], b)
	if idx < len(r.mem)-r.sz() {
		copy(r.mem[r.sz()+idx:], b)
	}
}

// write appends as much of p as fits and returns the count.
func (r *bufRing) write(p []byte) int {
	k := len(p)
	if free := r.capacity - r.n; k > free {
		k = free
	}
	if k <= 0 {
		return 0
	}
	if r.n+k > r.sz() {
		r.grow(r.n + k)
		if room := r.sz() - r.n; k > room {
			// The budget is spent: fill the storage there is.
			r.budget.countSendLimited()
			if k = room; k <= 0 {
				return 0
			}
		}
	}
	tail := r.head + r.n
	if tail >= r.sz() {
		tail -= r.sz()
	}
	first := r.sz() - tail
	if first > k {
		first = k
	}
	r.put(tail, p[:first])
	if first < k {
		r.put(0, p[first:k])
	}
	r.n += k
	return k
}

// readAt copies bytes starting off bytes after the head into dst without
// consuming them, returning the count.
func (r *bufRing) readAt(dst []byte, off int) int {
	if off < 0 || off >= r.n {
		return 0
	}
	k := len(dst)
	if avail := r.n - off; k > avail {
		k = avail
	}
	pos := r.head + off
	if pos >= r.sz() {
		pos -= r.sz()
	}
	c := copy(dst[:k], r.mem[pos:r.sz()])
	if c < k {
		copy(dst[c:k], r.mem[:k-c])
	}
	return k
}

// peek returns up to n stored bytes starting off bytes after the head as one
// slice of the storage, shorter than asked only where the ring wraps beyond
// the mirrored prefix (never for n <= 64 KiB with mirror on and 64 KiB of
// storage or more).
func (r *bufRing) peek(off, n int) []byte {
	if off < 0 || n <= 0 || off >= r.n {
		return nil
	}
	if avail := r.n - off; n > avail {
		n = avail
	}
	pos := r.head + off
	if pos >= r.sz() {
		pos -= r.sz()
	}
	if limit := len(r.mem) - pos; n > limit {
		n = limit
	}
	return r.mem[pos : pos+n : pos+n]
}

// discard drops n bytes from the head (n is clamped to Len()).
func (r *bufRing) discard(n int) {
	if n <= 0 {
		return
	}
	if n >= r.n {
		r.head, r.n = 0, 0
		if r.sz() > r.capacity || pooledSize(len(r.mem)) {
			// Storage sized for a capacity that SetCap has since
			// lowered, or small storage the pool keeps better than an
			// idle ring: give it back now that nothing it holds is
			// needed.
			r.Release()
		}
		return
	}
	r.head += n
	if r.head >= r.sz() {
		r.head -= r.sz()
	}
	r.n -= n
	if r.sz() > 2*r.capacity {
		r.compact()
	}
}

// sendBuffer holds the bytes from SND.UNA onwards: sent-but-unacknowledged
// data followed by data not yet sent, up to the send buffer size. The
// retransmission queue is simply offsets into it, so a retransmission never
// copies application data twice. Storage is allocated on the first Write.
type sendBuffer struct{ r bufRing }

// Write copies as much of p as fits and returns the count (0 when full).
func (b *sendBuffer) Write(p []byte) int {
	b.r.mirror = true
	return b.r.write(p)
}

// Ack drops n acknowledged bytes from the front (clamped to Len()).
func (b *sendBuffer) Ack(n int) { b.r.discard(n) }

// Peek returns up to n bytes starting offset bytes after SND.UNA as a slice
// aliasing the buffer, valid until the next Write, Ack or SetCap. It is
// shorter than n only when fewer bytes are stored or at the ring's wrap point:
// beyond 64 KiB, or anywhere in a ring of less than 64 KiB of storage (which
// has no mirror); a 64 KiB super-segment of a larger ring is contiguous.
func (b *sendBuffer) Peek(offset, n int) []byte { return b.r.peek(offset, n) }

// ReadAt copies bytes starting offset bytes after SND.UNA into dst without
// consuming them, returning the count.
func (b *sendBuffer) ReadAt(dst []byte, offset int) int { return b.r.readAt(dst, offset) }

// Len returns the bytes held (unacknowledged + unsent).
func (b *sendBuffer) Len() int { return b.r.Len() }

// Free returns the room left for Write.
func (b *sendBuffer) Free() int { return b.r.Free() }

// Cap returns the send buffer size.
func (b *sendBuffer) Cap() int { return b.r.Cap() }

// SetCap sets the send buffer size (clamped to [Len(), 1 GiB]).
func (b *sendBuffer) SetCap(n int) { b.r.SetCap(n) }

// Allocated returns the bytes of storage currently held.
func (b *sendBuffer) Allocated() int { return b.r.Allocated() }

// Release frees the storage if the buffer is empty and reports whether it
// did; an idle connection can call it to hold no buffer memory.
func (b *sendBuffer) Release() bool { return b.r.Release() }

// recvBuffer holds in-order received bytes the application has not read, up
// to the receive buffer size (the receive window is its free space). Storage
// is allocated on the first Write.
type recvBuffer struct{ r bufRing }

// Write copies as much of p as fits and returns the count.
func (b *recvBuffer) Write(p []byte) int { return b.r.write(p) }

// Read moves up to len(p) bytes into p and returns the count.
func (b *recvBuffer) Read(p []byte) int {
	n := b.r.readAt(p, 0)
	b.r.discard(n)
	return n
}

// Peek returns up to n unread bytes starting offset bytes in as one slice
// (shorter at the ring's wrap), without consuming them.
func (b *recvBuffer) Peek(offset, n int) []byte { return b.r.peek(offset, n) }

// Discard drops up to n unread bytes.
func (b *recvBuffer) Discard(n int) { b.r.discard(n) }

// Len returns the unread bytes.
func (b *recvBuffer) Len() int { return b.r.Len() }

// Free returns the room left (the basis of the advertised window).
func (b *recvBuffer) Free() int { return b.r.Free() }

// Cap returns the receive buffer size.
func (b *recvBuffer) Cap() int { return b.r.Cap() }

// SetCap sets the receive buffer size (clamped to [Len(), 1 GiB]).
func (b *recvBuffer) SetCap(n int) { b.r.SetCap(n) }

// Allocated returns the bytes of storage currently held.
func (b *recvBuffer) Allocated() int { return b.r.Allocated() }

// Release frees the storage if the buffer is empty and reports whether it did.
func (b *recvBuffer) Release() bool { return b.r.Release() }
