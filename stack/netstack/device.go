package netstack

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"

	wgtun "golang.zx2c4.com/wireguard/tun"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun"
)

// batchSize is what the device reports as BatchSize: wireguard-go reads
// and writes up to this many packets per call, and one super-packet of the
// stack comes out of Read as up to this many segments.
const batchSize = 128

// pipeQueue is how many packets (super-packets towards wireguard-go) each
// direction of the in-memory link holds before its writer blocks.
const pipeQueue = 128

// netTUN is the tun.Device wireguard-go drives: the far end of an in-memory
// tun.Pipe whose near end is the stack's link. Read hands wireguard-go the
// stack's output, super-packets cut into MTU-sized packets with full
// checksums; Write feeds it the packets wireguard-go decrypted.
type netTUN struct {
	end    *tun.PipeEnd // wireguard-go's end of the pipe
	stack  *stack.Stack
	mtu    int
	events chan wgtun.Event

	closeOnce sync.Once

	// Drops of packets written by wireguard-go, by reason.
	dropTooBig, dropBadVersion atomic.Uint64
}

var _ wgtun.Device = (*netTUN)(nil)

// stackLink is the stack's end of the pipe. It caps super-packets so that
// one of them, cut at the link's MSS, fits a single wireguard-go read of
// batchSize buffers.
type stackLink struct {
	*tun.PipeEnd
	gsoMax int
}

// GSOMaxSize implements tun.Link.
func (l stackLink) GSOMaxSize() int { return l.gsoMax }

// newStackLink returns the stack's end of a new pipe of the given MTU, and
// wireguard-go's end.
func newStackLink(mtu int) (stackLink, *tun.PipeEnd) {
	near, far := tun.NewPipeQueue(mtu, pipeQueue)
	// The smallest MSS of the link: an IPv6 header, a TCP header and a
	// full complement of TCP options.
	mss := mtu - 40 - 60
	gsoMax := min(tun.MaxPacketSize, (batchSize-1)*max(mss, 1))
	if gsoMax < mtu {
		gsoMax = 0
	}
	return stackLink{PipeEnd: near, gsoMax: gsoMax}, far
}

// File implements tun.Device: there is no file behind an in-memory device.
func (d *netTUN) File() *os.File { return nil }

// Name implements tun.Device.
func (d *netTUN) Name() (string, error) { return "ustack", nil }

// MTU implements tun.Device.
func (d *netTUN) MTU() (int, error) { return d.mtu, nil }

// Events implements tun.Device: EventUp once, closed by Close.
func (d *netTUN) Events() <-chan wgtun.Event { return d.events }

// BatchSize implements tun.Device.
func (d *netTUN) BatchSize() int { return batchSize }

// Read implements tun.Device: it blocks until the stack has sent at least
// one packet, then returns as many as fit bufs. After Close it returns
// os.ErrClosed, which tells wireguard-go to stop reading.
func (d *netTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return d.end.Read(bufs, sizes, offset)
}

// Write implements tun.Device: the packets go to the stack, in order. It
// blocks while the stack's input queue is full (backpressure, as a kernel
// TUN's socket buffer would not give). A packet larger than the MTU or of
// an unknown IP version is dropped and counted, without failing the rest
// of the batch (wireguard-go would drop the whole batch on an error).
func (d *netTUN) Write(bufs [][]byte, offset int) (int, error) {
	done := 0
	start := 0
	for i := 0; i <= len(bufs); i++ {
		bad := false
		if i < len(bufs) {
			p := bufs[i][offset:]
			switch {
			case len(p) == 0:
				bad = true
			case p[0]>>4 != 4 && p[0]>>4 != 6:
				d.dropBadVersion.Add(1)
				bad = true
			case len(p) > d.mtu:
				d.dropTooBig.Add(1)
				bad = true
			}
			if !bad {
				continue
			}
		}
		if i > start {
			n, err := d.end.Write(bufs[start:i], offset)
			done += n
			if err != nil {
				if errors.Is(err, tun.ErrClosed) {
					return done, os.ErrClosed
				}
				return done, err
			}
		}
		if bad {
			done++
		}
		start = i + 1
	}
	return done, nil
}

// Close implements tun.Device. The pipe closes first, so that no read or
// write of either side stays blocked on it (packets in flight are
// dropped), then the stack shuts down (its goroutines exit before Close
// returns) and the event channel closes. Close is idempotent.
func (d *netTUN) Close() error {
	var err error
	d.closeOnce.Do(func() {
		_ = d.end.Close()
		err = d.stack.Close()
		close(d.events)
	})
	return err
}
