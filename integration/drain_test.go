package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tun/netnstest"
)

// drainDownload is the download in flight when SIGTERM arrives.
const drainDownload = 64 << 20

// TestServeDrain stops `ustack serve` with SIGTERM while a download is in
// flight and a client that never reads holds a response: the listeners
// close at once (a new client is refused), the download completes with
// every byte right, the non-reader is reset at --drain-timeout, the log
// counts one finished and one aborted, and the device is gone. A second
// signal ends a long drain at once. The admin socket's /healthz says
// ready before the signal and draining after it.
func TestServeDrain(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	base := "http://" + joinAddrPort(ustackAddr4, serveHTTPPort)

	t.Run("finish-and-cut", func(t *testing.T) {
		const drain = 4 * time.Second
		srv := launchServe(t, true, "--drain-timeout", drain.String())
		stuck := drainNonReader(t)
		defer stuck.Close()

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/bytes/%d", base, drainDownload), nil)
		require.NoError(t, err)
		resp, err := kernelHTTPClient(false).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		head := make([]byte, 1<<20)
		_, err = io.ReadFull(resp.Body, head)
		require.NoError(t, err)

		// SIGTERM with the download a sixty-fourth done.
		sent := time.Now()
		require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
		waitStderr(t, srv, "draining: stopped accepting")
		_, err = (&net.Dialer{}).DialContext(ctx, "tcp", joinAddrPort(ustackAddr4, serveEchoPort))
		assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "a new client while draining: %v, want ECONNREFUSED", err)

		n, bad, err := checkBytesPattern(io.MultiReader(bytes.NewReader(head), resp.Body))
		require.NoError(t, err, "the download in flight at SIGTERM, after %d bytes", n)
		require.Equal(t, int64(drainDownload), n)
		require.Equal(t, int64(-1), bad, "first byte off the i mod 251 pattern")
		done := time.Since(sent)
		assert.Less(t, done, drain, "the download finished inside the drain")

		exited := waitExit(t, srv, drain+10*time.Second)
		took := exited.Sub(sent)
		assert.GreaterOrEqual(t, took, drain, "serve waited for the non-reader until --drain-timeout")
		assert.Less(t, took, drain+5*time.Second)
		assert.Contains(t, srv.stderr.String(), "msg=drained finished=1 aborted=1")

		// The non-reader was cut: its response ends early, with a reset.
		require.NoError(t, stuck.SetReadDeadline(time.Now().Add(10*time.Second)))
		got, err := io.Copy(io.Discard, stuck)
		assert.Less(t, got, int64(1<<30), "the non-reader's response was cut")
		assert.True(t, errors.Is(err, syscall.ECONNRESET), "the non-reader's read: %v, want ECONNRESET", err)
		t.Logf("download done %v after SIGTERM; serve exited after %v; the non-reader had %d bytes", done.Round(time.Millisecond), took.Round(time.Millisecond), got)
	})

	t.Run("second-signal", func(t *testing.T) {
		srv := launchServe(t, true, "--drain-timeout", "1m")
		stuck := drainNonReader(t)
		defer stuck.Close()
		code, body := adminHealth(t, srv)
		assert.Equal(t, http.StatusOK, code, "healthz once ready")
		assert.Equal(t, "ready\n", body)
		require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
		waitStderr(t, srv, "draining: stopped accepting")
		code, body = adminHealth(t, srv)
		assert.Equal(t, http.StatusServiceUnavailable, code, "healthz while draining")
		assert.Equal(t, "draining\n", body)
		sent := time.Now()
		require.NoError(t, srv.cmd.Process.Signal(syscall.SIGINT))
		exited := waitExit(t, srv, 10*time.Second)
		assert.Less(t, exited.Sub(sent), 3*time.Second, "the second signal ends the drain at once")
		assert.Contains(t, srv.stderr.String(), "second signal")
		assert.Contains(t, srv.stderr.String(), "msg=drained finished=0 aborted=1")
	})
}

// drainNonReader asks for a 1 GiB response, reads its status line (so the
// handler is running) and then never reads again.
func drainNonReader(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", joinAddrPort(ustackAddr4, serveHTTPPort), 10*time.Second)
	require.NoError(t, err)
	_, err = fmt.Fprintf(c, "GET /bytes/%d HTTP/1.1\r\nHost: ustack\r\n\r\n", 1<<30)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	status := make([]byte, len("HTTP/1.1 200"))
	_, err = io.ReadFull(c, status)
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 200", string(status))
	return c
}

// adminHealth asks serve's admin socket for GET /healthz.
func adminHealth(t *testing.T, srv *serveProcess) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", srv.admin)
		}}}
	resp, err := c.Get("http://ustack/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// waitStderr waits until serve's stderr contains s.
func waitStderr(t *testing.T, srv *serveProcess, s string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(srv.stderr.String(), s) {
			return
		}
	}
	t.Fatalf("ustack serve never logged %q; stderr:\n%s", s, srv.stderr)
}

// waitExit waits up to limit for serve to exit, requires status 0 and the
// device gone, and returns when it exited.
func waitExit(t *testing.T, srv *serveProcess, limit time.Duration) time.Time {
	t.Helper()
	select {
	case <-srv.exited:
	case <-time.After(limit):
		_ = srv.cmd.Process.Kill()
		<-srv.exited
		t.Fatalf("ustack serve still running %v after SIGTERM; stderr:\n%s", limit, srv.stderr)
	}
	at := time.Now()
	require.NoError(t, srv.err, "ustack serve's exit; stderr:\n%s", srv.stderr)
	_, err := net.InterfaceByName(kernelTUN)
	require.Error(t, err, "%s still exists after ustack serve exited", kernelTUN)
	t.Logf("ustack serve stderr:\n%s", srv.stderr)
	return at
}
