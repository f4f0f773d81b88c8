package stack

import (
	"net/netip"
	"sync"
)

// Default ephemeral port range, Linux's net.ipv4.ip_local_port_range.
const (
	DefaultEphemeralMin = 32768
	DefaultEphemeralMax = 60999
)

// portTableLen is the size of RFC 6056 Algorithm 4's table of perturbations.
// Each slot spreads the destinations hashing to it over the whole range.
const portTableLen = 1024

// portAllocator picks ephemeral ports with RFC 6056 §3.3.4 Algorithm 4
// ("Double-Hash Port Selection"): the offset F(local, remote, remote port)
// makes the sequence of ports used towards one destination unpredictable to
// others, and table[G(...)] advances after every pick so that a destination
// reconnecting gets the next port of its own sequence, not a recently used
// one (which could still be in TIME-WAIT at the peer).
type portAllocator struct {
	min, max uint16
	keyF     sipKey
	keyG     sipKey

	mu    sync.Mutex
	table [portTableLen]uint16
}

// pick returns a port in [min, max] for a connection from local to remote for
// which inUse reports false, or false when every port is taken. inUse is
// called without p's lock held being relevant to it; it must not call pick.
func (p *portAllocator) pick(local netip.Addr, remote netip.AddrPort, inUse func(port uint16) bool) (uint16, bool) {
	n := uint32(p.max) - uint32(p.min) + 1
	hf := newSipHasher(p.keyF)
	writeAddr(&hf, local)
	writeAddrPort(&hf, remote)
	offset := uint32(hf.sum64())
	hg := newSipHasher(p.keyG)
	writeAddr(&hg, local)
	writeAddrPort(&hg, remote)
	index := uint32(hg.sum64() % portTableLen)

	p.mu.Lock()
	defer p.mu.Unlock()
	for count := n; count > 0; count-- {
		port := uint16(uint32(p.min) + (offset+uint32(p.table[index]))%n)
		p.table[index]++
		if !inUse(port) {
			return port, true
		}
	}
	return 0, false
}
