package integration

// The expected divergences between ustack and gVisor that the oracle
// scripts encode (each also written up in docs/divergences.md, which a test
// keeps in step with this list).
var (
	// DivSimOpenSYNACK: the SYN-ACK that completes a simultaneous open.
	DivSimOpenSYNACK = &Divergence{
		Name: "simopen-synack-in-syn-received",
		RFC:  "RFC 9293 §3.5 Figure 8 (vs §3.10.7.4 first check)",
		Summary: "In a simultaneous open the peer's SYN-ACK reaches a SYN-RECEIVED DUT. ustack (like Linux) " +
			"takes its ACK and goes ESTABLISHED silently, as Figure 8 line 6 shows; gVisor applies the " +
			"§3.10.7.4 sequence check to the SYN (SEG.SEQ = RCV.NXT-1), answers with an ACK and stays " +
			"SYN-RECEIVED until the peer's next segment. Both interoperate; ustack follows the figure and Linux.",
	}
	// DivSYNACKRetries: how many SYN-ACK retransmissions before giving up.
	DivSYNACKRetries = &Divergence{
		Name: "synack-retries",
		RFC:  "RFC 9293 §3.8.1, RFC 6298 §5.5 (no fixed count)",
		Summary: "ustack retransmits a SYN-ACK 5 times (1, 3, 7, 15, 31 s; Linux tcp_synack_retries) and drops " +
			"the embryonic connection at 63 s; gVisor keeps backing off until the doubled timeout would exceed " +
			"its 120 s MaxRTO: 6 retransmissions, the last at 63 s. No RFC fixes the count.",
	}
	// DivKeepaliveRST: what a DUT sends when keepalive gives up.
	DivKeepaliveRST = &Divergence{
		Name: "keepalive-exhaustion-rst",
		RFC:  "RFC 1122 §4.2.3.6 (silent on it)",
		Summary: "When the last keepalive probe goes unanswered ustack sends a RST (SEQ=SND.NXT) and reports " +
			"ETIMEDOUT, as Linux's tcp_keepalive_timer does; gVisor reports ETIMEDOUT silently. The RFC does " +
			"not say; the RST tells a peer that comes back that the connection is gone.",
	}
	// DivKeepaliveConnecting: gVisor's keepalive timer on an active open.
	DivKeepaliveConnecting = &Divergence{
		Name: "gvisor-keepalive-connecting-side",
		RFC:  "RFC 1122 §4.2.3.6",
		Summary: "Keepalive enabled before the handshake completes: ustack probes once the connection has been " +
			"idle for the keepalive time; gVisor never arms its keepalive timer until a segment arrives in " +
			"ESTABLISHED (the SYN-ACK is handled by the handshake), so an idle connection is never probed. " +
			"gVisor is wrong: probes must be sent when no data or acknowledgement has been received for the interval.",
	}
	// DivZeroWindowProbe: the shape of a zero-window probe.
	DivZeroWindowProbe = &Divergence{
		Name: "zero-window-probe-form",
		RFC:  "RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17",
		Summary: "ustack probes a zero window with the next byte of new data (SEG.SEQ = SND.NXT, 1 byte), as " +
			"§3.8.6.1 describes; gVisor re-sends one junk byte at SND.UNA-1 (an already acknowledged sequence " +
			"number, Linux sends it with no data). Both elicit an ACK carrying the window; the probe times " +
			"(RTO-based exponential backoff) are identical.",
	}
	// DivChallengeACKRate: rate limiting of RFC 5961 challenge ACKs.
	DivChallengeACKRate = &Divergence{
		Name: "challenge-ack-rate-limit",
		RFC:  "RFC 5961 §7",
		Summary: "gVisor (like Linux's tcp_invalid_ratelimit) sends at most one challenge/out-of-window ACK per " +
			"500 ms per connection, so a SYN right after an in-window RST gets no answer; ustack allows " +
			"ChallengeACKLimit (default 1000) per second per connection. §7 only asks for a configurable limit.",
	}
	// DivDelayedACK: gVisor acknowledges every segment at once.
	DivDelayedACK = &Divergence{
		Name: "gvisor-no-delayed-ack",
		RFC:  "RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2, RFC 5681 §4.2",
		Summary: "ustack delays the ACK of a lone in-order segment by up to 40 ms and ACKs at least every second " +
			"full-sized segment; gVisor ACKs every segment immediately. Delayed ACK is a SHOULD; ustack follows it.",
	}
	// DivMSSSACKReserve: gVisor's payload size with SACK negotiated.
	DivMSSSACKReserve = &Divergence{
		Name: "gvisor-mss-reserves-sack-space",
		RFC:  "RFC 9293 §3.7.1, RFC 6691 §2",
		Summary: "With SACK negotiated gVisor subtracts room for timestamps plus four SACK blocks (40 bytes) from " +
			"every segment: 1420-byte payloads for MSS 1460. ustack subtracts the options a segment actually " +
			"carries (12 bytes of timestamps): 1448. RFC 6691 says to subtract the options sent; both are legal.",
	}
	// DivNagleMinshall: which unacknowledged data holds a small segment.
	DivNagleMinshall = &Divergence{
		Name: "nagle-minshall",
		RFC:  "RFC 896, RFC 1122 §4.2.3.4, RFC 9293 §3.7.4",
		Summary: "Nagle with Minshall's refinement (ustack, like Linux): a sub-MSS segment waits only while an " +
			"earlier sub-MSS segment is unacknowledged, so a small write after full-sized segments goes at once " +
			"and the next small one waits. gVisor applies Nagle per write: a write's tail goes with it, but a " +
			"small write waits while anything is unacknowledged. Both coalesce tiny writes; both are Nagle.",
	}
	// DivRetries2TimeBound: when retransmitting data gives up.
	DivRetries2TimeBound = &Divergence{
		Name: "retries2-time-bound",
		RFC:  "RFC 1122 §4.2.3.5, RFC 6298 §5.5",
		Summary: "ustack, like Linux, turns tcp_retries2 (15) into a time bound: data may stay unacknowledged for " +
			"as long as 15 retransmissions take when the RTO starts at 200 ms and doubles up to 120 s (924.6 s), " +
			"checked when the timer fires; gVisor counts 15 retransmissions whatever the RTO. They agree when " +
			"the RTO sits at the floor; with a 2.7 s RTO ustack gives up after 12 (at 1011 s), gVisor after 15 " +
			"(at 1371 s). RFC 1122 only asks for R2 of at least 100 s.",
	}
	// DivSYNStormAfterBadSYNACK: gVisor's SYN retransmission after it
	// resets an unacceptable SYN-ACK.
	DivSYNStormAfterBadSYNACK = &Divergence{
		Name: "gvisor-syn-storm-after-bad-synack",
		RFC:  "RFC 9293 §3.10.7.3, RFC 6298 §5",
		Summary: "A SYN-ACK whose ACK does not cover our SYN is answered with <SEQ=SEG.ACK><CTL=RST> by both. " +
			"ustack then keeps its SYN retransmission schedule (next SYN at 1 s), like Linux; gVisor restarts " +
			"its handshake timer at 2 µs and doubles it: 18 SYNs within the next second. Nothing in the RFCs " +
			"asks for that burst; ustack is right.",
	}
	// DivDuplicateSYNInSYNReceived: a retransmitted SYN reaching SYN-RECEIVED.
	DivDuplicateSYNInSYNReceived = &Divergence{
		Name: "duplicate-syn-in-syn-received",
		RFC:  "RFC 9293 §3.10.7.4 (SYN-RECEIVED, first check), §3.8.1",
		Summary: "The peer retransmits its SYN (our SYN-ACK was lost). ustack answers with the SYN-ACK again, " +
			"as Linux's tcp_check_req does; gVisor applies the §3.10.7.4 sequence check literally (SEG.SEQ is " +
			"below RCV.NXT) and answers <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, which a SYN-SENT peer drops, so " +
			"the handshake waits for gVisor's SYN-ACK timer. Both conform; ustack recovers a round trip sooner.",
	}
	// DivAckOfUnsentData: data on a segment that ACKs unsent data.
	DivAckOfUnsentData = &Divergence{
		Name: "gvisor-accepts-ack-of-unsent-data",
		RFC:  "RFC 9293 §3.10.7.4 (fifth check), RFC 5961 §5.2",
		Summary: "A segment in ESTABLISHED whose SEG.ACK is beyond SND.NXT: ustack sends an ACK and drops the " +
			"segment, payload included, as §3.10.7.4 says (and Linux does); gVisor accepts and ACKs its payload. " +
			"gVisor is wrong; the check is what keeps blind data injection out (RFC 5961 §5).",
	}
	// DivFastRetransmitFirstSegment: gVisor's recover check at the start.
	DivFastRetransmitFirstSegment = &Divergence{
		Name: "gvisor-no-fast-retransmit-before-first-ack",
		RFC:  "RFC 5681 §3.2, RFC 6582 §3.2 steps 1-2",
		Summary: "The first data segment is lost and three duplicate ACKs (SEG.ACK = ISS+1) arrive. ustack " +
			"fast-retransmits at the third, as RFC 5681 §3.2 and Linux do; gVisor waits for the RTO because " +
			"its NewReno check enters recovery only if SEG.ACK-1 > recover, with recover initialized to ISS, " +
			"which the acknowledgment of the SYN alone never passes. ustack is right.",
	}
)

// Divergences lists every expected divergence, for reports and docs checks.
var Divergences = []*Divergence{
	DivSimOpenSYNACK, DivSYNACKRetries, DivKeepaliveRST, DivKeepaliveConnecting, DivZeroWindowProbe,
	DivChallengeACKRate, DivDelayedACK, DivMSSSACKReserve, DivNagleMinshall,
	DivRetries2TimeBound, DivSYNStormAfterBadSYNACK, DivDuplicateSYNInSYNReceived, DivAckOfUnsentData,
	DivFastRetransmitFirstSegment,
}
