package detect

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/runner"
	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestRunnerHoldEndToEnd: a real runner session (Podman sandbox, Kafka)
// makes a call that fires a hold_session rule; the detect service holds
// the session, the runner denies the next call as session_held, and after
// a release the session goes on.
func TestRunnerHoldEndToEnd(t *testing.T) {
	e := newSvcEnv(t)
	svc := startService(t, e.config("g", "detect-hold"))
	svc.waitReady(t)

	ws, err := os.MkdirTemp("", "agentaudit-detect-ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	if err := os.Chmod(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	if err := sandbox.PrepareWorkspace(ws, uid, uid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rn, err := runner.Open(ctx, runner.Config{
		KafkaBrokers: e.brokers, PodmanSocket: testenv.Podman(t), SandboxImage: testenv.Get(t, "SANDBOX_IMAGE"),
		RunnerID: fmt.Sprintf("runner-detect-%d", time.Now().UnixNano()), Tenant: "acme", Operator: "alice",
		ApprovalTimeout: 2 * time.Second, SpoolDir: t.TempDir(), AckTimeout: 3 * time.Second,
		TopicEvents: e.topics.Events, TopicApprovals: e.topics.Approvals, TopicDLQ: e.topics.DLQ,
		Logger: e.config("", "").Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.Close(context.Background()) })
	s, err := rn.OpenSession(ctx, runner.SessionOptions{Workspace: ws, Mode: "mcp", Client: &events.ClientInfo{Name: "it-agent", Version: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), events.EndCompleted)

	if _, err := s.Call(ctx, runner.Call{Tool: runner.ToolShell, Command: "echo before"}); err != nil {
		t.Fatalf("first call: %v", err)
	}
	// Pointing git's hooks elsewhere fires persistence.git_hooks_write,
	// whose action is hold_session. Whatever the policy decides about the
	// call itself, its request is on the record and detection sees it.
	s.Call(ctx, runner.Call{Tool: runner.ToolShell, Command: "git config --global core.hooksPath /tmp/hooks"})
	waitFor(t, 60*time.Second, "the session to be held", s.Held)

	_, err = s.Call(ctx, runner.Call{Tool: runner.ToolShell, Command: "echo during"})
	if runner.ReasonOf(err) != events.ReasonSessionHeld {
		t.Fatalf("call while held: %v (reason %q), want session_held", err, runner.ReasonOf(err))
	}
	held := e.read(e.topics.Approvals, ofType(events.TypeSessionHeld), 1, time.Second)
	if p, _ := held[0].DecodePayload(); p.(*events.SessionHeld).RuleID != "persistence.git_hooks_write" || held[0].SessionID != s.ID() {
		t.Errorf("session.held %+v for %s", p, held[0].SessionID)
	}

	// An approver releases the session.
	ap, err := eventlog.NewProducer(ctx, e.brokers, "approvals-detect-it", eventlog.WithTopics(e.topics))
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close(context.Background())
	rel, err := events.New(events.SessionReleased{Reason: "reviewed: a test", By: events.Actor{Type: events.ActorHuman, ID: "bob"}},
		events.WithEventID(fmt.Sprint(7_200_000_000_000_000_000+time.Now().UnixNano()%1_000_000_000)), events.WithSession(s.ID(), ""),
		events.WithTenant("acme"), events.WithActor(events.ActorHuman, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ap.Emit(ctx, rel); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the session to be released", func() bool { return !s.Held() })
	res, err := s.Call(ctx, runner.Call{Tool: runner.ToolShell, Command: "echo after"})
	if err != nil || res.Exec == nil || res.Exec.ExitCode != 0 {
		t.Fatalf("call after release: %+v, %v", res, err)
	}
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
