package ip

import (
	"encoding/binary"
)

// ICMPHeaderLen is the length of the ICMPv4 and ICMPv6 header: type, code,
// checksum and the 4-byte type-specific word (RFC 792, RFC 4443 §2.1).
const ICMPHeaderLen = 8

// ICMPv4 types (RFC 792).
const (
	ICMPv4EchoReply      uint8 = 0
	ICMPv4DestUnreach    uint8 = 3
	ICMPv4Redirect       uint8 = 5
	ICMPv4Echo           uint8 = 8
	ICMPv4TimeExceeded   uint8 = 11
	ICMPv4ParamProblem   uint8 = 12
	ICMPv4Timestamp      uint8 = 13
	ICMPv4TimestampReply uint8 = 14
)

// ICMPv4 Destination Unreachable codes (RFC 792, RFC 1812 §5.2.7.1).
const (
	ICMPv4NetUnreachable   uint8 = 0
	ICMPv4HostUnreachable  uint8 = 1
	ICMPv4ProtoUnreachable uint8 = 2
	ICMPv4PortUnreachable  uint8 = 3
	ICMPv4FragNeeded       uint8 = 4 // next-hop MTU in the low 16 bits (RFC 1191 §4)
	ICMPv4AdminProhibited  uint8 = 13
)

// ICMPv4 Time Exceeded codes (RFC 792).
const (
	ICMPv4TTLExceeded        uint8 = 0
	ICMPv4ReassemblyExceeded uint8 = 1
)

// ICMPv6 types (RFC 4443).
const (
	ICMPv6DestUnreach   uint8 = 1
	ICMPv6PacketTooBig  uint8 = 2
	ICMPv6TimeExceeded  uint8 = 3
	ICMPv6ParamProblem  uint8 = 4
	ICMPv6EchoRequest   uint8 = 128
	ICMPv6EchoReply     uint8 = 129
	icmpv6FirstInfoType uint8 = 128
)

// ICMPv6 Destination Unreachable codes (RFC 4443 §3.1).
const (
	ICMPv6NoRoute         uint8 = 0
	ICMPv6AdminProhibited uint8 = 1
	ICMPv6BeyondScope     uint8 = 2
	ICMPv6AddressUnreach  uint8 = 3
	ICMPv6PortUnreachable uint8 = 4
	ICMPv6PolicyFailed    uint8 = 5
	ICMPv6RejectRoute     uint8 = 6
)

// ICMPv6 Parameter Problem codes (RFC 4443 §3.4, RFC 7112 §5).
const (
	ICMPv6ErroneousHeader       uint8 = 0
	ICMPv6UnknownNextHeader     uint8 = 1
	ICMPv6UnknownOption         uint8 = 2
	ICMPv6IncompleteHeaderChain uint8 = 3
)

// ICMPv6 Time Exceeded codes (RFC 4443 §3.3).
const (
	ICMPv6HopLimitExceeded  uint8 = 0
	ICMPv6ReassemblyTimeout uint8 = 1
)

// IPv6MinMTU is the IPv6 minimum link MTU (RFC 8200 §5); an ICMPv6 error
// must not exceed it (RFC 4443 §2.4(c)).
const IPv6MinMTU = 1280

// IPv4MinErrorSize is the largest ICMPv4 error datagram every host must
// accept (RFC 1812 §4.3.2.3): 576 bytes including the IP header.
const IPv4MinErrorSize = 576

// ICMPv4 is a view of an ICMPv4 message (the IPv4 payload).
type ICMPv4 []byte

// ICMPv6 is a view of an ICMPv6 message (the upper-layer data of an IPv6
// packet).
type ICMPv6 []byte

// isICMPv4Error reports the types that carry an invoking packet.
func isICMPv4Error(t uint8) bool {
	switch t {
	case ICMPv4DestUnreach, ICMPv4Redirect, ICMPv4TimeExceeded, ICMPv4ParamProblem, 4 /* source quench */ :
		return true
	}
	return false
}

// ParseICMPv4 validates b as an ICMPv4 message: at least 8 bytes, a correct
// checksum and, for error messages, an invoking packet holding at least an
// IPv4 header and the first 8 bytes of its payload (RFC 792: "Internet
// Header + 64 bits of Original Data Datagram"), which the stack needs to
// find the connection it refers to. Errors are DropReason values.
func ParseICMPv4(b []byte) (ICMPv4, error) {
	if len(b) < ICMPHeaderLen {
		return nil, DropTooShort
	}
	if Checksum(b, 0) != 0xffff {
		return nil, DropBadChecksum
	}
	m := ICMPv4(b)
	if m.IsError() {
		if _, _, err := ParseInvokingIPv4(m.Invoking()); err != nil {
			return nil, DropBadICMP
		}
	}
	return m, nil
}

// Type returns the message type.
func (b ICMPv4) Type() uint8 { return b[0] }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[1] }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// IsError reports whether the type is an error message that carries an
// invoking packet.
func (b ICMPv4) IsError() bool { return isICMPv4Error(b[0]) }

// Ident returns the echo identifier.
func (b ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Seq returns the echo sequence number.
func (b ICMPv4) Seq() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// MTU returns the next-hop MTU of a Fragmentation Needed message (RFC 1191
// §4); 0 from an old router that does not fill it.
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// Pointer returns the octet pointer of a Parameter Problem message.
func (b ICMPv4) Pointer() uint8 { return b[4] }

// Data returns the bytes after the 8-byte header: echo data, or the
// invoking packet of an error message.
func (b ICMPv4) Data() []byte { return b[ICMPHeaderLen:] }

// Invoking returns the invoking packet carried by an error message.
func (b ICMPv4) Invoking() []byte { return b[ICMPHeaderLen:] }

// SetType stores the type; the checksum is not touched.
func (b ICMPv4) SetType(t uint8) { b[0] = t }

// SetChecksum stores the checksum field.
func (b ICMPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[2:], v) }

// ComputeChecksum returns the checksum the message should carry.
func (b ICMPv4) ComputeChecksum() uint16 {
	s := Checksum(b[:2], 0)
	return ^Checksum(b[4:], s)
}

// ChecksumValid reports whether the checksum is correct.
func (b ICMPv4) ChecksumValid() bool { return Checksum(b, 0) == 0xffff }

// UpdateChecksum recomputes and stores the checksum.
func (b ICMPv4) UpdateChecksum() { b.SetChecksum(b.ComputeChecksum()) }

// ParseInvokingIPv4 parses the (usually truncated) IPv4 packet quoted in an
// ICMP error: version 4, IHL >= 5 and within b, and at least 8 bytes after
// the header. The checksum is not verified (RFC 1812 §4.3.2.3 lets routers
// quote a header they have already modified). l4 is the quoted start of
// the upper-layer header, at most up to the quoted total length.
func ParseInvokingIPv4(b []byte) (hdr IPv4, l4 []byte, err error) {
	if len(b) < IPv4MinHeaderLen {
		return nil, nil, DropTooShort
	}
	if b[0]>>4 != 4 {
		return nil, nil, DropBadVersion
	}
	hl := int(b[0]&0x0f) * 4
	if hl < IPv4MinHeaderLen || hl+8 > len(b) {
		return nil, nil, DropBadHeaderLength
	}
	end := len(b)
	if tl := int(binary.BigEndian.Uint16(b[2:])); tl >= hl && tl < end {
		end = tl
	}
	return IPv4(b[:end]), b[hl:end], nil
}

// BuildICMPv4Echo writes an echo request (reply false) or reply into dst
// and returns the message dst[:8+len(data)]. data may already be in place
// at dst[8:] (copy handles the overlap).
func BuildICMPv4Echo(dst []byte, reply bool, ident, seq uint16, data []byte) (ICMPv4, error) {
	n := ICMPHeaderLen + len(data)
	if len(dst) < n {
		return nil, ErrBufferTooSmall
	}
	m := ICMPv4(dst[:n])
	copy(m[ICMPHeaderLen:], data)
	m[0] = ICMPv4Echo
	if reply {
		m[0] = ICMPv4EchoReply
	}
	m[1] = 0
	binary.BigEndian.PutUint16(m[4:], ident)
	binary.BigEndian.PutUint16(m[6:], seq)
	m.UpdateChecksum()
	return m, nil
}

// BuildICMPv4Error writes an error message of type typ and code into dst,
// quoting as much of invoking as fits in dst (size dst to keep the whole
// datagram within IPv4MinErrorSize, RFC 1812 §4.3.2.3). For Destination
// Unreachable / Fragmentation Needed, mtu is the next-hop MTU (RFC 1191);
// for Parameter Problem its low byte is the pointer; otherwise pass 0.
func BuildICMPv4Error(dst []byte, typ, code uint8, mtu uint16, invoking []byte) (ICMPv4, error) {
	if !isICMPv4Error(typ) {
		return nil, ErrBadField
	}
	if len(dst) < ICMPHeaderLen {
		return nil, ErrBufferTooSmall
	}
	n := ICMPHeaderLen + copy(dst[ICMPHeaderLen:], invoking)
	m := ICMPv4(dst[:n])
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], 0)
	if typ == ICMPv4ParamProblem {
		m[4] = uint8(mtu)
	} else {
		binary.BigEndian.PutUint16(m[6:], mtu)
	}
	m.UpdateChecksum()
	return m, nil
}

// ReplyToEchoIPv4 turns pkt, a parsed IPv4 packet carrying an unfragmented
// ICMP echo request, into the echo reply in place: addresses swapped, TTL
// set, type 0, both checksums updated incrementally (RFC 1624). Options
// are kept as received. ErrNotEcho is returned, and pkt left unchanged, if
// pkt is not such a request.
func ReplyToEchoIPv4(pkt IPv4, ttl uint8) error {
	if len(pkt) < IPv4MinHeaderLen || pkt.Protocol() != ProtocolICMPv4 || pkt.IsFragment() {
		return ErrNotEcho
	}
	m := ICMPv4(pkt.Payload())
	if len(m) < ICMPHeaderLen || m.Type() != ICMPv4Echo {
		return ErrNotEcho
	}
	old := binary.BigEndian.Uint16(m[0:])
	m[0] = ICMPv4EchoReply
	m.SetChecksum(ChecksumUpdate16(m.Checksum(), old, binary.BigEndian.Uint16(m[0:])))
	pkt.SwapAddrs()
	pkt.SetTTL(ttl)
	return nil
}

// icmpv6Sum returns the uncomplemented sum of the ICMPv6 pseudo-header
// (RFC 4443 §2.3, RFC 8200 §8.1) and message b.
func icmpv6Sum(b, src, dst []byte) uint16 {
	return Checksum(b, PseudoHeaderChecksum(ProtocolICMPv6, src, dst, uint16(len(b))))
}

// ParseICMPv6 validates b as an ICMPv6 message sent from src to dst (the
// 16-byte addresses of the IPv6 header): at least 8 bytes, a correct
// checksum over the pseudo-header and, for error messages (types < 128,
// RFC 4443 §2.1), an invoking packet holding at least a fixed IPv6 header.
// Errors are DropReason values.
func ParseICMPv6(b []byte, src, dst []byte) (ICMPv6, error) {
	if len(b) < ICMPHeaderLen {
		return nil, DropTooShort
	}
	if len(b) > 0xffff || icmpv6Sum(b, src, dst) != 0xffff {
		return nil, DropBadChecksum
	}
	m := ICMPv6(b)
	if m.IsError() {
		inv := m.Invoking()
		if len(inv) < IPv6HeaderLen || inv[0]>>4 != 6 {
			return nil, DropBadICMP
		}
	}
	return m, nil
}

// Type returns the message type.
func (b ICMPv6) Type() uint8 { return b[0] }

// Code returns the message code.
func (b ICMPv6) Code() uint8 { return b[1] }

// Checksum returns the checksum field.
func (b ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// IsError reports an error message (type < 128, RFC 4443 §2.1).
func (b ICMPv6) IsError() bool { return b[0] < icmpv6FirstInfoType }

// Ident returns the echo identifier.
func (b ICMPv6) Ident() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Seq returns the echo sequence number.
func (b ICMPv6) Seq() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// MTU returns the MTU of a Packet Too Big message (RFC 4443 §3.2).
func (b ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// Pointer returns the pointer of a Parameter Problem message.
func (b ICMPv6) Pointer() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// Data returns the bytes after the 8-byte header (echo data).
func (b ICMPv6) Data() []byte { return b[ICMPHeaderLen:] }

// Invoking returns the invoking packet carried by an error message.
func (b ICMPv6) Invoking() []byte { return b[ICMPHeaderLen:] }

// SetChecksum stores the checksum field.
func (b ICMPv6) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[2:], v) }

// ComputeChecksum returns the checksum the message should carry when sent
// from src to dst.
func (b ICMPv6) ComputeChecksum(src, dst []byte) uint16 {
	s := PseudoHeaderChecksum(ProtocolICMPv6, src, dst, uint16(len(b)))
	s = Checksum(b[:2], s)
	return ^Checksum(b[4:], s)
}

// ChecksumValid reports whether the checksum is correct for src and dst.
func (b ICMPv6) ChecksumValid(src, dst []byte) bool { return icmpv6Sum(b, src, dst) == 0xffff }

// UpdateChecksum recomputes and stores the checksum for src and dst.
func (b ICMPv6) UpdateChecksum(src, dst []byte) { b.SetChecksum(b.ComputeChecksum(src, dst)) }

// BuildICMPv6Echo writes an echo request (reply false) or reply from src to
// dst (16-byte addresses) into buf and returns the message.
func BuildICMPv6Echo(buf []byte, reply bool, ident, seq uint16, data, src, dst []byte) (ICMPv6, error) {
	n := ICMPHeaderLen + len(data)
	if len(buf) < n {
		return nil, ErrBufferTooSmall
	}
	if n > 0xffff {
		return nil, ErrBadField
	}
	if len(src) != 16 || len(dst) != 16 {
		return nil, ErrBadAddress
	}
	m := ICMPv6(buf[:n])
	copy(m[ICMPHeaderLen:], data)
	m[0] = ICMPv6EchoRequest
	if reply {
		m[0] = ICMPv6EchoReply
	}
	m[1] = 0
	binary.BigEndian.PutUint16(m[4:], ident)
	binary.BigEndian.PutUint16(m[6:], seq)
	m.UpdateChecksum(src, dst)
	return m, nil
}

// BuildICMPv6Error writes an error message (type < 128) from src to dst
// into buf, quoting as much of invoking as fits in buf (size buf so the
// packet stays within IPv6MinMTU, RFC 4443 §2.4(c)). param is the MTU of a
// Packet Too Big, the pointer of a Parameter Problem, 0 otherwise.
func BuildICMPv6Error(buf []byte, typ, code uint8, param uint32, invoking, src, dst []byte) (ICMPv6, error) {
	if typ >= icmpv6FirstInfoType {
		return nil, ErrBadField
	}
	if len(buf) < ICMPHeaderLen {
		return nil, ErrBufferTooSmall
	}
	if len(src) != 16 || len(dst) != 16 {
		return nil, ErrBadAddress
	}
	if len(buf) > 0xffff {
		buf = buf[:0xffff]
	}
	n := ICMPHeaderLen + copy(buf[ICMPHeaderLen:], invoking)
	m := ICMPv6(buf[:n])
	m[0], m[1] = typ, code
	binary.BigEndian.PutUint32(m[4:], param)
	m.UpdateChecksum(src, dst)
	return m, nil
}

// ReplyToEchoIPv6 turns pkt, a parsed IPv6 packet whose upper layer (at
// info.Offset, as returned by ParseIPv6) is an ICMPv6 echo request, into
// the echo reply in place: addresses swapped, hop limit set, type 129, the
// checksum updated incrementally (the pseudo-header sum is unchanged by the
// swap). Extension headers are kept. ErrNotEcho is returned, and pkt left
// unchanged, if pkt is not such a request.
func ReplyToEchoIPv6(pkt IPv6, info IPv6Info, hopLimit uint8) error {
	if len(pkt) < IPv6HeaderLen || info.Protocol != ProtocolICMPv6 ||
		(info.HasFragment && !info.IsAtomicFragment()) || info.Offset > len(pkt) {
		return ErrNotEcho
	}
	m := ICMPv6(pkt[info.Offset:])
	if len(m) < ICMPHeaderLen || m.Type() != ICMPv6EchoRequest {
		return ErrNotEcho
	}
	old := binary.BigEndian.Uint16(m[0:])
	m[0] = ICMPv6EchoReply
	m.SetChecksum(ChecksumUpdate16(m.Checksum(), old, binary.BigEndian.Uint16(m[0:])))
	pkt.SwapAddrs()
	pkt.SetHopLimit(hopLimit)
	return nil
}
