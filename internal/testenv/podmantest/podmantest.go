// Package podmantest runs commands in a test's container with podman exec,
// for tests that check the sandbox from outside the supervisor.
package podmantest

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/containers/podman/v5/pkg/api/handlers"
	"github.com/containers/podman/v5/pkg/bindings/containers"
)

// Result is what a command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// Exec runs cmd in the container ctrID over the bindings connection conn
// and returns its output and exit code; any failure to run it fails the
// test. ExecStartAndAttach ignores context cancellation, so the test's
// time-out is what bounds it.
func Exec(t testing.TB, conn context.Context, ctrID string, cmd ...string) Result {
	t.Helper()
	cfg := new(handlers.ExecCreateConfig)
	cfg.Cmd = cmd
	cfg.AttachStdout = true
	cfg.AttachStderr = true
	id, err := containers.ExecCreate(conn, ctrID, cfg)
	if err != nil {
		t.Fatalf("exec create %q: %v", strings.Join(cmd, " "), err)
	}
	var stdout, stderr bytes.Buffer
	opts := new(containers.ExecStartAndAttachOptions).
		WithOutputStream(io.Writer(&stdout)).WithAttachOutput(true).
		WithErrorStream(io.Writer(&stderr)).WithAttachError(true)
	if err := containers.ExecStartAndAttach(conn, id, opts); err != nil {
		t.Fatalf("exec start %q: %v", strings.Join(cmd, " "), err)
	}
	insp, err := containers.ExecInspect(conn, id, nil)
	if err != nil {
		t.Fatalf("exec inspect: %v", err)
	}
	if insp.Running {
		t.Fatalf("exec %s still running after its output closed", id)
	}
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: insp.ExitCode}
}
