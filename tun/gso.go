package tun

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ustack-net/ustack/ip"
)

// GSOType says how a packet is to be segmented (generic segmentation offload).
type GSOType uint8

// GSO types; the values are ustack's own, not virtio's.
const (
	GSONone  GSOType = iota // a plain packet
	GSOTCPv4                // an IPv4 TCP super-packet (virtio VIRTIO_NET_HDR_GSO_TCPV4)
	GSOTCPv6                // an IPv6 TCP super-packet (virtio VIRTIO_NET_HDR_GSO_TCPV6)
	GSOUDP                  // a UDP super-datagram of either family (virtio VIRTIO_NET_HDR_GSO_UDP_L4, Linux >= 6.2 on a TUN)
)

// String returns "none", "tcpv4", "tcpv6" or "udp".
func (t GSOType) String() string {
	switch t {
	case GSONone:
		return "none"
	case GSOTCPv4:
		return "tcpv4"
	case GSOTCPv6:
		return "tcpv6"
	case GSOUDP:
		return "udp"
	}
	return fmt.Sprintf("GSOType(%d)", uint8(t))
}

// tcpCsumOffset is where the checksum sits in a TCP header (RFC 9293 §3.1).
const tcpCsumOffset = 16

// udpCsumOffset is where the checksum sits in a UDP header (RFC 768), and
// udpHdrLen that header's length.
const (
	udpCsumOffset = 6
	udpHdrLen     = 8
)

// IP protocol numbers the GSO types carry.
const (
	protoTCP = 6
	protoUDP = 17
)

// GSODropReason says why GSO metadata was refused.
type GSODropReason uint8

// Reasons a packet's GSO metadata is refused (ErrBadGSO).
const (
	GSOBadType     GSODropReason = iota // a GSO type ustack does not know (or virtio's ECN flag)
	GSOBadFamily                        // the type, IP version and checksum start disagree
	GSOBadProtocol                      // the IP header carries another transport than the type's
	GSOBadSize                          // a GSO packet with segment size 0
	GSOBadCsum                          // checksum offset wrong for the transport, or beyond the packet
	GSONoCsum                           // a UDP super-datagram without a partial checksum (virtio requires one)
	GSOShort                            // too short for its transport header
	NumGSODropReasons
)

var gsoDropNames = [NumGSODropReasons]string{"bad_type", "bad_family", "bad_protocol", "bad_size", "bad_csum", "no_partial_csum", "short"}

// String returns the reason's counter name, e.g. "bad_size".
func (r GSODropReason) String() string {
	if r < NumGSODropReasons {
		return gsoDropNames[r]
	}
	return fmt.Sprintf("GSODropReason(%d)", uint8(r))
}

// gsoError is an ErrBadGSO with its reason.
type gsoError struct {
	reason GSODropReason
	msg    string
}

func (e *gsoError) Error() string { return ErrBadGSO.Error() + ": " + e.msg }
func (e *gsoError) Unwrap() error { return ErrBadGSO }

func badGSO(r GSODropReason, format string, args ...any) error {
	return &gsoError{reason: r, msg: fmt.Sprintf(format, args...)}
}

// GSOReasonOf returns the reason of an ErrBadGSO error; ok is false for any
// other error.
func GSOReasonOf(err error) (r GSODropReason, ok bool) {
	var ge *gsoError
	if errors.As(err, &ge) {
		return ge.reason, true
	}
	return 0, false
}

// GSO is the segmentation and checksum-offload metadata of one packet: the
// information of a virtio-net header, in ustack's terms. The zero value is a
// plain packet with a complete checksum.
//
// A GSO packet (Type != GSONone) is one IP header and one TCP header followed
// by up to 64 KiB of payload. It stands for the packets obtained by cutting
// the payload into Size-byte pieces (the last may be shorter), each with a
// copy of the headers where the sequence number advances, IPv4 IDs increment,
// lengths shrink, FIN and PSH stay only on the last piece and CWR only on the
// first (as Linux's tcp_gso_segment does).
//
// A UDP super-datagram (GSOUDP) is one IP header and one UDP header followed
// by the payloads of several datagrams of one flow, each Size bytes but the
// last (which may be shorter): the datagrams obtained by giving each payload
// a copy of the headers with its own lengths, checksum and (IPv4) an ID one
// more than the previous one's, as Linux's __udp_gso_segment does. The UDP
// header's own length field is not used.
type GSO struct {
	// Type is the kind of super-packet, or GSONone.
	Type GSOType
	// Size is the MSS: payload bytes per segment. Required for GSO packets.
	Size uint16
	// NeedsCsum says the transport checksum is partial: the field at
	// CsumStart+CsumOffset holds the folded, uncomplemented pseudo-header
	// sum (ip.PseudoHeaderChecksum, with this packet's full transport
	// length) and the sum over the transport header and payload is still to
	// be added (virtio VIRTIO_NET_HDR_F_NEEDS_CSUM, CHECKSUM_PARTIAL).
	// For a GSO packet written without it, links fill the field themselves
	// (the per-segment checksums are computed by the link or kernel anyway).
	NeedsCsum bool
	// CsumStart is where the transport header starts: the IP header length,
	// extension headers included.
	CsumStart uint16
	// CsumOffset is the offset of the checksum field within the transport
	// header (16 for TCP, 6 for UDP).
	CsumOffset uint16
}

// TCPGSO returns the metadata of a TCP super-packet with an IP header of
// ipHdrLen bytes, to be cut into mss-byte segments, whose checksum field holds
// the pseudo-header sum. An mss of 0 describes a plain packet with a partial
// checksum.
func TCPGSO(ipv6 bool, ipHdrLen int, mss int) GSO {
	g := GSO{Size: uint16(mss), NeedsCsum: true, CsumStart: uint16(ipHdrLen), CsumOffset: tcpCsumOffset}
	switch {
	case mss == 0:
		g.Type = GSONone
	case ipv6:
		g.Type = GSOTCPv6
	default:
		g.Type = GSOTCPv4
	}
	return g
}

// UDPGSO returns the metadata of a UDP super-datagram with an IP header of
// ipHdrLen bytes (extension headers included), whose payload is to be cut
// into size-byte datagrams and whose checksum field holds the pseudo-header
// sum. A size of 0 describes a plain datagram with a partial checksum.
func UDPGSO(ipHdrLen int, size int) GSO {
	g := GSO{Size: uint16(size), NeedsCsum: true, CsumStart: uint16(ipHdrLen), CsumOffset: udpCsumOffset}
	if size > 0 {
		g.Type = GSOUDP
	}
	return g
}

// IsGSO reports whether the packet is a super-packet to be segmented.
func (g GSO) IsGSO() bool { return g.Type != GSONone }

// check validates g against pkt and returns the length of the IP and
// transport headers of a GSO packet (0 for a plain one). Its errors are
// ErrBadGSO with a reason (GSOReasonOf), or ErrPacketTooBig.
func (g GSO) check(pkt []byte) (int, error) {
	if len(pkt) > MaxPacketSize {
		return 0, ErrPacketTooBig
	}
	if g.Type == GSONone {
		if g.NeedsCsum && int(g.CsumStart)+int(g.CsumOffset)+2 > len(pkt) {
			return 0, badGSO(GSOBadCsum, "checksum at %d+%d beyond %d-byte packet", g.CsumStart, g.CsumOffset, len(pkt))
		}
		return 0, nil
	}
	if len(pkt) == 0 {
		return 0, badGSO(GSOShort, "empty packet")
	}
	v4 := pkt[0]>>4 == 4 && int(pkt[0]&0xf)*4 == int(g.CsumStart) && g.CsumStart >= 20
	v6 := pkt[0]>>4 == 6 && g.CsumStart >= 40
	proto, csumOff := uint8(protoTCP), uint16(tcpCsumOffset)
	switch g.Type {
	case GSOTCPv4:
		if !v4 {
			return 0, badGSO(GSOBadFamily, "%v packet is not IPv4 with a %d-byte header", g.Type, g.CsumStart)
		}
	case GSOTCPv6:
		if !v6 {
			return 0, badGSO(GSOBadFamily, "%v packet is not IPv6 with a %d-byte header", g.Type, g.CsumStart)
		}
	case GSOUDP:
		if !v4 && !v6 {
			return 0, badGSO(GSOBadFamily, "%v packet is neither IPv4 nor IPv6 with a %d-byte header", g.Type, g.CsumStart)
		}
		proto, csumOff = protoUDP, udpCsumOffset
	default:
		return 0, badGSO(GSOBadType, "unknown type %v", g.Type)
	}
	if g.Size == 0 {
		return 0, badGSO(GSOBadSize, "%v packet with segment size 0", g.Type)
	}
	if g.CsumOffset != csumOff {
		return 0, badGSO(GSOBadCsum, "%v packet with checksum offset %d", g.Type, g.CsumOffset)
	}
	start := int(g.CsumStart)
	if start > len(pkt) {
		return 0, badGSO(GSOShort, "%d-byte IP header in %d bytes", start, len(pkt))
	}
	if g.Type == GSOUDP {
		// The transport is in the IPv4 header, or right after a bare IPv6
		// one (with extension headers, the chain was the sender's to build).
		if v4 && pkt[9] != protoUDP || v6 && start == 40 && pkt[6] != protoUDP {
			return 0, badGSO(GSOBadProtocol, "%v packet carries protocol %d, not %d", g.Type, protocolOf(pkt, v4), proto)
		}
		if start+udpHdrLen > len(pkt) {
			return 0, badGSO(GSOShort, "no UDP header in %d bytes", len(pkt))
		}
		return start + udpHdrLen, nil
	}
	if start+20 > len(pkt) {
		return 0, badGSO(GSOShort, "no TCP header in %d bytes", len(pkt))
	}
	thl := int(pkt[start+12]>>4) * 4
	if thl < 20 || start+thl > len(pkt) {
		return 0, badGSO(GSOShort, "TCP header length %d in %d bytes", thl, len(pkt))
	}
	return start + thl, nil
}

// protocolOf is the IPv4 protocol or IPv6 next header of pkt.
func protocolOf(pkt []byte, v4 bool) uint8 {
	if v4 {
		return pkt[9]
	}
	return pkt[6]
}

// Segments returns how many plain packets a packet with this metadata and
// total length n stands for (1 for a plain packet).
func (g GSO) Segments(n, hdrLen int) int {
	if g.Type == GSONone || g.Size == 0 {
		return 1
	}
	payload := n - hdrLen
	if payload <= 0 {
		return 1
	}
	return (payload + int(g.Size) - 1) / int(g.Size)
}

// CompleteChecksum finishes a partial checksum (NeedsCsum) of a plain packet
// in place, as a NIC would; it does nothing when the checksum is complete.
func CompleteChecksum(pkt []byte, g GSO) error {
	if g.Type != GSONone {
		return badGSO(GSOBadType, "CompleteChecksum of a %v packet", g.Type)
	}
	if _, err := g.check(pkt); err != nil || !g.NeedsCsum {
		return err
	}
	// The field holds the pseudo-header sum, so summing over it completes it.
	at := int(g.CsumStart) + int(g.CsumOffset)
	sum := ^ip.Checksum(pkt[g.CsumStart:], 0)
	if sum == 0 && g.CsumOffset == udpCsumOffset {
		sum = 0xffff // RFC 768: zero would mean no checksum
	}
	binary.BigEndian.PutUint16(pkt[at:], sum)
	return nil
}

// Segment cuts the packet pkt described by g into plain packets with full
// checksums, written at bufs[i][offset:] with lengths in sizes, and returns
// how many (a plain packet is copied, its checksum completed). It fails with
// ErrShortBuffer, writing nothing useful, if bufs cannot hold them all.
func Segment(pkt []byte, g GSO, bufs [][]byte, sizes []int, offset int) (int, error) {
	hdrLen, err := g.check(pkt)
	if err != nil {
		return 0, err
	}
	if g.Type == GSONone {
		if len(bufs) == 0 || len(bufs[0])-offset < len(pkt) {
			return 0, ErrShortBuffer
		}
		sizes[0] = copy(bufs[0][offset:], pkt)
		return 1, CompleteChecksum(bufs[0][offset:offset+len(pkt)], g)
	}
	n := g.Segments(len(pkt), hdrLen)
	if n > len(bufs) || n > len(sizes) {
		return 0, fmt.Errorf("%w: %d segments, %d buffers", ErrShortBuffer, n, len(bufs))
	}
	mss := int(g.Size)
	for i := range n {
		if len(bufs[i])-offset < hdrLen+min(mss, len(pkt)-hdrLen) {
			return 0, fmt.Errorf("%w: buffer %d holds %d bytes", ErrShortBuffer, i, len(bufs[i])-offset)
		}
	}
	iphLen := int(g.CsumStart)
	v6 := pkt[0]>>4 == 6
	id := binary.BigEndian.Uint16(pkt[4:])
	var src, dst []byte
	if v6 {
		src, dst = pkt[8:24], pkt[24:40]
	} else {
		src, dst = pkt[12:16], pkt[16:20]
	}
	if g.Type == GSOUDP {
		for i := range n {
			start := hdrLen + i*mss
			end := min(start+mss, len(pkt))
			out := bufs[i][offset : offset+hdrLen+end-start]
			copy(out, pkt[:hdrLen])
			copy(out[hdrLen:], pkt[start:end])
			fixIPHeader(out, iphLen, v6, id, i)
			udp := out[iphLen:]
			binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
			udp[6], udp[7] = 0, 0
			sum := ^ip.Checksum(udp, ip.PseudoHeaderChecksum(protoUDP, src, dst, uint16(len(udp))))
			if sum == 0 {
				sum = 0xffff // RFC 768: a computed zero is sent as all ones
			}
			binary.BigEndian.PutUint16(udp[6:], sum)
			sizes[i] = len(out)
		}
		return n, nil
	}
	seq := binary.BigEndian.Uint32(pkt[iphLen+4:])
	flags := pkt[iphLen+13]
	const fin, psh, cwr = 0x01, 0x08, 0x80
	for i := range n {
		start := hdrLen + i*mss
		end := min(start+mss, len(pkt))
		out := bufs[i][offset : offset+hdrLen+end-start]
		copy(out, pkt[:hdrLen])
		copy(out[hdrLen:], pkt[start:end])
		fixIPHeader(out, iphLen, v6, id, i)
		tcp := out[iphLen:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(i*mss))
		f := flags
		if i != n-1 {
			f &^= fin | psh
		}
		if i != 0 {
			f &^= cwr // RFC 3168 §6.1.2: CWR on the first segment of the window only
		}
		tcp[13] = f
		tcp[16], tcp[17] = 0, 0
		sum := ip.PseudoHeaderChecksum(6, src, dst, uint16(len(tcp)))
		binary.BigEndian.PutUint16(tcp[16:], ^ip.Checksum(tcp, sum))
		sizes[i] = len(out)
	}
	return n, nil
}

// fixIPHeader sets the length of segment i of a super-packet, out, whose
// IP header (iphLen bytes) was copied from it: the IPv6 payload length, or
// the IPv4 total length, ID (id+i) and header checksum.
func fixIPHeader(out []byte, iphLen int, v6 bool, id uint16, i int) {
	if v6 {
		binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
		return
	}
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	binary.BigEndian.PutUint16(out[4:], id+uint16(i))
	out[10], out[11] = 0, 0
	binary.BigEndian.PutUint16(out[10:], ^ip.Checksum(out[:iphLen], 0))
}
