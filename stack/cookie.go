package stack

import (
	"net/netip"
	"time"

	"github.com/ustack-net/ustack/internal/siphash"
	"github.com/ustack-net/ustack/tcp"
)

// SYN cookies (RFC 4987 §3.6), laid out as Linux's net/ipv4/syncookies.c
// does: the ISS we send in a SYN-ACK is
//
//	hash1(4-tuple) + SEG.SEQ of the SYN + counter<<24 + ((hash2(4-tuple, counter) + mssIndex) mod 2^24)
//
// where the counter advances once a minute. The final ACK of the handshake
// (ISS+1 in its acknowledgment field) lets the listener rebuild the connection
// without having kept any state for the SYN.
const (
	cookieBits   = 24
	cookieMask   = 1<<cookieBits - 1
	cookiePeriod = time.Minute // counter granularity
	// cookieMaxAge is how many counter values a cookie stays valid for: the
	// current and the previous one (Linux MAX_SYNCOOKIE_AGE), so a cookie
	// lives between one and two minutes.
	cookieMaxAge = 2
)

// The MSS values a cookie can carry in its two MSS bits. The tables are
// Linux's msstab (IPv4) and msstab6 (IPv6): the common path MSSs, so a peer
// loses little by being rounded down to one of them.
var (
	cookieMSS4 = [4]uint16{536, 1300, 1440, 1460}
	cookieMSS6 = [4]uint16{1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60}
)

// Bits of the TSval low bits in a cookie SYN-ACK that carry options the
// cookie itself has no room for (Linux cookie_init_timestamp): the peer's
// window scale (0xf = none), SACK-permitted and ECN.
const (
	cookieTSBits      = 6
	cookieTSMask      = 1<<cookieTSBits - 1
	cookieTSWScale    = 0xf
	cookieTSSACK      = 1 << 4
	cookieTSECN       = 1 << 5
	cookieTSNoWScale  = 0xf
	cookieDefaultMSS4 = 536  // RFC 9293 §3.7.1: no MSS option means 536 (IPv4)
	cookieDefaultMSS6 = 1220 // RFC 8200 §5 minimum MTU 1280 - 60
)

// cookieJar makes and checks SYN cookies.
type cookieJar struct {
	key1, key2 siphash.Key
}

// cookieCounter is the minute counter at time now.
func cookieCounter(now tcp.Time) uint32 { return uint32(int64(now) / int64(cookiePeriod)) }

func (j *cookieJar) hash(k siphash.Key, local, remote netip.AddrPort, count uint32) uint32 {
	h := siphash.New(k)
	writeAddrPort(&h, local)
	writeAddrPort(&h, remote)
	h.Write32(count)
	return uint32(h.Sum64())
}

// mssIndex returns the index of the largest table MSS not above the peer's
// MSS (or the protocol default when the SYN had none).
func mssIndex(v6 bool, peer uint16, has bool) uint32 {
	tab, def := &cookieMSS4, uint16(cookieDefaultMSS4)
	if v6 {
		tab, def = &cookieMSS6, cookieDefaultMSS6
	}
	if !has {
		peer = def
	}
	i := len(tab) - 1
	for ; i > 0; i-- {
		if peer >= tab[i] {
			break
		}
	}
	return uint32(i)
}

// cookieMSSValue returns the MSS of table entry i.
func cookieMSSValue(v6 bool, i uint32) uint16 {
	if v6 {
		return cookieMSS6[i&3]
	}
	return cookieMSS4[i&3]
}

// make returns the ISS encoding a SYN with sequence number irs from remote to
// local with MSS index mssIdx, at counter value count.
func (j *cookieJar) make(local, remote netip.AddrPort, irs tcp.Seq, mssIdx, count uint32) tcp.Seq {
	h1 := j.hash(j.key1, local, remote, 0)
	h2 := j.hash(j.key2, local, remote, count)
	return tcp.Seq(h1 + uint32(irs) + count<<cookieBits + (h2+mssIdx)&cookieMask)
}

// check validates cookie (SEG.ACK-1 of the handshake's final ACK) for a SYN
// that had sequence number irs (SEG.SEQ-1), at counter value count, and
// returns the MSS index it encodes. A cookie older than cookieMaxAge counter
// values, or whose data does not decode to a valid index, is rejected.
func (j *cookieJar) check(local, remote netip.AddrPort, irs, cookie tcp.Seq, count uint32) (uint32, bool) {
	c := uint32(cookie) - j.hash(j.key1, local, remote, 0) - uint32(irs)
	// Only the low 8 bits of the counter survive in the cookie.
	diff := (count - c>>cookieBits) & (1<<(32-cookieBits) - 1)
	if diff >= cookieMaxAge {
		return 0, false
	}
	data := (c - j.hash(j.key2, local, remote, count-diff)) & cookieMask
	if data >= uint32(len(cookieMSS4)) {
		return 0, false
	}
	return data, true
}

// cookieTSVal returns the TSval of a cookie SYN-ACK: tsNow with its low six
// bits replaced by the options (Linux cookie_init_timestamp), stepped back by
// one period if that would put it ahead of tsNow, so our timestamps stay
// monotonic when the connection continues with the normal timestamp clock.
func cookieTSVal(tsNow uint32, sndWScale int8, sack, ecn bool) uint32 {
	opts := uint32(cookieTSNoWScale)
	if sndWScale >= 0 {
		opts = uint32(sndWScale)
	}
	if sack {
		opts |= cookieTSSACK
	}
	if ecn {
		opts |= cookieTSECN
	}
	ts := tsNow&^cookieTSMask | opts
	if int32(ts-tsNow) > 0 {
		ts -= cookieTSMask + 1
	}
	return ts
}

// cookieTSDecode recovers the options from the TSecr of the final ACK. The
// four window-scale bits hold 0..14 or 0xf ("none"), so every value decodes.
func cookieTSDecode(tsEcr uint32) (sndWScale int8, sack bool) {
	opts := tsEcr & cookieTSMask
	sndWScale = -1
	if ws := opts & cookieTSWScale; ws != cookieTSNoWScale {
		sndWScale = int8(min(ws, tcp.MaxWindowShift))
	}
	return sndWScale, opts&cookieTSSACK != 0
}

// cookieTSECNOK reports whether the cookie SYN-ACK whose TSval the final
// ACK echoes as tsEcr accepted ECN (Linux cookie_ecn_ok).
func cookieTSECNOK(tsEcr uint32) bool { return tsEcr&cookieTSECN != 0 }
