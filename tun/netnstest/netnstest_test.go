package netnstest

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

func TestRunPattern(t *testing.T) {
	tests := []struct{ name, want string }{
		{"TestA", "^TestA$"},
		{"TestA/sub", "^TestA$/^sub$"},
		{"TestA/v6=true/x.y", `^TestA$/^v6=true$/^x\.y$`},
		{"TestA/(a|b)", `^TestA$/^\(a\|b\)$`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, runPattern(tt.name), tt.name)
	}
}

func TestSkipReason(t *testing.T) {
	tests := []struct {
		out, name, want string
		ok              bool
	}{
		{"=== RUN   TestX\n    x_test.go:9: no ping\n    x_test.go:10: really\n--- SKIP: TestX (0.00s)\nPASS\n", "TestX", "x_test.go:9: no ping; x_test.go:10: really", true},
		{"=== RUN   TestX\n=== RUN   TestX/a\n    x_test.go:9: no ping\n    --- SKIP: TestX/a (0.00s)\n", "TestX/a", "x_test.go:9: no ping", true},
		{"=== RUN   TestX\n--- SKIP: TestX (0.00s)\n", "TestX", "", true},
		{"--- PASS: TestX (0.00s)\n", "TestX", "", false},
		{"--- SKIP: TestXY (0.00s)\n", "TestX", "", false},
	}
	for _, tt := range tests {
		reason, ok := skipReason(tt.out, tt.name)
		assert.Equal(t, tt.ok, ok, tt.out)
		assert.Equal(t, tt.want, reason, tt.out)
	}
}

// TestPrivateNamespace checks the child sees a namespace of its own: only
// lo, and up.
func TestPrivateNamespace(t *testing.T) {
	if !Enter(t) {
		return
	}
	require.True(t, InChild())
	links, err := netlink.LinkList()
	require.NoError(t, err)
	require.Len(t, links, 1)
	assert.Equal(t, "lo", links[0].Attrs().Name)
	assert.NotZero(t, links[0].Attrs().RawFlags&1, "lo is up")
}

// TestHelperChild is run by TestOutcomes in a subprocess only.
func TestHelperChild(t *testing.T) {
	mode := os.Getenv("NETNSTEST_HELPER")
	if mode == "" {
		t.Skip("helper for TestOutcomes")
	}
	if !Enter(t) {
		return
	}
	switch mode {
	case "skip":
		t.Skip("nothing to do here")
	case "fail":
		t.Error("failing on purpose")
	}
}

// TestOutcomes runs TestHelperChild as a whole test binary and checks the
// child's pass, skip and failure come out in the parent.
func TestOutcomes(t *testing.T) {
	if InChild() {
		return
	}
	if prerequisites() != "" {
		Unavailable(t, "netnstest: %s", prerequisites())
		return
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	tests := []struct {
		mode, require string
		wantErr       bool
		want          string
	}{
		{"pass", "", false, "--- PASS: TestHelperChild"},
		{"skip", "", false, "--- SKIP: TestHelperChild"},
		{"skip", "1", true, "skipped in its namespace: netnstest_test.go:"},
		{"skip", "1", true, "nothing to do here (and USTACK_REQUIRE_NETNS=1)"},
		{"fail", "", true, "failing on purpose"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+tt.require, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^TestHelperChild$", "-test.v")
			cmd.Env = append(os.Environ(), "NETNSTEST_HELPER="+tt.mode, RequireEnv+"="+tt.require)
			out, err := cmd.CombinedOutput()
			assert.Equal(t, tt.wantErr, err != nil, "%s", out)
			assert.Contains(t, string(out), tt.want)
		})
	}
}
