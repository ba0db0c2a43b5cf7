package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// GrantWorkspace opens a tree to another user without changing owners,
// and keeps other users' entries; a second grant changes nothing.
func TestGrantWorkspaceACL(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (the runner grants as root); run the tests as make test does")
	}
	const sbx, other = 4243, 4244
	ws := t.TempDir()
	os.Chmod(ws, 0o755)
	if err := os.MkdirAll(filepath.Join(ws, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "d", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "run.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(ws, "link")); err != nil {
		t.Fatal(err)
	}
	// An entry someone else set stays.
	if err := addACL(filepath.Join(ws, "d", "f"), other, 4, false, -1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := GrantWorkspace(ws, sbx); err != nil {
			t.Fatal(err)
		}
	}
	named := func(p, name string) map[uint32]uint16 {
		es, err := getACL(p, name)
		if err != nil {
			t.Fatal(err)
		}
		m := map[uint32]uint16{}
		for _, e := range es {
			if e.tag == aclUser {
				m[e.id] = e.perm
			}
		}
		return m
	}
	for _, c := range []struct {
		path, xattr string
		want        map[uint32]uint16
	}{
		{ws, aclAccess, map[uint32]uint16{sbx: 7}},
		{ws, aclDefault, map[uint32]uint16{sbx: 7, 0: 7}},
		{filepath.Join(ws, "d"), aclDefault, map[uint32]uint16{sbx: 7, 0: 7}},
		{filepath.Join(ws, "d", "f"), aclAccess, map[uint32]uint16{sbx: 6, other: 4}},
		{filepath.Join(ws, "run.sh"), aclAccess, map[uint32]uint16{sbx: 7}},
	} {
		if diff := cmp.Diff(c.want, named(c.path, c.xattr)); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", c.path, c.xattr, diff)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(ws, "d", "f"), &st); err != nil || st.Uid != 0 {
		t.Errorf("owner changed: %d %v", st.Uid, err)
	}
	if es, _ := getACL(filepath.Join(ws, "link"), aclAccess); len(es) != 0 {
		t.Error("a symlink was followed or changed")
	}
	// The grantee, as itself, writes an existing file and creates new ones.
	cmd := exec.Command("sh", "-c", "echo y >> d/f && mkdir d/new && echo z > d/new/g")
	cmd.Dir = ws
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: sbx, Gid: sbx}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as %d: %v: %s", sbx, err, out)
	}
	// What it created is open to the workspace's owner through the
	// inherited entries (root needs none; the entry is what counts).
	if diff := cmp.Diff(map[uint32]uint16{sbx: 7, 0: 7}, named(filepath.Join(ws, "d", "new"), aclAccess)); diff != "" {
		t.Errorf("inherited entries (-want +got):\n%s", diff)
	}
}
