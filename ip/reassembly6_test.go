package ip

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// frag6 builds one IPv6 fragment carrying payload[off:off+n] with
// identification id; dstopts puts an 8-byte Destination Options header
// before the Fragment header (in the unfragmentable part).
func frag6(t testing.TB, id uint32, payload []byte, off, n int, more, dstopts bool) (IPv6, IPv6Info) {
	t.Helper()
	ext := 0
	if dstopts {
		ext = 8
	}
	b := make([]byte, IPv6HeaderLen+ext+IPv6FragmentHeaderLen+n)
	next := ProtocolFragment
	if dstopts {
		next = ProtocolDstOpts
		b[40], b[41] = ProtocolFragment, 0
		b[42], b[43] = 1, 4 // PadN filling the header
	}
	_, err := BuildIPv6(b, &IPv6Fields{NextHeader: next, HopLimit: 64, Src: testSrc6, Dst: testDst6})
	require.NoError(t, err)
	require.NoError(t, PutIPv6FragmentHeader(b[40+ext:], ProtocolUDP, uint16(off), more, id))
	copy(b[40+ext+8:], payload[off:off+n])
	p, info, err := ParseIPv6(b)
	require.NoError(t, err)
	return p, info
}

// want6 is the packet the fragments of payload reassemble to.
func want6(t testing.TB, payload []byte, dstopts bool) []byte {
	ext := 0
	next := ProtocolUDP
	if dstopts {
		ext, next = 8, ProtocolDstOpts
	}
	w := make([]byte, IPv6HeaderLen+ext+len(payload))
	_, err := BuildIPv6(w, &IPv6Fields{NextHeader: next, HopLimit: 64, Src: testSrc6, Dst: testDst6})
	require.NoError(t, err)
	if dstopts {
		w[40], w[41], w[42], w[43] = ProtocolUDP, 0, 1, 4
	}
	copy(w[40+ext:], payload)
	return w
}

func TestReassembleIPv6(t *testing.T) {
	payload := datagramPayload(5000)
	for _, dstopts := range []bool{false, true} {
		for _, order := range []string{"in order", "reversed", "shuffled"} {
			r := NewReassembler(ReassemblyConfig{})
			type f6 struct {
				p    IPv6
				info IPv6Info
			}
			var fs []f6
			for off := 0; off < len(payload); off += 1232 {
				n := min(1232, len(payload)-off)
				p, info := frag6(t, 0xdeadbeef, payload, off, n, off+n < len(payload), dstopts)
				fs = append(fs, f6{p, info})
			}
			switch order {
			case "reversed":
				for i, j := 0, len(fs)-1; i < j; i, j = i+1, j-1 {
					fs[i], fs[j] = fs[j], fs[i]
				}
			case "shuffled":
				rand.New(rand.NewPCG(1, 2)).Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
			}
			var whole []byte
			for i, f := range fs {
				w, done, err := r.ReassembleIPv6(0, f.p, f.info)
				require.NoError(t, err)
				require.Equal(t, i == len(fs)-1, done)
				whole = w
			}
			require.Equal(t, want6(t, payload, dstopts), whole, "%s dstopts=%v", order, dstopts)
			_, info, err := ParseIPv6(whole)
			require.NoError(t, err)
			require.Equal(t, ProtocolUDP, info.Protocol)
			require.False(t, info.HasFragment)
			require.Equal(t, 0, r.InFlight())
			require.Equal(t, 0, r.MemoryUsed())
		}
	}
}

// TestReassembleIPv6EightByteFragments: the smallest legal fragments.
func TestReassembleIPv6EightByteFragments(t *testing.T) {
	payload := datagramPayload(60)
	r := NewReassembler(ReassemblyConfig{})
	var whole []byte
	for off := 0; off < len(payload); off += 8 {
		n := min(8, len(payload)-off)
		p, info := frag6(t, 7, payload, off, n, off+n < len(payload), false)
		w, done, err := r.ReassembleIPv6(0, p, info)
		require.NoError(t, err)
		require.Equal(t, off+n == len(payload), done)
		whole = w
	}
	require.Equal(t, want6(t, payload, false), whole)
}

// TestReassembleIPv6Overlap: RFC 5722 — an overlap drops the datagram and
// every later fragment of it.
func TestReassembleIPv6Overlap(t *testing.T) {
	payload := datagramPayload(3000)
	r := NewReassembler(ReassemblyConfig{})
	p, info := frag6(t, 1, payload, 0, 1000, true, false)
	_, _, err := r.ReassembleIPv6(0, p, info)
	require.NoError(t, err)
	p, info = frag6(t, 1, payload, 992, 1000, true, false)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.Equal(t, DropFragOverlap, ReasonOf(err))
	p, info = frag6(t, 1, payload, 1000, 2000, false, false)
	_, done, err := r.ReassembleIPv6(0, p, info)
	require.False(t, done)
	require.Equal(t, DropFragDiscarded, ReasonOf(err))
	// A duplicate is not an overlap.
	p, info = frag6(t, 2, payload, 0, 1000, true, false)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.NoError(t, err)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.Equal(t, DropFragDuplicate, ReasonOf(err))
	// IPv4 and IPv6 identifications live apart: the same source, id and
	// data over IPv4 do not touch the IPv6 datagram.
	require.Equal(t, 2, r.InFlight())
}

func TestReassembleIPv6Bad(t *testing.T) {
	payload := datagramPayload(70000)
	r := NewReassembler(ReassemblyConfig{})
	p, info := frag6(t, 1, payload, 0, 1001, true, false)
	_, _, err := r.ReassembleIPv6(0, p, info)
	require.Equal(t, DropFragBad, ReasonOf(err), "non-last not a multiple of 8")
	p, info = frag6(t, 2, payload, 65528, 16, false, false)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.Equal(t, DropFragTooBig, ReasonOf(err), "payload beyond 65535")
	p, info = frag6(t, 3, payload, 65528, 8, false, true)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.Equal(t, DropFragTooBig, ReasonOf(err), "unfragmentable part counts in the payload length")
}

// TestReassembleTimeoutFirstFragment: a datagram that times out after its
// first fragment came hands that fragment to OnTimeout (for ICMP Time
// Exceeded); one without its first fragment does not.
func TestReassembleTimeoutFirstFragment(t *testing.T) {
	payload := datagramPayload(3000)
	r := NewReassembler(ReassemblyConfig{Timeout: 60 * time.Second})
	var got [][]byte
	r.OnTimeout(func(first []byte) { got = append(got, append([]byte(nil), first...)) })
	first, info := frag6(t, 9, payload, 0, 1000, true, false)
	_, _, err := r.ReassembleIPv6(0, first, info)
	require.NoError(t, err)
	p, info := frag6(t, 10, payload, 1000, 1000, true, false)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.NoError(t, err)
	f4 := frag(t, 11, payload, 0, 1000, true)
	_, _, err = r.Reassemble(0, f4)
	require.NoError(t, err)
	require.Equal(t, 0, r.Expire(59*time.Second))
	require.Equal(t, 3, r.Expire(60*time.Second))
	require.Equal(t, [][]byte{[]byte(first), []byte(f4)}, got)
	require.Equal(t, uint64(3), r.Stats().Timeout)
	require.Equal(t, 0, r.MemoryUsed())
}

// TestReassembleTCPInEightByteFragments: RFC 791 lets a first fragment be
// 8 bytes; a host reassembles it (RFC 1858's rule is for filters).
func TestReassembleTCPInEightByteFragments(t *testing.T) {
	payload := datagramPayload(40)
	r := NewReassembler(ReassemblyConfig{})
	var whole []byte
	for off := 0; off < len(payload); off += 8 {
		f := frag(t, 3, payload, off, 8, off+8 < len(payload))
		f[9] = ProtocolTCP
		f.UpdateChecksum()
		w, done, err := r.Reassemble(0, f)
		require.NoError(t, err)
		whole = w
		require.Equal(t, off+8 == len(payload), done)
	}
	require.Equal(t, payload, []byte(IPv4(whole).Payload()))
}

// TestReassembleIPv6HeaderChain: a first fragment must hold the whole
// header chain through the upper-layer header (RFC 8200 §4.5, RFC 7112);
// later fragments may be as small as 8 bytes.
func TestReassembleIPv6HeaderChain(t *testing.T) {
	r := NewReassembler(ReassemblyConfig{})
	b := make([]byte, 48+8)
	_, err := BuildIPv6(b, &IPv6Fields{NextHeader: ProtocolFragment, HopLimit: 64, Src: testSrc6, Dst: testDst6})
	require.NoError(t, err)
	require.NoError(t, PutIPv6FragmentHeader(b[40:], ProtocolDstOpts, 0, true, 1))
	b[48], b[49] = ProtocolUDP, 1 // a 16-byte Destination Options header, cut at 8
	p, info, err := ParseIPv6(b)
	require.NoError(t, err)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.Equal(t, DropFragHeaderChain, ReasonOf(err))
	// TCP's header must be whole: 16 of its 20 bytes are not enough.
	b = make([]byte, 48+16)
	_, err = BuildIPv6(b, &IPv6Fields{NextHeader: ProtocolFragment, HopLimit: 64, Src: testSrc6, Dst: testDst6})
	require.NoError(t, err)
	require.NoError(t, PutIPv6FragmentHeader(b[40:], ProtocolTCP, 0, true, 2))
	p, info, err = ParseIPv6(b)
	require.NoError(t, err)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.Equal(t, DropFragHeaderChain, ReasonOf(err))
	// UDP's 8 bytes are.
	b = make([]byte, 48+8)
	_, err = BuildIPv6(b, &IPv6Fields{NextHeader: ProtocolFragment, HopLimit: 64, Src: testSrc6, Dst: testDst6})
	require.NoError(t, err)
	require.NoError(t, PutIPv6FragmentHeader(b[40:], ProtocolUDP, 0, true, 3))
	p, info, err = ParseIPv6(b)
	require.NoError(t, err)
	_, _, err = r.ReassembleIPv6(0, p, info)
	require.NoError(t, err)
	require.Equal(t, 1, r.InFlight())
}
