package tcp

import "encoding/binary"

// Offsets of the fields of the fixed TCP header (RFC 9293 §3.1).
const (
	SrcPortOffset    = 0
	DstPortOffset    = 2
	SeqNumOffset     = 4
	AckNumOffset     = 8
	DataOffsetOffset = 12 // high 4 bits: header length in 32-bit words
	FlagsOffset      = 13
	WindowOffset     = 14
	ChecksumOffset   = 16 // virtio-net csum_offset for TCP
	UrgentOffset     = 18
)

// Header sizes.
const (
	HeaderMinLen = 20                           // fixed header, no options
	HeaderMaxLen = HeaderMinLen + MaxOptionsLen // data offset 15
)

// ParseError is why a TCP header or its options were rejected. The values are
// small consecutive integers so a stack can index drop counters by them.
type ParseError uint8

// The parse errors; each is a drop reason.
const (
	ErrHeaderTruncated    ParseError = iota + 1 // fewer than 20 bytes
	ErrDataOffsetTooSmall                       // data offset below 5 words
	ErrDataOffsetTooLarge                       // data offset past the end of the buffer
	ErrOptionTruncated                          // option length byte missing or option past the option area
	ErrOptionLength                             // option length byte 0 or 1
	ErrOptionSize                               // known option kind with the wrong length
)

// NumParseErrors is one more than the largest ParseError: the size of an
// array of drop counters indexed by ParseError.
const NumParseErrors = int(ErrOptionSize) + 1

var wireParseErrorText = [NumParseErrors]string{
	ErrHeaderTruncated:    "tcp: header shorter than 20 bytes",
	ErrDataOffsetTooSmall: "tcp: data offset below 5",
	ErrDataOffsetTooLarge: "tcp: data offset past end of segment",
	ErrOptionTruncated:    "tcp: option runs past the option area",
	ErrOptionLength:       "tcp: option length below 2",
	ErrOptionSize:         "tcp: option has the wrong length for its kind",
}

var wireParseErrorReason = [NumParseErrors]string{
	ErrHeaderTruncated:    "tcp_header_truncated",
	ErrDataOffsetTooSmall: "tcp_data_offset_small",
	ErrDataOffsetTooLarge: "tcp_data_offset_large",
	ErrOptionTruncated:    "tcp_option_truncated",
	ErrOptionLength:       "tcp_option_length",
	ErrOptionSize:         "tcp_option_size",
}

// Error returns a human-readable description.
func (e ParseError) Error() string {
	if int(e) < NumParseErrors && e != 0 {
		return wireParseErrorText[e]
	}
	return "tcp: unknown parse error"
}

// Reason returns a short snake_case name suitable as a drop-counter label.
func (e ParseError) Reason() string {
	if int(e) < NumParseErrors && e != 0 {
		return wireParseErrorReason[e]
	}
	return "tcp_unknown"
}

// Header is a view of a TCP segment (header, options and payload) in a byte
// slice. Getters assume a validated header (see ParseHeader); setters assume
// a buffer of at least HeaderMinLen bytes.
type Header []byte

// ParseHeader validates b as a TCP segment and returns the view: at least 20
// bytes, a data offset of at least 5 words, and options that end within b.
// The options themselves are not parsed.
func ParseHeader(b []byte) (Header, error) {
	if err := Header(b).wireValidate(); err != nil {
		return nil, err
	}
	return Header(b), nil
}

func (h Header) wireValidate() error {
	if len(h) < HeaderMinLen {
		return ErrHeaderTruncated
	}
	off := int(h[DataOffsetOffset]>>4) * 4
	if off < HeaderMinLen {
		return ErrDataOffsetTooSmall
	}
	if off > len(h) {
		return ErrDataOffsetTooLarge
	}
	return nil
}

// SourcePort returns the source port.
func (h Header) SourcePort() uint16 { return binary.BigEndian.Uint16(h[SrcPortOffset:]) }

// DestinationPort returns the destination port.
func (h Header) DestinationPort() uint16 { return binary.BigEndian.Uint16(h[DstPortOffset:]) }

// SequenceNumber returns SEG.SEQ.
func (h Header) SequenceNumber() Seq { return Seq(binary.BigEndian.Uint32(h[SeqNumOffset:])) }

// AckNumber returns SEG.ACK (meaningful only with FlagACK).
func (h Header) AckNumber() Seq { return Seq(binary.BigEndian.Uint32(h[AckNumOffset:])) }

// DataOffset returns the header length in bytes (the data offset field × 4).
func (h Header) DataOffset() int { return int(h[DataOffsetOffset]>>4) * 4 }

// Flags returns the eight control bits, CWR and ECE included.
func (h Header) Flags() Flags { return Flags(h[FlagsOffset]) }

// Window returns the raw, unscaled window field.
func (h Header) Window() uint16 { return binary.BigEndian.Uint16(h[WindowOffset:]) }

// Checksum returns the checksum field.
func (h Header) Checksum() uint16 { return binary.BigEndian.Uint16(h[ChecksumOffset:]) }

// UrgentPointer returns the urgent pointer field.
func (h Header) UrgentPointer() uint16 { return binary.BigEndian.Uint16(h[UrgentOffset:]) }

// OptionsBytes returns the raw option area.
func (h Header) OptionsBytes() []byte { return h[HeaderMinLen:h.DataOffset()] }

// Payload returns the bytes after the header.
func (h Header) Payload() []byte { return h[h.DataOffset():] }

// SetSourcePort sets the source port.
func (h Header) SetSourcePort(p uint16) { binary.BigEndian.PutUint16(h[SrcPortOffset:], p) }

// SetDestinationPort sets the destination port.
func (h Header) SetDestinationPort(p uint16) { binary.BigEndian.PutUint16(h[DstPortOffset:], p) }

// SetSequenceNumber sets SEG.SEQ.
func (h Header) SetSequenceNumber(s Seq) { binary.BigEndian.PutUint32(h[SeqNumOffset:], uint32(s)) }

// SetAckNumber sets SEG.ACK.
func (h Header) SetAckNumber(s Seq) { binary.BigEndian.PutUint32(h[AckNumOffset:], uint32(s)) }

// SetDataOffset sets the header length in bytes (a multiple of 4, 20..60);
// the four low (reserved/AE) bits of the byte are cleared.
func (h Header) SetDataOffset(n int) { h[DataOffsetOffset] = uint8(n/4) << 4 }

// SetFlags sets the eight control bits.
func (h Header) SetFlags(f Flags) { h[FlagsOffset] = uint8(f) }

// SetWindow sets the raw window field.
func (h Header) SetWindow(w uint16) { binary.BigEndian.PutUint16(h[WindowOffset:], w) }

// SetChecksum sets the checksum field.
func (h Header) SetChecksum(c uint16) { binary.BigEndian.PutUint16(h[ChecksumOffset:], c) }

// SetUrgentPointer sets the urgent pointer field.
func (h Header) SetUrgentPointer(u uint16) { binary.BigEndian.PutUint16(h[UrgentOffset:], u) }

// DecodeSegment validates h (as ParseHeader does) and fills seg from it:
// every field, the parsed options, and Payload aliasing h after the header.
// GSOSize is zeroed. It returns the option notes; a ParseError means the
// segment is malformed and should be dropped. It never allocates.
func (h Header) DecodeSegment(seg *Segment) (OptionNotes, error) {
	if err := h.wireValidate(); err != nil {
		return 0, err
	}
	off := h.DataOffset()
	*seg = Segment{
		Seq:    h.SequenceNumber(),
		Ack:    h.AckNumber(),
		Flags:  h.Flags(),
		Window: h.Window(),
		Urgent: h.UrgentPointer(),
		// Cap the payload at its length so an append by a consumer can
		// never write over whatever follows the packet in its buffer.
		Payload: h[off:len(h):len(h)],
	}
	return ParseOptionsNotes(h[HeaderMinLen:off], &seg.Options)
}

// ParseSegment parses the TCP segment b (header, options, payload; up to
// 64 KiB or more) into seg and returns the ports, which the Conn does not
// carry. seg.Payload aliases b. The checksum is not verified (see
// VerifyChecksum). It never allocates.
func ParseSegment(b []byte, seg *Segment) (srcPort, dstPort uint16, err error) {
	h := Header(b)
	if _, err := h.DecodeSegment(seg); err != nil {
		return 0, 0, err
	}
	return h.SourcePort(), h.DestinationPort(), nil
}

// SegmentHeaderLen returns the length of the header EncodeHeader writes for
// seg: 20 bytes plus seg.Options.EncodedLen().
func SegmentHeaderLen(seg *Segment) int { return HeaderMinLen + seg.Options.EncodedLen() }

// SegmentWireLen returns the length EncodeSegment writes for seg: header,
// options and payload.
func SegmentWireLen(seg *Segment) int { return SegmentHeaderLen(seg) + len(seg.Payload) }

// EncodeHeader writes the header and options of seg into dst and returns the
// header length. The checksum field is written as zero: fill it afterwards
// with SetChecksumFull, or SetPartialChecksum for an offloaded packet. dst
// must hold SegmentHeaderLen(seg) bytes. It never allocates.
func EncodeHeader(dst []byte, srcPort, dstPort uint16, seg *Segment) int {
	hl := HeaderMinLen + seg.Options.Encode(dst[HeaderMinLen:])
	h := Header(dst[:hl])
	h.SetSourcePort(srcPort)
	h.SetDestinationPort(dstPort)
	h.SetSequenceNumber(seg.Seq)
	h.SetAckNumber(seg.Ack)
	h.SetDataOffset(hl)
	h.SetFlags(seg.Flags)
	h.SetWindow(seg.Window)
	h.SetChecksum(0)
	h.SetUrgentPointer(seg.Urgent)
	return hl
}

// EncodeSegment writes seg into dst as a TCP segment, header and options
// followed by a copy of seg.Payload (the payload aliases a send buffer that
// is valid only during Emit, so the packet must own its bytes), and returns
// the total length. The checksum field is zero, as with EncodeHeader. dst must
// hold SegmentWireLen(seg) bytes. It never allocates.
func EncodeSegment(dst []byte, srcPort, dstPort uint16, seg *Segment) int {
	hl := EncodeHeader(dst, srcPort, dstPort, seg)
	return hl + copy(dst[hl:hl+len(seg.Payload)], seg.Payload)
}
