package drill

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// ustackDUT is `--dut ustack`: the stack that ships, stack.Stack, on an
// in-memory link, driven in virtual time (stack.Options.Driven: Input,
// Poll, NextTimer on a ManualClock). It is configured as `ustack serve`
// configures it: the serve defaults for the connection table, SYN queue,
// SYN cookies, TIME-WAIT limit and memory budget (off), tcp.DefaultConfig
// with NewReno and 256 KiB buffers, delayed ACKs on (40 ms) with Linux's
// quick-ACK start (tcp/quickack.go), the ACK timing Linux's scripts
// expect; a link with offloads (GSO super-packets). Everything the stack decides
// around the engine is in the path: the listener and its queues, the
// accept backlog, the RFC 1337 rule, TIME-WAIT reuse, the port choice.
//
// Sockets are the stack's own objects: a listening socket is a
// *stack.Listener, a connection a *stack.Conn, with deadlines in the past
// so that no call blocks (the runner makes blocking sockets by retrying).
// Socket options set before listen or connect become the tcp.Config the
// stack makes the connection with (Listener.SetConfig, StartDial); after,
// they go through the Conn's setters. The stack is made at the first
// socket, so sysctl lines before it reach its Options too.
type ustackDUT struct {
	o    Options
	cfg  tcp.Config    // from sysctls: the base of every new socket's config
	opts stack.Options // from sysctls, until the stack is made
	clk  *stack.ManualClock
	link *drillLink
	s    *stack.Stack

	fds   fdTable[*usock]
	stuck []string

	// peerPort is the peer's port for the packets it sends now
	// (Inbound.PeerPort), peerPorts every port it has used.
	peerPort  uint16
	peerPorts map[uint16]bool
}

// FreshPeerPorts implements freshPeerPorter.
func (d *ustackDUT) FreshPeerPorts() {}

// usock is one fd: a socket not yet listening or connected, a listener or a
// connection.
type usock struct {
	sockOpts
	bound      bool
	ln         *stack.Listener
	c          *stack.Conn
	connecting bool // a connect is in progress or not yet reported done
	errRep     bool // SO_ERROR or a call has reported c's error
	shutRd     bool
}

// ustackBase is the ManualClock's reading when the DUT is made.
const ustackBase = tcp.Time(time.Hour)

func newUstackDUT(o Options) *ustackDUT {
	d := &ustackDUT{o: o, clk: stack.NewManualClock(ustackBase)}
	d.cfg = tcp.DefaultConfig()
	d.cfg.CongestionControl = "newreno" // serve's --cc default
	// serve's default delayed ACKs (40 ms), with Linux's quick-ACK start.
	// The scripts without defaults.sh (the project's own) expect RFC
	// 6675 recovery with no tail-loss probes (docs/divergences.md:
	// linux-tail-loss-probe); defaults.sh's tcp_recovery=1 and
	// tcp_early_retrans=4 turn RACK-TLP on, as on Linux.
	d.cfg.Recovery = tcp.RecoverySACK
	d.opts = stack.Options{
		// serve's limit defaults (cmd/ustack/limits.go)
		MaxConns:      stack.DefaultMaxConns,
		SYNBacklog:    stack.DefaultSYNBacklog,
		TimeWaitLimit: stack.DefaultTimeWaitLimit,
		Shards:        1,
		// The connection of a script uses DUTPort on our side, whether
		// the peer opened it or we did.
		EphemeralMin: integration.DUTPort, EphemeralMax: integration.DUTPort,
		// Fixed secrets: ISNs, cookies and timestamp offsets repeat.
		Rand:   zeroRand{},
		Clock:  d.clk,
		Driven: true,
	}
	return d
}

type zeroRand struct{}

func (zeroRand) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func (d *ustackDUT) Name() string       { return "ustack" }
func (d *ustackDUT) Now() time.Duration { return d.clk.Now().Sub(ustackBase) }

func (d *ustackDUT) addrs() (dut, peer netip.Addr) {
	if d.o.IPv6 {
		return netip.AddrFrom16(integration.DUTAddr6), netip.AddrFrom16(integration.PeerAddr6)
	}
	return netip.AddrFrom4(integration.DUTAddr4), netip.AddrFrom4(integration.PeerAddr4)
}

// start makes the stack, once.
func (d *ustackDUT) start() error {
	if d.s != nil {
		return nil
	}
	dut, _ := d.addrs()
	d.link = &drillLink{d: d, mtu: d.o.MTU}
	o := d.opts
	o.Links = []tun.Link{d.link}
	o.Addrs = []netip.Addr{dut}
	o.TCP = d.cfg
	s, err := stack.New(o)
	if err != nil {
		return err
	}
	d.s = s
	return nil
}

// settle writes what the stack queued (recorded by the link at the
// current virtual time).
func (d *ustackDUT) settle() {
	if d.s != nil {
		d.s.Flush()
	}
}

func (d *ustackDUT) Advance(dt time.Duration) {
	target := d.clk.Now().Add(dt)
	if d.s != nil {
		for spins := 0; ; {
			next, ok := d.s.NextTimer()
			if !ok || next.After(target) {
				break
			}
			now := d.clk.Now()
			if next.After(now) {
				d.clk.Advance(next.Sub(now))
				spins = 0
			} else if spins++; spins > 100 {
				d.stuck = append(d.stuck, fmt.Sprintf("timer at %s stays due at %s", fmtTime(next.Sub(ustackBase)), fmtTime(d.Now())))
				break
			}
			d.s.Poll(d.clk.Now())
		}
	}
	if now := d.clk.Now(); target.After(now) {
		d.clk.Advance(target.Sub(now))
	}
}

func (d *ustackDUT) Inject(p *Inbound) {
	if err := d.start(); err != nil {
		d.link.bad = append(d.link.bad, err.Error())
		return
	}
	pkt := integration.BuildPacketIP(d.o.IPv6, false, &p.Seg, p.IP)
	if p.PeerPort != 0 {
		if d.peerPorts == nil {
			d.peerPorts = map[uint16]bool{integration.PeerPort: true}
		}
		d.peerPort, d.peerPorts[p.PeerPort] = p.PeerPort, true
	}
	if d.peerPort != 0 && d.peerPort != integration.PeerPort {
		setPeerPort(d.o.IPv6, pkt, d.peerPort)
	}
	if err := d.s.Input(0, [][]byte{pkt}, nil, d.clk.Now()); err != nil {
		d.link.bad = append(d.link.bad, err.Error())
	}
	d.s.Poll(d.clk.Now())
}

func (d *ustackDUT) TakeEmitted() []integration.Emission {
	if d.link == nil {
		return nil
	}
	e := d.link.emitted
	d.link.emitted = nil
	return e
}

// Malformed reports packets the stack wrote that are not the script's
// connection's segments, and timer loops that did not advance.
func (d *ustackDUT) Malformed() []string {
	var out []string
	if d.link != nil {
		out = append(out, d.link.bad...)
	}
	return append(out, d.stuck...)
}

// BuildPacket implements packetBuilder.
func (d *ustackDUT) BuildPacket(toPeer bool, seg *tcp.Segment, ip integration.IPFields) []byte {
	return integration.BuildPacketIP(d.o.IPv6, toPeer, seg, ip)
}

func (d *ustackDUT) sock(fd int) (*usock, syscall.Errno) {
	s, ok := d.fds.get(fd)
	if !ok {
		return nil, unix.EBADF
	}
	return s, 0
}

// passed is a deadline that has passed: calls under it never block.
var passed = time.Unix(1, 0)

// listening reports whether some fd is a listener.
func (d *ustackDUT) listening() bool {
	found := false
	d.fds.each(func(_ int, s *usock) { found = found || s.ln != nil })
	return found
}

func (d *ustackDUT) Socket() (int, syscall.Errno) {
	if err := d.start(); err != nil {
		return -1, unix.EIO
	}
	return d.fds.add(&usock{sockOpts: sockOpts{cfg: d.cfg}}), 0
}

func (d *ustackDUT) Bind(fd int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	return bindSock(&s.bound, d.listening())
}

func (d *ustackDUT) Listen(fd, backlog int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	if s.c != nil {
		return unix.EINVAL
	}
	if s.ln != nil {
		return 0
	}
	network := "tcp4"
	if d.o.IPv6 {
		network = "tcp6"
	}
	dut, _ := d.addrs()
	// listen(2)'s backlog bounds the accept queue at backlog+1 on Linux
	// (sk_acceptq_is_full tests >): the socket layer's rule, not the
	// stack's, whose bound is exact.
	ln, err := d.s.ListenBacklog(network, netip.AddrPortFrom(dut, integration.DUTPort).String(), max(backlog, 0)+1)
	if err != nil {
		return ustackErrno(err)
	}
	ln.SetConfig(s.cfg)
	if err := ln.SetDeadline(passed); err != nil {
		return ustackErrno(err)
	}
	s.ln, s.bound = ln, true
	return 0
}

func (d *ustackDUT) Accept(fd int) (int, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return -1, e
	}
	if s.ln == nil {
		return -1, unix.EINVAL
	}
	c, err := s.ln.AcceptConn()
	d.settle()
	if err != nil {
		return -1, ustackErrno(err)
	}
	ns := &usock{sockOpts: s.clone(), bound: true, c: c}
	if err := c.SetDeadline(passed); err != nil {
		return -1, ustackErrno(err)
	}
	if ns.linger0 {
		_ = c.SetLinger(0)
	}
	if ns.cork {
		_ = c.SetCork(true)
	}
	return d.fds.add(ns), 0
}

func (d *ustackDUT) Connect(fd int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	if s.ln != nil {
		return unix.EINVAL
	}
	if s.c != nil {
		if !s.connecting {
			return unix.EISCONN
		}
		switch st := s.c.State(); {
		case st == tcp.StateSynSent || st == tcp.StateSynReceived:
			return unix.EALREADY
		case st == tcp.StateClosed && s.c.Err() != nil:
			s.connecting, s.errRep = false, true
			return errnoOf(s.c.Err())
		}
		s.connecting = false
		return 0
	}
	_, peer := d.addrs()
	cfg := s.cfg
	c, err := d.s.StartDial(netip.AddrPortFrom(peer, integration.PeerPort), &cfg)
	d.settle()
	if err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			return unix.EADDRINUSE // the one port is taken: bind(2)'s answer
		}
		return ustackErrno(err)
	}
	if err := c.SetDeadline(passed); err != nil {
		return ustackErrno(err)
	}
	if s.linger0 {
		_ = c.SetLinger(0)
	}
	if s.cork {
		_ = c.SetCork(true)
	}
	s.c, s.bound, s.connecting = c, true, true
	return unix.EINPROGRESS
}

// ustackErrno maps an error of the stack's socket API to errno.
func ustackErrno(err error) syscall.Errno {
	var en syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &en):
		return en
	case errors.Is(err, os.ErrDeadlineExceeded):
		return unix.EAGAIN
	case errors.Is(err, net.ErrClosed):
		return unix.EBADF
	}
	return unix.EIO
}

// connErr reports a connection's error once, as a socket does (the next
// call after it sees EPIPE or EOF); 0 if it has none or it was reported.
func (s *usock) connErr() syscall.Errno {
	if s.errRep {
		return 0
	}
	if err := s.c.Err(); err != nil {
		s.errRep = true
		return errnoOf(err)
	}
	return 0
}

func (d *ustackDUT) Send(fd int, p []byte, flags int) (int, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return -1, e
	}
	wf, ok := sendFlags(flags)
	if !ok {
		return -1, unix.EOPNOTSUPP
	}
	if s.c == nil {
		if s.ln != nil {
			return -1, unix.ENOTCONN
		}
		return -1, unix.EPIPE
	}
	if st := s.c.State(); st == tcp.StateSynSent || st == tcp.StateSynReceived {
		return -1, unix.EAGAIN
	}
	n, err := s.c.WriteMsg(p, wf)
	d.settle()
	switch {
	case err == nil || (n > 0 && errors.Is(err, os.ErrDeadlineExceeded)):
		return n, 0
	case errors.Is(err, os.ErrDeadlineExceeded):
		return -1, unix.EAGAIN
	}
	if ce := s.connErr(); ce != 0 {
		return -1, ce
	}
	return -1, unix.EPIPE
}

func (d *ustackDUT) Recv(fd int, n int, flags int) ([]byte, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return nil, e
	}
	if flags&^(unix.MSG_DONTWAIT) != 0 {
		return nil, unix.EOPNOTSUPP
	}
	if s.c == nil {
		return nil, unix.ENOTCONN
	}
	if st := s.c.State(); st == tcp.StateSynSent || st == tcp.StateSynReceived {
		return nil, unix.EAGAIN
	}
	b := make([]byte, n)
	m, err := s.c.Read(b)
	d.settle()
	switch {
	case m > 0:
		return b[:m], 0
	case errors.Is(err, io.EOF):
		return b[:0], 0
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, unix.EAGAIN
	case err == nil:
		return b[:0], 0 // a zero-length read
	}
	if ce := s.connErr(); ce != 0 {
		return nil, ce
	}
	if s.errRep {
		return b[:0], 0
	}
	return nil, ustackErrno(err)
}

// RecvMsg implements controlReceiver: Recv, with TCP_CM_INQ when the
// socket has TCP_INQ on.
func (d *ustackDUT) RecvMsg(fd, n, flags int) ([]byte, []byte, syscall.Errno) {
	b, e := d.Recv(fd, n, flags)
	s, _ := d.sock(fd)
	if s == nil || s.c == nil {
		return recvInq(b, e, false, nil)
	}
	return recvInq(b, e, s.inq, s.c.Info)
}

func (d *ustackDUT) Shutdown(fd, how int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	if e := shutdownArgs(how, s.c != nil); e != 0 {
		return e
	}
	if how != unix.SHUT_WR && !s.shutRd {
		s.shutRd = true
		if err := s.c.CloseRead(); err != nil {
			return ustackErrno(err)
		}
	}
	if how != unix.SHUT_RD {
		if err := s.c.CloseWrite(); err != nil {
			return ustackErrno(err)
		}
	}
	d.settle()
	return 0
}

func (d *ustackDUT) Close(fd int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	d.fds.del(fd)
	if s.ln != nil {
		_ = s.ln.Close()
	}
	if s.c != nil {
		_ = s.c.Close()
	}
	d.settle()
	return 0
}

// ustackLive is a ustack DUT connection as setsockopt changes it.
type ustackLive struct{ c *stack.Conn }

func (l ustackLive) SetRecvBuffer(n int)            { _ = l.c.SetReadBuffer(n) }
func (l ustackLive) SetSendBuffer(n int)            { _ = l.c.SetWriteBuffer(n) }
func (l ustackLive) SetNoDelay(on bool)             { _ = l.c.SetNoDelay(on) }
func (l ustackLive) SetUserTimeout(d time.Duration) { _ = l.c.SetUserTimeout(d) }
func (l ustackLive) Info() tcp.Info                 { return l.c.Info() }
func (l ustackLive) SetNotSentLowat(n uint32)       { _ = l.c.SetNotSentLowat(int(n)) }
func (l ustackLive) SetCork(on bool)                { _ = l.c.SetCork(on) }

func (l ustackLive) SetLinger0(on bool) {
	sec := -1
	if on {
		sec = 0
	}
	_ = l.c.SetLinger(sec)
}

func (l ustackLive) SetKeepAlive(cfg *tcp.Config) {
	kc := net.KeepAliveConfig{Enable: cfg.KeepAlive, Idle: -1, Interval: -1, Count: -1}
	if cfg.KeepIdle > 0 {
		kc.Idle = cfg.KeepIdle
	}
	if cfg.KeepInterval > 0 {
		kc.Interval = cfg.KeepInterval
	}
	if cfg.KeepCount > 0 {
		kc.Count = cfg.KeepCount
	}
	_ = l.c.SetKeepAliveConfig(kc)
}

func (s *usock) live() liveConn {
	if s.c == nil {
		return nil
	}
	return ustackLive{s.c}
}

func (d *ustackDUT) SetSockopt(fd, level, name int, v OptVal) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	ok, e := s.set(s.live(), level, name, v)
	switch {
	case ok && e != 0:
		return e
	case ok:
	case level == unix.IPPROTO_IP && name == unix.IP_MTU_DISCOVER:
		// The stack sets DF on every packet: the modes that keep it
		// are what it does; IP_PMTUDISC_DONT it cannot do.
		switch v.Int {
		case unix.IP_PMTUDISC_WANT, unix.IP_PMTUDISC_DO, unix.IP_PMTUDISC_PROBE:
			s.keep(level, name, v.Int)
		default:
			return unix.ENOPROTOOPT
		}
	case (level == unix.IPPROTO_IP && name == unix.IP_TOS || level == unix.IPPROTO_IPV6 && name == unix.IPV6_TCLASS) && v.Int == 0:
		s.keep(level, name, v.Int) // the stack's TOS / traffic class is 0
	default:
		return unix.ENOPROTOOPT
	}
	if s.ln != nil {
		s.ln.SetConfig(s.cfg)
	}
	d.settle()
	return 0
}

func (d *ustackDUT) GetSockopt(fd, level, name int) (OptVal, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return OptVal{}, e
	}
	if level == unix.SOL_SOCKET && name == unix.SO_ERROR {
		if s.c == nil {
			return OptVal{}, 0
		}
		return OptVal{Int: int(s.connErr())}, 0
	}
	if v, ok := s.get(s.live(), level, name); ok {
		return v, 0
	}
	return OptVal{}, unix.ENOPROTOOPT
}

func (d *ustackDUT) TCPInfo(fd int) (map[string]int64, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return nil, e
	}
	switch {
	case s.ln != nil:
		return map[string]int64{"tcpi_state": 10}, 0
	case s.c == nil:
		return map[string]int64{"tcpi_state": 7}, 0
	}
	return engineInfo(s.c.Info()), 0
}

func (d *ustackDUT) Poll(fd int) int16 {
	s, e := d.sock(fd)
	if e != 0 {
		return unix.POLLNVAL
	}
	if s.ln != nil {
		if _, _, acceptq := s.ln.Backlog(); acceptq > 0 {
			return unix.POLLIN
		}
		return 0
	}
	if s.c == nil {
		return unix.POLLOUT | unix.POLLHUP
	}
	return connPoll(s.c.Info(), s.shutRd, s.connecting, s.c.Err(), !s.errRep)
}

func (d *ustackDUT) Ioctl(fd, req int) (int, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return -1, e
	}
	if s.ln != nil {
		return -1, unix.EINVAL
	}
	if s.c == nil {
		return 0, 0
	}
	return infoIoctl(s.c.Info(), req)
}

// Sysctl maps the settings the stack has an equivalent for: the engine's
// (as for the bare engine) onto the configuration of sockets created from
// now on, the stack's own onto its Options while the stack is not yet made
// (before the script's first socket).
func (d *ustackDUT) Sysctl(key, value string) error {
	stackLevel := func(apply func(n int) error) error {
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("%s=%q: want a number", key, value)
		}
		if d.s != nil {
			return fmt.Errorf("%s: the stack's setting is fixed once the first socket exists", key)
		}
		return apply(n)
	}
	switch key {
	case "net.ipv4.tcp_syncookies":
		return stackLevel(func(n int) error {
			switch n {
			case 0:
				d.opts.DisableSYNCookies = true
			case 1:
				d.opts.DisableSYNCookies = false
			default:
				return fmt.Errorf("%s=%d: %w (the stack sends cookies only when the SYN queue is full)", key, n, ErrNoEquivalent)
			}
			return nil
		})
	case "net.ipv4.tcp_max_syn_backlog":
		return stackLevel(func(n int) error {
			if n < 1 {
				return fmt.Errorf("%s=%d: want at least 1", key, n)
			}
			d.opts.SYNBacklog = n
			return nil
		})
	case "net.ipv4.tcp_max_tw_buckets":
		return stackLevel(func(n int) error {
			if n < 1 {
				return fmt.Errorf("%s=%d: %w (the stack's TIME-WAIT limit is at least 1)", key, n, ErrNoEquivalent)
			}
			d.opts.TimeWaitLimit = n
			return nil
		})
	case "net.ipv4.tcp_rfc1337":
		return stackLevel(func(n int) error {
			if n == 0 {
				return fmt.Errorf("%s=0: %w (the stack always ignores RSTs in TIME-WAIT, RFC 1337)", key, ErrNoEquivalent)
			}
			return nil
		})
	}
	return engineSysctl(&d.cfg, key, value)
}

func (d *ustackDUT) Destroy() {
	if d.s != nil {
		_ = d.s.Close()
	}
}

// drillLink is the ustack DUT's in-memory link: the stack writes to it
// (Flush), and it records each packet as an Emission at the virtual time
// of the write; inbound packets go in through Stack.Input, never Read.
type drillLink struct {
	d       *ustackDUT
	mtu     int
	emitted []integration.Emission
	bad     []string
}

func (l *drillLink) Read([][]byte, []int, int) (int, error) { return 0, tun.ErrClosed }
func (l *drillLink) ReadGSO([][]byte, []int, []tun.GSO, int) (int, error) {
	return 0, tun.ErrClosed
}
func (l *drillLink) Write(bufs [][]byte, offset int) (int, error) {
	return l.WriteGSO(bufs, nil, offset)
}

func (l *drillLink) WriteGSO(bufs [][]byte, gso []tun.GSO, offset int) (int, error) {
	for i, b := range bufs {
		var g tun.GSO
		if i < len(gso) {
			g = gso[i]
		}
		// The link is the device: it completes a partial checksum (of a
		// super-packet, over all of it: one Emission is recorded, as the
		// linux DUT records a TSO super-packet, and its checksum is
		// verified whole).
		p := b[offset:]
		plain := g
		plain.Type = tun.GSONone
		if err := tun.CompleteChecksum(p, plain); err != nil {
			l.bad = append(l.bad, "GSO: "+err.Error())
			continue
		}
		l.record(p, g)
	}
	return len(bufs), nil
}

// GSOMaxSize is that of a TUN with offloads on: the stack writes TCP
// super-packets, which a `>` line describes as Linux's packetdrill does
// (TSO/GSO-sized segments).
func (l *drillLink) GSOMaxSize() int { return tun.MaxPacketSize }
func (l *drillLink) MTU() int        { return l.mtu }
func (l *drillLink) BatchSize() int  { return 1 }
func (l *drillLink) Close() error    { return nil }

// record parses one packet the stack wrote into an Emission (a GSO
// super-packet is one Emission with Seg.GSOSize its MSS).
func (l *drillLink) record(p []byte, g tun.GSO) {
	var f integration.IPFields
	var seg, src, dst []byte
	switch {
	case len(p) > 0 && p[0]>>4 == 4:
		h, err := ip.ParseIPv4(p)
		if err != nil {
			l.bad = append(l.bad, "IPv4: "+err.Error())
			return
		}
		if h.Protocol() != unix.IPPROTO_TCP {
			l.bad = append(l.bad, fmt.Sprintf("IPv4 protocol %d", h.Protocol()))
			return
		}
		f = integration.IPFields{TOS: h.TOS(), TTL: h.TTL(), ID: h.ID(), DF: h.DontFragment()}
		seg, src, dst = h.Payload(), h.SrcSlice(), h.DstSlice()
	case len(p) > 0 && p[0]>>4 == 6:
		h, info, err := ip.ParseIPv6(p)
		if err != nil {
			l.bad = append(l.bad, "IPv6: "+err.Error())
			return
		}
		if info.Protocol != unix.IPPROTO_TCP {
			l.bad = append(l.bad, fmt.Sprintf("IPv6 next header %d", info.Protocol))
			return
		}
		f = integration.IPFields{TOS: h.TrafficClass(), TTL: h.HopLimit(), FlowLabel: h.FlowLabel()}
		seg, src, dst = h[info.Offset:], h.SrcSlice(), h.DstSlice()
	default:
		l.bad = append(l.bad, fmt.Sprintf("not an IP packet (%d bytes)", len(p)))
		return
	}
	if !tcp.VerifyChecksum(seg, src, dst) {
		l.bad = append(l.bad, "bad TCP checksum")
		return
	}
	var s tcp.Segment
	sport, dport, err := tcp.ParseSegment(seg, &s)
	if err != nil {
		l.bad = append(l.bad, err.Error())
		return
	}
	if sport != integration.DUTPort || (dport != integration.PeerPort && !l.d.peerPorts[dport]) {
		l.bad = append(l.bad, fmt.Sprintf("ports %d > %d", sport, dport))
		return
	}
	s.Payload = bytes.Clone(s.Payload)
	if g.IsGSO() {
		s.GSOSize = g.Size
	}
	l.emitted = append(l.emitted, integration.Emission{At: l.d.Now(), Seg: s, IP: f})
}

// setPeerPort rewrites the source port of pkt, a packet BuildPacketIP made
// from the peer, and its TCP checksum.
func setPeerPort(v6 bool, pkt []byte, port uint16) {
	hdr, src, dst := 20, pkt[12:16], pkt[16:20]
	if v6 {
		hdr, src, dst = 40, pkt[8:24], pkt[24:40]
	}
	seg := pkt[hdr:]
	binary.BigEndian.PutUint16(seg[0:2], port)
	seg[16], seg[17] = 0, 0
	tcp.SetChecksumFull(seg, src, dst)
}
