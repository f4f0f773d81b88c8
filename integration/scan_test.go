package integration

// Hostile scans against `ustack serve` (issue 9): nmap's SYN, FIN, Xmas,
// NULL and ACK scans and its OS detection. Each must get the answers RFC
// 9293 prescribes (as nmap reports them port by port), leave no connection
// behind, and leave the stack serving normally.

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ustack-net/ustack/tun/netnstest"
)

// nmapRun is the part of nmap's -oX output the test reads.
type nmapRun struct {
	Hosts []struct {
		Ports []struct {
			ID    int `xml:"portid,attr"`
			State struct {
				State  string `xml:"state,attr"`
				Reason string `xml:"reason,attr"`
			} `xml:"state"`
		} `xml:"ports>port"`
		Extra []struct {
			State string `xml:"state,attr"`
			Count int    `xml:"count,attr"`
		} `xml:"ports>extraports"`
		OS []struct {
			Name     string `xml:"name,attr"`
			Accuracy int    `xml:"accuracy,attr"`
		} `xml:"os>osmatch"`
	} `xml:"host"`
}

// scanPorts are the scanned ports: the open services and closed neighbours,
// few enough (under 26) that nmap lists every one instead of summing up.
var scanPorts = []int{1, 2, 6, 7, 8, 9, 10, 22, 79, 80, 81, 443, 8080}

func isOpenService(p int) bool {
	return p == serveEchoPort || p == serveDiscardPort || p == serveHTTPPort
}

// runNmap runs nmap with a bounded retry count and timing against ustack's
// IPv4 address and returns its parsed XML report.
func runNmap(t *testing.T, args ...string) nmapRun {
	t.Helper()
	ports := make([]string, len(scanPorts))
	for i, p := range scanPorts {
		ports[i] = strconv.Itoa(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"-n", "-Pn", "-T5", "--max-retries", "1", "-p", strings.Join(ports, ","), "-oX", "-"}, args...)
	full = append(full, ustackAddr4.String())
	start := time.Now()
	out, err := exec.CommandContext(ctx, "nmap", full...).Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "nmap %s: %s", strings.Join(full, " "), stderr)
	t.Logf("nmap %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	var run nmapRun
	require.NoError(t, xml.Unmarshal(out, &run), "nmap -oX output:\n%s", out)
	require.Len(t, run.Hosts, 1, "nmap -oX output:\n%s", out)
	return run
}

// portStates maps each scanned port to the state nmap reported.
func portStates(t *testing.T, run nmapRun) map[int]string {
	t.Helper()
	h := run.Hosts[0]
	require.Empty(t, h.Extra, "nmap summed up ports instead of listing them")
	got := map[int]string{}
	for _, p := range h.Ports {
		got[p.ID] = p.State.State + " (" + p.State.Reason + ")"
	}
	return got
}

func TestNmapScans(t *testing.T) {
	if !haveTool(t, "nmap", "nmap") || !netnstest.Enter(t) {
		return
	}
	srv := startAttackServe(t)
	m0 := srv.metrics(t)
	rss0 := srv.peakRSS(t)
	for _, sc := range []struct {
		flag         string
		open, closed string // nmap's state (reason) for each kind of port
	}{
		// SYN scan: SYN-ACK from a listener, RST from a closed port.
		{"-sS", "open (syn-ack)", "closed (reset)"},
		// FIN, Xmas (FIN|PSH|URG), NULL: RFC 9293 §3.10.7.1 answers RST
		// on a closed port; a listener drops a segment without SYN, ACK
		// or RST (§3.10.7.2), so nmap cannot tell open from filtered.
		{"-sF", "open|filtered (no-response)", "closed (reset)"},
		{"-sX", "open|filtered (no-response)", "closed (reset)"},
		{"-sN", "open|filtered (no-response)", "closed (reset)"},
		// ACK scan: an ACK gets a RST from a listener (§3.10.7.2) and
		// from a closed port alike: every port is unfiltered.
		{"-sA", "unfiltered (reset)", "unfiltered (reset)"},
	} {
		t.Run(sc.flag, func(t *testing.T) {
			got := portStates(t, runNmap(t, sc.flag))
			for _, p := range scanPorts {
				want := sc.closed
				if isOpenService(p) {
					want = sc.open
				}
				require.Equal(t, want, got[p], "nmap %s, port %d", sc.flag, p)
			}
			srv.waitNoConns(t, 5*time.Second)
		})
	}
	t.Run("-O", func(t *testing.T) {
		run := runNmap(t, "-O")
		got := portStates(t, run)
		for _, p := range scanPorts {
			want := "closed (reset)"
			if isOpenService(p) {
				want = "open (syn-ack)"
			}
			require.Equal(t, want, got[p], "nmap -O, port %d", p)
		}
		if os := run.Hosts[0].OS; len(os) > 0 {
			t.Logf("nmap -O's best guess: %s (%d%%)", os[0].Name, os[0].Accuracy)
		}
		srv.waitNoConns(t, 5*time.Second)
	})

	// The stack serves normally afterwards.
	require.NoError(t, echoOnce(joinAddrPort(ustackAddr4, serveEchoPort)))
	resp, err := kernelHTTPClient(false).Get("http://" + joinAddrPort(ustackAddr4, serveHTTPPort) + "/")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	// The HTTP server closed first: its side waits in TIME-WAIT.
	srv.waitNoConns(t, 5*time.Second, "TIME-WAIT")
	m1 := srv.metrics(t)
	require.Greater(t, m1.counter("tcp_resets_sent"), m0.counter("tcp_resets_sent"))
	require.Greater(t, m1.counter("tcp_listen_bad_segment"), m0.counter("tcp_listen_bad_segment"))
	t.Logf("counters that moved: %s", moved(m0, m1))
	t.Logf("peak RSS of ustack serve: %d KiB before the scans, %d KiB after", rss0, srv.peakRSS(t))
}
