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
	msg := []byte("hello, ustack")
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
	require.NoError(t, c.Close())
	require.NoError(t, ln.Close())
}
