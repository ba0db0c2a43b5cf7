package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/hook"
	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// BenchmarkHookRoundTrip is an agent's PreToolUse as the hook binary
// makes it, on the real Kafka and Podman: the hook socket, the mapping,
// the policy, tool_call.requested and policy.decision acknowledged by
// Kafka, and the answer (no approval). Each iteration also sends the
// PostToolUse (tool_call.completed), untimed. Target: p50 ≤ 5 ms, p99 ≤ 20 ms.
func BenchmarkHookRoundTrip(b *testing.B) {
	brokers := testenv.Kafka(b)
	tp := eventlogtest.Topics(b, brokers)
	cfg := Config{
		KafkaBrokers: brokers, PodmanSocket: testenv.Podman(b), SandboxImage: testenv.Get(b, "SANDBOX_IMAGE"),
		RunnerID: "runner-hookbench-" + time.Now().Format("150405.000"), SpoolDir: b.TempDir(),
		TopicEvents: tp.Events, TopicApprovals: tp.Approvals, TopicDLQ: tp.DLQ,
		Supervisor: testenv.SupervisorBinary(b), SocketRoot: testenv.SocketRoot(b), PodmanUID: testenv.Get(b, "PODMAN_UID"),
	}
	ctx := context.Background()
	svc, err := Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close(ctx)
	ws, err := os.MkdirTemp("", "agentaudit-hookbench-ws-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(ws)
	os.Chmod(ws, 0o755)
	uid, _ := strconv.Atoi(testenv.Get(b, "PODMAN_UID"))
	if err := sandbox.PrepareWorkspace(ws, uid, uid); err != nil {
		b.Fatal(err)
	}
	s, err := svc.OpenSession(ctx, SessionOptions{Workspace: ws, Mode: "agent", Agent: AgentClaude,
		Client: &events.ClientInfo{Name: "claude-code", Version: agentVersion(AgentClaude)}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx, events.EndCompleted)
	// The benchmark is the hook binary's peer: it answers this process.
	dir := filepath.Join(b.TempDir(), "hooks")
	srv, err := hook.Listen(dir, -1, -1, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	if err := srv.SetPeer(os.Getpid()); err != nil {
		b.Fatal(err)
	}
	srv.Serve(s)
	sock := filepath.Join(dir, hook.SocketName)

	call := func(event string, i int, extra map[string]any) hook.Response {
		in := map[string]any{"session_id": "bench", "hook_event_name": event, "cwd": "/workspace", "tool_name": "Bash",
			"tool_input": map[string]any{"command": "ls -la src", "description": "list"}, "tool_use_id": fmt.Sprintf("toolu_bench_%d", i)}
		for k, v := range extra {
			in[k] = v
		}
		raw, _ := json.Marshal(in)
		resp, err := hook.Call(ctx, sock, hook.Request{Agent: AgentClaude, Event: event, Input: raw})
		if err != nil {
			b.Fatal(err)
		}
		return resp
	}
	var lat []time.Duration
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		resp := call("PreToolUse", i, nil)
		lat = append(lat, time.Since(start))
		if resp.ExitCode != 0 {
			b.Fatalf("PreToolUse refused: %+v", resp)
		}
		b.StopTimer()
		call("PostToolUse", i, map[string]any{"tool_response": map[string]any{"stdout": "total 0\n", "stderr": "", "interrupted": false}})
		b.StartTimer()
	}
	sort.Slice(lat, func(a, c int) bool { return lat[a] < lat[c] })
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	p50, p99 := q(0.5), q(0.99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	verdict := "meets"
	if p50 > 5*time.Millisecond || p99 > 20*time.Millisecond {
		verdict = "misses"
	}
	b.Logf("hook round trip over %d calls: p50 %v (target 5ms), p99 %v (target 20ms): %s the target", len(lat), p50, p99, verdict)
}

// TestHookSoak is a long agent session on the hook path, against the real
// Kafka and Podman: the live heap after HOOK_SOAK_CALLS (default 3,000)
// PreToolUse/PostToolUse pairs stays within the soak target.
func TestHookSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a soak; go test -short leaves it out")
	}
	brokers := testenv.Kafka(t)
	tp := eventlogtest.Topics(t, brokers)
	cfg := Config{
		KafkaBrokers: brokers, PodmanSocket: testenv.Podman(t), SandboxImage: testenv.Get(t, "SANDBOX_IMAGE"),
		RunnerID: "runner-hooksoak-" + time.Now().Format("150405.000"), SpoolDir: t.TempDir(),
		TopicEvents: tp.Events, TopicApprovals: tp.Approvals, TopicDLQ: tp.DLQ,
		Supervisor: testenv.SupervisorBinary(t), SocketRoot: testenv.SocketRoot(t), PodmanUID: testenv.Get(t, "PODMAN_UID"),
		Workspace: itWorkspace(t),
	}
	calls := 3000
	if n, err := strconv.Atoi(os.Getenv("HOOK_SOAK_CALLS")); err == nil && n > 0 {
		calls = n
	}
	var out strings.Builder
	rep, err := SoakHook(context.Background(), cfg, SoakOptions{Calls: calls, Samples: 5}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	if rep.Errors != 0 || !rep.Met() {
		t.Errorf("hook soak: %d errors (first %v), live heap growth %d bytes", rep.Errors, rep.FirstErr, rep.Growth())
	}
}
