// Command demo is `make demo`: it runs `ustack serve` inside a private network
// namespace and exercises it from the kernel side of the TUN — ping, curl, a
// 256 MiB download with its content checked, a 256 MiB upload, an echo
// exchange — over IPv4 and IPv6, printing what each step did and took.
//
// The namespace is created with unshare(CLONE_NEWNET) by re-executing this
// program, so it disappears with the process, even on failure.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	childEnv  = "USTACK_DEMO_IN_NETNS"
	addr4     = "198.18.0.2"
	addr6     = "2001:2::2"
	bulkBytes = 256 << 20
)

func main() {
	bin := flag.String("ustack", "bin/ustack", "path to the ustack binary")
	size := flag.Int64("size", bulkBytes, "bytes to download and upload")
	flag.Parse()
	if os.Getenv(childEnv) == "" {
		os.Exit(parent())
	}
	os.Exit(child(*bin, *size))
}

// parent re-executes the demo in a fresh network namespace.
func parent() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root or CAP_NET_ADMIN (it creates a network namespace and a TUN device); run `sudo make demo`")
		return 1
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "demo: cannot create a private network namespace: %v\n", err)
		return 1
	}
	return 0
}

type step struct {
	name string
	run  func() (string, error)
}

func child(bin string, size int64) int {
	fmt.Printf("demo: private network namespace ready; starting %s serve\n", bin)
	srv, err := startServe(bin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	defer srv.stop()

	var steps []step
	for _, fam := range []struct{ label, addr, ping string }{
		{"IPv4", addr4, "-4"},
		{"IPv6", addr6, "-6"},
	} {
		host := net.JoinHostPort(fam.addr, "80")
		steps = append(steps,
			step{fam.label + " ping -c 3 " + fam.addr, func() (string, error) { return runTool("ping", fam.ping, "-c", "3", "-W", "2", fam.addr) }},
			step{fam.label + " curl http://" + host + "/", func() (string, error) { return runTool("curl", "-sS", "--max-time", "10", "http://"+host+"/") }},
			step{fmt.Sprintf("%s download %d MiB from /bytes/", fam.label, size>>20), func() (string, error) { return download(host, size) }},
			step{fmt.Sprintf("%s upload %d MiB to /upload", fam.label, size>>20), func() (string, error) { return upload(host, size) }},
			step{fam.label + " echo exchange on port 7", func() (string, error) { return echo(net.JoinHostPort(fam.addr, "7")) }},
		)
	}
	failed := 0
	for i, s := range steps {
		start := time.Now()
		out, err := s.run()
		took := time.Since(start).Round(time.Millisecond)
		status := "ok"
		if err != nil {
			status = "FAILED"
			failed++
		}
		fmt.Printf("[%2d/%d] %-40s %-6s %8v  %s\n", i+1, len(steps), s.name, status, took, oneLine(out))
		if err != nil {
			fmt.Printf("        error: %v\n", err)
		}
	}
	if failed > 0 {
		fmt.Printf("demo: %d of %d steps failed\n", failed, len(steps))
		return 1
	}
	fmt.Printf("demo: all %d steps passed\n", len(steps))
	return 0
}

type server struct {
	cmd  *exec.Cmd
	done chan error
}

func startServe(bin string) (*server, error) {
	// A step that failed may leave a connection open: its drain must end
	// well inside stop's 10 s.
	cmd := exec.Command(bin, "serve", "--drain-timeout", "3s")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %v (run `make build` first)", bin, err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "ready ") {
				ready <- line
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	select {
	case line := <-ready:
		fmt.Printf("demo: ustack says %q\n", line)
		return s, nil
	case err := <-s.done:
		return nil, fmt.Errorf("ustack serve exited before it was ready: %v", err)
	case <-time.After(15 * time.Second):
		s.stop()
		return nil, errors.New("ustack serve did not print its ready line within 15s")
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			fmt.Printf("demo: ustack serve exited: %v\n", err)
		} else {
			fmt.Println("demo: ustack serve stopped cleanly")
		}
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		fmt.Println("demo: ustack serve did not stop on SIGTERM; killed")
	}
}

func runTool(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return lastLines(string(out), 1), nil
}

var client = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{DisableCompression: true}}

func download(host string, n int64) (string, error) {
	start := time.Now()
	resp, err := client.Get(fmt.Sprintf("http://%s/bytes/%d", host, n))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	got, bad, err := checkPattern(resp.Body)
	if err != nil {
		return "", err
	}
	if got != n {
		return "", fmt.Errorf("got %d bytes, want %d", got, n)
	}
	if bad >= 0 {
		return "", fmt.Errorf("content differs from the i mod 251 pattern at byte %d", bad)
	}
	return fmt.Sprintf("%d bytes, content checked, %s", got, rate(got, time.Since(start))), nil
}

func upload(host string, n int64) (string, error) {
	h := sha256.New()
	body := io.TeeReader(io.LimitReader(&patternReader{}, n), h)
	start := time.Now()
	req, err := http.NewRequest(http.MethodPost, "http://"+host+"/upload", body)
	if err != nil {
		return "", err
	}
	req.ContentLength = n
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	took := time.Since(start)
	want := fmt.Sprintf("%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	if string(reply) != want {
		return "", fmt.Errorf("server answered %q, want %q", reply, want)
	}
	return fmt.Sprintf("server's sha256 matches, %s", rate(n, took)), nil
}

func echo(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("hello, ustack echo (RFC 862)\n")
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		return "", err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return "", err
	}
	rtt := time.Since(start)
	if !bytes.Equal(got, msg) {
		return "", fmt.Errorf("echoed %q, sent %q", got, msg)
	}
	return fmt.Sprintf("%d bytes echoed in %v", len(got), rtt.Round(time.Microsecond)), nil
}

// patternReader yields the endless i mod 251 pattern of GET /bytes/N.
type patternReader struct{ off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func checkPattern(r io.Reader) (n, firstBad int64, err error) {
	firstBad = -1
	buf := make([]byte, 256<<10)
	for {
		m, rerr := r.Read(buf)
		if firstBad < 0 {
			for i := 0; i < m; i++ {
				if buf[i] != byte((n+int64(i))%251) {
					firstBad = n + int64(i)
					break
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

func rate(n int64, d time.Duration) string {
	return fmt.Sprintf("%.1f MiB/s (%.2f Gbit/s)", float64(n)/d.Seconds()/(1<<20), float64(n)*8/d.Seconds()/1e9)
}

func lastLines(s string, k int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return strings.Join(lines, " | ")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " | ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}
