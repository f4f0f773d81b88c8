package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ustack-net/ustack/tcp"
)

func runSS(args []string, stdout, stderr io.Writer) int {
	var info, ext, asJSON bool
	var admin, tunName string
	fs := flag.NewFlagSet("ss", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&info, "i", false, "show TCP internals: rtt, rto, cwnd, bytes, retransmits, timers, congestion control")
	fs.BoolVar(&ext, "e", false, "show extended state: windows, buffers, queues, probes, option use")
	fs.BoolVar(&asJSON, "json", false, "print the matching connections as JSON (every tcp.Info field; durations in ns)")
	fs.StringVar(&admin, "admin", "", "admin socket of the 'ustack serve' to ask (default "+adminDir+"/TUN.sock for the --tun name)")
	fs.StringVar(&tunName, "tun", "ustack0", "TUN device name of the 'ustack serve' to ask (picks the default --admin)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack ss [-i] [-e] [--json] [--admin PATH|--tun NAME] [FILTER]\n\n"+
			"Lists the TCP connections of a running 'ustack serve' (read from its admin socket),\n"+
			"like 'ss -tn': State Recv-Q Send-Q Local:Port Peer:Port. Recv-Q is bytes received\n"+
			"and not yet read, Send-Q bytes written and not yet acknowledged.\n\n"+
			"FILTER is any of, all of which must match:\n"+
			"  state STATE    ESTAB, SYN-SENT, TIME-WAIT… (or ss names: established, time-wait…)\n"+
			"  sport = :PORT  local port\n"+
			"  dport = :PORT  peer port\n"+
			"  src ADDR[:PORT], dst ADDR[:PORT], or a bare ADDR[:PORT] matching either end\n\nflags:\n")
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	match, err := parseSSFilter(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "ustack ss: %v\n", err)
		return exitUsage
	}
	path := adminPath(admin, tunName)
	if path == "" {
		fmt.Fprintf(stderr, "ustack ss: --admin off: want the admin socket of 'ustack serve'\n")
		return exitUsage
	}
	conns, err := fetchConns(path)
	if err != nil {
		fmt.Fprintf(stderr, "ustack ss: %v\n", err)
		return 1
	}
	var shown []adminConn
	for _, c := range conns {
		if match(c) {
			shown = append(shown, c)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if shown == nil {
			shown = []adminConn{}
		}
		if err := enc.Encode(adminConns{Conns: shown}); err != nil {
			fmt.Fprintf(stderr, "ustack ss: %v\n", err)
			return 1
		}
		return 0
	}
	io.WriteString(stdout, formatSS(shown, info, ext))
	return 0
}

// fetchConns asks the admin socket at path for the connection table.
func fetchConns(path string) ([]adminConn, error) {
	missing := fmt.Errorf("no ustack admin socket at %s: is `ustack serve` running?", path)
	if _, err := os.Stat(path); err != nil {
		return nil, missing
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
	resp, err := client.Get("http://ustack/conns")
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, missing
		}
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin socket %s: GET /conns: %s", path, resp.Status)
	}
	var body adminConns
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("admin socket %s: bad /conns reply: %w", path, err)
	}
	return body.Conns, nil
}

// ssStateAliases maps ss's long state names to ustack's (tcp.State.String).
var ssStateAliases = map[string]string{
	"established": "ESTAB",
	"syn-recv":    "SYN-RECV",
	"syn-sent":    "SYN-SENT",
	"closed":      "CLOSE",
	"listening":   "LISTEN",
}

// parseSSState accepts a tcp.State name in any case, or an ss long name.
func parseSSState(s string) (string, bool) {
	if v, ok := ssStateAliases[strings.ToLower(s)]; ok {
		return v, true
	}
	for st := range numTCPStates {
		if name := tcp.State(st).String(); strings.EqualFold(name, s) {
			return name, true
		}
	}
	return "", false
}

// parseSSFilter turns the filter words into a predicate; all terms must
// match.
func parseSSFilter(words []string) (func(adminConn) bool, error) {
	var terms []func(adminConn) bool
	for i := 0; i < len(words); i++ {
		w := words[i]
		arg := func() (string, error) {
			if i+1 >= len(words) {
				return "", fmt.Errorf("filter %q: missing its argument", w)
			}
			i++
			return words[i], nil
		}
		switch w {
		case "state":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			name, ok := parseSSState(v)
			if !ok {
				return nil, fmt.Errorf("filter state %q: unknown state (want ESTAB, SYN-SENT, SYN-RECV, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSE-WAIT, LAST-ACK, CLOSING, CLOSE)", v)
			}
			terms = append(terms, func(c adminConn) bool { return c.State == name })
		case "sport", "dport":
			eq, err := arg()
			if err != nil {
				return nil, err
			}
			if eq != "=" && eq != "==" {
				return nil, fmt.Errorf("filter %s: want '%s = :PORT'", w, w)
			}
			v, err := arg()
			if err != nil {
				return nil, err
			}
			port, err := strconv.ParseUint(strings.TrimPrefix(v, ":"), 10, 16)
			if err != nil || !strings.HasPrefix(v, ":") {
				return nil, fmt.Errorf("filter %s = %q: want :PORT, e.g. :80", w, v)
			}
			local := w == "sport"
			terms = append(terms, func(c adminConn) bool {
				if local {
					return c.Local.Port() == uint16(port)
				}
				return c.Remote.Port() == uint16(port)
			})
		case "src", "dst":
			v, err := arg()
			if err != nil {
				return nil, err
			}
			m, err := parseEndpoint(v)
			if err != nil {
				return nil, fmt.Errorf("filter %s %q: %v", w, v, err)
			}
			local := w == "src"
			terms = append(terms, func(c adminConn) bool {
				if local {
					return m(c.Local)
				}
				return m(c.Remote)
			})
		default:
			m, err := parseEndpoint(w)
			if err != nil {
				return nil, fmt.Errorf("unknown filter %q (want state X, sport = :N, dport = :N, src/dst ADDR[:PORT] or ADDR[:PORT])", w)
			}
			terms = append(terms, func(c adminConn) bool { return m(c.Local) || m(c.Remote) })
		}
	}
	return func(c adminConn) bool {
		for _, t := range terms {
			if !t(c) {
				return false
			}
		}
		return true
	}, nil
}

// parseEndpoint parses ADDR or ADDR:PORT ([v6]:PORT) into a matcher.
func parseEndpoint(s string) (func(netip.AddrPort) bool, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return func(x netip.AddrPort) bool { return x == ap }, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return nil, errors.New("want an address or address:port")
	}
	return func(x netip.AddrPort) bool { return x.Addr() == a }, nil
}

// formatSS renders connections as `ss -tn` does, with -i (info) and -e
// (ext) adding an indented detail line per connection.
func formatSS(conns []adminConn, info, ext bool) string {
	type row struct{ state, recvQ, sendQ, local, peer string }
	rows := []row{{"State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port"}}
	for _, c := range conns {
		rows = append(rows, row{
			c.State,
			strconv.Itoa(c.Readable),
			strconv.FormatUint(uint64(c.Unacked)+uint64(c.NotSent), 10),
			c.Local.String(),
			c.Remote.String(),
		})
	}
	var w [4]int
	for _, r := range rows {
		w[0] = max(w[0], len(r.state))
		w[1] = max(w[1], len(r.recvQ))
		w[2] = max(w[2], len(r.sendQ))
		w[3] = max(w[3], len(r.local))
	}
	var b strings.Builder
	for i, r := range rows {
		fmt.Fprintf(&b, "%-*s %*s %*s %-*s %s\n", w[0], r.state, w[1], r.recvQ, w[2], r.sendQ, w[3], r.local, r.peer)
		if i == 0 {
			continue
		}
		c := &conns[i-1].Info
		if info {
			b.WriteString("\t" + ssInfoLine(c) + "\n")
		}
		if ext {
			b.WriteString("\t" + ssExtLine(c) + "\n")
		}
	}
	return b.String()
}

// ms formats a duration in milliseconds as ss does (%g of µs/1000).
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'g', -1, 64)
}

// rate formats bits per second as ss does (bps, Kbps, Mbps, Gbps).
func rate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1fGbps", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1fMbps", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1fKbps", bps/1e3)
	}
	return fmt.Sprintf("%.0fbps", bps)
}

// ssInfoLine is the -i detail: the fields of Linux's `ss -ti`, in its
// order, with cwnd and ssthresh in segments as there. Byte counts are
// bytes; sacked is bytes currently SACKed; reordering counts out-of-order
// segments received. Pending timers close the line as
// timer:(NAME,TIME-LEFT[,PROBES]).
func ssInfoLine(c *tcp.Info) string {
	var f []string
	add := func(format string, a ...any) { f = append(f, fmt.Sprintf(format, a...)) }
	add("%s", c.CC)
	if c.SndWScale >= 0 {
		add("wscale:%d,%d", c.SndWScale, c.RcvWScale)
	}
	add("rto:%s", ms(c.RTO))
	if c.RTT > 0 {
		add("rtt:%s/%s", ms(c.RTT), ms(c.RTTVar))
	}
	mss := max(uint32(c.MSS), 1)
	add("mss:%d", c.MSS)
	add("rcvmss:%d", c.RcvMSS)
	add("cwnd:%d", c.CWnd/mss)
	if c.SSThresh < 1<<30 {
		add("ssthresh:%d", c.SSThresh/mss)
	}
	add("bytes_sent:%d", c.BytesSent)
	if c.BytesRetrans > 0 {
		add("bytes_retrans:%d", c.BytesRetrans)
	}
	add("bytes_acked:%d", c.BytesAcked)
	add("bytes_received:%d", c.BytesReceived)
	add("segs_out:%d", c.SegsOut)
	add("segs_in:%d", c.SegsIn)
	add("data_segs_out:%d", c.DataSegsOut)
	add("data_segs_in:%d", c.DataSegsIn)
	if c.RTT > 0 {
		// ss's "send": what cwnd allows per RTT.
		add("send %s", rate(float64(c.CWnd)*8/c.RTT.Seconds()))
	}
	if c.PacingRate > 0 {
		add("pacing_rate %s", rate(float64(c.PacingRate)*8))
	}
	if c.DeliveryRate > 0 {
		add("delivery_rate %s", rate(float64(c.DeliveryRate)*8))
	}
	if c.Delivered > 0 {
		add("delivered:%d", c.Delivered)
	}
	if c.DeliveryAppLimited {
		add("app_limited")
	}
	if c.Unacked > 0 {
		add("unacked:%d", c.Unacked)
	}
	if c.Retransmits > 0 || c.CurrentRetransmits > 0 {
		add("retrans:%d/%d", c.CurrentRetransmits, c.Retransmits)
	}
	if c.Lost > 0 {
		add("lost:%d", c.Lost)
	}
	if c.SACKed > 0 {
		add("sacked:%d", c.SACKed)
	}
	if c.Reordering > 0 {
		add("reordering:%d", c.Reordering)
	}
	if c.FastRecoveries > 0 {
		add("fast_recoveries:%d", c.FastRecoveries)
	}
	if c.RTOExpirations > 0 {
		add("rto_expirations:%d", c.RTOExpirations)
	}
	if c.InRecovery {
		add("in_recovery")
	}
	if c.NotSent > 0 {
		add("notsent:%d", c.NotSent)
	}
	if c.MinRTT > 0 {
		add("minrtt:%s", ms(c.MinRTT))
	}
	for _, t := range []struct {
		name   string
		ti     tcp.TimerInfo
		probes int
	}{
		{"retrans", c.Retransmit, c.CurrentRetransmits},
		{"persist", c.Persist, c.ZeroWindowProbes},
		{"keepalive", c.Keepalive, c.KeepaliveProbes},
		{"delack", c.DelayedACK, -1},
		{"fin-wait-2", c.FinWait2, -1},
		{"timewait", c.TimeWait, -1},
		{"user-timeout", c.UserTimeout, -1},
	} {
		if !t.ti.Armed {
			continue
		}
		left := max(t.ti.Left, 0).Round(time.Millisecond).String()
		if t.probes >= 0 {
			add("timer:(%s,%s,%d)", t.name, left, t.probes)
		} else {
			add("timer:(%s,%s)", t.name, left)
		}
	}
	return strings.Join(f, " ")
}

// ssExtLine is the -e detail: windows, buffers, queues, option use and the
// rarer counters.
func ssExtLine(c *tcp.Info) string {
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("snd_wnd:%d rcv_wnd:%d sndbuf:%d rcvbuf:%d readable:%d ooo_bytes:%d sack:%s ts:%s "+
		"dupacks_in:%d dsacks_sent:%d probes_sent:%d challenge_acks:%d challenge_suppressed:%d paws_drops:%d out_of_window:%d",
		c.SndWnd, c.RcvWnd, c.SndBuf, c.RcvBuf, c.Readable, c.OOOBytes, onOff(c.SACK), onOff(c.Timestamps),
		c.DupAcksIn, c.DSACKsSent, c.ProbesSent, c.ChallengeACKs, c.ChallengeSuppress, c.PAWSDrops, c.OutOfWindow)
}
