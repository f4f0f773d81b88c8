package integration

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// The founding story (issue 5): clients connect to a server, vanish without
// a FIN — gVisor client stacks thrown away, raw clients that stop answering —
// and come back from the same address, sometimes from the same port, cycle
// after cycle. With keepalive on the server, every new client must get in,
// every stale connection must be gone within idle + count × interval, a SYN
// landing on a stale ESTABLISHED 4-tuple must be answered with a challenge
// ACK (RFC 5961 §4) whose RST kills the stale connection so the client's
// retransmitted SYN gets in, CLOSE-WAIT must never pile up, and the backlog
// must never fill. The scenario runs in virtual time against ustack (the
// device under test, asserted) and against gVisor (the comparison, recorded).

const (
	fsCycles        = 51
	fsBacklog       = 4 // accept queue
	fsSYNBacklog    = 4 // ustack's SYN queue
	fsSampleEvery   = 5 * time.Second
	fsHalfOpenBound = 64 * time.Second // SYN-ACK retransmissions: 1+2+4+8+16+32 s
)

var (
	fsServerAddr = netip.MustParseAddr("198.18.0.2")
	fsServer80   = netip.AddrPortFrom(fsServerAddr, 80)
	fsKA         = fsKeepalive{Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}
	// Cycle lengths, in turn: a client returning after a 12 s cycle finds
	// its stale connection still there; after 50 s it has been reaped.
	fsCycleLens = []time.Duration{12 * time.Second, 25 * time.Second, 50 * time.Second}
)

// fsFateKind is how a client incarnation ends.
type fsFateKind int

const (
	fsLives    fsFateKind = iota // stays (the steady client)
	fsVanish                     // exchanges data, then disappears without a FIN
	fsClose                      // exchanges data, closes properly
	fsHalfOpen                   // sends its SYN, then disappears (raw only)
)

func (f fsFateKind) String() string {
	return [...]string{"lives", "vanish", "close", "half-open"}[f]
}

// fsIncarnation is one life of a client.
type fsIncarnation struct {
	Cycle, Slot int
	Tuple       netip.AddrPort // the client's address and port
	Fate        fsFateKind
	Start       time.Duration // its first SYN
	Gone        time.Duration // vanished or closed; 0 while alive
	LastRecv    time.Duration // when the server last heard from it
	// SrvNxt and CliNxt are the server's SND.NXT and RCV.NXT for the
	// connection when the client vanished.
	SrvNxt, CliNxt tcp.Seq
	ReturnedOnto   *fsIncarnation // the stale incarnation its SYN landed on
}

// fsSlot is a client machine: an address that keeps coming back.
type fsSlot struct {
	raw  bool
	addr netip.Addr
	port uint16
	prev *fsIncarnation
	host *fsRawHost
}

// fsSample is one look at the server's table during a run.
type fsSample struct {
	At time.Duration
	T  fsTable
}

// fsDivergence is one expectation gVisor did not meet: how often, and the
// first time.
type fsDivergence struct {
	n     int
	first string
}

// fsRun is what one run of the story recorded.
type fsRun struct {
	name        string
	samples     []fsSample
	divergences map[string]*fsDivergence // by the check's format
	divOrder    []string
	incs        []*fsIncarnation
	end         time.Duration
}

func TestFoundingStory(t *testing.T) {
	runs := map[string]*fsRun{}
	for _, kind := range []string{"ustack", "gvisor"} {
		r := &fsRun{name: kind}
		runs[kind] = r
		t.Run(kind, func(t *testing.T) { fsRunStory(t, r) })
	}
	fsLogTables(t, runs["ustack"], runs["gvisor"])
}

// fsStory is the state of one run.
type fsStory struct {
	t      *testing.T
	w      *fsWorld
	srv    fsServer
	run    *fsRun
	strict bool // ustack: every expectation is asserted
}

// check asserts cond for ustack; for gVisor a failed expectation is
// recorded as a divergence (gVisor is the comparison, not the DUT).
func (st *fsStory) check(cond bool, format string, args ...any) bool {
	st.t.Helper()
	if cond {
		return true
	}
	msg := fmt.Sprintf("t=%v: ", st.w.Now()) + fmt.Sprintf(format, args...)
	if st.strict {
		tr := st.w.trace
		if len(tr) > 30 {
			tr = tr[len(tr)-30:]
		}
		for _, p := range tr {
			msg += "\n  " + p.String()
		}
		if u, ok := st.srv.(*fsUstackServer); ok {
			for k, v := range u.s.Stats().Map() {
				if v != 0 {
					msg += fmt.Sprintf("\n  %s=%d", k, v)
				}
			}
			for _, c := range u.s.Connections() {
				msg += fmt.Sprintf("\n  conn %v %s readable %d", c.Remote, c.State, c.Info.Readable)
			}
		}
		st.t.Fatal(msg)
	}
	if st.run.divergences == nil {
		st.run.divergences = map[string]*fsDivergence{}
	}
	d := st.run.divergences[format]
	if d == nil {
		d = &fsDivergence{first: msg}
		st.run.divergences[format] = d
		st.run.divOrder = append(st.run.divOrder, format)
	}
	d.n++
	return false
}

func fsRunStory(t *testing.T, run *fsRun) {
	w := newFSWorld(t)
	st := &fsStory{t: t, w: w, run: run, strict: run.name == "ustack"}
	if st.strict {
		st.srv = newFSUstackServer(w, fsServerAddr, fsKA, fsBacklog, fsSYNBacklog)
	} else {
		st.srv = newFSGvServer(w, fsServerAddr, fsKA, fsBacklog)
	}
	defer st.srv.Close()
	w.sampleEvery = fsSampleEvery
	w.sample = st.sample

	// A steady client that never vanishes: keepalive must not hurt it.
	steadyTuple := netip.MustParseAddrPort("198.18.3.1:40000")
	steady := &fsIncarnation{Cycle: -1, Slot: -1, Tuple: steadyTuple, Fate: fsLives}
	run.incs = append(run.incs, steady)
	sc := newFSGvClient(w, steadyTuple, 99)
	sc.connect(fsServer80)
	w.advance(time.Second)
	st.check(sc.state() == "ESTAB", "steady client not connected: %s", sc.state())

	slots := []*fsSlot{
		{addr: netip.MustParseAddr("198.18.1.1"), port: 41000},
		{addr: netip.MustParseAddr("198.18.1.2"), port: 42000},
		{raw: true, addr: netip.MustParseAddr("198.18.2.1"), port: 43000},
		{raw: true, addr: netip.MustParseAddr("198.18.2.2"), port: 44000},
	}
	for _, sl := range slots {
		if sl.raw {
			sl.host = &fsRawHost{w: w}
		}
	}
	for c := range fsCycles {
		start := w.Now()
		for s, sl := range slots {
			st.incarnation(c, s, sl)
		}
		w.advanceTo(start + fsCycleLens[c%len(fsCycleLens)])
	}
	// Long enough for every stale connection and half-open entry to go.
	w.advance(fsHalfOpenBound + 5*time.Second)
	run.end = w.Now()

	// The steady client is still served.
	msg := []byte("still here")
	sc.write(msg)
	w.advance(time.Second)
	st.check(bytes.Equal(sc.read(), msg), "steady client: echo %q, want %q", sc.read(), msg)
	tb := st.srv.Table()
	st.check(len(tb.Entries) == 1 && tb.Entries[steadyTuple] == "ESTAB",
		"at the end the table should hold only the steady client: %v", tb.Entries)
	st.verifyIncarnations()
	for _, f := range run.divOrder {
		d := run.divergences[f]
		t.Logf("gvisor diverges %d times; first: %s", d.n, d.first)
	}
}

// incarnation runs one life of the client in slot s.
func (st *fsStory) incarnation(c, s int, sl *fsSlot) {
	fate := fsVanish
	switch {
	case !sl.raw && c%7 == 3, sl.raw && c%7 == 5:
		fate = fsClose
	case sl.raw && s == 3 && c%5 == 4:
		fate = fsHalfOpen
	}
	same := c%3 == 1 && sl.prev != nil && sl.prev.Fate == fsVanish
	if !same {
		sl.port++
	}
	inc := &fsIncarnation{Cycle: c, Slot: s, Tuple: netip.AddrPortFrom(sl.addr, sl.port), Fate: fate, Start: st.w.Now()}
	if same && st.w.Now() < sl.prev.LastRecv+fsKA.reap() {
		inc.ReturnedOnto = sl.prev
		tb := st.srv.Table()
		st.check(tb.Entries[inc.Tuple] == "ESTAB", "cycle %d slot %d: stale connection of %v not ESTAB before the return: %q",
			c, s, inc.Tuple, tb.Entries[inc.Tuple])
	}
	st.run.incs = append(st.run.incs, inc)
	if sl.raw {
		st.rawIncarnation(inc, sl)
	} else {
		st.gvIncarnation(inc)
	}
	sl.prev = inc
}

// gvIncarnation: a fresh gVisor stack connects, echoes, then is thrown away
// (or closes).
func (st *fsStory) gvIncarnation(inc *fsIncarnation) {
	w := st.w
	cl := newFSGvClient(w, inc.Tuple, int64(1000*inc.Cycle+inc.Slot+1))
	defer func() {
		if inc.Gone == 0 {
			inc.Gone = w.Now()
		}
		cl.h.kill()
	}()
	cl.connect(fsServer80)
	w.advance(3 * time.Second) // SYN retransmission after a challenge included
	if !st.check(cl.state() == "ESTAB", "cycle %d slot %d: client %v not admitted: %s",
		inc.Cycle, inc.Slot, inc.Tuple, cl.state()) {
		inc.Fate = fsHalfOpen // whatever the server kept is bounded like a half-open entry
		return
	}
	if inc.ReturnedOnto != nil {
		st.verifyChallenge(inc)
	}
	msg := []byte(fmt.Sprintf("cycle %d slot %d from %v", inc.Cycle, inc.Slot, inc.Tuple))
	cl.write(msg)
	w.advance(500 * time.Millisecond)
	st.check(bytes.Equal(cl.read(), msg), "cycle %d slot %d: echo %q, want %q", inc.Cycle, inc.Slot, cl.read(), msg)
	switch inc.Fate {
	case fsVanish:
		w.advance(time.Second) // let delayed ACKs out: the server heard the last word
		st.vanish(inc)
	case fsClose:
		cl.ep.Close()
		w.advance(2 * time.Second)
		inc.Gone = w.Now()
		st.checkClosed(inc)
	}
}

// vanish records where the connection stood when its client disappeared.
func (st *fsStory) vanish(inc *fsIncarnation) {
	inc.Gone = st.w.Now()
	segs := st.w.segmentsOn(inc.Tuple, fsServer80, inc.Start)
	var srv, cli bool
	for _, p := range segs {
		if p.Seg.Flags&tcp.FlagRST != 0 {
			continue
		}
		end := p.Seg.Seq + tcp.Seq(p.Seg.Len())
		if p.Src == fsServer80 {
			if !srv || end.GreaterThan(inc.SrvNxt) {
				inc.SrvNxt, srv = end, true
			}
		} else {
			inc.LastRecv = p.At
			if !cli || end.GreaterThan(inc.CliNxt) {
				inc.CliNxt, cli = end, true
			}
		}
	}
}

// verifyChallenge checks the trace of a return onto a stale ESTABLISHED
// 4-tuple: SYN; challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> of the
// stale connection; the client's RST <SEQ=challenge.ACK>; the stale
// connection reset; the retransmitted SYN answered with a SYN-ACK.
func (st *fsStory) verifyChallenge(inc *fsIncarnation) {
	old := inc.ReturnedOnto
	segs := st.w.segmentsOn(inc.Tuple, fsServer80, inc.Start)
	var lines []string
	for _, p := range segs {
		lines = append(lines, p.String())
	}
	trace := "\n  " + strings.Join(lines, "\n  ")
	if !st.check(len(segs) >= 6, "cycle %d slot %d: return onto stale %v: short trace%s", inc.Cycle, inc.Slot, inc.Tuple, trace) {
		return
	}
	syn, ch, rst := segs[0].Seg, segs[1].Seg, segs[2].Seg
	st.check(segs[0].Src == inc.Tuple && syn.Flags&(tcp.FlagSYN|tcp.FlagACK) == tcp.FlagSYN, "first segment is not the SYN%s", trace)
	st.check(segs[1].Src == fsServer80 && ch.Flags == tcp.FlagACK && ch.Seq == old.SrvNxt && ch.Ack == old.CliNxt && len(ch.Payload) == 0,
		"challenge ACK: got %s, want [.] seq %d ack %d (stale SND.NXT, RCV.NXT)%s", fsSegString(&ch), old.SrvNxt, old.CliNxt, trace)
	st.check(segs[2].Src == inc.Tuple && rst.Flags&tcp.FlagRST != 0 && rst.Seq == ch.Ack,
		"client's answer: got %s, want RST seq %d%s", fsSegString(&rst), ch.Ack, trace)
	rec := fsRecFor(st.srv.Conns(), old)
	if st.check(rec != nil, "no server record of the stale connection") {
		st.check(rec.Fate == "reset" && rec.Ended == segs[2].At,
			"stale connection: ended %v (%s), want reset at %v", rec.Ended, rec.Fate, segs[2].At)
	}
	// Then the retransmitted SYN gets in.
	var gotSYN, gotSA bool
	for _, p := range segs[3:] {
		switch {
		case p.Src == inc.Tuple && p.Seg.Flags&(tcp.FlagSYN|tcp.FlagACK) == tcp.FlagSYN && p.Seg.Seq == syn.Seq:
			gotSYN = true
		case gotSYN && p.Src == fsServer80 && p.Seg.Flags == tcp.FlagSYN|tcp.FlagACK && p.Seg.Ack == syn.Seq+1:
			gotSA = true
		}
	}
	st.check(gotSYN && gotSA, "retransmitted SYN not answered with a SYN-ACK%s", trace)
}

// fsRecFor finds the server's record of an incarnation's connection.
func fsRecFor(recs []fsServerConn, inc *fsIncarnation) *fsServerConn {
	for i := range recs {
		if recs[i].Remote == inc.Tuple && recs[i].Accepted >= inc.Start {
			return &recs[i]
		}
	}
	return nil
}

// checkClosed: a client that closed properly was seen to EOF by the
// application, which closed too; nothing is left in the table.
func (st *fsStory) checkClosed(inc *fsIncarnation) {
	rec := fsRecFor(st.srv.Conns(), inc)
	if st.check(rec != nil, "cycle %d slot %d: no server record", inc.Cycle, inc.Slot) {
		st.check(rec.Fate == "EOF", "cycle %d slot %d: closed client: server saw %q, want EOF", inc.Cycle, inc.Slot, rec.Fate)
	}
	tb := st.srv.Table()
	st.check(tb.Entries[inc.Tuple] == "", "cycle %d slot %d: %v still in the table after a clean close: %s",
		inc.Cycle, inc.Slot, inc.Tuple, tb.Entries[inc.Tuple])
}

// rawIncarnation: hand-built segments: SYN (answering a challenge ACK with
// RST and retrying when the 4-tuple is stale), ACK, data, the echo; then
// silence.
func (st *fsStory) rawIncarnation(inc *fsIncarnation, sl *fsSlot) {
	w, r := st.w, sl.host
	w.attach(sl.addr, r)
	r.take()
	defer func() {
		if inc.Gone == 0 {
			inc.Gone = w.Now()
		}
		w.detach(sl.addr)
	}()
	send := func(seg tcp.Segment) { w.emitFrom(r, fsTCPPacket(inc.Tuple, fsServer80, &seg)) }
	// Only segments for this incarnation's port: the others are probes for
	// earlier ones, which this client ignores (it "stopped answering").
	recv := func() []tcp.Segment {
		var out []tcp.Segment
		for _, p := range r.take() {
			if p.Dst == inc.Tuple {
				out = append(out, p.Seg)
			}
		}
		return out
	}
	iss := tcp.Seq(uint32(inc.Cycle)*2654435761 + uint32(inc.Slot)*40503 + 1)
	syn := tcp.Segment{Seq: iss, Flags: tcp.FlagSYN, Window: 65535}
	syn.Options.HasMSS, syn.Options.MSS = true, 1460
	send(syn)
	w.settle()
	in := recv()
	if old := inc.ReturnedOnto; old != nil {
		if !st.check(len(in) == 1, "cycle %d slot %d: SYN on stale %v: got %d segments, want one challenge ACK", inc.Cycle, inc.Slot, inc.Tuple, len(in)) {
			return
		}
		ch := in[0]
		st.check(ch.Flags == tcp.FlagACK && ch.Seq == old.SrvNxt && ch.Ack == old.CliNxt && len(ch.Payload) == 0,
			"cycle %d slot %d: challenge ACK: got %s, want [.] seq %d ack %d", inc.Cycle, inc.Slot, fsSegString(&ch), old.SrvNxt, old.CliNxt)
		send(tcp.Segment{Seq: ch.Ack, Flags: tcp.FlagRST})
		w.settle()
		if rec := fsRecFor(st.srv.Conns(), old); st.check(rec != nil, "no server record of the stale connection") {
			st.check(rec.Fate == "reset" && rec.Ended == w.Now(), "stale connection: ended %v (%s), want reset at %v", rec.Ended, rec.Fate, w.Now())
		}
		st.check(st.srv.Table().Entries[inc.Tuple] == "", "stale connection still in the table after the RST")
		w.advance(time.Second) // the client's SYN retransmission timeout
		send(syn)
		w.settle()
		in = recv()
	}
	if !st.check(len(in) == 1 && in[0].Flags == tcp.FlagSYN|tcp.FlagACK && in[0].Ack == iss+1,
		"cycle %d slot %d: SYN from %v: got %v, want one SYN-ACK", inc.Cycle, inc.Slot, inc.Tuple, in) {
		inc.Fate = fsHalfOpen
		return
	}
	if inc.Fate == fsHalfOpen {
		return
	}
	sndNxt, rcvNxt := iss+1, in[0].Seq+1
	send(tcp.Segment{Seq: sndNxt, Ack: rcvNxt, Flags: tcp.FlagACK, Window: 65535})
	msg := []byte(fmt.Sprintf("cycle %d slot %d from %v (raw)", inc.Cycle, inc.Slot, inc.Tuple))
	send(tcp.Segment{Seq: sndNxt, Ack: rcvNxt, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: msg})
	sndNxt += tcp.Seq(len(msg))
	w.settle()
	var got []byte
	acked := iss + 1
	fin := false
	take := func() {
		for _, seg := range recv() {
			if seg.Flags&tcp.FlagACK != 0 && seg.Ack.GreaterThan(acked) {
				acked = seg.Ack
			}
			if seg.Seq == rcvNxt && len(seg.Payload) > 0 {
				got = append(got, seg.Payload...)
				rcvNxt += tcp.Seq(len(seg.Payload))
			}
			if seg.Flags&tcp.FlagFIN != 0 && seg.Seq+tcp.Seq(len(seg.Payload)) == rcvNxt {
				rcvNxt++
				fin = true
			}
		}
	}
	take()
	st.check(bytes.Equal(got, msg) && acked == sndNxt, "cycle %d slot %d: echo %q acked %d, want %q acked %d",
		inc.Cycle, inc.Slot, got, acked, msg, sndNxt)
	send(tcp.Segment{Seq: sndNxt, Ack: rcvNxt, Flags: tcp.FlagACK, Window: 65535})
	w.settle()
	switch inc.Fate {
	case fsVanish:
		st.vanish(inc)
	case fsClose:
		send(tcp.Segment{Seq: sndNxt, Ack: rcvNxt, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 65535})
		sndNxt++
		w.settle()
		take()
		st.check(fin, "cycle %d slot %d: no FIN from the server after the client's", inc.Cycle, inc.Slot)
		send(tcp.Segment{Seq: sndNxt, Ack: rcvNxt, Flags: tcp.FlagACK, Window: 65535})
		w.settle()
		inc.Gone = w.Now()
		st.checkClosed(inc)
	}
}

// sample is called every fsSampleEvery of virtual time: it records the
// table and checks the invariants that must hold at any time.
func (st *fsStory) sample(now time.Duration) {
	tb := st.srv.Table()
	st.run.samples = append(st.run.samples, fsSample{At: now, T: tb})
	st.check(tb.States["CLOSE-WAIT"] == 0, "%d connections in CLOSE-WAIT: the application closes on EOF", tb.States["CLOSE-WAIT"])
	if tb.AcceptQ >= 0 {
		st.check(tb.AcceptQ == 0, "accept queue holds %d", tb.AcceptQ)
		st.check(tb.SynQ < fsSYNBacklog, "SYN queue holds %d (limit %d)", tb.SynQ, fsSYNBacklog)
		st.check(tb.SynQ == tb.States["SYN-RECV"], "SYN queue %d != %d SYN-RECV", tb.SynQ, tb.States["SYN-RECV"])
	}
	for remote, state := range tb.Entries {
		inc := st.latest(remote, now)
		if !st.check(inc != nil, "unknown connection from %v (%s)", remote, state) {
			continue
		}
		var deadline time.Duration
		switch {
		case inc.Gone == 0 || inc.Fate == fsLives:
			continue
		case inc.Fate == fsVanish:
			deadline = inc.LastRecv + fsKA.reap()
		case inc.Fate == fsHalfOpen:
			deadline = inc.Start + fsHalfOpenBound
		case inc.Fate == fsClose:
			deadline = inc.Gone
		}
		st.check(now < deadline, "stale %s connection from %v (cycle %d, %s) still there, %v past its deadline",
			state, remote, inc.Cycle, inc.Fate, now-deadline)
	}
}

// latest returns the newest incarnation of remote started by now.
func (st *fsStory) latest(remote netip.AddrPort, now time.Duration) *fsIncarnation {
	var out *fsIncarnation
	for _, inc := range st.run.incs {
		if inc.Tuple == remote && inc.Start <= now {
			out = inc
		}
	}
	return out
}

// verifyIncarnations checks, after the run, how the server saw every
// client go: a vanished one reset by its successor's challenge dance, or
// by keepalive exactly idle + count × interval after its last segment, with
// the probes of RFC 1122 §4.2.3.6 (<SEQ=SND.NXT-1>) before.
func (st *fsStory) verifyIncarnations() {
	recs := st.srv.Conns()
	n := map[string]int{}
	for _, inc := range st.run.incs {
		if inc.Fate != fsVanish {
			n[inc.Fate.String()]++
			continue
		}
		rec := fsRecFor(recs, inc)
		if !st.check(rec != nil, "cycle %d slot %d: no server record", inc.Cycle, inc.Slot) {
			continue
		}
		deadline := inc.LastRecv + fsKA.reap()
		n["vanish/"+rec.Fate]++
		st.check(rec.Fate == "timeout" || rec.Fate == "reset", "cycle %d slot %d: vanished client's connection ended %q", inc.Cycle, inc.Slot, rec.Fate)
		st.check(rec.Ended <= deadline, "cycle %d slot %d: stale connection ended %v, deadline %v", inc.Cycle, inc.Slot, rec.Ended, deadline)
		if rec.Fate != "timeout" {
			continue
		}
		st.check(rec.Ended == deadline, "cycle %d slot %d: keepalive gave up at %v, want %v (last segment %v + %v)",
			inc.Cycle, inc.Slot, rec.Ended, deadline, inc.LastRecv, fsKA.reap())
		var got []string
		for _, p := range st.w.segmentsOn(inc.Tuple, fsServer80, inc.LastRecv+1) {
			if p.Src == fsServer80 && p.At <= rec.Ended {
				got = append(got, fmt.Sprintf("%v %s", p.At-inc.LastRecv, fsSegString(&p.Seg)))
			}
		}
		var want []string
		probe := tcp.Segment{Seq: inc.SrvNxt - 1, Ack: inc.CliNxt, Flags: tcp.FlagACK}
		for i := range fsKA.Count {
			at := fsKA.Idle + time.Duration(i)*fsKA.Interval
			want = append(want, fmt.Sprintf("%v [.] seq %d ack %d", at, probe.Seq, probe.Ack))
		}
		want = append(want, fmt.Sprintf("%v [R.] seq %d ack %d", fsKA.reap(), inc.SrvNxt, inc.CliNxt))
		// Compare flags, seq and ack only (the window is the stack's business).
		for i := range got {
			if j := strings.Index(got[i], " win "); j >= 0 {
				got[i] = got[i][:j]
			}
		}
		st.check(strings.Join(got, "\n") == strings.Join(want, "\n"), "cycle %d slot %d: keepalive segments\n got: %q\nwant: %q",
			inc.Cycle, inc.Slot, got, want)
	}
	st.t.Logf("%s: %d incarnations over %v of virtual time: %v", st.run.name, len(st.run.incs), st.run.end, n)
}

// fsLogTables prints both servers' tables side by side, one line per sample
// where either changed.
func fsLogTables(t *testing.T, a, b *fsRun) {
	cell := func(r *fsRun, i int) string {
		if r == nil || i >= len(r.samples) {
			return "-"
		}
		tb := r.samples[i].T
		other := 0
		for k, v := range tb.States {
			switch k {
			case "ESTAB", "CLOSE-WAIT", "SYN-RECV", "TIME-WAIT":
			default:
				other += v
			}
		}
		q := ""
		if tb.AcceptQ >= 0 {
			q = fmt.Sprintf(" q=%d/%d", tb.SynQ, tb.AcceptQ)
		}
		return fmt.Sprintf("%2d %2d %2d %2d %2d%s", tb.States["ESTAB"], tb.States["CLOSE-WAIT"], tb.States["SYN-RECV"],
			tb.States["TIME-WAIT"], other, q)
	}
	n := max(len(a.samples), len(b.samples))
	var sb strings.Builder
	sb.WriteString("connection tables (ESTAB CLOSE-WAIT SYN-RECV TIME-WAIT other; q=SYN/accept queue), rows that changed:\n")
	fmt.Fprintf(&sb, "%7s | %-24s | %s\n", "time", "ustack", "gvisor")
	prev := ""
	for i := range n {
		at := time.Duration(0)
		if i < len(a.samples) {
			at = a.samples[i].At
		} else {
			at = b.samples[i].At
		}
		row := cell(a, i) + " | " + cell(b, i)
		if row == prev && i != n-1 {
			continue
		}
		prev = row
		fmt.Fprintf(&sb, "%6.0fs | %-24s | %s\n", at.Seconds(), cell(a, i), cell(b, i))
	}
	t.Log(sb.String())
}
