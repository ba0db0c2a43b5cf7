package sandbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/supervisor"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// testRunner labels every container these tests start, so a crashed run's
// leftovers can be found and TestCleanupLeftovers has its own label.
var testRunner = fmt.Sprintf("sandbox-test-%d", os.Getpid())

var sessionSeq atomic.Int64

// tlog sends the client's log to t.
type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newClient(t testing.TB, opts ...sandbox.Option) *sandbox.Client {
	t.Helper()
	uri := testenv.Podman(t)
	image := testenv.Get(t, "SANDBOX_IMAGE")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uid, _ := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	base := []sandbox.Option{
		sandbox.WithImage(image),
		sandbox.WithSupervisor(sandbox.SupervisorConfig{
			Binary: testenv.SupervisorBinary(t), SocketRoot: testenv.SocketRoot(t), UID: uid, GID: uid}),
		sandbox.WithRunnerID(testRunner),
		sandbox.WithLogger(slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}
	c, err := sandbox.New(ctx, uri, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newWorkspace makes a workspace the Podman user owns: t.TempDir's parent
// is root's and mode 0700, so the workspace lives directly under /tmp.
func newWorkspace(t testing.TB, files map[string]string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agentaudit-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for name, body := range files {
		p := dir + "/" + name
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if i := strings.LastIndex(p, "/"); i > 0 {
			if err := os.MkdirAll(p[:i], 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	if err := sandbox.PrepareWorkspace(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startSession(t testing.TB, c *sandbox.Client, p *sandbox.Profile, ws string, opts ...sandbox.StartOption) *sandbox.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	id := fmt.Sprintf("test-%d-%d", os.Getpid(), sessionSeq.Add(1))
	opts = append([]sandbox.StartOption{sandbox.WithExecChecker(allowAll)}, opts...)
	s, err := c.Start(ctx, id, p, ws, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.Context(): it is cancelled before cleanups run.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close session: %v", err)
		}
	})
	return s
}

// run execs argv with a generous time-out and fails on an error.
func run(t testing.TB, s *sandbox.Session, argv ...string) sandbox.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := s.Exec(ctx, sandbox.ExecRequest{Argv: argv, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	return res
}

func sh(t testing.TB, s *sandbox.Session, script string) sandbox.ExecResult {
	t.Helper()
	return run(t, s, "bash", "-c", script)
}

func podmanCLI(t testing.TB) sandbox.PodmanCLI {
	t.Helper()
	cli, err := sandbox.PodmanCLIFor(testenv.Get(t, "PODMAN_USER"))
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// allowAll is the exec checker of tests that are about the container's
// confinement, not about policy.
var allowAll = supervisor.CheckerFunc(func(context.Context, *supervisor.Check) supervisor.Verdict {
	return supervisor.Verdict{Allow: true}
})
