package ip

import (
	"bytes"
	"encoding/binary"
	"sort"
	"time"
)

// ReassemblyConfig bounds an IPv4 Reassembler. Zero fields take defaults.
type ReassemblyConfig struct {
	// Timeout is how long a datagram may take to complete, counted from
	// its first fragment. Default 30 s (Linux ipfrag_time; RFC 791 suggests
	// 15 s as a lower bound).
	Timeout time.Duration
	// MemoryLimit caps the bytes held: fragment data plus a fixed
	// per-fragment and per-datagram overhead. Default 4 MiB (Linux
	// ipfrag_high_thresh).
	MemoryLimit int
	// MaxDatagrams caps the datagrams in flight. Default 1024.
	MaxDatagrams int
	// MaxFragments caps the fragments of one datagram, so a flood of tiny
	// fragments costs bounded work. Default 256 (a 64 KiB datagram over a
	// 576-byte path needs 117).
	MaxFragments int
}

// Reassembly defaults (see ReassemblyConfig).
const (
	DefaultReassemblyTimeout      = 30 * time.Second
	DefaultReassemblyMemoryLimit  = 4 << 20
	DefaultReassemblyMaxDatagrams = 1024
	DefaultReassemblyMaxFragments = 256

	// fragOverhead and datagramOverhead approximate the bookkeeping cost
	// charged to MemoryLimit besides the data, so that many tiny fragments
	// cannot hide behind a small byte count.
	fragOverhead     = 64
	datagramOverhead = 256
)

// ReassemblyStats counts what the Reassembler did. Timeout and Evicted
// count datagrams; the other drop counters count fragments.
type ReassemblyStats struct {
	Fragments   uint64 // fragments offered
	Reassembled uint64 // datagrams completed
	Overlap     uint64 // fragments overlapping another: datagram dropped (RFC 5722)
	Duplicate   uint64 // exact duplicates ignored
	TooBig      uint64 // datagram would exceed 65535 bytes: dropped
	Bad         uint64 // inconsistent fragments (see DropFragBad): datagram dropped
	Memory      uint64 // refused because MemoryLimit was reached
	TooMany     uint64 // more than MaxFragments: datagram dropped
	Discarded   uint64 // fragments of a datagram dropped earlier, ignored
	Timeout     uint64 // datagrams expired incomplete
	Evicted     uint64 // oldest datagrams evicted to respect MaxDatagrams
}

// fragKey identifies a datagram: RFC 791 §3.2's source, destination,
// protocol and identification for IPv4; RFC 8200 §4.5's source,
// destination and identification for IPv6 (proto 0).
type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

// fragment is one piece of payload, [off, off+len(data)).
type fragment struct {
	off  int
	data []byte
}

// datagram is a datagram under reassembly.
type datagram struct {
	key      fragKey
	deadline time.Duration
	frags    []fragment // sorted by off, non-overlapping
	// header is what precedes the fragment data in the offset-0 fragment,
	// once seen: the IPv4 header, or the IPv6 unfragmentable part and the
	// Fragment header (at fragHdr).
	header  []byte
	fragHdr int
	end     int // payload length, known once the last fragment is seen; -1 before
	have    int // payload bytes held
	mem     int // bytes charged to the memory limit
	// dead marks a datagram dropped for overlap or inconsistency: it is
	// kept without data until its deadline so that its remaining fragments
	// are discarded too, as RFC 5722 §4 requires.
	dead       bool
	prev, next *datagram // creation order, oldest first
}

// Reassembler reassembles IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5)
// datagrams from fragments, both families under the same limits, using
// sorted ranges instead of RFC 815's hole list: the sort makes the overlap
// check a neighbour comparison. Any overlap drops the whole datagram and
// its later fragments (RFC 5722, applied to IPv4 too against overlap-based
// evasion, RFC 1858). It is not safe for concurrent use.
type Reassembler struct {
	cfg       ReassemblyConfig
	m         map[fragKey]*datagram
	head      *datagram // oldest
	tail      *datagram // newest
	mem       int
	stats     ReassemblyStats
	onTimeout func(first []byte)
}

// OnTimeout sets f to be called, inside Expire (and so inside Reassemble),
// for every datagram that times out after its first fragment came: first
// is that fragment as received (IP header included), valid during the call
// only, for an ICMP Time Exceeded (RFC 792, RFC 4443 §3.3, RFC 8200 §4.5).
func (r *Reassembler) OnTimeout(f func(first []byte)) { r.onTimeout = f }

// NewReassembler returns a Reassembler with cfg's limits.
func NewReassembler(cfg ReassemblyConfig) *Reassembler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultReassemblyTimeout
	}
	if cfg.MemoryLimit <= 0 {
		cfg.MemoryLimit = DefaultReassemblyMemoryLimit
	}
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = DefaultReassemblyMaxDatagrams
	}
	if cfg.MaxFragments <= 0 {
		cfg.MaxFragments = DefaultReassemblyMaxFragments
	}
	return &Reassembler{cfg: cfg, m: make(map[fragKey]*datagram)}
}

// Stats returns a snapshot of the counters.
func (r *Reassembler) Stats() ReassemblyStats { return r.stats }

// InFlight returns the number of datagrams held (including discarded ones
// remembered until their deadline).
func (r *Reassembler) InFlight() int { return len(r.m) }

// MemoryUsed returns the bytes currently charged to MemoryLimit.
func (r *Reassembler) MemoryUsed() int { return r.mem }

// Expire drops datagrams whose deadline is at or before now and returns how
// many incomplete ones timed out. now is the caller's monotonic clock.
func (r *Reassembler) Expire(now time.Duration) int {
	n := 0
	// Every datagram gets the same timeout from its creation, so creation
	// order is deadline order.
	for d := r.head; d != nil && d.deadline <= now; d = r.head {
		if !d.dead {
			n++
			r.stats.Timeout++
			if r.onTimeout != nil && d.header != nil && len(d.frags) > 0 && d.frags[0].off == 0 {
				first := make([]byte, 0, len(d.header)+len(d.frags[0].data))
				first = append(append(first, d.header...), d.frags[0].data...)
				r.onTimeout(first)
			}
		}
		r.remove(d)
	}
	return n
}

// NextDeadline returns the earliest deadline, for arming a timer; false
// when nothing is held.
func (r *Reassembler) NextDeadline() (time.Duration, bool) {
	if r.head == nil {
		return 0, false
	}
	return r.head.deadline, true
}

// Reassemble takes one packet at time now. pkt should come from ParseIPv4.
// A packet that is not a fragment is returned as is with done true. For a
// fragment: done false and err nil means it was stored; done true returns
// the reassembled datagram in a freshly allocated buffer that the caller
// owns, with the offset-0 fragment's header (options included), MF and
// offset cleared and the checksum recomputed; err is a DropReason when
// the fragment was refused (and, for overlap, bad, too big and too many,
// its datagram dropped).
func (r *Reassembler) Reassemble(now time.Duration, pkt IPv4) (whole []byte, done bool, err error) {
	if len(pkt) < IPv4MinHeaderLen {
		return nil, false, DropTooShort
	}
	hl := pkt.HeaderLen()
	if hl < IPv4MinHeaderLen || hl > len(pkt) {
		return nil, false, DropBadHeaderLength
	}
	if !pkt.IsFragment() {
		return pkt, true, nil
	}
	var key fragKey
	copy(key.src[:], pkt[ipv4Src:ipv4Src+4])
	copy(key.dst[:], pkt[ipv4Dst:ipv4Dst+4])
	key.id, key.proto = uint32(pkt.ID()), pkt.Protocol()
	off := int(pkt.FragmentOffset())
	var hdr []byte
	if off == 0 {
		hdr = pkt[:hl]
	}
	return r.add(now, key, hdr, 0, off, pkt[hl:], pkt.MoreFragments(), IPv4MaxTotalLen-IPv4MinHeaderLen)
}

// ReassembleIPv6 takes one packet at time now: pkt and info from
// ParseIPv6, with a Fragment header that is not an atomic fragment (RFC
// 6946: atomic fragments are whole packets and never enter reassembly).
// Results are those of Reassemble; the reassembled packet is the first
// fragment's unfragmentable part followed by the data, the Fragment header
// removed and its Next Header moved into the header before it (RFC 8200
// §4.5), in a buffer the caller owns.
func (r *Reassembler) ReassembleIPv6(now time.Duration, pkt IPv6, info IPv6Info) (whole []byte, done bool, err error) {
	if !info.HasFragment || info.IsAtomicFragment() {
		return pkt, true, nil
	}
	fho := info.FragmentHeaderOffset
	if fho < IPv6HeaderLen || fho+IPv6FragmentHeaderLen > len(pkt) {
		return nil, false, DropExtHeaderTruncated
	}
	var key fragKey
	copy(key.src[:], pkt[ipv6Src:ipv6Src+16])
	copy(key.dst[:], pkt[ipv6Dst:ipv6Dst+16])
	key.id, key.v6 = info.FragmentID, true
	off := int(info.FragmentOffset)
	dataStart := fho + IPv6FragmentHeaderLen
	var hdr []byte
	if off == 0 {
		if !headerChainComplete(pkt[dataStart:], pkt[fho]) {
			r.stats.Bad++
			return nil, false, DropFragHeaderChain
		}
		hdr = pkt[:dataStart]
	}
	// The payload length counts the unfragmentable part after the fixed
	// header too.
	return r.add(now, key, hdr, fho, off, pkt[dataStart:], info.MoreFragments, 0xffff-(fho-IPv6HeaderLen))
}

// headerChainComplete reports whether b, the data of a first fragment whose
// Fragment header names next, holds the rest of the extension header chain
// and the upper-layer header (RFC 8200 §4.5, RFC 7112 §5): TCP's 20 bytes,
// UDP's and ICMPv6's 8, as Linux's ipv6frag_thdr_truncated checks.
func headerChainComplete(b []byte, next uint8) bool {
	off := 0
	for n := 0; n <= IPv6MaxExtHeaders; n++ {
		var hlen int
		switch next {
		case ProtocolRouting, ProtocolDstOpts, ProtocolMobility, ProtocolHIP, ProtocolShim6, ProtocolExp1, ProtocolExp2:
			if off+2 > len(b) {
				return false
			}
			hlen = (int(b[off+1]) + 1) * 8
		case ProtocolAH:
			if off+2 > len(b) {
				return false
			}
			hlen = (int(b[off+1]) + 2) * 4
		case ProtocolTCP:
			return off+20 <= len(b)
		case ProtocolUDP, ProtocolICMPv6:
			return off+8 <= len(b)
		default:
			// No Next Header, ESP, or a protocol whose header we do not
			// know: nothing more to require.
			return true
		}
		if off+hlen > len(b) {
			return false
		}
		next = b[off]
		off += hlen
	}
	return false
}

// add stores one fragment: data at offset off (more: not the last), hdr
// what precedes it when off is 0 (fragHdr: where an IPv6 Fragment header
// starts in it), maxEnd the largest payload the header allows.
func (r *Reassembler) add(now time.Duration, key fragKey, hdr []byte, fragHdr, off int, payload []byte, more bool, maxEnd int) (whole []byte, done bool, err error) {
	r.stats.Fragments++
	r.Expire(now)
	end := off + len(payload)
	hl := len(hdr)
	d := r.m[key]
	if d != nil && d.dead {
		r.stats.Discarded++
		return nil, false, DropFragDiscarded
	}

	// Per-fragment checks that condemn the datagram (RFC 791 §3.2, RFC
	// 8200 §4.5): every fragment but the last carries a non-zero multiple
	// of 8 bytes, and the datagram cannot grow beyond 65535 bytes. Any
	// legal size down to 8 bytes is taken (RFC 1122 §3.3.2): RFC 1858's
	// tiny-fragment rule is for packet filters, and a host reassembles
	// before it looks at transport headers.
	switch {
	case more && (len(payload) == 0 || len(payload)%8 != 0):
		return nil, false, r.condemn(d, now, key, &r.stats.Bad, DropFragBad)
	case end > maxEnd:
		return nil, false, r.condemn(d, now, key, &r.stats.TooBig, DropFragTooBig)
	}

	cost := len(payload) + fragOverhead
	if off == 0 {
		cost += hl // the header kept for the reassembled datagram
	}
	if d == nil {
		cost += datagramOverhead
	}
	if r.mem+cost > r.cfg.MemoryLimit {
		// Refuse rather than evict: the memory cap must hold under a flood
		// without letting the flood flush datagrams in progress. The
		// datagram this fragment belonged to cannot complete any more, so
		// it is freed now instead of at its deadline.
		r.stats.Memory++
		if d != nil {
			r.remove(d)
		}
		return nil, false, DropFragMemory
	}

	if d == nil {
		if len(r.m) >= r.cfg.MaxDatagrams {
			// The oldest datagram is the one most likely to have lost a
			// fragment for good.
			r.stats.Evicted++
			r.remove(r.head)
		}
		// cost already includes datagramOverhead; it is charged below
		// together with the data.
		d = &datagram{key: key, deadline: now + r.cfg.Timeout, end: -1}
		r.m[key] = d
		r.pushBack(d)
	}

	if !more {
		if d.end >= 0 && d.end != end {
			return nil, false, r.condemn(d, now, key, &r.stats.Bad, DropFragBad)
		}
		if n := len(d.frags); n > 0 && d.frags[n-1].off+len(d.frags[n-1].data) > end {
			return nil, false, r.condemn(d, now, key, &r.stats.Bad, DropFragBad)
		}
		d.end = end
	} else if d.end >= 0 && end > d.end {
		return nil, false, r.condemn(d, now, key, &r.stats.Bad, DropFragBad)
	}

	// Find the insertion point and compare with the neighbours.
	i := sort.Search(len(d.frags), func(i int) bool { return d.frags[i].off >= off })
	if i < len(d.frags) && d.frags[i].off == off && len(d.frags[i].data) == len(payload) {
		if bytes.Equal(d.frags[i].data, payload) {
			r.stats.Duplicate++
			return nil, false, DropFragDuplicate
		}
		return nil, false, r.condemn(d, now, key, &r.stats.Overlap, DropFragOverlap)
	}
	if (i > 0 && d.frags[i-1].off+len(d.frags[i-1].data) > off) ||
		(i < len(d.frags) && d.frags[i].off < end) ||
		(len(payload) == 0 && i < len(d.frags) && d.frags[i].off == off) {
		return nil, false, r.condemn(d, now, key, &r.stats.Overlap, DropFragOverlap)
	}
	if len(d.frags) >= r.cfg.MaxFragments {
		return nil, false, r.condemn(d, now, key, &r.stats.TooMany, DropFragTooMany)
	}
	if off == 0 {
		d.header = append([]byte(nil), hdr...)
		d.fragHdr = fragHdr
	}
	d.frags = append(d.frags, fragment{})
	copy(d.frags[i+1:], d.frags[i:])
	d.frags[i] = fragment{off: off, data: append([]byte(nil), payload...)}
	d.have += len(payload)
	d.mem += cost
	r.mem += cost

	if d.end < 0 || d.have != d.end || d.header == nil {
		return nil, false, nil
	}
	// Non-overlapping pieces inside [0, end) that add up to end cover it.
	var out []byte
	if key.v6 {
		out, err = d.assemble6()
	} else {
		out, err = d.assemble4()
	}
	if err != nil {
		return nil, false, r.condemn(d, now, key, &r.stats.TooBig, DropFragTooBig)
	}
	r.remove(d)
	r.stats.Reassembled++
	return out, true, nil
}

// assemble4 builds the reassembled IPv4 datagram.
func (d *datagram) assemble4() ([]byte, error) {
	total := len(d.header) + d.end
	if total > IPv4MaxTotalLen {
		// Only now is the first fragment's header length known for sure.
		return nil, DropFragTooBig
	}
	out := make([]byte, total)
	copy(out, d.header)
	for _, f := range d.frags {
		copy(out[len(d.header)+f.off:], f.data)
	}
	h := IPv4(out)
	h.SetTotalLength(uint16(total))
	// Keep DF, clear MF (bit 13) and the offset (bits 0-12).
	binary.BigEndian.PutUint16(h[ipv4FlagsFrag:], binary.BigEndian.Uint16(h[ipv4FlagsFrag:])&^0x3fff)
	h.UpdateChecksum()
	return out, nil
}

// assemble6 builds the reassembled IPv6 packet: the unfragmentable part,
// whose last Next Header becomes the Fragment header's, then the data.
func (d *datagram) assemble6() ([]byte, error) {
	unfrag := d.header[:d.fragHdr]
	total := len(unfrag) + d.end
	if total-IPv6HeaderLen > 0xffff {
		return nil, DropFragTooBig
	}
	out := make([]byte, total)
	copy(out, unfrag)
	for _, f := range d.frags {
		copy(out[len(unfrag)+f.off:], f.data)
	}
	// Find the Next Header field that names the Fragment header: the
	// fixed header's, or that of the last extension header before it
	// (ParseIPv6 walked this chain already).
	nh := ipv6NextHeader
	for off := IPv6HeaderLen; off < d.fragHdr; {
		var n int
		if out[nh] == ProtocolAH {
			n = (int(out[off+1]) + 2) * 4
		} else {
			n = (int(out[off+1]) + 1) * 8
		}
		nh = off
		off += n
	}
	out[nh] = d.header[d.fragHdr] // the Fragment header's Next Header
	IPv6(out).SetPayloadLength(uint16(total - IPv6HeaderLen))
	return out, nil
}

// condemn counts reason in ctr and replaces the datagram (if any) by a
// dead marker that discards its later fragments until its deadline.
func (r *Reassembler) condemn(d *datagram, now time.Duration, key fragKey, ctr *uint64, reason DropReason) error {
	*ctr++
	if d == nil {
		if len(r.m) >= r.cfg.MaxDatagrams || r.mem+datagramOverhead > r.cfg.MemoryLimit {
			// No room to remember it: dropping this fragment is enough.
			return reason
		}
		d = &datagram{key: key, deadline: now + r.cfg.Timeout, end: -1}
		r.m[key] = d
		r.pushBack(d)
		d.mem = datagramOverhead
		r.mem += datagramOverhead
	}
	r.mem -= d.mem - datagramOverhead
	d.mem = datagramOverhead
	d.frags, d.header, d.dead = nil, nil, true
	return reason
}

func (r *Reassembler) pushBack(d *datagram) {
	d.prev, d.next = r.tail, nil
	if r.tail != nil {
		r.tail.next = d
	} else {
		r.head = d
	}
	r.tail = d
}

func (r *Reassembler) remove(d *datagram) {
	if d.prev != nil {
		d.prev.next = d.next
	} else {
		r.head = d.next
	}
	if d.next != nil {
		d.next.prev = d.prev
	} else {
		r.tail = d.prev
	}
	d.prev, d.next = nil, nil
	delete(r.m, d.key)
	r.mem -= d.mem
}
