package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/stack"
	"github.com/ustack-net/ustack/tcp"
	"github.com/ustack-net/ustack/tun"
)

// parseDevice parses args as serve and dial do and validates them.
func parseDevice(t *testing.T, args ...string) (*device, error) {
	t.Helper()
	var d deviceFlags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	d.register(fs)
	require.NoError(t, fs.Parse(args))
	return d.validate()
}

func TestKnobFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sndbuf", "abc"}, `--sndbuf "abc": want a byte count such as 262144, 256K or 4M`},
		{[]string{"--sndbuf", ""}, `--sndbuf "": want a byte count such as 262144, 256K or 4M`},
		{[]string{"--sndbuf", "-4K"}, `--sndbuf "-4K": want a byte count such as 262144, 256K or 4M`},
		{[]string{"--sndbuf", "4G"}, `--sndbuf 4G: want 4K to 64M (4096 to 67108864 bytes)`},
		{[]string{"--sndbuf", "1K"}, `--sndbuf 1K: want 4K to 64M (4096 to 67108864 bytes)`},
		{[]string{"--sndbuf", "65M"}, `--sndbuf 65M: want 4K to 64M (4096 to 67108864 bytes)`},
		{[]string{"--sndbuf", "99999999999999999999K"}, `--sndbuf 99999999999999999999K: want 4K to 64M (4096 to 67108864 bytes)`},
		{[]string{"--rcvbuf", "4095"}, `--rcvbuf 4095: want 4K to 64M (4096 to 67108864 bytes)`},
		{[]string{"--rcvbuf", "1.5M"}, `--rcvbuf "1.5M": want a byte count such as 262144, 256K or 4M`},
		{[]string{"--delayed-ack", "soon"}, `--delayed-ack "soon": want a duration such as 40ms, or 0/off to disable`},
		{[]string{"--delayed-ack", "-5ms"}, `--delayed-ack -5ms: want more than 0 and less than 500ms (RFC 1122 4.2.3.2), or 0/off to disable`},
		{[]string{"--delayed-ack", "500ms"}, `--delayed-ack 500ms: want more than 0 and less than 500ms (RFC 1122 4.2.3.2), or 0/off to disable`},
		{[]string{"--recovery", "fack"}, `--recovery "fack": want rack, sack, newreno`},
		{[]string{"--impair", "loss=2"}, `--impair: impairment "loss=2": probability 2 out of [0, 1]; write 2% for a percentage`},
		{[]string{"--impair", "drop=1%"}, `--impair: impairment "drop=1%": unknown key "drop" (known: loss, dup, reorder, depth, delay, jitter, corrupt, limit, seed)`},
		{[]string{"--impair", "delay=fast"}, `--impair: impairment "delay=fast": want a duration such as 20ms`},
	} {
		_, err := parseDevice(t, tc.args...)
		require.EqualError(t, err, tc.want, "%q", tc.args)
	}
}

func TestKnobFlagValues(t *testing.T) {
	dev, err := parseDevice(t)
	require.NoError(t, err)
	want := tcp.DefaultConfig()
	require.Equal(t, want, dev.tcp, "no flags: tcp.DefaultConfig")
	require.True(t, dev.impair.IsZero())

	for _, tc := range []struct {
		args []string
		mod  func(c *tcp.Config)
	}{
		{[]string{"--sndbuf", "4M"}, func(c *tcp.Config) { c.SendBufferSize = 4 << 20 }},
		{[]string{"--sndbuf", "64m", "--rcvbuf", "4k"}, func(c *tcp.Config) { c.SendBufferSize, c.RecvBufferSize = 64<<20, 4<<10 }},
		{[]string{"--rcvbuf", "100000"}, func(c *tcp.Config) { c.RecvBufferSize = 100000 }},
		{[]string{"--delayed-ack", "off"}, func(c *tcp.Config) { c.DelayedACK = -1 }},
		{[]string{"--delayed-ack", "0"}, func(c *tcp.Config) { c.DelayedACK = -1 }},
		{[]string{"--delayed-ack", "0s"}, func(c *tcp.Config) { c.DelayedACK = -1 }},
		{[]string{"--delayed-ack", "200ms"}, func(c *tcp.Config) { c.DelayedACK = 200 * time.Millisecond }},
		{[]string{"--nodelay"}, func(c *tcp.Config) { c.NoDelay = true }},
		{[]string{"--sack=false"}, func(c *tcp.Config) { c.DisableSACK = true }},
		{[]string{"--timestamps=false"}, func(c *tcp.Config) { c.DisableTimestamps = true }},
		{[]string{"--wscale=false"}, func(c *tcp.Config) { c.DisableWindowScale = true }},
		{[]string{"--pacing"}, func(c *tcp.Config) { c.Pacing = true }},
		{[]string{"--hystart"}, func(c *tcp.Config) { c.HyStart = tcp.HyStartOn }},
		{[]string{"--hystart=false"}, func(c *tcp.Config) { c.HyStart = tcp.HyStartOff }},
		{[]string{"--ecn"}, func(c *tcp.Config) { c.ECN = tcp.ECNOn }},
		{[]string{"--ecn=on"}, func(c *tcp.Config) { c.ECN = tcp.ECNOn }},
		{[]string{"--ecn=accept"}, func(c *tcp.Config) {}},
		{[]string{"--ecn=false"}, func(c *tcp.Config) { c.ECN = tcp.ECNOff }},
		{[]string{"--ecn=off"}, func(c *tcp.Config) { c.ECN = tcp.ECNOff }},
		{[]string{"--prr=false"}, func(c *tcp.Config) { c.DisablePRR = true }},
		{[]string{"--prr"}, func(c *tcp.Config) {}},
		{[]string{"--recovery", "rack"}, func(c *tcp.Config) {}},
		{[]string{"--recovery", "sack"}, func(c *tcp.Config) { c.Recovery = tcp.RecoverySACK }},
		{[]string{"--recovery=newreno"}, func(c *tcp.Config) { c.Recovery = tcp.RecoveryNewReno }},
		{[]string{"--cc", "newreno"}, func(c *tcp.Config) {}},
		{[]string{"--cc", "cubic", "--nodelay=true", "--sack=true"}, func(c *tcp.Config) { c.CongestionControl, c.NoDelay = "cubic", true }},
	} {
		dev, err := parseDevice(t, tc.args...)
		require.NoError(t, err, "%q", tc.args)
		want := tcp.DefaultConfig()
		tc.mod(&want)
		require.Equal(t, want, dev.tcp, "%q", tc.args)
	}

	dev, err = parseDevice(t, "--impair", "loss=1%,dup=0.1%,reorder=1%,delay=20ms,jitter=5ms,corrupt=0.01%,seed=7")
	require.NoError(t, err)
	require.Equal(t, tun.Impairment{Loss: 0.01, Dup: 0.001, Reorder: 0.01, Delay: 20 * time.Millisecond,
		Jitter: 5 * time.Millisecond, Corrupt: 0.0001, Seed: 7}, dev.impair)
}

// TestKnobECNRefusesOtherValues: --ecn takes on/true, accept, off/false
// (and Linux's tcp_ecn numbers), nothing else.
func TestKnobECNRefusesOtherValues(t *testing.T) {
	var d deviceFlags
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	d.register(fs)
	err := fs.Parse([]string{"--ecn=maybe"})
	require.ErrorContains(t, err, `"maybe" for -ecn: want on (or true), accept or off (or false)`)
	require.NoError(t, fs.Parse([]string{"--ecn=1"}))
	dev, err := d.validate()
	require.NoError(t, err)
	require.Equal(t, tcp.ECNOn, dev.tcp.ECN)
}

func TestServeHelpListsKnobs(t *testing.T) {
	var out, errOut strings.Builder
	require.Equal(t, 0, runServe([]string{"--help"}, &out, &errOut))
	for _, want := range []string{
		"-impair string", "impair the packets ustack sends (ustack -> kernel only",
		"-sndbuf string", `(default "256K")`, "-rcvbuf string",
		"-delayed-ack string", `(default "40ms")`,
		"-nodelay\n", "-sack\n", "-timestamps\n", "-wscale\n", "(default true)",
	} {
		require.Contains(t, errOut.String(), want)
	}
}

// stringBuffer is a minimal io.Writer collecting output.
type stringBuffer struct{ b []byte }

func (s *stringBuffer) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringBuffer) String() string              { return string(s.b) }

var (
	knobAddrA = netip.MustParseAddr("198.18.0.2") // ustack, configured by flags
	knobAddrB = netip.MustParseAddr("198.18.0.1") // the peer, defaults
)

// knobPair runs a stack configured from args (A, with the device's tcp.Config
// and impairment on its link) and a default stack (B) over a pipe, both on
// stopped virtual clocks so no timer fires, and connects A to B. It returns
// A's and B's ends and A's impairment (nil without --impair).
func knobPair(t *testing.T, args ...string) (a, b *stack.Conn, im *tun.Impaired) {
	t.Helper()
	dev, err := parseDevice(t, args...)
	require.NoError(t, err)
	la, lb := tun.NewPipe(1500)
	var link tun.Link
	link, im = dev.impairLink(slog.New(slog.DiscardHandler), la)
	sa, err := stack.New(stack.Options{Links: []tun.Link{link}, Addrs: []netip.Addr{knobAddrA},
		TCP: dev.tcp, Clock: stack.NewManualClock(0)})
	require.NoError(t, err)
	t.Cleanup(func() { sa.Close() })
	sb, err := stack.New(stack.Options{Links: []tun.Link{lb}, Addrs: []netip.Addr{knobAddrB},
		Clock: stack.NewManualClock(0)})
	require.NoError(t, err)
	t.Cleanup(func() { sb.Close() })
	ln, err := sb.Listen("tcp", ":9")
	require.NoError(t, err)
	accepted := make(chan *stack.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c.(*stack.Conn)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err = sa.DialAddrPort(ctx, netip.AddrPortFrom(knobAddrB, 9))
	require.NoError(t, err)
	b = <-accepted
	require.NotNil(t, b)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b, im
}

func TestKnobBuffers(t *testing.T) {
	a, b, _ := knobPair(t)
	require.Equal(t, tcp.DefaultBufferSize, a.Info().SndBuf)
	require.Equal(t, tcp.DefaultBufferSize, a.Info().RcvBuf)
	require.Equal(t, uint32(tcp.DefaultBufferSize), b.Info().SndWnd, "peer sees the default receive window")

	a, b, _ = knobPair(t, "--sndbuf", "64K", "--rcvbuf", "1M")
	require.Equal(t, 64<<10, a.Info().SndBuf)
	require.Equal(t, 1<<20, a.Info().RcvBuf)
	require.Equal(t, uint32(1<<20), b.Info().SndWnd, "peer sees the 1M receive window")
}

func TestKnobOptionsOff(t *testing.T) {
	for _, tc := range []struct {
		args                    []string
		sack, timestamps, scale bool
	}{
		{nil, true, true, true},
		{[]string{"--sack=false"}, false, true, true},
		{[]string{"--timestamps=false"}, true, false, true},
		{[]string{"--wscale=false"}, true, true, false},
		{[]string{"--sack=false", "--timestamps=false", "--wscale=false"}, false, false, false},
	} {
		a, b, _ := knobPair(t, tc.args...)
		// Both ends must agree: an option is on only when both offered it.
		for _, in := range []tcp.Info{a.Info(), b.Info()} {
			require.Equal(t, tc.sack, in.SACK, "%q SACK", tc.args)
			require.Equal(t, tc.timestamps, in.Timestamps, "%q timestamps", tc.args)
			require.Equal(t, tc.scale, in.SndWScale >= 0, "%q wscale %d", tc.args, in.SndWScale)
			require.Equal(t, tc.scale, in.RcvWScale >= 0, "%q wscale %d", tc.args, in.RcvWScale)
		}
	}
}

// pastQuickACKs sends single bytes from w to r, each read and (while the
// quick-ACK start lasts: Linux's, at most 16 ACKs) acknowledged at once,
// until r delays its ACK, which it then still owes for the last byte. It
// reports whether r ever delayed one.
func pastQuickACKs(t *testing.T, w, r *stack.Conn) bool {
	buf := make([]byte, 1)
	for i := 0; i <= 16; i++ {
		_, err := w.Write([]byte("x"))
		require.NoError(t, err)
		_, err = io.ReadFull(r, buf)
		require.NoError(t, err)
		if r.Info().DelayedACK.Armed {
			return true
		}
		require.Eventually(t, func() bool { return w.Info().Unacked == 0 }, 5*time.Second, time.Millisecond)
	}
	return false
}

func TestKnobDelayedACK(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		timer tcp.TimerInfo
	}{
		{nil, tcp.TimerInfo{Armed: true, Left: 40 * time.Millisecond}},
		{[]string{"--delayed-ack", "200ms"}, tcp.TimerInfo{Armed: true, Left: 200 * time.Millisecond}},
		{[]string{"--delayed-ack", "off"}, tcp.TimerInfo{}},
	} {
		a, b, _ := knobPair(t, tc.args...)
		require.Equal(t, tc.timer.Armed, pastQuickACKs(t, b, a), "%q", tc.args)
		require.Equal(t, tc.timer, a.Info().DelayedACK, "%q", tc.args)
		if !tc.timer.Armed {
			// Acknowledged at once: the peer's byte leaves flight without
			// any clock moving.
			require.Eventually(t, func() bool { return b.Info().Unacked == 0 }, 5*time.Second, time.Millisecond)
		} else {
			// The clocks are stopped, so the ACK is still owed.
			require.Equal(t, uint32(1), b.Info().Unacked, "%q", tc.args)
		}
	}
}

func TestKnobNoDelay(t *testing.T) {
	for _, nodelay := range []bool{false, true} {
		args := []string{}
		if nodelay {
			args = append(args, "--nodelay")
		}
		a, b, _ := knobPair(t, args...)
		// B delays its ACK of a's last byte and its clock is stopped, so
		// the byte stays in flight: Nagle (RFC 896) holds the next small
		// write until it is acknowledged.
		require.True(t, pastQuickACKs(t, a, b))
		_, err := a.Write([]byte("b"))
		require.NoError(t, err)
		in := a.Info()
		if nodelay {
			require.Equal(t, uint32(0), in.NotSent)
			require.Equal(t, uint32(2), in.Unacked)
			buf := make([]byte, 1)
			_, err = io.ReadFull(b, buf)
			require.NoError(t, err)
			require.Equal(t, "b", string(buf))
		} else {
			require.Equal(t, uint32(1), in.NotSent)
			require.Equal(t, uint32(1), in.Unacked)
		}
	}
}

func TestKnobImpair(t *testing.T) {
	dev, err := parseDevice(t)
	require.NoError(t, err)
	la, _ := tun.NewPipe(1500)
	l, im := dev.impairLink(slog.New(slog.DiscardHandler), la)
	require.Nil(t, im, "no --impair: no wrapper")
	require.Same(t, tun.Link(la), l)

	// Every packet A sends is duplicated; B still connects and sees A's
	// data once, and the wrapper counts what it did.
	a, b, im := knobPair(t, "--impair", "dup=100%,seed=3")
	require.NotNil(t, im)
	_, err = a.Write([]byte("hi"))
	require.NoError(t, err)
	buf := make([]byte, 2)
	_, err = io.ReadFull(b, buf)
	require.NoError(t, err)
	require.Equal(t, "hi", string(buf))
	st := im.Stats()
	require.GreaterOrEqual(t, st.Packets, uint64(3), "SYN, ACK, data")
	require.Equal(t, st.Packets, st.Duplicated)
	require.Equal(t, 2*st.Packets, st.Released)
	require.Zero(t, st.Dropped)

	// With every packet lost, nothing A sends reaches B: the dial fails.
	dev, err = parseDevice(t, "--impair", "loss=100%")
	require.NoError(t, err)
	la, lb := tun.NewPipe(1500)
	link, im := dev.impairLink(slog.New(slog.DiscardHandler), la)
	sa, err := stack.New(stack.Options{Links: []tun.Link{link}, Addrs: []netip.Addr{knobAddrA},
		TCP: dev.tcp, Clock: stack.NewManualClock(0)})
	require.NoError(t, err)
	defer sa.Close()
	sb, err := stack.New(stack.Options{Links: []tun.Link{lb}, Addrs: []netip.Addr{knobAddrB}})
	require.NoError(t, err)
	defer sb.Close()
	_, err = sb.Listen("tcp", ":9")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = sa.DialAddrPort(ctx, netip.AddrPortFrom(knobAddrB, 9))
	require.Error(t, err)
	st = im.Stats()
	require.Equal(t, uint64(1), st.Packets, "one SYN (the stopped clock retransmits nothing)")
	require.Equal(t, uint64(1), st.Dropped)
	require.Zero(t, st.Released)
}

func TestKnobErrorsExitUsage(t *testing.T) {
	var out, errOut strings.Builder
	require.Equal(t, exitUsage, runServe([]string{"--sndbuf", "1K"}, &out, &errOut))
	require.Equal(t, "ustack serve: --sndbuf 1K: want 4K to 64M (4096 to 67108864 bytes)\n", errOut.String())
	require.Empty(t, out.String())

	out.Reset()
	errOut.Reset()
	require.Equal(t, exitUsage, dial([]string{"--impair", "loss=x", "198.18.0.1:7"}, strings.NewReader(""), &out, &errOut))
	require.Equal(t, "ustack dial: --impair: impairment \"loss=x\": want a probability such as 1% or 0.01\n", errOut.String())
}
