package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun/netnstest"
)

// TestQueuesFlagErrors: --queues outside 1-16, or above 1 with a capture
// or an impairment that would see one queue, exits 2 saying why, from
// serve, dial and bench alike.
func TestQueuesFlagErrors(t *testing.T) {
	const want = "want a value from 1 to 16\n"
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"serve", "--queues", "0"}, "ustack serve: --queues 0: " + want},
		{[]string{"serve", "--queues", "-2"}, "ustack serve: --queues -2: " + want},
		{[]string{"serve", "--queues", "17"}, "ustack serve: --queues 17: " + want},
		{[]string{"dial", "--queues", "0", "198.18.0.1:7"}, "ustack dial: --queues 0: " + want},
		{[]string{"serve", "--queues", "2", "--pcap", "/tmp/x.pcap"}, "ustack serve: --queues 2: --pcap sees one queue only; use --queues 1\n"},
		{[]string{"serve", "--queues", "4", "--impair", "loss=1%"}, "ustack serve: --queues 4: --impair sees one queue only; use --queues 1\n"},
		{[]string{"bench", "--queues", "0"}, `ustack bench: --queues "0": want counts from 1 to 16, comma-separated (e.g. 1,2)` + "\n"},
		{[]string{"bench", "--queues", "1,17"}, `ustack bench: --queues "1,17": want counts from 1 to 16, comma-separated (e.g. 1,2)` + "\n"},
		{[]string{"bench", "--queues", "2,2"}, `ustack bench: --queues "2,2": 2 given twice` + "\n"},
		{[]string{"bench", "--queues", "1,2", "--pcap", "/tmp/x.pcap"}, "ustack bench: --pcap, --trace, --cpuprofile and --path take one ustack run: give --queues one count\n"},
		{[]string{"bench", "--queues", "2", "--impair", "loss=1%"}, "ustack bench: --queues 2: --pcap and --impair see one queue only; use --queues 1\n"},
	} {
		var out, errOut strings.Builder
		assert.Equal(t, exitUsage, run(tc.args, &out, &errOut), "%v", tc.args)
		assert.Equal(t, tc.msg, errOut.String(), "%v", tc.args)
	}
	var out, errOut strings.Builder
	assert.Equal(t, exitUsage, run([]string{"serve", "--queues", "many"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `invalid value "many" for flag -queues: want a whole number of queues from 1 to 16`)
}

// TestQueuesParsed: the default is one per two cores (1 to 4), 1 under --pcap or
// --impair; a given count is kept.
func TestQueuesParsed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, defaultQueues()},
		{[]string{"--queues", "1"}, 1},
		{[]string{"--queues=3"}, 3},
		{[]string{"--queues", "16"}, 16},
		{[]string{"--pcap", "/tmp/x.pcap"}, 1},
		{[]string{"--impair", "loss=1%"}, 1},
		{[]string{"--queues", "1", "--pcap", "/tmp/x.pcap"}, 1},
	} {
		var d deviceFlags
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		d.register(fs)
		require.NoError(t, fs.Parse(tc.args))
		dev, err := d.validate()
		require.NoError(t, err, "%v", tc.args)
		assert.Equal(t, tc.want, dev.queues, "%v", tc.args)
	}
	assert.GreaterOrEqual(t, defaultQueues(), 1)
	assert.LessOrEqual(t, defaultQueues(), 4)
}

// TestQueuesApplied: serve's device opens a TUN of that many queues and
// the stack reads every one (in a private namespace).
func TestQueuesApplied(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	for _, n := range []int{1, 3} {
		var d deviceFlags
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		d.register(fs)
		require.NoError(t, fs.Parse([]string{"--queues", strconv.Itoa(n), "--tun", "ustq0"}))
		dev, err := d.validate()
		require.NoError(t, err)
		st, err := dev.open(slog.New(slog.NewTextHandler(io.Discard, nil)), stack.Options{})
		require.NoError(t, err)
		qs := st.QueueStats()
		assert.Len(t, qs, n)
		for i, q := range qs {
			assert.Equal(t, 0, q.Link)
			assert.Equal(t, i, q.Queue)
		}
		require.NoError(t, st.Close())
	}
}

// TestBenchQueueSweep: --queues 1,2 runs ustack once per count; the target
// and its server get one count each.
func TestBenchQueueSweep(t *testing.T) {
	cfg, err := parseBenchFlags(t, "--queues", "1,2", "--only", "ustack", "--workloads", "up8,connrate")
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, cfg.queues)
	one := *cfg
	one.queues = []int{2}
	assert.Contains(t, one.targetArgs("ustack"), "--queues=2")
	assert.NotContains(t, strings.Join(one.targetArgs("gvisor"), " "), "queues")
	args, err := benchServerArgs("ustack", &one, false)
	require.NoError(t, err)
	assert.Contains(t, args, "--queues=2")
	// Without --queues, serve's own default.
	cfg, err = parseBenchFlags(t, "--only", "ustack")
	require.NoError(t, err)
	assert.Nil(t, cfg.queues)
	args, err = benchServerArgs("ustack", cfg, false)
	require.NoError(t, err)
	assert.NotContains(t, strings.Join(args, " "), "queues")
}

func TestBenchQueueTable(t *testing.T) {
	rep := &benchReport{
		DurationSeconds: 3, MTU: 1500, Offload: true, IdleConns: 10000,
		Workloads: []string{"up8", "connrate"}, Servers: []string{"ustack", "ustack-q2", "gvisor"},
		Results: map[string]*benchResult{
			"ustack":    {Server: "ustack", Metrics: map[string]float64{"up8_gbps": 4, "connrate_per_s": 5000, "queues": 1}},
			"ustack-q2": {Server: "ustack-q2", Metrics: map[string]float64{"up8_gbps": 6, "connrate_per_s": 4000, "queues": 2}},
			"gvisor":    {Server: "gvisor", Metrics: map[string]float64{"up8_gbps": 2, "connrate_per_s": 2500}},
		},
	}
	rep.Ratios = benchRatios(rep.Results)
	assert.Equal(t, map[string]float64{"up8_gbps": 1.5, "connrate_per_s": 0.8}, rep.Ratios["ustack-q2/ustack"])
	assert.Equal(t, map[string]float64{"up8_gbps": 2, "connrate_per_s": 2}, rep.Ratios["ustack/gvisor"])
	var out bytes.Buffer
	writeBenchTable(&out, rep)
	got := out.String()
	lines := strings.Split(got, "\n")
	assert.Equal(t, []string{"metric", "unit", "better", "ustack", "ustack-q2", "gvisor", "ustack/gvisor", "ustack-q2/ustack"},
		strings.Fields(lines[2]))
	assert.Contains(t, got, "upload, 8 streams")
	var row []string
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "upload, 8 streams") {
			row = strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "upload, 8 streams"))
		}
	}
	assert.Equal(t, []string{"Gbit/s", "higher", "4.00", "6.00", "2.00", "2.00x", "1.50x"}, row)
	assert.Contains(t, got, "TUN queues: ustack with --queues 1, ustack-q2 with --queues 2.\n")
}

// TestDefaultQueuesFor: one queue per two cores, at least one, at most four.
func TestDefaultQueuesFor(t *testing.T) {
	for cores, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 6: 3, 8: 4, 64: 4} {
		assert.Equal(t, want, defaultQueuesFor(cores), "%d cores", cores)
	}
}
