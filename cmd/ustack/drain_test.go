package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// drain closes the listeners at once, lets an echo client finish and an
// HTTP response in flight complete, and resets a chargen client that
// never reads when the drain is cut short; it counts both kinds.
func TestServicesDrain(t *testing.T) {
	srv, cli := stackPair(t)
	listen := func(port int) (net.Listener, error) { return srv.ListenBacklog("tcp", fmt.Sprintf(":%d", port), 16) }
	set, err := startServices(context.Background(), []service{{"echo", 7}, {"chargen", 19}, {"http", 80}}, listen, "198.18.0.2", discardLogger(), nil)
	require.NoError(t, err)
	dial := func(port int) net.Conn {
		c, err := cli.Dial("tcp", fmt.Sprintf("198.18.0.2:%d", port))
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	echo, stuck, web := dial(7), dial(19), dial(80)
	_, err = echo.Write([]byte("before"))
	require.NoError(t, err)
	buf := make([]byte, 6)
	_, err = io.ReadFull(echo, buf)
	require.NoError(t, err)
	_, err = io.ReadFull(stuck, make([]byte, 100)) // chargen is running
	require.NoError(t, err)
	const size = 4 << 20
	_, err = fmt.Fprintf(web, "GET /bytes/%d HTTP/1.1\r\nHost: ustack\r\n\r\n", size)
	require.NoError(t, err)
	_, err = io.ReadFull(web, make([]byte, 12)) // "HTTP/1.1 200": the handler runs
	require.NoError(t, err)
	waitOpen := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { open, _ := set.conns.counts(); return open == n }, 10*time.Second, time.Millisecond)
	}
	waitOpen(3)

	abort := make(chan struct{})
	type result struct{ finished, aborted int }
	res := make(chan result, 1)
	go func() {
		f, a := set.drain(time.Hour, abort, nil)
		res <- result{f, a}
	}()
	// The listeners close: a new client is refused.
	require.Eventually(t, func() bool { return len(srv.Listeners()) == 0 }, 10*time.Second, time.Millisecond)
	_, err = cli.Dial("tcp", "198.18.0.2:7")
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "a new client while draining: %v", err)
	// The echo connection still works, and ends when its client is done.
	_, err = echo.Write([]byte("during"))
	require.NoError(t, err)
	_, err = io.ReadFull(echo, buf)
	require.NoError(t, err)
	assert.Equal(t, "during", string(buf))
	require.NoError(t, echo.(interface{ CloseWrite() error }).CloseWrite())
	_, err = io.ReadAll(echo)
	require.NoError(t, err)
	// The response in flight completes; Shutdown then closes the
	// connection, which is idle.
	got, err := io.ReadAll(web)
	require.NoError(t, err)
	assert.Greater(t, len(got), size, "headers and all %d bytes", size)
	waitOpen(1)
	select {
	case r := <-res:
		t.Fatalf("drain ended with chargen still open: %+v", r)
	default:
	}
	close(abort) // a second signal
	r := <-res
	assert.Equal(t, result{finished: 2, aborted: 1}, r)
	_, err = io.Copy(io.Discard, stuck)
	assert.True(t, errors.Is(err, syscall.ECONNRESET), "the chargen client is reset: %v", err)
	assert.True(t, set.wait(10*time.Second), "every service goroutine returned")
}
