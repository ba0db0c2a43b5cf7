package runner

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

func TestClaimRunnerID(t *testing.T) {
	dir := t.TempDir()
	a, id, err := claimRunnerID(dir, "runner-host", true)
	if err != nil || id != "runner-host" {
		t.Fatalf("first claim: %q %v", id, err)
	}
	b, id2, err := claimRunnerID(dir, "runner-host", true)
	if err != nil || id2 != "runner-host-2" {
		t.Fatalf("a defaulted id in use: got %q %v, want runner-host-2", id2, err)
	}
	if _, _, err := claimRunnerID(dir, "runner-host", false); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("an explicit id in use: %v, want a config error naming the holder", err)
	}
	a.Close()
	c, id3, err := claimRunnerID(dir, "runner-host", false)
	if err != nil || id3 != "runner-host" {
		t.Errorf("after its runner ended the id is free again: %q %v", id3, err)
	}
	b.Close()
	c.Close()
}

// Two runners started on one host with the default identity get distinct
// ids, and the second one's start-up cleanup leaves the first one's
// sandbox alone: its session goes on.
func TestIntegrationDefaultRunnerIDsDoNotCollide(t *testing.T) {
	brokers := testenv.Kafka(t)
	tp := eventlogtest.Topics(t, brokers)
	cfg := func() Config {
		return Config{
			KafkaBrokers: brokers, PodmanSocket: testenv.Podman(t), SandboxImage: testenv.Get(t, "SANDBOX_IMAGE"),
			SpoolDir: t.TempDir(), TopicEvents: tp.Events, TopicApprovals: tp.Approvals, TopicDLQ: tp.DLQ,
			Supervisor: testenv.SupervisorBinary(t), SocketRoot: testenv.SocketRoot(t), PodmanUID: testenv.Get(t, "PODMAN_UID"),
			NodeID: "7",
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := Open(ctx, cfg())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	ws, err := os.MkdirTemp("", "agentaudit-runnerid-ws-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(ws)
	os.Chmod(ws, 0o755)
	uid, _ := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	if err := sandbox.PrepareWorkspace(ws, uid, uid); err != nil {
		t.Fatal(err)
	}
	s, err := a.OpenSession(ctx, SessionOptions{Workspace: ws, Mode: "exec"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), events.EndCompleted)

	c := cfg()
	c.NodeID = "8"
	b, err := Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if a.RunnerID() == b.RunnerID() || !strings.HasPrefix(b.RunnerID(), "runner-") {
		t.Fatalf("runner ids %q and %q", a.RunnerID(), b.RunnerID())
	}
	res, err := s.Call(ctx, Call{Tool: ToolShell, Command: "echo still here", Raw: []byte(`{}`)})
	if err != nil || res.Exec == nil || !strings.Contains(string(res.Exec.Stdout.Data), "still here") {
		t.Fatalf("the first runner's session after the second started: %+v %v", res, err)
	}
}
