package main

import (
	"fmt"
	"runtime"
	"strconv"

	"github.com/ustack-net/ustack/tun"
)

// maxDefaultQueues caps the default --queues: beyond a few readers the
// cores are better spent on the applications.
const maxDefaultQueues = 4

// defaultQueues is --queues when not given: min(cores, 4).
func defaultQueues() int { return min(runtime.NumCPU(), maxDefaultQueues) }

const queuesHelp = "queues of the TUN device (IFF_MULTI_QUEUE, 1-16): one reader per queue, the kernel spreading flows\n" +
	"across them by flow hash; a connection keeps to one queue. 1 opens a plain single-queue TUN.\n" +
	"Default min(cores, 4); 1 with --pcap or --impair, which see one queue"

// queuesFlag is --queues: a count, and whether it was given.
type queuesFlag struct {
	n   int
	set bool
}

func (q *queuesFlag) String() string {
	if q == nil || !q.set {
		return strconv.Itoa(defaultQueues())
	}
	return strconv.Itoa(q.n)
}

func (q *queuesFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("want a whole number of queues from 1 to %d", tun.MaxQueues)
	}
	q.n, q.set = n, true
	return nil
}

// resolve returns the queue count, or why it is refused; single is set
// when something else needs one queue (capture, impairment), named by why.
func (q *queuesFlag) resolve(single string) (int, error) {
	if !q.set {
		if single != "" {
			return 1, nil
		}
		return defaultQueues(), nil
	}
	if q.n < 1 || q.n > tun.MaxQueues {
		return 0, fmt.Errorf("--queues %d: want a value from 1 to %d", q.n, tun.MaxQueues)
	}
	if q.n > 1 && single != "" {
		return 0, fmt.Errorf("--queues %d: %s sees one queue only; use --queues 1", q.n, single)
	}
	return q.n, nil
}
