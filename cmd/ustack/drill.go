package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/ustack-net/ustack/integration/drill"
)

// runDrill is `ustack drill`: run packetdrill-dialect scripts against the
// chosen DUTs and print per-run results and a summary table.
func runDrill(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dutFlag := fs.String("dut", "all", "DUTs to run on: all, or a comma-separated list of "+strings.Join(drill.DUTNames, ", "))
	matchFlag := fs.String("match", "strict", "packet matching: strict or semantic")
	pcapDir := fs.String("pcap", "", "write a pcap per script and DUT into this directory")
	verbose := fs.Bool("v", false, "print every run's trace, not only failures'")
	tolScale := fs.Float64("tolerance_scale", 1, "multiply scripts' timing tolerance on the linux DUT (real time) by this factor")
	pdRules := fs.Bool("packetdrill_rules", false, "match as google packetdrill does where it is looser: packets sent before a line that is not a `>` line wait for the next `>` line, leftovers at the end are noted, a `>` line aggregates its segments whatever their timing, the linux DUT's tolerance is at least --tolerance_percent of the time since the previous event")
	junitFile := fs.String("junit", "", "also write the results as JUnit XML to this file")
	jsonOut := fs.Bool("json", false, "print the results as JSON instead of text")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ustack drill [--dut all|%s[,...]] [--match strict|semantic] [--pcap DIR] [--tolerance_scale F] [--packetdrill_rules] [--junit FILE] [--json] [-v] FILE|DIR...\n", strings.Join(drill.DUTNames, "|"))
		fs.PrintDefaults()
	}
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	match, err := drill.ParseMatch(*matchFlag)
	if err != nil {
		fmt.Fprintf(stderr, "ustack drill: %v\n", err)
		return exitUsage
	}
	var duts []string
	if *dutFlag == "all" {
		duts = drill.DUTNames
	} else {
		for _, d := range strings.Split(*dutFlag, ",") {
			if !slices.Contains(drill.DUTNames, d) {
				fmt.Fprintf(stderr, "ustack drill: unknown DUT %q (want all or a comma-separated list of %s)\n", d, strings.Join(drill.DUTNames, ", "))
				return exitUsage
			}
			if slices.Contains(duts, d) {
				fmt.Fprintf(stderr, "ustack drill: DUT %q given twice\n", d)
				return exitUsage
			}
			duts = append(duts, d)
		}
	}
	if *tolScale <= 0 {
		fmt.Fprintf(stderr, "ustack drill: --tolerance_scale must be positive\n")
		return exitUsage
	}
	// The linux DUT needs a private network namespace: unless this process
	// is already the re-executed child inside one, run the whole command
	// again in a new one (each script then gets a namespace of its own
	// inside it). Without the privilege, `--dut all` shows linux as
	// skipped (a failure under USTACK_REQUIRE_NETNS=1); `--dut linux` fails.
	linuxSkip := ""
	if slices.Contains(duts, "linux") && os.Getenv(drillNetnsEnv) == "" {
		reason := drill.LinuxUnavailable()
		if reason == "" {
			st, err := reexecInNetns(args, stdout, stderr)
			if err == nil {
				return st
			}
			reason = "needs root or CAP_NET_ADMIN: " + err.Error()
		}
		if len(duts) == 1 {
			fmt.Fprintf(stderr, "ustack drill: linux DUT: %s\n", reason)
			return 1
		}
		linuxSkip = "skip: " + reason
	}
	paths, err := drill.Collect(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "ustack drill: %v\n", err)
		return 1
	}
	if len(paths) == 0 {
		fmt.Fprintf(stderr, "ustack drill: no scripts found\n")
		return 1
	}
	text := stdout
	if *jsonOut {
		text = io.Discard
	}
	results := map[string]map[string]drill.Result{}
	for _, p := range paths {
		results[p] = map[string]drill.Result{}
		s, err := drill.Load(p)
		for _, d := range duts {
			var r drill.Result
			switch {
			case err != nil:
				r = drill.Result{Script: p, DUT: d, Status: drill.Error, Detail: err.Error()}
			case d == "linux" && linuxSkip != "":
				r = drill.Result{Script: p, DUT: d, Status: drill.Skip, Detail: linuxSkip}
				if os.Getenv("USTACK_REQUIRE_NETNS") == "1" {
					r.Status, r.Detail = drill.Error, linuxSkip+" (and USTACK_REQUIRE_NETNS=1)"
				}
			default:
				r = runOne(s, d, drill.RunOptions{Match: match, ToleranceScale: *tolScale, PacketdrillRules: *pdRules}, *pcapDir)
			}
			results[p][d] = r
			drill.WriteResult(text, r, *verbose)
		}
	}
	ok := drill.WriteSummary(text, paths, duts, results)
	drill.WriteFolderSummary(text, paths, duts, results)
	if *jsonOut {
		if err := drill.WriteJSON(stdout, paths, duts, results); err != nil {
			fmt.Fprintf(stderr, "ustack drill: --json: %v\n", err)
			return 1
		}
	}
	if *junitFile != "" {
		f, err := os.Create(*junitFile)
		if err == nil {
			err = drill.WriteJUnit(f, paths, duts, results)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "ustack drill: --junit: %v\n", err)
			return 1
		}
	}
	if !ok {
		return 1
	}
	return 0
}

// drillNetnsEnv marks the re-executed `ustack drill` running in its own
// network namespace.
const drillNetnsEnv = "USTACK_DRILL_IN_NETNS"

// reexecInNetns runs `ustack drill ARGS` again in a new network namespace
// (CLONE_NEWNET; it vanishes with the child) and returns its exit status,
// or an error if the child could not be started there.
func reexecInNetns(args []string, stdout, stderr io.Writer) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, append([]string{"drill"}, args...)...)
	cmd.Env = append(os.Environ(), drillNetnsEnv+"=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 1, nil
	}
	return 0, nil
}

func runOne(s *drill.Script, dut string, o drill.RunOptions, pcapDir string) drill.Result {
	if pcapDir == "" {
		return drill.RunWith(s, dut, o)
	}
	name := strings.TrimSuffix(filepath.Base(s.Name), ".pkt") + "." + dut + ".pcap"
	f, err := os.Create(filepath.Join(pcapDir, name))
	if err != nil {
		return drill.Result{Script: s.Name, DUT: dut, Status: drill.Error, Detail: err.Error()}
	}
	o.Pcap = f
	r := drill.RunWith(s, dut, o)
	if err := f.Close(); err != nil && r.Status.OK() {
		r.Status, r.Detail = drill.Error, "pcap: "+err.Error()
	}
	return r
}
