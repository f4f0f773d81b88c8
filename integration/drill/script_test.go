package drill

import (
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
