package stack

import (
	"net/netip"
	"time"

	"github.com/ustack-net/ustack/internal/siphash"
	"github.com/ustack-net/ustack/tcp"
)

// isnTick is the period of RFC 6528's timer M: one increment every 4 µs, so
// the sequence space wraps in about 4.77 hours, longer than any MSL.
const isnTick = 4 * time.Microsecond

// isnGenerator makes initial sequence numbers as RFC 6528 §3 specifies:
// ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is
// a 4 µs timer and F a keyed hash (SipHash-2-4). Successive connections of the
// same 4-tuple get increasing ISNs (so old duplicates of an earlier incarnation
// fall outside the new window, RFC 9293 §3.4.1), while an off-path attacker
// cannot predict the ISN of a tuple it does not know the hash of.
type isnGenerator struct {
	key   siphash.Key // F's secret
	tsKey siphash.Key // secret of the per-address-pair timestamp offset
}

// isn returns the ISN for a connection from local to remote at time now.
func (g *isnGenerator) isn(now tcp.Time, local, remote netip.AddrPort) tcp.Seq {
	h := siphash.New(g.key)
	writeAddrPort(&h, local)
	writeAddrPort(&h, remote)
	f := uint32(h.Sum64())
	m := uint32(int64(now) / int64(isnTick))
	return tcp.Seq(m + f)
}

// tsOffset returns the random offset added to the TCP timestamp clock for
// connections between local and remote. Like Linux's secure_tcp_ts_off it
// depends only on the address pair, so the TSvals of successive connections
// between the same hosts stay monotonic (PAWS, RFC 7323 §5) while the host's
// uptime stays hidden from others (RFC 7323 §7.1).
func (g *isnGenerator) tsOffset(local, remote netip.Addr) uint32 {
	h := siphash.New(g.tsKey)
	writeAddr(&h, local)
	writeAddr(&h, remote)
	return uint32(h.Sum64())
}

// writeAddr hashes an address in its 16-byte form (IPv4 mapped), so both
// families hash the same number of bytes.
func writeAddr(h *siphash.Hasher, a netip.Addr) {
	b := a.As16()
	h.Write(b[:])
}

func writeAddrPort(h *siphash.Hasher, ap netip.AddrPort) {
	writeAddr(h, ap.Addr())
	h.Write16(ap.Port())
}
