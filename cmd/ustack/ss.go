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

// ssOptions are ss's display flags.
type ssOptions struct {
	info, ext, mem bool
}

func runSS(args []string, stdout, stderr io.Writer) int {
	var o ssOptions
	var listening, all, summary, asJSON, udp bool
	var admin, tunName string
	fs := flag.NewFlagSet("ss", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.info, "i", false, "show TCP internals: rtt, rto, cwnd, bytes, retransmits, timers, congestion control")
	fs.BoolVar(&o.ext, "e", false, "show extended state: windows, buffers, queues, probes, option use; for listeners the SYN\nqueue and SYN cookie state")
	fs.BoolVar(&o.mem, "m", false, "show socket memory as ss -m's skmem:(r,rb,t,tb,f,w): bytes received and held, receive buffer,\nbytes in flight, send buffer, storage held but empty, bytes queued to send")
	fs.BoolVar(&listening, "l", false, "show only listeners (Recv-Q: accept queue, Send-Q: backlog)")
	fs.BoolVar(&all, "a", false, "show listeners and connections")
	fs.BoolVar(&udp, "u", false, "show UDP sockets instead of TCP, like ss -un: connected ones (ESTAB); with -a also\nunconnected ones (UNCONN), with -l only those. Recv-Q is bytes queued to be read")
	fs.BoolVar(&summary, "s", false, "print a summary by state and family instead of the list")
	fs.BoolVar(&asJSON, "json", false, "print the matching connections and listeners as JSON (every tcp.Info field; durations in ns)")
	fs.StringVar(&admin, "admin", "", "admin socket of the 'ustack serve' to ask (default "+adminDir+"/TUN.sock for the --tun name)")
	fs.StringVar(&tunName, "tun", "ustack0", "TUN device name of the 'ustack serve' to ask (picks the default --admin)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ustack ss [-u] [-l|-a] [-i] [-e] [-m] [-s] [--json] [--admin PATH|--tun NAME] [FILTER]\n\n"+
			"Lists the TCP connections of a running 'ustack serve' (read from its admin socket),\n"+
			"like 'ss -tn': State Recv-Q Send-Q Local:Port Peer:Port. Recv-Q is bytes received\n"+
			"and not yet read, Send-Q bytes written and not yet acknowledged. Listeners (-l, -a, or\n"+
			"state listening) show their accept queue as Recv-Q and their backlog as Send-Q.\n\n"+
			"FILTER is any of, all of which must match:\n"+
			"  state STATE    ESTAB, LISTEN, SYN-SENT, TIME-WAIT… (or ss names: established, listening…)\n"+
			"  sport = :PORT  local port\n"+
			"  dport = :PORT  peer port\n"+
			"  src ADDR[:PORT], dst ADDR[:PORT], or a bare ADDR[:PORT] matching either end\n\nflags:\n")
		fs.PrintDefaults()
	}
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if listening && all {
		fmt.Fprintf(stderr, "ustack ss: -l shows only listeners and -a everything: pick one\n")
		return exitUsage
	}
	match, hasState, err := parseSSFilter(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "ustack ss: %v\n", err)
		return exitUsage
	}
	path := adminPath(admin, tunName)
	if path == "" {
		fmt.Fprintf(stderr, "ustack ss: --admin off: want the admin socket of 'ustack serve'\n")
		return exitUsage
	}
	table, err := fetchConns(path)
	if err != nil {
		fmt.Fprintf(stderr, "ustack ss: %v\n", err)
		return 1
	}
	if udp {
		if summary || o.info || o.ext || o.mem {
			fmt.Fprintf(stderr, "ustack ss: -u lists UDP sockets, which have no -s, -i, -e or -m view\n")
			return exitUsage
		}
		return showUDP(table.UDP, match, listening, all || hasState, asJSON, stdout, stderr)
	}
	// Like ss: connections by default, listeners with -l, both with -a or
	// a state filter (which then picks), everything for -s.
	wantConns := !listening || hasState
	wantListeners := listening || all || hasState
	if summary {
		wantConns, wantListeners = true, true
	}
	var shown adminConns
	if wantConns {
		for _, c := range table.Conns {
			if match(c) {
				shown.Conns = append(shown.Conns, c)
			}
		}
	}
	if wantListeners {
		for _, l := range table.Listeners {
			if match(l.asConn()) {
				shown.Listeners = append(shown.Listeners, l)
			}
		}
	}
	switch {
	case asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if shown.Conns == nil {
			shown.Conns = []adminConn{}
		}
		if err := enc.Encode(shown); err != nil {
			fmt.Fprintf(stderr, "ustack ss: %v\n", err)
			return 1
		}
	case summary:
		io.WriteString(stdout, formatSSSummary(shown.Conns, shown.Listeners))
	default:
		io.WriteString(stdout, formatSS(shown.Conns, shown.Listeners, o))
	}
	return 0
}

// showUDP prints the UDP sockets that match: connected ones, or with all
// unconnected ones too, or with listening only unconnected ones (ss -u,
// -ua, -ul).
func showUDP(socks []adminUDP, match func(adminConn) bool, listening, all bool, asJSON bool, stdout, stderr io.Writer) int {
	shown := []adminUDP{}
	for _, u := range socks {
		unconn := u.State == "UNCONN"
		if listening && !unconn || !listening && !all && unconn {
			continue
		}
		l := adminListener{Addr: u.Addr, Port: u.Port}
		if match(adminConn{Local: netip.AddrPortFrom(l.listenAddr(), u.Port), Remote: u.Remote, State: u.State}) {
			shown = append(shown, u)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(shown); err != nil {
			fmt.Fprintf(stderr, "ustack ss: %v\n", err)
			return 1
		}
		return 0
	}
	io.WriteString(stdout, formatSSUDP(shown))
	return 0
}

// formatSSUDP lays UDP sockets out as ss -un does; an unconnected
// socket's peer is *:* (or 0.0.0.0:* / [::]:*), a socket bound to any
// address of both families shows *:PORT.
func formatSSUDP(socks []adminUDP) string {
	rows := [][4]string{{"State", "Recv-Q", "Local Address:Port", "Peer Address:Port"}}
	for _, u := range socks {
		l := adminListener{Addr: u.Addr, Port: u.Port}
		peer := l.peer()
		if u.Remote.IsValid() {
			peer = u.Remote.String()
		}
		rows = append(rows, [4]string{u.State, strconv.Itoa(u.RecvQueue), l.local(), peer})
	}
	var w [3]int
	for _, r := range rows {
		for i := range w {
			w[i] = max(w[i], len(r[i]))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s %*s %-*s %s\n", w[0], r[0], w[1], r[1], w[2], r[2], r[3])
	}
	return b.String()
}

// listenAddr parses an adminListener's Addr ("*": the zero Addr).
func (l adminListener) listenAddr() netip.Addr {
	a, _ := netip.ParseAddr(l.Addr)
	return a
}

// asConn is l as a row the filters can match: local address and port,
// no peer, state LISTEN.
func (l adminListener) asConn() adminConn {
	return adminConn{Local: netip.AddrPortFrom(l.listenAddr(), l.Port), State: "LISTEN"}
}

// local and peer are l's address columns as ss prints them: *:80,
// 0.0.0.0:80, [::]:80; the peer *:*, 0.0.0.0:* or [::]:*.
func (l adminListener) local() string { return l.host() + ":" + strconv.Itoa(int(l.Port)) }
func (l adminListener) peer() string {
	a := l.listenAddr()
	switch {
	case !a.IsValid():
		return "*:*"
	case a.Is4():
		return "0.0.0.0:*"
	}
	return "[::]:*"
}

func (l adminListener) host() string {
	a := l.listenAddr()
	switch {
	case !a.IsValid():
		return "*"
	case a.Is4():
		return a.String()
	}
	return "[" + a.String() + "]"
}

// fetchConns asks the admin socket at path for the connection table.
func fetchConns(path string) (adminConns, error) {
	var body adminConns
	missing := fmt.Errorf("no ustack admin socket at %s: is `ustack serve` running?", path)
	if _, err := os.Stat(path); err != nil {
		return body, missing
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
			return body, missing
		}
		if errors.Is(err, syscall.EACCES) {
			return body, fmt.Errorf("admin socket %s: permission denied: it is open to the user running `ustack serve` and, with --admin-group, to that group", path)
		}
		return body, fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("admin socket %s: GET /conns: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return body, fmt.Errorf("admin socket %s: bad /conns reply: %w", path, err)
	}
	return body, nil
}

// ssStateAliases maps ss's long state names to ustack's (tcp.State.String).
var ssStateAliases = map[string]string{
	"established": "ESTAB",
	"syn-recv":    "SYN-RECV",
	"syn-sent":    "SYN-SENT",
	"closed":      "CLOSE",
	"listening":   "LISTEN",
	"unconnected": "UNCONN", // ss -u's state of an unconnected socket
	"unconn":      "UNCONN",
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
// match. hasState reports a state term (which, as in ss, also decides
// whether listeners are listed).
func parseSSFilter(words []string) (match func(adminConn) bool, hasState bool, err error) {
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
				return nil, false, err
			}
			name, ok := parseSSState(v)
			if !ok {
				return nil, false, fmt.Errorf("filter state %q: unknown state (want ESTAB, LISTEN, SYN-SENT, SYN-RECV, FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT, CLOSE-WAIT, LAST-ACK, CLOSING, CLOSE)", v)
			}
			hasState = true
			terms = append(terms, func(c adminConn) bool { return c.State == name })
		case "sport", "dport":
			eq, err := arg()
			if err != nil {
				return nil, false, err
			}
			if eq != "=" && eq != "==" {
				return nil, false, fmt.Errorf("filter %s: want '%s = :PORT'", w, w)
			}
			v, err := arg()
			if err != nil {
				return nil, false, err
			}
			port, err := strconv.ParseUint(strings.TrimPrefix(v, ":"), 10, 16)
			if err != nil || !strings.HasPrefix(v, ":") {
				return nil, false, fmt.Errorf("filter %s = %q: want :PORT, e.g. :80", w, v)
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
				return nil, false, err
			}
			m, err := parseEndpoint(v)
			if err != nil {
				return nil, false, fmt.Errorf("filter %s %q: %v", w, v, err)
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
				return nil, false, fmt.Errorf("unknown filter %q (want state X, sport = :N, dport = :N, src/dst ADDR[:PORT] or ADDR[:PORT])", w)
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
	}, hasState, nil
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

// formatSS renders listeners, then connections, as `ss -tan` does, with
// -i (info), -e (ext) and -m (mem) adding an indented detail line per
// socket.
func formatSS(conns []adminConn, lns []adminListener, o ssOptions) string {
	type row struct {
		state, recvQ, sendQ, local, peer string
		details                          []string
	}
	rows := []row{{"State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", nil}}
	for _, l := range lns {
		r := row{l.State, strconv.Itoa(l.AcceptQueue), strconv.Itoa(l.Backlog), l.local(), l.peer(), nil}
		if o.ext {
			r.details = append(r.details, ssListenerExtLine(&l))
		}
		rows = append(rows, r)
	}
	for i := range conns {
		c := &conns[i]
		r := row{c.State, strconv.Itoa(c.Readable), strconv.FormatUint(uint64(c.Unacked)+uint64(c.NotSent), 10),
			c.Local.String(), c.Remote.String(), nil}
		if o.info {
			r.details = append(r.details, ssInfoLine(&c.Info))
		}
		if o.ext {
			r.details = append(r.details, ssExtLine(&c.Info))
		}
		if o.mem {
			r.details = append(r.details, ssMemLine(&c.Info))
		}
		rows = append(rows, r)
	}
	var w [4]int
	for _, r := range rows {
		w[0] = max(w[0], len(r.state))
		w[1] = max(w[1], len(r.recvQ))
		w[2] = max(w[2], len(r.sendQ))
		w[3] = max(w[3], len(r.local))
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s %*s %*s %-*s %s\n", w[0], r.state, w[1], r.recvQ, w[2], r.sendQ, w[3], r.local, r.peer)
		for _, d := range r.details {
			b.WriteString("\t" + d + "\n")
		}
	}
	return b.String()
}

// ssListenerExtLine is a listener's -e detail: its SYN queue against its
// bound, and SYN cookies: off, on (ready), or active (the SYN queue
// overflowed lately; cookies are being sent or may come back).
func ssListenerExtLine(l *adminListener) string {
	cookies := "off"
	switch {
	case l.CookiesActive:
		cookies = "active"
	case l.Cookies:
		cookies = "on"
	}
	return fmt.Sprintf("syn_queue:%d/%d cookies:%s", l.SYNQueue, l.SYNBacklog, cookies)
}

// ssMemLine is the -m detail in ss -m's skmem notation, with ustack's
// meanings: r bytes received and held (readable plus out of order), rb the
// receive buffer size, t bytes in flight, tb the send buffer size, f
// buffer storage held but empty, w bytes queued to send (in flight plus
// not yet sent). Linux's o, bl and d have no counterpart and are left out.
func ssMemLine(c *tcp.Info) string {
	queued := int(c.Unacked) + int(c.NotSent)
	free := max(c.SndAlloc-queued, 0) + max(c.RcvAlloc-c.Readable, 0)
	return fmt.Sprintf("skmem:(r%d,rb%d,t%d,tb%d,f%d,w%d)", c.Readable+c.OOOBytes, c.RcvBuf, c.Unacked, c.SndBuf, free, queued)
}

// formatSSSummary is -s: sockets by state and by family, like ss -s.
func formatSSSummary(conns []adminConn, lns []adminListener) string {
	var byState [numTCPStates]int
	v4, v6 := 0, 0
	for _, c := range conns {
		for st := range numTCPStates {
			if tcp.State(st).String() == c.State {
				byState[st]++
			}
		}
		if c.Local.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	for _, l := range lns {
		if a := l.listenAddr(); a.IsValid() && a.Is4() {
			v4++
		} else {
			v6++ // a dual-stack listener is an IPv6 socket, as in Linux
		}
	}
	var states []string
	if len(lns) > 0 {
		states = append(states, fmt.Sprintf("LISTEN %d", len(lns)))
	}
	for st, n := range byState {
		if n > 0 && tcp.State(st) != tcp.StateListen {
			states = append(states, fmt.Sprintf("%s %d", tcp.State(st), n))
		}
	}
	total := len(conns) + len(lns)
	var b strings.Builder
	fmt.Fprintf(&b, "Total: %d (connections %d, listeners %d)\n", total, len(conns), len(lns))
	if len(states) > 0 {
		fmt.Fprintf(&b, "TCP:   %d (%s)\n\n", total, strings.Join(states, ", "))
	} else {
		fmt.Fprintf(&b, "TCP:   0\n\n")
	}
	fmt.Fprintf(&b, "Transport Total     IP        IPv6\n")
	fmt.Fprintf(&b, "TCP       %-9d %-9d %d\n", total, v4, v6)
	return b.String()
}

// ms formats a duration in milliseconds as ss does (%g of µs/1000).
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'g', -1, 64)
}

// rate formats bits per second as ss does (iproute2 sprint_bw: one decimal
// above 1000, 1e6 and 1e9 with K, M and G; %g below).
func rate(bps float64) string {
	switch {
	case bps > 1e9:
		return fmt.Sprintf("%.1fGbps", bps/1e9)
	case bps > 1e6:
		return fmt.Sprintf("%.1fMbps", bps/1e6)
	case bps > 1e3:
		return fmt.Sprintf("%.1fKbps", bps/1e3)
	}
	return fmt.Sprintf("%gbps", bps)
}

// ssInfoLine is the -i detail: the fields of Linux's `ss -ti`, in its
// order (advmss, lastrcv, busy and rwnd_limited from tcp.Info as well), with cwnd, ssthresh, retrans, lost, sacked and reordering in
// segments as there (tcp.Info's Linux counters). Byte counts are bytes.
// ca_state (tcpi_ca_state: Disorder, CWR, Recovery, Loss; nothing when
// Open), undo and prr are ustack's additions. Pending timers close the line as
// timer:(NAME,TIME-LEFT[,PROBES]).
func ssInfoLine(c *tcp.Info) string {
	var f []string
	add := func(format string, a ...any) { f = append(f, fmt.Sprintf(format, a...)) }
	// Linux prints the option flags before the algorithm (ts and sack are
	// in -e here).
	if c.ECN {
		add("ecn")
	}
	if c.ECNSeen {
		add("ecnseen")
	}
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
	if c.AdvMSS > 0 {
		add("advmss:%d", c.AdvMSS)
	}
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
	if b := c.BBR; b != nil {
		// Linux ss's bbr:(bw,mrtt,pacing_gain,cwnd_gain), plus the phase.
		add("bbr:(bw:%s,mrtt:%s,pacing_gain:%g,cwnd_gain:%g,phase:%s)",
			rate(float64(b.BW)*8), ms(b.MinRTT), b.PacingGain, b.CWndGain, b.Phase)
	}
	if c.RTT > 0 {
		// ss's "send": what cwnd allows per RTT.
		add("send %s", rate(float64(c.CWnd)*8/c.RTT.Seconds()))
	}
	if ms := c.LastDataRecv.Milliseconds(); ms > 0 {
		add("lastrcv:%d", ms) // tcpi_last_data_recv, as ss: when not 0
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
	if c.BusyTime > 0 {
		add("busy:%dms", c.BusyTime.Milliseconds())
		if c.RwndLimited > 0 {
			add("rwnd_limited:%dms(%.1f%%)", c.RwndLimited.Milliseconds(), 100*float64(c.RwndLimited)/float64(c.BusyTime))
		}
	}
	if c.Unacked > 0 {
		add("unacked:%d", c.Unacked)
	}
	// Linux's loss counters, in segments, printed as ss prints them:
	// retrans:IN-FLIGHT/TOTAL, reordering only when not the default 3.
	if c.Retrans > 0 || c.TotalRetrans > 0 {
		add("retrans:%d/%d", c.Retrans, c.TotalRetrans)
	}
	if c.Lost > 0 {
		add("lost:%d", c.Lost)
	}
	if c.SACKed > 0 {
		add("sacked:%d", c.SACKed)
	}
	if c.DSACKDups > 0 {
		add("dsack_dups:%d", c.DSACKDups)
	}
	if c.Reordering != 3 {
		add("reordering:%d", c.Reordering)
	}
	if c.ReordSeen > 0 {
		add("reord_seen:%d", c.ReordSeen)
	}
	if c.FastRecoveries > 0 {
		add("fast_recoveries:%d", c.FastRecoveries)
	}
	if c.RTOExpirations > 0 {
		add("rto_expirations:%d", c.RTOExpirations)
	}
	if c.UndoRecovery > 0 || c.UndoRTO > 0 {
		// Spurious recoveries and RTOs undone, and how they were found.
		add("undo:(recovery:%d,rto:%d,dsack:%d,ts:%d)", c.UndoRecovery, c.UndoRTO, c.UndoDSACK, c.UndoTS)
	}
	if c.InRecovery {
		add("in_recovery")
	}
	// RFC 3168 ECN's counters (ustack's own; Linux has them only as MIBs).
	if c.ECERcvd > 0 {
		add("ece_rcvd:%d", c.ECERcvd)
	}
	if c.ECNReductions > 0 {
		add("ecn_reductions:%d", c.ECNReductions)
	}
	if c.CERcvd > 0 {
		add("ce_rcvd:%d", c.CERcvd)
	}
	if c.CWRSent > 0 {
		add("cwr_sent:%d", c.CWRSent)
	}
	if c.CAState != tcp.CAOpen {
		add("ca_state:%s", c.CAState) // Open, the usual state, goes unsaid
	}
	if c.PRR {
		add("prr")
	}
	if c.RcvRTT > 0 {
		add("rcv_rtt:%s", ms(c.RcvRTT))
	}
	if c.RcvSpace > 0 {
		// Receive auto-tuning's measure: the most bytes read in a
		// round trip (the buffer it sized is rb of -m's skmem).
		add("rcv_space:%d", c.RcvSpace)
	}
	if c.NotSent > 0 {
		add("notsent:%d", c.NotSent)
	}
	if c.MinRTT > 0 {
		add("minrtt:%s", ms(c.MinRTT))
	}
	if c.RcvOOOPack > 0 {
		add("rcv_ooopack:%d", c.RcvOOOPack)
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
