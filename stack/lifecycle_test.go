package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/ustack-net/ustack/tun"
)

// closeRaceCall is one goroutine of TestCloseRacesBlockedCalls: a loop of one
// kind of call on the stack being closed, and where it is.
type closeRaceCall struct {
	name string
	at   atomic.Pointer[string] // the call it is in, nil once it returned for good
	err  error                  // the error that ended the loop
	done chan struct{}
}

func (c *closeRaceCall) enter(call string) { c.at.Store(&call) }

// closeRaceOK reports whether err is what a call on a closed stack may
// return: net.ErrClosed, or an errno a kernel socket returns when its
// connection is torn down (the peer's refusal or reset, an abort).
func closeRaceOK(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, syscall.ETIMEDOUT:
			return true
		}
	}
	return false
}

// TestCloseRacesBlockedCalls runs Stack.Close against concurrent Dial (to a
// listening peer, to a closed port and to an address nobody answers, with
// context.Background), Listen, Accept, Read, Write, and UDP ReadFrom and
// WriteTo, at a random point of their progress, many times. Every call
// must return, with net.ErrClosed or a kernel errno (errors.Is), and no
// goroutine may be left. A call still blocked after the deadline fails the
// test with the name of the call and the goroutine dump.
//
// Before the fix Close set its closed flag only after sweeping the
// connection table: a Dial that checked the flag before the sweep and
// inserted its connection after it waited for ever on a SYN timer that
// Close had stopped, and a Listen or a datagram socket opened in the same
// window was never closed, so its Accept or ReadFrom never returned.
func TestCloseRacesBlockedCalls(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	budget := 3 * time.Second
	if testing.Short() {
		budget = time.Second
	}
	deadline := time.Now().Add(budget)
	iters := 0
	for time.Now().Before(deadline) || iters < 20 {
		closeRaceOnce(t, iters)
		if t.Failed() {
			t.Fatalf("iteration %d failed", iters)
		}
		iters++
	}
	t.Logf("%d iterations", iters)
}

func closeRaceOnce(t *testing.T, iter int) {
	la, lb := tun.NewPipe(1500)
	a, err := New(Options{Links: []tun.Link{la}, Addrs: []netip.Addr{addrA}, Shards: 2})
	require.NoError(t, err)
	b, err := New(Options{Links: []tun.Link{lb}, Addrs: []netip.Addr{addrB}})
	require.NoError(t, err)
	defer b.Close()

	// The peer: a TCP echo on :7, a UDP echo on :9, and a dialer to a's :80.
	var peer sync.WaitGroup
	defer peer.Wait()
	defer b.Close()
	eln, err := b.Listen("tcp", ":7")
	require.NoError(t, err)
	peer.Add(1)
	go func() {
		defer peer.Done()
		for {
			c, err := eln.Accept()
			if err != nil {
				return
			}
			peer.Add(1)
			go func() {
				defer peer.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	ub, err := b.ListenUDP(netip.AddrPortFrom(addrB, 9))
	require.NoError(t, err)
	peer.Add(1)
	go func() {
		defer peer.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := ub.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = ub.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	peer.Add(1)
	go func() {
		defer peer.Done()
		for {
			c, err := b.Dial("tcp", "198.18.0.1:80")
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // refused or reset: a is closing
			}
			c.Close()
		}
	}()

	// The victim's sockets that exist before the race.
	lna, err := a.Listen("tcp", ":80")
	require.NoError(t, err)
	conn, err := a.Dial("tcp", "198.18.0.2:7")
	require.NoError(t, err)
	ua, err := a.ListenUDP(netip.AddrPortFrom(addrA, 0))
	require.NoError(t, err)

	var calls []*closeRaceCall
	run := func(name string, loop func(c *closeRaceCall) error) {
		c := &closeRaceCall{name: name, done: make(chan struct{})}
		c.enter(name)
		calls = append(calls, c)
		go func() {
			defer close(c.done)
			c.err = loop(c)
			c.at.Store(nil)
		}()
	}
	dialLoop := func(addr string) func(c *closeRaceCall) error {
		return func(c *closeRaceCall) error {
			for {
				c.enter("Dial " + addr)
				d, err := a.DialContext(context.Background(), "tcp", addr)
				if err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) {
						continue
					}
					return err
				}
				c.enter("Write after Dial " + addr)
				if _, err := d.Write([]byte{1}); err != nil {
					d.Close()
					return err
				}
				d.Close()
			}
		}
	}
	run("dial echo", dialLoop("198.18.0.2:7"))
	run("dial closed port", dialLoop("198.18.0.2:1"))
	run("dial silent address", dialLoop("198.18.0.3:7")) // b drops it: the SYN is retransmitted until Close
	run("listen", func(c *closeRaceCall) error {
		for {
			c.enter("Listen")
			ln, err := a.Listen("tcp", ":0")
			if err != nil {
				return err
			}
			c.enter("Accept on a new listener")
			ln.(*Listener).SetDeadline(time.Unix(1, 0)) // returns at once: only the Listen races
			ln.Accept()
			ln.Close()
		}
	})
	run("accept", func(c *closeRaceCall) error {
		for {
			c.enter("Accept")
			ac, err := lna.Accept()
			if err != nil {
				return err
			}
			ac.Close()
		}
	})
	run("read", func(c *closeRaceCall) error {
		buf := make([]byte, 4096)
		for {
			c.enter("Read")
			if _, err := conn.Read(buf); err != nil {
				return err
			}
		}
	})
	run("write", func(c *closeRaceCall) error {
		buf := make([]byte, 1000)
		for {
			c.enter("Write")
			if _, err := conn.Write(buf); err != nil {
				return err
			}
		}
	})
	run("udp read", func(c *closeRaceCall) error {
		buf := make([]byte, 1500)
		for {
			c.enter("ReadFrom")
			if _, _, err := ua.ReadFrom(buf); err != nil {
				return err
			}
		}
	})
	run("udp write", func(c *closeRaceCall) error {
		to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrB, 9))
		buf := make([]byte, 100)
		for {
			c.enter("WriteTo")
			if _, err := ua.WriteTo(buf, to); err != nil {
				if errors.Is(err, syscall.ENOBUFS) {
					runtime.Gosched()
					continue
				}
				return err
			}
		}
	})

	// Close at a random point: before the loops have started, or while
	// they are in the middle of their calls.
	for range rand.IntN(400) {
		runtime.Gosched()
	}
	require.NoError(t, a.Close())

	limit := time.After(5 * time.Second)
	for _, c := range calls {
		select {
		case <-c.done:
		case <-limit:
			var stuck []string
			for _, c := range calls {
				if at := c.at.Load(); at != nil {
					stuck = append(stuck, fmt.Sprintf("%s (in %s)", c.name, *at))
				}
			}
			var dump strings.Builder
			pprof.Lookup("goroutine").WriteTo(&dump, 2)
			t.Fatalf("iteration %d: calls still blocked 5 s after Stack.Close returned: %s\n%s", iter, strings.Join(stuck, ", "), dump.String())
		}
	}
	for _, c := range calls {
		if !closeRaceOK(c.err) {
			t.Errorf("iteration %d: %s ended with %v (%T), want net.ErrClosed or a kernel errno", iter, c.name, c.err, c.err)
		}
		var oe *net.OpError
		if !errors.As(c.err, &oe) {
			t.Errorf("iteration %d: %s: %v is not a *net.OpError", iter, c.name, c.err)
		}
	}
	// Calls made after Close fail at once with net.ErrClosed.
	_, err = a.Dial("tcp", "198.18.0.2:7")
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = a.Listen("tcp", ":81")
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = a.ListenUDP(netip.AddrPortFrom(addrA, 0))
	require.ErrorIs(t, err, net.ErrClosed)
	_, err = conn.Read(make([]byte, 1))
	require.ErrorIs(t, err, net.ErrClosed)
}
