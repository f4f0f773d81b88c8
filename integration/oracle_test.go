package integration

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
)

// Script shorthands. Times are virtual, since the DUT was created.
const (
	ms  = time.Millisecond
	sec = time.Second
	// rtt is how long the scripted peer takes to answer: it gives both
	// DUTs the same RTT sample (10 ms), hence the same RTO (the 200 ms floor).
	rtt = 10 * ms

	synOpts       = "mss 1460,wscale,sackOK,TS"
	synOptsNoSACK = "mss 1460,wscale,TS"
)

func sg(f tcp.Flags, seq, ack uint32) Seg { return Seg{Flags: f, Seq: seq, Ack: ack} }

func dt(f tcp.Flags, seq, ack uint32, n int) Seg { return Seg{Flags: f, Seq: seq, Ack: ack, Len: n} }

func at(s Seg, t time.Duration) Seg {
	s.At = t
	return s
}

func steps(parts ...[]Step) []Step {
	var out []Step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// passiveOpen: the DUT listens, the peer connects; ESTABLISHED at 10 ms.
func passiveOpen(synAckOpts string) []Step {
	return []Step{
		Listen(),
		Send(sg(SYN, 0, 0)),
		Expect(Seg{Flags: SYN | ACK, Seq: 0, Ack: 1, Opts: synAckOpts}),
		Wait(rtt),
		Send(sg(ACK, 1, 1)),
		Expect(),
		Accept(),
		State("ESTAB"),
	}
}

// activeOpen: the DUT connects; ESTABLISHED at 10 ms.
func activeOpen() []Step {
	return []Step{
		Connect(),
		Expect(Seg{Flags: SYN, Opts: synOpts}),
		State("SYN-SENT"),
		Wait(rtt),
		Send(sg(SYN|ACK, 0, 1)),
		Expect(sg(ACK, 1, 1)),
		State("ESTAB"),
	}
}

// noSACK is the peer for data scenarios: without SACK both DUTs carry
// 1448-byte payloads (see DivMSSSACKReserve).
var noSACK = PeerConfig{NoSACK: true}

// oracleScenario is one script run against both DUTs.
type oracleScenario struct {
	name   string
	peer   PeerConfig
	gvisor GVisorOptions
	ustack UstackOptions
	steps  []Step
	// ustackBug, if set, describes a known ustack defect this scenario
	// exposes (reported to the engine's owner). The scenario still runs;
	// a failure of the ustack side is logged instead of failing the test,
	// and the test fails once the scenario passes so the entry gets removed.
	// ORACLE_STRICT=1 makes known bugs fail.
	ustackBug string
}

func oracleScenarios() []oracleScenario {
	return []oracleScenario{
		// --- Handshakes (RFC 9293 §3.5) ---
		{name: "passive_open", steps: passiveOpen(synOpts)},
		{
			// IPv6: MSS = 1500 - 40 - 20 (RFC 8200 §8.3); the stack would
			// configure the Conn's MSS from the link, here it is given.
			name:   "passive_open_ipv6",
			gvisor: GVisorOptions{IPv6: true},
			ustack: UstackOptions{Config: tcp.Config{MSS: 1440}},
			steps:  passiveOpen("mss 1440,wscale,sackOK,TS"),
		},
		{
			// A SYN with nothing but MSS: no window scaling, SACK or
			// timestamps may be offered back (RFC 7323 §1.3, §2.2; RFC 2018 §2).
			name: "passive_open_mss_only",
			peer: PeerConfig{NoSACK: true, NoTimestamps: true, WScale: -1},
			steps: steps(passiveOpen("mss 1460"), []Step{
				Write(100),
				Expect(Seg{Flags: PSH | ACK, Seq: 1, Ack: 1, Len: 100, Opts: "none"}),
			}),
		},
		{name: "active_open", steps: activeOpen()},
		{
			name: "simultaneous_open",
			steps: []Step{
				Connect(),
				Expect(sg(SYN, 0, 0)),
				Wait(rtt),
				Send(sg(SYN, 0, 0)),
				// §3.10.7.3: SYN-SENT + SYN → SYN-RECEIVED, <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>.
				Expect(sg(SYN|ACK, 0, 1)),
				State("SYN-RECV"),
				Wait(rtt),
				Send(sg(SYN|ACK, 0, 1)),
				Diverge(DivSimOpenSYNACK,
					[]Step{Expect(), State("ESTAB")},
					[]Step{Expect(sg(ACK, 1, 1)), State("SYN-RECV")}),
				Send(sg(ACK, 1, 1)),
				Expect(),
				State("ESTAB"),
			},
		},
		{
			// RFC 6298 §5.5 backoff from the 1 s initial RTO (§2.1).
			name: "synack_retransmission",
			steps: []Step{
				Listen(),
				Send(sg(SYN, 0, 0)),
				Expect(sg(SYN|ACK, 0, 1)),
				Wait(100 * sec),
				Diverge(DivSYNACKRetries,
					[]Step{Expect(at(sg(SYN|ACK, 0, 1), 1*sec), at(sg(SYN|ACK, 0, 1), 3*sec), at(sg(SYN|ACK, 0, 1), 7*sec),
						at(sg(SYN|ACK, 0, 1), 15*sec), at(sg(SYN|ACK, 0, 1), 31*sec))},
					[]Step{Expect(at(sg(SYN|ACK, 0, 1), 1*sec), at(sg(SYN|ACK, 0, 1), 3*sec), at(sg(SYN|ACK, 0, 1), 7*sec),
						at(sg(SYN|ACK, 0, 1), 15*sec), at(sg(SYN|ACK, 0, 1), 31*sec), at(sg(SYN|ACK, 0, 1), 63*sec))}),
				WaitUntil(200 * sec),
				// The embryonic connection is gone: the ACK reaches the
				// listener, which resets it (§3.10.7.2: <SEQ=SEG.ACK><CTL=RST>).
				Send(sg(ACK, 1, 1)),
				Expect(sg(RST, 1, 0)),
				State("LISTEN"),
			},
		},
		{
			// Linux's tcp_syn_retries=6: SYNs at 0, 1, 3, 7, 15, 31, 63 s,
			// ETIMEDOUT at 127 s.
			name: "syn_retransmission",
			steps: []Step{
				Connect(),
				Expect(sg(SYN, 0, 0)),
				WaitUntil(127*sec - ms),
				Expect(at(sg(SYN, 0, 0), 1*sec), at(sg(SYN, 0, 0), 3*sec), at(sg(SYN, 0, 0), 7*sec),
					at(sg(SYN, 0, 0), 15*sec), at(sg(SYN, 0, 0), 31*sec), at(sg(SYN, 0, 0), 63*sec)),
				State("SYN-SENT"),
				WaitUntil(127 * sec),
				Expect(),
				ReadErr(ErrConnTimedOut),
				State("CLOSE"),
			},
		},
		{
			// §3.10.7.3: in SYN-SENT a RST counts only if it ACKs our SYN.
			name: "rst_in_syn_sent",
			steps: []Step{
				Connect(),
				Expect(sg(SYN, 0, 0)),
				Send(sg(RST|ACK, 0, 5)),
				Expect(),
				State("SYN-SENT"),
				Send(sg(RST, 0, 0)),
				Expect(),
				State("SYN-SENT"),
				Send(sg(RST|ACK, 0, 1)),
				Expect(),
				State("CLOSE"),
				ReadErr(ErrConnRefused),
			},
		},
		{
			// §3.10.7.3: a SYN-ACK that does not ACK our SYN gets
			// <SEQ=SEG.ACK><CTL=RST>; the SYN retransmission goes on.
			name: "synack_bad_ack_in_syn_sent",
			steps: []Step{
				Connect(),
				Expect(sg(SYN, 0, 0)),
				Wait(rtt),
				Send(sg(SYN|ACK, 0, 5)),
				Expect(sg(RST, 5, 0)),
				State("SYN-SENT"),
				WaitUntil(1 * sec),
				Diverge(DivSYNStormAfterBadSYNACK,
					[]Step{Expect(sg(SYN, 0, 0))},
					[]Step{Expect(synStorm(10*ms, 2*time.Microsecond, 1*sec)...)}),
			},
		},
		{
			// A retransmitted SYN in SYN-RECEIVED is answered with the
			// SYN-ACK again (§3.10.7.4 SYN-RECEIVED, first check fails → ACK;
			// for a SYN-RECEIVED that is a SYN-ACK), as Linux's tcp_check_req does.
			name: "syn_retransmitted_in_syn_received",
			steps: []Step{
				Listen(),
				Send(sg(SYN, 0, 0)),
				Expect(sg(SYN|ACK, 0, 1)),
				Wait(500 * ms),
				Send(sg(SYN, 0, 0)),
				Diverge(DivDuplicateSYNInSYNReceived,
					[]Step{Expect(sg(SYN|ACK, 0, 1))},
					[]Step{Expect(sg(ACK, 1, 1))}),
				Wait(rtt),
				Send(sg(ACK, 1, 1)),
				Expect(),
				Accept(),
				State("ESTAB"),
			},
		},
		{
			// RFC 9293 §3.10.7.4 SYN-RECEIVED, fourth check: a RST on a
			// passively opened connection returns it to LISTEN, silently.
			name: "rst_in_syn_received",
			steps: []Step{
				Listen(),
				Send(sg(SYN, 0, 0)),
				Expect(sg(SYN|ACK, 0, 1)),
				Send(sg(RST, 1, 0)),
				Expect(),
				WaitUntil(5 * sec),
				Expect(),
				State("LISTEN"),
			},
		},
		{
			// §3.10.7.1: segments to a port nobody listens on.
			name: "closed_port",
			steps: []Step{
				Send(sg(SYN, 0, 0)),
				Expect(sg(RST|ACK, 0, 1)),
				Send(sg(ACK, 1, 1000)),
				Expect(sg(RST, 1000, 0)),
				Send(dt(PSH|ACK, 1, 1000, 10)),
				Expect(sg(RST, 1000, 0)),
			},
		},

		// --- Data ---
		{
			name: "data_transfer",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Write(2 * 1448),
				Expect(dt(ACK, 1, 1, 1448), dt(PSH|ACK, 1449, 1, 1448)),
				Wait(rtt),
				Send(sg(ACK, 1, 2897)),
				Expect(),
				Send(dt(PSH|ACK, 1, 2897, 100)),
				Expect(sg(ACK, 2897, 101)),
				Read(100),
				Send(dt(ACK, 101, 2897, 1448)),
				Expect(sg(ACK, 2897, 1549)),
				// Out of order: an immediate duplicate ACK (RFC 5681 §4.2).
				Send(dt(ACK, 2997, 2897, 1448)),
				Expect(sg(ACK, 2897, 1549)),
				// The hole filled: everything ACKed at once.
				Send(dt(ACK, 1549, 2897, 1448)),
				Expect(sg(ACK, 2897, 4445)),
				// The window is nowhere near closed: reading opens no
				// window worth an update of its own (see window-update
				// rules in docs/divergences.md).
				Read(3 * 1448),
				Expect(),
				State("ESTAB"),
			}),
		},
		{
			// §3.10.7.4: an unacceptable segment (outside the window, or
			// entirely old) is answered with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
			name: "data_outside_window_acked",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Send(dt(PSH|ACK, 1<<30, 1, 100)),
				Expect(sg(ACK, 1, 1)),
				State("ESTAB"),
			}),
		},
		{
			name: "old_duplicate_data_acked",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Send(dt(PSH|ACK, 1, 1, 100)),
				Expect(sg(ACK, 1, 101)),
				Wait(sec),
				Send(dt(PSH|ACK, 1, 1, 100)),
				Expect(sg(ACK, 1, 101)),
				Read(100),
			}),
		},
		{
			// §3.10.7.4 fifth check: SEG.ACK > SND.NXT → send an ACK, drop.
			name: "ack_of_unsent_data",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Send(dt(PSH|ACK, 1, 1000, 10)),
				Diverge(DivAckOfUnsentData,
					[]Step{Expect(sg(ACK, 1, 1)), Send(sg(ACK, 1, 1)), Expect(), ReadNone()},
					[]Step{Expect(sg(ACK, 1, 11)), Read(10)}),
				State("ESTAB"),
			}),
		},
		{
			// FIN carrying data: both acknowledged by one ACK.
			name: "fin_with_data",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Send(dt(FIN|PSH|ACK, 1, 1, 100)),
				Expect(sg(ACK, 1, 102)),
				State("CLOSE-WAIT"),
				Read(100),
				ReadErr(io.EOF),
			}),
		},
		{
			// Nagle with Minshall's refinement (ustack, Linux): the sub-MSS
			// tail of a large write goes at once because no earlier small
			// segment is unacknowledged; gVisor sends a write's tail too.
			name: "nagle_sub_mss_tail",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Write(3000),
				Expect(dt(ACK, 1, 1, 1448), dt(ACK, 1449, 1, 1448), dt(PSH|ACK, 2897, 1, 104)),
				Wait(rtt),
				Send(sg(ACK, 1, 2897)),
				Expect(),
				Send(sg(ACK, 1, 3001)),
				Expect(),
			}),
		},
		{
			// A small write after full-sized segments: Minshall sends it
			// (no small segment is out) and then holds the next one until
			// it is acknowledged; gVisor holds any small write while
			// anything is unacknowledged.
			name: "nagle_small_write_after_full_segments",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Write(2 * 1448),
				Expect(dt(ACK, 1, 1, 1448), dt(PSH|ACK, 1449, 1, 1448)),
				Write(100),
				Diverge(DivNagleMinshall,
					[]Step{
						Expect(dt(PSH|ACK, 2897, 1, 100)),
						Write(100),
						Expect(),
						Wait(rtt),
						Send(sg(ACK, 1, 2997)),
						Expect(dt(PSH|ACK, 2997, 1, 100)),
					},
					[]Step{
						Expect(),
						Write(100),
						Expect(),
						Wait(rtt),
						Send(sg(ACK, 1, 2897)),
						Expect(dt(PSH|ACK, 2897, 1, 200)),
					}),
				Wait(rtt),
				Send(sg(ACK, 1, 3097)),
				Expect(),
			}),
		},
		{
			name: "mss_with_sack",
			steps: steps(passiveOpen(synOpts), []Step{
				Write(2 * 1448),
				Diverge(DivMSSSACKReserve,
					[]Step{Expect(dt(ACK, 1, 1, 1448), dt(PSH|ACK, 1449, 1, 1448))},
					[]Step{Expect(dt(ACK, 1, 1, 1420), dt(ACK, 1421, 1, 1420), dt(PSH|ACK, 2841, 1, 56))}),
				Wait(rtt),
				Send(sg(ACK, 1, 2897)),
				Expect(),
			}),
		},
		{
			name: "delayed_ack",
			peer: noSACK,
			// The delayed-ACK rules alone: the quick-ACK start (on by
			// default, tcp/quickack.go) would ACK these at once, as gVisor.
			ustack: UstackOptions{KeepDelayedACK: true, Config: tcp.Config{QuickACKs: -1}},
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Send(dt(PSH|ACK, 1, 1, 100)),
				Diverge(DivDelayedACK,
					[]Step{Expect(), Wait(40 * ms), Expect(at(sg(ACK, 1, 101), 50*ms))},
					[]Step{Expect(at(sg(ACK, 1, 101), 10*ms)), Wait(40 * ms), Expect()}),
				Send(dt(ACK, 101, 1, 1448)),
				Send(dt(ACK, 1549, 1, 1448)),
				Diverge(DivDelayedACK,
					// RFC 5681 §4.2: an ACK at least every second full-sized segment.
					[]Step{Expect(sg(ACK, 1, 2997))},
					[]Step{Expect(sg(ACK, 1, 1549), sg(ACK, 1, 2997))}),
				Read(100 + 2*1448),
				Expect(),
			}),
		},

		// --- Retransmission (RFC 6298) ---
		{
			// RTO = max(200 ms floor, SRTT + 4·RTTVAR) = 200 ms after a 10 ms
			// sample, doubling per §5.5 up to the 120 s ceiling; 15
			// retransmissions, then ETIMEDOUT at 924.6 s after the first
			// transmission (Linux's tcp_retries2 bound for an RTO that starts
			// at the floor; gVisor counts 15).
			name: "rto_backoff",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Write(100),
				Expect(at(dt(PSH|ACK, 1, 1, 100), 10*ms)),
				WaitUntil(924610*ms - ms),
				Expect(rtoTrain(10*ms, 200*ms, 120*sec, 15)...),
				State("ESTAB"),
				WaitUntil(924610 * ms),
				Expect(),
				ReadErr(ErrConnTimedOut),
				State("CLOSE"),
			}),
		},
		{
			// A slow path: the handshake's RTT sample is 900 ms, so the RTO
			// is 2.7 s (SRTT + 4·RTTVAR). ustack follows Linux: tcp_retries2
			// is a time bound (924.6 s from the first transmission, checked
			// when the timer fires), so it gives up after 12 retransmissions;
			// gVisor counts 15.
			name: "rto_backoff_large_rto",
			peer: noSACK,
			steps: []Step{
				Listen(),
				Send(sg(SYN, 0, 0)),
				Expect(sg(SYN|ACK, 0, 1)),
				Wait(900 * ms),
				Send(sg(ACK, 1, 1)),
				Expect(),
				Accept(),
				Write(100),
				Expect(at(dt(PSH|ACK, 1, 1, 100), 900*ms)),
				Diverge(DivRetries2TimeBound,
					[]Step{
						WaitUntil(1011*sec - ms),
						Expect(rtoTrain(900*ms, 2700*ms, 120*sec, 12)...),
						State("ESTAB"),
						WaitUntil(1011 * sec),
					},
					[]Step{
						WaitUntil(1371*sec - ms),
						Expect(rtoTrain(900*ms, 2700*ms, 120*sec, 15)...),
						State("ESTAB"),
						WaitUntil(1371 * sec),
					}),
				Expect(),
				ReadErr(ErrConnTimedOut),
				State("CLOSE"),
			},
		},
		{
			// RFC 5681 §3.2: the third duplicate ACK triggers a fast
			// retransmission of SND.UNA's segment, long before the RTO.
			name: "fast_retransmit",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Write(1448),
				Expect(dt(PSH|ACK, 1, 1, 1448)),
				Wait(rtt),
				Send(sg(ACK, 1, 1449)),
				Write(4 * 1448),
				Expect(dt(ACK, 1449, 1, 1448), dt(ACK, 2897, 1, 1448), dt(ACK, 4345, 1, 1448), dt(PSH|ACK, 5793, 1, 1448)),
				Wait(rtt),
				Send(sg(ACK, 1, 1449)),
				Send(sg(ACK, 1, 1449)),
				Expect(),
				Send(sg(ACK, 1, 1449)),
				Expect(at(dt(ACK, 1449, 1, 1448), 30*ms)),
				Wait(rtt),
				Send(sg(ACK, 1, 7241)),
				Expect(),
				WaitUntil(2 * sec),
				Expect(),
			}),
		},
		{
			// The same loss hitting the very first data segment, before
			// anything but the SYN was acknowledged.
			name: "fast_retransmit_first_segment",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Write(4 * 1448),
				Expect(dt(ACK, 1, 1, 1448), dt(ACK, 1449, 1, 1448), dt(ACK, 2897, 1, 1448), dt(PSH|ACK, 4345, 1, 1448)),
				Wait(rtt),
				Send(sg(ACK, 1, 1)),
				Send(sg(ACK, 1, 1)),
				Expect(),
				Send(sg(ACK, 1, 1)),
				Diverge(DivFastRetransmitFirstSegment,
					[]Step{Expect(at(dt(ACK, 1, 1, 1448), 20*ms))},
					[]Step{Expect(), WaitUntil(210 * ms), Expect(at(dt(ACK, 1, 1, 1448), 210*ms))}),
				Wait(rtt),
				Send(sg(ACK, 1, 5793)),
				Expect(),
			}),
		},
		{
			// After a timeout the retransmission is ACKed; with timestamps
			// the ACK is a valid RTT sample (RFC 7323 §4.1, Karn does not
			// apply), the backoff is dropped and the next loss is detected
			// 200 ms after the new data.
			name: "rto_after_recovery",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Write(100),
				Expect(dt(PSH|ACK, 1, 1, 100)),
				WaitUntil(210 * ms),
				Expect(dt(PSH|ACK, 1, 1, 100)),
				Wait(rtt),
				Send(sg(ACK, 1, 101)),
				Expect(),
				Write(100),
				Expect(at(dt(PSH|ACK, 101, 1, 100), 220*ms)),
				WaitUntil(1 * sec),
				Expect(at(dt(PSH|ACK, 101, 1, 100), 420*ms), at(dt(PSH|ACK, 101, 1, 100), 820*ms)),
				Send(sg(ACK, 1, 201)),
				Expect(),
			}),
		},

		// --- Teardown (RFC 9293 §3.6) ---
		{
			name: "active_close",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Close(),
				Expect(sg(FIN|ACK, 1, 1)),
				State("FIN-WAIT-1"),
				Wait(rtt),
				Send(sg(ACK, 1, 2)),
				Expect(),
				State("FIN-WAIT-2"),
				Wait(rtt),
				Send(sg(FIN|ACK, 1, 2)),
				Expect(at(sg(ACK, 2, 2), 30*ms)),
				State("TIME-WAIT"),
				// A retransmitted FIN is ACKed again and restarts 2·MSL
				// (§3.10.7.4 TIME-WAIT, FIN bit).
				WaitUntil(30*sec + 30*ms),
				Send(sg(FIN|ACK, 1, 2)),
				Expect(sg(ACK, 2, 2)),
				WaitUntil(90*sec + 30*ms - ms),
				State("TIME-WAIT"),
				WaitUntil(90*sec + 30*ms),
				State("CLOSE"),
				Expect(),
			}),
		},
		{
			// A lost FIN is retransmitted on the RTO schedule.
			name: "fin_retransmission",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Close(),
				Expect(sg(FIN|ACK, 1, 1)),
				WaitUntil(1410 * ms),
				Expect(at(sg(FIN|ACK, 1, 1), 210*ms), at(sg(FIN|ACK, 1, 1), 610*ms), at(sg(FIN|ACK, 1, 1), 1410*ms)),
				State("FIN-WAIT-1"),
				Wait(rtt),
				Send(sg(ACK, 1, 2)),
				Expect(),
				State("FIN-WAIT-2"),
			}),
		},
		{
			// An orphaned FIN-WAIT-2 lasts 60 s (Linux tcp_fin_timeout) from
			// entering the state; afterwards the peer's FIN finds no TCB.
			name: "fin_wait_2_timeout",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Close(),
				Expect(sg(FIN|ACK, 1, 1)),
				Wait(rtt),
				Send(sg(ACK, 1, 2)),
				Expect(),
				WaitUntil(60*sec + 20*ms - ms),
				State("FIN-WAIT-2"),
				WaitUntil(60*sec + 20*ms),
				State("CLOSE"),
				Expect(),
				Send(sg(FIN|ACK, 1, 2)),
				Expect(sg(RST, 2, 0)),
			}),
		},
		{
			name: "passive_close",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Send(sg(FIN|ACK, 1, 1)),
				Expect(sg(ACK, 1, 2)),
				State("CLOSE-WAIT"),
				ReadErr(io.EOF),
				Close(),
				Expect(sg(FIN|ACK, 1, 2)),
				State("LAST-ACK"),
				Wait(rtt),
				Send(sg(ACK, 2, 2)),
				Expect(),
				State("CLOSE"),
			}),
		},
		{
			name: "simultaneous_close",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Close(),
				Expect(sg(FIN|ACK, 1, 1)),
				Send(sg(FIN|ACK, 1, 1)),
				Expect(sg(ACK, 2, 2)),
				State("CLOSING"),
				Wait(rtt),
				Send(sg(ACK, 2, 2)),
				Expect(),
				State("TIME-WAIT"),
				WaitUntil(60*sec + 20*ms),
				State("CLOSE"),
				Expect(),
			}),
		},
		{
			// shutdown(SHUT_WR): FIN-WAIT-2 still receives data (§3.6).
			name: "half_close",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Shutdown(),
				Expect(sg(FIN|ACK, 1, 1)),
				Wait(rtt),
				Send(sg(ACK, 1, 2)),
				Expect(),
				State("FIN-WAIT-2"),
				Send(dt(PSH|ACK, 1, 2, 100)),
				Expect(sg(ACK, 2, 101)),
				Read(100),
				Send(sg(FIN|ACK, 101, 2)),
				Expect(sg(ACK, 2, 102)),
				State("TIME-WAIT"),
				ReadErr(io.EOF),
			}),
		},
		{
			// Closing with unread data sends a RST, not a FIN (RFC 2525 §2.17, Linux).
			name: "close_with_unread_data",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Send(dt(PSH|ACK, 1, 1, 100)),
				Expect(sg(ACK, 1, 101)),
				Close(),
				Expect(sg(RST|ACK, 1, 101)),
				State("CLOSE"),
			}),
		},
		{
			name: "abort",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Abort(),
				Expect(sg(RST|ACK, 1, 1)),
				State("CLOSE"),
				Send(sg(ACK, 1, 1)),
				Expect(sg(RST, 1, 0)),
			}),
		},

		// --- RST and SYN in ESTABLISHED (RFC 5961) ---
		{
			name: "rst_exact_established",
			steps: steps(passiveOpen(synOpts), []Step{
				Send(sg(RST, 1, 0)),
				Expect(),
				State("CLOSE"),
				ReadErr(ErrConnReset),
			}),
		},
		{
			name: "rst_in_window_not_exact_sends_challenge_ack",
			steps: steps(passiveOpen(synOpts), []Step{
				Send(sg(RST, 100, 0)),
				Expect(sg(ACK, 1, 1)),
				State("ESTAB"),
			}),
		},
		{
			name: "rst_outside_window_dropped",
			steps: steps(passiveOpen(synOpts), []Step{
				Send(sg(RST, 1+1<<30, 0)),
				Expect(),
				Send(sg(RST, 0, 0)), // left of RCV.NXT
				Expect(),
				State("ESTAB"),
			}),
		},
		{
			name: "syn_in_established_sends_challenge_ack",
			steps: steps(passiveOpen(synOpts), []Step{
				Send(sg(SYN, 500, 0)),
				Expect(sg(ACK, 1, 1)),
				State("ESTAB"),
			}),
		},
		{
			name: "challenge_ack_rate_limit",
			steps: steps(passiveOpen(synOpts), []Step{
				Send(sg(RST, 100, 0)),
				Expect(sg(ACK, 1, 1)),
				Send(sg(SYN, 500, 0)),
				Diverge(DivChallengeACKRate,
					[]Step{Expect(sg(ACK, 1, 1))},
					[]Step{Expect()}),
				Wait(500 * ms),
				Send(sg(SYN, 500, 0)),
				Expect(sg(ACK, 1, 1)),
				State("ESTAB"),
			}),
		},

		// --- Keepalive (RFC 1122 §4.2.3.6) ---
		{
			// Probes carry SEG.SEQ = SND.NXT-1 and no data; an answer
			// restarts the idle time; count unanswered probes → ETIMEDOUT.
			name: "keepalive",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				KeepAlive(10*sec, 5*sec, 3),
				WaitUntil(10*sec + 10*ms),
				Expect(sg(ACK, 0, 1)),
				Wait(rtt),
				Send(sg(ACK, 1, 1)),
				Expect(),
				WaitUntil(35*sec + 20*ms - ms),
				Expect(at(sg(ACK, 0, 1), 20*sec+20*ms), at(sg(ACK, 0, 1), 25*sec+20*ms), at(sg(ACK, 0, 1), 30*sec+20*ms)),
				State("ESTAB"),
				WaitUntil(35*sec + 20*ms),
				Diverge(DivKeepaliveRST,
					[]Step{Expect(sg(RST|ACK, 1, 1))},
					[]Step{Expect()}),
				ReadErr(ErrConnTimedOut),
				State("CLOSE"),
			}),
		},
		{
			name: "keepalive_connecting_side",
			peer: noSACK,
			steps: []Step{
				Connect(),
				Expect(sg(SYN, 0, 0)),
				KeepAlive(10*sec, 5*sec, 3),
				Wait(rtt),
				Send(sg(SYN|ACK, 0, 1)),
				Expect(sg(ACK, 1, 1)),
				WaitUntil(25*sec + 10*ms),
				Diverge(DivKeepaliveConnecting,
					[]Step{
						Expect(at(sg(ACK, 0, 1), 10*sec+10*ms), at(sg(ACK, 0, 1), 15*sec+10*ms), at(sg(ACK, 0, 1), 20*sec+10*ms),
							sg(RST|ACK, 1, 1)),
						ReadErr(ErrConnTimedOut),
					},
					[]Step{Expect(), State("ESTAB")}),
			},
		},

		// --- Zero window (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17) ---
		{
			name: "zero_window_probe",
			peer: noSACK,
			steps: steps(passiveOpen(synOptsNoSACK), []Step{
				Send(Seg{Flags: ACK, Seq: 1, Ack: 1, ZeroWindow: true}),
				Expect(),
				Write(100),
				Expect(),
				WaitUntil(30*sec + 10*ms),
				Diverge(DivZeroWindowProbe,
					[]Step{Expect(probeTrain(1, 10*ms, 200*ms, 7)...)},
					[]Step{Expect(probeTrain(0, 10*ms, 200*ms, 7)...)}),
				// The window opens: the data goes out at once.
				Send(sg(ACK, 1, 1)),
				Expect(dt(PSH|ACK, 1, 1, 100)),
				Wait(rtt),
				Send(sg(ACK, 1, 101)),
				Expect(),
			}),
		},
	}
}

// rtoTrain is the retransmissions of a 100-byte segment first sent at
// sent: after rto, doubling up to max, n of them.
func rtoTrain(sent, rto, maxRTO time.Duration, n int) []Seg {
	var out []Seg
	t := sent
	for range n {
		t += rto
		out = append(out, at(dt(PSH|ACK, 1, 1, 100), t))
		rto = min(2*rto, maxRTO)
	}
	return out
}

// synStorm is gVisor's SYN train after it reset a bad SYN-ACK at from:
// a backoff timer restarted at first, doubling, up to until.
func synStorm(from, first, until time.Duration) []Seg {
	var out []Seg
	for d := first; from+2*d-first <= until; d *= 2 {
		// The k-th retransmission goes out at from + first·(2^k - 1).
		out = append(out, at(sg(SYN, 0, 0), from+2*d-first))
	}
	return out
}

// probeTrain is n zero-window probes of one byte at relative seq seq, the
// first one rto after start, backing off exponentially.
func probeTrain(seq uint32, start, rto time.Duration, n int) []Seg {
	var out []Seg
	t := start
	for range n {
		t += rto
		out = append(out, Seg{Flags: ACK, Seq: seq, Ack: 1, Len: 1, At: t, AnyPayload: seq == 0})
		rto *= 2
	}
	return out
}

// TestOracleTCP runs every scenario against gVisor (which must behave as the
// script says) and against a bare tcp.Conn, and compares the two traces.
func TestOracleTCP(t *testing.T) {
	strict := os.Getenv("ORACLE_STRICT") != ""
	for _, sc := range oracleScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			g, err := NewGVisorDUT(sc.gvisor)
			require.NoError(t, err)
			defer g.Destroy()
			gt, err := RunScript(g, sc.peer, sc.steps)
			require.NoError(t, err, "gVisor does not behave as the script says")
			require.Empty(t, g.Malformed())

			u := NewUstackDUT(sc.ustack)
			ut, uerr := RunScript(u, sc.peer, sc.steps)
			if uerr == nil {
				uerr = CompareTraces(ut, gt)
			}
			if len(u.Stuck()) > 0 && uerr == nil {
				uerr = errStuck(u.Stuck())
			}
			switch {
			case sc.ustackBug == "" || strict:
				require.NoError(t, uerr)
			case uerr == nil:
				t.Fatalf("known ustack bug %q no longer shows: remove ustackBug from the scenario", sc.ustackBug)
			default:
				t.Logf("known ustack bug: %s\n%v", sc.ustackBug, uerr)
			}
		})
	}
}

type errStuck []string

func (e errStuck) Error() string { return "ustack timer loop: " + e[0] }

// TestOracleScriptsCanFail: the harness itself must catch a wrong
// expectation, an unexpected segment and a wrong time, on both DUTs.
func TestOracleScriptsCanFail(t *testing.T) {
	cases := []struct {
		name string
		last Step
		want string
	}{
		{"wrong_flags", Expect(sg(ACK, 1, 1)), `flags F\., want \.`},
		{"wrong_seq", Expect(sg(FIN|ACK, 2, 1)), `seq 1, want 2`},
		{"wrong_time", Expect(at(sg(FIN|ACK, 1, 1), 5*ms)), `sent at 0\.010000, want 0\.005000`},
		{"silence_expected", Expect(), `unexpected segment 0`},
		{"missing", Expect(sg(FIN|ACK, 1, 1), sg(ACK, 1, 1)), `missing segment 1`},
		{"wrong_state", State("ESTAB"), `state FIN-WAIT-1, want ESTAB`},
	}
	for _, c := range cases {
		for _, mk := range []func() (DUT, error){
			func() (DUT, error) { return NewGVisorDUT(GVisorOptions{}) },
			func() (DUT, error) { return NewUstackDUT(UstackOptions{}), nil },
		} {
			d, err := mk()
			require.NoError(t, err)
			t.Run(c.name+"_"+d.Name(), func(t *testing.T) {
				defer d.Destroy()
				_, err := RunScript(d, PeerConfig{}, steps(passiveOpen(synOpts), []Step{Close(), c.last}))
				require.Error(t, err)
				require.Regexp(t, regexp.MustCompile(c.want), err.Error())
			})
		}
	}
}

// TestOracleCompareTracesCatchesDifferences: CompareTraces reports a
// difference in time, flags, numbers or options, and ignores lines inside a
// named divergence.
func TestOracleCompareTracesCatchesDifferences(t *testing.T) {
	base := RelSeg{At: 10 * ms, Flags: ACK, Seq: 1, Ack: 1, Opts: tcp.Options{HasTimestamp: true}}
	mk := func(name string, s RelSeg, div string) *Trace {
		return &Trace{DUT: name, Lines: []TraceLine{{Kind: LineOut, At: s.At, Seg: s, Step: 3, Divergence: div}}}
	}
	require.NoError(t, CompareTraces(mk("a", base, ""), mk("b", base, "")))
	for _, mod := range []func(*RelSeg){
		func(s *RelSeg) { s.At += ms },
		func(s *RelSeg) { s.Flags |= PSH },
		func(s *RelSeg) { s.Seq++ },
		func(s *RelSeg) { s.Ack++ },
		func(s *RelSeg) { s.Len = 1 },
		func(s *RelSeg) { s.Opts.HasTimestamp = false },
	} {
		other := base
		mod(&other)
		err := CompareTraces(mk("a", base, ""), mk("b", other, ""))
		require.Error(t, err)
		require.Contains(t, err.Error(), "step 3 segment 0")
		require.NoError(t, CompareTraces(mk("a", base, "x"), mk("b", other, "x")))
	}
	// The window field is not compared: buffer sizes differ legitimately.
	other := base
	other.Win = 7
	require.NoError(t, CompareTraces(mk("a", base, ""), mk("b", other, "")))
}

// TestOracleDivergencesDocumented: every divergence a script uses is written
// up in docs/divergences.md with its RFC section.
func TestOracleDivergencesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/divergences.md")
	require.NoError(t, err)
	for _, d := range Divergences {
		require.True(t, strings.Contains(string(doc), "## `"+d.Name+"`"), "docs/divergences.md lacks a section on %s", d.Name)
		require.True(t, strings.Contains(string(doc), "| `"+d.Name+"` | "+d.RFC+" |"), "docs/divergences.md's table lacks %s with %q", d.Name, d.RFC)
	}
}
