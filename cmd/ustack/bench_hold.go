package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// runBenchHold is the internal mode `ustack bench hold`: a kernel-side client
// that opens --n connections to --to from --from and holds them without
// reading or writing, so that a test can put more connections on a server
// than one process may have open files (each holder keeps its share). It
// prints "open N" once they are all connected; then, for each line on stdin
// ("status"), one line "status established=E reset=R timedout=T closed=C
// other=O" from each socket's TCP_INFO state and SO_ERROR; it exits, closing
// them, at the end of stdin.
func runBenchHold(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench hold", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "server address:port")
	from := fs.String("from", "", "client address to bind (its ports are the ephemeral range)")
	n := fs.Int("n", 1, "connections")
	rcvbuf := fs.Int("rcvbuf", 0, "SO_RCVBUF of each socket (0: the kernel default); small makes a zero window come fast")
	keepidle := fs.Duration("keepalive", 0, "SO_KEEPALIVE with this idle time and interval (0: off): a socket whose server is gone learns it from the RST")
	workers := fs.Int("workers", 8, "connections opened at once")
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	dst, err := netip.ParseAddrPort(*to)
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench hold: --to %q: %v\n", *to, err)
		return exitUsage
	}
	src, err := netip.ParseAddr(*from)
	if err != nil || src.Is4() != dst.Addr().Is4() {
		fmt.Fprintf(stderr, "ustack bench hold: --from %q: want an address of the --to family\n", *from)
		return exitUsage
	}
	if *n < 1 || *workers < 1 {
		fmt.Fprintf(stderr, "ustack bench hold: --n and --workers must be positive\n")
		return exitUsage
	}
	fds := make([]int, *n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, *workers)
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				fd, err := holdDial(src, dst, *rcvbuf, *keepidle)
				if err != nil {
					errs[w] = fmt.Errorf("connection %d: %v", i, err)
					return
				}
				fds[i] = fd
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, fd := range fds {
			if fd > 0 {
				syscall.Close(fd)
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stdout, "error %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "open %d\n", *n)
	sc := bufio.NewScanner(os.Stdin)
	seen := make([]syscall.Errno, len(fds)) // SO_ERROR is cleared by reading it: keep it
	for sc.Scan() {
		var est, reset, timedout, closed, other int
		for i, fd := range fds {
			if seen[i] == 0 {
				soErr, _ := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
				seen[i] = syscall.Errno(soErr)
			}
			switch seen[i] {
			case syscall.ECONNRESET, syscall.EPIPE:
				reset++
				continue
			case syscall.ETIMEDOUT:
				timedout++
				continue
			}
			switch holdState(fd) {
			case 1: // TCP_ESTABLISHED
				est++
			case 7: // TCP_CLOSE
				closed++
			default:
				other++
			}
		}
		fmt.Fprintf(stdout, "status established=%d reset=%d timedout=%d closed=%d other=%d\n", est, reset, timedout, closed, other)
	}
	return 0
}

// holdDial opens one blocking TCP connection from src (any port) to dst.
func holdDial(src netip.Addr, dst netip.AddrPort, rcvbuf int, keepalive time.Duration) (int, error) {
	family := syscall.AF_INET
	if !dst.Addr().Is4() {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) { syscall.Close(fd); return -1, err }
	if rcvbuf > 0 {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf); err != nil {
			return fail(err)
		}
	}
	if keepalive > 0 {
		secs := max(int(keepalive/time.Second), 1)
		for _, o := range [][3]int{{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, secs}, {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, secs},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 3}} {
			if err := syscall.SetsockoptInt(fd, o[0], o[1], o[2]); err != nil {
				return fail(err)
			}
		}
	}
	var sa, da syscall.Sockaddr
	if family == syscall.AF_INET {
		sa = &syscall.SockaddrInet4{Addr: src.As4()}
		da = &syscall.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())}
	} else {
		sa = &syscall.SockaddrInet6{Addr: src.As16()}
		da = &syscall.SockaddrInet6{Addr: dst.Addr().As16(), Port: int(dst.Port())}
	}
	// The port is chosen by connect, for the 4-tuple (a bind-time choice
	// searches the bound ports and slows down as they fill up).
	if family == syscall.AF_INET {
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, ipBindAddressNoPort, 1); err != nil {
			return fail(err)
		}
	}
	if err := syscall.Bind(fd, sa); err != nil {
		return fail(err)
	}
	if err := syscall.Connect(fd, da); err != nil {
		return fail(err)
	}
	return fd, nil
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (not in syscall).
const ipBindAddressNoPort = 24

// holdState returns the socket's TCP state from TCP_INFO (its first byte,
// tcpi_state); 0 if it cannot be read.
func holdState(fd int) uint8 {
	var info [104]byte
	l := uint32(len(info))
	_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0
	}
	return info[0]
}
