package tun

import (
	"encoding/binary"
	"net/netip"

	"github.com/ustack-net/ustack/ip"
)

// Raw packet builders for the tests (the ip/ and tcp/ views are other
// packages' business; these stay byte-offset simple on purpose).

type tcpPkt struct {
	src, dst         netip.Addr
	sport, dport     uint16
	seq, ack         uint32
	flags            uint8
	window           uint16
	options, payload []byte
	id               uint16
}

const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
	flagCWR = 0x80
)

// build returns headroom bytes of zeroes followed by the packet with a full
// TCP checksum.
func (p tcpPkt) build(headroom int) []byte {
	v6 := p.src.Is6()
	iphLen := 20
	if v6 {
		iphLen = 40
	}
	thl := 20 + len(p.options)
	total := iphLen + thl + len(p.payload)
	b := make([]byte, headroom+total)
	pkt := b[headroom:]
	if v6 {
		pkt[0] = 0x60
		binary.BigEndian.PutUint16(pkt[4:], uint16(total-40))
		pkt[6], pkt[7] = 6, 64
		s, d := p.src.As16(), p.dst.As16()
		copy(pkt[8:], s[:])
		copy(pkt[24:], d[:])
	} else {
		pkt[0] = 0x45
		binary.BigEndian.PutUint16(pkt[2:], uint16(total))
		binary.BigEndian.PutUint16(pkt[4:], p.id)
		pkt[6] = 0x40 // DF
		pkt[8], pkt[9] = 64, 6
		s, d := p.src.As4(), p.dst.As4()
		copy(pkt[12:], s[:])
		copy(pkt[16:], d[:])
		binary.BigEndian.PutUint16(pkt[10:], ^ip.Checksum(pkt[:20], 0))
	}
	t := pkt[iphLen:]
	binary.BigEndian.PutUint16(t[0:], p.sport)
	binary.BigEndian.PutUint16(t[2:], p.dport)
	binary.BigEndian.PutUint32(t[4:], p.seq)
	binary.BigEndian.PutUint32(t[8:], p.ack)
	t[12] = uint8(thl/4) << 4
	t[13] = p.flags
	binary.BigEndian.PutUint16(t[14:], p.window)
	copy(t[20:], p.options)
	copy(t[thl:], p.payload)
	binary.BigEndian.PutUint16(t[16:], ^ip.Checksum(t, pseudo(pkt, iphLen)))
	return b
}

// pseudo returns the pseudo-header sum of the IP packet pkt's TCP segment.
func pseudo(pkt []byte, iphLen int) uint16 {
	if pkt[0]>>4 == 6 {
		return ip.PseudoHeaderChecksum(6, pkt[8:24], pkt[24:40], uint16(len(pkt)-iphLen))
	}
	return ip.PseudoHeaderChecksum(6, pkt[12:16], pkt[16:20], uint16(len(pkt)-iphLen))
}

// tcpChecksumOK verifies the TCP checksum of an IP packet.
func tcpChecksumOK(pkt []byte) bool {
	iphLen := 40
	if pkt[0]>>4 == 4 {
		iphLen = int(pkt[0]&0xf) * 4
		if ip.Checksum(pkt[:iphLen], 0) != 0xffff {
			return false
		}
	}
	return ip.Checksum(pkt[iphLen:], pseudo(pkt, iphLen)) == 0xffff
}

// numbered returns a 100-byte IPv4 UDP-ish packet carrying i, for tests that
// only follow packets around.
func numbered(i int) []byte {
	b := make([]byte, 100)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 100)
	b[9] = 17
	binary.BigEndian.PutUint32(b[20:], uint32(i))
	return b
}

func numberOf(b []byte) int { return int(binary.BigEndian.Uint32(b[20:])) }

// patterned returns n bytes counting from seed.
func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// newBufs returns n buffers of size bytes.
func newBufs(n, size int) [][]byte {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs
}
