package stack

import (
	"net/netip"
	"sync"

	"github.com/ustack-net/ustack/internal/siphash"
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
	keyF     siphash.Key
	keyG     siphash.Key

	mu    sync.Mutex
	table [portTableLen]uint16
}

// pick returns a port in [min, max] for a connection from local to remote for
// which inUse reports false, or false when every port is taken. p's lock
// guards only the table: it is held to take a slot's next value, never while
// inUse runs. inUse is the caller's insert under its own table's lock (a
// Dial runs the engine and emits the SYN in it), so Dials to any
// destination proceed in parallel; two picks for the same slot still get
// different ports, and the caller's table lock settles any remaining clash.
func (p *portAllocator) pick(local netip.Addr, remote netip.AddrPort, inUse func(port uint16) bool) (uint16, bool) {
	n := uint32(p.max) - uint32(p.min) + 1
	hf := siphash.New(p.keyF)
	writeAddr(&hf, local)
	writeAddrPort(&hf, remote)
	offset := uint32(hf.Sum64())
	hg := siphash.New(p.keyG)
	writeAddr(&hg, local)
	writeAddrPort(&hg, remote)
	index := uint32(hg.Sum64() % portTableLen)

	for count := n; count > 0; count-- {
		p.mu.Lock()
		next := p.table[index]
		p.table[index]++
		p.mu.Unlock()
		port := uint16(uint32(p.min) + (offset+uint32(next))%n)
		if !inUse(port) {
			return port, true
		}
	}
	return 0, false
}
