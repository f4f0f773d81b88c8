package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stepClock returns a clock that advances 1ms per reading from a fixed epoch.
func stepClock() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

type capturedPkt struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func readPcap(t *testing.T, r io.Reader) (*pcapgo.Reader, []capturedPkt) {
	t.Helper()
	pr, err := pcapgo.NewReader(r)
	require.NoError(t, err)
	var out []capturedPkt
	for {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return pr, out
		}
		require.NoError(t, err)
		out = append(out, capturedPkt{ci, data})
	}
}

// pcapScenario sends, through a Pcap on one end of a pipe, an IPv4
// super-packet (2500 bytes cut at 1000) and a plain IPv6 packet, and
// receives an IPv4 packet with a partial checksum (ReadGSO), an IPv6
// super-packet (ReadGSO, 3000 bytes cut at 1428) and a plain IPv4 FIN (Read).
// It returns the capture's bytes.
func pcapScenario(t *testing.T, opts PcapOptions) ([]byte, PcapStats) {
	a, b := NewPipe(1500)
	var file bytes.Buffer
	opts.Now = stepClock()
	p, err := NewPcap(a, &file, opts)
	require.NoError(t, err)

	super := tcpPkt{src: stackV4, dst: hostV4, sport: 5001, dport: 80, seq: 1000, ack: 77,
		flags: flagACK | flagPSH, window: 512, payload: patterned(2500, 1), id: 10}.build(Headroom)
	g := TCPGSO(false, 20, 1000)
	// The stack writes super-packets with the pseudo-header sum in the
	// checksum field; Segment recomputes it per segment either way.
	plain6 := tcpPkt{src: stackV6, dst: hostV6, sport: 5002, dport: 7, seq: 9, ack: 1,
		flags: flagACK, window: 100, payload: []byte("hi")}.build(Headroom)
	n, err := p.WriteGSO([][]byte{super}, []GSO{g}, Headroom)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = p.Write([][]byte{plain6}, Headroom)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// The peer receives the super-packet unsplit: capture changes nothing.
	bufs, sizes, gso := newBufs(4, MaxPacketSize+Headroom), make([]int, 4), make([]GSO, 4)
	n, err = b.ReadGSO(bufs, sizes, gso, Headroom)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	assert.Equal(t, 2540, sizes[0])
	assert.Equal(t, g, gso[0])

	partial := tcpPkt{src: hostV4, dst: stackV4, sport: 80, dport: 5001, seq: 77, ack: 3500,
		flags: flagACK, window: 1000, payload: []byte("abc")}.build(0)
	binary.BigEndian.PutUint16(partial[36:], pseudo(partial, 20)) // partial: pseudo-header sum only
	super6 := tcpPkt{src: hostV6, dst: stackV6, sport: 7, dport: 5002, seq: 1, ack: 11,
		flags: flagACK | flagFIN, window: 100, payload: patterned(3000, 9)}.build(0)
	_, err = b.WriteGSO([][]byte{partial, super6}, []GSO{TCPGSO(false, 20, 0), TCPGSO(true, 40, 1428)}, 0)
	require.NoError(t, err)
	n, err = p.ReadGSO(bufs, sizes, gso, Headroom)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	assert.True(t, gso[1].IsGSO(), "the reader still gets the super-packet")

	fin := tcpPkt{src: hostV4, dst: stackV4, sport: 80, dport: 5001, seq: 80, ack: 3500,
		flags: flagACK | flagFIN, window: 1000}.build(0)
	_, err = b.Write([][]byte{fin}, 0)
	require.NoError(t, err)
	n, err = p.Read(bufs, sizes, Headroom)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	st := p.Stats()
	require.NoError(t, p.Close())
	return file.Bytes(), st
}

func TestPcapRecordsWireSegments(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts PcapOptions
		res  gopacket.TimestampResolution
	}{
		{"nanos", PcapOptions{}, gopacket.TimestampResolutionNanosecond},
		{"micros", PcapOptions{Micro: true}, gopacket.TimestampResolutionMicrosecond},
		{"tiny buffer", PcapOptions{Buffer: 16}, gopacket.TimestampResolutionNanosecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, st := pcapScenario(t, tc.opts)
			assert.Equal(t, PcapStats{In: 5, Out: 4, SuperPackets: 2}, st)
			pr, pkts := readPcap(t, bytes.NewReader(data))
			assert.Equal(t, layers.LinkTypeRaw, pr.LinkType())
			assert.Equal(t, uint32(MaxPacketSize), pr.Snaplen())
			assert.Equal(t, tc.res, pr.Resolution())

			type want struct {
				v6         bool
				len        int
				sport      uint16
				seq        uint32
				flags      uint8
				payloadLen int
			}
			wants := []want{
				{false, 1040, 5001, 1000, flagACK, 1000},
				{false, 1040, 5001, 2000, flagACK, 1000},
				{false, 540, 5001, 3000, flagACK | flagPSH, 500},
				{true, 62, 5002, 9, flagACK, 2},
				{false, 43, 80, 77, flagACK, 3},
				{true, 1488, 7, 1, flagACK, 1428},
				{true, 1488, 7, 1429, flagACK, 1428},
				{true, 204, 7, 2857, flagACK | flagFIN, 144},
				{false, 40, 80, 80, flagACK | flagFIN, 0},
			}
			require.Len(t, pkts, len(wants))
			var prev time.Time
			for i, w := range wants {
				pk := pkts[i]
				assert.Equal(t, w.len, len(pk.data), "packet %d length", i)
				assert.Equal(t, w.len, pk.ci.Length)
				assert.Equal(t, w.len, pk.ci.CaptureLength)
				assert.True(t, tcpChecksumOK(pk.data), "packet %d checksums complete", i)
				assert.False(t, pk.ci.Timestamp.Before(prev), "timestamps never go back (segments of one super-packet share one)")
				prev = pk.ci.Timestamp
				layer := layers.LayerTypeIPv4
				if w.v6 {
					layer = layers.LayerTypeIPv6
				}
				dec := gopacket.NewPacket(pk.data, layer, gopacket.Default)
				require.Nil(t, dec.ErrorLayer(), "packet %d decodes", i)
				tl, ok := dec.TransportLayer().(*layers.TCP)
				require.True(t, ok, "packet %d is TCP", i)
				assert.Equal(t, layers.TCPPort(w.sport), tl.SrcPort, "packet %d", i)
				assert.Equal(t, w.seq, tl.Seq, "packet %d", i)
				assert.Equal(t, w.flags&flagFIN != 0, tl.FIN, "packet %d FIN", i)
				assert.Equal(t, w.flags&flagPSH != 0, tl.PSH, "packet %d PSH", i)
				assert.Equal(t, w.payloadLen, len(tl.Payload), "packet %d payload", i)
			}
			// The first timestamp is the clock's second reading (NewPcap
			// takes the first), truncated to the file's resolution.
			first := time.Date(2026, 1, 2, 3, 4, 5, 125456789, time.UTC)
			if tc.res == gopacket.TimestampResolutionMicrosecond {
				first = first.Truncate(time.Microsecond)
			}
			assert.True(t, first.Equal(pkts[0].ci.Timestamp), "got %v want %v", pkts[0].ci.Timestamp, first)
		})
	}
}

func TestPcapTcpdumpReads(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		t.Skip("tcpdump not installed")
	}
	data, _ := pcapScenario(t, PcapOptions{})
	path := filepath.Join(t.TempDir(), "x.pcap")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	out, err := exec.Command(tcpdump, "-nn", "-S", "-t", "-v", "-r", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	text := string(out)
	assert.NotContains(t, text, "incorrect", "tcpdump finds every checksum correct")
	for _, want := range []string{
		"198.18.0.2.5001 > 198.18.0.1.80: Flags [.], cksum",
		"seq 1000:2000, ack 77, win 512, length 1000",
		"seq 2000:3000, ack 77, win 512, length 1000",
		"198.18.0.2.5001 > 198.18.0.1.80: Flags [P.], cksum",
		"seq 3000:3500, ack 77, win 512, length 500",
		"2001:2::2.5002 > 2001:2::1.7: Flags [.], cksum",
		"seq 9:11, ack 1, win 100, length 2",
		"198.18.0.1.80 > 198.18.0.2.5001: Flags [.], cksum",
		"seq 77:80, ack 3500, win 1000, length 3",
		"2001:2::1.7 > 2001:2::2.5002: Flags [.], cksum",
		"seq 1:1429, ack 11, win 100, length 1428",
		"seq 1429:2857, ack 11, win 100, length 1428",
		"2001:2::1.7 > 2001:2::2.5002: Flags [F.], cksum",
		"seq 2857:3001, ack 11, win 100, length 144",
		"198.18.0.1.80 > 198.18.0.2.5001: Flags [F.], cksum",
		"seq 80, ack 3500, win 1000, length 0",
	} {
		assert.Contains(t, text, want)
	}
	assert.Equal(t, 9, strings.Count(text, "Flags ["), "%s", text)
}

func TestPcapSnaplenAndMalformed(t *testing.T) {
	var file bytes.Buffer
	p, err := NewPcap(newRec(), &file, PcapOptions{Snaplen: 48, Now: stepClock()})
	require.NoError(t, err)
	pkt := tcpPkt{src: stackV4, dst: hostV4, sport: 1, dport: 2, seq: 5, flags: flagACK, payload: patterned(100, 0)}.build(0)
	// IPv6 GSO metadata on an IPv4 packet: recorded as it came.
	_, err = p.WriteGSO([][]byte{pkt, pkt}, []GSO{TCPGSO(true, 40, 10), {}}, 0)
	require.NoError(t, err)
	assert.Equal(t, PcapStats{Out: 2, Malformed: 1}, p.Stats())
	require.NoError(t, p.Close())
	pr, pkts := readPcap(t, &file)
	assert.Equal(t, uint32(48), pr.Snaplen())
	require.Len(t, pkts, 2)
	for _, pk := range pkts {
		assert.Equal(t, 48, pk.ci.CaptureLength)
		assert.Equal(t, 140, pk.ci.Length)
		assert.Equal(t, pkt[:48], pk.data)
	}
}

// failAfter accepts n bytes and then fails every write.
type failAfter struct{ n int }

func (f *failAfter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		return 0, errors.New("disk full")
	}
	f.n -= len(b)
	return len(b), nil
}

func TestPcapWriteErrorStopsCaptureNotTraffic(t *testing.T) {
	rec := newRec()
	p, err := NewPcap(rec, &failAfter{n: 24}, PcapOptions{Buffer: 16})
	require.NoError(t, err)
	pkt := numbered(1)
	for range 3 {
		n, err := p.Write([][]byte{pkt}, 0)
		require.NoError(t, err, "the packet is still sent")
		require.Equal(t, 1, n)
	}
	assert.Equal(t, []int{1, 1, 1}, rec.numbers())
	require.ErrorContains(t, p.Err(), "disk full")
	require.ErrorContains(t, p.Close(), "disk full")
	assert.Equal(t, uint64(0), p.Stats().Out, "nothing recorded once the capture failed")

	_, err = NewPcap(rec, &failAfter{n: 0}, PcapOptions{})
	require.ErrorContains(t, err, "disk full", "a header that cannot be written is an error")
}

func TestOpenPcapFileAndConcurrentUse(t *testing.T) {
	a, b := NewPipe(1500)
	path := filepath.Join(t.TempDir(), "c.pcap")
	p, err := OpenPcap(a, path, PcapOptions{})
	require.NoError(t, err)
	assert.Equal(t, Link(a), p.Inner())
	assert.Equal(t, 1500, p.MTU())
	assert.Equal(t, a.BatchSize(), p.BatchSize())
	assert.Equal(t, a.GSOMaxSize(), p.GSOMaxSize())

	const count = 200
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // p writes, b reads
		defer wg.Done()
		for i := range count {
			p.Write([][]byte{numbered(i)}, 0)
		}
	}()
	go func() {
		defer wg.Done()
		bufs, sizes := newBufs(8, 1500), make([]int, 8)
		for got := 0; got < count; {
			n, err := b.Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			got += n
		}
	}()
	go func() { // b writes, p reads
		defer wg.Done()
		for i := range count {
			b.Write([][]byte{numbered(count + i)}, 0)
		}
	}()
	bufs, sizes := newBufs(8, 1500), make([]int, 8)
	for got := 0; got < count; {
		n, err := p.Read(bufs, sizes, 0)
		require.NoError(t, err)
		got += n
	}
	wg.Wait()
	require.NoError(t, p.Close())
	_, err = p.Read(bufs, sizes, 0)
	assert.ErrorIs(t, err, ErrClosed)

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, pkts := readPcap(t, f)
	require.Len(t, pkts, 2*count, "every packet both ways, flushed on Close")
	seen := map[int]bool{}
	for _, pk := range pkts {
		seen[numberOf(pk.data)] = true
	}
	assert.Len(t, seen, 2*count)

	_, err = OpenPcap(a, filepath.Join(t.TempDir(), "no", "such", "dir.pcap"), PcapOptions{})
	assert.Error(t, err)
}

func BenchmarkPcapWriteSuperPacket(b *testing.B) {
	pkt := tcpPkt{src: stackV4, dst: hostV4, sport: 1, dport: 2, seq: 5, flags: flagACK, payload: patterned(65000, 0)}.build(0)
	g := TCPGSO(false, 20, 1448)
	p, err := NewPcap(sinkLink{newRec()}, io.Discard, PcapOptions{})
	require.NoError(b, err)
	bufs, gso := [][]byte{pkt}, []GSO{g}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		p.WriteGSO(bufs, gso, 0)
	}
}

func newRec() *recorder { return &recorder{now: func() time.Duration { return 0 }} }

// sinkLink is a recorder that forgets what is written to it.
type sinkLink struct{ *recorder }

func (sinkLink) WriteGSO(bufs [][]byte, _ []GSO, _ int) (int, error) { return len(bufs), nil }
