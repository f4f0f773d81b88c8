package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tcp"
)

// adminDir holds the admin sockets of serve processes that leave --admin
// at its default: one socket per TUN device, DIR/<tun>.sock.
const adminDir = "/run/ustack"

// adminPath resolves an --admin value for the device named tun: empty means
// the default under adminDir, "off" disables the admin API.
func adminPath(flagValue, tun string) string {
	switch flagValue {
	case "":
		return adminDir + "/" + tun + ".sock"
	case "off":
		return ""
	}
	return flagValue
}

// adminConn is one row of GET /conns. The embedded tcp.Info is encoded
// with its Go field names (durations in nanoseconds); its State is
// shadowed by the ss-style name ("ESTAB", "TIME-WAIT").
type adminConn struct {
	Local  netip.AddrPort `json:"local"`
	Remote netip.AddrPort `json:"remote"`
	State  string         `json:"State"`
	tcp.Info
}

// adminConns is the body of GET /conns.
type adminConns struct {
	Conns []adminConn `json:"conns"`
}

// snapshotConns returns the connection table sorted by local, then remote
// address, so listings are stable.
func snapshotConns(st *stack.Stack) []adminConn {
	snaps := st.Connections()
	out := make([]adminConn, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, adminConn{Local: s.Local, Remote: s.Remote, State: s.State.String(), Info: s.Info})
	}
	slices.SortFunc(out, func(a, b adminConn) int {
		return cmp.Or(a.Local.Compare(b.Local), a.Remote.Compare(b.Remote))
	})
	return out
}

// newAdminHandler serves the admin API of st: GET /conns, GET /metrics and
// /debug/pprof/ (on this mux only, never http.DefaultServeMux).
func newAdminHandler(st *stack.Stack, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStatsCollector(st), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /conns", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(adminConns{Conns: snapshotConns(st)}); err != nil {
			log.Debug("admin: writing /conns", "err", err)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ustack admin: GET /conns (JSON), GET /metrics (Prometheus), /debug/pprof/\n")
	})
	return mux
}

// statsCollector exports stack.Stats and the connection table to
// Prometheus, read at scrape time so the data path pays nothing.
type statsCollector struct {
	st       *stack.Stack
	names    []string // Stats.Each order
	counters map[string]*prometheus.Desc
	conns    *prometheus.Desc
	reasm    *prometheus.Desc
	mem      [3]*prometheus.Desc // budget, used, peak
}

// metricName turns a Stats counter name into ustack_<name>_total, keeping
// only characters Prometheus allows.
func metricName(stat string) string {
	b := []byte("ustack_" + stat + "_total")
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

func newStatsCollector(st *stack.Stack) *statsCollector {
	c := &statsCollector{
		st:       st,
		counters: map[string]*prometheus.Desc{},
		conns:    prometheus.NewDesc("ustack_connections", "TCP connections in the table, by state.", []string{"state"}, nil),
		reasm: prometheus.NewDesc("ustack_ip_reassembly_bytes", "Memory IPv4 reassembly holds: now, the peak, and its limit.",
			[]string{"kind"}, nil),
		mem: [3]*prometheus.Desc{
			prometheus.NewDesc("ustack_memory_budget_bytes", "Buffer memory budget of all connections (--mem-budget; 0: none).", nil, nil),
			prometheus.NewDesc("ustack_memory_used_bytes", "Buffer memory charged to the budget now (send, receive, out of order).", nil, nil),
			prometheus.NewDesc("ustack_memory_peak_bytes", "Most buffer memory charged at once.", nil, nil),
		},
	}
	var zero stack.Stats
	zero.Each(func(name string, _ uint64) {
		c.names = append(c.names, name)
		c.counters[name] = prometheus.NewDesc(metricName(name), "ustack stack counter "+name+".", nil, nil)
	})
	return c
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, n := range c.names {
		ch <- c.counters[n]
	}
	ch <- c.conns
	ch <- c.reasm
	for _, d := range c.mem {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	c.st.Stats().Each(func(name string, v uint64) {
		if d, ok := c.counters[name]; ok {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
		}
	})
	// The per-state gauges, not a walk of the table: a scrape of a server
	// with 100,000 connections must not snapshot them all.
	var byState [numTCPStates]int
	for s, n := range c.st.ConnStates() {
		if int(s) < len(byState) {
			byState[s] = n
		}
	}
	for s, n := range byState {
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(n), tcp.State(s).String())
	}
	rUsed, rPeak, rLimit := c.st.ReassemblyMemory()
	ch <- prometheus.MustNewConstMetric(c.reasm, prometheus.GaugeValue, float64(rUsed), "used")
	ch <- prometheus.MustNewConstMetric(c.reasm, prometheus.GaugeValue, float64(rPeak), "peak")
	ch <- prometheus.MustNewConstMetric(c.reasm, prometheus.GaugeValue, float64(rLimit), "limit")
	budget, used, peak := c.st.Memory()
	for i, v := range []int64{budget, used, peak} {
		ch <- prometheus.MustNewConstMetric(c.mem[i], prometheus.GaugeValue, float64(v))
	}
}

// numTCPStates is the number of tcp.State values (CLOSE … TIME-WAIT).
const numTCPStates = int(tcp.StateTimeWait) + 1

// listenAdmin opens the admin unix socket at path: its directory is created
// (0755), a stale socket left by a dead ustack is removed, and a live one
// is an error. The returned cleanup closes the listener and removes the
// socket.
func listenAdmin(path string) (net.Listener, func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("--admin %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, nil, fmt.Errorf("--admin %s: exists and is not a socket; not touching it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, nil, fmt.Errorf("--admin %s: another ustack is serving there (pick another --admin or --tun)", path)
		}
		// Nobody answers: a socket left behind by a process that died.
		if err := os.Remove(path); err != nil {
			return nil, nil, fmt.Errorf("--admin %s: removing stale socket: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("--admin %s: %w", path, err)
	}
	// We remove the socket ourselves (the listener would too, but only
	// when it still owns the name).
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	return l, func() {
		l.Close()
		os.Remove(path) // on the way out; a leftover is removed as stale next time
	}, nil
}

// startAdmin serves the admin API of st on a unix socket at path and
// returns the function that stops it and removes the socket.
func startAdmin(st *stack.Stack, path string, log *slog.Logger) (func(), error) {
	l, cleanup, err := listenAdmin(path)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: newAdminHandler(st, log), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("admin server stopped", "err", err)
		}
	}()
	log.Info("admin listening", "socket", path)
	return func() {
		srv.Close()
		<-done
		cleanup()
	}, nil
}
