package tcp

import (
	"fmt"
	"strings"
)

// ECN is the ECN field of an IP header (RFC 3168 §5): the two low bits of
// the IPv4 TOS byte or the IPv6 traffic class. On an input Segment it is
// the field the packet arrived with; on an output Segment the field the
// stack must send it with.
type ECN uint8

// The ECN codepoints (RFC 3168 §5).
const (
	ECNNotECT ECN = 0 // not ECN-capable transport
	ECNECT1   ECN = 1 // ECN-capable transport, ECT(1)
	ECNECT0   ECN = 2 // ECN-capable transport, ECT(0): what TCP sends
	ECNCE     ECN = 3 // congestion experienced (set by a router)
)

// String returns the codepoint's name as tcpdump prints it: not-ect,
// ect1, ect0, ce.
func (e ECN) String() string {
	switch e & 3 {
	case ECNECT1:
		return "ect1"
	case ECNECT0:
		return "ect0"
	case ECNCE:
		return "ce"
	}
	return "not-ect"
}

// ECNMode is Config.ECN: whether a connection negotiates RFC 3168 ECN.
// The modes are Linux's net.ipv4.tcp_ecn values (by name, not by number).
type ECNMode uint8

// ECN modes.
const (
	// ECNAccept (the default, Linux tcp_ecn=2): an active open does not
	// ask for ECN; a passive open accepts an ECN-setup SYN (ECE and CWR
	// set) and answers with an ECN-setup SYN-ACK (ECE set).
	ECNAccept ECNMode = iota
	// ECNOn (Linux tcp_ecn=1): an active open sends an ECN-setup SYN too.
	ECNOn
	// ECNOff (Linux tcp_ecn=0): never; an ECN-setup SYN gets a plain
	// SYN-ACK.
	ECNOff
)

// ecnModeNames are the ECNMode names, in order.
var ecnModeNames = []string{"accept", "on", "off"}

// String returns the mode's name: accept, on or off.
func (m ECNMode) String() string {
	if int(m) < len(ecnModeNames) {
		return ecnModeNames[m]
	}
	return fmt.Sprintf("ECNMode(%d)", uint8(m))
}

// ParseECNMode parses an ECNMode's name (accept, on, off), also as Linux's
// tcp_ecn numbers 2, 1 and 0.
func ParseECNMode(s string) (ECNMode, error) {
	switch strings.ToLower(s) {
	case "accept", "2":
		return ECNAccept, nil
	case "on", "1", "true":
		return ECNOn, nil
	case "off", "0", "false":
		return ECNOff, nil
	}
	return 0, fmt.Errorf("tcp: unknown ECN mode %q (want %s)", s, strings.Join(ecnModeNames, ", "))
}

// ecnFlags are a connection's ECN state bits (one byte in Conn: the
// struct has no room for more).
type ecnFlags uint8

const (
	// ecnOK: ECN was negotiated on the handshake (Linux TCP_ECN_OK).
	ecnOK ecnFlags = 1 << iota
	// ecnSeen: an ECT or CE data segment has arrived (TCP_ECN_SEEN).
	ecnSeen
	// ecnDemandCWR: a CE mark arrived; every segment we send carries ECE
	// until a segment with CWR arrives (RFC 3168 §6.1.3,
	// TCP_ECN_DEMAND_CWR).
	ecnDemandCWR
	// ecnQueueCWR: the congestion window was reduced; the next new data
	// segment carries CWR (RFC 3168 §6.1.2, TCP_ECN_QUEUE_CWR).
	ecnQueueCWR
	// ecnInCWR: the reduction an ECN-Echo started is under way until
	// everything sent before it is acknowledged (Linux TCP_CA_CWR).
	ecnInCWR
	// ecnHold: a reduction (ECE, fast recovery or RTO) covers the data
	// sent up to rareState.ecnHigh; ECN-Echoes for it are not reacted to
	// again (RFC 3168 §6.1.2: at most once per window of data).
	ecnHold
	// ecnAsked: our SYN was an ECN-setup SYN.
	ecnAsked
)

// ecnSYNFlags returns the ECN bits of our SYN or SYN-ACK: ECE|CWR on an
// active open in ECNOn mode (RFC 3168 §6.1.1), dropped on a retransmitted
// SYN as Linux does (tcp_ecn_clear_syn, RFC 3168 §6.1.1.1: a middlebox may
// drop ECN-setup SYNs); ECE on the SYN-ACK of a negotiated passive open.
func (c *Conn) ecnSYNFlags() Flags {
	if c.state == StateSynSent {
		if c.cfg.ECN == ECNOn && c.synRetransmits == 0 {
			c.ecn |= ecnAsked
			return FlagECE | FlagCWR
		}
		return 0
	}
	if c.ecn&ecnOK != 0 {
		return FlagECE
	}
	return 0
}

// ecnOnSYNACK decides ECN on an active open from the SYN-ACK: on when we
// asked and it is an ECN-setup SYN-ACK, ECE without CWR (RFC 3168 §6.1.1).
func (c *Conn) ecnOnSYNACK(seg *Segment) {
	if c.ecn&ecnAsked != 0 && seg.Flags&(FlagECE|FlagCWR) == FlagECE {
		c.ecn |= ecnOK
	}
}

// ecnAcceptSYN decides ECN on a passive open from the SYN: on unless
// ECNOff when the SYN is an ECN-setup SYN, ECE and CWR both set. Like
// Linux (tcp_ecn_create_request), a SYN that is itself ECT or CE marked is
// refused ECN: something on the path rewrites the ECN field.
func (c *Conn) ecnAcceptSYN(syn *Segment) {
	if ECNAcceptsSYN(c.cfg.ECN, syn) {
		c.ecn |= ecnOK
	}
}

// ECNAcceptsSYN reports whether a passive open in mode accepts ECN for syn
// (see ECNAccept; SYN cookies use it to answer as the connection would).
func ECNAcceptsSYN(mode ECNMode, syn *Segment) bool {
	return mode != ECNOff && syn.Flags&(FlagECE|FlagCWR) == FlagECE|FlagCWR && syn.ECN == ECNNotECT
}

// ECNNegotiated reports whether the connection negotiated ECN.
func (c *Conn) ECNNegotiated() bool { return c.ecn&ecnOK != 0 }

// ecnInput is the receiver's half for an acceptable segment that occupies
// sequence space (Linux tcp_ecn_accept_cwr and tcp_ecn_check_ce): a CWR
// ends our ECN-Echo, then a CE mark starts it again. hasData is whether
// in-window data remains after trimming.
func (c *Conn) ecnInput(seg *Segment, hasData bool) {
	if c.ecn&ecnOK == 0 {
		return
	}
	if seg.Flags&FlagCWR != 0 {
		c.ecn &^= ecnDemandCWR
		if len(seg.Payload) > 0 {
			// The sender has just cut its window, perhaps to one
			// segment: do not make it wait for a delayed ACK.
			c.ackNow = true
		}
	}
	if !hasData {
		return
	}
	switch seg.ECN {
	case ECNCE:
		c.rare().ceRcvd++
		if c.ecn&ecnDemandCWR == 0 {
			// The ECE goes back at once (Linux enters quick-ACK mode).
			c.ecn |= ecnDemandCWR
			c.ackNow = true
		}
		c.ecn |= ecnSeen
	case ECNECT0, ECNECT1:
		c.ecn |= ecnSeen
	}
}

// ecnOnAck is the sender's half for an acceptable ACK, after SND.UNA has
// moved: the ECN reduction ends when all data sent before it is
// acknowledged, and an ECN-Echo outside a reduction starts one (RFC 3168
// §6.1.2): the congestion control reacts as to a loss, without a
// retransmission, and the next new data segment carries CWR. flight is
// FlightSize before this ACK: the window the echo is about (after it, an
// ACK of everything would leave nothing to halve).
func (c *Conn) ecnOnAck(now Time, seg *Segment, flight uint32) {
	if c.ecn&ecnOK == 0 {
		return
	}
	if c.ecn&ecnHold != 0 && c.sndUna.GreaterThan(c.rs.ecnHigh) {
		// Held until something above the reduction's SND.MAX is
		// acknowledged, so that the CWR has reached the receiver
		// (Linux tcp_fastretrans_alert, TCP_CA_CWR).
		c.ecn &^= ecnHold | ecnInCWR
	}
	if seg.Flags&FlagECE == 0 {
		return
	}
	r := c.rare()
	r.eceRcvd++
	if c.ecn&ecnHold != 0 || c.inRecovery {
		return // already reduced for this window of data
	}
	r.ecnReductions++
	c.ecnReduced()
	c.ecn |= ecnInCWR
	c.cc.OnEvent(now, CCEvent{Kind: CCECNEcho, InFlight: flight})
}

// ecnReduced records a window reduction (ECN-Echo, fast recovery or RTO):
// CWR goes on the next new data segment, and ECN-Echoes about the data
// in flight now are not reacted to again.
func (c *Conn) ecnReduced() {
	if c.ecn&ecnOK == 0 {
		return
	}
	c.ecn |= ecnQueueCWR | ecnHold
	c.ecn &^= ecnInCWR
	c.rare().ecnHigh = c.sndMax
}

// ecnOutput sets the ECN bits of a non-SYN segment being emitted: ECE
// while we owe the peer an echo; on new data (not a retransmission, not a
// pure ACK: RFC 3168 §6.1.5, like Linux's tcp_ecn_send) ECT(0), and CWR
// once after a reduction.
func (c *Conn) ecnOutput(seg *Segment) {
	if c.ecn&ecnOK == 0 {
		return
	}
	if c.ecn&ecnDemandCWR != 0 {
		seg.Flags |= FlagECE
	}
	if len(seg.Payload) == 0 || seg.Seq.LessThan(c.sndMax) {
		return
	}
	seg.ECN = ECNECT0
	if c.ecn&ecnQueueCWR != 0 {
		c.ecn &^= ecnQueueCWR
		seg.Flags |= FlagCWR
		c.rare().cwrSent++
	}
}

// ecnCWRSegment reports whether the next new data segment carries CWR: it
// goes out as a single wire segment, not in a GSO super-segment (whose
// header every piece would copy).
func (c *Conn) ecnCWRSegment() bool { return c.ecn&(ecnOK|ecnQueueCWR) == ecnOK|ecnQueueCWR }
