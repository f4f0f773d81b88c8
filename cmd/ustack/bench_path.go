package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/tun"
)

// `ustack bench --path SPEC` measures the servers over an emulated WAN path
// (tun.Path, plumbed by pathnet.go) instead of the local TUN: the client in
// the target's namespace, the router a process of its own, each server one
// forwarding hop behind it. The kernel server is measured twice, with CUBIC
// and with BBR (TCP_CONGESTION on its listeners); the client is the
// kernel's CUBIC (TCP_CONGESTION on every client socket), whatever the
// namespace's default. A loss sweep (loss=0,0.5%,2%) runs every server at
// every loss rate, each run in fresh namespaces, and prints one table.

// benchPathServers are the columns of a --path run, in order; --only's
// "kernel" means both kernel ones.
var benchPathServers = []string{"ustack", "gvisor", "kernel-cubic", "kernel-bbr"}

// benchPathWorkloads are a --path run's workloads, in the order they run.
var benchPathWorkloads = []string{"down", "up", "fetch"}

// benchPathMetrics are the rows of a --path table, for every loss rate.
var benchPathMetrics = []benchMetric{
	{"down_mbps", "download goodput (server sends)", "Mbit/s", true},
	{"down_queue_mean_ms", "download: bottleneck queueing delay, mean", "ms", false},
	{"down_queue_p90_ms", "download: bottleneck queueing delay, p90", "ms", false},
	{"up_mbps", "upload goodput (server receives CUBIC)", "Mbit/s", true},
	{"fetch_p50_ms", "20 x 256 KiB fetch, completion p50", "ms", false},
	{"fetch_p90_ms", "20 x 256 KiB fetch, completion p90", "ms", false},
	// The router's figures cover the whole run (every workload); run
	// --workloads down alone for the download's.
	{"path_down_queue_delay_ms", "bottleneck queueing delay to the client, mean (run)", "ms", false},
	{"path_down_ce_marks", "CE marks to the client (ecn=, run)", "packets", false},
	{"path_down_queue_drops", "tail drops to the client (run)", "packets", false},
}

// Defaults of a --path run, replacing the local bench's when not given.
const (
	benchPathDuration = 5 * time.Second
	benchFetchCount   = 20
	benchFetchSize    = 256 << 10
)

// benchPath is one point of a sweep: the spec as given to the router.
type benchPath struct {
	Loss  string `json:"loss"` // as written in the sweep ("0", "0.5%")
	Spec  string `json:"spec"`
	AsRun string `json:"as_run"` // with the defaults filled in (the queue in bytes)
	cfg   tun.PathConfig
}

// parsePathSweep reads --path: ParsePath's syntax, where loss may list
// several rates ("loss=0,0.5%,2%": items without "=" after loss add to
// it), one path per rate.
func parsePathSweep(s string) ([]benchPath, error) {
	var base []string
	var losses []string
	inLoss := false
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if k, v, ok := strings.Cut(item, "="); ok {
			inLoss = strings.TrimSpace(k) == "loss"
			if inLoss {
				if losses != nil {
					return nil, fmt.Errorf("--path %q: loss given twice", s)
				}
				losses = append(losses, strings.TrimSpace(v))
				continue
			}
			base = append(base, item)
			continue
		}
		if !inLoss || item == "" {
			return nil, fmt.Errorf("--path %q: %q is not key=value (only loss takes a list: loss=0,0.5%%,2%%)", s, item)
		}
		losses = append(losses, item)
	}
	if losses == nil {
		losses = []string{"0"}
	}
	var out []benchPath
	for _, l := range losses {
		if slices.ContainsFunc(out, func(p benchPath) bool { return p.Loss == l }) {
			return nil, fmt.Errorf("--path: loss %s given twice", l)
		}
		spec := strings.Join(append(slices.Clone(base), "loss="+l), ",")
		cfg, err := tun.ParsePath(spec)
		if err != nil {
			return nil, fmt.Errorf("--path: %v", err)
		}
		out = append(out, benchPath{Loss: l, Spec: spec, AsRun: cfg.String(), cfg: cfg})
	}
	return out, nil
}

// benchPathReport is a --path run: the settings, and per loss rate each
// server's figures and ustack's ratios to the others.
type benchPathReport struct {
	Path            string                                   `json:"path"` // --path as given
	Paths           []benchPath                              `json:"paths"`
	DurationSeconds float64                                  `json:"duration_s"`
	MTU             int                                      `json:"mtu"`
	Offload         bool                                     `json:"offload"` // of the servers' TUNs; the path's are off
	Workloads       []string                                 `json:"workloads"`
	Servers         []string                                 `json:"servers"`
	Results         map[string]map[string]*benchResult       `json:"results"` // loss, server
	Ratios          map[string]map[string]map[string]float64 `json:"ratios"`  // loss, "ustack/x", metric
	ElapsedSeconds  float64                                  `json:"elapsed_s"`
}

// pathServers expands --only for a --path run.
func pathServers(only string) ([]string, error) {
	list, err := parseList("only", only, []string{"ustack", "gvisor", "kernel", "kernel-cubic", "kernel-bbr"})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range benchPathServers {
		if slices.Contains(list, s) || (strings.HasPrefix(s, "kernel-") && slices.Contains(list, "kernel")) {
			out = append(out, s)
		}
	}
	return out, nil
}

// pathTargetBudget bounds one target of a --path run.
func (c *benchConfig) pathTargetBudget() time.Duration {
	return 40*time.Second + time.Duration(len(c.workloads))*(3*c.duration+10*time.Second) + benchFetchCount*5*time.Second
}

// runBenchPath is `ustack bench --path`: every server at every point of the
// sweep, each in a target process of its own.
func runBenchPath(exe string, cfg *benchConfig, stdout, stderr io.Writer) int {
	if cfg.fairness != nil {
		return runBenchFairness(exe, cfg, stdout, stderr)
	}
	start := time.Now()
	rep := &benchPathReport{Path: cfg.pathSpec, Paths: cfg.paths, DurationSeconds: cfg.duration.Seconds(), MTU: cfg.mtu,
		Offload: cfg.offload, Workloads: cfg.workloads, Servers: cfg.servers,
		Results: map[string]map[string]*benchResult{}, Ratios: map[string]map[string]map[string]float64{}}
	for _, p := range cfg.paths {
		rep.Results[p.Loss] = map[string]*benchResult{}
		for _, s := range cfg.servers {
			fmt.Fprintf(stderr, "bench: %s over %s: starting in private network namespaces\n", s, p.Spec)
			c := *cfg
			c.paths = []benchPath{p}
			if s == "kernel-bbr" && slices.Contains(cfg.servers, "kernel-cubic") {
				// A receiver's congestion control plays no part in an
				// upload: the kernel's is measured once, as kernel-cubic.
				c.workloads = slices.DeleteFunc(slices.Clone(c.workloads), func(w string) bool { return w == "up" })
			}
			res, err := runPathTargetProcess(exe, &c, s, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "bench: %s over %s: %v\n", s, p.Spec, err)
				res = &benchResult{Server: s, Metrics: map[string]float64{}, Errors: map[string]string{"run": err.Error()}}
			}
			rep.Results[p.Loss][s] = res
		}
		rep.Ratios[p.Loss] = pathRatios(rep.Results[p.Loss])
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	if code := writeBenchReport(stdout, stderr, cfg.json, rep, func() { writeBenchPathTable(stdout, rep) }); code != 0 {
		return code
	}
	for _, byServer := range rep.Results {
		for _, r := range byServer {
			if len(r.Errors) > 0 {
				return 1
			}
		}
	}
	return 0
}

func runPathTargetProcess(exe string, cfg *benchConfig, server string, stderr io.Writer) (*benchResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.pathTargetBudget())
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, cfg.targetArgs(server)...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, &out, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("did not finish within %v; killed", cfg.pathTargetBudget())
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

// pathRatios divides ustack's figures by each other server's.
func pathRatios(results map[string]*benchResult) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	u, ok := results["ustack"]
	if !ok {
		return out
	}
	for _, other := range benchPathServers[1:] {
		o, ok := results[other]
		if !ok {
			continue
		}
		r := map[string]float64{}
		for _, m := range benchPathMetrics {
			a, aok := u.Metrics[m.key]
			b, bok := o.Metrics[m.key]
			if aok && bok && b != 0 {
				r[m.key] = a / b
			}
		}
		out["ustack/"+other] = r
	}
	return out
}

// writeBenchPathTable prints one table: a block of rows per loss rate, a
// column per server, then ustack's ratio to the kernel's CUBIC, then what
// the router measured of its own precision.
func writeBenchPathTable(w io.Writer, rep *benchPathReport) {
	base := rep.Path
	fmt.Fprintf(w, "ustack bench --path %s: %v per transfer, %d x %d KiB fetches, MTU %d, path TUNs without offloads, %.0fs in all\n",
		base, time.Duration(rep.DurationSeconds*float64(time.Second)), benchFetchCount, benchFetchSize>>10, rep.MTU, rep.ElapsedSeconds)
	if len(rep.Paths) > 0 {
		fmt.Fprintf(w, "path as run: %s\n", rep.Paths[0].cfg.String())
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"loss", "metric", "unit", "better"}
	header = append(header, rep.Servers...)
	ratioKeys := []string{}
	for _, k := range []string{"ustack/kernel-cubic", "ustack/kernel-bbr", "ustack/gvisor"} {
		if slices.Contains(rep.Servers, "ustack") && slices.Contains(rep.Servers, strings.TrimPrefix(k, "ustack/")) {
			ratioKeys = append(ratioKeys, k)
			header = append(header, k)
		}
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, p := range rep.Paths {
		res := rep.Results[p.Loss]
		for _, m := range benchPathMetrics {
			better := "lower"
			if m.higher {
				better = "higher"
			}
			row := []string{p.Loss, m.label, m.unit, better}
			any := false
			for _, s := range rep.Servers {
				if v, ok := res[s].Metrics[m.key]; ok {
					row = append(row, formatFigure(v))
					any = true
				} else {
					row = append(row, "-")
				}
			}
			if !any {
				continue
			}
			for _, k := range ratioKeys {
				if v, ok := rep.Ratios[p.Loss][k][m.key]; ok {
					row = append(row, formatFigure(v)+"x")
				} else {
					row = append(row, "-")
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
	}
	tw.Flush()
	// The router's own figures, over every run.
	var pings []float64
	var late, worst, over1ms, released float64
	for _, p := range rep.Paths {
		for _, s := range rep.Servers {
			m := rep.Results[p.Loss][s].Metrics
			if v, ok := m["path_ping_ms"]; ok {
				pings = append(pings, v)
			}
			n := m["path_released"]
			released += n
			late += m["path_late_mean_us"] * n
			worst = max(worst, m["path_late_max_us"])
			over1ms += m["path_late_over_1ms"]
		}
	}
	if len(pings) > 0 {
		slices.Sort(pings)
		fmt.Fprintf(w, "\nping through the path before each run: median %.2f ms (asked: %v)", pings[len(pings)/2], rep.Paths[0].cfg.RTT)
	}
	if released > 0 {
		fmt.Fprintf(w, "\nrouter: packets left a mean %.0f µs after they were due (worst %.1f ms; %.2f%% over 1 ms)",
			late/released, worst/1000, 100*over1ms/released)
	}
	fmt.Fprintln(w)
	for _, p := range rep.Paths {
		for _, s := range rep.Servers {
			r := rep.Results[p.Loss][s]
			keys := make([]string, 0, len(r.Errors))
			for k := range r.Errors {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fmt.Fprintf(w, "error: loss %s: %s %s: %s\n", p.Loss, s, k, r.Errors[k])
			}
		}
	}
	fmt.Fprint(w, "\nGoodput is application bytes (content checked) over the transfer's time, slow start included.\n"+
		"The client is always the kernel's CUBIC; upload measures the server as a receiver (ACKs,\n"+
		"SACK, window). A fetch is connect, GET, the last byte read, on a fresh connection each.\n")
}

// runPathTarget is `ustack bench target` with --path: inside its private
// namespace (the client's), it builds the hop namespace, starts the router
// and the server, and runs the workloads.
func (t *benchTarget) runPath() {
	p := t.cfg.paths[0]
	fail := func(err error) {
		for _, w := range t.cfg.workloads {
			t.res.Errors[w] = err.Error()
		}
		t.logf("FAILED: %v", err)
	}
	client, err := openNetns("/proc/self/ns/net")
	if err != nil {
		fail(err)
		return
	}
	defer client.Close()
	hop, err := newNetns()
	if err != nil {
		fail(err)
		return
	}
	defer hop.Close()
	srvNS := hop
	if strings.HasPrefix(t.server, "kernel") {
		if srvNS, err = kernelServerNetns(hop); err != nil {
			fail(err)
			return
		}
		defer srvNS.Close()
	}
	ecn := p.cfg.Up.ECN > 0 || p.cfg.Down.ECN > 0
	if ecn {
		// A CE-marking path is measured with ECN: the kernel client
		// asks for it (Linux tcp_ecn=1; its default 2 only accepts), and
		// so does a kernel server. The ustack server accepts it by
		// default; --ecn makes it ask too.
		nss := []netnsFD{client}
		if strings.HasPrefix(t.server, "kernel") {
			nss = append(nss, srvNS)
		}
		for _, ns := range nss {
			if err := ns.do(func() error { return setSysctls("net/ipv4/tcp_ecn", "1") }); err != nil {
				fail(err)
				return
			}
		}
		t.logf("ECN: net.ipv4.tcp_ecn=1 in the client's namespace%s", map[bool]string{true: " and the kernel server's", false: ""}[len(nss) > 1])
	}
	router, err := startRouterProcess(t.exe, p.Spec, t.cfg.mtu, client, hop, t.progress)
	if err != nil {
		fail(err)
		return
	}
	defer func() {
		st, err := router.stop()
		if err != nil {
			t.logf("router: %v", err)
			return
		}
		for _, e := range []string{st.UpReadErr, st.DownReadErr} {
			if e != "" {
				t.res.Errors["path"] = "the router stopped forwarding: " + e
			}
		}
		m := t.res.Metrics
		both := st.UpLate
		both.Count += st.DownLate.Count
		both.Sum += st.DownLate.Sum
		both.Max = max(both.Max, st.DownLate.Max)
		both.Over1ms += st.DownLate.Over1ms
		m["path_released"] = float64(both.Count)
		m["path_late_mean_us"] = float64(both.Mean()) / 1e3
		m["path_late_max_us"] = float64(both.Max) / 1e3
		m["path_late_over_1ms"] = float64(both.Over1ms)
		m["path_up_loss_drops"] = float64(st.Up.Dropped)
		m["path_down_loss_drops"] = float64(st.Down.Dropped)
		m["path_up_queue_drops"] = float64(st.Up.QueueDrops)
		m["path_down_queue_drops"] = float64(st.Down.QueueDrops)
		m["path_up_queue_delay_ms"] = float64(st.Up.Delay.Mean()) / 1e6
		m["path_down_queue_delay_ms"] = float64(st.Down.Delay.Mean()) / 1e6
		m["path_down_queue_delay_max_ms"] = float64(st.Down.Delay.Max) / 1e6
		if ecn {
			m["path_up_ce_marks"] = float64(st.Up.Marked)
			m["path_down_ce_marks"] = float64(st.Down.Marked)
		}
		t.logf("router: %d packets, mean %v late, worst %v; drops up %d loss + %d queue, down %d + %d",
			both.Count, both.Mean(), both.Max, st.Up.Dropped, st.Up.QueueDrops, st.Down.Dropped, st.Down.QueueDrops)
		t.logf("router: queueing delay to the client mean %v, worst %v; CE marks up %d, down %d",
			st.Down.Delay.Mean().Round(time.Microsecond), st.Down.Delay.Max.Round(time.Microsecond), st.Up.Marked, st.Down.Marked)
	}()
	if rtts, err := pathPing(pathHopAddr.Addr(), 5, 2*time.Second); err == nil && len(rtts) > 0 {
		slices.Sort(rtts)
		t.res.Metrics["path_ping_ms"] = float64(rtts[len(rtts)/2]) / 1e6
		t.logf("ping through the path: median %v of %d", rtts[len(rtts)/2], len(rtts))
	}
	if cc, ok := strings.CutPrefix(t.server, fairServerPrefix); ok {
		t.pathFair(hop, router, cc)
		return
	}
	args, err := benchServerArgs(t.server, t.cfg, true)
	if err != nil {
		fail(err)
		return
	}
	srv, err := startBenchServerWith(t.exe, args, func(cmd *exec.Cmd) error { return startInNetns(srvNS, cmd) })
	if err != nil {
		fail(err)
		return
	}
	defer func() {
		if err := srv.stop(); err != nil {
			t.logf("stopping the server: %v", err)
		}
	}()
	for _, w := range t.cfg.workloads {
		prof := t.startProfile(w)
		if _, err := router.mark(); err != nil {
			t.fail(w, err)
			break
		}
		var err error
		switch w {
		case "down":
			err = t.pathDown(srv)
		case "up":
			err = t.pathUp(srv)
		case "fetch":
			err = t.pathFetch(srv)
		}
		if err != nil {
			t.fail(w, err)
		}
		if m, merr := router.mark(); merr != nil {
			t.fail(w, merr)
		} else {
			t.queueMetrics(w, m)
		}
		if perr := prof(); perr != nil {
			t.logf("%s: CPU profile: %v", w, perr)
		}
		if !srv.alive() {
			t.logf("server exited; its last words:\n%s", srv.stderr.String())
			break
		}
	}
}

// queueMetrics records the bottleneck's queueing delay during workload w
// in the direction its data went (down for down and fetch, up for up) as
// W_queue_mean_ms, W_queue_p90_ms, W_queue_p99_ms and W_queue_max_ms.
func (t *benchTarget) queueMetrics(w string, m routerMark) {
	q := m.Down
	if w == "up" {
		q = m.Up
	}
	msOf := func(d time.Duration) float64 { return float64(d) / 1e6 }
	t.res.Metrics[w+"_queue_mean_ms"] = msOf(q.Mean())
	t.res.Metrics[w+"_queue_p90_ms"] = msOf(q.P90)
	t.res.Metrics[w+"_queue_p99_ms"] = msOf(q.P99)
	t.res.Metrics[w+"_queue_max_ms"] = msOf(q.Max)
	t.logf("%s: bottleneck queueing delay mean %v, p90 %v, p99 %v, max %v over %d packets",
		w, q.Mean().Round(time.Microsecond), q.P90, q.P99, q.Max, q.Count)
}

// pathDialer dials with the kernel's CUBIC, whatever the namespace's
// default congestion control.
var pathDialer = net.Dialer{Timeout: benchDialTimeout, Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, "cubic")
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setting TCP_CONGESTION cubic on the client: %w", serr)
	}
	return nil
}}

// readHTTPHead reads a response's status line and header, and returns the
// status line.
func readHTTPHead(br *bufio.Reader) (string, error) {
	status, err := br.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading the status line: %v", err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("reading the header: %v", err)
		}
		if line == "\r\n" {
			return strings.TrimSpace(status), nil
		}
	}
}

// patternChecker checks a stream against the i mod 251 pattern.
type patternChecker struct{ n int64 }

func (p *patternChecker) check(b []byte) error {
	for i, c := range b {
		if c != byte((p.n+int64(i))%patternModulus) {
			return fmt.Errorf("byte %d differs from the i mod %d pattern", p.n+int64(i), patternModulus)
		}
	}
	p.n += int64(len(b))
	return nil
}

// pathDown downloads GET /bytes/N for the duration, every byte checked.
func (t *benchTarget) pathDown(srv *benchServer) error {
	n, elapsed, err := t.download(srv, t.cfg.duration, nil)
	if err != nil {
		return err
	}
	rate := float64(n) * 8 / elapsed.Seconds() / 1e6
	t.res.Metrics["down_mbps"] = rate
	t.res.Metrics["down_bytes"] = float64(n)
	t.logf("down: %.1f Mbit/s (%.1f MiB in %v, checked)", rate, float64(n)/(1<<20), elapsed.Round(time.Millisecond))
	return nil
}

// download reads GET /bytes/N from srv for d, every byte checked, and
// returns the bytes read and the time from the connect to the end. With
// mon, it keeps mon.bytes up to date as it reads and fills in the client
// socket's TCP_INFO at the end.
func (t *benchTarget) download(srv *benchServer, d time.Duration, mon *downloadMonitor) (int64, time.Duration, error) {
	c, err := pathDialer.Dial("tcp4", srv.hostPort(benchHTTPPort))
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if mon != nil {
		defer mon.readInfo(c)
	}
	start := time.Now()
	end := start.Add(d)
	c.SetDeadline(end)
	if _, err := fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", benchDownloadSize); err != nil {
		return 0, 0, err
	}
	br := bufio.NewReaderSize(c, 64<<10)
	status, err := readHTTPHead(br)
	if err != nil {
		return 0, 0, fmt.Errorf("download: %v", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		return 0, 0, fmt.Errorf("download: status %q", status)
	}
	buf := make([]byte, 256<<10)
	var pc patternChecker
	for {
		m, err := br.Read(buf)
		if cerr := pc.check(buf[:m]); cerr != nil {
			return 0, 0, fmt.Errorf("download: %v", cerr)
		}
		if mon != nil {
			mon.bytes.Store(pc.n)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("download after %d bytes: %v", pc.n, err)
		}
	}
	return pc.n, time.Since(start), nil
}

// pathUp posts the pattern to /upload, chunked, for the duration; the
// server answers with the count and SHA-256 of what it received, which
// must be what was sent. The time runs to that answer.
func (t *benchTarget) pathUp(srv *benchServer) error {
	c, err := pathDialer.Dial("tcp4", srv.hostPort(benchHTTPPort))
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	end := start.Add(t.cfg.duration)
	c.SetDeadline(end.Add(30 * time.Second))
	bw := bufio.NewWriterSize(c, 128<<10)
	fmt.Fprintf(bw, "POST /upload HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
	h := sha256.New()
	chunk := uploadBuf[:64*patternModulus*4] // whole periods, so chunks continue the pattern
	var n int64
	for time.Now().Before(end) {
		fmt.Fprintf(bw, "%x\r\n", len(chunk))
		bw.Write(chunk)
		if _, err := bw.WriteString("\r\n"); err != nil {
			return fmt.Errorf("upload after %d bytes: %v", n, err)
		}
		h.Write(chunk)
		n += int64(len(chunk))
	}
	bw.WriteString("0\r\n\r\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("upload after %d bytes: %v", n, err)
	}
	br := bufio.NewReader(c)
	status, err := readHTTPHead(br)
	if err != nil {
		return fmt.Errorf("upload: %v", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
		return fmt.Errorf("upload: status %q", status)
	}
	body, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("upload: reading the server's count: %v", err)
	}
	elapsed := time.Since(start)
	want := strconv.FormatInt(n, 10) + " " + hex.EncodeToString(h.Sum(nil))
	if got := strings.TrimSpace(body); got != want {
		return fmt.Errorf("upload: the server received %q, sent %q", got, want)
	}
	rate := float64(n) * 8 / elapsed.Seconds() / 1e6
	t.res.Metrics["up_mbps"] = rate
	t.res.Metrics["up_bytes"] = float64(n)
	t.logf("up: %.1f Mbit/s (%.1f MiB in %v, SHA-256 checked)", rate, float64(n)/(1<<20), elapsed.Round(time.Millisecond))
	return nil
}

// pathFetch times benchFetchCount sequential downloads of benchFetchSize
// bytes, each on a fresh connection: from the connect to the last byte.
func (t *benchTarget) pathFetch(srv *benchServer) error {
	var times []time.Duration
	buf := make([]byte, 64<<10)
	for i := range benchFetchCount {
		start := time.Now()
		c, err := pathDialer.Dial("tcp4", srv.hostPort(benchHTTPPort))
		if err != nil {
			return fmt.Errorf("fetch %d: %v", i, err)
		}
		c.SetDeadline(start.Add(60 * time.Second))
		err = func() error {
			defer c.Close()
			if _, err := fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", benchFetchSize); err != nil {
				return err
			}
			br := bufio.NewReaderSize(c, 64<<10)
			status, err := readHTTPHead(br)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(status, "HTTP/1.1 200 ") {
				return fmt.Errorf("status %q", status)
			}
			var pc patternChecker
			for pc.n < benchFetchSize {
				m, err := br.Read(buf[:min(len(buf), int(benchFetchSize-pc.n))])
				if cerr := pc.check(buf[:m]); cerr != nil {
					return cerr
				}
				if err != nil {
					return fmt.Errorf("after %d bytes: %v", pc.n, err)
				}
			}
			return nil
		}()
		if err != nil {
			return fmt.Errorf("fetch %d: %v", i, err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	p50, p90 := percentile(times, 50), percentile(times, 90)
	t.res.Metrics["fetch_p50_ms"] = float64(p50) / 1e6
	t.res.Metrics["fetch_p90_ms"] = float64(p90) / 1e6
	t.res.Metrics["fetch_max_ms"] = float64(times[len(times)-1]) / 1e6
	t.logf("fetch: %d x %d KiB: p50 %v, p90 %v, max %v", benchFetchCount, benchFetchSize>>10,
		p50.Round(time.Millisecond), p90.Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	return nil
}

// routerProcess is `ustack bench router` running the emulated path.
type routerProcess struct {
	cmd  *exec.Cmd
	out  *bufio.Reader
	in   io.WriteCloser
	done chan error
}

// startRouterProcess runs the router as a process of its own, so its
// senders compete with the client only for the CPU, not for this
// process's Go scheduler. It gets the two namespaces as descriptors 3 and 4.
func startRouterProcess(exe, spec string, mtu int, client, hop netnsFD, progress io.Writer) (*routerProcess, error) {
	// Duplicates, as the *os.File closes its descriptor (here and when
	// collected) and the namespaces' descriptors are the caller's.
	var files []*os.File
	for _, ns := range []netnsFD{client, hop} {
		fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, os.NewFile(uintptr(fd), "netns"))
	}
	defer func() {
		for _, f := range files {
			f.Close() // the child has its own copies once started
		}
	}()
	cmd := exec.Command(exe, "bench", "router", "--path", spec, "--mtu", strconv.Itoa(mtu))
	cmd.ExtraFiles = files
	cmd.Stderr = progress
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the router: %v", err)
	}
	r := &routerProcess{cmd: cmd, out: bufio.NewReader(out), in: in, done: make(chan error, 1)}
	line, err := r.out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the router did not start (said %q, %v)", strings.TrimSpace(line), err)
	}
	return r, nil
}

// routerMark is the router's answer to "mark": each direction's
// bottleneck queueing delay since the previous mark.
type routerMark struct {
	Up, Down tun.QueueDelay
}

// mark asks the router for the queueing delays since the previous mark
// (or its start) and starts them afresh.
func (r *routerProcess) mark() (routerMark, error) {
	var m routerMark
	if _, err := io.WriteString(r.in, "mark\n"); err != nil {
		return m, fmt.Errorf("router: %v", err)
	}
	line, err := r.out.ReadString('\n')
	if err != nil {
		return m, fmt.Errorf("router: %v", err)
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return m, fmt.Errorf("router: bad mark reply %q: %v", strings.TrimSpace(line), err)
	}
	return m, nil
}

// stop closes the router's stdin, which stops it; it prints its stats.
func (r *routerProcess) stop() (tun.PathStats, error) {
	r.in.Close()
	var st tun.PathStats
	b, rerr := io.ReadAll(r.out)
	werr := r.cmd.Wait()
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("no statistics from the router (%v, %v)", err, errors.Join(rerr, werr))
	}
	return st, werr
}

// runBenchRouter is `ustack bench router`, internal to `ustack bench
// --path`: it runs the emulated path between the namespaces open on
// descriptors 3 (client) and 4 (hop), says "ready", and when its stdin
// closes stops and prints the path's statistics as JSON.
func runBenchRouter(args []string, stdout, stderr io.Writer) int {
	var spec string
	var mtu, prio int
	fs := flag.NewFlagSet("bench router", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&spec, "path", "", "the path, as tun.ParsePath reads it")
	fs.IntVar(&mtu, "mtu", 1500, "MTU of the router's TUNs")
	fs.IntVar(&prio, "rt-prio", pathDefaultRTPrio, "SCHED_FIFO priority of the router (0: ordinary scheduling)")
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	cfg, err := tun.ParsePath(spec)
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench router: %v\n", err)
		return exitUsage
	}
	if prio > 0 {
		if err := realtimePriority(prio); err != nil {
			fmt.Fprintf(stderr, "bench: router: %v; running at ordinary priority, its timing will suffer on a busy machine\n", err)
		}
	}
	r, err := startPathRouter(netnsFD(3), netnsFD(4), cfg, mtu)
	if err != nil {
		fmt.Fprintf(stderr, "ustack bench router: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "ready")
	// Each "mark" line answers with the queueing delays since the last
	// one (routerMark), for the workload between them.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "mark" {
			continue
		}
		var m routerMark
		m.Up, m.Down = r.path.ResetQueueDelay()
		if err := json.NewEncoder(stdout).Encode(m); err != nil {
			break
		}
	}
	st := r.path.Stats()
	r.Close()
	if err := json.NewEncoder(stdout).Encode(st); err != nil {
		return 1
	}
	return 0
}
