package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/stack"
)

func runDial(args []string, stdout, stderr io.Writer) int {
	return dial(args, os.Stdin, stdout, stderr)
}

// dial is `ustack dial`: a netcat through ustack. stdin goes to the
// connection (its EOF half-closes the connection), the connection goes to
// stdout; the exit status says how the connection ended.
func dial(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var dev deviceFlags
	var timeout, wait time.Duration
	var verbose, udp bool
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev.register(fs)
	fs.DurationVar(&timeout, "timeout", 30*time.Second, "give up connecting after this long")
	fs.BoolVar(&verbose, "v", false, "log the device and connection set-up to stderr")
	fs.BoolVar(&udp, "u", false, "UDP instead of TCP, like nc -u: each read of stdin is sent as one datagram, each datagram\nreceived is written to stdout; after stdin's EOF, replies are awaited for --wait")
	fs.DurationVar(&wait, "wait", time.Second, "with -u, how long to wait for replies after stdin's EOF")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack dial [flags] HOST:PORT\n\n"+
			"Creates a TUN device like 'ustack serve', connects from ustack's address to HOST:PORT\n"+
			"(e.g. a kernel socket on the --host-addr side), copies stdin to the connection and the\n"+
			"connection to stdout. EOF on stdin half-closes the connection. Exit status: 0 when the\n"+
			"peer closed normally, 1 when the connection failed or was reset. With -u, UDP datagrams\n"+
			"instead, and 1 when the peer's port is unreachable. Needs root or CAP_NET_ADMIN.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "ustack dial: want exactly one HOST:PORT argument (see ustack dial --help)\n")
		return exitUsage
	}
	target := fs.Arg(0)
	if _, _, err := net.SplitHostPort(target); err != nil {
		fmt.Fprintf(stderr, "ustack dial: %q: want HOST:PORT, e.g. 198.18.0.1:8080 or [2001:2::1]:8080\n", target)
		return exitUsage
	}
	if timeout <= 0 {
		fmt.Fprintf(stderr, "ustack dial: --timeout %v: want a positive duration\n", timeout)
		return exitUsage
	}
	if wait < 0 {
		fmt.Fprintf(stderr, "ustack dial: --wait %v: want a duration of 0 or more\n", wait)
		return exitUsage
	}
	var udpTarget netip.AddrPort
	if udp {
		var err error
		if udpTarget, err = netip.ParseAddrPort(target); err != nil {
			fmt.Fprintf(stderr, "ustack dial: -u %q: want a literal IP and port, e.g. 198.18.0.1:53 or [2001:2::1]:53\n", target)
			return exitUsage
		}
	}
	d, err := dev.validate()
	if err != nil {
		fmt.Fprintf(stderr, "ustack dial: %v\n", err)
		return exitUsage
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	st, err := d.open(log, stack.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "ustack dial: %v\n", err)
		return 1
	}
	defer st.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if udp {
		return dialUDP(ctx, st, udpTarget, wait, stdin, stdout, stderr)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	c, err := st.DialContext(dctx, "tcp", target)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "ustack dial: %s: %v\n", target, explain(err))
		return 1
	}
	defer c.Close()
	log.Info("connected", "local", c.LocalAddr(), "remote", c.RemoteAddr())
	go func() {
		<-ctx.Done()
		c.Close()
	}()

	// stdin → connection; EOF half-closes so the peer sees our end.
	sendErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, stdin)
		if err == nil {
			err = c.(*stack.Conn).CloseWrite()
		}
		sendErr <- err
	}()
	// connection → stdout until the peer closes.
	_, recvErr := io.Copy(stdout, c)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "ustack dial: interrupted")
		return 1
	}
	if recvErr != nil {
		fmt.Fprintf(stderr, "ustack dial: %s: %v\n", target, explain(recvErr))
		return 1
	}
	select {
	case err := <-sendErr:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			fmt.Fprintf(stderr, "ustack dial: sending to %s: %v\n", target, explain(err))
			return 1
		}
	default:
		// The peer closed while stdin still had data to give: like nc,
		// stop here; what stdin still holds is not sent.
	}
	return 0
}

// dialUDP is `ustack dial -u`: stdin's reads go out as datagrams to
// target, datagrams received go to stdout, and replies are awaited for
// wait after stdin's EOF.
func dialUDP(ctx context.Context, st *stack.Stack, target netip.AddrPort, wait time.Duration, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := st.DialUDP(netip.AddrPort{}, target)
	if err != nil {
		fmt.Fprintf(stderr, "ustack dial: %s: %v\n", target, explain(err))
		return 1
	}
	defer c.Close()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	sendErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 65507) // the most IPv4 carries in one datagram
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					sendErr <- werr
					c.SetReadDeadline(time.Now()) // the reader reports it
					return
				}
			}
			if err == io.EOF {
				// Replies may still come: wait for them, then stop.
				c.SetReadDeadline(time.Now().Add(wait))
				sendErr <- nil
				return
			}
			if err != nil {
				sendErr <- err
				c.SetReadDeadline(time.Now())
				return
			}
		}
	}()
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				fmt.Fprintln(stderr, "ustack dial: interrupted")
				return 1
			case errors.Is(err, os.ErrDeadlineExceeded):
				// The wait after stdin's EOF is over, or sending failed.
				if err := <-sendErr; err != nil {
					fmt.Fprintf(stderr, "ustack dial: sending to %s: %v\n", target, explain(err))
					return 1
				}
				return 0
			}
			fmt.Fprintf(stderr, "ustack dial: %s: %v\n", target, explain(err))
			return 1
		}
		if _, err := stdout.Write(buf[:n]); err != nil {
			fmt.Fprintf(stderr, "ustack dial: writing stdout: %v\n", err)
			return 1
		}
	}
}

// explain turns a connection error into the words a person acts on.
func explain(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens on that port)"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	}
	return err.Error()
}
