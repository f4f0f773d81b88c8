package tcp

import "encoding/binary"

// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
const (
	OptionEOL           = 0
	OptionNOP           = 1
	OptionMSS           = 2
	OptionWindowScale   = 3
	OptionSACKPermitted = 4
	OptionSACK          = 5
	OptionTimestamp     = 8
)

// Fixed lengths of the options that have one, kind and length bytes included.
const (
	OptionMSSLen           = 4
	OptionWindowScaleLen   = 3
	OptionSACKPermittedLen = 2
	OptionTimestampLen     = 10
)

// MaxOptionsLen is the size of the largest TCP option area: a data offset of
// 15 words minus the 20-byte fixed header.
const MaxOptionsLen = 40

// MaxWindowShift is the largest window scale shift count (RFC 7323 §2.3).
const MaxWindowShift = 14

// OptionNotes are oddities ParseOptionsNotes met that are not errors: the
// options are still usable, but a stack may want to count them.
type OptionNotes uint8

// The option notes.
const (
	// NoteWindowScaleClamped: a window scale above 14 was received and
	// replaced by 14, as RFC 7323 §2.3 requires ("SHOULD log the error but
	// MUST use 14 instead").
	NoteWindowScaleClamped OptionNotes = 1 << iota
	// NoteUnknownOption: an option of an unknown kind was skipped by its length.
	NoteUnknownOption
	// NoteDuplicateOption: a known option appeared twice; the last one wins.
	NoteDuplicateOption
)

// ParseOptions parses the TCP option area b (the bytes between the fixed
// header and the data offset) into o. It is ParseOptionsNotes without the notes.
func ParseOptions(b []byte, o *Options) error {
	_, err := ParseOptionsNotes(b, o)
	return err
}

// ParseOptionsNotes parses the TCP option area b into o, which it resets
// first. EOL ends the list (anything after it is padding, RFC 9293 §3.2);
// unknown kinds are skipped by their length. A length byte below 2 or past the
// end of b, or a known kind with the wrong length, is a ParseError: such a
// header is malformed and the segment should be dropped. On error o holds the
// options parsed before the bad one. It never allocates.
func ParseOptionsNotes(b []byte, o *Options) (OptionNotes, error) {
	*o = Options{}
	var notes OptionNotes
	var seen uint16 // bit k set once a known option of kind k was parsed
	for i := 0; i < len(b); {
		kind := b[i]
		switch kind {
		case OptionEOL:
			return notes, nil
		case OptionNOP:
			i++
			continue
		}
		// Every other kind carries a length byte that counts kind and length.
		if i+1 >= len(b) {
			return notes, ErrOptionTruncated
		}
		l := int(b[i+1])
		if l < 2 {
			// A length of 0 or 1 would make the parser stand still or
			// land inside the option: reject rather than loop.
			return notes, ErrOptionLength
		}
		if l > len(b)-i {
			return notes, ErrOptionTruncated
		}
		v := b[i+2 : i+l]
		known := true
		switch kind {
		case OptionMSS:
			if l != OptionMSSLen {
				return notes, ErrOptionSize
			}
			o.HasMSS = true
			o.MSS = binary.BigEndian.Uint16(v)
		case OptionWindowScale:
			if l != OptionWindowScaleLen {
				return notes, ErrOptionSize
			}
			ws := v[0]
			if ws > MaxWindowShift {
				ws = MaxWindowShift
				notes |= NoteWindowScaleClamped
			}
			o.HasWindowScale = true
			o.WindowScale = ws
		case OptionSACKPermitted:
			if l != OptionSACKPermittedLen {
				return notes, ErrOptionSize
			}
			o.SACKPermitted = true
		case OptionSACK:
			// RFC 2018 §3: length 2+8n; n is at most 4 because the option
			// area is 40 bytes, so 5 blocks can only appear in a malformed
			// (or non-header) buffer.
			n := (l - 2) / 8
			if (l-2)%8 != 0 || n < 1 || n > MaxSACKBlocks {
				return notes, ErrOptionSize
			}
			for j := range n {
				o.SACKBlocks[j] = SACKBlock{
					Start: Seq(binary.BigEndian.Uint32(v[8*j:])),
					End:   Seq(binary.BigEndian.Uint32(v[8*j+4:])),
				}
			}
			for j := n; j < MaxSACKBlocks; j++ {
				o.SACKBlocks[j] = SACKBlock{}
			}
			o.NumSACK = uint8(n)
		case OptionTimestamp:
			if l != OptionTimestampLen {
				return notes, ErrOptionSize
			}
			o.HasTimestamp = true
			o.TSVal = binary.BigEndian.Uint32(v)
			o.TSEcr = binary.BigEndian.Uint32(v[4:])
		default:
			known = false
			notes |= NoteUnknownOption
		}
		if known {
			if seen&(1<<kind) != 0 {
				notes |= NoteDuplicateOption
			}
			seen |= 1 << kind
		}
		i += l
	}
	return notes, nil
}

// wireBaseOptionsLen is the encoded size of everything but the SACK blocks,
// in the layout Encode writes.
func (o *Options) wireBaseOptionsLen() int {
	n := 0
	if o.HasMSS {
		n += 4
	}
	if o.HasTimestamp {
		n += 12 // "sackOK TS" or "nop nop TS"
	} else if o.SACKPermitted {
		n += 4 // "nop nop sackOK"
	}
	if o.HasWindowScale {
		n += 4 // "nop wscale"
	}
	return n
}

// wireSACKFit is how many of o's SACK blocks fit after base bytes of other
// options in the 40-byte option area ("nop nop" + 2 + 8n each).
func (o *Options) wireSACKFit(base int) int {
	k := int(o.NumSACK)
	if k > MaxSACKBlocks {
		k = MaxSACKBlocks
	}
	if room := (MaxOptionsLen - base - 4) / 8; k > room {
		k = max(room, 0)
	}
	return k
}

// EncodedLen returns the number of bytes Encode writes: a multiple of 4, at
// most MaxOptionsLen.
func (o *Options) EncodedLen() int {
	base := o.wireBaseOptionsLen()
	if k := o.wireSACKFit(base); k > 0 {
		base += 4 + 8*k
	}
	return base
}

// Encode writes o into b in the order and NOP padding Linux's
// tcp_options_write uses, so that every option word is 4-byte aligned:
//
//	MSS
//	sackOK TS          (or nop nop TS without SACK-permitted)
//	nop nop sackOK     (SACK-permitted without timestamps)
//	nop wscale
//	nop nop SACK n*8   (as many blocks as fit in 40 bytes: 3 beside TS, 4 alone)
//
// SACK blocks that do not fit are left out from the end (RFC 2018 §3 sends
// the most recent first). It returns the number of bytes written,
// o.EncodedLen(); b must be at least that long. It never allocates.
func (o *Options) Encode(b []byte) int {
	base := o.wireBaseOptionsLen()
	k := o.wireSACKFit(base)
	n := base
	if k > 0 {
		n += 4 + 8*k
	}
	if n == 0 {
		return 0
	}
	b = b[:n]
	i := 0
	if o.HasMSS {
		b[0], b[1] = OptionMSS, OptionMSSLen
		binary.BigEndian.PutUint16(b[2:], o.MSS)
		i = 4
	}
	if o.HasTimestamp {
		if o.SACKPermitted {
			b[i], b[i+1] = OptionSACKPermitted, OptionSACKPermittedLen
		} else {
			b[i], b[i+1] = OptionNOP, OptionNOP
		}
		b[i+2], b[i+3] = OptionTimestamp, OptionTimestampLen
		binary.BigEndian.PutUint32(b[i+4:], o.TSVal)
		binary.BigEndian.PutUint32(b[i+8:], o.TSEcr)
		i += 12
	} else if o.SACKPermitted {
		b[i], b[i+1], b[i+2], b[i+3] = OptionNOP, OptionNOP, OptionSACKPermitted, OptionSACKPermittedLen
		i += 4
	}
	if o.HasWindowScale {
		b[i], b[i+1], b[i+2], b[i+3] = OptionNOP, OptionWindowScale, OptionWindowScaleLen, o.WindowScale
		i += 4
	}
	if k > 0 {
		b[i], b[i+1], b[i+2], b[i+3] = OptionNOP, OptionNOP, OptionSACK, byte(2+8*k)
		i += 4
		for j := range k {
			binary.BigEndian.PutUint32(b[i:], uint32(o.SACKBlocks[j].Start))
			binary.BigEndian.PutUint32(b[i+4:], uint32(o.SACKBlocks[j].End))
			i += 8
		}
	}
	return i
}
