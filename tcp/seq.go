// Package tcp is the TCP protocol as a pure state machine: segments and
// application calls in, segments and events out, time passed as an argument.
// It never reads a clock, starts a goroutine, sleeps or does I/O.
//
// Congestion control is pluggable: an algorithm implements
// CongestionControl, gets a delivery-rate sample (RateSample) on every ACK
// and sets cwnd and optionally a pacing rate; RegisterCongestionControl
// makes it selectable by name in Config.CongestionControl. NewReno and
// CUBIC are built in. docs/congestion-control.md describes the interface,
// with a complete example (example_cc_test.go).
package tcp

// Seq is a TCP sequence number. Comparisons wrap around modulo 2^32
// (RFC 9293 §3.4): a is "less than" b when b is within 2^31 ahead of a.
type Seq uint32

// LessThan reports whether s is before v in sequence space.
func (s Seq) LessThan(v Seq) bool { return int32(s-v) < 0 }

// LessThanEq reports whether s is before or equal to v in sequence space.
func (s Seq) LessThanEq(v Seq) bool { return int32(s-v) <= 0 }

// GreaterThan reports whether s is after v in sequence space.
func (s Seq) GreaterThan(v Seq) bool { return int32(s-v) > 0 }

// GreaterThanEq reports whether s is after or equal to v in sequence space.
func (s Seq) GreaterThanEq(v Seq) bool { return int32(s-v) >= 0 }

// InRange reports whether a <= s < b in sequence space.
func (s Seq) InRange(a, b Seq) bool { return s-a < b-a }

// InWindow reports whether start <= s < start+size. A zero-size window holds nothing.
func (s Seq) InWindow(start Seq, size uint32) bool { return uint32(s-start) < size }

// Add returns s advanced by n.
func (s Seq) Add(n uint32) Seq { return s + Seq(n) }

// Size returns the number of sequence numbers from s up to (not including) v.
// It assumes s <= v in sequence space.
func (s Seq) Size(v Seq) uint32 { return uint32(v - s) }

// Max returns the later of s and v in sequence space.
func (s Seq) Max(v Seq) Seq {
	if s.LessThan(v) {
		return v
	}
	return s
}

// Min returns the earlier of s and v in sequence space.
func (s Seq) Min(v Seq) Seq {
	if s.LessThan(v) {
		return s
	}
	return v
}
