package integration

// The founding story's network: one virtual clock (ustack's ManualClock,
// which also drives every gVisor stack through an adapter), a switch that
// routes IPv4 packets between hosts by destination address and records every
// TCP segment it moves, and a settle loop that runs every host until nothing
// is in flight. Time moves only in advanceTo, from one timer deadline to the
// next, so the whole run is an event-driven simulation.

import (
	"bytes"
	"fmt"
	"math/rand"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	gtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/ustack-net/ustack/ip"
	ustack "github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tcp"
)

// fsEpoch is where the virtual clock stands at time 0 of a scenario: gVisor
// treats a zero monotonic time as "never".
const fsEpoch = tcp.Time(time.Hour)

// fsPacket is one TCP segment the switch moved.
type fsPacket struct {
	At       time.Duration // virtual time since the scenario started
	Src, Dst netip.AddrPort
	Seg      tcp.Segment
	Lost     bool // no host owned Dst: it had vanished
}

func (p fsPacket) String() string {
	lost := ""
	if p.Lost {
		lost = " (lost)"
	}
	return fmt.Sprintf("%8.3fs %v > %v %s%s", p.At.Seconds(), p.Src, p.Dst, fsSegString(&p.Seg), lost)
}

// fsSegString renders a segment tcpdump-style: flags, seq, ack, length.
func fsSegString(s *tcp.Segment) string {
	var f []byte
	for _, x := range []struct {
		bit tcp.Flags
		c   byte
	}{{tcp.FlagSYN, 'S'}, {tcp.FlagFIN, 'F'}, {tcp.FlagRST, 'R'}, {tcp.FlagPSH, 'P'}, {tcp.FlagACK, '.'}} {
		if s.Flags&x.bit != 0 {
			f = append(f, x.c)
		}
	}
	return fmt.Sprintf("[%s] seq %d ack %d win %d len %d", f, s.Seq, s.Ack, s.Window, len(s.Payload))
}

// fsNode is a host on the switch.
type fsNode interface {
	// Deliver hands the host one IPv4 packet addressed to it.
	Deliver(pkt []byte)
	// Quiesce returns once the host has processed everything delivered
	// and emitted (with fsWorld.emit) everything it had to send.
	Quiesce()
}

// fsWorld is the simulated network of one scenario run.
type fsWorld struct {
	t     testing.TB
	clk   *ustack.ManualClock
	hosts map[netip.Addr]fsNode
	order []netip.Addr // attach order: quiescing is deterministic

	mu  sync.Mutex
	out [][]byte // emitted, waiting to be routed

	trace []fsPacket

	sampleEvery time.Duration
	nextSample  time.Duration
	sample      func(now time.Duration)
}

func newFSWorld(t testing.TB) *fsWorld {
	return &fsWorld{t: t, clk: ustack.NewManualClock(fsEpoch), hosts: map[netip.Addr]fsNode{}}
}

// Now is the virtual time since the scenario started.
func (w *fsWorld) Now() time.Duration { return w.clk.Now().Sub(fsEpoch) }

// attach puts n on the switch at a.
func (w *fsWorld) attach(a netip.Addr, n fsNode) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.hosts[a]; ok {
		w.t.Fatalf("address %v attached twice", a)
	}
	w.hosts[a] = n
	w.order = append(w.order, a)
}

// detach takes the host at a off the switch: packets to a are lost from now
// on, and whatever it emits is ignored (see emitFrom).
func (w *fsWorld) detach(a netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.hosts, a)
	for i, x := range w.order {
		if x == a {
			w.order = append(w.order[:i], w.order[i+1:]...)
			break
		}
	}
}

// emitFrom queues a packet a host sent; it is routed by the next settle
// round. Packets from detached hosts vanish with them.
func (w *fsWorld) emitFrom(n fsNode, pkt []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(pkt) >= ip.IPv4MinHeaderLen {
		if h := w.hosts[netip.AddrFrom4([4]byte(pkt[12:16]))]; h != n {
			return
		}
	}
	w.out = append(w.out, bytes.Clone(pkt))
}

// route moves one packet to its destination host and records TCP segments.
func (w *fsWorld) route(pkt []byte) {
	h, err := ip.ParseIPv4(pkt)
	if err != nil {
		w.t.Fatalf("switch: bad IPv4 packet: %v (% x)", err, pkt)
	}
	dst := w.hosts[h.Dst()]
	if h.Protocol() == 6 {
		var seg tcp.Segment
		if !tcp.VerifyChecksum(h.Payload(), h.SrcSlice(), h.DstSlice()) {
			w.t.Fatalf("switch: bad TCP checksum %v > %v", h.Src(), h.Dst())
		}
		sp, dp, err := tcp.ParseSegment(h.Payload(), &seg)
		if err != nil {
			w.t.Fatalf("switch: bad TCP segment: %v", err)
		}
		seg.Payload = bytes.Clone(seg.Payload)
		w.trace = append(w.trace, fsPacket{At: w.Now(), Src: netip.AddrPortFrom(h.Src(), sp),
			Dst: netip.AddrPortFrom(h.Dst(), dp), Seg: seg, Lost: dst == nil})
	}
	if dst != nil {
		dst.Deliver(pkt)
	}
}

// settle runs timers due now, lets every host work, and routes what they
// send, until a whole round moves nothing.
func (w *fsWorld) settle() {
	w.t.Helper()
	for range 100000 {
		w.clk.Advance(0)
		for _, a := range w.order {
			if n := w.hosts[a]; n != nil {
				n.Quiesce()
			}
		}
		w.mu.Lock()
		out := w.out
		w.out = nil
		w.mu.Unlock()
		if len(out) == 0 {
			if next, ok := w.clk.Next(); ok && !next.After(w.clk.Now()) {
				continue
			}
			return
		}
		for _, p := range out {
			w.route(p)
		}
	}
	w.t.Fatal("network never settled (a packet storm?)")
}

// advance moves virtual time forward by d (see advanceTo).
func (w *fsWorld) advance(d time.Duration) { w.advanceTo(w.Now() + d) }

// advanceTo moves virtual time to target, stopping at every timer deadline
// on the way (every host's timers are on the one clock) and settling the
// network after each, and sampling the connection tables on the way.
func (w *fsWorld) advanceTo(target time.Duration) {
	w.t.Helper()
	w.settle()
	for {
		now := w.Now()
		step := target
		if next, ok := w.clk.Next(); ok && next.Sub(fsEpoch) < step {
			step = next.Sub(fsEpoch)
		}
		if w.sample != nil && w.nextSample < step {
			step = w.nextSample
		}
		if step > now {
			w.clk.Advance(step - now)
		}
		w.settle()
		if w.sample != nil && w.Now() >= w.nextSample {
			w.sample(w.Now())
			w.nextSample += w.sampleEvery
		}
		if w.Now() >= target {
			return
		}
	}
}

// segmentsOn returns the recorded segments between a and b (both
// directions) from time since on.
func (w *fsWorld) segmentsOn(a, b netip.AddrPort, since time.Duration) []fsPacket {
	var out []fsPacket
	for _, p := range w.trace {
		if p.At >= since && ((p.Src == a && p.Dst == b) || (p.Src == b && p.Dst == a)) {
			out = append(out, p)
		}
	}
	return out
}

// fsWait spins until cond holds: the hosts' goroutines run in real time,
// but only ever in reaction to what the test did, so they go idle quickly.
func fsWait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; !cond(); i++ {
		if i < 200 {
			runtime.Gosched()
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not idle after 10 s", what)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// fsTCPPacket builds an IPv4 packet carrying seg with correct checksums.
func fsTCPPacket(src, dst netip.AddrPort, seg *tcp.Segment) []byte {
	p := make([]byte, ip.IPv4MinHeaderLen+tcp.SegmentWireLen(seg))
	tcp.EncodeSegment(p[ip.IPv4MinHeaderLen:], src.Port(), dst.Port(), seg)
	s, d := src.Addr().As4(), dst.Addr().As4()
	tcp.SetChecksumFull(p[ip.IPv4MinHeaderLen:], s[:], d[:])
	if _, err := ip.BuildIPv4(p, &ip.IPv4Fields{TTL: 64, Protocol: 6, Flags: ip.IPv4FlagDontFragment,
		Src: src.Addr(), Dst: dst.Addr()}); err != nil {
		panic(err)
	}
	return p
}

// fsGvClock runs a gVisor stack's timers on the world's clock. A killed
// clock's timers (the stack was thrown away) fire as no-ops.
type fsGvClock struct {
	mc   *ustack.ManualClock
	mu   sync.Mutex
	dead bool
}

var _ tcpip.Clock = (*fsGvClock)(nil)

// Now implements tcpip.Clock.
func (c *fsGvClock) Now() time.Time { return time.Unix(0, int64(c.mc.Now())) }

// NowMonotonic implements tcpip.Clock.
func (c *fsGvClock) NowMonotonic() tcpip.MonotonicTime {
	var m tcpip.MonotonicTime
	return m.Add(time.Duration(c.mc.Now()))
}

// AfterFunc implements tcpip.Clock: f runs inside the world clock's
// Advance, on the test goroutine, like faketime.ManualClock's timers.
func (c *fsGvClock) AfterFunc(d time.Duration, f func()) tcpip.Timer {
	return fsGvTimer{c.mc.AfterFunc(d, func() {
		c.mu.Lock()
		dead := c.dead
		c.mu.Unlock()
		if !dead {
			f()
		}
	})}
}

func (c *fsGvClock) kill() {
	c.mu.Lock()
	c.dead = true
	c.mu.Unlock()
}

type fsGvTimer struct{ t ustack.Timer }

func (t fsGvTimer) Stop() bool            { return t.t.Stop() }
func (t fsGvTimer) Reset(d time.Duration) { t.t.Reset(d) }

// fsGvHost is a gVisor stack on the switch: one NIC (a channel endpoint)
// with one IPv4 address. poll, if set, is its application: run after every
// quiesce until it reports it did nothing.
type fsGvHost struct {
	w     *fsWorld
	addr  netip.Addr
	clock *fsGvClock
	s     *gstack.Stack
	link  *channel.Endpoint
	poll  func() bool
}

var _ fsNode = (*fsGvHost)(nil)

func newFSGvHost(w *fsWorld, addr netip.Addr, seed int64) *fsGvHost {
	w.t.Helper()
	clock := &fsGvClock{mc: w.clk}
	s := gstack.New(gstack.Options{
		NetworkProtocols:   []gstack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []gstack.TransportProtocolFactory{gtcp.NewProtocol},
		Clock:              clock,
		RandSource:         rand.NewSource(seed),
		SecureRNG:          rand.New(rand.NewSource(^seed)),
	})
	g := &fsGvHost{w: w, addr: addr, clock: clock, s: s, link: channel.New(1024, 1500, "")}
	g.link.AddNotify(g)
	if err := s.CreateNIC(1, g.link); err != nil {
		w.t.Fatalf("gvisor nic: %s", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(addr.As4()).WithPrefix()}
	if err := s.AddProtocolAddress(1, pa, gstack.AddressProperties{}); err != nil {
		w.t.Fatalf("gvisor address: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	w.attach(addr, g)
	return g
}

// WriteNotify implements channel.Notification: packets go to the switch
// the moment gVisor writes them.
func (g *fsGvHost) WriteNotify() {
	for {
		pkt := g.link.Read()
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		g.w.emitFrom(g, v.AsSlice())
		v.Release()
		pkt.DecRef()
	}
}

// Deliver implements fsNode.
func (g *fsGvHost) Deliver(pkt []byte) {
	pb := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(bytes.Clone(pkt))})
	g.link.InjectInbound(ipv4.ProtocolNumber, pb)
	pb.DecRef()
}

// Quiesce implements fsNode: Pause returns only once every TCP dispatcher
// goroutine has emptied its queue (what oracle_gvisor.go's settle relies on).
func (g *fsGvHost) Quiesce() {
	for range 1000 {
		g.s.Pause()
		g.s.Resume()
		if g.poll == nil || !g.poll() {
			return
		}
	}
	g.w.t.Fatal("gvisor application never went idle")
}

// kill throws the host away without a word: off the switch first, so that
// nothing Destroy says (RSTs, FINs) reaches anyone, then its timers die.
func (g *fsGvHost) kill() {
	g.w.detach(g.addr)
	g.s.Destroy()
	g.clock.kill()
}
