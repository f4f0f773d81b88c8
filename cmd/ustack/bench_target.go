package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/stack"
	"github.com/vishvananda/netlink"
)

// runBenchTarget is `ustack bench target`, internal to `ustack bench`: inside
// a private network namespace, it starts one server and runs the workloads
// against it from the kernel side, printing a benchResult as JSON on stdout.
func runBenchTarget(args []string, stdout, stderr io.Writer) int {
	var f benchFlags
	var server string
	fs := flag.NewFlagSet("bench target", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&server, "server", "", "server to measure: ustack, gvisor or kernel")
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack bench target --server ustack|gvisor|kernel [flags]\n\n"+
			"Internal to `ustack bench`, which runs it in a private network namespace: starts the\n"+
			"server, runs the workloads from the kernel side, prints the figures as JSON.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ustack bench target: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	known := benchServers
	if f.path != "" {
		known = benchPathServers
		for _, cc := range benchFairPairings {
			known = append(slices.Clip(known), fairServerPrefix+cc, fairServerPrefix+fairControlPrefix+cc)
		}
	}
	if !slices.Contains(known, server) {
		fmt.Fprintf(stderr, "ustack bench target: --server %q: want one of %s\n", server, strings.Join(known, ","))
		return exitUsage
	}
	f.only = server
	if pairing, ok := strings.CutPrefix(server, fairServerPrefix); ok {
		f.only = "ustack,kernel" // a fairness target runs both
		// and is one pairing of a fairness run (its --duration limit)
		f.fairness = strings.TrimPrefix(pairing, fairControlPrefix)
	}
	cfg, err := f.validate()
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench target: %v\n", err)
		return exitUsage
	}
	if err := checkPrivateNetns(); err != nil {
		fmt.Fprintf(stderr, "ustack bench target: %v\n", err)
		return 1
	}
	if err := prepareBenchNetns(); err != nil {
		fmt.Fprintf(stderr, "ustack bench target: %v\n", err)
		return 1
	}
	need := min(cfg.idle, benchIdleInProcess)
	if server == "kernel" || server == "kernel-veth" {
		need = cfg.idle // its server holds a socket per connection
	}
	if err := raiseFileLimit(need + 1024); err != nil {
		fmt.Fprintf(stderr, "ustack bench target: %v\n", err)
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench target: %v\n", err)
		return 1
	}
	if cfg.paths != nil {
		if len(cfg.paths) != 1 {
			fmt.Fprintf(stderr, "ustack bench target: --path: one loss rate at a time\n")
			return exitUsage
		}
		t := &benchTarget{cfg: cfg, server: server, label: server + " over " + cfg.paths[0].Spec, exe: exe, progress: stderr,
			res: &benchResult{Server: server, Metrics: map[string]float64{}, Errors: map[string]string{}}}
		t.runPath()
		if len(t.res.Errors) == 0 {
			t.res.Errors = nil
		}
		if err := json.NewEncoder(stdout).Encode(t.res); err != nil {
			fmt.Fprintf(stderr, "ustack bench target: %v\n", err)
			return 1
		}
		return 0
	}
	links := []string{""}
	if server == "gvisor" {
		links = cfg.gvisorLinks
	}
	variants := map[string]*benchResult{}
	for _, link := range links {
		c := *cfg
		c.gvisorLink = link
		name := server
		if link != "" {
			name = server + "/" + link
		}
		t := &benchTarget{cfg: &c, server: server, label: name, exe: exe, progress: stderr,
			res: &benchResult{Server: server, Metrics: map[string]float64{}, Errors: map[string]string{}}}
		t.run()
		if len(t.res.Errors) == 0 {
			t.res.Errors = nil
		}
		variants[link] = t.res
	}
	res := variants[links[0]]
	if len(links) > 1 {
		res = bestOfVariants(server, links, variants)
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintf(stderr, "ustack bench target: %v\n", err)
		return 1
	}
	return 0
}

// benchMetricGroups tie metrics that one measurement produces together: the
// variant with the better value of the first key supplies them all, so a
// merged result never pairs, say, one variant's p50 with another's p99.
// Metrics in no group are chosen on their own.
var benchMetricGroups = [][]string{
	{"echo_p50_us", "echo_p99_us", "echo_samples", "echo_server_cpu_us", "echo_lost"},
	{"udpecho_p50_us", "udpecho_p99_us", "udpecho_samples", "udpecho_server_cpu_us", "udpecho_lost"},
	{"connrate_per_s", "connrate_failed", "connrate_server_cpu_us"},
	{"idle_conn_kib", "rss_base_mib", "rss_idle_mib", "rss_100k_mib", "idle_conns"},
	{"cpu_server_up_s_per_gb", "cpu_total_up_s_per_gb"},
	{"cpu_server_down_s_per_gb", "cpu_total_down_s_per_gb"},
}

// workloadOfMetric names the workload whose failure voids a metric.
func workloadOfMetric(key string) string {
	switch {
	case strings.HasPrefix(key, "echo_"):
		return "echo"
	case strings.HasPrefix(key, "connrate_"):
		return "connrate"
	case strings.HasPrefix(key, "idle_"), strings.HasPrefix(key, "rss_"):
		return "idle"
	}
	if w, _, ok := strings.Cut(key, "_"); ok && slices.Contains(benchWorkloads, w) {
		return w
	}
	return ""
}

// bestOfVariants merges the results of one server measured in several
// variants (links, in order of preference on a tie): each metric, or group
// of metrics, comes from the variant with the better figure; a workload
// fails only if it failed in every variant.
func bestOfVariants(server string, links []string, variants map[string]*benchResult) *benchResult {
	out := &benchResult{Server: server, Metrics: map[string]float64{}, Chosen: map[string]string{}, Variants: variants}
	higher := map[string]bool{}
	for _, m := range benchMetrics {
		higher[m.key] = m.higher
	}
	keys := map[string]bool{}
	for _, r := range variants {
		for k := range r.Metrics {
			keys[k] = true
		}
	}
	groupOf := map[string][]string{}
	for _, g := range benchMetricGroups {
		for _, k := range g {
			groupOf[k] = g
		}
	}
	for k := range keys {
		g := groupOf[k]
		if g == nil {
			g = []string{k}
		}
		if g[0] != k && keys[g[0]] {
			continue // taken with its group's first key
		}
		best := ""
		for _, l := range links {
			v, ok := variants[l].Metrics[g[0]]
			if !ok || math.IsNaN(v) {
				continue
			}
			if best == "" {
				best = l
				continue
			}
			b := variants[best].Metrics[g[0]]
			if (higher[g[0]] && v > b) || (!higher[g[0]] && v < b) {
				best = l
			}
		}
		if best == "" {
			continue
		}
		for _, gk := range g {
			if v, ok := variants[best].Metrics[gk]; ok {
				out.Metrics[gk] = v
				out.Chosen[gk] = best
			}
		}
	}
	for _, l := range links {
		for w, e := range variants[l].Errors {
			covered := false
			for k := range out.Metrics {
				if workloadOfMetric(k) == w {
					covered = true
				}
			}
			if !covered {
				if out.Errors == nil {
					out.Errors = map[string]string{}
				}
				out.Errors[w] = l + ": " + e
			}
		}
	}
	return out
}

// checkPrivateNetns makes sure this process is not in its parent's network
// namespace: `ustack bench` starts it with CLONE_NEWNET. (init's namespace
// would be the better yardstick, but /proc/1 is not always readable.)
func checkPrivateNetns() error {
	self, err1 := os.Readlink("/proc/self/ns/net")
	parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", os.Getppid()))
	if err1 != nil || err2 != nil {
		return fmt.Errorf("cannot tell which network namespace this is: %v", errors.Join(err1, err2))
	}
	if self == parent {
		return errBenchNotPrivate
	}
	return nil
}

// prepareBenchNetns brings up loopback (the kernel server's home) and, for
// the connection-rate workload, lets the client reuse TIME-WAIT ports and
// use the whole ephemeral range. Both sysctls are per namespace.
func prepareBenchNetns() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding loopback: %v", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing loopback up: %v", err)
	}
	for _, s := range []struct{ path, value string }{
		{"/proc/sys/net/ipv4/tcp_tw_reuse", "1"},
		{"/proc/sys/net/ipv4/ip_local_port_range", "1024 65535"},
	} {
		if err := os.WriteFile(s.path, []byte(s.value), 0); err != nil {
			return fmt.Errorf("setting %s: %v", s.path, err)
		}
	}
	return nil
}

// raiseFileLimit makes sure this process, and the servers it starts (they
// inherit it), may hold n open files: the idle workload holds one socket
// per connection here and, for the kernel server, one there. Raising the
// hard limit needs CAP_SYS_RESOURCE.
func raiseFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open-file limit: %v", err)
	}
	if lim.Cur >= uint64(n) {
		return nil
	}
	lim.Cur = uint64(n)
	if lim.Max < lim.Cur {
		lim.Max = lim.Cur
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		var cur syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
		return fmt.Errorf("--idle-conns %d needs an open-file limit of %d, and this one (soft %d, hard %d) cannot be raised: %v "+
			"(raising the hard limit needs root with CAP_SYS_RESOURCE; try a smaller --idle-conns)", n-1024, n, cur.Cur, cur.Max, err)
	}
	return nil
}

// benchTarget runs the workloads against one server.
type benchTarget struct {
	cfg      *benchConfig
	server   string
	label    string // server, and its variant if any, for progress lines
	exe      string
	progress io.Writer
	res      *benchResult

	// Bytes moved and CPU spent by the throughput workloads, by direction.
	upBytes, downBytes         int64
	upServerCPU, downServerCPU time.Duration
	upClientCPU, downClientCPU time.Duration
}

func (t *benchTarget) logf(format string, args ...any) {
	fmt.Fprintf(t.progress, "bench: %s: "+format+"\n", append([]any{t.label}, args...)...)
}

func (t *benchTarget) fail(workload string, err error) {
	t.res.Errors[workload] = err.Error()
	t.logf("%s: FAILED: %v", workload, err)
}

func (t *benchTarget) run() {
	workloads := t.cfg.workloads
	if t.server == "tun-floor" {
		// The reflector has no TCP: echo, over UDP, is its one workload
		// (under both names).
		workloads = nil
		for _, w := range []string{"echo", "udpecho"} {
			if slices.Contains(t.cfg.workloads, w) {
				workloads = append(workloads, w)
			}
		}
	}
	has := func(w string) bool { return slices.Contains(workloads, w) }
	var rest []string
	for _, w := range workloads {
		if w != "idle" {
			rest = append(rest, w)
		}
	}
	// Idle connections first, on a server of their own, so the RSS before
	// them is a fresh server's and not inflated by buffers of other runs.
	// It captures (--pcap/--trace) only when no other server follows.
	if has("idle") {
		srv, err := startBenchServer(t.exe, t.server, t.cfg, len(rest) == 0)
		if err != nil {
			t.fail("idle", err)
		} else {
			if err := t.idle(srv); err != nil {
				t.fail("idle", err)
			}
			if err := srv.stop(); err != nil {
				t.logf("stopping the server: %v", err)
			}
		}
	}
	if len(rest) == 0 {
		return
	}
	srv, err := startBenchServer(t.exe, t.server, t.cfg, true)
	if err != nil {
		for _, w := range rest {
			t.res.Errors[w] = err.Error()
		}
		t.logf("FAILED: %v", err)
		return
	}
	defer func() {
		if err := srv.stop(); err != nil {
			t.logf("stopping the server: %v", err)
		}
	}()
	for _, w := range rest {
		prof := t.startProfile(w)
		var err error
		switch {
		case w == "echo" && t.server == "tun-floor":
			err = t.udpEcho(srv, "echo")
		case w == "udpecho":
			err = t.udpEcho(srv, "udpecho")
		case w == "echo":
			err = t.echo(srv)
		case w == "connrate":
			err = t.connRate(srv)
		case w == "up1":
			err = t.throughput(srv, w, 1, true)
		case w == "down1":
			err = t.throughput(srv, w, 1, false)
		case w == "up8":
			err = t.throughput(srv, w, 8, true)
		case w == "down8":
			err = t.throughput(srv, w, 8, false)
		}
		if err != nil {
			t.fail(w, err)
		}
		if perr := prof(); perr != nil {
			t.logf("%s: CPU profile: %v", w, perr)
		}
		if !srv.alive() {
			t.logf("server exited; its last words:\n%s", srv.stderr.String())
			break
		}
	}
	m := t.res.Metrics
	if t.upBytes > 0 {
		gb := float64(t.upBytes) / 1e9
		m["cpu_server_up_s_per_gb"] = t.upServerCPU.Seconds() / gb
		m["cpu_total_up_s_per_gb"] = (t.upServerCPU + t.upClientCPU).Seconds() / gb
	}
	if t.downBytes > 0 {
		gb := float64(t.downBytes) / 1e9
		m["cpu_server_down_s_per_gb"] = t.downServerCPU.Seconds() / gb
		m["cpu_total_down_s_per_gb"] = (t.downServerCPU + t.downClientCPU).Seconds() / gb
	}
}

// benchServerArgs is the command line of target's server. The ustack
// server gets the knobs, and with capture also --pcap/--trace: only one of
// the target's servers writes them, or the second would overwrite the first.
func benchServerArgs(target string, cfg *benchConfig, capture bool) ([]string, error) {
	mtu, offload := strconv.Itoa(cfg.mtu), "--offload="+strconv.FormatBool(cfg.offload)
	switch target {
	case "ustack":
		// The admin socket's default path is on the shared filesystem, and
		// two benches at once would collide there: off, or a private one
		// when --cpuprofile needs it.
		admin := "--admin=off"
		if cfg.profileDir != "" {
			admin = "--admin=" + benchAdminSocket(cfg)
		}
		// The bench has read what it wanted by the time it stops the
		// server: a short drain, well inside stop's 10 s.
		args := []string{"serve", "--tun", "ustack0", "--mtu", mtu, offload, admin, "--drain-timeout=1s"}
		if len(cfg.queues) == 1 {
			args = append(args, "--queues="+strconv.Itoa(cfg.queues[0]))
		}
		if cfg.idle+benchMaxConnsSlack > stack.DefaultMaxConns {
			args = append(args, "--max-conns="+strconv.Itoa(cfg.idle+benchMaxConnsSlack))
		}
		args = append(args, cfg.knobArgs...)
		if capture {
			args = append(args, cfg.captureArgs...)
		}
		return args, nil
	case "gvisor":
		link := cfg.gvisorLink
		if link == "" {
			link = gvisorLinks[0]
		}
		return []string{"bench", "server", "--stack", "gvisor", "--link", link, "--tun", "ustack0", "--mtu", mtu, offload}, nil
	case "kernel":
		return []string{"bench", "server", "--stack", "kernel"}, nil
	case "kernel-veth":
		return []string{"bench", "server", "--stack", "kernel", "--listen", benchVethServer.Addr().String()}, nil
	case "tun-floor":
		return []string{"bench", "reflect", "--tun", "ustack0", "--mtu", mtu, offload}, nil
	case "kernel-cubic", "kernel-bbr":
		// Behind an emulated path: in a namespace of its own, on the veth.
		return []string{"bench", "server", "--stack", "kernel", "--listen", pathVethServer.Addr().String(),
			"--cc", strings.TrimPrefix(target, "kernel-")}, nil
	}
	return nil, fmt.Errorf("unknown server %q", target)
}

// benchAdminSocket is the ustack server's admin socket when the bench
// profiles it: in the profile directory, private to this run (the default
// under /run/ustack would be shared by concurrent benches).
func benchAdminSocket(cfg *benchConfig) string {
	return filepath.Join(cfg.profileDir, fmt.Sprintf("ustack-%d.sock", os.Getpid()))
}

// startProfile starts a CPU profile of the ustack server over its admin
// socket for the length of workload w, written to DIR/ustack-w.pprof; the
// function it returns waits for it. Without --cpuprofile it does nothing.
func (t *benchTarget) startProfile(w string) func() error {
	if t.cfg.profileDir == "" || t.server != "ustack" {
		return func() error { return nil }
	}
	path := benchAdminSocket(t.cfg)
	secs := max(1, int(math.Round(t.cfg.duration.Seconds())))
	done := make(chan error, 1)
	go func() {
		client := &http.Client{
			Timeout: time.Duration(secs)*time.Second + 30*time.Second,
			Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			}},
		}
		resp, err := client.Get(fmt.Sprintf("http://ustack/debug/pprof/profile?seconds=%d", secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("admin socket: %s", resp.Status)
			return
		}
		out := filepath.Join(t.cfg.profileDir, "ustack-"+w+".pprof")
		f, err := os.Create(out)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		done <- errors.Join(err, f.Close())
		if err == nil {
			t.logf("%s: CPU profile in %s", w, out)
		}
	}()
	return func() error { return <-done }
}

// benchServer is a running server process.
type benchServer struct {
	cmd    *exec.Cmd
	addr   netip.Addr
	done   chan struct{}
	err    error
	stderr *tailBuffer
	// hostDev is the client side's device towards the server, where the
	// idle workload adds client addresses ("": the TUN, ustack0).
	hostDev string
	// cleanup, if set, removes what the server was started in (its
	// namespace and veth) once it has exited.
	cleanup func() error
}

// startBenchServer starts the server of target in this namespace and waits
// for its ready line.
func startBenchServer(exe, target string, cfg *benchConfig, capture bool) (*benchServer, error) {
	args, err := benchServerArgs(target, cfg, capture)
	if err != nil {
		return nil, err
	}
	if target == "kernel-veth" {
		return startKernelVethServer(exe, args, cfg.mtu)
	}
	return startBenchServerWith(exe, args, (*exec.Cmd).Start)
}

// startBenchServerWith runs exe with args, started by start (in another
// namespace, say), and waits for its ready line.
func startBenchServerWith(exe string, args []string, start func(*exec.Cmd) error) (*benchServer, error) {
	cmd := exec.Command(exe, args...)
	s := &benchServer{cmd: cmd, done: make(chan struct{}), stderr: &tailBuffer{max: 8 << 10}}
	cmd.Stderr = s.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("starting %s: %v", strings.Join(args, " "), err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ready ") {
				select {
				case ready <- line:
				default:
				}
			}
		}
	}()
	go func() { s.err = cmd.Wait(); close(s.done) }()
	select {
	case line := <-ready:
		f := strings.Fields(line)
		if len(f) != 3 {
			s.kill()
			return nil, fmt.Errorf("server said %q, want 'ready DEVICE ADDR'", line)
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil {
			s.kill()
			return nil, fmt.Errorf("server said %q: %v", line, err)
		}
		s.addr = a
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("server exited before it was ready (%v): %s", s.err, strings.TrimSpace(s.stderr.String()))
	case <-time.After(15 * time.Second):
		s.kill()
		return nil, errors.New("server printed no ready line within 15s")
	}
}

func (s *benchServer) pid() int { return s.cmd.Process.Pid }

func (s *benchServer) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *benchServer) kill() {
	s.cmd.Process.Kill()
	<-s.done
	s.clean()
}

// clean runs cleanup once, after the server has exited.
func (s *benchServer) clean() error {
	f := s.cleanup
	s.cleanup = nil
	if f == nil {
		return nil
	}
	return f()
}

// stop asks the server to stop and kills it if it takes over 10 seconds.
func (s *benchServer) stop() error {
	if !s.alive() {
		return errors.Join(fmt.Errorf("server had exited: %v", s.err), s.clean())
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			return errors.Join(fmt.Errorf("server exited: %v", s.err), s.clean())
		}
		return s.clean()
	case <-time.After(10 * time.Second):
		s.kill()
		return errors.New("server did not stop within 10s of SIGTERM; killed")
	}
}

func (s *benchServer) hostPort(port int) string {
	return netip.AddrPortFrom(s.addr, uint16(port)).String()
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// parseProcStatCPU returns utime+stime from the contents of /proc/PID/stat
// (proc(5): fields 14 and 15, counted after the parenthesised command name,
// which may itself hold spaces and parentheses).
func parseProcStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no ')' after the command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/PID/stat: utime %q, stime %q: not counts of ticks", f[11], f[12])
	}
	return time.Duration(u+s) * time.Second / userHZ, nil
}

// parseVmRSS returns VmRSS in KiB from the contents of /proc/PID/status.
func parseVmRSS(status []byte) (int64, error) {
	for _, line := range strings.Split(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/PID/status: VmRSS line %q, want 'VmRSS: N kB'", line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("/proc/PID/status: no VmRSS line")
}

func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStatCPU(b)
}

func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// cpuMeter reads the CPU time of the server and of this process (the client).
type cpuMeter struct {
	server, client time.Duration
}

func readCPU(srv *benchServer) (cpuMeter, error) {
	s, err := procCPU(strconv.Itoa(srv.pid()))
	if err != nil {
		return cpuMeter{}, err
	}
	c, err := procCPU("self")
	if err != nil {
		return cpuMeter{}, err
	}
	return cpuMeter{s, c}, nil
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted
// samples; 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// gbps is bytes over d in Gbit/s.
func gbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) * 8 / d.Seconds() / 1e9
}

const benchDialTimeout = 5 * time.Second

// throughput runs streams uploads to discard (up) or downloads of
// GET /bytes/N for the configured duration and records Gbit/s and CPU.
func (t *benchTarget) throughput(srv *benchServer, name string, streams int, up bool) error {
	before, err := readCPU(srv)
	if err != nil {
		return err
	}
	start := time.Now()
	end := start.Add(t.cfg.duration)
	var total atomic.Int64
	errs := make([]error, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			if up {
				n, errs[i] = uploadStream(srv.hostPort(benchDiscardPort), end)
			} else {
				n, errs[i] = downloadStream(srv.hostPort(benchHTTPPort), end)
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	after, cerr := readCPU(srv)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	n := total.Load()
	rate := gbps(n, elapsed)
	t.res.Metrics[name+"_gbps"] = rate
	sc, cc := after.server-before.server, after.client-before.client
	if up {
		t.upBytes += n
		t.upServerCPU += sc
		t.upClientCPU += cc
	} else {
		t.downBytes += n
		t.downServerCPU += sc
		t.downClientCPU += cc
	}
	t.logf("%s: %.2f Gbit/s (%d MiB in %v; CPU server %v, client %v)", name, rate, n>>20,
		elapsed.Round(time.Millisecond), sc, cc)
	return nil
}

// uploadBuf is what upload streams write: 1024 periods of the pattern, so
// consecutive writes continue it.
var uploadBuf = bytes.Repeat(pattern[:patternModulus], 1024)

// uploadStream writes the pattern to addr until end, half-closes, and waits
// for the server to close in turn: then every byte has been received.
func uploadStream(addr string, end time.Time) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, benchDialTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := uploadBuf
	c.SetWriteDeadline(end)
	var n int64
	for time.Now().Before(end) {
		m, err := c.Write(buf)
		n += int64(m)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("upload after %d bytes: %v", n, err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return n, err
	}
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return n, fmt.Errorf("upload: waiting for the server to finish reading: %v", err)
	}
	return n, nil
}

// benchDownloadSize is what a download stream asks for: more than any run
// can move, so the client decides when to stop.
const benchDownloadSize = maxBytesN

// downloadStream reads GET /bytes/N from addr until end. It checks the status
// and the first MiB of the body against the pattern.
func downloadStream(addr string, end time.Time) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, benchDialTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(end)
	if _, err := fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", benchDownloadSize); err != nil {
		return 0, err
	}
	br := bufio.NewReaderSize(c, 64<<10)
	status, err := br.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("download: reading the status line: %v", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		return 0, fmt.Errorf("download: status %q", strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("download: reading the header: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := br.Read(buf)
		if n < 1<<20 {
			for i := range m {
				if buf[i] != byte((n+int64(i))%patternModulus) {
					return n, fmt.Errorf("download: byte %d differs from the i mod %d pattern", n+int64(i), patternModulus)
				}
			}
		}
		n += int64(m)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("download after %d bytes: %v", n, err)
		}
	}
}

// echo measures 64-byte round trips on one connection for the duration.
func (t *benchTarget) echo(srv *benchServer) error {
	c, err := net.DialTimeout("tcp", srv.hostPort(benchEchoPort), benchDialTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	before, err := readCPU(srv)
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(t.cfg.duration + 5*time.Second))
	msg, got := benchEchoMessage(), make([]byte, 64)
	samples, err := echoSamples(t.cfg.duration, func() error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("echo: got % x, sent % x", got, msg)
		}
		return nil
	})
	if err != nil {
		return err
	}
	after, err := readCPU(srv)
	if err != nil {
		t.recordEcho("echo", samples, nil)
	} else {
		t.recordEcho("echo", samples, &[2]cpuMeter{before, after})
	}
	return nil
}

// benchEchoMessage is what the echo workloads send: 64 bytes, 0 to 63.
func benchEchoMessage() []byte {
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	return msg
}

// echoWarmup round trips come before the samples of an echo workload.
const echoWarmup = 100

// echoSamples runs roundTrip for d after echoWarmup of them and returns the
// times of those after the warm-up, sorted.
func echoSamples(d time.Duration, roundTrip func() error) ([]time.Duration, error) {
	end := time.Now().Add(d)
	var samples []time.Duration
	for i := 0; time.Now().Before(end); i++ {
		t0 := time.Now()
		if err := roundTrip(); err != nil {
			return nil, err
		}
		rtt := time.Since(t0)
		if i >= echoWarmup {
			samples = append(samples, rtt)
		}
	}
	if len(samples) == 0 {
		return nil, errors.New("echo: no round trip after the warm-up")
	}
	slices.Sort(samples)
	return samples, nil
}

// recordEcho stores the figures of echo workload w (its metrics are named
// w_p50_us...), and the server's CPU per round trip when cpu holds its
// readings before and after.
func (t *benchTarget) recordEcho(w string, samples []time.Duration, cpu *[2]cpuMeter) {
	p50, p99 := percentile(samples, 50), percentile(samples, 99)
	m := t.res.Metrics
	m[w+"_p50_us"] = float64(p50) / float64(time.Microsecond)
	m[w+"_p99_us"] = float64(p99) / float64(time.Microsecond)
	m[w+"_samples"] = float64(len(samples))
	if cpu != nil {
		// JSON only: server CPU per round trip (warm-up included).
		m[w+"_server_cpu_us"] = float64(cpu[1].server-cpu[0].server) / float64(time.Microsecond) / float64(len(samples)+echoWarmup)
	}
	t.logf("%s: p50 %v, p99 %v over %d round trips", w, p50, p99, len(samples))
}

// benchConnWorkers is how many clients open connections at once in the
// connection-rate workload.
const benchConnWorkers = 4

// connRate opens, uses (1 byte echoed) and closes connections for the
// duration, from benchConnWorkers clients at once.
func (t *benchTarget) connRate(srv *benchServer) error {
	before, err := readCPU(srv)
	if err != nil {
		return err
	}
	end := time.Now().Add(t.cfg.duration)
	start := time.Now()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range benchConnWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []byte{'x'}
			for time.Now().Before(end) {
				if err := oneConn(srv.hostPort(benchEchoPort), b); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	rate := float64(ok.Load()) / elapsed.Seconds()
	t.res.Metrics["connrate_per_s"] = rate
	t.res.Metrics["connrate_failed"] = float64(failed.Load())
	if after, err := readCPU(srv); err == nil && ok.Load() > 0 {
		// JSON only: server CPU per connection, steadier than the rate
		// on a loaded machine.
		t.res.Metrics["connrate_server_cpu_us"] = float64(after.server-before.server) / float64(time.Microsecond) / float64(ok.Load())
	}
	t.logf("connrate: %.0f conn/s (%d in %v, %d failed)", rate, ok.Load(), elapsed.Round(time.Millisecond), failed.Load())
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d connections failed, the first with: %v", f, f+ok.Load(), firstErr.Load())
	}
	return nil
}

func oneConn(addr string, b []byte) error {
	c, err := net.DialTimeout("tcp", addr, benchDialTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(benchDialTimeout))
	if _, err := c.Write(b); err != nil {
		return err
	}
	_, err = io.ReadFull(c, b)
	return err
}

// benchIdleWorkers is how many clients open the idle connections at once.
const benchIdleWorkers = 16

// benchIdlePerSource is how many idle connections one client address opens:
// the ephemeral range (1024-65535, prepareBenchNetns) holds 64,511 ports
// per address pair, so 100,000 connections need a second address.
const benchIdlePerSource = 50000

// benchMaxConnsSlack is how many connections beyond --idle-conns the ustack
// server's table may hold (the warm-up, connections still closing).
const benchMaxConnsSlack = 1000

// idleSources returns the client addresses for n idle connections to srv:
// the kernel side's own address (or loopback's) first, then more, added to
// the TUN device (in this private namespace, from the benchmarking range)
// when the server is behind one.
func idleSources(srv *benchServer, n, per int) ([]netip.Addr, error) {
	k := (n + per - 1) / per
	var out []netip.Addr
	if srv.addr.IsLoopback() {
		a := srv.addr.As4()
		for i := range k {
			a[3] = byte(1 + i)
			out = append(out, netip.AddrFrom4(a))
		}
		return out, nil
	}
	out = append(out, benchHostAddrs[0].Addr())
	if k == 1 {
		return out, nil
	}
	dev := srv.hostDev
	if dev == "" {
		dev = "ustack0"
	}
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("idle: finding the device %s towards the server: %v", dev, err)
	}
	for i := 1; i < k; i++ {
		// 198.18.0.101, .102, ...: on the kernel side, never the server's.
		a := benchHostAddrs[0].Addr().As4()
		a[3] = byte(100 + i)
		p := netip.PrefixFrom(netip.AddrFrom4(a), 32)
		addr, _ := netlink.ParseAddr(p.String())
		if err := netlink.AddrReplace(link, addr); err != nil {
			return nil, fmt.Errorf("idle: adding client address %v: %v", p, err)
		}
		out = append(out, p.Addr())
	}
	return out, nil
}

// idle opens the configured number of connections to the echo port, sends
// nothing, and compares the server's RSS before and after. Echo costs the
// least application memory of the three services while idle (a goroutine and
// a read buffer whose pages an idle connection never touches); the kernel
// server's figure is that cost alone, its sockets being kernel memory.
func (t *benchTarget) idle(srv *benchServer) error {
	// One echo first, so the service's first-use costs are in the baseline,
	// not in the per-connection figure.
	if err := oneConn(srv.hostPort(benchEchoPort), []byte{'x'}); err != nil {
		return fmt.Errorf("idle: warm-up echo: %v", err)
	}
	base, err := settledRSS(srv.pid())
	if err != nil {
		return err
	}
	n := t.cfg.idle
	if n > benchIdleInProcess {
		return t.idleHeld(srv, base, n)
	}
	sources, err := idleSources(srv, n, benchIdlePerSource)
	if err != nil {
		return err
	}
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	start := time.Now()
	var next atomic.Int64
	errs := make([]error, benchIdleWorkers)
	var wg sync.WaitGroup
	for w := range benchIdleWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d := net.Dialer{Timeout: benchDialTimeout,
					LocalAddr: &net.TCPAddr{IP: sources[i/benchIdlePerSource].AsSlice()}}
				c, err := d.Dial("tcp", srv.hostPort(benchEchoPort))
				if err != nil {
					errs[w] = fmt.Errorf("idle connection %d: %v", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	opened := time.Since(start)
	after, err := settledRSS(srv.pid())
	if err != nil {
		return err
	}
	t.idleFigures(base, after, n, opened)
	return nil
}

// idleFigures records the idle workload's metrics: RSS before (base) and
// with (after) n idle connections, in KiB.
func (t *benchTarget) idleFigures(base, after int64, n int, opened time.Duration) {
	per := float64(after-base) / float64(n)
	m := t.res.Metrics
	m["idle_conns"] = float64(n)
	m["rss_base_mib"] = float64(base) / 1024
	m["rss_idle_mib"] = float64(after) / 1024
	m["idle_conn_kib"] = per
	if n == 100000 {
		m["rss_100k_mib"] = float64(after) / 1024 // measured
	} else {
		m["rss_100k_mib"] = (float64(base) + per*100000) / 1024
	}
	t.logf("idle: %d connections opened in %v; RSS %.1f -> %.1f MiB, %.1f KiB each; at 100,000: %.0f MiB",
		n, opened.Round(time.Millisecond), float64(base)/1024, float64(after)/1024, per, m["rss_100k_mib"])
}

// benchIdleInProcess is the most idle connections the target opens itself;
// more are opened by `ustack bench hold` processes of benchHoldPer each, as
// one process may not have more open files here (the kernel server, which
// holds a socket per connection, still needs --idle-conns of them).
const (
	benchIdleInProcess = 15000
	benchHoldPer       = 17000
)

// idleHeld is the idle workload with the connections held by holder
// processes, each from its own client address.
func (t *benchTarget) idleHeld(srv *benchServer, base int64, n int) error {
	sources, err := idleSources(srv, n, benchHoldPer)
	if err != nil {
		return err
	}
	start := time.Now()
	var holds []*exec.Cmd
	var stdins []io.WriteCloser
	defer func() {
		for i, h := range holds {
			stdins[i].Close()
			h.Wait()
		}
	}()
	var outs []*bufio.Scanner
	for i, src := range sources {
		k := min(benchHoldPer, n-i*benchHoldPer)
		h := exec.Command(t.exe, "bench", "hold", "--to", srv.hostPort(benchEchoPort), "--from", src.String(),
			"--n", strconv.Itoa(k), "--workers", "16")
		h.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		in, err := h.StdinPipe()
		if err != nil {
			return err
		}
		out, err := h.StdoutPipe()
		if err != nil {
			return err
		}
		h.Stderr = t.progress
		if err := h.Start(); err != nil {
			return fmt.Errorf("idle: starting a holder: %v", err)
		}
		holds, stdins = append(holds, h), append(stdins, in)
		outs = append(outs, bufio.NewScanner(out))
	}
	for i, sc := range outs {
		k := min(benchHoldPer, n-i*benchHoldPer)
		if !sc.Scan() || sc.Text() != fmt.Sprintf("open %d", k) {
			return fmt.Errorf("idle: holder %d: %q", i, sc.Text())
		}
	}
	opened := time.Since(start)
	after, err := settledRSS(srv.pid())
	if err != nil {
		return err
	}
	t.idleFigures(base, after, n, opened)
	return nil
}

// settledRSS waits until the server's RSS stops moving (accepts and
// handshakes finish asynchronously) and returns it in KiB: two readings
// 300 ms apart within 0.5%, or the last one after 5 seconds.
func settledRSS(pid int) (int64, error) {
	prev, err := procRSS(pid)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		cur, err := procRSS(pid)
		if err != nil {
			return 0, err
		}
		if math.Abs(float64(cur-prev)) <= 0.005*float64(prev) {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}
