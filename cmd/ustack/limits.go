package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tcp"
)

// limitFlags are the resource limits of `ustack serve` (the accept queue is
// --backlog, the per-connection buffers --sndbuf/--rcvbuf). Each maps to a
// stack.Options or tcp.Config field; README "Resource limits" documents what
// happens when one bites and the counter that moves.
type limitFlags struct {
	maxConns      int
	synBacklog    int
	synCookies    bool
	timeWaitLimit int
	memBudget     string
	oooLimit      string
	userTimeout   string
}

// Bounds of the limit flags.
const (
	maxLimitConns   = 1 << 24
	maxLimitBacklog = 1 << 20
	minMemBudget    = 64 << 10
	maxMemBudget    = 1 << 40
)

func (l *limitFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.maxConns, "max-conns", stack.DefaultMaxConns, "most connections in the table, in every state; SYNs beyond are dropped\n(tcp_max_conns counts them)")
	fs.IntVar(&l.synBacklog, "syn-backlog", stack.DefaultSYNBacklog, "SYN queue of each listener (connections in SYN-RECEIVED); beyond it SYN cookies\nanswer (tcp_syn_queue_full, tcp_cookies_sent), or SYNs are dropped with --syn-cookies=false")
	fs.BoolVar(&l.synCookies, "syn-cookies", true, "answer SYNs with SYN cookies (RFC 4987) when the SYN queue is full; false drops them")
	fs.IntVar(&l.timeWaitLimit, "timewait-limit", stack.DefaultTimeWaitLimit, "most connections in TIME-WAIT; one entering it beyond is freed at once\n(tcp_timewait_overflow), like Linux tcp_max_tw_buckets")
	fs.StringVar(&l.memBudget, "mem-budget", "off", "buffer memory of all connections together (send and receive buffers,\nout-of-order data), like Linux tcp_mem: K/M/G suffixes, or off. When it is spent,\nwriters block, windows stop growing and out-of-order data is dropped; nothing already\naccepted is lost (tcp_mem_* counters)")
	fs.StringVar(&l.oooLimit, "ooo-limit", "", "out-of-order bytes held per connection for reassembly (K/M suffixes, at most\n--rcvbuf-max; default: the receive buffer); segments beyond are dropped (tcp_ooo_limit_drops)")
	fs.StringVar(&l.userTimeout, "user-timeout", "off", "TCP_USER_TIMEOUT of every connection (RFC 5482): how long sent data may stay\nunacknowledged, or a zero window stay shut, before the connection fails with ETIMEDOUT\n(tcp_timed_out); a duration such as 30s, or off")
}

// parseMemSize parses a byte count with an optional K, M or G suffix
// (binary), e.g. 512M or 2G.
func parseMemSize(s string) (int64, bool) {
	mult := int64(1)
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			mult, num = 1<<10, s[:n-1]
		case 'm', 'M':
			mult, num = 1<<20, s[:n-1]
		case 'g', 'G':
			mult, num = 1<<30, s[:n-1]
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > maxMemBudget/mult {
		return maxMemBudget + 1, true
	}
	return v * mult, true
}

// apply validates the limits and writes them into opts (whose TCP config
// already holds the knobs: --ooo-limit is checked against --rcvbuf).
func (l *limitFlags) apply(opts *stack.Options, cfg *tcp.Config) error {
	if l.maxConns < 1 || l.maxConns > maxLimitConns {
		return fmt.Errorf("--max-conns %d: want 1 to %d", l.maxConns, maxLimitConns)
	}
	if l.synBacklog < 1 || l.synBacklog > maxLimitBacklog {
		return fmt.Errorf("--syn-backlog %d: want 1 to %d", l.synBacklog, maxLimitBacklog)
	}
	if l.timeWaitLimit < 1 || l.timeWaitLimit > maxLimitConns {
		return fmt.Errorf("--timewait-limit %d: want 1 to %d", l.timeWaitLimit, maxLimitConns)
	}
	opts.MaxConns, opts.SYNBacklog, opts.TimeWaitLimit = l.maxConns, l.synBacklog, l.timeWaitLimit
	opts.DisableSYNCookies = !l.synCookies

	if l.memBudget != "off" && l.memBudget != "0" {
		n, ok := parseMemSize(l.memBudget)
		if !ok {
			return fmt.Errorf("--mem-budget %q: want a byte count such as 268435456, 256M or 2G, or off", l.memBudget)
		}
		if n < minMemBudget || n > maxMemBudget {
			return fmt.Errorf("--mem-budget %s: want 64K to 1024G, or off", l.memBudget)
		}
		opts.MemoryBudget = n
	}

	rcvbuf := cfg.WithDefaults().RecvBufferMax
	if l.oooLimit != "" {
		n, ok := parseByteSize(l.oooLimit)
		if !ok {
			return fmt.Errorf("--ooo-limit %q: want a byte count such as 65536 or 64K", l.oooLimit)
		}
		if n < tcp.MinBufferSize || n > rcvbuf {
			return fmt.Errorf("--ooo-limit %s: want 4K up to the largest receive buffer (--rcvbuf-max or --rcvbuf, %d bytes)", l.oooLimit, rcvbuf)
		}
		cfg.OOOLimit = n
	}

	if l.userTimeout != "off" && l.userTimeout != "0" {
		d, err := time.ParseDuration(l.userTimeout)
		if err != nil {
			return fmt.Errorf("--user-timeout %q: want a duration such as 30s or 2m, or off", l.userTimeout)
		}
		if d < time.Millisecond || d > 24*time.Hour {
			return fmt.Errorf("--user-timeout %v: want 1ms to 24h, or off", d)
		}
		cfg.UserTimeout = d
	}
	return nil
}
