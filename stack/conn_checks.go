package stack

import "github.com/ustack-net/ustack/tcp"

// icmpSeqOK reports whether seq, quoted by an ICMP error, is data we have
// sent and not had acknowledged: SND.UNA <= seq <= SND.NXT (Linux accepts
// the same closed range).
func icmpSeqOK(tc *tcp.Conn, seq tcp.Seq) bool {
	return seq.InRange(tc.SndUna(), tc.SndNxt().Add(1))
}

// setPathMTU applies a new path MTU to tc; false when the engine cannot or
// the MTU changes nothing.
func setPathMTU(tc *tcp.Conn, now tcp.Time, mtu int, v6 bool) bool {
	mss := mtu - 20 - tcp.HeaderMinLen
	if v6 {
		mss = mtu - 40 - tcp.HeaderMinLen
	}
	return mss > 0 && tc.SetPathMSS(now, uint16(mss))
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
