package ip

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 header layout (RFC 8200 §3).
const (
	IPv6HeaderLen         = 40
	IPv6FragmentHeaderLen = 8
	// IPv6MaxExtHeaders bounds the extension header chain ParseIPv6 walks.
	// RFC 8200 §4.1 recommends an order in which each header appears at
	// most once (Destination Options twice); 8 leaves room for that plus
	// AH and one experimental header, and caps the work per packet.
	IPv6MaxExtHeaders = 8

	ipv6PayloadLen = 4
	ipv6NextHeader = 6
	ipv6HopLimit   = 7
	ipv6Src        = 8
	ipv6Dst        = 24
)

// IPv6 is a view of an IPv6 packet: fixed header, extension headers and
// upper-layer data. Methods assume the view was returned by ParseIPv6 or
// BuildIPv6 (at least IPv6HeaderLen long).
type IPv6 []byte

// IPv6Info is what ParseIPv6 learns by walking the extension headers.
type IPv6Info struct {
	// Protocol is the first header that is not a walkable extension
	// header: the upper-layer protocol (TCP, ICMPv6, ...), ProtocolESP
	// (encrypted, cannot be walked), ProtocolNoNext, or, in a non-first
	// fragment, the Next Header of the Fragment header.
	Protocol uint8
	// Offset is the offset of Protocol's header from the start of the
	// packet (len(packet) for ProtocolNoNext at the very end).
	Offset int
	// ExtHeaders is the number of extension headers walked.
	ExtHeaders int
	// HasFragment reports a Fragment header (RFC 8200 §4.5); the fields
	// below describe it.
	HasFragment bool
	// FragmentOffset is the fragment offset in bytes.
	FragmentOffset uint16
	// MoreFragments is the M flag.
	MoreFragments bool
	// FragmentID is the identification field.
	FragmentID uint32
	// FragmentHeaderOffset is where the Fragment header starts.
	FragmentHeaderOffset int
}

// IsAtomicFragment reports a Fragment header with offset 0 and M clear
// (RFC 6946): the packet is whole and is processed as if unfragmented.
func (in *IPv6Info) IsAtomicFragment() bool {
	return in.HasFragment && in.FragmentOffset == 0 && !in.MoreFragments
}

// ParseIPv6 validates b as an IPv6 packet, cuts the view to 40 + payload
// length (dropping trailing padding) and walks the extension header chain
// to the upper-layer protocol. Walked: Hop-by-Hop (only as the first
// header, RFC 8200 §4.1), Routing, Destination Options, Authentication
// (RFC 4302 §2.2 length in 4-octet units), Mobility, HIP, Shim6 and the
// experimental values 253/254 (RFC 6564 uniform format), and Fragment. The
// walk stops at the first other value, at ESP (RFC 4303: the rest is
// encrypted), at No Next Header, and after a Fragment header that is not
// an atomic fragment (later data belongs to the fragmentable part and is
// only meaningful after reassembly). Jumbograms (payload length 0 with a
// Jumbo Payload option, RFC 2675) are not supported: their Hop-by-Hop
// header is outside the zero-length payload and is reported as truncated.
// Errors are DropReason values.
func ParseIPv6(b []byte) (IPv6, IPv6Info, error) {
	var info IPv6Info
	if len(b) < IPv6HeaderLen {
		return nil, info, DropTooShort
	}
	if b[0]>>4 != 6 {
		return nil, info, DropBadVersion
	}
	end := IPv6HeaderLen + int(binary.BigEndian.Uint16(b[ipv6PayloadLen:]))
	if end > len(b) {
		return nil, info, DropTruncated
	}
	b = b[:end]
	next := b[ipv6NextHeader]
	if next == ProtocolTCP || next == ProtocolICMPv6 || next == ProtocolUDP {
		// Fast path: no extension headers, the common case.
		info.Protocol, info.Offset = next, IPv6HeaderLen
		return IPv6(b), info, nil
	}
	off := IPv6HeaderLen
	sawFragment := false
	for n := 0; ; n++ {
		var hlen int
		switch next {
		case ProtocolHopByHop, ProtocolRouting, ProtocolDstOpts,
			ProtocolMobility, ProtocolHIP, ProtocolShim6, ProtocolExp1, ProtocolExp2:
			if next == ProtocolHopByHop && n != 0 {
				return nil, info, DropExtHeaderOrder
			}
			if off+2 > end {
				return nil, info, DropExtHeaderTruncated
			}
			// Hdr Ext Len is in 8-octet units, not counting the first 8.
			hlen = (int(b[off+1]) + 1) * 8
		case ProtocolAH:
			if off+2 > end {
				return nil, info, DropExtHeaderTruncated
			}
			// RFC 4302 §2.2: Payload Len is in 4-octet units, minus 2.
			hlen = (int(b[off+1]) + 2) * 4
		case ProtocolFragment:
			if sawFragment {
				return nil, info, DropExtHeaderOrder
			}
			sawFragment = true
			hlen = IPv6FragmentHeaderLen
		default:
			// Upper layer, ESP or No Next Header: the walk ends here.
			info.Protocol, info.Offset = next, off
			return IPv6(b), info, nil
		}
		if n >= IPv6MaxExtHeaders {
			return nil, info, DropExtHeaderChainTooLong
		}
		if off+hlen > end {
			return nil, info, DropExtHeaderTruncated
		}
		info.ExtHeaders++
		cur := next
		next = b[off]
		if cur == ProtocolFragment {
			fo := binary.BigEndian.Uint16(b[off+2:])
			info.HasFragment = true
			info.FragmentHeaderOffset = off
			info.FragmentOffset = fo &^ 7
			info.MoreFragments = fo&1 != 0
			info.FragmentID = binary.BigEndian.Uint32(b[off+4:])
			off += hlen
			if !info.IsAtomicFragment() {
				info.Protocol, info.Offset = next, off
				return IPv6(b), info, nil
			}
			continue
		}
		off += hlen
	}
}

// Version returns the version field (6 for a valid packet).
func (b IPv6) Version() uint8 { return b[0] >> 4 }

// TrafficClass returns the traffic class (DSCP and ECN).
func (b IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(b[0:]) >> 4) }

// FlowLabel returns the 20-bit flow label.
func (b IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(b[0:]) & 0xfffff }

// PayloadLength returns the payload length field (extension headers
// included).
func (b IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(b[ipv6PayloadLen:]) }

// NextHeader returns the fixed header's Next Header field.
func (b IPv6) NextHeader() uint8 { return b[ipv6NextHeader] }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[ipv6HopLimit] }

// Src returns the source address.
func (b IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(b[ipv6Src : ipv6Src+16])) }

// Dst returns the destination address.
func (b IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(b[ipv6Dst : ipv6Dst+16])) }

// SrcSlice returns the source address bytes (aliasing the packet).
func (b IPv6) SrcSlice() []byte { return b[ipv6Src : ipv6Src+16 : ipv6Src+16] }

// DstSlice returns the destination address bytes (aliasing the packet).
func (b IPv6) DstSlice() []byte { return b[ipv6Dst : ipv6Dst+16 : ipv6Dst+16] }

// Payload returns the bytes after the fixed header (extension headers
// included).
func (b IPv6) Payload() []byte { return b[IPv6HeaderLen:] }

// SetPayloadLength stores the payload length field.
func (b IPv6) SetPayloadLength(n uint16) { binary.BigEndian.PutUint16(b[ipv6PayloadLen:], n) }

// SetHopLimit stores the hop limit.
func (b IPv6) SetHopLimit(v uint8) { b[ipv6HopLimit] = v }

// SwapAddrs exchanges source and destination; upper-layer checksums stay
// valid because the pseudo-header sum does not depend on the order.
func (b IPv6) SwapAddrs() {
	var t [16]byte
	copy(t[:], b[ipv6Src:ipv6Src+16])
	copy(b[ipv6Src:ipv6Src+16], b[ipv6Dst:ipv6Dst+16])
	copy(b[ipv6Dst:ipv6Dst+16], t[:])
}

// IPv6Fields describes a fixed header for BuildIPv6.
type IPv6Fields struct {
	TrafficClass uint8
	FlowLabel    uint32 // 20 bits
	// PayloadLength excludes the fixed header; 0 means len(dst)-40.
	PayloadLength uint16
	// NextHeader is the first extension header or the upper-layer protocol.
	NextHeader uint8
	HopLimit   uint8
	Src, Dst   netip.Addr // both IPv6 (IPv4-mapped allowed)
}

// BuildIPv6 writes the fixed header described by f at the start of dst and
// returns the view dst[:40+PayloadLength]. Extension headers and payload are
// expected in place at dst[40:] (see PutIPv6FragmentHeader). It does not
// allocate.
func BuildIPv6(dst []byte, f *IPv6Fields) (IPv6, error) {
	if !f.Src.Is6() || !f.Dst.Is6() {
		return nil, ErrBadAddress
	}
	if f.FlowLabel > 0xfffff {
		return nil, ErrBadField
	}
	pl := int(f.PayloadLength)
	if pl == 0 {
		pl = len(dst) - IPv6HeaderLen
	}
	if pl < 0 || IPv6HeaderLen+pl > len(dst) {
		return nil, ErrBufferTooSmall
	}
	if pl > 0xffff {
		return nil, ErrBadField
	}
	b := IPv6(dst[:IPv6HeaderLen+pl])
	binary.BigEndian.PutUint32(b[0:], 6<<28|uint32(f.TrafficClass)<<20|f.FlowLabel)
	binary.BigEndian.PutUint16(b[ipv6PayloadLen:], uint16(pl))
	b[ipv6NextHeader] = f.NextHeader
	b[ipv6HopLimit] = f.HopLimit
	src, d := f.Src.As16(), f.Dst.As16()
	copy(b[ipv6Src:], src[:])
	copy(b[ipv6Dst:], d[:])
	return b, nil
}

// PutIPv6FragmentHeader writes a Fragment header (RFC 8200 §4.5) into
// dst[:8]: next is the Next Header value, offset the fragment offset in
// bytes (a multiple of 8), more the M flag.
func PutIPv6FragmentHeader(dst []byte, next uint8, offset uint16, more bool, id uint32) error {
	if len(dst) < IPv6FragmentHeaderLen {
		return ErrBufferTooSmall
	}
	if offset%8 != 0 {
		return ErrBadField
	}
	dst[0], dst[1] = next, 0
	fo := offset
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(dst[2:], fo)
	binary.BigEndian.PutUint32(dst[4:], id)
	return nil
}
