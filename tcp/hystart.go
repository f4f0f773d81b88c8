package tcp

import (
	"math"
	"time"
)

// RFC 9406 constants (§4.3).
const (
	hystartMinRTTThresh    = 4 * time.Millisecond
	hystartMaxRTTThresh    = 16 * time.Millisecond
	hystartMinRTTDivisor   = 8
	hystartNRTTSample      = 8
	hystartCSSGrowthDiv    = 4
	hystartCSSRounds       = 5
	hystartNoRTT           = time.Duration(math.MaxInt64)
	hystartPhaseSlowStart  = 0
	hystartPhaseCSS        = 1
	hystartPhaseDone       = 2
	hystartDisabledByUser  = 3
	hystartInitialSSThresh = math.MaxUint32
)

// hystart is HyStart++ (RFC 9406) for the initial slow start of NewReno and
// CUBIC: per round it keeps the minimum of the first RTT samples; when a
// round's minimum exceeds the previous round's by RttThresh it enters
// Conservative Slow Start (growth divided by CSS_GROWTH_DIVISOR), returns
// to slow start if the RTT falls back below the baseline, and after
// CSS_ROUNDS rounds of CSS ends slow start (ssthresh = cwnd).
//
// Rounds are counted by delivered bytes, as BBR counts them: a round ends
// when a segment sent after it began is delivered (RateSample.PriorDelivered
// reaches the TotalDelivered recorded at its start), which is RFC 9406's
// windowEnd = SND.NXT without tracking sequence numbers.
type hystart struct {
	phase        int
	roundEnd     uint64 // TotalDelivered at the round's start
	roundStarted bool
	lastMin      time.Duration // lastRoundMinRTT
	curMin       time.Duration // currentRoundMinRTT
	samples      int           // rttSampleCount
	cssBaseline  time.Duration // cssBaselineMinRTT
	cssRounds    int
	// Counters for Info/tests.
	cssEntries, cssExits int
}

func newHyStart(enabled bool) hystart {
	h := hystart{lastMin: hystartNoRTT, curMin: hystartNoRTT, cssBaseline: hystartNoRTT}
	if !enabled {
		h.phase = hystartDisabledByUser
	}
	return h
}

// onAck runs HyStart++ for one ACK of new data in the initial slow start
// (ssthresh never set). It returns the divisor of the slow-start increase
// (1, or CSS_GROWTH_DIVISOR in CSS) and whether slow start ends now.
func (h *hystart) onAck(rs *RateSample, ssthresh uint32) (div uint32, exit bool) {
	if h.phase >= hystartPhaseDone || ssthresh != hystartInitialSSThresh {
		if h.phase < hystartPhaseDone {
			h.phase = hystartPhaseDone // a loss ended slow start (§4.2)
		}
		return 1, false
	}
	roundEnded := false
	if !h.roundStarted || rs.PriorDelivered >= h.roundEnd && rs.Delivered > 0 {
		if h.roundStarted {
			roundEnded = true
		}
		h.roundStarted = true
		h.roundEnd = rs.TotalDelivered
		h.lastMin, h.curMin, h.samples = h.curMin, hystartNoRTT, 0
	}
	if roundEnded && h.phase == hystartPhaseCSS {
		h.cssRounds++
		if h.cssRounds >= hystartCSSRounds {
			h.phase = hystartPhaseDone
			return 1, true
		}
	}
	if rs.RTT > 0 {
		if rs.RTT < h.curMin {
			h.curMin = rs.RTT
		}
		h.samples++
	}
	switch h.phase {
	case hystartPhaseSlowStart:
		if h.samples >= hystartNRTTSample && h.curMin != hystartNoRTT && h.lastMin != hystartNoRTT {
			thresh := h.lastMin / hystartMinRTTDivisor
			thresh = max(hystartMinRTTThresh, min(thresh, hystartMaxRTTThresh))
			if h.curMin >= h.lastMin+thresh {
				h.phase = hystartPhaseCSS
				h.cssBaseline = h.curMin
				h.cssRounds = 0
				h.cssEntries++
			}
		}
	case hystartPhaseCSS:
		if h.samples >= hystartNRTTSample && h.curMin < h.cssBaseline {
			// The RTT rise was spurious: back to slow start (§4.2).
			h.phase = hystartPhaseSlowStart
			h.cssBaseline = hystartNoRTT
			h.cssExits++
		}
	}
	if h.phase == hystartPhaseCSS {
		return hystartCSSGrowthDiv, false
	}
	return 1, false
}

// inCSS reports whether slow start is in its conservative phase.
func (h *hystart) inCSS() bool { return h.phase == hystartPhaseCSS }
