package netstack

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tun"
)

// A second server address on the server's stack, for tests with two DNS
// servers.
var addrB4b = netip.MustParseAddr("198.18.0.53")

// dnsQuery is a query as the test server received it.
type dnsQuery struct {
	msg dnsmessage.Message
	tcp bool
}

// dnsSend is one message the test server sends back, from its own socket
// or (spoof) from another port of the same address.
type dnsSend struct {
	b     []byte
	spoof bool
}

// dnsHandler answers a query with any number of messages.
type dnsHandler func(q dnsQuery) []dnsSend

// dnsServer is a small DNS server on any net.PacketConn (and, when tcp is
// set, net.Listener): it logs every query it gets as "udp A name." and
// answers it with its handler.
type dnsServer struct {
	udp, spoof net.PacketConn
	tcp        net.Listener
	handle     dnsHandler

	mu     sync.Mutex
	log    []string
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

func startDNSServer(udp, spoof net.PacketConn, tcp net.Listener, h dnsHandler) *dnsServer {
	s := &dnsServer{udp: udp, spoof: spoof, tcp: tcp, handle: h, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serveUDP()
	if tcp != nil {
		s.wg.Add(1)
		go s.serveTCP()
	}
	return s
}

// Close stops the server and waits for its goroutines.
func (s *dnsServer) Close() {
	s.udp.Close()
	if s.spoof != nil {
		s.spoof.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Log returns the queries received so far, sorted (the A and AAAA lanes
// of a lookup run concurrently).
func (s *dnsServer) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.log))
}

// Sequence returns the queries received so far in arrival order (for
// lookups with one lane, where the order is the resolver's).
func (s *dnsServer) Sequence() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

func (s *dnsServer) query(b []byte, tcp bool) []dnsSend {
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil || len(m.Questions) != 1 {
		return nil
	}
	proto := "udp"
	if tcp {
		proto = "tcp"
	}
	q := m.Questions[0]
	s.mu.Lock()
	s.log = append(s.log, proto+" "+strings.TrimPrefix(q.Type.String(), "Type")+" "+q.Name.String())
	s.mu.Unlock()
	return s.handle(dnsQuery{msg: m, tcp: tcp})
}

func (s *dnsServer) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		for _, out := range s.query(buf[:n], false) {
			c := s.udp
			if out.spoof {
				c = s.spoof
			}
			if _, err := c.WriteTo(out.b, from); err != nil {
				return
			}
		}
	}
}

func (s *dnsServer) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			// Accepted just before Close swept the connections.
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				b := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, b); err != nil {
					return
				}
				for _, out := range s.query(b, true) {
					msg := binary.BigEndian.AppendUint16(nil, uint16(len(out.b)))
					if _, err := c.Write(append(msg, out.b...)); err != nil {
						return
					}
				}
			}
		}()
	}
}

// zoneEntry is what the test zone knows of a name.
type zoneEntry struct {
	a, aaaa  []netip.Addr
	nx       bool // NXDOMAIN
	servfail bool
	truncUDP bool // over UDP: TC set and no records; over TCP: the records
}

// testZone is the names the resolver tests look up.
var testZone = map[string]zoneEntry{
	"host.test.": {
		a:    []netip.Addr{netip.MustParseAddr("198.18.5.1"), netip.MustParseAddr("198.18.5.2")},
		aaaa: []netip.Addr{netip.MustParseAddr("2001:2::5:1")},
	},
	"v4only.test.": {a: []netip.Addr{netip.MustParseAddr("198.18.5.3")}},
	"big.test.": {
		a:        []netip.Addr{netip.MustParseAddr("198.18.6.1"), netip.MustParseAddr("198.18.6.2"), netip.MustParseAddr("198.18.6.3")},
		aaaa:     []netip.Addr{netip.MustParseAddr("2001:2::6:1")},
		truncUDP: true,
	},
	"web.test.":     {a: []netip.Addr{addrB4}, aaaa: []netip.Addr{addrB6}},
	"db.corp.test.": {a: []netip.Addr{netip.MustParseAddr("198.18.5.9")}},
	"host.cn.test.": {a: []netip.Addr{netip.MustParseAddr("198.18.5.10")}},
	"fail.test.":    {servfail: true},
}

// zoneAnswer answers q from zone: NXDOMAIN for a name it does not have.
func zoneAnswer(zone map[string]zoneEntry, q dnsQuery) []byte {
	qq := q.msg.Questions[0]
	e, ok := zone[strings.ToLower(qq.Name.String())]
	switch {
	case !ok || e.nx:
		return dnsAnswer(q.msg, dnsmessage.RCodeNameError, nil, false)
	case e.servfail:
		return dnsAnswer(q.msg, dnsmessage.RCodeServerFailure, nil, false)
	case e.truncUDP && !q.tcp:
		return dnsAnswer(q.msg, dnsmessage.RCodeSuccess, nil, true)
	case qq.Type == dnsmessage.TypeA:
		return dnsAnswer(q.msg, dnsmessage.RCodeSuccess, e.a, false)
	case qq.Type == dnsmessage.TypeAAAA:
		return dnsAnswer(q.msg, dnsmessage.RCodeSuccess, e.aaaa, false)
	}
	return dnsAnswer(q.msg, dnsmessage.RCodeSuccess, nil, false)
}

func zoneHandler(zone map[string]zoneEntry) dnsHandler {
	return func(q dnsQuery) []dnsSend { return []dnsSend{{b: zoneAnswer(zone, q)}} }
}

// dnsAnswer builds the answer to query with rcode and address records
// (A or AAAA by each address's family), echoing its question.
func dnsAnswer(query dnsmessage.Message, rcode dnsmessage.RCode, addrs []netip.Addr, truncated bool) []byte {
	m := dnsmessage.Message{
		Header: dnsmessage.Header{ID: query.ID, Response: true, RecursionDesired: query.RecursionDesired,
			RecursionAvailable: true, RCode: rcode, Truncated: truncated},
		Questions: query.Questions,
	}
	for _, a := range addrs {
		h := dnsmessage.ResourceHeader{Name: query.Questions[0].Name, Class: dnsmessage.ClassINET, TTL: 60}
		if a.Is4() {
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
		} else {
			m.Answers = append(m.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// resolverEnv is a *Net on a stack joined by an in-memory pipe to a
// second stack holding the DNS servers (and whatever else a test serves).
type resolverEnv struct {
	n      *Net
	server *stack.Stack
}

// newResolverEnv makes a Net with the local addresses and DNS servers
// given; the server stack has addrB4, addrB4b and addrB6.
func newResolverEnv(t *testing.T, local, servers []netip.Addr) *resolverEnv {
	t.Helper()
	la, lb := tun.NewPipe(1500)
	cs, err := stack.New(stack.Options{Links: []tun.Link{la}, Addrs: local})
	require.NoError(t, err)
	ss, err := stack.New(stack.Options{Links: []tun.Link{lb}, Addrs: []netip.Addr{addrB4, addrB4b, addrB6}})
	require.NoError(t, err)
	t.Cleanup(func() {
		cs.Close()
		ss.Close()
	})
	n := &Net{stack: cs, dnsServers: servers}
	for _, a := range local {
		if a.Is4() {
			n.hasV4 = true
		} else {
			n.hasV6 = true
		}
	}
	return &resolverEnv{n: n, server: ss}
}

// serveDNS starts a DNS server on the server stack at addr:53, UDP and
// TCP, with a spoofing socket on addr:5353.
func (e *resolverEnv) serveDNS(t *testing.T, addr netip.Addr, h dnsHandler) *dnsServer {
	t.Helper()
	udp, err := e.server.ListenUDP(netip.AddrPortFrom(addr, 53))
	require.NoError(t, err)
	spoof, err := e.server.ListenUDP(netip.AddrPortFrom(addr, 5353))
	require.NoError(t, err)
	network := "tcp4"
	if addr.Is6() {
		network = "tcp6"
	}
	ln, err := e.server.ListenBacklog(network, netip.AddrPortFrom(addr, 53).String(), 0)
	require.NoError(t, err)
	s := startDNSServer(udp, spoof, ln, h)
	t.Cleanup(s.Close)
	return s
}

var (
	dualStack = []netip.Addr{addrA4, addrA6}
	v4Only    = []netip.Addr{addrA4}
	v6Only    = []netip.Addr{addrA6}
)

// shortCtx is a context for tests whose outcome is a timeout: the lookup
// must end by its deadline.
func shortCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestLookupHostAnswers: A and AAAA answers, IPv6 first when the Net has
// IPv6; only the families the Net has are asked; a rooted name and a name
// in capitals are the same name.
func TestLookupHostAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local []netip.Addr
		host  string
		want  []string
		log   []string
	}{
		{"dual", dualStack, "host.test", []string{"2001:2::5:1", "198.18.5.1", "198.18.5.2"},
			[]string{"udp A host.test.", "udp AAAA host.test."}},
		{"v4-only", v4Only, "host.test", []string{"198.18.5.1", "198.18.5.2"}, []string{"udp A host.test."}},
		{"v6-only", v6Only, "host.test", []string{"2001:2::5:1"}, []string{"udp AAAA host.test."}},
		{"rooted", v4Only, "host.test.", []string{"198.18.5.1", "198.18.5.2"}, []string{"udp A host.test."}},
		{"capitals", v4Only, "HoSt.TEST", []string{"198.18.5.1", "198.18.5.2"}, []string{"udp A HoSt.TEST."}},
		// NODATA for AAAA, but A answers: the lookup succeeds.
		{"one-family", dualStack, "v4only.test", []string{"198.18.5.3"},
			[]string{"udp A v4only.test.", "udp AAAA v4only.test."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := []netip.Addr{addrB4}
			if !slices.ContainsFunc(tc.local, netip.Addr.Is4) {
				servers = []netip.Addr{addrB6}
			}
			e := newResolverEnv(t, tc.local, servers)
			srv := e.serveDNS(t, servers[0], zoneHandler(testZone))
			got, err := e.n.LookupContextHost(shortCtx(t, 10*time.Second), tc.host)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.log, srv.Log())
			st := e.n.DNSStats()
			require.Equal(t, uint64(len(tc.log)), st.QueriesUDP)
			require.Equal(t, DNSStats{QueriesUDP: st.QueriesUDP}, st)
		})
	}
}

// TestLookupHostWithoutQueries: IP addresses, localhost names and names
// that cannot be looked up are answered without a query.
func TestLookupHostWithoutQueries(t *testing.T) {
	e := newResolverEnv(t, dualStack, []netip.Addr{addrB4})
	srv := e.serveDNS(t, addrB4, zoneHandler(testZone))
	for _, tc := range []struct {
		host string
		want []string // nil: not found
	}{
		{"198.18.9.9", []string{"198.18.9.9"}},
		{"2001:2::9", []string{"2001:2::9"}},
		{"fe80::1%eth0", []string{"fe80::1%eth0"}},
		{"::ffff:198.18.9.9", []string{"::ffff:198.18.9.9"}},
		{"localhost", []string{"::1", "127.0.0.1"}},
		{"LocalHost.", []string{"::1", "127.0.0.1"}},
		{"app.localhost", []string{"::1", "127.0.0.1"}},
		{"localhost.localdomain", []string{"::1", "127.0.0.1"}},
		{"", nil},
		{"bad..name", nil},
		{"-bad.test", nil},
		{"bad-.test", nil},
		{"sp ace.test", nil},
		{"1.2.3.4.5", nil},
		{strings.Repeat("a", 64) + ".test", nil},
		{"hidden.onion", nil},
		{"hidden.onion.", nil},
	} {
		got, err := e.n.LookupHost(tc.host)
		if tc.want != nil {
			require.NoError(t, err, tc.host)
			require.Equal(t, tc.want, got, tc.host)
			continue
		}
		var de *net.DNSError
		require.ErrorAs(t, err, &de, tc.host)
		require.Equal(t, net.DNSError{Err: "no such host", Name: tc.host, IsNotFound: true}, *de, tc.host)
		require.Nil(t, got)
	}
	require.Empty(t, srv.Log())
	require.Equal(t, DNSStats{}, e.n.DNSStats())
}

// TestLookupHostNotFound: NXDOMAIN, and NODATA in every family asked,
// are *net.DNSError with IsNotFound, naming the server; a name error is
// not asked again of the server.
func TestLookupHostNotFound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local []netip.Addr
		host  string
		log   []string
	}{
		{"nxdomain", dualStack, "missing.test", []string{"udp A missing.test.", "udp AAAA missing.test."}},
		{"nodata", v6Only, "v4only.test", []string{"udp AAAA v4only.test."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := addrB4
			if !slices.ContainsFunc(tc.local, netip.Addr.Is4) {
				server = addrB6
			}
			e := newResolverEnv(t, tc.local, []netip.Addr{server})
			srv := e.serveDNS(t, server, zoneHandler(testZone))
			got, err := e.n.LookupContextHost(shortCtx(t, 10*time.Second), tc.host)
			require.Nil(t, got)
			var de *net.DNSError
			require.ErrorAs(t, err, &de)
			require.Equal(t, net.DNSError{Err: "no such host", Name: tc.host,
				Server: netip.AddrPortFrom(server, 53).String(), IsNotFound: true}, *de)
			require.Equal(t, tc.log, srv.Log())
		})
	}
}

// TestLookupHostTruncatedRetriesTCP: a UDP answer with TC set is asked
// again over TCP, and the TCP answer's records are the result.
func TestLookupHostTruncatedRetriesTCP(t *testing.T) {
	e := newResolverEnv(t, dualStack, []netip.Addr{addrB4})
	srv := e.serveDNS(t, addrB4, zoneHandler(testZone))
	got, err := e.n.LookupContextHost(shortCtx(t, 10*time.Second), "big.test")
	require.NoError(t, err)
	require.Equal(t, []string{"2001:2::6:1", "198.18.6.1", "198.18.6.2", "198.18.6.3"}, got)
	require.Equal(t, []string{"tcp A big.test.", "tcp AAAA big.test.", "udp A big.test.", "udp AAAA big.test."}, srv.Log())
	require.Equal(t, DNSStats{QueriesUDP: 2, QueriesTCP: 2, Truncated: 2}, e.n.DNSStats())
}

// TestLookupHostIgnoresForgeries: while it waits, the resolver ignores
// and counts datagrams that are no DNS message, not a response, of
// another ID, of another question, too long, or from another port, and
// takes the real answer that follows them.
func TestLookupHostIgnoresForgeries(t *testing.T) {
	e := newResolverEnv(t, v4Only, []netip.Addr{addrB4})
	srv := e.serveDNS(t, addrB4, func(q dnsQuery) []dnsSend {
		real := zoneAnswer(testZone, q)
		notResponse := slices.Clone(real)
		notResponse[2] &^= 0x80 // QR
		wrongID := q.msg
		wrongID.ID ^= 0x5a5a
		otherName := q.msg
		otherName.Questions = []dnsmessage.Question{{Name: dnsmessage.MustNewName("evil.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}
		otherType := q.msg
		otherType.Questions = []dnsmessage.Question{{Name: q.msg.Questions[0].Name, Type: dnsmessage.TypeAAAA, Class: dnsmessage.ClassINET}}
		twoQuestions := q.msg
		twoQuestions.Questions = append(slices.Clone(q.msg.Questions), otherName.Questions[0])
		var many []netip.Addr
		for i := range 80 {
			many = append(many, netip.AddrFrom4([4]byte{198, 18, 7, byte(i)}))
		}
		evil := []netip.Addr{netip.MustParseAddr("198.18.66.6")}
		return []dnsSend{
			{b: []byte{1, 2, 3}},
			{b: notResponse},
			{b: dnsAnswer(wrongID, dnsmessage.RCodeSuccess, evil, false)},
			{b: dnsAnswer(otherName, dnsmessage.RCodeSuccess, evil, false)},
			{b: dnsAnswer(otherType, dnsmessage.RCodeSuccess, []netip.Addr{netip.MustParseAddr("2001:2::66")}, false)},
			{b: dnsAnswer(twoQuestions, dnsmessage.RCodeSuccess, evil, false)},
			{b: dnsAnswer(q.msg, dnsmessage.RCodeSuccess, many, false)},
			{b: dnsAnswer(q.msg, dnsmessage.RCodeSuccess, evil, false), spoof: true},
			{b: real},
		}
	})
	noPorts := e.n.stack.Stats().UDPNoPorts.Load()
	got, err := e.n.LookupContextHost(shortCtx(t, 10*time.Second), "host.test")
	require.NoError(t, err)
	require.Equal(t, []string{"198.18.5.1", "198.18.5.2"}, got)
	require.Equal(t, []string{"udp A host.test."}, srv.Log())
	require.Equal(t, DNSStats{QueriesUDP: 1, IgnoredMalformed: 1, IgnoredNotResponse: 1, IgnoredWrongID: 1,
		IgnoredWrongQuestion: 3, IgnoredOversized: 1}, e.n.DNSStats())
	// The answer from port 5353 never reached the connected socket.
	require.Equal(t, noPorts+1, e.n.stack.Stats().UDPNoPorts.Load())
}

// TestLookupHostTimeout: a server that never answers ends the lookup at
// the context's deadline with IsTimeout.
func TestLookupHostTimeout(t *testing.T) {
	e := newResolverEnv(t, v4Only, []netip.Addr{addrB4})
	srv := e.serveDNS(t, addrB4, func(dnsQuery) []dnsSend { return nil })
	start := time.Now()
	got, err := e.n.LookupContextHost(shortCtx(t, 100*time.Millisecond), "host.test")
	require.Less(t, time.Since(start), 5*time.Second, "the lookup waited past its context")
	require.Nil(t, got)
	var de *net.DNSError
	require.ErrorAs(t, err, &de)
	require.True(t, de.IsTimeout)
	require.True(t, de.Timeout())
	require.False(t, de.IsNotFound)
	require.Equal(t, "host.test", de.Name)
	require.Equal(t, "198.18.0.1:53", de.Server)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, []string{"udp A host.test."}, srv.Log())
	require.Equal(t, DNSStats{QueriesUDP: 1, Timeouts: 1}, e.n.DNSStats())
}

// TestLookupHostAttempts: with a short per-query timeout, every server is
// asked Attempts times; the error is a temporary timeout. With a second
// server that answers, the lookup succeeds after the first times out.
func TestLookupHostAttempts(t *testing.T) {
	cfg := DefaultResolverConfig()
	cfg.Timeout, cfg.Attempts = 20*time.Millisecond, 3
	silent := func(dnsQuery) []dnsSend { return nil }

	e := newResolverEnv(t, v4Only, []netip.Addr{addrB4})
	require.NoError(t, e.n.SetResolverConfig(cfg))
	srv := e.serveDNS(t, addrB4, silent)
	_, err := e.n.LookupHost("host.test")
	var de *net.DNSError
	require.ErrorAs(t, err, &de)
	require.Equal(t, net.DNSError{Err: "i/o timeout", Name: "host.test", Server: "198.18.0.1:53",
		IsTimeout: true, IsTemporary: true}, *de)
	require.Equal(t, []string{"udp A host.test.", "udp A host.test.", "udp A host.test."}, srv.Log())
	require.Equal(t, DNSStats{QueriesUDP: 3, Timeouts: 3}, e.n.DNSStats())

	// Long enough for the second server to answer on a loaded machine.
	cfg.Timeout = 250 * time.Millisecond
	e = newResolverEnv(t, v4Only, []netip.Addr{addrB4, addrB4b})
	require.NoError(t, e.n.SetResolverConfig(cfg))
	srv1 := e.serveDNS(t, addrB4, silent)
	srv2 := e.serveDNS(t, addrB4b, zoneHandler(testZone))
	got, err := e.n.LookupHost("host.test")
	require.NoError(t, err)
	require.Equal(t, []string{"198.18.5.1", "198.18.5.2"}, got)
	require.Equal(t, []string{"udp A host.test."}, srv1.Log())
	require.Equal(t, []string{"udp A host.test."}, srv2.Log())
	require.Equal(t, DNSStats{QueriesUDP: 2, Timeouts: 1}, e.n.DNSStats())
}

// TestLookupHostNextServer: SERVFAIL, and an ICMP port unreachable
// (ECONNREFUSED on the connected socket), move on to the next server;
// when no server is left the error is temporary and names the last.
func TestLookupHostNextServer(t *testing.T) {
	t.Run("servfail", func(t *testing.T) {
		e := newResolverEnv(t, v4Only, []netip.Addr{addrB4, addrB4b})
		srv1 := e.serveDNS(t, addrB4, func(q dnsQuery) []dnsSend {
			return []dnsSend{{b: dnsAnswer(q.msg, dnsmessage.RCodeServerFailure, nil, false)}}
		})
		srv2 := e.serveDNS(t, addrB4b, zoneHandler(testZone))
		got, err := e.n.LookupHost("host.test")
		require.NoError(t, err)
		require.Equal(t, []string{"198.18.5.1", "198.18.5.2"}, got)
		require.Equal(t, []string{"udp A host.test."}, srv1.Log())
		require.Equal(t, []string{"udp A host.test."}, srv2.Log())
	})
	t.Run("servfail-everywhere", func(t *testing.T) {
		e := newResolverEnv(t, v4Only, []netip.Addr{addrB4})
		srv := e.serveDNS(t, addrB4, zoneHandler(testZone))
		_, err := e.n.LookupHost("fail.test")
		var de *net.DNSError
		require.ErrorAs(t, err, &de)
		require.Equal(t, net.DNSError{Err: "server misbehaving", Name: "fail.test", Server: "198.18.0.1:53",
			IsTemporary: true}, *de)
		// Two attempts (the default), one server.
		require.Equal(t, []string{"udp A fail.test.", "udp A fail.test."}, srv.Log())
	})
	t.Run("port-unreachable", func(t *testing.T) {
		// Nothing listens on addrB4:53.
		e := newResolverEnv(t, v4Only, []netip.Addr{addrB4, addrB4b})
		srv := e.serveDNS(t, addrB4b, zoneHandler(testZone))
		got, err := e.n.LookupContextHost(shortCtx(t, 10*time.Second), "host.test")
		require.NoError(t, err)
		require.Equal(t, []string{"198.18.5.1", "198.18.5.2"}, got)
		require.Equal(t, []string{"udp A host.test."}, srv.Log())
		require.Equal(t, uint64(1), e.n.stack.Stats().UDPICMPErrors.Load())

		e = newResolverEnv(t, v4Only, []netip.Addr{addrB4})
		_, err = e.n.LookupContextHost(shortCtx(t, 10*time.Second), "host.test")
		var de *net.DNSError
		require.ErrorAs(t, err, &de)
		require.True(t, de.IsTemporary)
		require.False(t, de.IsTimeout)
		require.Equal(t, "198.18.0.1:53", de.Server)
		require.Contains(t, de.Err, syscall.ECONNREFUSED.Error())
	})
}

// TestLookupHostCancel: cancelling the context ends a lookup that is
// waiting for an answer, with context.Canceled inside the error.
func TestLookupHostCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newResolverEnv(t, v4Only, []netip.Addr{addrB4})
	e.serveDNS(t, addrB4, func(dnsQuery) []dnsSend {
		cancel()
		return nil
	})
	_, err := e.n.LookupContextHost(ctx, "host.test")
	var de *net.DNSError
	require.ErrorAs(t, err, &de)
	require.Equal(t, "operation was canceled", de.Err)
	require.False(t, de.IsTimeout)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, DNSStats{QueriesUDP: 1}, e.n.DNSStats())
}

// TestLookupHostSearch: the search list and ndots decide the names asked
// and their order, as in resolv.conf(5); a rooted name is asked alone.
func TestLookupHostSearch(t *testing.T) {
	cfg := DefaultResolverConfig()
	cfg.Search = []string{"corp.test", "cn.test."}
	for _, tc := range []struct {
		host  string
		ndots int
		want  []string // nil: not found
		log   []string
	}{
		// Fewer dots than ndots: the search domains first, stopping at an answer.
		{"db", 1, []string{"198.18.5.9"}, []string{"udp A db.corp.test."}},
		{"host", 1, []string{"198.18.5.10"}, []string{"udp A host.corp.test.", "udp A host.cn.test."}},
		// Enough dots: the name first.
		{"db", 0, []string{"198.18.5.9"}, []string{"udp A db.", "udp A db.corp.test."}},
		{"host.test", 1, []string{"198.18.5.1", "198.18.5.2"}, []string{"udp A host.test."}},
		// ndots 2: host.test has too few dots, so the search goes first.
		{"host.test", 2, []string{"198.18.5.1", "198.18.5.2"}, []string{"udp A host.test.corp.test.", "udp A host.test.cn.test.", "udp A host.test."}},
		{"host.test.", 2, []string{"198.18.5.1", "198.18.5.2"}, []string{"udp A host.test."}},
		{"nowhere", 1, nil, []string{"udp A nowhere.corp.test.", "udp A nowhere.cn.test.", "udp A nowhere."}},
		{"nowhere.test", 1, nil, []string{"udp A nowhere.test.", "udp A nowhere.test.corp.test.", "udp A nowhere.test.cn.test."}},
	} {
		t.Run(tc.host+"/"+string(rune('0'+tc.ndots)), func(t *testing.T) {
			e := newResolverEnv(t, v4Only, []netip.Addr{addrB4})
			c := cfg
			c.Ndots = tc.ndots
			require.NoError(t, e.n.SetResolverConfig(c))
			srv := e.serveDNS(t, addrB4, zoneHandler(testZone))
			got, err := e.n.LookupHost(tc.host)
			if tc.want == nil {
				var de *net.DNSError
				require.ErrorAs(t, err, &de)
				require.True(t, de.IsNotFound)
				require.Equal(t, tc.host, de.Name, "the error names the name asked for, not a suffixed one")
			} else {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			}
			require.Equal(t, tc.log, srv.Sequence())
		})
	}
}

// TestSetResolverConfigRejects: out-of-range settings are refused and
// leave the configuration as it was.
func TestSetResolverConfigRejects(t *testing.T) {
	e := newResolverEnv(t, v4Only, []netip.Addr{addrB4})
	for _, mod := range []func(*ResolverConfig){
		func(c *ResolverConfig) { c.Ndots = -1 },
		func(c *ResolverConfig) { c.Ndots = 16 },
		func(c *ResolverConfig) { c.Attempts = 0 },
		func(c *ResolverConfig) { c.Attempts = 6 },
		func(c *ResolverConfig) { c.Timeout = 0 },
		func(c *ResolverConfig) { c.Search = []string{"bad..domain"} },
	} {
		c := DefaultResolverConfig()
		mod(&c)
		require.Error(t, e.n.SetResolverConfig(c), "%+v", c)
	}
	require.Equal(t, DefaultResolverConfig(), e.n.dns.config())
	c := DefaultResolverConfig()
	c.Search = []string{"a.test", "b.test."}
	require.NoError(t, e.n.SetResolverConfig(c))
	require.Equal(t, []string{"a.test.", "b.test."}, e.n.dns.config().Search)
}

// TestLookupHostNoServers: without DNS servers a name cannot be looked
// up, but addresses and localhost still resolve.
func TestLookupHostNoServers(t *testing.T) {
	e := newResolverEnv(t, v4Only, nil)
	_, err := e.n.LookupHost("host.test")
	var de *net.DNSError
	require.ErrorAs(t, err, &de)
	require.Equal(t, net.DNSError{Err: "no DNS servers configured", Name: "host.test"}, *de)
	got, err := e.n.LookupHost("localhost")
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1"}, got)
}

// TestDialContextTCPByName: a name's addresses are tried in order, IPv6
// first: the refused one gives way to the next, which connects.
func TestDialContextTCPByName(t *testing.T) {
	e := newResolverEnv(t, dualStack, []netip.Addr{addrB4})
	e.serveDNS(t, addrB4, zoneHandler(testZone))
	ln, err := e.server.ListenBacklog("tcp4", "198.18.0.1:80", 0)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	ctx := shortCtx(t, 10*time.Second)
	for _, network := range []string{"tcp", "tcp4"} {
		c, err := e.n.DialContext(ctx, network, "web.test:80")
		require.NoError(t, err, network)
		require.Equal(t, "198.18.0.1:80", c.RemoteAddr().String())
		_, err = c.Write([]byte("hello"))
		require.NoError(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		require.Equal(t, "hello", string(buf))
		require.NoError(t, c.Close())
	}
	// IPv6 only: the one address refuses.
	_, err = e.n.DialContext(ctx, "tcp6", "web.test:80")
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "dial", oe.Op)
	require.Equal(t, "[2001:2::1]:80", oe.Addr.String())
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	// An address needs no lookup.
	c, err := e.n.Dial("tcp", "198.18.0.1:80")
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

// TestDialContextUDPAndPingByName: "udp" gives a connected UDP socket to
// the name's first address, "ping4"/"ping6" a ping socket.
func TestDialContextUDPAndPingByName(t *testing.T) {
	e := newResolverEnv(t, dualStack, []netip.Addr{addrB4})
	e.serveDNS(t, addrB4, zoneHandler(testZone))
	echo, err := e.server.ListenUDP(netip.AddrPortFrom(netip.Addr{}, 7))
	require.NoError(t, err)
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	ctx := shortCtx(t, 10*time.Second)
	for network, want := range map[string]string{"udp": "[2001:2::1]:7", "udp4": "198.18.0.1:7"} {
		c, err := e.n.DialContext(ctx, network, "web.test:7")
		require.NoError(t, err)
		require.IsType(t, &stack.UDPConn{}, c)
		require.Equal(t, want, c.RemoteAddr().String())
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = c.Write([]byte("echo " + network))
		require.NoError(t, err)
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "echo "+network, string(buf[:n]))
		require.NoError(t, c.Close())
	}
	for network, typ := range map[string]byte{"ping4": 8, "ping6": 128} {
		c, err := e.n.DialContext(ctx, network, "web.test")
		require.NoError(t, err, network)
		require.IsType(t, &stack.PingConn{}, c)
		_, err = c.Write([]byte{typ, 0, 0, 0, 0, 0, 0, 7, 'h', 'i'})
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		require.NoError(t, err)
		require.Equal(t, map[byte]byte{8: 0, 128: 129}[typ], buf[0], network) // echo reply
		require.Equal(t, []byte{0, 7, 'h', 'i'}, buf[6:n])
		require.NoError(t, c.Close())
	}
}

// TestDialContextErrors: bad networks and addresses, failed lookups and
// names without an address of the family are *net.OpError.
func TestDialContextErrors(t *testing.T) {
	e := newResolverEnv(t, dualStack, []netip.Addr{addrB4})
	e.serveDNS(t, addrB4, zoneHandler(testZone))
	ctx := shortCtx(t, 10*time.Second)
	for _, tc := range []struct {
		network, address string
		check            func(t *testing.T, err error)
	}{
		{"sctp", "web.test:80", func(t *testing.T, err error) {
			var u net.UnknownNetworkError
			require.ErrorAs(t, err, &u)
		}},
		{"tcp", "web.test", func(t *testing.T, err error) {
			var ae *net.AddrError
			require.ErrorAs(t, err, &ae)
		}},
		{"tcp", "web.test:http", func(t *testing.T, err error) {
			var ae *net.AddrError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, "invalid port", ae.Err)
		}},
		{"udp", "web.test:65536", func(t *testing.T, err error) {
			var ae *net.AddrError
			require.ErrorAs(t, err, &ae)
		}},
		{"tcp", ":80", func(t *testing.T, err error) {
			require.ErrorIs(t, err, errMissingAddress)
		}},
		{"tcp", "missing.test:80", func(t *testing.T, err error) {
			var de *net.DNSError
			require.ErrorAs(t, err, &de)
			require.True(t, de.IsNotFound)
		}},
		{"tcp6", "v4only.test:80", func(t *testing.T, err error) {
			var ae *net.AddrError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, net.AddrError{Err: "no suitable address found", Addr: "v4only.test"}, *ae)
		}},
		{"udp6", "198.18.0.1:53", func(t *testing.T, err error) {
			var ae *net.AddrError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, "no suitable address found", ae.Err)
		}},
	} {
		c, err := e.n.DialContext(ctx, tc.network, tc.address)
		require.Nil(t, c, "%s %s", tc.network, tc.address)
		var oe *net.OpError
		require.ErrorAs(t, err, &oe, "%s %s", tc.network, tc.address)
		require.Equal(t, "dial", oe.Op)
		require.Equal(t, tc.network, oe.Net)
		tc.check(t, err)
	}
}

// TestDialContextDeadline: a dial to an address that never answers ends
// at the context's deadline, with context.DeadlineExceeded inside.
func TestDialContextDeadline(t *testing.T) {
	e := newResolverEnv(t, v4Only, nil)
	// 198.18.0.9 is nobody's: the server stack drops the SYNs.
	_, err := e.n.DialContext(shortCtx(t, 100*time.Millisecond), "tcp", "198.18.0.9:80")
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, oe.Timeout())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = e.n.DialContext(ctx, "tcp", "198.18.0.9:80")
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, errors.As(err, &oe))
}

// withRDLength rewrites the RDLENGTH of msg's last record (an A record
// built by dnsAnswer, the last in the message) to l, cutting or padding
// its RDATA to match.
func withRDLength(msg []byte, l int) []byte {
	body := len(msg) - 4
	out := slices.Clone(msg[:body])
	binary.BigEndian.PutUint16(out[body-2:], uint16(l))
	rdata := append(slices.Clone(msg[body:]), 0, 0, 0, 0)
	return append(out, rdata[:l]...)
}

// TestLookupHostBadAnswers: an answer the resolver accepted but cannot
// read (an A record whose RDATA is not 4 bytes), a TCP answer that is not
// the query's, and a lame referral each fail that server, are counted,
// and the next server is asked.
func TestLookupHostBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler dnsHandler
		err     string
		stats   DNSStats
	}{
		{"rdlength-3", func(q dnsQuery) []dnsSend {
			return []dnsSend{{b: withRDLength(zoneAnswer(testZone, q), 3)}}
		}, "cannot unmarshal DNS message", DNSStats{QueriesUDP: 2, BadAnswerRecords: 1}},
		{"rdlength-5", func(q dnsQuery) []dnsSend {
			return []dnsSend{{b: withRDLength(zoneAnswer(testZone, q), 5)}}
		}, "cannot unmarshal DNS message", DNSStats{QueriesUDP: 2, BadAnswerRecords: 1}},
		{"tcp-wrong-id", func(q dnsQuery) []dnsSend {
			if !q.tcp {
				return []dnsSend{{b: dnsAnswer(q.msg, dnsmessage.RCodeSuccess, nil, true)}}
			}
			m := q.msg
			m.ID++
			return []dnsSend{{b: zoneAnswer(testZone, dnsQuery{msg: m, tcp: true})}}
		}, "invalid DNS response", DNSStats{QueriesUDP: 2, QueriesTCP: 1, Truncated: 1, BadTCPAnswers: 1}},
		{"tcp-garbage", func(q dnsQuery) []dnsSend {
			if !q.tcp {
				return []dnsSend{{b: dnsAnswer(q.msg, dnsmessage.RCodeSuccess, nil, true)}}
			}
			return []dnsSend{{b: []byte{0xde, 0xad}}}
		}, "cannot unmarshal DNS message", DNSStats{QueriesUDP: 2, QueriesTCP: 1, Truncated: 1, BadTCPAnswers: 1}},
		{"lame-referral", func(q dnsQuery) []dnsSend {
			m := dnsmessage.Message{Header: dnsmessage.Header{ID: q.msg.ID, Response: true}, Questions: q.msg.Questions}
			b, err := m.Pack()
			if err != nil {
				panic(err)
			}
			return []dnsSend{{b: b}}
		}, "lame referral", DNSStats{QueriesUDP: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newResolverEnv(t, v4Only, []netip.Addr{addrB4, addrB4b})
			cfg := DefaultResolverConfig()
			cfg.Attempts = 1
			require.NoError(t, e.n.SetResolverConfig(cfg))
			e.serveDNS(t, addrB4, tc.handler)
			good := e.serveDNS(t, addrB4b, zoneHandler(testZone))
			got, err := e.n.LookupContextHost(shortCtx(t, 10*time.Second), "host.test")
			require.NoError(t, err)
			require.Equal(t, []string{"198.18.5.1", "198.18.5.2"}, got)
			require.Equal(t, []string{"udp A host.test."}, good.Log())
			require.Equal(t, tc.stats, e.n.DNSStats())

			// The bad server alone: its fault is the lookup's error.
			e = newResolverEnv(t, v4Only, []netip.Addr{addrB4})
			require.NoError(t, e.n.SetResolverConfig(cfg))
			e.serveDNS(t, addrB4, tc.handler)
			_, err = e.n.LookupContextHost(shortCtx(t, 10*time.Second), "host.test")
			var de *net.DNSError
			require.ErrorAs(t, err, &de)
			require.Equal(t, net.DNSError{Err: tc.err, Name: "host.test", Server: "198.18.0.1:53"}, *de)
		})
	}
}
