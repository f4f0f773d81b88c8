// Package stack wires links, IP and TCP together: it reads batches of packets
// from links, parses and verifies them, demultiplexes them to tcp.Conns and
// listeners, drives the Conns' timers, writes what they emit back in batches,
// and offers the result to Go programs as net.Conn and net.Listener.
//
// Concurrency: each link (each queue of a multi-queue TUN) has one reader
// and one writer goroutine; the
// connection table is split into shards, each with its own lock, timer heap
// and clock timer. There is no goroutine per connection; an application
// goroutine blocks only inside Read, Write, Accept and Dial.
package stack

import (
	"container/list"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/ustack-net/ustack/internal/siphash"
	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// Defaults of the Options limits.
const (
	DefaultMaxConns      = 1 << 16
	DefaultSYNBacklog    = 1024 // per listener, like Linux tcp_max_syn_backlog on small hosts
	DefaultAcceptBacklog = 4096 // Linux somaxconn
	DefaultTimeWaitLimit = 1 << 15
	DefaultTxBuffers     = 8192 // small packet buffers
	DefaultTxBigBuffers  = 512  // 64 KiB super-packet buffers
)

// Options configure a Stack. The zero value of every field picks a default.
type Options struct {
	// Links the stack reads and writes; more can be added with AddLink.
	// The stack owns them: Close closes them. A link whose writes never
	// block (a *tun.TUN, or a link with a method WritesNeverBlock() bool
	// that says so) is also written by the reader (its ACKs) and by a
	// sender that finds the packet buffers running low (see TxBuffers).
	Links []tun.Link
	// Routes choose the link (and next hop) of packets to destinations
	// that are not on every link: Dial takes the longest-prefix route to
	// the peer, and replies to a peer that matches a route leave by that
	// route's link (otherwise by the link the peer's packet came in on).
	// Without routes, a stack with one link sends everything over it; with
	// several links and no routes, Dial fails with ENETUNREACH. Links added
	// later with AddLink are not in any route.
	Routes []Route
	// Addrs are the stack's own IPv4 and IPv6 addresses. Packets to other
	// destinations are dropped (ip_not_for_us).
	Addrs []netip.Addr
	// Clock is the time source; nil means the real monotonic clock.
	Clock Clock
	// Shards is the number of connection-table shards; default GOMAXPROCS,
	// rounded up to a multiple of the most queues a link has (queues.go).
	Shards int
	// TCP is the default configuration of every connection. MSS (when zero
	// or too big) and GSOMaxSize are derived from the link; TSOffset is set
	// per connection. TCP.Memory must be nil: the stack makes the budget
	// its connections share, bounded by MemoryBudget (New refuses a set
	// TCP.Memory rather than silently replacing it).
	TCP tcp.Config
	// MaxConns bounds the connection table (all states). SYNs and Dials
	// beyond it are refused and counted (tcp_max_conns).
	MaxConns int
	// SYNBacklog bounds each listener's SYN queue (connections in
	// SYN-RECEIVED). Beyond it, SYN cookies answer (or SYNs are dropped).
	SYNBacklog int
	// TimeWaitLimit bounds the connections in TIME-WAIT; a connection
	// entering TIME-WAIT beyond it is freed at once (Linux
	// tcp_max_tw_buckets), counted as tcp_timewait_overflow.
	TimeWaitLimit int
	// MemoryBudget bounds the buffer memory of all connections together,
	// in bytes (send and receive buffer storage plus out-of-order data,
	// like Linux tcp_mem); 0 means no bound. Once spent, writers block,
	// advertised windows stop growing and out-of-order data that needs new
	// memory is dropped; nothing already accepted is lost (see
	// tcp.MemoryBudget). The per-connection buffer sizes and the
	// out-of-order limit are in TCP.
	MemoryBudget int64
	// DisableSYNCookies drops SYNs when the SYN queue is full instead of
	// answering them with cookies.
	DisableSYNCookies bool
	// CookieSourceRate bounds the cookie SYN-ACKs sent to one source
	// address (an IPv6 source by its /64) per second while a SYN queue
	// overflows; its SYNs beyond are dropped (tcp_syn_cookie_rate_limited).
	// A cookie that comes back valid returns its token, so only SYNs whose
	// handshakes are never completed (a spoofed flood) use the budget.
	// 0 means DefaultCookieSourceRate (the zero value picks the default,
	// as for every field); UnlimitedCookieRate (any negative value) means
	// no limit. `ustack serve --syn-cookie-rate 0` maps to
	// UnlimitedCookieRate.
	CookieSourceRate int
	// EphemeralMin and EphemeralMax bound the ports Dial picks; default
	// 32768-60999 (Linux ip_local_port_range).
	EphemeralMin, EphemeralMax uint16
	// Rand seeds the secrets of ISNs, ports, cookies and timestamp offsets;
	// nil means crypto/rand. Tests pass a fixed reader for repeatable runs.
	Rand io.Reader
	// Reassembly bounds IPv4 and IPv6 fragment reassembly (memory, datagrams in
	// flight, fragments per datagram, timeout); zero fields take the ip
	// package's defaults.
	Reassembly ip.ReassemblyConfig
	// TxBuffers and TxBigBuffers bound the output packet buffers (MTU-sized
	// and 64 KiB). When they run low, the queue of each link whose writes
	// never block is written out by the sender, after it lets go of its
	// shard's lock (a link write never runs under one). One call into a
	// Conn that alone needs more than is left may take up to as many
	// again, freed when written (tx_buffer_overshoot); on other links, or
	// beyond that, the segment is dropped and counted
	// (tcp_output_no_buffer), and TCP retransmits it.
	TxBuffers, TxBigBuffers int
	// DatagramReceiveBuffer bounds each UDP and ping socket's receive
	// queue in bytes (data plus a fixed overhead per datagram); 0 means
	// DefaultDatagramReceiveBuffer. UDPConn.SetReadBuffer changes one
	// socket's.
	DatagramReceiveBuffer int
	// Trace, when set, receives the event trace (see trace.go): one JSON
	// line per segment in or out of a connection, state change and timer
	// firing. Close flushes it, and closes it if it is an io.Closer.
	Trace io.Writer
	// Driven makes the caller the stack's only mover, in the manner of
	// smoltcp's iface.poll(now): New and AddLink start no goroutines and
	// the shards arm no clock timers. Packets go in with Input, the
	// connections' timers run with RunTimers, and what the stack sends is
	// written to its links by Flush (Poll does the last two); NextTimer
	// says when to call again. Application calls (Read, Write, Accept,
	// Dial...) work as usual, except that nothing moves while they block:
	// a driver calls them with deadlines already passed (see poll.go).
	Driven bool
}

// Stack is a userspace TCP/IP endpoint: one or more links, a set of
// addresses, listeners and connections.
type Stack struct {
	opts    Options
	clock   Clock
	stats   Stats
	shards  []*shard
	addrs   []netip.Addr
	routes  routeTable // route.go
	tcpCfg  tcp.Config
	isn     isnGenerator
	ports   portAllocator
	cookies cookieJar
	// cookieSources rate-limits cookie SYN-ACKs per source (synflood.go).
	cookieSources sourceLimiter
	pool          bufPool
	// txLow: a sender under a shard lock found pool running low; the
	// next to let go of a shard lock writes the links' queues (relieve).
	txLow atomic.Bool
	trace *tracer // nil: tracing off

	linksMu sync.Mutex
	links   atomic.Pointer[[]*link] // every queue of every link
	ifaces  atomic.Pointer[[]*link] // each link's queue 0, by link number

	lnMu      sync.Mutex
	listeners atomic.Pointer[map[listenKey]*Listener]

	nconns    atomic.Int64
	ntimewait atomic.Int64
	states    [16]atomic.Int64 // connections by tcp.State

	memMu      sync.Mutex
	memWaiters list.List // of *memWaiter: writers waiting for budget memory, FIFO (memory.go)
	// memSweeping is set while a sweep for idle memory runs (memPressure).
	memSweeping atomic.Bool

	icmpTokens icmpLimiter
	frags      fragments

	// Datagram sockets: copy-on-write tables read without a lock by the
	// packet path (udp.go, ping.go).
	udpMu   sync.Mutex
	udp     atomic.Pointer[map[listenKey]*UDPConn]
	pingMu  sync.Mutex
	pings   atomic.Pointer[map[listenKey]*PingConn]
	fragID6 atomic.Uint32 // IPv6 Fragment header identification

	// driveMu and drive serve Input (poll.go), for a Driven stack.
	driveMu sync.Mutex
	drive   driveState

	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup

	// handshakeHook, set only by tests before traffic starts, runs in
	// handshakeACK just before the engine, with sh.mu held and ln.mu not.
	handshakeHook func(ep *endpoint)
}

// tuple identifies a connection: our address and port, the peer's.
type tuple struct {
	local, remote netip.AddrPort
}

// connKey is a tuple as the connection table's key: the addresses as 16
// bytes (IPv4 mapped), without netip.Addr's zone pointer, so a table entry
// is 48 bytes instead of 72.
type connKey struct {
	local, remote [16]byte
	lport, rport  uint16
}

// key returns t's table key.
func (t tuple) key() connKey {
	return connKey{local: t.local.Addr().As16(), remote: t.remote.Addr().As16(), lport: t.local.Port(), rport: t.remote.Port()}
}

// shard is one slice of the connection table with its own lock and timers.
// Everything about the endpoints it holds (their Conns included) is guarded
// by mu.
type shard struct {
	s     *Stack
	idx   int // in Stack.shards; picks the queue its connections send on (queueFor)
	mu    sync.Mutex
	conns map[connKey]*endpoint

	timers     timerHeap
	clockTimer Timer
	timerArmed bool
	timerAt    tcp.Time
	// timerPending is set while an onTimer goroutine waits for mu.
	timerPending atomic.Bool
	due          []*endpoint
	// scratch is the Output working space of every Conn of the shard
	// (their Output runs under mu): one per shard, not one per connection.
	scratch tcp.Scratch
}

// New makes a Stack and starts its links.
func New(opts Options) (*Stack, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("stack: no addresses")
	}
	if opts.TCP.Memory != nil {
		return nil, errors.New("stack: Options.TCP.Memory is set, but the stack makes the memory budget its connections share: leave it nil and bound buffer memory with Options.MemoryBudget")
	}
	s := &Stack{opts: opts}
	for _, a := range opts.Addrs {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("stack: bad address %v", a)
		}
		s.addrs = append(s.addrs, a.Unmap())
	}
	var err error
	if s.routes, err = newRouteTable(opts.Routes, len(opts.Links)); err != nil {
		return nil, err
	}
	s.clock = opts.Clock
	if s.clock == nil {
		s.clock = NewRealClock()
	}
	maxQueues := 1
	for _, l := range opts.Links {
		maxQueues = max(maxQueues, len(queueLinksOf(l)))
	}
	n := shardCount(opts.Shards, runtime.GOMAXPROCS(0), maxQueues)
	if opts.MaxConns <= 0 {
		s.opts.MaxConns = DefaultMaxConns
	}
	if opts.SYNBacklog <= 0 {
		s.opts.SYNBacklog = DefaultSYNBacklog
	}
	if opts.TimeWaitLimit <= 0 {
		s.opts.TimeWaitLimit = DefaultTimeWaitLimit
	}
	if opts.TxBuffers <= 0 {
		s.opts.TxBuffers = DefaultTxBuffers
	}
	if opts.TxBigBuffers <= 0 {
		s.opts.TxBigBuffers = DefaultTxBigBuffers
	}
	s.ports.min, s.ports.max = opts.EphemeralMin, opts.EphemeralMax
	if s.ports.min == 0 || s.ports.max < s.ports.min {
		s.ports.min, s.ports.max = DefaultEphemeralMin, DefaultEphemeralMax
	}
	s.tcpCfg = opts.TCP
	// The endpoint keeps its own copy of the keepalive settings (so that
	// SetKeepAlive and SetKeepAlivePeriod can change one at a time); start
	// it from the engine's defaults where the options leave them unset.
	def := tcp.DefaultConfig()
	if s.tcpCfg.KeepIdle <= 0 {
		s.tcpCfg.KeepIdle = def.KeepIdle
	}
	if s.tcpCfg.KeepInterval <= 0 {
		s.tcpCfg.KeepInterval = def.KeepInterval
	}
	if s.tcpCfg.KeepCount <= 0 {
		s.tcpCfg.KeepCount = def.KeepCount
	}
	s.tcpCfg.Memory = tcp.NewMemoryBudget(opts.MemoryBudget, tcp.MemoryCounters{
		SendLimited:    &s.stats.TCPMemSendLimited,
		WindowLimited:  &s.stats.TCPMemWindowLimited,
		OOOLimitDrops:  &s.stats.TCPOOOLimitDrops,
		OOOBudgetDrops: &s.stats.TCPMemOOODrops,
		Overcommit:     &s.stats.TCPMemOvercommit,
		RcvBufGrown:    &s.stats.TCPRcvBufGrown,
		SndBufGrown:    &s.stats.TCPSndBufGrown,
		BufShrunk:      &s.stats.TCPBufShrunk,
	})
	s.tcpCfg.Memory.SetRelief(s.memRelief)
	s.tcpCfg.Memory.SetPressure(s.memPressure)
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	var seed [7*16 + 4]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("stack: reading secrets: %w", err)
	}
	key := func(i int) siphash.Key {
		return siphash.Key{K0: binary.LittleEndian.Uint64(seed[16*i:]), K1: binary.LittleEndian.Uint64(seed[16*i+8:])}
	}
	s.isn.key, s.isn.tsKey = key(0), key(1)
	s.ports.keyF, s.ports.keyG = key(2), key(3)
	s.cookies.key1, s.cookies.key2 = key(4), key(5)
	if s.opts.CookieSourceRate == 0 {
		s.opts.CookieSourceRate = DefaultCookieSourceRate
	}
	s.cookieSources.init(key(6), s.opts.CookieSourceRate)
	// RFC 7739 §5: fragment identifications should not be predictable
	// from outside; a secret start and a counter make them unique too.
	s.fragID6.Store(binary.LittleEndian.Uint32(seed[7*16:]))
	s.pool.init(s.opts.TxBuffers, s.opts.TxBigBuffers)
	s.trace = newTracer(opts.Trace, s.clock.Now())
	s.icmpTokens.init(s.clock.Now())
	s.shards = make([]*shard, n)
	for i := range s.shards {
		s.shards[i] = &shard{s: s, idx: i, conns: make(map[connKey]*endpoint)}
	}
	empty := map[listenKey]*Listener{}
	s.listeners.Store(&empty)
	noUDP := map[listenKey]*UDPConn{}
	s.udp.Store(&noUDP)
	noPing := map[listenKey]*PingConn{}
	s.pings.Store(&noPing)
	var none, noIfaces []*link
	s.links.Store(&none)
	s.ifaces.Store(&noIfaces)
	for _, l := range opts.Links {
		s.AddLink(l)
	}
	return s, nil
}

// AddLink starts reading and writing packets on l. The stack owns l from now
// on and closes it in Close.
func (s *Stack) AddLink(l tun.Link) {
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	old, ifaces := *s.links.Load(), *s.ifaces.Load()
	qls := queueLinksOf(l)
	qs := make([]*link, len(qls))
	var shared *linkQueues
	if len(qls) > 1 {
		shared = &linkQueues{all: qs}
		shared.open.Store(int32(len(qls)))
	}
	for i, ql := range qls {
		qs[i] = newLink(s, ql, len(ifaces))
		qs[i].queue, qs[i].q = i, shared
	}
	next := append(old[:len(old):len(old)], qs...)
	nextIfaces := append(ifaces[:len(ifaces):len(ifaces)], qs[0])
	s.links.Store(&next)
	s.ifaces.Store(&nextIfaces)
	if s.closed.Load() {
		for _, q := range qs {
			_ = q.l.Close()
		}
		return
	}
	if s.opts.Driven {
		return
	}
	for _, q := range qs {
		s.wg.Add(2)
		go q.readLoop()
		go q.writeLoop()
	}
}

// Stats returns the stack's counters.
func (s *Stack) Stats() *Stats { return &s.stats }

// Clock returns the stack's clock.
func (s *Stack) Clock() Clock { return s.clock }

// Addrs returns the stack's addresses.
func (s *Stack) Addrs() []netip.Addr { return append([]netip.Addr(nil), s.addrs...) }

// isLocal reports whether a is one of our addresses.
func (s *Stack) isLocal(a netip.Addr) bool {
	for _, x := range s.addrs {
		if x == a {
			return true
		}
	}
	return false
}

// localAddrFor picks our address to talk to remote: the first of its family.
func (s *Stack) localAddrFor(remote netip.Addr) (netip.Addr, bool) {
	for _, x := range s.addrs {
		if x.Is4() == remote.Is4() {
			return x, true
		}
	}
	return netip.Addr{}, false
}

// shardFor returns the shard holding connection id. The hash mixes the
// remote address and both ports; the map inside the shard does the rest.
func (s *Stack) shardFor(id tuple) *shard {
	if len(s.shards) == 1 {
		return s.shards[0]
	}
	a := id.remote.Addr().As16()
	x := binary.LittleEndian.Uint64(a[0:8]) ^ bitsRotate(binary.LittleEndian.Uint64(a[8:16]), 29)
	x ^= uint64(id.remote.Port())<<16 | uint64(id.local.Port())
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return s.shards[x%uint64(len(s.shards))]
}

func bitsRotate(x uint64, k uint) uint64 { return x<<k | x>>(64-k) }

// ConnStates returns how many connections are in each state.
func (s *Stack) ConnStates() map[tcp.State]int {
	m := map[tcp.State]int{}
	for i := range s.states {
		if v := s.states[i].Load(); v > 0 {
			m[tcp.State(i)] = int(v)
		}
	}
	return m
}

// NumConns returns the number of connections in the table.
func (s *Stack) NumConns() int { return int(s.nconns.Load()) }

// ConnSnapshot describes one connection of the table (for ss-like listings).
type ConnSnapshot struct {
	Local, Remote netip.AddrPort
	State         tcp.State
	Info          tcp.Info
}

// Connections returns a snapshot of every connection in the table.
func (s *Stack) Connections() []ConnSnapshot {
	var out []ConnSnapshot
	now := s.clock.Now()
	for _, sh := range s.shards {
		sh.mu.Lock()
		for _, ep := range sh.conns {
			out = append(out, ConnSnapshot{Local: ep.id.local, Remote: ep.id.remote, State: ep.tc.State(), Info: ep.tc.InfoAt(now)})
		}
		sh.mu.Unlock()
	}
	return out
}

// Close shuts the stack down: listeners close, every connection is reset
// (its RST is written), the links are closed and the stack's goroutines
// exit before Close returns. Blocked calls on its conns return errors.
// The error is that of writing the trace, if any.
func (s *Stack) Close() error {
	var err error
	s.closeOnce.Do(func() {
		// closed is set first: every path that adds to a table (Listen,
		// Dial, a listener's SYN, a datagram socket) checks it again under
		// the table's lock, so anything added is either swept below or
		// refused, and nothing is left waiting on a timer that no longer
		// fires.
		s.closed.Store(true)
		s.lnMu.Lock()
		var lns []*Listener
		for _, ln := range *s.listeners.Load() {
			lns = append(lns, ln)
		}
		s.lnMu.Unlock()
		for _, ln := range lns {
			_ = ln.Close()
		}
		s.closeDatagramSockets()
		now := s.clock.Now()
		for _, sh := range s.shards {
			sh.mu.Lock()
			for _, ep := range sh.conns {
				ep.stackErr = errStackClosed
				ep.tc.Abort()
				ep.tc.Output(now, ep)
				s.afterOp(ep, now)
				if !ep.removed {
					s.removeEP(ep)
				}
				ep.wakeAll()
				if s.txLow.Load() {
					// Write the RSTs so far without the lock (relieve);
					// the sweep goes on where it was.
					sh.mu.Unlock()
					s.relieve()
					sh.mu.Lock()
				}
			}
			sh.mu.Unlock()
		}
		s.frags.mu.Lock()
		if s.frags.timer != nil {
			s.frags.timer.Stop()
		}
		s.frags.mu.Unlock()
		for _, sh := range s.shards {
			sh.mu.Lock()
			if sh.clockTimer != nil {
				sh.clockTimer.Stop()
			}
			sh.mu.Unlock()
		}
		s.linksMu.Lock()
		links := *s.links.Load()
		s.linksMu.Unlock()
		for _, l := range links {
			l.stop()
		}
		if s.opts.Driven {
			// No writer goroutines: write the final RSTs, close the links.
			s.Flush()
			for _, l := range links {
				_ = l.l.Close()
			}
		}
		s.wg.Wait()
		err = s.trace.close()
	})
	return err
}

// errStackClosed is the error of connections reset by Stack.Close. It is
// both net.ErrClosed (the network the socket lived on is gone, as for a
// closed socket: servers' Accept loops and io.Copy treat it as the end) and
// ECONNABORTED (what the kernel reports for a connection it tears down
// itself), so errors.Is finds either.
var errStackClosed error = stackClosedError{}

type stackClosedError struct{}

func (stackClosedError) Error() string { return "stack closed: connection aborted" }

func (stackClosedError) Is(target error) bool {
	return target == net.ErrClosed || target == syscall.ECONNABORTED
}
