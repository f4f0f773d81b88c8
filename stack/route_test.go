package stack

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// newTwoLinkStack makes a Stack (addresses addrB, addrB6) with two pipe
// links and the given routes, and a raw peer on the far end of each link.
func newTwoLinkStack(t *testing.T, routes []Route) (*Stack, [2]*rawPeer) {
	t.Helper()
	var mine [2]*tun.PipeEnd
	var theirs [2]tun.Link
	for i := range mine {
		mine[i], theirs[i] = tun.NewPipe(1500)
	}
	s, err := New(Options{Links: theirs[:], Addrs: []netip.Addr{addrB, addrB6}, Routes: routes, Shards: 1})
	require.NoError(t, err)
	var peers [2]*rawPeer
	var done [2]chan struct{}
	for i := range peers {
		r := &rawPeer{t: t, s: s, l: mine[i], in: make(chan []byte, 64)}
		peers[i], done[i] = r, make(chan struct{})
		go func() {
			defer close(done[i])
			bufs := [][]byte{make([]byte, 65536)}
			sizes := []int{0}
			for {
				n, err := r.l.Read(bufs, sizes, 0)
				if err != nil {
					return
				}
				for j := range n {
					r.in <- append([]byte(nil), bufs[j][:sizes[j]]...)
				}
			}
		}()
	}
	t.Cleanup(func() {
		s.Close()
		<-done[0]
		<-done[1]
	})
	return s, peers
}

// dialSYN starts a Dial to dst and returns the link index its SYN left by;
// the dial is then abandoned.
func dialSYN(t *testing.T, s *Stack, peers [2]*rawPeer, dst netip.AddrPort) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.DialAddrPort(ctx, dst)
		errc <- err
	}()
	defer func() { cancel(); <-errc }()
	var p []byte
	var link int
	select {
	case p = <-peers[0].in:
	case p = <-peers[1].in:
		link = 1
	case err := <-errc:
		t.Fatalf("dial %v: %v", dst, err)
	}
	_, d, seg := parseTCP(t, p)
	require.Equal(t, dst, d, describe(p))
	require.Equal(t, tcp.FlagSYN, seg.Flags, describe(p))
	return link
}

var (
	net0     = netip.MustParsePrefix("198.18.0.0/24")
	net1     = netip.MustParsePrefix("198.19.0.0/16")
	net1Half = netip.MustParsePrefix("198.19.128.0/17")
	net1v6   = netip.MustParsePrefix("2001:2:0:1::/64")
)

// twoLinkRoutes: 198.18.0.0/24 on link 0; 198.19.0.0/16 behind a gateway
// on link 1, but its upper half (a longer prefix) on link 0; the rest of
// IPv6 by default on link 0, 2001:2:0:1::/64 on link 1.
var twoLinkRoutes = []Route{
	{Prefix: net0, Link: 0},
	{Prefix: net1, Link: 1, Via: netip.MustParseAddr("198.18.0.1")},
	{Prefix: net1Half, Link: 0},
	{Prefix: netip.MustParsePrefix("::/0"), Link: 0},
	{Prefix: net1v6, Link: 1},
}

// Dial leaves by the link of the longest prefix that contains the peer.
func TestRouteDialLongestPrefix(t *testing.T) {
	s, peers := newTwoLinkStack(t, twoLinkRoutes)
	for _, tc := range []struct {
		dst  string
		link int
	}{
		{"198.18.0.1:80", 0},
		{"198.19.0.5:80", 1},
		{"198.19.127.255:80", 1},
		{"198.19.128.1:80", 0},
		{"[2001:2::1]:80", 0},
		{"[2001:2:0:1::9]:80", 1},
		{"[2001:2:0:2::9]:80", 0},
	} {
		require.Equal(t, tc.link, dialSYN(t, s, peers, netip.MustParseAddrPort(tc.dst)), tc.dst)
	}
	// No route: ENETUNREACH, as connect(2) says it, and nothing is sent.
	_, err := s.DialAddrPort(context.Background(), netip.MustParseAddrPort("198.18.5.1:80"))
	require.ErrorIs(t, err, syscall.ENETUNREACH)
	peers[0].none()
	peers[1].none()

	l, hop, err := s.route(netip.MustParseAddr("198.19.0.5"))
	require.NoError(t, err)
	require.Equal(t, 1, l.idx)
	require.Equal(t, netip.MustParseAddr("198.18.0.1"), hop, "the gateway is the next hop")
	l, hop, err = s.route(netip.MustParseAddr("198.19.200.5"))
	require.NoError(t, err)
	require.Equal(t, 0, l.idx)
	require.Equal(t, netip.MustParseAddr("198.19.200.5"), hop, "on link: the destination is the next hop")
	var order []netip.Prefix
	for _, r := range s.Routes() {
		order = append(order, r.Prefix)
	}
	require.Equal(t, []netip.Prefix{net1v6, net0, net1Half, net1, netip.MustParsePrefix("::/0")}, order, "longest first")
}

// A reply (SYN-ACK, RST, ICMP echo reply) to a peer with a route leaves by that
// route's link, whichever link the peer's packet came in on; a peer
// without a route is answered on the link it came from.
func TestRouteReplies(t *testing.T) {
	s, peers := newTwoLinkStack(t, twoLinkRoutes)
	ln, err := s.Listen("tcp", ":80")
	require.NoError(t, err)
	defer ln.Close()
	for _, tc := range []struct {
		src      string
		in, out  int
		listener bool
	}{
		{"198.19.0.5:1000", 0, 1, true},   // asymmetric: in on 0, its route is link 1
		{"198.19.200.5:1001", 1, 0, true}, // the /17 on link 0
		{"198.18.0.1:1002", 1, 0, true},   // on link 0's prefix
		{"198.18.5.1:1003", 1, 1, true},   // no route: back where it came from
		{"[2001:2:0:1::9]:1004", 0, 1, true},
		{"198.19.0.5:1005", 0, 1, false}, // RST for a closed port
	} {
		cli := netip.MustParseAddrPort(tc.src)
		srv := netip.AddrPortFrom(addrB, 80)
		if cli.Addr().Is6() {
			srv = netip.AddrPortFrom(addrB6, 80)
		}
		want := tcp.FlagSYN | tcp.FlagACK
		if !tc.listener {
			srv = netip.AddrPortFrom(srv.Addr(), 81)
			want = tcp.FlagRST | tcp.FlagACK
		}
		syn := synSeg(1000)
		peers[tc.in].send(tcpPacket(cli, srv, &syn))
		peers[tc.out].expectTCP(srv, cli, want)
		peers[1-tc.out].none()
	}
	// An echo request from behind link 1's gateway, in on link 0: the
	// reply leaves by link 1.
	msg := make([]byte, 8+4)
	_, err = ip.BuildICMPv4Echo(msg, false, 0x1234, 7, []byte("ping"))
	require.NoError(t, err)
	src := netip.MustParseAddr("198.19.0.5")
	p := make([]byte, 20+len(msg))
	writeIPHeader(p, src, addrB, protoICMP, len(p), 99, false)
	copy(p[20:], msg)
	peers[0].send(p)
	rep := peers[1].recv()
	h, err := ip.ParseIPv4(rep)
	require.NoError(t, err)
	require.Equal(t, src, h.Dst())
	m, err := ip.ParseICMPv4(h.Payload())
	require.NoError(t, err)
	require.Equal(t, ip.ICMPv4EchoReply, m.Type())
	peers[0].none()
}

// Without routes one link takes everything; several links without routes
// leave Dial without a way out (ENETUNREACH) and answer on the link a
// packet came in on.
func TestRouteDefaults(t *testing.T) {
	r := newRawPeer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := r.s.DialAddrPort(ctx, netip.MustParseAddrPort("198.18.5.1:80")); errc <- err }()
	p := r.recv()
	_, dst, seg := parseTCP(t, p)
	require.Equal(t, netip.MustParseAddrPort("198.18.5.1:80"), dst, describe(p))
	require.Equal(t, tcp.FlagSYN, seg.Flags, describe(p))
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	s, peers := newTwoLinkStack(t, nil)
	_, err := s.DialAddrPort(context.Background(), netip.MustParseAddrPort("198.18.0.1:80"))
	require.ErrorIs(t, err, syscall.ENETUNREACH)
	ln, err := s.Listen("tcp", ":80")
	require.NoError(t, err)
	defer ln.Close()
	for in := range 2 {
		cli := netip.MustParseAddrPort("198.18.0.1:2000")
		cli = netip.AddrPortFrom(cli.Addr(), cli.Port()+uint16(in))
		syn := synSeg(1000)
		peers[in].send(tcpPacket(cli, srvB, &syn))
		peers[in].expectTCP(srvB, cli, tcp.FlagSYN|tcp.FlagACK)
		peers[1-in].none()
	}
}

// Bad routes are refused by New with the route named.
func TestRouteOptionsErrors(t *testing.T) {
	l, _ := tun.NewPipe(1500)
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{Route{Link: 0}, "no prefix"},
		{Route{Prefix: net0, Link: 1}, "link 1, but there are 1 links"},
		{Route{Prefix: net0, Link: -1}, "link -1"},
		{Route{Prefix: net0, Via: addrA6}, "gateway 2001:2::1"},
		{Route{Prefix: netip.MustParsePrefix("::ffff:198.18.0.0/120")}, "write an IPv4 prefix as IPv4"},
	} {
		_, err := New(Options{Links: []tun.Link{l}, Addrs: []netip.Addr{addrB}, Routes: []Route{tc.r}})
		require.Error(t, err, tc.r.String())
		require.Contains(t, err.Error(), tc.want)
	}
	_, err := New(Options{Links: []tun.Link{l}, Addrs: []netip.Addr{addrB}, Routes: []Route{{Prefix: net0}, {Prefix: netip.MustParsePrefix("198.18.0.9/24")}}})
	require.True(t, err != nil && !errors.Is(err, syscall.ENETUNREACH))
	require.Contains(t, err.Error(), "a second route for 198.18.0.0/24")
}
