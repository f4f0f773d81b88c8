package stack

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// FuzzUDPInput feeds one IP packet carrying fuzzed UDP bytes (header
// included) to a stack with UDP sockets, synchronously on its reader's path.
// fix makes the checksum right (so the fuzzer gets past it) and v6 picks
// the family. Whatever comes in must never panic; a datagram a socket
// receives must be exactly the bytes its length covers, with a checksum
// gVisor agrees with; every datagram not taken is counted by one reason.
func FuzzUDPInput(f *testing.F) {
	mine, theirs := tun.NewPipe(1500)
	go func() { // drain what the stack sends (port unreachables)
		bufs := [][]byte{make([]byte, 65536)}
		sizes := []int{0}
		for {
			if _, err := mine.Read(bufs, sizes, 0); err != nil {
				return
			}
		}
	}()
	clk := NewManualClock(0)
	s, err := New(Options{Links: []tun.Link{theirs}, Addrs: []netip.Addr{addrB, addrB6}, Clock: clk, DatagramReceiveBuffer: 8192})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	srv, err := s.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 53))
	if err != nil {
		f.Fatal(err)
	}
	peer4 := netip.AddrPortFrom(addrA, 40000)
	conn, err := s.DialUDP(netip.AddrPortFrom(addrB, 5000), peer4)
	if err != nil {
		f.Fatal(err)
	}
	lk := (*s.links.Load())[0]
	seed := func(src, dst uint16, payload []byte) []byte {
		b := make([]byte, 8+len(payload))
		binary.BigEndian.PutUint16(b[0:], src)
		binary.BigEndian.PutUint16(b[2:], dst)
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
		copy(b[8:], payload)
		return b
	}
	f.Add(false, true, seed(40000, 53, []byte("q")))
	f.Add(true, true, seed(40000, 53, []byte("query")))
	f.Add(false, true, seed(40000, 5000, nil))
	f.Add(false, false, seed(1, 9, []byte("x")))
	f.Add(true, false, []byte{0, 1, 0, 53, 0, 4})
	buf := make([]byte, 70000)
	outcomes := func() uint64 {
		st := s.Stats()
		return st.UDPInDatagrams.Load() + st.UDPNoPorts.Load() + st.UDPRcvBufErrors.Load() + st.UDPTooShort.Load() +
			st.UDPBadLength.Load() + st.UDPBadChecksum.Load() + st.UDPZeroChecksum6.Load() + st.UDPBadPort.Load()
	}
	f.Fuzz(func(t *testing.T, v6, fix bool, u []byte) {
		if len(u) > 1400 {
			u = u[:1400]
		}
		src, dst := peer4.Addr(), addrB
		if v6 {
			src, dst = addrA6, addrB6
		}
		iphl := 20
		if v6 {
			iphl = 40
		}
		p := make([]byte, iphl+len(u))
		writeIPHeader(p, src, dst, protoUDP, len(p), 1, false)
		copy(p[iphl:], u)
		seg := p[iphl:]
		if fix && len(seg) >= 8 {
			ulen := min(int(binary.BigEndian.Uint16(seg[4:])), len(seg))
			if ulen >= 8 {
				seg[6], seg[7] = 0, 0
				ip.PutUDPHeader(seg[:ulen], binary.BigEndian.Uint16(seg[0:]), binary.BigEndian.Uint16(seg[2:]), src.AsSlice(), dst.AsSlice())
				binary.BigEndian.PutUint16(seg[4:], uint16(binary.BigEndian.Uint16(u[4:]))) // keep the fuzzed length
			}
		}
		before := outcomes()
		in := s.Stats().UDPInDatagrams.Load()
		var b rxBatch
		s.input(lk, p, tun.GSO{}, clk.Now(), &b)
		s.finishBatch(lk, &b, clk.Now())
		if got := outcomes() - before; got != 1 {
			t.Fatalf("%d outcomes counted for one datagram", got)
		}
		if s.Stats().UDPInDatagrams.Load() == in {
			return
		}
		// Delivered: read it back from whichever socket took it.
		for _, c := range []*UDPConn{srv, conn} {
			c.SetReadDeadline(time.Unix(1, 0))
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				continue
			}
			g := header.UDP(seg)
			ulen := int(g.Length())
			if n != ulen-8 || string(buf[:n]) != string(seg[8:ulen]) {
				t.Fatalf("delivered %d bytes, want the %d the length covers", n, ulen-8)
			}
			if from != netip.AddrPortFrom(src, g.SourcePort()) {
				t.Fatalf("from %v", from)
			}
			if g.Checksum() != 0 || v6 {
				if !g[:ulen].IsChecksumValid(tcpipAddr(src), tcpipAddr(dst), checksum.Checksum(seg[8:ulen], 0)) {
					t.Fatalf("delivered a datagram gVisor finds a bad checksum in")
				}
			}
			return
		}
		t.Fatal("counted as delivered, but no socket has it")
	})
}

// tcpipAddr converts a for gVisor.
func tcpipAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.AsSlice()) }
