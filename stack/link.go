package stack

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// headroom is the offset of every packet in its buffer: room for the link's
// virtio-net header, so packets go out without a copy.
const headroom = tun.Headroom

// smallBufSize holds any packet of a 1500-byte (or 2 KiB) MTU link.
const smallBufSize = 2048

// Protocol numbers.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoICMPv6 = 58
)

// defaultTTL is the TTL / hop limit of everything we send (Linux ip_default_ttl).
const defaultTTL = 64

// pktBuf is one output packet in a pooled buffer.
type pktBuf struct {
	b     []byte // the whole buffer; the packet is b[headroom:headroom+n]
	n     int
	gso   tun.GSO
	big   bool
	extra bool // beyond the pool's bound (bufPool.overshoot): put lets it go
}

// bufPool is a bounded free list of output packet buffers in two sizes. It
// allocates up to its limits on demand and then recycles; at the limit, get
// fails and the caller drops (and counts) the packet.
type bufPool struct {
	mu               sync.Mutex
	small, big       []*pktBuf
	nSmall, nBig     int
	maxSmall, maxBig int
	// extraSmall and extraBig count the buffers out beyond the bounds
	// (overshoot), each at most the bound again.
	extraSmall, extraBig int
}

func (p *bufPool) init(maxSmall, maxBig int) { p.maxSmall, p.maxBig = maxSmall, maxBig }

// get returns a buffer for a packet of n bytes, nil when the pool is spent.
func (p *bufPool) get(n int) *pktBuf {
	pb, _ := p.take(n)
	return pb
}

// take is get that also reports whether the pool runs low: at most an
// eighth of the buffers of that size are left (none, when it returns nil).
func (p *bufPool) take(n int) (*pktBuf, bool) {
	big := n > smallBufSize
	p.mu.Lock()
	defer p.mu.Unlock()
	if big {
		low := len(p.big)+p.maxBig-p.nBig <= 1+p.maxBig/8
		if k := len(p.big); k > 0 {
			b := p.big[k-1]
			p.big[k-1] = nil
			p.big = p.big[:k-1]
			return b, low
		}
		if p.nBig >= p.maxBig {
			return nil, true
		}
		p.nBig++
		return &pktBuf{b: make([]byte, headroom+tun.MaxPacketSize), big: true}, low
	}
	low := len(p.small)+p.maxSmall-p.nSmall <= 1+p.maxSmall/8
	if k := len(p.small); k > 0 {
		b := p.small[k-1]
		p.small[k-1] = nil
		p.small = p.small[:k-1]
		return b, low
	}
	if p.nSmall >= p.maxSmall {
		return nil, true
	}
	p.nSmall++
	return &pktBuf{b: make([]byte, headroom+smallBufSize)}, low
}

// overshoot returns a buffer for n bytes beyond the pool's bound, nil when
// as many are out already as the bound itself. It is for a sender under a
// shard lock that found the pool spent (txBufLocked); the buffer goes to
// the collector when written, not into the pool.
func (p *bufPool) overshoot(n int) *pktBuf {
	big := n > smallBufSize
	p.mu.Lock()
	defer p.mu.Unlock()
	if big {
		if p.extraBig >= p.maxBig {
			return nil
		}
		p.extraBig++
		return &pktBuf{b: make([]byte, headroom+tun.MaxPacketSize), big: true, extra: true}
	}
	if p.extraSmall >= p.maxSmall {
		return nil
	}
	p.extraSmall++
	return &pktBuf{b: make([]byte, headroom+smallBufSize), extra: true}
}

// put returns buffers to the pool.
func (p *bufPool) put(bs []*pktBuf) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range bs {
		if b.extra {
			if b.big {
				p.extraBig--
			} else {
				p.extraSmall--
			}
			continue
		}
		b.n = 0
		b.gso = tun.GSO{}
		if b.big {
			p.big = append(p.big, b)
		} else {
			p.small = append(p.small, b)
		}
	}
}

// link is a tun.Link with its reader and writer goroutines and its output
// queue. Packets are queued by whoever runs a Conn (reader, timer,
// application) and written in batches by the writer, in queue order, so the
// segments of one connection leave in the order they were emitted.
type link struct {
	s      *Stack
	l      tun.Link
	idx    int
	mtu    int
	gsoMax int // 0: no super-packets on this link
	// inlineOK: the link's writes never block (a TUN), so its reader may
	// write its own ACKs (flushInline). On a link whose writes can block
	// (a pipe's backpressure) two readers writing to each other could
	// deadlock: there the writer goroutine does all the writing.
	inlineOK bool

	txMu    sync.Mutex
	txq     []*pktBuf
	flushMu sync.Mutex // one flush at a time: packets leave in queue order
	relief  txScratch  // for flushes of a pool running low (relieve); flushMu held
	app     txScratch  // for flushes by an application's goroutine (sendNow); flushMu held
	pending atomic.Bool
	wakeCh  chan struct{}
	stopCh  chan struct{}
	stopped sync.Once

	ipID atomic.Uint32

	// queue is this link's queue number on its interface, q what the
	// interface's queues share (nil for a link of one queue); queues.go.
	queue int
	q     *linkQueues
	// Per-queue traffic (QueueStats).
	rxPackets, rxBytes, rxBatches atomic.Uint64
	txPackets, txBytes, txBatches atomic.Uint64
}

func newLink(s *Stack, l tun.Link, idx int) *link {
	lk := &link{s: s, l: l, idx: idx, mtu: l.MTU(), gsoMax: l.GSOMaxSize(),
		wakeCh: make(chan struct{}, 1), stopCh: make(chan struct{})}
	lk.inlineOK = writesNeverBlock(l)
	if lk.gsoMax > tun.MaxPacketSize {
		lk.gsoMax = tun.MaxPacketSize
	}
	return lk
}

// writesNeverBlock reports whether l, under any wrappers with an Inner
// method (pcap, impairment), is a TUN device, whose writes never block: the
// kernel takes or drops each packet at once. Another link says so with a
// method WritesNeverBlock() bool.
func writesNeverBlock(l tun.Link) bool {
	for {
		switch d := l.(type) {
		case *tun.TUN:
			return true
		case interface{ WritesNeverBlock() bool }:
			return d.WritesNeverBlock()
		case interface{ Inner() tun.Link }:
			l = d.Inner()
		default:
			return false
		}
	}
}

// enqueue adds a packet to the output queue; the writer is woken by kick.
func (l *link) enqueue(pb *pktBuf) {
	l.txMu.Lock()
	l.txq = append(l.txq, pb)
	l.txMu.Unlock()
	l.pending.Store(true)
}

// kickLinks wakes the writer of every link with queued packets. Callers
// invoke it once after a batch of work, so one write carries everything that
// batch produced (ACK coalescing across connections).
func (s *Stack) kickLinks() {
	if s.txLow.Load() {
		s.relieve()
	}
	for _, l := range *s.links.Load() {
		if l.pending.Load() {
			wake(l.wakeCh)
		}
	}
}

// stop makes the writer drain its queue and exit, then closes the link,
// which ends the reader.
func (l *link) stop() {
	l.stopped.Do(func() { close(l.stopCh) })
}

// writeLoop writes queued packets in batches until stop.
func (l *link) writeLoop() {
	defer l.s.wg.Done()
	var q []*pktBuf
	var bufs [][]byte
	var gso []tun.GSO
	for {
		select {
		case <-l.wakeCh:
			l.flushMu.Lock()
			q, bufs, gso = l.flush(q, bufs, gso)
			l.flushMu.Unlock()
		case <-l.stopCh:
			l.flushMu.Lock()
			l.flush(q, bufs, gso)
			l.flushMu.Unlock()
			l.closeLink()
			return
		}
	}
}

// txScratch is a flusher's working space: the spare queue and the slices
// handed to the link.
type txScratch struct {
	q    []*pktBuf
	bufs [][]byte
	gso  []tun.GSO
}

// flush writes everything queued, swapping the queue with the spare slice q.
// l.flushMu must be held.
func (l *link) flush(q []*pktBuf, bufs [][]byte, gso []tun.GSO) ([]*pktBuf, [][]byte, []tun.GSO) {
	for {
		var n int
		q, bufs, gso, n = l.flushOnce(q, bufs, gso)
		if n == 0 {
			return q, bufs, gso
		}
	}
}

// inlineMaxPackets bounds the queue a reader writes itself (flushInline).
const inlineMaxPackets = 4

// flushInline writes the queue from the calling goroutine, the link reader
// at the end of a batch, when it holds only a few small packets (the batch's
// ACKs) and no other flush is running; otherwise it wakes the writer. A
// reader that writes its own ACKs saves a goroutine wake-up per batch, and
// its next read finds what the ACK let the peer send, which on a TUN to the
// local kernel runs inside that very write.
func (l *link) flushInline(sc *txScratch) {
	if !l.pending.Load() {
		return
	}
	l.txMu.Lock()
	small := len(l.txq) <= inlineMaxPackets
	for _, pb := range l.txq {
		small = small && !pb.big
	}
	l.txMu.Unlock()
	if !small || !l.flushMu.TryLock() {
		wake(l.wakeCh)
		return
	}
	sc.q, sc.bufs, sc.gso, _ = l.flushOnce(sc.q, sc.bufs, sc.gso)
	l.flushMu.Unlock()
	if l.pending.Load() {
		wake(l.wakeCh) // more came meanwhile
	}
}

// sendNow transmits what an application's call (Write, Close) queued on l
// from the caller's goroutine, run to completion, when l's writes never
// block: a request/response exchange then costs no hand-off to the writer
// goroutine. flushInline decides: a few small packets and no flush running
// are written here; a bigger queue (bulk, whose batches the writer keeps)
// or a flush in progress (the writer, whose loop takes the packets along)
// wakes the writer instead. Other links' queues go to their writers.
func (s *Stack) sendNow(l *link) {
	if l.inlineOK {
		l.flushInline(&l.app)
	}
	s.kickLinks()
}

// flushOnce writes what is queued now and returns how many packets that was.
// l.flushMu must be held.
func (l *link) flushOnce(q []*pktBuf, bufs [][]byte, gso []tun.GSO) ([]*pktBuf, [][]byte, []tun.GSO, int) {
	s := l.s
	l.txMu.Lock()
	q, l.txq = l.txq, q[:0]
	l.pending.Store(false)
	l.txMu.Unlock()
	if len(q) == 0 {
		return q, bufs, gso, 0
	}
	bufs, gso = bufs[:0], gso[:0]
	for _, pb := range q {
		bufs = append(bufs, pb.b[:headroom+pb.n])
		gso = append(gso, pb.gso)
	}
	l.txBatches.Add(1)
	for off := 0; off < len(bufs); {
		n, err := l.l.WriteGSO(bufs[off:], gso[off:], headroom)
		var bytes uint64
		for _, pb := range q[off : off+n] {
			bytes += uint64(pb.n)
		}
		s.stats.TxPackets.Add(uint64(n))
		s.stats.TxBytes.Add(bytes)
		l.txPackets.Add(uint64(n))
		l.txBytes.Add(bytes)
		off += n
		if err != nil {
			s.stats.LinkWriteErrors.Add(1)
			if errors.Is(err, tun.ErrClosed) {
				s.stats.LinkWriteDrops.Add(uint64(len(bufs) - off))
				break
			}
			// Skip the packet the link refused; send the rest.
			s.stats.LinkWriteDrops.Add(1)
			off++
		}
	}
	for i := range bufs {
		bufs[i] = nil
	}
	s.pool.put(q)
	clear(q)
	return q, bufs, gso, len(bufs)
}

// txBuf returns a packet buffer for n bytes, nil if there is none, to a
// sender that holds no shard lock (datagrams, ICMP). When the pool is
// spent, the packets waiting in the queues of links whose writes never
// block hold its buffers: the sender writes them itself (relieve) and takes
// one of the buffers that come back. On a link whose writes can block, it
// could wait forever: there the packet is dropped (and counted).
func (s *Stack) txBuf(n int) *pktBuf {
	if pb := s.pool.get(n); pb != nil {
		return pb
	}
	s.txLow.Store(true)
	s.relieve()
	return s.pool.get(n)
}

// txBufLocked is txBuf for a sender under a shard lock (emitTCP) whose
// packet goes to l. It must not do link I/O there: a link's write can take
// microseconds (on a TUN it runs the peer kernel's receive) and would
// stall every connection of the shard, and the reader with them. When the
// pool runs low it only sets txLow, and whoever next lets go of a shard
// lock (the loops of finishBatch, runDue, Close; input; kickLinks) writes
// the queues out, so the buffers are back before the pool is spent: a
// burst bigger than the pool (a timer pass over 100,000 connections, each
// sending a probe) is paced by the link's writes, one unit of work at a
// time. A unit that alone takes more than the pool has left (one Output of
// a wide congestion window) gets buffers beyond the bound (overshoot, up
// to the bound again, counted in tx_buffer_overshoot) when l's writes
// never block, since the relief that follows frees them; on other links
// the segment is dropped (and counted), and TCP retransmits it.
func (s *Stack) txBufLocked(n int, l *link) *pktBuf {
	pb, low := s.pool.take(n)
	if low {
		s.txLow.Store(true)
	}
	if pb == nil && l.inlineOK {
		if pb = s.pool.overshoot(n); pb != nil {
			s.stats.TxBufferOvershoot.Add(1)
		}
	}
	return pb
}

// relieve writes out the queues of the links whose writes never block, if
// a sender found the pool running low (txLow); the others' writers are
// woken by kickLinks. The caller holds no shard lock.
func (s *Stack) relieve() {
	if !s.txLow.CompareAndSwap(true, false) {
		return
	}
	for _, l := range *s.links.Load() {
		if !l.inlineOK || !l.pending.Load() {
			continue
		}
		l.flushMu.Lock()
		sc := &l.relief
		sc.q, sc.bufs, sc.gso = l.flush(sc.q, sc.bufs, sc.gso)
		l.flushMu.Unlock()
	}
}

// rxBatch collects the endpoints that received segments during one read
// batch; each gets one Output call at the end (ACK coalescing).
type rxBatch struct {
	eps []*endpoint
	seg tcp.Segment // scratch for the segment being parsed
	tx  txScratch   // for the reader's own writes (flushInline)
}

// mark queues ep for Output at the end of the batch. sh.mu must be held.
func (b *rxBatch) mark(ep *endpoint) {
	if !ep.dirty {
		ep.dirty = true
		b.eps = append(b.eps, ep)
	}
}

// finishBatch runs Output for every endpoint of the batch, then writes the
// reading link's queue itself if it is only the batch's ACKs
// (flushInline), and wakes the writers of the others.
func (s *Stack) finishBatch(l *link, b *rxBatch, now tcp.Time) {
	for i, ep := range b.eps {
		sh := ep.sh
		sh.mu.Lock()
		ep.dirty = false
		if !ep.removed {
			ep.tc.Output(now, ep)
			s.afterOp(ep, now)
		}
		sh.mu.Unlock()
		b.eps[i] = nil
		if s.txLow.Load() {
			s.relieve()
		}
	}
	b.eps = b.eps[:0]
	if l != nil && l.inlineOK {
		l.flushInline(&b.tx)
	}
	s.kickLinks()
}

// readLoop reads batches of packets and runs them through the stack.
func (l *link) readLoop() {
	s := l.s
	defer s.wg.Done()
	n := l.l.BatchSize()
	if n < 1 {
		n = 1
	}
	size := headroom + tun.MaxPacketSize
	if l.gsoMax == 0 {
		size = headroom + max(l.mtu, 1280)
	}
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	sizes := make([]int, n)
	gso := make([]tun.GSO, n)
	var batch rxBatch
	errs := 0
	for {
		var k int
		var err error
		if l.gsoMax > 0 {
			k, err = l.l.ReadGSO(bufs, sizes, gso, headroom)
		} else {
			k, err = l.l.Read(bufs, sizes, headroom)
		}
		if err != nil {
			if errors.Is(err, tun.ErrClosed) || s.closed.Load() {
				return
			}
			if r, ok := tun.GSOReasonOf(err); ok {
				// One packet with bad offload metadata, dropped by the
				// link: not a failing link.
				s.stats.LinkBadGSO[r].Add(1)
				if k > 0 {
					s.inputBatch(l, bufs[:k], sizes, gso, s.clock.Now(), &batch)
				}
				continue
			}
			s.stats.LinkReadErrors.Add(1)
			errs++
			if errs > 8 {
				// A link failing persistently must not spin a core.
				time.Sleep(10 * time.Millisecond)
			}
			if k == 0 {
				continue
			}
		} else {
			errs = 0
		}
		s.inputBatch(l, bufs[:k], sizes, gso, s.clock.Now(), &batch)
	}
}

// nextID returns an IPv4 identification value. Our TCP packets carry DF, so
// the value only has to differ between packets that might be fragmented
// (RFC 6864 §4.1); a per-link counter is enough.
func (l *link) nextID() uint16 { return uint16(l.ipID.Add(1)) }

// writeIPHeader writes an IPv4 (20 bytes, DF set when df) or IPv6 (40
// bytes) header for a packet of total bytes carrying proto from src to dst,
// and returns the header length.
func writeIPHeader(p []byte, src, dst netip.Addr, proto uint8, total int, id uint16, df bool) int {
	return writeIPHeaderECN(p, src, dst, proto, total, id, df, tcp.ECNNotECT)
}

// writeIPHeaderECN is writeIPHeader with ecn in the ECN field (the low two
// bits of the IPv4 TOS or IPv6 traffic class, RFC 3168 §5); the DSCP is 0.
func writeIPHeaderECN(p []byte, src, dst netip.Addr, proto uint8, total int, id uint16, df bool, ecn tcp.ECN) int {
	// The addresses are ours and a peer's of the same family, and total
	// fits the buffer, so the builders cannot refuse.
	if src.Is4() {
		f := ip.IPv4Fields{TOS: uint8(ecn & 3), TotalLength: uint16(total), ID: id, TTL: defaultTTL, Protocol: proto, Src: src, Dst: dst}
		if df {
			f.Flags = ip.IPv4FlagDontFragment
		}
		ip.BuildIPv4(p, &f)
		return ip.IPv4MinHeaderLen
	}
	f := ip.IPv6Fields{TrafficClass: uint8(ecn & 3), PayloadLength: uint16(total - ip.IPv6HeaderLen), NextHeader: proto, HopLimit: defaultTTL, Src: src, Dst: dst}
	ip.BuildIPv6(p, &f)
	return ip.IPv6HeaderLen
}

// emitTCP serializes seg from local to remote into a pooled buffer and
// queues it on l. A payload longer than GSOSize goes out as one GSO
// super-packet with a partial checksum for the link (or kernel) to finish;
// on links that offload checksums plain packets do too.
func (s *Stack) emitTCP(l *link, local, remote netip.AddrPort, seg *tcp.Segment) {
	v6 := !local.Addr().Is4()
	iphl := 20
	if v6 {
		iphl = 40
	}
	total := iphl + tcp.SegmentWireLen(seg)
	if total > tun.MaxPacketSize {
		s.stats.TCPOutputTooBig.Add(1)
		return
	}
	pb := s.txBufLocked(total, l)
	if pb == nil {
		s.stats.TCPOutputNoBuffer.Add(1)
		return
	}
	p := pb.b[headroom : headroom+total]
	writeIPHeaderECN(p, local.Addr(), remote.Addr(), protoTCP, total, l.nextID(), true, seg.ECN)
	t := p[iphl:]
	tcp.EncodeSegment(t, local.Port(), remote.Port(), seg)
	var src, dst []byte
	if v6 {
		src, dst = p[8:24], p[24:40]
	} else {
		src, dst = p[12:16], p[16:20]
	}
	switch {
	case seg.GSOSize > 0 && len(seg.Payload) > int(seg.GSOSize):
		tcp.SetPartialChecksum(t, src, dst)
		pb.gso = tun.TCPGSO(v6, iphl, int(seg.GSOSize))
	case l.gsoMax > 0:
		tcp.SetPartialChecksum(t, src, dst)
		pb.gso = tun.TCPGSO(v6, iphl, 0)
	default:
		tcp.SetChecksumFull(t, src, dst)
		pb.gso = tun.GSO{}
	}
	pb.n = total
	l.enqueue(pb)
}
