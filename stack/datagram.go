package stack

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/ip"
)

// DefaultDatagramReceiveBuffer bounds the receive queue of a UDP or ping
// socket, in bytes (Linux net.core.rmem_default). Every queued datagram is
// charged its length plus datagramOverhead, as Linux charges an skb's
// truesize, so a flood of empty datagrams is bounded too.
const DefaultDatagramReceiveBuffer = 212992

// datagramOverhead is what a queued datagram costs beyond its data.
const datagramOverhead = 256

// datagram is one received datagram waiting to be read.
type datagram struct {
	from netip.AddrPort // the sender (port 0 for ping sockets)
	to   netip.Addr     // our address it was sent to
	data []byte
	pool *[]byte // data's buffer, from datagramBufs; nil for a big datagram
	link *link   // the link it came in on
}

// datagramBufSize is the size of the pooled receive buffers: a datagram of
// a 1500-byte (or 2 KiB) MTU link fits; bigger (reassembled) ones get a
// buffer of their own.
const datagramBufSize = 2048

// datagramBufs recycles the buffers of queued datagrams, so that receiving
// does not allocate per datagram. Only what the queues hold at once (their
// byte bound) is live.
var datagramBufs = sync.Pool{New: func() any { b := make([]byte, datagramBufSize); return &b }}

// release returns dg's buffer to the pool.
func (dg *datagram) release() {
	if dg.pool != nil {
		datagramBufs.Put(dg.pool)
	}
}

// datagramSocket is what UDP and ping sockets share: the bound address, the
// peer of a connected socket, the bounded receive queue, the pending error
// and the deadlines. Its queue is guarded by mu; the packet path takes mu
// only to append.
type datagramSocket struct {
	s      *Stack
	key    listenKey      // the binding in its table
	remote netip.AddrPort // the peer of a connected socket; zero otherwise

	mu    sync.Mutex
	q     []datagram // FIFO from head
	head  int
	bytes int // charged to limit
	limit int
	// err is an ICMP error for a connected socket (Linux sk_err): the next
	// read or write returns it, once.
	err error
	// lastFrom and lastLink are the sender of the datagram read last and
	// the link it came in on: a reply to it that no route covers leaves by
	// that link, as the stack's TCP replies do (replyLink).
	lastFrom netip.AddrPort
	lastLink *link

	wake   chan struct{} // capacity 1: something was queued, or a deadline changed
	done   chan struct{} // closed by Close
	closed atomic.Bool
	rdl    deadline
	wdl    deadline
}

func (d *datagramSocket) init(s *Stack, key listenKey, remote netip.AddrPort) {
	d.s, d.key, d.remote = s, key, remote
	d.limit = s.opts.DatagramReceiveBuffer
	if d.limit <= 0 {
		d.limit = DefaultDatagramReceiveBuffer
	}
	d.wake = make(chan struct{}, 1)
	d.done = make(chan struct{})
	d.rdl.init(s.clock)
	d.wdl.init(s.clock)
}

// connected reports whether the socket has a fixed peer.
func (d *datagramSocket) connected() bool { return d.remote.Addr().IsValid() }

// push queues a copy of data from from to to; false when the queue is full
// (the caller counts the drop).
func (d *datagramSocket) push(l *link, from netip.AddrPort, to netip.Addr, data []byte) bool {
	cost := len(data) + datagramOverhead
	d.mu.Lock()
	if d.bytes+cost > d.limit || d.closed.Load() {
		d.mu.Unlock()
		return false
	}
	d.bytes += cost
	dg := datagram{from: from, to: to, link: l}
	if len(data) <= datagramBufSize {
		dg.pool = datagramBufs.Get().(*[]byte)
		dg.data = (*dg.pool)[:copy(*dg.pool, data)]
	} else {
		dg.data = append([]byte(nil), data...)
	}
	d.q = append(d.q, dg)
	d.mu.Unlock()
	wake(d.wake)
	return true
}

// setErr records an ICMP error for the next read or write and wakes a reader.
func (d *datagramSocket) setErr(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
	wake(d.wake)
}

// takeErr returns and clears the pending error.
func (d *datagramSocket) takeErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.err
	d.err = nil
	return err
}

// pop waits for a datagram and copies it into b. It returns the bytes
// copied, the datagram's full length, its addresses, and an error: the
// pending ICMP error first (as Linux's __skb_recv_udp checks sk_err before
// the queue), net.ErrClosed after Close, os.ErrDeadlineExceeded.
func (d *datagramSocket) pop(b []byte) (n, full int, from netip.AddrPort, to netip.Addr, err error) {
	for {
		d.mu.Lock()
		if d.closed.Load() {
			d.mu.Unlock()
			return 0, 0, from, to, net.ErrClosed
		}
		if d.err != nil {
			err, d.err = d.err, nil
			d.mu.Unlock()
			return 0, 0, from, to, err
		}
		if d.head < len(d.q) {
			dg := d.q[d.head]
			d.q[d.head] = datagram{}
			d.head++
			if d.head == len(d.q) {
				d.q, d.head = d.q[:0], 0
			} else if d.head > 64 && d.head*2 > len(d.q) {
				k := copy(d.q, d.q[d.head:])
				clear(d.q[k:])
				d.q, d.head = d.q[:k], 0
			}
			d.bytes -= len(dg.data) + datagramOverhead
			d.lastFrom, d.lastLink = dg.from, dg.link
			d.mu.Unlock()
			n = copy(b, dg.data)
			dg.release()
			return n, len(dg.data), dg.from, dg.to, nil
		}
		d.mu.Unlock()
		if d.rdl.expired() {
			return 0, 0, from, to, os.ErrDeadlineExceeded
		}
		select {
		case <-d.wake:
		case <-d.rdl.wait():
		case <-d.done:
		}
	}
}

// close marks the socket closed and wakes its readers; false if it already was.
func (d *datagramSocket) close() bool {
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return false
	}
	d.closed.Store(true)
	for i := d.head; i < len(d.q); i++ {
		d.q[i].release()
	}
	d.q, d.head, d.bytes = nil, 0, 0
	d.mu.Unlock()
	close(d.done)
	d.rdl.stop()
	d.wdl.stop()
	return true
}

// replyHint returns the link of the datagram last read if it came from to.
func (d *datagramSocket) replyHint(to netip.AddrPort) *link {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastFrom == to {
		return d.lastLink
	}
	return nil
}

// writeCheck is what every send checks first: closed, write deadline,
// pending error.
func (d *datagramSocket) writeCheck() error {
	if d.closed.Load() {
		return net.ErrClosed
	}
	if d.wdl.expired() {
		return os.ErrDeadlineExceeded
	}
	return d.takeErr()
}

func (d *datagramSocket) setDeadline(t time.Time) {
	d.setReadDeadline(t)
	d.wdl.set(t)
}

func (d *datagramSocket) setReadDeadline(t time.Time) {
	d.rdl.set(t)
	wake(d.wake) // a reader waiting on the old channel looks again
}

// setReadBuffer sets the receive queue's bound, like SO_RCVBUF (Linux
// doubles the value for its bookkeeping; here the bytes are what is charged).
func (d *datagramSocket) setReadBuffer(n int) {
	d.mu.Lock()
	d.limit = max(n, datagramOverhead+1)
	d.mu.Unlock()
}

// findBound returns the socket of a table bound to local: an exact bind
// first, then the family wildcard, then the dual-stack wildcard (as
// findListener).
func findBound[T any](m map[listenKey]T, local netip.AddrPort) (T, bool) {
	p := local.Port()
	if v, ok := m[listenKey{addr: local.Addr(), port: p}]; ok {
		return v, true
	}
	unspec := netip.IPv6Unspecified()
	if local.Addr().Is4() {
		unspec = netip.IPv4Unspecified()
	}
	if v, ok := m[listenKey{addr: unspec, port: p}]; ok {
		return v, true
	}
	v, ok := m[listenKey{port: p}]
	return v, ok
}

// boundConflict reports whether k clashes with a binding of m (EADDRINUSE).
func boundConflict[T any](m map[listenKey]T, k listenKey) bool {
	for o := range m {
		if o.port == k.port && overlaps(o.addr, k.addr) {
			return true
		}
	}
	return false
}

// sourceFor returns the source address of a packet to dst from a socket
// bound to bound: the bound address, or our address of dst's family.
func (s *Stack) sourceFor(bound, dst netip.Addr) (netip.Addr, error) {
	if bound.IsValid() && !bound.IsUnspecified() {
		if bound.Is4() != dst.Is4() {
			return netip.Addr{}, syscall.EAFNOSUPPORT
		}
		return bound, nil
	}
	if bound.IsValid() && bound.Is4() != dst.Is4() {
		return netip.Addr{}, syscall.EAFNOSUPPORT
	}
	src, ok := s.localAddrFor(dst)
	if !ok {
		return netip.Addr{}, syscall.ENETUNREACH
	}
	return src, nil
}

// Largest upper-layer payload of one IP datagram (what fragmentation can
// carry): 65535 minus the IPv4 header; IPv6's payload length field covers
// the upper layer itself.
const (
	maxL4Len4 = ip.IPv4MaxTotalLen - ip.IPv4MinHeaderLen
	maxL4Len6 = 0xffff
)

// sendDatagram sends one upper-layer message of l4len bytes with protocol
// proto from src to dst by the route to dst, or, when no route covers dst,
// by hint (the link a datagram from dst came in on), if any. fill writes
// the message into
// the buffer it is given (exactly l4len bytes). A datagram bigger than the
// link's MTU leaves as fragments (RFC 791 §3.2, RFC 8200 §4.5): all of
// them or, short of packet buffers, none (ENOBUFS). It is the send of an
// application's socket: the packets leave from the caller's goroutine when
// the link allows it (sendNow), as TCP's Write does, without a hand-off to
// the link's writer on the round trip of a request and its answer.
func (s *Stack) sendDatagram(hint *link, src, dst netip.Addr, proto uint8, l4len int, fill func(b []byte)) error {
	if s.closed.Load() {
		return net.ErrClosed
	}
	l, _, err := s.route(dst)
	if err != nil {
		if hint == nil {
			return err
		}
		l = hint
	}
	if err := s.sendDatagramOn(l, src, dst, proto, l4len, fill); err != nil {
		return err
	}
	s.sendNow(l)
	return nil
}

// sendDatagramOn is sendDatagram by link l, leaving the packets queued on
// it: the caller sends them (sendNow, or the end of its read batch).
func (s *Stack) sendDatagramOn(l *link, src, dst netip.Addr, proto uint8, l4len int, fill func(b []byte)) error {
	v6 := !dst.Is4()
	iphl := ip.IPv4MinHeaderLen
	maxL4 := maxL4Len4
	if v6 {
		iphl, maxL4 = ip.IPv6HeaderLen, maxL4Len6
	}
	if l4len > maxL4 {
		return syscall.EMSGSIZE
	}
	if iphl+l4len <= l.mtu {
		total := iphl + l4len
		pb := s.txBuf(total)
		if pb == nil {
			s.stats.DatagramOutputNoBuffer.Add(1)
			return syscall.ENOBUFS
		}
		p := pb.b[headroom : headroom+total]
		writeIPHeader(p, src, dst, proto, total, l.nextID(), false)
		fill(p[iphl:])
		pb.n = total
		l.enqueue(pb)
		return nil
	}
	// Fragments: the message is built once in a scratch buffer and cut.
	fragHL := iphl
	if v6 {
		fragHL += ip.IPv6FragmentHeaderLen
	}
	per := (l.mtu - fragHL) &^ 7
	if per < 8 {
		return syscall.EMSGSIZE
	}
	scratch := s.txBuf(l4len)
	if scratch == nil {
		s.stats.DatagramOutputNoBuffer.Add(1)
		return syscall.ENOBUFS
	}
	defer s.pool.put([]*pktBuf{scratch})
	msg := scratch.b[:l4len]
	fill(msg)
	var frags []*pktBuf
	id4 := l.nextID()
	id6 := s.fragID6.Add(1)
	for off := 0; off < l4len; off += per {
		n := min(per, l4len-off)
		more := off+n < l4len
		total := fragHL + n
		pb := s.txBuf(total)
		if pb == nil {
			s.pool.put(frags)
			s.stats.DatagramOutputNoBuffer.Add(1)
			return syscall.ENOBUFS
		}
		p := pb.b[headroom : headroom+total]
		if v6 {
			f := ip.IPv6Fields{PayloadLength: uint16(total - ip.IPv6HeaderLen), NextHeader: ip.ProtocolFragment, HopLimit: defaultTTL, Src: src, Dst: dst}
			ip.BuildIPv6(p, &f)
			ip.PutIPv6FragmentHeader(p[ip.IPv6HeaderLen:], proto, uint16(off), more, id6)
		} else {
			f := ip.IPv4Fields{TotalLength: uint16(total), ID: id4, TTL: defaultTTL, Protocol: proto, Src: src, Dst: dst, FragmentOffset: uint16(off)}
			if more {
				f.Flags = ip.IPv4FlagMoreFragments
			}
			ip.BuildIPv4(p, &f)
		}
		copy(p[fragHL:], msg[off:off+n])
		pb.n = total
		frags = append(frags, pb)
	}
	for _, pb := range frags {
		l.enqueue(pb)
	}
	s.stats.IPFragmentsSent.Add(uint64(len(frags)))
	return nil
}

// sockErr wraps err as the net package does for a datagram socket: an
// errno becomes an *os.SyscallError named after the system call.
func sockErr(op, syscallName, network string, src, dst net.Addr, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(syscallName, errno)
	}
	return &net.OpError{Op: op, Net: network, Source: src, Addr: dst, Err: err}
}
