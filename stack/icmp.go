package stack

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
)

// icmpAction is what an ICMP error means for the connection it quotes.
type icmpAction struct {
	err   error // errno for the application
	fatal bool  // Linux's icmp_err_convert "fatal" column
	pmtu  bool  // Fragmentation Needed / Packet Too Big: mtu is the new path MTU
	mtu   int
}

// icmp4Unreach maps ICMPv4 Destination Unreachable codes to errors exactly
// as Linux's icmp_err_convert table does (net/ipv4/icmp.c).
var icmp4Unreach = [16]icmpAction{
	0:  {err: syscall.ENETUNREACH},               // net unreachable
	1:  {err: syscall.EHOSTUNREACH},              // host unreachable
	2:  {err: syscall.ENOPROTOOPT, fatal: true},  // protocol unreachable
	3:  {err: syscall.ECONNREFUSED, fatal: true}, // port unreachable
	4:  {err: syscall.EMSGSIZE},                  // fragmentation needed (PMTU)
	5:  {err: syscall.EOPNOTSUPP},                // source route failed
	6:  {err: syscall.ENETUNREACH, fatal: true},  // net unknown
	7:  {err: syscall.EHOSTDOWN, fatal: true},    // host unknown
	8:  {err: syscall.ENONET, fatal: true},       // host isolated
	9:  {err: syscall.ENETUNREACH, fatal: true},  // net administratively prohibited
	10: {err: syscall.EHOSTUNREACH, fatal: true}, // host administratively prohibited
	11: {err: syscall.ENETUNREACH},               // net unreachable for TOS
	12: {err: syscall.EHOSTUNREACH},              // host unreachable for TOS
	13: {err: syscall.EHOSTUNREACH, fatal: true}, // communication administratively prohibited
	14: {err: syscall.EHOSTUNREACH, fatal: true}, // host precedence violation
	15: {err: syscall.EHOSTUNREACH, fatal: true}, // precedence cut-off
}

// icmp6Unreach is Linux's icmpv6_err_convert tab_unreach (net/ipv6/icmp.c).
var icmp6Unreach = [7]icmpAction{
	0: {err: syscall.ENETUNREACH},               // no route
	1: {err: syscall.EACCES, fatal: true},       // administratively prohibited
	2: {err: syscall.EHOSTUNREACH},              // beyond scope of source address
	3: {err: syscall.EHOSTUNREACH},              // address unreachable
	4: {err: syscall.ECONNREFUSED, fatal: true}, // port unreachable
	5: {err: syscall.EACCES, fatal: true},       // source address failed policy
	6: {err: syscall.EACCES, fatal: true},       // reject route
}

// Path MTU floors: RFC 1191 §3 does not go below 68, Linux's min_pmtu is
// 552; IPv6 links have at least 1280 (RFC 8200 §5, RFC 8201 §4).
const (
	minPMTU4 = 552
	minPMTU6 = 1280
)

func (s *Stack) inputICMPv4(l *link, h ip.IPv4, now tcp.Time, b *rxBatch) {
	m, err := ip.ParseICMPv4(h.Payload())
	if err != nil {
		s.stats.ICMPMalformed.Add(1)
		return
	}
	var act icmpAction
	switch m.Type() {
	case ip.ICMPv4Echo:
		s.echoReply4(s.replyLink(l, h.Src()), h)
		return
	case ip.ICMPv4EchoReply:
		s.inputEchoReply(l, h.Src(), h.Dst(), m.Ident(), m)
		return
	case ip.ICMPv4DestUnreach:
		if int(m.Code()) >= len(icmp4Unreach) {
			s.stats.ICMPIgnored.Add(1)
			return
		}
		act = icmp4Unreach[m.Code()]
		if m.Code() == ip.ICMPv4FragNeeded {
			act.pmtu, act.mtu = true, int(m.MTU())
		}
	case ip.ICMPv4TimeExceeded:
		act = icmpAction{err: syscall.EHOSTUNREACH}
	case ip.ICMPv4ParamProblem:
		act = icmpAction{err: syscall.EPROTO, fatal: true}
	default:
		s.stats.ICMPIgnored.Add(1)
		return
	}
	inner, l4, err := ip.ParseInvokingIPv4(m.Invoking())
	if err != nil || len(l4) < 8 {
		s.stats.ICMPIgnored.Add(1)
		return
	}
	s.icmpErrorProto(inner.Protocol(), inner.Src(), inner.Dst(), l4, act, now, b)
}

// icmpErrorProto applies an ICMP error quoting our packet from src to dst
// of protocol proto, whose first 8 upper-layer bytes are l4.
func (s *Stack) icmpErrorProto(proto uint8, src, dst netip.Addr, l4 []byte, act icmpAction, now tcp.Time, b *rxBatch) {
	switch proto {
	case protoTCP:
		s.icmpErrorFor(src, dst, l4, act, now, b)
	case protoUDP:
		if act.pmtu {
			// Our UDP fragments at the link MTU and never sets DF.
			s.stats.ICMPIgnored.Add(1)
			return
		}
		u := ip.UDP(l4)
		s.udpICMPError(netip.AddrPortFrom(src, u.SourcePort()), netip.AddrPortFrom(dst, u.DestinationPort()), act)
	case protoICMP, protoICMPv6:
		echo := proto == protoICMP && l4[0] == ip.ICMPv4Echo || proto == protoICMPv6 && l4[0] == ip.ICMPv6EchoRequest
		if act.pmtu || !echo {
			s.stats.ICMPIgnored.Add(1)
			return
		}
		s.pingICMPError(src, dst, ip.ICMPv4(l4).Ident(), act)
	default:
		s.stats.ICMPIgnored.Add(1)
	}
}

func (s *Stack) inputICMPv6(l *link, h ip.IPv6, info ip.IPv6Info, now tcp.Time, b *rxBatch) {
	m, err := ip.ParseICMPv6(h[info.Offset:], h.SrcSlice(), h.DstSlice())
	if err != nil {
		s.stats.ICMPMalformed.Add(1)
		return
	}
	var act icmpAction
	switch t := m.Type(); t {
	case ip.ICMPv6EchoRequest:
		s.echoReply6(s.replyLink(l, h.Src()), h, info)
		return
	case ip.ICMPv6EchoReply:
		s.inputEchoReply(l, h.Src(), h.Dst(), m.Ident(), m)
		return
	case ip.ICMPv6DestUnreach:
		if int(m.Code()) >= len(icmp6Unreach) {
			s.stats.ICMPIgnored.Add(1)
			return
		}
		act = icmp6Unreach[m.Code()]
	case ip.ICMPv6PacketTooBig:
		mtu := m.MTU()
		if mtu > 1<<16 {
			mtu = 1 << 16
		}
		act = icmpAction{err: syscall.EMSGSIZE, pmtu: true, mtu: int(mtu)}
	case ip.ICMPv6TimeExceeded:
		act = icmpAction{err: syscall.EHOSTUNREACH}
	case ip.ICMPv6ParamProblem:
		act = icmpAction{err: syscall.EPROTO, fatal: true}
	default:
		switch {
		case t >= 133 && t <= 137:
			// Router/neighbour discovery: a TUN has no link layer.
			s.stats.ICMPv6NDIgnored.Add(1)
		case t >= 130 && t <= 132 || t == 143:
			s.stats.ICMPv6MLDIgnored.Add(1)
		default:
			s.stats.ICMPIgnored.Add(1)
		}
		return
	}
	// The quoted packet is one of ours, which carry no extension headers
	// but a Fragment header: the upper-layer header follows the fixed
	// header, or the Fragment header of a first fragment.
	inv := m.Invoking()
	if len(inv) < ip.IPv6HeaderLen+8 {
		s.stats.ICMPIgnored.Add(1)
		return
	}
	inner := ip.IPv6(inv)
	proto, l4 := inv[6], inv[ip.IPv6HeaderLen:]
	if proto == ip.ProtocolFragment {
		if len(l4) < ip.IPv6FragmentHeaderLen+8 || binary.BigEndian.Uint16(l4[2:])&^7 != 0 {
			s.stats.ICMPIgnored.Add(1)
			return
		}
		proto, l4 = l4[0], l4[ip.IPv6FragmentHeaderLen:]
	}
	s.icmpErrorProto(proto, inner.Src(), inner.Dst(), l4, act, now, b)
}

// icmpErrorFor applies an ICMP error that quotes a TCP segment we sent from
// src to dst; quoted holds at least the first 8 bytes of its TCP header
// (ports and sequence number), all an ICMP error is sure to carry.
func (s *Stack) icmpErrorFor(src, dst netip.Addr, quoted []byte, act icmpAction, now tcp.Time, b *rxBatch) {
	h := tcp.Header(quoted)
	local := netip.AddrPortFrom(src, h.SourcePort())
	remote := netip.AddrPortFrom(dst, h.DestinationPort())
	s.icmpError(local, remote, h.SequenceNumber(), act, now, b)
}

// icmpError applies an ICMP error quoting our segment with sequence number
// seq from local to remote, as Linux's tcp_v4_err / tcp_v6_err do:
//   - the quoted sequence number must lie in [SND.UNA, SND.NXT], or the
//     message is ignored (RFC 5927 §4.1, against blind attacks);
//   - Fragmentation Needed / Packet Too Big lowers the path MTU
//     (RFC 1191, RFC 8201) and is otherwise no error;
//   - in SYN-SENT any other error ends the connect with its errno
//     (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH...); a fatal one ends a
//     SYN-RECEIVED connection (Linux tcp_req_err);
//   - in a synchronized state errors are soft (RFC 1122 §4.2.3.9): they are
//     reported only if the connection later times out.
func (s *Stack) icmpError(local, remote netip.AddrPort, seq tcp.Seq, act icmpAction, now tcp.Time, b *rxBatch) {
	id := tuple{local: local, remote: remote}
	sh := s.shardFor(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ep := sh.conns[id.key()]
	if ep == nil {
		s.stats.ICMPErrorsNoConn.Add(1)
		return
	}
	if !icmpSeqOK(ep.tc, seq) {
		s.stats.ICMPErrorsBadSeq.Add(1)
		return
	}
	if act.pmtu {
		floor := minPMTU4
		if !local.Addr().Is4() {
			floor = minPMTU6
		}
		if act.mtu < floor {
			// RFC 1191 §7 / RFC 8201 §4: never go below the minimum;
			// Linux clamps to min_pmtu rather than ignoring.
			act.mtu = floor
		}
		if !setPathMTU(ep.tc, now, act.mtu, !local.Addr().Is4()) {
			s.stats.ICMPFragNeededBad.Add(1)
			return
		}
		s.stats.ICMPFragNeeded.Add(1)
		b.mark(ep) // retransmit at the new size right away (Linux tcp_simple_retransmit)
		return
	}
	switch ep.tc.State() {
	case tcp.StateSynSent:
		s.stats.ICMPErrorsHard.Add(1)
		ep.stackErr = act.err
		s.removeEP(ep)
		ep.wakeAll()
	case tcp.StateSynReceived:
		if act.fatal && ep.ln != nil {
			s.stats.ICMPErrorsHard.Add(1)
			ep.stackErr = act.err
			s.removeEP(ep)
			ep.wakeAll()
			return
		}
		s.stats.ICMPErrorsSoft.Add(1)
		ep.softErr = act.err
	default:
		s.stats.ICMPErrorsSoft.Add(1)
		ep.softErr = act.err
	}
}

// echoReply4 answers an ICMPv4 echo request (RFC 792, RFC 1122 §3.2.2.6):
// the request is copied, turned around in place and queued.
func (s *Stack) echoReply4(l *link, h ip.IPv4) {
	pb := s.txBuf(len(h))
	if pb == nil {
		s.stats.ICMPOutputNoBuffer.Add(1)
		return
	}
	p := ip.IPv4(pb.b[headroom : headroom+len(h)])
	copy(p, h)
	if ip.ReplyToEchoIPv4(p, defaultTTL) != nil {
		s.pool.put([]*pktBuf{pb})
		s.stats.ICMPIgnored.Add(1)
		return
	}
	p.SetID(l.nextID())
	if len(p) > l.mtu {
		// A reassembled request's reply is as big: fragment it, as
		// Linux does (its ICMP replies go without DF). The request's DF
		// goes: gVisor, for one, sets DF on the fragments it sends.
		p.ClearDontFragment()
		p.UpdateChecksum()
		s.sendFragments4(l, p)
		s.pool.put([]*pktBuf{pb})
		return
	}
	p.UpdateChecksum()
	pb.n = len(p)
	s.stats.ICMPEchoReplies.Add(1)
	l.enqueue(pb)
}

// sendFragments4 queues the echo reply p, bigger than l's MTU, as IPv4
// fragments; all of them or, short of buffers, none.
func (s *Stack) sendFragments4(l *link, p ip.IPv4) {
	var frags []*pktBuf
	_, err := ip.FragmentIPv4(p, l.mtu, func(n int) []byte {
		pb := s.txBuf(n)
		if pb == nil {
			return nil
		}
		pb.n = n
		frags = append(frags, pb)
		return pb.b[headroom : headroom+n]
	})
	if err != nil {
		s.pool.put(frags)
		if err == ip.ErrBufferTooSmall {
			s.stats.ICMPOutputNoBuffer.Add(1)
		} else {
			s.stats.ICMPIgnored.Add(1) // DF set, or an MTU too small to cut at
		}
		return
	}
	for _, pb := range frags {
		l.enqueue(pb)
	}
	s.stats.ICMPEchoReplies.Add(1)
	s.stats.IPFragmentsSent.Add(uint64(len(frags)))
}

// echoReply6 answers an ICMPv6 echo request (RFC 4443 §4.2).
func (s *Stack) echoReply6(l *link, h ip.IPv6, info ip.IPv6Info) {
	pb := s.txBuf(len(h))
	if pb == nil {
		s.stats.ICMPOutputNoBuffer.Add(1)
		return
	}
	p := ip.IPv6(pb.b[headroom : headroom+len(h)])
	copy(p, h)
	if ip.ReplyToEchoIPv6(p, info, defaultTTL) != nil {
		s.pool.put([]*pktBuf{pb})
		s.stats.ICMPIgnored.Add(1)
		return
	}
	if len(p) > l.mtu {
		// A reassembled request's reply is as big: it leaves in
		// fragments (without the request's extension headers).
		msg := []byte(p[info.Offset:])
		src, dst := p.Src(), p.Dst()
		err := s.sendDatagramOn(l, src, dst, protoICMPv6, len(msg), func(b []byte) { copy(b, msg) })
		s.pool.put([]*pktBuf{pb})
		if err != nil {
			s.stats.ICMPOutputNoBuffer.Add(1)
			return
		}
		s.stats.ICMPEchoReplies.Add(1)
		return
	}
	pb.n = len(p)
	s.stats.ICMPEchoReplies.Add(1)
	l.enqueue(pb)
}

// sendICMPv4Error sends an ICMPv4 error about the packet h, rate limited,
// quoting as much of h as keeps the datagram within 576 bytes (RFC 1812
// §4.3.2.3). No error answers a non-first fragment (RFC 1122 §3.2.2).
func (s *Stack) sendICMPv4Error(l *link, h ip.IPv4, typ, code uint8, now tcp.Time) {
	if h.FragmentOffset() != 0 {
		return
	}
	if !s.icmpTokens.allow(now) {
		s.stats.ICMPRateLimited.Add(1)
		return
	}
	l = s.replyLink(l, h.Src())
	n := min(len(h), ip.IPv4MinErrorSize-ip.IPv4MinHeaderLen-ip.ICMPHeaderLen)
	total := ip.IPv4MinHeaderLen + ip.ICMPHeaderLen + n
	pb := s.txBuf(total)
	if pb == nil {
		s.stats.ICMPOutputNoBuffer.Add(1)
		return
	}
	p := pb.b[headroom : headroom+total]
	if _, err := ip.BuildICMPv4Error(p[ip.IPv4MinHeaderLen:], typ, code, 0, h[:n]); err != nil {
		s.pool.put([]*pktBuf{pb})
		return
	}
	writeIPHeader(p, h.Dst(), h.Src(), protoICMP, total, l.nextID(), false)
	pb.n = total
	if typ == ip.ICMPv4TimeExceeded {
		s.stats.ICMPTimeExceededSent.Add(1)
	} else {
		s.stats.ICMPUnreachSent.Add(1)
	}
	l.enqueue(pb)
}

// sendICMPv6Error sends an ICMPv6 error about the packet h, rate limited,
// quoting as much of h as keeps the packet within the IPv6 minimum MTU
// (RFC 4443 §2.4(c)); param is the pointer or MTU field.
func (s *Stack) sendICMPv6Error(l *link, h ip.IPv6, typ, code uint8, param uint32, now tcp.Time) {
	if !s.icmpTokens.allow(now) {
		s.stats.ICMPRateLimited.Add(1)
		return
	}
	l = s.replyLink(l, h.Src())
	n := min(len(h), ip.IPv6MinMTU-ip.IPv6HeaderLen-ip.ICMPHeaderLen)
	total := ip.IPv6HeaderLen + ip.ICMPHeaderLen + n
	pb := s.txBuf(total)
	if pb == nil {
		s.stats.ICMPOutputNoBuffer.Add(1)
		return
	}
	p := pb.b[headroom : headroom+total]
	writeIPHeader(p, h.Dst(), h.Src(), protoICMPv6, total, 0, false)
	if _, err := ip.BuildICMPv6Error(p[ip.IPv6HeaderLen:], typ, code, param, h[:n], p[8:24], p[24:40]); err != nil {
		s.pool.put([]*pktBuf{pb})
		return
	}
	pb.n = total
	switch typ {
	case ip.ICMPv6TimeExceeded:
		s.stats.ICMPTimeExceededSent.Add(1)
	case ip.ICMPv6ParamProblem:
		s.stats.ICMPParamProblemSent.Add(1)
	default:
		s.stats.ICMPUnreachSent.Add(1)
	}
	l.enqueue(pb)
}

// icmpLimiter is a token bucket for the ICMP errors we send, Linux's
// icmp_msgs_per_sec (1000/s) and icmp_msgs_burst (50).
type icmpLimiter struct {
	mu     sync.Mutex
	tokens int
	last   tcp.Time
}

const (
	icmpRate  = 1000
	icmpBurst = 50
)

func (r *icmpLimiter) init(now tcp.Time) { r.tokens, r.last = icmpBurst, now }

// allow takes a token if one is available at now.
func (r *icmpLimiter) allow(now tcp.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add := int(now.Sub(r.last) / (time.Second / icmpRate)); add > 0 {
		r.tokens = min(icmpBurst, r.tokens+add)
		r.last = now
	}
	if r.tokens == 0 {
		return false
	}
	r.tokens--
	return true
}
