package integration

// Kernel-peer tests: ustack behind a real TUN device in a private network
// namespace, talking to the Linux kernel's TCP/IP stack, with TUN offloads
// on and off. Each test (or offload-mode subtest) starts with
// netnstest.Enter, which re-runs it in a fresh namespace as root and skips
// it otherwise (fails under USTACK_REQUIRE_NETNS=1).
//
// The services tests run the real `ustack serve` binary, as a user would,
// and use the kernel's clients (Go's net and net/http in this process,
// curl, ping); the active-open and net/http tests drive a Stack in this
// process through its Go API.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun/netnstest"
)

// Sizes of the bulk transfers.
const (
	serveDownloadV4 = 1 << 30   // GET /bytes/N over IPv4
	serveDownloadV6 = 256 << 20 // ... and over IPv6
	serveUploadSize = 256 << 20 // POST /upload, both families
)

// The services of `ustack serve` the tests use (its defaults).
const (
	serveEchoPort    = 7
	serveDiscardPort = 9
	serveHTTPPort    = 80
	serveClosedPort  = 1 // tcpmux (RFC 1078): serve runs nothing there
)

// TestKernelServe runs `ustack serve` and uses its services from the
// kernel: curl and Go GETs, a checked 1 GiB download, checked uploads, echo,
// discard, 200 concurrent clients, a closed port and ping, over IPv4 and
// IPv6.
func TestKernelServe(t *testing.T) {
	for _, m := range kernelModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			startServe(t, m.offload)
			for _, f := range kernelFamilies {
				base := "http://" + joinAddrPort(f.ustack, serveHTTPPort)
				t.Run(f.name+"/curl-get", func(t *testing.T) {
					if !haveTool(t, "curl", "curl") {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					out, err := exec.CommandContext(ctx, "curl", "--silent", "--show-error", "--fail",
						"--noproxy", "*", "--max-time", "10", "--include", base+"/").CombinedOutput()
					require.NoError(t, err, "curl: %s", out)
					head, body, ok := strings.Cut(string(out), "\r\n\r\n")
					head += "\r\n" // every header line ends in CRLF
					require.True(t, ok, "curl output without header/body separator: %q", out)
					assert.True(t, strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n"), "status line: %q", head)
					assert.Contains(t, head, "\r\nContent-Type: text/plain; charset=utf-8")
					assert.Contains(t, head, "\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n")
					assert.True(t, strings.HasPrefix(body, "hello from ustack"), "body %q", body)
				})
				t.Run(f.name+"/go-get", func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					status, hdr, body := kernelGet(ctx, t, kernelHTTPClient(true), base+"/")
					assert.Equal(t, http.StatusOK, status)
					assert.Equal(t, "text/plain; charset=utf-8", hdr.Get("Content-Type"))
					assert.True(t, strings.HasPrefix(string(body), "hello from ustack"), "body %q", body)
					// A bad N is a 400, not a hang.
					status, _, _ = kernelGet(ctx, t, kernelHTTPClient(true), base+"/bytes/-1")
					assert.Equal(t, http.StatusBadRequest, status)
				})
				size := int64(serveDownloadV4)
				if f.kernel.Is6() {
					size = serveDownloadV6
				}
				t.Run(f.name+"/download", func(t *testing.T) {
					kernelDownload(t, base, size, m.name+" "+f.name)
				})
				t.Run(f.name+"/upload", func(t *testing.T) {
					kernelUpload(t, base, serveUploadSize, m.name+" "+f.name)
				})
				t.Run(f.name+"/echo", func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					// 4 MiB: far more than either side's buffers, so the
					// echo must flow while we are still writing.
					kernelEcho(ctx, t, f.ustack, seededBytes(7, 4<<20))
				})
				t.Run(f.name+"/discard", func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					c := kernelDialUstack(ctx, t, f.ustack, serveDiscardPort)
					defer c.Close()
					_, err := io.Copy(c, seededStream(9, 16<<20))
					require.NoError(t, err)
					require.NoError(t, c.(*net.TCPConn).CloseWrite())
					// The server says nothing and closes once it has our FIN.
					require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
					n, err := c.Read(make([]byte, 1))
					assert.Equal(t, 0, n)
					assert.Equal(t, io.EOF, err)
				})
				t.Run(f.name+"/refused", func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					start := time.Now()
					_, err := (&net.Dialer{}).DialContext(ctx, "tcp", joinAddrPort(f.ustack, serveClosedPort))
					require.Error(t, err)
					assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "dial a closed port: %v, want ECONNREFUSED", err)
					// Refused by a RST, not by a timeout.
					assert.Less(t, time.Since(start), 2*time.Second)
				})
				t.Run(f.name+"/ping", func(t *testing.T) {
					if !haveTool(t, "ping", "iputils-ping") {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					args := []string{"-c", "5", "-i", "0.2", "-W", "2", "-s", "1000", f.ustack.String()}
					if f.ustack.Is6() {
						args = append([]string{"-6"}, args...)
					}
					out, err := exec.CommandContext(ctx, "ping", args...).CombinedOutput()
					require.NoError(t, err, "ping %s:\n%s", strings.Join(args, " "), out)
					assert.Contains(t, string(out), "5 packets transmitted, 5 received, 0% packet loss")
					// Every reply carries the 1000-byte payload back.
					assert.Equal(t, 5, strings.Count(string(out), "1008 bytes from "+f.ustack.String()), "%s", out)
				})
			}
			t.Run("concurrent-200", func(t *testing.T) {
				kernelConcurrentClients(t, 200)
			})
		})
	}
}

// kernelGet does a GET and returns the status, header and whole body.
func kernelGet(ctx context.Context, t *testing.T, c *http.Client, url string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "GET %s: body", url)
	return resp.StatusCode, resp.Header, body
}

// kernelDownload fetches /bytes/size and checks every byte of it.
func kernelDownload(t *testing.T, base string, size int64, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/bytes/%d", base, size)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	start := time.Now()
	resp, err := kernelHTTPClient(false).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, size, resp.ContentLength)
	n, bad, err := checkBytesPattern(resp.Body)
	elapsed := time.Since(start)
	require.NoError(t, err, "after %d bytes", n)
	require.Equal(t, size, n)
	require.Equal(t, int64(-1), bad, "first byte off the i mod 251 pattern")
	t.Logf("download %s: %s", what, fmtThroughput(n, elapsed))
}

// kernelUpload POSTs size pseudo-random bytes to /upload and checks the count and
// sha256 the server answers.
func kernelUpload(t *testing.T, base string, size int64, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seed := uint64(size) ^ uint64(len(what))
	sum := seededSHA256(seed, size)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/upload", seededStream(seed, size))
	require.NoError(t, err)
	req.ContentLength = size
	start := time.Now()
	resp, err := kernelHTTPClient(false).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, fmt.Sprintf("%d %s\n", size, hex.EncodeToString(sum[:])), string(body))
	t.Logf("upload %s: %s", what, fmtThroughput(size, elapsed))
}

// kernelDialUstack connects the kernel's TCP to ustack at addr:port.
func kernelDialUstack(ctx context.Context, t *testing.T, addr netip.Addr, port int) net.Conn {
	t.Helper()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", joinAddrPort(addr, port))
	require.NoError(t, err)
	return c
}

// kernelEcho sends payload to the echo service, half-closes and requires
// exactly payload back, then the server's FIN.
func kernelEcho(ctx context.Context, t *testing.T, addr netip.Addr, payload []byte) {
	t.Helper()
	c := kernelDialUstack(ctx, t, addr, serveEchoPort)
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		require.NoError(t, c.SetDeadline(dl))
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	require.NoError(t, <-werr)
	require.Equal(t, len(payload), len(got))
	require.True(t, bytes.Equal(payload, got), "echo returned different bytes")
}

// kernelConcurrentClients starts n kernel clients at once (half IPv4, half IPv6);
// each does an echo exchange and an HTTP GET on connections of its own.
func kernelConcurrentClients(t *testing.T, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := kernelHTTPClient(false)
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		addr := ustackAddr4
		if i%2 == 1 {
			addr = ustackAddr6
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- func() error {
				payload := seededBytes(uint64(1000+i), 1000+37*i)
				c, err := (&net.Dialer{}).DialContext(ctx, "tcp", joinAddrPort(addr, serveEchoPort))
				if err != nil {
					return fmt.Errorf("client %d: echo dial: %w", i, err)
				}
				defer c.Close()
				dl, _ := ctx.Deadline()
				c.SetDeadline(dl)
				if _, err := c.Write(payload); err != nil {
					return fmt.Errorf("client %d: echo write: %w", i, err)
				}
				if err := c.(*net.TCPConn).CloseWrite(); err != nil {
					return fmt.Errorf("client %d: echo shutdown: %w", i, err)
				}
				got, err := io.ReadAll(c)
				if err != nil {
					return fmt.Errorf("client %d: echo read: %w", i, err)
				}
				if !bytes.Equal(got, payload) {
					return fmt.Errorf("client %d: echo returned %d bytes, sent %d (or different ones)", i, len(got), len(payload))
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/bytes/%d", joinAddrPort(addr, serveHTTPPort), 10000+i), nil)
				resp, err := client.Do(req)
				if err != nil {
					return fmt.Errorf("client %d: GET: %w", i, err)
				}
				defer resp.Body.Close()
				m, bad, err := checkBytesPattern(resp.Body)
				switch {
				case err != nil:
					return fmt.Errorf("client %d: GET body: %w", i, err)
				case resp.StatusCode != http.StatusOK || m != int64(10000+i) || bad != -1:
					return fmt.Errorf("client %d: GET: status %d, %d bytes (want %d), first bad byte %d", i, resp.StatusCode, m, 10000+i, bad)
				}
				return nil
			}()
		}()
	}
	begin := time.Now()
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed <= 10 {
				t.Error(err)
			}
		}
	}
	require.Zero(t, failed, "clients failed")
	t.Logf("%d concurrent clients (echo + GET each) done in %v", n, time.Since(begin).Round(time.Millisecond))
}

// TestKernelActiveOpen dials from ustack (stack.Dial) to a kernel listener,
// moves data both ways at once (checked by hash), and closes in both
// orders, checking each side's state through the kernel's `ss` and the
// stack's connection table: the side that closes first passes through
// FIN-WAIT-2 (the other CLOSE-WAIT) and ends in TIME-WAIT; the other side's
// socket disappears.
func TestKernelActiveOpen(t *testing.T) {
	for _, m := range kernelModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			st := newKernelStack(t, m.offload)
			for _, f := range kernelFamilies {
				for _, kernelFirst := range []bool{true, false} {
					name := f.name + "/ustack-closes-first"
					if kernelFirst {
						name = f.name + "/kernel-closes-first"
					}
					t.Run(name, func(t *testing.T) {
						kernelActiveOpen(t, st, f.kernel, kernelFirst)
					})
				}
			}
		})
	}
}

func kernelActiveOpen(t *testing.T, st *stack.Stack, kernel netip.Addr, kernelFirst bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(kernel, 0)))
	require.NoError(t, err)
	defer ln.Close()

	uc, err := st.DialContext(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer uc.Close()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	kc, err := ln.AcceptTCP()
	require.NoError(t, err)
	defer kc.Close()
	dl, _ := ctx.Deadline()
	require.NoError(t, uc.SetDeadline(dl))
	require.NoError(t, kc.SetDeadline(dl))

	uLocal, uRemote := addrPortOf(uc.LocalAddr()), addrPortOf(uc.RemoteAddr())
	kLocal, kRemote := addrPortOf(kc.LocalAddr()), addrPortOf(kc.RemoteAddr())
	require.Equal(t, uLocal, kRemote)
	require.Equal(t, uRemote, kLocal)
	assert.Equal(t, "ESTAB", ustackState(st, uLocal, uRemote))
	assert.Equal(t, "ESTAB", kernelState(t, kLocal, kRemote))

	// Both directions at once, 32 MiB each, every byte hashed.
	const size = 32 << 20
	var up, down hashedPumpResult
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(2)
	go func() { defer wg.Done(); up = hashedPump(1, size, uc, kc) }()
	go func() { defer wg.Done(); down = hashedPump(2, size, kc, uc) }()
	wg.Wait()
	require.NoError(t, up.werr, "ustack write")
	require.NoError(t, up.rerr, "kernel read")
	require.NoError(t, down.werr, "kernel write")
	require.NoError(t, down.rerr, "ustack read")
	require.Equal(t, up.sent, up.got, "ustack→kernel bytes differ")
	require.Equal(t, down.sent, down.got, "kernel→ustack bytes differ")
	t.Logf("both ways at once: %s each way", fmtThroughput(size, time.Since(start)))

	first, second := "ustack", "kernel"
	if kernelFirst {
		first, second = second, first
	}
	states := func() (ustack, kernel string) {
		return ustackState(st, uLocal, uRemote), kernelState(t, kLocal, kRemote)
	}
	want := func(ustackWant, kernelWant string) func() (bool, string) {
		return func() (bool, string) {
			u, k := states()
			return u == ustackWant && k == kernelWant, fmt.Sprintf("ustack %q, kernel %q", u, k)
		}
	}
	expectEOF := func(c net.Conn, who string) {
		n, err := c.Read(make([]byte, 1))
		assert.Equal(t, 0, n, "%s read after the peer's FIN", who)
		assert.Equal(t, io.EOF, err, "%s read after the peer's FIN", who)
	}

	// First close: its FIN is acknowledged, the closer waits in FIN-WAIT-2
	// for the other side, which sits in CLOSE-WAIT.
	if kernelFirst {
		require.NoError(t, kc.Close())
		expectEOF(uc, "ustack")
		waitState(t, 5*time.Second, second+" sees "+first+"'s FIN", want("CLOSE-WAIT", "FIN-WAIT-2"))
		require.NoError(t, uc.Close())
		// RFC 9293 §3.6: the active closer lingers in TIME-WAIT; ustack's
		// side goes LAST-ACK → CLOSED and leaves the table.
		waitState(t, 5*time.Second, "after both closes", want("", "TIME-WAIT"))
	} else {
		require.NoError(t, uc.Close())
		expectEOF(kc, "kernel")
		waitState(t, 5*time.Second, second+" sees "+first+"'s FIN", want("FIN-WAIT-2", "CLOSE-WAIT"))
		require.NoError(t, kc.Close())
		waitState(t, 5*time.Second, "after both closes", want("TIME-WAIT", ""))
	}
}

// hashedPumpResult is what hashedPump saw: hashes of the bytes written and read.
type hashedPumpResult struct {
	sent, got  [32]byte
	werr, rerr error
}

// hashedPump writes size pseudo-random bytes to w while reading size bytes from
// r, hashing both.
func hashedPump(seed uint64, size int64, w, r net.Conn) hashedPumpResult {
	var res hashedPumpResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h := sha256.New()
		_, res.werr = io.Copy(w, io.TeeReader(seededStream(seed, size), h))
		res.sent = [32]byte(h.Sum(nil))
	}()
	h := sha256.New()
	_, res.rerr = io.CopyN(h, r, size)
	res.got = [32]byte(h.Sum(nil))
	wg.Wait()
	return res
}

// TestKernelHTTP runs net/http unchanged on ustack: an http.Server on a
// stack listener with the kernel's http.Client, and an http.Server on a
// kernel listener with an http.Client whose Transport dials through ustack.
func TestKernelHTTP(t *testing.T) {
	for _, m := range kernelModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			st := newKernelStack(t, m.offload)
			t.Run("server-on-ustack", func(t *testing.T) {
				ln, err := st.Listen("tcp", ":0")
				require.NoError(t, err)
				port := ln.Addr().(*net.TCPAddr).Port
				srv := &http.Server{Handler: kernelHTTPHandler()}
				served := make(chan error, 1)
				go func() { served <- srv.Serve(ln) }()
				for _, f := range kernelFamilies {
					t.Run(f.name, func(t *testing.T) {
						exerciseKernelHTTP(t, kernelHTTPClient(true), "http://"+joinAddrPort(f.ustack, port), f.kernel)
					})
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				require.NoError(t, srv.Shutdown(ctx))
				require.ErrorIs(t, <-served, http.ErrServerClosed)
			})
			t.Run("client-on-ustack", func(t *testing.T) {
				client := &http.Client{Transport: &http.Transport{
					Proxy:       nil,
					DialContext: st.DialContext,
				}}
				for _, f := range kernelFamilies {
					t.Run(f.name, func(t *testing.T) {
						ln, err := net.Listen("tcp", joinAddrPort(f.kernel, 0))
						require.NoError(t, err)
						srv := &http.Server{Handler: kernelHTTPHandler()}
						served := make(chan error, 1)
						go func() { served <- srv.Serve(ln) }()
						exerciseKernelHTTP(t, client, "http://"+ln.Addr().String(), f.ustack)
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						defer cancel()
						client.CloseIdleConnections()
						require.NoError(t, srv.Shutdown(ctx))
						require.ErrorIs(t, <-served, http.ErrServerClosed)
					})
				}
			})
		})
	}
}

// kernelHTTPHandler is the server side of exerciseKernelHTTP: GET /peer answers the
// client's address, POST /sum the count and sha256 of the body, GET
// /bytes/N the i mod 251 pattern.
func kernelHTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /peer", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	})
	mux.HandleFunc("POST /sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		for n > 0 {
			k := min(n, bytesPatternChunk)
			w.Write(bytesPatternRef[:k])
			n -= k
			// bytesPatternRef[:k] ends at phase k mod 251; restart in phase.
			if k%bytesPatternPeriod != 0 && n > 0 {
				k2 := min(n, bytesPatternPeriod-k%bytesPatternPeriod)
				w.Write(bytesPatternRef[k%bytesPatternPeriod:][:k2])
				n -= k2
			}
		}
	})
	return mux
}

// exerciseKernelHTTP uses the kernelHTTPHandler server at base through client:
// three GETs on one kept-alive connection (the server must see the client at
// clientAddr), a checked 8 MiB POST and a checked 64 MiB GET.
func exerciseKernelHTTP(t *testing.T, client *http.Client, base string, clientAddr netip.Addr) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conns []string
	for i := range 3 {
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			reused = info.Reused
			conns = append(conns, info.Conn.LocalAddr().String())
		}}
		status, _, body := kernelGet(httptrace.WithClientTrace(ctx, trace), t, client, base+"/peer")
		require.Equal(t, http.StatusOK, status)
		peer, err := netip.ParseAddrPort(string(body))
		require.NoError(t, err, "server saw %q", body)
		assert.Equal(t, clientAddr, peer.Addr().Unmap(), "client address as the server sees it")
		assert.Equal(t, conns[0], peer.String(), "server's view of the client's port")
		assert.Equal(t, i > 0, reused, "request %d reused a kept-alive connection", i)
	}
	assert.Equal(t, []string{conns[0], conns[0], conns[0]}, conns, "one connection for three requests")

	const postSize = 8 << 20
	sum := seededSHA256(3, postSize)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/sum", seededStream(3, postSize))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("%d %x", postSize, sum), string(body))

	const getSize = 64<<20 + 12345
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/bytes/%d", base, getSize), nil)
	require.NoError(t, err)
	start := time.Now()
	resp, err = client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	n, bad, err := checkBytesPattern(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, int64(getSize), n)
	assert.Equal(t, int64(-1), bad, "first byte off the pattern")
	t.Logf("GET %d bytes: %s", getSize, fmtThroughput(n, time.Since(start)))
}

// TestKernelDial runs the `ustack dial` binary against kernel listeners:
// stdin goes to the connection and its EOF half-closes it, the kernel's
// answer comes out on stdout, and the exit status is 0; a port nothing
// listens on makes it exit 1 saying the connection was refused.
func TestKernelDial(t *testing.T) {
	for _, m := range kernelModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			for _, f := range kernelFamilies {
				t.Run(f.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					// The kernel's address appears only when `ustack dial` has
					// made the device: listen on the wildcard address.
					ln, port := wildcardListener(t, f.kernel)
					defer ln.Close()
					target := joinAddrPort(f.kernel, port)

					const inSize, outSize = 3<<20 + 17, 5<<20 + 3
					in := seededBytes(11, inSize)
					reply := seededBytes(12, outSize)
					type seen struct {
						got           []byte
						local, remote netip.AddrPort
						err           error
					}
					kernel := make(chan seen, 1)
					go func() {
						var s seen
						defer func() { kernel <- s }()
						ln.SetDeadline(time.Now().Add(20 * time.Second))
						c, err := ln.AcceptTCP()
						if err != nil {
							s.err = err
							return
						}
						defer c.Close()
						c.SetDeadline(time.Now().Add(20 * time.Second))
						s.local, s.remote = addrPortOf(c.LocalAddr()), addrPortOf(c.RemoteAddr())
						// Read to ustack's FIN (the half-close on stdin's EOF),
						// then answer and close.
						if s.got, s.err = io.ReadAll(c); s.err != nil {
							return
						}
						if _, s.err = c.Write(reply); s.err != nil {
							return
						}
						s.err = c.Close()
					}()

					var stdout bytes.Buffer
					stderr := newProcOutput()
					cmd := exec.CommandContext(ctx, ustackBinary(t), append(ustackDialArgs(m.offload), target)...)
					cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, stderr
					err := cmd.Run()
					require.NoError(t, err, "ustack dial %s; stderr:\n%s", target, stderr)
					assert.Equal(t, 0, cmd.ProcessState.ExitCode())
					s := <-kernel
					require.NoError(t, s.err, "kernel side")
					assert.Equal(t, f.ustack, s.remote.Addr(), "the kernel's peer is ustack's address")
					assert.True(t, bytes.Equal(in, s.got), "kernel got %d bytes, stdin had %d (or different ones)", len(s.got), len(in))
					assert.True(t, bytes.Equal(reply, stdout.Bytes()), "stdout got %d bytes, the kernel sent %d (or different ones)", stdout.Len(), len(reply))
					assert.Empty(t, stderr.String(), "stderr of a clean run")
					// ustack closed first (stdin's EOF), so the kernel's side
					// went CLOSE-WAIT → LAST-ACK and is gone once ustack has
					// acknowledged its FIN: a socket stuck in LAST-ACK would
					// mean the binary exited without doing so.
					local := netip.AddrPortFrom(f.kernel, uint16(port))
					require.Equal(t, local, s.local, "the accepted socket's address")
					waitState(t, 5*time.Second, "the kernel's socket after ustack dial exited", func() (bool, string) {
						st := kernelState(t, local, s.remote)
						return st == "", fmt.Sprintf("%q", st)
					})
				})
				t.Run(f.name+"/refused", func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					// A port that was just in use and is now closed.
					ln, port := wildcardListener(t, f.kernel)
					target := joinAddrPort(f.kernel, port)
					ln.Close()

					var stdout bytes.Buffer
					stderr := newProcOutput()
					cmd := exec.CommandContext(ctx, ustackBinary(t), append(ustackDialArgs(m.offload), target)...)
					cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader("never sent\n"), &stdout, stderr
					start := time.Now()
					err := cmd.Run()
					var exit *exec.ExitError
					require.ErrorAs(t, err, &exit, "ustack dial to a closed port; stderr:\n%s", stderr)
					assert.Equal(t, 1, exit.ExitCode())
					assert.Equal(t, "ustack dial: "+target+": connection refused (nothing listens on that port)\n", stderr.String())
					assert.Zero(t, stdout.Len(), "stdout")
					assert.Less(t, time.Since(start), 10*time.Second, "refused by the kernel's RST, not a timeout")
				})
			}
		})
	}
}

// ustackDialArgs are the arguments of `ustack dial` before HOST:PORT.
func ustackDialArgs(offload bool) []string {
	return append([]string{"dial"}, serveDeviceFlags(offload)...)
}

// wildcardListener listens on every address of a's family and returns the
// port it got.
func wildcardListener(t *testing.T, a netip.Addr) (*net.TCPListener, int) {
	t.Helper()
	network, any := "tcp4", netip.IPv4Unspecified()
	if a.Is6() {
		network, any = "tcp6", netip.IPv6Unspecified()
	}
	ln, err := net.ListenTCP(network, net.TCPAddrFromAddrPort(netip.AddrPortFrom(any, 0)))
	require.NoError(t, err)
	return ln, ln.Addr().(*net.TCPAddr).Port
}
