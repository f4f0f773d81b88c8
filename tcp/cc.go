package tcp

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// congestionControl is the core of the built-in algorithms (NewReno,
// CUBIC), with the per-event methods their unit tests drive directly; the
// connection talks to every algorithm, built-in or not, through the public
// CongestionControl (see renoCC and cubicCC for the adapters). Windows are
// in bytes. Every implementation computes in uint64 (or guarded float64) and
// saturates at math.MaxUint32, and never lets cwnd drop below one MSS, so no
// peer behaviour and no window size can overflow or zero it (cf. gVisor issue
// #11632).
type congestionControl interface {
	// Name is the algorithm's name as accepted by newCongestionControl.
	Name() string
	// CWnd is the congestion window in bytes (>= 1 MSS).
	CWnd() uint32
	// SSThresh is the slow-start threshold in bytes (initially MaxUint32).
	SSThresh() uint32
	// OnAck grows the window for acked bytes of new data cumulatively ACKed
	// outside recovery; rtt is the current smoothed RTT (0 if unknown),
	// inflight the bytes still outstanding after this ACK.
	OnAck(now Time, acked uint32, rtt time.Duration, inflight uint32)
	// OnEnterRecovery reacts to a loss detected by duplicate ACKs or SACK.
	OnEnterRecovery(now Time, inflight uint32)
	// OnExitRecovery ends recovery: cwnd = ssthresh.
	OnExitRecovery(now Time)
	// OnRTO reacts to a retransmission timeout: cwnd = loss window (1 MSS).
	OnRTO(now Time, inflight uint32)
	// SetCWnd overrides cwnd (clamped to >= 1 MSS), for engine-driven
	// NewReno inflation/deflation.
	SetCWnd(cwnd uint32)
	// OnIdleRestart applies RFC 5681 §4.1 after an idle period longer than
	// the RTO: cwnd = min(IW, cwnd).
	OnIdleRestart(now Time)
}

// Congestion control algorithm names of the built-in algorithms.
const (
	ccNameNewReno = "newreno"
	ccNameCubic   = "cubic"
)

// ccNames lists the built-in algorithm names (newCongestionControl).
var ccNames = []string{ccNameNewReno, ccNameCubic}

// ccDefaultMSS is used when the caller passes an MSS of 0: the RFC 9293 §3.7.1
// default send MSS for IPv4.
const ccDefaultMSS = 536

// newCongestionControl builds the core of the named built-in algorithm (""
// means "newreno") for a sender MSS of mss, starting with the RFC 6928
// initial window. An unknown name is an error naming the valid ones. The
// tests and benchmarks of the cores use it; connections go through the
// registry (NewCongestionControl).
func newCongestionControl(name string, mss uint32, now Time) (congestionControl, error) {
	if mss == 0 {
		mss = ccDefaultMSS
	}
	switch name {
	case "", ccNameNewReno:
		return newNewReno(mss), nil
	case ccNameCubic:
		return newCubic(mss, now), nil
	default:
		return nil, fmt.Errorf("tcp: unknown congestion control %q (valid: %s)", name, strings.Join(ccNames, ", "))
	}
}

// ccInitialWindow is IW = min(10*MSS, max(2*MSS, 14600)) bytes (RFC 6928 §2).
func ccInitialWindow(mss uint32) uint32 {
	m := uint64(mss)
	iw := uint64(14600)
	if 2*m > iw {
		iw = 2 * m
	}
	if 10*m < iw {
		iw = 10 * m
	}
	return ccSaturate(iw)
}

// ccSaturate converts v to uint32, saturating at math.MaxUint32.
func ccSaturate(v uint64) uint32 {
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

// ccSaturatingAdd returns a+b, saturating at math.MaxUint32.
func ccSaturatingAdd(a, b uint32) uint32 { return ccSaturate(uint64(a) + uint64(b)) }

// ccLossSSThresh is max(flight*num/den, 2*MSS) computed without overflow
// (RFC 5681 eq. (4) with num/den = 1/2; RFC 9438 §4.6 with 7/10).
func ccLossSSThresh(flight uint32, num, den uint64, mss uint32) uint32 {
	v := uint64(flight) * num / den
	if floor := 2 * uint64(mss); v < floor {
		v = floor
	}
	return ccSaturate(v)
}

// ccLossBase is the window a loss reduction starts from: FlightSize, but
// never more than cwnd. During SACK recovery the sender keeps sending above
// the recovery point while holes wait, so SND.MAX - SND.UNA grows with
// SACKed bytes far beyond what is in the network (several times cwnd once a
// slow-start overshoot's recovery runs for a few round trips); a loss found
// right after that recovery would otherwise set ssthresh above the cwnd
// that just overflowed the path. Linux reduces from cwnd (tcp_reno_ssthresh,
// bictcp_recalc_ssthresh); RFC 9438 §4.6 allows cwnd too.
func ccLossBase(cwnd, flight uint32) uint32 { return min(cwnd, flight) }

// ccFloorMSS clamps a window to at least one MSS.
func ccFloorMSS(cwnd, mss uint32) uint32 {
	if cwnd < mss {
		return mss
	}
	return cwnd
}

// ccSlowStartIncrease is the RFC 3465 §2.2 appropriate-byte-counting increase
// for one ACK in slow start: min(acked, L*SMSS) with L = 2.
func ccSlowStartIncrease(acked, mss uint32) uint64 {
	limit := 2 * uint64(mss)
	if uint64(acked) < limit {
		return uint64(acked)
	}
	return limit
}
