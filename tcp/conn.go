package tcp

import (
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"
)

// Config holds the per-connection knobs. The zero value of every field means
// "the default"; DefaultConfig returns the defaults spelled out.
type Config struct {
	// MSS is the maximum segment size we advertise (link MTU minus IP and
	// TCP headers). Default 1460.
	MSS uint16
	// NotSentLowat > 0 bounds the unsent bytes a writer may queue (Linux
	// net.ipv4.tcp_notsent_lowat; SetNotSentLowat is TCP_NOTSENT_LOWAT):
	// a write starts a new size-goal chunk of the send queue only while
	// fewer than this many bytes are unsent, and the connection polls
	// writable only then (tcp_stream_memory_free). 0 = off, Linux's
	// default; the send buffer alone bounds a writer.
	NotSentLowat uint32
	// MinTSOSegs is the fewest wire segments a super-segment is sized to
	// when offloads are on (GSOMaxSize), however slow the connection's
	// rate (Linux's net.ipv4.tcp_min_tso_segs). Default 2.
	MinTSOSegs uint8
	// TSOWinDivisor: with offloads on, a super-segment that the windows
	// cut short of its size is held for the next ACK only while less
	// than 1/TSOWinDivisor of min(cwnd, SND.WND) may be sent (Linux's
	// net.ipv4.tcp_tso_win_divisor, tcp_tso_should_defer). Default 3;
	// negative is Linux's 0: held only while at most 3 segments may go.
	TSOWinDivisor int8
	// PacingSSRatio and PacingCARatio are the pacing-rate estimate's
	// factors, in percent of max(cwnd, FlightSize)/SRTT, in slow start
	// (cwnd < ssthresh/2) and after (Linux's net.ipv4.tcp_pacing_ss_ratio
	// and tcp_pacing_ca_ratio). The estimate sizes super-segments
	// whenever offloads are on, and paces with Pacing. Defaults 200 and
	// 120.
	PacingSSRatio, PacingCARatio uint16
	// GSOMaxSize > 0 lets Output emit payloads of up to this many bytes (a
	// multiple of the MSS) tagged with Segment.GSOSize for segmentation
	// offload; each carries about 1 ms of data at the connection's
	// pacing-rate estimate (Linux's tcp_tso_autosize, see MinTSOSegs).
	// 0 emits one wire segment per Segment.
	GSOMaxSize int
	// SendBufferSize bounds unacknowledged plus unsent bytes: the size the
	// send buffer starts at. Default 256 KiB.
	SendBufferSize int
	// SendBufferMax is how far the send buffer may grow with the
	// congestion window (auto-tuning, Linux's tcp_sndbuf_expand up to
	// tcp_wmem[2]): while the application keeps it full, it is kept at
	// twice cwnd. Default 4 MiB like Linux; a value at or below
	// SendBufferSize (negative: off) fixes the size at SendBufferSize.
	SendBufferMax int
	// RecvBufferSize bounds received bytes not yet read; the advertised
	// window comes from its free space. It is the size the receive buffer
	// starts at. Default 256 KiB, up to MaxBufferSize.
	RecvBufferSize int
	// RecvBufferMax is how far the receive buffer may grow toward what the
	// application reads per round trip (auto-tuning, Linux's dynamic
	// right-sizing, tcp_rcv_space_adjust, up to tcp_rmem[2]). Default
	// 6 MiB like Linux; a value at or below RecvBufferSize (negative: off)
	// fixes the size at RecvBufferSize. The window scale offered on the
	// SYN covers it.
	RecvBufferMax int
	// DelayedACK is the delayed-ACK timeout (RFC 1122 §4.2.3.2). Default
	// 40 ms like Linux; negative disables delayed ACKs (every segment is
	// acknowledged at once).
	DelayedACK time.Duration
	// NoDelay disables Nagle's algorithm (RFC 896). (It sits with the
	// other flags so that a Conn keeps to its allocation class.)
	NoDelay bool
	// DisableSACK turns off SACK-permitted and SACK (RFC 2018).
	DisableSACK bool
	// DisableTimestamps turns off the timestamps option (RFC 7323 §3).
	DisableTimestamps bool
	// DisableWindowScale turns off window scaling (RFC 7323 §2).
	DisableWindowScale bool
	// HyStart selects HyStart++ (RFC 9406) in the initial slow start of
	// NewReno and CUBIC. The default (HyStartDefault) is on for CUBIC, as
	// Linux's CUBIC has its HyStart on, and off for NewReno, as Linux's
	// reno has none; HyStartOn and HyStartOff choose for both.
	HyStart HyStartMode
	// Pacing makes data segments leave at a rate even when the congestion
	// control sets none (CongestionControl.PacingRate returns 0): Linux's
	// default, cwnd/SRTT times 2 in slow start and 1.2 in congestion
	// avoidance (PacingSSRatio, PacingCARatio). Off by default: segments
	// go out as fast as the windows allow.
	Pacing bool
	// Recovery selects loss detection and recovery: RecoveryRACK (the
	// default, RFC 8985 RACK-TLP), RecoverySACK (RFC 6675) or
	// RecoveryNewReno (RFC 6582, duplicate ACKs only).
	Recovery Recovery
	// DisableTLP turns off RACK-TLP's tail-loss probes (RFC 8985 §7),
	// keeping RACK's time-based loss detection: Linux's tcp_early_retrans
	// below 3. Meaningful with RecoveryRACK only.
	DisableTLP bool
	// ECN selects RFC 3168 Explicit Congestion Notification: ECNAccept
	// (the default, like Linux's tcp_ecn=2) negotiates it only when the
	// peer's SYN asks for it, ECNOn asks for it on active opens too
	// (tcp_ecn=1), ECNOff never (tcp_ecn=0).
	ECN ECNMode
	// DisablePRR turns off Proportional Rate Reduction (RFC 6937,
	// PRR-SSRB as Linux does it) during SACK-based recovery; then the
	// congestion control's window (cwnd = ssthresh from the start of
	// recovery) governs what is sent. On by default, as in Linux.
	DisablePRR bool
	// QuickACKs caps the quick-ACK budget (quickack.go): with delayed ACKs
	// on, the first data segments of a connection (and those after a
	// silence longer than the RTO) are each ACKed at once, as Linux does,
	// up to this many. 0 means Linux's 16 (at most 127); negative turns
	// quick ACKs off (every segment waits by the delayed-ACK rules of
	// RFC 1122 §4.2.3.2).
	QuickACKs int8
	// KeepAlive enables keepalive probes (RFC 1122 §4.2.3.6).
	KeepAlive bool
	// CongestionControl names the algorithm, one of CongestionControls():
	// "newreno" (default), "cubic", or one registered with
	// RegisterCongestionControl.
	CongestionControl string
	// RTOMin, RTOMax and RTOInitial bound the retransmission timeout
	// (RFC 6298). Defaults 200 ms (like Linux), 120 s, 1 s.
	RTOMin, RTOMax, RTOInitial time.Duration
	// SynRetries and SynAckRetries are how many times a SYN and a SYN-ACK
	// are retransmitted before giving up with ETIMEDOUT; Retries2 bounds
	// data retransmission like Linux's tcp_retries2: as the time that many
	// retransmissions take with an RTO starting at RTOMin and doubling up
	// to RTOMax (924.6 s for the defaults), and unanswered zero-window
	// probes as a count. Defaults 6, 5, 15 like Linux.
	SynRetries, SynAckRetries, Retries2 int
	// FinWait2Timeout bounds FIN-WAIT-2 for a connection the application has
	// closed (orphaned). Default 60 s.
	FinWait2Timeout time.Duration
	// TimeWaitTimeout is the TIME-WAIT duration (2*MSL). Default 60 s.
	TimeWaitTimeout time.Duration
	// KeepIdle, KeepInterval and KeepCount: idle time before the first
	// probe, time between probes, unanswered probes before giving up.
	// Defaults 2 h, 75 s, 9.
	KeepIdle, KeepInterval time.Duration
	KeepCount              int
	// UserTimeout bounds how long transmitted data may remain
	// unacknowledged (RFC 5482, Linux TCP_USER_TIMEOUT). 0 = off.
	UserTimeout time.Duration
	// ChallengeACKLimit is the number of challenge ACKs (RFC 5961) sent per
	// second at most. Default 1000.
	ChallengeACKLimit int
	// OutOfWindowACKInterval spaces the ACKs that answer segments without
	// data or FIN outside the receive window (RFC 9293 §3.10.7.4): at most
	// one per interval, so forged or looping bare ACKs get no ACK back for
	// each (Linux tcp_invalid_ratelimit). Segments with data or FIN are
	// always answered. Default 500 ms; negative means no limit.
	OutOfWindowACKInterval time.Duration
	// TSOffset is added to this connection's timestamp clock (RFC 7323 §5.4
	// recommends a random per-connection offset; the stack supplies it).
	TSOffset uint32
	// OOOLimit bounds the out-of-order bytes held for reassembly; segments
	// beyond it are dropped and counted. Default (0): the receive buffer
	// size (out-of-order data lies inside the window, so the buffer's
	// current size bounds it whatever the limit says; auto-tuning grows
	// it up to RecvBufferMax, the largest limit).
	OOOLimit int
	// Memory, when set, is the budget the connection's buffer storage is
	// charged to (shared by the connections of a stack, see MemoryBudget).
	Memory *MemoryBudget
}

// Defaults and limits.
const (
	DefaultMSS            = 1460
	DefaultBufferSize     = 256 << 10
	DefaultSendBufferMax  = 4 << 20
	DefaultRecvBufferMax  = 6 << 20
	MinBufferSize         = 4 << 10
	MaxBufferSize         = 64 << 20
	defaultDelayedACK     = 40 * time.Millisecond
	defaultSynRetries     = 6
	defaultSynAckRetries  = 5
	defaultRetries2       = 15
	defaultFinWait2       = 60 * time.Second
	defaultTimeWait       = 60 * time.Second
	defaultKeepIdle       = 2 * time.Hour
	defaultKeepInterval   = 75 * time.Second
	defaultKeepCount      = 9
	defaultChallengeLimit = 1000
	defaultOOWACKInterval = 500 * time.Millisecond
	defaultMinTSOSegs     = 2   // Linux tcp_min_tso_segs
	defaultTSOWinDivisor  = 3   // Linux tcp_tso_win_divisor
	defaultPacingSSRatio  = 200 // Linux tcp_pacing_ss_ratio, percent
	defaultPacingCARatio  = 120 // Linux tcp_pacing_ca_ratio, percent
	// minMSS is the smallest MSS we accept from a peer (Linux clamps to 88;
	// a tiny MSS would make us emit absurd numbers of segments).
	minMSS = 88
	// defaultPeerMSS is the send MSS when the peer sent no MSS option
	// (RFC 9293 §3.7.1).
	defaultPeerMSS = 536
	// pawsIdleLimit is the 24 days after which TS.Recent is invalid
	// (RFC 7323 §5.5).
	pawsIdleLimit = 24 * 24 * time.Hour
	// tsTick is the timestamp clock's period (RFC 7323 §5.4: 1 ms..1 s).
	tsTick = time.Millisecond
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	var c Config
	c.fillDefaults()
	return c
}

// WithDefaults returns c with every zero field set to its default and every
// field clamped as a connection would (the configuration it runs with).
func (c Config) WithDefaults() Config {
	c.fillDefaults()
	return c
}

func (c *Config) fillDefaults() {
	if c.MSS == 0 {
		c.MSS = DefaultMSS
	}
	if c.MSS < minMSS {
		c.MSS = minMSS
	}
	if c.SendBufferSize == 0 {
		c.SendBufferSize = DefaultBufferSize
	}
	if c.RecvBufferSize == 0 {
		c.RecvBufferSize = DefaultBufferSize
	}
	c.SendBufferSize = clampBufferSize(c.SendBufferSize)
	c.RecvBufferSize = clampBufferSize(c.RecvBufferSize)
	c.SendBufferMax = bufferMax(c.SendBufferMax, DefaultSendBufferMax, c.SendBufferSize)
	c.RecvBufferMax = bufferMax(c.RecvBufferMax, DefaultRecvBufferMax, c.RecvBufferSize)
	if c.DelayedACK == 0 {
		c.DelayedACK = defaultDelayedACK
	}
	if c.CongestionControl == "" {
		c.CongestionControl = ccNameNewReno
	}
	if c.RTOMin <= 0 {
		c.RTOMin = rtoDefaultMin
	}
	if c.RTOMax <= 0 {
		c.RTOMax = rtoDefaultMax
	}
	if c.RTOInitial <= 0 {
		c.RTOInitial = rtoDefaultInitial
	}
	if c.SynRetries <= 0 {
		c.SynRetries = defaultSynRetries
	}
	if c.SynAckRetries <= 0 {
		c.SynAckRetries = defaultSynAckRetries
	}
	if c.Retries2 <= 0 {
		c.Retries2 = defaultRetries2
	}
	if c.FinWait2Timeout <= 0 {
		c.FinWait2Timeout = defaultFinWait2
	}
	if c.TimeWaitTimeout <= 0 {
		c.TimeWaitTimeout = defaultTimeWait
	}
	if c.KeepIdle <= 0 {
		c.KeepIdle = defaultKeepIdle
	}
	if c.KeepInterval <= 0 {
		c.KeepInterval = defaultKeepInterval
	}
	if c.KeepCount <= 0 {
		c.KeepCount = defaultKeepCount
	}
	if c.UserTimeout < 0 {
		c.UserTimeout = 0
	}
	if c.ChallengeACKLimit <= 0 {
		c.ChallengeACKLimit = defaultChallengeLimit
	}
	if c.OutOfWindowACKInterval == 0 {
		c.OutOfWindowACKInterval = defaultOOWACKInterval
	}
	if c.QuickACKs == 0 {
		c.QuickACKs = quickAckMax
	}
	if c.MinTSOSegs == 0 {
		c.MinTSOSegs = defaultMinTSOSegs
	}
	if c.TSOWinDivisor == 0 {
		c.TSOWinDivisor = defaultTSOWinDivisor
	}
	if c.PacingSSRatio == 0 {
		c.PacingSSRatio = defaultPacingSSRatio
	}
	if c.PacingCARatio == 0 {
		c.PacingCARatio = defaultPacingCARatio
	}
	if c.GSOMaxSize < 0 {
		c.GSOMaxSize = 0
	}
	if c.GSOMaxSize > 65535 {
		c.GSOMaxSize = 65535
	}
	if c.OOOLimit <= 0 || c.OOOLimit > c.RecvBufferMax {
		// Out-of-order data lies inside the window, so the current
		// receive buffer size bounds it too.
		c.OOOLimit = c.RecvBufferMax
	}
}

// bufferMax fills in an auto-tuning ceiling: def when unset, size when
// negative (off) or below size, never above MaxBufferSize.
func bufferMax(n, def, size int) int {
	switch {
	case n == 0:
		n = def
	case n < 0:
		n = size
	}
	return min(max(n, size), MaxBufferSize)
}

// Validate reports a configuration the constructors would have to correct,
// e.g. an unknown congestion control name (which falls back to NewReno).
func (c Config) Validate() error {
	if c.CongestionControl != "" && !ccRegistered(c.CongestionControl) {
		return fmt.Errorf("tcp: unknown congestion control %q (registered: %s)", c.CongestionControl, strings.Join(CongestionControls(), ", "))
	}
	if c.SendBufferSize > MaxBufferSize || c.RecvBufferSize > MaxBufferSize ||
		c.SendBufferMax > MaxBufferSize || c.RecvBufferMax > MaxBufferSize {
		return fmt.Errorf("tcp: buffer size above %d", MaxBufferSize)
	}
	if c.ECN > ECNOff {
		return fmt.Errorf("tcp: unknown ECN mode %d", c.ECN)
	}
	if c.Recovery > RecoveryNewReno {
		return fmt.Errorf("tcp: unknown recovery %d", c.Recovery)
	}
	return nil
}

func clampBufferSize(n int) int {
	if n < MinBufferSize {
		return MinBufferSize
	}
	if n > MaxBufferSize {
		return MaxBufferSize
	}
	return n
}

// Emitter receives the segments Output produces. seg and its Payload are valid
// only during the call: the stack serializes them into a packet right away.
type Emitter interface {
	Emit(seg *Segment)
}

// connTimer is one timer: when it fires, 0 when it is not armed (a timer
// asked for time 0 fires at 1 ns, which only a test clock can tell apart).
type connTimer struct{ at Time }

func (t *connTimer) set(at Time) { t.at = max(at, 1) }
func (t *connTimer) stop()       { t.at = 0 }
func (t *connTimer) armed() bool { return t.at != 0 }
func (t *connTimer) due(now Time) bool {
	return t.at != 0 && !now.Before(t.at)
}

// Conn is one TCP connection (one TCB): a pure state machine fed with
// segments (Input), application calls and time, producing segments (Output),
// events and a next deadline. It is not safe for concurrent use. The stack
// calls Output after every Input and every application call, and again at
// NextDeadline.
//
// Decisions where the RFCs leave a choice (or where we follow Linux):
//   - Urgent data is delivered inline (like SO_OOBINLINE); the urgent pointer
//     is ignored (RFC 6093 §5), and URG is never sent.
//   - Data on a SYN is not accepted (it is retransmitted after the
//     handshake, as without TFO).
//   - A SYN in SYN-RECEIVED with a new sequence number, and any SYN in a
//     synchronized state including TIME-WAIT, gets a challenge ACK
//     (RFC 5961 §4.2); reusing a TIME-WAIT 4-tuple for a new SYN (RFC 6191)
//     is the stack's decision before it calls Input.
//   - An exact RST in TIME-WAIT closes the Conn (RFC 9293 §3.10.7.4), like
//     Linux's default (tcp_rfc1337 = 0). The stack does not let it get that
//     far: stack/input.go drops every RST in TIME-WAIT before Input (RFC 1337
//     §3, TIME-WAIT assassination), so `ustack serve` keeps its TIME-WAITs.
//   - Segments without timestamps are accepted on a timestamp connection
//     (RFC 7323 §3.2 says SHOULD drop; Linux accepts).
//   - Zero-window probes carry one byte of new data (RFC 9293 §3.8.6.1).
//   - Exhausting Retries2 (a time bound, like Linux's tcp_retries2) or the
//     user timeout reports ETIMEDOUT without a RST (like Linux); keepalive
//     exhaustion sends a RST first.
//   - Nagle's algorithm uses Minshall's refinement, like Linux: a small
//     segment waits only while an earlier small segment is unacknowledged.
//   - A read sends a window update only when the window doubles (Linux's
//     tcp_cleanup_rbuf rule).
//   - Our own RSTs (abort, close with unread data, keepalive exhaustion)
//     carry TSopt on a timestamps connection (RFC 7323 §3.2).
//   - After an RTO the SACK scoreboard is discarded and the sender goes back
//     to SND.UNA (RFC 2018 §8, RFC 6675 §5.1).
type Conn struct {
	cfg   Config
	state State

	// (Small fields are grouped to keep the struct free of padding: an
	// idle connection's memory is mostly this struct.)
	passive  bool // created from a received SYN (AcceptSYN/AcceptCookie)
	orphaned bool // the application called Close: nobody will read
	wrClosed bool // CloseWrite/Close: a FIN follows the queued data
	rdClosed bool // the peer's FIN was received (RCV.NXT covers it)
	finRcvd  bool // an out-of-order FIN is waiting at finRcvdSeq
	events   Events
	finSeq   Seq // sequence number of our FIN, valid when wrClosed

	// Send sequence variables (RFC 9293 §3.3.1).
	iss       Seq
	sndUna    Seq
	sndNxt    Seq
	sndMax    Seq    // highest sequence number sent so far, +1
	sndWnd    uint32 // scaled
	sndWl1    Seq
	sndWl2    Seq
	maxSndWnd uint32 // largest window the peer has offered (SWS avoidance)
	sndSml    Seq    // end of the last sub-MSS segment sent (Minshall's Nagle)

	// Receive sequence variables.
	irs         Seq
	rcvNxt      Seq
	rcvAdv      Seq // right edge of the window last advertised: RCV.NXT+RCV.WND
	lastAckSent Seq // Last.ACK.sent of RFC 7323 §4.3
	finRcvdSeq  Seq // sequence number of an out-of-order FIN waiting for RCV.NXT

	// Negotiated options.
	sndMSS      uint16 // Eff.snd.MSS: payload bytes per segment with the options every segment carries
	rcvMSS      uint16 // the MSS the peer is expected to send us
	peerMSS     uint16
	sndWScale   uint8
	rcvWScale   uint8
	offerWScale uint8 // the shift we offered in our SYN
	wsOK        bool
	sackOK      bool
	tsOK        bool
	tsRecent    uint32
	probeSeq    Seq // where a zero-window or keepalive probe goes (here: no padding)
	tsRecentAt  Time

	sb sendBuffer
	rb recvBuffer
	rq *reassemblyQueue // nil while nothing is out of order
	// direct is the application's buffer while it waits in Read
	// (StartDirectRead); nil otherwise.
	direct *DirectRead
	board  sendScoreboard

	rto      rtoEstimator
	rttTimer rtoSegmentTimer
	cc       CongestionControl

	// Output requests.
	ackNow       bool
	ackOwed      bool // an ACK is owed; Output arms the delayed-ACK timer for it
	rstPending   bool
	rstTS        bool // the pending RST is our own (abort), so it carries TSopt
	rstFlags     Flags
	synPending   bool  // SYN or SYN-ACK to (re)transmit
	dsackPending bool  // a D-SACK block (rs.dsack) goes on the next ACK
	rtxPending   bool  // a fast retransmission of SND.UNA's segment is due
	probePending bool  // a zero-window or keepalive probe is due
	probeData    bool  // the probe carries one byte of data at probeSeq
	zwpOut       bool  // a one-byte zero-window probe beyond SND.MAX is unacknowledged
	forceSend    bool  // the persist timer overrides sender SWS avoidance once
	inRecovery   bool  // loss recovery (RFC 6582 / RFC 6675) is under way
	sackRecovery bool  // ... driven by SACK (RFC 6675)
	quickAcks    uint8 // Linux's quick-ACK budget: data is ACKed at once while > 0 (quickack.go)
	ecn          ecnFlags
	pingpong     bool   // interactive: our data answered the peer's within the delayed-ACK time
	rcvUnacked   uint32 // in-order bytes received since our last ACK
	probesOut    int32  // unanswered zero-window probes
	clock        Time   // the latest time seen by Input or Output

	// Timers.
	rtxTimer     connTimer
	persistTimer connTimer
	delackTimer  connTimer
	keepTimer    connTimer
	fw2Timer     connTimer
	twTimer      connTimer
	userTimer    connTimer // RFC 5482 deadline while data is outstanding

	retries        int32 // consecutive RTO expirations for the current SND.UNA
	persistBackoff int32
	kaProbes       int32 // unanswered keepalive probes (int32: pairs with synRetransmits)
	synRetransmits int32
	lastRecv       Time // last segment received (keepalive idle)
	lastAckRecv    Time // last acceptable ACK received (user timeout)
	lastSend       Time // last data transmission (RFC 5681 §4.1 idle restart)
	firstUnacked   Time // when the oldest unacknowledged data was first sent

	// Loss recovery.
	dupAcks int32
	// lastDataMS is when in-order data last arrived, in ms of the clock
	// (wrapping, like Linux's lrcvtime in jiffies): the quick-ACK gap and
	// pingpong tests (quickack.go). 32 bits keep Conn in its size class.
	lastDataMS uint32
	recover    Seq // RFC 6582 "recover" / RFC 6675 RecoveryPoint
	highRxt    Seq // RFC 6675 HighRxt

	stats connStats
	rs    *rareState // nil until something unusual happens (rare)
	rate  *rateState // nil until the connection sends data (rateState)
	tune  *rcvTuning // nil until the application has read enough to tune (rcvSpaceAdjust)

	sc *Scratch // Output's working space, possibly shared (ShareScratch)
}

// Scratch is the working space of Output and Input: the segment being
// built, the buffer that gathers a payload across the send ring's wrap, and
// the rate sample handed to the congestion control. Output and Input make
// one on first use; connections whose Input and Output calls never overlap
// (a stack runs each shard's under one lock) may share one through
// ShareScratch, so that an idle connection does not carry its own.
type Scratch struct {
	seg Segment
	buf []byte
	rs  RateSample
}

// ShareScratch makes Output and Input use s. The caller guarantees that no
// two Conns sharing s run Input or Output at the same time.
func (c *Conn) ShareScratch(s *Scratch) { c.sc = s }

// connStats are the counters Info reports.
type connStats struct {
	bytesSent, bytesRetrans, bytesAcked, bytesReceived uint64
	segsIn, segsOut, retransSegs                       uint64
	dataSegsIn, dataSegsOut                            uint64
	dupAcksIn                                          uint64
	totalRetrans                                       uint32
	retransPkts                                        uint32 // segments of MSS retransmitted (Info.TotalRetrans)
	reordering                                         uint32
}

// rareState is what only unusual events touch: the connection's failure,
// RFC 5961 challenge ACKs and
// their rate limit, PAWS and out-of-window drops, recoveries, RTOs, probes,
// D-SACKs. It is made on first use (Conn.rare), so that a quiet connection
// does not carry it.
type rareState struct {
	// rstSeq and rstAck are the pending RST's (rstPending), kept here
	// because a connection sends at most a few.
	rstSeq, rstAck Seq
	err            error // sticky: ECONNRESET, ECONNREFUSED or ETIMEDOUT (see fail)
	chalStart      Time
	chalCount      int
	dsack          SACKBlock // the D-SACK block to send, valid when dsackPending
	// A zero-window probe episode is under way since probesStart, its first
	// probe (user timeout, Linux icsk_probes_tstamp).
	probing     bool
	probesStart Time
	// Rate limit of the ACKs answering bare out-of-window segments.
	oowLast Time
	oowSent bool

	oowACKSuppressed uint64

	challengeACKs, challengeSuppressed         uint64
	pawsDrops, outOfWindow, rstIgnored         uint64
	fastRecoveries, rtoExpirations, probesSent uint64
	dsacksSent                                 uint64

	// Send-side socket options (sendopts.go): TCP_CORK, a MSG_MORE
	// write's hold and its unpushed tail, a push through both (uncork,
	// TCP_NODELAY), and the MSG_EOR record ends still in the send
	// buffer, ascending.
	cork, moreHold, noPSH, pushOnce bool
	eor                             []Seq

	// ECN (ecn.go): ecnHigh is SND.MAX at the last window reduction
	// (valid with ecnHold); the counters are Info's.
	ecnHigh                                 Seq
	eceRcvd, ceRcvd, cwrSent, ecnReductions uint64
}

// rare returns the connection's rareState, making it on first use.
func (c *Conn) rare() *rareState {
	if c.rs == nil {
		c.rs = new(rareState)
	}
	return c.rs
}

// newConn builds the common part of a connection.
func newConn(now Time, cfg Config, iss Seq) *Conn {
	cfg.fillDefaults()
	c := &Conn{cfg: cfg, iss: iss, sndUna: iss, sndNxt: iss, sndMax: iss, sndSml: iss, recover: iss, highRxt: iss}
	c.sb.SetCap(cfg.SendBufferSize)
	c.rb.SetCap(cfg.RecvBufferSize)
	c.sb.r.budget, c.rb.r.budget, c.rb.r.forced = cfg.Memory, cfg.Memory, true
	c.rto = newRTOEstimator(cfg.RTOInitial, cfg.RTOMin, cfg.RTOMax)
	c.rto.SetGranularity(tsTick)
	c.sndMSS = defaultPeerMSS
	c.rcvMSS = cfg.MSS
	c.lastRecv, c.lastAckRecv, c.lastSend = now, now, now
	c.offerWScale = c.chooseWScale()
	c.newCC(now)
	return c
}

// chooseWScale picks the smallest shift that lets the window cover the
// largest receive buffer this connection may be given (RFC 7323 §2.3), at
// least 7 like Linux so that SetRecvBufferSize can grow the window later.
func (c *Conn) chooseWScale() uint8 { return WindowScaleFor(c.cfg) }

// WindowScaleFor is the window scale a connection with cfg offers: the
// smallest shift whose 16-bit window covers max(largest receive buffer,
// 8 MiB), so the window can grow with the buffer later, by auto-tuning or
// SetRecvBufferSize (RFC 7323 §2.3). SYN cookies use it to rebuild the offer
// their SYN-ACK made.
func WindowScaleFor(cfg Config) uint8 {
	cfg.fillDefaults()
	limit := max(cfg.RecvBufferMax, 8<<20)
	var s uint8
	for s < MaxWindowShift && (65535<<s) < limit {
		s++
	}
	return s
}

// HyStartMode is Config.HyStart: HyStart++ on, off, or as Linux has it.
type HyStartMode int8

const (
	// HyStartDefault is on for CUBIC, off for NewReno (Linux's choices).
	HyStartDefault HyStartMode = 0
	// HyStartOn runs HyStart++ in NewReno's and CUBIC's slow start.
	HyStartOn HyStartMode = 1
	// HyStartOff leaves slow start to the first loss or ECN mark.
	HyStartOff HyStartMode = -1
)

func (c *Conn) newCC(now Time) {
	hy := c.cfg.HyStart == HyStartOn || c.cfg.HyStart == HyStartDefault && c.cfg.CongestionControl == ccNameCubic
	cfg := CCConfig{MSS: uint32(c.sndMSS), Now: now, HyStart: hy}
	cc, err := newCCWithConfig(c.cfg.CongestionControl, cfg)
	if err != nil {
		// Unknown name: Config.Validate reports it; run NewReno meanwhile.
		cc, _ = newCCWithConfig(ccNameNewReno, cfg)
	}
	c.cc = cc
}

// Dial starts an active open (RFC 9293 §3.10.1): the connection is in
// SYN-SENT with its SYN pending in Output. iss is the initial send sequence
// number (the stack supplies RFC 6528 ISNs).
func Dial(now Time, cfg Config, iss Seq) *Conn {
	c := newConn(now, cfg, iss)
	c.state = StateSynSent
	c.synPending = true
	return c
}

// AcceptSYN starts a passive open from a received SYN: the connection is in
// SYN-RECEIVED with its SYN-ACK pending in Output. The listener bookkeeping
// (backlog, SYN queue) is the stack's. Data on the SYN is not accepted (it
// will be retransmitted once the handshake completes, as without TFO).
func AcceptSYN(now Time, cfg Config, iss Seq, syn *Segment) *Conn {
	c := newConn(now, cfg, iss)
	c.passive = true
	c.state = StateSynReceived
	c.irs = syn.Seq
	c.rcvNxt = syn.Seq + 1
	c.lastAckSent = c.rcvNxt
	c.negotiate(&syn.Options, true)
	c.ecnAcceptSYN(syn)
	c.sndWnd = uint32(syn.Window) // never scaled in a SYN (RFC 7323 §2.2)
	c.maxSndWnd = c.sndWnd
	c.sndWl1, c.sndWl2 = syn.Seq, iss
	c.takeTimestamp(now, syn)
	c.lastRecv = now
	c.stats.segsIn++
	c.synPending = true
	return c
}

// Negotiated is the state a SYN cookie preserves (the stack encodes and
// decodes it): everything AcceptCookie needs to rebuild the connection.
type Negotiated struct {
	ISS, IRS  Seq
	MSS       uint16 // the peer's MSS
	SndWScale int8   // shift the peer applies to its windows; -1 = scaling off
	RcvWScale int8   // shift we apply to ours; -1 = scaling off
	SACK      bool
	// Timestamps reports that both sides use timestamps; TSRecent is the
	// peer's TSval to echo.
	Timestamps bool
	TSRecent   uint32
	// ECN reports that the SYN was an ECN-setup SYN the SYN-ACK accepted
	// (RFC 3168 §6.1.1).
	ECN bool
}

// AcceptCookie builds an ESTABLISHED connection from a validated SYN cookie
// and processes ack, the segment that carried it (including any payload).
func AcceptCookie(now Time, cfg Config, n Negotiated, ack *Segment) *Conn {
	c := newConn(now, cfg, n.ISS)
	c.passive = true
	c.irs = n.IRS
	c.rcvNxt = n.IRS + 1
	c.lastAckSent = c.rcvNxt
	c.sndUna, c.sndNxt, c.sndMax = n.ISS+1, n.ISS+1, n.ISS+1
	c.peerMSS = max(n.MSS, minMSS)
	if n.SndWScale >= 0 && n.RcvWScale >= 0 {
		c.wsOK = true
		c.sndWScale = uint8(min(n.SndWScale, MaxWindowShift))
		c.rcvWScale = uint8(min(n.RcvWScale, MaxWindowShift))
	}
	c.sackOK = n.SACK && !c.cfg.DisableSACK
	c.tsOK = n.Timestamps && !c.cfg.DisableTimestamps
	c.tsRecent, c.tsRecentAt = n.TSRecent, now
	if n.ECN && c.cfg.ECN != ECNOff {
		c.ecn |= ecnOK
	}
	c.computeMSS()
	// The window we advertised in the SYN-ACK was unscaled; accept what
	// fits in it until our first window update.
	c.rcvAdv = c.rcvNxt + Seq(min(c.rb.Free(), 65535))
	c.sndWl1 = n.IRS
	c.sndWl2 = n.ISS
	c.enterEstablished(now)
	c.Input(now, ack)
	return c
}

// negotiate records the peer's SYN options and decides which extensions are
// on (RFC 7323 §2.2 and §3.2, RFC 2018: only when both sides offer them).
// passive is true when we answer the SYN: then we offer only what it offered.
func (c *Conn) negotiate(o *Options, passive bool) {
	c.peerMSS = defaultPeerMSS
	if o.HasMSS {
		c.peerMSS = max(o.MSS, minMSS)
	}
	c.wsOK = o.HasWindowScale && !c.cfg.DisableWindowScale
	if c.wsOK {
		c.sndWScale = min(o.WindowScale, MaxWindowShift)
		c.rcvWScale = c.offerWScale
	} else {
		c.sndWScale, c.rcvWScale = 0, 0
	}
	c.sackOK = o.SACKPermitted && !c.cfg.DisableSACK
	c.tsOK = o.HasTimestamp && !c.cfg.DisableTimestamps
	c.computeMSS()
}

// computeMSS sets Eff.snd.MSS (RFC 9293 §3.7.1): the smaller of the peer's MSS
// and ours, less the timestamp option every segment carries (like Linux's
// mss_cache; SACK blocks shrink individual segments further, see output.go).
func (c *Conn) computeMSS() {
	m := min(c.peerMSS, c.cfg.MSS)
	r := c.cfg.MSS
	if c.tsOK {
		m -= OptionTimestampLen + 2
		r -= OptionTimestampLen + 2
	}
	c.sndMSS = m
	c.rcvMSS = r
}

// enterEstablished moves to ESTABLISHED and reports it.
func (c *Conn) enterEstablished(now Time) {
	c.state = StateEstablished
	c.synPending = false
	c.events |= EventEstablished | EventWritable
	if c.synRetransmits > 0 {
		// RFC 6298 §5.7: the SYN timed out and no sample was taken.
		c.rto.SYNTimedOut()
	}
	c.rto.ResetBackoff()
	c.retries = 0
	c.newCC(now)
	c.board.SetMSS(uint32(c.sndMSS))
	c.lastAckRecv = now
	// tcpi_last_data_recv counts from here until data arrives (Linux
	// sets icsk_ack.lrcvtime when the connection is established).
	c.lastDataMS = msTick(now)
	c.armKeepalive(now)
}

// Write copies p into the send buffer and returns how much fit: a short count
// (possibly 0 with a nil error) when the buffer is full. It fails with EPIPE
// after CloseWrite/Close and with the sticky error after a reset or timeout.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.Err(); err != nil {
		return 0, err
	}
	if c.wrClosed || c.state == StateClosed || c.state == StateListen {
		return 0, syscall.EPIPE
	}
	return c.write(p, 0), nil
}

// Read copies received in-order data into p. Reading may open the window
// enough to owe the peer a window update: call Output afterwards. It returns (0, nil) when nothing
// is available yet, (0, io.EOF) once the peer's FIN has been consumed, and
// the sticky error after a reset or timeout once the data is drained.
func (c *Conn) Read(p []byte) (int, error) {
	if c.rb.Len() > 0 && len(p) > 0 {
		n := c.rb.Read(p)
		c.rcvSpaceAdjust(c.clock)
		c.afterRead()
		return n, nil
	}
	if err := c.Err(); err != nil {
		return 0, err
	}
	if c.rdClosed {
		return 0, io.EOF
	}
	return 0, nil
}

// afterRead decides whether reading owes the peer a window update. Like
// Linux's tcp_cleanup_rbuf, only when the window we would now advertise is
// at least twice what is left of the one the peer has (RCV.WND), and
// non-zero. The new window already obeys receiver SWS avoidance
// (RFC 9293 §3.8.6.2.2, see nextWindow): the right edge moves by at least
// min(RCV.BUFF/2, Eff.snd.MSS). So a window that had shrunk below that
// threshold is always reopened at once (it at least doubles), and one at or
// above it still lets the sender send a full segment: no sender is left
// stalled, and during bulk transfer, when the window never gets small,
// reads cost no extra ACK at all.
func (c *Conn) afterRead() {
	if !c.state.canReceiveData() || c.rdClosed {
		return
	}
	cur := uint64(c.rcvWindow())
	next := uint64(c.nextWindow())
	if next > cur && next >= 2*cur {
		if cur < urgentWindow || c.cfg.DelayedACK < 0 {
			c.ackNow = true
		} else {
			// The peer still has room for several segments: the
			// update rides on our next segment (a reply, the ACK of
			// its next data) or, at the latest, the delayed-ACK timer
			// that Output arms. A request/response exchange then
			// costs no pure window update after the first read.
			c.ackOwed = true
		}
	}
}

// urgentWindow is the window left below which a window update on read is
// sent at once; with at least this much the peer is not held up.
const urgentWindow = 32 << 10

// CloseWrite shuts down the sending direction (SHUT_WR): a FIN follows the
// queued data (RFC 9293 §3.10.4).
func (c *Conn) CloseWrite() {
	switch c.state {
	case StateSynSent:
		// Nothing has been sent that needs a FIN; like Linux, the FIN
		// follows once the connection is established.
		c.markFIN()
	case StateSynReceived, StateEstablished:
		c.markFIN()
		if c.state == StateEstablished {
			c.state = StateFinWait1
		}
	case StateCloseWait:
		c.markFIN()
		c.state = StateLastAck
	}
}

func (c *Conn) markFIN() {
	if c.wrClosed {
		return
	}
	c.wrClosed = true
	c.finSeq = c.dataStart() + Seq(c.sb.Len())
}

// Close fully closes the connection: like Linux, it sends a RST instead of a
// FIN if received data was left unread; otherwise a FIN follows the queued
// data and the connection is orphaned (FIN-WAIT-2 is then bounded by
// FinWait2Timeout).
func (c *Conn) Close() {
	if c.orphaned {
		return
	}
	c.orphaned = true
	switch c.state {
	case StateClosed, StateListen:
		c.toClosed()
		return
	case StateSynSent:
		c.toClosed()
		return
	}
	if c.rb.Len() > 0 || c.oooBytes() > 0 {
		// RFC 2525 §2.17 / Linux tcp_close: data lost to the application
		// must be signalled to the peer.
		if c.state != StateTimeWait {
			c.queueRST(c.sndNxt, c.rcvNxt, true)
		}
		c.toClosed()
		return
	}
	// The FIN-WAIT-2 timer of an orphan is armed by the next Output (app
	// calls carry no time).
	c.CloseWrite()
}

// Abort sends a RST now and moves to CLOSED (SO_LINGER with a zero timeout;
// RFC 9293 §3.10.5 ABORT).
func (c *Conn) Abort() {
	switch c.state {
	case StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2, StateCloseWait:
		c.queueRST(c.sndNxt, c.rcvNxt, true)
	}
	c.orphaned = true
	c.toClosed()
}

// queueRST arranges for a RST to be emitted by the next Output. withAck
// marks the connection's own aborts (<SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>:
// Abort, Close with unread data, keepalive exhaustion), which carry TSopt on
// a timestamps connection (RFC 7323 §3.2: it SHOULD be sent in a RST, as
// Linux's tcp_send_active_reset does). RSTs that answer an unacceptable
// segment are replies, like Linux's tcp_v4_send_reset: no options.
func (c *Conn) queueRST(seq, ack Seq, withAck bool) {
	c.rstPending = true
	r := c.rare()
	r.rstSeq, r.rstAck, c.rstFlags = seq, 0, FlagRST
	c.rstTS = false
	if withAck {
		r.rstAck = ack
		c.rstFlags |= FlagACK
		c.rstTS = c.tsOK
	}
}

// replyRST arranges for rst, the answer to an unacceptable segment
// (ResetFor), to be emitted by the next Output.
func (c *Conn) replyRST(rst Segment) {
	c.rstPending, c.rstTS = true, false
	r := c.rare()
	r.rstSeq, r.rstAck, c.rstFlags = rst.Seq, rst.Ack, rst.Flags
}

// toClosed moves to CLOSED and stops everything.
func (c *Conn) toClosed() {
	if c.state != StateClosed {
		c.events |= EventClosed
	}
	c.state = StateClosed
	c.synPending = false
	c.ackNow = false
	c.rtxPending = false
	c.probePending = false
	c.rtxTimer.stop()
	c.persistTimer.stop()
	c.delackTimer.stop()
	c.keepTimer.stop()
	c.fw2Timer.stop()
	c.twTimer.stop()
	c.userTimer.stop()
	if c.rate != nil {
		c.rate.pace.timer.stop()
	}
}

// fail records a sticky error and closes the connection.
func (c *Conn) fail(err error, ev Events) {
	if r := c.rare(); r.err == nil {
		r.err = err
	}
	c.events |= ev | EventReadable | EventWritable
	c.toClosed()
}

// State returns the connection's state.
func (c *Conn) State() State { return c.state }

// TakeEvents returns the events accumulated since the last call and clears
// them.
func (c *Conn) TakeEvents() Events {
	e := c.events
	c.events = 0
	return e
}

// Err returns the sticky error: syscall.ECONNRESET, ECONNREFUSED or ETIMEDOUT,
// or nil.
func (c *Conn) Err() error {
	if c.rs == nil {
		return nil
	}
	return c.rs.err
}

// Readable returns the number of bytes Read would return now.
func (c *Conn) Readable() int { return c.rb.Len() }

// Writable returns the free space in the send buffer (0 once writing is shut
// down or failed, or while the not-sent low-water mark holds writers out).
func (c *Conn) Writable() int {
	if c.wrClosed || c.Err() != nil || c.state == StateClosed {
		return 0
	}
	if lowat := c.cfg.NotSentLowat; lowat != 0 && c.lowatRoom(c.sizeGoal(), lowat) == 0 {
		return 0
	}
	return c.sb.Free()
}

// Done reports that the connection is CLOSED with nothing left to emit: the
// stack may free it.
func (c *Conn) Done() bool { return c.state == StateClosed && !c.rstPending }

// SetNoDelay turns Nagle's algorithm off (true) or on. Turning it on
// pushes what is queued once, even through TCP_CORK, as Linux's
// TCP_NODELAY does.
func (c *Conn) SetNoDelay(on bool) {
	c.cfg.NoDelay = on
	if on && c.rs != nil {
		c.rs.pushOnce = true
	}
}

// SetKeepAlive configures keepalive; zero durations/count keep the current
// values.
func (c *Conn) SetKeepAlive(on bool, idle, interval time.Duration, count int) {
	c.cfg.KeepAlive = on
	if idle > 0 {
		c.cfg.KeepIdle = idle
	}
	if interval > 0 {
		c.cfg.KeepInterval = interval
	}
	if count > 0 {
		c.cfg.KeepCount = count
	}
	c.kaProbes = 0
	c.armKeepalive(c.lastRecv)
}

// SetUserTimeout sets TCP_USER_TIMEOUT (RFC 5482); 0 turns it off.
func (c *Conn) SetUserTimeout(d time.Duration) {
	if d < 0 {
		d = 0
	}
	c.cfg.UserTimeout = d
	if d == 0 {
		c.userTimer.stop()
	} else if c.sndUna != c.sndMax {
		c.userTimer.set(c.firstUnacked.Add(d))
	}
}

// SetRecvBufferSize resizes the receive buffer (clamped to
// [MinBufferSize, MaxBufferSize]) and locks it at that size, as SO_RCVBUF
// does on Linux: auto-tuning stops. The advertised window never shrinks
// below what was already offered.
func (c *Conn) SetRecvBufferSize(n int) {
	n = clampBufferSize(max(n, c.rb.Len()))
	c.cfg.RecvBufferSize, c.cfg.RecvBufferMax = n, n
	c.cfg.OOOLimit = 0
	c.cfg.fillDefaults()
	c.tune = nil
	c.rb.SetCap(n)
	if c.rq != nil {
		c.rq.SetLimit(c.cfg.OOOLimit)
	}
	c.afterRead()
}

// SetSendBufferSize resizes the send buffer (clamped; never below the bytes
// it holds) and locks it at that size, as SO_SNDBUF does on Linux:
// auto-tuning stops.
func (c *Conn) SetSendBufferSize(n int) {
	n = clampBufferSize(max(n, c.sb.Len()))
	c.cfg.SendBufferSize, c.cfg.SendBufferMax = n, n
	c.sb.SetCap(n)
}

// dataStart is the sequence number of the first byte in the send buffer:
// SND.UNA once our SYN is acknowledged, ISS+1 before.
func (c *Conn) dataStart() Seq {
	if c.sndUna == c.iss {
		return c.iss + 1
	}
	return c.sndUna
}

// dataEnd is the sequence number just past the last byte in the send buffer.
func (c *Conn) dataEnd() Seq { return c.dataStart() + Seq(c.sb.Len()) }

// sentDataEnd is the end of the data sent at least once: SND.MAX, less our
// FIN. A retransmission stops there, whatever the buffer holds beyond it
// (a tail that Nagle, cork or the window keeps back): bytes sent past
// SND.MAX would not be counted as sent, and the peer's ACK of them would
// look like an ACK of unsent data, refused for ever.
func (c *Conn) sentDataEnd() Seq {
	end := c.dataEnd()
	if end.GreaterThan(c.sndMax) {
		return c.sndMax
	}
	return end
}

// finSent reports whether our FIN has been transmitted (at least once).
func (c *Conn) finSent() bool { return c.wrClosed && c.sndMax.GreaterThan(c.finSeq) }

// finAcked reports whether our FIN has been acknowledged.
func (c *Conn) finAcked() bool { return c.wrClosed && c.sndUna.GreaterThan(c.finSeq) }

// oooBytes returns the bytes held in the reassembly queue.
func (c *Conn) oooBytes() int {
	if c.rq == nil {
		return 0
	}
	return c.rq.Bytes()
}

// oooRanges returns the number of disjoint out-of-order ranges held.
func (c *Conn) oooRanges() int {
	if c.rq == nil {
		return 0
	}
	return c.rq.Len()
}

// oooInsert queues an out-of-order segment, making the reassembly queue on
// first use (most connections never need one).
func (c *Conn) oooInsert(seq Seq, data []byte) (stored, dup bool) {
	if c.rq == nil {
		q := newReassemblyQueue(c.cfg.OOOLimit)
		q.budget = c.cfg.Memory
		c.rq = &q
	}
	return c.rq.Insert(seq, data, c.rcvNxt)
}

// oooRelease frees the reassembly queue (and its chunk buffers) once it
// holds nothing.
func (c *Conn) oooRelease() {
	if c.rq != nil && c.rq.Empty() {
		c.rq = nil
	}
}

// ReleaseMemory frees the buffer storage of a connection the stack is done
// with, crediting its budget: the send buffer and the out-of-order queue
// always, the receive buffer too unless keepReadable (the application may
// still read what arrived before the connection ended).
func (c *Conn) ReleaseMemory(keepReadable bool) {
	c.sb.r.drop()
	if c.rate != nil {
		c.rate.recs, c.rate.head, c.rate.n = nil, 0, 0
	}
	if c.rq != nil {
		c.rq.Reset()
		c.rq = nil
	}
	if !keepReadable || c.rb.Len() == 0 {
		c.rb.r.drop()
	}
}

// deliverInOrder moves in-order bytes from the reassembly queue into the
// receive buffer.
func (c *Conn) deliverInOrder(b []byte) {
	n := c.rb.Write(b)
	c.stats.bytesReceived += uint64(n)
}
