package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/ustack-net/ustack/stack"
)

// The stub resolver behind LookupHost: RFC 1035 queries for A and AAAA
// records to the configured servers, over UDP through the stack, again
// over TCP when the UDP answer is truncated (RFC 7766 §5), with the search
// list, timeouts, attempts and error values of Go's own resolver.

const (
	dnsPort = 53
	// maxDNSPacketSize is the EDNS(0) payload size we advertise (RFC 6891)
	// and the largest UDP answer we read: the DNS Flag Day 2020 value, as
	// Go's resolver uses.
	maxDNSPacketSize = 1232
	// loopback answers for localhost names (RFC 6761 §6.3).
	loopback4, loopback6 = "127.0.0.1", "::1"
)

// ResolverConfig is the part of resolv.conf(5) that LookupHost honours.
// The zero value is not valid; start from DefaultResolverConfig.
type ResolverConfig struct {
	// Search are the domains tried after a name that is not rooted
	// (resolv.conf "search"), in order.
	Search []string
	// Ndots: a name with at least this many dots is tried as given before
	// the search domains, one with fewer after them (resolv.conf "options
	// ndots:n"), 0 to 15.
	Ndots int
	// Timeout bounds each query's wait for an answer, per server and
	// attempt, and again for the TCP retry of a truncated answer.
	Timeout time.Duration
	// Attempts is how many times the list of servers is tried, 1 to 5.
	Attempts int
}

// DefaultResolverConfig is what LookupHost uses until SetResolverConfig:
// Go's defaults without a resolv.conf (no search list, ndots 1, 5 s, 2
// attempts), which is also the behaviour of wireguard's netstack.
func DefaultResolverConfig() ResolverConfig {
	return ResolverConfig{Ndots: 1, Timeout: 5 * time.Second, Attempts: 2}
}

// SetResolverConfig replaces the resolver's configuration for the lookups
// that start after it. The search domains must be domain names (a
// trailing dot is added where missing).
func (n *Net) SetResolverConfig(cfg ResolverConfig) error {
	if cfg.Ndots < 0 || cfg.Ndots > 15 {
		return fmt.Errorf("netstack: ndots %d out of range [0, 15]", cfg.Ndots)
	}
	if cfg.Attempts < 1 || cfg.Attempts > 5 {
		return fmt.Errorf("netstack: attempts %d out of range [1, 5]", cfg.Attempts)
	}
	if cfg.Timeout <= 0 {
		return fmt.Errorf("netstack: resolver timeout %v is not positive", cfg.Timeout)
	}
	search := make([]string, 0, len(cfg.Search))
	for _, d := range cfg.Search {
		if !isDomainName(d) {
			return fmt.Errorf("netstack: search domain %q is not a domain name", d)
		}
		if !strings.HasSuffix(d, ".") {
			d += "."
		}
		search = append(search, d)
	}
	cfg.Search = search
	n.dns.cfg.Store(&cfg)
	return nil
}

// resolver is the resolver's state in a Net.
type resolver struct {
	cfg atomic.Pointer[ResolverConfig] // nil: DefaultResolverConfig
	// ignored counts UDP datagrams ignored while waiting for an answer,
	// by verdict (index answerOK unused).
	ignored                      [numVerdicts]atomic.Uint64
	queriesUDP, queriesTCP       atomic.Uint64
	truncated, timeouts          atomic.Uint64
	badTCPAnswers, badAnswerRecs atomic.Uint64
}

func (r *resolver) config() ResolverConfig {
	if c := r.cfg.Load(); c != nil {
		return *c
	}
	return DefaultResolverConfig()
}

// DNSStats counts the resolver's queries and the answers it would not
// take, by reason. Answers from another address or port than the server's
// never reach the resolver: its sockets are connected, and the stack
// counts those datagrams as udp_no_ports.
type DNSStats struct {
	QueriesUDP uint64 // queries sent over UDP
	QueriesTCP uint64 // queries sent over TCP
	Truncated  uint64 // UDP answers with TC set, asked again over TCP
	Timeouts   uint64 // queries that got no acceptable answer in time

	// UDP datagrams ignored while waiting (the wait goes on, as in Go's
	// resolver, so that a forgery does not end the lookup), by reason.
	IgnoredMalformed     uint64 // header or question does not parse
	IgnoredNotResponse   uint64 // QR bit clear
	IgnoredWrongID       uint64 // ID is not the query's
	IgnoredWrongQuestion uint64 // not exactly the query's one question (name, type, class)
	IgnoredOversized     uint64 // longer than the 1232 bytes we advertised: cut short by the read

	BadTCPAnswers    uint64 // TCP answers with one of the faults above: the query fails
	BadAnswerRecords uint64 // accepted answers whose records do not parse: the query fails
}

// DNSStats returns the resolver's counters.
func (n *Net) DNSStats() DNSStats {
	r := &n.dns
	return DNSStats{
		QueriesUDP:           r.queriesUDP.Load(),
		QueriesTCP:           r.queriesTCP.Load(),
		Truncated:            r.truncated.Load(),
		Timeouts:             r.timeouts.Load(),
		IgnoredMalformed:     r.ignored[answerMalformed].Load(),
		IgnoredNotResponse:   r.ignored[answerNotResponse].Load(),
		IgnoredWrongID:       r.ignored[answerWrongID].Load(),
		IgnoredWrongQuestion: r.ignored[answerWrongQuestion].Load(),
		IgnoredOversized:     r.ignored[answerOversized].Load(),
		BadTCPAnswers:        r.badTCPAnswers.Load(),
		BadAnswerRecords:     r.badAnswerRecs.Load(),
	}
}

// The errors in *net.DNSError.Err, worded as Go's resolver words them.
var (
	errNoSuchHost                   = errors.New("no such host")
	errLameReferral                 = errors.New("lame referral")
	errCannotUnmarshalDNSMessage    = errors.New("cannot unmarshal DNS message")
	errCannotMarshalDNSMessage      = errors.New("cannot marshal DNS message")
	errServerMisbehaving            = errors.New("server misbehaving")
	errServerTemporarilyMisbehaving = errors.New("server misbehaving")
	errInvalidDNSResponse           = errors.New("invalid DNS response")
	errNoDNSServers                 = errors.New("no DNS servers configured")
	errCanceled                     = errors.New("operation was canceled")
)

// timeoutError is a query that ran out of its time: a net.Error whose
// Timeout is true, like the net package's "i/o timeout".
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// LookupHost returns the addresses of host: A records when n has an IPv4
// address, AAAA records when it has an IPv6 one (IPv6 first then), as
// wireguard's netstack does. An IP address is returned as it is given; a
// localhost name (RFC 6761 §6.3) gives the loopback addresses without
// asking a server. Errors are *net.DNSError, with IsNotFound for a name
// that does not exist and IsTimeout when the time ran out.
func (n *Net) LookupHost(host string) ([]string, error) {
	return n.LookupContextHost(context.Background(), host)
}

// LookupContextHost is LookupHost with a context: its deadline bounds the
// whole lookup (each query's wait is the earlier of it and the
// configured timeout) and cancelling it ends the lookup at once.
func (n *Net) LookupContextHost(ctx context.Context, host string) ([]string, error) {
	notFound := &net.DNSError{Err: errNoSuchHost.Error(), Name: host, IsNotFound: true}
	if host == "" {
		return nil, notFound
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return []string{host}, nil
	}
	if isLocalhost(host) {
		var addrs []string
		if n.hasV6 {
			addrs = append(addrs, loopback6)
		}
		if n.hasV4 {
			addrs = append(addrs, loopback4)
		}
		return addrs, nil
	}
	if !isDomainName(host) {
		return nil, notFound
	}
	cfg := n.dns.config()
	names := nameList(host, cfg)
	if len(names) == 0 {
		return nil, notFound
	}
	if len(n.dnsServers) == 0 {
		return nil, &net.DNSError{Err: errNoDNSServers.Error(), Name: host}
	}
	var qtypes []dnsmessage.Type
	if n.hasV4 {
		qtypes = append(qtypes, dnsmessage.TypeA)
	}
	if n.hasV6 {
		qtypes = append(qtypes, dnsmessage.TypeAAAA)
	}
	type lane struct {
		qtype dnsmessage.Type
		addrs []netip.Addr
		err   error
	}
	var v4, v6 []netip.Addr
	var lastErr error
	for _, fqdn := range names {
		lanes := make(chan lane, len(qtypes))
		for _, qt := range qtypes {
			go func() {
				addrs, err := n.tryOneName(ctx, cfg, fqdn, qt)
				lanes <- lane{qt, addrs, err}
			}()
		}
		for range qtypes {
			l := <-lanes
			if l.err != nil {
				// Prefer the error for the name as given (Go's rule).
				if lastErr == nil || fqdn == host+"." || fqdn == host {
					lastErr = l.err
				}
				continue
			}
			if l.qtype == dnsmessage.TypeA {
				v4 = append(v4, l.addrs...)
			} else {
				v6 = append(v6, l.addrs...)
			}
		}
		if len(v4)+len(v6) > 0 {
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(v4)+len(v6) == 0 {
		if lastErr == nil {
			return nil, notFound
		}
		if de, ok := lastErr.(*net.DNSError); ok {
			// The name asked for, not the suffixed one tried last.
			de.Name = host
		}
		return nil, lastErr
	}
	first, second := v4, v6
	if n.hasV6 {
		first, second = v6, v4
	}
	out := make([]string, 0, len(first)+len(second))
	for _, a := range first {
		out = append(out, a.String())
	}
	for _, a := range second {
		out = append(out, a.String())
	}
	return out, nil
}

// nameList is the fully qualified names to try for name, in order
// (resolv.conf(5)): a rooted name alone; otherwise the name itself before
// the search domains when it has at least ndots dots, after them when it
// has fewer. Names under .onion are never sent (RFC 7686 §2).
func nameList(name string, cfg ResolverConfig) []string {
	if strings.HasSuffix(name, ".") {
		if avoidDNS(name) {
			return nil
		}
		return []string{name}
	}
	asGiven := name + "."
	early := strings.Count(name, ".") >= cfg.Ndots
	var names []string
	if early && !avoidDNS(asGiven) {
		names = append(names, asGiven)
	}
	for _, suffix := range cfg.Search {
		fqdn := asGiven + suffix
		if len(fqdn) <= 254 && !avoidDNS(fqdn) {
			names = append(names, fqdn)
		}
	}
	if !early && !avoidDNS(asGiven) {
		names = append(names, asGiven)
	}
	return names
}

// avoidDNS reports a name that must not go to a DNS server.
func avoidDNS(fqdn string) bool {
	return hasSuffixFold(strings.TrimSuffix(fqdn, "."), ".onion") || strings.EqualFold(strings.TrimSuffix(fqdn, "."), "onion")
}

// isLocalhost reports the names RFC 6761 §6.3 reserves for loopback, and
// localhost.localdomain as Go's resolver does.
func isLocalhost(h string) bool {
	h = strings.TrimSuffix(h, ".")
	return strings.EqualFold(h, "localhost") || hasSuffixFold(h, ".localhost") ||
		strings.EqualFold(h, "localhost.localdomain") || hasSuffixFold(h, ".localhost.localdomain")
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// isDomainName reports whether s is a host name as RFC 1035 §2.3.1 and
// RFC 1123 §2.1 allow it, with underscores (found in real names) and an
// optional trailing dot: labels of 1 to 63 letters, digits, hyphens and
// underscores, not starting or ending with a hyphen, 253 bytes at most
// without the dot, and not all digits (an IP address is not a name).
func isDomainName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	letters := false
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			switch c := label[i]; {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c == '-':
				letters = true
			case '0' <= c && c <= '9':
			default:
				return false
			}
		}
	}
	return letters
}

// tryOneName asks the servers for the qtype records of the rooted name,
// each server in turn, the whole list cfg.Attempts times, and returns the
// first answer's addresses. A name error (NXDOMAIN) or an answer without
// such records ends the search: another server would say the same.
func (n *Net) tryOneName(ctx context.Context, cfg ResolverConfig, name string, qtype dnsmessage.Type) ([]netip.Addr, error) {
	qname, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, &net.DNSError{Err: errCannotMarshalDNSMessage.Error(), Name: name}
	}
	q := dnsmessage.Question{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}
	var lastErr error
	for range cfg.Attempts {
		for _, srv := range n.dnsServers {
			server := netip.AddrPortFrom(srv, dnsPort)
			if err := ctx.Err(); err != nil {
				return nil, contextDNSError(err, name, server.String())
			}
			p, h, err := n.exchange(ctx, server, q, cfg.Timeout)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return nil, contextDNSError(cerr, name, server.String())
				}
				de := &net.DNSError{Err: err.Error(), Name: name, Server: server.String()}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					de.IsTimeout = true
				}
				// Socket errors (an ICMP port unreachable...) are
				// temporary, as Go's resolver marks them.
				var oe *net.OpError
				if errors.As(err, &oe) || de.IsTimeout {
					de.IsTemporary = true
				}
				lastErr = de
				continue
			}
			addrs, err := readAnswer(p, h, qtype)
			if err != nil {
				de := &net.DNSError{Err: err.Error(), Name: name, Server: server.String()}
				switch err {
				case errNoSuchHost:
					de.IsNotFound = true
					return nil, de
				case errServerTemporarilyMisbehaving:
					de.IsTemporary = true
				case errCannotUnmarshalDNSMessage:
					n.dns.badAnswerRecs.Add(1)
				}
				lastErr = de
				continue
			}
			return addrs, nil
		}
	}
	return nil, lastErr
}

// contextDNSError is the error of a lookup whose context ended: a timeout
// for a deadline, "operation was canceled" for a cancel; errors.Is finds
// the context's error in it.
func contextDNSError(err error, name, server string) *net.DNSError {
	de := &net.DNSError{UnwrapErr: err, Name: name, Server: server}
	if errors.Is(err, context.DeadlineExceeded) {
		de.Err, de.IsTimeout, de.IsTemporary = timeoutError{}.Error(), true, true
	} else {
		de.Err = errCanceled.Error()
	}
	return de
}

// exchange sends q to server over UDP and, when the answer is truncated,
// again over TCP, and returns the accepted answer positioned after its
// question. Each of the two waits at most timeout (and never past ctx).
func (n *Net) exchange(ctx context.Context, server netip.AddrPort, q dnsmessage.Question, timeout time.Duration) (dnsmessage.Parser, dnsmessage.Header, error) {
	id := uint16(rand.Uint32())
	udpReq, tcpReq, err := newRequest(id, q)
	if err != nil {
		return dnsmessage.Parser{}, dnsmessage.Header{}, errCannotMarshalDNSMessage
	}
	p, h, err := n.roundTrip(ctx, server, id, q, udpReq, timeout, false)
	if err != nil || !h.Truncated {
		return p, h, err
	}
	// RFC 7766 §5: a truncated UDP answer is asked again over TCP. A
	// truncated TCP answer is taken as it is (glibc's and Go's choice).
	n.dns.truncated.Add(1)
	return n.roundTrip(ctx, server, id, q, tcpReq, timeout, true)
}

// newRequest builds the query for q with the given ID, recursion desired
// and an EDNS(0) OPT record offering maxDNSPacketSize: as a UDP payload
// and, sharing its bytes, with the 2-byte length prefix of TCP.
func newRequest(id uint16, q dnsmessage.Question) (udpReq, tcpReq []byte, err error) {
	b := dnsmessage.NewBuilder(make([]byte, 2, 514), dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, nil, err
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, nil, err
	}
	var opt dnsmessage.ResourceHeader
	if err := opt.SetEDNS0(maxDNSPacketSize, dnsmessage.RCodeSuccess, false); err != nil {
		return nil, nil, err
	}
	if err := b.OPTResource(opt, dnsmessage.OPTResource{}); err != nil {
		return nil, nil, err
	}
	tcpReq, err = b.Finish()
	if err != nil {
		return nil, nil, err
	}
	l := len(tcpReq) - 2
	tcpReq[0], tcpReq[1] = byte(l>>8), byte(l)
	return tcpReq[2:], tcpReq, nil
}

// aLongTimeAgo is a deadline in the past: setting it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip sends req to server over one connection, UDP or TCP, and waits
// for the answer until timeout or ctx ends.
func (n *Net) roundTrip(ctx context.Context, server netip.AddrPort, id uint16, q dnsmessage.Question, req []byte, timeout time.Duration, useTCP bool) (dnsmessage.Parser, dnsmessage.Header, error) {
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var c net.Conn
	var uc *stack.UDPConn
	if useTCP {
		tc, err := n.stack.DialAddrPort(ectx, server)
		if err != nil {
			return dnsmessage.Parser{}, dnsmessage.Header{}, n.waitErr(ectx, err)
		}
		c = tc
	} else {
		var err error
		uc, err = n.stack.DialUDP(netip.AddrPort{}, server)
		if err != nil {
			return dnsmessage.Parser{}, dnsmessage.Header{}, err
		}
		c = uc
	}
	defer c.Close()
	// The context's end, deadline or cancel, wakes the read.
	stop := context.AfterFunc(ectx, func() { _ = c.SetDeadline(aLongTimeAgo) })
	defer stop()
	var p dnsmessage.Parser
	var h dnsmessage.Header
	var err error
	if useTCP {
		n.dns.queriesTCP.Add(1)
		p, h, err = n.streamRoundTrip(c, id, q, req)
	} else {
		n.dns.queriesUDP.Add(1)
		p, h, err = n.packetRoundTrip(uc, id, q, req)
	}
	if err != nil {
		return dnsmessage.Parser{}, dnsmessage.Header{}, n.waitErr(ectx, err)
	}
	return p, h, nil
}

// waitErr turns the error of a wait whose deadline passed into a timeout,
// counting it. (A cancel is the caller's to report: tryOneName sees it in
// its own ctx.)
func (n *Net) waitErr(ectx context.Context, err error) error {
	if errors.Is(ectx.Err(), context.DeadlineExceeded) {
		n.dns.timeouts.Add(1)
		return timeoutError{}
	}
	return err
}

// packetRoundTrip writes the query and reads datagrams until one is the
// answer; the others are counted and ignored (RFC 5452 §9.1: a forgery
// must not end the wait for the real answer).
func (n *Net) packetRoundTrip(c *stack.UDPConn, id uint16, q dnsmessage.Question, req []byte) (dnsmessage.Parser, dnsmessage.Header, error) {
	if _, err := c.Write(req); err != nil {
		return dnsmessage.Parser{}, dnsmessage.Header{}, err
	}
	b := make([]byte, maxDNSPacketSize)
	for {
		m, _, flags, _, err := c.ReadMsgUDPAddrPort(b, nil)
		if err != nil {
			return dnsmessage.Parser{}, dnsmessage.Header{}, err
		}
		v := answerOversized
		var p dnsmessage.Parser
		var h dnsmessage.Header
		if flags&syscall.MSG_TRUNC == 0 {
			p, h, v = matchAnswer(b[:m], id, q)
		}
		if v == answerOK {
			return p, h, nil
		}
		n.dns.ignored[v].Add(1)
	}
}

// streamRoundTrip writes the length-prefixed query and reads one
// length-prefixed answer (RFC 1035 §4.2.2), which must match.
func (n *Net) streamRoundTrip(c net.Conn, id uint16, q dnsmessage.Question, req []byte) (dnsmessage.Parser, dnsmessage.Header, error) {
	if _, err := c.Write(req); err != nil {
		return dnsmessage.Parser{}, dnsmessage.Header{}, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return dnsmessage.Parser{}, dnsmessage.Header{}, err
	}
	b := make([]byte, int(l[0])<<8|int(l[1]))
	if _, err := io.ReadFull(c, b); err != nil {
		return dnsmessage.Parser{}, dnsmessage.Header{}, err
	}
	p, h, v := matchAnswer(b, id, q)
	switch v {
	case answerOK:
		return p, h, nil
	case answerMalformed:
		n.dns.badTCPAnswers.Add(1)
		return dnsmessage.Parser{}, dnsmessage.Header{}, errCannotUnmarshalDNSMessage
	default:
		n.dns.badTCPAnswers.Add(1)
		return dnsmessage.Parser{}, dnsmessage.Header{}, errInvalidDNSResponse
	}
}

// answerVerdict is matchAnswer's finding about a message.
type answerVerdict uint8

const (
	answerOK            answerVerdict = iota
	answerMalformed                   // header or question does not parse
	answerNotResponse                 // QR clear
	answerWrongID                     // not the query's ID
	answerWrongQuestion               // not exactly the query's question
	answerOversized                   // longer than we read
	numVerdicts
)

// matchAnswer parses msg's header and question and checks that it answers
// the query id for q: a response, with the query's ID and exactly its one
// question (the name compared without regard to ASCII case, RFC 4343). On
// answerOK the parser stands at the answer section.
func matchAnswer(msg []byte, id uint16, q dnsmessage.Question) (dnsmessage.Parser, dnsmessage.Header, answerVerdict) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return p, h, answerMalformed
	}
	if !h.Response {
		return p, h, answerNotResponse
	}
	if h.ID != id {
		return p, h, answerWrongID
	}
	rq, err := p.Question()
	switch {
	case err == dnsmessage.ErrSectionDone:
		return p, h, answerWrongQuestion
	case err != nil:
		return p, h, answerMalformed
	case rq.Type != q.Type || rq.Class != q.Class || !equalFoldName(rq.Name, q.Name):
		return p, h, answerWrongQuestion
	}
	switch err := p.SkipQuestion(); {
	case err == nil:
		return p, h, answerWrongQuestion
	case err != dnsmessage.ErrSectionDone:
		return p, h, answerMalformed
	}
	return p, h, answerOK
}

// equalFoldName compares two names, ASCII letters without case.
func equalFoldName(a, b dnsmessage.Name) bool {
	if a.Length != b.Length {
		return false
	}
	for i := range int(a.Length) {
		x, y := a.Data[i], b.Data[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// readAnswer judges an accepted answer and returns its qtype addresses.
// NXDOMAIN, or success without a record of the type (NODATA), is
// errNoSuchHost; SERVFAIL is temporary; a success that is neither
// authoritative nor recursive and has no records is a lame referral; any
// other code is a misbehaving server; records that do not parse, or an
// address record whose RDATA is not exactly one address, are
// errCannotUnmarshalDNSMessage. Records of other types (the CNAMEs
// before the addresses) are skipped: we asked for recursion, so the
// addresses are those of the name (RFC 1034 §4.3.1).
func readAnswer(p dnsmessage.Parser, h dnsmessage.Header, qtype dnsmessage.Type) ([]netip.Addr, error) {
	rcode, hasAdditional := extendedRCode(p, h)
	if rcode == dnsmessage.RCodeNameError {
		return nil, errNoSuchHost
	}
	first := p // a copy still at the first answer
	_, err := first.AnswerHeader()
	if err != nil && err != dnsmessage.ErrSectionDone {
		return nil, errCannotUnmarshalDNSMessage
	}
	noAnswers := err == dnsmessage.ErrSectionDone
	switch {
	case rcode == dnsmessage.RCodeSuccess:
		if noAnswers && !h.Authoritative && !h.RecursionAvailable && !hasAdditional {
			return nil, errLameReferral
		}
	case rcode == dnsmessage.RCodeServerFailure:
		return nil, errServerTemporarilyMisbehaving
	default:
		return nil, errServerMisbehaving
	}
	var addrs []netip.Addr
	for {
		rh, err := p.AnswerHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return nil, errCannotUnmarshalDNSMessage
		}
		switch {
		case rh.Class != dnsmessage.ClassINET || rh.Type != qtype:
			err = p.SkipAnswer()
		case qtype == dnsmessage.TypeA && rh.Length != 4, qtype == dnsmessage.TypeAAAA && rh.Length != 16:
			// dnsmessage reads the 4 or 16 bytes whatever RDLENGTH
			// says (RFC 1035 §3.4.1, RFC 3596 §2.2: exactly that).
			return nil, errCannotUnmarshalDNSMessage
		case qtype == dnsmessage.TypeA:
			var r dnsmessage.AResource
			r, err = p.AResource()
			addrs = append(addrs, netip.AddrFrom4(r.A))
		default:
			var r dnsmessage.AAAAResource
			r, err = p.AAAAResource()
			addrs = append(addrs, netip.AddrFrom16(r.AAAA))
		}
		if err != nil {
			return nil, errCannotUnmarshalDNSMessage
		}
	}
	if len(addrs) == 0 {
		return nil, errNoSuchHost
	}
	return addrs, nil
}

// extendedRCode is the answer's RCODE with the upper bits of an OPT
// record's extended RCODE (RFC 6891 §6.1.3), and whether the additional
// section has any record. p is a copy: the caller's parser stays put.
func extendedRCode(p dnsmessage.Parser, h dnsmessage.Header) (dnsmessage.RCode, bool) {
	if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return h.RCode, false
	}
	has := false
	for {
		ah, err := p.AdditionalHeader()
		if err != nil {
			return h.RCode, has
		}
		has = true
		if ah.Type == dnsmessage.TypeOPT {
			return ah.ExtendedRCode(h.RCode), has
		}
		if p.SkipAdditional() != nil {
			return h.RCode, has
		}
	}
}
