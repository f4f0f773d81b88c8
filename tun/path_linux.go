package tun

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Path forwards IP packets between two Links through an emulated WAN path:
// what A reads goes through the Up lane and is written to B, what B reads
// goes through the Down lane to A. Each direction has a reader goroutine
// and a sender goroutine on an OS thread of its own, which waits for the
// next due packet in ppoll(2) with a 1 µs timer slack (not a Go timer,
// whose sleeps are only as fine as the runtime's netpoller, about 1 ms).
//
// Packets are read with Read (plain packets, super-packets cut to the MTU
// by the link), so each one counts against the bottleneck at its size on
// the wire.
type Path struct {
	up, down *pathDir
	start    time.Time
	wg       sync.WaitGroup
	closed   atomic.Bool
	a, b     Link
}

// pathDir is one direction of a running Path.
type pathDir struct {
	in, out Link
	now     func() time.Duration
	wake    int // eventfd: the reader tells the sender of an earlier deadline

	mu     sync.Mutex
	lane   *PathLane
	closed bool
	late   Lateness
	werrs  uint64
	rdrops uint64
	rerr   string
}

// Lateness measures how late the real-time sender released packets after
// their due times: the emulator's timer precision.
type Lateness struct {
	Count uint64        // packets released
	Sum   time.Duration // total lateness
	Max   time.Duration
	// Over100us and Over1ms count packets released more than 100 µs and
	// more than 1 ms after they were due.
	Over100us, Over1ms uint64
}

// Mean is the mean lateness.
func (l Lateness) Mean() time.Duration {
	if l.Count == 0 {
		return 0
	}
	return l.Sum / time.Duration(l.Count)
}

func (l *Lateness) add(d time.Duration) {
	l.Count++
	l.Sum += d
	l.Max = max(l.Max, d)
	if d > 100*time.Microsecond {
		l.Over100us++
	}
	if d > time.Millisecond {
		l.Over1ms++
	}
}

// PathStats is what a running Path did in each direction.
type PathStats struct {
	Up, Down         LaneStats
	UpLate, DownLate Lateness
	// Write errors of the far side's link; reads of packets too big for
	// the MTU (dropped); and the error that stopped a direction's reader,
	// if one did before Close.
	UpWriteErrs, DownWriteErrs uint64
	UpReadDrops, DownReadDrops uint64
	UpReadErr, DownReadErr     string
}

// NewPath starts forwarding between a and b as cfg says. Close stops it and
// closes both links.
func NewPath(a, b Link, cfg PathConfig) (*Path, error) {
	upLane, err := NewPathLane(cfg.Up)
	if err != nil {
		return nil, err
	}
	downLane, err := NewPathLane(cfg.Down)
	if err != nil {
		return nil, err
	}
	p := &Path{start: time.Now(), a: a, b: b}
	now := func() time.Duration { return time.Since(p.start) }
	mk := func(in, out Link, lane *PathLane) (*pathDir, error) {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			return nil, err
		}
		return &pathDir{in: in, out: out, now: now, wake: fd, lane: lane}, nil
	}
	if p.up, err = mk(a, b, upLane); err != nil {
		return nil, err
	}
	if p.down, err = mk(b, a, downLane); err != nil {
		unix.Close(p.up.wake)
		return nil, err
	}
	for _, d := range []*pathDir{p.up, p.down} {
		p.wg.Add(2)
		go func() { defer p.wg.Done(); d.reader() }()
		go func() { defer p.wg.Done(); d.sender() }()
	}
	return p, nil
}

// Stats returns the counters of both directions.
func (p *Path) Stats() PathStats {
	var s PathStats
	p.up.mu.Lock()
	s.Up, s.UpLate, s.UpWriteErrs, s.UpReadDrops, s.UpReadErr = p.up.lane.Stats(), p.up.late, p.up.werrs, p.up.rdrops, p.up.rerr
	p.up.mu.Unlock()
	p.down.mu.Lock()
	s.Down, s.DownLate, s.DownWriteErrs, s.DownReadDrops, s.DownReadErr = p.down.lane.Stats(), p.down.late, p.down.werrs, p.down.rdrops, p.down.rerr
	p.down.mu.Unlock()
	return s
}

// ResetQueueDelay starts both directions' queueing-delay statistics
// afresh and returns what they were.
func (p *Path) ResetQueueDelay() (up, down QueueDelay) {
	p.up.mu.Lock()
	up = p.up.lane.ResetQueueDelay()
	p.up.mu.Unlock()
	p.down.mu.Lock()
	down = p.down.lane.ResetQueueDelay()
	p.down.mu.Unlock()
	return up, down
}

// Close stops forwarding, closes both links and drops the packets in flight.
func (p *Path) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	err := errors.Join(p.a.Close(), p.b.Close()) // unblocks the readers
	for _, d := range []*pathDir{p.up, p.down} {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		d.signal()
	}
	p.wg.Wait()
	unix.Close(p.up.wake)
	unix.Close(p.down.wake)
	return err
}

func (d *pathDir) signal() {
	var one = [8]byte{1}
	unix.Write(d.wake, one[:])
}

// reader feeds what in reads to the lane, telling the sender when the
// lane's next deadline moved earlier.
func (d *pathDir) reader() {
	n := max(d.in.BatchSize(), 1)
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+max(d.in.MTU(), 1500))
	}
	for {
		k, err := d.in.Read(bufs, sizes, Headroom)
		if err != nil {
			d.mu.Lock()
			if errors.Is(err, ErrShortBuffer) || errors.Is(err, ErrPacketTooBig) {
				d.rdrops++ // the link dropped it; go on
				d.mu.Unlock()
				continue
			}
			if !d.closed && !errors.Is(err, ErrClosed) {
				d.rerr = err.Error() // this direction stops; Stats says why
			}
			d.mu.Unlock()
			return
		}
		now := d.now()
		d.mu.Lock()
		before, had := d.lane.Next()
		for i := range k {
			d.lane.Input(now, bufs[i][Headroom:Headroom+sizes[i]])
		}
		after, has := d.lane.Next()
		d.mu.Unlock()
		if has && (!had || after < before) {
			d.signal()
		}
	}
}

// sender writes packets to out when they are due. It owns its OS thread:
// the timer slack set on it would otherwise leak to other goroutines.
func (d *pathDir) sender() {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
	var batch [][]byte
	var due []time.Duration
	fds := []unix.PollFd{{Fd: int32(d.wake), Events: unix.POLLIN}}
	var drain [8]byte
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return
		}
		now := d.now()
		due = due[:0]
		batch = d.lane.Due(now, batch[:0], &due)
		next, ok := d.lane.Next()
		// Lateness is taken at the wake-up: the timer's precision, not
		// the time the writes take.
		for _, r := range due {
			d.late.add(now - r)
		}
		d.mu.Unlock()
		if len(batch) > 0 {
			_, err := d.out.Write(batch, Headroom)
			d.mu.Lock()
			if err != nil {
				d.werrs++
			}
			d.lane.Recycle(batch)
			d.mu.Unlock()
			continue
		}
		var ts *unix.Timespec
		if ok {
			t := unix.NsecToTimespec(int64(max(next-now, 0)))
			ts = &t
		}
		if _, err := unix.Ppoll(fds, ts, nil); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		unix.Read(d.wake, drain[:])
	}
}
