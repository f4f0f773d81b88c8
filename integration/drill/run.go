package drill

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/tcp"
)

// Match selects how outbound packets are compared.
type Match uint8

// The match modes.
const (
	// Strict compares every field the script writes: flags, seq, ack,
	// length, window, and option values (except TS val).
	Strict Match = iota + 1
	// Semantic compares flags, seq, ack, length and which options are
	// present — not window or option values — for scripts written against
	// another OS.
	Semantic
)

// ParseMatch parses "strict" or "semantic".
func ParseMatch(s string) (Match, error) {
	switch s {
	case "strict":
		return Strict, nil
	case "semantic":
		return Semantic, nil
	}
	return 0, fmt.Errorf("unknown match mode %q (want strict or semantic)", s)
}

// Status is a run's outcome.
type Status string

// The outcomes. Pass, XFail (failed exactly where the script says this DUT
// must), Skip and Unsupported (the script needs a feature the DUT does not
// have; Result.Feature names it) are successes; Fail, XPass and Error (the
// harness could not run a line) are not.
const (
	Pass        Status = "pass"
	Fail        Status = "FAIL"
	XFail       Status = "xfail"
	XPass       Status = "XPASS"
	Skip        Status = "skip"
	Unsupported Status = "unsupported"
	Error       Status = "ERROR"
)

// OK reports whether the status counts as success.
func (s Status) OK() bool { return s == Pass || s == XFail || s == Skip || s == Unsupported }

// PeerISN is the scripted peer's initial sequence number: inbound sequence
// numbers are written relative to it. Close to the wrap so that a script's
// data crosses sequence number zero.
const PeerISN tcp.Seq = 0xfffffff0

// Result is one script's run on one DUT.
type Result struct {
	Script string
	DUT    string
	Status Status
	// Line is where the run failed (0 when it did not).
	Line int
	// Detail explains a failure, error, expected failure or skip.
	Detail string
	// Feature names what the DUT lacks, for Unsupported.
	Feature string
	// Notes are things the run did not do (shell commands not run,
	// sysctl settings with no equivalent on the DUT).
	Notes []string
	// Unmapped are the sysctl settings the DUT had no equivalent for.
	Unmapped []string
	// Elapsed is how long the run took (wall clock).
	Elapsed time.Duration
	// Trace is every event in packetdrill notation with actual times.
	Trace []string
}

// runError is a failure at a line; errUnsupported marks it as an error
// (the harness could not run the line) rather than a mismatch.
type runError struct {
	line        int
	msg         string
	unsupported bool
	// feature, when set, is what the DUT lacks (status Unsupported).
	feature string
}

func (e *runError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

type runner struct {
	s     *Script
	dut   DUT
	name  string
	match Match

	now      time.Duration // script time of the last event
	dutISN   tcp.Seq
	issKnown bool
	// tsBase is the DUT's first TS val, which reports count from.
	tsBase    uint32
	tsBaseSet bool
	// synMatched: a `>` SYN line has fixed dutISN.
	synMatched bool
	// dutBase is the sequence number the script's SYN line for the DUT
	// wrote: as in packetdrill, a SYN's numbers are as written and the
	// others count from the DUT's live ISN (dutISN).
	dutBase uint32
	dutSYN  tcp.Seq // the live sequence number of that SYN
	pending []integration.Emission
	// tsMap maps TS val values written on `>` lines to the DUT's actual
	// ones, so `<` lines can echo them in TS ecr.
	tsMap    map[uint32]uint32
	lastTS   uint32
	hasTS    bool
	fds      map[int]*rfd
	trace    []string
	notes    []string
	unmapped []string
	// blocked is a blocking call that has not returned yet; blockStart
	// is when it started (DUT time), -1 when none.
	blocked    *blockedCall
	blockStart time.Duration
	// infoFD is the socket `%{ }%` blocks read tcp_info from: the last
	// one accepted or connected (else created).
	infoFD int
	vars   map[string]int64
	// dutNxt is the end of the highest sequence the DUT has sent.
	dutNxt    tcp.Seq
	dutNxtSet bool
	// peerMSS is the MSS the peer's last SYN announced (536 without the
	// option, RFC 9293 §3.7.1).
	peerMSS uint16
	pcap    *pcapWriter
	badSums int
	// tol is the script's tolerance, scaled for real-time DUTs.
	tol time.Duration
	// pct is the script's --tolerance_percent on real-time DUTs under
	// PacketdrillRules (0 otherwise; virtual-time DUTs are exact): an
	// event's tolerance is at least this share of the time since the
	// previous event.
	pct float64
	// packetdrill is RunOptions.PacketdrillRules.
	packetdrill bool
	// prevInject: the previous event was a `<` line.
	prevInject bool
	// aggDeadline is how long a `>` line waits for the rest of the
	// pieces it aggregates (its window's end plus tolerance).
	aggDeadline time.Duration
	// foKeys are the Fast Open keys the script set with setsockopt
	// TCP_FASTOPEN_KEY, for mapping its cookies onto the live addresses.
	foKeys []FastOpenKey
	// peerBase is the sequence number the peer's last SYN line wrote: as
	// in packetdrill, a SYN's numbers are as written and the peer's later
	// ones count from it.
	peerBase uint32
	// listened: a listen since the peer's last opening SYN; opening: the
	// DUT sent a SYN since the peer's last SYN-ACK. The peer's next SYN
	// (SYN-ACK) then starts a connection: packetdrill takes a new peer
	// ISN only for a new socket (a SYN in an established connection
	// keeps the numbering), and a new peer port for each passive open.
	listened, opening bool
	// peerConns counts the passive opens (the linux DUT's peer port).
	peerConns int
}

// tolFor is the timing tolerance of an event delta after the previous one:
// the script's, or its percent share of delta if larger (packetdrill's
// dynamic tolerance).
func (r *runner) tolFor(delta time.Duration) time.Duration {
	if d := time.Duration(r.pct / 100 * float64(delta)); d > r.tol {
		return d
	}
	return r.tol
}

// dutOff is what the live DUT sequence number adds to a script's: for a
// SYN, the difference between the live ISN and the one the line wrote;
// the others count from the live ISN.
func (r *runner) dutOff(syn bool) tcp.Seq {
	if syn {
		return r.dutISN - tcp.Seq(r.dutBase)
	}
	return r.dutISN
}

// peerOff is what the live peer sequence number adds to a script's: a
// SYN's number is as written, the others count from the SYN's.
func (r *runner) peerOff(syn bool) tcp.Seq {
	if syn {
		return PeerISN
	}
	return PeerISN + tcp.Seq(r.peerBase)
}

// RunOptions configure a run.
type RunOptions struct {
	// Match is the comparison mode; 0 means Strict.
	Match Match
	// Pcap, if not nil, receives a capture of the run (both directions,
	// raw IP).
	Pcap io.Writer
	// ToleranceScale multiplies the script's timing tolerance on DUTs that
	// run in real time (linux), for slow or loaded machines; 0 means 1.
	// Virtual-time DUTs are exact and always use the script's tolerance.
	ToleranceScale float64
	// PacketdrillRules holds the run to google packetdrill's matching
	// rules where they are looser than the drill's: a packet the DUT sends
	// before a line that is not a `>` line is left for the next `>` line
	// (packetdrill looks at the DUT's packets only when a `>` line asks
	// for one), one left at the end is noted, not failed, and a `>` line
	// aggregates the wire segments that make up its length whatever their
	// timing, with the last one's flags (PSH) and time; on a real-time
	// DUT the tolerance is at least --tolerance_percent (12.5 by default)
	// of the time since the previous event.
	PacketdrillRules bool
}

// Run runs s on the named DUT. pcap, if not nil, receives a capture of the
// run (both directions, raw IP).
func Run(s *Script, dutName string, match Match, pcap io.Writer) Result {
	return RunWith(s, dutName, RunOptions{Match: match, Pcap: pcap})
}

// RunWith runs s on the named DUT with options.
func RunWith(s *Script, dutName string, o RunOptions) (res Result) {
	match, pcap := o.Match, o.Pcap
	if match == 0 {
		match = Strict
	}
	res = Result{Script: s.Name, DUT: dutName}
	began := time.Now()
	defer func() { res.Elapsed = time.Since(began) }()
	exp, hasExp := s.Expect[dutName]
	if hasExp && !exp.Fail {
		res.Status, res.Detail = Skip, exp.Reason
		return res
	}
	dut, err := NewDUT(dutName, Options{IPv6: s.IPv6, MTU: s.MTU, MSS: s.MSS})
	if err != nil {
		res.Status, res.Detail = Error, err.Error()
		return res
	}
	defer dut.Destroy()
	r := &runner{s: s, dut: dut, name: dutName, match: match, tsMap: map[uint32]uint32{}, fds: map[int]*rfd{}, tol: s.Tolerance, blockStart: -1, vars: map[string]int64{}, listened: true}
	if rt, ok := dut.(realTimer); ok && rt.RealTime() && o.ToleranceScale > 0 {
		r.tol = time.Duration(float64(s.Tolerance) * o.ToleranceScale)
	}
	if rt, ok := dut.(realTimer); ok && rt.RealTime() && o.PacketdrillRules {
		r.pct = s.TolerancePercent
	}
	r.packetdrill = o.PacketdrillRules
	if pcap != nil {
		r.pcap = newPcapWriter(pcap)
	}
	err = r.run()
	if r.pcap != nil && r.pcap.err != nil && err == nil {
		err = &runError{line: 0, msg: "writing pcap: " + r.pcap.err.Error(), unsupported: true}
	}
	res.Trace, res.Notes, res.Unmapped = r.trace, r.notes, r.unmapped
	var re *runError
	switch {
	case err == nil:
		res.Status = Pass
	case errors.As(err, &re):
		res.Line, res.Detail = re.line, re.msg
		res.Status = Fail
		if re.unsupported {
			res.Status = Error
		}
		if re.feature != "" {
			res.Status, res.Feature = Unsupported, re.feature
			return res
		}
	default:
		res.Status, res.Detail = Error, err.Error()
	}
	if hasExp {
		switch {
		case res.Status == Pass && match == Semantic:
			// Directives describe strict runs; semantic matching may
			// legitimately not see a value-only divergence.
			res.Notes = append(res.Notes, fmt.Sprintf("strict-mode divergence at line %d (%s) not visible in semantic mode", exp.Line, exp.Reason))
		case res.Status == Pass:
			res.Status, res.Detail = XPass, fmt.Sprintf("expected to fail at line %d (%s) but passed", exp.Line, exp.Reason)
		case res.Status == Fail && res.Line == exp.Line:
			res.Status, res.Detail = XFail, exp.Reason+"\n"+res.Detail
		case res.Status == Fail:
			res.Detail = fmt.Sprintf("expected to fail at line %d (%s), failed at line %d:\n%s", exp.Line, exp.Reason, res.Line, res.Detail)
		}
	}
	return res
}

func (r *runner) fail(ev *Event, format string, args ...any) error {
	return &runError{line: ev.Line, msg: fmt.Sprintf(format, args...)}
}

func (r *runner) unsupported(ev *Event, format string, args ...any) error {
	return &runError{line: ev.Line, msg: fmt.Sprintf(format, args...), unsupported: true}
}

func (r *runner) logf(at time.Duration, format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf("%s %s", fmtTime(at), fmt.Sprintf(format, args...)))
}

func fmtTime(d time.Duration) string {
	return fmt.Sprintf("%d.%06d", d/time.Second, (d%time.Second)/time.Microsecond)
}

func (r *runner) run() error {
	for i := range r.s.Events {
		ev := &r.s.Events[i]
		var err error
		if ev.Kind == EvExpect {
			err = r.expect(ev)
		} else {
			err = r.step(ev)
		}
		if err != nil {
			return err
		}
	}
	if err := r.finishBlocked(nil); err != nil {
		return err
	}
	r.collect()
	last := r.s.Events[len(r.s.Events)-1]
	if m := r.malformed(); len(m) > 0 {
		return &runError{line: last.Line, msg: "the DUT sent packets that are not the connection's well-formed TCP: " + strings.Join(m, "; ")}
	}
	if len(r.pending) > 0 && r.packetdrill {
		r.notes = append(r.notes, "the DUT sent packets the script does not expect by its end (packetdrill does not check):\n"+r.listPending())
	} else if len(r.pending) > 0 {
		return &runError{line: last.Line, msg: "the DUT sent packets the script does not expect by its end:\n" + r.listPending()}
	}
	return nil
}

func (r *runner) listPending() string {
	var b strings.Builder
	for _, e := range r.pending {
		fmt.Fprintf(&b, "  actual:   %s %s\n", fmtTime(e.At), r.renderEmission(&e))
	}
	return strings.TrimRight(b.String(), "\n")
}

// window returns the event's time range in script time.
func (r *runner) window(ev *Event) (lo, hi time.Duration) {
	switch ev.Time.Kind {
	case TimeAbs:
		return ev.Time.Lo, ev.Time.Hi
	case TimeRel:
		return r.now + ev.Time.Lo, r.now + ev.Time.Hi
	}
	return r.now, r.now
}

// advanceTo lets the DUT's clock reach t. While a blocking call is
// pending it goes in steps of at most a millisecond (and the tolerance),
// retrying the call at each, so it returns when it would have.
func (r *runner) advanceTo(t time.Duration) error {
	for r.blocked != nil && r.dut.Now() < t {
		step := min(time.Millisecond, max(r.tol/4, 10*time.Microsecond), t-r.dut.Now())
		r.dut.Advance(step)
		r.collect()
		if err := r.retryBlocked(); err != nil {
			return err
		}
	}
	if d := t - r.dut.Now(); d > 0 {
		r.dut.Advance(d)
	}
	r.collect()
	return r.retryBlocked()
}

// packet serializes a segment as it crossed the wire between the DUT and
// the peer, with the DUT's addresses.
func (r *runner) packet(toPeer bool, s *tcp.Segment, opts []byte, ip integration.IPFields) []byte {
	if f, ok := r.dut.(fastOpener); ok && opts != nil {
		return f.BuildPacketOpts(toPeer, s, opts, ip)
	}
	if b, ok := r.dut.(packetBuilder); ok {
		return b.BuildPacket(toPeer, s, ip)
	}
	return integration.BuildPacketIP(r.s.IPv6, toPeer, s, ip)
}

// malformed returns what the DUT emitted that could not be parsed as the
// connection's segments.
func (r *runner) malformed() []string {
	if m, ok := r.dut.(malformer); ok {
		return m.Malformed()
	}
	return nil
}

// collect takes the DUT's new emissions: learns its ISN from its first SYN,
// checks that each serializes to a packet with a valid checksum, and queues
// it for `>` lines.
func (r *runner) collect() {
	for _, e := range r.dut.TakeEmitted() {
		s := &e.Seg
		if s.Flags&tcp.FlagSYN != 0 && !r.issKnown {
			r.dutISN, r.issKnown = s.Seq, true
		}
		if s.Flags&(tcp.FlagSYN|tcp.FlagACK) == tcp.FlagSYN {
			r.opening = true
		}
		end := s.Seq + tcp.Seq(len(s.Payload))
		if s.Flags&(tcp.FlagSYN|tcp.FlagFIN) != 0 {
			end++
		}
		if !r.dutNxtSet || end-r.dutNxt < 1<<31 {
			r.dutNxt, r.dutNxtSet = end, true
		}
		if s.Options.HasTimestamp {
			r.lastTS, r.hasTS = s.Options.TSVal, true
		}
		pkt := r.packet(true, s, nil, e.IP)
		if !checksumOK(pkt, r.s.IPv6) {
			r.badSums++
		}
		if r.pcap != nil {
			r.pcap.write(e.At, pkt)
		}
		r.logf(e.At, "> %s", r.renderEmission(&e))
		r.pending = append(r.pending, e)
	}
}

func (r *runner) expect(ev *Event) error {
	lo, hi := r.window(ev)
	tol := r.tolFor(lo - r.now)
	r.prevInject = false
	if w, ok := r.dut.(emissionWaiter); ok && len(r.pending) == 0 {
		// Real time: take the packet the moment it leaves.
		deadline := hi + tol
		if ev.Time.Kind == TimeAny {
			deadline = r.dut.Now() + 10*time.Minute
		}
		if r.blocked == nil {
			w.WaitEmitted(deadline)
		}
		r.collect()
	}
	if len(r.pending) == 0 {
		if ev.Time.Kind == TimeAny {
			// Step forward until something comes out: in tolerance-sized
			// steps for 10 s (so later +0 lines stay within tolerance),
			// then in 100 ms steps up to 10 minutes.
			fine := max(tol, time.Millisecond)
			for start := r.dut.Now(); len(r.pending) == 0 && r.dut.Now() < start+10*time.Minute; {
				step := fine
				if r.dut.Now() >= start+10*time.Second {
					step = 100 * time.Millisecond
				}
				if err := r.advanceTo(r.dut.Now() + step); err != nil {
					return err
				}
			}
		} else {
			// Up to the line's time, or through its range in steps: the
			// packet ends the wait when it leaves, so the DUT's clock is
			// not past it when the next line happens (packetdrill times
			// what follows from the packet seen, not from the range's
			// end).
			step := min(max(tol/4, 10*time.Microsecond), time.Millisecond)
			if err := r.advanceTo(lo); err != nil {
				return err
			}
			for len(r.pending) == 0 && r.dut.Now() < hi {
				if err := r.advanceTo(min(r.dut.Now()+step, hi)); err != nil {
					return err
				}
			}
			for len(r.pending) == 0 && r.dut.Now() < hi+tol {
				// Step through the tolerance so a blocked call or a
				// real-time DUT is seen as soon as it sends.
				if err := r.advanceTo(min(r.dut.Now()+max(tol/4, time.Microsecond), hi+tol)); err != nil {
					return err
				}
			}
		}
	}
	if ev.Packet.Feature != "" && !r.wireOpts(ev.Packet) {
		return r.packetUnsupported(ev, "check")
	}
	want := "  expected: " + fmtTime(lo) + " > " + renderPacket(ev.Packet)
	if len(r.pending) == 0 {
		return r.fail(ev, "the DUT sent nothing\n%s\n  actual:   (nothing by %s)", want, fmtTime(r.dut.Now()))
	}
	r.aggDeadline = hi + tol
	e := r.takeSegment(ev.Packet)
	if e.Seg.Flags&tcp.FlagSYN != 0 && ev.Packet.Flags&tcp.FlagSYN != 0 && (!r.synMatched || e.Seg.Seq != r.dutSYN) {
		// The script's SYN sequence number names the DUT's ISN (0 as a
		// rule; packetdrill maps whatever the line says onto the live
		// one), for each new connection (a SYN with a new ISN; a
		// retransmitted one keeps it).
		r.dutISN, r.dutBase, r.synMatched, r.dutSYN = e.Seg.Seq, ev.Packet.Seq, true, e.Seg.Seq
	}
	if r.badSums > 0 {
		return r.fail(ev, "the DUT sent a packet with a bad checksum")
	}
	if m := r.malformed(); len(m) > 0 {
		return r.fail(ev, "the DUT sent packets that are not the connection's well-formed TCP: %s", strings.Join(m, "; "))
	}
	var bad []string
	if ev.Time.Kind != TimeAny && (e.At < lo-tol || e.At > hi+tol) {
		bad = append(bad, fmt.Sprintf("sent at %s, want %s", fmtTime(e.At), timeText(lo, hi, tol)))
	}
	bad = append(bad, r.compare(ev.Packet, &e.Seg)...)
	if ev.Packet.Opts != nil {
		if got, want := extraText(e.ExtraOptions), extraText(r.extraBytes(ev.Packet)); got != want {
			bad = append(bad, fmt.Sprintf("options <%s>, want <%s>", got, want))
		}
	}
	bad = append(bad, compareIP(ev.Packet, e.IP, r.s.IPv6)...)
	if len(bad) > 0 {
		return r.fail(ev, "%s\n%s\n  actual:   %s > %s", strings.Join(bad, "; "), want, fmtTime(e.At), r.renderEmission(&e))
	}
	if o := ev.Packet.Opts; o != nil && o.HasTimestamp && e.Seg.Options.HasTimestamp {
		r.tsMap[o.TSVal] = e.Seg.Options.TSVal
	}
	r.now = e.At
	return nil
}

func timeText(lo, hi, tol time.Duration) string {
	if lo == hi {
		return fmt.Sprintf("%s ±%dus", fmtTime(lo), tol/time.Microsecond)
	}
	return fmt.Sprintf("%s~%s ±%dus", fmtTime(lo), fmtTime(hi), tol/time.Microsecond)
}

// compare lists the differences between an outbound line and a segment.
func (r *runner) compare(p *Packet, s *tcp.Segment) []string {
	var bad []string
	if s.Flags != p.Flags {
		bad = append(bad, fmt.Sprintf("flags %s, want %s", flagText(s.Flags), flagText(p.Flags)))
	}
	if seq := uint32(s.Seq - r.dutOff(p.Flags&tcp.FlagSYN != 0)); seq != p.Seq {
		bad = append(bad, fmt.Sprintf("seq %d, want %d", seq, p.Seq))
	}
	if len(s.Payload) != p.Len {
		bad = append(bad, fmt.Sprintf("length %d, want %d", len(s.Payload), p.Len))
	}
	if p.HasAck && s.Flags&tcp.FlagACK != 0 {
		if ack := uint32(s.Ack - r.peerOff(p.Flags&tcp.FlagSYN != 0)); ack != p.Ack {
			bad = append(bad, fmt.Sprintf("ack %d, want %d", ack, p.Ack))
		}
	}
	if r.match == Strict && p.HasWin && s.Window != p.Win {
		bad = append(bad, fmt.Sprintf("win %d, want %d", s.Window, p.Win))
	}
	if p.Opts != nil {
		if got, want := r.optText(&s.Options), optText(p.Opts, r.match == Strict, 0); got != want {
			bad = append(bad, fmt.Sprintf("options <%s>, want <%s>", got, want))
		}
	}
	return bad
}

// optText renders options for comparison: with values (strict, TS val
// left out) or kinds only (semantic). SACK blocks are shifted by base.
func optText(o *tcp.Options, values bool, base tcp.Seq) string {
	var p []string
	if o.HasMSS {
		p = append(p, "mss"+cond(values, fmt.Sprintf(" %d", o.MSS)))
	}
	if o.SACKPermitted {
		p = append(p, "sackOK")
	}
	if o.HasTimestamp {
		p = append(p, "TS"+cond(values, fmt.Sprintf(" ecr %d", o.TSEcr)))
	}
	if o.HasWindowScale {
		p = append(p, "wscale"+cond(values, fmt.Sprintf(" %d", o.WindowScale)))
	}
	if o.NumSACK > 0 {
		s := "sack"
		if values {
			for i := range int(o.NumSACK) {
				s += fmt.Sprintf(" %d:%d", uint32(o.SACKBlocks[i].Start-base), uint32(o.SACKBlocks[i].End-base))
			}
		} else {
			s += fmt.Sprintf(" x%d", o.NumSACK)
		}
		p = append(p, s)
	}
	return strings.Join(p, ",")
}

// optText of a DUT segment: SACK blocks relative to the peer's ISN, TS
// ecr as the script wrote the value it echoes (inbound TS vals are sent
// verbatim).
func (r *runner) optText(o *tcp.Options) string {
	return optText(o, r.match == Strict, r.peerOff(false))
}

func cond(b bool, s string) string {
	if b {
		return s
	}
	return ""
}

func flagText(f tcp.Flags) string {
	var b strings.Builder
	for _, x := range []struct {
		f tcp.Flags
		c byte
	}{{tcp.FlagFIN, 'F'}, {tcp.FlagSYN, 'S'}, {tcp.FlagRST, 'R'}, {tcp.FlagPSH, 'P'}, {tcp.FlagACK, '.'}, {tcp.FlagURG, 'U'}, {tcp.FlagECE, 'E'}, {tcp.FlagCWR, 'W'}} {
		if f&x.f != 0 {
			b.WriteByte(x.c)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	// packetdrill writes SYN before FIN (S. rather than .S); keep S first.
	s := b.String()
	if strings.HasPrefix(s, "FS") {
		s = "SF" + s[2:]
	}
	return s
}

// renderPacket writes a script packet in packetdrill notation.
func renderPacket(p *Packet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d:%d(%d)", flagText(p.Flags), p.Seq, p.Seq+uint32(p.Len), p.Len)
	if p.HasAck {
		fmt.Fprintf(&b, " ack %d", p.Ack)
	}
	if p.HasWin {
		fmt.Fprintf(&b, " win %d", p.Win)
	}
	if p.Wire != nil {
		fmt.Fprintf(&b, " <%s>", wireText(p))
	} else if p.Opts != nil {
		fmt.Fprintf(&b, " <%s>", fullOptText(p.Opts, 0))
	}
	return b.String()
}

// fullOptText renders options in packetdrill notation with every value.
func fullOptText(o *tcp.Options, base tcp.Seq) string {
	var p []string
	if o.HasMSS {
		p = append(p, fmt.Sprintf("mss %d", o.MSS))
	}
	if o.SACKPermitted {
		p = append(p, "sackOK")
	}
	if o.HasTimestamp {
		p = append(p, fmt.Sprintf("TS val %d ecr %d", o.TSVal, o.TSEcr))
	}
	if o.HasWindowScale {
		p = append(p, fmt.Sprintf("wscale %d", o.WindowScale))
	}
	if o.NumSACK > 0 {
		s := "sack"
		for i := range int(o.NumSACK) {
			s += fmt.Sprintf(" %d:%d", uint32(o.SACKBlocks[i].Start-base), uint32(o.SACKBlocks[i].End-base))
		}
		p = append(p, s)
	}
	return strings.Join(p, ",")
}

// render writes a DUT segment in packetdrill notation, relative to the ISNs.
func (r *runner) render(s *tcp.Segment) string {
	var b strings.Builder
	seq := uint32(s.Seq - r.dutOff(s.Flags&tcp.FlagSYN != 0))
	fmt.Fprintf(&b, "%s %d:%d(%d)", flagText(s.Flags), seq, seq+uint32(len(s.Payload)), len(s.Payload))
	if s.Flags&tcp.FlagACK != 0 {
		fmt.Fprintf(&b, " ack %d", uint32(s.Ack-r.peerOff(s.Flags&tcp.FlagSYN != 0)))
	}
	fmt.Fprintf(&b, " win %d", s.Window)
	o := s.Options
	if o.HasTimestamp {
		// The DUT's TS val relative to its first one: each DUT has its own
		// clock (gVisor's offset is random per stack), and reports must
		// be the same from run to run.
		if !r.tsBaseSet {
			r.tsBase, r.tsBaseSet = o.TSVal, true
		}
		o.TSVal -= r.tsBase
	}
	if t := fullOptText(&o, r.peerOff(false)); t != "" {
		fmt.Fprintf(&b, " <%s>", t)
	}
	return b.String()
}

// step runs a `<` line, a call or a shell line at its time, after checking
// that the DUT sent nothing the script did not expect before it.
func (r *runner) step(ev *Event) error {
	lo, _ := r.window(ev)
	if ev.Kind == EvCall || ev.Kind == EvCode {
		// A system call waits for the blocked one (packetdrill's one
		// system call thread).
		if err := r.finishBlocked(ev); err != nil {
			return err
		}
	}
	if err := r.advanceTo(lo); err != nil {
		return err
	}
	if _, linux := r.dut.(fastOpener); linux && ev.Kind == EvCall && ev.Call.Name == "socket" && len(r.pending) > 0 {
		// A new socket is packetdrill's socket under test from here on:
		// what the previous one sent and no line read is never looked
		// at (packetdrill reads only the socket under test's packets).
		r.logf(r.dut.Now(), "(%d packets of the previous socket not read by the script)", len(r.pending))
		r.pending = nil
	}
	if len(r.pending) > 0 && !r.packetdrill {
		stray := r.fail(ev, "the DUT sent a packet the script does not expect before this line:\n%s", r.listPending())
		if ev.Kind == EvCall {
			// The script stops here either way; if this line needs a
			// feature the DUT lacks, that is the outcome (inq/client
			// sets TCP_INQ between the connect and the line for its SYN).
			var re *runError
			if err := r.call(ev); errors.As(err, &re) && re.feature != "" {
				return err
			}
		}
		return stray
	}
	r.now = lo
	at := max(lo, r.dut.Now())
	if rt, ok := r.dut.(realTimer); ok && rt.RealTime() {
		// In real time a step can start late (a loaded machine oversleeps);
		// what follows it is relative to when it actually happened, as a
		// packet's reaction is to the packet, not to its schedule.
		r.now = at
		if ev.Kind == EvInject && r.prevInject && ev.Time.Kind == TimeRel {
			// packetdrill anchors consecutive relative `<` lines to each
			// other's script times, so that the harness's own overhead
			// on a burst does not accumulate.
			r.now = lo
		}
	}
	r.prevInject = ev.Kind == EvInject
	var err error
	switch ev.Kind {
	case EvInject:
		err = r.inject(ev)
	case EvCall:
		r.logf(at, "%s", callText(ev.Call))
		err = r.call(ev)
	case EvCode:
		r.logf(at, "%%{ %s }%%", codeText(ev.Code))
		err = r.code(ev)
	case EvShell:
		err = r.shell(ev, at)
	}
	if err != nil {
		return err
	}
	r.collect()
	return r.retryBlocked()
}

func callText(c *Call) string {
	s := fmt.Sprintf("%s(%s) = %d", c.Name, strings.Join(c.Args, ", "), c.Ret)
	if c.RetAny {
		s = fmt.Sprintf("%s(%s) = ...", c.Name, strings.Join(c.Args, ", "))
	}
	if c.Errno != "" && c.Errno != "*" {
		s += " " + c.Errno
	}
	return strings.ReplaceAll(s, "\n", " ")
}

func codeText(c *Code) string {
	var p []string
	for _, s := range c.Stmts {
		p = append(p, s.Text)
	}
	return strings.Join(p, "; ")
}

func (r *runner) inject(ev *Event) error {
	p := ev.Packet
	if p.Feature != "" && !r.wireOpts(p) {
		return r.packetUnsupported(ev, "build")
	}
	syn := p.Flags&tcp.FlagSYN != 0
	seg := tcp.Segment{Seq: r.peerOff(syn) + tcp.Seq(p.Seq), Flags: p.Flags, Window: 65535}
	var peerPort uint16
	switch {
	case syn && p.Flags&tcp.FlagACK == 0 && r.listened:
		r.peerBase, r.listened = p.Seq, false
		if r.peerConns++; r.peerConns > 1 {
			if _, fresh := r.dut.(freshPeerPorter); fresh {
				peerPort = integration.PeerPort + uint16(r.peerConns-1)
			}
		}
	case syn && p.Flags&tcp.FlagACK != 0 && r.opening:
		r.peerBase, r.opening = p.Seq, false
	}
	if p.HasWin {
		seg.Window = p.Win
	}
	if p.HasAck {
		if !r.issKnown {
			return r.unsupported(ev, "`ack` on an inbound packet before the DUT sent its SYN or SYN-ACK (its ISN is unknown)")
		}
		seg.Ack = r.dutOff(syn) + tcp.Seq(p.Ack)
	} else if p.Flags&tcp.FlagACK != 0 {
		// `.` without `ack N`: acknowledge everything the DUT sent.
		seg.Ack = r.dutNxt
	}
	if p.Opts != nil {
		seg.Options = *p.Opts
		o := &seg.Options
		if o.HasTimestamp && o.TSEcr != 0 {
			if v, ok := r.tsMap[o.TSEcr]; ok {
				o.TSEcr = v
			} else if r.hasTS {
				o.TSEcr = r.lastTS
			}
		}
		for i := range int(o.NumSACK) {
			if !r.issKnown {
				return r.unsupported(ev, "SACK blocks before the DUT's ISN is known")
			}
			o.SACKBlocks[i].Start += r.dutOff(false)
			o.SACKBlocks[i].End += r.dutOff(false)
		}
	}
	if p.Len > 0 {
		seg.Payload = make([]byte, p.Len)
		for i := range seg.Payload {
			seg.Payload[i] = byte(p.Seq+uint32(i)) | 0x40
		}
	}
	if p.HasUrg {
		seg.Urgent = p.Urg
	}
	if p.Flags&tcp.FlagSYN != 0 {
		r.peerMSS = 536
		if p.Opts != nil && p.Opts.HasMSS {
			r.peerMSS = p.Opts.MSS
		}
	}
	ip := integration.IPFields{TOS: p.IP.TOS, TTL: p.IP.TTL, FlowLabel: p.IP.FlowLabel}
	var opts []byte
	if p.Wire != nil {
		opts = encodeWireOpts(p.Wire, &seg.Options, r.cookie)
	}
	if r.pcap != nil {
		r.pcap.write(r.dut.Now(), r.packet(false, &seg, opts, ip))
	}
	r.logf(r.dut.Now(), "< %s", renderPacket(p))
	r.dut.Inject(&Inbound{Seg: seg, IP: ip, Options: opts, PeerPort: peerPort})
	return nil
}
