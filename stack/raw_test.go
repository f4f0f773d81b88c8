package stack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// rawPeer drives a Stack from the other end of a pipe with hand-made
// packets, the way packetdrill drives a kernel.
type rawPeer struct {
	t   testing.TB
	s   *Stack
	l   *tun.PipeEnd
	in  chan []byte
	clk *ManualClock
}

// newRawPeer makes a Stack (addresses addrB, addrB6) whose only link is a
// pipe the test writes and reads raw IP packets on.
func newRawPeer(t testing.TB, mod func(o *Options)) *rawPeer {
	t.Helper()
	mine, theirs := tun.NewPipe(1500)
	o := Options{Links: []tun.Link{theirs}, Addrs: []netip.Addr{addrB, addrB6}, Shards: 2}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	require.NoError(t, err)
	r := &rawPeer{t: t, s: s, l: mine, in: make(chan []byte, 4096)}
	r.clk, _ = o.Clock.(*ManualClock)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A GSO super-packet from the stack comes out split: Read needs
		// a buffer for each of its MSS-sized pieces.
		bufs := make([][]byte, mine.BatchSize())
		for i := range bufs {
			bufs[i] = make([]byte, 65536)
		}
		sizes := make([]int, len(bufs))
		for {
			n, err := mine.Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			for i := range n {
				r.in <- append([]byte(nil), bufs[i][:sizes[i]]...)
			}
		}
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return r
}

// send writes one raw packet into the stack.
func (r *rawPeer) send(pkt []byte) {
	r.t.Helper()
	b := append(make([]byte, headroom), pkt...)
	_, err := r.l.Write([][]byte{b}, headroom)
	require.NoError(r.t, err)
}

// recv returns the next packet the stack sent, failing after a second.
func (r *rawPeer) recv() []byte {
	r.t.Helper()
	select {
	case p := <-r.in:
		return p
	case <-time.After(5 * time.Second):
		r.t.Fatal("no packet from the stack")
		return nil
	}
}

// none asserts the stack sends nothing within a short real-time window.
func (r *rawPeer) none() {
	r.t.Helper()
	select {
	case p := <-r.in:
		r.t.Fatalf("unexpected packet %s", describe(p))
	case <-time.After(50 * time.Millisecond):
	}
}

// waitStat polls a counter until it reaches want (the stack's reader is
// asynchronous) and fails after a few seconds.
func waitStat(t testing.TB, c interface{ Load() uint64 }, want uint64, name string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if c.Load() >= want {
			require.Equal(t, want, c.Load(), name)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s = %d, want %d", name, c.Load(), want)
}

// tcpPacket builds an IPv4 or IPv6 packet carrying seg from src to dst
// with correct checksums.
func tcpPacket(src, dst netip.AddrPort, seg *tcp.Segment) []byte {
	v6 := !src.Addr().Is4()
	iphl := 20
	if v6 {
		iphl = 40
	}
	total := iphl + tcp.SegmentWireLen(seg)
	p := make([]byte, total)
	writeIPHeaderECN(p, src.Addr(), dst.Addr(), protoTCP, total, 1, true, seg.ECN)
	tcp.EncodeSegment(p[iphl:], src.Port(), dst.Port(), seg)
	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	tcp.SetChecksumFull(p[iphl:], s, d)
	return p
}

// parseTCP parses a packet the stack sent, failing the test if it is not a
// valid TCP packet.
func parseTCP(t testing.TB, p []byte) (src, dst netip.AddrPort, seg tcp.Segment) {
	t.Helper()
	var payload, sb, db []byte
	var sa, da netip.Addr
	var ecn tcp.ECN
	switch p[0] >> 4 {
	case 4:
		h, err := ip.ParseIPv4(p)
		require.NoError(t, err)
		require.Equal(t, uint8(protoTCP), h.Protocol())
		payload, sb, db, sa, da = h.Payload(), h.SrcSlice(), h.DstSlice(), h.Src(), h.Dst()
		ecn = tcp.ECN(h.TOS() & 3)
	case 6:
		h, info, err := ip.ParseIPv6(p)
		require.NoError(t, err)
		require.Equal(t, uint8(protoTCP), info.Protocol)
		payload, sb, db, sa, da = h[info.Offset:], h.SrcSlice(), h.DstSlice(), h.Src(), h.Dst()
		ecn = tcp.ECN(h.TrafficClass() & 3)
	default:
		t.Fatalf("not IP: % x", p)
	}
	require.True(t, tcp.VerifyChecksum(payload, sb, db), "TCP checksum")
	sp, dp, err := tcp.ParseSegment(payload, &seg)
	require.NoError(t, err)
	seg.ECN = ecn
	return netip.AddrPortFrom(sa, sp), netip.AddrPortFrom(da, dp), seg
}

// describe renders a packet tcpdump-style for failure messages.
func describe(p []byte) string {
	if len(p) == 0 {
		return "empty"
	}
	var seg tcp.Segment
	var src, dst netip.Addr
	var l4 []byte
	var proto uint8
	if p[0]>>4 == 4 && len(p) >= 20 {
		h := ip.IPv4(p)
		src, dst, proto, l4 = h.Src(), h.Dst(), h.Protocol(), p[h.HeaderLen():]
	} else if len(p) >= 40 {
		h := ip.IPv6(p)
		src, dst, proto, l4 = h.Src(), h.Dst(), h.NextHeader(), p[40:]
	}
	if proto != protoTCP {
		return fmt.Sprintf("%v > %v proto %d len %d", src, dst, proto, len(p))
	}
	sp, dp, err := tcp.ParseSegment(l4, &seg)
	if err != nil {
		return "bad tcp: " + err.Error()
	}
	return fmt.Sprintf("%v.%d > %v.%d flags %08b seq %d ack %d win %d len %d", src, sp, dst, dp, seg.Flags, seg.Seq, seg.Ack, seg.Window, len(seg.Payload))
}

// expectTCP receives the next packet and checks it is a TCP segment from
// src to dst with exactly the flags given.
func (r *rawPeer) expectTCP(src, dst netip.AddrPort, flags tcp.Flags) tcp.Segment {
	r.t.Helper()
	p := r.recv()
	s, d, seg := parseTCP(r.t, p)
	require.Equal(r.t, src, s, describe(p))
	require.Equal(r.t, dst, d, describe(p))
	require.Equal(r.t, flags, seg.Flags, "flags of %s", describe(p))
	return seg
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
