// Package netnstest runs a Go test inside a fresh, private network
// namespace, so it can create TUN devices, addresses and routes without
// touching the machine's own network.
//
// Usage: make Enter the first statement of the test.
//
//	func TestPing(t *testing.T) {
//		if !netnstest.Enter(t) {
//			return
//		}
//		// From here on the test runs in its own network namespace,
//		// where only lo exists (and is up).
//	}
//
// Enter re-executes the test binary (-test.run=^TestPing$) in a child
// process created with CLONE_NEWNET, relays the child's output and result,
// and returns false in the parent; in the child it returns true. The whole
// child process lives in the namespace, so goroutines may do as they like;
// the namespace and everything in it vanish when the child exits.
//
// When the namespace cannot be had (not root, no /dev/net/tun, unshare not
// permitted) the test is skipped with the reason, or failed instead when the
// environment has USTACK_REQUIRE_NETNS=1 (as CI does).
package netnstest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

// Environment variables.
const (
	// RequireEnv, set to 1, turns every skip of this package into a failure.
	RequireEnv = "USTACK_REQUIRE_NETNS"
	// childEnv marks the re-executed child; its value is the test's name.
	childEnv = "USTACK_NETNS_CHILD"
)

// Required reports whether skips must be failures (USTACK_REQUIRE_NETNS=1).
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Unavailable skips the test with reason, or fails it when Required.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (and %s=1)", reason, RequireEnv)
	}
	t.Skip(reason)
}

// InChild reports whether this process is a namespace child made by Enter.
func InChild() bool { return os.Getenv(childEnv) != "" }

// Enter runs the calling test in a fresh network namespace: it returns true
// when the caller is already there (the child), and false after running
// the test in a child and reporting its outcome (the parent), in which case
// the caller must return at once.
func Enter(t *testing.T) bool {
	t.Helper()
	if InChild() {
		if err := loUp(); err != nil {
			t.Fatalf("netnstest: bringing lo up in the namespace: %v", err)
		}
		return true
	}
	if reason := prerequisites(); reason != "" {
		Unavailable(t, "netnstest: %s", reason)
		return false
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("netnstest: finding the test binary: %v", err)
	}
	args := []string{"-test.run=" + runPattern(t.Name()), "-test.v=true", "-test.count=1"}
	for _, name := range []string{"test.timeout", "test.short", "test.benchtime"} {
		if f := flag.Lookup(name); f != nil {
			args = append(args, "-"+name+"="+f.Value.String())
		}
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var start *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &start):
		// The child never ran: clone(CLONE_NEWNET) refused, typically EPERM.
		Unavailable(t, "netnstest: cannot start a process in a new network namespace: %v", err)
		return false
	case err != nil:
		t.Fatalf("netnstest: %s failed in its namespace (%v):\n%s", t.Name(), err, out.String())
		return false
	}
	if reason, skipped := skipReason(out.String(), t.Name()); skipped {
		t.Logf("child output:\n%s", out.String())
		Unavailable(t, "skipped in its namespace: %s", reason)
		return false
	}
	if !strings.Contains(out.String(), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("netnstest: %s did not run in its namespace (filtered out?):\n%s", t.Name(), out.String())
	}
	t.Logf("ran in a private network namespace; child output:\n%s", out.String())
	return false
}

// prerequisites returns why a namespace test cannot run here, or "".
func prerequisites() string {
	if os.Geteuid() != 0 {
		// Without root, CLONE_NEWNET needs CAP_SYS_ADMIN and TUN needs
		// CAP_NET_ADMIN; checking for root keeps the message simple.
		return "needs root (or CAP_SYS_ADMIN and CAP_NET_ADMIN) for a network namespace"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "no /dev/net/tun: load the tun module (" + err.Error() + ")"
	}
	return ""
}

// runPattern turns a test name ("TestA/sub_1") into a -test.run pattern
// matching exactly it.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// skipReason finds "--- SKIP: name" in verbose test output and returns the
// lines the test logged: go test -v prints them just before that line.
func skipReason(out, name string) (string, bool) {
	i := strings.Index(out, "--- SKIP: "+name+" ")
	if i < 0 {
		return "", false
	}
	lines := strings.Split(out[:i], "\n")
	lines = lines[:len(lines)-1] // the SKIP line's own indentation
	var reason []string
	for j := len(lines) - 1; j >= 0; j-- {
		l := strings.TrimSpace(lines[j])
		if !strings.HasPrefix(lines[j], " ") || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			break
		}
		reason = append([]string{l}, reason...)
	}
	return strings.Join(reason, "; "), true
}

// loUp brings the namespace's loopback interface up.
func loUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}
