package tcp_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ustack-net/ustack/tcp"
)

func TestSeqCompareWrap(t *testing.T) {
	cases := []struct {
		a, b tcp.Seq
		less bool // a < b in sequence space
	}{
		{0, 1, true},
		{1, 0, false},
		{0xffffffff, 0, true}, // wraps: 0 is one after 2^32-1
		{0, 0xffffffff, false},
		{0xfffffff0, 0x10, true},
		{0x10, 0xfffffff0, false},
		{0x7fffffff, 0x80000000, true},
		{0x80000000, 0x7fffffff, false},
		{0, 0x7fffffff, true},  // 2^31-1 ahead: still "after"
		{0x7fffffff, 0, false}, // …and the reverse is "before"
		{5, 5, false},
	}
	for _, c := range cases {
		equal := c.a == c.b
		assert.Equal(t, c.less, c.a.LessThan(c.b), "%#x < %#x", c.a, c.b)
		assert.Equal(t, c.less || equal, c.a.LessThanEq(c.b), "%#x <= %#x", c.a, c.b)
		assert.Equal(t, !c.less && !equal, c.a.GreaterThan(c.b), "%#x > %#x", c.a, c.b)
		assert.Equal(t, !c.less, c.a.GreaterThanEq(c.b), "%#x >= %#x", c.a, c.b)
		assert.Equal(t, c.less, c.b.GreaterThan(c.a), "%#x > %#x (swapped)", c.b, c.a)
		if c.less {
			assert.Equal(t, c.b, c.a.Max(c.b))
			assert.Equal(t, c.a, c.a.Min(c.b))
			assert.Equal(t, c.b, c.b.Max(c.a))
			assert.Equal(t, c.a, c.b.Min(c.a))
		}
	}
	// Exactly 2^31 apart the order is undefined (RFC 1982 §3.2); with the
	// int32 difference each looks "before" the other. Pin it so a change is seen.
	assert.True(t, tcp.Seq(0).LessThan(0x80000000))
	assert.True(t, tcp.Seq(0x80000000).LessThan(0))
}

func TestSeqArithmeticWrap(t *testing.T) {
	assert.Equal(t, tcp.Seq(4), tcp.Seq(0xfffffffe).Add(6))
	assert.Equal(t, tcp.Seq(0xffffffff), tcp.Seq(0).Add(0xffffffff))
	assert.Equal(t, uint32(6), tcp.Seq(0xfffffffe).Size(4))
	assert.Equal(t, uint32(0), tcp.Seq(7).Size(7))
	assert.Equal(t, uint32(0x80000000), tcp.Seq(0x80000000).Size(0))
}

func TestSeqInWindow(t *testing.T) {
	cases := []struct {
		name  string
		s     tcp.Seq
		start tcp.Seq
		size  uint32
		in    bool
	}{
		{"zero window holds nothing, even its start", 100, 100, 0, false},
		{"zero window at wrap", 0xffffffff, 0xffffffff, 0, false},
		{"first byte", 100, 100, 1, true},
		{"one past end", 101, 100, 1, false},
		{"before start", 99, 100, 10, false},
		{"last byte", 109, 100, 10, true},
		{"across wrap: start", 0xfffffffe, 0xfffffffe, 5, true},
		{"across wrap: 0", 0, 0xfffffffe, 5, true},
		{"across wrap: last", 2, 0xfffffffe, 5, true},
		{"across wrap: one past", 3, 0xfffffffe, 5, false},
		{"across wrap: before", 0xfffffffd, 0xfffffffe, 5, false},
		{"max window", 0x7ffffffe, 0, 0x7fffffff, true},
		{"1 GiB scaled window", 0x3fffffff + 10, 10, 1 << 30, true},
		{"1 GiB scaled window end", 10 + 1<<30, 10, 1 << 30, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.in, c.s.InWindow(c.start, c.size), c.name)
	}
}

func TestSeqInRange(t *testing.T) {
	cases := []struct {
		name string
		s    tcp.Seq
		a, b tcp.Seq
		in   bool
	}{
		{"empty range", 5, 5, 5, false},
		{"start", 5, 5, 6, true},
		{"end excluded", 6, 5, 6, false},
		{"before", 4, 5, 10, false},
		{"across wrap: high", 0xfffffff0, 0xfffffff0, 0x10, true},
		{"across wrap: zero", 0, 0xfffffff0, 0x10, true},
		{"across wrap: last", 0xf, 0xfffffff0, 0x10, true},
		{"across wrap: end excluded", 0x10, 0xfffffff0, 0x10, false},
		{"across wrap: before", 0xffffffef, 0xfffffff0, 0x10, false},
		{"whole space but one", 0xfffffffe, 0, 0xffffffff, true},
	}
	for _, c := range cases {
		assert.Equal(t, c.in, c.s.InRange(c.a, c.b), c.name)
	}
}
