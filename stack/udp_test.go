package stack

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestUDPPairExchange sends datagrams both ways between two stacks, both
// families, small and bigger than the MTU (fragmented and reassembled).
func TestUDPPairExchange(t *testing.T) {
	for _, fam := range []struct {
		name string
		a, b netip.Addr
	}{{"ipv4", addrA, addrB}, {"ipv6", addrA6, addrB6}} {
		t.Run(fam.name, func(t *testing.T) {
			p := newPair(t, nil)
			srv, err := p.b.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 5353))
			require.NoError(t, err)
			cli, err := p.a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(fam.b, 5353))
			require.NoError(t, err)
			la := cli.LocalAddrPort()
			require.Equal(t, fam.a, la.Addr())
			require.GreaterOrEqual(t, la.Port(), uint16(DefaultEphemeralMin))
			for _, size := range []int{0, 1, 1400, 1472, 20000, 65000} {
				msg := bytes.Repeat([]byte{byte(size)}, size)
				for i := range msg {
					msg[i] = byte(i * 7)
				}
				n, err := cli.Write(msg)
				require.NoError(t, err)
				require.Equal(t, size, n)
				buf := make([]byte, 70000)
				require.NoError(t, srv.SetReadDeadline(time.Now().Add(5*time.Second)))
				n, from, err := srv.ReadFromUDPAddrPort(buf)
				require.NoError(t, err, "size %d", size)
				require.Equal(t, la, from)
				require.Equal(t, msg, buf[:n], "size %d", size)
				// Echo it back.
				_, err = srv.WriteToUDPAddrPort(buf[:n], from)
				require.NoError(t, err)
				require.NoError(t, cli.SetReadDeadline(time.Now().Add(5*time.Second)))
				n, err = cli.Read(buf)
				require.NoError(t, err)
				require.Equal(t, msg, buf[:n])
			}
			require.NoError(t, cli.Close())
			_, err = cli.Read(make([]byte, 1))
			require.ErrorIs(t, err, net.ErrClosed)
			var oe *net.OpError
			require.True(t, errors.As(err, &oe))
		})
	}
}

// TestUDPPortUnreachable: a connected socket whose datagram hits a closed
// port gets ECONNREFUSED on its next read, as on Linux.
func TestUDPPortUnreachable(t *testing.T) {
	for _, dst := range []netip.Addr{addrB, addrB6} {
		p := newPair(t, nil)
		cli, err := p.a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(dst, 9))
		require.NoError(t, err)
		_, err = cli.Write([]byte("anyone?"))
		require.NoError(t, err)
		require.NoError(t, cli.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err = cli.Read(make([]byte, 10))
		require.ErrorIs(t, err, syscall.ECONNREFUSED, "%v", dst)
		require.Equal(t, uint64(1), p.b.Stats().UDPNoPorts.Load())
		require.Equal(t, uint64(1), p.a.Stats().UDPICMPErrors.Load())
	}
}

func TestUDPReadDeadline(t *testing.T) {
	p := newPair(t, nil)
	c, err := p.a.ListenUDP(netip.AddrPort{})
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
	_, _, err = c.ReadFrom(make([]byte, 10))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout())
}

// TestPingPair pings one stack from the other with a ping socket, both
// families, and reads the replies with the socket's identifier.
func TestPingPair(t *testing.T) {
	for _, dst := range []netip.Addr{addrB, addrB6} {
		p := newPair(t, nil)
		c, err := p.a.DialPing(netip.Addr{}, dst)
		require.NoError(t, err)
		req := []byte{8, 0, 0, 0, 0, 0, 0, 1, 'h', 'i'}
		if dst.Is6() {
			req[0] = 128
		}
		_, err = c.Write(req)
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
		buf := make([]byte, 100)
		n, from, err := c.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, dst.String(), from.String())
		require.Equal(t, 10, n)
		require.Equal(t, c.Ident(), uint16(buf[4])<<8|uint16(buf[5]))
		require.Equal(t, []byte{0, 1, 'h', 'i'}, buf[6:10])
	}
}

// TestUDPCloseUnblocks: a Read blocked on a socket returns net.ErrClosed
// when the socket closes, and when the stack does; a second Close is an
// error, and nothing is sent after Close.
func TestUDPCloseUnblocks(t *testing.T) {
	p := newPair(t, nil)
	c, err := p.a.ListenUDP(netip.AddrPort{})
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { _, _, err := c.ReadFromUDPAddrPort(make([]byte, 10)); errc <- err }()
	require.NoError(t, c.Close())
	require.ErrorIs(t, <-errc, net.ErrClosed)
	require.ErrorIs(t, c.Close(), net.ErrClosed)
	_, err = c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB, 9))
	require.ErrorIs(t, err, net.ErrClosed)
	// The port is free again.
	port := c.LocalAddrPort().Port()
	c2, err := p.a.ListenUDP(netip.AddrPortFrom(netip.Addr{}, port))
	require.NoError(t, err)
	_, err = p.a.ListenUDP(netip.AddrPortFrom(addrA, port))
	require.ErrorIs(t, err, syscall.EADDRINUSE)

	pc, err := p.a.ListenPing(netip.IPv4Unspecified())
	require.NoError(t, err)
	go func() { _, err := c2.Read(make([]byte, 10)); errc <- err }()
	go func() { _, err := pc.Read(make([]byte, 10)); errc <- err }()
	require.NoError(t, p.a.Close())
	require.ErrorIs(t, <-errc, net.ErrClosed)
	require.ErrorIs(t, <-errc, net.ErrClosed)
	_, err = p.a.ListenUDP(netip.AddrPort{})
	require.ErrorIs(t, err, net.ErrClosed)
}

// TestUDPErrors: the net package's errors for misuse.
func TestUDPErrors(t *testing.T) {
	p := newPair(t, nil)
	un, err := p.a.ListenUDP(netip.AddrPort{})
	require.NoError(t, err)
	_, err = un.Write([]byte("x"))
	require.ErrorIs(t, err, syscall.EDESTADDRREQ)
	c, err := p.a.DialUDP(netip.AddrPort{}, netip.AddrPortFrom(addrB, 53))
	require.NoError(t, err)
	_, err = c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB, 53))
	require.ErrorIs(t, err, net.ErrWriteToConnected)
	_, err = un.WriteToUDPAddrPort(make([]byte, 70000), netip.AddrPortFrom(addrB, 53))
	require.ErrorIs(t, err, syscall.EMSGSIZE)
	_, err = p.a.ListenUDP(netip.AddrPortFrom(netip.MustParseAddr("198.18.0.99"), 0))
	require.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
	v4, err := p.a.ListenPacket("udp4", ":0")
	require.NoError(t, err)
	_, err = v4.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("2001:2::2"), Port: 53})
	require.ErrorIs(t, err, syscall.EAFNOSUPPORT)
	_, err = p.a.ListenPacket("udp7", ":0")
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "listen", oe.Op)
	// Linux caps a datagram at 65507 bytes of data over IPv4 and 65527
	// over IPv6 (the IPv6 payload length counts the UDP header only).
	_, err = un.WriteToUDPAddrPort(make([]byte, 65508), netip.AddrPortFrom(addrB, 53))
	require.ErrorIs(t, err, syscall.EMSGSIZE)
	_, err = un.WriteToUDPAddrPort(make([]byte, 65507), netip.AddrPortFrom(addrB, 53))
	require.NoError(t, err)
	_, err = un.WriteToUDPAddrPort(make([]byte, 65527), netip.AddrPortFrom(addrB6, 53))
	require.NoError(t, err)
	_, err = un.WriteToUDPAddrPort(make([]byte, 65528), netip.AddrPortFrom(addrB6, 53))
	require.ErrorIs(t, err, syscall.EMSGSIZE)
}

// TestUnconnectedPingAndDialWithoutPeer: DialUDP and DialPing without a
// peer are listens; an unconnected ping socket sends anywhere with
// WriteTo and reads every reply with its identifier.
func TestUnconnectedPingAndDialWithoutPeer(t *testing.T) {
	p := newPair(t, nil)
	u, err := p.a.DialUDP(netip.AddrPortFrom(addrA, 0), netip.AddrPort{})
	require.NoError(t, err)
	require.Nil(t, u.RemoteAddr())
	_, err = p.a.DialPing(netip.Addr{}, netip.Addr{})
	require.Error(t, err)
	pc, err := p.a.DialPing(netip.IPv6Unspecified(), netip.Addr{})
	require.NoError(t, err)
	req := []byte{128, 0, 0, 0, 0, 0, 0, 3, 'x'}
	_, err = pc.WriteTo(req, &net.IPAddr{IP: addrB6.AsSlice()})
	require.NoError(t, err)
	_, err = pc.WriteTo([]byte{8, 0, 0, 0, 0, 0, 0, 3}, &net.IPAddr{IP: addrB.AsSlice()})
	require.ErrorIs(t, err, syscall.EINVAL, "an IPv6 ping socket sends no ICMPv4")
	require.NoError(t, pc.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 64)
	n, from, err := pc.ReadFrom(buf)
	require.NoError(t, err)
	require.Equal(t, addrB6.String(), from.String())
	require.Equal(t, byte(129), buf[0])
	require.Equal(t, "x", string(buf[8:n]))
}
