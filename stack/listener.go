package stack

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// listenKey is a bound listening address. addr is one of our addresses, an
// unspecified address (any address of its family), or the zero Addr (any
// address of either family, "tcp" on ":port").
type listenKey struct {
	addr netip.Addr
	port uint16
}

// Listener is a listening TCP socket on a Stack; it implements net.Listener.
// Passive connections wait in its SYN queue (SYN-RECEIVED, bounded by
// Options.SYNBacklog, SYN cookies beyond) and then in its accept queue
// (ESTABLISHED, bounded by the backlog) until Accept takes them.
type Listener struct {
	s          *Stack
	key        listenKey
	network    string
	addr       *net.TCPAddr
	backlog    int
	synBacklog int

	mu           sync.Mutex
	synq         map[*endpoint]struct{}
	acceptq      []*endpoint
	claimed      int // places in acceptq taken by handshakes in the engine (handshakeACK)
	closed       bool
	overflowed   bool     // the SYN queue has been full at some point...
	lastOverflow tcp.Time // ...most recently then: cookies may be coming back

	wake chan struct{} // capacity 1
	done chan struct{} // closed by Close
	dl   deadline
	// cfg, when not nil, is the TCP configuration of the connections the
	// listener makes (SetConfig); guarded by mu.
	cfg *tcp.Config
}

// SetConfig makes cfg the TCP configuration of the connections the
// listener accepts from now on, in place of the stack's (socket options set
// on a listening socket, which Linux copies into the sockets it accepts).
// The stack still bounds the MSS by the link, sizes GSO and sets the
// timestamp offset; Memory is ignored (the stack's budget applies).
func (ln *Listener) SetConfig(cfg tcp.Config) {
	ln.mu.Lock()
	ln.cfg = &cfg
	ln.mu.Unlock()
}

// lnConfig returns the listener's configuration (nil: the stack's).
func (ln *Listener) lnConfig() *tcp.Config {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	return ln.cfg
}

// Listen announces on the local address: network is "tcp", "tcp4" or
// "tcp6"; address is "host:port" where host is empty, an unspecified
// address or one of the stack's addresses, and port 0 picks a free port.
// The accept backlog is DefaultAcceptBacklog.
func (s *Stack) Listen(network, address string) (net.Listener, error) {
	ln, err := s.ListenBacklog(network, address, DefaultAcceptBacklog)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// ListenBacklog is Listen with an explicit accept-queue bound (listen(2)'s
// backlog); it returns the concrete *Listener.
func (s *Stack) ListenBacklog(network, address string, backlog int) (*Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Err: err}
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, opErr(net.UnknownNetworkError(network))
	}
	bind, err := parseBindAddr(network, address)
	if err != nil {
		return nil, opErr(err)
	}
	addr, port := bind.Addr(), bind.Port()
	if addr.IsValid() && !addr.IsUnspecified() && !s.isLocal(addr) {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRNOTAVAIL))
	}
	if backlog <= 0 {
		backlog = DefaultAcceptBacklog
	}
	if s.closed.Load() {
		return nil, opErr(net.ErrClosed)
	}
	ln := &Listener{
		s: s, network: network, backlog: backlog, synBacklog: s.opts.SYNBacklog,
		synq: make(map[*endpoint]struct{}),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	ln.dl.init(s.clock)

	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.closed.Load() {
		// Stack.Close sets closed before it takes the listeners under
		// lnMu: one added now would never be closed.
		return nil, opErr(net.ErrClosed)
	}
	old := *s.listeners.Load()
	if port == 0 {
		p, ok := s.freeListenPort(old, addr)
		if !ok {
			return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
		}
		port = p
	}
	ln.key = listenKey{addr: addr, port: port}
	ln.addr = &net.TCPAddr{IP: addrIP(addr), Port: int(port)}
	if listenConflict(old, ln.key) {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: ln.addr, Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	}
	next := make(map[listenKey]*Listener, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[ln.key] = ln
	s.listeners.Store(&next)
	return ln, nil
}

// addrIP converts an address for net.TCPAddr (nil for the zero Addr: any).
func addrIP(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.AsSlice())
}

// overlaps reports whether two bound addresses can receive the same packet.
func overlaps(a, b netip.Addr) bool {
	switch {
	case !a.IsValid() || !b.IsValid():
		return true
	case a.Is4() != b.Is4():
		return false
	case a.IsUnspecified() || b.IsUnspecified():
		return true
	}
	return a == b
}

// listenConflict reports whether k clashes with a bound listener (EADDRINUSE).
func listenConflict(m map[listenKey]*Listener, k listenKey) bool {
	for o := range m {
		if o.port == k.port && overlaps(o.addr, k.addr) {
			return true
		}
	}
	return false
}

// freeListenPort picks a port in the ephemeral range no listener overlapping
// addr uses (bind to port 0).
func (s *Stack) freeListenPort(m map[listenKey]*Listener, addr netip.Addr) (uint16, bool) {
	lo, hi := uint32(s.ports.min), uint32(s.ports.max)
	n := hi - lo + 1
	start := uint32(s.clock.Now()) % n
	for i := range n {
		p := uint16(lo + (start+i)%n)
		if !listenConflict(m, listenKey{addr: addr, port: p}) {
			return p, true
		}
	}
	return 0, false
}

// findListener returns the listener for a segment to local: an exact bind
// first, then the family wildcard, then the dual-stack wildcard.
func (s *Stack) findListener(local netip.AddrPort) *Listener {
	m := *s.listeners.Load()
	if len(m) == 0 {
		return nil
	}
	p := local.Port()
	if ln := m[listenKey{addr: local.Addr(), port: p}]; ln != nil {
		return ln
	}
	unspec := netip.IPv6Unspecified()
	if local.Addr().Is4() {
		unspec = netip.IPv4Unspecified()
	}
	if ln := m[listenKey{addr: unspec, port: p}]; ln != nil {
		return ln
	}
	return m[listenKey{port: p}]
}

// listenInput handles a segment for a listener (RFC 9293 §3.10.7.2) with
// the stack's queue limits and SYN cookies. sh.mu is held.
func (s *Stack) listenInput(ln *Listener, in *link, sh *shard, id tuple, seg *tcp.Segment, now tcp.Time, b *rxBatch) {
	// Answers and the connection follow the route to the peer; the SYN
	// filter sits on the link the SYNs come in on.
	l := s.replyLink(in, id.remote.Addr())
	f := seg.Flags
	switch {
	case f&tcp.FlagRST != 0:
		// "An incoming RST segment could not be valid ... ignored."
		s.stats.TCPListenBadSegment.Add(1)
		return
	case f&tcp.FlagACK != 0:
		if f&tcp.FlagSYN == 0 && s.cookieACK(ln, l, sh, id, seg, now, b) {
			return
		}
		// "Any acknowledgment is bad if it arrives on a connection still
		// in the LISTEN state. An acceptable reset segment should be
		// formed for any arriving ACK-bearing segment."
		s.stats.TCPListenBadSegment.Add(1)
		s.sendReset(l, id, seg)
		return
	case f&tcp.FlagSYN == 0:
		// Neither SYN, ACK nor RST: "drop the segment and return".
		s.stats.TCPListenBadSegment.Add(1)
		return
	}
	if s.nconns.Load() >= int64(s.opts.MaxConns) {
		s.stats.TCPMaxConns.Add(1)
		s.stats.TCPSynDropped.Add(1)
		return
	}
	ln.mu.Lock()
	if ln.closed || s.closed.Load() {
		ln.mu.Unlock()
		s.stats.TCPNoSocket.Add(1)
		s.sendReset(l, id, seg)
		return
	}
	if ln.acceptFull() {
		// Linux tcp_conn_request drops a SYN while the accept queue is
		// full, cookies or not: the connection could not be handed over.
		ln.mu.Unlock()
		s.stats.TCPListenOverflows.Add(1)
		s.stats.TCPSynDropped.Add(1)
		return
	}
	if len(ln.synq) >= ln.synBacklog {
		ln.overflowed, ln.lastOverflow = true, now
		ln.mu.Unlock()
		s.stats.TCPSynQueueFull.Add(1)
		if s.opts.DisableSYNCookies {
			s.stats.TCPSynDropped.Add(1)
			return
		}
		if ok, block := s.cookieSources.allow(id.remote.Addr(), now); !ok {
			s.stats.TCPSynCookieRateLimited.Add(1)
			s.stats.TCPSynDropped.Add(1)
			if block > 0 {
				s.blockSYNs(in, id.remote.Addr(), block)
			}
			return
		}
		s.sendCookie(ln, l, id, seg, now)
		return
	}
	cfg := s.connConfigFrom(ln.cfg, l, id)
	tc := tcp.AcceptSYN(now, cfg, s.isn.isn(now, id.local, id.remote), seg)
	ep := newEndpoint(s, sh, id, l, tc, &cfg)
	ep.ln = ln
	ep.lnPhase = phaseSynQueue
	ln.synq[ep] = struct{}{}
	ln.mu.Unlock()
	s.insert(ep)
	b.mark(ep)
}

// connConfig returns the Config of a connection over l: the stack default
// with the MSS bounded by the link MTU, GSO sized for the link, and the
// timestamp offset of the address pair.
func (s *Stack) connConfig(l *link, id tuple) tcp.Config {
	return s.connConfigFrom(nil, l, id)
}

// connConfigFrom is connConfig starting from base (a socket's own
// configuration: StartDial, Listener.SetConfig) instead of the stack
// default when base is not nil. The memory budget is always the stack's.
func (s *Stack) connConfigFrom(base *tcp.Config, l *link, id tuple) tcp.Config {
	cfg := s.tcpCfg
	if base != nil {
		cfg = *base
		cfg.Memory = s.tcpCfg.Memory
	}
	iphl := 20
	if !id.local.Addr().Is4() {
		iphl = 40
	}
	if mss := l.mtu - iphl - tcp.HeaderMinLen; mss > 0 && (cfg.MSS == 0 || int(cfg.MSS) > mss) {
		cfg.MSS = uint16(min(mss, 65535))
	}
	if maxGSO := l.gsoMax - iphl - tcp.HeaderMaxLen; l.gsoMax > 0 && maxGSO > 0 {
		if cfg.GSOMaxSize == 0 || cfg.GSOMaxSize > maxGSO {
			cfg.GSOMaxSize = maxGSO
		}
	} else {
		cfg.GSOMaxSize = 0
	}
	cfg.TSOffset = s.isn.tsOffset(id.local.Addr(), id.remote.Addr())
	return cfg
}

// sendCookie answers a SYN with a SYN-ACK whose ISS is a SYN cookie and
// keeps no state (RFC 4987 §3.6).
func (s *Stack) sendCookie(ln *Listener, l *link, id tuple, syn *tcp.Segment, now tcp.Time) {
	v6 := !id.local.Addr().Is4()
	cfg := s.connConfigFrom(ln.lnConfig(), l, id)
	idx := mssIndex(v6, syn.Options.MSS, syn.Options.HasMSS)
	iss := s.cookies.make(id.local, id.remote, syn.Seq, idx, cookieCounter(now))
	out := tcp.Segment{Seq: iss, Ack: syn.Seq + 1, Flags: tcp.FlagSYN | tcp.FlagACK, Window: 65535}
	if buf := cfg.RecvBufferSize; buf > 0 && buf < 65535 {
		out.Window = uint16(buf)
	}
	out.Options.HasMSS, out.Options.MSS = true, cfg.MSS
	if cfg.MSS == 0 {
		out.Options.MSS = tcp.DefaultMSS
	}
	// Without timestamps a cookie has no room for window scale and SACK:
	// the connection goes without them, as on Linux.
	if syn.Options.HasTimestamp && !cfg.DisableTimestamps {
		ws := int8(-1)
		if syn.Options.HasWindowScale && !cfg.DisableWindowScale {
			ws = int8(min(syn.Options.WindowScale, tcp.MaxWindowShift))
			out.Options.HasWindowScale, out.Options.WindowScale = true, tcp.WindowScaleFor(cfg)
		}
		sack := syn.Options.SACKPermitted && !cfg.DisableSACK
		out.Options.SACKPermitted = sack
		// ECN too rides in the TSval (RFC 3168 §6.1.1: ECE on the SYN-ACK).
		ecn := tcp.ECNAcceptsSYN(cfg.ECN, syn)
		if ecn {
			out.Flags |= tcp.FlagECE
		}
		out.Options.HasTimestamp = true
		out.Options.TSVal = cookieTSVal(tcp.TSClock(now, cfg.TSOffset), ws, sack, ecn)
		out.Options.TSEcr = syn.Options.TSVal
	}
	s.stats.TCPCookiesSent.Add(1)
	s.emitTCP(l, id.local, id.remote, &out)
}

// cookieACK tries to complete a connection from a SYN cookie carried by the
// ACK seg. It reports whether the segment was consumed (connection made or
// dropped for a limit); false means "not a valid cookie": answer with RST.
// sh.mu is held.
func (s *Stack) cookieACK(ln *Listener, l *link, sh *shard, id tuple, seg *tcp.Segment, now tcp.Time, b *rxBatch) bool {
	if s.opts.DisableSYNCookies {
		return false
	}
	ln.mu.Lock()
	recent := ln.overflowed && now.Sub(ln.lastOverflow) < cookieMaxAge*cookiePeriod
	ln.mu.Unlock()
	if !recent {
		// Linux tcp_synq_no_recent_overflow: no cookie was sent lately,
		// so this ACK cannot carry one.
		return false
	}
	v6 := !id.local.Addr().Is4()
	irs, cookie := seg.Seq-1, seg.Ack-1
	idx, ok := s.cookies.check(id.local, id.remote, irs, cookie, cookieCounter(now))
	if !ok {
		s.stats.TCPCookiesInvalid.Add(1)
		return false
	}
	s.cookieSources.refund(id.remote.Addr())
	cfg := s.connConfigFrom(ln.lnConfig(), l, id)
	n := tcp.Negotiated{ISS: cookie, IRS: irs, MSS: cookieMSSValue(v6, idx), SndWScale: -1, RcvWScale: -1}
	if seg.Options.HasTimestamp && !cfg.DisableTimestamps {
		ws, sack := cookieTSDecode(seg.Options.TSEcr)
		n.Timestamps, n.TSRecent = true, seg.Options.TSVal
		n.SACK = sack && !cfg.DisableSACK
		n.ECN = cookieTSECNOK(seg.Options.TSEcr)
		if ws >= 0 && !cfg.DisableWindowScale {
			n.SndWScale, n.RcvWScale = ws, int8(tcp.WindowScaleFor(cfg))
		}
	}
	if s.nconns.Load() >= int64(s.opts.MaxConns) {
		s.stats.TCPMaxConns.Add(1)
		return true
	}
	// Claim the place in the accept queue first, as handshakeACK does:
	// cookie ACKs on other shards check the queue meanwhile.
	ln.mu.Lock()
	if ln.acceptFull() {
		ln.mu.Unlock()
		s.stats.TCPListenOverflows.Add(1)
		return true
	}
	ln.claimed++
	ln.mu.Unlock()
	tc := tcp.AcceptCookie(now, cfg, n, seg)
	ep := newEndpoint(s, sh, id, l, tc, &cfg)
	ep.ln = ln
	ln.mu.Lock()
	ln.claimed--
	if ln.closed || s.closed.Load() {
		ln.mu.Unlock()
		ep.lnPhase = phaseAccepted
		s.insert(ep)
		tc.Abort()
		b.mark(ep)
		return true
	}
	ep.lnPhase = phaseAcceptQueue
	ln.acceptq = append(ln.acceptq, ep)
	ln.mu.Unlock()
	wake(ln.wake)
	s.insert(ep)
	s.stats.TCPCookiesValid.Add(1)
	s.stats.TCPPassiveOpens.Add(1)
	b.mark(ep)
	return true
}

// established moves ep from the SYN queue to the accept queue when its
// handshake completes. Called from afterOp with sh.mu held.
func (ln *Listener) established(ep *endpoint, now tcp.Time) {
	ln.mu.Lock()
	if ep.lnPhase != phaseSynQueue {
		ln.mu.Unlock()
		return
	}
	delete(ln.synq, ep)
	if ln.closed {
		ep.lnPhase = phaseAccepted
		ln.mu.Unlock()
		ep.tc.Abort()
		ep.tc.Output(now, ep)
		return
	}
	ep.lnPhase = phaseAcceptQueue
	ln.acceptq = append(ln.acceptq, ep)
	ln.mu.Unlock()
	ln.s.stats.TCPPassiveOpens.Add(1)
	wake(ln.wake)
}

// forget drops ep from the SYN queue when it is freed there (RST, SYN-ACK
// retransmissions exhausted). One already in the accept queue stays: Accept
// returns it and its first Read reports what happened, as with the kernel.
func (ln *Listener) forget(ep *endpoint) {
	ln.mu.Lock()
	if ep.lnPhase == phaseSynQueue {
		delete(ln.synq, ep)
		ep.lnPhase = phaseAccepted
	}
	ln.mu.Unlock()
}

// handshakeACK feeds a SYN-RECEIVED connection of ln the ACK seg, unless
// the accept queue is full (false: drop it). The engine runs under sh.mu
// only, so that the handshakes of one listener proceed in parallel across
// shards: ln.mu covers the bookkeeping before and after. Before, the ACK
// claims a place in the accept queue (ln.claimed), so that the ACKs of a
// batch, or of several shards at once, cannot overfill the queue before any
// of them is established; after, a connection the ACK made synchronized
// takes its place at once and a blocked Accept is woken, and one it did not
// gives the place back. sh.mu is held.
func (ln *Listener) handshakeACK(ep *endpoint, seg *tcp.Segment, now tcp.Time) bool {
	ln.mu.Lock()
	if ep.lnPhase != phaseSynQueue || ln.closed {
		ln.mu.Unlock()
		ep.tc.Input(now, seg)
		return true
	}
	if ln.acceptFull() {
		ln.mu.Unlock()
		return false
	}
	ln.claimed++
	ln.mu.Unlock()

	if h := ln.s.handshakeHook; h != nil {
		h(ep)
	}
	ep.tc.Input(now, seg)
	st := ep.tc.State()

	ln.mu.Lock()
	ln.claimed--
	// Listener.Close, while the engine ran, may have taken ep out of the
	// SYN queue (phaseAccepted): it resets ep once it gets sh.mu.
	if ep.lnPhase != phaseSynQueue || st == tcp.StateSynReceived || st == tcp.StateClosed {
		ln.mu.Unlock()
		return true
	}
	delete(ln.synq, ep)
	ep.lnPhase = phaseAcceptQueue
	ln.acceptq = append(ln.acceptq, ep)
	ln.mu.Unlock()
	ln.s.stats.TCPPassiveOpens.Add(1)
	wake(ln.wake)
	return true
}

// acceptFull reports whether the accept queue, with the places claimed by
// handshakes in progress (handshakeACK), is at the backlog. ln.mu is held.
func (ln *Listener) acceptFull() bool {
	return len(ln.acceptq)+ln.claimed >= ln.backlog
}

// Accept waits for and returns the next connection (net.Listener).
func (ln *Listener) Accept() (net.Conn, error) {
	c, err := ln.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn is Accept returning the concrete *Conn.
func (ln *Listener) AcceptConn() (*Conn, error) {
	for {
		ln.mu.Lock()
		if ln.closed {
			ln.mu.Unlock()
			return nil, ln.opErr(net.ErrClosed)
		}
		if len(ln.acceptq) > 0 {
			ep := ln.acceptq[0]
			ln.acceptq[0] = nil
			ln.acceptq = ln.acceptq[1:]
			ep.lnPhase = phaseAccepted
			more := len(ln.acceptq) > 0
			ln.mu.Unlock()
			if more {
				wake(ln.wake) // another Accept may be waiting
			}
			return newConn(ep), nil
		}
		ln.mu.Unlock()
		if ln.dl.expired() {
			return nil, ln.opErr(os.ErrDeadlineExceeded)
		}
		select {
		case <-ln.wake:
		case <-ln.done:
		case <-ln.dl.wait():
		}
	}
}

func (ln *Listener) opErr(err error) error {
	return &net.OpError{Op: "accept", Net: ln.network, Addr: ln.addr, Err: err}
}

// SetDeadline sets the deadline of Accept (like *net.TCPListener).
func (ln *Listener) SetDeadline(t time.Time) error {
	if ln.dl.set(t) {
		wake(ln.wake) // an Accept waiting without a deadline channel
	}
	return nil
}

// Addr returns the listening address (*net.TCPAddr).
func (ln *Listener) Addr() net.Addr { return ln.addr }

// Backlog returns the accept-queue bound and how many connections wait in
// the SYN and accept queues now.
func (ln *Listener) Backlog() (limit, synQueue, acceptQueue int) {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	return ln.backlog, len(ln.synq), len(ln.acceptq)
}

// Close stops listening: the port is released, blocked Accepts return
// net.ErrClosed, and connections still in the SYN or accept queue are reset.
func (ln *Listener) Close() error {
	s := ln.s
	ln.mu.Lock()
	if ln.closed {
		ln.mu.Unlock()
		return &net.OpError{Op: "close", Net: ln.network, Addr: ln.addr, Err: net.ErrClosed}
	}
	ln.closed = true
	pending := make([]*endpoint, 0, len(ln.synq)+len(ln.acceptq))
	for ep := range ln.synq {
		pending = append(pending, ep)
		ep.lnPhase = phaseAccepted
	}
	for _, ep := range ln.acceptq {
		pending = append(pending, ep)
		ep.lnPhase = phaseAccepted
	}
	ln.synq, ln.acceptq = nil, nil
	ln.mu.Unlock()
	close(ln.done)
	ln.dl.stop()

	s.lnMu.Lock()
	old := *s.listeners.Load()
	next := make(map[listenKey]*Listener, len(old))
	for k, v := range old {
		if v != ln {
			next[k] = v
		}
	}
	s.listeners.Store(&next)
	s.lnMu.Unlock()

	now := s.clock.Now()
	for _, ep := range pending {
		ep.sh.mu.Lock()
		if !ep.removed {
			s.stats.TCPListenerCloseRsts.Add(1)
			ep.tc.Abort()
			ep.tc.Output(now, ep)
			s.afterOp(ep, now)
		}
		ep.sh.mu.Unlock()
		if s.txLow.Load() {
			s.relieve()
		}
	}
	s.kickLinks()
	return nil
}
