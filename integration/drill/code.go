package drill

import (
	"fmt"
	"strconv"
	"strings"
)

// Code is a parsed `%{ }%` block: the Python subset packetdrill scripts use
// to check tcp_info. Statements are separated by newlines or `;` (a
// trailing `\` continues a line; `#` starts a comment):
//
//	assert EXPR[, MESSAGE]   fails the script when EXPR is false
//	NAME = EXPR, NAME += EXPR (also -=, *=)   sets a variable for later blocks
//	print(...)               ignored
//
// Expressions are integers (decimal, 0x hex), the tcp_info fields
// (tcpi_snd_cwnd...), constants (TCP_CA_Open, TCPI_OPT_SACK...), variables,
// parentheses, unary - and ~ and not, * / % + - << >> & ^ |, comparisons
// (chained as in Python: 1 <= x <= 5), and, or. A MESSAGE is kept as text.
type Code struct {
	Stmts []Stmt
}

// Stmt is one statement of a code block.
type Stmt struct {
	// Kind is "assert", "set" or "print".
	Kind string
	// Var and Op are an assignment's target and operator ("=", "+="...).
	Var, Op string
	Expr    *Expr
	// Msg is an assert's message as written.
	Msg  string
	Text string
}

// Expr is an expression node: a number, a name, or an operator applied to
// Args.
type Expr struct {
	Op   string // "num", "name", or the operator ("+", "==", "and", "neg", "not", "~", "chain")
	Num  int64
	Name string
	Args []*Expr
	// Ops are a comparison chain's operators (Args has one more).
	Ops []string
}

func parseCode(src string) (*Code, error) {
	src = strings.ReplaceAll(src, "\\\n", " ")
	c := &Code{}
	for _, line := range strings.Split(src, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		for _, st := range splitTop(line, ';') {
			st = strings.TrimSpace(st)
			if st == "" {
				continue
			}
			s, err := parseStmt(st)
			if err != nil {
				return nil, fmt.Errorf("code block: %q: %v", st, err)
			}
			c.Stmts = append(c.Stmts, s)
		}
	}
	return c, nil
}

// splitTop splits s at sep outside brackets and quotes.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func parseStmt(st string) (Stmt, error) {
	s := Stmt{Text: st}
	switch {
	case strings.HasPrefix(st, "print(") || st == "print" || strings.HasPrefix(st, "print "):
		s.Kind = "print"
		return s, nil
	case strings.HasPrefix(st, "assert ") || strings.HasPrefix(st, "assert("):
		s.Kind = "assert"
		parts := splitTop(st[len("assert"):], ',')
		e, err := parseExpr(parts[0])
		if err != nil {
			return s, err
		}
		s.Expr = e
		if len(parts) > 1 {
			s.Msg = strings.TrimSpace(strings.Join(parts[1:], ","))
		}
		return s, nil
	}
	for _, op := range []string{"+=", "-=", "*=", "|=", "&=", "="} {
		if i := strings.Index(st, op); i > 0 {
			name := strings.TrimSpace(st[:i])
			if !isName(name) || op == "=" && strings.ContainsAny(st[i+1:i+2], "=") {
				continue
			}
			e, err := parseExpr(st[i+len(op):])
			if err != nil {
				return s, err
			}
			s.Kind, s.Var, s.Op, s.Expr = "set", name, op, e
			return s, nil
		}
	}
	return s, fmt.Errorf("want assert, an assignment or print")
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdent(s[i], i == 0) {
			return false
		}
	}
	return true
}

// exprTok tokenizes an expression.
type exprLexer struct {
	toks []string
	pos  int
}

func lexExpr(s string) ([]string, error) {
	var out []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && isIdent(s[j], false) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		case isIdent(c, true):
			j := i
			for j < len(s) && isIdent(s[j], false) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		default:
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			switch two {
			case "==", "!=", "<=", ">=", "<<", ">>":
				out = append(out, two)
				i += 2
				continue
			}
			if strings.IndexByte("+-*/%()<>&|^~", c) < 0 {
				return nil, fmt.Errorf("unexpected %q", s[i:])
			}
			out = append(out, string(c))
			i++
		}
	}
	return out, nil
}

func parseExpr(s string) (*Expr, error) {
	toks, err := lexExpr(s)
	if err != nil {
		return nil, err
	}
	l := &exprLexer{toks: toks}
	e, err := l.or()
	if err != nil {
		return nil, err
	}
	if l.pos != len(l.toks) {
		return nil, fmt.Errorf("unexpected %q", strings.Join(l.toks[l.pos:], " "))
	}
	return e, nil
}

func (l *exprLexer) peek() string {
	if l.pos < len(l.toks) {
		return l.toks[l.pos]
	}
	return ""
}

func (l *exprLexer) next() string {
	t := l.peek()
	l.pos++
	return t
}

func (l *exprLexer) or() (*Expr, error) {
	return l.binary([]string{"or"}, l.and)
}

func (l *exprLexer) and() (*Expr, error) {
	return l.binary([]string{"and"}, l.not)
}

func (l *exprLexer) not() (*Expr, error) {
	if l.peek() == "not" {
		l.next()
		e, err := l.not()
		if err != nil {
			return nil, err
		}
		return &Expr{Op: "not", Args: []*Expr{e}}, nil
	}
	return l.compare()
}

var cmpOps = map[string]bool{"==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true}

func (l *exprLexer) compare() (*Expr, error) {
	first, err := l.bitor()
	if err != nil {
		return nil, err
	}
	chain := &Expr{Op: "chain", Args: []*Expr{first}}
	for cmpOps[l.peek()] {
		op := l.next()
		e, err := l.bitor()
		if err != nil {
			return nil, err
		}
		chain.Ops = append(chain.Ops, op)
		chain.Args = append(chain.Args, e)
	}
	if len(chain.Ops) == 0 {
		return first, nil
	}
	return chain, nil
}

func (l *exprLexer) bitor() (*Expr, error) { return l.binary([]string{"|"}, l.bitxor) }
func (l *exprLexer) bitxor() (*Expr, error) {
	return l.binary([]string{"^"}, l.bitand)
}
func (l *exprLexer) bitand() (*Expr, error) { return l.binary([]string{"&"}, l.shift) }
func (l *exprLexer) shift() (*Expr, error)  { return l.binary([]string{"<<", ">>"}, l.sum) }
func (l *exprLexer) sum() (*Expr, error)    { return l.binary([]string{"+", "-"}, l.product) }
func (l *exprLexer) product() (*Expr, error) {
	return l.binary([]string{"*", "/", "%"}, l.unary)
}

func (l *exprLexer) binary(ops []string, sub func() (*Expr, error)) (*Expr, error) {
	left, err := sub()
	if err != nil {
		return nil, err
	}
	for {
		op := l.peek()
		found := false
		for _, o := range ops {
			found = found || o == op
		}
		if !found {
			return left, nil
		}
		l.next()
		right, err := sub()
		if err != nil {
			return nil, err
		}
		left = &Expr{Op: op, Args: []*Expr{left, right}}
	}
}

func (l *exprLexer) unary() (*Expr, error) {
	switch l.peek() {
	case "-", "~", "+":
		op := l.next()
		e, err := l.unary()
		if err != nil {
			return nil, err
		}
		if op == "+" {
			return e, nil
		}
		if op == "-" {
			op = "neg"
		}
		return &Expr{Op: op, Args: []*Expr{e}}, nil
	}
	return l.atom()
}

func (l *exprLexer) atom() (*Expr, error) {
	t := l.next()
	switch {
	case t == "":
		return nil, fmt.Errorf("missing operand")
	case t == "(":
		e, err := l.or()
		if err != nil {
			return nil, err
		}
		if l.next() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		return e, nil
	case t[0] >= '0' && t[0] <= '9':
		n, err := strconv.ParseInt(t, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", t)
		}
		return &Expr{Op: "num", Num: n}, nil
	case t == "True":
		return &Expr{Op: "num", Num: 1}, nil
	case t == "False":
		return &Expr{Op: "num", Num: 0}, nil
	case isName(t) && t != "and" && t != "or" && t != "not":
		return &Expr{Op: "name", Name: t}, nil
	}
	return nil, fmt.Errorf("unexpected %q", t)
}

// codeEnv resolves names while evaluating.
type codeEnv struct {
	info map[string]int64
	vars map[string]int64
}

// errMissingField is returned for a tcpi_ field the DUT does not provide.
type errMissingField struct{ name string }

func (e *errMissingField) Error() string { return "the DUT does not report " + e.name }

func (env *codeEnv) lookup(n string) (int64, error) {
	if v, ok := env.vars[n]; ok {
		return v, nil
	}
	if strings.HasPrefix(n, "tcpi_") {
		v, ok := env.info[n]
		if !ok {
			return 0, &errMissingField{n}
		}
		return v, nil
	}
	if n == "TCP_INFINITE_SSTHRESH" {
		return 0x7fffffff, nil
	}
	if v, ok := symbols[n]; ok {
		return v, nil
	}
	return 0, fmt.Errorf("name %q is not defined", n)
}

func b2i64(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (env *codeEnv) eval(e *Expr) (int64, error) {
	switch e.Op {
	case "num":
		return e.Num, nil
	case "name":
		return env.lookup(e.Name)
	case "chain":
		prev, err := env.eval(e.Args[0])
		if err != nil {
			return 0, err
		}
		for i, op := range e.Ops {
			v, err := env.eval(e.Args[i+1])
			if err != nil {
				return 0, err
			}
			var ok bool
			switch op {
			case "==":
				ok = prev == v
			case "!=":
				ok = prev != v
			case "<":
				ok = prev < v
			case "<=":
				ok = prev <= v
			case ">":
				ok = prev > v
			case ">=":
				ok = prev >= v
			}
			if !ok {
				return 0, nil
			}
			prev = v
		}
		return 1, nil
	case "and", "or":
		a, err := env.eval(e.Args[0])
		if err != nil {
			return 0, err
		}
		if (a != 0) == (e.Op == "or") {
			return a, nil
		}
		return env.eval(e.Args[1])
	}
	args := make([]int64, len(e.Args))
	for i, a := range e.Args {
		v, err := env.eval(a)
		if err != nil {
			return 0, err
		}
		args[i] = v
	}
	switch e.Op {
	case "neg":
		return -args[0], nil
	case "~":
		return ^args[0], nil
	case "not":
		return b2i64(args[0] == 0), nil
	case "+":
		return args[0] + args[1], nil
	case "-":
		return args[0] - args[1], nil
	case "*":
		return args[0] * args[1], nil
	case "/", "%":
		if args[1] == 0 {
			return 0, fmt.Errorf("division by zero")
		}
		// Python floors; the corpus divides non-negative numbers.
		if e.Op == "/" {
			return args[0] / args[1], nil
		}
		return args[0] % args[1], nil
	case "<<":
		return args[0] << uint(args[1]), nil
	case ">>":
		return args[0] >> uint(args[1]), nil
	case "&":
		return args[0] & args[1], nil
	case "|":
		return args[0] | args[1], nil
	case "^":
		return args[0] ^ args[1], nil
	}
	return 0, fmt.Errorf("unknown operator %q", e.Op)
}

// names lists the tcpi_ names an expression reads, for failure messages.
func (e *Expr) names(out map[string]bool) {
	if e.Op == "name" {
		out[e.Name] = true
	}
	for _, a := range e.Args {
		a.names(out)
	}
}
