package stack

import (
	"net/netip"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tun"
)

// inputUDP verifies a UDP datagram from src to dst (srcb, dstb: the
// header's address bytes) and queues it on its socket. It reports whether
// no socket took the port, for the caller to answer with ICMP port
// unreachable (RFC 1122 §4.1.3.1).
func (s *Stack) inputUDP(l *link, src, dst netip.Addr, srcb, dstb, seg []byte, g tun.GSO) (noPort bool) {
	if len(seg) < ip.UDPHeaderLen {
		s.stats.UDPTooShort.Add(1)
		return false
	}
	if g.IsGSO() {
		return s.inputUDPGSO(l, src, dst, seg, g)
	}
	u := ip.UDP(seg)
	ulen := int(u.Length())
	if ulen < ip.UDPHeaderLen || ulen > len(seg) {
		// RFC 768: the length counts header and data; one that claims
		// more than IP carried, or less than the header, cannot be
		// believed (Linux udp_rcv "short_packet").
		s.stats.UDPBadLength.Add(1)
		return false
	}
	if ulen < len(seg) {
		// Bytes after the UDP length are not the datagram's (RFC 9868's
		// surplus area; Linux trims them): the checksum does not cover them.
		s.stats.UDPSurplusTrimmed.Add(1)
		u = u[:ulen]
	}
	switch {
	case g.NeedsCsum:
		// A partial checksum from the local kernel or a peer stack on an
		// in-memory link: never on a wire, trusted (CHECKSUM_PARTIAL).
	case u.Checksum() == 0 && !dst.Is4():
		// RFC 8200 §8.1: the UDP checksum is mandatory over IPv6 (RFC
		// 6935's zero-checksum tunnels are opt-in per port; we have none).
		s.stats.UDPZeroChecksum6.Add(1)
		return false
	case u.Checksum() == 0:
		// IPv4: no checksum was computed (RFC 768).
	case !ip.UDPChecksumValid(u, srcb, dstb):
		s.stats.UDPBadChecksum.Add(1)
		return false
	}
	c, from, noPort, ok := s.udpSocketFor(src, dst, u)
	if !ok {
		return noPort
	}
	if !c.d.push(l, from, dst, u.Payload()) {
		s.stats.UDPRcvBufErrors.Add(1)
		return false
	}
	s.stats.UDPInDatagrams.Add(1)
	return false
}

// udpICMPError applies an ICMP error quoting a datagram we sent from local
// to remote. As on Linux without IP_RECVERR, only a hard error (port
// unreachable and the other "fatal" codes) on a connected socket is
// reported, to its next read or write (RFC 1122 §4.1.3.3).
func (s *Stack) udpICMPError(local, remote netip.AddrPort, act icmpAction) {
	c, ok := findBound(*s.udp.Load(), local)
	if !ok || !c.d.connected() || c.d.remote != remote {
		s.stats.ICMPErrorsNoConn.Add(1)
		return
	}
	if !act.fatal {
		s.stats.ICMPErrorsSoft.Add(1)
		return
	}
	s.stats.UDPICMPErrors.Add(1)
	c.d.setErr(act.err)
}

// inputUDPGSO queues the datagrams of a UDP super-datagram (tun.GSOUDP:
// payloads of g.Size bytes, the last maybe shorter) on their socket, as
// the kernel's __udp_gso_segment would have cut them. Its checksum is
// partial (the link refuses a UDP super-datagram without one), so, like the
// kernel's CHECKSUM_PARTIAL, it is trusted; its UDP length field is the
// super-datagram's and is not checked. One lookup serves every datagram:
// they share the 5-tuple.
func (s *Stack) inputUDPGSO(l *link, src, dst netip.Addr, seg []byte, g tun.GSO) (noPort bool) {
	if g.Type != tun.GSOUDP || !g.NeedsCsum || g.Size == 0 {
		s.stats.UDPBadGSO.Add(1)
		return false
	}
	u := ip.UDP(seg)
	c, from, noPort, ok := s.udpSocketFor(src, dst, u)
	if !ok {
		return noPort
	}
	s.stats.UDPGSOIn.Add(1)
	payload, size := seg[ip.UDPHeaderLen:], int(g.Size)
	for off := 0; ; off += size {
		end := min(off+size, len(payload))
		if c.d.push(l, from, dst, payload[off:end]) {
			s.stats.UDPInDatagrams.Add(1)
		} else {
			s.stats.UDPRcvBufErrors.Add(1)
		}
		if end == len(payload) {
			return false
		}
	}
}

// udpSocketFor finds the socket a datagram from src to dst with header u
// goes to, and the address it came from. Without one, counted by reason,
// ok is false and noPort says whether an ICMP port unreachable is due
// (destination port 0 is malformed and gets none).
func (s *Stack) udpSocketFor(src, dst netip.Addr, u ip.UDP) (c *UDPConn, from netip.AddrPort, noPort, ok bool) {
	dp := u.DestinationPort()
	if dp == 0 {
		s.stats.UDPBadPort.Add(1)
		return nil, from, false, false
	}
	from = netip.AddrPortFrom(src, u.SourcePort())
	c, found := findBound(*s.udp.Load(), netip.AddrPortFrom(dst, dp))
	if !found || (c.d.connected() && c.d.remote != from) {
		s.stats.UDPNoPorts.Add(1)
		return nil, from, true, false
	}
	return c, from, false, true
}
