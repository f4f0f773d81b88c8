package main

import (
	"flag"
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/ustack-net/ustack/stack"
)

// hardeningFlags are serve's knobs for hostile traffic: the per-source
// budget of SYN-cookie answers during a SYN flood, and the length of the
// kernel's queue toward ustack.
type hardeningFlags struct {
	cookieRate int
	txQueueLen int
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
}

// apply checks the flags and sets them into opts and dev.
func (h *hardeningFlags) apply(opts *stack.Options, dev *device) error {
	if h.txQueueLen < 1 || h.txQueueLen > 1<<20 {
		return fmt.Errorf("--txqueuelen %d: want 1 to %d packets", h.txQueueLen, 1<<20)
	}
	dev.txQueueLen = h.txQueueLen
	switch {
	case h.cookieRate < 0:
		return fmt.Errorf("--syn-cookie-rate %d: want a rate per second, or 0 for no limit", h.cookieRate)
	case h.cookieRate == 0:
		opts.CookieSourceRate = -1
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
