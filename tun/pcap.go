package tun

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// DefaultPcapBuffer is how many bytes a Pcap holds before writing them out.
const DefaultPcapBuffer = 256 << 10

// pcapFlushEvery bounds how stale the file may get while packets flow: a
// packet recorded this long after the last flush flushes the buffer, so
// `tcpdump -r` on a running capture sees recent traffic.
const pcapFlushEvery = time.Second

// PcapOptions tunes a Pcap. The zero value is a nanosecond-resolution
// capture of whole packets with the real clock.
type PcapOptions struct {
	// Micro selects the classic microsecond pcap format instead of the
	// nanosecond one (some old readers know only the former).
	Micro bool
	// Snaplen is the most bytes of each packet recorded; 0 means
	// MaxPacketSize (whole packets).
	Snaplen int
	// Buffer is how many bytes are buffered before a write to the file;
	// 0 means DefaultPcapBuffer.
	Buffer int
	// Now returns the capture timestamp; nil means time.Now.
	Now func() time.Time
}

// PcapStats counts what a Pcap recorded.
type PcapStats struct {
	// In and Out are the packets recorded in each direction (after
	// segmentation: a super-packet counts once per segment).
	In, Out uint64
	// SuperPackets counts GSO packets that were segmented for the capture.
	SuperPackets uint64
	// Malformed counts GSO packets whose metadata did not match them; they
	// are recorded as they came.
	Malformed uint64
}

// Pcap is a Link that records every packet read from and written to the
// Link it wraps in a pcap file (LINKTYPE_RAW: bare IPv4 and IPv6 packets),
// readable by tcpdump -r, tshark and gopacket.
//
// Packets are recorded as the wire carries them: a GSO super-packet is cut
// into its MSS-sized segments with Segment (sequence numbers, IPv4 IDs,
// lengths and checksums as the kernel's segmentation would make them), and
// partial checksums are completed, so the capture shows what a tcpdump on
// the TUN device's peer would see rather than what crossed the TUN file
// descriptor. The wrapped link still gets the super-packets: capture does
// not change what is sent. Outgoing packets are recorded when handed to
// the link (like tcpdump on Linux, before the driver): a packet the link
// then fails to send is still in the capture.
//
// Output is buffered (PcapOptions.Buffer bytes, and flushed at least once
// a second while packets flow); Close flushes it. A failure to write the
// capture stops the capture, never the traffic: Err reports it and Close
// returns it. Pcap is safe for the concurrent Read and Write that Link
// allows.
type Pcap struct {
	inner Link
	now   func() time.Time
	snap  int

	mu        sync.Mutex
	bw        *bufio.Writer
	pw        *pcapgo.Writer
	file      io.Closer // closed by Close when Pcap opened it
	lastFlush time.Time
	err       error
	stats     PcapStats
	closed    bool

	// Scratch for segmenting super-packets: segBufs views slab.
	slab     []byte
	segBufs  [][]byte
	segSizes []int
}

// NewPcap wraps inner, writing the capture to w (which Close flushes but
// does not close). It writes the pcap file header at once.
func NewPcap(inner Link, w io.Writer, opts PcapOptions) (*Pcap, error) {
	if opts.Snaplen <= 0 || opts.Snaplen > MaxPacketSize {
		opts.Snaplen = MaxPacketSize
	}
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultPcapBuffer
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Pcap{inner: inner, now: opts.Now, snap: opts.Snaplen, bw: bufio.NewWriterSize(w, opts.Buffer)}
	if opts.Micro {
		p.pw = pcapgo.NewWriter(p.bw)
	} else {
		p.pw = pcapgo.NewWriterNanos(p.bw)
	}
	if err := p.pw.WriteFileHeader(uint32(opts.Snaplen), layers.LinkTypeRaw); err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	if err := p.bw.Flush(); err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	p.lastFlush = p.now()
	return p, nil
}

// OpenPcap is NewPcap writing to a new file at path (truncated if it
// exists); Close closes the file.
func OpenPcap(inner Link, path string, opts PcapOptions) (*Pcap, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	p, err := NewPcap(inner, f, opts)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	p.file = f
	return p, nil
}

// Inner returns the wrapped link.
func (p *Pcap) Inner() Link { return p.inner }

// Stats returns the counters.
func (p *Pcap) Stats() PcapStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Err returns the error that stopped the capture, if any.
func (p *Pcap) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Flush writes out what is buffered.
func (p *Pcap) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushLocked()
	return p.err
}

func (p *Pcap) flushLocked() {
	if p.err != nil {
		return
	}
	if err := p.bw.Flush(); err != nil {
		p.err = fmt.Errorf("pcap: %w", err)
	}
	p.lastFlush = p.now()
}

// Read implements Link, recording the packets read.
func (p *Pcap) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := p.inner.Read(bufs, sizes, offset)
	if n > 0 {
		p.mu.Lock()
		ts := p.now()
		for i := range n {
			p.recordLocked(ts, bufs[i][offset:offset+sizes[i]], GSO{}, false)
		}
		p.mu.Unlock()
	}
	return n, err
}

// ReadGSO implements Link, recording the packets read (super-packets as
// their segments).
func (p *Pcap) ReadGSO(bufs [][]byte, sizes []int, gso []GSO, offset int) (int, error) {
	n, err := p.inner.ReadGSO(bufs, sizes, gso, offset)
	if n > 0 {
		p.mu.Lock()
		ts := p.now()
		for i := range n {
			p.recordLocked(ts, bufs[i][offset:offset+sizes[i]], gso[i], false)
		}
		p.mu.Unlock()
	}
	return n, err
}

// Write implements Link, recording the packets before the link sees them
// (it may scribble on them).
func (p *Pcap) Write(bufs [][]byte, offset int) (int, error) {
	p.recordBatch(bufs, nil, offset)
	return p.inner.Write(bufs, offset)
}

// WriteGSO implements Link, recording the packets (super-packets as their
// segments) before the link sees them.
func (p *Pcap) WriteGSO(bufs [][]byte, gso []GSO, offset int) (int, error) {
	p.recordBatch(bufs, gso, offset)
	return p.inner.WriteGSO(bufs, gso, offset)
}

func (p *Pcap) recordBatch(bufs [][]byte, gso []GSO, offset int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.now()
	for i, b := range bufs {
		var g GSO
		if gso != nil {
			g = gso[i]
		}
		p.recordLocked(ts, b[offset:], g, true)
	}
}

// recordLocked writes one packet, segmenting it first if it is a
// super-packet or completing its checksum if that is partial.
func (p *Pcap) recordLocked(ts time.Time, pkt []byte, g GSO, out bool) {
	if p.err != nil || p.closed {
		return
	}
	if !g.IsGSO() && !g.NeedsCsum {
		p.writeLocked(ts, pkt, out)
		return
	}
	n, err := p.segmentLocked(pkt, g)
	if err != nil {
		p.stats.Malformed++
		p.writeLocked(ts, pkt, out)
		return
	}
	if g.IsGSO() {
		p.stats.SuperPackets++
	}
	for i := range n {
		p.writeLocked(ts, p.segBufs[i][:p.segSizes[i]], out)
	}
}

// segmentLocked cuts pkt into the scratch buffers, growing them as needed
// (after warm-up, capture allocates nothing).
func (p *Pcap) segmentLocked(pkt []byte, g GSO) (int, error) {
	hdrLen, err := g.check(pkt)
	if err != nil {
		return 0, err
	}
	segs, each := 1, len(pkt)
	if g.IsGSO() {
		segs = g.Segments(len(pkt), hdrLen)
		each = hdrLen + int(g.Size)
	}
	if need := segs * each; len(p.slab) < need {
		p.slab = make([]byte, need)
	}
	if cap(p.segBufs) < segs {
		p.segBufs = make([][]byte, segs)
		p.segSizes = make([]int, segs)
	}
	bufs := p.segBufs[:segs]
	for i := range bufs {
		bufs[i] = p.slab[i*each : (i+1)*each]
	}
	return Segment(pkt, g, bufs, p.segSizes[:segs], 0)
}

func (p *Pcap) writeLocked(ts time.Time, pkt []byte, out bool) {
	capLen := min(len(pkt), p.snap)
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: capLen, Length: len(pkt)}
	if err := p.pw.WritePacket(ci, pkt[:capLen]); err != nil {
		p.err = fmt.Errorf("pcap: %w", err)
		return
	}
	if out {
		p.stats.Out++
	} else {
		p.stats.In++
	}
	if ts.Sub(p.lastFlush) >= pcapFlushEvery {
		p.flushLocked()
	}
}

// GSOMaxSize implements Link: that of the wrapped link.
func (p *Pcap) GSOMaxSize() int { return p.inner.GSOMaxSize() }

// MTU implements Link: that of the wrapped link.
func (p *Pcap) MTU() int { return p.inner.MTU() }

// BatchSize implements Link: that of the wrapped link.
func (p *Pcap) BatchSize() int { return p.inner.BatchSize() }

// Close closes the wrapped link, then flushes the capture (and closes its
// file when OpenPcap made it). It returns the link's error, else the
// capture's.
func (p *Pcap) Close() error {
	lerr := p.inner.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return lerr
	}
	p.closed = true
	p.flushLocked()
	if p.file != nil {
		if err := p.file.Close(); err != nil && p.err == nil {
			p.err = fmt.Errorf("pcap: %w", err)
		}
	}
	if lerr != nil {
		return lerr
	}
	return p.err
}
