package drill

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ustack-net/ustack/integration"
	"github.com/ustack-net/ustack/tcp"
)

// blockedCall is a blocking system call that has not returned: the script
// goes on (packets arrive, timers fire) while it sleeps, as in packetdrill,
// where calls run on their own thread.
type blockedCall struct {
	ev   *Event
	spec callSpec
	// end is when the line says it returns (script time), hasEnd when it
	// says so (`...END`); without it the call must return at once.
	end    time.Duration
	hasEnd bool
	start  time.Duration
	// tol is the timing tolerance of its return.
	tol time.Duration
}

// blockedText names a blocked call for messages.
func (b *blockedCall) text() string { return fmt.Sprintf("line %d: %s", b.ev.Line, b.ev.Call.Name) }

// call runs a system call line: it completes now, or (a blocking call
// that would sleep) becomes r.blocked.
func (r *runner) call(ev *Event) error {
	spec, err := r.spec(ev)
	if err != nil {
		return err
	}
	res, err := spec.attempt()
	if err != nil {
		return err
	}
	start := r.dut.Now()
	if spec.blocking && wouldBlock(res.errno) {
		b := &blockedCall{ev: ev, spec: spec, start: start, tol: r.tol}
		if ev.Time.HasEnd {
			b.hasEnd = true
			b.end = ev.Time.End
			if ev.Time.Kind == TimeRel {
				b.end = r.now - ev.Time.Lo + ev.Time.End
			}
			b.tol = r.tolFor(b.end - r.now)
		}
		r.blocked, r.blockStart = b, start
		return nil
	}
	if ev.Time.HasEnd {
		end := ev.Time.End
		if ev.Time.Kind == TimeRel {
			end = r.now - ev.Time.Lo + ev.Time.End
		}
		if tol := r.tolFor(end - r.now); start < end-tol {
			return r.fail(ev, "%s returned at once (%s), want it to block until %s", ev.Call.Name, fmtTime(start), timeText(end, end, tol))
		}
	}
	return r.checkResult(ev, res)
}

// retryBlocked retries the blocked call, and checks it if it returned.
func (r *runner) retryBlocked() error {
	b := r.blocked
	if b == nil {
		return nil
	}
	res, err := b.spec.attempt()
	if err != nil {
		r.blocked, r.blockStart = nil, -1
		return err
	}
	if wouldBlock(res.errno) {
		if b.hasEnd && r.dut.Now() > b.end+b.tol || !b.hasEnd && r.dut.Now() > b.start+b.tol {
			r.blocked, r.blockStart = nil, -1
			want := "return at once"
			if b.hasEnd {
				want = "return by " + timeText(b.end, b.end, b.tol)
			}
			return r.fail(b.ev, "%s is still blocked at %s; the line says it should %s", b.ev.Call.Name, fmtTime(r.dut.Now()), want)
		}
		return nil
	}
	r.blocked, r.blockStart = nil, -1
	now := r.dut.Now()
	r.logf(now, "%s returned %s", b.ev.Call.Name, resText(res))
	if b.hasEnd && (now < b.end-b.tol || now > b.end+b.tol) {
		return r.fail(b.ev, "%s returned at %s, want %s", b.ev.Call.Name, fmtTime(now), timeText(b.end, b.end, b.tol))
	}
	return r.checkResult(b.ev, res)
}

// finishBlocked lets time pass until the blocked call returns (before the
// next system call, ev, or at the end of the script when ev is nil).
func (r *runner) finishBlocked(ev *Event) error {
	for r.blocked != nil {
		b := r.blocked
		limit := b.start + b.tol
		if b.hasEnd {
			limit = b.end + b.tol
		}
		if r.dut.Now() > limit {
			return r.retryBlocked() // reports it still blocked
		}
		if err := r.advanceTo(min(limit+time.Microsecond, r.dut.Now()+time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

func resText(res callResult) string {
	if res.errno != 0 {
		return fmt.Sprintf("-1 %s", errnoName(res.errno))
	}
	return fmt.Sprint(res.ret)
}

// checkResult compares a call's result with the line's.
func (r *runner) checkResult(ev *Event, res callResult) error {
	c := ev.Call
	if res.errno == 0 && res.ret >= 0 {
		switch c.Name {
		case "socket", "accept", "accept4":
			r.infoFD = int(res.ret)
		}
	}
	if c.Name == "connect" {
		if fd, err := r.argInt(ev, 0); err == nil {
			r.infoFD = int(fd)
		}
	}
	if c.RetAny {
		return nil
	}
	gotErr := errnoName(res.errno)
	okErr := c.Errno == gotErr || c.Errno == "*" && res.errno != 0
	if c.Errno == "EWOULDBLOCK" && gotErr == "EAGAIN" || c.Errno == "ENOTSUP" && gotErr == "EOPNOTSUPP" {
		okErr = true
	}
	if res.ret != c.Ret || !okErr {
		got := resText(res)
		want := fmt.Sprint(c.Ret)
		if c.Errno != "" && c.Errno != "*" {
			want += " " + c.Errno
		}
		return r.fail(ev, "%s returned %s, want %s\n  expected: %s\n  actual:   %s(...) = %s", c.Name, got, want, callText(c), c.Name, got)
	}
	return nil
}

// takeSegment takes the next emission for a `>` line. When the line
// expects more payload than the emission has (a TSO/GSO super-packet, as
// Linux's packetdrill writes with offloads on), the wire segments that
// follow it contiguously in the same burst (same time, same ACK, no
// SYN/RST, FIN only last) are merged into one.
func (r *runner) takeSegment(p *Packet) integration.Emission {
	e := r.pending[0]
	r.pending = r.pending[1:]
	if gs := int(e.Seg.GSOSize); gs > 0 && p.Len < len(e.Seg.Payload) && p.Len > 0 && p.Len%gs == 0 {
		// A super-packet where the line expects fewer bytes: the line
		// is its first pieces, as they would be on the wire (PSH and FIN
		// stay on the last piece).
		rest := e
		rest.Seg.Seq += tcp.Seq(p.Len)
		rest.Seg.Payload = e.Seg.Payload[p.Len:]
		rest.Seg.Flags &^= tcp.FlagCWR
		e.Seg.Payload = e.Seg.Payload[:p.Len]
		e.Seg.Flags &^= tcp.FlagPSH | tcp.FlagFIN
		r.pending = append([]integration.Emission{rest}, r.pending...)
		return e
	}
	// Only a line longer than the MSS the peer announced describes a
	// super-packet; a shorter one must match one wire segment.
	if !r.packetdrill && p.Len <= int(r.peerMSS) || p.Len <= len(e.Seg.Payload) || len(e.Seg.Payload) == 0 || e.Seg.Flags&(tcp.FlagSYN|tcp.FlagRST|tcp.FlagFIN) != 0 {
		return e
	}
	payload := append([]byte(nil), e.Seg.Payload...)
	for len(payload) < p.Len {
		if w, ok := r.dut.(emissionWaiter); ok && len(r.pending) == 0 {
			// Real time: the rest of the burst may still be on its way
			// (the kernel queues the next TSO chunk as the device takes
			// the previous one).
			deadline := r.dut.Now() + min(r.tol, 2*time.Millisecond)
			if r.packetdrill {
				// packetdrill sniffs until the line's bytes are in.
				deadline = max(deadline, r.aggDeadline)
			}
			w.WaitEmitted(deadline)
			r.collect()
		}
		if len(r.pending) == 0 {
			break
		}
		n := r.pending[0]
		s := &n.Seg
		if s.Seq != e.Seg.Seq+tcp.Seq(len(payload)) || s.Ack != e.Seg.Ack || s.Flags&(tcp.FlagSYN|tcp.FlagRST) != 0 ||
			!r.packetdrill && n.At-e.At > r.tol || len(s.Payload) == 0 || len(payload)+len(s.Payload) > p.Len {
			break
		}
		payload = append(payload, s.Payload...)
		if r.packetdrill {
			// packetdrill's aggregate: the last piece's header and time,
			// the first's sequence number and CWR.
			e.Seg.Flags = s.Flags&^tcp.FlagCWR | e.Seg.Flags&tcp.FlagCWR
			e.At, e.IP = n.At, n.IP
		} else {
			e.Seg.Flags |= s.Flags
		}
		e.Seg.Window = s.Window
		r.pending = r.pending[1:]
		if s.Flags&tcp.FlagFIN != 0 {
			break
		}
	}
	e.Seg.Payload = payload
	return e
}

// compareIP lists differences in the IP fields a `>` line gives.
func compareIP(p *Packet, ip integration.IPFields, v6 bool) []string {
	var bad []string
	ecnName := []string{"noecn", "ect1", "ect0", "ce"}
	switch {
	case p.HasIP&ECT01 != 0:
		if e := ip.ECN(); e != 1 && e != 2 {
			bad = append(bad, fmt.Sprintf("ECN %s, want ect0 or ect1", ecnName[e]))
		}
	case p.HasIP&HasECN != 0:
		if ip.ECN() != p.IP.TOS&3 {
			bad = append(bad, fmt.Sprintf("ECN %s, want %s", ecnName[ip.ECN()], ecnName[p.IP.TOS&3]))
		}
	}
	if p.HasIP&HasTOS != 0 && ip.TOS != p.IP.TOS {
		bad = append(bad, fmt.Sprintf("tos %#x, want %#x", ip.TOS, p.IP.TOS))
	}
	if p.HasIP&HasTTL != 0 && ip.TTL != p.IP.TTL {
		bad = append(bad, fmt.Sprintf("ttl %d, want %d", ip.TTL, p.IP.TTL))
	}
	if p.HasIP&HasFlowLabel != 0 && v6 && ip.FlowLabel != p.IP.FlowLabel {
		bad = append(bad, fmt.Sprintf("flowlabel %#x, want %#x", ip.FlowLabel, p.IP.FlowLabel))
	}
	return bad
}

// code runs a %{ }% block against the tcp_info of the script's socket.
func (r *runner) code(ev *Event) error {
	var info map[string]int64
	if f := r.fds[r.infoFD]; f != nil && f.kind == fdSocket {
		m, e := r.dut.TCPInfo(f.dut)
		if e != 0 {
			return r.fail(ev, "getsockopt(TCP_INFO): %s", errnoName(e))
		}
		info = m
	}
	env := &codeEnv{info: info, vars: r.vars}
	for _, st := range ev.Code.Stmts {
		if st.Kind == "print" {
			continue
		}
		v, err := env.eval(st.Expr)
		var mf *errMissingField
		if errors.As(err, &mf) {
			if info == nil {
				return r.fail(ev, "%s: there is no socket to read tcp_info from", st.Text)
			}
			return r.featureUnsupported(ev, "tcp_info field "+mf.name)
		}
		if err != nil {
			return r.unsupported(ev, "%s: %v", st.Text, err)
		}
		switch st.Kind {
		case "set":
			old := r.vars[st.Var]
			switch st.Op {
			case "+=":
				v = old + v
			case "-=":
				v = old - v
			case "*=":
				v = old * v
			case "|=":
				v = old | v
			case "&=":
				v = old & v
			}
			r.vars[st.Var] = v
		case "assert":
			if v == 0 {
				names := map[string]bool{}
				st.Expr.names(names)
				var vals []string
				for n := range names {
					if x, err := env.lookup(n); err == nil && (strings.HasPrefix(n, "tcpi_") || r.vars[n] != 0) {
						vals = append(vals, fmt.Sprintf("%s=%d", n, x))
					}
				}
				sort.Strings(vals)
				return r.fail(ev, "assertion failed: %s (%s)", st.Text, strings.Join(vals, ", "))
			}
		}
	}
	return nil
}

// shell runs a backquoted line: on a DUT that has a shell (linux) as is;
// elsewhere its sysctl settings go to DUT.Sysctl and everything else is
// noted as not run.
func (r *runner) shell(ev *Event, at time.Duration) error {
	if sh, ok := r.dut.(sheller); ok {
		r.logf(at, "`%s`", ev.Shell)
		out, err := sh.Shell(r.s.Dir, ev.Shell)
		if err != nil {
			return r.fail(ev, "shell command `%s` failed: %v\n%s", ev.Shell, err, strings.TrimSpace(out))
		}
		if cr, ok := r.dut.(clockRestarter); ok && ev.Init {
			// packetdrill's clock starts when the init command is done.
			cr.RestartClock()
			r.now = 0
			r.logf(0, "(clock restarted after the init command)")
		}
		return nil
	}
	r.logf(at, "`%s` (mapped)", ev.Shell)
	settings, other, err := shellSysctls(r.s.Dir, ev.Shell)
	if err != nil {
		return r.unsupported(ev, "%v", err)
	}
	for _, o := range other {
		if f := shellFeature(o); f != "" {
			return r.featureUnsupported(ev, f)
		}
		r.notes = append(r.notes, fmt.Sprintf("line %d: not run on %s: `%s`", ev.Line, r.name, o))
	}
	for _, kv := range settings {
		if err := r.dut.Sysctl(kv[0], kv[1]); err != nil {
			var mf *MissingFeature
			if errors.As(err, &mf) {
				return r.featureUnsupported(ev, mf.Feature)
			}
			if errors.Is(err, ErrNoEquivalent) {
				r.unmapped = append(r.unmapped, kv[0]+"="+kv[1])
				continue
			}
			return r.unsupported(ev, "%v", err)
		}
	}
	return nil
}

// shellFeature names the feature a shell command that is not run needs,
// when the script's outcome depends on it: a qdisc that drops every
// packet. Other commands (tcp_metrics flush, a plain pfifo qdisc) change
// nothing a virtual-time DUT has and are only noted.
func shellFeature(cmd string) string {
	words, err := shellWords(cmd)
	if err != nil || len(words) < 2 || words[0] != "tc" || words[1] != "qdisc" {
		return ""
	}
	for i := 2; i+1 < len(words); i++ {
		if words[i] == "limit" && words[i+1] == "0" {
			return featureQdiscDrops
		}
	}
	return ""
}

// shellSysctls extracts sysctl settings from a shell line: `sysctl [-q]
// [-w] k=v...`, set_sysctls.py /proc/sys/... assignments, and the scripts
// it runs by path (`../common/defaults.sh`, read from dir). Other commands
// are returned as not run. The sysctl restore script packetdrill scripts
// end with is dropped (a DUT lives for one run).
func shellSysctls(dir, line string) (settings [][2]string, other []string, err error) {
	for _, cmd := range splitShell(line) {
		words, err := shellWords(cmd)
		if err != nil {
			return nil, nil, err
		}
		if len(words) == 0 {
			continue
		}
		switch w := words[0]; {
		case w == "sysctl":
			for _, a := range words[1:] {
				if strings.HasPrefix(a, "-") {
					continue
				}
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					other = append(other, cmd)
					continue
				}
				settings = append(settings, [2]string{strings.ReplaceAll(strings.TrimSpace(k), "/", "."), strings.TrimSpace(v)})
			}
		case strings.HasSuffix(w, "set_sysctls.py"):
			for _, a := range words[1:] {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					return nil, nil, fmt.Errorf("set_sysctls.py: bad argument %q", a)
				}
				k = strings.TrimPrefix(k, "/proc/sys/")
				settings = append(settings, [2]string{strings.ReplaceAll(k, "/", "."), v})
			}
		case strings.HasPrefix(w, "/tmp/sysctl_restore_"):
		case strings.HasSuffix(w, ".sh") && dir != "":
			path, err := resolveScript(dir, w)
			if err != nil {
				return nil, nil, err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, nil, fmt.Errorf("shell script %s: %v", w, err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				l = strings.TrimSpace(l)
				if l == "" || strings.HasPrefix(l, "#") {
					continue
				}
				s, o, err := shellSysctls(filepath.Dir(path), l)
				if err != nil {
					return nil, nil, err
				}
				settings, other = append(settings, s...), append(other, o...)
			}
		default:
			other = append(other, cmd)
		}
	}
	return settings, other, nil
}

// splitShell splits a command line at newlines, `;`, `&&` and `||`
// outside quotes.
func splitShell(s string) []string {
	s = strings.ReplaceAll(s, "\\\n", " ")
	var out []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '\n' || c == ';':
			out = append(out, cur.String())
			cur.Reset()
			continue
		case (c == '&' || c == '|') && i+1 < len(s) && s[i+1] == c:
			out = append(out, cur.String())
			cur.Reset()
			i++
			continue
		}
		cur.WriteByte(c)
	}
	out = append(out, cur.String())
	var clean []string
	for _, c := range out {
		if c = strings.TrimSpace(c); c != "" {
			clean = append(clean, c)
		}
	}
	return clean
}

// shellWords splits a command into words with sh quoting and $((arithmetic))
// expansion; redirections are dropped.
func shellWords(cmd string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		if quote == 0 && strings.HasPrefix(cmd[i:], "$((") {
			end := strings.Index(cmd[i:], "))")
			if end < 0 {
				return nil, fmt.Errorf("shell: unterminated $(( in %q", cmd)
			}
			e, err := parseExpr(cmd[i+3 : i+end])
			if err == nil {
				var v int64
				v, err = (&codeEnv{}).eval(e)
				if err == nil {
					fmt.Fprint(&cur, v)
					inWord = true
					i += end + 1
					continue
				}
			}
			return nil, fmt.Errorf("shell: %q: %v", cmd[i:i+end+2], err)
		}
		if quote == '"' && strings.HasPrefix(cmd[i:], "$((") {
			end := strings.Index(cmd[i:], "))")
			if end > 0 {
				if e, err := parseExpr(cmd[i+3 : i+end]); err == nil {
					if v, err := (&codeEnv{}).eval(e); err == nil {
						fmt.Fprint(&cur, v)
						i += end + 1
						continue
					}
				}
			}
		}
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
				continue
			}
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '>' || c == '<':
			// A redirection: drop it and its target.
			if inWord {
				w := cur.String()
				cur.Reset()
				inWord = false
				if w != "2" && w != "1" {
					words = append(words, w)
				}
			}
			j := i + 1
			for j < len(cmd) && (cmd[j] == '>' || cmd[j] == '&' || cmd[j] == ' ') {
				j++
			}
			for j < len(cmd) && cmd[j] != ' ' {
				j++
			}
			i = j
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("shell: unterminated quote in %q", cmd)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// resolveScript finds the file a script runs by path from dir, following
// symbolic links stored as text (a checkout without symlink support leaves
// a one-line file holding the target, relative to the file's directory).
func resolveScript(dir, name string) (string, error) {
	path, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	for range 8 {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("shell script %s: %v", name, err)
		}
		t := strings.TrimSpace(string(b))
		if strings.ContainsAny(t, "\n \t") || !strings.HasSuffix(t, filepath.Ext(path)) {
			return path, nil
		}
		next := filepath.Join(filepath.Dir(path), t)
		if _, err := os.Stat(next); err != nil {
			return path, nil
		}
		path = next
	}
	return "", fmt.Errorf("shell script %s: too many levels of links", name)
}
