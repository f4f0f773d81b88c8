package tun

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun/netnstest"
)

// udpPkt builds an IPv4 UDP packet with full checksums.
func udpPkt(src, dst netip.AddrPort, payload []byte) []byte {
	p := make([]byte, Headroom+28+len(payload))
	pkt := p[Headroom:]
	_, err := ip.BuildIPv4(pkt, &ip.IPv4Fields{TotalLength: uint16(len(pkt)), TTL: 64, Protocol: 17, Src: src.Addr(), Dst: dst.Addr()})
	if err != nil {
		panic(err)
	}
	u := pkt[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	sum := ^ip.Checksum(u, ip.PseudoHeaderChecksum(17, pkt[12:16], pkt[16:20], uint16(len(u))))
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], sum)
	return p
}

// TestTUNMultiQueue opens a device with 4 queues and checks the flow
// steering the stack relies on: a flow's packets written on queue q bring
// the kernel's answers back on queue q, so every queue carries traffic.
func TestTUNMultiQueue(t *testing.T) {
	for _, m := range offloadModes {
		t.Run(m.name, func(t *testing.T) {
			if !netnstest.Enter(t) {
				return
			}
			const nq = 4
			l, err := Create(Options{Name: "ust0", Offload: m.offload, HostAddrs: hostAddrs, Queues: nq})
			require.NoError(t, err)
			qs := l.Queues()
			require.Len(t, qs, nq)
			for i, q := range qs {
				assert.Equal(t, i, q.Queue())
				assert.Equal(t, "ust0", q.Name())
				assert.Equal(t, l.Index(), q.Index())
				assert.Equal(t, m.offload, q.Offload())
			}
			assert.Same(t, l, qs[0])

			sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 0, 1), Port: 7000})
			require.NoError(t, err)
			defer sock.Close()
			go func() { // echo
				buf := make([]byte, 2048)
				for {
					n, from, err := sock.ReadFromUDP(buf)
					if err != nil {
						return
					}
					sock.WriteToUDP(buf[:n], from)
				}
			}()

			// Where each flow's echo came back: flow (source port) → queue.
			var mu sync.Mutex
			got := map[uint16]int{}
			var wg sync.WaitGroup
			for _, q := range qs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range reader(q, Headroom+MaxPacketSize) {
						pkt := r.pkt
						if len(pkt) < 28 || pkt[0]>>4 != 4 || pkt[9] != 17 {
							continue
						}
						mu.Lock()
						got[binary.BigEndian.Uint16(pkt[22:])] = q.Queue()
						mu.Unlock()
					}
				}()
			}
			const flows = 32
			kernel := netip.MustParseAddrPort("198.18.0.1:7000")
			deadline := time.Now().Add(5 * time.Second)
			for {
				for f := range flows {
					q := qs[f%nq]
					src := netip.AddrPortFrom(stackV4, uint16(20000+f))
					_, err := q.Write([][]byte{udpPkt(src, kernel, []byte("ping"))}, Headroom)
					require.NoError(t, err)
				}
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				n := len(got)
				mu.Unlock()
				if n == flows || time.Now().After(deadline) {
					break
				}
			}
			require.NoError(t, l.Close())
			wg.Wait()
			require.Len(t, got, flows)
			for f := range flows {
				assert.Equal(t, f%nq, got[uint16(20000+f)], "flow %d written on queue %d came back elsewhere", f, f%nq)
			}
		})
	}
}

func TestTUNMultiQueueErrors(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	for _, n := range []int{-1, 17} {
		_, err := Create(Options{Name: "ust0", Queues: n})
		assert.ErrorContains(t, err, "queues out of [1, 16]")
	}
	// A single-queue device of the name: a multi-queue one cannot take it.
	l, err := Create(Options{Name: "ust0"})
	require.NoError(t, err)
	assert.Len(t, l.Queues(), 1)
	_, err = Create(Options{Name: "ust0", Queues: 2})
	assert.ErrorIs(t, err, ErrBusy)
	require.NoError(t, l.Close())
	// Queue 0 closes them all: the name is free again.
	l, err = Create(Options{Name: "ust0", Queues: 3})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	for _, q := range l.Queues() {
		_, err := q.Read(newBufs(1, 2048), make([]int, 1), Headroom)
		assert.True(t, errors.Is(err, ErrClosed), "queue %d: %v", q.Queue(), err)
	}
	l, err = Create(Options{Name: "ust0", Queues: 2})
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

// The SYN filter is the device's: enabled through any queue, a block asked
// on any queue is in place.
func TestTUNMultiQueueSYNFilter(t *testing.T) {
	if !netnstest.Enter(t) {
		return
	}
	l, err := Create(Options{Name: "ust0", HostAddrs: hostAddrs, Queues: 2})
	require.NoError(t, err)
	defer l.Close()
	qs := l.Queues()
	assert.False(t, qs[1].BlockSYNs(netip.MustParseAddr("198.18.0.77"), time.Second), "no filter yet")
	require.NoError(t, qs[1].EnableSYNFilter())
	assert.NotNil(t, l.synFilter, "queue 0 holds the device's filter")
	assert.Nil(t, qs[1].synFilter)
	assert.True(t, qs[1].BlockSYNs(netip.MustParseAddr("198.18.0.77"), time.Second))
	assert.True(t, qs[0].BlockSYNs(netip.MustParseAddr("2001:2::77"), time.Second))
}
