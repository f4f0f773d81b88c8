package stack

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ustack-net/ustack/tcp"
)

// fzProg assembles a FuzzStack program (the encoding is in fuzz_test.go).
type fzProg []byte

// fzTCP is one tcpOp's fields.
type fzTCP struct {
	who, flags, mode uint8
	seq, ack         int16
	win              uint16
	opts, oval, len  uint8
	payload          []byte
}

// Option bits and who-byte fields of tcpOp.
const (
	fzMSS  = 1
	fzWS   = 2
	fzSOK  = 4
	fzTS   = 8
	fzSACK = 16

	fzRel = 3 // seq and ack relative to what the stack last sent

	fzP1   = 1      // peer 198.18.0.3
	fzP6   = 2      // peer 2001:2::1
	fzPort = 1 << 2 // peer port 40000+n: n<<2
	fzTo7  = 1 << 4 // local port 7 (2<<4: closed port 81; 3<<4: the last Dial's port)
	fzBad  = 64     // corrupt the checksum
)

const (
	fSYN = uint8(tcp.FlagSYN)
	fACK = uint8(tcp.FlagACK)
	fFIN = uint8(tcp.FlagFIN)
	fRST = uint8(tcp.FlagRST)
	fPSH = uint8(tcp.FlagPSH)
)

func (p *fzProg) tcpFields(s fzTCP) {
	var b [2]byte
	*p = append(*p, s.who, s.flags, s.mode)
	binary.BigEndian.PutUint16(b[:], uint16(s.seq))
	*p = append(*p, b[:]...)
	binary.BigEndian.PutUint16(b[:], uint16(s.ack))
	*p = append(*p, b[:]...)
	binary.BigEndian.PutUint16(b[:], s.win)
	*p = append(*p, b[:]...)
	*p = append(*p, s.opts, s.oval, s.len)
	// The payload follows in the program: len bytes (200+: (len-200)*28).
	n := int(s.len)
	if n >= 200 {
		n = (n - 200) * 28
	}
	pay := append([]byte(nil), s.payload...)
	for len(pay) < n {
		pay = append(pay, byte(len(pay)%251))
	}
	*p = append(*p, pay[:n]...)
}

func (p *fzProg) pkt(s fzTCP) *fzProg { *p = append(*p, fzOpPacket); p.tcpFields(s); return p }
func (p *fzProg) adv(step uint8) *fzProg {
	*p = append(*p, fzOpAdvance, step)
	return p
}
func (p *fzProg) app(conn, action, arg uint8) *fzProg {
	*p = append(*p, fzOpApp, action<<3|conn, arg)
	return p
}
func (p *fzProg) flush() *fzProg { *p = append(*p, fzOpFlush); return p }
func (p *fzProg) icmp(who, kind uint8, seq int16, mtu uint16) *fzProg {
	*p = append(*p, fzOpICMP, who, kind, byte(uint16(seq)>>8), byte(seq), byte(mtu>>8), byte(mtu))
	return p
}
func (p *fzProg) raw(fix uint8, b []byte) *fzProg {
	*p = append(*p, fzOpRaw, uint8(len(b)), fix)
	*p = append(*p, b...)
	return p
}

// fzExt is one extension header of a v6ext op: index into fzExtKinds,
// length byte, and its bytes (padded with zeros).
type fzExt struct {
	kind, len uint8
	body      []byte
}

func (p *fzProg) v6ext(exts []fzExt, s fzTCP) *fzProg {
	*p = append(*p, fzOpV6Ext, uint8(len(exts)-1))
	for _, e := range exts {
		*p = append(*p, e.kind, e.len)
		size := (int(e.len)%8 + 1) * 8
		switch fzExtKinds[e.kind] {
		case 44:
			size = 8
		case 51:
			size = (int(e.len)%8 + 2) * 4
		}
		b := append([]byte(nil), e.body...)
		for len(b) < size-1 {
			b = append(b, 0)
		}
		*p = append(*p, b[:size-1]...)
	}
	p.tcpFields(s)
	return p
}

func (p *fzProg) frag(cut uint8, s fzTCP) *fzProg {
	*p = append(*p, fzOpFrag, cut)
	p.tcpFields(s)
	return p
}

// App actions (appOp).
const (
	appAccept = iota
	appDial
	appRead
	_
	appWrite
	_
	appClose
	appCloseWrite
	appAbort
	appSetRcvBuf
	appKeepAlive
	appUserTimeout
	appNoDelay
	appCloseRead
	appSetSndBuf
)

// Advance steps (indexes into fzSteps).
const (
	step1ms   = 1
	step40ms  = 3
	step200ms = 4
	step1s    = 5
	step10s   = 7
	step30s   = 8
	step2min  = 11
	step15min = 13
	step2h    = 15
)

type fzSeed struct {
	name string
	prog []byte
}

// fuzzStackSeeds are the meaningful starting points of FuzzStack; they live
// in testdata/fuzz/FuzzStack as seed-* (TestFuzzStackSeedCorpus keeps the
// files in step with this list).
func fuzzStackSeeds() []fzSeed {
	var seeds []fzSeed
	add := func(name string, p *fzProg) { seeds = append(seeds, fzSeed{name, []byte(*p)}) }
	syn := func(who uint8) fzTCP {
		return fzTCP{who: who, flags: fSYN, seq: 7, win: 65535, opts: fzMSS | fzWS | fzSOK | fzTS, oval: 7}
	}
	ack := func(who uint8) fzTCP {
		return fzTCP{who: who, flags: fACK, mode: fzRel, win: 1024, opts: fzTS}
	}
	data := func(who uint8, n uint8) fzTCP {
		return fzTCP{who: who, flags: fACK | fPSH, mode: fzRel, win: 1024, opts: fzTS, oval: 1, len: n}
	}

	// A SYN to a listener, never completed: SYN-ACK retransmissions until
	// the SYN-RECEIVED connection gives up.
	p := &fzProg{}
	p.pkt(syn(fzP1 | fzPort)).flush().adv(step1s).adv(step10s).adv(step30s).adv(step2min)
	add("syn", p)

	// A full IPv6 handshake, data both ways, FIN from the peer, close.
	p = &fzProg{}
	p.pkt(syn(fzP6|fzPort)).flush().pkt(ack(fzP6|fzPort)).flush().app(0, appAccept, 0)
	p.pkt(data(fzP6|fzPort, 100)).flush().app(1, appRead, 4).app(1, appWrite, 2).flush()
	p.pkt(ack(fzP6 | fzPort)).pkt(fzTCP{who: fzP6 | fzPort, flags: fACK | fFIN, mode: fzRel, win: 1024, opts: fzTS}).flush()
	p.app(1, appClose, 0).flush().pkt(ack(fzP6 | fzPort)).flush().adv(step2min)
	add("handshake-v6", p)

	// Data on the established connection: in order, out of order (a hole
	// of 200 bytes), the hole filled, a duplicate; the app reads and writes.
	p = &fzProg{}
	p.pkt(data(0, 100)).flush()
	p.pkt(fzTCP{flags: fACK, mode: fzRel, seq: 200, win: 1024, opts: fzTS, oval: 1, len: 50}).flush()
	p.pkt(fzTCP{flags: fACK, mode: fzRel, win: 1024, opts: fzTS | fzSACK, oval: 1, len: 200}).flush()
	p.pkt(fzTCP{flags: fACK, mode: fzRel, seq: -100, win: 1024, opts: fzTS, oval: 1, len: 100}).flush()
	p.app(0, appRead, 255).app(0, appWrite, 20).flush().pkt(ack(0)).adv(step40ms).adv(step200ms)
	add("data", p)

	// RSTs and SYNs against the established connection (RFC 5961): in
	// window but not exact (challenge ACK), exact (reset), and a SYN.
	p = &fzProg{}
	p.pkt(fzTCP{flags: fRST, mode: fzRel, seq: 10, win: 0}).flush()
	p.pkt(fzTCP{flags: fSYN, mode: 1, seq: 5, win: 1024, opts: fzMSS}).flush()
	p.pkt(fzTCP{flags: fRST | fACK, mode: fzRel, win: 0}).flush().app(0, appRead, 0)
	add("rst", p)

	// IPv4 fragments of a data segment: in order, reversed, one missing,
	// and overlapping with different bytes.
	p = &fzProg{}
	for cut := uint8(0); cut < 4; cut++ {
		p.frag(cut<<4|3, data(0, 120)).flush()
	}
	p.adv(step30s).adv(step10s)
	add("fragments", p)

	// ICMP errors quoting our connection: port unreachable (soft),
	// fragmentation needed (PMTU), with a bad sequence number; then an
	// IPv6 handshake and a Packet Too Big quoting it.
	p = &fzProg{}
	p.app(0, appWrite, 40).flush()
	p.icmp(0, 3, 0, 0).icmp(0, 4, 0, 576).icmp(0, 4, 3000, 576).flush()
	p.pkt(syn(fzP6)).flush().pkt(ack(fzP6)).flush().app(0, appAccept, 0).app(1, appWrite, 40).flush()
	p.icmp(fzP6, 4, 0, 1280).icmp(fzP6, 0, 0, 0).flush().adv(step1s)
	add("icmp", p)

	// An active open: Dial peer 0 port 40001, answer with a SYN-ACK and
	// data, then a RST.
	p = &fzProg{}
	p.app(0, appDial, fzPort).flush()
	p.pkt(fzTCP{who: fzPort | 3<<4, flags: fSYN | fACK, mode: 2, seq: 9, win: 8192, opts: fzMSS | fzSOK | fzWS, oval: 100}).flush()
	p.pkt(fzTCP{who: fzPort | 3<<4, flags: fACK, mode: fzRel, win: 8192, len: 10}).flush()
	p.app(1, appRead, 1).adv(step1s).pkt(fzTCP{who: fzPort | 3<<4, flags: fRST, mode: fzRel}).flush()
	p.app(0, appDial, fzP6|2*fzPort).adv(step1s).adv(step10s).adv(step2min)
	add("dial", p)

	// The peer closes its window: the app fills the send buffer, the peer
	// ACKs with a zero window, persist probes back off, then it opens.
	p = &fzProg{}
	p.app(0, appWrite, 255).flush()
	p.pkt(fzTCP{flags: fACK, mode: fzRel, opts: fzTS}).flush()
	for i := 0; i < 6; i++ {
		p.adv(step10s).pkt(fzTCP{flags: fACK, mode: fzRel, opts: fzTS}).flush()
	}
	p.pkt(fzTCP{flags: fACK, mode: fzRel, win: 64, opts: fzTS}).flush().adv(step1s)
	add("zero-window", p)

	// The peer acknowledges part of the flight and shuts its window: the
	// retransmission timer must stay armed (its segment is the probe).
	p = &fzProg{}
	p.app(0, appWrite, 20).flush()
	p.pkt(fzTCP{flags: fACK, mode: fzRel, ack: -2000, opts: fzTS}).flush()
	for i := 0; i < 4; i++ {
		p.adv(step1s).pkt(fzTCP{flags: fACK, mode: fzRel, ack: -2000, opts: fzTS}).flush()
	}
	add("zero-window-in-flight", p)

	// The application closes first: FIN-WAIT-1/2, the peer's FIN, TIME-WAIT
	// and its expiry; a SYN reusing the tuple in TIME-WAIT.
	p = &fzProg{}
	p.app(0, appClose, 0).flush().pkt(ack(0)).flush()
	p.pkt(fzTCP{flags: fACK | fFIN, mode: fzRel, win: 1024, opts: fzTS}).flush()
	p.pkt(fzTCP{flags: fSYN, mode: 1, seq: 20000, win: 1024, opts: fzTS | fzMSS, oval: 200}).flush()
	p.adv(step2min)
	add("timewait", p)

	// A SYN flood on port 7 from every peer and port: the SYN queue fills,
	// cookies answer, a cookie ACK comes back, the accept queue overflows.
	p = &fzProg{}
	for who := uint8(0); who < 16; who++ {
		p.pkt(syn(who | fzTo7))
	}
	p.flush()
	for who := uint8(0); who < 16; who++ {
		p.pkt(ack(who | fzTo7))
	}
	p.flush().app(0, appAccept, 0).adv(step1s).adv(step10s)
	add("synflood", p)

	// Malformed packets: a truncated IPv4 header, a bad TCP checksum, a
	// bad data offset, an unknown protocol, a short IPv6 header.
	p = &fzProg{}
	p.raw(1, []byte{0x45, 0, 0, 20})
	p.pkt(fzTCP{flags: fACK, mode: fzRel, who: fzBad, len: 10})
	bad := []byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0xf0, 0x02, 0xff, 0xff, 0, 0, 0, 0}
	p.raw(1, bad)
	proto := append([]byte(nil), bad...)
	proto[9] = 99
	p.raw(1, proto)
	p.raw(1, []byte{0x60, 0, 0, 0, 0, 20, 6, 64})
	p.flush()
	add("malformed", p)

	// IPv6 extension headers in front of TCP on an IPv6 connection:
	// hop-by-hop and destination options (Pad1s), an atomic fragment, a
	// routing header, a real fragment (dropped: ustack reassembles only
	// IPv4), AH, and No Next Header.
	p = &fzProg{}
	p.pkt(syn(fzP6)).flush().pkt(ack(fzP6)).flush().app(0, appAccept, 0)
	p.v6ext([]fzExt{{kind: 0}, {kind: 3, len: 1}}, data(fzP6, 20)).flush()
	p.v6ext([]fzExt{{kind: 2}}, data(fzP6, 20)).flush()
	p.v6ext([]fzExt{{kind: 1, body: []byte{0, 0, 0}}}, data(fzP6, 20)).flush()
	p.v6ext([]fzExt{{kind: 2, body: []byte{0, 0, 1, 0, 0, 0, 9}}}, data(fzP6, 20)).flush()
	p.v6ext([]fzExt{{kind: 4, len: 1}, {kind: 0}}, data(fzP6, 20)).flush()
	p.v6ext([]fzExt{{kind: 5}}, data(fzP6, 20)).flush()
	p.app(1, appRead, 255)
	add("ipv6-ext", p)

	// Keepalive on an idle connection, the user timeout on data the peer
	// never acknowledges, and a long idle after both.
	p = &fzProg{}
	p.app(0, appKeepAlive, 9).app(0, appUserTimeout, 20).app(0, appWrite, 1).flush()
	p.adv(step1s).adv(step10s).adv(step30s).adv(step2min).adv(step15min).adv(step2h)
	add("timers", p)
	return seeds
}

// TestFuzzStackSeedCorpus keeps testdata/fuzz/FuzzStack/seed-* identical to
// fuzzStackSeeds; USTACK_WRITE_SEEDS=1 rewrites them.
func TestFuzzStackSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzStack")
	for _, s := range fuzzStackSeeds() {
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s.prog)) + ")\n"
		path := filepath.Join(dir, "seed-"+s.name)
		if os.Getenv("USTACK_WRITE_SEEDS") != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale: run USTACK_WRITE_SEEDS=1 go test -run TestFuzzStackSeedCorpus ./stack/", path)
		}
	}
}
