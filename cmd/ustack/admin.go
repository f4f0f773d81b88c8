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
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
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

// adminListener is one listener of GET /conns: its bound address ("*"
// for any address of either family, 0.0.0.0 or :: for any of one), its
// queues and its SYN cookie state.
type adminListener struct {
	Addr          string `json:"addr"`
	Port          uint16 `json:"port"`
	State         string `json:"State"` // always LISTEN
	AcceptQueue   int    `json:"accept_queue"`
	Backlog       int    `json:"backlog"`
	SYNQueue      int    `json:"syn_queue"`
	SYNBacklog    int    `json:"syn_backlog"`
	Cookies       bool   `json:"cookies"`
	CookiesActive bool   `json:"cookies_active"`
}

// adminUDP is one UDP socket of GET /conns: ESTAB when connected to a
// peer, UNCONN otherwise (as ss -u), and its receive queue.
type adminUDP struct {
	Addr      string         `json:"addr"` // bound address; "*" for any of both families
	Port      uint16         `json:"port"`
	Remote    netip.AddrPort `json:"remote"`
	State     string         `json:"State"`
	RecvQueue int            `json:"recv_queue"` // bytes charged to the queue
	Datagrams int            `json:"datagrams"`  // datagrams waiting
}

// adminConns is the body of GET /conns: connections, listeners, UDP sockets.
type adminConns struct {
	Conns     []adminConn     `json:"conns"`
	Listeners []adminListener `json:"listeners,omitempty"`
	UDP       []adminUDP      `json:"udp,omitempty"`
}

// snapshotUDP returns the UDP sockets sorted by local, then remote address.
func snapshotUDP(st *stack.Stack) []adminUDP {
	var out []adminUDP
	for _, u := range st.UDPSockets() {
		state := "UNCONN"
		if u.Remote.IsValid() {
			state = "ESTAB"
		}
		addr := "*"
		if u.Local.Addr().IsValid() {
			addr = u.Local.Addr().String()
		}
		out = append(out, adminUDP{Addr: addr, Port: u.Local.Port(), Remote: u.Remote, State: state, RecvQueue: u.RecvQueue, Datagrams: u.Datagrams})
	}
	slices.SortFunc(out, func(a, b adminUDP) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Addr, b.Addr), a.Remote.Compare(b.Remote))
	})
	return out
}

// snapshotListeners returns the listeners sorted by port, then address.
func snapshotListeners(st *stack.Stack) []adminListener {
	var out []adminListener
	for _, l := range st.Listeners() {
		addr := "*"
		if l.Addr.IsValid() {
			addr = l.Addr.String()
		}
		out = append(out, adminListener{Addr: addr, Port: l.Port, State: "LISTEN",
			AcceptQueue: l.AcceptQueue, Backlog: l.Backlog, SYNQueue: l.SYNQueue, SYNBacklog: l.SYNBacklog,
			Cookies: l.Cookies, CookiesActive: l.CookiesActive})
	}
	slices.SortFunc(out, func(a, b adminListener) int { return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Addr, b.Addr)) })
	return out
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

// newAdminHandler serves the admin API of st: GET /conns, GET /metrics,
// GET /healthz (h) and /debug/pprof/ (on this mux only, never
// http.DefaultServeMux).
func newAdminHandler(st *stack.Stack, log *slog.Logger, h *health) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStatsCollector(st), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /conns", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(adminConns{Conns: snapshotConns(st), Listeners: snapshotListeners(st), UDP: snapshotUDP(st)}); err != nil {
			log.Debug("admin: writing /conns", "err", err)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ustack admin: GET /conns (JSON), GET /metrics (Prometheus), GET /healthz, /debug/pprof/\n")
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
	// Per TUN queue (--queues): packets and bytes each way.
	qPackets, qBytes *prometheus.Desc
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
		reasm: prometheus.NewDesc("ustack_ip_reassembly_bytes", "Memory fragment reassembly (IPv4 and IPv6) holds: now, the peak, and its limit.",
			[]string{"kind"}, nil),
		qPackets: prometheus.NewDesc("ustack_queue_packets_total", "IP packets read (rx) and written (tx) per link and TUN queue (--queues).",
			[]string{"link", "queue", "dir"}, nil),
		qBytes: prometheus.NewDesc("ustack_queue_bytes_total", "Bytes of IP packets read (rx) and written (tx) per link and TUN queue.",
			[]string{"link", "queue", "dir"}, nil),
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
	ch <- c.qPackets
	ch <- c.qBytes
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
	for _, q := range c.st.QueueStats() {
		link, queue := strconv.Itoa(q.Link), strconv.Itoa(q.Queue)
		ch <- prometheus.MustNewConstMetric(c.qPackets, prometheus.CounterValue, float64(q.RxPackets), link, queue, "rx")
		ch <- prometheus.MustNewConstMetric(c.qPackets, prometheus.CounterValue, float64(q.TxPackets), link, queue, "tx")
		ch <- prometheus.MustNewConstMetric(c.qBytes, prometheus.CounterValue, float64(q.RxBytes), link, queue, "rx")
		ch <- prometheus.MustNewConstMetric(c.qBytes, prometheus.CounterValue, float64(q.TxBytes), link, queue, "tx")
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

// adminOptions are the settings of the admin socket.
type adminOptions struct {
	// group, when set (--admin-group), makes the socket 0660 with this
	// group; otherwise it is 0600, for the user running serve only.
	group string
	// health answers GET /healthz; nil: always ready.
	health *health
}

// adminGID resolves --admin-group NAME (or a numeric gid) to a gid.
func adminGID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr == nil {
			g, err = user.LookupGroupId(name)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("--admin-group %s: no such group", name)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("--admin-group %s: gid %q is not a number", name, g.Gid)
	}
	return gid, nil
}

// checkAdminDir refuses a socket directory someone other than its owner
// (us or root) could write to: they could replace the socket with their
// own, and `ustack ss` (or a supervisor) would talk to it. Group write is
// allowed for our own group and the admin group.
func checkAdminDir(dir string, adminGroup int) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mode := fi.Mode().Perm()
	switch {
	case int(st.Uid) != os.Geteuid() && st.Uid != 0:
		return fmt.Errorf("directory %s belongs to uid %d, not to us (uid %d) or root: pick a directory of our own", dir, st.Uid, os.Geteuid())
	case mode&0o002 != 0:
		return fmt.Errorf("directory %s is writable by others (mode %04o): anyone could replace the socket; use a directory only we can write (chmod o-w, or another --admin)", dir, mode)
	case mode&0o020 != 0 && int(st.Gid) != os.Getegid() && int(st.Gid) != adminGroup:
		return fmt.Errorf("directory %s is writable by group %d (mode %04o): anyone in it could replace the socket; chmod g-w it or use another --admin", dir, st.Gid, mode)
	}
	return nil
}

// listenAdmin opens the admin unix socket at path, 0600 and owned by the
// running user, or 0660 with o.group: its directory is created (0755) and
// must not be writable by others; a stale socket left by a dead ustack is
// removed, and a live one is an error. The socket is made in a private
// directory, given its mode and group there and then renamed into place,
// so it is never reachable with the umask's permissions. The returned
// cleanup closes the listener and removes the socket.
func listenAdmin(path string, o adminOptions) (net.Listener, func(), error) {
	fail := func(err error) (net.Listener, func(), error) {
		return nil, nil, fmt.Errorf("--admin %s: %w", path, err)
	}
	gid, mode := -1, os.FileMode(0o600)
	if o.group != "" {
		g, err := adminGID(o.group)
		if err != nil {
			return nil, nil, err
		}
		gid, mode = g, 0o660
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	if err := checkAdminDir(dir, gid); err != nil {
		return fail(err)
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
	private, err := os.MkdirTemp(dir, ".ustack-admin-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return fail(err)
	}
	// We remove the socket ourselves (the listener would too, but only
	// when it still owns the name).
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode); err != nil {
		l.Close()
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			l.Close()
			if errors.Is(err, os.ErrPermission) {
				return nil, nil, fmt.Errorf("--admin-group %s: cannot give the socket to that group: we are neither root nor in it", o.group)
			}
			return fail(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return fail(err)
	}
	return l, func() {
		l.Close()
		os.Remove(path) // on the way out; a leftover is removed as stale next time
	}, nil
}

// startAdmin serves the admin API of st on a unix socket at path and
// returns the function that stops it and removes the socket.
func startAdmin(st *stack.Stack, path string, log *slog.Logger, o adminOptions) (func(), error) {
	l, cleanup, err := listenAdmin(path, o)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: newAdminHandler(st, log, o.health), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("admin server stopped", "err", err)
		}
	}()
	log.Info("admin listening", "socket", path, "group", o.group)
	return func() {
		srv.Close()
		<-done
		cleanup()
	}, nil
}
