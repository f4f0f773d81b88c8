package main

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ustack-net/ustack/tcp"
)

// fixedConns is a snapshot with one busy IPv4 connection and one IPv6
// connection in TIME-WAIT.
func fixedConns() []adminConn {
	return []adminConn{
		{
			Local:  netip.MustParseAddrPort("198.18.0.2:80"),
			Remote: netip.MustParseAddrPort("198.18.0.1:40000"),
			State:  "ESTAB",
			Info: tcp.Info{
				State: tcp.StateEstablished, CC: "cubic", SndWScale: 7, RcvWScale: 9,
				RTO: 204 * time.Millisecond, RTT: 1500 * time.Microsecond, RTTVar: 750 * time.Microsecond,
				MSS: 1448, RcvMSS: 536, CWnd: 14480, SSThresh: math.MaxUint32,
				Readable: 10, Unacked: 2896, NotSent: 100,
				BytesSent: 100000, BytesAcked: 97104, BytesReceived: 512,
				SegsOut: 70, SegsIn: 40, DataSegsOut: 69, DataSegsIn: 1,
				Retransmits: 3, CurrentRetransmits: 1, Retrans: 1, TotalRetrans: 3, Lost: 1, SACKed: 1, Reordering: 5, RcvOOOPack: 2,
				Retransmit: tcp.TimerInfo{Armed: true, Left: 203400 * time.Microsecond},
				Keepalive:  tcp.TimerInfo{Armed: true, Left: 14999900 * time.Microsecond},
				SndWnd:     65535, RcvWnd: 131072, SndBuf: 262144, RcvBuf: 262144, SACK: true, Timestamps: true,
			},
		},
		{
			Local:  netip.MustParseAddrPort("[2001:2::2]:7"),
			Remote: netip.MustParseAddrPort("[2001:2::1]:51234"),
			State:  "TIME-WAIT",
			Info: tcp.Info{
				State: tcp.StateTimeWait, CC: "newreno", SndWScale: -1, RcvWScale: -1,
				RTO: time.Second, MSS: 1428, RcvMSS: 1428, CWnd: 4284, SSThresh: 2856,
				BytesSent: 5, BytesAcked: 5, BytesReceived: 7, SegsOut: 4, SegsIn: 5, DataSegsOut: 1, DataSegsIn: 1, Reordering: 3,
				TimeWait: tcp.TimerInfo{Armed: true, Left: 59500 * time.Millisecond},
				SndWnd:   1000, RcvWnd: 2000, SndBuf: 4096, RcvBuf: 8192, OOOBytes: 3, DupAcksIn: 2, PAWSDrops: 1,
			},
		},
	}
}

func TestFormatSS(t *testing.T) {
	head := "State     Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
	row1 := "ESTAB         10   2996 198.18.0.2:80      198.18.0.1:40000\n"
	row2 := "TIME-WAIT      0      0 [2001:2::2]:7      [2001:2::1]:51234\n"
	info1 := "\tcubic wscale:7,9 rto:204 rtt:1.5/0.75 mss:1448 rcvmss:536 cwnd:10 bytes_sent:100000 bytes_acked:97104 " +
		"bytes_received:512 segs_out:70 segs_in:40 data_segs_out:69 data_segs_in:1 send 77.2Mbps unacked:2896 " +
		"retrans:1/3 lost:1 sacked:1 reordering:5 notsent:100 rcv_ooopack:2 timer:(retrans,203ms,1) timer:(keepalive,15s,0)\n"
	info2 := "\tnewreno rto:1000 mss:1428 rcvmss:1428 cwnd:3 ssthresh:2 bytes_sent:5 bytes_acked:5 bytes_received:7 " +
		"segs_out:4 segs_in:5 data_segs_out:1 data_segs_in:1 timer:(timewait,59.5s)\n"
	ext1 := "\tsnd_wnd:65535 rcv_wnd:131072 sndbuf:262144 rcvbuf:262144 readable:10 ooo_bytes:0 sack:on ts:on " +
		"dupacks_in:0 dsacks_sent:0 probes_sent:0 challenge_acks:0 challenge_suppressed:0 paws_drops:0 out_of_window:0\n"
	ext2 := "\tsnd_wnd:1000 rcv_wnd:2000 sndbuf:4096 rcvbuf:8192 readable:0 ooo_bytes:3 sack:off ts:off " +
		"dupacks_in:2 dsacks_sent:0 probes_sent:0 challenge_acks:0 challenge_suppressed:0 paws_drops:1 out_of_window:0\n"
	for _, tc := range []struct {
		name      string
		info, ext bool
		want      string
	}{
		{"plain", false, false, head + row1 + row2},
		{"-i", true, false, head + row1 + info1 + row2 + info2},
		{"-e", false, true, head + row1 + ext1 + row2 + ext2},
		{"-i -e", true, true, head + row1 + info1 + ext1 + row2 + info2 + ext2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, formatSS(fixedConns(), nil, ssOptions{info: tc.info, ext: tc.ext}))
		})
	}
	assert.Equal(t, "State Recv-Q Send-Q Local Address:Port Peer Address:Port\n", formatSS(nil, nil, ssOptions{true, true, true}))
}

func TestSSFilter(t *testing.T) {
	conns := append(fixedConns(), adminConn{
		Local: netip.MustParseAddrPort("198.18.0.2:41000"), Remote: netip.MustParseAddrPort("198.18.0.1:80"), State: "SYN-SENT",
	})
	for _, tc := range []struct {
		filter string
		want   []int
	}{
		{"", []int{0, 1, 2}},
		{"state ESTAB", []int{0}},
		{"state established", []int{0}},
		{"state time-wait", []int{1}},
		{"state syn-sent", []int{2}},
		{"state LISTEN", nil},
		{"sport = :80", []int{0}},
		{"dport = :80", []int{2}},
		{"dport == :51234", []int{1}},
		{"198.18.0.1", []int{0, 2}},
		{"198.18.0.1:80", []int{2}},
		{"2001:2::1", []int{1}},
		{"[2001:2::2]:7", []int{1}},
		{"src 198.18.0.2:80", []int{0}},
		{"dst 198.18.0.2", nil},
		{"dst 198.18.0.1 state SYN-SENT", []int{2}},
		{"sport = :80 state time-wait", nil},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			match, hasState, err := parseSSFilter(strings.Fields(tc.filter))
			require.NoError(t, err)
			assert.Equal(t, strings.Contains(tc.filter, "state"), hasState)
			var got []int
			for i, c := range conns {
				if match(c) {
					got = append(got, i)
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
	for _, bad := range []string{"bogus", "state", "state SLEEPING", "sport :80", "sport = 80", "sport = :70000",
		"dport =", "src", "dst nowhere", "198.18.0.300"} {
		_, _, err := parseSSFilter(strings.Fields(bad))
		assert.Error(t, err, bad)
	}
}

func TestSSCommandErrors(t *testing.T) {
	missing := t.TempDir() + "/none.sock"
	for _, tc := range []struct {
		args   []string
		rc     int
		stderr string
	}{
		{[]string{"--admin", missing}, 1, "no ustack admin socket at " + missing + ": is `ustack serve` running?"},
		{[]string{"--admin", t.TempDir() + "/nosuch0.sock"}, 1, "nosuch0.sock: is `ustack serve` running?"},
		{[]string{"--admin", missing, "bogus"}, exitUsage, `unknown filter "bogus"`},
		{[]string{"--admin", missing, "state", "NAPPING"}, exitUsage, `filter state "NAPPING": unknown state`},
		{[]string{"--admin", "off"}, exitUsage, "--admin off"},
		{[]string{"--admin", missing, "-l", "-a"}, exitUsage, "-l shows only listeners and -a everything: pick one"},
		{[]string{"--nope"}, exitUsage, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			var out, errb bytes.Buffer
			assert.Equal(t, tc.rc, run(append([]string{"ss"}, tc.args...), &out, &errb))
			assert.Contains(t, errb.String(), tc.stderr)
			assert.Empty(t, out.String())
		})
	}
	var out, errb bytes.Buffer
	assert.Equal(t, 0, run([]string{"ss", "--help"}, &out, &errb))
	assert.Contains(t, errb.String(), "usage: ustack ss")
}

func TestAdminConnJSONRoundTrip(t *testing.T) {
	in := adminConns{Conns: fixedConns()}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"local":"198.18.0.2:80"`)
	assert.Contains(t, string(b), `"State":"TIME-WAIT"`, "the state is its ss name, not a number")
	assert.Contains(t, string(b), `"RTT":1500000`, "durations in nanoseconds")
	var out adminConns
	require.NoError(t, json.Unmarshal(b, &out))
	// Info.State is shadowed by the name and does not travel.
	for i := range in.Conns {
		in.Conns[i].Info.State = 0
	}
	assert.Equal(t, in, out)
}

// fixedListeners: the dual-stack wildcard on :80 with a full SYN queue
// answered by cookies, the IPv4 wildcard on :7, the IPv6 one on :9
// without cookies, and one bound to an address.
func fixedListeners() []adminListener {
	return []adminListener{
		{Addr: "*", Port: 80, State: "LISTEN", AcceptQueue: 3, Backlog: 1024, SYNQueue: 1024, SYNBacklog: 1024, Cookies: true, CookiesActive: true},
		{Addr: "0.0.0.0", Port: 7, State: "LISTEN", Backlog: 128, SYNBacklog: 1024, Cookies: true},
		{Addr: "::", Port: 9, State: "LISTEN", AcceptQueue: 1, Backlog: 16, SYNQueue: 2, SYNBacklog: 64},
		{Addr: "198.18.0.2", Port: 19, State: "LISTEN", Backlog: 5, SYNBacklog: 8, Cookies: true},
	}
}

// Listeners print as ss -l prints them (Recv-Q the accept queue, Send-Q
// the backlog) before the connections; -e adds their SYN queue and cookie
// state, -m the connections' skmem.
func TestFormatSSListeners(t *testing.T) {
	got := formatSS(fixedConns()[:1], fixedListeners(), ssOptions{ext: true, mem: true})
	want := "State  Recv-Q Send-Q Local Address:Port Peer Address:Port\n" +
		"LISTEN      3   1024 *:80               *:*\n" +
		"\tsyn_queue:1024/1024 cookies:active\n" +
		"LISTEN      0    128 0.0.0.0:7          0.0.0.0:*\n" +
		"\tsyn_queue:0/1024 cookies:on\n" +
		"LISTEN      1     16 [::]:9             [::]:*\n" +
		"\tsyn_queue:2/64 cookies:off\n" +
		"LISTEN      0      5 198.18.0.2:19      0.0.0.0:*\n" +
		"\tsyn_queue:0/8 cookies:on\n" +
		"ESTAB      10   2996 198.18.0.2:80      198.18.0.1:40000\n" +
		"\tsnd_wnd:65535 rcv_wnd:131072 sndbuf:262144 rcvbuf:262144 readable:10 ooo_bytes:0 sack:on ts:on " +
		"dupacks_in:0 dsacks_sent:0 probes_sent:0 challenge_acks:0 challenge_suppressed:0 paws_drops:0 out_of_window:0\n" +
		"\tskmem:(r10,rb262144,t2896,tb262144,f0,w2996)\n"
	assert.Equal(t, want, got)
}

// -m: r counts out-of-order bytes too; f is storage held beyond what the
// buffers hold.
func TestSSMemLine(t *testing.T) {
	c := tcp.Info{Readable: 100, OOOBytes: 1448, RcvBuf: 65536, RcvAlloc: 8192, Unacked: 1000, NotSent: 24, SndBuf: 16384, SndAlloc: 4096}
	assert.Equal(t, "skmem:(r1548,rb65536,t1000,tb16384,f11164,w1024)", ssMemLine(&c))
	assert.Equal(t, "skmem:(r0,rb0,t0,tb0,f0,w0)", ssMemLine(&tcp.Info{}))
}

// -s: sockets by state (listeners first) and by family; a dual-stack
// listener counts as IPv6.
func TestFormatSSSummary(t *testing.T) {
	want := "Total: 6 (connections 2, listeners 4)\n" +
		"TCP:   6 (LISTEN 4, ESTAB 1, TIME-WAIT 1)\n\n" +
		"Transport Total     IP        IPv6\n" +
		"TCP       6         3         3\n"
	assert.Equal(t, want, formatSSSummary(fixedConns(), fixedListeners()))
	assert.Equal(t, "Total: 0 (connections 0, listeners 0)\nTCP:   0\n\n"+
		"Transport Total     IP        IPv6\nTCP       0         0         0\n", formatSSSummary(nil, nil))
}

// Filters match listeners by their local address and port; a wildcard
// listener has no address to match.
func TestSSFilterListeners(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   []int
	}{
		{"", []int{0, 1, 2, 3}},
		{"state listening", []int{0, 1, 2, 3}},
		{"state LISTEN sport = :80", []int{0}},
		{"state ESTAB", nil},
		{"sport = :9", []int{2}},
		{"198.18.0.2", []int{3}},
		{"src 0.0.0.0:7", []int{1}},
		{"dport = :80", nil},
	} {
		match, _, err := parseSSFilter(strings.Fields(tc.filter))
		require.NoError(t, err)
		var got []int
		for i, l := range fixedListeners() {
			if match(l.asConn()) {
				got = append(got, i)
			}
		}
		assert.Equal(t, tc.want, got, tc.filter)
	}
}

func TestSSInfoShowsRates(t *testing.T) {
	in := tcp.Info{CC: "cubic", SndWScale: -1, MSS: 1000, CWnd: 10000, SSThresh: math.MaxUint32,
		RTT: 10 * time.Millisecond, PacingRate: 2500000, DeliveryRate: 1250000, Delivered: 5000, DeliveryAppLimited: true,
		MinRTT: 8 * time.Millisecond}
	line := ssInfoLine(&in)
	assert.Contains(t, line, "send 8.0Mbps pacing_rate 20.0Mbps delivery_rate 10.0Mbps delivered:5000 app_limited ")
	assert.Contains(t, line, " minrtt:8")
}

// Receive auto-tuning shows as Linux's ss -ti shows it: rcv_rtt and
// rcv_space, before notsent and minrtt.
func TestSSInfoShowsRcvSpace(t *testing.T) {
	in := tcp.Info{CC: "cubic", SndWScale: -1, MSS: 1000, CWnd: 10000, SSThresh: math.MaxUint32,
		RcvRTT: 40 * time.Millisecond, RcvSpace: 524288, NotSent: 7, MinRTT: 8 * time.Millisecond}
	assert.Contains(t, ssInfoLine(&in), " rcv_rtt:40 rcv_space:524288 notsent:7 minrtt:8")
	assert.NotContains(t, ssInfoLine(&tcp.Info{CC: "cubic"}), "rcv_")
}

// A BBR connection shows its model as Linux's ss -ti does for bbr, with the
// draft's phase name added, between data_segs_in and send.
func TestSSInfoShowsBBR(t *testing.T) {
	in := tcp.Info{CC: "bbr", SndWScale: -1, MSS: 1000, CWnd: 10000, SSThresh: math.MaxUint32,
		RTT: 41 * time.Millisecond, DataSegsIn: 3,
		BBR: &tcp.BBRInfo{Phase: "ProbeBW_UP", BW: 10400000, MinRTT: 40100 * time.Microsecond, PacingGain: 1.25, CWndGain: 2.25}}
	line := ssInfoLine(&in)
	assert.Contains(t, line, " data_segs_in:3 bbr:(bw:83.2Mbps,mrtt:40.1,pacing_gain:1.25,cwnd_gain:2.25,phase:ProbeBW_UP) send ")
	assert.NotContains(t, ssInfoLine(&tcp.Info{CC: "cubic"}), "bbr:")
}

// ECN shows as Linux's ss -ti shows it, ecn and ecnseen before the
// algorithm, and its counters after in_recovery.
func TestSSInfoShowsECN(t *testing.T) {
	in := tcp.Info{CC: "cubic", SndWScale: -1, MSS: 1000, CWnd: 10000, SSThresh: math.MaxUint32,
		ECN: true, ECNSeen: true, ECERcvd: 7, ECNReductions: 2, CERcvd: 3, CWRSent: 2}
	line := ssInfoLine(&in)
	assert.True(t, strings.HasPrefix(line, "ecn ecnseen cubic rto:"), line)
	assert.Contains(t, line, " ece_rcvd:7 ecn_reductions:2 ce_rcvd:3 cwr_sent:2")
	in = tcp.Info{CC: "cubic", SndWScale: -1, MSS: 1000, ECN: true}
	assert.True(t, strings.HasPrefix(ssInfoLine(&in), "ecn cubic "), ssInfoLine(&in))
	assert.NotContains(t, ssInfoLine(&tcp.Info{CC: "cubic"}), "ecn")
}

// The recovery fields: D-SACKed duplicates after sacked, reord_seen after
// reordering, the undo counts, the CA state and PRR at work.
func TestSSInfoShowsRecovery(t *testing.T) {
	in := tcp.Info{CC: "cubic", SndWScale: -1, MSS: 1000, CWnd: 10000, SSThresh: 5000,
		SACKed: 2, DSACKDups: 3, Reordering: 4, ReordSeen: 5, UndoRecovery: 2, UndoRTO: 1, UndoDSACK: 2, UndoTS: 1,
		InRecovery: true, CAState: tcp.CARecovery, PRR: true}
	line := ssInfoLine(&in)
	assert.Contains(t, line, " sacked:2 dsack_dups:3 reordering:4 reord_seen:5 ")
	assert.Contains(t, line, " undo:(recovery:2,rto:1,dsack:2,ts:1) in_recovery ca_state:Recovery prr")
	line = ssInfoLine(&tcp.Info{CC: "cubic"})
	assert.NotContains(t, line, "ca_state")
	assert.NotContains(t, line, "undo:")
	assert.NotContains(t, line, "dsack_dups")
}

// advmss, lastrcv, busy and rwnd_limited show where Linux's ss -ti shows
// them (tcpi_advmss, tcpi_last_data_recv, tcpi_busy_time,
// tcpi_rwnd_limited), each only when not zero.
func TestSSInfoShowsAdvMSSLastRcvBusy(t *testing.T) {
	in := tcp.Info{CC: "newreno", SndWScale: -1, MSS: 1000, RcvMSS: 536, AdvMSS: 1460, CWnd: 10000, SSThresh: math.MaxUint32,
		RTT: 10 * time.Millisecond, LastDataRecv: 1500 * time.Millisecond, DeliveryAppLimited: true,
		BusyTime: 400 * time.Millisecond, RwndLimited: 100 * time.Millisecond, Unacked: 1000}
	line := ssInfoLine(&in)
	assert.Contains(t, line, " mss:1000 rcvmss:536 advmss:1460 cwnd:10 ")
	assert.Contains(t, line, " send 8.0Mbps lastrcv:1500 app_limited busy:400ms rwnd_limited:100ms(25.0%) unacked:1000")
	line = ssInfoLine(&tcp.Info{CC: "cubic", MSS: 1000})
	for _, f := range []string{"advmss", "lastrcv", "busy", "rwnd_limited"} {
		assert.NotContains(t, line, f)
	}
}
