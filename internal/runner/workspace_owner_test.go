package runner

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A workspace owned by root (a root runner's checkout) or by the person
// running the agent, not by the sandbox user: calls inside the sandbox
// write to it, and its owner keeps access to what the sandbox created.
func TestIntegrationWorkspaceNotOwnedBySandboxUser(t *testing.T) {
	e := newITEnv(t, time.Minute)
	for _, c := range []struct {
		name  string
		owner int
	}{{"owned by root", 0}, {"owned by the user", 4242}} {
		t.Run(c.name, func(t *testing.T) {
			ws, err := os.MkdirTemp("", "agentaudit-runner-owned-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(ws) })
			if err := os.Chmod(ws, 0o755); err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(ws, "existing.txt"), "old\n")
			mustWrite(t, filepath.Join(ws, "sub", "kept.txt"), "kept\n")
			filepath.Walk(ws, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, c.owner, c.owner) })
			s := e.open(t, ws)
			ctx := context.Background()
			res, err := s.Call(ctx, shell("echo new > new.txt && echo more >> existing.txt && mkdir -p made/deep && echo y > made/deep/f && echo z > sub/g && rm sub/kept.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if res.Exec.ExitCode != 0 {
				t.Fatalf("writes in the sandbox: exit %d: %s", res.Exec.ExitCode, res.Exec.Stderr.Data)
			}
			if _, err := s.Call(ctx, Call{Tool: ToolWriteFile, Path: "made/by-runner.txt", Content: []byte("r"), Raw: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(ws, "existing.txt")); string(b) != "old\nmore\n" {
				t.Errorf("existing.txt = %q", b)
			}
			var st syscall.Stat_t
			if err := syscall.Stat(ws, &st); err != nil || int(st.Uid) != c.owner {
				t.Errorf("the workspace changed hands: owner %d, want %d (%v)", st.Uid, c.owner, err)
			}
			if c.owner == 0 {
				return
			}
			// The owner, as itself, can still change what the sandbox made.
			cmd := exec.Command("sh", "-c", "echo owner >> made/deep/f && cat made/deep/f && touch made/owner-was-here")
			cmd.Dir = ws
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.owner), Gid: uint32(c.owner)}}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "y\nowner") {
				t.Errorf("the owner lost access to what the sandbox created: %v: %s", err, out)
			}
		})
	}
}
