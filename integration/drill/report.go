package drill

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Collect expands files and directories (recursively, *.pkt) into a sorted
// list of script paths.
func Collect(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.HasSuffix(p, ".pkt") {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Load reads and parses a script file.
func Load(path string) (*Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(path, string(b))
	if err != nil {
		return nil, err
	}
	s.Dir = filepath.Dir(path)
	return s, nil
}

// WriteResult prints one run: its status line and, unless it passed, the
// details (expected and actual side by side) and notes.
func WriteResult(w io.Writer, r Result, verbose bool) {
	loc := r.Script
	if r.Line > 0 {
		loc = fmt.Sprintf("%s:%d", r.Script, r.Line)
	}
	fmt.Fprintf(w, "%-5s %-6s %s\n", r.Status, r.DUT, loc)
	if r.Status != Pass && r.Detail != "" {
		for _, l := range strings.Split(r.Detail, "\n") {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "      note: %s\n", n)
	}
	if verbose || !r.Status.OK() {
		if len(r.Trace) > 0 {
			fmt.Fprintf(w, "      trace (%s):\n", r.DUT)
			for _, l := range r.Trace {
				fmt.Fprintf(w, "        %s\n", l)
			}
		}
	}
}

// WriteSummary prints a scripts × DUTs table and the totals; it returns
// whether every run succeeded.
func WriteSummary(w io.Writer, scripts []string, duts []string, results map[string]map[string]Result) bool {
	width := len("script")
	for _, s := range scripts {
		width = max(width, len(s))
	}
	fmt.Fprintf(w, "\n%-*s", width, "script")
	for _, d := range duts {
		fmt.Fprintf(w, "  %-11s", d)
	}
	fmt.Fprintln(w)
	ok := true
	counts := map[Status]int{}
	for _, s := range scripts {
		fmt.Fprintf(w, "%-*s", width, s)
		for _, d := range duts {
			r := results[s][d]
			counts[r.Status]++
			ok = ok && r.Status.OK()
			fmt.Fprintf(w, "  %-11s", r.Status)
		}
		fmt.Fprintln(w)
	}
	var parts []string
	for _, st := range statusOrder {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	fmt.Fprintf(w, "\n%d scripts × %d DUTs: %s\n", len(scripts), len(duts), strings.Join(parts, ", "))
	return ok
}

// folderOf is the folder a script is summarised under: its directory
// relative to the longest directory all scripts share.
func folderOf(script, root string) string {
	d := filepath.Dir(script)
	if rel, err := filepath.Rel(root, d); err == nil {
		d = rel
	}
	return filepath.ToSlash(d)
}

// commonDir is the longest directory that holds every script.
func commonDir(scripts []string) string {
	if len(scripts) == 0 {
		return "."
	}
	root := filepath.Dir(scripts[0])
	for _, s := range scripts[1:] {
		for root != "." && root != "/" && !strings.HasPrefix(filepath.Dir(s)+"/", root+"/") {
			root = filepath.Dir(root)
		}
	}
	return root
}

// statusOrder is the order statuses are listed in summaries.
var statusOrder = []Status{Pass, XFail, Skip, Unsupported, Fail, XPass, Error}

// WriteFolderSummary prints, per folder and DUT, how many scripts ended
// in each status, and lists the unsupported features with their counts.
func WriteFolderSummary(w io.Writer, scripts []string, duts []string, results map[string]map[string]Result) {
	root := commonDir(scripts)
	type key struct{ folder, dut string }
	counts := map[key]map[Status]int{}
	var folders []string
	features := map[string]map[string]int{}
	for _, s := range scripts {
		f := folderOf(s, root)
		if !slices.Contains(folders, f) {
			folders = append(folders, f)
		}
		for _, d := range duts {
			k := key{f, d}
			if counts[k] == nil {
				counts[k] = map[Status]int{}
			}
			r := results[s][d]
			counts[k][r.Status]++
			if r.Status == Unsupported {
				if features[d] == nil {
					features[d] = map[string]int{}
				}
				features[d][r.Feature]++
			}
		}
	}
	slices.Sort(folders)
	width := len("folder")
	for _, f := range folders {
		width = max(width, len(f))
	}
	fmt.Fprintf(w, "\nby folder (under %s): pass/xfail/skip/unsupported/FAIL/XPASS/ERROR\n%-*s", root, width, "folder")
	for _, d := range duts {
		fmt.Fprintf(w, "  %-20s", d)
	}
	fmt.Fprintln(w)
	for _, f := range folders {
		fmt.Fprintf(w, "%-*s", width, f)
		for _, d := range duts {
			c := counts[key{f, d}]
			var p []string
			for _, st := range statusOrder {
				p = append(p, fmt.Sprint(c[st]))
			}
			fmt.Fprintf(w, "  %-20s", strings.Join(p, "/"))
		}
		fmt.Fprintln(w)
	}
	for _, d := range duts {
		keys := map[string]bool{}
		for _, sc := range scripts {
			for _, kv := range results[sc][d].Unmapped {
				k, _, _ := strings.Cut(kv, "=")
				keys[k] = true
			}
		}
		if len(keys) == 0 {
			continue
		}
		var names []string
		for k := range keys {
			names = append(names, k)
		}
		slices.Sort(names)
		fmt.Fprintf(w, "sysctls with no equivalent on %s: %s\n", d, strings.Join(names, ", "))
	}
	for _, d := range duts {
		if len(features[d]) == 0 {
			continue
		}
		var names []string
		for n := range features[d] {
			names = append(names, n)
		}
		slices.Sort(names)
		var p []string
		for _, n := range names {
			p = append(p, fmt.Sprintf("%s ×%d", n, features[d][n]))
		}
		fmt.Fprintf(w, "unsupported by %s: %s\n", d, strings.Join(p, ", "))
	}
}

// JSONResult is one run in the --json report.
type JSONResult struct {
	Script   string   `json:"script"`
	Folder   string   `json:"folder"`
	DUT      string   `json:"dut"`
	Status   Status   `json:"status"`
	Line     int      `json:"line,omitempty"`
	Feature  string   `json:"feature,omitempty"`
	Detail   string   `json:"detail,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Unmapped []string `json:"unmapped_sysctls,omitempty"`
	Seconds  float64  `json:"seconds"`
}

// JSONReport is the --json document.
type JSONReport struct {
	DUTs    []string                  `json:"duts"`
	Results []JSONResult              `json:"results"`
	Totals  map[string]map[Status]int `json:"totals"`
}

// WriteJSON writes every run, in script then DUT order, and the totals per
// DUT.
func WriteJSON(w io.Writer, scripts []string, duts []string, results map[string]map[string]Result) error {
	root := commonDir(scripts)
	rep := JSONReport{DUTs: duts, Results: []JSONResult{}, Totals: map[string]map[Status]int{}}
	for _, d := range duts {
		rep.Totals[d] = map[Status]int{}
	}
	for _, s := range scripts {
		for _, d := range duts {
			r := results[s][d]
			rep.Totals[d][r.Status]++
			rep.Results = append(rep.Results, JSONResult{
				Script: s, Folder: folderOf(s, root), DUT: d, Status: r.Status, Line: r.Line,
				Feature: r.Feature, Detail: r.Detail, Notes: r.Notes, Unmapped: r.Unmapped,
				Seconds: r.Elapsed.Seconds(),
			})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// JUnit XML, as CI systems read it: one testsuite per DUT, one testcase per
// script (classname = folder); FAIL/XPASS are failures, ERROR errors,
// skip and unsupported skipped (with the reason), pass and xfail pass.
type (
	junitSuites struct {
		XMLName xml.Name     `xml:"testsuites"`
		Suites  []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Skipped  int         `xml:"skipped,attr"`
		Time     float64     `xml:"time,attr"`
		Cases    []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      float64       `xml:"time,attr"`
		Failure   *junitMessage `xml:"failure,omitempty"`
		Error     *junitMessage `xml:"error,omitempty"`
		Skipped   *junitMessage `xml:"skipped,omitempty"`
		SystemOut string        `xml:"system-out,omitempty"`
	}
	junitMessage struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
)

// WriteJUnit writes the runs as JUnit XML.
func WriteJUnit(w io.Writer, scripts []string, duts []string, results map[string]map[string]Result) error {
	root := commonDir(scripts)
	var doc junitSuites
	for _, d := range duts {
		suite := junitSuite{Name: "drill/" + d}
		for _, s := range scripts {
			r := results[s][d]
			c := junitCase{Name: filepath.Base(s), Classname: strings.ReplaceAll(folderOf(s, root), "/", "."), Time: r.Elapsed.Seconds()}
			loc := s
			if r.Line > 0 {
				loc = fmt.Sprintf("%s:%d", s, r.Line)
			}
			msg := &junitMessage{Message: fmt.Sprintf("%s %s", r.Status, loc), Text: r.Detail}
			switch r.Status {
			case Fail, XPass:
				c.Failure = msg
				suite.Failures++
			case Error:
				c.Error = msg
				suite.Errors++
			case Skip:
				c.Skipped = &junitMessage{Message: r.Detail}
				suite.Skipped++
			case Unsupported:
				c.Skipped = &junitMessage{Message: "unsupported by the DUT: " + r.Feature}
				suite.Skipped++
			}
			if !r.Status.OK() && len(r.Trace) > 0 {
				c.SystemOut = strings.Join(r.Trace, "\n")
			}
			suite.Tests++
			suite.Time += c.Time
			suite.Cases = append(suite.Cases, c)
		}
		doc.Suites = append(doc.Suites, suite)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
