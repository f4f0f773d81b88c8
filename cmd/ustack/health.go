package main

import (
	"net"
	"net/http"
	"os"
	"sync/atomic"
)

// health is serve's readiness, as GET /healthz on the admin socket says
// it: 503 while starting, 200 once every listener is open, 503 again from
// the first SIGTERM on, while draining.
type health struct {
	state atomic.Int32 // healthStarting, healthReady or healthDraining
}

const (
	healthStarting = iota
	healthReady
	healthDraining
)

// setReady marks serve ready and tells systemd (Type=notify) so.
func (h *health) setReady() {
	h.state.Store(healthReady)
	sdNotify("READY=1")
}

// setDraining marks serve as draining and tells systemd it is stopping.
func (h *health) setDraining() {
	h.state.Store(healthDraining)
	sdNotify("STOPPING=1")
}

// ServeHTTP answers GET /healthz: "ready" (200), or "starting" or
// "draining" (503 Service Unavailable). A nil health is always ready.
func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	state := int32(healthReady)
	if h != nil {
		state = h.state.Load()
	}
	switch state {
	case healthReady:
		w.Write([]byte("ready\n"))
	case healthStarting:
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("starting\n"))
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("draining\n"))
	}
}

// sdNotify sends state to the service manager's notification socket
// ($NOTIFY_SOCKET, sd_notify(3)) when there is one; errors are ignored, as
// sd_notify's callers usually do.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
