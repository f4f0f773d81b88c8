package integration

// Helpers of the kernel-peer tests (kernel_test.go): the ustack binary built
// once per `go test`, a TUN + Stack in the test's private namespace, the
// `ustack serve` process, content patterns and hashes, and the kernel's own
// view of its sockets through ss(8).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun"
	"github.com/ustack-net/ustack/tun/netnstest"
)

// The addresses of the namespace: the kernel side of the TUN (.1/::1) and
// ustack's (.2/::2), from the benchmarking ranges of RFC 2544 / RFC 5180.
var (
	kernelAddr4  = netip.MustParseAddr("198.18.0.1")
	kernelAddr6  = netip.MustParseAddr("2001:2::1")
	ustackAddr4  = netip.MustParseAddr("198.18.0.2")
	ustackAddr6  = netip.MustParseAddr("2001:2::2")
	kernelPrefix = []netip.Prefix{netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("2001:2::1/64")}
)

// kernelTUN is the device name every kernel-peer test uses; each test has
// its own namespace, so they never collide.
const kernelTUN = "ustack0"

// kernelModes are the two ways a TUN link runs: with virtio-net offloads
// (TSO/GRO super-packets in both directions) and packet by packet.
var kernelModes = []struct {
	name    string
	offload bool
}{{"offload", true}, {"no-offload", false}}

// kernelFamilies pairs the kernel's and ustack's address of each family.
var kernelFamilies = []struct {
	name           string
	kernel, ustack netip.Addr
}{{"v4", kernelAddr4, ustackAddr4}, {"v6", kernelAddr6, ustackAddr6}}

// ustackBinEnv carries the path of the ustack binary (or, prefixed with
// "!", why it could not be built) from the parent test process into the
// namespace children netnstest.Enter starts.
const ustackBinEnv = "USTACK_TEST_BINARY"

// TestMain builds cmd/ustack once for the whole package (in the parent
// process only: the namespace children inherit its path) and removes it at
// the end.
func TestMain(m *testing.M) {
	if netnstest.InChild() || os.Getenv(ustackBinEnv) != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "ustack-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		os.Exit(1)
	}
	bin := filepath.Join(dir, "ustack")
	goTool := "go"
	if _, err := exec.LookPath(goTool); err != nil && os.Getenv("GOROOT") != "" {
		// go test puts GOROOT in the test binary's environment.
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out, err := exec.Command(goTool, "build", "-o", bin, "github.com/ustack-net/ustack/cmd/ustack").CombinedOutput()
	if err != nil {
		os.Setenv(ustackBinEnv, "!go build ./cmd/ustack failed: "+err.Error()+"\n"+string(out))
	} else {
		os.Setenv(ustackBinEnv, bin)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ustackBinary returns the path of the binary TestMain built.
func ustackBinary(t *testing.T) string {
	t.Helper()
	v := os.Getenv(ustackBinEnv)
	if v == "" || strings.HasPrefix(v, "!") {
		t.Fatalf("no ustack binary: %s", strings.TrimPrefix(v, "!"))
	}
	return v
}

// serveDeviceFlags are the flags `ustack serve` and `ustack dial` share.
func serveDeviceFlags(offload bool) []string {
	return []string{
		"--tun", kernelTUN,
		"--host-addr", "198.18.0.1/24", "--addr", ustackAddr4.String(),
		"--host-addr6", "2001:2::1/64", "--addr6", ustackAddr6.String(),
		"--mtu", "1500", "--offload=" + strconv.FormatBool(offload),
	}
}

// procOutput collects what a child process writes to stdout or stderr;
// line is closed at the first newline.
type procOutput struct {
	mu   sync.Mutex
	b    bytes.Buffer
	line chan struct{}
}

func newProcOutput() *procOutput { return &procOutput{line: make(chan struct{})} }

func (l *procOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	had := bytes.IndexByte(l.b.Bytes(), '\n') >= 0
	n, err := l.b.Write(p)
	if !had && bytes.IndexByte(p, '\n') >= 0 {
		close(l.line)
	}
	return n, err
}

func (l *procOutput) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveProcess is a running `ustack serve`.
type serveProcess struct {
	cmd    *exec.Cmd
	admin  string // its admin socket
	stdout *procOutput
	stderr *procOutput
	exited chan struct{} // closed when the process has been waited for
	err    error         // Wait's result, valid after exited
}

// serveReady is everything `ustack serve` prints on stdout: one line, once
// every listener is open.
const serveReady = "ready " + kernelTUN + " 198.18.0.2\n"

// startServe runs `ustack serve` with the device flags of the test
// namespace plus extra, waits for its ready line and arranges for it to be
// stopped with SIGTERM at the end of the test, which must make it exit 0.
func startServe(t *testing.T, offload bool, extra ...string) *serveProcess {
	t.Helper()
	// A test that leaves a connection open at its end must not wait for
	// the default drain of 30 s (flags repeat: extra may set another).
	srv := launchServe(t, offload, append([]string{"--drain-timeout", "3s"}, extra...)...)
	t.Cleanup(func() { srv.stop(t) })
	return srv
}

// launchServe runs `ustack serve` like startServe and waits for its ready
// line, but leaves stopping it to the caller (Pdeathsig kills it with the
// test process at the latest).
func launchServe(t *testing.T, offload bool, extra ...string) *serveProcess {
	t.Helper()
	// The admin socket goes to a directory of the test's own: the default
	// (/run/ustack/ustack0.sock) is on the file system all namespaces share.
	admin := filepath.Join(t.TempDir(), "admin.sock")
	args := append(append([]string{"serve"}, serveDeviceFlags(offload)...), "--admin", admin)
	args = append(args, extra...)
	cmd := exec.Command(ustackBinary(t), args...)
	// Killed with the test process, whatever happens to it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	srv := &serveProcess{cmd: cmd, admin: admin, stdout: newProcOutput(), stderr: newProcOutput(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = srv.stdout, srv.stderr
	require.NoError(t, cmd.Start())
	go func() {
		srv.err = cmd.Wait()
		close(srv.exited)
	}()
	select {
	case <-srv.stdout.line:
		if got := srv.stdout.String(); got != serveReady {
			_ = cmd.Process.Kill()
			<-srv.exited
			t.Fatalf("ustack serve: stdout %q, want %q; stderr:\n%s", got, serveReady, srv.stderr)
		}
	case <-srv.exited:
		t.Fatalf("ustack serve %s exited before it was ready (%v); stderr:\n%s", strings.Join(args[1:], " "), srv.err, srv.stderr)
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-srv.exited
		t.Fatalf("ustack serve not ready after 15s; stderr:\n%s", srv.stderr)
	}
	return srv
}

// stop sends SIGTERM and requires a clean exit within 10 s.
func (s *serveProcess) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.exited:
		t.Errorf("ustack serve exited on its own (%v); stderr:\n%s", s.err, s.stderr)
		return
	default:
	}
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("ustack serve still running 10s after SIGTERM; stderr:\n%s", s.stderr)
		return
	}
	if s.err != nil {
		t.Errorf("ustack serve exited with %v after SIGTERM, want status 0; stderr:\n%s", s.err, s.stderr)
	}
	if got := s.stdout.String(); got != serveReady {
		t.Errorf("ustack serve's whole stdout: %q, want only %q", got, serveReady)
	}
	// The device goes away with the process.
	if _, err := net.InterfaceByName(kernelTUN); err == nil {
		t.Errorf("%s still exists after ustack serve exited", kernelTUN)
	}
	t.Logf("ustack serve stderr:\n%s", s.stderr)
}

// newKernelStack makes the TUN of the test namespace and a Stack on it,
// closed at the end of the test.
func newKernelStack(t *testing.T, offload bool) *stack.Stack {
	t.Helper()
	dev, err := tun.Create(tun.Options{Name: kernelTUN, MTU: 1500, Offload: offload, HostAddrs: kernelPrefix})
	require.NoError(t, err)
	st, err := stack.New(stack.Options{Links: []tun.Link{dev}, Addrs: []netip.Addr{ustackAddr4, ustackAddr6}})
	if err != nil {
		dev.Close()
		require.NoError(t, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// joinAddrPort formats a for a URL or Dial.
func joinAddrPort(a netip.Addr, port int) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(port))
}

// kernelHTTPClient is an http.Client of the kernel's stack that ignores any
// proxy of the environment (the namespace has no route to one).
func kernelHTTPClient(keepAlive bool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: 64,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}}
}

// bytesPatternPeriod is the period of GET /bytes/N: byte i is i mod 251.
const bytesPatternPeriod = 251

// bytesPatternRef holds the pattern from every phase onwards for one read
// buffer: the bytes at stream offset n are bytesPatternRef[n%251:][:len].
var bytesPatternRef = func() []byte {
	b := make([]byte, bytesPatternPeriod+bytesPatternChunk)
	for i := range b {
		b[i] = byte(i % bytesPatternPeriod)
	}
	return b
}()

// bytesPatternChunk is the read size of checkBytesPattern.
const bytesPatternChunk = 1 << 20

// checkBytesPattern reads r to EOF and returns how many bytes it held and the
// offset of the first byte that is not i mod 251 (-1 if none). It compares
// whole chunks with memcmp speed: a 1 GiB body must not be CPU-bound here.
func checkBytesPattern(r io.Reader) (n, firstBad int64, err error) {
	firstBad = -1
	buf := make([]byte, bytesPatternChunk)
	for {
		m, rerr := r.Read(buf)
		if firstBad < 0 && m > 0 {
			want := bytesPatternRef[n%bytesPatternPeriod:][:m]
			if !bytes.Equal(buf[:m], want) {
				for i := range m {
					if buf[i] != want[i] {
						firstBad = n + int64(i)
						break
					}
				}
			}
		}
		n += int64(m)
		if rerr == io.EOF {
			return n, firstBad, nil
		}
		if rerr != nil {
			return n, firstBad, rerr
		}
	}
}

// seededStream is n deterministic pseudo-random bytes (ChaCha8, seeded by
// seed), fast enough not to matter next to the network.
func seededStream(seed uint64, n int64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// seededBytes is seededStream in memory.
func seededBytes(seed uint64, n int) []byte {
	b, err := io.ReadAll(seededStream(seed, int64(n)))
	if err != nil {
		panic(err)
	}
	return b
}

// seededSHA256 hashes n bytes of seededStream(seed, n).
func seededSHA256(seed uint64, n int64) [32]byte {
	h := sha256.New()
	if _, err := io.Copy(h, seededStream(seed, n)); err != nil {
		panic(err)
	}
	return [32]byte(h.Sum(nil))
}

// fmtThroughput formats a transfer for the test log.
func fmtThroughput(n int64, d time.Duration) string {
	return fmt.Sprintf("%d MiB in %v: %.0f MB/s (%.2f Gbit/s)", n>>20, d.Round(time.Millisecond),
		float64(n)/d.Seconds()/1e6, float64(n)*8/d.Seconds()/1e9)
}

// kernelSocket is one line of `ss -tanH`: the kernel's view of a socket.
type kernelSocket struct {
	State         string // as ss prints it: ESTAB, TIME-WAIT, ...
	Local, Remote netip.AddrPort
}

// kernelSockets lists the kernel's TCP sockets in every state (ss -tanH).
func kernelSockets(t *testing.T) []kernelSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ss", "-tanH", "state", "all").Output()
	require.NoError(t, err, "ss -tanH")
	var socks []kernelSocket
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		local, lerr := parseSSAddr(f[3])
		remote, rerr := parseSSAddr(f[4])
		if lerr != nil || rerr != nil {
			continue // listeners print "*" or "0.0.0.0:*" as the peer
		}
		socks = append(socks, kernelSocket{State: f[0], Local: local, Remote: remote})
	}
	return socks
}

// parseSSAddr parses ss's "198.18.0.1:80" / "[2001:2::1]:80" (which may carry
// a zone as "%ustack0").
func parseSSAddr(s string) (netip.AddrPort, error) {
	if i := strings.Index(s, "%"); i >= 0 {
		if j := strings.LastIndex(s, "]"); j > i {
			s = s[:i] + s[j:]
		}
	}
	return netip.ParseAddrPort(s)
}

// kernelState returns the kernel's state of the socket local→remote, or ""
// when it has none.
func kernelState(t *testing.T, local, remote netip.AddrPort) string {
	t.Helper()
	for _, s := range kernelSockets(t) {
		if s.Local == local && s.Remote == remote {
			return s.State
		}
	}
	return ""
}

// ustackState returns the state of ustack's connection local→remote, or ""
// when its table has none.
func ustackState(st *stack.Stack, local, remote netip.AddrPort) string {
	for _, c := range st.Connections() {
		if c.Local == local && c.Remote == remote {
			return c.State.String()
		}
	}
	return ""
}

// waitState polls cond every 5 ms until it returns true or timeout has
// passed, then fails with the last description cond gave.
func waitState(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		var ok bool
		ok, last = cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: still %s after %v", what, last, timeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// addrPortOf converts the address of a TCP conn (kernel or ustack).
func addrPortOf(a net.Addr) netip.AddrPort {
	ap := a.(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// haveTool reports whether the kernel-side tool name is installed; when it
// is not, the test skips (or fails under USTACK_REQUIRE_NETNS=1, where CI
// installs it) with the Debian package to install.
func haveTool(t *testing.T, name, pkg string) bool {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		netnstest.Unavailable(t, "%s not installed (apt-get install %s)", name, pkg)
		return false
	}
	return true
}
