package events

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var updateExamples = flag.Bool("update-examples", false, "rewrite schemas/examples from exampleChain")

const examplesDir = "../../schemas/examples"

// namedEvent is an example event and its file name.
type namedEvent struct {
	name string
	env  *Envelope
}

// exampleChain builds a realistic session: a runner's chain with a denied,
// an approved and a plain tool call, an approvals service's chain and a
// detector's chain, all in one session. Deterministic: fixed clock and ids.
func exampleChain(t testing.TB) []namedEvent {
	t.Helper()
	t0 := time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)
	now := t0
	tick := func(d time.Duration) time.Time { now = now.Add(d); return now }
	clock := func() time.Time { return now }
	ids := func(node int64) *IDGen {
		g, err := NewIDGen(node, WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	runnerIDs, approvalIDs, detectIDs := ids(17), ids(3), ids(9)
	const (
		tenant  = "acme"
		session = "sess-01JQ4Z8K7YV3F6R2M9TB5XH0DN"
		runner  = "runner-dev-eu1-7f3a"
		approvr = "approvals-eu1"
		detectr = "detect-eu1"
		policy  = "default-dev"
		trace   = "4bf92f3577b34da6a3ce929d0e0e4736"
	)
	policySHA := "9f2c1d0e8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c"
	chains := map[string]*Chain{}
	var out []namedEvent
	emit := func(name string, ids *IDGen, emitter string, p Payload, opts ...Option) *Envelope {
		t.Helper()
		base := []Option{WithIDs(ids), WithTime(tick(37 * time.Millisecond)), WithTenant(tenant), WithSession(session, emitter), WithTrace(trace)}
		env, err := New(p, append(base, opts...)...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if chains[emitter] == nil {
			chains[emitter] = NewChain(env.Key())
		}
		if err := chains[emitter].Stamp(env); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, namedEvent{name, env})
		return env
	}
	agent := []Option{WithActor(ActorAgent, "claude-code@dev-laptop-42"), WithAgent("claude-code", "1.0.31")}
	sys := []Option{WithActor(ActorSystem, runner)}
	n := uint64(0)
	cl := func(l uint64) *uint64 { n = l; return &n }

	emit("session.started", runnerIDs, runner, SessionStarted{
		Workspace: "/srv/agentaudit/workspaces/acme/payments-api", SandboxProfile: "default-dev",
		SandboxProfileSHA256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
		Image:                "localhost/agentaudit-sandbox:bookworm-2025.03", ImageID: "sha256:8f2d1c0b9a7e",
		Operator: "alice@acme.example", Mode: "mcp", Client: &ClientInfo{Name: "claude-code", Version: "1.0.31"}, RunnerVersion: "0.4.0",
	}, append(agent[1:], WithActor(ActorHuman, "alice@acme.example"))...)

	req := emit("tool_call.requested", runnerIDs, runner, ToolCallRequested{
		ToolName: "shell",
		Arguments: ToolArguments{
			Argv:    []string{"bash", "-lc", "go test ./internal/payments/... -run 'TestRefund|TestChargeback' -count=1 2>&1 | tail -n 50"},
			Command: "go test ./internal/payments/... -run 'TestRefund|TestChargeback' -count=1 2>&1 | tail -n 50",
			Cwd:     "/workspace", EnvKeys: []string{"GOFLAGS", "GOCACHE", "CGO_ENABLED"}, TimeoutMS: 120000,
		},
		ArgumentsSHA256: "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c",
	}, append(agent, WithToolCall("toolu_01A09q90qw90lq917835lq9"))...)
	emit("policy.decision", runnerIDs, runner, PolicyDecision{
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/go-test",
		Justification: "go test runs inside the sandbox without network", ApprovalMode: ApprovalModeNone, Risk: RiskLow, EvalMicros: 41,
	}, append(sys, WithToolCall("toolu_01A09q90qw90lq917835lq9"), WithParent(req.EventID), WithPolicy(policy, policySHA))...)
	goTest := append(sys, WithToolCall("toolu_01A09q90qw90lq917835lq9"), WithPolicy(policy, policySHA))
	sh := emit("process.exec", runnerIDs, runner, ProcessExec{
		PID: 2, PPID: 1, Argv: []string{"bash", "-lc", "go test ./internal/payments/... -run 'TestRefund|TestChargeback' -count=1 2>&1 | tail -n 50"},
		Exe: "/usr/bin/bash", Cwd: "/workspace", Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/go-test", Root: true,
	}, append(goTest, WithParent(req.EventID))...)
	gocmd := emit("process.exec.child", runnerIDs, runner, ProcessExec{
		PID: 3, PPID: 2, Argv: []string{"go", "test", "./internal/payments/...", "-run", "TestRefund|TestChargeback", "-count=1"},
		Exe: "/usr/local/go/bin/go", Cwd: "/workspace", Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/go-test",
	}, append(goTest, WithParent(sh.EventID))...)
	testBin := emit("process.exec.test-binary", runnerIDs, runner, ProcessExec{
		PID: 31, PPID: 3, Argv: []string{"/tmp/go-build2817/b001/payments.test", "-test.paniconexit0", "-test.timeout=10m0s", "-test.run=TestRefund|TestChargeback", "-test.count=1"},
		Exe: "/tmp/go-build2817/b001/payments.test", Cwd: "/workspace/internal/payments", Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/go-test-binary",
	}, append(goTest, WithParent(gocmd.EventID))...)
	pushArgv := []string{"git", "push", "origin", "HEAD:refs/heads/main"}
	denied := emit("process.exec.denied", runnerIDs, runner, ProcessExec{
		PID: 37, PPID: 31, Argv: pushArgv, Exe: "/usr/bin/git", Cwd: "/workspace/internal/payments",
		Decision: DecisionDeny, ReasonCode: ReasonDeniedByRule, RuleID: "exec/nested-git-push",
	}, append(goTest, WithParent(testBin.EventID))...)
	emit("sandbox.violation.exec", runnerIDs, runner, SandboxViolation{
		Kind: ViolationExec, Detail: "exec of /usr/bin/git (git push) from inside a test denied; the exec failed with EPERM", Path: "/usr/bin/git",
		ReasonCode: ReasonDeniedByRule, PID: 37, Argv: pushArgv,
	}, append(sys, WithToolCall("toolu_01A09q90qw90lq917835lq9"), WithParent(denied.EventID))...)
	emit("tool_call.completed", runnerIDs, runner, ToolCallCompleted{
		ExitCode: 1, DurationMS: 8421, Rusage: &ResourceUsage{UserMS: 14210, SystemMS: 2380, MaxRSSKB: 412288},
		Stdout: Output{Length: 1893, SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", Text: "--- FAIL: TestRefund/partial (0.02s)\n    refund_test.go:88: got 4999, want 5000\nFAIL\n", Truncated: true},
		Stderr: Output{Length: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}, append(sys, WithToolCall("toolu_01A09q90qw90lq917835lq9"), WithParent(req.EventID))...)

	push := emit("tool_call.requested.push", runnerIDs, runner, ToolCallRequested{
		ToolName:        "shell",
		Arguments:       ToolArguments{Argv: []string{"git", "push", "origin", "fix/refund-rounding"}, Cwd: "/workspace", TimeoutMS: 60000},
		ArgumentsSHA256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
	}, append(agent, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"))...)
	emit("policy.decision.ask", runnerIDs, runner, PolicyDecision{
		Decision: DecisionAsk, ReasonCode: ReasonNeedsApproval, RuleID: "deploy/git-push",
		Justification: "pushing code leaves the sandbox and needs a human", ApprovalMode: ApprovalModeRequired, Risk: RiskHigh, EvalMicros: 38,
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithParent(push.EventID), WithPolicy(policy, policySHA))...)
	apr := emit("approval.requested", runnerIDs, runner, ApprovalRequested{
		Kind: ApprovalKindToolCall, Summary: "git push origin fix/refund-rounding", Reason: "pushing code leaves the sandbox and needs a human",
		ReasonCode: ReasonNeedsApproval, RuleID: "deploy/git-push", Risk: RiskHigh,
		Requester: Actor{Type: ActorAgent, ID: "claude-code@dev-laptop-42"}, Scopes: []ApprovalScope{ScopeOnce, ScopeSession},
		ExpiresAt: At(now.Add(15 * time.Minute)), RequestEventID: push.EventID,
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithParent(push.EventID))...)
	tick(41 * time.Second)
	emit("approval.decided", approvalIDs, approvr, ApprovalDecided{
		Decision: ApprovalApproved, ReasonCode: ReasonApproved, Scope: ScopeOnce,
		Approver: Actor{Type: ActorHuman, ID: "bob@acme.example"}, Comment: "ok, branch only", DecidedAt: At(now),
		KeyID: "approvals-ed25519-2025-03",
		// Illustrative: internal/approvals defines the signed bytes.
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), []byte(apr.EventID+"|approved|once"))),
	}, WithActor(ActorHuman, "bob@acme.example"), WithApproval(apr.EventID), WithParent(apr.EventID), WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"))
	emit("policy.decision.approved", runnerIDs, runner, PolicyDecision{
		Decision: DecisionAllow, ReasonCode: ReasonApproved, RuleID: "deploy/git-push", ApprovalMode: ApprovalModeOnce, Risk: RiskHigh, EvalMicros: 12,
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithApproval(apr.EventID), WithParent(push.EventID), WithPolicy(policy, policySHA))...)
	gitPush := emit("process.exec.push", runnerIDs, runner, ProcessExec{
		PID: 2, PPID: 1, Argv: []string{"git", "push", "origin", "fix/refund-rounding"}, Exe: "/usr/bin/git", Cwd: "/workspace",
		Decision: DecisionAllow, ReasonCode: ReasonApproved, RuleID: "deploy/git-push", Root: true,
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithApproval(apr.EventID), WithParent(push.EventID), WithPolicy(policy, policySHA))...)
	emit("process.exec.push-helper", runnerIDs, runner, ProcessExec{
		PID: 3, PPID: 2, Argv: []string{"/usr/lib/git-core/git-remote-https", "origin", "https://git.acme.example/acme/payments-api.git"},
		Exe: "/usr/lib/git-core/git-remote-https", Cwd: "/workspace", Decision: DecisionAllow, ReasonCode: ReasonKnownSafe,
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithApproval(apr.EventID), WithParent(gitPush.EventID), WithPolicy(policy, policySHA))...)
	eg := emit("net.egress", runnerIDs, runner, NetEgress{
		Phase: PhaseDecision, Host: "git.acme.example", Port: 443, ResolvedIP: "203.0.113.10", Method: "CONNECT", SNI: "git.acme.example",
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "egress/acme-git",
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"))...)
	emit("net.egress.closed", runnerIDs, runner, NetEgress{
		Phase: PhaseClosed, Host: "git.acme.example", Port: 443, ResolvedIP: "203.0.113.10", Method: "CONNECT", SNI: "git.acme.example",
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "egress/acme-git", StatusCode: 200,
		BytesSent: 48213, BytesReceived: 9312, DurationMS: 1840,
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithParent(eg.EventID))...)
	emit("sandbox.violation.leftover", runnerIDs, runner, SandboxViolation{
		Kind: ViolationLeftover, Detail: "1 process left running by the call was killed when it ended", PID: 5,
		Argv: []string{"git", "credential-cache--daemon", "/tmp/.git-credential-cache/socket"}, Count: 1,
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithParent(gitPush.EventID))...)
	emit("tool_call.completed.push", runnerIDs, runner, ToolCallCompleted{
		ExitCode: 0, DurationMS: 2290, Rusage: &ResourceUsage{UserMS: 84, SystemMS: 31, MaxRSSKB: 18640}, LeftoversKilled: 1,
		Stdout: Output{Length: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		Stderr: Output{Length: 112, SHA256: "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7", Text: "To git.acme.example:acme/payments-api.git\n * [new branch]      fix/refund-rounding -> fix/refund-rounding\n"},
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithParent(push.EventID))...)

	cat := emit("tool_call.requested.write", runnerIDs, runner, ToolCallRequested{
		ToolName:        "write_file",
		Arguments:       ToolArguments{Path: "/workspace/../../home/alice/.ssh/authorized_keys", ContentLength: cl(402), ContentSHA256: "a591a6d40bf420404a011733cfb7b190d62c65bf0bcda32b57b277d9ad9f146e"},
		ArgumentsSHA256: "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce",
	}, append(agent, WithToolCall("toolu_01C3mq8r2t6y0u4i7o9p1a5sd"))...)
	emit("policy.decision.deny", runnerIDs, runner, PolicyDecision{
		Decision: DecisionDeny, ReasonCode: ReasonPathOutsideWorkspace, ApprovalMode: ApprovalModeNone, Risk: RiskCritical, EvalMicros: 9,
		Justification: "path resolves outside /workspace",
	}, append(sys, WithToolCall("toolu_01C3mq8r2t6y0u4i7o9p1a5sd"), WithParent(cat.EventID), WithPolicy(policy, policySHA))...)
	viol := emit("sandbox.violation", runnerIDs, runner, SandboxViolation{
		Kind: ViolationNetwork, Detail: "connect(2) to 169.254.169.254:80 refused: sandbox has no network", Syscall: "connect", ReasonCode: ReasonMetadataAddress,
	}, sys...)

	alert := emit("alert.raised", detectIDs, detectr, AlertRaised{
		RuleID: "sandbox/escape-attempts", RuleVersion: "3", Severity: SeverityHigh, GroupKey: session,
		Count: 2, Suppressed: 0, FirstSeen: At(cat.EventTime), LastSeen: At(viol.EventTime),
		MatchedEventIDs: []string{cat.EventID, viol.EventID},
		Message:         "path escape and metadata access in one session", Action: AlertHold,
	}, WithActor(ActorRule, "sandbox/escape-attempts"), WithParent(viol.EventID))
	held := emit("session.held", detectIDs, detectr, SessionHeld{
		Reason: "held by rule sandbox/escape-attempts", RuleID: "sandbox/escape-attempts", AlertEventID: alert.EventID,
		By: Actor{Type: ActorRule, ID: "sandbox/escape-attempts"},
	}, WithActor(ActorRule, "sandbox/escape-attempts"), WithParent(alert.EventID))
	tick(3 * time.Minute)
	emit("session.released", approvalIDs, approvr, SessionReleased{
		Reason: "reviewed: agent followed a prompt in a README; README fixed", HeldEventID: held.EventID,
		By: Actor{Type: ActorHuman, ID: "bob@acme.example"},
	}, WithActor(ActorHuman, "bob@acme.example"), WithParent(held.EventID))
	emit("session.ended", runnerIDs, runner, SessionEnded{
		Reason: EndCompleted, DurationMS: uint64(now.Sub(t0) / time.Millisecond),
		Counts: SessionCounts{ToolCalls: 3, Allowed: 2, Asked: 1, Denied: 1, ApprovalsGranted: 1, EgressAllowed: 1, Violations: 3, Execs: 6, ExecsDenied: 1},
	}, sys...)

	// A second session whose runner dies during a call: a call killed at
	// its time limit, a background process that outlived its call, then
	// a call that never completes. A later runner reads the session back,
	// resumes the dead runner's chain and records the lost call and the
	// session's end on it.
	const (
		lostSession = "sess-01JQ5B2W4N8R6T0Y3C7V9XK1MF"
		lostRunner  = "runner-dev-eu1-2b9c"
		laterRunner = "runner-dev-eu1-9d04"
		lostPolicy  = "default-dev"
	)
	lostIDs, laterIDs := ids(21), ids(22)
	emitIn := func(name string, ids *IDGen, sessionID, emitter string, p Payload, opts ...Option) *Envelope {
		t.Helper()
		base := []Option{WithIDs(ids), WithTime(tick(53 * time.Millisecond)), WithTenant(tenant), WithSession(sessionID, emitter)}
		env, err := New(p, append(base, opts...)...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		key := env.Key().String()
		if chains[key] == nil {
			chains[key] = NewChain(env.Key())
		}
		if err := chains[key].Stamp(env); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, namedEvent{name, env})
		return env
	}
	lostSys := []Option{WithActor(ActorSystem, lostRunner)}
	codex := []Option{WithActor(ActorAgent, "codex@ci-runner-7"), WithAgent("codex", "0.21.0")}
	tick(2 * time.Minute)
	lostStart := now
	emitIn("session.started.lost", lostIDs, lostSession, lostRunner, SessionStarted{
		Workspace: "/srv/agentaudit/workspaces/acme/ledger-c", SandboxProfile: "default-dev",
		SandboxProfileSHA256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
		Image:                "localhost/agentaudit-sandbox:bookworm-2025.03", Operator: "ci@acme.example", Mode: "exec", RunnerVersion: "0.5.0",
	}, WithActor(ActorHuman, "ci@acme.example"), WithAgent("codex", "0.21.0"))
	const slowCall = "call_7QmZ2xT9vB4nR8kD1sF6hJ3w"
	slow := emitIn("tool_call.requested.timeout", lostIDs, lostSession, lostRunner, ToolCallRequested{
		ToolName: "shell", Arguments: ToolArguments{Argv: []string{"make", "-j8", "test"}, Cwd: "/workspace", TimeoutMS: 60000},
		ArgumentsSHA256: "0263829989b6fd954f72baaf2fc64bc2e2f01d692d4de72986ea808f6e99813f",
	}, append(codex, WithToolCall(slowCall))...)
	emitIn("policy.decision.timeout", lostIDs, lostSession, lostRunner, PolicyDecision{
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/make", ApprovalMode: ApprovalModeNone, Risk: RiskLow, EvalMicros: 22,
	}, append(lostSys, WithToolCall(slowCall), WithParent(slow.EventID), WithPolicy(lostPolicy, policySHA))...)
	mk := emitIn("process.exec.timeout", lostIDs, lostSession, lostRunner, ProcessExec{
		PID: 2, PPID: 1, Argv: []string{"make", "-j8", "test"}, Exe: "/usr/bin/make", Cwd: "/workspace",
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/make", Root: true,
	}, append(lostSys, WithToolCall(slowCall), WithParent(slow.EventID), WithPolicy(lostPolicy, policySHA))...)
	emitIn("sandbox.violation.pids", lostIDs, lostSession, lostRunner, SandboxViolation{
		Kind: ViolationPids, Detail: "fork failed with EAGAIN: the sandbox's limit of 256 processes was reached", PID: 2,
		Argv: []string{"make", "-j8", "test"}, Count: 256,
	}, append(lostSys, WithToolCall(slowCall), WithParent(mk.EventID))...)
	emitIn("sandbox.violation.memory", lostIDs, lostSession, lostRunner, SandboxViolation{
		Kind: ViolationMemory, Detail: "cc1: out of memory allocating 268435456 bytes (address-space limit 2 GiB)", PID: 57,
		Argv: []string{"/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", "-quiet", "-O2", "src/parser.c", "-o", "/tmp/ccQ1x2.s"},
	}, append(lostSys, WithToolCall(slowCall), WithParent(mk.EventID))...)
	tick(60 * time.Second)
	emitIn("sandbox.violation.timeout", lostIDs, lostSession, lostRunner, SandboxViolation{
		Kind: ViolationTimeout, Detail: "the call exceeded its 60000 ms limit; its processes were killed with SIGKILL", PID: 2,
		Argv: []string{"make", "-j8", "test"}, Count: 14, ReasonCode: ReasonTimeout,
	}, append(lostSys, WithToolCall(slowCall), WithParent(mk.EventID))...)
	emitIn("tool_call.completed.timeout", lostIDs, lostSession, lostRunner, ToolCallCompleted{
		ExitCode: -1, DurationMS: 60004, TimedOut: true, KilledReason: KillTimeout, ReasonCode: ReasonTimeout, Signal: 9,
		Rusage: &ResourceUsage{UserMS: 201450, SystemMS: 18220, MaxRSSKB: 2096128},
		Stdout: Output{Length: 48213, SHA256: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb", Text: "cc -O2 -c src/lexer.c -o build/lexer.o\ncc -O2 -c src/parser.c -o build/parser.o\n", Truncated: true},
		Stderr: Output{Length: 77, SHA256: "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d", Text: "cc: fatal error: Killed signal terminated program cc1\ncompilation terminated.\n"},
	}, append(lostSys, WithToolCall(slowCall), WithParent(slow.EventID))...)
	emitIn("process.exec.background", lostIDs, lostSession, lostRunner, ProcessExec{
		PID: 41, PPID: 1, Argv: []string{"ccache", "--cleanup"}, Exe: "/usr/bin/ccache", Cwd: "/workspace",
		Decision: DecisionAllow, ReasonCode: ReasonKnownSafe, Background: true,
	}, append(lostSys, WithToolCall(slowCall), WithPolicy(lostPolicy, policySHA))...)
	const lostCall = "call_9LpX4cV7bN2mK5jH8gF1dS3a"
	lostReq := emitIn("tool_call.requested.lost", lostIDs, lostSession, lostRunner, ToolCallRequested{
		ToolName: "shell", Arguments: ToolArguments{Argv: []string{"make", "bench"}, Cwd: "/workspace", TimeoutMS: 300000},
		ArgumentsSHA256: "7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730",
		ClientMeta: &ClientMeta{CallID: lostCall, SessionID: "0199a213-81c0-7800-8aa1-bbab2a035a53",
			ThreadID: "0199a213-81c0-7800-8aa1-bbab2a035a53", TurnID: "0199a214-02d7-7c21-9a4e-3f1c5b2e8d10",
			Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}, append(codex, WithToolCall(lostCall))...)
	emitIn("policy.decision.lost", lostIDs, lostSession, lostRunner, PolicyDecision{
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/make", ApprovalMode: ApprovalModeNone, Risk: RiskLow, EvalMicros: 19,
	}, append(lostSys, WithToolCall(lostCall), WithParent(lostReq.EventID), WithPolicy(lostPolicy, policySHA))...)
	emitIn("process.exec.lost", lostIDs, lostSession, lostRunner, ProcessExec{
		PID: 88, PPID: 1, Argv: []string{"make", "bench"}, Exe: "/usr/bin/make", Cwd: "/workspace",
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/make", Root: true,
	}, append(lostSys, WithToolCall(lostCall), WithParent(lostReq.EventID), WithPolicy(lostPolicy, policySHA))...)
	// The runner dies here. A later runner finds the sandbox without it,
	// reads the session back and continues the dead runner's chain from
	// its tip (Producer.Resume does this for a producer).
	k := ChainKey{SessionID: lostSession, RunnerID: lostRunner}
	seq, hash := chains[k.String()].Head()
	chains[k.String()] = ResumeChain(k, seq, hash)
	tick(7 * time.Minute)
	later := []Option{WithActor(ActorSystem, laterRunner)}
	emitIn("tool_call.completed.lost", laterIDs, lostSession, lostRunner, ToolCallCompleted{
		ExitCode: -1, DurationMS: 0, KilledReason: KillRunnerLost, ReasonCode: ReasonSandboxError,
		Error:  "runner runner-dev-eu1-2b9c died during the call; its outcome is unknown",
		Stdout: Output{SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		Stderr: Output{SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}, append(later, WithToolCall(lostCall), WithParent(lostReq.EventID))...)
	emitIn("session.ended.lost", laterIDs, lostSession, lostRunner, SessionEnded{
		Reason: EndRunnerLost, DurationMS: uint64(now.Sub(lostStart) / time.Millisecond),
		Counts: SessionCounts{ToolCalls: 2, Allowed: 2, Violations: 3, Execs: 3},
		Error:  "runner runner-dev-eu1-2b9c lost: its sandbox was found without it by runner-dev-eu1-9d04",
	}, later...)

	// A third session whose sandbox supervisor dies: the sandbox's
	// processes die with it (fail closed) and the session fails.
	const (
		failedSession = "sess-01JQ5C8H2K6P0S4V7X1Z3B5DNR"
		failedRunner  = "runner-dev-eu1-5e1d"
		failedCall    = "call_3TgY6uJ1kL9oP2aS5dF8hK4z"
	)
	failedIDs := ids(23)
	failedSys := []Option{WithActor(ActorSystem, failedRunner)}
	tick(time.Minute)
	failedStart := now
	emitIn("session.started.failed", failedIDs, failedSession, failedRunner, SessionStarted{
		Workspace: "/srv/agentaudit/workspaces/acme/ingest-rs", SandboxProfile: "default-dev",
		SandboxProfileSHA256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
		Image:                "localhost/agentaudit-sandbox:bookworm-2025.03", Operator: "alice@acme.example", Mode: "mcp", RunnerVersion: "0.5.0",
	}, WithActor(ActorHuman, "alice@acme.example"), WithAgent("claude-code", "1.0.31"))
	build := emitIn("tool_call.requested.failed", failedIDs, failedSession, failedRunner, ToolCallRequested{
		ToolName: "shell", Arguments: ToolArguments{Argv: []string{"cargo", "build", "--release"}, Cwd: "/workspace", TimeoutMS: 600000},
		ArgumentsSHA256: "9b74c9897bac770ffc029102a200c5de4f0f1e0e6e0d0b1b1b7e5a8a7f0c1d2e",
		ClientMeta:      &ClientMeta{ToolUseID: "toolu_01Q7mZk3Xw8Yb2Vc5Nd9Hf4J"},
	}, append(agent, WithToolCall(failedCall))...)
	emitIn("policy.decision.failed", failedIDs, failedSession, failedRunner, PolicyDecision{
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/cargo", ApprovalMode: ApprovalModeNone, Risk: RiskLow, EvalMicros: 17,
	}, append(failedSys, WithToolCall(failedCall), WithParent(build.EventID), WithPolicy(policy, policySHA))...)
	cargo := emitIn("process.exec.failed", failedIDs, failedSession, failedRunner, ProcessExec{
		PID: 2, PPID: 1, Argv: []string{"cargo", "build", "--release"}, Exe: "/usr/local/cargo/bin/cargo", Cwd: "/workspace",
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/cargo", Root: true,
	}, append(failedSys, WithToolCall(failedCall), WithParent(build.EventID), WithPolicy(policy, policySHA))...)
	tick(12 * time.Second)
	emitIn("sandbox.violation.supervisor", failedIDs, failedSession, failedRunner, SandboxViolation{
		Kind: ViolationSupervisor, Detail: "the sandbox supervisor (PID 1) was killed by SIGSEGV; the sandbox's processes died with it",
		Count: 9, ReasonCode: ReasonSandboxError,
	}, append(failedSys, WithToolCall(failedCall), WithParent(cargo.EventID))...)
	emitIn("tool_call.completed.failed", failedIDs, failedSession, failedRunner, ToolCallCompleted{
		ExitCode: -1, DurationMS: 12018, ReasonCode: ReasonSandboxError, Signal: 9, Error: "sandbox supervisor died",
		Stdout: Output{Length: 312, SHA256: "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c", Text: "   Compiling serde v1.0.219\n   Compiling tokio v1.44.1\n", Truncated: true},
		Stderr: Output{SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}, append(failedSys, WithToolCall(failedCall), WithParent(build.EventID))...)
	emitIn("session.ended.failed", failedIDs, failedSession, failedRunner, SessionEnded{
		Reason: EndSandboxFailed, DurationMS: uint64(now.Sub(failedStart) / time.Millisecond),
		Counts: SessionCounts{ToolCalls: 1, Allowed: 1, Violations: 1, Execs: 1},
		Error:  "sandbox supervisor died",
	}, failedSys...)

	// A developer's Claude Code and a Codex run export their own telemetry
	// to a standalone OTLP receiver (ingest otlp): one chain per agent
	// session on the receiver's emitter id.
	const (
		otlpEmitter  = "otlp-eu1-2k9f8x"
		claudeSess   = "0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
		codexConv    = "0199a213-81c0-7800-8aa1-bbab2a035a53"
		claudePrompt = "6b1f0c52-3e6d-4f2a-9b8c-1d2e3f4a5b6c"
		claudeUse    = "toolu_01Q7mZk3Xw8Yb2Vc5Nd9Hf4J"
		codexCall    = "call_7QmZ2xT9vB4nR8kD1sF6hJ3w"
	)
	otlpIDs := ids(29)
	tick(time.Minute)
	claude := []Option{WithActor(ActorAgent, "claude-code"), WithAgent("claude-code", "2.1.197")}
	cdx := []Option{WithActor(ActorAgent, "codex"), WithAgent("codex", "0.169.1")}
	emitIn("agent.prompt", otlpIDs, claudeSess, otlpEmitter, AgentPrompt{
		Source: AgentSourceClaudeCode, EventName: "claude_code.user_prompt", ConversationID: claudeSess, PromptID: claudePrompt,
		Sequence: 1, Operator: "alice@acme.example", Length: 41,
		Text: &AgentText{Mode: TextHash, Length: 41, SHA256: "a3f5c2e1b0d9f8e7c6b5a4938271605f4e3d2c1b0a9f8e7d6c5b4a3928170605"},
	}, claude...)
	emitIn("agent.model_call", otlpIDs, claudeSess, otlpEmitter, AgentModelCall{
		Source: AgentSourceClaudeCode, EventName: "claude_code.api_request", ConversationID: claudeSess, PromptID: claudePrompt,
		Sequence: 2, Operator: "alice@acme.example", Kind: ModelCallCall, Model: "claude-sonnet-4-5",
		InputTokens: 5120, OutputTokens: 312, CacheReadTokens: 4096, CacheCreationTokens: 256, CostMicroUSD: 21840, DurationMS: 1840,
	}, claude...)
	emitIn("agent.response", otlpIDs, claudeSess, otlpEmitter, AgentResponse{
		Source: AgentSourceClaudeCode, EventName: "claude_code.assistant_response", ConversationID: claudeSess, PromptID: claudePrompt,
		Sequence: 3, Operator: "alice@acme.example", Model: "claude-sonnet-4-5", Length: 58,
		Text: &AgentText{Mode: TextStore, Length: 58, SHA256: "5d41402abc4b2a76b9719d911017c592ae2f1e0d3c4b5a69788796a5b4c3d2e1",
			Text: "I will run the tests with GITHUB_TOKEN=[REDACTED:github_token].", Redactions: 1},
	}, claude...)
	emitIn("agent.tool_decision", otlpIDs, claudeSess, otlpEmitter, AgentToolDecision{
		Source: AgentSourceClaudeCode, EventName: "claude_code.tool_decision", ConversationID: claudeSess, PromptID: claudePrompt,
		Sequence: 4, Operator: "alice@acme.example", ToolName: "Bash", CallID: claudeUse, Decision: "accept", Verdict: VerdictAllow,
		DecisionSource: "user_temporary", Command: "git push origin main",
		Policy: &AgentPolicy{Decision: DecisionAsk, ReasonCode: ReasonNeedsApproval, RuleID: "deploy/git-push", PolicyID: policy, PolicySHA256: policySHA},
	}, append(claude, WithToolCall(failedCall))...)
	emitIn("agent.tool_result", otlpIDs, claudeSess, otlpEmitter, AgentToolResult{
		Source: AgentSourceClaudeCode, EventName: "claude_code.tool_result", ConversationID: claudeSess, PromptID: claudePrompt,
		Sequence: 5, Operator: "alice@acme.example", ToolName: "Bash", CallID: claudeUse, Success: false, DurationMS: 2210,
		Decision: "accept", DecisionSource: "user_temporary", Command: "git push origin main",
		Arguments: &AgentText{Mode: TextHash, Length: 44, SHA256: "e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"},
		Error:     "remote: Permission to acme/payments-api.git denied",
		Policy:    &AgentPolicy{Decision: DecisionAsk, ReasonCode: ReasonNeedsApproval, RuleID: "deploy/git-push", PolicyID: policy, PolicySHA256: policySHA},
	}, append(claude, WithToolCall(failedCall))...)
	emitIn("agent.other", otlpIDs, claudeSess, otlpEmitter, AgentOther{
		Source: AgentSourceClaudeCode, EventName: "claude_code.mcp_server_connection", ConversationID: claudeSess,
		Sequence: 6, Operator: "alice@acme.example",
		Attributes: []string{"server_name=agentaudit", "status=connected", "transport_type=stdio"},
	}, claude...)
	emitIn("agent.session", otlpIDs, codexConv, otlpEmitter, AgentSession{
		Source: AgentSourceCodex, EventName: "codex.conversation_starts", ConversationID: codexConv, Operator: "ci@acme.example",
		Model: "gpt-5.5", Provider: "openai", ApprovalPolicy: "never", SandboxPolicy: "danger-full-access",
		Originator: "codex_exec", MCPServers: []string{"agentaudit"},
	}, cdx...)
	emitIn("agent.prompt.codex", otlpIDs, codexConv, otlpEmitter, AgentPrompt{
		Source: AgentSourceCodex, EventName: "codex.user_prompt", ConversationID: codexConv, Operator: "ci@acme.example", Length: 27,
		Text: &AgentText{Mode: TextDrop, Length: 27},
	}, cdx...)
	emitIn("agent.model_call.request", otlpIDs, codexConv, otlpEmitter, AgentModelCall{
		Source: AgentSourceCodex, EventName: "codex.api_request", ConversationID: codexConv, Operator: "ci@acme.example",
		Kind: ModelCallRequest, Model: "gpt-5.5", DurationMS: 912, Status: "200", Endpoint: "/v1/responses", Attempt: 1,
	}, cdx...)
	emitIn("agent.model_call.usage", otlpIDs, codexConv, otlpEmitter, AgentModelCall{
		Source: AgentSourceCodex, EventName: "codex.sse_event", ConversationID: codexConv, Operator: "ci@acme.example",
		Kind: ModelCallUsage, Model: "gpt-5.5", InputTokens: 8214, OutputTokens: 655, CacheReadTokens: 7040, ReasoningTokens: 448, ToolTokens: 120,
	}, cdx...)
	emitIn("agent.tool_result.codex", otlpIDs, codexConv, otlpEmitter, AgentToolResult{
		Source: AgentSourceCodex, EventName: "codex.tool_result", ConversationID: codexConv, Operator: "ci@acme.example",
		ToolName: "exec_command", CallID: codexCall, Success: true, DurationMS: 61012, Command: "make -j8 test",
		Arguments: &AgentText{Mode: TextStore, Length: 26, SHA256: "0263829989b6fd954f72baaf2fc64bc2e2f01d692d4de72986ea808f6e99813f", Text: "{\"cmd\":\"make -j8 test\"}"},
		Output:    &AgentText{Mode: TextHash, Length: 48213, SHA256: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"},
		Policy:    &AgentPolicy{Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools/make", PolicyID: policy, PolicySHA256: policySHA},
	}, append(cdx, WithToolCall(slowCall))...)

	// A write the policy asks about carries a preview of the content and
	// its diff against the file it would replace, so the approver sees it.
	const (
		writeSession = "sess-01JQ5B2W9N4K7H3D6F8R1T0YXC"
		writeCall    = "toolu_01W4rT8yU2iO6pA9sD3fG7hJ5k"
	)
	writeIDs := ids(31)
	writeReq := emitIn("tool_call.requested.preview", writeIDs, writeSession, runner, ToolCallRequested{
		ToolName: "write_file", Arguments: ToolArguments{Path: "/workspace/.github/workflows/ci.yml", Cwd: "/workspace",
			ContentLength: cl(61), ContentSHA256: "3b9c358f36f0a31b4c0e6f4e8c6d2a1b0f9e8d7c6b5a49382716051f4e3d2c1b"},
		ArgumentsSHA256: "8e1f0a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7",
	}, append(agent, WithToolCall(writeCall))...)
	emitIn("approval.requested.write", writeIDs, writeSession, runner, ApprovalRequested{
		Kind: ApprovalKindToolCall, Summary: "write_file /workspace/.github/workflows/ci.yml (61 bytes)",
		Reason: "CI configuration runs with the repository's secrets", ReasonCode: ReasonNeedsApproval,
		RuleID: "protected/ci-config", Risk: RiskHigh, Requester: Actor{Type: ActorHuman, ID: "alice@acme.example"},
		Scopes: []ApprovalScope{ScopeOnce}, ExpiresAt: At(now.Add(15 * time.Minute)), RequestEventID: writeReq.EventID,
		Preview: &WritePreview{Path: "/workspace/.github/workflows/ci.yml", ContentLength: 61,
			ContentSHA256: "3b9c358f36f0a31b4c0e6f4e8c6d2a1b0f9e8d7c6b5a49382716051f4e3d2c1b",
			Content:       "on: push\njobs:\n  test:\n    env: {TOKEN: \"[REDACTED:assignment]\"}\n",
			Diff: "--- a/workspace/.github/workflows/ci.yml\n+++ b/workspace/.github/workflows/ci.yml\n@@ -1,3 +1,4 @@\n" +
				" on: push\n jobs:\n   test:\n+    env: {TOKEN: \"[REDACTED:assignment]\"}\n",
			Redacted: 1},
	}, append(sys, WithToolCall(writeCall), WithParent(writeReq.EventID))...)

	// Analysts triage the escape alert through the approvals service (a
	// later process of it, so a chain of its own): acknowledge, assign,
	// judge; and suppress a noisy rule for one agent for a day, then lift it.
	const (
		triageEmitter = "approvals-eu1-k3x9a"
		noisyRule     = "egress/new-destination"
	)
	triageIDs := ids(5)
	illustrative := func(s string) string {
		// Illustrative: internal/approvals defines the signed bytes.
		return base64.StdEncoding.EncodeToString(ed25519.Sign(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), []byte(s)))
	}
	bob := Actor{Type: ActorHuman, ID: "bob@acme.example"}
	carol := Actor{Type: ActorHuman, ID: "carol@acme.example"}
	tick(4 * time.Minute)
	emitIn("alert.triaged", triageIDs, session, triageEmitter, AlertTriaged{
		Action: TriageAcknowledge, AlertEventID: alert.EventID, RuleID: "sandbox/escape-attempts", By: bob,
		TriagedAt: At(now), KeyID: "approvals-ed25519-2025-03", Signature: illustrative(alert.EventID + "|acknowledge"),
	}, WithActor(ActorHuman, bob.ID), WithParent(alert.EventID))
	tick(30 * time.Second)
	emitIn("alert.triaged.assign", triageIDs, session, triageEmitter, AlertTriaged{
		Action: TriageAssign, AlertEventID: alert.EventID, RuleID: "sandbox/escape-attempts", Assignee: "carol@acme.example", By: bob,
		TriagedAt: At(now), KeyID: "approvals-ed25519-2025-03", Signature: illustrative(alert.EventID + "|assign"),
	}, WithActor(ActorHuman, bob.ID), WithParent(alert.EventID))
	tick(9 * time.Minute)
	emitIn("alert.triaged.false_positive", triageIDs, session, triageEmitter, AlertTriaged{
		Action: TriageFalsePositive, AlertEventID: alert.EventID, RuleID: "sandbox/escape-attempts", By: carol,
		Comment:   "the metadata probe was the SDK's region lookup; the path escape was denied by policy",
		TriagedAt: At(now), KeyID: "approvals-ed25519-2025-03", Signature: illustrative(alert.EventID + "|false_positive"),
	}, WithActor(ActorHuman, carol.ID), WithParent(alert.EventID))
	tick(time.Minute)
	sup := emitIn("rule.suppressed", triageIDs, "triage/"+noisyRule, triageEmitter, RuleSuppressed{
		RuleID: noisyRule, Scope: SuppressionScope{Kind: SuppressAgent, Value: "claude-code"},
		ExpiresAt: At(now.Add(24 * time.Hour)), Comment: "new package mirror rollout; every agent fetches from it today",
		By: carol, SuppressedAt: At(now), KeyID: "approvals-ed25519-2025-03", Signature: illustrative(noisyRule + "|agent|claude-code"),
	}, WithActor(ActorHuman, carol.ID))
	tick(3 * time.Hour)
	emitIn("rule.unsuppressed", triageIDs, "triage/"+noisyRule, triageEmitter, RuleUnsuppressed{
		SuppressionEventID: sup.EventID, RuleID: noisyRule, Comment: "rollout done", By: carol,
		UnsuppressedAt: At(now), KeyID: "approvals-ed25519-2025-03", Signature: illustrative(sup.EventID + "|unsuppress"),
	}, WithActor(ActorHuman, carol.ID), WithParent(sup.EventID))
	return out
}

// invalidExample is one mutation of a valid example that must fail with
// exactly one error. keyword is what a plain JSON Schema validator reports;
// code is what Decode reports (the keyword unless a check before the schema
// catches it).
type invalidExample struct {
	File    string `json:"-"`
	From    string `json:"from"`
	Pointer string `json:"pointer"`
	Keyword string `json:"keyword"`
	Code    string `json:"code"`
	Why     string `json:"description"`
	set     any
	del     bool
}

func invalidExamples() []invalidExample {
	return []invalidExample{
		{File: "exit-code-string", From: "tool_call.completed", Pointer: "/payload/exit_code", Keyword: "type", set: "1", Why: "exit_code is an integer"},
		{File: "missing-arguments-sha256", From: "tool_call.requested", Pointer: "/payload/arguments_sha256", Keyword: "required", del: true, Why: "the digest of the original arguments is required"},
		{File: "extra-payload-field", From: "tool_call.requested", Pointer: "/payload/stdin", Keyword: "additionalProperties", set: "secret", Why: "payloads are closed"},
		{File: "extra-envelope-field", From: "policy.decision", Pointer: "/user", Keyword: "additionalProperties", set: "alice", Why: "the envelope is closed"},
		{File: "decision-unknown", From: "policy.decision", Pointer: "/payload/decision", Keyword: "enum", set: "maybe", Why: "decisions are allow, ask, deny"},
		{File: "reason-code-unknown", From: "policy.decision.deny", Pointer: "/payload/reason_code", Keyword: "enum", set: "because", Why: "reason codes come from the shared list"},
		{File: "hash-uppercase", From: "net.egress", Pointer: "/hash", Keyword: "pattern", set: strings.Repeat("AB", 32), Why: "hashes are lower-case hex"},
		{File: "event-id-leading-zero", From: "session.started", Pointer: "/event_id", Keyword: "pattern", set: "0123", Why: "snowflake ids have no leading zeros"},
		{File: "seq-zero", From: "session.started", Pointer: "/seq", Keyword: "minimum", set: 0, Why: "seq starts at 1"},
		{File: "event-time-no-micros", From: "session.ended", Pointer: "/event_time", Keyword: "pattern", set: "2025-03-14T09:31:00Z", Why: "timestamps have exactly six fractional digits"},
		{File: "event-time-feb-30", From: "session.ended", Pointer: "/event_time", Keyword: "format", set: "2025-02-30T09:31:00.000000Z", Why: "timestamps are real dates"},
		{File: "event-type-unknown", From: "session.ended", Pointer: "/event_type", Keyword: "enum", Code: CodeUnknownEventType, set: "session.paused", Why: "event types are a closed list"},
		{File: "schema-version-2", From: "session.ended", Pointer: "/schema_version", Keyword: "pattern", Code: CodeUnsupportedVersion, set: "2.0", Why: "this reader knows major version 1 only"},
		{File: "signature-short", From: "approval.decided", Pointer: "/payload/signature", Keyword: "pattern", set: "c2hvcnQ=", Why: "an Ed25519 signature is 64 bytes"},
		{File: "matched-ids-empty", From: "alert.raised", Pointer: "/payload/matched_event_ids", Keyword: "minItems", set: []any{}, Why: "an alert names at least one event"},
		{File: "scopes-duplicate", From: "approval.requested", Pointer: "/payload/scopes", Keyword: "uniqueItems", set: []any{"once", "once"}, Why: "scopes are a set"},
		{File: "port-too-large", From: "net.egress", Pointer: "/payload/port", Keyword: "maximum", set: 70000, Why: "ports are 1..65535"},
		{File: "resolved-ip-invalid", From: "net.egress.closed", Pointer: "/payload/resolved_ip", Keyword: "anyOf", set: "999.0.113.10", Why: "resolved_ip is an IPv4 or IPv6 address"},
		{File: "tool-name-too-long", From: "tool_call.requested.push", Pointer: "/payload/tool_name", Keyword: "maxLength", set: strings.Repeat("x", 65), Why: "tool names are at most 64 characters"},
		{File: "workspace-empty", From: "session.started", Pointer: "/payload/workspace", Keyword: "minLength", set: "", Why: "the workspace is named"},
		{File: "actor-type-unknown", From: "sandbox.violation", Pointer: "/actor/type", Keyword: "enum", set: "robot", Why: "actor types are agent, human, rule, system"},
		{File: "actor-missing", From: "sandbox.violation", Pointer: "/actor", Keyword: "required", del: true, Why: "every event names its actor"},
		{File: "payload-array", From: "session.held", Pointer: "/payload", Keyword: "type", set: []any{}, Why: "the payload is an object"},
		{File: "approval-mode-missing", From: "policy.decision.approved", Pointer: "/payload/approval_mode", Keyword: "required", del: true, Why: "every decision says whether a human was involved"},
		{File: "count-negative", From: "session.ended", Pointer: "/payload/counts/tool_calls", Keyword: "minimum", set: -1, Why: "counts are not negative"},
		{File: "decided-at-offset", From: "approval.decided", Pointer: "/payload/decided_at", Keyword: "pattern", set: "2025-03-14T10:27:34.000000+01:00", Why: "timestamps are UTC"},
		{File: "argv-not-strings", From: "tool_call.requested.push", Pointer: "/payload/arguments/argv/2", Keyword: "type", set: 3, Why: "argv items are strings"},
		{File: "exec-pid-zero", From: "process.exec", Pointer: "/payload/pid", Keyword: "minimum", set: 0, Why: "process ids start at 1"},
		{File: "exec-argv-missing", From: "process.exec.child", Pointer: "/payload/argv", Keyword: "required", del: true, Why: "every exec records its argv, even an empty one"},
		{File: "exec-arg-too-long", From: "process.exec.denied", Pointer: "/payload/argv/0", Keyword: "maxLength", set: strings.Repeat("g", 4097), Why: "arguments are cut to 4096 bytes"},
		{File: "exec-decision-unknown", From: "process.exec.push", Pointer: "/payload/decision", Keyword: "enum", set: "audit", Why: "an exec is allowed, asked or denied"},
		{File: "violation-kind-unknown", From: "sandbox.violation.exec", Pointer: "/payload/kind", Keyword: "enum", set: "oom", Why: "violation kinds are a closed list"},
		{File: "violation-count-zero", From: "sandbox.violation.leftover", Pointer: "/payload/count", Keyword: "minimum", set: 0, Why: "a count is reported only when something was counted"},
		{File: "signal-too-large", From: "tool_call.completed.timeout", Pointer: "/payload/signal", Keyword: "maximum", set: 65, Why: "Linux signals are 1..64"},
		{File: "rusage-extra-field", From: "tool_call.completed.timeout", Pointer: "/payload/rusage/cpu_ms", Keyword: "additionalProperties", set: 1, Why: "rusage is closed"},
		{File: "end-reason-unknown", From: "session.ended.lost", Pointer: "/payload/reason", Keyword: "enum", set: "crashed", Why: "end reasons are a closed list"},
		{File: "killed-reason-unknown", From: "tool_call.completed.lost", Pointer: "/payload/killed_reason", Keyword: "enum", set: "runner_died", Why: "kill reasons are a closed list"},
		{File: "agent-source-unknown", From: "agent.prompt", Pointer: "/payload/source", Keyword: "enum", set: "gemini", Why: "agent telemetry comes from a known agent; others are refused"},
		{File: "agent-text-mode-unknown", From: "agent.response", Pointer: "/payload/text/mode", Keyword: "enum", set: "plain", Why: "text is stored, hashed or dropped"},
		{File: "agent-tokens-negative", From: "agent.model_call", Pointer: "/payload/input_tokens", Keyword: "minimum", set: -5, Why: "token counts are not negative"},
		{File: "agent-call-id-space", From: "agent.tool_result", Pointer: "/payload/call_id", Keyword: "pattern", set: "call 1", Why: "agent ids are printable ASCII without spaces"},
		{File: "agent-other-too-many", From: "agent.other", Pointer: "/payload/attributes", Keyword: "maxItems", set: manyAttrs(), Why: "agent.other keeps at most 32 attributes"},
		{File: "agent-verdict-missing", From: "agent.tool_decision", Pointer: "/payload/verdict", Keyword: "required", del: true, Why: "an agent decision is normalised to a verdict"},
		{File: "triage-action-unknown", From: "alert.triaged", Pointer: "/payload/action", Keyword: "enum", set: "escalate", Why: "triage actions are a closed list"},
		{File: "triage-signature-missing", From: "alert.triaged.assign", Pointer: "/payload/signature", Keyword: "required", del: true, Why: "triage is signed by the approvals service"},
		{File: "suppression-scope-unknown", From: "rule.suppressed", Pointer: "/payload/scope/kind", Keyword: "enum", set: "host", Why: "a suppression covers a tenant, session, agent or group key"},
		{File: "suppression-expiry-missing", From: "rule.suppressed", Pointer: "/payload/expires_at", Keyword: "required", del: true, Why: "every suppression expires"},
	}
}

// manyAttrs is one attribute more than agent.other keeps.
func manyAttrs() []any {
	out := make([]any, 33)
	for i := range out {
		out[i] = fmt.Sprintf("k%02d=v", i)
	}
	return out
}

// setPointer sets (or deletes) the value at a JSON pointer in a decoded doc.
func setPointer(doc any, ptr string, v any, del bool) error {
	toks := strings.Split(ptr, "/")[1:]
	cur := doc
	for i, tok := range toks {
		last := i == len(toks)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if del {
					delete(c, tok)
				} else {
					c[tok] = v
				}
				return nil
			}
			cur = c[tok]
		case []any:
			var j int
			fmt.Sscan(tok, &j)
			if last {
				c[j] = v
				return nil
			}
			cur = c[j]
		default:
			return fmt.Errorf("pointer %s: no container at %s", ptr, tok)
		}
	}
	return nil
}

func prettyJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// exampleFiles renders every example file: valid events, invalid mutations
// and the manifest of expected errors.
func exampleFiles(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	docs := map[string][]byte{}
	for _, ne := range exampleChain(t) {
		wire, err := Marshal(ne.env)
		if err != nil {
			t.Fatal(err)
		}
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, wire, "", "  "); err != nil {
			t.Fatal(err)
		}
		pretty.WriteByte('\n')
		files["valid/"+ne.name+".json"] = pretty.Bytes()
		docs[ne.name] = wire
	}
	manifest := map[string]invalidExample{}
	for _, ie := range invalidExamples() {
		wire, ok := docs[ie.From]
		if !ok {
			t.Fatalf("invalid example %s: no valid example %s", ie.File, ie.From)
		}
		dec := json.NewDecoder(bytes.NewReader(wire))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if err := setPointer(doc, ie.Pointer, ie.set, ie.del); err != nil {
			t.Fatal(err)
		}
		if ie.Code == "" {
			ie.Code = ie.Keyword
		}
		files["invalid/"+ie.File+".json"] = prettyJSON(t, doc)
		manifest[ie.File+".json"] = ie
	}
	files["invalid/manifest.json"] = prettyJSON(t, manifest)
	return files
}

// TestExamplesUpToDate keeps schemas/examples in step with the Go types:
// the files are what exampleChain and invalidExamples produce. Run with
// -update-examples after changing either.
func TestExamplesUpToDate(t *testing.T) {
	want := exampleFiles(t)
	if *updateExamples {
		for _, dir := range []string{"valid", "invalid"} {
			old, _ := filepath.Glob(filepath.Join(examplesDir, dir, "*.json"))
			for _, f := range old {
				os.Remove(f)
			}
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(examplesDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var have []string
	for _, dir := range []string{"valid", "invalid"} {
		fs, _ := filepath.Glob(filepath.Join(examplesDir, dir, "*.json"))
		for _, f := range fs {
			have = append(have, dir+"/"+filepath.Base(f))
		}
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	slices.Sort(have)
	if diff := cmp.Diff(names, have); diff != "" {
		t.Fatalf("example files differ (-generated +on disk); run go test ./internal/events -run TestExamplesUpToDate -update-examples:\n%s", diff)
	}
	for _, n := range names {
		got, err := os.ReadFile(filepath.Join(examplesDir, n))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want[n]), string(got)); diff != "" {
			t.Errorf("%s is stale (-generated +on disk); run with -update-examples:\n%s", n, diff)
		}
	}
}
