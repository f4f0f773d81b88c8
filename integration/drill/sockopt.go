package drill

import (
	"encoding/binary"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/tcp"
)

// sockOpts is the socket-option state of the DUTs built on ustack's engine
// (tcp, ustack): the tcp.Config a connection is made with, SO_LINGER
// {1, 0}, and the integer values getsockopt reads back. Both DUTs keep
// the same options the same way; only the SOL_SOCKET SO_ERROR and IP-level
// options (what each puts in the IP header) are their own.
type sockOpts struct {
	cfg     tcp.Config
	linger0 bool
	cork    bool           // TCP_CORK, applied when the connection is made
	inq     bool           // TCP_INQ: recvmsg reports TCP_CM_INQ
	ints    map[[2]int]int // options kept for getsockopt only
}

// inqHint is TCP_CM_INQ's value after a read, as Linux's tcp_inq_hint
// counts it: the bytes still queued, plus one once the peer's FIN is in.
func inqHint(in tcp.Info) int {
	n := in.Readable
	switch in.State {
	case tcp.StateCloseWait, tcp.StateLastAck, tcp.StateClosing, tcp.StateTimeWait, tcp.StateClosed:
		n++
	}
	return n
}

// inqControl builds the control message recvmsg returns with TCP_INQ on:
// SOL_TCP TCP_CM_INQ with an int.
func inqControl(n int) []byte {
	b := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_TCP, unix.TCP_CM_INQ
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(b[unix.CmsgLen(0):], uint32(int32(n)))
	return b
}

// pollOut is POLLOUT as Linux's tcp_poll decides it for a connection that
// can send: room in the send buffer and, with a not-sent low-water mark,
// fewer unsent bytes than the mark (tcp_stream_memory_free).
func pollOut(in tcp.Info) bool {
	if in.NotSentLowat != 0 && in.NotSent >= in.NotSentLowat {
		return false
	}
	return in.SndBuf > int(in.Unacked)+int(in.NotSent)
}

// connPoll is poll(2)'s revents for a connection of an engine DUT (tcp,
// ustack) from its Info: shutRd is SHUT_RD done, connecting a connect not
// yet reported, err the connection's error and errPending that no call
// has reported it yet.
func connPoll(in tcp.Info, shutRd, connecting bool, err error, errPending bool) int16 {
	st := in.State
	var rcvShut, sndShut bool
	switch st {
	case tcp.StateCloseWait, tcp.StateLastAck, tcp.StateClosing, tcp.StateTimeWait:
		rcvShut = true
	}
	switch st {
	case tcp.StateFinWait1, tcp.StateFinWait2, tcp.StateClosing, tcp.StateLastAck, tcp.StateTimeWait:
		sndShut = true
	}
	rcvShut = rcvShut || shutRd
	if st == tcp.StateClosed {
		if connecting && err == nil {
			return 0
		}
		rcvShut, sndShut = true, true
	}
	var m int16
	if rcvShut && sndShut {
		m |= unix.POLLHUP
	}
	if rcvShut {
		m |= unix.POLLIN | unix.POLLRDHUP
	}
	if st != tcp.StateSynSent && st != tcp.StateSynReceived {
		if in.Readable > 0 {
			m |= unix.POLLIN
		}
		if sndShut || pollOut(in) {
			m |= unix.POLLOUT
		}
	}
	if err != nil && errPending {
		m |= unix.POLLERR
	}
	return m
}

// bindSock is bind(2) for an engine DUT's socket: EINVAL when bound
// already, EADDRINUSE when a listener holds the one address (taken).
func bindSock(bound *bool, taken bool) syscall.Errno {
	switch {
	case *bound:
		return unix.EINVAL
	case taken:
		return unix.EADDRINUSE
	}
	*bound = true
	return 0
}

// shutdownArgs checks shutdown(2)'s how and that there is a connection.
func shutdownArgs(how int, connected bool) syscall.Errno {
	switch {
	case how < unix.SHUT_RD || how > unix.SHUT_RDWR:
		return unix.EINVAL
	case !connected:
		return unix.ENOTCONN
	}
	return 0
}

// recvInq completes an engine DUT's recvmsg (controlReceiver): the data
// and errno of its Recv, with TCP_CM_INQ when the socket has TCP_INQ on
// (info, nil without a connection, reads the connection after the read).
func recvInq(b []byte, e syscall.Errno, inq bool, info func() tcp.Info) ([]byte, []byte, syscall.Errno) {
	if e != 0 {
		return nil, nil, e
	}
	if !inq || info == nil {
		return b, nil, 0
	}
	return b, inqControl(inqHint(info())), 0
}

// sendFlags maps send(2) flags onto the engine's WriteFlags; ok is false
// for a flag it has no equivalent for.
func sendFlags(flags int) (f tcp.WriteFlags, ok bool) {
	if flags&^(unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL|unix.MSG_MORE|unix.MSG_EOR) != 0 {
		return 0, false
	}
	if flags&unix.MSG_MORE != 0 {
		f |= tcp.WriteMore
	}
	if flags&unix.MSG_EOR != 0 {
		f |= tcp.WriteEOR
	}
	return f, true
}

// liveConn is a DUT's connection as setsockopt changes it once it exists.
type liveConn interface {
	SetRecvBuffer(n int)
	SetSendBuffer(n int)
	SetNoDelay(on bool)
	SetUserTimeout(d time.Duration)
	SetLinger0(on bool)
	// SetKeepAlive applies cfg's KeepAlive, KeepIdle, KeepInterval and
	// KeepCount (zero: the default).
	SetKeepAlive(cfg *tcp.Config)
	SetNotSentLowat(n uint32)
	SetCork(on bool)
	Info() tcp.Info
}

func optKey(level, name int) [2]int { return [2]int{level, name} }

// clone copies o for a connection accepted on a listener (options are
// inherited, as on Linux).
func (o *sockOpts) clone() sockOpts {
	n := *o
	if o.ints != nil {
		n.ints = make(map[[2]int]int, len(o.ints))
		for k, v := range o.ints {
			n.ints[k] = v
		}
	}
	return n
}

func (o *sockOpts) keep(level, name, v int) {
	if o.ints == nil {
		o.ints = map[[2]int]int{}
	}
	o.ints[optKey(level, name)] = v
}

// set is setsockopt for the SOL_SOCKET and IPPROTO_TCP options the engine
// has; c is the connection, nil before there is one. It reports false for
// an option it does not handle (the caller's, or ENOPROTOOPT).
func (o *sockOpts) set(c liveConn, level, name int, v OptVal) (bool, syscall.Errno) {
	switch {
	case level == unix.SOL_SOCKET && (name == unix.SO_REUSEADDR || name == unix.SO_REUSEPORT):
	case level == unix.SOL_SOCKET && name == unix.SO_LINGER:
		if v.Linger.Onoff != 0 && v.Linger.Linger != 0 {
			return true, unix.ENOPROTOOPT // a lingering close(2) that blocks
		}
		o.linger0 = v.Linger.Onoff != 0
		if c != nil {
			c.SetLinger0(o.linger0)
		}
		return true, 0
	case level == unix.SOL_SOCKET && (name == unix.SO_RCVBUF || name == unix.SO_SNDBUF):
		if v.Int < 0 {
			return true, unix.EINVAL
		}
		// Linux doubles the value for bookkeeping overhead; the engine's
		// buffers hold payload only, so take it as given.
		n := min(max(v.Int, tcp.MinBufferSize), tcp.MaxBufferSize)
		if name == unix.SO_RCVBUF {
			o.cfg.RecvBufferSize = n
			if c != nil {
				c.SetRecvBuffer(n)
			}
		} else {
			o.cfg.SendBufferSize = n
			if c != nil {
				c.SetSendBuffer(n)
			}
		}
	case level == unix.SOL_SOCKET && name == unix.SO_KEEPALIVE:
		o.cfg.KeepAlive = v.Int != 0
		if c != nil {
			c.SetKeepAlive(&o.cfg)
		}
	case level == unix.IPPROTO_TCP && name == unix.TCP_NODELAY:
		o.cfg.NoDelay = v.Int != 0
		if c != nil {
			c.SetNoDelay(o.cfg.NoDelay)
		}
	case level == unix.IPPROTO_TCP && (name == unix.TCP_KEEPIDLE || name == unix.TCP_KEEPINTVL || name == unix.TCP_KEEPCNT):
		if v.Int < 1 {
			return true, unix.EINVAL
		}
		switch name {
		case unix.TCP_KEEPIDLE:
			o.cfg.KeepIdle = time.Duration(v.Int) * time.Second
		case unix.TCP_KEEPINTVL:
			o.cfg.KeepInterval = time.Duration(v.Int) * time.Second
		default:
			o.cfg.KeepCount = v.Int
		}
		if c != nil {
			c.SetKeepAlive(&o.cfg)
		}
	case level == unix.IPPROTO_TCP && name == unix.TCP_USER_TIMEOUT:
		if v.Int < 0 {
			return true, unix.EINVAL
		}
		o.cfg.UserTimeout = time.Duration(v.Int) * time.Millisecond
		if c != nil {
			c.SetUserTimeout(o.cfg.UserTimeout)
		}
	case level == unix.IPPROTO_TCP && name == unix.TCP_NOTSENT_LOWAT:
		// 0 turns the mark off (on Linux it falls back to the sysctl).
		n := uint32(max(v.Int, 0))
		if v.Int < 0 {
			n = 0 // -1: UINT_MAX, no mark
		}
		o.cfg.NotSentLowat = n
		if c != nil {
			c.SetNotSentLowat(n)
		}
	case level == unix.IPPROTO_TCP && name == unix.TCP_CORK:
		o.cork = v.Int != 0
		if c != nil {
			c.SetCork(o.cork)
		}
	case level == unix.IPPROTO_TCP && name == unix.TCP_INQ:
		o.inq = v.Int != 0
		if o.inq {
			v.Int = 1
		}
	case level == unix.IPPROTO_TCP && name == unix.TCP_MAXSEG:
		if c != nil || v.Int < 88 || v.Int > 65535 {
			return true, unix.EINVAL
		}
		o.cfg.MSS = uint16(v.Int)
	case level == unix.IPPROTO_TCP && name == unix.TCP_CONGESTION:
		var cc string
		switch v.Str {
		case "cubic":
			cc = "cubic"
		case "reno", "newreno":
			cc = "newreno"
		default:
			return true, unix.ENOENT
		}
		if c != nil {
			return true, unix.ENOPROTOOPT // the engine takes it when the connection is made
		}
		o.cfg.CongestionControl = cc
		return true, 0
	default:
		return false, 0
	}
	o.keep(level, name, v.Int)
	return true, 0
}

// get is getsockopt for what set keeps (c nil before a connection). It
// reports false for an option it does not know.
func (o *sockOpts) get(c liveConn, level, name int) (OptVal, bool) {
	switch {
	case level == unix.SOL_SOCKET && name == unix.SO_LINGER:
		if o.linger0 {
			return OptVal{Linger: unix.Linger{Onoff: 1}}, true
		}
		return OptVal{}, true
	case level == unix.IPPROTO_TCP && name == unix.TCP_MAXSEG:
		if c != nil {
			return OptVal{Int: int(c.Info().MSS)}, true
		}
		return OptVal{Int: int(o.cfg.MSS)}, true
	case level == unix.IPPROTO_TCP && name == unix.TCP_CONGESTION:
		if c != nil {
			return OptVal{Str: c.Info().CC}, true
		}
		return OptVal{Str: cond2s(o.cfg.CongestionControl, "newreno")}, true
	}
	if v, ok := o.ints[optKey(level, name)]; ok {
		if level == unix.SOL_SOCKET && (name == unix.SO_RCVBUF || name == unix.SO_SNDBUF) {
			// Linux reports twice what was set (the kernel doubles it
			// for bookkeeping overhead, socket(7)).
			v = 2 * min(max(v, tcp.MinBufferSize), tcp.MaxBufferSize)
		}
		return OptVal{Int: v}, true
	}
	switch {
	case level == unix.SOL_SOCKET && name == unix.SO_RCVBUF:
		return OptVal{Int: cond2(o.cfg.RecvBufferSize, tcp.DefaultBufferSize)}, true
	case level == unix.SOL_SOCKET && name == unix.SO_SNDBUF:
		return OptVal{Int: cond2(o.cfg.SendBufferSize, tcp.DefaultBufferSize)}, true
	case level == unix.SOL_SOCKET && (name == unix.SO_REUSEADDR || name == unix.SO_KEEPALIVE),
		level == unix.IPPROTO_TCP && (name == unix.TCP_NODELAY || name == unix.TCP_USER_TIMEOUT ||
			name == unix.TCP_NOTSENT_LOWAT || name == unix.TCP_CORK || name == unix.TCP_INQ),
		level == unix.IPPROTO_IP && name == unix.IP_TOS:
		return OptVal{}, true
	}
	return OptVal{}, false
}

func cond2(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func cond2s(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
