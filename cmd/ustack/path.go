package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/tun"
)

// `ustack path` runs the emulated WAN path of `ustack bench --path` on its
// own, between two named network namespaces, so `ustack serve`, `ustack
// dial`, curl or anything else can be tried over it.

type pathFlags struct {
	path   string
	client string
	server string
	mtu    int
	pings  int
	rtPrio int
}

// pathDefaultRTPrio is the router's SCHED_FIFO priority unless told: low
// among real-time priorities (1-99), above every ordinary process.
const pathDefaultRTPrio = 10

func runPath(args []string, stdout, stderr io.Writer) int {
	var f pathFlags
	fs := flag.NewFlagSet("path", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.path, "path", "", "the path: rtt=40ms,rate=100mbit,loss=0.5%,queue=1bdp,jitter=1ms,reorder=1%,seed=N, ... (required;\n"+
		"keys below)")
	fs.StringVar(&f.client, "client", "ustack-client", "network namespace of the client side (created, and deleted at exit, if it does not exist)")
	fs.StringVar(&f.server, "server", "ustack-server", "network namespace of the server side (likewise)")
	fs.IntVar(&f.mtu, "mtu", 1500, "MTU of the path's TUN devices (1280-65535)")
	fs.IntVar(&f.pings, "ping", 5, "pings through the path at start-up, to show its RTT (0: none)")
	fs.IntVar(&f.rtPrio, "rt-prio", pathDefaultRTPrio, "run the router under SCHED_FIFO at this priority (1-99; 0: ordinary scheduling), so it\n"+
		"forwards on time on a busy machine")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack path --path SPEC [flags]\n\n"+
			"Runs an emulated WAN path between two network namespaces until interrupted, then prints\n"+
			"what it did. This process is the router: a TUN in each namespace (%s %v in the client\n"+
			"namespace, %s %v in the server namespace, offloads off), forwarding IP packets through\n"+
			"per-direction loss, a rate bottleneck with a byte-limited tail-drop queue, delay and\n"+
			"jitter. The server namespace forwards %v into the path, so a server there on\n"+
			"%v (what `ustack serve` takes by default) is one hop behind it:\n\n"+
			"  ip netns exec ustack-server ustack serve\n"+
			"  ip netns exec ustack-client curl -o /dev/null http://198.18.0.2/bytes/100000000\n"+
			"  ip netns exec ustack-client ustack dial --host-addr 198.18.2.1/24 --addr 198.18.2.2 \\\n"+
			"      --host-addr6= --addr6= 198.18.0.2:7\n\n"+
			"Path keys (each for both directions, or as up.KEY for client to server only and\n"+
			"down.KEY for server to client): rtt (split into the two one-way delays; up.delay and\n"+
			"down.delay instead), rate (100mbit, 1gbit, 500kbit: bits/s of IP packets), queue (bytes,\n"+
			"64KiB, or 1bdp, the default; needs a rate), ecn (a sojourn time such as 5ms: ECT packets\n"+
			"that would wait longer in the queue are marked CE, the others still only tail-dropped;\n"+
			"needs a rate), loss, jitter (uniform, order kept), reorder\n"+
			"and depth, dup, corrupt, limit (packets on the wire), seed (losses replay with a seed).\n"+
			"Needs root. See README, \"An emulated path\", for its precision and limits.\n\nflags:\n",
			pathClientTUN, pathClientAddr, pathHopTUN, pathHopAddr, pathClientNet, pathServerNet)
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ustack path: unexpected argument %q (all settings are flags; see ustack path --help)\n", fs.Arg(0))
		return exitUsage
	}
	if f.path == "" {
		fmt.Fprintf(stderr, "ustack path: --path is required, e.g. --path rtt=40ms,rate=100mbit,loss=0.5%%\n")
		return exitUsage
	}
	cfg, err := tun.ParsePath(f.path)
	if err != nil {
		fmt.Fprintf(stderr, "ustack path: --path: %v\n", err)
		return exitUsage
	}
	if f.mtu < 1280 || f.mtu > 65535 {
		fmt.Fprintf(stderr, "ustack path: --mtu %d: want a value from 1280 to 65535\n", f.mtu)
		return exitUsage
	}
	if f.client == f.server {
		fmt.Fprintf(stderr, "ustack path: --client and --server are both %q; want two namespaces\n", f.client)
		return exitUsage
	}
	if f.pings < 0 || f.pings > 100 {
		fmt.Fprintf(stderr, "ustack path: --ping %d: want 0 to 100\n", f.pings)
		return exitUsage
	}
	if f.rtPrio < 0 || f.rtPrio > 99 {
		fmt.Fprintf(stderr, "ustack path: --rt-prio %d: want 0 (off) or 1 to 99\n", f.rtPrio)
		return exitUsage
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "ustack path: needs root or CAP_NET_ADMIN and CAP_SYS_ADMIN (it creates network namespaces and TUN devices)\n")
		return 1
	}
	if f.rtPrio > 0 {
		if err := realtimePriority(f.rtPrio); err != nil {
			fmt.Fprintf(stderr, "ustack path: %v; running at ordinary priority (--rt-prio 0 to ask for that)\n", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runPathRouter(ctx, f, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "ustack path: %v\n", err)
		return 1
	}
	return 0
}

// runPathRouter sets the path up, runs it until ctx is done, and tears
// down what it created.
func runPathRouter(ctx context.Context, f pathFlags, cfg tun.PathConfig, out io.Writer) error {
	client, createdC, err := namedNetns(f.client)
	if err != nil {
		return err
	}
	defer func() {
		client.Close()
		if createdC {
			deleteNamedNetns(f.client)
		}
	}()
	server, createdS, err := namedNetns(f.server)
	if err != nil {
		return err
	}
	defer func() {
		server.Close()
		if createdS {
			deleteNamedNetns(f.server)
		}
	}()
	r, err := startPathRouter(client, server, cfg, f.mtu)
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Fprintf(out, "ustack path: %s\n  client namespace %s: %s %v, routes %v into the path\n  server namespace %s: %s %v, forwards to and from it\n",
		cfg, f.client, pathClientTUN, pathClientAddr, pathServerNet, f.server, pathHopTUN, pathHopAddr)
	if f.pings > 0 {
		var rtts []time.Duration
		err := client.do(func() error {
			var err error
			rtts, err = pathPing(pathHopAddr.Addr(), f.pings, 2*time.Second+2*cfg.RTT)
			return err
		})
		switch {
		case err != nil:
			fmt.Fprintf(out, "  ping: %v\n", err)
		case len(rtts) == 0:
			fmt.Fprintf(out, "  ping %v: no answer to %d pings\n", pathHopAddr.Addr(), f.pings)
		default:
			slices.Sort(rtts)
			fmt.Fprintf(out, "  ping %v: min %v, median %v (%d of %d answered; asked for rtt %v)\n", pathHopAddr.Addr(),
				rtts[0].Round(time.Microsecond), rtts[len(rtts)/2].Round(time.Microsecond), len(rtts), f.pings, cfg.RTT)
		}
	}
	fmt.Fprintf(out, "running; Ctrl-C stops it\n")
	if fl, ok := out.(*os.File); ok {
		fl.Sync()
	}
	<-ctx.Done()
	writePathStats(out, r.path.Stats())
	return nil
}

// writePathStats prints what the path did, per direction.
func writePathStats(w io.Writer, st tun.PathStats) {
	dir := func(name string, s tun.LaneStats, l tun.Lateness) {
		fmt.Fprintf(w, "  %s: %d packets (%d bytes) in, %d delivered (%d bytes); dropped: %d lost, %d by the full queue (peak %d bytes), %d wire overflow\n",
			name, s.Packets, s.Bytes, s.Delivered, s.DelivBytes, s.Dropped, s.QueueDrops, s.MaxQueue, s.Overflow)
		if s.Delay.Count > 0 {
			fmt.Fprintf(w, "      queueing delay mean %v, worst %v; %d marked CE\n",
				s.Delay.Mean().Round(time.Microsecond), s.Delay.Max.Round(time.Microsecond), s.Marked)
		}
		if s.Duplicated+s.Reordered+s.Corrupted > 0 {
			fmt.Fprintf(w, "      %d duplicated, %d reordered, %d corrupted\n", s.Duplicated, s.Reordered, s.Corrupted)
		}
		if l.Count > 0 {
			fmt.Fprintf(w, "      released a mean %v after due, worst %v; %.2f%% over 100 µs, %.2f%% over 1 ms\n",
				l.Mean().Round(time.Microsecond), l.Max.Round(time.Microsecond),
				100*float64(l.Over100us)/float64(l.Count), 100*float64(l.Over1ms)/float64(l.Count))
		}
	}
	fmt.Fprintf(w, "ustack path: stopped\n")
	dir("up (client to server)", st.Up, st.UpLate)
	dir("down (server to client)", st.Down, st.DownLate)
	for _, e := range []struct {
		name string
		err  string
	}{{"up", st.UpReadErr}, {"down", st.DownReadErr}} {
		if e.err != "" {
			fmt.Fprintf(w, "  %s: stopped early, reading: %s\n", e.name, e.err)
		}
	}
}
