package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tun/netnstest"
)

// TestServeZeroWindowClients: 500 kernel clients fill `ustack serve`'s echo
// service and never read. Both directions stall: the clients' receive
// buffers fill, the echo goroutines block in Write, ustack's receive buffers
// fill and it advertises a zero window to the clients, and it persists
// against theirs. Read over the admin socket, the server's goroutines (one
// per echo connection, plus a fixed set) and its RSS stay flat while the
// stall lasts, every connection is ESTABLISHED with its send buffer full and
// probing; when the clients go away (close with unread data: RST) every
// connection and goroutine is freed. If this serve has --user-timeout, a
// second run checks that it frees the stalled connections by itself while
// the clients still hold them open.
func TestServeZeroWindowClients(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	t.Run("keepalive", func(t *testing.T) { zeroWindowClients(t, "") })
	if serveHasFlag(t, "user-timeout") {
		t.Run("user-timeout", func(t *testing.T) { zeroWindowClients(t, "5s") })
	} else {
		t.Log("this ustack serve has no --user-timeout: only the clients' going away frees the stalled connections")
	}
}

func zeroWindowClients(t *testing.T, userTimeout string) {
	const n = 500
	const chunk = 256 << 10 // per client, far more than all the buffers in the way
	admin := filepath.Join(t.TempDir(), "slow.sock")
	args := []string{"--admin", admin, "--sndbuf", "16K", "--rcvbuf", "16K", "--keepalive", "5s,5s,3"}
	if userTimeout != "" {
		args = append(args, "--user-timeout", userTimeout)
	}
	srv := startServe(t, true, args...)
	pid := srv.cmd.Process.Pid
	g0 := serveGoroutines(t, admin)
	rss0 := processRSS(t, pid)

	payload := make([]byte, chunk)
	clients := make([]*net.TCPConn, 0, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	dialer := net.Dialer{Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		c, err := dialer.Dial("tcp", joinAddrPort(ustackAddr4, serveEchoPort))
		require.NoError(t, err, "client %d", i)
		tc := c.(*net.TCPConn)
		// Small kernel buffers: the stall comes soon and costs the
		// kernel little.
		require.NoError(t, tc.SetReadBuffer(4096))
		require.NoError(t, tc.SetWriteBuffer(16<<10))
		clients = append(clients, tc)
	}
	// Each client writes until its socket takes no more: ustack's window
	// toward it is shut.
	var wg sync.WaitGroup
	var sent atomic.Int64
	errs := make([]error, n)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			for total := 0; err == nil; {
				if total > 64<<20 {
					errs[i] = fmt.Errorf("client %d: wrote %d bytes without stalling", i, total)
					return
				}
				c.SetWriteDeadline(time.Now().Add(2 * time.Second))
				var k int
				k, err = c.Write(payload)
				total += k
				sent.Add(int64(k))
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				errs[i] = fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...), "a client that never reads must stall")
	t.Logf("%d clients wrote %d KiB each on average before stalling", n, sent.Load()/n>>10)

	// Stalled: every connection ESTABLISHED, ustack's send buffer full and
	// the client's window zero.
	waitState(t, 20*time.Second, "every connection stalled in zero window", func() (bool, string) {
		conns := adminConnsOf(t, admin)
		stalled, zero := 0, 0
		var other zwConn
		for _, c := range conns {
			// Stuck with data, and a timer watching the peer: persist
			// with nothing in flight, retransmission (whose segment is
			// the probe) when the client shut its window on data in
			// flight, as a Linux receiver with a 4 KiB buffer does to
			// super-segments it cannot queue.
			if c.State == "ESTAB" && (c.NotSent > 0 || c.Unacked > 0) && (c.Persist.Armed || c.Retransmit.Armed) {
				stalled++
			} else {
				other = c
			}
			if c.SndWnd == 0 {
				zero++
			}
		}
		return stalled == n, fmt.Sprintf("%d of %d connections stalled, %d in zero window (one that is not: %+v)", stalled, len(conns), zero, other)
	})
	g1, rss1 := serveGoroutines(t, admin), processRSS(t, pid)
	t.Logf("stalled: goroutines %d -> %d, RSS %d -> %d MiB", g0, g1, rss0>>20, rss1>>20)
	// One echo goroutine per connection, a fixed set besides.
	require.LessOrEqual(t, g1, g0+n+8, "goroutines")
	// Per connection: the 64 KiB echo buffer, 16 KiB received, the 16 KiB
	// send ring and its mirror, state; plus the runtime's slack.
	require.Less(t, rss1-rss0, int64(n*(160<<10)+64<<20), "RSS")

	if userTimeout != "" {
		waitState(t, 60*time.Second, "the user timeout frees every stalled connection", func() (bool, string) {
			conns := adminConnsOf(t, admin)
			return len(conns) == 0, fmt.Sprintf("%d connections left", len(conns))
		})
		waitState(t, 10*time.Second, "echo goroutines gone", func() (bool, string) {
			g := serveGoroutines(t, admin)
			return g <= g0+2, fmt.Sprintf("%d goroutines (%d before)", g, g0)
		})
		return
	}

	// The stall goes on (probes answered, keepalive does not probe a
	// connection with data queued): nothing grows.
	time.Sleep(8 * time.Second)
	g2, rss2 := serveGoroutines(t, admin), processRSS(t, pid)
	conns := adminConnsOf(t, admin)
	probes := 0
	for _, c := range conns {
		require.Equal(t, "ESTAB", c.State, "%v", c.Remote)
		probes += int(c.ProbesSent) + int(c.Retransmits)
	}
	t.Logf("after 8 s more: %d connections, %d window probes sent, goroutines %d, RSS %d MiB", len(conns), probes, g2, rss2>>20)
	require.Len(t, conns, n, "alive: the clients answer every probe")
	require.Greater(t, probes, n, "ustack keeps probing the clients' zero windows")
	require.InDelta(t, g1, g2, 2, "goroutines while stalled")
	require.Less(t, rss2, rss1+8<<20, "RSS while stalled")

	// The clients go away with unread data: the kernel resets each one,
	// and ustack frees them all.
	for _, c := range clients {
		c.Close()
	}
	clients = nil
	waitState(t, 20*time.Second, "every connection freed", func() (bool, string) {
		conns := adminConnsOf(t, admin)
		return len(conns) == 0, fmt.Sprintf("%d connections left", len(conns))
	})
	waitState(t, 10*time.Second, "echo goroutines gone", func() (bool, string) {
		g := serveGoroutines(t, admin)
		return g <= g0+2, fmt.Sprintf("%d goroutines (%d before)", g, g0)
	})
}

// zwConn is the part of an admin /conns entry these tests read.
type zwConn struct {
	Remote      string `json:"remote"`
	State       string `json:"State"`
	SndWnd      uint32
	NotSent     uint32
	Unacked     uint32
	ProbesSent  uint64
	Retransmits uint32
	Persist     struct{ Armed bool }
	Retransmit  struct{ Armed bool }
	Keepalive   struct{ Armed bool }
}

// adminClient talks HTTP to the admin unix socket at path.
func adminClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, // no idle admin connection (and its goroutine) left behind
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}
}

func adminGet(t *testing.T, path, url string) []byte {
	t.Helper()
	resp, err := adminClient(path).Get("http://ustack" + url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", url, b)
	return b
}

func adminConnsOf(t *testing.T, path string) []zwConn {
	t.Helper()
	var body struct{ Conns []zwConn }
	require.NoError(t, json.Unmarshal(adminGet(t, path, "/conns"), &body))
	return body.Conns
}

// serveGoroutines reads the goroutine count from the pprof endpoint
// ("goroutine profile: total N").
func serveGoroutines(t *testing.T, path string) int {
	t.Helper()
	b := adminGet(t, path, "/debug/pprof/goroutine?debug=1")
	line, _, _ := strings.Cut(string(b), "\n")
	v, ok := strings.CutPrefix(line, "goroutine profile: total ")
	require.True(t, ok, "pprof header %q", line)
	n, err := strconv.Atoi(strings.TrimSpace(v))
	require.NoError(t, err)
	return n
}

// processRSS returns a process's resident set size in bytes.
func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for %d", pid)
	return 0
}

// serveHasFlag reports whether `ustack serve --help` lists --name.
func serveHasFlag(t *testing.T, name string) bool {
	out, err := exec.Command(ustackBinary(t), "serve", "--help").CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("ustack serve --help: %v", err)
	}
	return strings.Contains(string(out), "-"+name+" ")
}
