package stack

import (
	"net/netip"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// input runs one packet read from link l through IP, ICMP and TCP. The
// packet aliases the reader's buffer and is valid only during the call.
func (s *Stack) input(l *link, pkt []byte, g tun.GSO, now tcp.Time, b *rxBatch) {
	s.stats.RxPackets.Add(1)
	s.stats.RxBytes.Add(uint64(len(pkt)))
	if len(pkt) == 0 {
		s.stats.IP[ip.DropTooShort].Add(1)
		return
	}
	switch pkt[0] >> 4 {
	case 4:
		s.inputIPv4(l, pkt, g, now, b)
	case 6:
		s.inputIPv6(l, pkt, g, now, b)
	default:
		s.stats.IP[ip.DropBadVersion].Add(1)
	}
}

// badSource reports source addresses no packet may legitimately come from
// (RFC 1122 §3.2.1.3, RFC 4291 §2.5.2): unspecified, multicast, limited
// broadcast, and our own addresses (a reflection or spoof).
func (s *Stack) badSource(a netip.Addr) bool {
	return a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || s.isLocal(a)
}

// addressedToUs screens a packet's addresses: it must be for one of ours and
// from a source that may legitimately send. A refusal is counted.
func (s *Stack) addressedToUs(src, dst netip.Addr) bool {
	if !s.isLocal(dst) {
		s.stats.IPNotForUs.Add(1)
		return false
	}
	if s.badSource(src) {
		s.stats.IPBadSource.Add(1)
		return false
	}
	return true
}

func (s *Stack) inputIPv4(l *link, pkt []byte, g tun.GSO, now tcp.Time, b *rxBatch) {
	if g.IsGSO() && len(pkt) >= ip.IPv4MinHeaderLen {
		// A super-packet from the kernel: its IPv4 header is the
		// template of the segments, and its checksum is not meant to be
		// checked (the kernel rewrites it per segment). Trust it.
		h := ip.IPv4(pkt)
		if hl := h.HeaderLen(); hl >= ip.IPv4MinHeaderLen && hl <= len(pkt) {
			h.SetChecksum(0)
			h.UpdateChecksum()
		}
	}
	h, err := ip.ParseIPv4(pkt)
	if err != nil {
		s.stats.IP[ip.ReasonOf(err)].Add(1)
		return
	}
	dst, src := h.Dst(), h.Src()
	if !s.addressedToUs(src, dst) {
		return
	}
	if h.IsFragment() {
		h = s.reassemble4(h, now)
		if h == nil {
			return
		}
	}
	switch h.Protocol() {
	case protoTCP:
		s.inputTCP(l, src, dst, h.SrcSlice(), h.DstSlice(), h.Payload(), tcp.ECN(h.TOS()&3), g, now, b)
	case protoICMP:
		s.inputICMPv4(l, h, now, b)
	case protoUDP:
		if s.inputUDP(l, src, dst, h.SrcSlice(), h.DstSlice(), h.Payload(), g) {
			s.sendICMPv4Error(l, h, ip.ICMPv4DestUnreach, ip.ICMPv4PortUnreachable, now)
		}
	default:
		s.stats.IPUnknownProtocol.Add(1)
		// RFC 1122 §3.2.2.1: a host SHOULD answer an unknown protocol
		// with Destination Unreachable / Protocol Unreachable.
		s.sendICMPv4Error(l, h, ip.ICMPv4DestUnreach, ip.ICMPv4ProtoUnreachable, now)
	}
}

func (s *Stack) inputIPv6(l *link, pkt []byte, g tun.GSO, now tcp.Time, b *rxBatch) {
	h, info, err := ip.ParseIPv6(pkt)
	if err != nil {
		s.stats.IP[ip.ReasonOf(err)].Add(1)
		return
	}
	dst, src := h.Dst(), h.Src()
	if !s.addressedToUs(src, dst) {
		return
	}
	if info.HasFragment && !info.IsAtomicFragment() {
		// RFC 8200 §4.5. An atomic fragment (offset 0, M clear) is a
		// whole packet and skips reassembly (RFC 6946 §4).
		whole := s.reassemble6(l, h, info, now)
		if whole == nil {
			return
		}
		if h, info, err = ip.ParseIPv6(whole); err != nil {
			s.stats.IP[ip.ReasonOf(err)].Add(1)
			return
		}
		if info.HasFragment && !info.IsAtomicFragment() {
			s.stats.IPv6FragmentDrops.Add(1)
			return
		}
	}
	switch info.Protocol {
	case protoTCP:
		s.inputTCP(l, src, dst, h.SrcSlice(), h.DstSlice(), h[info.Offset:], tcp.ECN(h.TrafficClass()&3), g, now, b)
	case protoICMPv6:
		s.inputICMPv6(l, h, info, now, b)
	case protoUDP:
		if s.inputUDP(l, src, dst, h.SrcSlice(), h.DstSlice(), h[info.Offset:], g) {
			s.sendICMPv6Error(l, h, ip.ICMPv6DestUnreach, ip.ICMPv6PortUnreachable, 0, now)
		}
	default:
		s.stats.IPUnknownProtocol.Add(1)
	}
}

// inputTCP verifies and parses a TCP segment and hands it to its connection
// or listener; ecn is the IP header's ECN field (RFC 3168 §5).
func (s *Stack) inputTCP(l *link, src, dst netip.Addr, srcb, dstb, seg []byte, ecn tcp.ECN, g tun.GSO, now tcp.Time, b *rxBatch) {
	if len(seg) < tcp.HeaderMinLen {
		// Too short to be TCP at all: a malformation, not corruption.
		s.stats.TCPParse[tcp.ErrHeaderTruncated].Add(1)
		return
	}
	// A packet with a partial checksum (NeedsCsum) comes from the local
	// kernel or a peer stack on an in-memory link and was never on a wire:
	// like Linux's CHECKSUM_PARTIAL it is trusted.
	if !g.NeedsCsum && !tcp.VerifyChecksum(seg, srcb, dstb) {
		s.stats.TCPBadChecksum.Add(1)
		return
	}
	sg := &b.seg
	notes, err := tcp.Header(seg).DecodeSegment(sg)
	if err != nil {
		if pe, ok := err.(tcp.ParseError); ok && int(pe) < tcp.NumParseErrors {
			s.stats.TCPParse[pe].Add(1)
		}
		return
	}
	if notes != 0 {
		s.stats.TCPOptionNotes.Add(1)
	}
	sg.ECN = ecn
	h := tcp.Header(seg)
	sp, dp := h.SourcePort(), h.DestinationPort()
	if sp == 0 || dp == 0 {
		s.stats.TCPBadPort.Add(1)
		return
	}
	id := tuple{local: netip.AddrPortFrom(dst, dp), remote: netip.AddrPortFrom(src, sp)}
	sh := s.shardFor(id)
	sh.mu.Lock()
	ep := sh.conns[id.key()]
	if ep != nil && ep.tc.State() == tcp.StateClosed {
		// The connection ended earlier in this read batch (a RST, say) and
		// is freed only at the batch's end. A segment after its end is not
		// for it: the peer may already open a new connection on the same
		// port, and the dead Conn would refuse that SYN with a RST.
		ep.tc.Output(now, ep)
		s.afterOp(ep, now)
		if ep.removed {
			ep = nil
		}
	}
	if ep != nil {
		s.deliver(l, ep, sg, now, b)
	} else {
		s.noConn(l, sh, id, sg, now, b)
	}
	sh.mu.Unlock()
	if s.txLow.Load() {
		s.relieve()
	}
	*sg = tcp.Segment{}
}

// deliver hands seg to ep's Conn, after the checks that are the stack's
// business rather than the Conn's. sh.mu is held.
func (s *Stack) deliver(l *link, ep *endpoint, seg *tcp.Segment, now tcp.Time, b *rxBatch) {
	handled := false
	switch ep.tc.State() {
	case tcp.StateTimeWait:
		if seg.Flags&tcp.FlagRST != 0 {
			// RFC 1337 §3 (TIME-WAIT assassination, hazard H1): a RST in
			// TIME-WAIT is ignored so that old duplicates cannot cut
			// TIME-WAIT short and let a new incarnation accept them.
			s.stats.TCPRFC1337Drops.Add(1)
			return
		}
		if s.timeWaitReusable(ep, seg) {
			// RFC 9293 §3.10.7.4 note / RFC 6191: a new SYN that is
			// provably not an old duplicate ends TIME-WAIT and opens a
			// new incarnation through the listener, as Linux does
			// (tcp_timewait_state_process → TCP_TW_SYN).
			s.stats.TCPTimeWaitReused.Add(1)
			s.removeEP(ep)
			ep.wakeAll()
			s.noConn(l, ep.sh, ep.id, seg, now, b)
			return
		}
	case tcp.StateSynReceived:
		// The ACK completing the handshake of a listener's connection
		// while its accept queue is full is dropped, as Linux does
		// (tcp_check_req → ListenOverflows): the peer retransmits it,
		// or our SYN-ACK retransmission prompts it, once Accept has
		// made room. The check and the move to the accept queue are
		// one step: the ACKs of one read batch must not all see room.
		if ep.ln != nil && seg.Flags&(tcp.FlagACK|tcp.FlagSYN|tcp.FlagRST) == tcp.FlagACK {
			if !ep.ln.handshakeACK(ep, seg, now) {
				s.stats.TCPListenOverflows.Add(1)
				return
			}
			handled = true
		}
	}
	if !handled {
		ep.tc.Input(now, seg)
	}
	if s.trace != nil {
		s.trace.segment(ep, true, seg, now)
	}
	b.mark(ep)
}

// noConn handles a segment that matched no connection: a listener's SYN
// (or cookie ACK), or a RST for a closed port. sh.mu is held.
func (s *Stack) noConn(l *link, sh *shard, id tuple, seg *tcp.Segment, now tcp.Time, b *rxBatch) {
	if ln := s.findListener(id.local); ln != nil {
		s.listenInput(ln, l, sh, id, seg, now, b)
		if s.trace != nil && sh.conns[id.key()] != nil {
			s.trace.segment(sh.conns[id.key()], true, seg, now)
		}
		return
	}
	s.stats.TCPNoSocket.Add(1)
	s.sendReset(l, id, seg)
}

// sendReset answers seg with the RST of RFC 9293 §3.10.7.1 (nothing for a RST).
func (s *Stack) sendReset(l *link, id tuple, seg *tcp.Segment) {
	if rst, ok := tcp.ResetFor(seg); ok {
		s.stats.TCPResetsSent.Add(1)
		s.emitTCP(s.replyLink(l, id.remote.Addr()), id.local, id.remote, &rst)
	}
}
