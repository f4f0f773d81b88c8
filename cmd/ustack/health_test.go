package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// /healthz is 503 "starting", 200 "ready", then 503 "draining"; and each
// change reaches systemd's notification socket.
func TestHealthz(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	require.NoError(t, err)
	defer nl.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	notified := func() string {
		t.Helper()
		buf := make([]byte, 256)
		require.NoError(t, nl.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := nl.Read(buf)
		require.NoError(t, err)
		return string(buf[:n])
	}

	srv, _ := stackPair(t)
	var hl health
	h := newAdminHandler(srv, discardLogger(), &hl)
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "starting\n", body)
	hl.setReady()
	assert.Equal(t, "READY=1", notified())
	code, body = get()
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready\n", body)
	hl.setDraining()
	assert.Equal(t, "STOPPING=1", notified())
	code, body = get()
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "draining\n", body)

	// Without a health (tests, embedders) the socket is simply ready.
	rec := httptest.NewRecorder()
	newAdminHandler(srv, discardLogger(), nil).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
}
