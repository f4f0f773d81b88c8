package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBenchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		rc     int
		stderr string
	}{
		{[]string{"bench", "--help"}, 0, "usage: ustack bench [flags]"},
		{[]string{"bench", "--nope"}, exitUsage, "flag provided but not defined: -nope"},
		{[]string{"bench", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"bench", "--only", "bsd"}, exitUsage, `--only: unknown "bsd"; want a comma-separated list of ustack,gvisor,kernel-veth,kernel,tun-floor`},
		{[]string{"bench", "--only", "ustack,ustack"}, exitUsage, `--only: "ustack" given twice`},
		{[]string{"bench", "--only", ","}, exitUsage, "--only: empty"},
		{[]string{"bench", "--workloads", "up1,up3"}, exitUsage, `--workloads: unknown "up3"`},
		{[]string{"bench", "--duration", "10ms"}, exitUsage, "--duration 10ms: want 200ms to 20s"},
		{[]string{"bench", "--duration", "1m"}, exitUsage, "--duration 1m0s: want 200ms to 20s"},
		{[]string{"bench", "--idle-conns", "0"}, exitUsage, "--idle-conns 0: want 1 to 100000"},
		{[]string{"bench", "--mtu", "1000"}, exitUsage, "--mtu 1000: want a value from 1280 to 65535"},
		{[]string{"bench", "--gvisor", "tap"}, exitUsage, `--gvisor: unknown "tap"; want a comma-separated list of wgnetstack,fdbased`},
		{[]string{"bench", "server", "--stack", "gvisor", "--link", "tap"}, exitUsage, `--link "tap": want one of wgnetstack,fdbased`},
		{[]string{"bench", "target", "--help"}, 0, "usage: ustack bench target"},
		{[]string{"bench", "target"}, exitUsage, `--server "": want one of ustack,gvisor,kernel-veth,kernel,tun-floor`},
		{[]string{"bench", "target", "--server", "kernel", "--duration", "0s"}, exitUsage, "--duration 0s"},
		{[]string{"bench", "server", "--help"}, 0, "usage: ustack bench server --stack gvisor|kernel"},
		{[]string{"bench", "server"}, exitUsage, "--stack is required: gvisor or kernel"},
		{[]string{"bench", "server", "--stack", "bsd"}, exitUsage, `--stack "bsd": want gvisor or kernel`},
		{[]string{"bench", "server", "--stack", "gvisor", "--mtu", "576"}, exitUsage, "--mtu 576: want a value from 1280 to 65535"},
		{[]string{"bench", "server", "--stack", "gvisor", "--tun", "much-too-long-name"}, exitUsage, `--tun "much-too-long-name"`},
		{[]string{"bench", "server", "--stack", "kernel", "x"}, exitUsage, `unexpected argument "x"`},
		{[]string{"bench", "reflect", "--help"}, 0, "usage: ustack bench reflect"},
		{[]string{"bench", "reflect", "--mtu", "576"}, exitUsage, "--mtu 576: want a value from 1280 to 65535"},
		{[]string{"bench", "reflect", "--tun", ""}, exitUsage, `--tun "": want an interface name of 1-15 characters`},
		{[]string{"bench", "reflect", "x"}, exitUsage, `unexpected argument "x"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			rc := run(tc.args, &stdout, &stderr)
			assert.Equal(t, tc.rc, rc, "stderr: %s", stderr.String())
			assert.Contains(t, stderr.String(), tc.stderr)
			assert.Empty(t, stdout.String())
		})
	}
}

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"kernel,ustack", []string{"ustack", "kernel"}, ""},
		{" gvisor , kernel ,", []string{"gvisor", "kernel"}, ""},
		{"ustack,gvisor,kernel", []string{"ustack", "gvisor", "kernel"}, ""},
		{"", nil, "--only: empty"},
		{"ustack,linux", nil, `--only: unknown "linux"`},
		{"kernel,kernel", nil, `--only: "kernel" given twice`},
	} {
		got, err := parseList("only", tc.in, benchServers)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, "input %q", tc.in)
			continue
		}
		require.NoError(t, err, "input %q", tc.in)
		assert.Equal(t, tc.want, got, "input %q", tc.in)
	}
}

func TestPercentile(t *testing.T) {
	us := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Microsecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Microsecond
	}
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", us(7), 50, 7 * time.Microsecond},
		{"one p99", us(7), 99, 7 * time.Microsecond},
		{"p50 of 4 is the 2nd", us(1, 2, 3, 4), 50, 2 * time.Microsecond},
		{"p99 of 4 is the 4th", us(1, 2, 3, 4), 99, 4 * time.Microsecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Microsecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Microsecond},
		{"p100 of 1..100", hundred, 100, 100 * time.Microsecond},
		{"p1 of 1..100", hundred, 1, 1 * time.Microsecond},
	} {
		assert.Equal(t, tc.want, percentile(tc.samples, tc.p), tc.name)
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// A command name with a space and a ')' must not shift the fields.
	stat := "4242 (ustack) x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615\n"
	got, err := parseProcStatCPU([]byte(stat))
	require.NoError(t, err)
	assert.Equal(t, 3250*time.Millisecond, got) // (250+75) ticks of 10 ms

	_, err = parseProcStatCPU([]byte("4242 ustack S 1"))
	assert.ErrorContains(t, err, "no ')'")
	_, err = parseProcStatCPU([]byte("4242 (ustack) S 1 2 3"))
	assert.ErrorContains(t, err, "4 fields after the command name, want at least 13")
	_, err = parseProcStatCPU([]byte("1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 75 0"))
	assert.ErrorContains(t, err, `utime "x"`)
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tustack\nVmPeak:\t  900000 kB\nVmRSS:\t   22528 kB\nRssAnon:\t 10000 kB\n"
	got, err := parseVmRSS([]byte(status))
	require.NoError(t, err)
	assert.Equal(t, int64(22528), got)

	_, err = parseVmRSS([]byte("Name:\tkthreadd\n"))
	assert.ErrorContains(t, err, "no VmRSS line")
	_, err = parseVmRSS([]byte("VmRSS:\t22528 MB\n"))
	assert.ErrorContains(t, err, "want 'VmRSS: N kB'")
}

func TestGbps(t *testing.T) {
	assert.InDelta(t, 8.0, gbps(1e9, time.Second), 1e-9)
	assert.InDelta(t, 1.0, gbps(250e6, 2*time.Second), 1e-9)
	assert.Equal(t, 0.0, gbps(1e9, 0))
}

func TestFormatFigure(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{1234.5, "1234"}, {100, "100"}, {37.21, "37.2"}, {10, "10.0"}, {5.384, "5.38"}, {1, "1.00"},
		{0.8886, "0.889"}, {0, "0.000"},
	} {
		assert.Equal(t, tc.want, formatFigure(tc.v), "%v", tc.v)
	}
}

func sampleReport() *benchReport {
	rep := &benchReport{
		DurationSeconds: 3, MTU: 1500, Offload: true, IdleConns: 10000,
		Workloads: []string{"up1", "idle", "echo"}, Servers: []string{"ustack", "gvisor", "kernel-veth", "kernel", "tun-floor"},
		Results: map[string]*benchResult{
			"ustack": {Server: "ustack", Metrics: map[string]float64{"up1_gbps": 4, "idle_conn_kib": 5, "rss_100k_mib": 512, "idle_conns": 10000,
				"echo_p50_us": 60}},
			"gvisor":      {Server: "gvisor", Metrics: map[string]float64{"up1_gbps": 2, "idle_conn_kib": 20, "rss_100k_mib": 2000, "idle_conns": 10000}},
			"kernel-veth": {Server: "kernel-veth", Metrics: map[string]float64{"up1_gbps": 8, "echo_p50_us": 30}},
			"kernel":      {Server: "kernel", Metrics: map[string]float64{"up1_gbps": 16}, Errors: map[string]string{"idle": "boom"}},
			"tun-floor":   {Server: "tun-floor", Metrics: map[string]float64{"echo_p50_us": 20}},
		},
		ElapsedSeconds: 61,
	}
	rep.Ratios = benchRatios(rep.Results)
	return rep
}

func TestBenchRatios(t *testing.T) {
	rep := sampleReport()
	assert.Equal(t, map[string]map[string]float64{
		"ustack/gvisor":      {"up1_gbps": 2, "idle_conn_kib": 0.25, "rss_100k_mib": 0.256},
		"ustack/kernel-veth": {"up1_gbps": 0.5, "echo_p50_us": 2},
		"ustack/kernel":      {"up1_gbps": 0.25},
		"ustack/tun-floor":   {"echo_p50_us": 3},
	}, rep.Ratios)
	assert.Empty(t, benchRatios(map[string]*benchResult{"kernel": rep.Results["kernel"]}))
}

func TestBenchTable(t *testing.T) {
	var out bytes.Buffer
	writeBenchTable(&out, sampleReport())
	got := out.String()
	lines := strings.Split(got, "\n")
	require.GreaterOrEqual(t, len(lines), 6)
	assert.Equal(t, "ustack bench: 3s per workload, MTU 1500, offloads on, 10000 idle connections, 61s in all", lines[0])
	assert.Equal(t, []string{"metric", "unit", "better", "ustack", "gvisor", "kernel-veth", "kernel", "tun-floor",
		"ustack/gvisor", "ustack/kernel-veth", "ustack/kernel", "ustack/tun-floor"}, strings.Fields(lines[2]))
	row := func(label string) []string {
		for _, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), label) {
				return strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), label))
			}
		}
		t.Fatalf("no row %q in:\n%s", label, got)
		return nil
	}
	assert.Equal(t, []string{"Gbit/s", "higher", "4.00", "2.00", "8.00", "16.0", "-", "2.00x", "0.500x", "0.250x", "-"},
		row("upload, 1 stream (discard)"))
	assert.Equal(t, []string{"KiB", "lower", "5.00", "20.0", "-", "-", "-", "0.250x", "-", "-", "-"}, row("RSS per idle connection"))
	assert.Equal(t, []string{"(64", "B)", "µs", "lower", "60.0", "-", "30.0", "-", "20.0", "-", "2.00x", "-", "3.00x"},
		row("echo round trip p50"), "the TUN floor next to ustack's echo")
	assert.NotContains(t, got, "download, 1 stream", "rows nobody measured are left out")
	assert.Contains(t, got, "ustack: 100,000 idle connections would fit in 1 GiB (extrapolated from 10000: 512 MiB)")
	assert.Contains(t, got, "gvisor: 100,000 idle connections would not fit in 1 GiB (extrapolated from 10000: 2000 MiB)")
	assert.Contains(t, got, "error: kernel idle: boom\n")
}

func TestBenchJSONShape(t *testing.T) {
	b, err := json.Marshal(sampleReport())
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"duration_s", "mtu", "offload", "idle_conns", "workloads", "servers", "results", "ratios", "elapsed_s"}, keys)
	results := m["results"].(map[string]any)
	assert.Equal(t, map[string]any{"server": "ustack", "metrics": map[string]any{
		"up1_gbps": 4.0, "idle_conn_kib": 5.0, "rss_100k_mib": 512.0, "idle_conns": 10000.0, "echo_p50_us": 60.0}}, results["ustack"])
	assert.Equal(t, map[string]any{"idle": "boom"}, results["kernel"].(map[string]any)["errors"])
	assert.Equal(t, 2.0, m["ratios"].(map[string]any)["ustack/gvisor"].(map[string]any)["up1_gbps"])
}

// parseBenchFlags parses args as `ustack bench` would and validates them.
func parseBenchFlags(t *testing.T, args ...string) (*benchConfig, error) {
	t.Helper()
	var f benchFlags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.only, "only", strings.Join(benchServers, ","), "")
	f.register(fs)
	require.NoError(t, fs.Parse(args))
	return f.validate()
}

func TestBenchTargetArgsRoundTrip(t *testing.T) {
	cfg, err := parseBenchFlags(t, "--duration", "2s", "--only", "kernel,ustack", "--workloads", "echo,up1",
		"--idle-conns", "500", "--mtu", "9000", "--offload=false")
	require.NoError(t, err)
	assert.Equal(t, []string{"ustack", "kernel"}, cfg.servers)
	assert.Equal(t, []string{"bench", "target", "--server", "kernel", "--duration", "2s", "--workloads", "echo,up1",
		"--idle-conns", "500", "--mtu", "9000", "--offload=false"}, cfg.targetArgs("kernel"))
	assert.Equal(t, 30*time.Second+2*(4*time.Second+5*time.Second)+time.Second, cfg.targetBudget("kernel"))
	// gVisor runs once per variant.
	assert.Equal(t, 2*cfg.targetBudget("kernel"), cfg.targetBudget("gvisor"))
	// Defaults pass no knobs to anyone.
	assert.Equal(t, []string{"bench", "target", "--server", "ustack", "--duration", "2s", "--workloads", "echo,up1",
		"--idle-conns", "500", "--mtu", "9000", "--offload=false"}, cfg.targetArgs("ustack"))
	args, err := benchServerArgs("ustack", cfg, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"serve", "--tun", "ustack0", "--mtu", "9000", "--offload=false", "--admin=off", "--drain-timeout=1s"}, args)
}

func TestBenchKnobsPassThrough(t *testing.T) {
	cfg, err := parseBenchFlags(t, "--workloads", "idle,down1", "--pcap", "/tmp/b.pcap", "--trace", "/tmp/b.trace",
		"--cc", "cubic", "--impair", "loss=1%,seed=3", "--sndbuf", "1M", "--rcvbuf", "64K", "--delayed-ack", "off",
		"--nodelay", "--sack=false", "--timestamps=false", "--wscale=false", "--busy-poll", "50us")
	require.NoError(t, err)
	knobs := []string{"--busy-poll=50µs", "--cc=cubic", "--delayed-ack=off", "--impair=loss=1%,seed=3", "--nodelay=true",
		"--rcvbuf=64K", "--sack=false", "--sndbuf=1M", "--timestamps=false", "--wscale=false"}
	capture := []string{"--pcap=/tmp/b.pcap", "--trace=/tmp/b.trace"}
	base := []string{"bench", "target", "--server", "ustack", "--duration", "3s", "--workloads", "idle,down1",
		"--idle-conns", "10000", "--mtu", "1500", "--offload=true"}

	// The parent hands the ustack target everything, the others nothing.
	targetArgs := cfg.targetArgs("ustack")
	assert.Equal(t, slices.Concat(base, knobs, capture), targetArgs)
	assert.Equal(t, []string{"bench", "target", "--server", "gvisor", "--duration", "3s", "--workloads", "idle,down1",
		"--idle-conns", "10000", "--mtu", "1500", "--offload=true", "--gvisor=wgnetstack,fdbased"}, cfg.targetArgs("gvisor"))

	// The target parses them back to the same config.
	var f benchFlags
	fs := flag.NewFlagSet("bench target", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var server string
	fs.StringVar(&server, "server", "", "")
	f.register(fs)
	require.NoError(t, fs.Parse(targetArgs[2:]))
	f.only = server
	tcfg, err := f.validate()
	require.NoError(t, err)
	assert.Equal(t, knobs, tcfg.knobArgs)
	assert.Equal(t, capture, tcfg.captureArgs)

	// The serve command line: knobs always, the capture only when asked.
	serveBase := []string{"serve", "--tun", "ustack0", "--mtu", "1500", "--offload=true", "--admin=off", "--drain-timeout=1s"}
	args, err := benchServerArgs("ustack", tcfg, true)
	require.NoError(t, err)
	assert.Equal(t, slices.Concat(serveBase, knobs, capture), args)
	args, err = benchServerArgs("ustack", tcfg, false)
	require.NoError(t, err)
	assert.Equal(t, slices.Concat(serveBase, knobs), args)

	// gVisor and the kernel keep their defaults.
	args, err = benchServerArgs("gvisor", tcfg, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"bench", "server", "--stack", "gvisor", "--link", "wgnetstack", "--tun", "ustack0", "--mtu", "1500", "--offload=true"}, args)
	tcfg.gvisorLink = "fdbased"
	args, err = benchServerArgs("gvisor", tcfg, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"bench", "server", "--stack", "gvisor", "--link", "fdbased", "--tun", "ustack0", "--mtu", "1500", "--offload=true"}, args)
	args, err = benchServerArgs("kernel", tcfg, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"bench", "server", "--stack", "kernel"}, args)
	args, err = benchServerArgs("kernel-veth", tcfg, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"bench", "server", "--stack", "kernel", "--listen", "198.18.0.2"}, args)
	args, err = benchServerArgs("tun-floor", tcfg, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"bench", "reflect", "--tun", "ustack0", "--mtu", "1500", "--offload=true"}, args)
	_, err = benchServerArgs("bsd", tcfg, true)
	assert.EqualError(t, err, `unknown server "bsd"`)

	// serve accepts the list as given: every flag is one of its own.
	var d deviceFlags
	sfs := flag.NewFlagSet("serve", flag.ContinueOnError)
	sfs.SetOutput(io.Discard)
	d.register(sfs)
	require.NoError(t, sfs.Parse(slices.Concat(knobs, capture)))
	dev, err := d.validate()
	require.NoError(t, err)
	assert.Equal(t, "cubic", dev.tcp.CongestionControl)
	assert.Equal(t, 1<<20, dev.tcp.SendBufferSize)
	assert.Equal(t, 64<<10, dev.tcp.RecvBufferSize)
	assert.True(t, dev.tcp.NoDelay)
	assert.True(t, dev.tcp.DisableSACK)
	assert.Equal(t, "/tmp/b.pcap", dev.pcap)
	assert.Equal(t, "/tmp/b.trace", dev.trace)
}

func TestBenchKnobErrors(t *testing.T) {
	// Bad knobs exit 2 in the parent, before the root check or any namespace.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cc", "vegas"}, `ustack bench: --cc "vegas": want newreno, cubic, bbr or bbr1` + "\n"},
		{[]string{"--sndbuf", "1K"}, "ustack bench: --sndbuf 1K: want 4K to 64M (4096 to 67108864 bytes)\n"},
		{[]string{"--rcvbuf", "1.5M"}, `ustack bench: --rcvbuf "1.5M": want a byte count such as 262144, 256K or 4M` + "\n"},
		{[]string{"--rcvbuf-max", "100M"}, "ustack bench: --rcvbuf-max 100M: want 4K to 64M (4096 to 67108864 bytes), or off\n"},
		{[]string{"--sndbuf-max", "x"}, `ustack bench: --sndbuf-max "x": want a byte count such as 4194304, 4M or 6M, or off` + "\n"},
		{[]string{"--delayed-ack", "500ms"}, "ustack bench: --delayed-ack 500ms: want more than 0 and less than 500ms (RFC 1122 4.2.3.2), or 0/off to disable\n"},
		{[]string{"--impair", "drop=1%"}, `ustack bench: --impair: impairment "drop=1%": unknown key "drop" (known: loss, dup, reorder, depth, delay, jitter, corrupt, limit, seed)` + "\n"},
	} {
		var stdout, stderr bytes.Buffer
		rc := run(append([]string{"bench"}, tc.args...), &stdout, &stderr)
		assert.Equal(t, exitUsage, rc, "%q", tc.args)
		assert.Equal(t, tc.want, stderr.String(), "%q", tc.args)
		assert.Empty(t, stdout.String())
	}
	var stdout, stderr bytes.Buffer
	rc := run([]string{"bench", "--nodelay=maybe"}, &stdout, &stderr)
	assert.Equal(t, exitUsage, rc)
	assert.Contains(t, stderr.String(), `invalid boolean value "maybe" for -nodelay`)
}

func TestBenchHelpKnobs(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"bench", "--help"}, &stdout, &stderr))
	help := stderr.String()
	for _, name := range []string{"pcap", "trace", "cc", "impair", "sndbuf", "rcvbuf", "sndbuf-max", "rcvbuf-max", "delayed-ack", "nodelay", "sack", "timestamps", "wscale", "pacing", "hystart", "prr", "recovery", "ecn", "busy-poll"} {
		assert.Regexp(t, "\n  -"+name+"[ \n]", help, name)
	}
	assert.Equal(t, 19, strings.Count(help, "(ustack server only: gVisor and the kernel keep their defaults)"))
	assert.Contains(t, help, "server only: gVisor and the kernel keep their defaults.\n")
}

func TestBenchTargetRefusesRootNamespace(t *testing.T) {
	// `go test` runs in its parent's namespace, so the target mode must
	// refuse before it touches loopback or sysctls.
	var stdout, stderr bytes.Buffer
	rc := run([]string{"bench", "target", "--server", "kernel"}, &stdout, &stderr)
	assert.Equal(t, 1, rc)
	assert.Contains(t, stderr.String(), "not in a private network namespace")
	assert.Empty(t, stdout.String())
}

func TestBenchBestOfVariants(t *testing.T) {
	variants := map[string]*benchResult{
		"wgnetstack": {Server: "gvisor", Metrics: map[string]float64{
			"up1_gbps": 2.2, "down1_gbps": 1.5, "echo_p50_us": 80, "echo_p99_us": 150, "echo_samples": 100,
			"connrate_per_s": 5000, "connrate_failed": 0, "cpu_server_up_s_per_gb": 5, "cpu_total_up_s_per_gb": 6,
		}},
		"fdbased": {Server: "gvisor", Metrics: map[string]float64{
			"up1_gbps": 1.7, "down1_gbps": 0.5, "echo_p50_us": 70, "echo_p99_us": 190, "echo_samples": 120,
			"cpu_server_up_s_per_gb": 6, "cpu_total_up_s_per_gb": 5.5,
		}, Errors: map[string]string{"connrate": "refused", "down8": "reset"}},
	}
	got := bestOfVariants("gvisor", gvisorLinks, variants)
	assert.Equal(t, map[string]float64{
		"up1_gbps": 2.2, "down1_gbps": 1.5,
		// The group follows its first key: fdbased's p50 wins, so its p99 too.
		"echo_p50_us": 70, "echo_p99_us": 190, "echo_samples": 120,
		"connrate_per_s": 5000, "connrate_failed": 0,
		"cpu_server_up_s_per_gb": 5, "cpu_total_up_s_per_gb": 6,
	}, got.Metrics)
	assert.Equal(t, "fdbased", got.Chosen["echo_p99_us"])
	assert.Equal(t, "wgnetstack", got.Chosen["up1_gbps"])
	assert.Equal(t, "wgnetstack", got.Chosen["connrate_per_s"])
	// connrate failed in one variant only: no error; down8 in every one.
	assert.Equal(t, map[string]string{"down8": "fdbased: reset"}, got.Errors)
	assert.Same(t, variants["fdbased"], got.Variants["fdbased"])

	var out bytes.Buffer
	writeChosen(&out, got)
	assert.Contains(t, out.String(), "gvisor: each row is the better of fdbased and wgnetstack: wgnetstack for up1, down1,")
	assert.Contains(t, out.String(), "fdbased for echo_p50_us, echo_p99_us;")
}

// TestBenchUDPEchoMetrics: the UDP echo workload's figures are a group of
// their own (a variant's p50 brings its p99 and loss count), apart from the
// TCP echo's, and a failed udpecho voids only them.
func TestBenchUDPEchoMetrics(t *testing.T) {
	assert.Equal(t, "udpecho", workloadOfMetric("udpecho_p50_us"))
	assert.Equal(t, "udpecho", workloadOfMetric("udpecho_lost"))
	assert.Equal(t, "echo", workloadOfMetric("echo_p99_us"))
	variants := map[string]*benchResult{
		"wgnetstack": {Server: "gvisor", Metrics: map[string]float64{
			"echo_p50_us": 80, "echo_p99_us": 150, "udpecho_p50_us": 60, "udpecho_p99_us": 300, "udpecho_lost": 1}},
		"fdbased": {Server: "gvisor", Metrics: map[string]float64{
			"echo_p50_us": 70, "echo_p99_us": 190}, Errors: map[string]string{"udpecho": "timeout"}},
	}
	got := bestOfVariants("gvisor", gvisorLinks, variants)
	assert.Equal(t, map[string]float64{"echo_p50_us": 70, "echo_p99_us": 190,
		"udpecho_p50_us": 60, "udpecho_p99_us": 300, "udpecho_lost": 1}, got.Metrics)
	assert.Equal(t, "wgnetstack", got.Chosen["udpecho_p99_us"])
	assert.Empty(t, got.Errors, "udpecho failed in one variant only")
	var rows []string
	for _, m := range benchMetrics {
		if strings.HasPrefix(m.key, "udpecho_") {
			rows = append(rows, m.label)
		}
	}
	assert.Equal(t, []string{"UDP echo round trip p50 (64 B)", "UDP echo round trip p99 (64 B)"}, rows)
	assert.Contains(t, benchWorkloads, "udpecho")
}
