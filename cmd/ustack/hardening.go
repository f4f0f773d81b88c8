package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/stack"
)

// hardeningFlags are serve's knobs for hostile traffic: the per-source
// budget of SYN-cookie answers during a SYN flood and the kernel-side filter
// that enforces it, the length of the kernel's queue toward ustack, and the
// caps of IPv4 and IPv6 reassembly.
type hardeningFlags struct {
	cookieRate int
	txQueueLen int
	reassembly string
	synFilter  bool
}

// defaultTxQueueLen is the TUN queue serve asks for. The kernel's default
// for a TUN (500 packets) holds 4-5 ms of a 100,000 packet/s flood: when
// the scheduler takes the reader off its core for longer than that, the
// kernel drops what does not fit, legitimate packets as often as the
// flood's, and each lost SYN costs a client a 1 s retransmission timeout.
// 8192 packets absorb about 80 ms of such gaps for a few MB of kernel
// memory at most (TCP's small-queue limit keeps bulk flows from filling it).
const defaultTxQueueLen = 8192

func (h *hardeningFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&h.cookieRate, "syn-cookie-rate", stack.DefaultCookieSourceRate,
		"while a SYN queue overflows, answer at most this many SYNs per second from one source address\n"+
			"(an IPv6 /64) with a cookie SYN-ACK and drop the rest (tcp_syn_cookie_rate_limited); 0 = no limit")
	fs.IntVar(&h.txQueueLen, "txqueuelen", defaultTxQueueLen,
		"length of the TUN device's queue toward ustack, in packets (ip link ... txqueuelen; the kernel's\n"+
			"default is 500): it absorbs the gaps when ustack is off the CPU, so a flood does not crowd out other packets")
	fs.BoolVar(&h.synFilter, "syn-filter", true,
		"drop the SYNs of a source (IPv4 address, IPv6 /64) over its --syn-cookie-rate in the kernel, with an\n"+
			"eBPF filter on the TUN (TUNSETFILTEREBPF; needs CAP_BPF), so a flood costs the flooder's CPU instead\n"+
			"of ours; without BPF, serve warns and drops them itself")
	fs.StringVar(&h.reassembly, "reassembly", "mem=4M,datagrams=1024,fragments=256,timeout=30s",
		"caps of IPv4 and IPv6 fragment reassembly: the memory it may hold (K/M suffixes, 64K-64M), datagrams in\n"+
			"flight, fragments of one datagram, and how long a datagram may take; fragments beyond are dropped and\n"+
			"counted by reason (ip_reassembly_memory_limit, ip_too_many_fragments, ip_reassembly_evicted, ...)")
}

// apply checks the flags and sets them into opts and dev.
func (h *hardeningFlags) apply(opts *stack.Options, dev *device) error {
	if h.txQueueLen < 1 || h.txQueueLen > 1<<20 {
		return fmt.Errorf("--txqueuelen %d: want 1 to %d packets", h.txQueueLen, 1<<20)
	}
	dev.txQueueLen = h.txQueueLen
	dev.synFilter = h.synFilter && h.cookieRate > 0
	rc, err := parseReassembly(h.reassembly)
	if err != nil {
		return err
	}
	opts.Reassembly = rc
	switch {
	case h.cookieRate < 0:
		return fmt.Errorf("--syn-cookie-rate %d: want a rate per second, or 0 for no limit", h.cookieRate)
	case h.cookieRate == 0:
		// On the command line 0 is "no limit"; in stack.Options a zero
		// field is "the default", and no limit has its own value.
		opts.CookieSourceRate = stack.UnlimitedCookieRate
	default:
		opts.CookieSourceRate = h.cookieRate
	}
	return nil
}

// setTxQueueLen sets the txqueuelen of the device with index idx over
// netlink. The TUN driver resizes its ring to match at once.
func setTxQueueLen(idx, n int) error {
	l, err := netlink.LinkByIndex(idx)
	if err == nil {
		err = netlink.LinkSetTxQLen(l, n)
	}
	if err != nil {
		return fmt.Errorf("--txqueuelen %d: %w", n, err)
	}
	return nil
}

// parseReassembly parses --reassembly: comma-separated key=value pairs
// (mem, datagrams, fragments, timeout); keys left out keep their defaults.
func parseReassembly(v string) (ip.ReassemblyConfig, error) {
	var rc ip.ReassemblyConfig
	bad := func(what string) (ip.ReassemblyConfig, error) {
		return rc, fmt.Errorf("--reassembly %q: %s (want e.g. mem=4M,datagrams=1024,fragments=256,timeout=30s)", v, what)
	}
	if v == "" {
		return rc, nil
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return bad(fmt.Sprintf("%q is not key=value", kv))
		}
		switch k {
		case "mem":
			n, ok := parseByteSize(val)
			if !ok || n < 64<<10 || n > 64<<20 {
				return bad("mem wants 64K to 64M bytes")
			}
			rc.MemoryLimit = n
		case "datagrams", "fragments":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 65535 {
				return bad(k + " wants 1 to 65535")
			}
			if k == "datagrams" {
				rc.MaxDatagrams = n
			} else {
				rc.MaxFragments = n
			}
		case "timeout":
			d, err := time.ParseDuration(val)
			if err != nil || d < 100*time.Millisecond || d > 10*time.Minute {
				return bad("timeout wants a duration from 100ms to 10m")
			}
			rc.Timeout = d
		default:
			return bad(fmt.Sprintf("unknown key %q", k))
		}
	}
	return rc, nil
}
