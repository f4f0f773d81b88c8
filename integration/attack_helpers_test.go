package integration

// Helpers of the hostile-traffic tests (flood_test.go, inject_test.go,
// scan_test.go, frag_test.go): `ustack serve` with an admin socket the test
// knows, its counters and connection table read from that socket, its peak
// memory, the legitimate kernel client that keeps connecting, and the
// namespace-local settings the tools need.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// attackServe is a `ustack serve` whose admin socket the test reads.
type attackServe struct {
	*serveProcess
	admin string
	http  *http.Client
}

// startAttackServe runs `ustack serve` (with offloads, serve's own defaults
// otherwise, plus extra) with its admin socket at a path of the test's own.
func startAttackServe(t *testing.T, extra ...string) *attackServe {
	t.Helper()
	admin := filepath.Join(t.TempDir(), "attack-admin.sock")
	// A second --admin overrides the one startServe passes.
	srv := startServe(t, true, append([]string{"--admin", admin}, extra...)...)
	return &attackServe{serveProcess: srv, admin: admin, http: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", admin)
		}},
	}}
}

// get reads path from the admin API.
func (a *attackServe) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := a.http.Get("http://ustack" + path)
	require.NoError(t, err, "admin GET %s", path)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "admin GET %s: %s", path, body)
	return body
}

// metrics is one scrape of /metrics: sample name (with its labels, as
// printed, e.g. `ustack_connections{state="ESTAB"}`) to value.
type metrics map[string]float64

// metrics scrapes /metrics.
func (a *attackServe) metrics(t *testing.T) metrics {
	t.Helper()
	m := metrics{}
	sc := bufio.NewScanner(bytes.NewReader(a.get(t, "/metrics")))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// counter returns the stack counter name (e.g. "tcp_cookies_sent").
func (m metrics) counter(name string) float64 { return m["ustack_"+name+"_total"] }

// conns returns the connections in state (as ss prints it), or in every
// state when state is "".
func (m metrics) conns(state string) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, `ustack_connections{state="`) && (state == "" || k == `ustack_connections{state="`+state+`"}`) {
			n += v
		}
	}
	return n
}

// moved lists the stack counters that differ between two scrapes, as
// "name +delta", for the test log.
func moved(before, after metrics) string {
	var out []string
	for k, v := range after {
		if strings.HasPrefix(k, "ustack_") && strings.HasSuffix(k, "_total") && v != before[k] {
			out = append(out, fmt.Sprintf("%s +%.0f", strings.TrimSuffix(strings.TrimPrefix(k, "ustack_"), "_total"), v-before[k]))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// connTable is GET /conns, reduced to what the tests look at.
type connTable struct {
	Conns []struct {
		Local, Remote string
		State         string
	} `json:"conns"`
}

// connTable reads the connection table.
func (a *attackServe) connTable(t *testing.T) connTable {
	t.Helper()
	var ct connTable
	require.NoError(t, json.Unmarshal(a.get(t, "/conns"), &ct))
	return ct
}

// waitNoConns waits until ustack's table is empty (every connection of the
// attack and of the legitimate client freed), but for connections in the
// states allow (e.g. TIME-WAIT after ustack closed first).
func (a *attackServe) waitNoConns(t *testing.T, timeout time.Duration, allow ...string) {
	t.Helper()
	waitState(t, timeout, "ustack's connection table", func() (bool, string) {
		ct := a.connTable(t)
		by := map[string]int{}
		n := 0
		for _, c := range ct.Conns {
			if !slices.Contains(allow, c.State) {
				by[c.State]++
				n++
			}
		}
		return n == 0, fmt.Sprintf("%d connections %v", n, by)
	})
}

// peakRSS returns the server's VmHWM (peak resident set) in KiB.
func (a *attackServe) peakRSS(t *testing.T) int {
	t.Helper()
	return procStatusKiB(t, a.cmd.Process.Pid, "VmHWM")
}

// procStatusKiB reads a "Name:  N kB" line of /proc/PID/status.
func procStatusKiB(t *testing.T, pid int, name string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			require.NoError(t, err, line)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}

// tunTxDropped reads the TUN's tx_dropped from /proc/net/dev (of this
// namespace; /sys shows the root namespace's devices): the packets the kernel
// could not queue toward ustack.
func tunTxDropped(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/dev")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || name != kernelTUN {
			continue
		}
		// rx: bytes packets errs drop fifo frame compressed multicast,
		// then tx: bytes packets errs drop ...
		f := strings.Fields(rest)
		require.GreaterOrEqual(t, len(f), 12, line)
		n, err := strconv.ParseUint(f[11], 10, 64)
		require.NoError(t, err, line)
		return n
	}
	t.Fatalf("no %s in /proc/net/dev", kernelTUN)
	return 0
}

// setSysctl sets a sysctl of the test's own network namespace.
func setSysctl(t *testing.T, key, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	require.NoError(t, os.WriteFile(path, []byte(value), 0o644), "sysctl %s=%s", key, value)
}

// echoOnce is one legitimate client life: connect, send one byte, read the
// echo, close.
func echoOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[0] != 'x' {
		return fmt.Errorf("echo returned %q", b[:])
	}
	return nil
}

// clientRun is what a legitimate client achieved in one phase.
type clientRun struct {
	ok, failed int
	elapsed    time.Duration
	worst      time.Duration
	firstErr   error
}

func (r clientRun) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r clientRun) String() string {
	return fmt.Sprintf("%d ok, %d failed in %v: %.0f conn/s, slowest %v", r.ok, r.failed,
		r.elapsed.Round(time.Millisecond), r.rate(), r.worst.Round(time.Microsecond))
}

// legitClient runs echoOnce back to back for d.
func legitClient(addr string, d time.Duration) clientRun {
	var r clientRun
	start := time.Now()
	for time.Since(start) < d {
		t0 := time.Now()
		if err := echoOnce(addr); err != nil {
			r.failed++
			if r.firstErr == nil {
				r.firstErr = err
			}
			continue
		}
		r.ok++
		r.worst = max(r.worst, time.Since(t0))
	}
	r.elapsed = time.Since(start)
	return r
}

// prepareClientNamespace lets the kernel client open tens of thousands of
// short connections in a row: the whole port range, and reuse of its own
// TIME-WAIT ports (tcp_tw_reuse=1; timestamps make it safe). Without this,
// connect() slows down as the port range fills with TIME-WAIT sockets,
// which would be measured as ustack's slowness. Both are settings of the
// test's own namespace.
func prepareClientNamespace(t *testing.T) {
	t.Helper()
	setSysctl(t, "net.ipv4.ip_local_port_range", "1024 65535")
	setSysctl(t, "net.ipv4.tcp_tw_reuse", "1")
}
