package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
)

func TestSYNCookiesWhenSynQueueFull(t *testing.T) {
	r := newRawPeer(t, func(o *Options) { o.SYNBacklog = 2 })
	ln, err := r.s.ListenBacklog("tcp", ":80", 16)
	require.NoError(t, err)
	for i := range 2 {
		syn := synSeg(1000)
		r.send(tcpPacket(netip.AddrPortFrom(addrA, uint16(40000+i)), srvB, &syn))
		r.expectTCP(srvB, netip.AddrPortFrom(addrA, uint16(40000+i)), tcp.FlagSYN|tcp.FlagACK)
	}
	_, synq, _ := ln.Backlog()
	require.Equal(t, 2, synq)

	// The third SYN finds the SYN queue full: a cookie answers it.
	cli := netip.AddrPortFrom(addrA, 40002)
	syn := synSeg(7000)
	r.send(tcpPacket(cli, srvB, &syn))
	sa := r.expectTCP(srvB, cli, tcp.FlagSYN|tcp.FlagACK)
	st := r.s.Stats()
	require.Equal(t, uint64(1), st.TCPSynQueueFull.Load())
	require.Equal(t, uint64(1), st.TCPCookiesSent.Load())
	require.Equal(t, tcp.Seq(7001), sa.Ack)
	require.True(t, sa.Options.HasMSS)
	require.Equal(t, uint16(1460), sa.Options.MSS)
	require.True(t, sa.Options.HasWindowScale)
	require.Equal(t, uint8(8), sa.Options.WindowScale, "covers 8 MiB: 65535<<8")
	require.True(t, sa.Options.SACKPermitted)
	require.True(t, sa.Options.HasTimestamp)
	require.Equal(t, uint32(5000), sa.Options.TSEcr)
	// Low six TSval bits: the peer's window scale 7 and the SACK bit.
	require.Equal(t, uint32(7|cookieTSSACK), sa.Options.TSVal&cookieTSMask)
	_, synq, _ = ln.Backlog()
	require.Equal(t, 2, synq, "no state kept for the cookie SYN")

	// A forged ACK from another port is not a valid cookie: RST.
	bad := tcp.Segment{Seq: 7001, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 100}
	other := netip.AddrPortFrom(addrA, 40003)
	r.send(tcpPacket(other, srvB, &bad))
	r.expectTCP(srvB, other, tcp.FlagRST)
	require.Equal(t, uint64(1), st.TCPCookiesInvalid.Load())

	// The real ACK, with data, rebuilds the connection.
	ack := tcp.Segment{Seq: 7001, Ack: sa.Seq + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 1000, Payload: []byte("hi")}
	ack.Options.HasTimestamp, ack.Options.TSVal, ack.Options.TSEcr = true, 5001, sa.Options.TSVal
	r.send(tcpPacket(cli, srvB, &ack))
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	require.Equal(t, cli.String(), c.RemoteAddr().String())
	buf := make([]byte, 2)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "hi", string(buf))
	require.Equal(t, uint64(1), st.TCPCookiesValid.Load())
	info := c.Info()
	require.Equal(t, tcp.StateEstablished, info.State)
	require.Equal(t, int8(7), info.SndWScale)
	require.Equal(t, int8(8), info.RcvWScale)
	require.True(t, info.SACK)
	require.True(t, info.Timestamps)
	require.Equal(t, uint16(1460-12), info.MSS)
	// Our next segment continues the cookie's sequence space.
	_, err = c.Write([]byte("ok"))
	require.NoError(t, err)
	for {
		seg := r.expectTCPAny(srvB, cli)
		if len(seg.Payload) > 0 {
			require.Equal(t, sa.Seq+1, seg.Seq)
			require.Equal(t, "ok", string(seg.Payload))
			require.GreaterOrEqual(t, seg.Options.TSVal-sa.Options.TSVal, uint32(0))
			require.Less(t, int32(sa.Options.TSVal-seg.Options.TSVal), int32(1), "TSval went backwards")
			break
		}
	}
	c.SetLinger(0)
	c.Close()
	ln.Close()
}

// expectTCPAny receives the next TCP segment from src to dst, any flags.
func (r *rawPeer) expectTCPAny(src, dst netip.AddrPort) tcp.Segment {
	r.t.Helper()
	p := r.recv()
	s, d, seg := parseTCP(r.t, p)
	require.Equal(r.t, src, s, describe(p))
	require.Equal(r.t, dst, d, describe(p))
	seg.Payload = append([]byte(nil), seg.Payload...)
	return seg
}

// handshake completes a passive open from cli with the raw peer.
func (r *rawPeer) handshake(cli, srv netip.AddrPort, iss tcp.Seq) tcp.Segment {
	r.t.Helper()
	syn := synSeg(iss)
	r.send(tcpPacket(cli, srv, &syn))
	sa := r.expectTCP(srv, cli, tcp.FlagSYN|tcp.FlagACK)
	ack := tcp.Segment{Seq: iss + 1, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 1000}
	ack.Options.HasTimestamp, ack.Options.TSVal, ack.Options.TSEcr = true, 5001, sa.Options.TSVal
	r.send(tcpPacket(cli, srv, &ack))
	return sa
}

func TestAcceptQueueBound(t *testing.T) {
	r := newRawPeer(t, nil)
	ln, err := r.s.ListenBacklog("tcp", ":80", 1)
	require.NoError(t, err)
	c1 := netip.AddrPortFrom(addrA, 40000)
	r.handshake(c1, srvB, 100)
	st := r.s.Stats()
	waitStat(t, &st.TCPPassiveOpens, 1, "passive opens")
	// Accept queue full: the next SYN is dropped without an answer.
	c2 := netip.AddrPortFrom(addrA, 40001)
	syn := synSeg(200)
	r.send(tcpPacket(c2, srvB, &syn))
	waitStat(t, &st.TCPListenOverflows, 1, "listen overflows")
	r.none()
	require.Equal(t, uint64(1), st.TCPSynDropped.Load())
	// Accept makes room; the retransmitted SYN gets its SYN-ACK.
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	require.Equal(t, c1.String(), c.RemoteAddr().String())
	r.send(tcpPacket(c2, srvB, &syn))
	r.expectTCP(srvB, c2, tcp.FlagSYN|tcp.FlagACK)
	// Listener.Close resets the connection still in its SYN queue.
	require.NoError(t, ln.Close())
	rst := r.expectTCPAny(srvB, c2)
	require.True(t, rst.Flags.Has(tcp.FlagRST), "got %v", rst.Flags)
	require.Equal(t, uint64(1), st.TCPListenerCloseRsts.Load())
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	c.Close()
}

func TestListenAddrInUse(t *testing.T) {
	r := newRawPeer(t, nil)
	ln, err := r.s.Listen("tcp", ":80")
	require.NoError(t, err)
	for _, tc := range []struct{ network, addr string }{
		{"tcp", ":80"}, {"tcp4", ":80"}, {"tcp6", "[::]:80"}, {"tcp4", "198.18.0.2:80"},
	} {
		_, err := r.s.Listen(tc.network, tc.addr)
		require.ErrorIs(t, err, syscall.EADDRINUSE, "%v", tc)
	}
	// Specific address of one family next to a family wildcard of the other.
	l4, err := r.s.Listen("tcp4", "198.18.0.2:81")
	require.NoError(t, err)
	l6, err := r.s.Listen("tcp6", "[::]:81")
	require.NoError(t, err)
	_, err = r.s.Listen("tcp4", "198.18.0.3:82")
	require.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
	// Port 0 picks a free ephemeral port.
	l0, err := r.s.Listen("tcp", ":0")
	require.NoError(t, err)
	require.GreaterOrEqual(t, l0.Addr().(*net.TCPAddr).Port, DefaultEphemeralMin)
	for _, l := range []net.Listener{ln, l4, l6, l0} {
		require.NoError(t, l.Close())
	}
	_, err = r.s.Listen("tcp", ":80")
	require.NoError(t, err, "port released by Close")
}

// dialRaw starts a Dial from the stack to the raw peer and returns the SYN.
func dialRaw(t *testing.T, r *rawPeer, remote netip.AddrPort) (chan error, chan *Conn, tcp.Segment, netip.AddrPort) {
	errc := make(chan error, 1)
	connc := make(chan *Conn, 1)
	go func() {
		c, err := r.s.DialAddrPort(context.Background(), remote)
		errc <- err
		connc <- c
	}()
	p := r.recv()
	src, dst, syn := parseTCP(t, p)
	require.Equal(t, remote, dst)
	require.Equal(t, tcp.FlagSYN, syn.Flags)
	return errc, connc, syn, src
}

func TestDialICMPUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		typ, code  uint8
		want       syscall.Errno
		v6         bool
		remoteAddr netip.Addr
	}{
		{"port", ip.ICMPv4DestUnreach, ip.ICMPv4PortUnreachable, syscall.ECONNREFUSED, false, addrA},
		{"host", ip.ICMPv4DestUnreach, ip.ICMPv4HostUnreachable, syscall.EHOSTUNREACH, false, addrA},
		{"net", ip.ICMPv4DestUnreach, ip.ICMPv4NetUnreachable, syscall.ENETUNREACH, false, addrA},
		{"v6 port", ip.ICMPv6DestUnreach, ip.ICMPv6PortUnreachable, syscall.ECONNREFUSED, true, addrA6},
		{"v6 addr", ip.ICMPv6DestUnreach, ip.ICMPv6AddressUnreach, syscall.EHOSTUNREACH, true, addrA6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRawPeer(t, nil)
			remote := netip.AddrPortFrom(tc.remoteAddr, 80)
			errc, _, syn, local := dialRaw(t, r, remote)
			// The invoking packet: the SYN as the stack sent it.
			inv := tcpPacket(local, remote, &syn)
			var p []byte
			if tc.v6 {
				p = make([]byte, 40+8+len(inv))
				writeIPHeader(p, tc.remoteAddr, local.Addr(), protoICMPv6, len(p), 0, false)
				_, err := ip.BuildICMPv6Error(p[40:], tc.typ, tc.code, 0, inv, tc.remoteAddr.AsSlice(), local.Addr().AsSlice())
				require.NoError(t, err)
			} else {
				p = make([]byte, 20+8+28)
				writeIPHeader(p, tc.remoteAddr, local.Addr(), protoICMP, len(p), 0, false)
				_, err := ip.BuildICMPv4Error(p[20:], tc.typ, tc.code, 0, inv[:28])
				require.NoError(t, err)
			}
			r.send(p)
			select {
			case err := <-errc:
				require.ErrorIs(t, err, tc.want)
				var oe *net.OpError
				require.True(t, errors.As(err, &oe))
				require.Equal(t, "dial", oe.Op)
			case <-time.After(5 * time.Second):
				t.Fatal("dial did not fail")
			}
			require.Equal(t, uint64(1), r.s.Stats().ICMPErrorsHard.Load())
			require.Equal(t, 0, r.s.NumConns())
		})
	}
}

func TestRFC1337TimeWaitIgnoresRST(t *testing.T) {
	r := newRawPeer(t, nil)
	remote := netip.AddrPortFrom(addrA, 80)
	errc, connc, syn, local := dialRaw(t, r, remote)
	sa := tcp.Segment{Seq: 9000, Ack: syn.Seq + 1, Flags: tcp.FlagSYN | tcp.FlagACK, Window: 65535}
	sa.Options.HasMSS, sa.Options.MSS = true, 1460
	r.send(tcpPacket(remote, local, &sa))
	require.NoError(t, <-errc)
	c := <-connc
	r.expectTCP(local, remote, tcp.FlagACK)
	require.NoError(t, c.Close())
	fin := r.expectTCP(local, remote, tcp.FlagFIN|tcp.FlagACK)
	finack := tcp.Segment{Seq: 9001, Ack: fin.Seq + 1, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 65535}
	r.send(tcpPacket(remote, local, &finack))
	last := r.expectTCP(local, remote, tcp.FlagACK)
	require.Equal(t, tcp.Seq(9002), last.Ack)
	require.Equal(t, map[tcp.State]int{tcp.StateTimeWait: 1}, r.s.ConnStates())
	rst := tcp.Segment{Seq: 9002, Flags: tcp.FlagRST}
	r.send(tcpPacket(remote, local, &rst))
	waitStat(t, &r.s.Stats().TCPRFC1337Drops, 1, "rfc1337 drops")
	require.Equal(t, map[tcp.State]int{tcp.StateTimeWait: 1}, r.s.ConnStates())
}

// serverTimeWait brings a passive-opened connection from cli into TIME-WAIT
// on the server (the server closes first) and returns the server's FIN.
func serverTimeWait(t *testing.T, r *rawPeer, ln *Listener, cli netip.AddrPort, iss tcp.Seq) tcp.Segment {
	sa := r.handshake(cli, srvB, iss)
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	require.NoError(t, c.Close())
	fin := r.expectTCP(srvB, cli, tcp.FlagFIN|tcp.FlagACK)
	require.Equal(t, sa.Seq+1, fin.Seq)
	finack := tcp.Segment{Seq: iss + 1, Ack: fin.Seq + 1, Flags: tcp.FlagFIN | tcp.FlagACK, Window: 1000}
	finack.Options.HasTimestamp, finack.Options.TSVal, finack.Options.TSEcr = true, 5002, fin.Options.TSVal
	r.send(tcpPacket(cli, srvB, &finack))
	last := r.expectTCP(srvB, cli, tcp.FlagACK)
	require.Equal(t, iss+2, last.Ack)
	require.Equal(t, map[tcp.State]int{tcp.StateTimeWait: 1}, r.s.ConnStates())
	return fin
}

func TestTimeWaitNewSYN(t *testing.T) {
	for _, tc := range []struct {
		name   string
		syn    func(iss tcp.Seq) tcp.Segment
		reused bool
	}{
		{"newer_timestamp_opens_new_incarnation", func(iss tcp.Seq) tcp.Segment {
			s := synSeg(iss - 100) // an older ISN, but the timestamp proves it new (RFC 6191)
			s.Options.HasTimestamp, s.Options.TSVal = true, 6000
			return s
		}, true},
		{"higher_seq_without_timestamps_opens_new_incarnation", func(iss tcp.Seq) tcp.Segment {
			s := synSeg(iss + 100000)
			s.Options.HasTimestamp = false
			return s
		}, true},
		{"old_timestamp_gets_challenge_ack", func(iss tcp.Seq) tcp.Segment {
			s := synSeg(iss + 100000)
			s.Options.HasTimestamp, s.Options.TSVal = true, 4000
			return s
		}, false},
		{"lower_seq_without_timestamps_gets_challenge_ack", func(iss tcp.Seq) tcp.Segment {
			s := synSeg(iss - 100)
			s.Options.HasTimestamp = false
			return s
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRawPeer(t, nil)
			ln, err := r.s.ListenBacklog("tcp", ":80", 8)
			require.NoError(t, err)
			cli := netip.AddrPortFrom(addrA, 40000)
			const iss = 100000
			fin := serverTimeWait(t, r, ln, cli, iss)
			syn := tc.syn(iss)
			r.send(tcpPacket(cli, srvB, &syn))
			got := r.expectTCPAny(srvB, cli)
			if tc.reused {
				require.Equal(t, tcp.FlagSYN|tcp.FlagACK, got.Flags, "new incarnation answers with SYN-ACK")
				require.Equal(t, syn.Seq+1, got.Ack)
				require.Equal(t, uint64(1), r.s.Stats().TCPTimeWaitReused.Load())
				require.Equal(t, map[tcp.State]int{tcp.StateSynReceived: 1}, r.s.ConnStates())
			} else {
				require.Equal(t, tcp.FlagACK, got.Flags, "old SYN gets the TIME-WAIT ACK")
				require.Equal(t, fin.Seq+1, got.Seq)
				require.Equal(t, tcp.Seq(iss+2), got.Ack)
				require.Equal(t, uint64(0), r.s.Stats().TCPTimeWaitReused.Load())
				require.Equal(t, map[tcp.State]int{tcp.StateTimeWait: 1}, r.s.ConnStates())
			}
		})
	}
}

func TestPathMTUFromICMP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v6      bool
		mtu     int
		wantMSS int
		applied bool
	}{
		{"v4_frag_needed_1000", false, 1000, 1000 - 20 - 20 - 12, true},
		{"v4_below_minimum_clamped_to_552", false, 300, 552 - 20 - 20 - 12, true},
		{"v6_packet_too_big_1280", true, 1280, 1280 - 40 - 20 - 12, true},
		{"v4_not_smaller_ignored", false, 9000, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// RFC 6675 recovery: the test waits for silence after the
			// flight, which RACK-TLP would break with a tail-loss probe
			// 2 ms later (the peer never acknowledges).
			r := newRawPeer(t, func(o *Options) { o.TCP.Recovery = tcp.RecoverySACK })
			ln, err := r.s.ListenBacklog("tcp", ":80", 8)
			require.NoError(t, err)
			cliAddr, srv := addrA, srvB
			if tc.v6 {
				cliAddr, srv = addrA6, netip.AddrPortFrom(addrB6, 80)
			}
			cli := netip.AddrPortFrom(cliAddr, 40000)
			r.handshake(cli, srv, 100)
			c, err := ln.AcceptConn()
			require.NoError(t, err)
			_, err = c.Write(make([]byte, 2*(1460-12)))
			require.NoError(t, err)
			first := r.expectTCPAny(srv, cli)
			mss := 1460 - 12 // the link's 1500 MTU less headers and the timestamp option
			if tc.v6 {
				mss -= 20
			}
			require.Equal(t, mss, len(first.Payload))
			// Drain the rest of the flight, then report the path MTU.
			for got := len(first.Payload); got < 2*(1460-12); {
				seg := r.expectTCPAny(srv, cli)
				got += len(seg.Payload)
			}
			inv := tcpPacket(srv, cli, &first)
			var p []byte
			if tc.v6 {
				inv = inv[:1280-40-8] // RFC 4443 §2.4(c): the error fits the minimum MTU
				p = make([]byte, 40+8+len(inv))
				writeIPHeader(p, cliAddr, srv.Addr(), protoICMPv6, len(p), 0, false)
				_, err = ip.BuildICMPv6Error(p[40:], ip.ICMPv6PacketTooBig, 0, uint32(tc.mtu), inv, cliAddr.AsSlice(), srv.Addr().AsSlice())
			} else {
				p = make([]byte, 20+8+28)
				writeIPHeader(p, cliAddr, srv.Addr(), protoICMP, len(p), 0, false)
				_, err = ip.BuildICMPv4Error(p[20:], ip.ICMPv4DestUnreach, ip.ICMPv4FragNeeded, uint16(tc.mtu), inv[:28])
			}
			require.NoError(t, err)
			r.send(p)
			st := r.s.Stats()
			if !tc.applied {
				waitStat(t, &st.ICMPFragNeededBad, 1, "refused PMTU")
				r.none()
				return
			}
			waitStat(t, &st.ICMPFragNeeded, 1, "applied PMTU")
			// The data in flight goes again at the smaller size at once.
			re := r.expectTCPAny(srv, cli)
			require.Equal(t, first.Seq, re.Seq, "retransmission starts at SND.UNA")
			require.Equal(t, tc.wantMSS, len(re.Payload))
			c.Close()
		})
	}
}
