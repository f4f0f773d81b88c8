package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// drillScripts writes a passing script, a failing one and one that needs
// TCP Fast Open into a directory tree.
func drillScripts(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "a"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "b"), 0o755))
	pass := "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n" +
		"+0 < S 0:0(0) win 65535 <mss 1460>\n+0 > S. 0:0(0) ack 1 <mss 1460>\n+.1 < . 1:1(0) ack 1 win 512\n+0 accept(3, ..., ...) = 4\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a", "pass.pkt"), []byte(pass), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a", "fail.pkt"), []byte(pass+"+0 > . 1:1(0) ack 1\n"), 0o644))
	tfo := "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 setsockopt(3, SOL_TCP, TCP_FASTOPEN, [1], 4) = 0\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b", "tfo.pkt"), []byte(tfo), 0o644))
	return dir
}

func TestDrillReports(t *testing.T) {
	dir := drillScripts(t)
	junit := filepath.Join(t.TempDir(), "j.xml")
	var out, errb bytes.Buffer
	st := runDrill([]string{"--dut", "tcp,gvisor", "--json", "--junit", junit, dir}, &out, &errb)
	require.Equal(t, 1, st, "a FAIL makes the exit status 1: %s", errb.String())
	var rep struct {
		DUTs    []string
		Results []struct {
			Script, Folder, DUT, Status, Feature string
			Line                                 int
		}
		Totals map[string]map[string]int
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	require.Equal(t, []string{"tcp", "gvisor"}, rep.DUTs)
	require.Len(t, rep.Results, 6)
	byName := map[string]string{}
	for _, r := range rep.Results {
		byName[filepath.Base(r.Script)+"/"+r.DUT] = r.Status
		if strings.HasSuffix(r.Script, "tfo.pkt") {
			require.Equal(t, "TCP Fast Open", r.Feature)
			require.Equal(t, "b", r.Folder)
		}
		if strings.HasSuffix(r.Script, "fail.pkt") {
			require.Equal(t, 8, r.Line)
		}
	}
	require.Equal(t, map[string]string{
		"fail.pkt/tcp": "FAIL", "fail.pkt/gvisor": "FAIL", "pass.pkt/tcp": "pass", "pass.pkt/gvisor": "pass",
		"tfo.pkt/tcp": "unsupported", "tfo.pkt/gvisor": "unsupported",
	}, byName)
	require.Equal(t, map[string]int{"pass": 1, "FAIL": 1, "unsupported": 1}, rep.Totals["tcp"])

	b, err := os.ReadFile(junit)
	require.NoError(t, err)
	var doc struct {
		Suites []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Skipped  int    `xml:"skipped,attr"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(b, &doc))
	require.Len(t, doc.Suites, 2)
	require.Equal(t, "drill/tcp", doc.Suites[0].Name)
	require.Equal(t, 3, doc.Suites[0].Tests)
	require.Equal(t, 1, doc.Suites[0].Failures)
	require.Equal(t, 1, doc.Suites[0].Skipped)

	// Text: the folder summary and the unsupported feature.
	out.Reset()
	require.Equal(t, 1, runDrill([]string{"--dut", "tcp", dir}, &out, &errb))
	require.Contains(t, out.String(), "by folder")
	require.Contains(t, out.String(), "unsupported by tcp: TCP Fast Open ×1")
	out.Reset()
	require.Equal(t, 0, runDrill([]string{"--dut", "tcp", filepath.Join(dir, "a", "pass.pkt")}, &out, &errb))
}

func TestDrillFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--dut", "bsd", "x.pkt"}, `unknown DUT "bsd"`},
		{[]string{"--dut", "tcp,tcp", "x.pkt"}, `DUT "tcp" given twice`},
		{[]string{"--match", "fuzzy", "x.pkt"}, "unknown match mode"},
	} {
		var out, errb bytes.Buffer
		require.Equal(t, exitUsage, runDrill(tc.args, &out, &errb), tc.args)
		require.Contains(t, errb.String(), tc.msg)
	}
}
