package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		rc     int
		stderr string
		stdout string
	}{
		{nil, exitUsage, "usage: ustack COMMAND", ""},
		{[]string{"bogus"}, exitUsage, `unknown command "bogus"`, ""},
		{[]string{"help"}, 0, "", "usage: ustack COMMAND"},
		{[]string{"serve", "--help"}, 0, "usage: ustack serve", ""},
		{[]string{"serve", "--nope"}, exitUsage, "flag provided but not defined: -nope", ""},
		{[]string{"serve", "extra"}, exitUsage, `unexpected argument "extra"`, ""},
		{[]string{"serve", "--mtu", "100"}, exitUsage, "--mtu 100: want a value from 576 to 65535", ""},
		{[]string{"serve", "--mtu", "1000"}, exitUsage, "IPv6 needs at least 1280", ""},
		{[]string{"serve", "--cc", "vegas"}, exitUsage, `--cc "vegas": want newreno, cubic, bbr or bbr1`, ""},
		{[]string{"serve", "--keepalive", "1s,2s"}, exitUsage, "want idle,interval,count", ""},
		{[]string{"serve", "--backlog", "0"}, exitUsage, "--backlog 0: want 1-65535", ""},
		{[]string{"serve", "--echo", "70000"}, exitUsage, "--echo 70000: want a port from 1 to 65535", ""},
		{[]string{"serve", "--echo", "80"}, exitUsage, "port 80 in use: --echo and --http both ask for it", ""},
		{[]string{"serve", "--addr", "10.0.0.2"}, exitUsage, "outside --host-addr 198.18.0.1/24", ""},
		{[]string{"serve", "--addr", "198.18.0.1"}, exitUsage, "is the kernel side's address too", ""},
		{[]string{"serve", "--addr", ""}, exitUsage, "--host-addr and --addr go together", ""},
		{[]string{"serve", "--addr", "", "--host-addr", "", "--addr6", "", "--host-addr6", ""}, exitUsage, "no address", ""},
		{[]string{"serve", "--host-addr", "198.18.0.1"}, exitUsage, "want an address with a prefix length", ""},
		{[]string{"serve", "--addr6", "198.18.0.3"}, exitUsage, "must be IPv6 addresses", ""},
		{[]string{"serve", "--tun", "a/b"}, exitUsage, "--tun \"a/b\"", ""},
		{[]string{"dial"}, exitUsage, "want exactly one HOST:PORT", ""},
		{[]string{"dial", "198.18.0.1"}, exitUsage, "want HOST:PORT", ""},
		{[]string{"dial", "--timeout", "-1s", "198.18.0.1:80"}, exitUsage, "--timeout -1s", ""},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			var out, errb bytes.Buffer
			rc := run(tc.args, &out, &errb)
			assert.Equal(t, tc.rc, rc)
			assert.Contains(t, errb.String(), tc.stderr)
			assert.Contains(t, out.String(), tc.stdout)
			if tc.rc != 0 {
				assert.Empty(t, out.String(), "nothing on stdout on a mistake")
			}
		})
	}
}

func TestParseKeepalive(t *testing.T) {
	on, idle, intvl, n, err := parseKeepalive("30s,5s,3")
	require.NoError(t, err)
	assert.Equal(t, []any{true, 30 * time.Second, 5 * time.Second, 3}, []any{on, idle, intvl, n})
	on, _, _, _, err = parseKeepalive("off")
	require.NoError(t, err)
	assert.False(t, on)
	for _, bad := range []string{"", "30s", "30s,5s", "30s,5s,x", "30s,5s,3,4", "x,5s,3", "500ms,5s,3", "30s,5s,0", "30s,5s,200", "30s,5s,3x"} {
		_, _, _, _, err := parseKeepalive(bad)
		assert.Error(t, err, bad)
	}
}

func TestPatternBytes(t *testing.T) {
	for _, n := range []int64{0, 1, 250, 251, 252, int64(len(pattern)), 1<<20 + 7} {
		var b bytes.Buffer
		m, err := servePatternBytes(&b, n)
		require.NoError(t, err)
		require.Equal(t, n, m)
		require.Equal(t, int(n), b.Len())
		for i, c := range b.Bytes() {
			if c != byte(i%251) {
				t.Fatalf("n=%d: byte %d is %d, want %d", n, i, c, i%251)
			}
		}
		got, bad, err := checkPattern(&b)
		require.NoError(t, err)
		assert.Equal(t, n, got)
		assert.Equal(t, int64(-1), bad)
	}
	corrupt := make([]byte, 1000)
	servePatternBytes(bytes.NewBuffer(corrupt[:0]), 1000)
	corrupt[777]++
	_, bad, err := checkPattern(bytes.NewReader(corrupt))
	require.NoError(t, err)
	assert.Equal(t, int64(777), bad)
}

func TestHTTPHandler(t *testing.T) {
	srv := httptest.NewServer(newHTTPHandler("198.18.0.2"))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), "hello from ustack at 198.18.0.2")

	resp, err = http.Get(srv.URL + "/bytes/100000")
	require.NoError(t, err)
	assert.Equal(t, int64(100000), resp.ContentLength)
	n, bad, err := checkPattern(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, int64(100000), n)
	assert.Equal(t, int64(-1), bad)

	for _, p := range []string{"/bytes/-1", "/bytes/x", fmt.Sprintf("/bytes/%d", int64(maxBytesN)+1)} {
		resp, err = http.Get(srv.URL + p)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, p)
	}
	resp, err = http.Get(srv.URL + "/nothing")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	payload := bytes.Repeat([]byte("ustack"), 50000)
	sum := sha256.Sum256(payload)
	resp, err = http.Post(srv.URL+"/upload", "application/octet-stream", bytes.NewReader(payload))
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, fmt.Sprintf("%d %s\n", len(payload), hex.EncodeToString(sum[:])), string(body))

	resp, err = http.Get(srv.URL + "/upload")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestEchoAndDiscardServices(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(net.Conn)
		want    func([]byte) []byte
	}{
		{"echo", echoHandler, func(b []byte) []byte { return b }},
		{"discard", discardHandler, func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			done := make(chan struct{})
			go func() { serveStream(l, tc.name, discardLogger(), nil, tc.handler); close(done) }()
			c, err := net.Dial("tcp", l.Addr().String())
			require.NoError(t, err)
			msg := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 100000)
			go func() {
				c.Write(msg)
				c.(*net.TCPConn).CloseWrite()
			}()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			require.NoError(t, err, "the service closes once the client half-closes")
			assert.Equal(t, len(tc.want(msg)), len(got))
			assert.True(t, bytes.Equal(tc.want(msg), got))
			c.Close()
			l.Close()
			<-done
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
