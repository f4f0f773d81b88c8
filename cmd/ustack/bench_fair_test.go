package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFairnessShareAndJain(t *testing.T) {
	for _, tc := range []struct {
		x      []float64
		shares []float64
		jain   float64
	}{
		{[]float64{50, 50}, []float64{0.5, 0.5}, 1},
		{[]float64{100, 0}, []float64{1, 0}, 0.5},       // one takes everything: 1/n
		{[]float64{30, 10}, []float64{0.75, 0.25}, 0.8}, // 40² / (2·1000)
		{[]float64{60, 20, 20}, []float64{0.6, 0.2, 0.2}, 10000.0 / 13200},
		{[]float64{0, 0}, []float64{0, 0}, 0},
	} {
		shares, jain := fairness(tc.x)
		assert.InDeltaSlice(t, tc.shares, shares, 1e-12, "%v", tc.x)
		assert.InDelta(t, tc.jain, jain, 1e-12, "%v", tc.x)
	}
}

func parseFairFlags(t *testing.T, args ...string) (*benchConfig, error) {
	t.Helper()
	var f benchFlags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.only, "only", strings.Join(benchServers, ","), "")
	fs.StringVar(&f.fairness, "fairness", "", "")
	f.register(fs)
	require.NoError(t, fs.Parse(args))
	return f.validate()
}

func TestBenchFairnessFlags(t *testing.T) {
	cfg, err := parseFairFlags(t, "--path", "rtt=40ms,rate=100mbit,loss=0,2%", "--workloads", "down", "--fairness", "bbr,cubic", "--hystart=true", "--cc", "cubic")
	require.NoError(t, err)
	assert.Equal(t, []string{"cubic", "bbr"}, cfg.fairness, "in the order of benchFairPairings")
	// A fairness target gets the ustack knobs; its server adds the
	// pairing's --cc after them.
	c := *cfg
	c.paths = cfg.paths[1:]
	c.workloads = []string{"down"}
	args := c.targetArgs("fair-bbr")
	assert.Equal(t, []string{"bench", "target", "--server", "fair-bbr"}, args[:4])
	assert.Contains(t, args, "--hystart=true")
	assert.Equal(t, []string{"--cc=cubic", "--hystart=true"}, args[len(args)-2:])
	assert.Contains(t, strings.Join(args, " "), "--workloads down --idle-conns 10000 --mtu 1500 --offload=true --path rtt=40ms,rate=100mbit,loss=2%")

	// A fairness run may last minutes, the others 20 s.
	cfg, err = parseFairFlags(t, "--path", "rtt=40ms,rate=100mbit", "--workloads", "down", "--fairness", "cubic", "--duration", "2m")
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, cfg.duration)
	_, err = parseFairFlags(t, "--path", "rtt=40ms,rate=100mbit", "--workloads", "down", "--fairness", "cubic", "--duration", "6m")
	assert.EqualError(t, err, "--duration 6m0s: want 200ms to 5m0s")

	_, err = parseFairFlags(t, "--fairness", "cubic")
	assert.EqualError(t, err, "--fairness runs over an emulated path: give --path too")
	_, err = parseFairFlags(t, "--path", "rtt=40ms,rate=100mbit", "--workloads", "down", "--fairness", "reno")
	assert.EqualError(t, err, `--fairness: unknown "reno"; want a comma-separated list of cubic,bbr,bbr1`)

	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitUsage, run([]string{"bench", "--fairness", "bbr"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "give --path too")
	// The target knows the fairness servers.
	stderr.Reset()
	assert.Equal(t, exitUsage, run([]string{"bench", "target", "--server", "fair-reno", "--path", "rtt=40ms"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "fair-cubic,fair-ctl-cubic,fair-bbr,fair-ctl-bbr,fair-bbr1,fair-ctl-bbr1")

	// ustack's bbr1 (BBRv1) runs against Linux's bbr, which is v1.
	cfg, err = parseFairFlags(t, "--path", "rtt=40ms,rate=100mbit", "--workloads", "down", "--fairness", "bbr1")
	require.NoError(t, err)
	assert.Equal(t, []string{"bbr1"}, cfg.fairness)
	assert.Equal(t, "bbr", fairKernelCC("bbr1"))
	assert.Equal(t, "bbr", fairKernelCC("bbr"))
	assert.Equal(t, "cubic", fairKernelCC("cubic"))
}

func sampleFairReport(t *testing.T) *benchFairReport {
	ps, err := parsePathSweep("rtt=40ms,rate=100mbit,loss=0.5%")
	require.NoError(t, err)
	return &benchFairReport{Path: "rtt=40ms,rate=100mbit,loss=0.5%", Paths: ps, DurationSeconds: 20, MTU: 1500,
		Pairings: []string{"cubic", "bbr"}, ElapsedSeconds: 50,
		Results: map[string]map[string]*benchResult{"0.5%": {
			"cubic": {Server: "fair-cubic", Metrics: map[string]float64{"fair_ustack_mbps": 40, "fair_kernel_mbps": 50,
				"fair_ustack_share": 0.444, "fair_kernel_share": 0.556, "fair_jain": 0.988, "fair_utilization": 0.9,
				"fair_ustack_share_late": 0.48, "fair_jain_late": 0.998, "fair_ustack_rtt_ms": 52.5, "fair_kernel_rtt_ms": 51,
				"fair_queue_mean_ms": 12.5, "fair_queue_p90_ms": 30}},
			"ctl-cubic": {Server: "fair-ctl-cubic", Metrics: map[string]float64{"fair_ustack_mbps": 45, "fair_kernel_mbps": 45,
				"fair_ustack_share": 0.5, "fair_kernel_share": 0.5, "fair_jain": 1, "fair_utilization": 0.9}},
			"bbr": {Server: "fair-bbr", Metrics: map[string]float64{}, Errors: map[string]string{"down": "boom"}},
		}}}
}

func TestBenchFairnessTable(t *testing.T) {
	var out bytes.Buffer
	writeBenchFairTable(&out, sampleFairReport(t))
	lines := strings.Split(out.String(), "\n")
	assert.Equal(t, "ustack bench --path rtt=40ms,rate=100mbit,loss=0.5% --fairness cubic,bbr: ustack and the kernel with the same congestion control,", lines[0])
	assert.Equal(t, "one download each, at once through one bottleneck for 20s; MTU 1500, 50s in all", lines[1])
	assert.Equal(t, "path as run: rtt=40ms,rate=100mbit,queue=500000,loss=0.5%", lines[2])
	assert.Equal(t, []string{"loss", "pairing", "ustack", "Mbit/s", "kernel", "Mbit/s", "ustack", "share", "kernel", "share",
		"Jain", "ustack", "share", "2nd", "half", "Jain", "2nd", "half", "ustack", "rtt", "ms", "kernel", "rtt", "ms",
		"utilization", "queue", "mean", "ms", "queue", "p90", "ms"}, strings.Fields(lines[4]))
	assert.Equal(t, []string{"0.5%", "cubic", "40.0", "50.0", "0.444", "0.556", "0.988", "0.480", "0.998", "52.5", "51.0",
		"0.900", "12.5", "30.0"}, strings.Fields(lines[5]))
	assert.Equal(t, []string{"0.5%", "bbr", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"}, strings.Fields(lines[6]))
	// The controls come after the pairings; a missing one has no row.
	assert.Equal(t, []string{"0.5%", "ctl-cubic", "45.0", "45.0", "0.500", "0.500", "1.00", "-", "-", "-", "-", "0.900", "-", "-"},
		strings.Fields(lines[7]))
	assert.Equal(t, "error: loss 0.5%: bbr down: boom", lines[8])
}

func TestBenchFairnessJSONShape(t *testing.T) {
	b, err := json.Marshal(sampleFairReport(t))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, []string{"path", "paths", "duration_s", "mtu", "pairings", "results", "elapsed_s"}, keys)
	cubic := m["results"].(map[string]any)["0.5%"].(map[string]any)["cubic"].(map[string]any)["metrics"].(map[string]any)
	assert.Equal(t, 0.988, cubic["fair_jain"])
	assert.Equal(t, 0.444, cubic["fair_ustack_share"])
}

func TestFairLateHalfAndTimeline(t *testing.T) {
	// Samples once a second of a 6 s run; the second half starts at the
	// middle sample (the third of five) and runs to the totals.
	samples := [][2]int64{{125000, 250000}, {250000, 500000}, {500000, 750000}, {750000, 1000000}, {1000000, 1250000}}
	late, ok := fairLateHalf(samples, [2]int64{1250000, 1500000})
	require.True(t, ok)
	assert.Equal(t, [2]float64{750000, 750000}, late)
	assert.Equal(t, "1/2 1/2 2/2 2/2 2/2", fairTimeline(samples))
	_, ok = fairLateHalf(samples[:1], [2]int64{1, 1})
	assert.False(t, ok, "one sample has no second half")
}
