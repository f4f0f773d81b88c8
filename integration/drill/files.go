package drill

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// fileDUT is a DUT with files and pipes beside its sockets (linux): what
// the corpus's sendfile and splice scripts open, on the DUT's own fds.
type fileDUT interface {
	OpenFile(path string, flags int) (fd int, errno syscall.Errno)
	Pipe() (rfd, wfd int, errno syscall.Errno)
	Sendfile(out, in int, offset int64, n int) (int, syscall.Errno)
	Splice(in, out int, n, flags int) (int, syscall.Errno)
}

// fileCall runs open(2), pipe(2), sendfile(2) and splice(2) (without
// offsets: the corpus's forms) on a DUT that has files.
func (r *runner) fileCall(ev *Event) (callSpec, error) {
	c := ev.Call
	fd, ok := r.dut.(fileDUT)
	if !ok {
		return callSpec{}, r.featureUnsupported(ev, "the "+c.Name+" call")
	}
	want := func(n int) error {
		if len(c.Vals) != n {
			return r.unsupported(ev, "%s takes %d arguments, got %d", c.Name, n, len(c.Vals))
		}
		return nil
	}
	// fdOf is the DUT handle of a script fd argument (-1: not open).
	fdOf := func(i int) (int, *rfd, error) {
		_, f, err := r.fdArg(ev, i)
		if err != nil || f == nil || f.kind == fdEpoll {
			return -1, f, err
		}
		return f.dut, f, nil
	}
	switch c.Name {
	case "open":
		if err := want(2); err != nil {
			return callSpec{}, err
		}
		if c.Vals[0].Kind != ValStr {
			return callSpec{}, r.unsupported(ev, "open: want a path string")
		}
		flags, err := r.argInt(ev, 1)
		if err != nil {
			return callSpec{}, err
		}
		return callSpec{attempt: func() (callResult, error) {
			h, e := fd.OpenFile(c.Vals[0].Str, int(flags))
			if e != 0 {
				return errRes(e), nil
			}
			return callResult{ret: int64(r.allocFD(ev, &rfd{kind: fdFile, dut: h}))}, nil
		}}, nil
	case "pipe":
		if err := want(1); err != nil {
			return callSpec{}, err
		}
		a := c.Vals[0]
		if a.Kind != ValArray || len(a.Elems) != 2 {
			return callSpec{}, r.unsupported(ev, "pipe: want [RFD, WFD]")
		}
		var nums [2]int64
		for i := range nums {
			n, err := r.evalInt(ev, a.Elems[i])
			if err != nil {
				return callSpec{}, err
			}
			nums[i] = n
		}
		return callSpec{attempt: func() (callResult, error) {
			rh, wh, e := fd.Pipe()
			if e != 0 {
				return errRes(e), nil
			}
			// The ends take the numbers the line names, as the call's
			// result names a socket's.
			for i, h := range []int{rh, wh} {
				f := &rfd{kind: fdFile, dut: h}
				if n := int(nums[i]); n >= 0 && r.fds[n] == nil {
					r.fds[n] = f
				} else {
					return callResult{}, r.unsupported(ev, "pipe: fd %d is taken", n)
				}
			}
			return callResult{}, nil
		}}, nil
	case "sendfile":
		if err := want(4); err != nil {
			return callSpec{}, err
		}
		out, of, err := fdOf(0)
		if err != nil {
			return callSpec{}, err
		}
		in, _, err := fdOf(1)
		if err != nil {
			return callSpec{}, err
		}
		off, err := r.argInt(ev, 2)
		if err != nil {
			return callSpec{}, err
		}
		n, err := r.argInt(ev, 3)
		if err != nil {
			return callSpec{}, err
		}
		return callSpec{blocking: of != nil && !of.nonblock, attempt: func() (callResult, error) {
			if out < 0 || in < 0 {
				return errRes(unix.EBADF), nil
			}
			m, e := fd.Sendfile(out, in, off, int(n))
			return okRes(int64(m), e), nil
		}}, nil
	default: // splice
		if err := want(6); err != nil {
			return callSpec{}, err
		}
		if c.Vals[1].Kind != ValNull || c.Vals[3].Kind != ValNull {
			return callSpec{}, r.unsupported(ev, "splice: only NULL offsets are supported")
		}
		in, inf, err := fdOf(0)
		if err != nil {
			return callSpec{}, err
		}
		out, _, err := fdOf(2)
		if err != nil {
			return callSpec{}, err
		}
		n, err := r.argInt(ev, 4)
		if err != nil {
			return callSpec{}, err
		}
		flags, err := r.argInt(ev, 5)
		if err != nil {
			return callSpec{}, err
		}
		return callSpec{blocking: inf != nil && inf.kind == fdSocket && !inf.nonblock, attempt: func() (callResult, error) {
			if out < 0 || in < 0 {
				return errRes(unix.EBADF), nil
			}
			m, e := fd.Splice(in, out, int(n), int(flags))
			return okRes(int64(m), e), nil
		}}, nil
	}
}
