package integration

// UDP segmentation offload on the TUN (issue 17): a kernel socket with
// UDP_SEGMENT hands the kernel one super-datagram per write; with USO on
// the TUN (TUN_F_USO4/USO6, Linux 6.2 on) it reaches ustack whole, as
// virtio GSO_UDP_L4, and the stack cuts it into its datagrams. With USO
// refused (tun.Options.NoUDPOffload, or an older kernel) or without
// offloads, the kernel cuts it before the TUN. Either way a ustack echo
// server sends every datagram back, and the kernel side checks sizes and
// the hash of the content.

import (
	"crypto/sha256"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun"
	"github.com/ustack-net/ustack/tun/netnstest"
)

func TestKernelUDPSegment(t *testing.T) {
	modes := []struct {
		name           string
		offload, noUSO bool
	}{{"uso", true, false}, {"offload-without-uso", true, true}, {"no-offload", false, false}}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			dev, err := tun.Create(tun.Options{Name: kernelTUN, MTU: 1500, Offload: m.offload, NoUDPOffload: m.noUSO, HostAddrs: kernelPrefix})
			require.NoError(t, err)
			st, err := stack.New(stack.Options{Links: []tun.Link{dev}, Addrs: []netip.Addr{ustackAddr4, ustackAddr6}})
			if err != nil {
				dev.Close()
				require.NoError(t, err)
			}
			t.Cleanup(func() { st.Close() })
			uso := dev.UDPOffload()
			if m.offload && !m.noUSO && !uso {
				t.Logf("the kernel refused TUN_F_USO4|USO6: it segments UDP_SEGMENT writes itself")
			}
			require.False(t, (m.noUSO || !m.offload) && uso, "USO off when not asked for")
			for _, f := range kernelFamilies {
				t.Run(f.name, func(t *testing.T) { udpSegmentEcho(t, st, f.ustack) })
			}
			s := st.Stats()
			t.Logf("USO %v: udp in %d out %d, super-datagrams split %d", uso, s.UDPInDatagrams.Load(), s.UDPOutDatagrams.Load(), s.UDPGSOIn.Load())
			if uso {
				require.NotZero(t, s.UDPGSOIn.Load(), "super-datagrams reached the stack whole")
			} else {
				require.Zero(t, s.UDPGSOIn.Load())
			}
			require.Zero(t, s.UDPBadGSO.Load()+s.UDPBadChecksum.Load()+s.UDPBadLength.Load()+s.UDPRcvBufErrors.Load()+s.LinkReadErrors.Load(), "no drops")
			require.Empty(t, dev.GSODrops())
		})
	}
}

// udpSegmentEcho sends writes of several datagrams each from a kernel UDP
// socket with UDP_SEGMENT to a ustack echo socket at us, and checks that
// every datagram comes back with its size, and the whole content's hash.
func udpSegmentEcho(t *testing.T, st *stack.Stack, us netip.Addr) {
	srv, err := st.ListenUDP(netip.AddrPortFrom(us, 0))
	require.NoError(t, err)
	echoDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				echoDone <- nil // closed
				return
			}
			if _, err := srv.WriteToUDPAddrPort(buf[:n], from); err != nil {
				echoDone <- err
				return
			}
		}
	}()
	defer func() {
		srv.Close()
		require.NoError(t, <-echoDone)
	}()

	kc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv.LocalAddrPort()))
	require.NoError(t, err)
	defer kc.Close()
	// Segments of 1200 bytes (any size up to the path's MTU works), set on
	// the socket: every write is one super-datagram of up to 64 of them.
	const segSize, perWrite, writes = 1200, 20, 30
	raw, err := kc.SyscallConn()
	require.NoError(t, err)
	var serr error
	require.NoError(t, raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, segSize) }))
	require.NoError(t, serr, "UDP_SEGMENT")

	sent, got := sha256.New(), sha256.New()
	buf := make([]byte, 65536)
	datagrams := 0
	for w := range writes {
		// The last datagram of a write is shorter, and each write's is
		// a different length.
		n := (perWrite-1)*segSize + 1 + w*37
		msg := seededBytes(uint64(w)+uint64(us.BitLen()), n)
		sent.Write(msg)
		k, err := kc.Write(msg)
		require.NoError(t, err)
		require.Equal(t, n, k)
		for off := 0; off < n; off += segSize {
			want := min(segSize, n-off)
			require.NoError(t, kc.SetReadDeadline(time.Now().Add(5*time.Second)))
			k, err := kc.Read(buf)
			require.NoError(t, err, "write %d: datagram at %d", w, off)
			require.Equal(t, want, k, "write %d: datagram at %d", w, off)
			got.Write(buf[:k])
			datagrams++
		}
	}
	require.Equal(t, sent.Sum(nil), got.Sum(nil), "the %d datagrams came back in order, byte for byte", datagrams)
}
