package stack

import (
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// Stats are the stack-wide counters: one for every reason a packet is
// dropped and every limit that bites, plus traffic totals. All fields are
// updated atomically; read them with Load or list them with Each.
type Stats struct {
	// Traffic.
	RxPackets atomic.Uint64 `stat:"rx_packets"` // IP packets read from links
	RxBytes   atomic.Uint64 `stat:"rx_bytes"`
	TxPackets atomic.Uint64 `stat:"tx_packets"` // IP packets (super-packets count once) written to links
	TxBytes   atomic.Uint64 `stat:"tx_bytes"`
	// Received bytes that went straight into a waiting Read's buffer,
	// skipping the receive buffer (tcp.DirectRead).
	TCPRcvDirectBytes atomic.Uint64 `stat:"tcp_rcv_direct_bytes"`

	// IP layer drops.
	IPNotForUs         atomic.Uint64 `stat:"ip_not_for_us"`         // destination is none of our addresses
	IPBadSource        atomic.Uint64 `stat:"ip_bad_source"`         // source multicast, broadcast, unspecified or ours
	IPUnknownProtocol  atomic.Uint64 `stat:"ip_unknown_protocol"`   // neither TCP nor ICMP
	IPFragments        atomic.Uint64 `stat:"ip_fragments"`          // fragments handed to reassembly
	IPReassembled      atomic.Uint64 `stat:"ip_reassembled"`        // datagrams completed by reassembly
	IPv6FragmentDrops  atomic.Uint64 `stat:"ipv6_fragment_dropped"` // reassembled IPv6 packets that were fragments again (nested fragmentation)
	IPv6Fragments      atomic.Uint64 `stat:"ipv6_fragments"`        // IPv6 fragments handed to reassembly (also in ip_fragments)
	IPv6ExtHeaderDrops atomic.Uint64 `stat:"ipv6_ext_header_drops"` // unsupported or malformed extension headers

	// ICMP.
	ICMPMalformed        atomic.Uint64 `stat:"icmp_malformed"`          // truncated or bad checksum
	ICMPEchoReplies      atomic.Uint64 `stat:"icmp_echo_replies"`       // echo requests answered
	ICMPIgnored          atomic.Uint64 `stat:"icmp_ignored"`            // types we do not act on
	ICMPErrorsNoConn     atomic.Uint64 `stat:"icmp_errors_no_conn"`     // error quoting no connection we have
	ICMPErrorsBadSeq     atomic.Uint64 `stat:"icmp_errors_bad_seq"`     // error quoting a sequence number outside SND.UNA..SND.NXT
	ICMPErrorsHard       atomic.Uint64 `stat:"icmp_errors_hard"`        // errors that aborted a connection
	ICMPErrorsSoft       atomic.Uint64 `stat:"icmp_errors_soft"`        // errors recorded as soft errors
	ICMPFragNeeded       atomic.Uint64 `stat:"icmp_frag_needed"`        // path MTU reductions applied
	ICMPFragNeededBad    atomic.Uint64 `stat:"icmp_frag_needed_bad"`    // PTB with an MTU we refuse (too small, not smaller)
	ICMPRateLimited      atomic.Uint64 `stat:"icmp_rate_limited"`       // ICMP we did not send because of the rate limit
	ICMPUnreachSent      atomic.Uint64 `stat:"icmp_unreach_sent"`       // destination unreachable sent (protocol or port)
	ICMPTimeExceededSent atomic.Uint64 `stat:"icmp_time_exceeded_sent"` // reassembly timeouts reported to the sender
	ICMPParamProblemSent atomic.Uint64 `stat:"icmp_param_problem_sent"` // bad IPv6 fragments reported (RFC 8200 §4.5: header chain, length, size)
	ICMPNoRoute          atomic.Uint64 `stat:"icmp_no_route"`           // ICMP errors not sent: no route back to the source
	ICMPv6NDIgnored      atomic.Uint64 `stat:"icmpv6_nd_ignored"`       // neighbour discovery (a TUN has no link layer)
	ICMPv6MLDIgnored     atomic.Uint64 `stat:"icmpv6_mld_ignored"`      // multicast listener messages
	ICMPOutputNoBuffer   atomic.Uint64 `stat:"icmp_output_no_buffer"`   // replies not sent for lack of a packet buffer
	IPFragmentsSent      atomic.Uint64 `stat:"ip_fragments_sent"`       // fragments of datagrams bigger than the MTU (echo replies, UDP, ping)

	// UDP (Linux's UDP MIB names where there is one).
	UDPInDatagrams         atomic.Uint64 `stat:"udp_in_datagrams"`          // datagrams queued on a socket
	UDPOutDatagrams        atomic.Uint64 `stat:"udp_out_datagrams"`         // datagrams sent
	UDPNoPorts             atomic.Uint64 `stat:"udp_no_ports"`              // datagrams to a port no socket takes (answered by port unreachable)
	UDPRcvBufErrors        atomic.Uint64 `stat:"udp_rcvbuf_errors"`         // datagrams dropped: the socket's receive queue was full
	UDPTooShort            atomic.Uint64 `stat:"udp_too_short"`             // shorter than the UDP header
	UDPBadLength           atomic.Uint64 `stat:"udp_bad_length"`            // length field below 8 or beyond the IP payload
	UDPSurplusTrimmed      atomic.Uint64 `stat:"udp_surplus_trimmed"`       // IP payload longer than the UDP length: the surplus ignored (RFC 9868)
	UDPBadChecksum         atomic.Uint64 `stat:"udp_bad_checksum"`          // wrong checksum
	UDPZeroChecksum6       atomic.Uint64 `stat:"udp_zero_checksum6"`        // IPv6 datagram without a checksum (RFC 8200 §8.1)
	UDPBadPort             atomic.Uint64 `stat:"udp_bad_port"`              // destination port 0
	UDPICMPErrors          atomic.Uint64 `stat:"udp_icmp_errors"`           // ICMP errors reported to a connected socket (ECONNREFUSED...)
	UDPPortsExhausted      atomic.Uint64 `stat:"udp_ports_exhausted"`       // binds to port 0 that found no free port
	UDPGSOIn               atomic.Uint64 `stat:"udp_gso_in"`                // UDP super-datagrams from the link (USO) split into their datagrams
	UDPBadGSO              atomic.Uint64 `stat:"udp_bad_gso"`               // UDP packets with a TCP GSO type, or a super-datagram without a partial checksum
	DatagramOutputNoBuffer atomic.Uint64 `stat:"datagram_output_no_buffer"` // UDP or ping sends refused (ENOBUFS) for lack of packet buffers

	// Ping sockets.
	PingOutRequests  atomic.Uint64 `stat:"ping_out_requests"`  // echo requests sent by ping sockets
	PingInReplies    atomic.Uint64 `stat:"ping_in_replies"`    // echo replies queued on a ping socket
	PingNoSocket     atomic.Uint64 `stat:"ping_no_socket"`     // echo replies no ping socket's identifier matched
	PingRcvBufErrors atomic.Uint64 `stat:"ping_rcvbuf_errors"` // echo replies dropped: the socket's receive queue was full
	PingICMPErrors   atomic.Uint64 `stat:"ping_icmp_errors"`   // ICMP errors reported to a connected ping socket

	// TCP input drops and answers.
	TCPBadChecksum      atomic.Uint64 `stat:"tcp_bad_checksum"`
	TCPBadPort          atomic.Uint64 `stat:"tcp_bad_port"`           // source or destination port 0
	TCPNoSocket         atomic.Uint64 `stat:"tcp_no_socket"`          // segments to a closed port
	TCPResetsSent       atomic.Uint64 `stat:"tcp_resets_sent"`        // RSTs sent for segments that hit no connection
	TCPListenBadSegment atomic.Uint64 `stat:"tcp_listen_bad_segment"` // non-SYN segments to a listener (answered with RST or dropped)
	TCPRFC1337Drops     atomic.Uint64 `stat:"tcp_rfc1337_drops"`      // RSTs ignored in TIME-WAIT (RFC 1337)
	TCPTimeWaitReused   atomic.Uint64 `stat:"tcp_timewait_reused"`    // TIME-WAIT connections ended by a new SYN (RFC 6191)
	TCPTimeWaitReuse    atomic.Uint64 `stat:"tcp_timewait_reuse"`     // TIME-WAIT 4-tuples taken over by a new SYN
	TCPOptionNotes      atomic.Uint64 `stat:"tcp_option_notes"`       // odd but accepted options (clamped window scale, unknown kinds)
	TCPBroadcastDrops   atomic.Uint64 `stat:"tcp_broadcast_drops"`    // TCP to a multicast destination

	// Limits that bite.
	TCPSynQueueFull      atomic.Uint64 `stat:"tcp_syn_queue_full"`      // SYN queue full (cookie sent, or SYN dropped)
	TCPSynDropped        atomic.Uint64 `stat:"tcp_syn_dropped"`         // SYNs dropped (queue full without cookies, accept queue full, conn limit)
	TCPListenOverflows   atomic.Uint64 `stat:"tcp_listen_overflows"`    // accept queue full (Linux ListenOverflows)
	TCPCookiesSent       atomic.Uint64 `stat:"tcp_cookies_sent"`        // SYN-ACKs carrying a cookie
	TCPCookiesValid      atomic.Uint64 `stat:"tcp_cookies_valid"`       // connections made from a cookie
	TCPCookiesInvalid    atomic.Uint64 `stat:"tcp_cookies_invalid"`     // ACKs with a bad or expired cookie
	TCPMaxConns          atomic.Uint64 `stat:"tcp_max_conns"`           // connections refused by the MaxConns limit
	TCPTimeWaitOverflow  atomic.Uint64 `stat:"tcp_timewait_overflow"`   // TIME-WAIT skipped by the TimeWaitLimit
	TCPPortsExhausted    atomic.Uint64 `stat:"tcp_ports_exhausted"`     // Dial found no free ephemeral port
	TCPOutputNoBuffer    atomic.Uint64 `stat:"tcp_output_no_buffer"`    // segments not sent for lack of a packet buffer
	TxBufferOvershoot    atomic.Uint64 `stat:"tx_buffer_overshoot"`     // packet buffers taken beyond TxBuffers/TxBigBuffers under a shard lock (txBufLocked)
	TCPOutputTooBig      atomic.Uint64 `stat:"tcp_output_too_big"`      // segments that did not fit a packet buffer
	TCPConnsOpened       atomic.Uint64 `stat:"tcp_conns_opened"`        // connections created (active + passive)
	TCPConnsClosed       atomic.Uint64 `stat:"tcp_conns_closed"`        // connections freed
	TCPActiveOpens       atomic.Uint64 `stat:"tcp_active_opens"`        // Dial
	TCPPassiveOpens      atomic.Uint64 `stat:"tcp_passive_opens"`       // connections accepted from a SYN or cookie
	TCPListenerCloseRsts atomic.Uint64 `stat:"tcp_listener_close_rsts"` // pending connections reset by Listener.Close

	// SYN-flood defences (synflood.go).
	TCPSynCookieRateLimited atomic.Uint64 `stat:"tcp_syn_cookie_rate_limited"` // SYNs dropped: their source exceeded Options.CookieSourceRate
	TCPSynQueuePruned       atomic.Uint64 `stat:"tcp_syn_queue_pruned"`        // SYN-RECEIVED embryos dropped from an overflowing SYN queue
	TCPSynBlocks            atomic.Uint64 `stat:"tcp_syn_blocks"`              // sources whose SYNs the device was asked to drop for a while (SYNBlocker)

	// Incomplete datagrams reassembly (both families) gave up on: timed out, or
	// evicted (oldest first) to respect Options.Reassembly.MaxDatagrams.
	IPReassemblyTimeouts atomic.Uint64 `stat:"ip_reassembly_timeouts"`
	IPReassemblyEvicted  atomic.Uint64 `stat:"ip_reassembly_evicted"`

	// Memory budget and out-of-order limit (Options.MemoryBudget,
	// tcp.Config.OOOLimit).
	TCPMemSendLimited   atomic.Uint64 `stat:"tcp_mem_send_limited"`   // writes cut short: the memory budget was spent
	TCPMemWindowLimited atomic.Uint64 `stat:"tcp_mem_window_limited"` // window advertisements held back by the memory budget
	TCPMemOOODrops      atomic.Uint64 `stat:"tcp_mem_ooo_drops"`      // out-of-order segments dropped: the memory budget was spent
	TCPMemOvercommit    atomic.Uint64 `stat:"tcp_mem_overcommit"`     // bytes stored beyond the budget (inside a window already advertised)
	TCPMemWakeups       atomic.Uint64 `stat:"tcp_mem_wakeups"`        // writers woken because budget memory was freed
	TCPOOOLimitDrops    atomic.Uint64 `stat:"tcp_ooo_limit_drops"`    // out-of-order segments dropped by the per-connection limit
	TCPRcvBufGrown      atomic.Uint64 `stat:"tcp_rcvbuf_grown"`       // receive buffers grown by auto-tuning (tcp.Config.RecvBufferMax)
	TCPSndBufGrown      atomic.Uint64 `stat:"tcp_sndbuf_grown"`       // send buffers grown by auto-tuning (tcp.Config.SendBufferMax)
	TCPBufShrunk        atomic.Uint64 `stat:"tcp_buf_shrunk"`         // auto-tuned buffers taken back toward their initial size under memory pressure
	TCPMemSweeps        atomic.Uint64 `stat:"tcp_mem_sweeps"`         // sweeps asking every connection for memory it holds unused (the budget refused a charge)
	TCPTimedOut         atomic.Uint64 `stat:"tcp_timed_out"`          // connections failed with ETIMEDOUT (retransmissions, user timeout, zero window)

	// How connections ended other than by a close: Linux's TCP MIB
	// AttemptFails and EstabResets, and the RSTs behind some of them.
	TCPAttemptFails atomic.Uint64 `stat:"tcp_attempt_fails"` // SYN-SENT or SYN-RECEIVED straight to CLOSED (reset, timed out, aborted)
	TCPEstabResets  atomic.Uint64 `stat:"tcp_estab_resets"`  // ESTABLISHED or CLOSE-WAIT straight to CLOSED (reset, timed out, aborted)
	TCPPeerResets   atomic.Uint64 `stat:"tcp_peer_resets"`   // connections ended by an acceptable RST from the peer

	// Spurious loss recoveries undone (tcp.Info's UndoRecovery, UndoRTO,
	// UndoDSACK, UndoTS summed over connections): Linux's TCPFullUndo +
	// TCPPartialUndo + TCPDSACKUndo, TCPLossUndo.
	TCPUndoRecovery atomic.Uint64 `stat:"tcp_undo_recovery"` // fast recoveries found spurious and undone
	TCPUndoRTO      atomic.Uint64 `stat:"tcp_undo_rto"`      // retransmission timeouts found spurious and undone
	TCPUndoDSACK    atomic.Uint64 `stat:"tcp_undo_dsack"`    // ... of which every retransmission was D-SACKed (RFC 3708)
	TCPUndoTS       atomic.Uint64 `stat:"tcp_undo_ts"`       // ... of which timestamps showed the original ACKed (RFC 3522 Eifel)

	// Links.
	LinkReadErrors  atomic.Uint64 `stat:"link_read_errors"`
	LinkWriteErrors atomic.Uint64 `stat:"link_write_errors"`
	LinkWriteDrops  atomic.Uint64 `stat:"link_write_drops"` // packets a failed link write did not send

	// IP counts packets the IP layer (parse, extension headers,
	// reassembly) rejected, by reason (index ip.DropReason).
	IP [ip.NumDropReasons]atomic.Uint64
	// TCPParse counts malformed TCP headers by reason (index tcp.ParseError).
	TCPParse [tcp.NumParseErrors]atomic.Uint64
	// LinkBadGSO counts packets a link refused for their offload metadata
	// (a TUN's virtio-net header), by reason (index tun.GSODropReason).
	LinkBadGSO [tun.NumGSODropReasons]atomic.Uint64
}

// statField is one named counter of Stats, found once by reflection.
type statField struct {
	name  string
	index int
}

var statFields = func() []statField {
	var out []statField
	t := reflect.TypeFor[Stats]()
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("stat"); name != "" {
			out = append(out, statField{name: name, index: i})
		}
	}
	return out
}()

// Each calls f with the name and current value of every counter, in a fixed
// order; IP drops appear once per ip.DropReason as "ip_<reason>" (e.g.
// "ip_bad_checksum") and malformed TCP headers once per reason as
// tcp.ParseError.Reason() (e.g. "tcp_header_truncated"), and packets links
// refused for their offload metadata as "link_bad_gso_<reason>" (e.g.
// "link_bad_gso_no_partial_csum").
func (s *Stats) Each(f func(name string, value uint64)) {
	v := reflect.ValueOf(s).Elem()
	for _, sf := range statFields {
		f(sf.name, v.Field(sf.index).Addr().Interface().(*atomic.Uint64).Load())
	}
	for i := ip.DropReason(1); i < ip.NumDropReasons; i++ {
		f("ip_"+strings.ReplaceAll(i.String(), " ", "_"), s.IP[i].Load())
	}
	for i := 1; i < tcp.NumParseErrors; i++ {
		f(tcp.ParseError(i).Reason(), s.TCPParse[i].Load())
	}
	for r := range tun.NumGSODropReasons {
		f("link_bad_gso_"+r.String(), s.LinkBadGSO[r].Load())
	}
}

// Map returns the counters as a map from name to value (see Each).
func (s *Stats) Map() map[string]uint64 {
	m := make(map[string]uint64, len(statFields)+int(ip.NumDropReasons)+tcp.NumParseErrors+int(tun.NumGSODropReasons))
	s.Each(func(name string, v uint64) { m[name] = v })
	return m
}
