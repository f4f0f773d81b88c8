package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// `ustack bench` measures ustack against gVisor's netstack and the kernel: each
// server runs in its own private network namespace (a CLONE_NEWNET re-exec of
// this binary, so its TUN and addresses vanish with it), and the same client
// code drives all three from the kernel side of the TUN (loopback for the
// kernel). The parent prints one table, or JSON with --json.

// benchServers are the servers the bench compares, in table order.
var benchServers = []string{"ustack", "gvisor", "kernel-veth", "kernel", "tun-floor"}

// benchRatioServers are the servers ustack's figures are divided by, in
// table order.
var benchRatioServers = []string{"gvisor", "kernel-veth", "kernel", "tun-floor"}

// benchWorkloads are the workloads, in the order a target runs them.
var benchWorkloads = []string{"idle", "echo", "udpecho", "connrate", "up1", "down1", "up8", "down8"}

// benchMetric is one row of the table.
type benchMetric struct {
	key    string
	label  string
	unit   string
	higher bool // higher is better
}

// benchMetrics are the rows of the table, in order. The JSON carries the
// same keys (and a few extra ones the table leaves out).
var benchMetrics = []benchMetric{
	{"up1_gbps", "upload, 1 stream (discard)", "Gbit/s", true},
	{"down1_gbps", "download, 1 stream (GET /bytes/N)", "Gbit/s", true},
	{"up8_gbps", "upload, 8 streams", "Gbit/s", true},
	{"down8_gbps", "download, 8 streams", "Gbit/s", true},
	{"echo_p50_us", "echo round trip p50 (64 B)", "µs", false},
	{"echo_p99_us", "echo round trip p99 (64 B)", "µs", false},
	{"udpecho_p50_us", "UDP echo round trip p50 (64 B)", "µs", false},
	{"udpecho_p99_us", "UDP echo round trip p99 (64 B)", "µs", false},
	{"connrate_per_s", "connections (connect, 1 B echo, close)", "conn/s", true},
	{"rss_base_mib", "server RSS, no connection", "MiB", false},
	{"rss_idle_mib", "server RSS with the idle connections", "MiB", false},
	{"idle_conn_kib", "RSS per idle connection", "KiB", false},
	{"rss_100k_mib", "RSS at 100,000 idle (extrapolated unless measured)", "MiB", false},
	{"cpu_server_up_s_per_gb", "server CPU per GB, upload", "s/GB", false},
	{"cpu_server_down_s_per_gb", "server CPU per GB, download", "s/GB", false},
	{"cpu_total_up_s_per_gb", "server+client CPU per GB, upload", "s/GB", false},
	{"cpu_total_down_s_per_gb", "server+client CPU per GB, download", "s/GB", false},
}

// benchResult is what one target (one server in one namespace) measured.
type benchResult struct {
	Server  string             `json:"server"`
	Metrics map[string]float64 `json:"metrics"`
	Errors  map[string]string  `json:"errors,omitempty"`
	// For gVisor, measured once per way of putting it on the TUN
	// (gvisorLinks): Chosen names the variant each metric comes from (the
	// better one), Variants holds every variant's own result.
	Chosen   map[string]string       `json:"chosen,omitempty"`
	Variants map[string]*benchResult `json:"variants,omitempty"`
}

// benchReport is the whole run: the settings, each server's figures, and
// ustack's ratios to the others (ustack's value divided by theirs).
type benchReport struct {
	DurationSeconds float64                       `json:"duration_s"`
	MTU             int                           `json:"mtu"`
	Offload         bool                          `json:"offload"`
	IdleConns       int                           `json:"idle_conns"`
	Workloads       []string                      `json:"workloads"`
	Servers         []string                      `json:"servers"`
	Results         map[string]*benchResult       `json:"results"`
	Ratios          map[string]map[string]float64 `json:"ratios"`
	ElapsedSeconds  float64                       `json:"elapsed_s"`
}

type benchFlags struct {
	json      bool
	duration  time.Duration
	only      string
	workloads string
	idle      int
	mtu       int
	offload   bool
	gvisor    string
	profile   string
	path      string // --path: the emulated path, or a loss sweep of them
	fairness  string // --fairness: pairings of a fairness run over --path
	queues    string // --queues: the ustack server's TUN queues, or a sweep of them
	// cc, pcap, trace and knobs are `ustack serve` flags passed through to
	// the ustack server; serve holds them alone so they can be listed back
	// as arguments (see serveArgs).
	cc       string
	pcap     string
	trace    string
	busyPoll time.Duration
	knobs    knobFlags
	serve    *flag.FlagSet
}

// benchConfig is benchFlags validated.
type benchConfig struct {
	json      bool
	duration  time.Duration
	servers   []string
	workloads []string
	idle      int
	mtu       int
	offload   bool
	// gvisorLinks are the gVisor variants to measure; gvisorLink is the
	// one a gVisor server runs.
	gvisorLinks []string
	gvisorLink  string
	// profileDir receives CPU profiles of the ustack server, one per
	// timed workload ("" for none).
	profileDir string
	// knobArgs are --cc and the TCP knobs for the ustack server, and
	// captureArgs its --pcap and --trace, as --name=value, only those that
	// differ from serve's defaults.
	knobArgs    []string
	captureArgs []string
	// paths is --path, one per loss rate of its sweep (nil: the local
	// bench); pathSpec is --path as given.
	paths    []benchPath
	pathSpec string
	// fairness is --fairness, the congestion controls of a fairness run
	// (nil: not one).
	fairness []string
	// queues is --queues: the ustack server runs once per count, the
	// first as "ustack", each further one as "ustack-qN" (benchQueueServer);
	// nil: once, with serve's default.
	queues []int
}

// benchQueueServer names the ustack server of a further --queues count.
func benchQueueServer(n int) string { return "ustack-q" + strconv.Itoa(n) }

// parseQueueSweep parses --queues: counts from 1 to tun.MaxQueues, comma
// separated, without repeats.
func parseQueueSweep(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, item := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(item))
		if err != nil || n < 1 || n > tun.MaxQueues {
			return nil, fmt.Errorf("--queues %q: want counts from 1 to %d, comma-separated (e.g. 1,2)", s, tun.MaxQueues)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("--queues %q: %d given twice", s, n)
		}
		out = append(out, n)
	}
	return out, nil
}

// Bounds of the flags: a full run must stay within about five minutes.
const (
	benchMinDuration = 200 * time.Millisecond
	benchMaxDuration = 20 * time.Second
	// benchFairMaxDuration is the longest --duration of a fairness run.
	benchFairMaxDuration = 5 * time.Minute
	benchMaxIdle         = 100000 // 100,000 is measured, not extrapolated (the target raises its open-file limit)
)

// parseList splits a comma-separated list and checks every item is one of
// known, without repeats; the result keeps the order of known.
func parseList(flagName, s string, known []string) ([]string, error) {
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !slices.Contains(known, item) {
			return nil, fmt.Errorf("--%s: unknown %q; want a comma-separated list of %s", flagName, item, strings.Join(known, ","))
		}
		if seen[item] {
			return nil, fmt.Errorf("--%s: %q given twice", flagName, item)
		}
		seen[item] = true
	}
	var out []string
	for _, k := range known {
		if seen[k] {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: empty; want a comma-separated list of %s", flagName, strings.Join(known, ","))
	}
	return out, nil
}

func (f *benchFlags) validate() (*benchConfig, error) {
	c := &benchConfig{json: f.json, duration: f.duration, idle: f.idle, mtu: f.mtu, offload: f.offload}
	if f.profile != "" {
		st, err := os.Stat(f.profile)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("--cpuprofile %q: want an existing directory", f.profile)
		}
		abs, err := filepath.Abs(f.profile)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile %q: %v", f.profile, err)
		}
		c.profileDir = abs
	}
	maxDuration := benchMaxDuration
	if f.fairness != "" {
		// CUBIC at 40 ms takes minutes to even out a head start.
		maxDuration = benchFairMaxDuration
	}
	if f.duration < benchMinDuration || f.duration > maxDuration {
		return nil, fmt.Errorf("--duration %v: want %v to %v", f.duration, benchMinDuration, maxDuration)
	}
	if f.idle < 1 || f.idle > benchMaxIdle {
		return nil, fmt.Errorf("--idle-conns %d: want 1 to %d", f.idle, benchMaxIdle)
	}
	if f.mtu < 1280 || f.mtu > 65535 {
		return nil, fmt.Errorf("--mtu %d: want a value from 1280 to 65535", f.mtu)
	}
	var err error
	if f.path != "" {
		if c.paths, err = parsePathSweep(f.path); err != nil {
			return nil, err
		}
		c.pathSpec = f.path
		if len(c.paths) > 1 && (f.pcap != "" || f.trace != "" || f.profile != "") {
			return nil, errors.New("--pcap, --trace and --cpuprofile record one run: give --path a single loss rate")
		}
		only := f.only
		if only == strings.Join(benchServers, ",") {
			// --only's default is the local bench's; a path has its own
			// (its kernel is behind a veth already, and no TUN floor).
			only = "ustack,gvisor,kernel"
		}
		if c.servers, err = pathServers(only); err != nil {
			return nil, err
		}
		if c.workloads, err = parseList("workloads", f.workloads, benchPathWorkloads); err != nil {
			return nil, fmt.Errorf("%v (with --path)", err)
		}
		if f.fairness != "" {
			if c.fairness, err = parseList("fairness", f.fairness, benchFairPairings); err != nil {
				return nil, err
			}
		}
	} else {
		if f.fairness != "" {
			return nil, errors.New("--fairness runs over an emulated path: give --path too")
		}
		if c.servers, err = parseList("only", f.only, benchServers); err != nil {
			return nil, err
		}
		if c.workloads, err = parseList("workloads", f.workloads, benchWorkloads); err != nil {
			return nil, err
		}
	}
	if c.gvisorLinks, err = parseList("gvisor", f.gvisor, gvisorLinks); err != nil {
		return nil, err
	}
	c.gvisorLink = c.gvisorLinks[0]
	// The same checks as serve's, so a bad knob exits 2 here and not
	// inside a namespace after the other servers have run.
	tc := tcp.DefaultConfig()
	if err := checkCC(f.cc); err != nil {
		return nil, err
	}
	if err := checkBusyPoll(f.busyPoll); err != nil {
		return nil, err
	}
	tc.CongestionControl = f.cc
	if _, err := f.knobs.apply(&tc); err != nil {
		return nil, err
	}
	if c.queues, err = parseQueueSweep(f.queues); err != nil {
		return nil, err
	}
	if len(c.queues) > 1 && (f.pcap != "" || f.trace != "" || f.profile != "" || c.paths != nil) {
		return nil, errors.New("--pcap, --trace, --cpuprofile and --path take one ustack run: give --queues one count")
	}
	if len(c.queues) > 0 && c.queues[0] > 1 && (f.pcap != "" || f.knobs.impair != "") {
		return nil, fmt.Errorf("--queues %d: --pcap and --impair see one queue only; use --queues 1", c.queues[0])
	}
	c.knobArgs, c.captureArgs = f.serveArgs()
	return c, nil
}

// serveArgs lists the pass-through serve flags that differ from their
// defaults as --name=value (the = keeps empty values and booleans intact),
// splitting off --pcap and --trace.
func (f *benchFlags) serveArgs() (knobs, capture []string) {
	if f.serve == nil {
		return nil, nil
	}
	f.serve.VisitAll(func(fl *flag.Flag) {
		v := fl.Value.String()
		if v == fl.DefValue {
			return
		}
		arg := "--" + fl.Name + "=" + v
		if fl.Name == "pcap" || fl.Name == "trace" {
			capture = append(capture, arg)
		} else {
			knobs = append(knobs, arg)
		}
	})
	return knobs, capture
}

// registerBench adds the flags `ustack bench` shares with its internal
// target mode.
func (f *benchFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.duration, "duration", 3*time.Second, "length of each throughput, latency and connection-rate workload")
	fs.StringVar(&f.workloads, "workloads", strings.Join(benchWorkloads, ","), "workloads to run, comma-separated")
	fs.IntVar(&f.idle, "idle-conns", 10000, "idle connections for the memory workload")
	fs.IntVar(&f.mtu, "mtu", 1500, "MTU of every TUN device (1280-65535)")
	fs.BoolVar(&f.offload, "offload", true, "virtio-net offloads (TSO/checksum) on every TUN")
	fs.StringVar(&f.gvisor, "gvisor", strings.Join(gvisorLinks, ","), "ways to put gVisor on the TUN, comma-separated: wgnetstack (wireguard's\n"+
		"tun bridged to its tun/netstack), fdbased (gVisor's fdbased endpoint on the TUN fd, no\n"+
		"virtio-net header); each is measured and the better figure per workload reported")
	fs.StringVar(&f.path, "path", "", "measure over an emulated WAN path instead of the local TUN, e.g.\n"+
		"rtt=40ms,rate=100mbit,loss=0.5%[,queue=1bdp|BYTES,jitter=D,reorder=P,seed=N]; loss=0,0.5%,2%\n"+
		"sweeps (see ustack path --help for every key). Workloads then are down, up and fetch, the\n"+
		"duration defaults to 5s, gVisor runs its first --gvisor variant, the kernel twice (CUBIC, BBR)")
	fs.StringVar(&f.queues, "queues", "", "queues of the ustack server's TUN (serve --queues; default serve's, one per two cores), or a\n"+
		"sweep: 1,2 runs the ustack server once per count, the first as column ustack, the others as\n"+
		"ustack-qN with their ratio to it (ustack-qN/ustack)")
	fs.StringVar(&f.profile, "cpuprofile", "", "write a CPU profile of the ustack server during each timed workload to\n"+
		"DIR/ustack-WORKLOAD.pprof (go tool pprof), taken over its admin socket")
	// serve's own registration of the knobs, so bench parses and
	// validates them exactly as serve does.
	f.serve = flag.NewFlagSet("serve", flag.ContinueOnError)
	f.serve.StringVar(&f.cc, "cc", "newreno", ccFlagHelp())
	f.serve.StringVar(&f.pcap, "pcap", "", "record every packet in and out of the ustack server's TUN to this pcap file\n"+
		"(tcpdump -r FILE); it covers the server of the timed workloads (the idle workload's\n"+
		"own server only when idle runs alone)")
	f.serve.StringVar(&f.trace, "trace", "", "write the ustack server's event trace (JSON lines, see ustack serve --help) to\n"+
		"this file; the same server as --pcap")
	f.serve.DurationVar(&f.busyPoll, "busy-poll", 0, busyPollHelp)
	f.knobs.register(f.serve)
	f.serve.VisitAll(func(fl *flag.Flag) {
		fs.Var(fl.Value, fl.Name, fl.Usage+"\n(ustack server only: gVisor and the kernel keep their defaults)")
	})
}

// args turns a config back into the flags of the internal target mode.
func (c *benchConfig) targetArgs(server string) []string {
	args := []string{"bench", "target", "--server", server,
		"--duration", c.duration.String(), "--workloads", strings.Join(c.workloads, ","),
		"--idle-conns", strconv.Itoa(c.idle), "--mtu", strconv.Itoa(c.mtu),
		"--offload=" + strconv.FormatBool(c.offload)}
	if c.paths != nil {
		args = append(args, "--path", c.paths[0].Spec)
	}
	if strings.HasPrefix(server, fairServerPrefix) {
		server = "ustack" // its ustack server takes the knobs
	}
	switch server {
	case "ustack":
		if len(c.queues) > 0 {
			args = append(args, "--queues="+strconv.Itoa(c.queues[0]))
		}
		args = append(args, c.knobArgs...)
		args = append(args, c.captureArgs...)
		if c.profileDir != "" {
			args = append(args, "--cpuprofile="+c.profileDir)
		}
	case "gvisor":
		links := c.gvisorLinks
		if c.paths != nil {
			links = links[:1]
		}
		args = append(args, "--gvisor="+strings.Join(links, ","))
	}
	return args
}

// targetBudget bounds one target's run: each timed workload takes about
// duration (uploads drain afterwards), the idle one a few seconds per
// 10,000 connections, and servers need time to start and stop.
// gVisor's target runs everything once per variant.
func (c *benchConfig) targetBudget(server string) time.Duration {
	d := 30*time.Second + time.Duration(len(c.workloads))*(2*c.duration+5*time.Second) +
		time.Duration(c.idle)*2*time.Millisecond
	if server == "gvisor" {
		d *= time.Duration(len(c.gvisorLinks))
	}
	return d
}

func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "target":
			return runBenchTarget(args[1:], stdout, stderr)
		case "server":
			return runBenchServer(args[1:], stdout, stderr)
		case "hold":
			return runBenchHold(args[1:], stdout, stderr)
		case "router":
			return runBenchRouter(args[1:], stdout, stderr)
		case "reflect":
			return runBenchReflect(args[1:], stdout, stderr)
		}
	}
	var f benchFlags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.json, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&f.only, "only", strings.Join(benchServers, ","), "servers to measure, comma-separated")
	fs.StringVar(&f.fairness, "fairness", "", "with --path, a fairness run instead: for each congestion control listed (cubic,bbr,bbr1;\n"+
		"bbr1 is ustack's BBRv1 against Linux's bbr, which is v1),\n"+
		"a ustack server and a kernel server running it, one download from each at once through\n"+
		"the one bottleneck for --duration (default 20s); each flow's goodput and share, Jain's index,\n"+
		"the same over the run's second half, and a control row (ctl-CC) with a second kernel server\n"+
		"in ustack's place. ustack's CUBIC runs HyStart++ by default, as Linux's CUBIC runs its HyStart")
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack bench [flags]\n\n"+
			"Measures ustack against gVisor's netstack and the kernel's TCP. Each server runs in\n"+
			"its own private network namespace: `ustack serve` and gVisor behind a TUN with the\n"+
			"same MTU; the kernel twice, in a namespace of its own behind a veth of that MTU\n"+
			"(kernel-veth, the fair ceiling) and on 127.0.0.1 (kernel, the loose one); and the TUN\n"+
			"floor (tun-floor): a reflector answering UDP on the TUN with no TCP, whose 64-byte\n"+
			"round trip is the TUN's own cost. gVisor runs twice, the two ways Go programs put it\n"+
			"on a TUN (--gvisor), and each figure is the better of the two (the JSON's \"chosen\"\n"+
			"says which, a note under the table too). The same client code drives each from the\n"+
			"kernel side: uploads to discard, downloads of GET /bytes/N, 1 and 8 streams; 64-byte\n"+
			"echo round trips, over TCP and UDP; connection rate (4 clients at once: connect, 1 byte echoed, close);\n"+
			"server RSS with idle connections; CPU seconds per GB. Progress goes to stderr, the\n"+
			"table (or --json) to stdout. Needs root. A full run takes about 2 minutes with the\n"+
			"defaults.\n\n"+
			"--pcap, --trace, --cc, --busy-poll and the TCP knobs (--impair, --sndbuf, --rcvbuf, --sndbuf-max, --rcvbuf-max, --delayed-ack,\n"+
			"--nodelay, --sack, --timestamps, --wscale) are passed to `ustack serve`, the ustack\n"+
			"server only: gVisor and the kernel keep their defaults.\n\n"+
			"Internal modes, run by the bench itself: `ustack bench target` (one server and the\n"+
			"client, in a private namespace), `ustack bench server` (the gVisor and kernel servers),\n"+
			"`ustack bench reflect` (the TUN floor), `ustack bench hold` (a client process holding\n"+
			"idle connections) and `ustack bench router` (the emulated path of --path).\n\n"+
			"With --path the servers are measured over an emulated WAN path instead (see README,\n"+
			"\"Measuring: ustack bench\"): download and upload goodput and 20 fetches of 256 KiB, per\n"+
			"loss rate, the kernel with CUBIC and with BBR, one table.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ustack bench: unexpected argument %q (all settings are flags; see ustack bench --help)\n", fs.Arg(0))
		return exitUsage
	}
	if f.path != "" {
		// A path run's own defaults, unless given.
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		if !set["workloads"] {
			f.workloads = strings.Join(benchPathWorkloads, ",")
		}
		if !set["duration"] {
			f.duration = benchPathDuration
			if f.fairness != "" {
				f.duration = benchFairDuration
			}
		}
		if !set["cc"] {
			f.cc = "cubic" // compared with the kernel's CUBIC
		}
	}
	cfg, err := f.validate()
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench: %v\n", err)
		return exitUsage
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "ustack bench: needs root or CAP_NET_ADMIN (it creates network namespaces and TUN devices)\n")
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench: finding this binary to re-execute: %v\n", err)
		return 1
	}

	if cfg.paths != nil {
		return runBenchPath(exe, cfg, stdout, stderr)
	}
	start := time.Now()
	rep := &benchReport{
		DurationSeconds: cfg.duration.Seconds(), MTU: cfg.mtu, Offload: cfg.offload, IdleConns: cfg.idle,
		Workloads: cfg.workloads, Servers: cfg.servers, Results: map[string]*benchResult{},
	}
	rep.Servers = nil
	for _, s := range cfg.servers {
		runs := []*benchConfig{cfg}
		if s == "ustack" && len(cfg.queues) > 1 {
			runs = nil
			for _, q := range cfg.queues {
				c := *cfg
				c.queues = []int{q}
				runs = append(runs, &c)
			}
		}
		for i, c := range runs {
			name := s
			if i > 0 {
				name = benchQueueServer(c.queues[0])
			}
			fmt.Fprintf(stderr, "bench: %s: starting in a private network namespace\n", name)
			res, err := runTargetProcess(exe, c, s, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "bench: %s: %v\n", name, err)
				res = &benchResult{Server: s, Metrics: map[string]float64{}, Errors: map[string]string{"run": err.Error()}}
			}
			res.Server = name
			if res.Metrics == nil {
				res.Metrics = map[string]float64{}
			}
			if len(c.queues) == 1 && s == "ustack" {
				res.Metrics["queues"] = float64(c.queues[0])
			}
			rep.Results[name] = res
			rep.Servers = append(rep.Servers, name)
		}
	}
	rep.Ratios = benchRatios(rep.Results)
	rep.ElapsedSeconds = time.Since(start).Seconds()
	if code := writeBenchReport(stdout, stderr, cfg.json, rep, func() { writeBenchTable(stdout, rep) }); code != 0 {
		return code
	}
	for _, r := range rep.Results {
		if len(r.Errors) > 0 {
			return 1
		}
	}
	return 0
}

// runTargetProcess re-executes this binary as `ustack bench target` in a new
// network namespace and decodes the result it prints.
func runTargetProcess(exe string, cfg *benchConfig, server string, stderr io.Writer) (*benchResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.targetBudget(server))
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, cfg.targetArgs(server)...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, &out, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	// SIGKILL on timeout: Pdeathsig then takes the server down with it.
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("did not finish within %v; killed", cfg.targetBudget(server))
	}
	var res benchResult
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		if err != nil {
			return nil, fmt.Errorf("target process: %v", err)
		}
		return nil, fmt.Errorf("target process printed no result: %v", jerr)
	}
	if res.Server != server {
		return nil, fmt.Errorf("target process measured %q, want %q", res.Server, server)
	}
	return &res, nil
}

// benchRatios divides ustack's figures by gVisor's and by the kernel's.
func benchRatios(results map[string]*benchResult) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	u, ok := results["ustack"]
	if !ok {
		return out
	}
	for _, other := range benchRatioServers {
		o, ok := results[other]
		if !ok {
			continue
		}
		r := map[string]float64{}
		for _, m := range benchMetrics {
			a, aok := u.Metrics[m.key]
			b, bok := o.Metrics[m.key]
			if aok && bok && b != 0 && !math.IsNaN(a) && !math.IsNaN(b) {
				r[m.key] = a / b
			}
		}
		out["ustack/"+other] = r
	}
	// The further runs of a --queues sweep, against the first.
	for name, o := range results {
		if !strings.HasPrefix(name, "ustack-q") {
			continue
		}
		r := map[string]float64{}
		for _, m := range benchMetrics {
			a, aok := o.Metrics[m.key]
			b, bok := u.Metrics[m.key]
			if aok && bok && b != 0 && !math.IsNaN(a) && !math.IsNaN(b) {
				r[m.key] = a / b
			}
		}
		out[name+"/ustack"] = r
	}
	return out
}

// formatFigure prints a figure with three significant digits or so.
func formatFigure(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// writeBenchTable prints the report: one row per metric, one column per
// server, then ustack's ratios, then the errors and how to read it.
func writeBenchTable(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "ustack bench: %v per workload, MTU %d, offloads %v, %d idle connections, %.0fs in all\n\n",
		time.Duration(rep.DurationSeconds*float64(time.Second)), rep.MTU, onOff(rep.Offload), rep.IdleConns, rep.ElapsedSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"metric", "unit", "better"}
	header = append(header, rep.Servers...)
	var ratioKeys []string
	for _, o := range benchRatioServers {
		if k := "ustack/" + o; len(rep.Ratios[k]) > 0 {
			ratioKeys = append(ratioKeys, k)
			header = append(header, k)
		}
	}
	for _, s := range rep.Servers {
		if k := s + "/ustack"; strings.HasPrefix(s, "ustack-q") && len(rep.Ratios[k]) > 0 {
			ratioKeys = append(ratioKeys, k)
			header = append(header, k)
		}
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, m := range benchMetrics {
		present := false
		for _, s := range rep.Servers {
			if _, ok := rep.Results[s].Metrics[m.key]; ok {
				present = true
			}
		}
		if !present {
			continue
		}
		better := "lower"
		if m.higher {
			better = "higher"
		}
		row := []string{m.label, m.unit, better}
		for _, s := range rep.Servers {
			if v, ok := rep.Results[s].Metrics[m.key]; ok {
				row = append(row, formatFigure(v))
			} else {
				row = append(row, "-")
			}
		}
		for _, k := range ratioKeys {
			if v, ok := rep.Ratios[k][m.key]; ok {
				row = append(row, formatFigure(v)+"x")
			} else {
				row = append(row, "-")
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	var qs []string
	for _, s := range rep.Servers {
		if q, ok := rep.Results[s].Metrics["queues"]; ok && strings.HasPrefix(s, "ustack") {
			qs = append(qs, fmt.Sprintf("%s with --queues %d", s, int(q)))
		}
	}
	if len(qs) > 0 {
		fmt.Fprintf(w, "\nTUN queues: %s.\n", strings.Join(qs, ", "))
	}
	for _, s := range rep.Servers {
		r := rep.Results[s]
		if v, ok := r.Metrics["rss_100k_mib"]; ok {
			verdict := "would fit"
			if v >= 1024 {
				verdict = "would not fit"
			}
			if n := int(r.Metrics["idle_conns"]); n == 100000 {
				measured := "fit"
				if v >= 1024 {
					measured = "do not fit"
				}
				fmt.Fprintf(w, "\n%s: 100,000 idle connections %s in 1 GiB (measured: %.0f MiB)", s, measured, v)
			} else {
				fmt.Fprintf(w, "\n%s: 100,000 idle connections %s in 1 GiB (extrapolated from %d: %.0f MiB)", s, verdict, n, v)
			}
		}
	}
	fmt.Fprintln(w)
	for _, s := range rep.Servers {
		writeChosen(w, rep.Results[s])
	}
	for _, s := range rep.Servers {
		keys := make([]string, 0, len(rep.Results[s].Errors))
		for k := range rep.Results[s].Errors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "error: %s %s: %s\n", s, k, rep.Results[s].Errors[k])
		}
	}
	fmt.Fprint(w, "\nkernel-veth is the kernel's TCP in a namespace of its own behind a veth with the TUN's MTU\n"+
		"(the fair ceiling for a TUN); kernel is the kernel on loopback (the loose one). tun-floor\n"+
		"is a reflector answering 64-byte UDP on the TUN with no TCP: the TUN's own round trip.\n"+
		"\nCPU is utime+stime from /proc/PID/stat. For ustack and gVisor the server process does all\n"+
		"of its stack's work; the kernel's TCP runs partly in softirq context charged to whichever\n"+
		"task is running, so compare the kernel on server+client CPU (the client is the bench process).\n"+
		"Idle connections are to the echo port, silent; the kernel's RSS per connection is the Go\n"+
		"server's own cost (socket memory is kernel memory), the same in all three servers.\n")
}

// writeChosen says which variant of a server each row of the table comes
// from, for a server measured in several (gVisor).
func writeChosen(w io.Writer, r *benchResult) {
	if len(r.Chosen) == 0 {
		return
	}
	byVariant := map[string][]string{}
	var order []string
	for _, m := range benchMetrics {
		v, ok := r.Chosen[m.key]
		if !ok {
			continue
		}
		if byVariant[v] == nil {
			order = append(order, v)
		}
		byVariant[v] = append(byVariant[v], strings.TrimSuffix(strings.TrimSuffix(m.key, "_gbps"), "_per_s"))
	}
	var variants []string
	for v := range r.Variants {
		variants = append(variants, v)
	}
	slices.Sort(variants)
	fmt.Fprintf(w, "\n%s: each row is the better of %s:", r.Server, strings.Join(variants, " and "))
	for _, v := range order {
		fmt.Fprintf(w, " %s for %s;", v, strings.Join(byVariant[v], ", "))
	}
	fmt.Fprintln(w)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// errBenchNotPrivate refuses to run the target mode in the machine's own
// network namespace, where it would create devices and change sysctls.
var errBenchNotPrivate = errors.New("not in a private network namespace (run `ustack bench`, which creates one)")

// writeBenchReport prints a bench report: rep as indented JSON with
// asJSON, else the table that table writes. It returns 1 when the JSON
// cannot be written (said on stderr), else 0.
func writeBenchReport(stdout, stderr io.Writer, asJSON bool, rep any, table func()) int {
	if !asJSON {
		table()
		return 0
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr, "ustack bench: %v\n", err)
		return 1
	}
	return 0
}
