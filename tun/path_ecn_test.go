package tun

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/ip"
)

// ecnPacket is a 1500-byte IP packet (v6 or v4) with ECN field ecn; its
// flow label (v6) or ID (v4) is seq.
func ecnPacket(t *testing.T, v6 bool, seq uint16, ecn uint8) []byte {
	p := make([]byte, 1500)
	var err error
	if v6 {
		_, err = ip.BuildIPv6(p, &ip.IPv6Fields{TrafficClass: 0xb8 | ecn, FlowLabel: uint32(seq), NextHeader: 6, HopLimit: 64,
			Src: netip.MustParseAddr("2001:2::1"), Dst: netip.MustParseAddr("2001:2::2")})
	} else {
		_, err = ip.BuildIPv4(p, &ip.IPv4Fields{TOS: 0xb8 | ecn, ID: seq, TTL: 64, Protocol: 6,
			Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2")})
	}
	require.NoError(t, err)
	return p
}

// TestPathLaneECNMarks: with ecn=500us, the bottleneck (100 Mbit/s, 120 µs
// per 1500-byte packet) marks CE exactly the ECT packets of a burst that
// wait more than 500 µs (the sixth on: the fifth waits 480 µs), in IPv4
// (checksum still valid, DSCP kept) and IPv6; Not-ECT packets pass
// unmarked and undropped, CE stays CE, and a full queue still tail-drops
// everything.
func TestPathLaneECNMarks(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			l := newLane(t, LaneConfig{Rate: 100e6, Queue: 16 * 1500, ECN: 500 * time.Microsecond})
			// 0-7 ECT(0), 8 Not-ECT, 9 ECT(1), 10 CE, 11-15 Not-ECT, 16-17 ECT(0) (no room).
			codes := []uint8{2, 2, 2, 2, 2, 2, 2, 2, 0, 1, 3, 0, 0, 0, 0, 0, 2, 2}
			for i, e := range codes {
				l.Input(0, ecnPacket(t, v6, uint16(i), e))
			}
			want := []uint8{2, 2, 2, 2, 2, 3, 3, 3, 0, 3, 3, 0, 0, 0, 0, 0}
			var got []uint8
			var batch [][]byte
			for {
				next, ok := l.Next()
				if !ok {
					break
				}
				batch = l.Due(next, batch[:0], nil)
				for _, b := range batch {
					p := b[Headroom:]
					if v6 {
						h, _, err := ip.ParseIPv6(p)
						require.NoError(t, err)
						require.Equal(t, uint32(len(got)), h.FlowLabel())
						require.Equal(t, uint8(0xb8), h.TrafficClass()&^3, "DSCP kept")
						got = append(got, h.TrafficClass()&3)
					} else {
						h, err := ip.ParseIPv4(p)
						require.NoError(t, err, "the checksum is still valid")
						require.Equal(t, uint16(len(got)), h.ID())
						require.Equal(t, uint8(0xb8), h.TOS()&^3, "DSCP kept")
						got = append(got, h.TOS()&3)
					}
				}
				l.Recycle(batch)
			}
			assert.Equal(t, want, got)
			st := l.Stats()
			assert.Equal(t, uint64(4), st.Marked, "5, 6, 7 and the ECT(1) 9")
			assert.Equal(t, uint64(2), st.QueueDrops)
			assert.Equal(t, uint64(16), st.Delay.Count)
			assert.Equal(t, 15*120*time.Microsecond, st.Delay.Max)
			assert.Equal(t, 15*120*time.Microsecond/2, st.Delay.Mean())
		})
	}
}

// TestParsePathECN: ecn=D applies to the directions with a bottleneck.
func TestParsePathECN(t *testing.T) {
	pc, err := ParsePath("rtt=40ms,rate=100mbit,ecn=5ms")
	require.NoError(t, err)
	assert.Equal(t, 5*time.Millisecond, pc.Up.ECN)
	assert.Equal(t, 5*time.Millisecond, pc.Down.ECN)
	assert.Equal(t, "rtt=40ms,rate=100mbit,queue=500000,ecn=5ms", pc.String())
	pc, err = ParsePath("rtt=40ms,down.rate=100mbit,ecn=5ms")
	require.NoError(t, err)
	assert.Zero(t, pc.Up.ECN, "no bottleneck up")
	assert.Equal(t, 5*time.Millisecond, pc.Down.ECN)
	again, err := ParsePath(pc.String())
	require.NoError(t, err)
	again.Up.Seed, again.Down.Seed = pc.Up.Seed, pc.Down.Seed
	assert.Equal(t, pc, again)
	for in, want := range map[string]string{
		"rtt=40ms,ecn=5ms":                    "path: ecn needs a rate (it marks the bottleneck's queue)",
		"rtt=40ms,down.rate=1mbit,up.ecn=5ms": "path: up.ecn needs a up.rate (it marks the bottleneck's queue)",
		"rtt=40ms,rate=1mbit,ecn=0":           `path "ecn=0": want a positive sojourn time such as 5ms`,
		"rtt=40ms,rate=1mbit,ecn=soon":        `path "ecn=soon": want a duration such as 20ms`,
	} {
		_, err := ParsePath(in)
		assert.EqualError(t, err, want, in)
	}
	_, err = NewPathLane(LaneConfig{ECN: time.Millisecond})
	assert.Error(t, err)
}
