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

// rcvNexter exposes RCV.NXT and TS.Recent, for accepting a new SYN on a
// TIME-WAIT 4-tuple (RFC 9293 §3.10.7.4 note, RFC 6191). Without it a SYN in
// TIME-WAIT goes to the Conn, which answers it with a challenge ACK.
type rcvNexter interface {
	RcvNxt() tcp.Seq
	TSRecent() (ts uint32, ok bool)
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
