package stack

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// TestKeepaliveReapsVanishedClient: a client vanishes without FIN; with
// keepalive (idle 30 s, interval 5 s, 3 probes) the server's connection is
// gone 45 s later and its Read reports ETIMEDOUT — in virtual time.
func TestKeepaliveReapsVanishedClient(t *testing.T) {
	clk := NewManualClock(0)
	r := newRawPeer(t, func(o *Options) { o.Clock = clk })
	ln, err := r.s.ListenBacklog("tcp", ":80", 8)
	require.NoError(t, err)
	defer ln.Close()
	sa := r.handshake(cliA, srvB, 100)
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	require.NoError(t, c.SetKeepAliveConfig(netKeepAlive(30*time.Second, 5*time.Second, 3)))
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	clk.Advance(30*time.Second - time.Millisecond)
	r.none()
	for i := range 3 {
		if i == 0 {
			clk.Advance(time.Millisecond)
		} else {
			clk.Advance(5 * time.Second)
		}
		probe := r.expectTCP(srvB, cliA, tcp.FlagACK)
		// RFC 1122 §4.2.3.6: the probe carries SND.NXT-1.
		require.Equal(t, sa.Seq, probe.Seq, "probe %d", i+1)
	}
	clk.Advance(5 * time.Second)
	select {
	case err := <-readErr:
		require.ErrorIs(t, err, syscall.ETIMEDOUT)
	case <-time.After(5 * time.Second):
		t.Fatal("Read not failed by keepalive")
	}
	require.Equal(t, 0, r.s.NumConns())
	c.Close()
}

// TestStaleConnectionReplaced: a client whose state vanished comes back
// from the same port. Its SYN hits the stale ESTABLISHED connection and is
// answered with a challenge ACK (RFC 5961 §4); the client's RST for it kills
// the stale connection and the retried SYN is admitted.
func TestStaleConnectionReplaced(t *testing.T) {
	r := newRawPeer(t, nil)
	ln, err := r.s.ListenBacklog("tcp", ":80", 8)
	require.NoError(t, err)
	defer ln.Close()
	for round := range 5 {
		iss := tcp.Seq(1000 + 100000*round)
		sa := r.handshake(cliA, srvB, iss)
		stale, err := ln.AcceptConn()
		require.NoError(t, err)
		staleErr := make(chan error, 1)
		go func() {
			_, err := stale.Read(make([]byte, 1))
			staleErr <- err
		}()
		// The client reboots: a new SYN from the same port, new ISN.
		syn := synSeg(iss + 50000)
		r.send(tcpPacket(cliA, srvB, &syn))
		ch := r.expectTCP(srvB, cliA, tcp.FlagACK)
		require.Equal(t, iss+1, ch.Ack, "challenge ACK names the stale RCV.NXT")
		require.Equal(t, sa.Seq+1, ch.Seq)
		rst := tcp.Segment{Seq: ch.Ack, Flags: tcp.FlagRST}
		r.send(tcpPacket(cliA, srvB, &rst))
		select {
		case err := <-staleErr:
			require.ErrorIs(t, err, syscall.ECONNRESET, "round %d", round)
		case <-time.After(5 * time.Second):
			t.Fatal("stale connection not reset")
		}
		stale.Close()
		// The client retries its SYN and gets in.
		r.send(tcpPacket(cliA, srvB, &syn))
		sa2 := r.expectTCP(srvB, cliA, tcp.FlagSYN|tcp.FlagACK)
		require.Equal(t, syn.Seq+1, sa2.Ack)
		ack := tcp.Segment{Seq: syn.Seq + 1, Ack: sa2.Seq + 1, Flags: tcp.FlagACK, Window: 1000}
		r.send(tcpPacket(cliA, srvB, &ack))
		fresh, err := ln.AcceptConn()
		require.NoError(t, err)
		require.Equal(t, tcp.StateEstablished, fresh.State())
		// Leave no state behind for the next round.
		fresh.SetLinger(0)
		fresh.Close()
		r.expectTCPAny(srvB, cliA)
		require.Eventually(t, func() bool { return r.s.NumConns() == 0 }, 5*time.Second, time.Millisecond)
	}
}

func TestLimits(t *testing.T) {
	t.Run("max conns", func(t *testing.T) {
		r := newRawPeer(t, func(o *Options) { o.MaxConns = 2 })
		ln, err := r.s.Listen("tcp", ":80")
		require.NoError(t, err)
		defer ln.Close()
		for i := range 3 {
			syn := synSeg(1)
			r.send(tcpPacket(netip.AddrPortFrom(addrA, uint16(40000+i)), srvB, &syn))
		}
		r.expectTCP(srvB, netip.AddrPortFrom(addrA, 40000), tcp.FlagSYN|tcp.FlagACK)
		r.expectTCP(srvB, netip.AddrPortFrom(addrA, 40001), tcp.FlagSYN|tcp.FlagACK)
		waitStat(t, &r.s.Stats().TCPMaxConns, 1, "max conns")
		r.none()
		_, err = r.s.Dial("tcp", "198.18.0.1:80")
		require.ErrorIs(t, err, syscall.EAGAIN)
	})
	t.Run("time-wait limit", func(t *testing.T) {
		p := newPair(t, func(o *Options) { o.TimeWaitLimit = 1 })
		for i := range 3 {
			cli, srv := connPair(t, p)
			// The client closes first: it is the one to enter TIME-WAIT.
			require.NoError(t, cli.Close())
			_, err := srv.Read(make([]byte, 1))
			require.Error(t, err, "round %d", i)
			require.NoError(t, srv.Close())
			require.Eventually(t, func() bool {
				return p.a.ConnStates()[tcp.StateFinWait2] == 0 && p.a.ConnStates()[tcp.StateFinWait1] == 0 && p.b.NumConns() == 0
			}, 5*time.Second, time.Millisecond)
		}
		require.Equal(t, map[tcp.State]int{tcp.StateTimeWait: 1}, p.a.ConnStates())
		require.Equal(t, uint64(2), p.a.Stats().TCPTimeWaitOverflow.Load())
	})
}

// TestNoGoroutinePerConnection opens many connections and checks the
// goroutine count does not grow with them.
func TestNoGoroutinePerConnection(t *testing.T) {
	p := newPair(t, nil)
	ln, err := p.b.ListenBacklog("tcp", ":80", 512)
	require.NoError(t, err)
	defer ln.Close()
	before := runtime.NumGoroutine()
	var conns []*Conn
	for range 200 {
		c, err := p.a.Dial("tcp", "198.18.0.2:80")
		require.NoError(t, err)
		conns = append(conns, c.(*Conn))
		s, err := ln.AcceptConn()
		require.NoError(t, err)
		conns = append(conns, s)
	}
	require.Equal(t, 400, p.a.NumConns()+p.b.NumConns())
	require.LessOrEqual(t, runtime.NumGoroutine(), before+4, "goroutines grew with connections")
	for _, c := range conns {
		c.SetLinger(0)
		c.Close()
	}
}

func TestStatsNamesUnique(t *testing.T) {
	var s Stats
	s.TCPBadChecksum.Add(3)
	seen := map[string]bool{}
	s.Each(func(name string, v uint64) {
		require.False(t, seen[name], "duplicate %s", name)
		seen[name] = true
	})
	require.Equal(t, uint64(3), s.Map()["tcp_bad_checksum"])
	require.Contains(t, seen, "ip_bad_checksum")
	require.Contains(t, seen, "tcp_header_truncated")
	require.Greater(t, len(seen), 60, fmt.Sprint(len(seen)))
}
