package stack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// connPair returns a connected client (on p.a) and server (on p.b) conn.
func connPair(t *testing.T, p *pair) (cli, srv *Conn) {
	t.Helper()
	ln, err := p.b.ListenBacklog("tcp", ":5000", 8)
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan *Conn, 1)
	go func() {
		c, _ := ln.AcceptConn()
		got <- c
	}()
	c, err := p.a.Dial("tcp", "198.18.0.2:5000")
	require.NoError(t, err)
	s := <-got
	require.NotNil(t, s)
	return c.(*Conn), s
}

func TestCloseOrdersAndErrors(t *testing.T) {
	t.Run("fin gives EOF then ErrClosed after Close", func(t *testing.T) {
		p := newPair(t, nil)
		cli, srv := connPair(t, p)
		_, err := srv.Write([]byte("bye"))
		require.NoError(t, err)
		require.NoError(t, srv.Close())
		b, err := io.ReadAll(cli)
		require.NoError(t, err)
		require.Equal(t, "bye", string(b))
		n, err := cli.Read(make([]byte, 1))
		require.Equal(t, 0, n)
		require.Equal(t, io.EOF, err)
		require.NoError(t, cli.Close())
		_, err = cli.Read(make([]byte, 1))
		require.ErrorIs(t, err, net.ErrClosed)
		_, err = cli.Write([]byte("x"))
		require.ErrorIs(t, err, net.ErrClosed)
		require.ErrorIs(t, cli.Close(), net.ErrClosed)
		var oe *net.OpError
		require.True(t, errors.As(err, &oe))
		require.Equal(t, "write", oe.Op)
	})
	t.Run("linger 0 resets the peer", func(t *testing.T) {
		p := newPair(t, nil)
		cli, srv := connPair(t, p)
		require.NoError(t, srv.SetLinger(0))
		require.NoError(t, srv.Close())
		_, err := cli.Read(make([]byte, 1))
		require.ErrorIs(t, err, syscall.ECONNRESET)
		var se *os.SyscallError
		require.True(t, errors.As(err, &se))
		require.Equal(t, "read", se.Syscall)
		// The error is sticky; writes fail too.
		_, err = cli.Write([]byte("x"))
		require.Error(t, err)
		cli.Close()
	})
	t.Run("close with unread data sends RST", func(t *testing.T) {
		p := newPair(t, nil)
		cli, srv := connPair(t, p)
		_, err := cli.Write([]byte("unread"))
		require.NoError(t, err)
		require.Eventually(t, func() bool { return srv.Info().Readable == 6 }, 5*time.Second, time.Millisecond)
		require.NoError(t, srv.Close())
		_, err = cli.Read(make([]byte, 1))
		require.ErrorIs(t, err, syscall.ECONNRESET)
		cli.Close()
	})
	t.Run("write after CloseWrite is EPIPE, peer sees EOF", func(t *testing.T) {
		p := newPair(t, nil)
		cli, srv := connPair(t, p)
		require.NoError(t, cli.CloseWrite())
		_, err := cli.Write([]byte("x"))
		require.ErrorIs(t, err, syscall.EPIPE)
		_, err = srv.Read(make([]byte, 1))
		require.Equal(t, io.EOF, err)
		// Half-closed: the other direction still works.
		_, err = srv.Write([]byte("still"))
		require.NoError(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(cli, buf)
		require.NoError(t, err)
		require.Equal(t, "still", string(buf))
		srv.Close()
		cli.Close()
	})
	t.Run("CloseRead reads what is queued, then EOF", func(t *testing.T) {
		// Linux's SHUT_RD: queued data stays readable, then Read gives
		// EOF instead of blocking (data arriving later is kept too: the
		// drill's shutdown-rd-wr-close.pkt on the stack DUT).
		p := newPair(t, nil)
		cli, srv := connPair(t, p)
		_, err := srv.Write([]byte("kept"))
		require.NoError(t, err)
		buf := make([]byte, 2)
		_, err = io.ReadFull(cli, buf) // one segment: "pt" is queued now
		require.NoError(t, err)
		require.NoError(t, cli.CloseRead())
		buf = make([]byte, 8)
		n, err := cli.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "pt", string(buf[:n]))
		_, err = cli.Read(buf)
		require.Equal(t, io.EOF, err)
		srv.Close()
		cli.Close()
	})
	t.Run("refused", func(t *testing.T) {
		p := newPair(t, nil)
		_, err := p.a.Dial("tcp", "198.18.0.2:1")
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		var oe *net.OpError
		require.True(t, errors.As(err, &oe))
		require.Equal(t, "dial", oe.Op)
		var se *os.SyscallError
		require.True(t, errors.As(err, &se))
		require.Equal(t, "connect", se.Syscall)
		_, err = p.a.Dial("tcp6", "[2001:2::2]:1")
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
	})
	t.Run("dial context cancelled", func(t *testing.T) {
		p := newPair(t, nil)
		// Nobody answers for 198.18.0.3: the SYN is dropped as not for us.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := p.a.DialContext(ctx, "tcp", "198.18.0.3:80")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var ne net.Error
		require.True(t, errors.As(err, &ne))
		require.True(t, ne.Timeout())
		require.Equal(t, 0, p.a.NumConns())
	})
}

func TestDeadlines(t *testing.T) {
	p := newPair(t, nil)
	cli, srv := connPair(t, p)
	// The deadline is taken before it is set, so a descheduling between
	// the two calls cannot make the Read look early.
	deadline := time.Now().Add(30 * time.Millisecond)
	require.NoError(t, cli.SetReadDeadline(deadline))
	_, err := cli.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.False(t, time.Now().Before(deadline), "Read returned before its deadline")
	var ne net.Error
	require.True(t, errors.As(err, &ne))
	require.True(t, ne.Timeout())
	var oe *net.OpError
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "read", oe.Op)
	// Still expired until moved.
	_, err = cli.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, cli.SetReadDeadline(time.Time{}))
	_, err = srv.Write([]byte("z"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = cli.Read(b)
	require.NoError(t, err)
	require.Equal(t, "z", string(b))

	// A deadline in the past interrupts a blocked Read (net/http does this).
	errc := make(chan error, 1)
	go func() {
		_, err := cli.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, cli.SetReadDeadline(time.Unix(1, 0)))
	require.ErrorIs(t, <-errc, os.ErrDeadlineExceeded)

	// Write deadline: the server does not read, buffers fill, Write times out.
	require.NoError(t, cli.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	n, err := cli.Write(make([]byte, 64<<20))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Greater(t, n, 0)
	require.Less(t, n, 64<<20)
	cli.SetLinger(0)
	cli.Close()
	srv.Close()
}

func TestHTTPOverStack(t *testing.T) {
	p := newPair(t, nil)
	ln, err := p.b.Listen("tcp", ":80")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.RemoteAddr)
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	})
	srv := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	tr := &http.Transport{DialContext: p.a.DialContext, MaxIdleConnsPerHost: 4}
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for i := range 20 {
		resp, err := client.Get("http://198.18.0.2/hello")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "request %d", i)
		require.True(t, strings.HasPrefix(string(body), "hello 198.18.0.1:"), string(body))
	}
	const n = 8 << 20
	resp, err := client.Post("http://[2001:2::2]/upload", "application/octet-stream", &patternReader{n: n})
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	sum := patternSum(n)
	require.Equal(t, fmt.Sprintf("%d %s\n", n, hex.EncodeToString(sum[:])), string(body))

	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.ErrorIs(t, <-served, http.ErrServerClosed)
}

// TestSynTimeoutVirtualTime: a SYN into a black hole is retransmitted with
// exponential backoff and the Dial fails with ETIMEDOUT, all in virtual time.
func TestSynTimeoutVirtualTime(t *testing.T) {
	clk := NewManualClock(0)
	r := newRawPeer(t, func(o *Options) { o.Clock = clk })
	errc := make(chan error, 1)
	go func() {
		_, err := r.s.Dial("tcp", "198.18.0.1:80")
		errc <- err
	}()
	dst := netip.MustParseAddrPort("198.18.0.1:80")
	src, d, first := parseTCP(t, r.recv())
	require.Equal(t, dst, d)
	require.Equal(t, tcp.FlagSYN, first.Flags)
	// Linux: 6 retries at 1, 2, 4, 8, 16, 32 s, failure 64 s later.
	for i, gap := range []time.Duration{1, 2, 4, 8, 16, 32} {
		clk.Advance(gap*time.Second - time.Millisecond)
		r.none()
		clk.Advance(time.Millisecond)
		seg := r.expectTCPAny(src, dst)
		require.Equal(t, tcp.FlagSYN, seg.Flags, "retry %d", i+1)
		require.Equal(t, first.Seq, seg.Seq)
	}
	clk.Advance(64 * time.Second)
	select {
	case err := <-errc:
		require.ErrorIs(t, err, syscall.ETIMEDOUT)
	case <-time.After(5 * time.Second):
		t.Fatal("dial did not time out")
	}
	require.Equal(t, 0, r.s.NumConns())
}

func netKeepAlive(idle, interval time.Duration, count int) net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: idle, Interval: interval, Count: count}
}

// Options.TCP carries the auto-tuning ceilings to every connection, and
// SetReadBuffer/SetWriteBuffer lock a size as SO_RCVBUF/SO_SNDBUF do: a
// transfer through the locked receiver leaves its buffer where it was set.
func TestBufferAutoTuneOptionsAndLock(t *testing.T) {
	p := newPair(t, func(o *Options) {
		o.TCP.RecvBufferMax = 2 << 20
		o.TCP.SendBufferMax = 1 << 20
	})
	cli, srv := connPair(t, p)
	in := srv.Info()
	require.Equal(t, 2<<20, in.RcvBufMax)
	require.Equal(t, 1<<20, in.SndBufMax)
	require.Equal(t, tcp.DefaultBufferSize, in.RcvBuf)
	require.Equal(t, int8(8), in.RcvWScale, "the window scale covers 8 MiB")

	require.NoError(t, srv.SetReadBuffer(100000))
	require.NoError(t, cli.SetWriteBuffer(50000))
	in = srv.Info()
	require.Equal(t, 100000, in.RcvBuf)
	require.Equal(t, 100000, in.RcvBufMax)
	require.Equal(t, 50000, cli.Info().SndBufMax)

	payload := make([]byte, 4<<20)
	for i := range payload {
		payload[i] = byte(i * 31)
	}
	go func() {
		cli.Write(payload)
		cli.CloseWrite()
	}()
	got, err := io.ReadAll(srv)
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(payload), sha256.Sum256(got))
	require.Equal(t, 100000, srv.Info().RcvBuf)
	require.Equal(t, 50000, cli.Info().SndBuf)
	require.Zero(t, srv.Info().RcvSpace, "no tuning on a locked buffer")
}

// The memory sweep (run when the budget refuses a charge) takes the storage
// of idle connections that grew their buffers in a transfer.
func TestMemorySweepFreesIdleBuffers(t *testing.T) {
	p := newPair(t, nil)
	cli, srv := connPair(t, p)
	payload := make([]byte, 8<<20)
	go func() {
		cli.Write(payload)
	}()
	_, err := io.ReadFull(srv, make([]byte, len(payload)))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return cli.Info().Unacked == 0 }, 5*time.Second, time.Millisecond)
	_, used, _ := p.b.Memory()
	_, cliUsed, _ := p.a.Memory()
	require.Positive(t, used+cliUsed, "storage held after the transfer")
	p.a.memSweep()
	p.b.memSweep()
	_, used, _ = p.b.Memory()
	_, cliUsed, _ = p.a.Memory()
	require.Zero(t, used, "receiver")
	require.Zero(t, cliUsed, "sender")
	require.Zero(t, srv.Info().RcvAlloc)
	require.Zero(t, cli.Info().SndAlloc)
	require.Equal(t, uint64(1), p.b.stats.TCPMemSweeps.Load())
}
