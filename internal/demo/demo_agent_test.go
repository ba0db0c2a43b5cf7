package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestDemoAgent runs the demo with a real agent CLI (Codex, then Claude
// Code) in the sandbox after the MCP session, against the real services,
// and checks what its own tools did and that `query session` tells the
// story in order.
func TestDemoAgent(t *testing.T) {
	brokers := testenv.Kafka(t)
	testenv.ClickHouse(t)
	testenv.Podman(t)
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	env, err := testenv.Env()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "testenv", "agents", "node_modules")); err != nil {
		t.Fatalf("the pinned agent CLIs are not installed (%v): run make test-deps or testenv/up", err)
	}
	dir, err := os.MkdirTemp("", "aa-demo-agent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-tags", goTags, "-o", bin+"/", "./cmd/...")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	for _, agent := range []string{"codex", "claude"} {
		t.Run(agent, func(t *testing.T) {
			// Short: the session socket paths under it must fit in 108 bytes.
			run := filepath.Join(dir, agent[:2])
			if err := os.Mkdir(run, 0o755); err != nil {
				t.Fatal(err)
			}
			prefix := fmt.Sprintf("test-demo-agent-%s-%d", agent, time.Now().UnixNano())
			t.Cleanup(func() { deleteTopics(brokers, prefix) })
			listen, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			var out syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			res, err := Run(ctx, Config{Root: root, Dir: run, BinDir: bin, Prefix: prefix, ApproveListen: listen,
				Env: env, StepTimeout: 60 * time.Second, Out: &out, Agent: agent})
			if err != nil {
				// The error first and the long output after it: CI shows
				// the head and the tail of a failure, not its middle.
				t.Errorf("Run: %v", err)
				t.Logf("demo output:\n%s", out.String())
				t.Logf("agent log ends:\n%s", tail(filepath.Join(run, "logs", "agent-"+agent+".log"), 40))
				t.Fatalf("Run: %v", err)
			}
			a := res.Agent
			if a == nil || a.ExitCode != 0 || a.HookWritten || len(a.Results) != 4 {
				t.Fatalf("agent result %+v\n%s", a, out.String())
			}
			// The agent's session, in the order it happened.
			at := 0
			// The hook write is asked about and denied by the approver, or,
			// when detect's hold on its request wins the race, refused as
			// session_held before anyone is asked.
			hookWrite := []string{"ASK protected_path rule protected-path-writes", "DENY approval_denied rule protected-path-writes"}
			if a.HeldBeforeAsk {
				hookWrite = []string{"DENY session_held"}
			}
			t.Logf("detect held the session before the runner asked about the hook write: %v", a.HeldBeforeAsk)
			markers := append(append([]string{"session.started", "bash: git init", "ALLOW allowlisted rule sandboxed-shell", "egress DENY",
				"DENY denied_by_rule rule destroy-root"}, hookWrite...), "session.ended")
			for _, marker := range markers {
				i := strings.Index(a.Timeline[at:], marker)
				if i < 0 {
					t.Fatalf("query session %s: %q missing after position %d:\n%s", a.SessionID, marker, at, a.Timeline)
				}
				at += i + len(marker)
			}
			// The agent's own telemetry, on the same session: its prompt and
			// model calls with their tokens.
			for _, marker := range []string{"agent.prompt", "agent.model_call", "tokens in 100"} {
				if !strings.Contains(a.Timeline, marker) {
					t.Errorf("query session %s lacks the agent's own %q:\n%s", a.SessionID, marker, a.Timeline)
				}
			}
			// And in the reports: the tokens per agent and model, and the
			// prompt followed by the calls it led to, through the runner.
			name := map[string]string{"codex": "codex", "claude": "claude-code"}[agent]
			if !strings.Contains(a.Usage, ","+name+",") {
				t.Errorf("agent_usage has no row for %s:\n%s", name, a.Usage)
			}
			if !strings.Contains(a.Prompts, ",runner,") {
				t.Errorf("prompts_to_actions shows no call through the runner after a prompt:\n%s", a.Prompts)
			}
			if !strings.Contains(a.Timeline, "session.held") {
				t.Errorf("the agent's hook write did not hold the session:\n%s", a.Timeline)
			}
		})
	}
}
