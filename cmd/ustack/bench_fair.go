package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// `ustack bench --path SPEC --fairness cubic,bbr` is the fairness run: for
// each pairing, a ustack server running that congestion control and a
// kernel server running the same one sit behind the same router, and the
// client downloads from both at once for --duration (20 s by default)
// through the one bottleneck. Each flow's goodput, its share of their sum
// and Jain's fairness index are reported, with the bottleneck's queueing
// delay. Each pairing has a control row, ctl-CC: the same run with a
// second kernel server (behind a veth of its own in the hop namespace) in
// the ustack server's place, so a split the setup causes shows there too.

// benchFairPairings are the congestion controls --fairness accepts: both
// ustack (--cc) and Linux (TCP_CONGESTION, fairKernelCC) have them.
var benchFairPairings = []string{"cubic", "bbr", "bbr1"}

// fairKernelCC is the Linux congestion control paired with ustack's cc:
// ustack's bbr1 is Linux's tcp_bbr (BBRv1), which Linux names bbr; the
// bbr pairing sets ustack's BBRv3 against that same Linux bbr.
func fairKernelCC(cc string) string {
	if cc == "bbr1" {
		return "bbr"
	}
	return cc
}

// benchFairDuration is a fairness run's default length: long enough for
// CUBIC's epochs and BBR's ProbeRTT (every 5 s) to have their say.
const benchFairDuration = 20 * time.Second

// The kernel server of a fairness run lives on a network of its own, so
// that the ustack server keeps pathServerNet.
var (
	pathFairNet        = netip.MustParsePrefix("198.18.3.0/24")
	pathFairVethHop    = netip.MustParsePrefix("198.18.3.1/24")
	pathFairVethServer = netip.MustParsePrefix("198.18.3.2/24")
)

// pathFairVethHopEnd is the hop's end of the fairness kernel server's
// veth (the control's first kernel server has pathVethHopEnd).
const pathFairVethHopEnd = "pathv2"

// fairServerPrefix names a fairness target: fair-cubic, fair-bbr.
const fairServerPrefix = "fair-"

// fairControlPrefix names a pairing's control, kernel against kernel
// (ctl-cubic), as a result key and, after fairServerPrefix, a target
// (fair-ctl-cubic).
const fairControlPrefix = "ctl-"

// fairFlows are the two flows of a fairness run, in report order.
var fairFlows = []string{"ustack", "kernel"}

// fairness computes each flow's share of the total and Jain's fairness
// index (Σx)² / (n·Σx²): 1 when all flows get the same, 1/n when one gets
// everything. With nothing moved at all it is 0 (no flow was served).
func fairness(x []float64) (shares []float64, jain float64) {
	var sum, sq float64
	for _, v := range x {
		sum += v
		sq += v * v
	}
	shares = make([]float64, len(x))
	if sum <= 0 {
		return shares, 0
	}
	for i, v := range x {
		shares[i] = v / sum
	}
	return shares, sum * sum / (float64(len(x)) * sq)
}

// benchFairReport is a fairness run: per loss rate and pairing, the
// target's figures (fair_* metrics).
type benchFairReport struct {
	Path            string                             `json:"path"`
	Paths           []benchPath                        `json:"paths"`
	DurationSeconds float64                            `json:"duration_s"`
	MTU             int                                `json:"mtu"`
	Pairings        []string                           `json:"pairings"`
	Results         map[string]map[string]*benchResult `json:"results"` // loss, pairing
	ElapsedSeconds  float64                            `json:"elapsed_s"`
}

// runBenchFairness runs every pairing at every point of the sweep, each in
// a target process of its own.
func runBenchFairness(exe string, cfg *benchConfig, stdout, stderr io.Writer) int {
	start := time.Now()
	rep := &benchFairReport{Path: cfg.pathSpec, Paths: cfg.paths, DurationSeconds: cfg.duration.Seconds(), MTU: cfg.mtu,
		Pairings: cfg.fairness, Results: map[string]map[string]*benchResult{}}
	failed := false
	for _, p := range cfg.paths {
		rep.Results[p.Loss] = map[string]*benchResult{}
		for _, cc := range cfg.fairness {
			for _, key := range []string{cc, fairControlPrefix + cc} {
				server := fairServerPrefix + key
				who := "ustack and the kernel"
				if key != cc {
					who = "the control, kernel and kernel,"
				}
				fmt.Fprintf(stderr, "bench: fairness %s: %s at once over %s\n", cc, who, p.Spec)
				c := *cfg
				c.paths = []benchPath{p}
				c.workloads = []string{"down"}
				res, err := runPathTargetProcess(exe, &c, server, stderr)
				if err != nil {
					fmt.Fprintf(stderr, "bench: fairness %s over %s: %v\n", key, p.Spec, err)
					res = &benchResult{Server: server, Metrics: map[string]float64{}, Errors: map[string]string{"run": err.Error()}}
				}
				failed = failed || len(res.Errors) > 0
				rep.Results[p.Loss][key] = res
			}
		}
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	if code := writeBenchReport(stdout, stderr, cfg.json, rep, func() { writeBenchFairTable(stdout, rep) }); code != 0 {
		return code
	}
	if failed {
		return 1
	}
	return 0
}

// benchFairColumns are the fairness table's figures after loss and
// pairing: metric key, header.
var benchFairColumns = [][2]string{
	{"fair_ustack_mbps", "ustack Mbit/s"},
	{"fair_kernel_mbps", "kernel Mbit/s"},
	{"fair_ustack_share", "ustack share"},
	{"fair_kernel_share", "kernel share"},
	{"fair_jain", "Jain"},
	{"fair_ustack_share_late", "ustack share 2nd half"},
	{"fair_jain_late", "Jain 2nd half"},
	{"fair_ustack_rtt_ms", "ustack rtt ms"},
	{"fair_kernel_rtt_ms", "kernel rtt ms"},
	{"fair_utilization", "utilization"},
	{"fair_queue_mean_ms", "queue mean ms"},
	{"fair_queue_p90_ms", "queue p90 ms"},
}

func writeBenchFairTable(w io.Writer, rep *benchFairReport) {
	fmt.Fprintf(w, "ustack bench --path %s --fairness %s: ustack and the kernel with the same congestion control,\n"+
		"one download each, at once through one bottleneck for %v; MTU %d, %.0fs in all\n",
		rep.Path, strings.Join(rep.Pairings, ","), time.Duration(rep.DurationSeconds*float64(time.Second)), rep.MTU, rep.ElapsedSeconds)
	if len(rep.Paths) > 0 {
		fmt.Fprintf(w, "path as run: %s\n", rep.Paths[0].cfg.String())
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"loss", "pairing"}
	for _, c := range benchFairColumns {
		header = append(header, c[1])
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	var errs []string
	for _, p := range rep.Paths {
		for _, cc := range slices.Concat(rep.Pairings, prefixed(fairControlPrefix, rep.Pairings)) {
			r := rep.Results[p.Loss][cc]
			if r == nil {
				continue
			}
			row := []string{p.Loss, cc}
			for _, c := range benchFairColumns {
				if v, ok := r.Metrics[c[0]]; ok {
					row = append(row, formatFigure(v))
				} else {
					row = append(row, "-")
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
			keys := make([]string, 0, len(r.Errors))
			for k := range r.Errors {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				errs = append(errs, fmt.Sprintf("error: loss %s: %s %s: %s", p.Loss, cc, k, r.Errors[k]))
			}
		}
	}
	tw.Flush()
	for _, e := range errs {
		fmt.Fprintln(w, e)
	}
	fmt.Fprint(w, "\nShare is a flow's goodput over the two flows' sum; Jain's index (Σx)²/(n·Σx²) is 1 for an\n"+
		"even split and 0.5 when one flow takes everything; the 2nd-half figures count only the\n"+
		"bytes of the run's second half, past slow start. A ctl-CC row is the control: a second\n"+
		"kernel server in the ustack server's place (its figures in the ustack columns), so a split\n"+
		"the setup causes shows there too. Rtt is the client's receive-side estimate (tcpi_rcv_rtt),\n"+
		"the server's answering delay included. Utilization is the sum over the bottleneck's rate;\n"+
		"the queueing delay is the bottleneck's (server to client) during the run.\n")
}

// prefixed returns each of names with p in front.
func prefixed(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

// downloadMonitor watches one download of a fairness run: the bytes read
// so far, and the client socket's TCP_INFO at its end.
type downloadMonitor struct {
	bytes atomic.Int64
	info  *unix.TCPInfo
}

// readInfo reads c's TCP_INFO into m.info (nil if it cannot).
func (m *downloadMonitor) readInfo(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			m.info = info
		}
	})
}

// fairSampleEvery is how often a fairness run samples each flow's bytes,
// for its per-second log and the second half's figures.
const fairSampleEvery = time.Second

// pathFair is a fairness target's run, the router up: it starts the ustack
// server in hop (for the control, pairing ctl-CC: a kernel server behind a
// veth of its own instead) and the kernel server behind it on pathFairNet,
// both with congestion control cc, and downloads from both at once.
func (t *benchTarget) pathFair(hop netnsFD, router *routerProcess, pairing string) {
	fail := func(err error) { t.fail("down", err) }
	cc, control := strings.CutPrefix(pairing, fairControlPrefix)
	var first *benchServer
	if control {
		ns, err := kernelServerNetns(hop)
		if err != nil {
			fail(err)
			return
		}
		defer ns.Close()
		args := []string{"bench", "server", "--stack", "kernel", "--listen", pathVethServer.Addr().String(), "--cc", fairKernelCC(cc)}
		if first, err = startBenchServerWith(t.exe, args, func(cmd *exec.Cmd) error { return startInNetns(ns, cmd) }); err != nil {
			fail(err)
			return
		}
	} else {
		args, err := benchServerArgs("ustack", t.cfg, true)
		if err != nil {
			fail(err)
			return
		}
		args = append(args, "--cc="+cc) // after the knobs: the pairing's wins
		if first, err = startBenchServerWith(t.exe, args, func(cmd *exec.Cmd) error { return startInNetns(hop, cmd) }); err != nil {
			fail(err)
			return
		}
	}
	defer func() {
		if err := first.stop(); err != nil {
			t.logf("stopping the %s server: %v", map[bool]string{false: "ustack", true: "first kernel"}[control], err)
		}
	}()
	kns, err := kernelServerNetnsAt(hop, pathFairVethHopEnd, pathFairVethHop, pathFairVethServer)
	if err != nil {
		fail(err)
		return
	}
	defer kns.Close()
	kargs := []string{"bench", "server", "--stack", "kernel", "--listen", pathFairVethServer.Addr().String(), "--cc", fairKernelCC(cc)}
	ks, err := startBenchServerWith(t.exe, kargs, func(cmd *exec.Cmd) error { return startInNetns(kns, cmd) })
	if err != nil {
		fail(err)
		return
	}
	defer func() {
		if err := ks.stop(); err != nil {
			t.logf("stopping the kernel server: %v", err)
		}
	}()
	if _, err := router.mark(); err != nil {
		fail(err)
		return
	}
	type flow struct {
		bytes   int64
		elapsed time.Duration
		err     error
		mon     downloadMonitor
	}
	flows := make([]flow, 2)
	var wg sync.WaitGroup
	for i, srv := range []*benchServer{first, ks} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := &flows[i]
			f.bytes, f.elapsed, f.err = t.download(srv, t.cfg.duration, &f.mon)
		}()
	}
	// Sample both flows' bytes once a second until both are done.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var samples [][2]int64
	tick := time.NewTicker(fairSampleEvery)
sampling:
	for {
		select {
		case <-tick.C:
			samples = append(samples, [2]int64{flows[0].mon.bytes.Load(), flows[1].mon.bytes.Load()})
		case <-done:
			break sampling
		}
	}
	tick.Stop()
	m, merr := router.mark()
	rates := make([]float64, 2)
	for i := range flows {
		f := &flows[i]
		if f.err != nil {
			t.fail("down", fmt.Errorf("%s flow: %v", fairFlows[i], f.err))
			return
		}
		rates[i] = float64(f.bytes) * 8 / f.elapsed.Seconds() / 1e6
	}
	shares, jain := fairness(rates)
	mt := t.res.Metrics
	for i, name := range fairFlows {
		mt["fair_"+name+"_mbps"] = rates[i]
		mt["fair_"+name+"_bytes"] = float64(flows[i].bytes)
		mt["fair_"+name+"_share"] = shares[i]
		if info := flows[i].mon.info; info != nil && info.Rcv_rtt > 0 {
			mt["fair_"+name+"_rtt_ms"] = float64(info.Rcv_rtt) / 1e3
		}
	}
	mt["fair_jain"] = jain
	mt["fair_total_mbps"] = rates[0] + rates[1]
	if r := t.cfg.paths[0].cfg.Down.Rate; r > 0 {
		mt["fair_utilization"] = (rates[0] + rates[1]) * 1e6 / float64(r)
	}
	if late, ok := fairLateHalf(samples, [2]int64{flows[0].bytes, flows[1].bytes}); ok {
		lshares, ljain := fairness(late[:])
		mt["fair_ustack_share_late"] = lshares[0]
		mt["fair_kernel_share_late"] = lshares[1]
		mt["fair_jain_late"] = ljain
	}
	if merr != nil {
		t.fail("down", merr)
	} else {
		q := m.Down
		mt["fair_queue_mean_ms"] = float64(q.Mean()) / 1e6
		mt["fair_queue_p90_ms"] = float64(q.P90) / 1e6
		mt["fair_queue_p99_ms"] = float64(q.P99) / 1e6
		mt["fair_queue_max_ms"] = float64(q.Max) / 1e6
	}
	names := fairFlows
	if control {
		names = []string{"kernel (in ustack's place)", "kernel"}
	}
	t.logf("fairness %s: %s %.1f Mbit/s (share %.2f), %s %.1f Mbit/s (share %.2f), Jain %.3f; second half: share %.2f/%.2f",
		pairing, names[0], rates[0], shares[0], names[1], rates[1], shares[1], jain, mt["fair_ustack_share_late"], mt["fair_kernel_share_late"])
	t.logf("fairness %s: Mbit/s each second, %s / %s: %s", pairing, names[0], names[1], fairTimeline(samples))
}

// fairLateHalf is each flow's bytes in the second half of the samples
// (taken every fairSampleEvery; end is the flows' totals): what the flows
// moved once slow start is well behind them. ok is false with fewer than
// two samples.
func fairLateHalf(samples [][2]int64, end [2]int64) (late [2]float64, ok bool) {
	if len(samples) < 2 {
		return late, false
	}
	mid := samples[(len(samples)-1)/2]
	for i := range late {
		late[i] = float64(end[i] - mid[i])
	}
	return late, true
}

// fairTimeline formats per-interval goodput of both flows, "a/b" Mbit/s
// for each fairSampleEvery.
func fairTimeline(samples [][2]int64) string {
	var b strings.Builder
	var prev [2]int64
	for i, s := range samples {
		if i > 0 {
			b.WriteByte(' ')
		}
		per := fairSampleEvery.Seconds() * 1e6 / 8
		fmt.Fprintf(&b, "%.0f/%.0f", float64(s[0]-prev[0])/per, float64(s[1]-prev[1])/per)
		prev = s
	}
	return b.String()
}
