package drill

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/syserr"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/tcp"
)

// gvisorDUT is `--dut gvisor`: gVisor's netstack (the oracle's GVisorDUT
// stack, link and manual clock) with one tcpip.Endpoint per fd. Errors are
// translated to errno as gVisor's own sentry translates them
// (syserr.TranslateNetstackError).
type gvisorDUT struct {
	*integration.GVisorDUT
	o   Options
	fds fdTable[*gsock]
}

type gsock struct {
	ep        tcpip.Endpoint
	wq        *waiter.Queue
	listening bool
	bound     bool
	shutRd    bool
}

func newGVisorDUT(o Options) (*gvisorDUT, error) {
	g, err := integration.NewGVisorDUT(integration.GVisorOptions{IPv6: o.IPv6, MTU: uint32(o.MTU)})
	if err != nil {
		return nil, err
	}
	return &gvisorDUT{GVisorDUT: g, o: o}, nil
}

func gErrno(err tcpip.Error) syscall.Errno {
	if err == nil {
		return 0
	}
	if _, ok := err.(*tcpip.ErrWouldBlock); ok {
		return unix.EAGAIN
	}
	return syscall.Errno(syserr.TranslateNetstackError(err).ToLinux())
}

func (g *gvisorDUT) Inject(p *Inbound) { g.InjectIP(&p.Seg, p.IP) }

// BuildPacket implements packetBuilder.
func (g *gvisorDUT) BuildPacket(toPeer bool, seg *tcp.Segment, ip integration.IPFields) []byte {
	return integration.BuildPacketIP(g.o.IPv6, toPeer, seg, ip)
}

func (g *gvisorDUT) sock(fd int) (*gsock, syscall.Errno) {
	s, ok := g.fds.get(fd)
	if !ok {
		return nil, unix.EBADF
	}
	return s, 0
}

func (g *gvisorDUT) proto() tcpip.NetworkProtocolNumber {
	if g.o.IPv6 {
		return ipv6.ProtocolNumber
	}
	return ipv4.ProtocolNumber
}

func (g *gvisorDUT) addr(peer bool) tcpip.FullAddress {
	a, p := integration.DUTAddr4[:], integration.DUTPort
	if peer {
		a, p = integration.PeerAddr4[:], integration.PeerPort
	}
	if g.o.IPv6 {
		a = integration.DUTAddr6[:]
		if peer {
			a = integration.PeerAddr6[:]
		}
	}
	return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(a), Port: uint16(p)}
}

func (g *gvisorDUT) Socket() (int, syscall.Errno) {
	var wq waiter.Queue
	ep, err := g.Stack().NewEndpoint(gtcp.ProtocolNumber, g.proto(), &wq)
	if err != nil {
		return -1, gErrno(err)
	}
	return g.fds.add(&gsock{ep: ep, wq: &wq}), 0
}

func (g *gvisorDUT) Bind(fd int) syscall.Errno {
	s, e := g.sock(fd)
	if e != 0 {
		return e
	}
	err := s.ep.Bind(g.addr(false))
	g.Settle()
	if err == nil {
		s.bound = true
	}
	return gErrno(err)
}

func (g *gvisorDUT) Listen(fd, backlog int) syscall.Errno {
	s, e := g.sock(fd)
	if e != 0 {
		return e
	}
	if !s.bound {
		if e := g.Bind(fd); e != 0 {
			return e
		}
	}
	// One more than asked, as gVisor's sentry does for Linux parity (the
	// accept queue holds backlog+1).
	err := s.ep.Listen(max(backlog, 0) + 1)
	g.Settle()
	if err == nil {
		s.listening = true
	}
	return gErrno(err)
}

func (g *gvisorDUT) Accept(fd int) (int, syscall.Errno) {
	s, e := g.sock(fd)
	if e != 0 {
		return -1, e
	}
	ep, wq, err := s.ep.Accept(nil)
	g.Settle()
	if err != nil {
		return -1, gErrno(err)
	}
	return g.fds.add(&gsock{ep: ep, wq: wq, bound: true}), 0
}

func (g *gvisorDUT) Connect(fd int) syscall.Errno {
	s, e := g.sock(fd)
	if e != 0 {
		return e
	}
	if !s.bound {
		if err := s.ep.Bind(g.addr(false)); err != nil {
			return gErrno(err)
		}
		s.bound = true
	}
	err := s.ep.Connect(g.addr(true))
	g.Settle()
	switch err.(type) {
	case *tcpip.ErrConnectStarted:
		return unix.EINPROGRESS
	}
	return gErrno(err)
}

func (g *gvisorDUT) Send(fd int, p []byte, flags int) (int, syscall.Errno) {
	s, e := g.sock(fd)
	if e != 0 {
		return -1, e
	}
	if flags&^(unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL|unix.MSG_MORE) != 0 {
		return -1, unix.EOPNOTSUPP
	}
	var r bytes.Reader
	r.Reset(p)
	n, err := s.ep.Write(&r, tcpip.WriteOptions{More: flags&unix.MSG_MORE != 0})
	g.Settle()
	if err != nil {
		return -1, gErrno(err)
	}
	return int(n), 0
}

func (g *gvisorDUT) Recv(fd int, n int, flags int) ([]byte, syscall.Errno) {
	s, e := g.sock(fd)
	if e != 0 {
		return nil, e
	}
	if flags&^(unix.MSG_DONTWAIT|unix.MSG_PEEK) != 0 {
		return nil, unix.EOPNOTSUPP
	}
	var buf bytes.Buffer
	_, err := s.ep.Read(&tcpip.LimitedWriter{W: &buf, N: int64(n)}, tcpip.ReadOptions{Peek: flags&unix.MSG_PEEK != 0})
	g.Settle()
	if _, ok := err.(*tcpip.ErrClosedForReceive); ok {
		return buf.Bytes()[:0], 0
	}
	if _, ok := err.(*tcpip.ErrWouldBlock); ok && s.shutRd {
		return buf.Bytes()[:0], 0
	}
	if err != nil {
		return nil, gErrno(err)
	}
	return buf.Bytes(), 0
}

func (g *gvisorDUT) Shutdown(fd, how int) syscall.Errno {
	s, e := g.sock(fd)
	if e != 0 {
		return e
	}
	var f tcpip.ShutdownFlags
	switch how {
	case unix.SHUT_RD:
		f = tcpip.ShutdownRead
	case unix.SHUT_WR:
		f = tcpip.ShutdownWrite
	case unix.SHUT_RDWR:
		f = tcpip.ShutdownRead | tcpip.ShutdownWrite
	default:
		return unix.EINVAL
	}
	err := s.ep.Shutdown(f)
	g.Settle()
	if err == nil && f&tcpip.ShutdownRead != 0 {
		s.shutRd = true
	}
	return gErrno(err)
}

func (g *gvisorDUT) Close(fd int) syscall.Errno {
	s, e := g.sock(fd)
	if e != 0 {
		return e
	}
	g.fds.del(fd)
	s.ep.Close()
	g.Settle()
	return 0
}

func (g *gvisorDUT) SetSockopt(fd, level, name int, v OptVal) syscall.Errno {
	s, e := g.sock(fd)
	if e != 0 {
		return e
	}
	so := s.ep.SocketOptions()
	var err tcpip.Error
	on := v.Int != 0
	switch level {
	case unix.SOL_SOCKET:
		switch name {
		case unix.SO_REUSEADDR:
			so.SetReuseAddress(on)
		case unix.SO_REUSEPORT:
			so.SetReusePort(on)
		case unix.SO_KEEPALIVE:
			so.SetKeepAlive(on)
		case unix.SO_LINGER:
			so.SetLinger(tcpip.LingerOption{Enabled: v.Linger.Onoff != 0, Timeout: time.Duration(v.Linger.Linger) * time.Second})
		case unix.SO_RCVBUF:
			so.SetReceiveBufferSize(int64(v.Int)*2, true)
		case unix.SO_SNDBUF:
			so.SetSendBufferSize(int64(v.Int)*2, true)
		default:
			return unix.ENOPROTOOPT
		}
	case unix.IPPROTO_TCP:
		switch name {
		case unix.TCP_NODELAY:
			so.SetDelayOption(!on)
		case unix.TCP_CORK:
			so.SetCorkOption(on)
		case unix.TCP_KEEPIDLE:
			o := tcpip.KeepaliveIdleOption(time.Duration(v.Int) * time.Second)
			err = s.ep.SetSockOpt(&o)
		case unix.TCP_KEEPINTVL:
			o := tcpip.KeepaliveIntervalOption(time.Duration(v.Int) * time.Second)
			err = s.ep.SetSockOpt(&o)
		case unix.TCP_KEEPCNT:
			err = s.ep.SetSockOptInt(tcpip.KeepaliveCountOption, v.Int)
		case unix.TCP_USER_TIMEOUT:
			o := tcpip.TCPUserTimeoutOption(time.Duration(v.Int) * time.Millisecond)
			err = s.ep.SetSockOpt(&o)
		case unix.TCP_MAXSEG:
			err = s.ep.SetSockOptInt(tcpip.MaxSegOption, v.Int)
		case unix.TCP_SYNCNT:
			err = s.ep.SetSockOptInt(tcpip.TCPSynCountOption, v.Int)
		case unix.TCP_CONGESTION:
			o := tcpip.CongestionControlOption(v.Str)
			err = s.ep.SetSockOpt(&o)
		default:
			return unix.ENOPROTOOPT
		}
	case unix.IPPROTO_IP:
		switch name {
		case unix.IP_TOS:
			err = s.ep.SetSockOptInt(tcpip.IPv4TOSOption, v.Int)
		case unix.IP_MTU_DISCOVER:
			err = s.ep.SetSockOptInt(tcpip.MTUDiscoverOption, v.Int)
		default:
			return unix.ENOPROTOOPT
		}
	case unix.IPPROTO_IPV6:
		switch name {
		case unix.IPV6_TCLASS:
			err = s.ep.SetSockOptInt(tcpip.IPv6TrafficClassOption, v.Int)
		default:
			return unix.ENOPROTOOPT
		}
	default:
		return unix.ENOPROTOOPT
	}
	g.Settle()
	return gErrno(err)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (g *gvisorDUT) GetSockopt(fd, level, name int) (OptVal, syscall.Errno) {
	s, e := g.sock(fd)
	if e != 0 {
		return OptVal{}, e
	}
	so := s.ep.SocketOptions()
	getInt := func(o tcpip.SockOptInt) (OptVal, syscall.Errno) {
		v, err := s.ep.GetSockOptInt(o)
		return OptVal{Int: v}, gErrno(err)
	}
	switch level {
	case unix.SOL_SOCKET:
		switch name {
		case unix.SO_ERROR:
			err := s.ep.LastError()
			if err == nil {
				return OptVal{}, 0
			}
			return OptVal{Int: int(gErrno(err))}, 0
		case unix.SO_REUSEADDR:
			return OptVal{Int: b2i(so.GetReuseAddress())}, 0
		case unix.SO_KEEPALIVE:
			return OptVal{Int: b2i(so.GetKeepAlive())}, 0
		case unix.SO_RCVBUF:
			return OptVal{Int: int(so.GetReceiveBufferSize())}, 0
		case unix.SO_SNDBUF:
			return OptVal{Int: int(so.GetSendBufferSize())}, 0
		case unix.SO_LINGER:
			l := so.GetLinger()
			return OptVal{Linger: unix.Linger{Onoff: int32(b2i(l.Enabled)), Linger: int32(l.Timeout / time.Second)}}, 0
		}
	case unix.IPPROTO_TCP:
		switch name {
		case unix.TCP_NODELAY:
			return OptVal{Int: b2i(!so.GetDelayOption())}, 0
		case unix.TCP_MAXSEG:
			return getInt(tcpip.MaxSegOption)
		case unix.TCP_KEEPCNT:
			return getInt(tcpip.KeepaliveCountOption)
		case unix.TCP_CONGESTION:
			var o tcpip.CongestionControlOption
			err := s.ep.GetSockOpt(&o)
			return OptVal{Str: string(o)}, gErrno(err)
		case unix.TCP_USER_TIMEOUT:
			var o tcpip.TCPUserTimeoutOption
			err := s.ep.GetSockOpt(&o)
			return OptVal{Int: int(time.Duration(o) / time.Millisecond)}, gErrno(err)
		}
	case unix.IPPROTO_IP:
		if name == unix.IP_TOS {
			return getInt(tcpip.IPv4TOSOption)
		}
	}
	return OptVal{}, unix.ENOPROTOOPT
}

// gvisorStates are tcpi_state values for gVisor's endpoint states.
var gvisorStates = map[gtcp.EndpointState]int64{
	gtcp.StateEstablished: 1, gtcp.StateSynSent: 2, gtcp.StateConnecting: 2, gtcp.StateSynRecv: 3,
	gtcp.StateFinWait1: 4, gtcp.StateFinWait2: 5, gtcp.StateTimeWait: 6,
	gtcp.StateInitial: 7, gtcp.StateBound: 7, gtcp.StateClose: 7, gtcp.StateError: 7,
	gtcp.StateCloseWait: 8, gtcp.StateLastAck: 9, gtcp.StateListen: 10, gtcp.StateClosing: 11,
}

func (g *gvisorDUT) TCPInfo(fd int) (map[string]int64, syscall.Errno) {
	s, e := g.sock(fd)
	if e != 0 {
		return nil, e
	}
	var o tcpip.TCPInfoOption
	if err := s.ep.GetSockOpt(&o); err != nil {
		return nil, gErrno(err)
	}
	ca := map[tcpip.CongestionControlState]int64{tcpip.Open: 0, tcpip.RTORecovery: 4, tcpip.FastRecovery: 3, tcpip.SACKRecovery: 3, tcpip.Disorder: 1}
	m := map[string]int64{
		"tcpi_state":        gvisorStates[gtcp.EndpointState(s.ep.State())],
		"tcpi_ca_state":     ca[o.CcState],
		"tcpi_rtt":          o.RTT.Microseconds(),
		"tcpi_rttvar":       o.RTTVar.Microseconds(),
		"tcpi_rto":          o.RTO.Microseconds(),
		"tcpi_snd_cwnd":     int64(o.SndCwnd),
		"tcpi_snd_ssthresh": int64(o.SndSsthresh),
	}
	if o.ReorderSeen {
		m["tcpi_reord_seen"] = 1
	} else {
		m["tcpi_reord_seen"] = 0
	}
	return m, 0
}

func (g *gvisorDUT) Poll(fd int) int16 {
	s, e := g.sock(fd)
	if e != 0 {
		return unix.POLLNVAL
	}
	m := s.ep.Readiness(waiter.ReadableEvents | waiter.WritableEvents | waiter.EventErr | waiter.EventHUp | waiter.EventRdHUp)
	var r int16
	if m&waiter.ReadableEvents != 0 {
		r |= unix.POLLIN
	}
	if m&waiter.WritableEvents != 0 {
		r |= unix.POLLOUT
	}
	if m&waiter.EventErr != 0 {
		r |= unix.POLLERR
	}
	if m&waiter.EventHUp != 0 {
		r |= unix.POLLHUP
	}
	if m&waiter.EventRdHUp != 0 {
		r |= unix.POLLRDHUP
	}
	return r
}

func (g *gvisorDUT) Ioctl(fd, req int) (int, syscall.Errno) {
	s, e := g.sock(fd)
	if e != 0 {
		return -1, e
	}
	var o tcpip.SockOptInt
	switch req {
	case unix.SIOCINQ:
		o = tcpip.ReceiveQueueSizeOption
	case unix.SIOCOUTQ:
		o = tcpip.SendQueueSizeOption
	default:
		return -1, unix.EOPNOTSUPP
	}
	v, err := s.ep.GetSockOptInt(o)
	return v, gErrno(err)
}

// Sysctl maps the settings gVisor has a stack-wide equivalent for.
func (g *gvisorDUT) Sysctl(key, value string) error {
	st := g.Stack()
	set := func(o tcpip.SettableTransportProtocolOption) error {
		if err := st.SetTransportProtocolOption(gtcp.ProtocolNumber, o); err != nil {
			return fmt.Errorf("%s=%s: gvisor: %s", key, value, err)
		}
		return nil
	}
	n, numErr := strconv.Atoi(strings.TrimSpace(value))
	needNum := func() error {
		if numErr != nil {
			return fmt.Errorf("%s=%q: want a number", key, value)
		}
		return nil
	}
	switch key {
	case "net.ipv4.tcp_sack":
		if err := needNum(); err != nil {
			return err
		}
		o := tcpip.TCPSACKEnabled(n != 0)
		return set(&o)
	case "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem":
		f := strings.Fields(value)
		var v [3]int
		for i := range v {
			if len(f) != 3 {
				return fmt.Errorf("%s=%q: want min default max", key, value)
			}
			x, err := strconv.Atoi(f[i])
			if err != nil {
				return fmt.Errorf("%s=%q: want numbers", key, value)
			}
			v[i] = x
		}
		if key == "net.ipv4.tcp_rmem" {
			o := tcpip.TCPReceiveBufferSizeRangeOption{Min: v[0], Default: v[1], Max: v[2]}
			return set(&o)
		}
		o := tcpip.TCPSendBufferSizeRangeOption{Min: v[0], Default: v[1], Max: v[2]}
		return set(&o)
	case "net.ipv4.tcp_congestion_control":
		o := tcpip.CongestionControlOption(value)
		return set(&o)
	case "net.ipv4.tcp_syn_retries":
		if err := needNum(); err != nil {
			return err
		}
		o := tcpip.TCPSynRetriesOption(n)
		return set(&o)
	case "net.ipv4.tcp_recovery":
		if err := needNum(); err != nil {
			return err
		}
		o := tcpip.TCPRecovery(n)
		return set(&o)
	case "net.ipv4.tcp_moderate_rcvbuf":
		if err := needNum(); err != nil {
			return err
		}
		o := tcpip.TCPModerateReceiveBufferOption(n != 0)
		return set(&o)
	case "net.ipv4.tcp_fin_timeout":
		if err := needNum(); err != nil {
			return err
		}
		o := tcpip.TCPLingerTimeoutOption(time.Duration(n) * time.Second)
		return set(&o)
	case "net.ipv4.tcp_timestamps", "net.ipv4.tcp_window_scaling", "net.ipv4.tcp_ecn":
		// gVisor always offers timestamps and window scaling and never
		// ECN: only the value it has anyway is accepted.
		if err := needNum(); err != nil {
			return err
		}
		if (key == "net.ipv4.tcp_ecn") == (n == 0) {
			return nil
		}
		if key == "net.ipv4.tcp_ecn" {
			return &MissingFeature{Feature: featureECN, Setting: fmt.Sprintf("%s=%d", key, n)}
		}
		return fmt.Errorf("%s=%d: %w in gVisor", key, n, ErrNoEquivalent)
	}
	return fmt.Errorf("%s: %w in gVisor", key, ErrNoEquivalent)
}
