// Package drill runs packetdrill scripts against TCP implementations under
// test (the bare ustack engine, gVisor, the Linux kernel) and reports, line
// by line, where what a stack did differs from the script.
//
// The language is packetdrill's (its grammar and the scripts of the public
// corpus): command-line option lines, backquoted shell lines (run on the
// Linux DUT in its namespace; on the others their sysctl settings are
// mapped to the DUT's configuration), `%{ }%` assertion blocks on tcp_info
// fields, system calls with packetdrill's argument forms (including
// blocking calls with `...end` times), and TCP packets with IP fields
// (`[ect0]`, `(tos 0x10)`, `(ttl 64)`, `(flowlabel 0x1)`). Documented limits: options are compared as a set
// (order, NOP and EOL padding are not visible through the DUTs' parsed
// segments); an outbound packet's TS val is not compared (each DUT has its
// own clock) while its TS ecr is; `win` and `<options>` left out of an
// outbound line are not checked. A feature a DUT does not have is reported
// as "unsupported by the DUT: FEATURE" when the line runs; a line the parser
// cannot read is an error naming the line.
package drill

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/tcp"
)

// DefaultTolerance is packetdrill's default timing tolerance.
const DefaultTolerance = 4 * time.Millisecond

// DefaultTolerancePercent is packetdrill's default --tolerance_percent.
const DefaultTolerancePercent = 12.5

// Script is a parsed script.
type Script struct {
	// Name identifies the script in reports (its path as given).
	Name string
	// Dir is the script's directory, where shell lines run (so
	// `../common/defaults.sh` resolves); "" for a script not from a file.
	Dir string
	// Tolerance is how far an outbound packet may be from its line's time.
	Tolerance time.Duration
	// TolerancePercent widens the tolerance of an event to this share of
	// the time since the previous one (--tolerance_percent; packetdrill's
	// default 12.5, the worst-case slack of Linux's timer wheel).
	TolerancePercent float64
	// IPv6 runs the script over IPv6.
	IPv6 bool
	// MTU is --mtu (0: the DUT's default, 1500).
	MTU int
	// MSS is --mss (0: unset).
	MSS int
	// Options are the command-line options as written, name (without
	// `--`) to value ("" for a flag without one).
	Options map[string]string
	// Expect holds per-DUT expected outcomes from `// expect` directives.
	Expect map[string]Expectation
	// Events are the timed lines, in order.
	Events []Event
}

// Expectation is a script's declared outcome on one DUT, for documented
// divergences: the run must fail at exactly Line, or is skipped.
type Expectation struct {
	// Fail means the run must fail at Line; otherwise the DUT is skipped.
	Fail bool
	// Line is the line at which the run must fail.
	Line int
	// Reason is the directive's explanation (a divergence name).
	Reason string
}

// TimeKind says how an event's time is written.
type TimeKind uint8

// The time forms.
const (
	TimeAbs TimeKind = iota + 1 // 0.100, or a range 0.1~0.2
	TimeRel                     // +0.1, or a range +0.1~+0.2
	TimeAny                     // *
)

// Time is an event's time: [Lo, Hi] relative to the script start (TimeAbs)
// or to the previous event (TimeRel); Lo == Hi unless a range was written.
// A blocking call's `...END` is End, on the same base as Lo (HasEnd).
type Time struct {
	Kind   TimeKind
	Lo, Hi time.Duration
	HasEnd bool
	End    time.Duration
}

// EventKind says what an event line is.
type EventKind uint8

// The event kinds.
const (
	EvInject EventKind = iota + 1 // `<` a packet the peer sends
	EvExpect                      // `>` a packet the DUT must send
	EvCall                        // a socket call
	EvShell                       // a backquoted shell command
	EvCode                        // a %{ }% assertion block
)

// Event is one timed script line (a call, shell command or code block may
// span several lines; Line is the first).
type Event struct {
	Line   int
	Time   Time
	Kind   EventKind
	Packet *Packet
	Call   *Call
	Shell  string
	Code   *Code
	// Text is the line as written (comments stripped), for reports.
	Text string
	// Init marks packetdrill's init command: an untimed shell line before
	// any other event. packetdrill runs it before its clock starts, so the
	// script's time 0 is when it has finished.
	Init bool
}

// Packet is a `<` or `>` line. Sequence numbers are relative: the sender's
// ISN is 0; acknowledgment numbers are relative to the receiver's ISN.
type Packet struct {
	Flags  tcp.Flags
	Seq    uint32
	Len    int
	HasAck bool
	Ack    uint32
	HasWin bool
	Win    uint16
	// Urg is the urgent pointer (`urg N`); HasUrg when written.
	HasUrg bool
	Urg    uint16
	// Opts is nil when no `<...>` was written (or `<...>`: any options).
	// NOP and EOL are accepted and dropped; SACK blocks hold relative
	// numbers as written.
	Opts *tcp.Options
	// IP holds the IP fields written in `[...]` or `(...)`; Has says which.
	IP    integration.IPFields
	HasIP IPMask
	// Feature, when not "", names a packet feature the line needs (TCP
	// Fast Open or MD5 options, ICMP, UDP): a DUT without it reports the
	// line unsupported. The linux DUT gets Fast Open and MD5 options byte
	// for byte (Wire); ICMP and UDP the harness cannot build.
	Feature string
	// Wire is the option list in the order written, when it has an
	// option tcp.Options cannot carry (Fast Open, MD5); nil otherwise.
	Wire []WireOpt
}

// IPMask says which IP fields a packet line gives.
type IPMask uint8

// The IP fields a line may give.
const (
	HasECN IPMask = 1 << iota // [noecn] [ect0] [ect1] [ce] [ect01]: ECN bits only
	HasTOS                    // (tos 0x..): the whole byte
	HasTTL
	HasFlowLabel
	// ECT01 accepts ECT(0) or ECT(1) on a `>` line.
	ECT01
)

// Call is a system call line: name(args) = Ret [Errno] [(note)].
type Call struct {
	Name string
	// Args are the arguments as written; Vals parsed.
	Args []string
	Vals []Val
	Ret  int64
	// RetAny is a `= ...` result: not checked.
	RetAny bool
	Errno  string
}

// ParseError is a script error at a line.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// stripComments removes // and /* */ comments (not inside backquotes or
// %{ }% code, which keep their own), keeping line numbers, and returns the
// `// expect` directives with their lines.
func stripComments(src string) (lines []string, directives map[int]string) {
	directives = map[int]string{}
	raw := strings.Split(src, "\n")
	inBlock, inQuote, inCode := false, false, false
	for i, l := range raw {
		var b strings.Builder
		quoted := inQuote
		for j := 0; j < len(l); j++ {
			if inBlock {
				if strings.HasPrefix(l[j:], "*/") {
					inBlock = false
					j++
				}
				continue
			}
			switch {
			case !inCode && l[j] == '`':
				inQuote = !inQuote
			case !inQuote && !inCode && strings.HasPrefix(l[j:], "%{"):
				inCode = true
			case inCode && strings.HasPrefix(l[j:], "}%"):
				inCode = false
			}
			if !inQuote && !inCode && strings.HasPrefix(l[j:], "/*") {
				inBlock = true
				j++
				continue
			}
			// packetdrill strips // comments inside code blocks too.
			if !inQuote && strings.HasPrefix(l[j:], "//") {
				c := strings.TrimSpace(l[j+2:])
				if strings.HasPrefix(c, "expect ") {
					directives[i+1] = c
				}
				break
			}
			b.WriteByte(l[j])
		}
		t := strings.TrimSpace(b.String())
		if quoted && t != "" && t[0] != b.String()[0] {
			// Inside a shell line the indent separates words after a
			// `\` continuation (`tcp_timestamps=0\` then an indented
			// next path): keep one space of it.
			t = " " + t
		}
		lines = append(lines, t)
	}
	return lines, directives
}

// logicalLines joins a line with the next ones while a backquote, a %{
// block or a bracket is open, and returns each with its first line number.
func logicalLines(lines []string) (out []string, nums []int) {
	var cur strings.Builder
	first := 0
	open := func(s string) bool {
		if strings.Count(s, "`")%2 == 1 {
			return true
		}
		if i := strings.Index(s, "%{"); i >= 0 {
			return !strings.Contains(s[i:], "}%")
		}
		depth := 0
		for _, c := range s {
			switch c {
			case '(', '[', '{':
				depth++
			case ')', ']', '}':
				depth--
			}
		}
		return depth > 0
	}
	for i, l := range lines {
		if cur.Len() == 0 {
			if l == "" {
				continue
			}
			first = i + 1
		} else {
			cur.WriteByte('\n')
		}
		cur.WriteString(l)
		if !open(cur.String()) {
			out, nums = append(out, cur.String()), append(nums, first)
			cur.Reset()
		}
	}
	if cur.Len() > 0 {
		out, nums = append(out, cur.String()), append(nums, first)
	}
	return out, nums
}

// Parse parses a script. name is used in errors and reports.
func Parse(name, src string) (*Script, error) {
	s := &Script{Name: name, Tolerance: DefaultTolerance, TolerancePercent: DefaultTolerancePercent, Expect: map[string]Expectation{}, Options: map[string]string{}}
	lines, dirs := stripComments(src)
	for ln, d := range dirs {
		if err := s.directive(d); err != nil {
			return nil, &ParseError{name, ln, err.Error()}
		}
	}
	ll, nums := logicalLines(lines)
	for i, l := range ll {
		if err := s.line(nums[i], l); err != nil {
			return nil, &ParseError{name, nums[i], err.Error()}
		}
	}
	if len(s.Events) == 0 {
		return nil, &ParseError{name, len(lines), "script has no events"}
	}
	return s, nil
}

// KnownDUTs are the DUT names directives may name.
var KnownDUTs = []string{"ustack", "tcp", "gvisor", "linux"}

// directive parses `expect DUT: fail line N: reason` or `expect DUT: skip: reason`.
func (s *Script) directive(d string) error {
	rest := strings.TrimPrefix(d, "expect ")
	dut, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return fmt.Errorf("directive %q: want `expect DUT: fail line N: reason` or `expect DUT: skip: reason`", d)
	}
	dut = strings.TrimSpace(dut)
	known := false
	for _, k := range KnownDUTs {
		known = known || k == dut
	}
	if !known {
		return fmt.Errorf("directive names unknown DUT %q", dut)
	}
	if _, dup := s.Expect[dut]; dup {
		return fmt.Errorf("second expect directive for %s", dut)
	}
	rest = strings.TrimSpace(rest)
	var e Expectation
	switch {
	case strings.HasPrefix(rest, "skip:"):
		e.Reason = strings.TrimSpace(rest[len("skip:"):])
	case strings.HasPrefix(rest, "fail line "):
		num, reason, ok := strings.Cut(rest[len("fail line "):], ":")
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if !ok || err != nil || n <= 0 {
			return fmt.Errorf("directive %q: want `fail line N: reason`", d)
		}
		e.Fail, e.Line, e.Reason = true, n, strings.TrimSpace(reason)
	default:
		return fmt.Errorf("directive %q: outcome must be `fail line N:` or `skip:`", d)
	}
	if e.Reason == "" {
		return fmt.Errorf("directive %q gives no reason", d)
	}
	s.Expect[dut] = e
	return nil
}

func (s *Script) line(n int, l string) error {
	if strings.HasPrefix(l, "--") {
		if len(s.Events) > 0 {
			return fmt.Errorf("option %q after the first event", l)
		}
		return s.option(l)
	}
	if strings.HasPrefix(l, "`") {
		return s.shell(n, Time{Kind: TimeRel}, l, true)
	}
	tok, rest := l, ""
	if i := strings.IndexAny(l, " \t"); i >= 0 {
		tok, rest = l[:i], l[i:]
	}
	if i := strings.IndexAny(tok, "%`"); i > 0 {
		tok, rest = tok[:i], tok[i:]+" "+rest
	}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "...") && !strings.Contains(tok, "...") {
		// `+0 ... 0.010 call()`: the end time written apart.
		end := strings.TrimSpace(rest[3:])
		e := end
		if i := strings.IndexAny(end, " \t"); i >= 0 {
			e, rest = end[:i], strings.TrimSpace(end[i:])
		} else {
			rest = ""
		}
		tok += "..." + e
	}
	t, err := parseTime(tok)
	if err != nil {
		return err
	}
	ev := Event{Line: n, Time: t, Text: l}
	switch {
	case rest == "":
		return fmt.Errorf("time %q with no event", tok)
	case strings.HasPrefix(rest, "`"):
		if t.HasEnd {
			return fmt.Errorf("a shell command cannot block (`...` end time)")
		}
		return s.shell(n, t, rest, false)
	case strings.HasPrefix(rest, "%{"):
		if !strings.HasSuffix(rest, "}%") {
			return fmt.Errorf("unterminated %%{ code block")
		}
		c, err := parseCode(rest[2 : len(rest)-2])
		if err != nil {
			return err
		}
		ev.Kind, ev.Code = EvCode, c
	case rest[0] == '<' || rest[0] == '>':
		p, err := parsePacket(rest[1:])
		if err != nil {
			return err
		}
		ev.Kind, ev.Packet = EvInject, p
		if rest[0] == '>' {
			ev.Kind = EvExpect
		}
	default:
		c, err := parseCall(rest)
		if err != nil {
			return err
		}
		ev.Kind, ev.Call = EvCall, c
	}
	if t.Kind == TimeAny && ev.Kind != EvExpect {
		return fmt.Errorf("`*` time is only allowed on `>` lines")
	}
	if t.HasEnd && ev.Kind != EvCall {
		return fmt.Errorf("only a system call can have a `...` end time")
	}
	s.Events = append(s.Events, ev)
	return nil
}

func (s *Script) shell(n int, t Time, l string, untimed bool) error {
	if len(l) < 2 || !strings.HasSuffix(l, "`") {
		return fmt.Errorf("unterminated backquoted shell command")
	}
	ev := Event{Line: n, Time: t, Kind: EvShell, Shell: strings.TrimSpace(l[1 : len(l)-1]), Text: l}
	ev.Init = untimed && len(s.Events) == 0
	s.Events = append(s.Events, ev)
	return nil
}

// knownOptions are packetdrill's command-line options a script may set.
// The harness owns the addresses (it uses only the benchmarking ranges),
// so the address options are recorded but do not move the DUT.
var knownOptions = map[string]bool{
	"tolerance_usecs": true, "ip_version": true, "mtu": true, "mss": true,
	"local_ip": true, "remote_ip": true, "gateway_ip": true, "netmask_ip": true,
	"bind_port": true, "connect_port": true, "speaker": true, "init_scripts": true,
	"strict_segments": true, "tcp_ts_ecr_scaled": true, "tcp_ts_tick_usecs": true,
	"wire_client": true, "wire_server": true, "wire_server_ip": true, "wire_server_port": true,
	"wire_client_dev": true, "wire_server_dev": true, "non_fatal": true, "dry_run": true,
	"verbose": true, "debug": true, "send_omit_free": true, "so_filename": true,
	"tolerance_percent": true, "persistent_tun_dev": true, "tun_dev": true, "defaults": true,
	"local_linklocal_ip": true, "wire_protocol": true, "no_delay": true,
}

func (s *Script) option(l string) error {
	for _, f := range strings.Fields(l) {
		k, v, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if !knownOptions[k] {
			return fmt.Errorf("unsupported option --%s", k)
		}
		s.Options[k] = v
		switch k {
		case "tolerance_usecs":
			u, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Errorf("--tolerance_usecs=%q: %v", v, err)
			}
			s.Tolerance = time.Duration(u) * time.Microsecond
		case "tolerance_percent":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 100 {
				return fmt.Errorf("--tolerance_percent=%q: want 0..100", v)
			}
			s.TolerancePercent = f
		case "ip_version":
			switch v {
			case "ipv4":
				s.IPv6 = false
			case "ipv6":
				s.IPv6 = true
			case "ipv4-mapped-ipv6":
				// An AF_INET6 socket speaking IPv4: the wire is IPv4.
				s.IPv6 = false
			default:
				return fmt.Errorf("--ip_version=%s: want ipv4, ipv6 or ipv4-mapped-ipv6", v)
			}
		case "mtu":
			m, err := strconv.Atoi(v)
			if err != nil || m < 576 || m > 65535 {
				return fmt.Errorf("--mtu=%q: want 576..65535", v)
			}
			s.MTU = m
		case "mss", "tcp_ts_tick_usecs":
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("--%s=%q: want a number", k, v)
			}
			if k == "mss" {
				s.MSS = n
			}
		}
	}
	return nil
}

func parseSeconds(s string) (time.Duration, error) {
	if s == "" || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("bad time %q", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad time %q", s)
	}
	// Round to the microsecond, packetdrill's resolution.
	return time.Duration(f*1e6+0.5) * time.Microsecond, nil
}

func parseTime(tok string) (Time, error) {
	if tok == "*" {
		return Time{Kind: TimeAny}, nil
	}
	if start, end, ok := strings.Cut(tok, "..."); ok {
		t, err := parseTime(start)
		if err != nil {
			return Time{}, err
		}
		if t.Kind == TimeAny || t.Lo != t.Hi {
			return Time{}, fmt.Errorf("blocking call time %q: the start must be one time", tok)
		}
		e, err := parseSeconds(strings.TrimPrefix(end, "+"))
		if err != nil {
			return Time{}, err
		}
		if e < t.Lo {
			return Time{}, fmt.Errorf("blocking call time %q ends before it starts", tok)
		}
		t.HasEnd, t.End = true, e
		return t, nil
	}
	kind := TimeAbs
	if strings.HasPrefix(tok, "+") {
		kind = TimeRel
	}
	lo, hi, isRange := strings.Cut(tok, "~")
	if kind == TimeRel {
		lo = lo[1:]
		if isRange {
			if !strings.HasPrefix(hi, "+") {
				return Time{}, fmt.Errorf("bad time range %q: both ends must be relative", tok)
			}
			hi = hi[1:]
		}
	}
	l, err := parseSeconds(lo)
	if err != nil {
		return Time{}, err
	}
	h := l
	if isRange {
		if h, err = parseSeconds(hi); err != nil {
			return Time{}, err
		}
		if h < l {
			return Time{}, fmt.Errorf("time range %q ends before it starts", tok)
		}
	}
	return Time{Kind: kind, Lo: l, Hi: h}, nil
}

func parseFlags(tok string) (tcp.Flags, error) {
	var f tcp.Flags
	for _, c := range tok {
		var b tcp.Flags
		switch c {
		case 'S':
			b = tcp.FlagSYN
		case 'F':
			b = tcp.FlagFIN
		case 'R':
			b = tcp.FlagRST
		case 'P':
			b = tcp.FlagPSH
		case '.':
			b = tcp.FlagACK
		case 'U':
			b = tcp.FlagURG
		case 'E':
			b = tcp.FlagECE
		case 'W':
			b = tcp.FlagCWR
		default:
			return 0, fmt.Errorf("bad TCP flags %q", tok)
		}
		if f&b != 0 {
			return 0, fmt.Errorf("flag %c repeated in %q", c, tok)
		}
		f |= b
	}
	return f, nil
}

func parseU32(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return uint32(v), nil
}

func parsePacket(s string) (*Packet, error) {
	s = strings.TrimSpace(s)
	p := &Packet{}
	// IP information first: [ect0] or (tos 0x10, flowlabel 0x1) or (ttl 64).
	if strings.HasPrefix(s, "[") || strings.HasPrefix(s, "(") {
		close := "]"
		if s[0] == '(' {
			close = ")"
		}
		end := strings.Index(s, close)
		if end < 0 {
			return nil, fmt.Errorf("unterminated IP information %q", s)
		}
		if err := parseIPInfo(p, s[1:end]); err != nil {
			return nil, err
		}
		s = strings.TrimSpace(s[end+1:])
	}
	if f := strings.Fields(s); len(f) > 0 {
		switch f[0] {
		case "icmp", "udp", "UDP", "ICMP", "ipv4", "ipv6", "gre", "mpls":
			// Not TCP: the harness speaks TCP only.
			p.Feature = strings.ToUpper(f[0]) + " packets"
			return p, nil
		}
	}
	var optText string
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if !strings.HasSuffix(s, ">") {
			return nil, fmt.Errorf("options must end the line with `>`")
		}
		optText = s[i+1 : len(s)-1]
		s = strings.TrimSpace(s[:i])
		if strings.ContainsAny(optText, "<>") {
			return nil, fmt.Errorf("bad options %q", optText)
		}
	}
	f := strings.Fields(s)
	if len(f) >= 3 && strings.Contains(f[0], ">") || len(f) >= 4 && f[1] == ">" {
		return nil, fmt.Errorf("port information (`SRC>DST`) is not supported: every packet is the script's one connection")
	}
	if len(f) < 2 {
		return nil, fmt.Errorf("packet line needs flags and start:end(len)")
	}
	var err error
	if f[0] != "-" {
		if p.Flags, err = parseFlags(f[0]); err != nil {
			return nil, err
		}
	}
	start, rest, ok1 := strings.Cut(f[1], ":")
	end, rest, ok2 := strings.Cut(rest, "(")
	ln, rest, ok3 := strings.Cut(rest, ")")
	if !ok1 || !ok2 || !ok3 || rest != "" {
		return nil, fmt.Errorf("bad sequence %q: want start:end(len)", f[1])
	}
	a, err := parseU32(start)
	if err != nil {
		return nil, err
	}
	b, err := parseU32(end)
	if err != nil {
		return nil, err
	}
	l, err := parseU32(ln)
	if err != nil {
		return nil, err
	}
	if b-a != l {
		return nil, fmt.Errorf("sequence %q: end - start is %d, not %d", f[1], b-a, l)
	}
	if l > 65000 {
		return nil, fmt.Errorf("payload length %d too large", l)
	}
	p.Seq, p.Len = a, int(l)
	for i := 2; i < len(f); i += 2 {
		if i+1 >= len(f) {
			return nil, fmt.Errorf("%q needs a value", f[i])
		}
		v, err := parseU32(f[i+1])
		if err != nil {
			return nil, err
		}
		switch f[i] {
		case "ack":
			if p.HasAck {
				return nil, fmt.Errorf("ack given twice")
			}
			p.HasAck, p.Ack = true, v
		case "win":
			if p.HasWin {
				return nil, fmt.Errorf("win given twice")
			}
			if v > 65535 {
				return nil, fmt.Errorf("win %d does not fit 16 bits", v)
			}
			p.HasWin, p.Win = true, uint16(v)
		case "urg":
			if v > 65535 {
				return nil, fmt.Errorf("urg %d does not fit 16 bits", v)
			}
			p.HasUrg, p.Urg = true, uint16(v)
		default:
			return nil, fmt.Errorf("unsupported packet field %q", f[i])
		}
	}
	if p.HasAck && p.Flags&tcp.FlagACK == 0 {
		return nil, fmt.Errorf("`ack N` needs the ACK flag `.`")
	}
	if strings.TrimSpace(optText) == "..." {
		return p, nil
	}
	if optText != "" || strings.Contains(s, "<") {
		o, wire, feature, err := parseOptions(optText)
		if err != nil {
			return nil, err
		}
		p.Opts, p.Wire = o, wire
		if feature != "" {
			p.Feature = feature
		}
	}
	return p, nil
}

// parseIPInfo parses `noecn`, `ect0`, `ect1`, `ce`, `ect01`, `tos 0x..`,
// `flowlabel 0x..` and `ttl N`, comma-separated.
func parseIPInfo(p *Packet, s string) error {
	for _, item := range strings.Split(s, ",") {
		f := strings.Fields(item)
		if len(f) == 0 {
			return fmt.Errorf("empty IP information in %q", s)
		}
		num := func() (uint64, error) {
			if len(f) != 2 {
				return 0, fmt.Errorf("IP field %q needs one value", item)
			}
			v, err := strconv.ParseUint(f[1], 0, 32)
			if err != nil {
				return 0, fmt.Errorf("IP field %q: bad number", item)
			}
			return v, nil
		}
		switch strings.ToLower(f[0]) {
		case "noecn", "ect0", "ect1", "ce", "ect01":
			if len(f) != 1 {
				return fmt.Errorf("bad ECN field %q", item)
			}
			p.HasIP |= HasECN
			switch strings.ToLower(f[0]) {
			case "ect1":
				p.IP.TOS |= 1
			case "ect0":
				p.IP.TOS |= 2
			case "ce":
				p.IP.TOS |= 3
			case "ect01":
				p.HasIP |= ECT01
				p.IP.TOS |= 2
			}
		case "tos":
			v, err := num()
			if err != nil {
				return err
			}
			if v > 255 {
				return fmt.Errorf("tos %#x does not fit 8 bits", v)
			}
			p.HasIP |= HasTOS
			p.IP.TOS = uint8(v)
		case "ttl", "hlim":
			v, err := num()
			if err != nil {
				return err
			}
			if v > 255 {
				return fmt.Errorf("ttl %d does not fit 8 bits", v)
			}
			p.HasIP |= HasTTL
			p.IP.TTL = uint8(v)
		case "flowlabel":
			v, err := num()
			if err != nil {
				return err
			}
			if v >= 1<<20 {
				return fmt.Errorf("flowlabel %#x does not fit 20 bits", v)
			}
			p.HasIP |= HasFlowLabel
			p.IP.FlowLabel = uint32(v)
		default:
			return fmt.Errorf("unknown IP field %q", item)
		}
	}
	return nil
}

// parseOptions parses a TCP option list. A list with an option the
// engine's tcp.Options has no field for (TCP Fast Open cookies, MD5
// signatures) also returns the whole list in the order written (for the
// linux DUT, which gets them byte for byte) and the feature's name (for
// the DUTs that lack it).
func parseOptions(s string) (o *tcp.Options, wire []WireOpt, feature string, err error) {
	o, wire, err = parseOptions1(s, &feature)
	if feature == "" {
		wire = nil
	}
	return o, wire, feature, err
}

func parseOptions1(s string, feature *string) (*tcp.Options, []WireOpt, error) {
	o := &tcp.Options{}
	if strings.TrimSpace(s) == "" {
		return o, nil, nil
	}
	var wire []WireOpt
	for _, item := range strings.Split(s, ",") {
		f := strings.Fields(item)
		if len(f) == 0 {
			return nil, nil, fmt.Errorf("empty option in %q", s)
		}
		arg := func(i int) (uint32, error) {
			if i >= len(f) {
				return 0, fmt.Errorf("option %q is missing a value", item)
			}
			return parseU32(f[i])
		}
		want := 1
		switch f[0] {
		case "FO", "FOEXP":
			if len(f) > 2 {
				return nil, nil, fmt.Errorf("bad Fast Open option %q", item)
			}
			w := WireOpt{Kind: optKindFastOpen}
			if f[0] == "FOEXP" {
				w.Kind = optKindExp
			}
			if len(f) == 2 {
				if f[1] == "TFO_COOKIE" {
					w.Sym = f[1]
				} else {
					c, err := parseHexBlob(f[1])
					if err != nil {
						return nil, nil, fmt.Errorf("Fast Open cookie: %v", err)
					}
					// RFC 7413 §4.1.1 allows 4 to 16 bytes; packetdrill
					// sends whatever fits, to test invalid cookies.
					if len(c) > 36 {
						return nil, nil, fmt.Errorf("Fast Open cookie of %d bytes does not fit the options", len(c))
					}
					w.Data = c
				}
			}
			wire = append(wire, w)
			*feature, want = "TCP Fast Open", len(f)
		case "md5":
			if len(f) != 2 {
				return nil, nil, fmt.Errorf("bad md5 option %q", item)
			}
			d, err := parseHexBlob(f[1])
			if err != nil || len(d) > 16 {
				return nil, nil, fmt.Errorf("bad md5 digest %q: want up to 16 bytes of hex", f[1])
			}
			wire = append(wire, WireOpt{Kind: optKindMD5, Data: d})
			*feature, want = "TCP MD5 signatures", 2
		case "nop":
			wire = append(wire, WireOpt{Kind: 1})
		case "eol":
			wire = append(wire, WireOpt{Kind: 0})
		case "sackOK":
			o.SACKPermitted = true
			wire = append(wire, WireOpt{Kind: 4})
		case "mss":
			v, err := arg(1)
			if err != nil {
				return nil, nil, err
			}
			if v > 65535 {
				return nil, nil, fmt.Errorf("mss %d does not fit 16 bits", v)
			}
			o.HasMSS, o.MSS, want = true, uint16(v), 2
			wire = append(wire, WireOpt{Kind: 2, Data: []byte{byte(v >> 8), byte(v)}})
		case "wscale":
			v, err := arg(1)
			if err != nil {
				return nil, nil, err
			}
			if v > 14 {
				return nil, nil, fmt.Errorf("wscale %d is above 14 (RFC 7323 §2.3)", v)
			}
			o.HasWindowScale, o.WindowScale, want = true, uint8(v), 2
			wire = append(wire, WireOpt{Kind: 3, Data: []byte{byte(v)}})
		case "TS":
			if len(f) != 5 || f[1] != "val" || f[3] != "ecr" {
				return nil, nil, fmt.Errorf("bad timestamp option %q: want `TS val X ecr Y`", item)
			}
			v, err := arg(2)
			if err != nil {
				return nil, nil, err
			}
			e, err := arg(4)
			if err != nil {
				return nil, nil, err
			}
			o.HasTimestamp, o.TSVal, o.TSEcr, want = true, v, e, 5
			wire = append(wire, WireOpt{Kind: 8})
		case "sack":
			if len(f) < 2 || len(f) > 1+tcp.MaxSACKBlocks {
				return nil, nil, fmt.Errorf("sack needs 1 to %d blocks a:b", tcp.MaxSACKBlocks)
			}
			for _, blk := range f[1:] {
				a, b, ok := strings.Cut(blk, ":")
				x, err1 := parseU32(a)
				y, err2 := parseU32(b)
				if !ok || err1 != nil || err2 != nil {
					return nil, nil, fmt.Errorf("bad sack block %q", blk)
				}
				o.SACKBlocks[o.NumSACK] = tcp.SACKBlock{Start: tcp.Seq(x), End: tcp.Seq(y)}
				o.NumSACK++
			}
			want = len(f)
			wire = append(wire, WireOpt{Kind: 5})
		default:
			return nil, nil, fmt.Errorf("unsupported option %q", f[0])
		}
		if len(f) != want {
			return nil, nil, fmt.Errorf("bad option %q", item)
		}
	}
	if *feature != "" {
		// A list built byte for byte must fit the header's 40 option
		// bytes (TFO_COOKIE stands for 8).
		n := len(encodeWireOpts(wire, o, func(w WireOpt) []byte {
			if w.Sym != "" {
				return make([]byte, 8)
			}
			return w.Data
		}))
		if n > maxOptLen {
			return nil, nil, fmt.Errorf("TCP options of %d bytes do not fit %d", n, maxOptLen)
		}
	}
	return o, wire, nil
}

// splitArgs splits a call's argument list at top-level commas.
func splitArgs(s string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[', '{', '(':
			depth++
		case ']', '}', ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced brackets in %q", s)
			}
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced brackets in %q", s)
	}
	if t := strings.TrimSpace(s[start:]); t != "" || len(out) > 0 {
		out = append(out, t)
	}
	return out, nil
}

func parseCall(s string) (*Call, error) {
	open := strings.IndexByte(s, '(')
	if open <= 0 {
		return nil, fmt.Errorf("unrecognised line %q", s)
	}
	name := s[:open]
	for i := 0; i < len(name); i++ {
		if !isIdent(name[i], i == 0) {
			return nil, fmt.Errorf("unrecognised line %q", s)
		}
	}
	// The argument list ends at the `)` matching the first `(`.
	depth, close := 0, -1
	inStr := false
	for i := open; i < len(s) && close < 0; i++ {
		switch c := s[i]; {
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
			if depth == 0 {
				close = i
			}
		}
	}
	if close < 0 {
		return nil, fmt.Errorf("unterminated argument list in %q", s)
	}
	args, err := splitArgs(s[open+1 : close])
	if err != nil {
		return nil, err
	}
	if n, ok := callArgs[name]; ok && (len(args) < n[0] || len(args) > n[1]) {
		if n[0] == n[1] {
			return nil, fmt.Errorf("%s takes %d arguments, got %d", name, n[0], len(args))
		}
		return nil, fmt.Errorf("%s takes %d to %d arguments, got %d", name, n[0], n[1], len(args))
	}
	c := &Call{Name: name, Args: args}
	for _, a := range args {
		v, err := ParseVal(a)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		c.Vals = append(c.Vals, v)
	}
	after := strings.TrimSpace(s[close+1:])
	if !strings.HasPrefix(after, "=") {
		return nil, fmt.Errorf("%s: want `= RESULT` after the call", name)
	}
	res := strings.Fields(strings.TrimSpace(after[1:]))
	if len(res) == 0 {
		return nil, fmt.Errorf("%s: missing result", name)
	}
	if res[0] == "..." {
		c.RetAny = true
	} else if c.Ret, err = strconv.ParseInt(res[0], 0, 64); err != nil {
		return nil, fmt.Errorf("%s: bad result %q", name, res[0])
	}
	res = res[1:]
	if len(res) > 0 && !strings.HasPrefix(res[0], "(") {
		if i := strings.IndexByte(res[0], '('); i > 0 {
			// `EHOSTUNREACH(No route to host)`: a note without a space.
			res = append([]string{res[0][:i], res[0][i:]}, res[1:]...)
		}
		if errnoValue(res[0]) == 0 {
			return nil, fmt.Errorf("%s: unsupported errno %q", name, res[0])
		}
		if c.Ret != -1 {
			return nil, fmt.Errorf("%s: an errno (%s) needs the result -1", name, res[0])
		}
		c.Errno = res[0]
		res = res[1:]
	}
	if c.Ret == -1 && c.Errno == "" && !c.RetAny {
		// packetdrill allows `= -1` alone: any errno.
		c.Errno = "*"
	}
	if len(res) > 0 {
		// An optional (description) may follow.
		t := strings.Join(res, " ")
		if !strings.HasPrefix(t, "(") || !strings.HasSuffix(t, ")") {
			return nil, fmt.Errorf("%s: unexpected %q after the result", name, t)
		}
	}
	return c, nil
}

// callArgs lists the argument counts (min, max) of the calls whose
// arguments the runner interprets. Other calls parse, and running them
// reports the call as unsupported.
var callArgs = map[string][2]int{
	"socket": {3, 3}, "bind": {3, 3}, "listen": {2, 2}, "accept": {3, 3}, "accept4": {4, 4}, "connect": {3, 3},
	"read": {3, 3}, "write": {3, 3}, "send": {4, 4}, "recv": {4, 4}, "sendto": {6, 6}, "recvfrom": {6, 6},
	"sendmsg": {3, 3}, "recvmsg": {3, 3}, "readv": {3, 3}, "writev": {3, 3},
	"close": {1, 1}, "shutdown": {2, 2}, "setsockopt": {5, 5}, "getsockopt": {5, 5},
	"fcntl": {2, 3}, "poll": {3, 3}, "ioctl": {3, 3},
	"epoll_create": {1, 1}, "epoll_create1": {1, 1}, "epoll_ctl": {4, 4}, "epoll_wait": {4, 4},
}

// errnoValue returns the errno named name (Linux's names), or 0.
func errnoValue(name string) syscall.Errno {
	for e := syscall.Errno(1); e < 200; e++ {
		if unix.ErrnoName(e) == name {
			return e
		}
	}
	switch name {
	case "EWOULDBLOCK":
		return unix.EAGAIN
	case "ENOTSUP", "EOPNOTSUPP":
		return unix.EOPNOTSUPP
	}
	return 0
}
