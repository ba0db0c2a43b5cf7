package sandbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// TestStartPID1AndEnv: PID 1 is the supervisor, it survives a timed-out
// exec, and WithEnv sets empty values as set-but-empty, which is what
// NO_PROXY= relies on.
func TestStartPID1AndEnv(t *testing.T) {
	c := newClient(t)
	ws := newWorkspace(t, nil)
	tests := []struct {
		name  string
		opts  []sandbox.StartOption
		extra string // what the env probe prints
	}{
		{"no extra env", nil, "NO_PROXY=unset FOO=unset"},
		{"extra env", []sandbox.StartOption{sandbox.WithEnv("NO_PROXY", ""), sandbox.WithEnv("FOO", "bar")},
			"NO_PROXY=set: FOO=set:bar"},
	}
	const probe = `tr '\0' '\n' </proc/1/cmdline | head -2 | paste -sd' '; ` +
		`for v in NO_PROXY FOO; do if printenv $v >/dev/null; then printf '%s=set:%s ' $v "$(printenv $v)"; else printf '%s=unset ' $v; fi; done`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSession(t, c, sandbox.DefaultProfile(), ws, tt.opts...)
			res := sh(t, s, probe)
			want := "/agentaudit/sandbox-supervisor --socket\n" + tt.extra + " "
			if got := string(res.Stdout); res.ExitCode != 0 || got != want {
				t.Errorf("probe: exit %d stdout %q stderr %q, want %q", res.ExitCode, got, res.Stderr, want)
			}
			// A timed-out exec is killed; PID 1 survives it.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := s.Exec(ctx, sandbox.ExecRequest{Argv: []string{"sleep", "30"}, Timeout: 300 * time.Millisecond})
			if err != nil || !r.TimedOut {
				t.Fatalf("timed-out exec: %+v, %v", r, err)
			}
			if res := sh(t, s, probe); string(res.Stdout) != want {
				t.Errorf("after a killed exec: %q, want %q", res.Stdout, want)
			}
		})
	}
}

func TestStartRejectsBadEnv(t *testing.T) {
	c := newClient(t)
	ws := newWorkspace(t, nil)
	for name, opt := range map[string]sandbox.StartOption{
		"NUL in value":    sandbox.WithEnv("FOO", "a\x00b"),
		"bad env name":    sandbox.WithEnv("1FOO", "x"),
		"relative egress": sandbox.WithEgressSocket("egress.sock"),
		"NUL in egress":   sandbox.WithEgressSocket("/a\x00b"),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := c.Start(ctx, "test-bad-start", sandbox.DefaultProfile(), ws, opt)
			if err == nil {
				s.Close(ctx)
				t.Fatal("started")
			}
			var se *sandbox.Error
			if !errors.As(err, &se) || se.Reason != sandbox.ReasonInvalidArguments {
				t.Errorf("err = %v, want reason invalid_arguments", err)
			}
		})
	}
}
