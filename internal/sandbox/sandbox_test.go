package sandbox_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/agentaudit/agentaudit/internal/sandbox"
)

func TestExecOutputAndExitCode(t *testing.T) {
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, map[string]string{"sub/hello.txt": "hi\n"}))

	tests := []struct {
		name string
		req  sandbox.ExecRequest
		want sandbox.ExecResult
	}{
		{"stdout stderr exit", sandbox.ExecRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}},
			sandbox.ExecResult{ExitCode: 3, Stdout: []byte("out\n"), Stderr: []byte("err\n")}},
		{"argv without a shell", sandbox.ExecRequest{Argv: []string{"echo", "a b", "$HOME"}},
			sandbox.ExecResult{Stdout: []byte("a b $HOME\n")}},
		{"cwd relative", sandbox.ExecRequest{Argv: []string{"cat", "hello.txt"}, Cwd: "sub"},
			sandbox.ExecResult{Stdout: []byte("hi\n")}},
		{"cwd absolute", sandbox.ExecRequest{Argv: []string{"pwd"}, Cwd: "/workspace/sub"},
			sandbox.ExecResult{Stdout: []byte("/workspace/sub\n")}},
		{"allowed env", sandbox.ExecRequest{Argv: []string{"sh", "-c", "echo $GIT_AUTHOR_NAME"}, Env: map[string]string{"GIT_AUTHOR_NAME": "Ada"}},
			sandbox.ExecResult{Stdout: []byte("Ada\n")}},
		{"stdin", sandbox.ExecRequest{Argv: []string{"wc", "-c"}, Stdin: []byte("12345")},
			sandbox.ExecResult{Stdout: []byte("5\n")}},
		{"command not found", sandbox.ExecRequest{Argv: []string{"no-such-command"}},
			sandbox.ExecResult{ExitCode: 127}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := s.Exec(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.StdoutLen, want.StderrLen = int64(len(want.Stdout)), int64(len(want.Stderr))
			want.StdoutSHA256, want.StderrSHA256 = sum(want.Stdout), sum(want.Stderr)
			ignore := cmpopts.IgnoreFields(sandbox.ExecResult{}, "Duration", "UserTime", "SystemTime", "MaxRSSKB")
			if tt.want.ExitCode == 127 {
				ignore = cmpopts.IgnoreFields(sandbox.ExecResult{}, "Duration", "UserTime", "SystemTime", "MaxRSSKB", "Stderr", "StderrLen", "StderrSHA256", "Stdout", "StdoutLen", "StdoutSHA256")
			}
			if diff := cmp.Diff(want, got, ignore, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("exec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExecRefusesBadRequests(t *testing.T) {
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil))
	tests := []struct {
		name   string
		req    sandbox.ExecRequest
		reason string
	}{
		{"empty argv", sandbox.ExecRequest{}, sandbox.ReasonInvalidArguments},
		{"cwd escapes", sandbox.ExecRequest{Argv: []string{"true"}, Cwd: "../etc"}, sandbox.ReasonPathOutsideWorkspace},
		{"cwd absolute outside", sandbox.ExecRequest{Argv: []string{"true"}, Cwd: "/etc"}, sandbox.ReasonPathOutsideWorkspace},
		{"cwd prefix trick", sandbox.ExecRequest{Argv: []string{"true"}, Cwd: "/workspace2"}, sandbox.ReasonPathOutsideWorkspace},
		{"env not allowed", sandbox.ExecRequest{Argv: []string{"true"}, Env: map[string]string{"LD_PRELOAD": "/tmp/x.so"}}, sandbox.ReasonInvalidArguments},
		{"timeout too long", sandbox.ExecRequest{Argv: []string{"true"}, Timeout: 24 * time.Hour}, sandbox.ReasonInvalidArguments},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Exec(context.Background(), tt.req)
			if !errors.Is(err, sandbox.ErrInvalidRequest) {
				t.Fatalf("err = %v; want ErrInvalidRequest", err)
			}
			if got := sandbox.ReasonOf(err); got != tt.reason {
				t.Errorf("reason = %q; want %q", got, tt.reason)
			}
		})
	}
}

func TestOutputCaps(t *testing.T) {
	p, err := sandbox.ParseProfile([]byte(strings.Replace(string(sandbox.DefaultProfileYAML()), "output_limit: 64KiB", "output_limit: 1KiB", 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t)
	s := startSession(t, c, p, newWorkspace(t, nil))
	// 1 MiB of a known pattern on stdout, 5000 bytes on stderr.
	res := sh(t, s, `python3 -c '
import sys
sys.stdout.write("0123456789abcdef" * 65536)
sys.stderr.write("e" * 5000)'`)
	full := []byte(strings.Repeat("0123456789abcdef", 65536))
	want := sandbox.ExecResult{
		Stdout: full[:1024], StdoutLen: int64(len(full)), StdoutSHA256: sum(full), StdoutTruncated: true,
		Stderr: []byte(strings.Repeat("e", 1024)), StderrLen: 5000, StderrSHA256: sum([]byte(strings.Repeat("e", 5000))), StderrTruncated: true,
	}
	if diff := cmp.Diff(want, res, cmpopts.IgnoreFields(sandbox.ExecResult{}, "Duration", "UserTime", "SystemTime", "MaxRSSKB")); diff != "" {
		t.Errorf("capped output (-want +got):\n%s", diff)
	}
}

func TestCloseRemovesContainer(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	s, err := c.Start(ctx, "test-close", sandbox.DefaultProfile(), newWorkspace(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := s.Exec(ctx, sandbox.ExecRequest{Argv: []string{"true"}}); !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("exec after close: err = %v; want ErrClosed", err)
	}
	cli := podmanCLI(t)
	out, err := cli.Command(ctx, "ps", "-a", "--filter", "id="+s.ContainerID(), "--format", "{{.ID}}").CombinedOutput()
	if err != nil {
		t.Fatalf("podman ps: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != "" {
		t.Errorf("container %s still listed after Close: %q", s.ContainerID(), out)
	}
}

func TestCleanupLeftovers(t *testing.T) {
	runner := testRunner + "-leftovers"
	c := newClient(t, sandbox.WithRunnerID(runner))
	other := newClient(t) // another runner's session must survive
	ctx := context.Background()
	ws := newWorkspace(t, nil)
	var want []sandbox.Leftover
	for i := 0; i < 2; i++ {
		s, err := c.Start(ctx, fmt.Sprintf("leftover-%d", i), sandbox.DefaultProfile(), ws, sandbox.WithExecChecker(allowAll))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, sandbox.Leftover{Name: s.Name(), Session: s.ID()})
	}
	keep := startSession(t, other, sandbox.DefaultProfile(), ws)

	got, err := c.CleanupLeftovers(ctx, runner)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b sandbox.Leftover) bool { return a.Name < b.Name })); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if res := run(t, keep, "true"); res.ExitCode != 0 {
		t.Errorf("another runner's session broke: exit %d", res.ExitCode)
	}
	again, err := c.CleanupLeftovers(ctx, runner)
	if err != nil || len(again) != 0 {
		t.Errorf("second cleanup = %v, %v; want nothing", again, err)
	}
}

func TestReadOnlyBindAndEnvOptions(t *testing.T) {
	c := newClient(t)
	extra := newWorkspace(t, map[string]string{"bridge": "#!/bin/sh\necho bridged\n"})
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil),
		sandbox.WithReadOnlyBind(extra, "/opt/agentaudit"),
		sandbox.WithEnv("AGENTAUDIT_PROXY", "/opt/agentaudit/sock"))
	res := sh(t, s, `cat /opt/agentaudit/bridge; echo "$AGENTAUDIT_PROXY"; touch /opt/agentaudit/x 2>/dev/null && echo writable || echo read-only`)
	if got, want := string(res.Stdout), "#!/bin/sh\necho bridged\n/opt/agentaudit/sock\nread-only\n"; got != want {
		t.Errorf("stdout = %q; want %q", got, want)
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
