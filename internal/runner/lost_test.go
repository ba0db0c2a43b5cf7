package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// TestIntegrationRunnerLost kills a `runner exec` with SIGKILL in the
// middle of its call and shows that nothing of the call runs on unobserved
// (the supervisor kills every process when the runner's socket closes),
// and that the next start of the same runner removes the sandbox and
// records the lost session's end and its dangling call on the dead
// runner's chain, which still verifies.
func TestIntegrationRunnerLost(t *testing.T) {
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "runner")
	build := exec.Command("go", "build", "-tags", "remote,containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper",
		"-o", bin, "./cmd/runner")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build runner: %v\n%s", err, out)
	}
	e := newITEnv(t, 5*time.Second)
	cfg := e.cfg
	cfg.RunnerID += "-lost"
	ws := itWorkspace(t)

	cmd := exec.Command(bin, "exec", "--workspace", ws, "--", "bash", "-c", "sleep 3; touch late.marker; sleep 30")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"KAFKA_BROKERS=" + strings.Join(cfg.KafkaBrokers, ","), "PODMAN_SOCKET=" + cfg.PodmanSocket,
		"SANDBOX_IMAGE=" + cfg.SandboxImage, "RUNNER_ID=" + cfg.RunnerID, "SPOOL_DIR=" + cfg.SpoolDir,
		"AUDIT_TOPIC_EVENTS=" + cfg.TopicEvents, "AUDIT_TOPIC_APPROVALS=" + cfg.TopicApprovals, "AUDIT_TOPIC_DLQ=" + cfg.TopicDLQ,
		"SANDBOX_SUPERVISOR=" + cfg.Supervisor, "SANDBOX_SOCKET_ROOT=" + cfg.SocketRoot, "PODMAN_UID=" + cfg.PodmanUID}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once its call is running: the sleep's exec was recorded.
	sessionID := waitForExec(t, e, "sleep")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	time.Sleep(4 * time.Second)
	if exists(ws, "late.marker") {
		t.Fatalf("the call ran on after its runner died\nrunner stderr:\n%s", stderr.String())
	}

	// The next start of the same runner closes the lost session.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Lost) != 1 || svc.Lost[0].SessionID != sessionID || len(svc.Lost[0].Dangling) != 1 {
		t.Fatalf("lost sessions %+v, want %s with one dangling call", svc.Lost, sessionID)
	}
	evs := sessionEvents(t, e.brokers, e.topics.Events, sessionID, 7)
	var tail []string
	for _, ev := range evs[len(evs)-2:] {
		p, _ := ev.DecodePayload()
		switch v := p.(type) {
		case *events.ToolCallCompleted:
			tail = append(tail, ev.EventType+":"+v.KilledReason)
		case *events.SessionEnded:
			tail = append(tail, ev.EventType+":"+v.Reason)
		default:
			tail = append(tail, ev.EventType)
		}
	}
	if diff := cmp.Diff([]string{"tool_call.completed:runner_lost", "session.ended:runner_lost"}, tail); diff != "" {
		t.Errorf("the lost session's last events (-want +got):\n%s", diff)
	}
	if err := events.VerifyChain(evs); err != nil {
		t.Errorf("chain after recovery: %v", err)
	}
	// A second start (after this one ends: one runner per id) finds
	// nothing left.
	svc.Close(context.Background())
	svc2, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close(context.Background())
	if len(svc2.Lost) != 0 {
		t.Errorf("second start found lost sessions again: %+v", svc2.Lost)
	}
}

// waitForExec waits for a process.exec whose argv[0] is prog and returns
// its session.
func waitForExec(t *testing.T, e *itEnv, prog string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range sessionEventsAll(t, e) {
			if ev.EventType != events.TypeProcessExec {
				continue
			}
			p, err := ev.DecodePayload()
			if err == nil && len(p.(*events.ProcessExec).Argv) > 0 && p.(*events.ProcessExec).Argv[0] == prog {
				return ev.SessionID
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no process.exec of %s appeared", prog)
	return ""
}

// sessionEventsAll reads every event on the test's topic so far.
func sessionEventsAll(t *testing.T, e *itEnv) []*events.Envelope {
	t.Helper()
	var out []*events.Envelope
	for _, evs := range readTopic(t, e, 2*time.Second) {
		out = append(out, evs...)
	}
	return out
}

// TestFaultSupervisorCrash kills the sandbox's supervisor (its PID 1) from
// the host in the middle of a call: the call fails at once, nothing it
// started runs on (EXITKILL and the PID namespace take every process with
// the supervisor), and the session ends as sandbox_failed with a
// supervisor violation, its chain intact.
func TestFaultSupervisorCrash(t *testing.T) {
	e := newITEnv(t, 5*time.Second)
	ws := itWorkspace(t)
	s := e.open(t, ws)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := s.Call(ctx, shell("sleep 2; touch crash.marker; sleep 30"))
		done <- err
	}()
	waitForExec(t, e, "sleep")
	pid := s.Sandbox().(*podmanSession).Raw().SupervisorPID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill supervisor (host pid %d): %v", pid, err)
	}
	t0 := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the call succeeded although its sandbox died")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not end after its supervisor died")
	}
	failedIn := time.Since(t0)
	time.Sleep(3 * time.Second)
	if exists(ws, "crash.marker") {
		t.Fatal("a process ran on after the supervisor died")
	}
	evs := sessionEvents(t, e.brokers, e.topics.Events, s.ID(), 8)
	var ended string
	violations := 0
	for _, ev := range evs {
		p, _ := ev.DecodePayload()
		switch v := p.(type) {
		case *events.SessionEnded:
			ended = v.Reason
		case *events.SandboxViolation:
			if v.Kind == events.ViolationSupervisor {
				violations++
			}
		}
	}
	if ended != events.EndSandboxFailed || violations == 0 {
		t.Errorf("session.ended %q with %d supervisor violations; want sandbox_failed and one", ended, violations)
	}
	if err := events.VerifyChain(evs); err != nil {
		t.Errorf("chain: %v", err)
	}
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.EventID] = true
	}
	faultreport.Record(t, faultreport.Case{
		Name: "sandbox supervisor killed mid-call", Package: "internal/runner",
		Produced: int64(len(evs)), Stored: int64(len(seen)), Duplicated: int64(len(evs) - len(seen)),
		Detail: fmt.Sprintf("kill -9 of the sandbox's PID 1; the call failed in %s, nothing it started ran on; session.ended sandbox_failed with a supervisor violation",
			failedIn.Round(time.Millisecond)),
	})
}
