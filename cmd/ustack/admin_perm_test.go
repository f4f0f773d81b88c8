package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The admin socket is 0600 and ours; with --admin-group it is 0660 and
// that group's.
func TestAdminSocketMode(t *testing.T) {
	srv, _ := stackPair(t)
	own, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	require.NoError(t, err)
	for _, tc := range []struct {
		group string
		mode  os.FileMode
	}{{"", 0o600}, {own.Name, 0o660}} {
		path := filepath.Join(t.TempDir(), "a.sock")
		stop, err := startAdmin(srv, path, discardLogger(), adminOptions{group: tc.group})
		require.NoError(t, err)
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		assert.Equal(t, os.ModeSocket, fi.Mode().Type())
		assert.Equal(t, tc.mode, fi.Mode().Perm(), "group %q", tc.group)
		st := fi.Sys().(*syscall.Stat_t)
		assert.Equal(t, os.Geteuid(), int(st.Uid))
		assert.Equal(t, os.Getegid(), int(st.Gid))
		entries, _ := os.ReadDir(filepath.Dir(path))
		assert.Len(t, entries, 1, "only the socket: the private directory it was made in is gone")
		assert.Equal(t, "State Recv-Q Send-Q Local Address:Port Peer Address:Port\n", ssRun(t, "--admin", path))
		stop()
	}
}

// A directory others can write is refused, with the reason and the fix;
// so is an unknown group.
func TestAdminSocketRefusals(t *testing.T) {
	srv, _ := stackPair(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := startAdmin(srv, filepath.Join(dir, "a.sock"), discardLogger(), adminOptions{})
	require.ErrorContains(t, err, "is writable by others (mode 0777)")
	entries, _ := os.ReadDir(dir)
	assert.Empty(t, entries, "nothing created there")
	require.NoError(t, os.Chmod(dir, 0o700))

	_, err = startAdmin(srv, filepath.Join(dir, "a.sock"), discardLogger(), adminOptions{group: "no-such-group-ustack"})
	require.ErrorContains(t, err, "--admin-group no-such-group-ustack: no such group")

	var out, errb bytes.Buffer
	assert.Equal(t, exitUsage, run([]string{"serve", "--admin-group", "no-such-group-ustack"}, &out, &errb))
	assert.Contains(t, errb.String(), "no such group")
	errb.Reset()
	assert.Equal(t, exitUsage, run([]string{"serve", "--admin", "off", "--admin-group", "root"}, &out, &errb))
	assert.Contains(t, errb.String(), "--admin off: there is no socket to give it")
}

// adminChildEnv carries the socket path to TestAdminAccessChild.
const adminChildEnv = "USTACK_ADMIN_CHILD_SOCKET"

// TestAdminAccessChild is the child of TestAdminSocketAccess: it runs
// `ustack ss` on the socket under the credentials it was started with and
// prints the outcome.
func TestAdminAccessChild(t *testing.T) {
	path := os.Getenv(adminChildEnv)
	if path == "" {
		t.Skip("helper of TestAdminSocketAccess")
	}
	var out, errb bytes.Buffer
	rc := run([]string{"ss", "--admin", path}, &out, &errb)
	fmt.Printf("ADMIN-RESULT rc=%d %s%s\n", rc, strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()))
}

// An unprivileged user (nobody) cannot use the admin socket; with
// --admin-group, a process in that group can, and one outside it still
// cannot. Needs root, to start the children under other credentials.
func TestAdminSocketAccess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	nobody, err := user.LookupGroupId("65534")
	if err != nil {
		t.Skipf("no group with gid 65534: %v", err)
	}
	srv, _ := stackPair(t)
	// A directory nobody may enter: t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "ustack-admin-access-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	// The test binary's own directory is private too: the children run a
	// copy.
	self, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(dir, "ustack.test")
	src, err := os.Open(self)
	require.NoError(t, err)
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	src.Close()
	require.NoError(t, err)
	require.NoError(t, dst.Close())

	child := func(path string, gid uint32) string {
		cmd := exec.Command(bin, "-test.run=^TestAdminAccessChild$", "-test.count=1")
		cmd.Dir = dir
		cmd.Env = []string{adminChildEnv + "=" + path, "HOME=" + dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: gid, Groups: []uint32{}}}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		for _, l := range strings.Split(string(out), "\n") {
			if r, ok := strings.CutPrefix(l, "ADMIN-RESULT "); ok {
				return r
			}
		}
		t.Fatalf("child printed no result:\n%s", out)
		return ""
	}
	const denied = "rc=1 ustack ss: admin socket "
	const header = "rc=0 State Recv-Q Send-Q"

	path := filepath.Join(dir, "plain.sock")
	stop, err := startAdmin(srv, path, discardLogger(), adminOptions{})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(ssRun(t, "--admin", path), "State Recv-Q Send-Q"), "root, the owner, can")
	got := child(path, 65534)
	assert.True(t, strings.HasPrefix(got, denied) && strings.Contains(got, "permission denied"), "nobody on a 0600 socket: %s", got)
	stop()

	path = filepath.Join(dir, "group.sock")
	stop, err = startAdmin(srv, path, discardLogger(), adminOptions{group: nobody.Name})
	require.NoError(t, err)
	defer stop()
	got = child(path, 65534)
	assert.True(t, strings.HasPrefix(got, header), "in --admin-group %s: %s", nobody.Name, got)
	got = child(path, 65533)
	assert.True(t, strings.HasPrefix(got, denied) && strings.Contains(got, "permission denied"), "outside the group: %s", got)
}
