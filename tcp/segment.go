package tcp

// Flags are the TCP control bits, with their on-the-wire values.
type Flags uint8

// The control bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
const (
	FlagFIN Flags = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// Has reports whether all of the bits in g are set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// SACKBlock is one SACK block (RFC 2018): the bytes [Start, End).
type SACKBlock struct {
	Start, End Seq
}

// MaxSACKBlocks is the most SACK blocks one segment carries (4 without
// timestamps; 3 fit beside the timestamp option).
const MaxSACKBlocks = 4

// Options are the TCP options of one segment, parsed. Absent options have
// their Has* field false.
type Options struct {
	HasMSS bool
	MSS    uint16

	HasWindowScale bool
	WindowScale    uint8

	SACKPermitted bool

	HasTimestamp bool
	TSVal        uint32
	TSEcr        uint32

	NumSACK    uint8
	SACKBlocks [MaxSACKBlocks]SACKBlock
}

// Segment is one TCP segment in parsed form: the unit the Conn consumes and
// produces. Ports and addresses are the stack's business, not the Conn's.
// Payload aliases the packet buffer (input) or the send buffer (output); it is
// valid only for the duration of the call that hands it over.
type Segment struct {
	Seq     Seq
	Ack     Seq
	Flags   Flags
	Window  uint16 // as on the wire, unscaled
	Urgent  uint16
	Options Options
	Payload []byte

	// GSOSize, on output, is the MSS at which a payload larger than one MSS
	// must be cut into wire segments (by the kernel via virtio-net GSO, or by
	// the link). Zero means the payload is one wire segment.
	GSOSize uint16

	// ECN is the IP header's ECN field (RFC 3168 §5): as received on
	// input, to be sent on output.
	ECN ECN
}

// Len is the segment's length in sequence space: payload plus one for each
// of SYN and FIN (RFC 9293 §3.4, SEG.LEN).
func (s *Segment) Len() uint32 {
	n := uint32(len(s.Payload))
	if s.Flags&FlagSYN != 0 {
		n++
	}
	if s.Flags&FlagFIN != 0 {
		n++
	}
	return n
}
