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

// defaultQueues is --queues when not given: one queue per two cores, at
// least one and at most four. A queue's reader needs a core of its own,
// and the kernel's side of the TUN and the applications need the others:
// on the 2-core development machine, two queues measured 0.89-0.97x of one
// in every bulk row and 0.92x in connection rate (quiet `ustack bench
// --queues 1,2`), so a 2-core machine gets one.
func defaultQueues() int { return defaultQueuesFor(runtime.NumCPU()) }

// defaultQueuesFor is defaultQueues on a machine of cores cores.
func defaultQueuesFor(cores int) int { return max(1, min(cores/2, maxDefaultQueues)) }

const queuesHelp = "queues of the TUN device (IFF_MULTI_QUEUE, 1-16): one reader per queue, the kernel spreading flows\n" +
	"across them by flow hash; a connection keeps to one queue. 1 opens a plain single-queue TUN.\n" +
	"Default one per two cores, 1 to 4; 1 with --pcap or --impair, which see one queue"

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
