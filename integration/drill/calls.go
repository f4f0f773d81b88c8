package drill

import (
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fdKind says what a script fd is.
type fdKind uint8

const (
	fdSocket fdKind = iota + 1
	fdEpoll
	fdFile // a file or pipe end (linux: open, pipe)
)

// rfd is a script file descriptor: a DUT socket or an epoll instance the
// runner keeps itself.
type rfd struct {
	kind     fdKind
	dut      int // the DUT's handle for a socket
	nonblock bool
	epoll    map[int]*epollReg // by watched script fd, for an epoll fd
}

// epollReg is one epoll_ctl registration.
type epollReg struct {
	events  uint32
	data    Field // `fd=N`, `ptr=N`, `u32=N` or `u64=N` as written
	et      bool
	oneshot bool
	// fired: an edge-triggered registration has reported its current
	// readiness; armed again when readiness changes.
	last     uint32
	inq      int
	outq     int
	disabled bool
}

// callResult is what a call returned.
type callResult struct {
	ret   int64
	errno syscall.Errno
}

// wouldBlock reports whether a blocking socket would sleep on this result.
func wouldBlock(e syscall.Errno) bool {
	return e == unix.EAGAIN || e == unix.EINPROGRESS || e == unix.EALREADY
}

// callSpec is how the runner performs one call: attempt performs it
// without blocking (again on each retry); blocking says whether a
// would-block result means the call sleeps.
type callSpec struct {
	attempt  func() (callResult, error)
	blocking bool
}

// featureUnsupported is a runError for a feature a DUT lacks.
func (r *runner) featureUnsupported(ev *Event, feature string) error {
	return &runError{line: ev.Line, msg: "unsupported by the DUT: " + feature, feature: feature}
}

// allocFD assigns a script fd: the one the line names as the call's
// result (as packetdrill maps a script's fds onto the live ones), else the
// lowest free from 3.
func (r *runner) allocFD(ev *Event, f *rfd) int {
	if want := int(ev.Call.Ret); !ev.Call.RetAny && want >= 0 && (r.fds[want] == nil || r.fds[want].kind == fdSocket) {
		// A number still held by a socket the script never closed now
		// names the new one, as in packetdrill (the old socket stays
		// open until the run ends).
		r.fds[want] = f
		return want
	}
	for fd := 3; ; fd++ {
		if _, used := r.fds[fd]; !used {
			r.fds[fd] = f
			return fd
		}
	}
}

func (r *runner) argInt(ev *Event, i int) (int64, error) {
	v := ev.Call.Vals[i]
	if v.Kind == ValArray && len(v.Elems) == 1 {
		v = v.Elems[0]
	}
	return r.evalInt(ev, v)
}

// evalInt evaluates an integer or or-ed symbols.
func (r *runner) evalInt(ev *Event, v Val) (int64, error) {
	switch v.Kind {
	case ValInt:
		return v.Int, nil
	case ValNull:
		return 0, nil
	case ValSym:
		n := v.Int
		for _, s := range v.Syms {
			x, ok := symbols[s]
			if e := errnoValue(s); !ok && e != 0 {
				x, ok = int64(e), true
			}
			if !ok {
				if f, isFeature := features[s]; isFeature {
					return 0, r.featureUnsupported(ev, f)
				}
				for prefix, f := range featurePrefixes {
					if strings.HasPrefix(s, prefix) {
						return 0, r.featureUnsupported(ev, f)
					}
				}
				return 0, r.unsupported(ev, "unknown symbol %s", s)
			}
			n |= x
		}
		return n, nil
	}
	return 0, r.unsupported(ev, "%s: want an integer, got %q", ev.Call.Name, v.Text)
}

func (r *runner) fdArg(ev *Event, i int) (int, *rfd, error) {
	n, err := r.argInt(ev, i)
	if err != nil {
		return 0, nil, err
	}
	f := r.fds[int(n)]
	return int(n), f, nil
}

// sockArg returns the DUT handle of a socket fd argument, or EBADF (for
// an fd that is not open) or ENOTSOCK as the call's result.
func (r *runner) sockArg(ev *Event, i int) (*rfd, syscall.Errno, error) {
	_, f, err := r.fdArg(ev, i)
	if err != nil {
		return nil, 0, err
	}
	if f == nil {
		return nil, unix.EBADF, nil
	}
	if f.kind != fdSocket {
		return nil, unix.ENOTSOCK, nil
	}
	return f, 0, nil
}

func errRes(e syscall.Errno) callResult { return callResult{ret: -1, errno: e} }

func okRes(n int64, e syscall.Errno) callResult {
	if e != 0 {
		return errRes(e)
	}
	return callResult{ret: n}
}

// lenArg is the byte count of a write/read-like call: an integer, or the
// sum of an iovec array's lengths.
func (r *runner) lenArg(ev *Event, v Val) (int, error) {
	switch v.Kind {
	case ValArray:
		n := 0
		for _, e := range v.Elems {
			if e.Kind != ValStruct || len(e.Fields) != 2 {
				return 0, r.unsupported(ev, "%s: iovec %q: want {..., LEN}", ev.Call.Name, e.Text)
			}
			l, err := r.evalInt(ev, e.Fields[1].Val)
			if err != nil {
				return 0, err
			}
			n += int(l)
		}
		return n, nil
	}
	n, err := r.evalInt(ev, v)
	return int(n), err
}

// msgArgs returns the length and flags of a sendmsg/recvmsg msghdr.
func (r *runner) msghdr(ev *Event, v Val) (n int, err error) {
	if v.Kind != ValStruct {
		return 0, r.unsupported(ev, "%s: want a msghdr {msg_name(...)=..., msg_iov(N)=[...], msg_flags=...}", ev.Call.Name)
	}
	iov, ok := v.Get("msg_iov")
	if !ok {
		return 0, r.unsupported(ev, "%s: msghdr without msg_iov", ev.Call.Name)
	}
	if c, ok := v.Get("msg_control"); ok && c.Kind != ValEllipsis && len(c.Elems) > 0 {
		if _, can := r.dut.(controlReceiver); !can || ev.Call.Name != "recvmsg" {
			return 0, r.featureUnsupported(ev, "ancillary data (msg_control)")
		}
	}
	return r.lenArg(ev, iov)
}

// spec builds the call's callSpec.
func (r *runner) spec(ev *Event) (callSpec, error) {
	c := ev.Call
	d := r.dut
	none := callSpec{}
	switch c.Name {
	case "socket":
		typ, err := r.argInt(ev, 1)
		if err != nil {
			return none, err
		}
		if typ&^unix.SOCK_NONBLOCK&^unix.SOCK_CLOEXEC != unix.SOCK_STREAM {
			return none, r.featureUnsupported(ev, "non-TCP sockets ("+c.Vals[1].Text+")")
		}
		return callSpec{attempt: func() (callResult, error) {
			h, e := d.Socket()
			if e != 0 {
				return errRes(e), nil
			}
			return callResult{ret: int64(r.allocFD(ev, &rfd{kind: fdSocket, dut: h, nonblock: typ&unix.SOCK_NONBLOCK != 0}))}, nil
		}}, nil
	case "epoll_create", "epoll_create1":
		return callSpec{attempt: func() (callResult, error) {
			return callResult{ret: int64(r.allocFD(ev, &rfd{kind: fdEpoll, epoll: map[int]*epollReg{}}))}, nil
		}}, nil
	case "close":
		return callSpec{attempt: func() (callResult, error) {
			fd, f, err := r.fdArg(ev, 0)
			if err != nil || f == nil {
				return errRes(unix.EBADF), err
			}
			delete(r.fds, fd)
			for _, o := range r.fds {
				if o.kind == fdEpoll {
					delete(o.epoll, fd)
				}
			}
			if f.kind == fdEpoll {
				return callResult{}, nil
			}
			return okRes(0, d.Close(f.dut)), nil
		}}, nil
	case "fcntl":
		return r.fcntl(ev)
	case "poll":
		return r.pollSpec(ev)
	case "epoll_ctl":
		return r.epollCtl(ev)
	case "epoll_wait", "epoll_pwait":
		return r.epollWait(ev)
	case "open", "pipe", "sendfile", "splice":
		return r.fileCall(ev)
	}
	if _, known := callArgs[c.Name]; !known {
		return none, r.featureUnsupported(ev, "the "+c.Name+" call")
	}
	// The rest take a socket first.
	f, bad, err := r.sockArg(ev, 0)
	if err != nil {
		return none, err
	}
	if bad != 0 {
		return callSpec{attempt: func() (callResult, error) { return errRes(bad), nil }}, nil
	}
	h := f.dut
	blocking := !f.nonblock
	simple := func(fn func() callResult) (callSpec, error) {
		return callSpec{attempt: func() (callResult, error) { return fn(), nil }}, nil
	}
	switch c.Name {
	case "bind":
		return simple(func() callResult { return okRes(0, d.Bind(h)) })
	case "listen":
		n, err := r.argInt(ev, 1)
		if err != nil {
			return none, err
		}
		return simple(func() callResult {
			e := d.Listen(h, int(n))
			if e == 0 {
				r.listened = true
			}
			return okRes(0, e)
		})
	case "accept", "accept4":
		flags := int64(0)
		if c.Name == "accept4" {
			if flags, err = r.argInt(ev, 3); err != nil {
				return none, err
			}
		}
		return callSpec{blocking: blocking, attempt: func() (callResult, error) {
			nh, e := d.Accept(h)
			if e != 0 {
				return errRes(e), nil
			}
			return callResult{ret: int64(r.allocFD(ev, &rfd{kind: fdSocket, dut: nh, nonblock: flags&unix.SOCK_NONBLOCK != 0}))}, nil
		}}, nil
	case "connect":
		started := false
		return callSpec{blocking: blocking, attempt: func() (callResult, error) {
			e := d.Connect(h)
			if blocking && started && e == unix.EISCONN {
				// A blocking connect that has slept returns 0.
				e = 0
			}
			started = true
			return okRes(0, e), nil
		}}, nil
	case "write", "send", "sendto", "writev", "sendmsg":
		var n int
		var flags int64
		switch c.Name {
		case "write", "send", "sendto":
			n, err = r.lenArg(ev, c.Vals[2])
			if err == nil && c.Name != "write" {
				flags, err = r.argInt(ev, 3)
			}
		case "writev":
			n, err = r.lenArg(ev, c.Vals[1])
		case "sendmsg":
			n, err = r.msghdr(ev, c.Vals[1])
			if err == nil {
				flags, err = r.argInt(ev, 2)
			}
		}
		if err != nil {
			return none, err
		}
		fo, canFO := d.(fastOpener)
		fastOpen := flags&unix.MSG_FASTOPEN != 0
		if fe := r.flagFeature(flags, unix.MSG_FASTOPEN); fe != "" && !canFO {
			return none, r.featureUnsupported(ev, fe)
		}
		if fe := r.flagFeature(flags, unix.MSG_ZEROCOPY); fe != "" && r.name != "linux" {
			return none, r.featureUnsupported(ev, fe)
		}
		if (c.Name == "write" || c.Name == "send" || c.Name == "sendto") && c.Vals[1].Kind == ValNull && n > 0 {
			// A NULL buffer: the kernel's copy from user memory faults.
			return callSpec{attempt: func() (callResult, error) { return errRes(unix.EFAULT), nil }}, nil
		}
		unspec := false
		if c.Name == "sendto" && c.Vals[4].Kind == ValSym && len(c.Vals[4].Syms) == 1 && c.Vals[4].Syms[0] == "AF_UNSPEC" && fastOpen && canFO {
			// A destination of family AF_UNSPEC (the kernel refuses it
			// for MSG_FASTOPEN).
			unspec = true
		} else if c.Name == "sendto" && c.Vals[4].Kind != ValEllipsis && c.Vals[4].Kind != ValNull {
			return none, r.unsupported(ev, "sendto: the destination must be `...`")
		}
		if blocking && flags&unix.MSG_DONTWAIT != 0 {
			blocking = false
		}
		sent := 0
		return callSpec{blocking: blocking, attempt: func() (callResult, error) {
			// A blocking send writes everything, sleeping while the
			// buffer is full; a non-blocking one what fits.
			for sent < n || n == 0 {
				var m int
				var e syscall.Errno
				if fastOpen {
					// The first attempt connects (SYN data with a
					// cookie); a blocking one then waits and sends the
					// rest as any write does.
					fastOpen = false
					m, e = fo.SendFastOpen(h, make([]byte, n-sent), int(flags)|unix.MSG_DONTWAIT, unspec)
				} else {
					m, e = d.Send(h, make([]byte, n-sent), int(flags)&^unix.MSG_FASTOPEN|unix.MSG_DONTWAIT)
				}
				if e == unix.EOPNOTSUPP && c.Errno != "EOPNOTSUPP" && r.name != "linux" {
					return callResult{}, r.featureUnsupported(ev, "send flags "+c.Vals[len(c.Vals)-1].Text)
				}
				if e != 0 {
					if sent > 0 && (wouldBlock(e) && !blocking || !wouldBlock(e)) {
						return callResult{ret: int64(sent)}, nil
					}
					return errRes(e), nil
				}
				sent += m
				if !blocking || n == 0 {
					break
				}
			}
			return callResult{ret: int64(sent)}, nil
		}}, nil
	case "read", "recv", "recvfrom", "readv", "recvmsg":
		var n int
		var flags int64
		switch c.Name {
		case "read", "recv", "recvfrom":
			n, err = r.lenArg(ev, c.Vals[2])
			if err == nil && c.Name != "read" {
				flags, err = r.argInt(ev, 3)
			}
		case "readv":
			n, err = r.lenArg(ev, c.Vals[1])
		case "recvmsg":
			n, err = r.msghdr(ev, c.Vals[1])
			if err == nil {
				flags, err = r.argInt(ev, 2)
			}
		}
		if err != nil {
			return none, err
		}
		if (c.Name == "read" || c.Name == "recv" || c.Name == "recvfrom") && c.Vals[1].Kind == ValNull && n > 0 {
			// A NULL buffer: the copy to user memory faults (once
			// there is data to copy).
			nb := blocking
			return callSpec{blocking: nb, attempt: func() (callResult, error) {
				if m, e := d.Ioctl(h, unix.SIOCINQ); e == 0 && m == 0 && d.Poll(h)&unix.POLLIN == 0 {
					return errRes(unix.EAGAIN), nil
				}
				return errRes(unix.EFAULT), nil
			}}, nil
		}
		if fe := r.flagFeature(flags, unix.MSG_ERRQUEUE, unix.MSG_ZEROCOPY); fe != "" && r.name != "linux" {
			return none, r.featureUnsupported(ev, fe)
		}
		if blocking && flags&(unix.MSG_DONTWAIT|unix.MSG_ERRQUEUE) != 0 {
			// MSG_ERRQUEUE never blocks (ip(7)).
			blocking = false
		}
		var control []Val
		if c.Name == "recvmsg" {
			if cv, ok := c.Vals[1].Get("msg_control"); ok && cv.Kind == ValArray {
				control = cv.Elems
			}
		}
		if cr, ok := d.(controlReceiver); ok && len(control) > 0 {
			return callSpec{blocking: blocking, attempt: func() (callResult, error) {
				b, oob, e := cr.RecvMsg(h, n, int(flags)|unix.MSG_DONTWAIT)
				if e != 0 {
					return errRes(e), nil
				}
				if err := r.checkControl(ev, control, oob); err != nil {
					return callResult{}, err
				}
				return callResult{ret: int64(len(b))}, nil
			}}, nil
		}
		return callSpec{blocking: blocking, attempt: func() (callResult, error) {
			b, e := d.Recv(h, n, int(flags)|unix.MSG_DONTWAIT)
			if e != 0 {
				return errRes(e), nil
			}
			return callResult{ret: int64(len(b))}, nil
		}}, nil
	case "shutdown":
		how, err := r.argInt(ev, 1)
		if err != nil {
			return none, err
		}
		return simple(func() callResult { return okRes(0, d.Shutdown(h, int(how))) })
	case "setsockopt":
		return r.setsockopt(ev, h)
	case "getsockopt":
		return r.getsockopt(ev, h)
	case "ioctl":
		req, err := r.argInt(ev, 1)
		if err != nil {
			return none, err
		}
		return callSpec{attempt: func() (callResult, error) {
			v, e := d.Ioctl(h, int(req))
			if e == unix.EOPNOTSUPP && r.name != "linux" {
				return callResult{}, r.featureUnsupported(ev, "ioctl "+c.Vals[1].Text)
			}
			if e != 0 {
				return errRes(e), nil
			}
			if len(c.Vals) > 2 && c.Vals[2].Kind != ValEllipsis {
				want, err := r.argInt(ev, 2)
				if err != nil {
					return callResult{}, err
				}
				if int64(v) != want {
					return callResult{}, r.fail(ev, "ioctl %s is %d, want %d", c.Vals[1].Text, v, want)
				}
			}
			return callResult{}, nil
		}}, nil
	}
	return none, r.featureUnsupported(ev, "the "+c.Name+" call")
}

// flagFeature names the first feature flag set in flags.
func (r *runner) flagFeature(flags int64, fs ...int) string {
	for _, f := range fs {
		if flags&int64(f) != 0 {
			for name, v := range symbols {
				if v == int64(f) && strings.HasPrefix(name, "MSG_") {
					if feat, ok := features[name]; ok {
						return feat
					}
				}
			}
		}
	}
	return ""
}

func (r *runner) fcntl(ev *Event) (callSpec, error) {
	c := ev.Call
	cmd, err := r.argInt(ev, 1)
	if err != nil {
		return callSpec{}, err
	}
	var arg int64
	if cmd == unix.F_SETFL {
		if len(c.Vals) < 3 {
			return callSpec{}, r.unsupported(ev, "fcntl F_SETFL needs flags")
		}
		if arg, err = r.argInt(ev, 2); err != nil {
			return callSpec{}, err
		}
	} else if cmd != unix.F_GETFL {
		return callSpec{}, r.unsupported(ev, "fcntl: only F_GETFL and F_SETFL are supported")
	}
	return callSpec{attempt: func() (callResult, error) {
		_, f, err := r.fdArg(ev, 0)
		if err != nil || f == nil {
			return errRes(unix.EBADF), err
		}
		if cmd == unix.F_GETFL {
			fl := int64(unix.O_RDWR)
			if f.nonblock {
				fl |= unix.O_NONBLOCK
			}
			return callResult{ret: fl}, nil
		}
		f.nonblock = arg&unix.O_NONBLOCK != 0
		return callResult{}, nil
	}}, nil
}

// optVal evaluates a setsockopt value.
func (r *runner) optVal(ev *Event, v Val) (OptVal, error) {
	switch v.Kind {
	case ValStr:
		return OptVal{Str: v.Str}, nil
	case ValStruct:
		on, ok1 := v.Get("onoff")
		l, ok2 := v.Get("linger")
		if !ok1 || !ok2 {
			return OptVal{}, r.unsupported(ev, "setsockopt: struct value %q (only {onoff=N, linger=N} is known)", v.Text)
		}
		a, err := r.evalInt(ev, on)
		if err != nil {
			return OptVal{}, err
		}
		b, err := r.evalInt(ev, l)
		if err != nil {
			return OptVal{}, err
		}
		return OptVal{Linger: unix.Linger{Onoff: int32(a), Linger: int32(b)}}, nil
	case ValArray:
		if len(v.Elems) == 1 {
			if v.Elems[0].Kind == ValStr {
				return OptVal{Str: v.Elems[0].Str}, nil
			}
			n, err := r.evalInt(ev, v.Elems[0])
			return OptVal{Int: int(n)}, err
		}
	}
	n, err := r.evalInt(ev, v)
	return OptVal{Int: int(n)}, err
}

func (r *runner) optNames(ev *Event) (level, name int64, err error) {
	if level, err = r.argInt(ev, 1); err != nil {
		return
	}
	name, err = r.argInt(ev, 2)
	return
}

func (r *runner) setsockopt(ev *Event, h int) (callSpec, error) {
	c := ev.Call
	level, name, err := r.optNames(ev)
	if err != nil {
		return callSpec{}, err
	}
	v, err := r.optVal(ev, c.Vals[3])
	if err != nil {
		return callSpec{}, err
	}
	if level == unix.IPPROTO_TCP && name == unix.TCP_FASTOPEN_KEY {
		// A C string of key bytes, as long as the length argument says.
		n, err := r.argInt(ev, 4)
		if err != nil {
			return callSpec{}, err
		}
		b := make([]byte, max(n, 0))
		copy(b, unescapeC(v.Str))
		v.Str = string(b)
	}
	return callSpec{attempt: func() (callResult, error) {
		e := r.dut.SetSockopt(h, int(level), int(name), v)
		if e == 0 && level == unix.IPPROTO_TCP && name == unix.TCP_FASTOPEN_KEY {
			r.foKeys = append(r.foKeys, fastOpenKeysFromBytes([]byte(v.Str))...)
		}
		if e == unix.ENOPROTOOPT && c.Errno != "ENOPROTOOPT" && r.name != "linux" {
			return callResult{}, r.featureUnsupported(ev, optFeature(c.Vals[2].Text))
		}
		return okRes(0, e), nil
	}}, nil
}

func optFeature(name string) string {
	if f, ok := features[name]; ok {
		return f
	}
	return "socket option " + name
}

func (r *runner) getsockopt(ev *Event, h int) (callSpec, error) {
	c := ev.Call
	level, name, err := r.optNames(ev)
	if err != nil {
		return callSpec{}, err
	}
	want := c.Vals[3]
	return callSpec{attempt: func() (callResult, error) {
		got, e := r.dut.GetSockopt(h, int(level), int(name))
		if e == unix.ENOPROTOOPT && c.Errno != "ENOPROTOOPT" && r.name != "linux" {
			return callResult{}, r.featureUnsupported(ev, optFeature(c.Vals[2].Text))
		}
		if e != 0 {
			return errRes(e), nil
		}
		if want.Kind == ValEllipsis {
			return callResult{}, nil
		}
		wv, err := r.optVal(ev, want)
		if err != nil {
			return callResult{}, err
		}
		if level == unix.SOL_SOCKET && name == unix.SO_ERROR {
			gn, wn := errnoName(syscall.Errno(got.Int)), errnoName(syscall.Errno(wv.Int))
			if got.Int != wv.Int {
				return callResult{}, r.fail(ev, "SO_ERROR is %s, want %s", zeroIfEmpty(gn), zeroIfEmpty(wn))
			}
			return callResult{}, nil
		}
		if got.Linger == wv.Linger && got.Str == wv.Str && uint32(got.Int) == uint32(wv.Int) {
			// [0xffffffff] and [-1] are the same 32-bit value.
			return callResult{}, nil
		}
		if got != wv {
			return callResult{}, r.fail(ev, "getsockopt %s is %s, want %s", c.Vals[2].Text, optText2(got), want.Text)
		}
		return callResult{}, nil
	}}, nil
}

func optText2(v OptVal) string {
	switch {
	case v.Str != "":
		return fmt.Sprintf("%q", v.Str)
	case v.Linger != (unix.Linger{}):
		return fmt.Sprintf("{onoff=%d, linger=%d}", v.Linger.Onoff, v.Linger.Linger)
	}
	return fmt.Sprintf("[%d]", v.Int)
}

// pollBits names revents bits for reports.
func pollBits(m int64, epoll bool) string {
	var out []string
	for _, b := range []struct {
		name string
		v    int64
	}{{"IN", unix.POLLIN}, {"PRI", unix.POLLPRI}, {"OUT", unix.POLLOUT}, {"ERR", unix.POLLERR}, {"HUP", unix.POLLHUP}, {"NVAL", unix.POLLNVAL}, {"RDHUP", unix.POLLRDHUP}} {
		if m&b.v != 0 {
			p := "POLL"
			if epoll {
				p = "EPOLL"
			}
			out = append(out, p+b.name)
		}
	}
	if len(out) == 0 {
		return "0"
	}
	return strings.Join(out, "|")
}

// revents is the readiness of a script socket fd restricted to what was
// asked for (plus ERR and HUP, always reported).
func (r *runner) revents(fd int, events int64) int64 {
	f := r.fds[fd]
	if f == nil || f.kind != fdSocket {
		return unix.POLLNVAL
	}
	m := int64(uint16(r.dut.Poll(f.dut)))
	return m & (events | unix.POLLERR | unix.POLLHUP | unix.POLLNVAL)
}

func (r *runner) pollSpec(ev *Event) (callSpec, error) {
	c := ev.Call
	arr := c.Vals[0]
	if arr.Kind != ValArray {
		return callSpec{}, r.unsupported(ev, "poll: want [{fd=N, events=..., revents=...}, ...]")
	}
	type pfd struct {
		fd                    int
		events, revents       int64
		hasRevents, anyEvents bool
	}
	var fds []pfd
	for _, e := range arr.Elems {
		var p pfd
		fdv, ok1 := e.Get("fd")
		evv, ok2 := e.Get("events")
		if !ok1 || !ok2 {
			return callSpec{}, r.unsupported(ev, "poll: pollfd %q needs fd= and events=", e.Text)
		}
		n, err := r.evalInt(ev, fdv)
		if err != nil {
			return callSpec{}, err
		}
		p.fd = int(n)
		if p.events, err = r.evalInt(ev, evv); err != nil {
			return callSpec{}, err
		}
		if rv, ok := e.Get("revents"); ok {
			p.hasRevents = true
			if p.revents, err = r.evalInt(ev, rv); err != nil {
				return callSpec{}, err
			}
		}
		fds = append(fds, p)
	}
	timeout, err := r.argInt(ev, 2)
	if err != nil {
		return callSpec{}, err
	}
	return callSpec{blocking: timeout != 0, attempt: func() (callResult, error) {
		ready := 0
		var bad []string
		for _, p := range fds {
			got := r.revents(p.fd, p.events)
			if got != 0 {
				ready++
			}
			if p.hasRevents && got != p.revents {
				bad = append(bad, fmt.Sprintf("fd %d revents %s, want %s", p.fd, pollBits(got, false), pollBits(p.revents, false)))
			}
		}
		if ready == 0 && timeout != 0 && !r.blockTimedOut(timeout) {
			return errRes(unix.EAGAIN), nil
		}
		if len(bad) > 0 && int64(ready) == ev.Call.Ret {
			return callResult{}, r.fail(ev, "poll: %s", strings.Join(bad, "; "))
		}
		return callResult{ret: int64(ready)}, nil
	}}, nil
}

func (r *runner) epollCtl(ev *Event) (callSpec, error) {
	c := ev.Call
	op, err := r.argInt(ev, 1)
	if err != nil {
		return callSpec{}, err
	}
	target, err := r.argInt(ev, 2)
	if err != nil {
		return callSpec{}, err
	}
	var reg epollReg
	if op != unix.EPOLL_CTL_DEL {
		e := c.Vals[3]
		evv, ok := e.Get("events")
		if !ok || len(e.Fields) != 2 {
			return callSpec{}, r.unsupported(ev, "epoll_ctl: want {events=..., fd=N}")
		}
		m, err := r.evalInt(ev, evv)
		if err != nil {
			return callSpec{}, err
		}
		reg.events = uint32(m)
		reg.et = m&unix.EPOLLET != 0
		reg.oneshot = m&unix.EPOLLONESHOT != 0
		reg.data = e.Fields[1]
	}
	return callSpec{attempt: func() (callResult, error) {
		_, f, err := r.fdArg(ev, 0)
		if err != nil || f == nil {
			return errRes(unix.EBADF), err
		}
		if f.kind != fdEpoll {
			return errRes(unix.EINVAL), nil
		}
		if r.fds[int(target)] == nil {
			return errRes(unix.EBADF), nil
		}
		_, exists := f.epoll[int(target)]
		switch op {
		case unix.EPOLL_CTL_ADD:
			if exists {
				return errRes(unix.EEXIST), nil
			}
			rg := reg
			f.epoll[int(target)] = &rg
		case unix.EPOLL_CTL_MOD:
			if !exists {
				return errRes(unix.ENOENT), nil
			}
			rg := reg
			f.epoll[int(target)] = &rg
		case unix.EPOLL_CTL_DEL:
			if !exists {
				return errRes(unix.ENOENT), nil
			}
			delete(f.epoll, int(target))
		default:
			return errRes(unix.EINVAL), nil
		}
		return callResult{}, nil
	}}, nil
}

// epollReady returns the ready registrations of an epoll fd, in fd order,
// applying edge-triggered and one-shot rules.
func (r *runner) epollReady(f *rfd, max int) []epollEvent {
	var out []epollEvent
	for fd := 0; fd < 1<<16 && len(out) < max; fd++ {
		rg, ok := f.epoll[fd]
		if !ok {
			continue
		}
		if rg.disabled {
			continue
		}
		got := uint32(r.revents(fd, int64(rg.events&^(unix.EPOLLET|unix.EPOLLONESHOT))))
		if rg.et {
			// Edge-triggered: report only on a new event: a readiness bit
			// that appeared, new data to read, or send space freed (the
			// kernel's data_ready and write_space wake-ups).
			inq, outq := rg.inq, rg.outq
			if f := r.fds[fd]; f != nil && f.kind == fdSocket {
				inq, _ = r.dut.Ioctl(f.dut, unix.SIOCINQ)
				outq, _ = r.dut.Ioctl(f.dut, unix.SIOCOUTQ)
			}
			fresh := got&^rg.last != 0 || got&unix.EPOLLIN != 0 && inq > rg.inq || got&unix.EPOLLOUT != 0 && outq < rg.outq
			rg.last, rg.inq, rg.outq = got, inq, outq
			if !fresh {
				continue
			}
		}
		if got == 0 {
			continue
		}
		if rg.oneshot {
			rg.disabled = true
		}
		out = append(out, epollEvent{events: got, data: rg.data})
		if len(out) == len(f.epoll) {
			break
		}
	}
	return out
}

type epollEvent struct {
	events uint32
	data   Field
}

func (r *runner) epollWait(ev *Event) (callSpec, error) {
	c := ev.Call
	maxEv, err := r.argInt(ev, 2)
	if err != nil {
		return callSpec{}, err
	}
	timeout, err := r.argInt(ev, 3)
	if err != nil {
		return callSpec{}, err
	}
	var want []Val
	switch w := c.Vals[1]; w.Kind {
	case ValStruct:
		want = []Val{w}
	case ValArray:
		want = w.Elems
	case ValEllipsis:
	default:
		return callSpec{}, r.unsupported(ev, "epoll_wait: want {events=..., fd=N} or an array of them")
	}
	return callSpec{blocking: timeout != 0, attempt: func() (callResult, error) {
		_, f, err := r.fdArg(ev, 0)
		if err != nil || f == nil {
			return errRes(unix.EBADF), err
		}
		if f.kind != fdEpoll {
			return errRes(unix.EINVAL), nil
		}
		got := r.epollReady(f, int(maxEv))
		if len(got) == 0 && timeout != 0 && !r.blockTimedOut(timeout) {
			return errRes(unix.EAGAIN), nil
		}
		if int64(len(got)) == ev.Call.Ret {
			for i := range min(len(got), len(want)) {
				wev, _ := want[i].Get("events")
				wm, err := r.evalInt(ev, wev)
				if err != nil {
					return callResult{}, err
				}
				if int64(got[i].events) != wm {
					return callResult{}, r.fail(ev, "epoll_wait: events %s, want %s", pollBits(int64(got[i].events), true), pollBits(wm, true))
				}
				if len(want[i].Fields) == 2 && want[i].Fields[1].Name == got[i].data.Name {
					a, err1 := r.evalInt(ev, want[i].Fields[1].Val)
					b, err2 := r.evalInt(ev, got[i].data.Val)
					if err1 == nil && err2 == nil && a != b {
						return callResult{}, r.fail(ev, "epoll_wait: %s=%d, want %d", got[i].data.Name, b, a)
					}
				}
			}
		}
		return callResult{ret: int64(len(got))}, nil
	}}, nil
}

// blockTimedOut reports whether a poll-like call that started at the
// blocked call's start has waited timeout ms (negative: forever).
func (r *runner) blockTimedOut(timeoutMS int64) bool {
	if timeoutMS < 0 || r.blockStart < 0 {
		return false
	}
	return r.dut.Now() >= r.blockStart+time.Duration(timeoutMS)*time.Millisecond
}

func zeroIfEmpty(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// cmsgSymbol resolves the symbols packetdrill defines for control
// messages, which depend on the address family.
func (r *runner) cmsgSymbol(name string) (int64, bool) {
	switch name {
	case "CMSG_LEVEL_IP":
		if r.s.IPv6 {
			return unix.SOL_IPV6, true
		}
		return unix.SOL_IP, true
	case "CMSG_TYPE_RECVERR":
		if r.s.IPv6 {
			return unix.IPV6_RECVERR, true
		}
		return unix.IP_RECVERR, true
	case "SO_EE_ORIGIN_ZEROCOPY":
		return unix.SO_EE_ORIGIN_ZEROCOPY, true
	case "SO_EE_ORIGIN_TIMESTAMPING":
		return unix.SO_EE_ORIGIN_TIMESTAMPING, true
	case "SO_EE_CODE_ZEROCOPY_COPIED":
		return 1, true
	}
	return 0, false
}

// cmsgInt evaluates a control-message field.
func (r *runner) cmsgInt(ev *Event, v Val) (int64, error) {
	if v.Kind == ValSym && len(v.Syms) == 1 {
		if n, ok := r.cmsgSymbol(v.Syms[0]); ok {
			return n | v.Int, nil
		}
	}
	return r.evalInt(ev, v)
}

// checkControl compares the control messages a recvmsg returned with the
// line's msg_control: {cmsg_level, cmsg_type, cmsg_data} where the data is
// an integer (TCP_CM_INQ) or a sock_extended_err {ee_errno, ee_origin,
// ee_type, ee_code, ee_info, ee_data}.
func (r *runner) checkControl(ev *Event, want []Val, oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return r.fail(ev, "recvmsg: control data: %v", err)
	}
	if len(msgs) != len(want) {
		return r.fail(ev, "recvmsg: %d control messages, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		m := msgs[i]
		lv, ok1 := w.Get("cmsg_level")
		tv, ok2 := w.Get("cmsg_type")
		dv, ok3 := w.Get("cmsg_data")
		if !ok1 || !ok2 || !ok3 {
			return r.unsupported(ev, "recvmsg: cmsg %q: want {cmsg_level=..., cmsg_type=..., cmsg_data=...}", w.Text)
		}
		level, err := r.cmsgInt(ev, lv)
		if err != nil {
			return err
		}
		typ, err := r.cmsgInt(ev, tv)
		if err != nil {
			return err
		}
		if int64(m.Header.Level) != level || int64(m.Header.Type) != typ {
			return r.fail(ev, "recvmsg: cmsg level %d type %d, want %s %s", m.Header.Level, m.Header.Type, lv.Text, tv.Text)
		}
		if dv.Kind == ValStruct {
			// struct sock_extended_err: u32 errno; u8 origin, type, code,
			// pad; u32 info, data.
			if len(m.Data) < 16 {
				return r.fail(ev, "recvmsg: %d bytes of extended error, want 16", len(m.Data))
			}
			got := map[string]int64{
				"ee_errno": int64(nativeU32(m.Data[0:])), "ee_origin": int64(m.Data[4]), "ee_type": int64(m.Data[5]),
				"ee_code": int64(m.Data[6]), "ee_info": int64(nativeU32(m.Data[8:])), "ee_data": int64(nativeU32(m.Data[12:])),
			}
			for _, f := range dv.Fields {
				g, known := got[f.Name]
				if !known {
					return r.unsupported(ev, "recvmsg: unknown extended error field %q", f.Name)
				}
				x, err := r.cmsgInt(ev, f.Val)
				if err != nil {
					return err
				}
				if g != x {
					return r.fail(ev, "recvmsg: %s is %d, want %d", f.Name, g, x)
				}
			}
			continue
		}
		x, err := r.cmsgInt(ev, dv)
		if err != nil {
			return err
		}
		if len(m.Data) < 4 || int64(int32(nativeU32(m.Data))) != x {
			return r.fail(ev, "recvmsg: cmsg data %v, want %d", m.Data, x)
		}
	}
	return nil
}

func nativeU32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
