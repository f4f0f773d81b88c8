package stack

import (
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/ip"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// Locks on the hot paths (issue 18): no link I/O under a shard lock, and
// the handshakes of one listener, and Dials, on different shards proceed
// in parallel.

// watchdog is how long a step that must not wait for another may take
// before the test calls it stuck: real time, only to end a failing test.
const watchdog = 10 * time.Second

// waitClosed fails the test unless ch is closed within the watchdog.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(watchdog):
		t.Fatalf("stuck: %s", what)
	}
}

// plainSYN is a SYN with an MSS option only: the segments that follow
// need no timestamps.
func plainSYN(seq tcp.Seq) tcp.Segment {
	s := tcp.Segment{Seq: seq, Flags: tcp.FlagSYN, Window: 65535}
	s.Options.HasMSS, s.Options.MSS = true, 1460
	return s
}

// handshakeACK returns the ACK completing cli's handshake with srvB after
// plainSYN(seq) at now, carrying data: the server's ISS is its ISN
// generator's at now.
func handshakeACKFor(s *Stack, cli netip.AddrPort, seq tcp.Seq, now tcp.Time, data []byte) []byte {
	iss := s.isn.isn(now, srvB, cli)
	ack := tcp.Segment{Seq: seq + 1, Ack: iss + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: data}
	return tcpPacket(cli, srvB, &ack)
}

// inject runs packets through s as a link reader does, on the calling
// goroutine with a batch of its own: several goroutines calling it are
// several readers (multi-queue TUN) feeding the shards at once.
func inject(s *Stack, now tcp.Time, pkts ...[]byte) {
	l := (*s.links.Load())[0]
	var b rxBatch
	for _, p := range pkts {
		s.input(l, p, tun.GSO{}, now, &b)
	}
	s.finishBatch(nil, &b, now)
}

// TestNoLinkWriteUnderShardLock: with a packet pool a quarter of the burst,
// 64 SYN-ACKs from one read batch, their 64 retransmissions from one timer
// pass and the 64 RSTs of Close all leave, none dropped for a buffer, and
// every write to the link happens with no shard lock held (the stack is
// Driven: this goroutine is its only mover, so a locked shard at a write
// means the write is under that lock).
func TestNoLinkWriteUnderShardLock(t *testing.T) {
	nl := newNullLink()
	clk := NewManualClock(tcp.Time(time.Second))
	s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Shards: 2, Driven: true, Clock: clk,
		TxBuffers: 16, TxBigBuffers: 1})
	require.NoError(t, err)
	var writes, underLock atomic.Int64
	spy := func(int) {
		writes.Add(1)
		for _, sh := range s.shards {
			if !sh.mu.TryLock() {
				underLock.Add(1)
				continue
			}
			sh.mu.Unlock()
		}
	}
	nl.onWrite.Store(&spy)
	_, err = s.ListenBacklog("tcp", ":80", 128)
	require.NoError(t, err)

	const n = 64
	now := clk.Now()
	var syns [][]byte
	for i := range n {
		syn := plainSYN(tcp.Seq(1000 * i))
		syns = append(syns, tcpPacket(netip.AddrPortFrom(addrA, uint16(40000+i)), srvB, &syn))
	}
	inject(s, now, syns...)
	require.Greater(t, nl.written.Load(), uint64(0), "the pool ran low: the batch wrote the queue out on the way")
	s.Flush()
	require.Equal(t, uint64(n), nl.written.Load(), "SYN-ACKs written")
	require.Equal(t, map[tcp.State]int{tcp.StateSynReceived: n}, s.ConnStates())

	// One timer pass retransmits every SYN-ACK.
	clk.Advance(1500 * time.Millisecond)
	s.RunTimers(clk.Now())
	s.Flush()
	require.Equal(t, uint64(2*n), nl.written.Load(), "SYN-ACKs retransmitted")

	// Close resets them all.
	require.NoError(t, s.Close())
	require.Equal(t, uint64(3*n), nl.written.Load(), "RSTs of Close written")
	require.Equal(t, uint64(n), s.Stats().TCPListenerCloseRsts.Load())

	require.Zero(t, s.Stats().TCPOutputNoBuffer.Load(), "tcp_output_no_buffer")
	require.Greater(t, writes.Load(), int64(3), "the bursts went out in several writes")
	require.Zero(t, underLock.Load(), "link writes under a shard lock")
}

// TestOneOutputBeyondPoolOvershoots: one Write whose Output emits ten
// segments (the initial window) into a pool of six takes buffers beyond
// the bound rather than writing the link under the shard lock or dropping
// a segment; the extra buffers are gone once written.
func TestOneOutputBeyondPoolOvershoots(t *testing.T) {
	nl := newNullLink()
	clk := NewManualClock(tcp.Time(time.Second))
	s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Driven: true, Clock: clk, TxBuffers: 6})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	var underLock atomic.Int64
	spy := func(int) {
		if !s.shards[0].mu.TryLock() {
			underLock.Add(1)
			return
		}
		s.shards[0].mu.Unlock()
	}
	nl.onWrite.Store(&spy)
	ln, err := s.ListenBacklog("tcp", ":80", 4)
	require.NoError(t, err)
	cli := netip.AddrPortFrom(addrA, 40000)
	now := clk.Now()
	syn := plainSYN(1000)
	require.NoError(t, s.Input(0, [][]byte{tcpPacket(cli, srvB, &syn)}, nil, now))
	require.NoError(t, s.Input(0, [][]byte{handshakeACKFor(s, cli, 1000, now, nil)}, nil, now))
	require.NoError(t, ln.SetDeadline(time.Now().Add(watchdog)))
	c, err := ln.AcceptConn()
	require.NoError(t, err)
	c.SetNoDelay(true)
	s.Flush()
	before := nl.written.Load()
	_, err = c.Write(make([]byte, 16*1460))
	require.NoError(t, err)
	s.Flush()
	require.Equal(t, uint64(10), nl.written.Load()-before, "the initial window, whole")
	st := s.Stats()
	require.Zero(t, st.TCPOutputNoBuffer.Load(), "tcp_output_no_buffer")
	require.Greater(t, st.TxBufferOvershoot.Load(), uint64(0), "tx_buffer_overshoot")
	require.Zero(t, underLock.Load(), "link writes under the shard lock")
	s.pool.mu.Lock()
	require.Zero(t, s.pool.extraSmall, "overshoot buffers freed once written")
	require.LessOrEqual(t, s.pool.nSmall, 6)
	s.pool.mu.Unlock()
}

// twoShardClients returns two client addresses on addrA whose connections
// to srvB live on different shards of s.
func twoShardClients(t *testing.T, s *Stack) (a, b netip.AddrPort) {
	a = netip.AddrPortFrom(addrA, 40000)
	sa := s.shardFor(tuple{local: srvB, remote: a})
	for p := uint16(40001); p < 41000; p++ {
		b = netip.AddrPortFrom(addrA, p)
		if s.shardFor(tuple{local: srvB, remote: b}) != sa {
			return a, b
		}
	}
	t.Fatal("no two clients on different shards")
	return
}

// TestHandshakesOfOneListenerRunInParallel: the ACK completing one
// handshake is held inside the engine (handshakeHook, sh.mu held); the
// ACK of another handshake to the same listener, on another shard,
// completes meanwhile and Accept returns its connection, with its data.
// With a backlog of 1 the held handshake's claim on the accept queue keeps
// the other out (the bound holds while the engine runs), and it gets in
// after Accept makes room.
func TestHandshakesOfOneListenerRunInParallel(t *testing.T) {
	for _, backlog := range []int{8, 1} {
		t.Run(fmt.Sprintf("backlog=%d", backlog), func(t *testing.T) {
			nl := newNullLink()
			clk := NewManualClock(tcp.Time(time.Second))
			s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Shards: 4, Clock: clk})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			cliA, cliB := twoShardClients(t, s)
			entered, release := make(chan struct{}), make(chan struct{})
			var releaseOnce sync.Once
			unhold := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(unhold) // before Close, if the test fails while A is held
			s.handshakeHook = func(ep *endpoint) {
				if ep.id.remote == cliA {
					close(entered)
					<-release
				}
			}
			ln, err := s.ListenBacklog("tcp", ":80", backlog)
			require.NoError(t, err)
			now := clk.Now()
			synA, synB := plainSYN(1000), plainSYN(5000)
			inject(s, now, tcpPacket(cliA, srvB, &synA), tcpPacket(cliB, srvB, &synB))
			_, synq, _ := ln.Backlog()
			require.Equal(t, 2, synq)

			doneA := make(chan struct{})
			go func() {
				defer close(doneA)
				inject(s, now, handshakeACKFor(s, cliA, 1000, now, []byte("from A")))
			}()
			waitClosed(t, entered, "A's ACK never reached the engine")
			doneB := make(chan struct{})
			go func() {
				defer close(doneB)
				inject(s, now, handshakeACKFor(s, cliB, 5000, now, []byte("from B")))
			}()
			waitClosed(t, doneB, "B's handshake waited for A's, held in the engine on another shard")
			ln.mu.Lock()
			require.Equal(t, 1, ln.claimed, "A holds a place in the accept queue")
			ln.mu.Unlock()

			accept := func(want netip.AddrPort, data string) {
				t.Helper()
				require.NoError(t, ln.SetDeadline(time.Now().Add(watchdog)))
				c, err := ln.AcceptConn()
				require.NoError(t, err)
				require.Equal(t, want.String(), c.RemoteAddr().String())
				buf := make([]byte, len(data))
				_, err = io.ReadFull(c, buf)
				require.NoError(t, err)
				require.Equal(t, data, string(buf))
				c.Close()
			}
			if backlog > 1 {
				_, synq, acq := ln.Backlog()
				require.Equal(t, [2]int{1, 1}, [2]int{synq, acq}, "B established while A is in the engine")
				accept(cliB, "from B")
				unhold()
				waitClosed(t, doneA, "A's handshake")
				accept(cliA, "from A")
			} else {
				require.Equal(t, uint64(1), s.Stats().TCPListenOverflows.Load(), "B's ACK dropped: A claimed the only place")
				_, synq, acq := ln.Backlog()
				require.Equal(t, [2]int{2, 0}, [2]int{synq, acq})
				unhold()
				waitClosed(t, doneA, "A's handshake")
				accept(cliA, "from A")
				// B's peer retransmits its ACK (with the data) and finds room.
				inject(s, now, handshakeACKFor(s, cliB, 5000, now, []byte("from B")))
				accept(cliB, "from B")
			}
			ln.mu.Lock()
			require.Zero(t, ln.claimed)
			ln.mu.Unlock()
		})
	}
}

// portLink is a nullLink that hands a copy of every TCP packet it is
// written to the channel of its destination port (dropped when full).
type portLink struct {
	*nullLink
	to map[uint16]chan []byte
}

func (l *portLink) WriteGSO(bufs [][]byte, gso []tun.GSO, offset int) (int, error) {
	for _, b := range bufs {
		p := b[offset:]
		if len(p) < ip.IPv4MinHeaderLen+tcp.HeaderMinLen || p[0]>>4 != 4 {
			continue
		}
		ch := l.to[be16(p[ip.IPv4MinHeaderLen+2:])]
		select {
		case ch <- append([]byte(nil), p...):
		default:
		}
	}
	return l.nullLink.WriteGSO(bufs, gso, offset)
}

// tcpOf decodes a TCP/IPv4 packet the stack wrote (no test assertions:
// it runs on the clients' goroutines).
func tcpOf(p []byte) (tcp.Segment, error) {
	var seg tcp.Segment
	h, err := ip.ParseIPv4(p)
	if err != nil {
		return seg, err
	}
	if !tcp.VerifyChecksum(h.Payload(), h.SrcSlice(), h.DstSlice()) {
		return seg, fmt.Errorf("bad TCP checksum")
	}
	_, _, err = tcp.ParseSegment(h.Payload(), &seg)
	return seg, err
}

// TestManyHandshakesOneListenerAcrossShards: 64 clients, each on a
// goroutine of its own that feeds the stack as a reader would (so the
// shards run at once), open connections to one listener with data in the
// handshake's last ACK; four Accept loops echo it. Every client gets its
// own bytes back, and the listener's queues end empty.
func TestManyHandshakesOneListenerAcrossShards(t *testing.T) {
	const n = 64
	pl := &portLink{nullLink: newNullLink(), to: map[uint16]chan []byte{}}
	for i := range n {
		pl.to[uint16(40000+i)] = make(chan []byte, 64)
	}
	s, err := New(Options{Links: []tun.Link{pl}, Addrs: []netip.Addr{addrB}, Shards: 8})
	require.NoError(t, err)
	defer s.Close()
	ln, err := s.ListenBacklog("tcp", ":80", n)
	require.NoError(t, err)

	var servers sync.WaitGroup
	for range 4 {
		servers.Add(1)
		go func() {
			defer servers.Done()
			for {
				c, err := ln.AcceptConn()
				if err != nil {
					return
				}
				servers.Add(1)
				go func() {
					defer servers.Done()
					defer c.Close()
					buf := make([]byte, 9)
					if _, err := io.ReadFull(c, buf); err == nil {
						_, _ = c.Write(append([]byte("echo "), buf...))
					}
				}()
			}
		}()
	}

	errs := make(chan error, n)
	var clients sync.WaitGroup
	for i := range n {
		clients.Add(1)
		go func() {
			defer clients.Done()
			errs <- func() error {
				cli := netip.AddrPortFrom(addrA, uint16(40000+i))
				in := pl.to[cli.Port()]
				next := func() (tcp.Segment, error) {
					select {
					case p := <-in:
						return tcpOf(p)
					case <-time.After(watchdog):
						return tcp.Segment{}, fmt.Errorf("%v: nothing from the server", cli)
					}
				}
				isn := tcp.Seq(100000 * i)
				syn := plainSYN(isn)
				inject(s, s.clock.Now(), tcpPacket(cli, srvB, &syn))
				sa, err := next()
				if err != nil {
					return err
				}
				if sa.Flags != tcp.FlagSYN|tcp.FlagACK || sa.Ack != isn+1 {
					return fmt.Errorf("%v: want SYN-ACK ack %d, got flags %v ack %d", cli, isn+1, sa.Flags, sa.Ack)
				}
				msg := fmt.Sprintf("client %02d", i)
				ack := tcp.Segment{Seq: isn + 1, Ack: sa.Seq + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: []byte(msg)}
				inject(s, s.clock.Now(), tcpPacket(cli, srvB, &ack))
				var got []byte
				for want := "echo " + msg; len(got) < len(want); {
					seg, err := next()
					if err != nil {
						return err
					}
					if seg.Flags&tcp.FlagRST != 0 {
						return fmt.Errorf("%v: reset", cli)
					}
					if len(seg.Payload) > 0 && seg.Seq == sa.Seq+1+tcp.Seq(len(got)) {
						got = append(got, seg.Payload...)
					}
				}
				if want := "echo " + msg; string(got) != want {
					return fmt.Errorf("%v: got %q, want %q", cli, got, want)
				}
				return nil
			}()
		}()
	}
	clients.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, uint64(n), s.Stats().TCPPassiveOpens.Load())
	require.Zero(t, s.Stats().TCPListenOverflows.Load())
	ln.mu.Lock()
	require.Zero(t, ln.claimed)
	ln.mu.Unlock()
	require.NoError(t, ln.Close())
	servers.Wait()
}

// TestSYNBurstKeepsBacklogAcrossShards: 64 clients complete handshakes
// at once from goroutines of their own (the shards run in parallel) to a
// listener with a backlog of 4 that nobody accepts from. Exactly 4 get
// into the accept queue, the other ACKs are dropped and counted, with the
// SYN queue holding them (synq) or, when it overflows into SYN cookies,
// with no state kept.
func TestSYNBurstKeepsBacklogAcrossShards(t *testing.T) {
	const n, backlog = 64, 4
	for _, synBacklog := range []int{1024, 8} {
		t.Run(fmt.Sprintf("synq=%d", synBacklog), func(t *testing.T) {
			pl := &portLink{nullLink: newNullLink(), to: map[uint16]chan []byte{}}
			for i := range n {
				pl.to[uint16(40000+i)] = make(chan []byte, 16)
			}
			clk := NewManualClock(tcp.Time(time.Second))
			s, err := New(Options{Links: []tun.Link{pl}, Addrs: []netip.Addr{addrB}, Shards: 8, Clock: clk,
				SYNBacklog: synBacklog, CookieSourceRate: UnlimitedCookieRate})
			require.NoError(t, err)
			defer s.Close()
			ln, err := s.ListenBacklog("tcp", ":80", backlog)
			require.NoError(t, err)
			now := clk.Now()

			// The SYNs first, all at once (a SYN finding the accept queue
			// full is dropped); then, once every client has its SYN-ACK (a
			// queued connection's or a cookie), the ACKs, all at once.
			var wg, synacks sync.WaitGroup
			acks := make(chan struct{})
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				synacks.Add(1)
				go func() {
					defer wg.Done()
					gotSA := false
					defer func() {
						if !gotSA {
							synacks.Done()
						}
					}()
					cli := netip.AddrPortFrom(addrA, uint16(40000+i))
					syn := plainSYN(tcp.Seq(1000 * i))
					inject(s, now, tcpPacket(cli, srvB, &syn))
					var sa tcp.Segment
					select {
					case p := <-pl.to[cli.Port()]:
						var err error
						if sa, err = tcpOf(p); err != nil {
							errs <- err
							return
						}
					case <-time.After(watchdog):
						errs <- fmt.Errorf("%v: no SYN-ACK", cli)
						return
					}
					gotSA = true
					synacks.Done()
					<-acks
					ack := tcp.Segment{Seq: syn.Seq + 1, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 65535}
					inject(s, now, tcpPacket(cli, srvB, &ack))
				}()
			}
			synacks.Wait()
			close(acks)
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			st := s.Stats()
			limit, synq, acq := ln.Backlog()
			require.Equal(t, backlog, limit)
			require.Equal(t, backlog, acq, "accept queue at its bound, not beyond")
			require.Equal(t, uint64(n-backlog), st.TCPListenOverflows.Load(), "the other ACKs dropped")
			if synBacklog >= n {
				require.Equal(t, n-backlog, synq, "dropped ACKs leave their connections in the SYN queue")
				require.Zero(t, st.TCPCookiesSent.Load())
			} else {
				require.Greater(t, st.TCPCookiesSent.Load(), uint64(0), "the SYN queue overflowed into cookies")
				require.LessOrEqual(t, synq, synBacklog)
			}
			require.Equal(t, uint64(backlog), st.TCPPassiveOpens.Load())
			ln.mu.Lock()
			require.Zero(t, ln.claimed)
			ln.mu.Unlock()
		})
	}
}

// TestDialsOnOtherShardsDoNotWait: one Dial is stuck in its port pick's
// callback, waiting for its shard's lock (held here, as a long engine run
// or a busy shard would); a Dial whose connection lives on another shard
// completes meanwhile: the port allocator's lock is not held while the
// callback inserts the connection and runs the engine.
func TestDialsOnOtherShardsDoNotWait(t *testing.T) {
	nl := newNullLink()
	s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Shards: 2})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	// Algorithm 4 gives a destination consecutive ports: a probe pick
	// tells which port (and so which shard) its next Dial gets.
	nextShard := func(remote netip.AddrPort) *shard {
		var port uint16
		s.ports.pick(addrB, remote, func(p uint16) bool { port = p; return false })
		return s.shardFor(tuple{local: netip.AddrPortFrom(addrB, port+1), remote: remote})
	}
	var remA, remB netip.AddrPort
	for p := uint16(1000); !remB.IsValid(); p++ {
		r := netip.AddrPortFrom(addrA, p)
		switch sh := nextShard(r); {
		case sh == s.shards[0] && !remA.IsValid():
			remA = r
		case sh == s.shards[1] && !remB.IsValid():
			remB = r
		}
	}
	if !remA.IsValid() {
		for p := remB.Port() + 1; !remA.IsValid(); p++ {
			if r := netip.AddrPortFrom(addrA, p); nextShard(r) == s.shards[0] {
				remA = r
			}
		}
	}

	s.shards[0].mu.Lock()
	var unlockOnce sync.Once
	unlock := func() { unlockOnce.Do(s.shards[0].mu.Unlock) }
	t.Cleanup(unlock) // before Close, if the test fails while the shard is held
	doneA := make(chan struct{})
	go func() {
		defer close(doneA)
		c, err := s.StartDial(remA, nil)
		if err == nil {
			c.Close()
		}
	}()
	// Wait until A is inside pick (its callback blocked on the lock).
	inPick := func() bool {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "(*portAllocator).pick") && strings.Contains(g, "startDial") {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(watchdog)
	for !inPick() {
		require.True(t, time.Now().Before(deadline), "A never reached pick")
		runtime.Gosched()
	}
	doneB := make(chan struct{})
	var errB error
	var cB *Conn
	go func() {
		defer close(doneB)
		cB, errB = s.StartDial(remB, nil)
	}()
	waitClosed(t, doneB, "a Dial on shard 1 waited for one stuck on shard 0")
	require.NoError(t, errB)
	require.Equal(t, remB.String(), cB.RemoteAddr().String())
	require.Equal(t, tcp.StateSynSent, cB.Info().State)
	unlock()
	waitClosed(t, doneA, "A's Dial")
	cB.Close()
}

// TestHandshakeWakesBlockedAcceptDirectly: on a Driven stack, which runs
// no goroutine of its own, an Accept blocked on another goroutine returns
// the connection whose handshake this goroutine's Input completed: the
// handshake's last ACK wakes the Accept itself, with no goroutine of the
// stack between them.
func TestHandshakeWakesBlockedAcceptDirectly(t *testing.T) {
	nl := newNullLink()
	clk := NewManualClock(tcp.Time(time.Second))
	g0 := runtime.NumGoroutine()
	s, err := New(Options{Links: []tun.Link{nl}, Addrs: []netip.Addr{addrB}, Driven: true, Clock: clk})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.LessOrEqual(t, runtime.NumGoroutine(), g0, "a Driven stack starts no goroutine")
	ln, err := s.ListenBacklog("tcp", ":80", 4)
	require.NoError(t, err)
	type accepted struct {
		c   *Conn
		err error
	}
	got := make(chan accepted, 1)
	go func() {
		c, err := ln.AcceptConn()
		got <- accepted{c, err}
	}()
	cli := netip.AddrPortFrom(addrA, 40000)
	now := clk.Now()
	syn := plainSYN(1000)
	require.NoError(t, s.Input(0, [][]byte{tcpPacket(cli, srvB, &syn)}, nil, now))
	select {
	case a := <-got:
		t.Fatalf("Accept returned before the handshake completed: %v %v", a.c, a.err)
	default:
	}
	require.NoError(t, s.Input(0, [][]byte{handshakeACKFor(s, cli, 1000, now, []byte("hi"))}, nil, now))
	var a accepted
	select {
	case a = <-got:
	case <-time.After(watchdog):
		t.Fatal("the handshake did not wake the blocked Accept")
	}
	require.NoError(t, a.err)
	require.Equal(t, cli.String(), a.c.RemoteAddr().String())
	buf := make([]byte, 2)
	_, err = io.ReadFull(a.c, buf)
	require.NoError(t, err)
	require.Equal(t, "hi", string(buf))
	a.c.Close()
}
