package ip

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; f.Add adds a few more.

func FuzzIPv4(f *testing.F) {
	f.Add(validIPv4())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseIPv4(b)
		if err != nil {
			if ReasonOf(err) == DropNone {
				t.Fatalf("error without a drop reason: %v", err)
			}
			return
		}
		// gVisor agrees the packet is valid and reads the same fields.
		g := header.IPv4(b)
		if !g.IsValid(len(b)) || !g.IsChecksumValid() {
			t.Fatalf("gVisor rejects a packet we accept: % x", b)
		}
		if g.TotalLength() != p.TotalLength() || g.ID() != p.ID() || g.FragmentOffset() != p.FragmentOffset() ||
			g.Flags() != p.Flags() || g.TTL() != p.TTL() || g.Protocol() != p.Protocol() ||
			int(g.HeaderLength()) != p.HeaderLen() || !bytes.Equal(g.SourceAddressSlice(), p.SrcSlice()) {
			t.Fatalf("field mismatch with gVisor")
		}
		// Rebuilding from the parsed fields gives the same bytes.
		out := make([]byte, len(p))
		copy(out[p.HeaderLen():], p.Payload())
		ob, err := BuildIPv4(out, &IPv4Fields{TOS: p.TOS(), ID: p.ID(), Flags: p.Flags(), FragmentOffset: p.FragmentOffset(),
			TTL: p.TTL(), Protocol: p.Protocol(), Src: p.Src(), Dst: p.Dst(), Options: p.Options()})
		if err != nil {
			t.Fatal(err)
		}
		// The checksum may legitimately differ between 0x0000 and 0xffff
		// forms only when the header sums to zero, which a header with
		// version 4 cannot; so bytes must match exactly.
		if !bytes.Equal(ob, p) {
			t.Fatalf("rebuild differs:\n% x\n% x", []byte(ob), []byte(p))
		}
	})
}

func FuzzIPv6(f *testing.F) {
	f.Add(buildIPv6(f, []ext{{ProtocolHopByHop, 8}, {ProtocolFragment, 8}}, ProtocolTCP, 4, 0, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, info, err := ParseIPv6(b)
		if err != nil {
			if ReasonOf(err) == DropNone {
				t.Fatalf("error without a drop reason: %v", err)
			}
			return
		}
		if !header.IPv6(b).IsValid(len(b)) {
			t.Fatalf("gVisor rejects a packet we accept")
		}
		if info.Offset < IPv6HeaderLen || info.Offset > len(p) || info.ExtHeaders > IPv6MaxExtHeaders {
			t.Fatalf("bad info %+v for len %d", info, len(p))
		}
		if info.HasFragment && (info.FragmentHeaderOffset < IPv6HeaderLen || info.FragmentHeaderOffset+8 > info.Offset) {
			t.Fatalf("bad fragment header offset %+v", info)
		}
		if info.ExtHeaders == 0 && (info.Offset != IPv6HeaderLen || info.Protocol != p.NextHeader()) {
			t.Fatalf("no ext headers but %+v", info)
		}
	})
}

func FuzzICMP(f *testing.F) {
	m, _ := BuildICMPv4Echo(make([]byte, 12), false, 1, 2, []byte("ping"))
	f.Add([]byte(m), false)
	m6, _ := BuildICMPv6Echo(make([]byte, 12), false, 1, 2, []byte("ping"), testSrc6.AsSlice(), testDst6.AsSlice())
	f.Add([]byte(m6), true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := testSrc6.AsSlice(), testDst6.AsSlice()
		if v6 {
			p, err := ParseICMPv6(b, src, dst)
			if err != nil {
				if ReasonOf(err) == DropNone {
					t.Fatal(err)
				}
				return
			}
			if p.ComputeChecksum(src, dst) != p.Checksum() && !(p.Checksum() == 0xffff && p.ComputeChecksum(src, dst) == 0) {
				t.Fatalf("accepted with checksum %#x, want %#x", p.Checksum(), p.ComputeChecksum(src, dst))
			}
			if p.IsError() {
				_ = p.MTU()
				if len(p.Invoking()) < IPv6HeaderLen {
					t.Fatal("short invoking packet accepted")
				}
			}
			return
		}
		p, err := ParseICMPv4(b)
		if err != nil {
			if ReasonOf(err) == DropNone {
				t.Fatal(err)
			}
			return
		}
		if header.ICMPv4Checksum(header.ICMPv4(b[:8]), checksum.Checksum(b[8:], 0)) != p.Checksum() &&
			!(p.Checksum() == 0xffff && p.ComputeChecksum() == 0) {
			t.Fatalf("gVisor computes another checksum")
		}
		if p.IsError() {
			hdr, l4, err := ParseInvokingIPv4(p.Invoking())
			if err != nil || len(l4) < 8 && hdr.TotalLength() >= uint16(hdr.HeaderLen()+8) {
				t.Fatalf("invoking packet: %v, l4 %d bytes", err, len(l4))
			}
		}
		// Echo → reply round trip keeps the checksum valid.
		if p.Type() == ICMPv4Echo {
			pkt := make([]byte, 20+len(b))
			copy(pkt[20:], b)
			ip4, err := BuildIPv4(pkt, &IPv4Fields{TTL: 64, Protocol: ProtocolICMPv4, Src: testSrc4, Dst: testDst4})
			if err != nil {
				t.Fatal(err)
			}
			if err := ReplyToEchoIPv4(ip4, 64); err != nil {
				t.Fatal(err)
			}
			if _, err := ParseIPv4(pkt); err != nil {
				t.Fatal(err)
			}
			if _, err := ParseICMPv4(pkt[20:]); err != nil {
				t.Fatalf("reply checksum broken: %v", err)
			}
		}
	})
}

// FuzzReassembly reads b as a script of fragments (4 bytes each: family,
// id bit and MF, offset in 8-byte units, length) of IPv4 and IPv6 datagrams
// whose payload byte i is always datagramPayload(65536)[i], so a completed
// datagram has known contents, into one reassembler.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0x01, 0x00, 0x00, 0x10, 0x00, 0x00, 0x02, 0x05})
	payload := datagramPayload(65536)
	f.Add([]byte{0x09, 0x00, 0x00, 0x10, 0x08, 0x00, 0x02, 0x05})
	pkt := make([]byte, IPv4MaxTotalLen)
	pkt6 := make([]byte, 48+65536)
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := ReassemblyConfig{Timeout: time.Second, MemoryLimit: 64 << 10, MaxDatagrams: 2, MaxFragments: 16}
		r := NewReassembler(cfg)
		var now time.Duration
		// At most 64 fragments per input keeps executions (and so input
		// minimisation) fast.
		if len(b) > 4*64 {
			b = b[:4*64]
		}
		for len(b) >= 4 {
			ctl := b[0]
			off := int(binary.BigEndian.Uint16(b[1:])&0x1fff) * 8
			n := int(b[3])*16 + int(ctl>>4)
			b = b[4:]
			now += time.Duration(ctl&0x4) * 100 * time.Millisecond
			if off+n > len(payload) {
				n = len(payload) - off
			}
			if ctl&0x8 != 0 {
				if n > 0xffff-IPv6FragmentHeaderLen {
					continue
				}
				p := pkt6[:48+n]
				if _, err := BuildIPv6(p, &IPv6Fields{NextHeader: ProtocolFragment, HopLimit: 1, Src: testSrc6, Dst: testDst6}); err != nil {
					t.Fatal(err)
				}
				PutIPv6FragmentHeader(p[40:], ProtocolUDP, uint16(off), ctl&1 != 0, uint32(ctl&0x2))
				copy(p[48:], payload[off:off+n])
				h, info, err := ParseIPv6(p)
				if err != nil {
					t.Fatal(err)
				}
				whole, done, err := r.ReassembleIPv6(now, h, info)
				if err != nil && ReasonOf(err) == DropNone {
					t.Fatal(err)
				}
				if done && info.HasFragment && !info.IsAtomicFragment() {
					w, winfo, err := ParseIPv6(whole)
					if err != nil {
						t.Fatalf("reassembled packet invalid: %v", err)
					}
					if winfo.HasFragment || winfo.Protocol != ProtocolUDP || !bytes.Equal(w[40:], payload[:len(w)-40]) {
						t.Fatalf("reassembled packet content wrong")
					}
				}
				if r.MemoryUsed() > cfg.MemoryLimit || r.InFlight() > cfg.MaxDatagrams || r.MemoryUsed() < 0 {
					t.Fatalf("limits broken: mem %d, in flight %d", r.MemoryUsed(), r.InFlight())
				}
				continue
			}
			if 20+n > IPv4MaxTotalLen {
				continue
			}
			copy(pkt[20:], payload[off:off+n])
			fl := &IPv4Fields{ID: uint16(ctl & 0x2), TTL: 1, Protocol: ProtocolUDP, Src: testSrc4, Dst: testDst4, FragmentOffset: uint16(off)}
			if ctl&1 != 0 {
				fl.Flags = IPv4FlagMoreFragments
			}
			p, err := BuildIPv4(pkt[:20+n], fl)
			if err != nil {
				t.Fatal(err)
			}
			whole, done, err := r.Reassemble(now, p)
			if err != nil && ReasonOf(err) == DropNone {
				t.Fatal(err)
			}
			if done {
				w, err := ParseIPv4(whole)
				if err != nil {
					t.Fatalf("reassembled datagram invalid: %v", err)
				}
				if w.IsFragment() || !bytes.Equal(w.Payload(), payload[:len(w.Payload())]) {
					t.Fatalf("reassembled datagram content wrong")
				}
			}
			if r.MemoryUsed() > cfg.MemoryLimit || r.InFlight() > cfg.MaxDatagrams || r.MemoryUsed() < 0 {
				t.Fatalf("limits broken: mem %d, in flight %d", r.MemoryUsed(), r.InFlight())
			}
		}
		r.Expire(now + time.Hour)
		if r.MemoryUsed() != 0 || r.InFlight() != 0 {
			t.Fatalf("leak after expiry: mem %d, in flight %d", r.MemoryUsed(), r.InFlight())
		}
	})
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0x00}, uint16(0xffff))
	f.Fuzz(func(t *testing.T, b []byte, initial uint16) {
		if got, want := Checksum(b, initial), checksum.Checksum(b, initial); got != want {
			t.Fatalf("Checksum(% x, %#x) = %#x, gVisor %#x", b, initial, got, want)
		}
	})
}
