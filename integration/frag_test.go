package integration

// Fragment attacks against `ustack serve` (issue 9): overlapping, tiny,
// oversized and never-completed IPv4 fragments, sent from the kernel side
// through a raw socket (IPPROTO_RAW: we write the IP header). Reassembly
// must stay under its memory cap, drop each kind by its own reason, never
// panic, and still reassemble a real fragmented datagram afterwards.

import (
	"context"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun/netnstest"
)

// rawIPv4 is a raw socket that sends whole IPv4 packets into the namespace.
type rawIPv4 struct {
	fd int
	to syscall.SockaddrInet4
}

func newRawIPv4(t *testing.T) *rawIPv4 {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	require.NoError(t, err, "raw socket")
	t.Cleanup(func() { syscall.Close(fd) })
	return &rawIPv4{fd: fd, to: syscall.SockaddrInet4{Addr: ustackAddr4.As4()}}
}

// fragment sends one fragment of datagram id from the kernel's address to
// ustack's: payload at byte offset off, more fragments to follow if mf.
func (r *rawIPv4) fragment(t *testing.T, proto uint8, id uint16, off int, mf bool, payload []byte) {
	t.Helper()
	f := ip.IPv4Fields{ID: id, FragmentOffset: uint16(off), TTL: 64, Protocol: proto, Src: kernelAddr4, Dst: ustackAddr4}
	if mf {
		f.Flags = ip.IPv4FlagMoreFragments
	}
	pkt := make([]byte, ip.IPv4MinHeaderLen+len(payload))
	_, err := ip.BuildIPv4(pkt, &f)
	require.NoError(t, err)
	copy(pkt[ip.IPv4MinHeaderLen:], payload)
	require.NoError(t, syscall.Sendto(r.fd, pkt, 0, &r.to), "sendto fragment id %d off %d", id, off)
}

func TestFragmentAttacks(t *testing.T) {
	if !haveTool(t, "ping", "iputils-ping") || !netnstest.Enter(t) {
		return
	}
	const memCap = 256 << 10
	// A small cap so the never-completed flood reaches it with a few
	// hundred packets, and a short timeout so its leftovers expire within
	// the test.
	srv := startAttackServe(t, "--reassembly", "mem=256K,timeout=2s")
	raw := newRawIPv4(t)
	m0 := srv.metrics(t)
	rss0 := srv.peakRSS(t)
	data := make([]byte, 1400)
	for i := range data {
		data[i] = byte(i)
	}
	delta := func(m metrics, name string) float64 { return m.counter(name) - m0.counter(name) }
	start := time.Now()

	// Overlap (RFC 5722: the whole datagram is dropped), then a fragment
	// of a datagram already dropped.
	for id := uint16(1); id <= 50; id++ {
		raw.fragment(t, syscall.IPPROTO_UDP, id, 0, true, data[:32])
		raw.fragment(t, syscall.IPPROTO_UDP, id, 16, true, data[:32])
		raw.fragment(t, syscall.IPPROTO_UDP, id, 32, false, data[:32])
	}
	// Tiny TCP fragments: legal (RFC 791, RFC 1122 §3.3.2; RFC 1858's
	// tiny-fragment rule is for filters, and a host reassembles before
	// it demultiplexes), so they are held, and time out incomplete.
	for i := range 3 {
		raw.fragment(t, syscall.IPPROTO_TCP, 1000, 8*i, true, data[:8])
	}
	// Tiny, many: 300 eight-byte fragments of one datagram, more than the
	// 256 one datagram may have; the 43 after the 257th are discarded.
	for i := range 300 {
		raw.fragment(t, syscall.IPPROTO_UDP, 1100, 8*i, true, data[:8])
	}
	// Oversized: a last fragment ending past 65535 bytes.
	for id := uint16(2000); id < 2010; id++ {
		raw.fragment(t, syscall.IPPROTO_UDP, id, 65528, false, data[:64])
	}
	// Never completed: first fragments only, far more than the cap holds.
	for id := uint16(3000); id < 3600; id++ {
		raw.fragment(t, syscall.IPPROTO_UDP, id, 0, true, data)
	}
	var m1 metrics
	waitState(t, 5*time.Second, "fragments counted", func() (bool, string) {
		m1 = srv.metrics(t)
		n := delta(m1, "ip_fragments")
		return n == 50*3+3+300+10+600, "ip_fragments +" + fmtFloat(n)
	})
	t.Logf("%d fragments sent in %v", 50*3+3+300+10+600, time.Since(start).Round(time.Millisecond))
	t.Logf("counters that moved: %s", moved(m0, m1))
	require.Equal(t, 50.0, delta(m1, "ip_fragment_overlap"))
	require.Zero(t, delta(m1, "ip_bad_fragment"))
	require.Equal(t, 1.0, delta(m1, "ip_too_many_fragments"))
	require.Equal(t, 50.0+43, delta(m1, "ip_fragment_of_discarded_datagram"))
	require.Equal(t, 10.0, delta(m1, "ip_reassembled_datagram_too_big"))
	require.Greater(t, delta(m1, "ip_reassembly_memory_limit"), 300.0, "never-completed datagrams refused at the cap")
	require.Zero(t, delta(m1, "ip_reassembled"))
	used, peak := m1[`ustack_ip_reassembly_bytes{kind="used"}`], m1[`ustack_ip_reassembly_bytes{kind="peak"}`]
	require.Equal(t, float64(memCap), m1[`ustack_ip_reassembly_bytes{kind="limit"}`])
	require.LessOrEqual(t, peak, float64(memCap), "reassembly memory peak")
	require.Greater(t, peak, float64(memCap)*3/4, "the flood did fill reassembly")
	t.Logf("reassembly memory: %.0f bytes held, peak %.0f, cap %d", used, peak, memCap)

	// A real fragmented datagram: the kernel's own 3000-byte ping, cut at
	// the MTU. Once the leftovers have timed out (2 s), it is reassembled
	// and answered; the 3028-byte reply goes back in fragments, which the
	// kernel reassembles for ping.
	time.Sleep(2100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ping", "-c", "1", "-W", "2", "-s", "3000", ustackAddr4.String()).CombinedOutput()
	require.NoError(t, err, "ping -s 3000: %s", out)
	require.Contains(t, string(out), "3008 bytes from "+ustackAddr4.String())
	var m2 metrics
	waitState(t, 5*time.Second, "the ping reassembled", func() (bool, string) {
		m2 = srv.metrics(t)
		return delta(m2, "ip_reassembled") == 1, "ip_reassembled +" + fmtFloat(delta(m2, "ip_reassembled"))
	})
	require.Equal(t, 1.0, delta(m2, "icmp_echo_replies"))
	require.Equal(t, 3.0, delta(m2, "ip_fragments_sent"), "the reply in three fragments")
	require.Greater(t, delta(m2, "ip_reassembly_timeouts"), 0.0, "the never-completed datagrams timed out")
	require.Zero(t, m2[`ustack_ip_reassembly_bytes{kind="used"}`], "nothing held after the ping")
	// And the stack serves normally.
	require.NoError(t, echoOnce(joinAddrPort(ustackAddr4, serveEchoPort)))
	t.Logf("counters that moved after the attack: %s", moved(m1, m2))
	t.Logf("peak RSS of ustack serve: %d KiB before the attack, %d KiB after", rss0, srv.peakRSS(t))
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) }
