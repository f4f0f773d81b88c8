package stack

import (
	"bytes"
	"io"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tun"
)

var (
	addrA  = netip.MustParseAddr("198.18.0.1")
	addrB  = netip.MustParseAddr("198.18.0.2")
	addrA6 = netip.MustParseAddr("2001:2::1")
	addrB6 = netip.MustParseAddr("2001:2::2")
)

// pair is two Stacks joined by an in-memory pipe.
type pair struct {
	a, b   *Stack
	la, lb *tun.PipeEnd
}

// newPair makes two stacks back to back; mod may adjust both Options.
func newPair(t testing.TB, mod func(o *Options)) *pair {
	t.Helper()
	la, lb := tun.NewPipe(1500)
	oa := Options{Links: []tun.Link{la}, Addrs: []netip.Addr{addrA, addrA6}}
	ob := Options{Links: []tun.Link{lb}, Addrs: []netip.Addr{addrB, addrB6}}
	if mod != nil {
		mod(&oa)
		mod(&ob)
	}
	a, err := New(oa)
	require.NoError(t, err)
	b, err := New(ob)
	require.NoError(t, err)
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return &pair{a: a, b: b, la: la, lb: lb}
}

func TestEchoSmoke(t *testing.T) {
	p := newPair(t, nil)
	echoExchange(t, p, []byte("hello, ustack"))
}

// echoExchange runs an echo server on p.b port 7, sends msg from p.a, checks
// it comes back, half-closes and waits for the server's EOF and close. It
// returns the client's local address.
func echoExchange(t *testing.T, p *pair, msg []byte) string {
	t.Helper()
	ln, err := p.b.Listen("tcp", ":7")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(c, c)
		c.Close()
		done <- err
	}()
	c, err := p.a.Dial("tcp", "198.18.0.2:7")
	require.NoError(t, err)
	_, err = c.Write(msg)
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.True(t, bytes.Equal(msg, buf))
	require.NoError(t, c.(*Conn).CloseWrite())
	n, err := c.Read(buf)
	require.Equal(t, 0, n)
	require.Equal(t, io.EOF, err)
	require.NoError(t, <-done)
	local := c.LocalAddr().String()
	require.NoError(t, c.Close())
	require.NoError(t, ln.Close())
	return local
}
