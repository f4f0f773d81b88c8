package drill

import (
	"encoding/binary"
	"io"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// pcapWriter writes a classic pcap file of raw IP packets (LINKTYPE_RAW),
// timestamped with virtual time.
type pcapWriter struct {
	w   io.Writer
	err error
}

func newPcapWriter(w io.Writer) *pcapWriter {
	p := &pcapWriter{w: w}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], 101) // LINKTYPE_RAW
	_, p.err = w.Write(h[:])
	return p
}

func (p *pcapWriter) write(at time.Duration, pkt []byte) {
	if p.err != nil {
		return
	}
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(at/time.Second))
	binary.LittleEndian.PutUint32(h[4:], uint32((at%time.Second)/time.Microsecond))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(pkt)))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(pkt)))
	if _, p.err = p.w.Write(h[:]); p.err == nil {
		_, p.err = p.w.Write(pkt)
	}
}

// checksumOK verifies the TCP checksum of a raw IPv4/IPv6 packet built by
// the harness from a DUT's segment.
func checksumOK(pkt []byte, v6 bool) bool {
	if v6 {
		if len(pkt) < 40 {
			return false
		}
		return tcp.VerifyChecksum(pkt[40:], pkt[8:24], pkt[24:40])
	}
	if len(pkt) < 20 {
		return false
	}
	ihl := int(pkt[0]&0xf) * 4
	return tcp.VerifyChecksum(pkt[ihl:], pkt[12:16], pkt[16:20])
}
