package ip

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// datagramPayload returns n bytes of recognisable payload.
func datagramPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*31 + i>>8)
	}
	return p
}

// frag builds one fragment of a datagram with the given id carrying
// payload[off:off+n] (n bytes of data at byte offset off).
func frag(t testing.TB, id uint16, payload []byte, off, n int, more bool) IPv4 {
	b := make([]byte, 20+n)
	copy(b[20:], payload[off:off+n])
	f := &IPv4Fields{ID: id, TTL: 64, Protocol: ProtocolUDP, Src: testSrc4, Dst: testDst4, FragmentOffset: uint16(off)}
	if more {
		f.Flags = IPv4FlagMoreFragments
	}
	p, err := BuildIPv4(b, f)
	require.NoError(t, err)
	return p
}

// split cuts payload into fragments of size (a multiple of 8).
func split(t testing.TB, id uint16, payload []byte, size int) []IPv4 {
	var out []IPv4
	for off := 0; off < len(payload); off += size {
		n := min(size, len(payload)-off)
		out = append(out, frag(t, id, payload, off, n, off+n < len(payload)))
	}
	return out
}

// wantWhole checks a reassembled datagram byte for byte.
func wantWhole(t *testing.T, whole []byte, id uint16, payload []byte) {
	t.Helper()
	want := make([]byte, 20+len(payload))
	copy(want[20:], payload)
	_, err := BuildIPv4(want, &IPv4Fields{ID: id, TTL: 64, Protocol: ProtocolUDP, Src: testSrc4, Dst: testDst4})
	require.NoError(t, err)
	require.Equal(t, want, whole)
	_, err = ParseIPv4(whole)
	require.NoError(t, err)
}

func feed(t *testing.T, r *Reassembler, now time.Duration, frags []IPv4) ([]byte, error) {
	t.Helper()
	for i, f := range frags {
		whole, done, err := r.Reassemble(now, f)
		if err != nil {
			return nil, err
		}
		if done {
			require.Equal(t, len(frags)-1, i, "completed early")
			return whole, nil
		}
	}
	return nil, nil
}

func TestReassemblyOrders(t *testing.T) {
	payload := datagramPayload(5000)
	rng := rand.New(rand.NewPCG(13, 14))
	for _, tt := range []struct {
		name  string
		order func([]IPv4) []IPv4
	}{
		{"in order", func(f []IPv4) []IPv4 { return f }},
		{"reverse", func(f []IPv4) []IPv4 {
			for i, j := 0, len(f)-1; i < j; i, j = i+1, j-1 {
				f[i], f[j] = f[j], f[i]
			}
			return f
		}},
		{"last first", func(f []IPv4) []IPv4 { return append([]IPv4{f[len(f)-1]}, f[:len(f)-1]...) }},
		{"random", func(f []IPv4) []IPv4 { rng.Shuffle(len(f), func(i, j int) { f[i], f[j] = f[j], f[i] }); return f }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReassembler(ReassemblyConfig{})
			whole, err := feed(t, r, 0, tt.order(split(t, 42, payload, 1480)))
			require.NoError(t, err)
			wantWhole(t, whole, 42, payload)
			require.Equal(t, 0, r.InFlight())
			require.Equal(t, 0, r.MemoryUsed())
			s := r.Stats()
			require.Equal(t, uint64(4), s.Fragments)
			require.Equal(t, uint64(1), s.Reassembled)
		})
	}
	t.Run("random sizes and orders", func(t *testing.T) {
		r := NewReassembler(ReassemblyConfig{})
		for i := 0; i < 300; i++ {
			n := 1 + rng.IntN(65535-20)
			p := datagramPayload(n)
			size := 8 * (1 + rng.IntN(400))
			f := split(t, uint16(i), p, size)
			rng.Shuffle(len(f), func(i, j int) { f[i], f[j] = f[j], f[i] })
			if len(f) == 1 {
				continue // not a fragment
			}
			if len(f) > DefaultReassemblyMaxFragments {
				continue
			}
			whole, err := feed(t, r, time.Duration(i), f)
			require.NoError(t, err)
			wantWhole(t, whole, uint16(i), p)
		}
		require.Equal(t, 0, r.InFlight())
		require.Equal(t, 0, r.MemoryUsed())
	})
}

func TestReassemblyNotFragment(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{})
	p := IPv4(validIPv4())
	whole, done, err := r.Reassemble(0, p)
	require.NoError(t, err)
	require.True(t, done)
	require.Equal(t, []byte(p), whole)
	require.Equal(t, uint64(0), r.Stats().Fragments)
	_, _, err = r.Reassemble(0, p[:10])
	require.Equal(t, DropTooShort, ReasonOf(err))
	bad := append([]byte(nil), p...)
	bad[0] = 0x4f
	_, _, err = r.Reassemble(0, bad)
	require.Equal(t, DropBadHeaderLength, ReasonOf(err))
}

func TestReassemblyOverlapDropsDatagram(t *testing.T) {
	payload := datagramPayload(3000)
	for _, tt := range []struct {
		name   string
		frags  func() []IPv4
		reason DropReason
	}{
		{"partial overlap", func() []IPv4 {
			return []IPv4{frag(t, 1, payload, 0, 1000, true), frag(t, 1, payload, 992, 1000, true)}
		}, DropFragOverlap},
		{"contained", func() []IPv4 {
			return []IPv4{frag(t, 1, payload, 0, 1000, true), frag(t, 1, payload, 8, 16, true)}
		}, DropFragOverlap},
		{"overlap from before", func() []IPv4 {
			return []IPv4{frag(t, 1, payload, 1000, 1000, true), frag(t, 1, payload, 8, 1000, true)}
		}, DropFragOverlap},
		{"same range different data", func() []IPv4 {
			f := frag(t, 1, payload, 0, 1000, true)
			g := frag(t, 1, payload, 0, 1000, true)
			g[30] ^= 0xff
			return []IPv4{f, g}
		}, DropFragOverlap},
		{"non-last not multiple of 8", func() []IPv4 {
			return []IPv4{frag(t, 1, payload, 0, 1000, true), frag(t, 1, payload, 1000, 1001, true)}
		}, DropFragBad},
		{"empty non-last", func() []IPv4 {
			return []IPv4{frag(t, 1, payload, 0, 1000, true), frag(t, 1, payload, 1000, 0, true)}
		}, DropFragBad},
		{"two different ends", func() []IPv4 {
			return []IPv4{frag(t, 1, payload, 1000, 1000, false), frag(t, 1, payload, 2000, 8, false)}
		}, DropFragBad},
		{"data past the end", func() []IPv4 {
			return []IPv4{frag(t, 1, payload, 2000, 1000, true), frag(t, 1, payload, 1000, 8, false)}
		}, DropFragBad},
		{"more after the end", func() []IPv4 {
			return []IPv4{frag(t, 1, payload, 1000, 8, false), frag(t, 1, payload, 2000, 1000, true)}
		}, DropFragBad},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReassembler(ReassemblyConfig{})
			_, err := feed(t, r, 0, tt.frags())
			require.Equal(t, tt.reason, ReasonOf(err))
			require.Equal(t, 1, r.InFlight(), "dead marker kept")
			require.Equal(t, datagramOverhead, r.MemoryUsed(), "data freed")
			// RFC 5722 §4: the rest of the datagram is discarded too.
			fs := tt.frags()
			late := frag(t, 1, payload, 2000, 1000, false)
			late[9] = fs[0].Protocol()
			late.UpdateChecksum()
			_, done, err := r.Reassemble(0, late)
			require.False(t, done)
			require.Equal(t, DropFragDiscarded, ReasonOf(err))
			s := r.Stats()
			require.Equal(t, uint64(1), s.Discarded)
			require.Equal(t, uint64(1), s.Overlap+s.Bad)
			// The marker expires with the datagram's deadline, not counted as a timeout.
			require.Equal(t, 0, r.Expire(DefaultReassemblyTimeout))
			require.Equal(t, 0, r.InFlight())
			require.Equal(t, 0, r.MemoryUsed())
			require.Equal(t, uint64(0), r.Stats().Timeout)
		})
	}
}

func TestReassemblyDuplicate(t *testing.T) {
	payload := datagramPayload(3000)
	r := NewReassembler(ReassemblyConfig{})
	f := split(t, 5, payload, 1000)
	_, done, err := r.Reassemble(0, f[0])
	require.NoError(t, err)
	require.False(t, done)
	_, _, err = r.Reassemble(0, f[0])
	require.Equal(t, DropFragDuplicate, ReasonOf(err))
	whole, err := feed(t, r, 0, f[1:])
	require.NoError(t, err)
	wantWhole(t, whole, 5, payload)
	require.Equal(t, uint64(1), r.Stats().Duplicate)
}

func TestReassemblyTooBig(t *testing.T) {
	payload := datagramPayload(65536)
	r := NewReassembler(ReassemblyConfig{})
	// Offset 65528 + 8 bytes = 65536 > 65515: ping of death.
	b := make([]byte, 28)
	_, err := BuildIPv4(b, &IPv4Fields{ID: 3, TTL: 1, Protocol: ProtocolUDP, Src: testSrc4, Dst: testDst4, FragmentOffset: 65528})
	require.NoError(t, err)
	_, _, err = r.Reassemble(0, b)
	require.Equal(t, DropFragTooBig, ReasonOf(err))
	require.Equal(t, uint64(1), r.Stats().TooBig)

	// Each fragment fits, but with the first fragment's 60-byte header the
	// datagram is 60 + 65480 = 65540 bytes: detected on completion.
	r = NewReassembler(ReassemblyConfig{})
	_, _, err = r.Reassemble(0, frag(t, 4, payload, 65472, 8, false))
	require.NoError(t, err)
	first := make([]byte, 60+65472)
	copy(first[60:], payload)
	_, err = BuildIPv4(first[:65532], &IPv4Fields{ID: 4, TTL: 64, Protocol: ProtocolUDP, Src: testSrc4, Dst: testDst4, Flags: IPv4FlagMoreFragments, Options: make([]byte, 40)})
	require.NoError(t, err)
	_, done, err := r.Reassemble(0, first[:65532])
	require.False(t, done)
	require.Equal(t, DropFragTooBig, ReasonOf(err))
	require.Equal(t, uint64(1), r.Stats().TooBig)
	require.Equal(t, datagramOverhead, r.MemoryUsed())
}

func TestReassemblyTimeout(t *testing.T) {
	payload := datagramPayload(3000)
	r := NewReassembler(ReassemblyConfig{Timeout: 10 * time.Second})
	f := split(t, 9, payload, 1000)
	_, _, err := r.Reassemble(time.Second, f[0])
	require.NoError(t, err)
	d, ok := r.NextDeadline()
	require.True(t, ok)
	require.Equal(t, 11*time.Second, d)
	require.Equal(t, 0, r.Expire(11*time.Second-1))
	require.Equal(t, 1, r.InFlight())
	require.Equal(t, 1, r.Expire(11*time.Second))
	require.Equal(t, 0, r.InFlight())
	require.Equal(t, 0, r.MemoryUsed())
	require.Equal(t, uint64(1), r.Stats().Timeout)
	_, ok = r.NextDeadline()
	require.False(t, ok)

	// Late fragments start a new datagram, which completes if all come in.
	whole, err := feed(t, r, 12*time.Second, f)
	require.NoError(t, err)
	wantWhole(t, whole, 9, payload)

	// Reassemble expires lazily too.
	_, _, err = r.Reassemble(20*time.Second, f[0])
	require.NoError(t, err)
	_, _, err = r.Reassemble(31*time.Second, f[1])
	require.NoError(t, err)
	require.Equal(t, uint64(2), r.Stats().Timeout)
	require.Equal(t, 1, r.InFlight())
}

func TestReassemblyMemoryCap(t *testing.T) {
	payload := datagramPayload(3000)
	limit := 3 * (1000 + fragOverhead + datagramOverhead + 20)
	r := NewReassembler(ReassemblyConfig{MemoryLimit: limit})
	for id := uint16(0); id < 3; id++ {
		_, _, err := r.Reassemble(0, frag(t, id, payload, 0, 1000, true))
		require.NoError(t, err)
	}
	require.Equal(t, limit, r.MemoryUsed())
	// A fourth datagram is refused.
	_, _, err := r.Reassemble(0, frag(t, 3, payload, 0, 1000, true))
	require.Equal(t, DropFragMemory, ReasonOf(err))
	require.Equal(t, 3, r.InFlight())
	// A further fragment of datagram 0 is refused and frees datagram 0,
	// which can no longer complete.
	_, _, err = r.Reassemble(0, frag(t, 0, payload, 1000, 1000, true))
	require.Equal(t, DropFragMemory, ReasonOf(err))
	require.Equal(t, 2, r.InFlight())
	require.Equal(t, uint64(2), r.Stats().Memory)
	// Now datagram 3 fits.
	_, _, err = r.Reassemble(0, frag(t, 3, payload, 0, 1000, true))
	require.NoError(t, err)
}

func TestReassemblyMaxDatagramsEvictsOldest(t *testing.T) {
	payload := datagramPayload(3000)
	r := NewReassembler(ReassemblyConfig{MaxDatagrams: 2})
	for id := uint16(0); id < 3; id++ {
		_, _, err := r.Reassemble(time.Duration(id), frag(t, id, payload, 0, 1000, true))
		require.NoError(t, err)
	}
	require.Equal(t, 2, r.InFlight())
	require.Equal(t, uint64(1), r.Stats().Evicted)
	// Datagram 0 was evicted: its last fragment alone does not complete it.
	_, done, err := r.Reassemble(3, frag(t, 0, payload, 1000, 2000, false))
	require.NoError(t, err)
	require.False(t, done)
	// Datagram 2 survives and completes.
	whole, err := feed(t, r, 4, []IPv4{frag(t, 2, payload, 1000, 2000, false)})
	require.NoError(t, err)
	wantWhole(t, whole, 2, payload)
}

func TestReassemblyMaxFragments(t *testing.T) {
	payload := datagramPayload(3000)
	r := NewReassembler(ReassemblyConfig{MaxFragments: 4})
	f := split(t, 1, payload, 8)
	_, err := feed(t, r, 0, f[:5])
	require.Equal(t, DropFragTooMany, ReasonOf(err))
	require.Equal(t, uint64(1), r.Stats().TooMany)
	_, _, err = r.Reassemble(0, f[6])
	require.Equal(t, DropFragDiscarded, ReasonOf(err))
}

func TestReassemblyKeepsHeaderAndDF(t *testing.T) {
	payload := datagramPayload(2000)
	r := NewReassembler(ReassemblyConfig{})
	first := make([]byte, 24+1000)
	copy(first[24:], payload)
	_, err := BuildIPv4(first, &IPv4Fields{ID: 8, TTL: 64, Protocol: ProtocolUDP, Src: testSrc4, Dst: testDst4,
		Flags: IPv4FlagMoreFragments, Options: []byte{1, 1, 1, 0}})
	require.NoError(t, err)
	_, _, err = r.Reassemble(0, frag(t, 8, payload, 1000, 1000, false))
	require.NoError(t, err)
	whole, done, err := r.Reassemble(0, first)
	require.NoError(t, err)
	require.True(t, done)
	p, err := ParseIPv4(whole)
	require.NoError(t, err)
	require.Equal(t, []byte{1, 1, 1, 0}, p.Options())
	require.Equal(t, payload, p.Payload())
	require.False(t, p.IsFragment())
	require.Equal(t, uint16(2024), p.TotalLength())
}

func BenchmarkReassemble(b *testing.B) {
	payload := datagramPayload(8000)
	f := split(b, 1, payload, 1480)
	r := NewReassembler(ReassemblyConfig{})
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		for _, x := range f {
			if _, _, err := r.Reassemble(0, x); err != nil {
				b.Fatal(err)
			}
		}
	}
}
