package tun

import "sync"

// DefaultPipeQueue is how many packets a pipe direction holds before Write
// blocks.
const DefaultPipeQueue = 256

// pipeBatchSize is what a pipe end reports as BatchSize: enough buffers for
// a 64 KiB super-packet cut at a 536-byte MSS.
const pipeBatchSize = 128

// PipeEnd is one end of an in-memory pipe made by NewPipe: what one end
// writes, the other reads, in order, with GSO metadata intact.
type PipeEnd struct {
	p   *pipe
	in  *pipeQueue // packets written by the peer, read here
	out *pipeQueue // packets written here, read by the peer
}

type pipe struct {
	mu     sync.Mutex
	closed bool
	mtu    int
}

// pipeQueue is a bounded ring of packets. Packet buffers return to a free
// list when read, so a warmed-up pipe copies without allocating.
type pipeQueue struct {
	slots    []pipeSlot
	head, n  int
	free     [][]byte
	readable sync.Cond // signalled when n grows or the pipe closes
	writable sync.Cond // signalled when n shrinks or the pipe closes
}

type pipeSlot struct {
	buf []byte
	gso GSO
}

// NewPipe returns the two ends of an in-memory link with the given MTU and
// DefaultPipeQueue packets of buffering in each direction.
func NewPipe(mtu int) (*PipeEnd, *PipeEnd) {
	return NewPipeQueue(mtu, DefaultPipeQueue)
}

// NewPipeQueue is NewPipe with queue packets of buffering per direction.
// A writer finding the queue full blocks until the reader makes room:
// backpressure, never a drop.
func NewPipeQueue(mtu, queue int) (*PipeEnd, *PipeEnd) {
	if queue < 1 {
		queue = 1
	}
	p := &pipe{mtu: mtu}
	ab, ba := newPipeQueue(p, queue), newPipeQueue(p, queue)
	return &PipeEnd{p: p, in: ba, out: ab}, &PipeEnd{p: p, in: ab, out: ba}
}

func newPipeQueue(p *pipe, n int) *pipeQueue {
	q := &pipeQueue{slots: make([]pipeSlot, n)}
	q.readable.L = &p.mu
	q.writable.L = &p.mu
	return q
}

// Read implements Link: super-packets from the peer are segmented and
// partial checksums completed, as a NIC would.
func (e *PipeEnd) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return e.read(bufs, sizes, nil, offset)
}

// ReadGSO implements Link: packets come out as the peer wrote them.
func (e *PipeEnd) ReadGSO(bufs [][]byte, sizes []int, gso []GSO, offset int) (int, error) {
	return e.read(bufs, sizes, gso, offset)
}

func (e *PipeEnd) read(bufs [][]byte, sizes []int, gso []GSO, offset int) (int, error) {
	p, q := e.p, e.in
	p.mu.Lock()
	defer p.mu.Unlock()
	for q.n == 0 && !p.closed {
		q.readable.Wait()
	}
	if p.closed {
		return 0, ErrClosed
	}
	count := 0
	var err error
	for q.n > 0 && count < len(bufs) {
		s := &q.slots[q.head]
		k := 0
		switch {
		case gso != nil:
			if len(bufs[count])-offset < len(s.buf) {
				err = ErrShortBuffer
				break
			}
			sizes[count] = copy(bufs[count][offset:], s.buf)
			gso[count] = s.gso
			k = 1
		case s.gso.IsGSO() || s.gso.NeedsCsum:
			k, err = Segment(s.buf, s.gso, bufs[count:], sizes[count:], offset)
		default:
			if len(bufs[count])-offset < len(s.buf) {
				err = ErrShortBuffer
				break
			}
			sizes[count] = copy(bufs[count][offset:], s.buf)
			k = 1
		}
		if err != nil {
			if count > 0 {
				// Leave the packet for the next Read, which has all bufs.
				err = nil
				break
			}
			// Even a whole batch cannot hold it: drop it, or it would
			// wedge the pipe.
		}
		count += k
		q.free = append(q.free, s.buf[:0])
		s.buf = nil
		q.head = (q.head + 1) % len(q.slots)
		q.n--
		if err != nil {
			break
		}
	}
	q.writable.Signal()
	return count, err
}

// Write implements Link.
func (e *PipeEnd) Write(bufs [][]byte, offset int) (int, error) {
	return e.WriteGSO(bufs, nil, offset)
}

// WriteGSO implements Link. It blocks while the peer's queue is full.
func (e *PipeEnd) WriteGSO(bufs [][]byte, gso []GSO, offset int) (int, error) {
	p, q := e.p, e.out
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, b := range bufs {
		pkt := b[offset:]
		var g GSO
		if gso != nil {
			g = gso[i]
		}
		if _, err := g.check(pkt); err != nil {
			return i, err
		}
		if !g.IsGSO() && len(pkt) > p.mtu {
			return i, ErrPacketTooBig
		}
		for q.n == len(q.slots) && !p.closed {
			q.writable.Wait()
		}
		if p.closed {
			return i, ErrClosed
		}
		s := &q.slots[(q.head+q.n)%len(q.slots)]
		if f := len(q.free); f > 0 {
			s.buf, q.free = q.free[f-1], q.free[:f-1]
		}
		if cap(s.buf) < len(pkt) {
			s.buf = make([]byte, len(pkt), max(len(pkt), p.mtu))
		}
		s.buf = s.buf[:len(pkt)]
		copy(s.buf, pkt)
		s.gso = g
		q.n++
		q.readable.Signal()
	}
	return len(bufs), nil
}

// GSOMaxSize implements Link: a pipe carries super-packets whole.
func (e *PipeEnd) GSOMaxSize() int { return MaxPacketSize }

// MTU implements Link.
func (e *PipeEnd) MTU() int { return e.p.mtu }

// BatchSize implements Link.
func (e *PipeEnd) BatchSize() int { return pipeBatchSize }

// Close closes the whole pipe: calls blocked on either end return ErrClosed.
func (e *PipeEnd) Close() error {
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, q := range []*pipeQueue{e.in, e.out} {
		q.readable.Broadcast()
		q.writable.Broadcast()
	}
	return nil
}

// Queued returns how many packets wait to be read at this end.
func (e *PipeEnd) Queued() int {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	return e.in.n
}
