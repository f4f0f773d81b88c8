package tcp

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// CongestionControl is a sender's congestion control algorithm, the
// counterpart of Linux's tcp_congestion_ops. A connection owns one instance
// (made by the factory registered under Config.CongestionControl when the
// connection starts, and again once the handshake has fixed the MSS) and
// calls it from Input and Output only, never concurrently: an implementation
// needs no locking, must not block, and reads time only from the now
// arguments. See docs/congestion-control.md for a worked example.
//
// Windows are in bytes. The connection sends while the bytes in flight
// (RateSample.InFlight's measure) are below CWnd, and, when PacingRate is
// non-zero, no faster than that rate: a (super-)segment of n bytes delays
// the next by n/PacingRate.
//
// Order of calls on one ACK: the engine first processes the cumulative
// ACK: an ACK that completes loss recovery delivers CCRecoveryEnd before
// anything else; then OnAck gets the ACK's RateSample (every acceptable
// ACK in a synchronized state, including duplicate ACKs and ACKs during
// recovery); then loss detection may deliver CCRecoveryStart. CCTimeout,
// CCIdleRestart and CCTxStart come from Output. Event kinds may be added:
// an implementation ignores the ones it does not know.
type CongestionControl interface {
	// Name returns the name the algorithm is registered under.
	Name() string
	// CWnd returns the congestion window in bytes; the connection treats
	// values below one MSS as one MSS.
	CWnd() uint32
	// SSThresh returns the slow-start threshold in bytes, for Info and
	// for the engine's RFC 6582 window inflation; an algorithm without
	// one returns math.MaxUint32.
	SSThresh() uint32
	// OnAck is called for every acceptable ACK with what it delivered.
	// rs is valid only during the call.
	OnAck(now Time, rs *RateSample)
	// OnEvent reports a loss-recovery event (see CCEventKind).
	OnEvent(now Time, ev CCEvent)
	// PacingRate returns the rate in bytes per second at which data
	// segments should leave, or 0 for no pacing (then Config.Pacing may
	// still pace at Linux's default rate). The connection reads it before
	// each data segment.
	PacingRate() uint64
	// SetCWnd is the engine setting cwnd for RFC 6582 fast recovery on a
	// connection without SACK: cwnd = ssthresh+3*MSS on entry, +1 MSS per
	// further duplicate ACK, deflation by the amount acked on a partial
	// ACK (RFC 6582 §3.2). An algorithm that computes its own window during
	// recovery may ignore it.
	SetCWnd(cwnd uint32)
}

// CCEventKind is the kind of a CCEvent.
type CCEventKind uint8

// Congestion events.
const (
	// CCRecoveryStart: duplicate ACKs or SACK information show a loss
	// and fast retransmit / fast recovery begins (RFC 5681 §3.2, RFC 6582,
	// RFC 6675 §5). CCEvent.InFlight is FlightSize (SND.MAX - SND.UNA).
	CCRecoveryStart CCEventKind = iota + 1
	// CCRecoveryEnd: the recovery point has been acknowledged.
	CCRecoveryEnd
	// CCTimeout: the retransmission timer expired (RFC 6298 §5.5) and the
	// sender goes back to SND.UNA. CCEvent.InFlight is FlightSize before
	// the timeout.
	CCTimeout
	// CCIdleRestart: the sender resumes after an idle period longer than
	// the RTO (RFC 5681 §4.1).
	CCIdleRestart
	// CCTxStart: a data segment is about to leave with nothing in flight
	// (Linux CA_EVENT_TX_START; BBR restarts its pacing from it after an
	// application-limited pause). It follows CCIdleRestart.
	CCTxStart
	// CCECNEcho: an ACK carried ECN-Echo (RFC 3168 §6.1.2), the first
	// one outside a window already reduced: a router marked a packet
	// instead of dropping it. NewReno and CUBIC react as to a loss
	// (ssthresh and cwnd as on CCRecoveryStart), without a
	// retransmission; the ACKs until everything sent before the event
	// is acknowledged carry RateSample.InCWR. CCEvent.InFlight is
	// FlightSize before the ACK that carried the echo.
	CCECNEcho
	// CCUndo: the latest fast recovery or RTO was spurious (every
	// retransmission was D-SACKed, RFC 3708, or timestamps showed the
	// original was acknowledged, RFC 3522) and its reduction is undone
	// (RFC 4015). CCEvent.PriorCWnd and PriorSSThresh are the window and
	// threshold saved when it began; the response expected is Linux's
	// tcp_undo_cwnd_reduction: cwnd = max(cwnd, PriorCWnd), ssthresh =
	// max(ssthresh, PriorSSThresh). An undo in the middle of a recovery
	// comes after that recovery's CCRecoveryEnd. For an algorithm that
	// does not implement CCUndoer, the engine applies the cwnd half of
	// that response itself after the event, through SetCWnd.
	CCUndo
)

// CCUndoer is implemented by a CongestionControl that applies CCUndo
// itself (the built-in ones do). For the others, the engine raises cwnd to
// CCEvent.PriorCWnd with SetCWnd after delivering the event; their
// ssthresh stays what they make it.
type CCUndoer interface {
	CongestionControl
	// HandlesUndo reports that OnEvent(CCUndo) restores the window.
	HandlesUndo() bool
}

// String returns the event's name.
func (k CCEventKind) String() string {
	switch k {
	case CCRecoveryStart:
		return "recovery-start"
	case CCRecoveryEnd:
		return "recovery-end"
	case CCTimeout:
		return "timeout"
	case CCIdleRestart:
		return "idle-restart"
	case CCTxStart:
		return "tx-start"
	case CCECNEcho:
		return "ecn-echo"
	case CCUndo:
		return "undo"
	}
	return fmt.Sprintf("CCEventKind(%d)", uint8(k))
}

// CCEvent is a congestion event delivered through CongestionControl.OnEvent.
type CCEvent struct {
	Kind CCEventKind
	// InFlight is the sequence space outstanding when the event happened
	// (SND.MAX - SND.UNA).
	InFlight uint32
	// PriorCWnd and PriorSSThresh are, for CCUndo, the congestion window
	// and slow-start threshold to restore (Linux's prior_cwnd and
	// prior_ssthresh = max(ssthresh, 3/4 cwnd) when the reduction began).
	PriorCWnd, PriorSSThresh uint32
}

// RateSample is what one ACK tells the congestion control: the bytes it
// acknowledged, a delivery-rate sample as in
// draft-cheng-iccrg-delivery-rate-estimation (Linux's struct rate_sample),
// and the state of the connection after processing it. Byte counts are in
// sequence space (a FIN counts one). Fields may be added; an implementation
// reads the ones it needs.
//
// The delivery rate: every (super-)segment records, when it is sent, how
// many bytes had been delivered (TotalDelivered) and when. Of the segments
// this ACK delivered (cumulatively or by SACK), the most recently sent one
// gives the sample: Delivered = TotalDelivered now - TotalDelivered when it
// was sent (PriorDelivered), over Interval = max(send_elapsed,
// ack_elapsed), the longer of the time that flight took to send and to be
// acknowledged. An ACK that delivered nothing, or whose interval is shorter
// than MinRTT (ACK compression), gives no sample: Delivered, Interval and
// DeliveryRate() are 0.
type RateSample struct {
	// Delivered bytes over Interval (DeliveryRate() divides them); both
	// 0 when the ACK gives no valid sample.
	Delivered uint64
	Interval  time.Duration
	// AppLimited reports that the sampled segment was sent while the
	// application, not the windows, limited sending: the rate
	// underestimates the path (BBR ignores such samples unless they
	// exceed its estimate).
	AppLimited bool
	// PriorDelivered is TotalDelivered when the sampled segment was sent
	// (BBR's round counting: a round ends when a segment sent after the
	// round started is delivered).
	PriorDelivered uint64
	// TotalDelivered is the connection's delivered-byte counter after
	// this ACK (the draft's C.delivered).
	TotalDelivered uint64
	// TxInFlight is the bytes that were in flight when the sampled
	// segment was sent, and LostSinceSent the bytes marked lost since
	// then (BBRv2/v3's inflight_hi probing judges a flight's loss rate as
	// LostSinceSent/TxInFlight).
	TxInFlight    uint32
	LostSinceSent uint64
	// RTT is now minus the send time of the most recently sent segment
	// this ACK delivered, 0 when it was retransmitted (Karn) or nothing
	// was delivered. It includes the peer's ACK delay. MinRTT is the
	// smallest RTT seen on the connection so far.
	RTT, MinRTT time.Duration
	// NewlySACKed is the bytes this ACK's SACK blocks added to the
	// scoreboard.
	NewlySACKed uint32
	// NewlyLost is the bytes marked lost since the previous ACK: by RFC
	// 6675 IsLost from the SACK scoreboard (this ACK's blocks included),
	// by a fast retransmit without SACK, or by a retransmission timeout.
	// TotalLost is the connection's lost-byte counter.
	NewlyLost uint32
	TotalLost uint64

	// Acked is the sequence space newly acknowledged cumulatively
	// (SEG.ACK - SND.UNA before the ACK, including a SYN or FIN); 0 for a
	// duplicate ACK. RFC 5681 window growth counts these bytes.
	Acked uint32
	// InRecovery reports that the ACK arrived during loss recovery (it
	// may have ended it: then OnEvent(CCRecoveryEnd) came first).
	InRecovery bool
	// InCWR reports that the ACK arrived during the congestion window
	// reduction an ECN-Echo started (CCECNEcho; Linux's TCP_CA_CWR): the
	// built-in NewReno and CUBIC do not grow cwnd on it.
	InCWR bool
	// PriorInFlight and InFlight are the bytes in flight before and
	// after the ACK, as the connection compares them with CWnd: SND.NXT -
	// SND.UNA, or the RFC 6675 pipe during SACK recovery.
	PriorInFlight, InFlight uint32
	// SRTT is the smoothed RTT of RFC 6298 (0 before the first sample).
	SRTT time.Duration
	// MSS is the current sender MSS (Eff.snd.MSS; it shrinks with PMTU
	// discovery).
	MSS uint32
}

// DeliveryRate returns Delivered/Interval in bytes per second, 0 when the
// sample is not valid. (A method, so that the ACK path divides only for the
// algorithms that ask.)
func (rs *RateSample) DeliveryRate() uint64 { return rateOf(rs.Delivered, rs.Interval) }

// CCConfig is what a CongestionControlFactory gets for a new connection.
type CCConfig struct {
	// MSS is the sender MSS in bytes (Eff.snd.MSS; before the handshake
	// the RFC 9293 default of 536).
	MSS uint32
	// InitialWindow is RFC 6928's IW = min(10*MSS, max(2*MSS, 14600)).
	InitialWindow uint32
	// Now is the current time.
	Now Time
	// HyStart turns HyStart++ (RFC 9406) on in the built-in NewReno and
	// CUBIC (Config.HyStart); other algorithms may ignore it.
	HyStart bool
}

// CongestionControlFactory makes an algorithm's instance for one
// connection.
type CongestionControlFactory func(cfg CCConfig) CongestionControl

var ccRegistry struct {
	mu        sync.RWMutex
	factories map[string]CongestionControlFactory
	names     []string // in registration order: built-ins first
}

// RegisterCongestionControl makes an algorithm available under name, for
// Config.CongestionControl (and ustack's --cc). Like database/sql.Register
// it panics if name is empty or already registered, or factory is nil;
// call it from an init function.
func RegisterCongestionControl(name string, factory CongestionControlFactory) {
	if name == "" || factory == nil {
		panic("tcp: RegisterCongestionControl with an empty name or a nil factory")
	}
	r := &ccRegistry
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.factories[name]; dup {
		panic("tcp: RegisterCongestionControl called twice for " + name)
	}
	if r.factories == nil {
		r.factories = make(map[string]CongestionControlFactory)
	}
	r.factories[name] = factory
	r.names = append(r.names, name)
}

// CongestionControls returns the names of the registered algorithms, the
// built-in ones ("newreno", "cubic", "bbr", "bbr1") first, then the others
// sorted.
func CongestionControls() []string {
	r := &ccRegistry
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := append([]string(nil), r.names...)
	if builtin := len(ccNames) + 2; len(names) > builtin { // + bbr, bbr1
		sort.Strings(names[builtin:])
	}
	return names
}

// NewCongestionControl makes an instance of the algorithm registered as
// name ("" means "newreno") for a connection with sender MSS mss (0 means
// 536) at now. An unknown name is an error that lists the registered ones.
func NewCongestionControl(name string, mss uint32, now Time) (CongestionControl, error) {
	return newCCWithConfig(name, CCConfig{MSS: mss, Now: now})
}

// newCCWithConfig is NewCongestionControl with the whole CCConfig
// (InitialWindow is filled in here).
func newCCWithConfig(name string, cfg CCConfig) (CongestionControl, error) {
	mss, now := cfg.MSS, cfg.Now
	if name == "" {
		name = ccNameNewReno
	}
	if mss == 0 {
		mss = ccDefaultMSS
	}
	r := &ccRegistry
	r.mu.RLock()
	f := r.factories[name]
	r.mu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("tcp: unknown congestion control %q (registered: %s)", name, strings.Join(CongestionControls(), ", "))
	}
	return f(CCConfig{MSS: mss, InitialWindow: ccInitialWindow(mss), Now: now, HyStart: cfg.HyStart}), nil
}

// InitialWindow returns RFC 6928's initial window for mss:
// min(10*MSS, max(2*MSS, 14600)) bytes.
func InitialWindow(mss uint32) uint32 { return ccInitialWindow(mss) }

func init() {
	RegisterCongestionControl(ccNameNewReno, func(cfg CCConfig) CongestionControl {
		return &renoCC{newReno: *newNewReno(cfg.MSS), hy: newHyStart(cfg.HyStart)}
	})
	RegisterCongestionControl(ccNameCubic, func(cfg CCConfig) CongestionControl {
		return &cubicCC{cubic: *newCubic(cfg.MSS, cfg.Now), hy: newHyStart(cfg.HyStart)}
	})
	RegisterCongestionControl(ccNameBBR, newBBRCC)
	RegisterCongestionControl(ccNameBBR1, newBBR1CC)
}

// ccRegistered reports whether name is a registered algorithm.
func ccRegistered(name string) bool {
	r := &ccRegistry
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.factories[name]
	return ok
}
