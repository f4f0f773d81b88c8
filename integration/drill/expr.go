package drill

import (
	"fmt"
	"strconv"
	"strings"
)

// ValKind says what a call argument is.
type ValKind uint8

// The argument forms of packetdrill's system call lines.
const (
	ValEllipsis ValKind = iota + 1 // ...
	ValNull                        // NULL
	ValInt                         // 42, -1, 0x2
	ValSym                         // O_RDWR|O_NONBLOCK, SOL_TCP (with integers: MSG_MORE|0x10)
	ValStr                         // "cubic"
	ValArray                       // [1], [{fd=3, events=POLLIN}], [..., 100]
	ValStruct                      // {onoff=1, linger=0}, {events=EPOLLIN, fd=4}
)

// Val is a parsed call argument.
type Val struct {
	Kind ValKind
	Int  int64
	// Syms are the or-ed symbols of a ValSym; Int holds or-ed integers.
	Syms []string
	Str  string
	// Elems are an array's elements.
	Elems []Val
	// Fields are a struct's fields in order; a field written without a
	// name (`{..., 100}`) has Name "".
	Fields []Field
	// Text is the argument as written.
	Text string
}

// Field is one `name=value` of a struct. Name includes a call-like
// qualifier as written (`msg_iov(1)`).
type Field struct {
	Name string
	Val  Val
}

// Get returns the struct field named name (ignoring any `(…)` qualifier).
func (v Val) Get(name string) (Val, bool) {
	for _, f := range v.Fields {
		n, _, _ := strings.Cut(f.Name, "(")
		if n == name {
			return f.Val, true
		}
	}
	return Val{}, false
}

// exprParser parses one argument.
type exprParser struct {
	s   string
	pos int
}

func (p *exprParser) ws() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n') {
		p.pos++
	}
}

func (p *exprParser) errf(format string, args ...any) error {
	return fmt.Errorf("argument %q: %s", p.s, fmt.Sprintf(format, args...))
}

func isIdent(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// ParseVal parses a call argument.
func ParseVal(s string) (Val, error) {
	p := &exprParser{s: strings.TrimSpace(s)}
	v, err := p.value()
	if err != nil {
		return Val{}, err
	}
	p.ws()
	if p.pos != len(p.s) {
		return Val{}, p.errf("unexpected %q", p.s[p.pos:])
	}
	return v, nil
}

func (p *exprParser) value() (Val, error) {
	p.ws()
	start := p.pos
	if p.pos >= len(p.s) {
		return Val{}, p.errf("missing value")
	}
	var v Val
	var err error
	switch c := p.s[p.pos]; {
	case strings.HasPrefix(p.s[p.pos:], "..."):
		p.pos += 3
		v = Val{Kind: ValEllipsis}
	case c == '[':
		v, err = p.list('[', ']')
		v.Kind = ValArray
	case c == '{':
		v, err = p.list('{', '}')
		v.Kind = ValStruct
	case c == '"':
		end := strings.IndexByte(p.s[p.pos+1:], '"')
		if end < 0 {
			return Val{}, p.errf("unterminated string")
		}
		v = Val{Kind: ValStr, Str: p.s[p.pos+1 : p.pos+1+end]}
		p.pos += end + 2
	default:
		v, err = p.orExpr()
	}
	if err != nil {
		return Val{}, err
	}
	v.Text = strings.TrimSpace(p.s[start:p.pos])
	return v, nil
}

// orExpr is `term (| term)*` where a term is a symbol or an integer.
func (p *exprParser) orExpr() (Val, error) {
	v := Val{Kind: ValInt}
	for {
		p.ws()
		t, isSym, err := p.term()
		if err != nil {
			return Val{}, err
		}
		if isSym {
			if t == "NULL" {
				v.Kind = ValNull
			} else {
				v.Kind = ValSym
				v.Syms = append(v.Syms, t)
			}
		} else {
			n, err := strconv.ParseInt(t, 0, 64)
			if err != nil {
				u, uerr := strconv.ParseUint(t, 0, 64)
				if uerr != nil {
					return Val{}, p.errf("bad number %q", t)
				}
				n = int64(u)
			}
			v.Int |= n
		}
		p.ws()
		if p.pos < len(p.s) && p.s[p.pos] == '|' {
			p.pos++
			continue
		}
		return v, nil
	}
}

func (p *exprParser) term() (string, bool, error) {
	start := p.pos
	if p.pos < len(p.s) && p.s[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		for p.pos < len(p.s) && (isIdent(p.s[p.pos], false)) {
			p.pos++
		}
		return p.s[start:p.pos], false, nil
	}
	if p.pos < len(p.s) && isIdent(p.s[p.pos], true) {
		for p.pos < len(p.s) && isIdent(p.s[p.pos], false) {
			p.pos++
		}
		return p.s[start:p.pos], true, nil
	}
	return "", false, p.errf("unexpected %q", p.s[start:])
}

// list parses `[a, b]` or `{name=v, v}`.
func (p *exprParser) list(open, close byte) (Val, error) {
	p.pos++ // open
	var v Val
	for {
		p.ws()
		if p.pos < len(p.s) && p.s[p.pos] == close {
			p.pos++
			return v, nil
		}
		name := ""
		// A field name: ident, optionally ident(...), then '='.
		save := p.pos
		if p.pos < len(p.s) && isIdent(p.s[p.pos], true) {
			for p.pos < len(p.s) && isIdent(p.s[p.pos], false) {
				p.pos++
			}
			if p.pos < len(p.s) && p.s[p.pos] == '(' {
				if end := strings.IndexByte(p.s[p.pos:], ')'); end > 0 {
					p.pos += end + 1
				}
			}
			n := p.s[save:p.pos]
			p.ws()
			if p.pos < len(p.s) && p.s[p.pos] == '=' {
				p.pos++
				name = n
			} else {
				p.pos = save
			}
		}
		e, err := p.value()
		if err != nil {
			return Val{}, err
		}
		if open == '{' {
			v.Fields = append(v.Fields, Field{Name: name, Val: e})
		} else {
			if name != "" {
				return Val{}, p.errf("named element %q in an array", name)
			}
			v.Elems = append(v.Elems, e)
		}
		p.ws()
		if p.pos >= len(p.s) {
			return Val{}, p.errf("missing %q", string(close))
		}
		switch p.s[p.pos] {
		case ',':
			p.pos++
		case close:
		default:
			return Val{}, p.errf("unexpected %q", p.s[p.pos:])
		}
	}
}
