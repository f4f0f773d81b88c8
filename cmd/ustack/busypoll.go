package main

import (
	"fmt"
	"time"

	"github.com/ustack-net/ustack/tun"
)

// --busy-poll (serve, and bench for its ustack server): the TUN reader
// spins, reading without blocking, for up to this long before it blocks,
// as Linux SO_BUSY_POLL does for a socket. It saves the wake-up of a
// blocked reader on every packet that comes during the spin, and costs a
// core while it spins: off by default.
const busyPollHelp = "the TUN reader keeps reading without blocking for up to this long before it blocks\n" +
	"(like Linux SO_BUSY_POLL): lower latency for request/response traffic, at the cost of\n" +
	"a core spinning while it waits; 0 (the default) is off, at most 10ms"

// checkBusyPoll validates a --busy-poll duration.
func checkBusyPoll(d time.Duration) error {
	if d < 0 || d > tun.MaxBusyPoll {
		return fmt.Errorf("--busy-poll %v: want 0 (off) to %v: the reader spins a core for that long before it blocks", d, tun.MaxBusyPoll)
	}
	return nil
}
