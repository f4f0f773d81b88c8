package integration

// UDP and ping sockets of ustack against the Linux kernel's (issue 17):
// datagrams both ways with a kernel net.UDPConn in the test namespace, up
// to 20000 bytes (fragmented on the 1500-byte TUN in both directions and
// reassembled on the other side), in both families, with TUN offloads on
// and off; port unreachable both ways (ECONNREFUSED on the connected
// socket); and a ping socket whose echo requests the kernel answers.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun/netnstest"
)

func TestKernelUDP(t *testing.T) {
	for _, m := range kernelModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			st := newKernelStack(t, m.offload)
			for _, f := range kernelFamilies {
				t.Run(f.name, func(t *testing.T) { kernelUDP(t, st, f.kernel, f.ustack) })
			}
			s := st.Stats()
			t.Logf("udp in %d out %d, fragments in %d out %d, reassembled %d, no ports %d, icmp errors %d",
				s.UDPInDatagrams.Load(), s.UDPOutDatagrams.Load(), s.IPFragments.Load(), s.IPFragmentsSent.Load(),
				s.IPReassembled.Load(), s.UDPNoPorts.Load(), s.UDPICMPErrors.Load())
			require.Zero(t, s.UDPBadChecksum.Load()+s.UDPBadLength.Load()+s.UDPZeroChecksum6.Load()+s.UDPRcvBufErrors.Load(), "no drops")
		})
	}
}

func kernelUDP(t *testing.T, st *stack.Stack, kernel, us netip.Addr) {
	deadline := func() time.Time { return time.Now().Add(5 * time.Second) }
	sizes := []int{1, 512, 1472, 3000, 20000}

	// ustack dials a kernel socket, which echoes each datagram back.
	ks, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(kernel, 0)))
	require.NoError(t, err)
	defer ks.Close()
	kaddr := ks.LocalAddr().(*net.UDPAddr).AddrPort()
	c, err := st.DialUDP(netip.AddrPort{}, kaddr)
	require.NoError(t, err)
	defer c.Close()
	buf := make([]byte, 65536)
	kbuf := make([]byte, 65536)
	for _, n := range sizes {
		msg := seededBytes(uint64(n), n)
		_, err := c.Write(msg)
		require.NoError(t, err)
		require.NoError(t, ks.SetReadDeadline(deadline()))
		k, from, err := ks.ReadFromUDPAddrPort(kbuf)
		require.NoError(t, err, "kernel reads %d bytes", n)
		require.Equal(t, c.LocalAddrPort(), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		require.True(t, bytes.Equal(msg, kbuf[:k]), "kernel got the %d bytes", n)
		_, err = ks.WriteToUDPAddrPort(kbuf[:k], from)
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(deadline()))
		k, err = c.Read(buf)
		require.NoError(t, err, "ustack reads %d bytes", n)
		require.True(t, bytes.Equal(msg, buf[:k]), "ustack got the %d bytes back", n)
	}

	// Round-trip time of a 64-byte datagram through the TUN and the
	// kernel's echo (reported, not asserted).
	const rounds = 2000
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	require.NoError(t, ks.SetReadDeadline(time.Now().Add(30*time.Second)))
	echoDone := make(chan error, 1)
	go func() {
		for range rounds {
			k, from, err := ks.ReadFromUDPAddrPort(kbuf)
			if err == nil {
				_, err = ks.WriteToUDPAddrPort(kbuf[:k], from)
			}
			if err != nil {
				echoDone <- err
				return
			}
		}
		echoDone <- nil
	}()
	small := make([]byte, 64)
	for range rounds {
		_, err := c.Write(small)
		require.NoError(t, err)
		_, err = c.Read(buf)
		require.NoError(t, err)
	}
	require.NoError(t, <-echoDone)
	t.Logf("UDP echo round trip, ustack to the kernel through the TUN, 64 bytes: %v", (time.Since(start) / rounds).Round(100*time.Nanosecond))

	// A kernel socket dials an unconnected ustack socket (ListenPacket).
	pc, err := st.ListenPacket("udp", net.JoinHostPort(us.String(), "0"))
	require.NoError(t, err)
	defer pc.Close()
	kc, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	require.NoError(t, err)
	defer kc.Close()
	for _, n := range sizes {
		msg := seededBytes(uint64(n)+1, n)
		_, err := kc.Write(msg)
		require.NoError(t, err)
		require.NoError(t, pc.SetReadDeadline(deadline()))
		k, from, err := pc.ReadFrom(buf)
		require.NoError(t, err, "ustack reads %d bytes", n)
		require.True(t, bytes.Equal(msg, buf[:k]))
		require.Equal(t, kc.LocalAddr().(*net.UDPAddr).AddrPort().Port(), from.(*net.UDPAddr).AddrPort().Port())
		_, err = pc.WriteTo(buf[:k], from)
		require.NoError(t, err)
		require.NoError(t, kc.SetReadDeadline(deadline()))
		k, err = kc.Read(kbuf)
		require.NoError(t, err, "kernel reads %d bytes back", n)
		require.True(t, bytes.Equal(msg, kbuf[:k]))
	}

	// Port unreachable both ways: the connected socket's next read fails
	// with ECONNREFUSED, on ustack as on Linux.
	closed, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(kernel, 0)))
	require.NoError(t, err)
	closedAddr := closed.LocalAddr().(*net.UDPAddr).AddrPort()
	closed.Close()
	cr, err := st.DialUDP(netip.AddrPort{}, closedAddr)
	require.NoError(t, err)
	defer cr.Close()
	_, err = cr.Write([]byte("anyone?"))
	require.NoError(t, err)
	require.NoError(t, cr.SetReadDeadline(deadline()))
	_, err = cr.Read(buf)
	require.True(t, errors.Is(err, syscall.ECONNREFUSED), "ustack: %v", err)
	kr, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(us, 9)))
	require.NoError(t, err)
	defer kr.Close()
	_, err = kr.Write([]byte("anyone?"))
	require.NoError(t, err)
	require.NoError(t, kr.SetReadDeadline(deadline()))
	_, err = kr.Read(buf)
	require.True(t, errors.Is(err, syscall.ECONNREFUSED), "kernel: %v", err)

	// A ping socket: the kernel answers its echo requests, a small one and
	// one that goes in fragments.
	p, err := st.DialPing(netip.Addr{}, kernel)
	require.NoError(t, err)
	defer p.Close()
	typ := byte(8)
	if kernel.Is6() {
		typ = 128
	}
	for seq, n := range []int{56, 3000} {
		req := append([]byte{typ, 0, 0, 0, 0, 0, 0, byte(seq)}, seededBytes(uint64(seq), n)...)
		_, err := p.Write(req)
		require.NoError(t, err)
		require.NoError(t, p.SetReadDeadline(deadline()))
		k, from, err := p.ReadFrom(buf)
		require.NoError(t, err, "echo reply %d", seq)
		require.Equal(t, kernel.String(), from.String())
		wantType := byte(0) // ICMPv4 echo reply
		if kernel.Is6() {
			wantType = 129
		}
		require.Equal(t, wantType, buf[0], "reply type")
		require.Equal(t, p.Ident(), uint16(buf[4])<<8|uint16(buf[5]))
		require.Equal(t, req[6:], buf[6:k])
	}
}

// TestKernelDialUDP runs `ustack dial -u` against a kernel UDP socket:
// stdin goes out as a datagram, the kernel's two replies reach stdout, and
// the exit status is 0; to a closed port it is 1, with the reason.
func TestKernelDialUDP(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	for _, f := range kernelFamilies {
		t.Run(f.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// The kernel's address appears only once `ustack dial` has made
			// the device: listen on the wildcard address.
			network, any := "udp4", netip.IPv4Unspecified()
			if f.kernel.Is6() {
				network, any = "udp6", netip.IPv6Unspecified()
			}
			ks, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(any, 0)))
			require.NoError(t, err)
			defer ks.Close()
			port := ks.LocalAddr().(*net.UDPAddr).Port
			got := make(chan string, 1)
			go func() {
				buf := make([]byte, 2048)
				ks.SetDeadline(time.Now().Add(20 * time.Second))
				n, from, err := ks.ReadFromUDPAddrPort(buf)
				if err != nil {
					got <- err.Error()
					return
				}
				got <- string(buf[:n])
				ks.WriteToUDPAddrPort([]byte("one\n"), from)
				ks.WriteToUDPAddrPort([]byte("two\n"), from)
			}()
			var stdout bytes.Buffer
			stderr := newProcOutput()
			cmd := exec.CommandContext(ctx, ustackBinary(t), append(ustackDialArgs(false), "-u", "--wait", "2s", joinAddrPort(f.kernel, port))...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader("question\n"), &stdout, stderr
			require.NoError(t, cmd.Run(), "stderr:\n%s", stderr)
			require.Equal(t, "question\n", <-got)
			require.Equal(t, "one\ntwo\n", stdout.String())
			require.Empty(t, stderr.String())

			// A closed port: port unreachable, exit status 1.
			closed, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(any, 0)))
			require.NoError(t, err)
			cport := closed.LocalAddr().(*net.UDPAddr).Port
			closed.Close()
			stdout.Reset()
			stderr = newProcOutput()
			cmd = exec.CommandContext(ctx, ustackBinary(t), append(ustackDialArgs(false), "-u", "--wait", "5s", joinAddrPort(f.kernel, cport))...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader("anyone?\n"), &stdout, stderr
			err = cmd.Run()
			require.Error(t, err)
			require.Equal(t, 1, cmd.ProcessState.ExitCode())
			require.Contains(t, stderr.String(), "connection refused")
		})
	}
}
