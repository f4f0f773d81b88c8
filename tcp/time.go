package tcp

import "time"

// Time is an instant on the stack's monotonic clock, in nanoseconds since an
// arbitrary epoch. The stack passes it into every entry point of a Conn; the
// Conn never reads a clock itself, which is what makes virtual-time tests and
// byte-identical runs possible.
type Time int64

// Add returns t+d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns the duration t-u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// Before reports whether t is before u.
func (t Time) Before(u Time) bool { return t < u }

// After reports whether t is after u.
func (t Time) After(u Time) bool { return t > u }
