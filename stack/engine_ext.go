package stack

import "github.com/ustack-net/ustack/tcp"

// Methods of tcp.Conn beyond the CONTRACT.md API that the stack uses when
// the engine provides them. They are checked with type assertions so the
// stack builds against any engine version; without them the stack falls back
// to the behaviour documented at each use.

// seqRanger exposes SND.UNA and SND.NXT, to validate the sequence number
// quoted by an ICMP error (RFC 5927 §4.1). Without it ICMP errors are
// accepted for any quoted sequence number.
type seqRanger interface {
	SndUna() tcp.Seq
	SndNxt() tcp.Seq
}

// pathMSSSetter lowers the connection's send MSS to mss (path MTU minus the
// IP and fixed TCP headers), learnt from ICMP Fragmentation Needed / Packet
// Too Big (RFC 1191, RFC 8201), and reports whether it changed anything (a
// larger value than the current one changes nothing). Without it PMTU
// messages are counted (icmp_frag_needed_bad) and ignored.
type pathMSSSetter interface {
	SetPathMSS(now tcp.Time, mss uint16) bool
}

// icmpSeqOK reports whether seq, quoted by an ICMP error, is data we have
// sent and not had acknowledged: SND.UNA <= seq <= SND.NXT (Linux accepts
// the same closed range).
func icmpSeqOK(tc *tcp.Conn, seq tcp.Seq) bool {
	r, ok := any(tc).(seqRanger)
	if !ok {
		return true
	}
	return seq.InRange(r.SndUna(), r.SndNxt().Add(1))
}

// setPathMTU applies a new path MTU to tc; false when the engine cannot or
// the MTU changes nothing.
func setPathMTU(tc *tcp.Conn, now tcp.Time, mtu int, v6 bool) bool {
	mss := mtu - 20 - tcp.HeaderMinLen
	if v6 {
		mss = mtu - 40 - tcp.HeaderMinLen
	}
	p, ok := any(tc).(pathMSSSetter)
	return ok && mss > 0 && p.SetPathMSS(now, uint16(mss))
}

// timeWaitReusable reports whether seg, arriving for ep in TIME-WAIT, is a
// SYN that may start a new incarnation of the connection: a listener owns
// the local port, and the SYN is newer than anything of the old one — its
// timestamp is newer than TS.Recent when both carry timestamps (RFC 6191
// §2), otherwise its sequence number is beyond RCV.NXT (RFC 1122 4.2.2.13).
func (s *Stack) timeWaitReusable(ep *endpoint, seg *tcp.Segment) bool {
	if seg.Flags&(tcp.FlagSYN|tcp.FlagACK|tcp.FlagRST) != tcp.FlagSYN {
		return false
	}
	if s.findListener(ep.id.local) == nil {
		return false
	}
	if ts, ok := ep.tc.TSRecent(); ok && seg.Options.HasTimestamp {
		return int32(seg.Options.TSVal-ts) > 0
	}
	return seg.Seq.GreaterThan(ep.tc.RcvNxt())
}
