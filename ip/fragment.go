package ip

import (
	"encoding/binary"
	"errors"
)

// ErrDontFragment: the datagram is too big for the MTU and forbids
// fragmentation (DF).
var ErrDontFragment = errors.New("ip: datagram needs fragmentation but DF is set")

// FragmentIPv4 cuts pkt, a whole IPv4 datagram bigger than mtu, into
// fragments of at most mtu bytes (RFC 791 §3.2 "Fragmentation", RFC 1122
// §3.3.5): the data of every fragment but the last is a multiple of 8
// bytes; the first fragment keeps all the options, later ones only those
// whose copied flag is set (padded with End of Option List). All carry
// pkt's ID; MF is set on all but the last. For each fragment, buf(n) gives
// a buffer of n bytes to write it into, or nil to stop (ErrBufferTooSmall).
// It returns how many fragments were written. pkt must be a valid header
// (ParseIPv4); an mtu too small for the header and 8 bytes of data is
// ErrBadField.
func FragmentIPv4(pkt IPv4, mtu int, buf func(n int) []byte) (int, error) {
	if len(pkt) <= mtu {
		b := buf(len(pkt))
		if b == nil {
			return 0, ErrBufferTooSmall
		}
		copy(b, pkt)
		return 1, nil
	}
	if pkt.DontFragment() {
		return 0, ErrDontFragment
	}
	hl := pkt.HeaderLen()
	// The header of the later fragments: only the copied options.
	var later [60]byte
	copy(later[:], pkt[:IPv4MinHeaderLen])
	n := IPv4MinHeaderLen
	for opts := pkt.Options(); len(opts) > 0; {
		kind := opts[0]
		if kind == 0 { // End of Option List
			break
		}
		size := 1
		if kind != 1 { // not No Operation: type, length, data
			if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
				break // malformed: copy no more
			}
			size = int(opts[1])
		}
		if kind&0x80 != 0 {
			n += copy(later[n:], opts[:size])
		}
		opts = opts[size:]
	}
	for n%4 != 0 {
		later[n] = 0
		n++
	}
	laterHL := n
	data := pkt[hl:]
	if mtu-hl < 8 || mtu-laterHL < 8 {
		return 0, ErrBadField
	}
	count := 0
	for off := 0; off < len(data); {
		h := pkt[:hl]
		if off > 0 {
			h = later[:laterHL]
		}
		size := min(len(data)-off, (mtu-len(h))&^7)
		b := buf(len(h) + size)
		if b == nil {
			return count, ErrBufferTooSmall
		}
		copy(b, h)
		copy(b[len(h):], data[off:off+size])
		f := IPv4(b)
		b[0] = 4<<4 | byte(len(h)/4)
		f.SetTotalLength(uint16(len(h) + size))
		frag := uint16(off / 8)
		if off+size < len(data) {
			frag |= uint16(IPv4FlagMoreFragments) << 13
		}
		binary.BigEndian.PutUint16(b[ipv4FlagsFrag:], frag)
		f.UpdateChecksum()
		off += size
		count++
	}
	return count, nil
}
