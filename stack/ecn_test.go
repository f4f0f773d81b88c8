package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// TestECNOverIP: the stack carries ECN between TCP and the IP header in
// both directions, over IPv4 (TOS) and IPv6 (traffic class): an ECN-setup
// SYN gets an ECN-setup SYN-ACK (Not-ECT), the server's data goes ECT(0),
// and a CE mark on the client's data comes back as ECE at once.
func TestECNOverIP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cli, srv netip.AddrPort
	}{{"ipv4", cliA, srvB}, {"ipv6", cliA6, srvB6}} {
		t.Run(tc.name, func(t *testing.T) {
			link := &recordLink{}
			clk := NewManualClock(tcp.Time(time.Hour))
			s, err := New(Options{Links: []tun.Link{link}, Addrs: []netip.Addr{addrB, addrB6}, Clock: clk, Driven: true})
			require.NoError(t, err)
			defer s.Close()
			ln, err := s.ListenBacklog("tcp", ":80", 4)
			require.NoError(t, err)
			now := clk.Now()
			in := func(seg tcp.Segment) []tcp.Segment {
				require.NoError(t, s.Input(0, [][]byte{tcpPacket(tc.cli, tc.srv, &seg)}, nil, now))
				s.Poll(now)
				var out []tcp.Segment
				for _, p := range link.take() {
					_, _, sg := parseTCP(t, p)
					out = append(out, sg)
				}
				return out
			}
			syn := tcp.Segment{Seq: 1000, Flags: tcp.FlagSYN | tcp.FlagECE | tcp.FlagCWR, Window: 65535}
			out := in(syn)
			require.Len(t, out, 1)
			require.Equal(t, tcp.FlagSYN|tcp.FlagACK|tcp.FlagECE, out[0].Flags)
			require.Equal(t, tcp.ECNNotECT, out[0].ECN)
			iss := out[0].Seq
			require.Empty(t, in(tcp.Segment{Seq: 1001, Ack: iss + 1, Flags: tcp.FlagACK, Window: 65535}))
			require.NoError(t, ln.SetDeadline(time.Unix(1, 0)))
			c, err := ln.AcceptConn()
			require.NoError(t, err)
			require.True(t, c.Info().ECN)

			_, err = c.Write([]byte("hello"))
			require.NoError(t, err)
			s.Flush()
			pkts := link.take()
			require.Len(t, pkts, 1)
			_, _, d := parseTCP(t, pkts[0])
			require.Equal(t, "hello", string(d.Payload))
			require.Equal(t, tcp.ECNECT0, d.ECN)

			ce := tcp.Segment{Seq: 1001, Ack: iss + 6, Flags: tcp.FlagACK, Window: 65535, Payload: []byte("x"), ECN: tcp.ECNCE}
			out = in(ce)
			require.Len(t, out, 1, "the echo goes at once")
			require.Equal(t, tcp.FlagACK|tcp.FlagECE, out[0].Flags)
			require.Equal(t, tcp.Seq(1002), out[0].Ack)
			require.Equal(t, tcp.ECNNotECT, out[0].ECN)
			require.Equal(t, uint64(1), c.Info().CERcvd)
		})
	}
}

// TestECNThroughSYNCookie: a cookie SYN-ACK answers an ECN-setup SYN with
// ECE and keeps the answer in its TSval's ECN bit (Linux cookie_ecn_ok), so
// the connection the cookie rebuilds has ECN; a plain SYN's cookie does not.
func TestECNThroughSYNCookie(t *testing.T) {
	for _, setup := range []bool{true, false} {
		r := newRawPeer(t, func(o *Options) { o.SYNBacklog = 1 })
		ln, err := r.s.ListenBacklog("tcp", ":80", 16)
		require.NoError(t, err)
		first := synSeg(1000)
		r.send(tcpPacket(netip.AddrPortFrom(addrA, 40000), srvB, &first))
		r.expectTCP(srvB, netip.AddrPortFrom(addrA, 40000), tcp.FlagSYN|tcp.FlagACK)

		cli := netip.AddrPortFrom(addrA, 40001)
		syn := synSeg(7000)
		if setup {
			syn.Flags |= tcp.FlagECE | tcp.FlagCWR
		}
		r.send(tcpPacket(cli, srvB, &syn))
		sa := r.expectTCPAny(srvB, cli)
		require.Equal(t, uint64(1), r.s.Stats().TCPCookiesSent.Load())
		want := tcp.FlagSYN | tcp.FlagACK
		if setup {
			want |= tcp.FlagECE
		}
		require.Equal(t, want, sa.Flags)
		require.Equal(t, setup, sa.Options.TSVal&cookieTSECN != 0)
		ack := tcp.Segment{Seq: 7001, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 1000}
		ack.Options.HasTimestamp, ack.Options.TSVal, ack.Options.TSEcr = true, 5001, sa.Options.TSVal
		r.send(tcpPacket(cli, srvB, &ack))
		c, err := ln.AcceptConn()
		require.NoError(t, err)
		require.Equal(t, cli.String(), c.RemoteAddr().String())
		require.Equal(t, setup, c.Info().ECN)
		c.SetLinger(0)
		c.Close()
	}
}
