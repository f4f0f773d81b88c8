package drill

import (
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
		fmt.Fprintf(w, "  %-6s", d)
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
			fmt.Fprintf(w, "  %-6s", r.Status)
		}
		fmt.Fprintln(w)
	}
	var parts []string
	for _, st := range []Status{Pass, XFail, Skip, Fail, XPass, Error} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	fmt.Fprintf(w, "\n%d scripts × %d DUTs: %s\n", len(scripts), len(duts), strings.Join(parts, ", "))
	return ok
}
