package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	gtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/ustack-net/ustack/tcp"
)

// Addresses of the oracle's one link: the DUT owns .2 / ::2, the peer .1 / ::1
// (198.18.0.0/15 and 2001:2::/48 are the benchmarking ranges, RFC 2544/5180).
var (
	DUTAddr4  = [4]byte{198, 18, 0, 2}
	PeerAddr4 = [4]byte{198, 18, 0, 1}
	DUTAddr6  = [16]byte{0x20, 0x01, 0, 2, 14: 0, 15: 2}
	PeerAddr6 = [16]byte{0x20, 0x01, 0, 2, 14: 0, 15: 1}
)

// GVisorOptions configure a GVisorDUT. The zero value is the oracle's
// comparison setting: IPv4, MTU 1500, SACK on, Nagle on, RACK/TLP off,
// gVisor's defaults for everything else.
type GVisorOptions struct {
	// IPv6 runs the connection over IPv6 (2001:2::2) instead of IPv4.
	IPv6 bool
	// MTU of the link; 0 = 1500.
	MTU uint32
	// RACK keeps gVisor's default loss detection (RACK-TLP, RFC 8985). Off,
	// tcpip.TCPRecovery(0) leaves classic RTO-driven recovery, which is what
	// ustack implements; TLP would add probes the RFC 6298 timer does not.
	RACK bool
	// NoSACK turns off SACK negotiation (gVisor's default is off; the oracle
	// turns it on because ustack's default is on).
	NoSACK bool
	// NoDelay turns Nagle's algorithm off. gVisor's own default is off
	// (TCP_NODELAY); the oracle turns it on, like Linux and ustack.
	NoDelay bool
	// MinRTO, MaxRTO override gVisor's 200 ms / 120 s when nonzero.
	MinRTO, MaxRTO time.Duration
	// SynRetries overrides gVisor's 6 when nonzero.
	SynRetries int
	// Seed seeds the stack's random source (ISS, ephemeral values).
	Seed int64
}

// GVisorDUT is a gVisor netstack driven in virtual time: a stack with one
// link/channel NIC, ipv4+ipv6+tcp, and a faketime.ManualClock. Inbound
// packets are injected with InjectInbound; outbound ones are taken off the
// channel endpoint the moment they are written (a channel notification
// drains the queue) and stamped with the manual clock, so emission times are
// exact even for packets sent from timer callbacks in the middle of Advance.
//
// gVisor processes segments asynchronously on its dispatcher goroutines.
// After each step the harness waits for quiescence by pausing the TCP
// dispatcher (Stack.Pause only returns once every processor has emptied its
// queue) and resuming it, and by running the clock's zero-delay timers — no
// real-time sleeps.
type GVisorDUT struct {
	opts  GVisorOptions
	clock *faketime.ManualClock
	base  tcpip.MonotonicTime
	stack *stack.Stack
	link  *channel.Endpoint
	proto tcpip.NetworkProtocolNumber

	listener tcpip.Endpoint
	ep       tcpip.Endpoint
	wq       *waiter.Queue

	mu      sync.Mutex
	emitted []Emission
	// nonTCP counts emitted packets that were not TCP (NDP, MLD...),
	// which the oracle ignores.
	nonTCP int
	// bad records emitted packets the harness could not parse.
	bad []string
}

var _ DUT = (*GVisorDUT)(nil)

// gvisorBase is where the manual clock stands when a DUT is created: some
// gVisor code treats a zero MonotonicTime as "never", so virtual time 0 of a
// scenario is one hour after the clock's epoch.
const gvisorBase = time.Hour

// NewGVisorDUT builds the stack. It fails only on a gVisor configuration error.
func NewGVisorDUT(opts GVisorOptions) (*GVisorDUT, error) {
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	clock := faketime.NewManualClock()
	s := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{
			ipv4.NewProtocol,
			// No DAD, so ::2 is usable at once and no NS goes out.
			ipv6.NewProtocolWithOptions(ipv6.Options{DADConfigs: stack.DADConfigurations{DupAddrDetectTransmits: 0}}),
		},
		TransportProtocols: []stack.TransportProtocolFactory{gtcp.NewProtocol},
		Clock:              clock,
		RandSource:         rand.NewSource(opts.Seed),
	})
	g := &GVisorDUT{opts: opts, clock: clock, stack: s, proto: ipv4.ProtocolNumber}
	if opts.IPv6 {
		g.proto = ipv6.ProtocolNumber
	}
	fail := func(what string, err tcpip.Error) (*GVisorDUT, error) {
		s.Destroy()
		return nil, fmt.Errorf("gvisor: %s: %s", what, err)
	}

	sack := tcpip.TCPSACKEnabled(!opts.NoSACK)
	if err := s.SetTransportProtocolOption(gtcp.ProtocolNumber, &sack); err != nil {
		return fail("sack", err)
	}
	delay := tcpip.TCPDelayEnabled(!opts.NoDelay)
	if err := s.SetTransportProtocolOption(gtcp.ProtocolNumber, &delay); err != nil {
		return fail("delay", err)
	}
	var rec tcpip.TCPRecovery
	if opts.RACK {
		rec = tcpip.TCPRACKLossDetection
	}
	if err := s.SetTransportProtocolOption(gtcp.ProtocolNumber, &rec); err != nil {
		return fail("recovery", err)
	}
	if opts.MinRTO != 0 {
		o := tcpip.TCPMinRTOOption(opts.MinRTO)
		if err := s.SetTransportProtocolOption(gtcp.ProtocolNumber, &o); err != nil {
			return fail("min rto", err)
		}
	}
	if opts.MaxRTO != 0 {
		o := tcpip.TCPMaxRTOOption(opts.MaxRTO)
		if err := s.SetTransportProtocolOption(gtcp.ProtocolNumber, &o); err != nil {
			return fail("max rto", err)
		}
	}
	if opts.SynRetries != 0 {
		o := tcpip.TCPSynRetriesOption(opts.SynRetries)
		if err := s.SetTransportProtocolOption(gtcp.ProtocolNumber, &o); err != nil {
			return fail("syn retries", err)
		}
	}

	g.link = channel.New(256, opts.MTU, "")
	g.link.AddNotify(g)
	if err := s.CreateNIC(1, g.link); err != nil {
		return fail("nic", err)
	}
	for _, a := range []tcpip.ProtocolAddress{
		{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddrFrom4(DUTAddr4).WithPrefix()},
		{Protocol: ipv6.ProtocolNumber, AddressWithPrefix: tcpip.AddrFrom16(DUTAddr6).WithPrefix()},
	} {
		if err := s.AddProtocolAddress(1, a, stack.AddressProperties{}); err != nil {
			return fail("address", err)
		}
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: 1},
		{Destination: header.IPv6EmptySubnet, NIC: 1},
	})

	clock.Advance(gvisorBase)
	g.base = clock.NowMonotonic()
	g.settle()
	g.TakeEmitted() // anything the NIC said when it came up (MLD) is not the scenario's
	return g, nil
}

// Name implements DUT.
func (g *GVisorDUT) Name() string { return "gvisor" }

// Stack returns the gVisor stack, for options the harness does not wrap.
func (g *GVisorDUT) Stack() *stack.Stack { return g.stack }

// Endpoint returns the current connection's endpoint (nil before
// Accept/Connect), for socket options the harness does not wrap.
func (g *GVisorDUT) Endpoint() tcpip.Endpoint { return g.ep }

// Now implements DUT.
func (g *GVisorDUT) Now() time.Duration { return g.clock.NowMonotonic().Sub(g.base) }

// WriteNotify implements channel.Notification. It runs synchronously in the
// goroutine that wrote the packet (a dispatcher goroutine, a timer callback
// inside Advance, or an application call), so the clock still reads the
// packet's send time.
func (g *GVisorDUT) WriteNotify() {
	for {
		pkt := g.link.Read()
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		b := bytes.Clone(v.AsSlice())
		v.Release()
		pkt.DecRef()
		g.record(b)
	}
}

func (g *GVisorDUT) record(b []byte) {
	at := g.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var tcpBytes []byte
	var ip IPFields
	switch header.IPVersion(b) {
	case header.IPv4Version:
		h := header.IPv4(b)
		if !h.IsValid(len(b)) {
			g.bad = append(g.bad, "invalid IPv4 header")
			return
		}
		ip = IPFields{TOS: tos4(h), TTL: h.TTL(), ID: h.ID(), DF: h.Flags()&header.IPv4FlagDontFragment != 0}
		if h.TransportProtocol() != header.TCPProtocolNumber {
			g.nonTCP++
			return
		}
		tcpBytes = b[h.HeaderLength():h.TotalLength()]
		src, dst := h.SourceAddress().As4(), h.DestinationAddress().As4()
		if !tcp.VerifyChecksum(tcpBytes, src[:], dst[:]) {
			g.bad = append(g.bad, "bad TCP checksum")
			return
		}
	case header.IPv6Version:
		h := header.IPv6(b)
		if !h.IsValid(len(b)) {
			g.bad = append(g.bad, "invalid IPv6 header")
			return
		}
		tc, fl := h.TOS()
		ip = IPFields{TOS: tc, TTL: h.HopLimit(), FlowLabel: fl}
		if h.TransportProtocol() != header.TCPProtocolNumber {
			g.nonTCP++
			return
		}
		tcpBytes = h.Payload()
		src, dst := h.SourceAddress().As16(), h.DestinationAddress().As16()
		if !tcp.VerifyChecksum(tcpBytes, src[:], dst[:]) {
			g.bad = append(g.bad, "bad TCP checksum")
			return
		}
	default:
		g.bad = append(g.bad, fmt.Sprintf("IP version %d", header.IPVersion(b)))
		return
	}
	var seg tcp.Segment
	sport, dport, err := tcp.ParseSegment(tcpBytes, &seg)
	if err != nil {
		g.bad = append(g.bad, err.Error())
		return
	}
	if sport != DUTPort || dport != PeerPort {
		g.bad = append(g.bad, fmt.Sprintf("ports %d > %d", sport, dport))
		return
	}
	seg.Payload = bytes.Clone(seg.Payload)
	g.emitted = append(g.emitted, Emission{At: at, Seg: seg, IP: ip})
}

// TakeEmitted implements DUT.
func (g *GVisorDUT) TakeEmitted() []Emission {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.emitted
	g.emitted = nil
	return e
}

// Malformed returns descriptions of emitted packets that could not be parsed
// (bad checksum, wrong ports...). An oracle run requires it to be empty.
func (g *GVisorDUT) Malformed() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.bad...)
}

// settle waits until gVisor has finished reacting to the last step: timers
// scheduled to run "now" have run and every dispatcher goroutine is idle
// with an empty queue (Pause returns only then). A reaction can queue more
// work (a zero-delay timer, a segment looped to another endpoint), so repeat
// until a round changes nothing.
func (g *GVisorDUT) settle() {
	for range 8 {
		g.mu.Lock()
		before := len(g.emitted)
		g.mu.Unlock()
		g.clock.RunImmediatelyScheduledJobs()
		g.stack.Pause()
		g.stack.Resume()
		g.mu.Lock()
		after := len(g.emitted)
		g.mu.Unlock()
		if after == before {
			return
		}
	}
}

// Advance implements DUT. Timer callbacks run synchronously inside the
// manual clock's Advance, each at its own time.
func (g *GVisorDUT) Advance(d time.Duration) {
	if d > 0 {
		g.clock.Advance(d)
	}
	g.settle()
}

// Inject implements DUT: seg goes in as an IPv4/IPv6 packet from the peer,
// with a correct checksum.
func (g *GVisorDUT) Inject(seg *tcp.Segment) {
	g.InjectIP(seg, IPFields{})
}

// InjectIP is Inject with the given IP header fields (TTL 0 means 64).
func (g *GVisorDUT) InjectIP(seg *tcp.Segment, ip IPFields) {
	pkt := BuildPacketIP(g.opts.IPv6, false, seg, ip)
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	g.link.InjectInbound(g.proto, pb)
	pb.DecRef()
	g.settle()
}

// BuildPacket serializes seg into an IP packet between the peer and the
// DUT: toPeer=false means peer → DUT (what Inject sends), true the reverse.
func BuildPacket(v6, toPeer bool, seg *tcp.Segment) []byte {
	return BuildPacketIP(v6, toPeer, seg, IPFields{})
}

// BuildPacketIP is BuildPacket with the given IP header fields (TTL 0
// means 64; ID and DF apply to IPv4, FlowLabel to IPv6).
func BuildPacketIP(v6, toPeer bool, seg *tcp.Segment, ip IPFields) []byte {
	if ip.TTL == 0 {
		ip.TTL = 64
	}
	tcpLen := tcp.SegmentWireLen(seg)
	var b []byte
	var src, dst []byte
	var hdr int
	if v6 {
		hdr = header.IPv6MinimumSize
		b = make([]byte, hdr+tcpLen)
		s, d := PeerAddr6, DUTAddr6
		if toPeer {
			s, d = d, s
		}
		header.IPv6(b).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(tcpLen),
			TransportProtocol: header.TCPProtocolNumber,
			HopLimit:          ip.TTL,
			TrafficClass:      ip.TOS,
			FlowLabel:         ip.FlowLabel,
			SrcAddr:           tcpip.AddrFrom16(s),
			DstAddr:           tcpip.AddrFrom16(d),
		})
		src, dst = s[:], d[:]
	} else {
		hdr = header.IPv4MinimumSize
		b = make([]byte, hdr+tcpLen)
		s, d := PeerAddr4, DUTAddr4
		if toPeer {
			s, d = d, s
		}
		ih := header.IPv4(b)
		var flags uint8
		if ip.DF {
			flags = header.IPv4FlagDontFragment
		}
		ih.Encode(&header.IPv4Fields{
			TotalLength: uint16(hdr + tcpLen),
			TOS:         ip.TOS,
			ID:          ip.ID,
			Flags:       flags,
			TTL:         ip.TTL,
			Protocol:    uint8(header.TCPProtocolNumber),
			SrcAddr:     tcpip.AddrFrom4(s),
			DstAddr:     tcpip.AddrFrom4(d),
		})
		ih.SetChecksum(^ih.CalculateChecksum())
		src, dst = s[:], d[:]
	}
	sport, dport := uint16(PeerPort), uint16(DUTPort)
	if toPeer {
		sport, dport = dport, sport
	}
	tcp.EncodeSegment(b[hdr:], sport, dport, seg)
	tcp.SetChecksumFull(b[hdr:], src, dst)
	return b
}

func (g *GVisorDUT) peerAddr() tcpip.FullAddress {
	if g.opts.IPv6 {
		return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom16(PeerAddr6), Port: PeerPort}
	}
	return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(PeerAddr4), Port: PeerPort}
}

func (g *GVisorDUT) localAddr() tcpip.FullAddress {
	if g.opts.IPv6 {
		return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom16(DUTAddr6), Port: DUTPort}
	}
	return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(DUTAddr4), Port: DUTPort}
}

func (g *GVisorDUT) newEndpoint() (tcpip.Endpoint, *waiter.Queue, error) {
	var wq waiter.Queue
	ep, err := g.stack.NewEndpoint(gtcp.ProtocolNumber, g.proto, &wq)
	if err != nil {
		return nil, nil, fmt.Errorf("gvisor: new endpoint: %s", err)
	}
	return ep, &wq, nil
}

// Listen implements DUT.
func (g *GVisorDUT) Listen() error {
	ep, _, err := g.newEndpoint()
	if err != nil {
		return err
	}
	if err := ep.Bind(g.localAddr()); err != nil {
		ep.Close()
		return fmt.Errorf("gvisor: bind: %s", err)
	}
	if err := ep.Listen(16); err != nil {
		ep.Close()
		return fmt.Errorf("gvisor: listen: %s", err)
	}
	g.listener = ep
	g.settle()
	return nil
}

// Accept implements DUT.
func (g *GVisorDUT) Accept() error {
	if g.listener == nil {
		return errors.New("gvisor: accept without listen")
	}
	ep, wq, err := g.listener.Accept(nil)
	if err != nil {
		return fmt.Errorf("gvisor: accept: %s", err)
	}
	g.ep, g.wq = ep, wq
	g.settle()
	return nil
}

// Connect implements DUT.
func (g *GVisorDUT) Connect() error {
	ep, wq, err := g.newEndpoint()
	if err != nil {
		return err
	}
	if err := ep.Bind(g.localAddr()); err != nil {
		ep.Close()
		return fmt.Errorf("gvisor: bind: %s", err)
	}
	g.ep, g.wq = ep, wq
	if err := ep.Connect(g.peerAddr()); err != nil {
		if _, ok := err.(*tcpip.ErrConnectStarted); !ok {
			return fmt.Errorf("gvisor: connect: %s", err)
		}
	}
	g.settle()
	return nil
}

// gvisorErr maps gVisor's errors to the harness's errno-like errors.
func gvisorErr(err tcpip.Error) error {
	switch err.(type) {
	case nil:
		return nil
	case *tcpip.ErrConnectionReset, *tcpip.ErrConnectionAborted:
		return ErrConnReset
	case *tcpip.ErrConnectionRefused:
		return ErrConnRefused
	case *tcpip.ErrTimeout:
		return ErrConnTimedOut
	case *tcpip.ErrClosedForSend:
		return ErrConnClosed
	case *tcpip.ErrClosedForReceive:
		return io.EOF
	}
	return fmt.Errorf("gvisor: %s", err)
}

// Write implements DUT.
func (g *GVisorDUT) Write(p []byte) (int, error) {
	if g.ep == nil {
		return 0, ErrNoConn
	}
	var r bytes.Reader
	r.Reset(p)
	n, err := g.ep.Write(&r, tcpip.WriteOptions{})
	g.settle()
	if _, ok := err.(*tcpip.ErrWouldBlock); ok {
		err = nil
	}
	return int(n), gvisorErr(err)
}

// Read implements DUT.
func (g *GVisorDUT) Read(n int) ([]byte, error) {
	if g.ep == nil {
		return nil, ErrNoConn
	}
	var buf bytes.Buffer
	_, err := g.ep.Read(&tcpip.LimitedWriter{W: &buf, N: int64(n)}, tcpip.ReadOptions{})
	g.settle()
	if _, ok := err.(*tcpip.ErrWouldBlock); ok {
		return nil, nil
	}
	if err != nil {
		return nil, gvisorErr(err)
	}
	return buf.Bytes(), nil
}

// Shutdown implements DUT.
func (g *GVisorDUT) Shutdown() error {
	if g.ep == nil {
		return ErrNoConn
	}
	err := g.ep.Shutdown(tcpip.ShutdownWrite)
	g.settle()
	return gvisorErr(err)
}

// Close implements DUT.
func (g *GVisorDUT) Close() error {
	switch {
	case g.ep != nil:
		g.ep.Close()
	case g.listener != nil:
		g.listener.Close()
		g.listener = nil
	default:
		return ErrNoConn
	}
	g.settle()
	return nil
}

// Abort implements DUT.
func (g *GVisorDUT) Abort() error {
	if g.ep == nil {
		return ErrNoConn
	}
	g.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	g.ep.Close()
	g.settle()
	return nil
}

// SetKeepAlive implements DUT.
func (g *GVisorDUT) SetKeepAlive(idle, interval time.Duration, count int) error {
	if g.ep == nil {
		return ErrNoConn
	}
	idleOpt := tcpip.KeepaliveIdleOption(idle)
	if err := g.ep.SetSockOpt(&idleOpt); err != nil {
		return fmt.Errorf("gvisor: keepidle: %s", err)
	}
	intvlOpt := tcpip.KeepaliveIntervalOption(interval)
	if err := g.ep.SetSockOpt(&intvlOpt); err != nil {
		return fmt.Errorf("gvisor: keepintvl: %s", err)
	}
	if err := g.ep.SetSockOptInt(tcpip.KeepaliveCountOption, count); err != nil {
		return fmt.Errorf("gvisor: keepcnt: %s", err)
	}
	g.ep.SocketOptions().SetKeepAlive(true)
	g.settle()
	return nil
}

// gvisorStateNames maps gVisor's endpoint states to ss(8) names.
var gvisorStateNames = map[gtcp.EndpointState]string{
	gtcp.StateInitial:     "CLOSE",
	gtcp.StateBound:       "CLOSE",
	gtcp.StateConnecting:  "SYN-SENT",
	gtcp.StateClose:       "CLOSE",
	gtcp.StateError:       "CLOSE",
	gtcp.StateEstablished: "ESTAB",
	gtcp.StateSynSent:     "SYN-SENT",
	gtcp.StateSynRecv:     "SYN-RECV",
	gtcp.StateFinWait1:    "FIN-WAIT-1",
	gtcp.StateFinWait2:    "FIN-WAIT-2",
	gtcp.StateTimeWait:    "TIME-WAIT",
	gtcp.StateCloseWait:   "CLOSE-WAIT",
	gtcp.StateLastAck:     "LAST-ACK",
	gtcp.StateListen:      "LISTEN",
	gtcp.StateClosing:     "CLOSING",
}

// State implements DUT.
func (g *GVisorDUT) State() string {
	ep := g.ep
	if ep == nil {
		ep = g.listener
	}
	if ep == nil {
		return "CLOSE"
	}
	return gvisorStateName(ep)
}

// gvisorStateName returns ep's state as ss(8) names it.
func gvisorStateName(ep tcpip.Endpoint) string {
	st := gtcp.EndpointState(ep.State())
	if n, ok := gvisorStateNames[st]; ok {
		return n
	}
	return st.String()
}

// Destroy implements DUT.
func (g *GVisorDUT) Destroy() {
	g.stack.Destroy()
}

// Listener returns the listening endpoint (nil before Listen), for socket
// options the harness does not wrap.
func (g *GVisorDUT) Listener() tcpip.Endpoint { return g.listener }

// CloseListener closes the listener only, leaving any connection alone.
func (g *GVisorDUT) CloseListener() error {
	if g.listener == nil {
		return ErrNoConn
	}
	g.listener.Close()
	g.listener = nil
	g.settle()
	return nil
}

// Settle waits until gVisor has finished reacting to the last call made
// directly on Endpoint or Listener.
func (g *GVisorDUT) Settle() { g.settle() }

func tos4(h header.IPv4) uint8 {
	tos, _ := h.TOS()
	return tos
}
