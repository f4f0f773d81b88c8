package drill

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// tcpDUT is `--dut tcp`: the bare engine, tcp.Conn, with no stack around
// it. It plays the part of the stack itself for one 4-tuple: demultiplexes
// to the connection that owns it or to a listener, answers the rest with
// tcp.ResetFor, keeps the sockets' fds, and runs every connection's timers
// in virtual time. Delayed ACKs are off (every segment acknowledged at
// once) unless a script turns them on, as the oracle has always run the
// engine; connections get ISS 0xffffff00.
type tcpDUT struct {
	o   Options
	cfg tcp.Config // from sysctls: the base of every new socket's config
	now tcp.Time

	fds fdTable[*tcpSock]
	// conns are the connections that may still send or receive, oldest
	// first; the last not Done owns the tuple.
	conns   []*tcpConn
	emitted []integration.Emission
	stuck   []string
}

type tcpSock struct {
	sockOpts
	bound     bool
	listening bool
	backlog   int
	queue     []*tcpConn // a listener's connections not yet accepted
	c         *tcpConn
	// connecting: a connect is in progress or has finished but not yet
	// been reported to a second connect call.
	connecting bool
	shutRd     bool
	tos        int
	noDF       bool // IP_PMTUDISC_DONT: DF clear
}

type tcpConn struct {
	c      *tcp.Conn
	tos    int
	noDF   bool
	errRep bool // SO_ERROR has reported c.Err()
	owner  *tcpSock
}

const tcpDUTBase = tcp.Time(time.Hour)

func newTCPDUT(o Options) *tcpDUT {
	d := &tcpDUT{o: o, now: tcpDUTBase}
	d.cfg.DelayedACK = -1
	// The scripts expect RFC 6675 recovery with no tail-loss probes
	// (docs/divergences.md: linux-tail-loss-probe); RACK-TLP, the
	// engine's default, has its own exact-segment tests in tcp/.
	d.cfg.Recovery = tcp.RecoverySACK
	d.cfg.MSS = uint16(o.MTU - 40)
	iphl := 20
	if o.IPv6 {
		d.cfg.MSS = uint16(o.MTU - 60)
		iphl = 40
	}
	// Super-segments, as a TUN with offloads on takes them (and as the
	// stack makes them for --dut ustack): what Linux's packetdrill expects.
	d.cfg.GSOMaxSize = tun.MaxPacketSize - iphl - tcp.HeaderMaxLen
	return d
}

func (d *tcpDUT) Name() string       { return "tcp" }
func (d *tcpDUT) Now() time.Duration { return d.now.Sub(tcpDUTBase) }

// emitter records one connection's segments with the IP fields its socket
// would send them with.
type tcpEmitter struct {
	d    *tcpDUT
	tos  int
	noDF bool
}

func (e tcpEmitter) Emit(seg *tcp.Segment) {
	s := *seg
	s.Payload = bytes.Clone(seg.Payload)
	// The ECN field is TCP's (RFC 3168 §6.1), whatever IP_TOS set, as
	// the stack writes it.
	ip := integration.IPFields{TOS: uint8(e.tos)&^3 | uint8(seg.ECN), TTL: 64, DF: !e.d.o.IPv6 && !e.noDF}
	e.d.emitted = append(e.d.emitted, integration.Emission{At: e.d.Now(), Seg: s, IP: ip})
}

func (d *tcpDUT) flush(c *tcpConn) { c.c.Output(d.now, tcpEmitter{d, c.tos, c.noDF}) }

func (d *tcpDUT) flushAll() {
	for _, c := range d.conns {
		d.flush(c)
	}
	d.gc()
}

// gc forgets connections that are Done and no socket holds.
func (d *tcpDUT) gc() {
	out := d.conns[:0]
	for _, c := range d.conns {
		if !c.c.Done() || c.owner != nil {
			out = append(out, c)
		}
	}
	d.conns = out
}

func (d *tcpDUT) TakeEmitted() []integration.Emission {
	e := d.emitted
	d.emitted = nil
	return e
}

// Malformed reports Advance loops in which a connection asked to be called
// at a time it had already been called at without moving its deadline.
func (d *tcpDUT) Malformed() []string { return d.stuck }

func (d *tcpDUT) Advance(dt time.Duration) {
	target := d.now.Add(dt)
	for spins := 0; ; {
		var next tcp.Time
		var nc *tcpConn
		for _, c := range d.conns {
			if dl, ok := c.c.NextDeadline(); ok && !dl.After(target) && (nc == nil || dl.Before(next)) {
				next, nc = dl, c
			}
		}
		if nc == nil {
			break
		}
		if next.After(d.now) {
			d.now, spins = next, 0
		} else if spins++; spins > 100 {
			d.stuck = append(d.stuck, fmt.Sprintf("deadline %s stays due at %s", fmtTime(next.Sub(tcpDUTBase)), fmtTime(d.Now())))
			break
		}
		d.flush(nc)
	}
	d.now = target
	d.gc()
}

// owner is the connection that owns the tuple: the newest not Done.
func (d *tcpDUT) owner() *tcpConn {
	for i := len(d.conns) - 1; i >= 0; i-- {
		if !d.conns[i].c.Done() {
			return d.conns[i]
		}
	}
	return nil
}

func (d *tcpDUT) listener() *tcpSock {
	var l *tcpSock
	d.fds.each(func(_ int, s *tcpSock) {
		if s.listening && l == nil {
			l = s
		}
	})
	return l
}

func (d *tcpDUT) Inject(p *Inbound) {
	seg := &p.Seg
	seg.ECN = tcp.ECN(p.IP.TOS & 3) // the IP header's ECN field, as the stack's inputTCP attaches it
	if c := d.owner(); c != nil {
		c.c.Input(d.now, seg)
		d.flushAll()
		return
	}
	if l := d.listener(); l != nil && seg.Flags&(tcp.FlagSYN|tcp.FlagACK|tcp.FlagRST) == tcp.FlagSYN {
		if len(l.queue) <= l.backlog {
			c := &tcpConn{c: tcp.AcceptSYN(d.now, l.cfg, 0xffffff00, seg), tos: l.tos, noDF: l.noDF}
			l.queue = append(l.queue, c)
			d.conns = append(d.conns, c)
			c.owner = l
			d.flushAll()
		}
		return
	}
	// RFC 9293 §3.10.7.1: a closed port answers with a reset.
	if rst, ok := tcp.ResetFor(seg); ok {
		tcpEmitter{d: d}.Emit(&rst)
	}
}

func (d *tcpDUT) sock(fd int) (*tcpSock, syscall.Errno) {
	s, ok := d.fds.get(fd)
	if !ok {
		return nil, unix.EBADF
	}
	return s, 0
}

func (d *tcpDUT) Socket() (int, syscall.Errno) {
	return d.fds.add(&tcpSock{sockOpts: sockOpts{cfg: d.cfg}}), 0
}

func (d *tcpDUT) Bind(fd int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	return bindSock(&s.bound, d.listener() != nil)
}

func (d *tcpDUT) Listen(fd, backlog int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	if s.c != nil {
		return unix.EINVAL
	}
	if !s.listening && d.listener() != nil {
		return unix.EADDRINUSE
	}
	s.bound, s.listening, s.backlog = true, true, max(backlog, 0)
	return 0
}

func (d *tcpDUT) Accept(fd int) (int, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return -1, e
	}
	if !s.listening {
		return -1, unix.EINVAL
	}
	for i, c := range s.queue {
		switch c.c.State() {
		case tcp.StateSynReceived, tcp.StateListen:
			continue
		case tcp.StateClosed:
			if c.c.Done() {
				continue
			}
		}
		s.queue = append(s.queue[:i], s.queue[i+1:]...)
		ns := &tcpSock{sockOpts: s.clone(), bound: true, c: c, tos: s.tos, noDF: s.noDF}
		c.owner = ns
		if ns.cork {
			c.c.SetCork(true)
		}
		return d.fds.add(ns), 0
	}
	return -1, unix.EAGAIN
}

func (d *tcpDUT) Connect(fd int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	if s.listening {
		return unix.EINVAL
	}
	if s.c != nil {
		if !s.connecting {
			return unix.EISCONN
		}
		switch st := s.c.c.State(); {
		case st == tcp.StateSynSent || st == tcp.StateSynReceived:
			return unix.EALREADY
		case st == tcp.StateClosed && s.c.c.Err() != nil:
			s.connecting = false
			s.c.errRep = true
			return errnoOf(s.c.c.Err())
		}
		s.connecting = false
		return 0
	}
	if d.owner() != nil {
		return unix.EADDRINUSE
	}
	c := &tcpConn{c: tcp.Dial(d.now, s.cfg, 0xffffff00), tos: s.tos, noDF: s.noDF, owner: s}
	if s.cork {
		c.c.SetCork(true)
	}
	s.c, s.bound, s.connecting = c, true, true
	d.conns = append(d.conns, c)
	d.flushAll()
	return unix.EINPROGRESS
}

// connErrno maps an engine error to errno.
func connErrno(err error) syscall.Errno {
	if errors.Is(err, io.EOF) {
		return 0
	}
	return errnoOf(err)
}

func (d *tcpDUT) Send(fd int, p []byte, flags int) (int, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return -1, e
	}
	wf, ok := sendFlags(flags)
	if !ok {
		return -1, unix.EOPNOTSUPP
	}
	if s.c == nil {
		if s.listening {
			return -1, unix.ENOTCONN
		}
		return -1, unix.EPIPE
	}
	st := s.c.c.State()
	if st == tcp.StateSynSent || st == tcp.StateSynReceived {
		return -1, unix.EAGAIN
	}
	n := 0
	for {
		// As the stack's Write: what Output sends may make room again
		// under the not-sent low-water mark.
		m, err := s.c.c.WriteMsg(p[n:], wf)
		d.flushAll()
		if err != nil {
			if n > 0 {
				break
			}
			if !s.c.errRep && s.c.c.Err() != nil {
				s.c.errRep = true
				return -1, errnoOf(s.c.c.Err())
			}
			return -1, unix.EPIPE
		}
		n += m
		if m == 0 || n == len(p) || s.c.c.NotSentLowat() == 0 || s.c.c.Writable() == 0 {
			break
		}
	}
	if n == 0 && len(p) > 0 {
		return -1, unix.EAGAIN
	}
	return n, 0
}

func (d *tcpDUT) Recv(fd int, n int, flags int) ([]byte, syscall.Errno) {
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
	st := s.c.c.State()
	if st == tcp.StateSynSent || st == tcp.StateSynReceived {
		return nil, unix.EAGAIN
	}
	b := make([]byte, n)
	m, err := s.c.c.Read(b)
	d.flushAll()
	switch {
	case err != nil && errors.Is(err, io.EOF):
		return b[:0], 0
	case err != nil:
		if s.c.errRep {
			return b[:0], 0
		}
		s.c.errRep = true
		return nil, connErrno(err)
	case m == 0 && s.shutRd:
		return b[:0], 0
	case m == 0:
		return nil, unix.EAGAIN
	}
	return b[:m], 0
}

// RecvMsg implements controlReceiver: Recv, with TCP_CM_INQ when the
// socket has TCP_INQ on.
func (d *tcpDUT) RecvMsg(fd, n, flags int) ([]byte, []byte, syscall.Errno) {
	b, e := d.Recv(fd, n, flags)
	s, _ := d.sock(fd)
	if s == nil || s.c == nil {
		return recvInq(b, e, false, nil)
	}
	return recvInq(b, e, s.inq, s.c.c.Info)
}

func (d *tcpDUT) Shutdown(fd, how int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	if e := shutdownArgs(how, s.c != nil); e != 0 {
		return e
	}
	if how != unix.SHUT_WR {
		s.shutRd = true
	}
	if how != unix.SHUT_RD {
		s.c.c.CloseWrite()
	}
	d.flushAll()
	return 0
}

func (d *tcpDUT) Close(fd int) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	d.fds.del(fd)
	for _, c := range s.queue {
		c.c.Abort()
		c.owner = nil
	}
	if s.c != nil {
		if s.linger0 {
			s.c.c.Abort()
		} else {
			s.c.c.Close()
		}
		s.c.owner = nil
	}
	d.flushAll()
	return 0
}

// tcpLive is a tcp DUT connection as setsockopt changes it.
type tcpLive struct{ c *tcp.Conn }

func (l tcpLive) SetRecvBuffer(n int)            { l.c.SetRecvBufferSize(n) }
func (l tcpLive) SetSendBuffer(n int)            { l.c.SetSendBufferSize(n) }
func (l tcpLive) SetNoDelay(on bool)             { l.c.SetNoDelay(on) }
func (l tcpLive) SetUserTimeout(d time.Duration) { l.c.SetUserTimeout(d) }
func (l tcpLive) SetLinger0(bool)                {} // Close reads sockOpts.linger0
func (l tcpLive) Info() tcp.Info                 { return l.c.Info() }
func (l tcpLive) SetNotSentLowat(n uint32)       { l.c.SetNotSentLowat(n) }
func (l tcpLive) SetCork(on bool)                { l.c.SetCork(on) }

func (l tcpLive) SetKeepAlive(cfg *tcp.Config) {
	l.c.SetKeepAlive(cfg.KeepAlive, cond2d(cfg.KeepIdle, 2*time.Hour), cond2d(cfg.KeepInterval, 75*time.Second), cond2(cfg.KeepCount, 9))
}

func cond2d(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

func (s *tcpSock) live() liveConn {
	if s.c == nil {
		return nil
	}
	return tcpLive{s.c.c}
}

func (d *tcpDUT) SetSockopt(fd, level, name int, v OptVal) syscall.Errno {
	s, e := d.sock(fd)
	if e != 0 {
		return e
	}
	if ok, e := s.set(s.live(), level, name, v); ok {
		if e == 0 {
			d.flushAll()
		}
		return e
	}
	switch {
	case level == unix.IPPROTO_IP && name == unix.IP_TOS, level == unix.IPPROTO_IPV6 && name == unix.IPV6_TCLASS:
		// The engine does no ECN: the ECN bits stay as written.
		s.tos = v.Int & 0xff
		if s.c != nil {
			s.c.tos = s.tos
		}
	case level == unix.IPPROTO_IP && name == unix.IP_MTU_DISCOVER:
		// The engine does no path MTU discovery; DF follows the
		// setting as Linux sets it (IP_PMTUDISC_DONT clears it).
		if v.Int < unix.IP_PMTUDISC_DONT || v.Int > unix.IP_PMTUDISC_OMIT {
			return unix.EINVAL
		}
		s.noDF = v.Int == unix.IP_PMTUDISC_DONT
		if s.c != nil {
			s.c.noDF = s.noDF
		}
	default:
		return unix.ENOPROTOOPT
	}
	s.keep(level, name, v.Int)
	d.flushAll()
	return 0
}

func (d *tcpDUT) GetSockopt(fd, level, name int) (OptVal, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return OptVal{}, e
	}
	if level == unix.SOL_SOCKET && name == unix.SO_ERROR {
		if s.c == nil || s.c.errRep || s.c.c.Err() == nil {
			return OptVal{}, 0
		}
		s.c.errRep = true
		return OptVal{Int: int(errnoOf(s.c.c.Err()))}, 0
	}
	if v, ok := s.get(s.live(), level, name); ok {
		return v, 0
	}
	return OptVal{}, unix.ENOPROTOOPT
}

func (d *tcpDUT) TCPInfo(fd int) (map[string]int64, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return nil, e
	}
	if s.c == nil {
		st := int64(7)
		if s.listening {
			st = 10
		}
		return map[string]int64{"tcpi_state": st}, 0
	}
	return engineInfo(s.c.c.InfoAt(d.now)), 0
}

// linuxStateNumbers are tcpi_state values (include/net/tcp_states.h).
var linuxStateNumbers = map[tcp.State]int64{
	tcp.StateEstablished: 1, tcp.StateSynSent: 2, tcp.StateSynReceived: 3,
	tcp.StateFinWait1: 4, tcp.StateFinWait2: 5, tcp.StateTimeWait: 6,
	tcp.StateClosed: 7, tcp.StateCloseWait: 8, tcp.StateLastAck: 9,
	tcp.StateListen: 10, tcp.StateClosing: 11,
}

// engineInfo expresses tcp.Info as Linux's tcp_info fields. Where Linux
// counts packets (cwnd, ssthresh, unacked, sacked, lost) the engine's bytes
// are divided by the MSS, rounding up.
func engineInfo(in tcp.Info) map[string]int64 {
	mss := int64(max(in.MSS, 1))
	pk := func(b uint32) int64 { return (int64(b) + mss - 1) / mss }
	opts := int64(0)
	if in.Timestamps {
		opts |= 1 // TCPI_OPT_TIMESTAMPS
	}
	if in.SACK {
		opts |= 2 // TCPI_OPT_SACK
	}
	if in.SndWScale >= 0 {
		opts |= 4 // TCPI_OPT_WSCALE
	}
	ca := int64(0) // TCP_CA_Open
	switch {
	case in.CurrentRetransmits > 0:
		ca = 4 // TCP_CA_Loss
	case in.InRecovery:
		ca = 3 // TCP_CA_Recovery
	}
	m := map[string]int64{
		"tcpi_state":          linuxStateNumbers[in.State],
		"tcpi_ca_state":       ca,
		"tcpi_retransmits":    int64(in.CurrentRetransmits),
		"tcpi_probes":         int64(in.ZeroWindowProbes + in.KeepaliveProbes),
		"tcpi_backoff":        int64(in.CurrentRetransmits),
		"tcpi_options":        opts,
		"tcpi_rto":            in.RTO.Microseconds(),
		"tcpi_snd_mss":        int64(in.MSS),
		"tcpi_advmss":         int64(in.AdvMSS),
		"tcpi_last_data_recv": in.LastDataRecv.Milliseconds(),
		"tcpi_busy_time":      in.BusyTime.Microseconds(),
		"tcpi_rwnd_limited":   in.RwndLimited.Microseconds(),
		"tcpi_rcv_mss":        int64(in.RcvMSS),
		"tcpi_unacked":        pk(in.Unacked),
		"tcpi_sacked":         int64(in.SACKed),
		"tcpi_lost":           int64(in.Lost),
		"tcpi_retrans":        int64(in.Retrans),
		"tcpi_rtt":            in.RTT.Microseconds(),
		"tcpi_rttvar":         in.RTTVar.Microseconds(),
		"tcpi_snd_ssthresh":   pk(in.SSThresh),
		"tcpi_snd_cwnd":       pk(in.CWnd),
		"tcpi_reordering":     int64(in.Reordering),
		"tcpi_reord_seen":     int64(in.ReordSeen),
		"tcpi_dsack_dups":     int64(in.DSACKDups),
		"tcpi_total_retrans":  int64(in.TotalRetrans),
		"tcpi_bytes_acked":    int64(in.BytesAcked),
		"tcpi_bytes_received": int64(in.BytesReceived),
		"tcpi_bytes_sent":     int64(in.BytesSent),
		"tcpi_bytes_retrans":  int64(in.BytesRetrans),
		"tcpi_segs_in":        int64(in.SegsIn),
		"tcpi_segs_out":       int64(in.SegsOut),
		"tcpi_data_segs_in":   int64(in.DataSegsIn),
		"tcpi_data_segs_out":  int64(in.DataSegsOut),
		"tcpi_notsent_bytes":  int64(in.NotSent),
		"tcpi_snd_wnd":        int64(in.SndWnd),
		"tcpi_rcv_wnd":        int64(in.RcvWnd),
	}
	if in.SndWScale >= 0 {
		m["tcpi_snd_wscale"], m["tcpi_rcv_wscale"] = int64(in.SndWScale), int64(in.RcvWScale)
	}
	if in.SSThresh >= 1<<30 {
		m["tcpi_snd_ssthresh"] = 0x7fffffff // TCP_INFINITE_SSTHRESH
	}
	return m
}

func (d *tcpDUT) Poll(fd int) int16 {
	s, e := d.sock(fd)
	if e != 0 {
		return unix.POLLNVAL
	}
	if s.listening {
		for _, c := range s.queue {
			if st := c.c.State(); st != tcp.StateSynReceived && !c.c.Done() {
				return unix.POLLIN
			}
		}
		return 0
	}
	if s.c == nil {
		return unix.POLLOUT | unix.POLLHUP
	}
	c := s.c.c
	return connPoll(c.InfoAt(d.now), s.shutRd, s.connecting, c.Err(), !s.c.errRep)
}

func (d *tcpDUT) Ioctl(fd, req int) (int, syscall.Errno) {
	s, e := d.sock(fd)
	if e != 0 {
		return -1, e
	}
	if s.listening {
		return -1, unix.EINVAL
	}
	if s.c == nil {
		return 0, 0
	}
	return infoIoctl(s.c.c.Info(), req)
}

// infoIoctl answers SIOCINQ, SIOCOUTQ and SIOCOUTQNSD from an engine's
// Info, as Linux answers them from the socket's queues.
func infoIoctl(in tcp.Info, req int) (int, syscall.Errno) {
	switch req {
	case unix.SIOCINQ:
		return in.Readable, 0
	case unix.SIOCOUTQ:
		return int(in.Unacked) + int(in.NotSent), 0
	case unix.SIOCOUTQNSD:
		return int(in.NotSent), 0
	}
	return -1, unix.EOPNOTSUPP
}

// Sysctl maps the settings the engine has an equivalent for onto the
// configuration of sockets created from now on.
func (d *tcpDUT) Sysctl(key, value string) error {
	return engineSysctl(&d.cfg, key, value)
}

// engineSysctl applies a Linux sysctl to a tcp.Config.
func engineSysctl(cfg *tcp.Config, key, value string) error {
	num := func() (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil {
			return 0, fmt.Errorf("%s=%q: want a number", key, value)
		}
		return n, nil
	}
	switch key {
	case "net.ipv4.tcp_sack", "net.ipv4.tcp_timestamps", "net.ipv4.tcp_window_scaling":
		n, err := num()
		if err != nil {
			return err
		}
		switch key {
		case "net.ipv4.tcp_sack":
			cfg.DisableSACK = n == 0
		case "net.ipv4.tcp_timestamps":
			cfg.DisableTimestamps = n == 0
		default:
			cfg.DisableWindowScale = n == 0
		}
	case "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem":
		f := strings.Fields(value)
		if len(f) != 3 {
			return fmt.Errorf("%s=%q: want min default max", key, value)
		}
		def, err := strconv.Atoi(f[1])
		if err != nil {
			return fmt.Errorf("%s=%q: want numbers", key, value)
		}
		def = min(max(def, tcp.MinBufferSize), tcp.MaxBufferSize)
		if key == "net.ipv4.tcp_rmem" {
			cfg.RecvBufferSize = def
		} else {
			cfg.SendBufferSize = def
		}
	case "net.ipv4.tcp_congestion_control":
		switch value {
		case "cubic":
			cfg.CongestionControl = "cubic"
		case "reno":
			cfg.CongestionControl = "newreno"
		default:
			return fmt.Errorf("%s=%s: %w (the engine has cubic and reno)", key, value, ErrNoEquivalent)
		}
	case "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_retries2":
		n, err := num()
		if err != nil {
			return err
		}
		switch key {
		case "net.ipv4.tcp_syn_retries":
			cfg.SynRetries = n
		case "net.ipv4.tcp_synack_retries":
			cfg.SynAckRetries = n
		default:
			cfg.Retries2 = n
		}
	case "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes":
		n, err := num()
		if err != nil {
			return err
		}
		switch key {
		case "net.ipv4.tcp_keepalive_time":
			cfg.KeepIdle = time.Duration(n) * time.Second
		case "net.ipv4.tcp_keepalive_intvl":
			cfg.KeepInterval = time.Duration(n) * time.Second
		default:
			cfg.KeepCount = n
		}
	case "net.ipv4.tcp_notsent_lowat":
		// Linux's default, UINT_MAX (-1 as a signed int), is no mark.
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return fmt.Errorf("%s=%q: want a number", key, value)
		}
		cfg.NotSentLowat = 0
		if n > 0 && n < 1<<32-1 {
			cfg.NotSentLowat = uint32(n)
		}
	case "net.ipv4.tcp_fin_timeout":
		n, err := num()
		if err != nil {
			return err
		}
		cfg.FinWait2Timeout = time.Duration(n) * time.Second
	case "net.ipv4.tcp_recovery":
		// A bit mask (Documentation/networking/ip-sysctl.rst): 0x1 is
		// RACK loss detection (RFC 8985); without it Linux counts
		// duplicate ACKs and SACKed segments (RFC 6675). 0x2 (a static
		// reordering window) and 0x4 (no DupThresh fallback) have no
		// equivalent.
		n, err := num()
		if err != nil {
			return err
		}
		if n&^1 != 0 {
			return fmt.Errorf("%s=%d: %w (bits 0x2 and 0x4)", key, n, ErrNoEquivalent)
		}
		if n&1 != 0 {
			cfg.Recovery = tcp.RecoveryRACK
		} else {
			cfg.Recovery = tcp.RecoverySACK
		}
	case "net.ipv4.tcp_early_retrans":
		// 3 and 4 turn on tail-loss probes (RFC 8985 §7), the rest
		// leave them off; the early retransmit of RFC 5827 that 1 and 2
		// once chose is gone from Linux (RACK replaced it).
		n, err := num()
		if err != nil {
			return err
		}
		if n < 0 || n > 4 {
			return fmt.Errorf("%s=%d: want 0 to 4", key, n)
		}
		cfg.DisableTLP = n < 3
	case "net.ipv4.tcp_min_tso_segs", "net.ipv4.tcp_tso_win_divisor",
		"net.ipv4.tcp_pacing_ss_ratio", "net.ipv4.tcp_pacing_ca_ratio":
		// Super-segment sizing (tcp/tso.go), with Linux's ranges:
		// min_tso_segs 1..255, the divisor 0..255 (0: defer only while
		// at most 3 segments fit), the ratios 0..1000 percent (0, a
		// rate of zero in Linux, has no equivalent).
		n, err := num()
		if err != nil {
			return err
		}
		switch key {
		case "net.ipv4.tcp_min_tso_segs":
			if n < 1 || n > 255 {
				return fmt.Errorf("%s=%d: want 1 to 255", key, n)
			}
			cfg.MinTSOSegs = uint8(n)
		case "net.ipv4.tcp_tso_win_divisor":
			if n < 0 || n > 255 {
				return fmt.Errorf("%s=%d: want 0 to 255", key, n)
			}
			cfg.TSOWinDivisor = int8(min(n, 127))
			if n == 0 {
				cfg.TSOWinDivisor = -1
			}
		default:
			if n < 0 || n > 1000 {
				return fmt.Errorf("%s=%d: want 0 to 1000", key, n)
			}
			if n == 0 {
				return fmt.Errorf("%s=0: %w (a pacing rate of zero)", key, ErrNoEquivalent)
			}
			if key == "net.ipv4.tcp_pacing_ss_ratio" {
				cfg.PacingSSRatio = uint16(n)
			} else {
				cfg.PacingCARatio = uint16(n)
			}
		}
	case "net.ipv4.tcp_ecn":
		n, err := num()
		if err != nil {
			return err
		}
		// Linux's meanings (RFC 3168 ECN): 0 never, 1 ask and accept,
		// 2 accept only; 3 and up ask for AccECN (RFC 9768), which
		// ustack lacks.
		switch n {
		case 0:
			cfg.ECN = tcp.ECNOff
		case 1:
			cfg.ECN = tcp.ECNOn
		case 2:
			cfg.ECN = tcp.ECNAccept
		default:
			return &MissingFeature{Feature: featureAccECN, Setting: fmt.Sprintf("%s=%d", key, n)}
		}
	default:
		return fmt.Errorf("%s: %w", key, ErrNoEquivalent)
	}
	return nil
}

func (d *tcpDUT) Destroy() {}
