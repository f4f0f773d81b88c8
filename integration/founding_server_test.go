package integration

// The founding story's servers (ustack, and gVisor for comparison) and its
// clients (throw-away gVisor stacks and raw hand-built segments).

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"net/netip"
	"sort"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/ustack-net/ustack/ip"
	ustack "github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
	gtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// fsKeepalive is the keepalive the servers set on accepted connections.
type fsKeepalive struct {
	Idle, Interval time.Duration
	Count          int
}

// reap is how long after the last segment from a vanished peer its
// connection must be gone: idle + count × interval.
func (k fsKeepalive) reap() time.Duration { return k.Idle + time.Duration(k.Count)*k.Interval }

// fsServerConn is what the server application saw of one accepted
// connection: when Accept returned it, and when and how its Read failed.
type fsServerConn struct {
	Remote          netip.AddrPort
	Accepted, Ended time.Duration
	Fate            string // "" while open; "EOF", "reset", "timeout" or the error
}

// fsFate names the error that ended a connection.
func fsFate(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.ETIMEDOUT):
		return "timeout"
	}
	return err.Error()
}

// fsTable is one look at a server's connection table.
type fsTable struct {
	States        map[string]int            // by ss(8) state name
	Entries       map[netip.AddrPort]string // peer → state
	SynQ, AcceptQ int                       // listener queues; -1 when the server does not say
}

// fsServer is the server under test: it listens on port 80 of its address,
// accepts every connection, sets keepalive on it, echoes what it reads and
// closes the connection when Read reports EOF or an error.
type fsServer interface {
	fsNode
	Name() string
	Table() fsTable
	Conns() []fsServerConn
	Close()
}

// fsCountingLink is ustack's end of the pipe, counting what the stack's
// reader goroutine has taken and whether it is back waiting in Read: the
// test's cue that everything it wrote has been processed. Offloads are off,
// so the stack emits plain packets with full checksums.
type fsCountingLink struct {
	*tun.PipeEnd
	mu        sync.Mutex
	blocked   bool
	delivered uint64
}

// Read implements tun.Link.
func (l *fsCountingLink) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	l.mu.Lock()
	l.blocked = true
	l.mu.Unlock()
	n, err := l.PipeEnd.Read(bufs, sizes, offset)
	l.mu.Lock()
	l.blocked = false
	l.delivered += uint64(n)
	l.mu.Unlock()
	return n, err
}

// ReadGSO implements tun.Link (unused: GSOMaxSize is 0).
func (l *fsCountingLink) ReadGSO(bufs [][]byte, sizes []int, gso []tun.GSO, offset int) (int, error) {
	n, err := l.Read(bufs, sizes, offset)
	clear(gso[:n])
	return n, err
}

// GSOMaxSize implements tun.Link: no super-packets.
func (l *fsCountingLink) GSOMaxSize() int { return 0 }

// fsUstackServer is a ustack Stack with a listener and a goroutine-per-
// connection application, as a Go server would be written.
type fsUstackServer struct {
	w       *fsWorld
	addr    netip.Addr
	ka      fsKeepalive
	s       *ustack.Stack
	ln      *ustack.Listener
	link    *fsCountingLink
	far     *tun.PipeEnd
	written uint64
	pingSeq uint16
	bufs    [][]byte
	sizes   []int

	mu       sync.Mutex
	inAccept bool
	lnDone   bool
	conns    []*fsUstackConn
	wg       sync.WaitGroup
}

type fsUstackConn struct {
	c        *ustack.Conn
	rec      fsServerConn
	inRead   bool
	consumed uint64 // bytes Read has returned
	done     bool
}

// fsPingAddr is where the ustack host's write barrier pings come from.
var fsPingAddr = netip.MustParseAddr("198.18.0.254")

func newFSUstackServer(w *fsWorld, addr netip.Addr, ka fsKeepalive, backlog, synBacklog int) *fsUstackServer {
	w.t.Helper()
	far, mine := tun.NewPipe(1500)
	u := &fsUstackServer{w: w, addr: addr, ka: ka, far: far, link: &fsCountingLink{PipeEnd: mine},
		bufs: make([][]byte, 64), sizes: make([]int, 64)}
	for i := range u.bufs {
		u.bufs[i] = make([]byte, 2048)
	}
	s, err := ustack.New(ustack.Options{
		Links: []tun.Link{u.link}, Addrs: []netip.Addr{addr}, Clock: w.clk, Shards: 2,
		SYNBacklog: synBacklog, Rand: rand.New(rand.NewSource(1)),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	u.s = s
	u.ln, err = s.ListenBacklog("tcp4", ":80", backlog)
	if err != nil {
		w.t.Fatal(err)
	}
	go u.acceptLoop()
	w.attach(addr, u)
	return u
}

// Name implements fsServer.
func (u *fsUstackServer) Name() string { return "ustack" }

func (u *fsUstackServer) acceptLoop() {
	for {
		u.mu.Lock()
		u.inAccept = true
		u.mu.Unlock()
		c, err := u.ln.AcceptConn()
		u.mu.Lock()
		u.inAccept = false
		if err != nil {
			u.lnDone = true
			u.mu.Unlock()
			return
		}
		ra := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		uc := &fsUstackConn{c: c, rec: fsServerConn{Remote: netip.AddrPortFrom(ra.Addr().Unmap(), ra.Port()), Accepted: u.w.Now()}}
		u.conns = append(u.conns, uc)
		u.wg.Add(1)
		u.mu.Unlock()
		_ = c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: u.ka.Idle, Interval: u.ka.Interval, Count: u.ka.Count})
		go u.serve(uc)
	}
}

// serve echoes until Read fails, then closes: the application of a real
// server, which is what keeps CLOSE-WAIT from piling up.
func (u *fsUstackServer) serve(uc *fsUstackConn) {
	defer u.wg.Done()
	buf := make([]byte, 4096)
	for {
		u.mu.Lock()
		uc.inRead = true
		u.mu.Unlock()
		n, err := uc.c.Read(buf)
		u.mu.Lock()
		uc.inRead = false
		uc.consumed += uint64(n)
		u.mu.Unlock()
		if n > 0 {
			_, _ = uc.c.Write(buf[:n]) // an error shows in the next Read
			continue
		}
		if err == nil {
			continue
		}
		fate := fsFate(err)
		_ = uc.c.Close()
		u.mu.Lock()
		uc.rec.Ended, uc.rec.Fate, uc.done = u.w.Now(), fate, true
		u.mu.Unlock()
		return
	}
}

// appIdle reports whether every application goroutine is blocked with
// nothing to wake it: Accept with an empty accept queue, and every Read on
// an established connection with nothing readable.
func (u *fsUstackServer) appIdle() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.lnDone {
		// Every connection the listener made has been taken by Accept and
		// registered here (AcceptConn dequeues before it returns, so an
		// empty accept queue alone is not enough).
		_, _, aq := u.ln.Backlog()
		if !u.inAccept || aq > 0 || u.s.Stats().TCPPassiveOpens.Load() != uint64(len(u.conns)) {
			return false
		}
	}
	for _, uc := range u.conns {
		if uc.done {
			continue
		}
		if !uc.inRead {
			return false
		}
		// Not Readable == 0: a Read that has just taken the data has not
		// told us yet; what it took is what the application saw.
		in := uc.c.Info()
		if in.BytesReceived != uc.consumed {
			return false
		}
		switch in.State {
		case tcp.StateEstablished, tcp.StateFinWait1, tcp.StateFinWait2:
		default:
			return false // EOF or an error is waiting for the application
		}
	}
	return true
}

// rxIdle reports whether the stack's reader has processed every packet
// written to it and is waiting for more.
func (u *fsUstackServer) rxIdle() bool {
	u.link.mu.Lock()
	defer u.link.mu.Unlock()
	return u.link.blocked && u.link.delivered == u.written
}

func (u *fsUstackServer) writeFar(pkt []byte) {
	b := append(make([]byte, tun.Headroom, tun.Headroom+len(pkt)), pkt...)
	if _, err := u.far.Write([][]byte{b}, tun.Headroom); err != nil {
		u.w.t.Fatalf("pipe write: %v", err)
	}
	u.written++
}

// Deliver implements fsNode.
func (u *fsUstackServer) Deliver(pkt []byte) { u.writeFar(pkt) }

// Quiesce implements fsNode. The reader and the application are watched
// directly; the writer goroutine is flushed with a barrier: an ICMP echo
// request, whose reply is queued behind everything the stack emitted before
// it, so once the reply is out, so is the rest.
func (u *fsUstackServer) Quiesce() {
	t := u.w.t
	fsWait(t, "ustack reader", u.rxIdle)
	fsWait(t, "ustack application", u.appIdle)
	u.pingSeq++
	u.writeFar(fsPing(fsPingAddr, u.addr, u.pingSeq))
	fsWait(t, "ustack reader", u.rxIdle)
	got := false
	fsWait(t, "ustack writer", func() bool {
		u.drainFar(&got)
		return got
	})
}

// drainFar moves what the stack wrote to the switch, keeping the barrier's
// echo reply for itself.
func (u *fsUstackServer) drainFar(gotPing *bool) {
	for u.far.Queued() > 0 {
		n, err := u.far.Read(u.bufs, u.sizes, 0)
		if err != nil {
			u.w.t.Fatalf("pipe read: %v", err)
		}
		for i := range n {
			pkt := u.bufs[i][:u.sizes[i]]
			if fsIsPingReply(pkt, u.pingSeq) {
				*gotPing = true
				continue
			}
			u.w.emitFrom(u, pkt)
		}
	}
}

// fsPing builds an ICMPv4 echo request.
func fsPing(src, dst netip.Addr, seq uint16) []byte {
	p := make([]byte, ip.IPv4MinHeaderLen+ip.ICMPHeaderLen)
	if _, err := ip.BuildICMPv4Echo(p[ip.IPv4MinHeaderLen:], false, 0xf5, seq, nil); err != nil {
		panic(err)
	}
	if _, err := ip.BuildIPv4(p, &ip.IPv4Fields{TTL: 64, Protocol: 1, Src: src, Dst: dst}); err != nil {
		panic(err)
	}
	return p
}

func fsIsPingReply(pkt []byte, seq uint16) bool {
	h, err := ip.ParseIPv4(pkt)
	if err != nil || h.Protocol() != 1 || h.Dst() != fsPingAddr {
		return false
	}
	m := h.Payload()
	return len(m) >= 8 && m[0] == ip.ICMPv4EchoReply && m[4] == 0 && m[5] == 0xf5 &&
		uint16(m[6])<<8|uint16(m[7]) == seq
}

// Table implements fsServer.
func (u *fsUstackServer) Table() fsTable {
	tb := fsTable{States: map[string]int{}, Entries: map[netip.AddrPort]string{}}
	for _, c := range u.s.Connections() {
		tb.States[c.State.String()]++
		tb.Entries[c.Remote] = c.State.String()
	}
	_, tb.SynQ, tb.AcceptQ = u.ln.Backlog()
	return tb
}

// Conns implements fsServer.
func (u *fsUstackServer) Conns() []fsServerConn {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]fsServerConn, len(u.conns))
	for i, uc := range u.conns {
		out[i] = uc.rec
	}
	return out
}

// Close implements fsServer.
func (u *fsUstackServer) Close() {
	u.w.detach(u.addr)
	_ = u.ln.Close()
	go func() { // keep the pipe drained while the stack resets its connections
		for {
			if _, err := u.far.Read(u.bufs, u.sizes, 0); err != nil {
				return
			}
		}
	}()
	_ = u.s.Close()
	u.wg.Wait()
}

// fsGvServer is a gVisor stack with a listener; its application runs in
// the host's poll, between settle rounds, with gVisor's non-blocking calls.
type fsGvServer struct {
	h     *fsGvHost
	ka    fsKeepalive
	ln    tcpip.Endpoint
	conns []*fsGvConn
}

type fsGvConn struct {
	ep   tcpip.Endpoint
	rec  fsServerConn
	done bool
}

func newFSGvServer(w *fsWorld, addr netip.Addr, ka fsKeepalive, backlog int) *fsGvServer {
	w.t.Helper()
	g := &fsGvServer{h: newFSGvHost(w, addr, 1), ka: ka}
	var wq waiter.Queue
	ep, err := g.h.s.NewEndpoint(gtcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		w.t.Fatalf("gvisor endpoint: %s", err)
	}
	if err := ep.Bind(tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(addr.As4()), Port: 80}); err != nil {
		w.t.Fatalf("gvisor bind: %s", err)
	}
	if err := ep.Listen(backlog); err != nil {
		w.t.Fatalf("gvisor listen: %s", err)
	}
	g.ln = ep
	g.h.poll = g.poll
	return g
}

// Name implements fsServer.
func (g *fsGvServer) Name() string { return "gvisor" }

// Deliver implements fsNode.
func (g *fsGvServer) Deliver(pkt []byte) { g.h.Deliver(pkt) }

// Quiesce implements fsNode.
func (g *fsGvServer) Quiesce() { g.h.Quiesce() }

// poll is the application: accept, set keepalive, echo, close on EOF or
// error. It reports whether it did anything.
func (g *fsGvServer) poll() bool {
	acted := false
	for {
		ep, _, err := g.ln.Accept(nil)
		if err != nil {
			break
		}
		acted = true
		idle := tcpip.KeepaliveIdleOption(g.ka.Idle)
		intvl := tcpip.KeepaliveIntervalOption(g.ka.Interval)
		if err := ep.SetSockOpt(&idle); err != nil {
			g.h.w.t.Fatalf("gvisor keepidle: %s", err)
		}
		if err := ep.SetSockOpt(&intvl); err != nil {
			g.h.w.t.Fatalf("gvisor keepintvl: %s", err)
		}
		if err := ep.SetSockOptInt(tcpip.KeepaliveCountOption, g.ka.Count); err != nil {
			g.h.w.t.Fatalf("gvisor keepcnt: %s", err)
		}
		ep.SocketOptions().SetKeepAlive(true)
		ra, _ := ep.GetRemoteAddress()
		g.conns = append(g.conns, &fsGvConn{ep: ep, rec: fsServerConn{
			Remote: netip.AddrPortFrom(netip.AddrFrom4(ra.Addr.As4()), ra.Port), Accepted: g.h.w.Now()}})
	}
	for _, c := range g.conns {
		if c.done {
			continue
		}
		var buf bytes.Buffer
		_, err := c.ep.Read(&buf, tcpip.ReadOptions{})
		if buf.Len() > 0 {
			acted = true
			_, _ = c.ep.Write(bytes.NewReader(buf.Bytes()), tcpip.WriteOptions{})
			continue
		}
		var fate string
		switch err.(type) {
		case nil, *tcpip.ErrWouldBlock:
			continue
		case *tcpip.ErrClosedForReceive:
			fate = "EOF"
		case *tcpip.ErrConnectionReset, *tcpip.ErrConnectionAborted:
			fate = "reset"
		case *tcpip.ErrTimeout:
			fate = "timeout"
		default:
			fate = err.String()
		}
		acted = true
		c.ep.Close()
		c.rec.Ended, c.rec.Fate, c.done = g.h.w.Now(), fate, true
	}
	return acted
}

// Table implements fsServer: every endpoint gVisor has registered on port
// 80 but the listener (SYN-RECEIVED, established, closing, TIME-WAIT).
func (g *fsGvServer) Table() fsTable {
	tb := fsTable{States: map[string]int{}, Entries: map[netip.AddrPort]string{}, SynQ: -1, AcceptQ: -1}
	for _, te := range g.h.s.RegisteredEndpoints() {
		ep, ok := te.(tcpip.Endpoint)
		if !ok || ep == g.ln {
			continue
		}
		la, err := ep.GetLocalAddress()
		if err != nil || la.Port != 80 {
			continue
		}
		st := gvisorStateName(ep)
		if st == "LISTEN" {
			continue
		}
		tb.States[st]++
		// Info, not GetRemoteAddress: the latter refuses endpoints that
		// are not connected yet (SYN-RECEIVED).
		if info, ok := ep.Info().(*gstack.TransportEndpointInfo); ok && info.ID.RemoteAddress.Len() == 4 {
			tb.Entries[netip.AddrPortFrom(netip.AddrFrom4(info.ID.RemoteAddress.As4()), info.ID.RemotePort)] = st
		} else {
			tb.Entries[netip.AddrPortFrom(netip.IPv4Unspecified(), 0)] = st
		}
	}
	return tb
}

// Conns implements fsServer.
func (g *fsGvServer) Conns() []fsServerConn {
	out := make([]fsServerConn, len(g.conns))
	for i, c := range g.conns {
		out[i] = c.rec
	}
	return out
}

// Close implements fsServer.
func (g *fsGvServer) Close() { g.h.kill() }

// fsGvClient is a throw-away gVisor host with one client connection.
type fsGvClient struct {
	h     *fsGvHost
	ep    tcpip.Endpoint
	local netip.AddrPort
	got   bytes.Buffer
}

func newFSGvClient(w *fsWorld, local netip.AddrPort, seed int64) *fsGvClient {
	w.t.Helper()
	c := &fsGvClient{h: newFSGvHost(w, local.Addr(), seed), local: local}
	var wq waiter.Queue
	ep, err := c.h.s.NewEndpoint(gtcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if err != nil {
		w.t.Fatalf("gvisor endpoint: %s", err)
	}
	if err := ep.Bind(tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(local.Addr().As4()), Port: local.Port()}); err != nil {
		w.t.Fatalf("gvisor bind: %s", err)
	}
	c.ep = ep
	return c
}

// connect starts the handshake (the SYN is out after the next settle).
func (c *fsGvClient) connect(remote netip.AddrPort) {
	err := c.ep.Connect(tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(remote.Addr().As4()), Port: remote.Port()})
	if _, ok := err.(*tcpip.ErrConnectStarted); !ok && err != nil {
		c.h.w.t.Fatalf("gvisor connect: %s", err)
	}
}

func (c *fsGvClient) state() string { return gvisorStateName(c.ep) }

func (c *fsGvClient) write(p []byte) {
	if _, err := c.ep.Write(bytes.NewReader(p), tcpip.WriteOptions{}); err != nil {
		c.h.w.t.Fatalf("gvisor client write: %s", err)
	}
}

// read returns everything received so far.
func (c *fsGvClient) read() []byte {
	for {
		var b bytes.Buffer
		if _, err := c.ep.Read(&b, tcpip.ReadOptions{}); err != nil || b.Len() == 0 {
			return c.got.Bytes()
		}
		c.got.Write(b.Bytes())
	}
}

// fsRawHost is a host whose TCP is the test itself: it keeps what it
// receives in an inbox.
type fsRawHost struct {
	inbox []fsPacket
	w     *fsWorld
}

// Deliver implements fsNode.
func (r *fsRawHost) Deliver(pkt []byte) {
	h, err := ip.ParseIPv4(pkt)
	if err != nil || h.Protocol() != 6 {
		return
	}
	var seg tcp.Segment
	sp, dp, err := tcp.ParseSegment(h.Payload(), &seg)
	if err != nil {
		return
	}
	seg.Payload = bytes.Clone(seg.Payload)
	r.inbox = append(r.inbox, fsPacket{At: r.w.Now(), Src: netip.AddrPortFrom(h.Src(), sp),
		Dst: netip.AddrPortFrom(h.Dst(), dp), Seg: seg})
}

// Quiesce implements fsNode: the raw host acts only when the test says.
func (r *fsRawHost) Quiesce() {}

// take empties the inbox.
func (r *fsRawHost) take() []fsPacket {
	in := r.inbox
	r.inbox = nil
	return in
}

// fsSortedStates lists the state names of a table in a fixed order.
func fsSortedStates(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
