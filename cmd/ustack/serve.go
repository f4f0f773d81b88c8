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

// defaultKeepalive is Go's own default for accepted connections
// (net.ListenConfig: idle 15s, interval 15s, 9 probes), so a client that
// vanishes without a FIN is reaped within about 2.5 minutes.
const defaultKeepalive = "15s,15s,9"

// defaultDrainTimeout is how long serve lets connections finish after
// SIGTERM: systemd's default stop timeout (TimeoutStopSec) is 90 s, so
// 30 s of drain leaves it room and kills nothing.
const defaultDrainTimeout = 30 * time.Second

type serveFlags struct {
	dev       deviceFlags
	echo      int
	udpEcho   int
	discard   int
	chargen   int
	http      int
	keepalive string
	backlog   int
	admin     string
	adminGrp  string
	drain     time.Duration
	hardening hardeningFlags
	limits    limitFlags
}

func runServe(args []string, stdout, stderr io.Writer) int {
	var f serveFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.dev.register(fs)
	f.hardening.register(fs)
	fs.IntVar(&f.echo, "echo", 7, "port of the echo service, RFC 862 (0 disables)")
	fs.IntVar(&f.udpEcho, "udp-echo", 7, "port of the UDP echo service, RFC 862: each datagram is sent back to its sender\n(0 disables)")
	fs.IntVar(&f.discard, "discard", 9, "port of the discard service, RFC 863 (0 disables)")
	fs.IntVar(&f.chargen, "chargen", 0, "port of the character generator service, RFC 864, usually 19: sends until the client\ngoes away (0, the default, disables it)")
	fs.IntVar(&f.http, "http", 80, "port of the HTTP/1.1 service: GET /, GET /bytes/N, POST /upload (0 disables)")
	fs.StringVar(&f.keepalive, "keepalive", defaultKeepalive, "keepalive for accepted connections: idle,interval,count (e.g. 30s,5s,3) or off")
	fs.IntVar(&f.backlog, "backlog", 1024, "accept queue length of each listener (1-65535)")
	f.limits.register(fs)
	fs.StringVar(&f.adminGrp, "admin-group", "", "give the admin socket to this group, mode 0660, so its members can run 'ustack ss';\nwithout it the socket is 0600, for the user running serve only")
	fs.DurationVar(&f.drain, "drain-timeout", defaultDrainTimeout, "on SIGTERM or SIGINT, stop accepting and let open connections finish for up to this long,\nthen reset the rest (a second signal resets them at once); 0 resets them at once")
	fs.StringVar(&f.admin, "admin", "", "unix socket of the admin API read by 'ustack ss': GET /conns, /metrics (Prometheus),\n/healthz (200 once ready, 503 while starting or draining), /debug/pprof/ (default "+adminDir+"/TUN.sock for the --tun name; off disables it)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack serve [flags]\n\n"+
			"Creates a TUN device, gives the kernel side --host-addr/--host-addr6, runs ustack on\n"+
			"--addr/--addr6 behind it, and serves echo, discard, chargen and HTTP there. Prints\n"+
			"'ready DEVICE ADDR' on stdout once every listener is open; logs go to stderr.\n"+
			"Needs root or CAP_NET_ADMIN. SIGTERM or SIGINT stops accepting, lets open connections\n"+
			"finish for up to --drain-timeout, resets the rest and removes the device; a second\n"+
			"signal cuts the drain short.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ustack serve: unexpected argument %q (all settings are flags; see ustack serve --help)\n", fs.Arg(0))
		return exitUsage
	}
	dev, err := f.dev.validate()
	if err != nil {
		fmt.Fprintf(stderr, "ustack serve: %v\n", err)
		return exitUsage
	}
	kaOn, kaIdle, kaInterval, kaCount, err := parseKeepalive(f.keepalive)
	if err != nil {
		fmt.Fprintf(stderr, "ustack serve: %v\n", err)
		return exitUsage
	}
	if f.adminGrp != "" {
		if f.admin == "off" {
			fmt.Fprintf(stderr, "ustack serve: --admin-group %s with --admin off: there is no socket to give it\n", f.adminGrp)
			return exitUsage
		}
		if _, err := adminGID(f.adminGrp); err != nil {
			fmt.Fprintf(stderr, "ustack serve: %v\n", err)
			return exitUsage
		}
	}
	if f.drain < 0 {
		fmt.Fprintf(stderr, "ustack serve: --drain-timeout %v: want a duration such as 30s, or 0 to reset connections at once\n", f.drain)
		return exitUsage
	}
	if f.backlog < 1 || f.backlog > 65535 {
		fmt.Fprintf(stderr, "ustack serve: --backlog %d: want 1-65535\n", f.backlog)
		return exitUsage
	}
	services := []service{{"echo", f.echo}, {"discard", f.discard}, {"chargen", f.chargen}, {"http", f.http}}
	seen := map[int]string{}
	for _, s := range services {
		if s.port < 0 || s.port > 65535 {
			fmt.Fprintf(stderr, "ustack serve: --%s %d: want a port from 1 to 65535, or 0 to disable\n", s.name, s.port)
			return exitUsage
		}
		if s.port == 0 {
			continue
		}
		if other, dup := seen[s.port]; dup {
			fmt.Fprintf(stderr, "ustack serve: port %d in use: --%s and --%s both ask for it\n", s.port, other, s.name)
			return exitUsage
		}
		seen[s.port] = s.name
	}

	if f.udpEcho < 0 || f.udpEcho > 65535 {
		fmt.Fprintf(stderr, "ustack serve: --udp-echo %d: want a port from 1 to 65535, or 0 to disable\n", f.udpEcho)
		return exitUsage
	}

	var opts stack.Options
	if err := f.limits.apply(&opts, &dev.tcp); err != nil {
		fmt.Fprintf(stderr, "ustack serve: %v\n", err)
		return exitUsage
	}
	if err := f.hardening.apply(&opts, dev); err != nil {
		fmt.Fprintf(stderr, "ustack serve: %v\n", err)
		return exitUsage
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	st, err := dev.open(log, opts)
	if err != nil {
		fmt.Fprintf(stderr, "ustack serve: %v\n", err)
		return 1
	}
	defer st.Close()

	var hl health
	if path := adminPath(f.admin, dev.name); path != "" {
		stopAdmin, err := startAdmin(st, path, log, adminOptions{group: f.adminGrp, health: &hl})
		if err != nil {
			fmt.Fprintf(stderr, "ustack serve: %v\n", err)
			return 1
		}
		defer stopAdmin()
	}

	configure := func(c net.Conn) {
		sc, ok := c.(*stack.Conn)
		if !ok {
			return
		}
		if kaOn {
			sc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: kaIdle, Interval: kaInterval, Count: kaCount})
		} else {
			sc.SetKeepAlive(false)
		}
	}

	// Signals are taken from here on: the first starts the drain, a second
	// cuts it short.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var enabled []service
	for _, s := range services {
		if s.port != 0 {
			enabled = append(enabled, s)
		}
	}
	addr := dev.addrs[0].String()
	listen := func(port int) (net.Listener, error) {
		return st.ListenBacklog("tcp", fmt.Sprintf(":%d", port), f.backlog)
	}
	set, err := startServices(context.Background(), enabled, listen, addr, log, configure)
	if err != nil {
		var le *listenError
		if errors.As(err, &le) && errors.Is(err, syscall.EADDRINUSE) {
			fmt.Fprintf(stderr, "ustack serve: port %d (--%s) is in use\n", le.port, le.name)
		} else {
			fmt.Fprintf(stderr, "ustack serve: %v\n", err)
		}
		return 1
	}
	udpDone := make(chan struct{})
	close(udpDone)
	if f.udpEcho != 0 {
		uc, err := st.ListenUDP(netip.AddrPortFrom(netip.Addr{}, uint16(f.udpEcho)))
		if err != nil {
			fmt.Fprintf(stderr, "ustack serve: UDP port %d (--udp-echo): %v\n", f.udpEcho, err)
			return 1
		}
		log.Info("listening", "service", "udp-echo", "port", f.udpEcho)
		udpDone = make(chan struct{})
		go func() {
			defer close(udpDone)
			serveUDPEcho(uc, log)
		}()
	}
	fmt.Fprintf(stdout, "ready %s %s\n", dev.name, addr)
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	hl.setReady()

	sig := <-sigs
	hl.setDraining()
	abort, drained := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Warn("second signal: resetting the connections still open", "signal", sig.String())
			close(abort)
		case <-drained:
		}
	}()
	finished, aborted := set.drain(f.drain, abort, func(open int) {
		log.Info("draining: stopped accepting", "signal", sig.String(), "open", open, "drain_timeout", f.drain)
	})
	close(drained)
	log.Info("drained", "finished", finished, "aborted", aborted)
	if err := st.Close(); err != nil {
		log.Error("closing the stack", "err", err)
	}
	<-udpDone // st.Close closed its socket
	if !set.wait(5 * time.Second) {
		log.Warn("service goroutines still running 5s after the stack closed")
	}
	log.Info("stopped; device removed", "tun", dev.name)
	return 0
}
