package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tun/netnstest"
	"github.com/vishvananda/netlink"
)

// zeroWindowConns is how many connections TestZeroWindowMemoryBudget holds,
// the 100,000 of the issue (USTACK_ZW_CONNS sets another count), and the
// user timeout that frees them: longer than opening them all takes (54 s
// for 100,000 on this 2-core machine, 71 s with other tests beside it).
func zeroWindowConns(t *testing.T) (int, time.Duration) {
	n := 100000
	if v := os.Getenv("USTACK_ZW_CONNS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "USTACK_ZW_CONNS")
	}
	return n, 15*time.Second + time.Duration(n)*time.Millisecond
}

// Sizes of TestZeroWindowMemoryBudget.
const (
	zwPerHolder  = 17000 // connections per client process: its open-file limit is 20,000 here
	zwBudget     = 64 << 20
	zwBaseRSS    = 96 << 20 // the server without connections (20 MiB), its packet pools at their bound (8192 x 2 KiB + 512 x 64 KiB), room
	zwPerConnRSS = 8 << 10  // structures of a connection with its writer blocked: 4.4 KiB idle (ustack bench), a deeper goroutine stack, room
	zwMinSendBuf = 4 << 10  // the send buffer every connection may hold beyond the budget
)

// TestZeroWindowMemoryBudget is the resource-limit test of issue 9: 100,000
// connections to chargen (RFC 864, which writes until the send buffer is
// full) from kernel clients that never read, with a small SO_RCVBUF so the
// window closes at once. The server's buffer memory stays within
// --mem-budget plus the 4 KiB first send buffer each connection may keep
// (its gauge, and its peak RSS within that plus a base and the
// per-connection structures, while 100,000 full 64 KiB send buffers would
// need 6 GiB), writers were held back by the budget (the counter moved),
// and --user-timeout then frees every connection although the clients keep answering the zero-window probes: the table empties,
// tcp_timed_out counts them all, and every client socket, whose keepalive
// probes then meet no connection, sees the RST.
func TestZeroWindowMemoryBudget(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	start := time.Now()
	n, userTimeout := zeroWindowConns(t)
	// The buffer memory the budget allows: the budget, plus the first 4 KiB
	// send buffer that every connection may hold whatever the budget (so
	// that each can send and reach the zero window its user timeout then
	// ends); and the RSS that allows with a base and the structures.
	bound := float64(zwBudget + n*zwMinSendBuf)
	limit := int64(zwBaseRSS) + int64(bound) + int64(n*zwPerConnRSS)
	// --mem-budget bounds the buffers; the Go heap around them is bounded
	// the way a Go service's is, by a soft memory limit. Without it the
	// garbage collector lets the heap reach twice the live data before a
	// cycle, and the peak depends on when cycles happen (a whole-run peak
	// of 252 to 306 MiB for the same 10,000 connections).
	// The soft limit sits 10% under the asserted peak: it is soft.
	t.Setenv("GOMEMLIMIT", strconv.FormatInt(limit/10*9, 10))
	admin := filepath.Join(t.TempDir(), "admin.sock")
	srv := startServe(t, true, "--admin", admin, "--chargen", "19", "--sndbuf", "64K",
		"--max-conns", strconv.Itoa(n+1000), "--backlog", "4096", "--syn-backlog", "4096", "--keepalive", "off",
		"--mem-budget", strconv.Itoa(zwBudget), "--user-timeout", userTimeout.String())
	metrics := adminMetrics(t, admin)

	// The clients' keepalive (idle time and interval, 3 probes) is how they
	// learn that the server freed their connections: the RST that answers
	// a probe. 100,000 clients probing every 2 s would be a flood of their
	// own, 50,000 packets a second: the interval grows with the count.
	keepalive := max(2*time.Second, time.Duration(n)*100*time.Microsecond)
	// One client address per holder process, on the kernel side of the TUN.
	link, err := netlink.LinkByName(kernelTUN)
	require.NoError(t, err)
	holders := (n + zwPerHolder - 1) / zwPerHolder
	var procs []*holdProcess
	for i := range holders {
		src := netip.AddrFrom4([4]byte{198, 18, 0, byte(101 + i)})
		addr, err := netlink.ParseAddr(src.String() + "/32")
		require.NoError(t, err)
		require.NoError(t, netlink.AddrReplace(link, addr))
		k := min(zwPerHolder, n-i*zwPerHolder)
		procs = append(procs, startHold(t, src, netip.AddrPortFrom(ustackAddr4, 19), k, keepalive))
	}
	for _, p := range procs {
		if got := p.line(t, 90*time.Second); got != fmt.Sprintf("open %d", p.n) {
			t.Fatalf("ustack bench hold: %q, want \"open %d\"; %s", got, p.n, zwState(metrics()))
		}
	}
	opened := time.Since(start)
	t.Logf("%d connections open after %v", n, opened.Round(time.Millisecond))

	// Every connection established, the budget bitten and writers held.
	waitMetric(t, metrics, 60*time.Second, func(m map[string]float64) bool {
		return m["ustack_tcp_passive_opens_total"] >= float64(n) && m["ustack_tcp_mem_send_limited_total"] > 0
	})
	time.Sleep(time.Second) // let the writers settle on the spent budget
	m := metrics()
	// All of them are held at once: none has ended but by the user timeout.
	require.Equal(t, float64(n), m[`ustack_connections{state="ESTAB"}`]+m["ustack_tcp_timed_out_total"], zwState(m))
	require.Less(t, m["ustack_tcp_timed_out_total"], float64(n)/10, "the user timeout came before they were all open")
	hwm, rss := procMemory(t, srv.cmd.Process.Pid)
	t.Logf("server: RSS %d MiB, peak %d MiB; budget used %.0f MiB (peak %.0f MiB) of %d MiB; send limited %.0f times",
		rss>>20, hwm>>20, m["ustack_memory_used_bytes"]/(1<<20), m["ustack_memory_peak_bytes"]/(1<<20), zwBudget>>20,
		m["ustack_tcp_mem_send_limited_total"])
	require.LessOrEqual(t, m["ustack_memory_peak_bytes"], bound, "buffer memory beyond the budget")
	require.Greater(t, m["ustack_memory_used_bytes"], float64(zwBudget), "the budget never filled: the test tests nothing")
	require.LessOrEqual(t, hwm, limit, "peak RSS above budget + base + per-connection structures")

	// The user timeout frees them all: nobody reads, the window stays shut.
	// It runs from each connection's first zero-window probe, so the last
	// ones opened go up to userTimeout after this point.
	waitMetric(t, metrics, userTimeout+30*time.Second, func(m map[string]float64) bool {
		total := 0.0
		for k, v := range m {
			if strings.HasPrefix(k, "ustack_connections{") {
				total += v
			}
		}
		return total == 0
	})
	m = metrics()
	t.Logf("%s", zwState(m))
	// The user timeout ends them: all 100,000 in the runs here. A client
	// whose three keepalive probes were all lost (the TUN's queue drops a
	// few thousand packets of the run) would reset its connection first;
	// a server that failed to answer probes (as when its packet pool ran
	// dry: 8% of the connections) would lose many.
	require.GreaterOrEqual(t, m["ustack_tcp_timed_out_total"], 0.99*float64(n), zwState(m))
	require.Zero(t, m["ustack_memory_used_bytes"], "buffer memory still charged with no connection left")
	freed := time.Since(start)

	// The clients learn it from the RST that answers their keepalive probe.
	for _, p := range procs {
		p.waitReset(t, 60*time.Second)
	}
	hwm, _ = procMemory(t, srv.cmd.Process.Pid)
	require.LessOrEqual(t, hwm, limit, "peak RSS of the whole run above budget + base + per-connection structures")
	t.Logf("%d connections: open %v, freed by the user timeout at %v, all clients reset at %v; server peak RSS %d MiB",
		n, opened.Round(time.Millisecond), freed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), hwm>>20)
}

// zwState describes the server's TCP counters and connection gauges that
// are not zero, and the kernel's counters of the TUN, for a failure message.
func zwState(m map[string]float64) string {
	var nz []string
	for k, v := range m {
		if (strings.HasPrefix(k, "ustack_tcp") || strings.HasPrefix(k, "ustack_connections")) && v != 0 {
			nz = append(nz, fmt.Sprintf("%s=%v", k, v))
		}
	}
	sort.Strings(nz)
	out, _ := exec.Command("ip", "-s", "link", "show", kernelTUN).CombinedOutput()
	return fmt.Sprintf("server: %s\n%s", strings.Join(nz, " "), out)
}

// holdProcess is a `ustack bench hold` client.
type holdProcess struct {
	cmd   *exec.Cmd
	n     int
	stdin io.WriteCloser
	lines chan string
}

// startHold starts a holder of n connections from src to dst, stopped at the
// end of the test.
func startHold(t *testing.T, src netip.Addr, dst netip.AddrPort, n int, keepalive time.Duration) *holdProcess {
	t.Helper()
	cmd := exec.Command(ustackBinary(t), "bench", "hold", "--to", dst.String(), "--from", src.String(),
		"--n", strconv.Itoa(n), "--rcvbuf", "4096", "--keepalive", keepalive.String(), "--workers", "16")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	p := &holdProcess{cmd: cmd, n: n, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return p
}

func (p *holdProcess) line(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("ustack bench hold exited")
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("ustack bench hold: nothing after %v", timeout)
	}
	return ""
}

// waitReset polls the holder until every one of its sockets saw a RST, or
// timed out (a client whose keepalive gave up before the server's user
// timeout, whose RST then ended the server's side).
func (p *holdProcess) waitReset(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got string
	for time.Now().Before(deadline) {
		_, err := io.WriteString(p.stdin, "status\n")
		require.NoError(t, err)
		got = p.line(t, 30*time.Second)
		var est, reset, timedout, closed, other int
		_, err = fmt.Sscanf(got, "status established=%d reset=%d timedout=%d closed=%d other=%d", &est, &reset, &timedout, &closed, &other)
		require.NoError(t, err, got)
		if reset+timedout == p.n {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("client sockets after %v: %s, want every one reset (or timed out)", timeout, got)
}

// adminMetrics returns a function that scrapes the admin socket's /metrics
// into name{labels} -> value.
func adminMetrics(t *testing.T, sock string) func() map[string]float64 {
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	line := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$`)
	return func() map[string]float64 {
		t.Helper()
		resp, err := client.Get("http://ustack/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		m := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if g := line.FindStringSubmatch(sc.Text()); g != nil {
				v, err := strconv.ParseFloat(g[2], 64)
				if err == nil {
					m[g[1]] = v
				}
			}
		}
		return m
	}
}

// waitMetric polls metrics until cond holds.
func waitMetric(t *testing.T, metrics func() map[string]float64, timeout time.Duration, cond func(map[string]float64) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var m map[string]float64
	for time.Now().Before(deadline) {
		if m = metrics(); cond(m) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	var keep []string
	for k, v := range m {
		if strings.HasPrefix(k, "ustack_connections") || strings.HasPrefix(k, "ustack_memory") || strings.Contains(k, "mem_") || strings.Contains(k, "timed_out") || strings.Contains(k, "cookie") || strings.Contains(k, "syn") || strings.Contains(k, "overflow") {
			keep = append(keep, fmt.Sprintf("%s=%v", k, v))
		}
	}
	t.Fatalf("condition not met after %v; metrics: %s", timeout, strings.Join(keep, " "))
}

// procMemory returns VmHWM and VmRSS of pid in bytes.
func procMemory(t *testing.T, pid int) (hwm, rss int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "VmHWM:" || f[0] == "VmRSS:") {
			v, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			if f[0] == "VmHWM:" {
				hwm = v << 10
			} else {
				rss = v << 10
			}
		}
	}
	return hwm, rss
}
