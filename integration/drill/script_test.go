package drill

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tcp"
)

func TestParseGood(t *testing.T) {
	src := `// comment
--tolerance_usecs=10000 --ip_version=ipv6
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0.1 < S 0:0(0) win 1000 <mss 1460,sackOK,TS val 5 ecr 0,nop,wscale 7,eol>
0.2~0.3 > S. 0:0(0) ack 1 <sack 1:2 3:4>
* > F. 1:11(10) ack 1 win 5
+.5 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress) /* block */
` + "+0 `echo hi`\n" + `// expect gvisor: fail line 5: some-divergence
`
	s, err := Parse("t.pkt", src)
	require.NoError(t, err)
	require.Equal(t, 10*time.Millisecond, s.Tolerance)
	require.True(t, s.IPv6)
	require.Equal(t, Expectation{Fail: true, Line: 5, Reason: "some-divergence"}, s.Expect["gvisor"])
	require.Len(t, s.Events, 6)
	in := s.Events[1]
	require.Equal(t, Time{Kind: TimeRel, Lo: 100 * time.Millisecond, Hi: 100 * time.Millisecond}, in.Time)
	require.Equal(t, EvInject, in.Kind)
	require.Equal(t, tcp.FlagSYN, in.Packet.Flags)
	require.Equal(t, uint16(1000), in.Packet.Win)
	o := in.Packet.Opts
	require.True(t, o.HasMSS && o.SACKPermitted && o.HasTimestamp && o.HasWindowScale)
	require.Equal(t, uint32(5), o.TSVal)
	require.Equal(t, uint8(7), o.WindowScale)
	out := s.Events[2]
	require.Equal(t, Time{Kind: TimeAbs, Lo: 200 * time.Millisecond, Hi: 300 * time.Millisecond}, out.Time)
	require.Equal(t, tcp.FlagSYN|tcp.FlagACK, out.Packet.Flags)
	require.Equal(t, uint8(2), out.Packet.Opts.NumSACK)
	require.Equal(t, tcp.SACKBlock{Start: 3, End: 4}, out.Packet.Opts.SACKBlocks[1])
	fin := s.Events[3]
	require.Equal(t, TimeAny, fin.Time.Kind)
	require.Equal(t, 10, fin.Packet.Len)
	require.Equal(t, uint32(1), fin.Packet.Seq)
	require.Nil(t, fin.Packet.Opts)
	c := s.Events[4].Call
	require.Equal(t, "connect", c.Name)
	require.Equal(t, int64(-1), c.Ret)
	require.Equal(t, "EINPROGRESS", c.Errno)
	require.Equal(t, EvShell, s.Events[5].Kind)
	require.Equal(t, "echo hi", s.Events[5].Shell)
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, msg string }{
		{"bad flags", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < X 0:0(0) win 1", "t.pkt:2: bad TCP flags"},
		{"len mismatch", "0 < . 1:11(5) ack 1", "t.pkt:1: sequence \"1:11(5)\""},
		{"ack without flag", "0 < S 0:0(0) ack 1", "t.pkt:1: `ack N` needs the ACK flag"},
		{"unknown option", "0 < S 0:0(0) <foo 1>", "t.pkt:1: unsupported option \"foo\""},
		{"unknown ip field", "0 < [tos] S 0:0(0)", "t.pkt:1: IP field \"tos\" needs one value"},
		{"bad errno", "0 connect(3, ..., ...) = -1 EWHATEVER", "t.pkt:1: connect: unsupported errno"},
		{"blocking range backwards", "0.3...0.2 read(3, ..., 1) = 1", "t.pkt:1: blocking call time"},
		{"blocking packet", "0...0.2 < S 0:0(0)", "t.pkt:1: only a system call"},
		{"star on call", "* close(3) = 0", "t.pkt:1: `*` time is only allowed"},
		{"bad time", "+x close(3) = 0", "t.pkt:1: bad time"},
		{"bad flag option", "--foo=1\n0 close(3) = 0", "t.pkt:1: unsupported option --foo"},
		{"garbage", "0 close(3) = 0\n\nhello world", "t.pkt:3: bad time"},
		{"wscale", "0 < S 0:0(0) <wscale 15>", "t.pkt:1: wscale 15"},
		{"arg count", "0 close(3, 4) = 0", "t.pkt:1: close takes 1 arguments"},
		{"directive", "0 close(3) = 0\n// expect bsd: skip: x", "t.pkt:2: directive names unknown DUT"},
		{"unterminated shell", "0 `ls", "t.pkt:1: unterminated"},
		{"empty", "// nothing", "t.pkt:1: script has no events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.pkt", tc.src)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestParseOptionsLine(t *testing.T) {
	s, err := Parse("t.pkt", "--mtu=1400 --local_ip=192.168.0.1 --remote_ip=192.0.2.1 --mss=1000 --strict_segments --tcp_ts_tick_usecs=1000 --wire_server=x\n0 close(3) = 0")
	require.NoError(t, err)
	require.Equal(t, 1400, s.MTU)
	require.Equal(t, "192.0.2.1", s.Options["remote_ip"])
	require.Contains(t, s.Options, "strict_segments")
	_, err = Parse("t.pkt", "--mtu=10\n0 close(3) = 0")
	require.ErrorContains(t, err, "--mtu")
}

func TestParseBlockingTimes(t *testing.T) {
	s, err := Parse("t.pkt", "+.1...0.400 accept(3, ..., ...) = 4\n+0 ... 0.004 connect(4, ..., ...) = 0\n0.2...0.3 read(4, ..., 10) = 10")
	require.NoError(t, err)
	require.Equal(t, Time{Kind: TimeRel, Lo: 100 * time.Millisecond, Hi: 100 * time.Millisecond, HasEnd: true, End: 400 * time.Millisecond}, s.Events[0].Time)
	require.Equal(t, 4*time.Millisecond, s.Events[1].Time.End)
	require.Equal(t, Time{Kind: TimeAbs, Lo: 200 * time.Millisecond, Hi: 200 * time.Millisecond, HasEnd: true, End: 300 * time.Millisecond}, s.Events[2].Time)
}

func TestParseMultiLineCall(t *testing.T) {
	src := "0 recvmsg(4, {msg_name(...)=...,\n  msg_iov(1)=[{..., 100}],\n  msg_flags=0}, 0) = 100\n+0 close(4) = 0"
	s, err := Parse("t.pkt", src)
	require.NoError(t, err)
	require.Len(t, s.Events, 2)
	require.Equal(t, 1, s.Events[0].Line)
	require.Equal(t, 4, s.Events[1].Line)
	m := s.Events[0].Call.Vals[1]
	require.Equal(t, ValStruct, m.Kind)
	iov, ok := m.Get("msg_iov")
	require.True(t, ok)
	require.Equal(t, int64(100), iov.Elems[0].Fields[1].Val.Int)
}

func TestParseVal(t *testing.T) {
	v, err := ParseVal("O_RDWR|O_NONBLOCK")
	require.NoError(t, err)
	require.Equal(t, []string{"O_RDWR", "O_NONBLOCK"}, v.Syms)
	v, err = ParseVal("[{fd=3, events=POLLIN|POLLOUT, revents=POLLOUT}]")
	require.NoError(t, err)
	ev, _ := v.Elems[0].Get("events")
	require.Equal(t, []string{"POLLIN", "POLLOUT"}, ev.Syms)
	v, err = ParseVal("{onoff=1, linger=0}")
	require.NoError(t, err)
	l, _ := v.Get("linger")
	require.Equal(t, ValInt, l.Kind)
	v, err = ParseVal(`"cubic"`)
	require.NoError(t, err)
	require.Equal(t, "cubic", v.Str)
	v, err = ParseVal("0x207")
	require.NoError(t, err)
	require.Equal(t, int64(0x207), v.Int)
	v, err = ParseVal("NULL")
	require.NoError(t, err)
	require.Equal(t, ValNull, v.Kind)
	_, err = ParseVal("[1, 2")
	require.Error(t, err)
}

func TestParseResults(t *testing.T) {
	s, err := Parse("t.pkt", "0 fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)\n+0 read(4, ..., 512) = -1\n+0 read(4, ..., 512) = -1 EHOSTUNREACH(No route to host)\n+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0")
	require.NoError(t, err)
	require.Equal(t, int64(2), s.Events[0].Call.Ret)
	require.Equal(t, "*", s.Events[1].Call.Errno, "-1 alone: any errno")
	require.Equal(t, "EHOSTUNREACH", s.Events[2].Call.Errno)
	require.Equal(t, "setsockopt", s.Events[3].Call.Name)
}

func TestParseIPFields(t *testing.T) {
	s, err := Parse("t.pkt", "0 < [ect1] . 1:1(0) ack 1 win 320\n+0 > [ect0] P. 1:1001(1000) ack 1\n+0 < (tos 0x10, flowlabel 0x12) . 1:1(0) ack 1 win 1\n+0 > (ttl 64) . 1:1(0) ack 1\n+0 > [ect01] . 1:1(0) ack 1\n+0 < [noecn] E. 1:1(0) ack 1001 win 320")
	require.NoError(t, err)
	p := s.Events[0].Packet
	require.Equal(t, HasECN, p.HasIP)
	require.Equal(t, uint8(1), p.IP.ECN())
	require.Equal(t, uint8(2), s.Events[1].Packet.IP.ECN())
	p = s.Events[2].Packet
	require.Equal(t, HasTOS|HasFlowLabel, p.HasIP)
	require.Equal(t, uint8(0x10), p.IP.TOS)
	require.Equal(t, uint32(0x12), p.IP.FlowLabel)
	require.Equal(t, uint8(64), s.Events[3].Packet.IP.TTL)
	require.NotZero(t, s.Events[4].Packet.HasIP&ECT01)
	require.Equal(t, tcp.FlagECE|tcp.FlagACK, s.Events[5].Packet.Flags)
}

func TestParsePacketForms(t *testing.T) {
	s, err := Parse("t.pkt", "0 < S 0:10(10) win 32792 <mss 1460,sackOK,FO 0123456789abcdef>\n+0 > S. 0:0(0) ack 1 <...>\n+0 < R. 11:11(0) win 32792\n+0 < - 1:1(0) win 10\n+0 < U. 1:2(1) ack 1 urg 1 win 5\n+0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]\n+0 < S 0:0(0) <md5 0123>")
	require.NoError(t, err)
	require.Equal(t, "TCP Fast Open", s.Events[0].Packet.Feature)
	require.Nil(t, s.Events[1].Packet.Opts, "<...> matches any options")
	require.False(t, s.Events[2].Packet.HasAck)
	require.Equal(t, tcp.Flags(0), s.Events[3].Packet.Flags)
	require.Equal(t, uint16(1), s.Events[4].Packet.Urg)
	require.Equal(t, "ICMP packets", s.Events[5].Packet.Feature)
	require.Equal(t, "TCP MD5 signatures", s.Events[6].Packet.Feature)
}

func TestParseShellAndCode(t *testing.T) {
	src := "`../common/defaults.sh\n../common/set_sysctls.py /proc/sys/net/ipv4/tcp_fastopen=0x207`\n" +
		"0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" +
		"+0 %{ assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd }%\n" +
		"+0 %{\nTCP_INFINITE_SSTHRESH = 0x7fffffff\nassert tcpi_ca_state == TCP_CA_Open, tcpi_ca_state  # comment\nprint(tcpi_snd_cwnd); cwnd = 10; cwnd += 2; assert 1 <= cwnd <= 12 and not cwnd == 3, 'cwnd=%d' % cwnd\n}%\n" +
		"+0 %{ assert (tcpi_options & TCPI_OPT_SYN_DATA) != 0, tcpi_options }%"
	s, err := Parse("t.pkt", src)
	require.NoError(t, err)
	require.Equal(t, EvShell, s.Events[0].Kind)
	require.Contains(t, s.Events[0].Shell, "set_sysctls.py")
	require.Equal(t, EvCode, s.Events[2].Kind)
	c := s.Events[3].Code
	require.Len(t, c.Stmts, 6)
	require.Equal(t, "set", c.Stmts[0].Kind)
	require.Equal(t, "print", c.Stmts[2].Kind)
	require.Equal(t, "+=", c.Stmts[4].Op)
	require.Equal(t, "'cwnd=%d' % cwnd", c.Stmts[5].Msg)
	_, err = Parse("t.pkt", "0 %{ assert tcpi_snd_cwnd === 10 }%")
	require.ErrorContains(t, err, "code block")
}

func TestCodeEval(t *testing.T) {
	env := &codeEnv{info: map[string]int64{"tcpi_snd_cwnd": 10, "tcpi_options": 7}, vars: map[string]int64{"cwnd": 8}}
	for src, want := range map[string]int64{
		"tcpi_snd_cwnd == 10":                         1,
		"tcpi_snd_cwnd == cwnd + 2":                   1,
		"1 <= tcpi_snd_cwnd <= 9":                     0,
		"(tcpi_options & TCPI_OPT_SACK) != 0":         1,
		"tcpi_snd_cwnd == 10 and cwnd == 8 or 0":      1,
		"not tcpi_snd_cwnd":                           0,
		"-3 * 4 + 0x10 - 10 / 3 % 2 << 1":             6,
		"tcpi_snd_cwnd == 10 and TCP_CA_Recovery > 2": 1,
	} {
		e, err := parseExpr(src)
		require.NoError(t, err, src)
		v, err := env.eval(e)
		require.NoError(t, err, src)
		require.Equal(t, want, v, src)
	}
	e, err := parseExpr("tcpi_busy_time > 0")
	require.NoError(t, err)
	_, err = env.eval(e)
	var mf *errMissingField
	require.ErrorAs(t, err, &mf)
	require.Equal(t, "tcpi_busy_time", mf.name)
}

func TestShellSysctls(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "common"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tcp", "x"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "common", "defaults.sh"), []byte("#!/bin/bash\nip tcp_metrics flush all > /dev/null 2>&1\nsysctl -q net.ipv4.tcp_rmem=\"4096 540000 $((15*1024*1024))\"\nsysctl -q net.ipv4.tcp_early_retrans=4 net.ipv4.tcp_recovery=1\n"), 0o644))
	// A symlink checked out as text, as in the corpus.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tcp", "common"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tcp", "common", "defaults.sh"), []byte("../../common/defaults.sh"), 0o644))
	set, other, err := shellSysctls(filepath.Join(dir, "tcp", "x"), "../common/defaults.sh\n../common/set_sysctls.py /proc/sys/net/ipv4/tcp_fastopen=0x207 \\\n /proc/sys/net/ipv4/tcp_sack=0; /tmp/sysctl_restore_${PPID}.sh && tc qdisc add dev tun0 root pfifo")
	require.NoError(t, err)
	require.Equal(t, [][2]string{
		{"net.ipv4.tcp_rmem", "4096 540000 15728640"},
		{"net.ipv4.tcp_early_retrans", "4"}, {"net.ipv4.tcp_recovery", "1"},
		{"net.ipv4.tcp_fastopen", "0x207"}, {"net.ipv4.tcp_sack", "0"},
	}, set)
	require.Equal(t, []string{"ip tcp_metrics flush all > /dev/null 2>&1", "tc qdisc add dev tun0 root pfifo"}, other)
}

func TestEngineSysctl(t *testing.T) {
	var cfg tcp.Config
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_sack", "0"))
	require.True(t, cfg.DisableSACK)
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_wmem", "4096 262144 4194304"))
	require.Equal(t, 262144, cfg.SendBufferSize)
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_congestion_control", "cubic"))
	require.Equal(t, "cubic", cfg.CongestionControl)
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_min_tso_segs", "10"))
	require.Equal(t, uint8(10), cfg.MinTSOSegs)
	require.Error(t, engineSysctl(&cfg, "net.ipv4.tcp_min_tso_segs", "0"))
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_tso_win_divisor", "0"))
	require.Equal(t, int8(-1), cfg.TSOWinDivisor)
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_tso_win_divisor", "3"))
	require.Equal(t, int8(3), cfg.TSOWinDivisor)
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_pacing_ss_ratio", "150"))
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_pacing_ca_ratio", "110"))
	require.Equal(t, [2]uint16{150, 110}, [2]uint16{cfg.PacingSSRatio, cfg.PacingCARatio})
	require.ErrorIs(t, engineSysctl(&cfg, "net.ipv4.tcp_pacing_ss_ratio", "0"), ErrNoEquivalent)
	require.ErrorIs(t, engineSysctl(&cfg, "net.ipv4.tcp_frto", "2"), ErrNoEquivalent)
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_ecn", "1"))
	require.Equal(t, tcp.ECNOn, cfg.ECN)
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_ecn", "2"))
	require.Equal(t, tcp.ECNAccept, cfg.ECN)
	require.NoError(t, engineSysctl(&cfg, "net.ipv4.tcp_ecn", "0"))
	require.Equal(t, tcp.ECNOff, cfg.ECN)
	var mf *MissingFeature
	require.ErrorAs(t, engineSysctl(&cfg, "net.ipv4.tcp_ecn", "3"), &mf)
	require.Equal(t, featureAccECN, mf.Feature)
	require.ErrorContains(t, engineSysctl(&cfg, "net.ipv4.tcp_sack", "x"), "want a number")
}
