package ip

import "encoding/binary"

// UDPHeaderLen is the length of the UDP header (RFC 768).
const UDPHeaderLen = 8

// UDP is a view of a UDP datagram: the 8-byte header and the data.
type UDP []byte

// SourcePort returns the source port (0: none, RFC 768).
func (b UDP) SourcePort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DestinationPort returns the destination port.
func (b UDP) DestinationPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Length returns the length field: header plus data.
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Checksum returns the checksum field (0: none was computed, IPv4 only).
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// Payload returns the data after the header.
func (b UDP) Payload() []byte { return b[UDPHeaderLen:] }

// PutUDPHeader writes the header of a datagram of len(b) bytes (header and
// data, the data already in place at b[8:]) from sport to dport, and its
// checksum over the pseudo-header of src and dst (4 or 16 bytes each). A
// checksum that computes to 0 is sent as 0xffff (RFC 768: 0 means none).
func PutUDPHeader(b []byte, sport, dport uint16, src, dst []byte) UDP {
	u := UDP(b)
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(b)))
	u[6], u[7] = 0, 0
	c := ^Checksum(u, PseudoHeaderChecksum(ProtocolUDP, src, dst, uint16(len(b))))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return u
}

// UDPChecksumValid reports whether the checksum of the datagram b (exactly
// its Length bytes) is right for the pseudo-header of src and dst. The
// caller deals with a zero checksum field first.
func UDPChecksumValid(b UDP, src, dst []byte) bool {
	return Checksum(b, PseudoHeaderChecksum(ProtocolUDP, src, dst, uint16(len(b)))) == 0xffff
}
