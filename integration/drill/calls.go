package drill

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// call runs a socket call line and checks its result.
func (r *runner) call(ev *Event) error {
	c := ev.Call
	ret, errno, err := r.do(ev)
	if err != nil {
		return err
	}
	if ret != c.Ret || errno != c.Errno {
		got := fmt.Sprint(ret)
		if errno != "" {
			got += " " + errno
		}
		want := fmt.Sprint(c.Ret)
		if c.Errno != "" {
			want += " " + c.Errno
		}
		return r.fail(ev, "%s returned %s, want %s\n  expected: %s\n  actual:   %s(...) = %s", c.Name, got, want, callText(c), c.Name, got)
	}
	return nil
}

func (r *runner) sock(ev *Event) (*sock, error) {
	fd, ok := intArg(ev.Call.Args[0])
	if !ok {
		return nil, r.unsupported(ev, "%s: bad file descriptor %q", ev.Call.Name, ev.Call.Args[0])
	}
	s := r.fds[fd]
	if s == nil {
		return nil, r.fail(ev, "%s: fd %d is not open", ev.Call.Name, fd)
	}
	return s, nil
}

// do performs the call and returns what the system call would: a result
// and an errno name ("" on success).
func (r *runner) do(ev *Event) (int64, string, error) {
	c := ev.Call
	if c.Name == "socket" {
		if c.Args[1] != "SOCK_STREAM" || (c.Args[2] != "IPPROTO_TCP" && c.Args[2] != "0") {
			return 0, "", r.unsupported(ev, "only TCP stream sockets are supported")
		}
		if c.Ret < 0 {
			return 0, "", r.unsupported(ev, "socket() is expected to succeed")
		}
		if len(r.fds) > 0 {
			return 0, "", r.unsupported(ev, "one socket per script (plus the accepted one)")
		}
		r.fds[int(c.Ret)] = &sock{fd: int(c.Ret), ka: keepalive{idle: 2 * time.Hour, intvl: 75 * time.Second, cnt: 9}}
		return c.Ret, "", nil
	}
	s, err := r.sock(ev)
	if err != nil {
		return 0, "", err
	}
	switch c.Name {
	case "bind":
		return 0, "", nil
	case "listen":
		if err := r.dut.Listen(); err != nil {
			return -1, errnoOf(err), nil
		}
		s.listener = true
		r.lsnKA = s.ka
		return 0, "", nil
	case "accept":
		if !s.listener {
			return -1, "EINVAL", nil
		}
		if err := r.dut.Accept(); err != nil {
			if s.nonblock {
				return -1, "EAGAIN", nil
			}
			return 0, "", r.fail(ev, "accept would block: no established connection (%v); the dialect has no blocking calls", err)
		}
		if c.Ret < 0 {
			return 0, "", r.fail(ev, "accept succeeded, want %d %s", c.Ret, c.Errno)
		}
		if r.fds[int(c.Ret)] != nil {
			return 0, "", r.unsupported(ev, "accept's fd %d is already open", c.Ret)
		}
		ns := &sock{fd: int(c.Ret), conn: true, ka: s.ka}
		r.fds[ns.fd] = ns
		r.dut.Attached()
		return c.Ret, "", r.applyKA(ev, ns)
	case "connect":
		if !s.nonblock {
			return 0, "", r.unsupported(ev, "blocking connect is not supported: set O_NONBLOCK and expect EINPROGRESS")
		}
		if s.conn {
			return -1, "EISCONN", nil
		}
		if err := r.dut.Connect(); err != nil {
			return -1, errnoOf(err), nil
		}
		s.conn = true
		r.dut.Attached()
		if err := r.applyKA(ev, s); err != nil {
			return 0, "", err
		}
		return -1, "EINPROGRESS", nil
	case "write", "send":
		n, ok := intArg(c.Args[2])
		if !ok || n < 0 {
			return 0, "", r.unsupported(ev, "%s: bad length %q", c.Name, c.Args[2])
		}
		w, err := r.dut.Write(make([]byte, n))
		if err != nil {
			return -1, errnoOf(err), nil
		}
		if w == 0 && n > 0 {
			if !s.nonblock {
				return 0, "", r.fail(ev, "%s would block (send buffer full); the dialect has no blocking calls", c.Name)
			}
			return -1, "EAGAIN", nil
		}
		return int64(w), "", nil
	case "read", "recv":
		n, ok := intArg(c.Args[2])
		if !ok || n <= 0 {
			return 0, "", r.unsupported(ev, "%s: bad length %q", c.Name, c.Args[2])
		}
		b, err := r.dut.Read(n)
		switch {
		case errors.Is(err, io.EOF):
			return 0, "", nil
		case err != nil:
			return -1, errnoOf(err), nil
		case len(b) == 0 && !s.nonblock:
			return 0, "", r.fail(ev, "%s would block (nothing readable); the dialect has no blocking calls", c.Name)
		case len(b) == 0:
			return -1, "EAGAIN", nil
		}
		return int64(len(b)), "", nil
	case "close":
		delete(r.fds, s.fd)
		switch {
		case s.listener:
			return 0, "", errOr(r.dut.CloseListener())
		case s.conn && s.linger0:
			return 0, "", errOr(r.dut.Abort())
		case s.conn:
			return 0, "", errOr(r.dut.Close())
		}
		return 0, "", nil
	case "shutdown":
		if c.Args[1] != "SHUT_WR" {
			return 0, "", r.unsupported(ev, "shutdown: only SHUT_WR is supported")
		}
		if err := r.dut.Shutdown(); err != nil {
			return -1, errnoOf(err), nil
		}
		return 0, "", nil
	case "fcntl":
		if c.Args[1] != "F_SETFL" {
			return 0, "", r.unsupported(ev, "fcntl: only F_SETFL is supported")
		}
		s.nonblock = strings.Contains(c.Args[2], "O_NONBLOCK")
		return 0, "", nil
	case "setsockopt":
		return r.setsockopt(ev, s)
	case "getsockopt":
		if c.Args[1] != "SOL_SOCKET" || c.Args[2] != "SO_ERROR" {
			return 0, "", r.unsupported(ev, "getsockopt: only SOL_SOCKET SO_ERROR is supported")
		}
		want := strings.Trim(c.Args[3], "[]")
		got := r.dut.SoError()
		if got == "" {
			got = "0"
		}
		if got != want {
			return 0, "", r.fail(ev, "SO_ERROR is %s, want %s", got, want)
		}
		return 0, "", nil
	case "poll":
		return r.poll(ev)
	}
	return 0, "", r.unsupported(ev, "unsupported call %s", c.Name)
}

func errOr(err error) error {
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

func (r *runner) applyKA(ev *Event, s *sock) error {
	if !s.ka.on {
		return nil
	}
	if err := r.dut.SetKeepAlive(s.ka.idle, s.ka.intvl, s.ka.cnt); err != nil {
		return r.unsupported(ev, "keepalive: %v", err)
	}
	return nil
}

func (r *runner) setsockopt(ev *Event, s *sock) (int64, string, error) {
	c := ev.Call
	name := c.Args[2]
	if name == "SO_LINGER" {
		v := strings.ReplaceAll(c.Args[3], " ", "")
		switch v {
		case "{onoff=1,linger=0}":
			s.linger0 = true
		case "{onoff=0,linger=0}":
			s.linger0 = false
		default:
			return 0, "", r.unsupported(ev, "SO_LINGER: only {onoff=1, linger=0} and {onoff=0, linger=0} are supported")
		}
		return 0, "", nil
	}
	v, ok := intArg(c.Args[3])
	if !ok {
		return 0, "", r.unsupported(ev, "setsockopt %s: value %q must be [N]", name, c.Args[3])
	}
	var err error
	kaChanged := false
	switch name {
	case "SO_REUSEADDR":
		// One connection per script, fixed ports: nothing to reuse.
	case "TCP_NODELAY":
		err = r.dut.SetNoDelay(v != 0)
	case "SO_RCVBUF":
		err = r.dut.SetRecvBuffer(v)
	case "TCP_USER_TIMEOUT":
		err = r.dut.SetUserTimeout(time.Duration(v) * time.Millisecond)
	case "SO_KEEPALIVE":
		s.ka.on, kaChanged = v != 0, true
	case "TCP_KEEPIDLE":
		s.ka.idle, kaChanged = time.Duration(v)*time.Second, true
	case "TCP_KEEPINTVL":
		s.ka.intvl, kaChanged = time.Duration(v)*time.Second, true
	case "TCP_KEEPCNT":
		s.ka.cnt, kaChanged = v, true
	default:
		return 0, "", r.unsupported(ev, "unsupported socket option %s", name)
	}
	if err != nil {
		return -1, errnoOf(err), nil
	}
	if kaChanged && s.conn {
		if !s.ka.on {
			return 0, "", r.unsupported(ev, "turning SO_KEEPALIVE off on a connection is not supported")
		}
		if err := r.applyKA(ev, s); err != nil {
			return 0, "", err
		}
	}
	return 0, "", nil
}

// poll supports one pollfd and a zero timeout (or a result that is ready).
func (r *runner) poll(ev *Event) (int64, string, error) {
	c := ev.Call
	a := strings.Trim(c.Args[0], "[]{} ")
	var fd int
	var events, revents string
	for _, kv := range strings.Split(a, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "fd":
			n, ok := intArg(v)
			if !ok {
				return 0, "", r.unsupported(ev, "poll: bad fd %q", v)
			}
			fd = n
		case "events":
			events = v
		case "revents":
			revents = v
		default:
			return 0, "", r.unsupported(ev, "poll: unsupported field %q (one pollfd only)", k)
		}
	}
	if _, ok := r.fds[fd]; !ok {
		return 0, "", r.fail(ev, "poll: fd %d is not open", fd)
	}
	in, out, perr, hup := r.dut.Poll()
	want := map[string]bool{}
	for _, e := range strings.Split(events, "|") {
		want[strings.TrimSpace(e)] = true
	}
	var got []string
	add := func(name string, on bool) {
		if on {
			got = append(got, name)
		}
	}
	add("POLLIN", in && want["POLLIN"])
	add("POLLOUT", out && want["POLLOUT"])
	add("POLLERR", perr)
	add("POLLHUP", hup)
	gotText := strings.Join(got, "|")
	if gotText == "" {
		gotText = "0"
	}
	if revents == "" {
		revents = "0"
	}
	timeout, ok := intArg(c.Args[2])
	if !ok {
		return 0, "", r.unsupported(ev, "poll: bad timeout %q", c.Args[2])
	}
	if len(got) == 0 && timeout != 0 {
		return 0, "", r.fail(ev, "poll would block; the dialect has no blocking calls")
	}
	if gotText != revents {
		return 0, "", r.fail(ev, "poll revents %s, want %s", gotText, revents)
	}
	if len(got) > 0 {
		return 1, "", nil
	}
	return 0, "", nil
}
