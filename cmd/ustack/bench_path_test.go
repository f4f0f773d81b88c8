package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePathSweep(t *testing.T) {
	ps, err := parsePathSweep("rtt=40ms,rate=100mbit,loss=0,0.5%,2%,seed=3")
	require.NoError(t, err)
	require.Len(t, ps, 3)
	assert.Equal(t, []string{"0", "0.5%", "2%"}, []string{ps[0].Loss, ps[1].Loss, ps[2].Loss})
	assert.Equal(t, "rtt=40ms,rate=100mbit,seed=3,loss=0.5%", ps[1].Spec)
	assert.InDelta(t, 0.02, ps[2].cfg.Up.Loss, 1e-12)
	assert.InDelta(t, 0.02, ps[2].cfg.Down.Loss, 1e-12)
	assert.Equal(t, uint64(3), ps[2].cfg.Up.Seed)
	assert.Equal(t, 500000, ps[0].cfg.Up.Queue)

	ps, err = parsePathSweep("rtt=10ms,rate=1gbit")
	require.NoError(t, err)
	require.Len(t, ps, 1)
	assert.Equal(t, "0", ps[0].Loss)

	for in, want := range map[string]string{
		"rtt=40ms,0.5%":            `"0.5%" is not key=value (only loss takes a list`,
		"loss=1%,loss=2%":          "loss given twice",
		"loss=1%,1%":               "loss 1% given twice",
		"rtt=40ms,loss=1%,,2%":     `"" is not key=value`,
		"rtt=40ms,loss=0,7":        `probability 7 out of [0, 1]`,
		"rtt=40ms,rate=1mbit,up=1": `unknown key "up"`,
	} {
		_, err := parsePathSweep(in)
		if assert.Error(t, err, in) {
			assert.Contains(t, err.Error(), want, in)
		}
	}
}

func TestBenchPathFlags(t *testing.T) {
	cfg, err := parseBenchFlags(t, "--path", "rtt=40ms,rate=100mbit,loss=0,1%", "--workloads", "down,fetch", "--only", "kernel,ustack")
	require.NoError(t, err)
	assert.Equal(t, []string{"ustack", "kernel-cubic", "kernel-bbr"}, cfg.servers)
	assert.Equal(t, []string{"down", "fetch"}, cfg.workloads)
	require.Len(t, cfg.paths, 2)
	c := *cfg
	c.paths = cfg.paths[1:]
	args := c.targetArgs("kernel-bbr")
	assert.Equal(t, []string{"--path", "rtt=40ms,rate=100mbit,loss=1%"}, args[len(args)-2:])
	sargs, err := benchServerArgs("kernel-bbr", &c, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"bench", "server", "--stack", "kernel", "--listen", "198.18.0.2", "--cc", "bbr"}, sargs)
	assert.Contains(t, c.targetArgs("gvisor"), "--gvisor=wgnetstack", "a path run measures gVisor's first variant")

	_, err = parseBenchFlags(t, "--path", "rtt=40ms", "--workloads", "up1")
	assert.ErrorContains(t, err, `--workloads: unknown "up1"; want a comma-separated list of down,up,fetch (with --path)`)
	_, err = parseBenchFlags(t, "--path", "rtt=40ms", "--only", "bsd")
	assert.ErrorContains(t, err, `--only: unknown "bsd"; want a comma-separated list of ustack,gvisor,kernel,kernel-cubic,kernel-bbr`)
	_, err = parseBenchFlags(t, "--path", "rtt=40ms,loss=0,1%", "--pcap", "x.pcap")
	assert.EqualError(t, err, "--pcap, --trace and --cpuprofile record one run: give --path a single loss rate")
	_, err = parseBenchFlags(t, "--path", "bogus")
	assert.ErrorContains(t, err, `--path "bogus": "bogus" is not key=value`)
}

// TestBenchPathDefaults: a --path run's own defaults (workloads, duration,
// ustack's CUBIC) reach the target unless given.
func TestBenchPathDefaults(t *testing.T) {
	var stdout, stderr bytes.Buffer
	rc := run([]string{"bench", "--path", "rtt=40ms,rate=100mbit", "--workloads", "up3"}, &stdout, &stderr)
	assert.Equal(t, exitUsage, rc)
	assert.Contains(t, stderr.String(), `unknown "up3"`)
	rc = run([]string{"bench", "--path", "rtt=40ms,rate=100mbit,loss=2"}, &stdout, &stderr)
	assert.Equal(t, exitUsage, rc)
	assert.Contains(t, stderr.String(), "write 2% for a percentage")
}

func samplePathReport(t *testing.T) *benchPathReport {
	ps, err := parsePathSweep("rtt=40ms,rate=100mbit,loss=0,2%")
	require.NoError(t, err)
	r := func(server string, m map[string]float64) *benchResult {
		return &benchResult{Server: server, Metrics: m}
	}
	rep := &benchPathReport{Path: "rtt=40ms,rate=100mbit,loss=0,2%", Paths: ps, DurationSeconds: 5, MTU: 1500,
		Workloads: benchPathWorkloads, Servers: []string{"ustack", "kernel-cubic"}, ElapsedSeconds: 80,
		Results: map[string]map[string]*benchResult{
			"0": {"ustack": r("ustack", map[string]float64{"down_mbps": 45, "up_mbps": 44, "fetch_p50_ms": 300, "fetch_p90_ms": 400,
				"path_ping_ms": 40.2, "path_released": 1000, "path_late_mean_us": 50, "path_late_max_us": 2000, "path_late_over_1ms": 10}),
				"kernel-cubic": r("kernel-cubic", map[string]float64{"down_mbps": 90, "up_mbps": 88, "fetch_p50_ms": 250, "fetch_p90_ms": 500,
					"path_ping_ms": 40.4, "path_released": 3000, "path_late_mean_us": 10, "path_late_max_us": 500})},
			"2%": {"ustack": {Server: "ustack", Metrics: map[string]float64{"down_mbps": 5}, Errors: map[string]string{"up": "boom"}},
				"kernel-cubic": r("kernel-cubic", map[string]float64{"down_mbps": 4})},
		}, Ratios: map[string]map[string]map[string]float64{}}
	for _, p := range ps {
		rep.Ratios[p.Loss] = pathRatios(rep.Results[p.Loss])
	}
	return rep
}

func TestBenchPathTable(t *testing.T) {
	var out bytes.Buffer
	writeBenchPathTable(&out, samplePathReport(t))
	got := out.String()
	lines := strings.Split(got, "\n")
	assert.Equal(t, "ustack bench --path rtt=40ms,rate=100mbit,loss=0,2%: 5s per transfer, 20 x 256 KiB fetches, MTU 1500, path TUNs without offloads, 80s in all", lines[0])
	assert.Equal(t, "path as run: rtt=40ms,rate=100mbit,queue=500000", lines[1])
	assert.Equal(t, []string{"loss", "metric", "unit", "better", "ustack", "kernel-cubic", "ustack/kernel-cubic"}, strings.Fields(lines[3]))
	assert.Equal(t, []string{"0", "download", "goodput", "(server", "sends)", "Mbit/s", "higher", "45.0", "90.0", "0.500x"}, strings.Fields(lines[4]))
	assert.Equal(t, []string{"0", "20", "x", "256", "KiB", "fetch,", "completion", "p90", "ms", "lower", "400", "500", "0.800x"}, strings.Fields(lines[7]))
	assert.Equal(t, []string{"2%", "download", "goodput", "(server", "sends)", "Mbit/s", "higher", "5.00", "4.00", "1.25x"}, strings.Fields(lines[8]))
	assert.NotContains(t, got, "2%  upload", "a row nobody measured is left out")
	assert.Contains(t, got, "ping through the path before each run: median 40.40 ms (asked: 40ms)")
	assert.Contains(t, got, "router: packets left a mean 20 µs after they were due (worst 2.0 ms; 0.25% over 1 ms)")
	assert.Contains(t, got, "error: loss 2%: ustack up: boom")
}

func TestBenchPathJSONShape(t *testing.T) {
	b, err := json.Marshal(samplePathReport(t))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"path", "paths", "duration_s", "mtu", "offload", "workloads", "servers", "results", "ratios", "elapsed_s"}, keys)
	assert.Equal(t, map[string]any{"loss": "2%", "spec": "rtt=40ms,rate=100mbit,loss=2%",
		"as_run": "rtt=40ms,rate=100mbit,queue=500000,loss=2%"}, m["paths"].([]any)[1])
	assert.Equal(t, 45.0, m["results"].(map[string]any)["0"].(map[string]any)["ustack"].(map[string]any)["metrics"].(map[string]any)["down_mbps"])
	assert.Equal(t, 0.5, m["ratios"].(map[string]any)["0"].(map[string]any)["ustack/kernel-cubic"].(map[string]any)["down_mbps"])
}

func TestPatternChecker(t *testing.T) {
	var pc patternChecker
	require.NoError(t, pc.check(pattern[:300]))
	require.NoError(t, pc.check(pattern[300%patternModulus:300%patternModulus+10]))
	bad := append([]byte(nil), pattern[310%patternModulus:310%patternModulus+5]...)
	bad[3]++
	assert.EqualError(t, pc.check(bad), "byte 313 differs from the i mod 251 pattern")
}
