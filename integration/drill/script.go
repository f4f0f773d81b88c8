// Package drill runs scripts written in a packetdrill-style language against
// TCP implementations under test (ustack, gVisor) in virtual time and reports,
// line by line, where the packets a stack sent differ from the script.
//
// The dialect follows packetdrill's public syntax with these documented
// limits: one connection per script; every call on one line; no blocking
// call ranges (`a...b`); options are compared as a set (order, NOP and EOL
// padding are not visible through the DUTs' parsed segments); an outbound
// packet's TS val is not compared (each DUT has its own clock) while its TS
// ecr is; `win` and `<options>` left out of an outbound line are not checked.
// Anything else the parser does not know is an error naming the line.
package drill

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

// DefaultTolerance is packetdrill's default timing tolerance.
const DefaultTolerance = 4 * time.Millisecond

// Script is a parsed script.
type Script struct {
	// Name identifies the script in reports (its path as given).
	Name string
	// Tolerance is how far an outbound packet may be from its line's time.
	Tolerance time.Duration
	// IPv6 runs the script over IPv6.
	IPv6 bool
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
type Time struct {
	Kind   TimeKind
	Lo, Hi time.Duration
}

// EventKind says what an event line is.
type EventKind uint8

// The event kinds.
const (
	EvInject EventKind = iota + 1 // `<` a packet the peer sends
	EvExpect                      // `>` a packet the DUT must send
	EvCall                        // a socket call
	EvShell                       // a backquoted shell command
)

// Event is one timed script line.
type Event struct {
	Line   int
	Time   Time
	Kind   EventKind
	Packet *Packet
	Call   *Call
	Shell  string
	// Text is the line as written (comments stripped), for reports.
	Text string
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
	// Opts is nil when no `<...>` was written. NOP and EOL are accepted
	// and dropped; SACK blocks hold relative numbers as written.
	Opts *tcp.Options
}

// Call is a socket call line: name(args) = Ret [Errno].
type Call struct {
	Name  string
	Args  []string
	Ret   int64
	Errno string
}

// ParseError is a script error at a line.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// stripComments removes // and /* */ comments, keeping line numbers, and
// returns the `// expect` directives with their lines.
func stripComments(src string) (lines []string, directives map[int]string) {
	directives = map[int]string{}
	raw := strings.Split(src, "\n")
	inBlock := false
	for i, l := range raw {
		var b strings.Builder
		inQuote := false
		for j := 0; j < len(l); j++ {
			if inBlock {
				if strings.HasPrefix(l[j:], "*/") {
					inBlock = false
					j++
				}
				continue
			}
			if l[j] == '`' {
				inQuote = !inQuote
			}
			if !inQuote && strings.HasPrefix(l[j:], "/*") {
				inBlock = true
				j++
				continue
			}
			if !inQuote && strings.HasPrefix(l[j:], "//") {
				c := strings.TrimSpace(l[j+2:])
				if strings.HasPrefix(c, "expect ") {
					directives[i+1] = c
				}
				break
			}
			b.WriteByte(l[j])
		}
		lines = append(lines, strings.TrimSpace(b.String()))
	}
	return lines, directives
}

// Parse parses a script. name is used in errors and reports.
func Parse(name, src string) (*Script, error) {
	s := &Script{Name: name, Tolerance: DefaultTolerance, Expect: map[string]Expectation{}}
	lines, dirs := stripComments(src)
	for ln, d := range dirs {
		if err := s.directive(d); err != nil {
			return nil, &ParseError{name, ln, err.Error()}
		}
	}
	for i, l := range lines {
		if l == "" {
			continue
		}
		if err := s.line(i+1, l); err != nil {
			return nil, &ParseError{name, i + 1, err.Error()}
		}
	}
	if len(s.Events) == 0 {
		return nil, &ParseError{name, len(lines), "script has no events"}
	}
	return s, nil
}

// KnownDUTs are the DUT names directives may name.
var KnownDUTs = []string{"ustack", "gvisor", "linux"}

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
		return s.option(l)
	}
	if strings.HasPrefix(l, "`") {
		return s.shell(n, Time{Kind: TimeRel}, l)
	}
	tok, rest, _ := strings.Cut(l, " ")
	t, err := parseTime(tok)
	if err != nil {
		return err
	}
	rest = strings.TrimSpace(rest)
	ev := Event{Line: n, Time: t, Text: l}
	switch {
	case rest == "":
		return fmt.Errorf("time %q with no event", tok)
	case strings.HasPrefix(rest, "`"):
		return s.shell(n, t, rest)
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
	s.Events = append(s.Events, ev)
	return nil
}

func (s *Script) shell(n int, t Time, l string) error {
	if len(l) < 2 || !strings.HasSuffix(l, "`") {
		return fmt.Errorf("unterminated backquoted shell command")
	}
	s.Events = append(s.Events, Event{Line: n, Time: t, Kind: EvShell, Shell: l[1 : len(l)-1], Text: l})
	return nil
}

func (s *Script) option(l string) error {
	for _, f := range strings.Fields(l) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("option %q: want --name=value", f)
		}
		switch k {
		case "--tolerance_usecs":
			u, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Errorf("--tolerance_usecs=%q: %v", v, err)
			}
			s.Tolerance = time.Duration(u) * time.Microsecond
		case "--ip_version":
			switch v {
			case "ipv4":
				s.IPv6 = false
			case "ipv6":
				s.IPv6 = true
			default:
				return fmt.Errorf("--ip_version=%s: only ipv4 and ipv6 are supported", v)
			}
		default:
			return fmt.Errorf("unsupported option %s", k)
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
	if strings.Contains(tok, "...") {
		return Time{}, fmt.Errorf("blocking call time %q is not supported", tok)
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
	if len(f) < 2 {
		return nil, fmt.Errorf("packet line needs flags and start:end(len)")
	}
	p := &Packet{}
	var err error
	if p.Flags, err = parseFlags(f[0]); err != nil {
		return nil, err
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
		default:
			return nil, fmt.Errorf("unsupported packet field %q", f[i])
		}
	}
	if p.HasAck != (p.Flags&tcp.FlagACK != 0) {
		return nil, fmt.Errorf("`ack N` must be given exactly when the ACK flag `.` is set")
	}
	if optText != "" || strings.Contains(s, "<") {
		o, err := parseOptions(optText)
		if err != nil {
			return nil, err
		}
		p.Opts = o
	}
	return p, nil
}

func parseOptions(s string) (*tcp.Options, error) {
	o := &tcp.Options{}
	if strings.TrimSpace(s) == "" {
		return o, nil
	}
	for _, item := range strings.Split(s, ",") {
		f := strings.Fields(item)
		if len(f) == 0 {
			return nil, fmt.Errorf("empty option in %q", s)
		}
		arg := func(i int) (uint32, error) {
			if i >= len(f) {
				return 0, fmt.Errorf("option %q is missing a value", item)
			}
			return parseU32(f[i])
		}
		want := 1
		switch f[0] {
		case "nop", "eol":
		case "sackOK":
			o.SACKPermitted = true
		case "mss":
			v, err := arg(1)
			if err != nil {
				return nil, err
			}
			if v > 65535 {
				return nil, fmt.Errorf("mss %d does not fit 16 bits", v)
			}
			o.HasMSS, o.MSS, want = true, uint16(v), 2
		case "wscale":
			v, err := arg(1)
			if err != nil {
				return nil, err
			}
			if v > 14 {
				return nil, fmt.Errorf("wscale %d is above 14 (RFC 7323 §2.3)", v)
			}
			o.HasWindowScale, o.WindowScale, want = true, uint8(v), 2
		case "TS":
			if len(f) != 5 || f[1] != "val" || f[3] != "ecr" {
				return nil, fmt.Errorf("bad timestamp option %q: want `TS val X ecr Y`", item)
			}
			v, err := arg(2)
			if err != nil {
				return nil, err
			}
			e, err := arg(4)
			if err != nil {
				return nil, err
			}
			o.HasTimestamp, o.TSVal, o.TSEcr, want = true, v, e, 5
		case "sack":
			if len(f) < 2 || len(f) > 1+tcp.MaxSACKBlocks {
				return nil, fmt.Errorf("sack needs 1 to %d blocks a:b", tcp.MaxSACKBlocks)
			}
			for _, blk := range f[1:] {
				a, b, ok := strings.Cut(blk, ":")
				x, err1 := parseU32(a)
				y, err2 := parseU32(b)
				if !ok || err1 != nil || err2 != nil {
					return nil, fmt.Errorf("bad sack block %q", blk)
				}
				o.SACKBlocks[o.NumSACK] = tcp.SACKBlock{Start: tcp.Seq(x), End: tcp.Seq(y)}
				o.NumSACK++
			}
			want = len(f)
		default:
			return nil, fmt.Errorf("unsupported option %q", f[0])
		}
		if len(f) != want {
			return nil, fmt.Errorf("bad option %q", item)
		}
	}
	return o, nil
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
	eq := strings.LastIndex(s, "=")
	if open <= 0 || eq < 0 {
		return nil, fmt.Errorf("unrecognised line %q", s)
	}
	name := s[:open]
	if _, ok := callArgs[name]; !ok {
		return nil, fmt.Errorf("unsupported call %q", name)
	}
	// The argument list ends at the `)` matching the first `(`.
	depth, close := 0, -1
	for i := open; i < len(s) && close < 0; i++ {
		switch s[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
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
	if n := callArgs[name]; len(args) != n {
		return nil, fmt.Errorf("%s takes %d arguments, got %d", name, n, len(args))
	}
	after := strings.TrimSpace(s[close+1:])
	if !strings.HasPrefix(after, "=") {
		return nil, fmt.Errorf("%s: want `= RESULT` after the call", name)
	}
	res := strings.Fields(strings.TrimSpace(after[1:]))
	if len(res) == 0 {
		return nil, fmt.Errorf("%s: missing result", name)
	}
	c := &Call{Name: name, Args: args}
	if c.Ret, err = strconv.ParseInt(res[0], 10, 64); err != nil {
		return nil, fmt.Errorf("%s: bad result %q", name, res[0])
	}
	if c.Ret == -1 {
		if len(res) < 2 {
			return nil, fmt.Errorf("%s: result -1 needs an errno name", name)
		}
		if _, ok := errnos[res[1]]; !ok {
			return nil, fmt.Errorf("%s: unsupported errno %q", name, res[1])
		}
		c.Errno = res[1]
		res = res[2:]
	} else {
		res = res[1:]
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

// callArgs lists the supported calls and their argument counts.
var callArgs = map[string]int{
	"socket": 3, "bind": 3, "listen": 2, "accept": 3, "connect": 3,
	"read": 3, "write": 3, "send": 4, "recv": 4, "close": 1, "shutdown": 2,
	"setsockopt": 5, "getsockopt": 5, "fcntl": 3, "poll": 3,
}

// errnos are the errno names a script may expect.
var errnos = map[string]bool{
	"EAGAIN": true, "EINPROGRESS": true, "ECONNREFUSED": true, "ECONNRESET": true,
	"ETIMEDOUT": true, "EPIPE": true, "ENOTCONN": true, "EINVAL": true, "EBADF": true,
	"EISCONN": true, "EALREADY": true,
}
