package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ustack-net/ustack/stack"
)

// patternModulus is the period of the /bytes/N content: byte i is i mod 251.
// A prime period makes misplaced, dropped or duplicated blocks visible.
const patternModulus = 251

// pattern is one full period of the /bytes/N content, repeated to fill a
// write buffer without per-byte work on the hot path.
var pattern = func() []byte {
	b := make([]byte, patternModulus*128)
	for i := range b {
		b[i] = byte(i % patternModulus)
	}
	return b
}()

// servePatternBytes writes n bytes of the i mod 251 pattern to w.
func servePatternBytes(w io.Writer, n int64) (int64, error) {
	var written int64
	for written < n {
		off := int(written % patternModulus)
		chunk := pattern[off : off+(len(pattern)-patternModulus)]
		if rem := n - written; rem < int64(len(chunk)) {
			chunk = chunk[:rem]
		}
		m, err := w.Write(chunk)
		written += int64(m)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// checkPattern reads r to EOF and reports how many bytes it held and the
// offset of the first byte that breaks the i mod 251 pattern (-1 if none).
func checkPattern(r io.Reader) (n int64, firstBad int64, err error) {
	firstBad = -1
	buf := make([]byte, 256<<10)
	for {
		m, rerr := r.Read(buf)
		if firstBad < 0 {
			for i := 0; i < m; i++ {
				if buf[i] != byte((n+int64(i))%patternModulus) {
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

// connTracker holds the live connections of services: it counts them,
// says when one ends, and closes or aborts the rest at shutdown.
type connTracker struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	added   int           // connections ever tracked
	changed chan struct{} // capacity 1: a connection ended
}

func newConnTracker() *connTracker { return &connTracker{changed: make(chan struct{}, 1)} }

func (t *connTracker) add(c net.Conn) {
	t.mu.Lock()
	if t.conns == nil {
		t.conns = make(map[net.Conn]struct{})
	}
	if _, ok := t.conns[c]; !ok {
		t.conns[c] = struct{}{}
		t.added++
	}
	t.mu.Unlock()
}

func (t *connTracker) done(c net.Conn) {
	t.mu.Lock()
	_, ok := t.conns[c]
	delete(t.conns, c)
	t.mu.Unlock()
	if ok {
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
}

// counts returns the connections open now and ever tracked.
func (t *connTracker) counts() (open, added int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns), t.added
}

// closeAll closes every open connection; with abort, each is reset (linger
// 0: a RST, its unsent data discarded) rather than closed with a FIN after
// its data. It returns how many there were.
func (t *connTracker) closeAll(abort bool) int {
	t.mu.Lock()
	conns := make([]net.Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		if l, ok := c.(interface{ SetLinger(int) error }); ok && abort {
			l.SetLinger(0)
		}
		c.Close()
	}
	return len(conns)
}

// connConfigurer is applied to every accepted connection (keepalive, buffers).
type connConfigurer func(net.Conn)

// serveStream accepts connections from l and runs handle on each in its own
// goroutine until l is closed. Connections still open at that point are
// closed. It returns when every handler has returned.
func serveStream(l net.Listener, name string, log *slog.Logger, configure connConfigurer, handle func(net.Conn)) {
	tr := newConnTracker()
	var wg sync.WaitGroup
	acceptStream(l, name, log, configure, handle, tr, &wg)
	tr.closeAll(false)
	wg.Wait()
}

// acceptStream accepts connections from l, tracked in tr, and runs handle
// on each in its own goroutine (counted in wg) until l is closed; the
// connections stay open when it returns.
func acceptStream(l net.Listener, name string, log *slog.Logger, configure connConfigurer, handle func(net.Conn),
	tr *connTracker, wg *sync.WaitGroup) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("accept failed", "service", name, "err", err)
			}
			return
		}
		if configure != nil {
			configure(c)
		}
		tr.add(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tr.done(c)
			defer c.Close()
			handle(c)
		}()
	}
}

// echoHandler is RFC 862: everything received is sent back. The connection is
// closed when the client half-closes or goes away.
//
// The buffer starts small and doubles each time a read fills it, up to
// echoMaxBuf: an idle connection (most of a busy server's) then holds 512
// bytes instead of 64 KiB, and bulk echo still reads 64 KiB at a time.
func echoHandler(c net.Conn) {
	buf := make([]byte, echoMinBuf)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		if n == len(buf) && len(buf) < echoMaxBuf {
			buf = make([]byte, 2*len(buf))
		}
	}
}

// The echo service's read buffer: first size and largest.
const (
	echoMinBuf = 128
	echoMaxBuf = 64 << 10
)

// discardHandler is RFC 863: everything received is thrown away.
func discardHandler(c net.Conn) {
	buf := make([]byte, 256<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// chargenCycle is RFC 864's usual pattern, one full cycle: 95 lines of 72
// printable ASCII characters, each line starting one character later, CRLF
// terminated. Shared by every chargen connection (read only).
var chargenCycle = func() []byte {
	const first, n, width = ' ', 95, 72
	b := make([]byte, 0, n*(width+2))
	for line := range n {
		for i := range width {
			b = append(b, byte(first+(line+i)%n))
		}
		b = append(b, '\r', '\n')
	}
	return b
}()

// chargenHandler is RFC 864: send characters until the client goes away,
// ignoring what it sends. It writes from the shared pattern, so a
// connection costs no buffer of its own; a client that never reads holds
// it blocked in Write (its send buffer full against a zero window).
func chargenHandler(c net.Conn) {
	for {
		if _, err := c.Write(chargenCycle); err != nil {
			return
		}
	}
}

// maxBytesN bounds GET /bytes/N so a typo cannot pin a connection for years.
const maxBytesN = 1 << 40

// newHTTPHandler is the HTTP/1.1 service: GET / (a short text),
// GET /bytes/N (N pattern bytes, streamed) and POST /upload (count and sha256
// of the body).
func newHTTPHandler(addr string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello from ustack at %s: a userspace TCP/IP stack\n", addr)
		fmt.Fprintf(w, "try GET /bytes/N or POST /upload\n")
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 || n > maxBytesN {
			http.Error(w, fmt.Sprintf("N must be an integer from 0 to %d", int64(maxBytesN)), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		servePatternBytes(w, n)
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	})
	return mux
}

// newHTTPServer is the HTTP service's server; its connections are tracked
// in tr.
func newHTTPServer(addr string, log *slog.Logger, configure connConfigurer, tr *connTracker) *http.Server {
	return &http.Server{
		Handler:           newHTTPHandler(addr),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState: func(c net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				if configure != nil {
					configure(c)
				}
				tr.add(c)
			case http.StateHijacked, http.StateClosed:
				tr.done(c)
			}
		},
	}
}

// httpService serves srv on l until ctx is done (then it shuts down,
// giving requests in flight 2 s) or l is closed.
func httpService(ctx context.Context, srv *http.Server, l net.Listener) error {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if srv.Shutdown(sctx) != nil {
				srv.Close()
			}
		case <-done:
		}
	}()
	err := srv.Serve(l)
	close(done)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// service is one of the services `ustack serve` offers, on a port.
type service struct {
	name string // "echo", "discard", "chargen" or "http"
	port int
}

// listenError says which service could not listen.
type listenError struct {
	service
	err error
}

func (e *listenError) Error() string {
	return fmt.Sprintf("listening for %s on port %d: %v", e.name, e.port, e.err)
}

func (e *listenError) Unwrap() error { return e.err }

// serviceSet is a running set of services.
type serviceSet struct {
	listeners []net.Listener
	https     []*http.Server
	conns     *connTracker   // every connection of every service
	handlers  sync.WaitGroup // the stream services' connection goroutines
	done      chan struct{}  // closed when every accept loop has returned
}

// startServices opens a listener for each service with listen and serves it
// until ctx is done or stop or drain is called; addr names the server in
// GET /. On a listen failure the listeners already open are closed and the
// error is a *listenError.
func startServices(ctx context.Context, services []service, listen func(port int) (net.Listener, error),
	addr string, log *slog.Logger, configure connConfigurer) (*serviceSet, error) {
	set := &serviceSet{done: make(chan struct{}), conns: newConnTracker()}
	var wg sync.WaitGroup
	for _, s := range services {
		l, err := listen(s.port)
		if err != nil {
			for _, l := range set.listeners {
				l.Close()
			}
			wg.Wait()
			return nil, &listenError{s, err}
		}
		set.listeners = append(set.listeners, l)
		log.Info("listening", "service", s.name, "port", s.port)
		var srv *http.Server
		if s.name == "http" {
			srv = newHTTPServer(addr, log, configure, set.conns)
			set.https = append(set.https, srv)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch s.name {
			case "echo":
				acceptStream(l, s.name, log, configure, echoHandler, set.conns, &set.handlers)
			case "discard":
				acceptStream(l, s.name, log, configure, discardHandler, set.conns, &set.handlers)
			case "chargen":
				acceptStream(l, s.name, log, configure, chargenHandler, set.conns, &set.handlers)
			case "http":
				if err := httpService(ctx, srv, l); err != nil {
					log.Error("http service stopped", "err", err)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(set.done) }()
	return set, nil
}

// stop closes the listeners and every connection at once and waits up to
// grace for the services to return; it reports whether they did.
func (set *serviceSet) stop(grace time.Duration) bool {
	for _, l := range set.listeners {
		l.Close()
	}
	set.conns.closeAll(false)
	return set.wait(grace)
}

// wait waits up to grace for the accept loops and connection handlers to
// return, and reports whether they did.
func (set *serviceSet) wait(grace time.Duration) bool {
	all := make(chan struct{})
	go func() {
		<-set.done
		set.handlers.Wait()
		close(all)
	}()
	select {
	case <-all:
		return true
	case <-time.After(grace):
		return false
	}
}

// drain stops accepting (the listeners close; HTTP shuts down, closing its
// idle connections and each busy one once its response is done) and lets
// the open connections finish for up to timeout, or until abort is
// closed. Those still open then are aborted (reset). It returns how many
// connections finished during the drain and how many were aborted.
// closed, when set, is called once the listeners are closed, with the
// connections open then.
func (set *serviceSet) drain(timeout time.Duration, abort <-chan struct{}, closed func(open int)) (finished, aborted int) {
	open0, added0 := set.conns.counts()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var shutdowns sync.WaitGroup
	for _, srv := range set.https {
		shutdowns.Add(1)
		go func() {
			defer shutdowns.Done()
			srv.Shutdown(ctx) // closes its listener too
		}()
	}
	for _, l := range set.listeners {
		l.Close()
	}
	if closed != nil {
		open, _ := set.conns.counts()
		closed(open)
	}
	if timeout > 0 {
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
	wait:
		for {
			if open, _ := set.conns.counts(); open == 0 {
				break
			}
			select {
			case <-set.conns.changed:
			case <-deadline.C:
				break wait
			case <-abort:
				break wait
			}
		}
	}
	cancel()
	aborted = set.conns.closeAll(true)
	for _, srv := range set.https {
		srv.Close()
	}
	shutdowns.Wait()
	_, added := set.conns.counts()
	return open0 + added - added0 - aborted, aborted
}

// serveUDPEcho sends every datagram back to its sender (RFC 862, UDP)
// until the socket closes.
func serveUDPEcho(c *stack.UDPConn, log *slog.Logger) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("udp-echo: read", "err", err)
			}
			return
		}
		if _, err := c.WriteToUDPAddrPort(buf[:n], from); err != nil {
			log.Debug("udp-echo: write", "to", from, "err", err)
		}
	}
}
