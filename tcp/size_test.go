package tcp

import (
	"testing"
	"unsafe"
)

// TestConnFitsItsSizeClass keeps tcp.Conn inside Go's 896-byte allocation
// class: with the 8-byte malloc header of a pointerful object, 888 bytes is
// the most that fits, and one byte more costs 128 bytes per connection (the
// 1024 class). Rarely used state belongs in rareState.
func TestConnFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 888 {
		t.Fatalf("tcp.Conn is %d bytes, want at most 888 (move rare fields into rareState)", n)
	}
}
