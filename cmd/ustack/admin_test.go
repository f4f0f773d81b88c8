package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun"
)

// stackPair returns two stacks joined by an in-memory pipe: srv at
// 198.18.0.2 and cli at 198.18.0.1 (no TUN, no root).
func stackPair(t *testing.T) (srv, cli *stack.Stack) {
	t.Helper()
	a, b := tun.NewPipe(1500)
	var err error
	srv, err = stack.New(stack.Options{Links: []tun.Link{a}, Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.2")}})
	require.NoError(t, err)
	cli, err = stack.New(stack.Options{Links: []tun.Link{b}, Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.1")}})
	require.NoError(t, err)
	t.Cleanup(func() {
		cli.Close()
		srv.Close()
	})
	return srv, cli
}

func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)
	return fams
}

func counter(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "metric %s missing", name)
	require.Equal(t, dto.MetricType_COUNTER, f.GetType(), name)
	return f.GetMetric()[0].GetCounter().GetValue()
}

func connsByState(t *testing.T, fams map[string]*dto.MetricFamily) map[string]float64 {
	t.Helper()
	f, ok := fams["ustack_connections"]
	require.True(t, ok)
	require.Equal(t, dto.MetricType_GAUGE, f.GetType())
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	return out
}

func TestMetricsCountersMove(t *testing.T) {
	srv, cli := stackPair(t)
	h := newAdminHandler(srv, discardLogger(), nil)

	before := scrape(t, h)
	// Every Stats counter is exported as ustack_<name>_total.
	srv.Stats().Each(func(name string, _ uint64) {
		assert.Contains(t, before, "ustack_"+name+"_total")
	})
	assert.Equal(t, 0.0, counter(t, before, "ustack_tcp_conns_opened_total"))
	assert.Equal(t, map[string]float64{"CLOSE": 0, "LISTEN": 0, "SYN-SENT": 0, "SYN-RECV": 0, "ESTAB": 0, "FIN-WAIT-1": 0,
		"FIN-WAIT-2": 0, "CLOSE-WAIT": 0, "CLOSING": 0, "LAST-ACK": 0, "TIME-WAIT": 0}, connsByState(t, before))
	assert.Contains(t, before, "go_goroutines", "the Go runtime collector is registered")

	ln, err := srv.Listen("tcp", ":9")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := cli.Dial("tcp", "198.18.0.2:9")
	require.NoError(t, err)
	defer c.Close()
	sc := <-accepted
	defer sc.Close()
	payload := bytes.Repeat([]byte("x"), 100000)
	go c.Write(payload)
	_, err = io.ReadFull(sc, make([]byte, len(payload)))
	require.NoError(t, err)

	after := scrape(t, h)
	assert.Equal(t, 1.0, counter(t, after, "ustack_tcp_conns_opened_total"))
	assert.Equal(t, 1.0, counter(t, after, "ustack_tcp_passive_opens_total"))
	assert.Greater(t, counter(t, after, "ustack_rx_packets_total"), counter(t, before, "ustack_rx_packets_total"))
	assert.Greater(t, counter(t, after, "ustack_rx_bytes_total"), float64(len(payload)))
	assert.Greater(t, counter(t, after, "ustack_tx_packets_total"), 0.0)
	assert.Equal(t, 1.0, connsByState(t, after)["ESTAB"])

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	problems, err := promlint.New(rec.Body).Lint()
	require.NoError(t, err)
	problems = slices.DeleteFunc(problems, func(p promlint.Problem) bool {
		// "for_us" is "for us", not microseconds.
		return !strings.HasPrefix(p.Metric, "ustack_") || p.Metric == "ustack_ip_not_for_us_total" && strings.Contains(p.Text, "abbreviated units")
	})
	assert.Empty(t, problems, "metric names and help pass promlint")
}

func TestMetricName(t *testing.T) {
	assert.Equal(t, "ustack_rx_packets_total", metricName("rx_packets"))
	assert.Equal(t, "ustack_ip_bad_checksum_total", metricName("ip_bad_checksum"))
	assert.Equal(t, "ustack_a_b_c_total", metricName("a-b.c"))
}

// adminClient talks HTTP to the admin socket at path.
func adminClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

var (
	reBytesAcked = regexp.MustCompile(`bytes_acked:(\d+)`)
	reTimeWait   = regexp.MustCompile(`timer:\(timewait,([^)]+)\)`)
)

// ssRun runs `ustack ss` and returns its stdout.
func ssRun(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	require.Equal(t, 0, run(append([]string{"ss"}, args...), &out, &errb), errb.String())
	return out.String()
}

func TestAdminSocketLiveSS(t *testing.T) {
	srv, cli := stackPair(t)
	dir := filepath.Join(t.TempDir(), "run", "ustack")
	path := adminPath(filepath.Join(dir, "ut0.sock"), "ut0")
	stop, err := startAdmin(srv, path, discardLogger(), adminOptions{})
	require.NoError(t, err)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())

	// A second server on the same socket is refused while the first lives.
	_, err = startAdmin(srv, path, discardLogger(), adminOptions{})
	require.ErrorContains(t, err, "another ustack is serving there")

	// The server sends until told to stop, then closes first (active close).
	ln, err := srv.Listen("tcp", ":19")
	require.NoError(t, err)
	defer ln.Close()
	stopSending := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		chunk := bytes.Repeat([]byte("ustack"), 1000)
		for {
			select {
			case <-stopSending:
				c.Close()
				return
			default:
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	c, err := cli.Dial("tcp", "198.18.0.2:19")
	require.NoError(t, err)
	defer c.Close()
	readDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		readDone <- err
	}()

	acked := func() uint64 {
		out := ssRun(t, "-i", "--admin", path, "state", "established")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		require.Len(t, lines, 3, out)
		t.Logf("ustack ss -i state established:\n%s", out)
		assert.Regexp(t, `^ESTAB +\d+ +\d+ 198\.18\.0\.2:19 +198\.18\.0\.1:\d+$`, lines[1])
		m := reBytesAcked.FindStringSubmatch(lines[2])
		require.NotNil(t, m, lines[2])
		n, err := strconv.ParseUint(m[1], 10, 64)
		require.NoError(t, err)
		return n
	}
	first := acked()
	require.Eventually(t, func() bool { return acked() > first+100000 }, 10*time.Second, 10*time.Millisecond,
		"bytes_acked grows during the transfer")

	// Listeners: only with -l (or -a, or a state filter), Recv-Q the
	// accept queue, Send-Q the backlog.
	assert.Equal(t, "State  Recv-Q Send-Q Local Address:Port Peer Address:Port\n"+
		"LISTEN      0   4096 *:19               *:*\n"+
		"\tsyn_queue:0/1024 cookies:on\n", ssRun(t, "-l", "-e", "--admin", path))
	assert.NotContains(t, ssRun(t, "--admin", path), "LISTEN")
	assert.Regexp(t, `^State .*\nLISTEN +0 +4096 \*:19 +\*:\*\nESTAB .*198\.18\.0\.2:19 .*\n$`, ssRun(t, "-a", "--admin", path))
	assert.Equal(t, ssRun(t, "-l", "--admin", path), ssRun(t, "--admin", path, "state", "listening"))
	assert.Regexp(t, `^Total: 2 \(connections 1, listeners 1\)\nTCP:   2 \(LISTEN 1, ESTAB 1\)\n`, ssRun(t, "-s", "--admin", path))
	mem := ssRun(t, "-m", "--admin", path, "state", "established")
	// The send buffer grew with cwnd (auto-tuning, --sndbuf-max).
	assert.Regexp(t, `\n\tskmem:\(r\d+,rb262144,t\d+,tb\d+,f\d+,w\d+\)\n$`, mem)

	// JSON carries the same table.
	var jsonOut bytes.Buffer
	require.Equal(t, 0, run([]string{"ss", "--json", "--admin", path, "sport", "=", ":19"}, &jsonOut, io.Discard))
	assert.Contains(t, jsonOut.String(), `"State": "ESTAB"`)
	assert.Contains(t, jsonOut.String(), `"local": "198.18.0.2:19"`)
	jsonOut.Reset()
	require.Equal(t, 0, run([]string{"ss", "--json", "-l", "--admin", path}, &jsonOut, io.Discard))
	assert.Contains(t, jsonOut.String(), `"addr": "*"`)
	assert.Contains(t, jsonOut.String(), `"backlog": 4096`)

	close(stopSending)
	require.NoError(t, <-readDone)
	require.NoError(t, c.Close())
	var tw string
	require.Eventually(t, func() bool {
		tw = ssRun(t, "-i", "--admin", path, "state", "time-wait")
		return strings.Count(tw, "\n") == 3
	}, 10*time.Second, 10*time.Millisecond, "the server's side reaches TIME-WAIT")
	t.Logf("ustack ss -i state time-wait:\n%s", tw)
	lines := strings.Split(tw, "\n")
	assert.Regexp(t, `^TIME-WAIT +0 +0 198\.18\.0\.2:19 +198\.18\.0\.1:\d+$`, lines[1])
	m := reTimeWait.FindStringSubmatch(lines[2])
	require.NotNil(t, m, lines[2])
	left, err := time.ParseDuration(m[1])
	require.NoError(t, err)
	assert.Greater(t, left, time.Duration(0), "time left in TIME-WAIT")
	assert.LessOrEqual(t, left, 2*time.Minute)

	// /metrics and pprof on the same socket.
	hc := adminClient(path)
	resp, err := hc.Get("http://ustack/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), `ustack_connections{state="TIME-WAIT"} 1`)
	resp, err = hc.Get("http://ustack/debug/pprof/")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), "goroutine")

	stop()
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err), "the socket is removed on exit")
	var errb bytes.Buffer
	assert.Equal(t, 1, run([]string{"ss", "--admin", path}, io.Discard, &errb))
	assert.Contains(t, errb.String(), "is `ustack serve` running?")
}

func TestAdminStaleSocket(t *testing.T) {
	srv, _ := stackPair(t)
	path := filepath.Join(t.TempDir(), "a.sock")
	// A socket nobody listens on any more: a crashed serve's leftover.
	l, err := net.Listen("unix", path)
	require.NoError(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_, err = os.Stat(path)
	require.NoError(t, err)
	var errb bytes.Buffer
	assert.Equal(t, 1, run([]string{"ss", "--admin", path}, io.Discard, &errb))
	assert.Contains(t, errb.String(), "no ustack admin socket at "+path)

	stop, err := startAdmin(srv, path, discardLogger(), adminOptions{})
	require.NoError(t, err, "a stale socket is replaced")
	out := ssRun(t, "--admin", path)
	assert.Equal(t, "State Recv-Q Send-Q Local Address:Port Peer Address:Port\n", out)
	stop()

	// Something that is not a socket is left alone.
	file := filepath.Join(t.TempDir(), "f.sock")
	require.NoError(t, os.WriteFile(file, []byte("keep"), 0o644))
	_, err = startAdmin(srv, file, discardLogger(), adminOptions{})
	require.ErrorContains(t, err, "is not a socket")
	b, _ := os.ReadFile(file)
	assert.Equal(t, "keep", string(b))
}

func TestAdminPath(t *testing.T) {
	assert.Equal(t, "/run/ustack/ustack0.sock", adminPath("", "ustack0"))
	assert.Equal(t, "/run/ustack/tun7.sock", adminPath("", "tun7"))
	assert.Equal(t, "", adminPath("off", "ustack0"))
	assert.Equal(t, "/tmp/x.sock", adminPath("/tmp/x.sock", "ustack0"))
}
