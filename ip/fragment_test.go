package ip

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFragmentIPv4 cuts a 3028-byte datagram with options at a 1500-byte
// MTU: three fragments at offsets 0, 1472 and 2944 (multiples of 8), MF on
// all but the last, one ID, valid checksums; the first keeps every option,
// the later ones only the copied one; and the reassembler makes the
// original payload of them.
func TestFragmentIPv4(t *testing.T) {
	payload := make([]byte, 3008-12)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	opts := []byte{
		0x82, 4, 0xaa, 0xbb, // copied (a security-class option)
		7, 7, 4, 0, 0, 0, 0, // Record Route: not copied
		0, // End of Option List
	}
	f := IPv4Fields{ID: 4242, TTL: 64, Protocol: ProtocolICMPv4, Options: opts,
		Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1")}
	pkt := make([]byte, f.HeaderLen()+len(payload))
	_, err := BuildIPv4(pkt, &f)
	require.NoError(t, err)
	copy(pkt[f.HeaderLen():], payload)
	require.Len(t, pkt, 32+len(payload))

	var frags [][]byte
	n, err := FragmentIPv4(IPv4(pkt), 1500, func(n int) []byte {
		b := make([]byte, n)
		frags = append(frags, b)
		return b
	})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	type shape struct {
		hl, total int
		off       uint16
		mf        bool
	}
	var got []shape
	for _, b := range frags {
		h := IPv4(b)
		require.True(t, h.ChecksumValid())
		require.Equal(t, uint16(4242), h.ID())
		require.Equal(t, len(b), int(h.TotalLength()))
		got = append(got, shape{h.HeaderLen(), len(b), h.FragmentOffset(), h.MoreFragments()})
	}
	require.Equal(t, []shape{
		{32, 32 + 1464, 0, true},    // (1500-32) rounded down to 8: 1464
		{24, 24 + 1472, 1464, true}, // later header: 20 + the 4-byte copied option
		{24, 24 + len(payload) - 1464 - 1472, 2936, false},
	}, got)
	require.Equal(t, opts, IPv4(frags[0]).Options())
	require.Equal(t, []byte{0x82, 4, 0xaa, 0xbb}, IPv4(frags[1]).Options())

	r := NewReassembler(ReassemblyConfig{})
	var whole []byte
	for i, b := range frags {
		w, done, err := r.Reassemble(0, IPv4(b))
		require.NoError(t, err)
		require.Equal(t, i == len(frags)-1, done)
		whole = w
	}
	require.True(t, bytes.Equal(payload, IPv4(whole).Payload()), "reassembled payload")

	// A datagram that fits is copied whole; DF forbids the cut; an MTU
	// without room for 8 bytes of data after the header is refused.
	n, err = FragmentIPv4(IPv4(pkt), len(pkt), func(n int) []byte { return make([]byte, n) })
	require.NoError(t, err)
	require.Equal(t, 1, n)
	df := append([]byte(nil), pkt...)
	df[6] |= IPv4FlagDontFragment << 5
	_, err = FragmentIPv4(IPv4(df), 1500, func(n int) []byte { return make([]byte, n) })
	require.ErrorIs(t, err, ErrDontFragment)
	_, err = FragmentIPv4(IPv4(pkt), 36, func(n int) []byte { return make([]byte, n) })
	require.ErrorIs(t, err, ErrBadField)
	// Out of buffers after the first: stops, says so.
	calls := 0
	n, err = FragmentIPv4(IPv4(pkt), 1500, func(n int) []byte {
		calls++
		if calls > 1 {
			return nil
		}
		return make([]byte, n)
	})
	require.ErrorIs(t, err, ErrBufferTooSmall)
	require.Equal(t, 1, n)
}
