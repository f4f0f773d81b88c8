package ip

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 header layout (RFC 791 §3.1).
const (
	IPv4MinHeaderLen = 20    // header without options
	IPv4MaxHeaderLen = 60    // IHL = 15
	IPv4MaxTotalLen  = 65535 // largest total length

	ipv4VersionIHL = 0
	ipv4TOS        = 1
	ipv4TotalLen   = 2
	ipv4ID         = 4
	ipv4FlagsFrag  = 6
	ipv4TTL        = 8
	ipv4Protocol   = 9
	ipv4Checksum   = 10
	ipv4Src        = 12
	ipv4Dst        = 16
)

// IPv4 flags as returned by IPv4.Flags (the top three bits of the
// flags/fragment-offset word, RFC 791 §3.1).
const (
	IPv4FlagMoreFragments uint8 = 1 << 0 // MF
	IPv4FlagDontFragment  uint8 = 1 << 1 // DF
	IPv4FlagReserved      uint8 = 1 << 2 // must be zero
)

// IP protocol numbers used by the stack (IANA "Assigned Internet Protocol
// Numbers").
const (
	ProtocolHopByHop uint8 = 0
	ProtocolICMPv4   uint8 = 1
	ProtocolTCP      uint8 = 6
	ProtocolUDP      uint8 = 17
	ProtocolRouting  uint8 = 43
	ProtocolFragment uint8 = 44
	ProtocolESP      uint8 = 50
	ProtocolAH       uint8 = 51
	ProtocolICMPv6   uint8 = 58
	ProtocolNoNext   uint8 = 59
	ProtocolDstOpts  uint8 = 60
	ProtocolMobility uint8 = 135
	ProtocolHIP      uint8 = 139
	ProtocolShim6    uint8 = 140
	ProtocolExp1     uint8 = 253
	ProtocolExp2     uint8 = 254
)

// IPv4 is a view of an IPv4 packet: header followed by payload. Methods
// assume the view was returned by ParseIPv4 or BuildIPv4 (or is at least
// IPv4MinHeaderLen long with a consistent IHL); they do not re-validate.
type IPv4 []byte

// ParseIPv4 validates b as an IPv4 packet and returns a view of it cut to
// its total length (trailing link-layer padding is dropped). It checks the
// version, IHL (>= 5 and within b), total length (>= header, <= len(b)) and
// the header checksum. Options are not interpreted. A TTL of 0 is accepted:
// the caller decides (a host may still deliver it locally, RFC 1122
// §3.2.1.7 only forbids sending it). Errors are DropReason values.
func ParseIPv4(b []byte) (IPv4, error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, DropTooShort
	}
	if b[ipv4VersionIHL]>>4 != 4 {
		return nil, DropBadVersion
	}
	hl := int(b[ipv4VersionIHL]&0x0f) * 4
	if hl < IPv4MinHeaderLen || hl > len(b) {
		return nil, DropBadHeaderLength
	}
	tl := int(binary.BigEndian.Uint16(b[ipv4TotalLen:]))
	if tl < hl {
		return nil, DropBadTotalLength
	}
	if tl > len(b) {
		return nil, DropTruncated
	}
	// A correct header sums to 0xffff (RFC 1071 §1, "checking").
	if Checksum(b[:hl], 0) != 0xffff {
		return nil, DropBadChecksum
	}
	return IPv4(b[:tl]), nil
}

// Version returns the version field (4 for a valid packet).
func (b IPv4) Version() uint8 { return b[ipv4VersionIHL] >> 4 }

// IHL returns the header length field in 32-bit words.
func (b IPv4) IHL() uint8 { return b[ipv4VersionIHL] & 0x0f }

// HeaderLen returns the header length in bytes.
func (b IPv4) HeaderLen() int { return int(b[ipv4VersionIHL]&0x0f) * 4 }

// TOS returns the type-of-service byte (DSCP and ECN, RFC 2474/3168).
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLength returns the total length field.
func (b IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// Flags returns the three flag bits (IPv4FlagMoreFragments, ...).
func (b IPv4) Flags() uint8 { return b[ipv4FlagsFrag] >> 5 }

// DontFragment reports whether DF is set.
func (b IPv4) DontFragment() bool { return b.Flags()&IPv4FlagDontFragment != 0 }

// MoreFragments reports whether MF is set.
func (b IPv4) MoreFragments() bool { return b.Flags()&IPv4FlagMoreFragments != 0 }

// FragmentOffset returns the fragment offset in bytes (the field times 8).
func (b IPv4) FragmentOffset() uint16 {
	return binary.BigEndian.Uint16(b[ipv4FlagsFrag:]) << 3
}

// IsFragment reports whether the packet is a fragment (MF set or a non-zero
// offset), i.e. must go through reassembly.
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsFrag:])&0x3fff != 0
}

// TTL returns the time-to-live field.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the upper-layer protocol number.
func (b IPv4) Protocol() uint8 { return b[ipv4Protocol] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// Src returns the source address.
func (b IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(b[ipv4Src : ipv4Src+4])) }

// Dst returns the destination address.
func (b IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(b[ipv4Dst : ipv4Dst+4])) }

// SrcSlice returns the source address bytes (aliasing the packet).
func (b IPv4) SrcSlice() []byte { return b[ipv4Src : ipv4Src+4 : ipv4Src+4] }

// DstSlice returns the destination address bytes (aliasing the packet).
func (b IPv4) DstSlice() []byte { return b[ipv4Dst : ipv4Dst+4 : ipv4Dst+4] }

// Options returns the options bytes (possibly empty).
func (b IPv4) Options() []byte { return b[IPv4MinHeaderLen:b.HeaderLen()] }

// Header returns the header bytes, options included.
func (b IPv4) Header() []byte { return b[:b.HeaderLen()] }

// Payload returns the bytes after the header, up to the end of the view.
func (b IPv4) Payload() []byte { return b[b.HeaderLen():] }

// ChecksumValid reports whether the header checksum is correct.
func (b IPv4) ChecksumValid() bool { return Checksum(b[:b.HeaderLen()], 0) == 0xffff }

// ComputeChecksum returns the header checksum the header should carry,
// whatever its checksum field currently holds.
func (b IPv4) ComputeChecksum() uint16 {
	s := Checksum(b[:ipv4Checksum], 0)
	s = Checksum(b[ipv4Checksum+2:b.HeaderLen()], s)
	return ^s
}

// UpdateChecksum recomputes and stores the header checksum.
func (b IPv4) UpdateChecksum() { b.SetChecksum(b.ComputeChecksum()) }

// SetChecksum stores v in the checksum field.
func (b IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], v) }

// SetTotalLength stores n in the total length field; the checksum is not
// touched (call UpdateChecksum, or use ChecksumUpdate16).
func (b IPv4) SetTotalLength(n uint16) { binary.BigEndian.PutUint16(b[ipv4TotalLen:], n) }

// SetID stores the identification field; the checksum is not touched.
func (b IPv4) SetID(v uint16) { binary.BigEndian.PutUint16(b[ipv4ID:], v) }

// ClearDontFragment clears DF; the checksum is not touched.
func (b IPv4) ClearDontFragment() { b[ipv4FlagsFrag] &^= IPv4FlagDontFragment << 5 }

// SetTTL stores the TTL and updates the checksum incrementally (RFC 1624).
func (b IPv4) SetTTL(ttl uint8) {
	old := binary.BigEndian.Uint16(b[ipv4TTL:])
	b[ipv4TTL] = ttl
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), old, binary.BigEndian.Uint16(b[ipv4TTL:])))
}

// SwapAddrs exchanges source and destination; the header checksum stays
// valid because the one's complement sum does not depend on word order.
func (b IPv4) SwapAddrs() {
	var t [4]byte
	copy(t[:], b[ipv4Src:ipv4Src+4])
	copy(b[ipv4Src:ipv4Src+4], b[ipv4Dst:ipv4Dst+4])
	copy(b[ipv4Dst:ipv4Dst+4], t[:])
}

// IPv4Fields describes a header for BuildIPv4.
type IPv4Fields struct {
	TOS uint8
	// TotalLength is header plus payload; 0 means len(dst).
	TotalLength uint16
	ID          uint16
	// Flags is a combination of IPv4FlagDontFragment / IPv4FlagMoreFragments.
	Flags uint8
	// FragmentOffset is in bytes and must be a multiple of 8.
	FragmentOffset uint16
	TTL            uint8
	Protocol       uint8
	Src, Dst       netip.Addr // both IPv4
	// Options are copied verbatim; length a multiple of 4, at most 40.
	Options []byte
}

// HeaderLen returns the header length the fields encode to.
func (f *IPv4Fields) HeaderLen() int { return IPv4MinHeaderLen + len(f.Options) }

// BuildIPv4 writes the header described by f at the start of dst, computes
// its checksum and returns the view dst[:TotalLength]. The payload is
// expected to be in place already at dst[f.HeaderLen():] (headroom style); it
// is not touched. It does not allocate.
func BuildIPv4(dst []byte, f *IPv4Fields) (IPv4, error) {
	hl := f.HeaderLen()
	if len(f.Options)%4 != 0 || hl > IPv4MaxHeaderLen {
		return nil, ErrBadOptions
	}
	if !f.Src.Is4() || !f.Dst.Is4() {
		return nil, ErrBadAddress
	}
	if f.FragmentOffset%8 != 0 || f.Flags > 7 {
		return nil, ErrBadField
	}
	tl := int(f.TotalLength)
	if tl == 0 {
		tl = len(dst)
	}
	if tl < hl || tl > IPv4MaxTotalLen {
		return nil, ErrBadField
	}
	if len(dst) < tl {
		return nil, ErrBufferTooSmall
	}
	b := IPv4(dst[:tl])
	b[ipv4VersionIHL] = 4<<4 | uint8(hl/4)
	b[ipv4TOS] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], uint16(tl))
	binary.BigEndian.PutUint16(b[ipv4ID:], f.ID)
	binary.BigEndian.PutUint16(b[ipv4FlagsFrag:], uint16(f.Flags)<<13|f.FragmentOffset>>3)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = f.Protocol
	b[ipv4Checksum], b[ipv4Checksum+1] = 0, 0
	src, dstA := f.Src.As4(), f.Dst.As4()
	copy(b[ipv4Src:], src[:])
	copy(b[ipv4Dst:], dstA[:])
	copy(b[IPv4MinHeaderLen:hl], f.Options)
	b.SetChecksum(^Checksum(b[:hl], 0))
	return b, nil
}
