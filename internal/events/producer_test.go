package events

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

var testIDs = func() *IDGen {
	g, err := NewIDGen(7)
	if err != nil {
		panic(err)
	}
	return g
}()

// sampleEvent builds a valid event of the given type for session sid.
func sampleEvent(t testing.TB, typ, sid string, i int) *Envelope {
	t.Helper()
	now := time.Now()
	var p Payload
	switch typ {
	case TypeSessionStarted:
		p = SessionStarted{Workspace: "/srv/work/" + sid, SandboxProfileSHA256: sha(1), Image: "localhost/agentaudit-sandbox:test", Mode: "exec"}
	case TypeSessionEnded:
		p = SessionEnded{Reason: EndCompleted, DurationMS: 1200}
	case TypeToolCallRequested:
		p = ToolCallRequested{ToolName: "shell", Arguments: ToolArguments{Argv: []string{"git", "status", fmt.Sprint(i)}, Cwd: "/workspace"}, ArgumentsSHA256: sha(2)}
	case TypePolicyDecision:
		p = PolicyDecision{Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "dev-tools", ApprovalMode: ApprovalModeNone}
	case TypeApprovalRequested:
		p = ApprovalRequested{Kind: ApprovalKindToolCall, Summary: "git push origin main", Reason: "deploy-like command", ReasonCode: ReasonNeedsApproval, RuleID: "deploy", Risk: RiskHigh,
			Requester: Actor{Type: ActorAgent, ID: "agent-1"}, Scopes: []ApprovalScope{ScopeOnce, ScopeSession}, ExpiresAt: At(now.Add(15 * time.Minute))}
	case TypeApprovalDecided:
		p = ApprovalDecided{Decision: ApprovalApproved, ReasonCode: ReasonApproved, Scope: ScopeOnce, Approver: Actor{Type: ActorHuman, ID: "alice"}, DecidedAt: At(now), KeyID: "k1",
			Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	case TypeToolCallCompleted:
		p = ToolCallCompleted{ExitCode: 0, DurationMS: 12, Stdout: Output{Length: 3, SHA256: sha(3), Text: "ok\n"}, Stderr: Output{SHA256: sha(4)}}
	case TypeNetEgress:
		p = NetEgress{Phase: PhaseDecision, Host: "pypi.example", Port: 443, ResolvedIP: "127.0.0.1", Decision: DecisionDeny, ReasonCode: ReasonLoopbackAddress}
	case TypeSandboxViolation:
		p = SandboxViolation{Kind: ViolationPath, Detail: "write to read-only root", Path: "/etc/passwd"}
	case TypeAlertRaised:
		p = AlertRaised{RuleID: "egress-deny-burst", RuleVersion: "1", Severity: SeverityHigh, GroupKey: sid, Count: 5, FirstSeen: At(now), LastSeen: At(now),
			MatchedEventIDs: []string{"1"}, Message: "5 egress denials", Action: AlertNotify}
	case TypeSessionHeld:
		p = SessionHeld{Reason: "detection hold", RuleID: "cred-then-egress", By: Actor{Type: ActorRule, ID: "cred-then-egress"}}
	case TypeSessionReleased:
		p = SessionReleased{Reason: "reviewed", By: Actor{Type: ActorHuman, ID: "alice"}}
	case TypeProcessExec:
		argv, cut := BoundArgv([]string{"git", "status", fmt.Sprint(i)})
		p = ProcessExec{PID: 2 + i, PPID: 1, Argv: argv, ArgvTruncated: cut, Exe: "/usr/bin/git", Cwd: "/workspace",
			Decision: DecisionAllow, ReasonCode: ReasonKnownSafe, Root: true}
	case TypeAgentPrompt:
		p = AgentPrompt{Source: AgentSourceCodex, EventName: "codex.user_prompt", ConversationID: sid, Length: 12, Text: &AgentText{Mode: TextHash, Length: 12, SHA256: sha(5)}}
	case TypeAgentModelCall:
		p = AgentModelCall{Source: AgentSourceClaudeCode, EventName: "claude_code.api_request", Kind: ModelCallCall, Model: "claude-sonnet-4-5", InputTokens: 100, OutputTokens: uint64(i), CostMicroUSD: 420}
	case TypeAgentResponse:
		p = AgentResponse{Source: AgentSourceClaudeCode, EventName: "claude_code.assistant_response", Length: 3, Text: &AgentText{Mode: TextDrop, Length: 3}}
	case TypeAgentToolDecision:
		p = AgentToolDecision{Source: AgentSourceCodex, EventName: "codex.tool_decision", ToolName: "exec_command", CallID: "call_1", Decision: "approved", Verdict: VerdictAllow, DecisionSource: "config"}
	case TypeAgentToolResult:
		p = AgentToolResult{Source: AgentSourceCodex, EventName: "codex.tool_result", ToolName: "exec_command", CallID: "call_1", Success: true, DurationMS: 5}
	case TypeAgentSession:
		p = AgentSession{Source: AgentSourceCodex, EventName: "codex.conversation_starts", ConversationID: sid, ApprovalPolicy: "never"}
	case TypeAgentOther:
		p = AgentOther{Source: AgentSourceClaudeCode, EventName: "claude_code.mcp_server_connection", Attributes: []string{"status=connected"}}
	case TypeAlertTriaged:
		p = AlertTriaged{Action: TriageTruePositive, AlertEventID: "1", RuleID: "egress-deny-burst", By: Actor{Type: ActorHuman, ID: "alice"}, TriagedAt: At(now),
			KeyID: "k1", Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	case TypeRuleSuppressed:
		p = RuleSuppressed{RuleID: "egress-deny-burst", Scope: SuppressionScope{Kind: SuppressSession, Value: sid}, ExpiresAt: At(now.Add(time.Hour)),
			Comment: "noisy", By: Actor{Type: ActorHuman, ID: "alice"}, SuppressedAt: At(now), KeyID: "k1", Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	case TypeRuleUnsuppressed:
		p = RuleUnsuppressed{SuppressionEventID: "1", RuleID: "egress-deny-burst", By: Actor{Type: ActorHuman, ID: "alice"}, UnsuppressedAt: At(now),
			KeyID: "k1", Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	default:
		t.Fatalf("no sample for %s", typ)
	}
	opts := []Option{WithIDs(testIDs), WithTenant("acme"), WithSession(sid, ""), WithActor(ActorAgent, "agent-1"), WithAgent("claude-code", "1.0")}
	switch typ {
	case TypeApprovalRequested, TypeApprovalDecided:
		opts = append(opts, WithApproval(fmt.Sprintf("apr-%s-%d", sid, i)))
	}
	if typ == TypePolicyDecision {
		opts = append(opts, WithPolicy("default", sha(5)))
	}
	if typ == TypeApprovalDecided {
		opts = append(opts, WithPolicy("default", sha(5)))
	}
	env, err := New(p, opts...)
	if err != nil {
		t.Fatalf("New(%s): %v", typ, err)
	}
	return env
}

func sha(n byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = "0123456789abcdef"[(int(n)+i)%16]
	}
	return string(b)
}

func TestProducerKfakeRoundTrip(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, DefaultTopics.Events, DefaultTopics.Approvals, DefaultTopics.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	p, err := NewProducer(ctx, c.ListenAddrs(), "runner-a", WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i, typ := range EventTypes {
		if err := p.Emit(ctx, sampleEvent(t, typ, "s1", i)); err != nil {
			t.Fatalf("Emit(%s): %v", typ, err)
		}
	}
	got := consumeAll(t, c.ListenAddrs(), len(EventTypes), DefaultTopics.Events, DefaultTopics.Approvals)
	sortBySeq(got)
	if err := VerifyChain(got); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if n := p.Stats().Acked.Load(); n != int64(len(EventTypes)) {
		t.Fatalf("acked = %d, want %d", n, len(EventTypes))
	}
}

func TestProducerRefusesInvalid(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, DefaultTopics.Events, DefaultTopics.Approvals, DefaultTopics.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	p, err := NewProducer(ctx, c.ListenAddrs(), "runner-a")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	env := sampleEvent(t, TypeToolCallRequested, "s1", 0)
	env.Tenant = "" // required
	if err := p.Emit(ctx, env); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("Emit(invalid) = %v, want ErrInvalidEvent", err)
	}
	// The refused event did not consume a sequence number.
	ok := sampleEvent(t, TypeToolCallRequested, "s1", 1)
	if err := p.Emit(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if ok.Seq != 1 {
		t.Fatalf("seq after a refused event = %d, want 1", ok.Seq)
	}
}

func TestProducerUnavailableFailsClosed(t *testing.T) {
	// A port with no broker: Emit must fail within its bound with
	// ErrAuditUnavailable, and EmitAfter must spool.
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.ListenAddrs()
	c.Close()
	ctx := context.Background()
	dir := t.TempDir()
	p, err := NewProducer(ctx, addrs, "runner-a", WithAckTimeout(300*time.Millisecond), WithSpool(dir, 1<<20), WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = p.Emit(ctx, sampleEvent(t, TypeToolCallRequested, "s1", 0))
	if !errors.Is(err, ErrAuditUnavailable) {
		t.Fatalf("Emit with no broker = %v, want ErrAuditUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Emit took %v with a 300ms ack bound", d)
	}
	if err := p.EmitAfter(ctx, sampleEvent(t, TypeToolCallCompleted, "s1", 1)); err != nil {
		t.Fatalf("EmitAfter with no broker: %v", err)
	}
	// Both are kept: the denied request and the completion.
	if p.Pending() != 2 {
		t.Fatalf("pending = %d, want 2", p.Pending())
	}
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	p.Close(cctx)

	s, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 2 {
		t.Fatalf("spool after close holds %d records, want 2", s.Len())
	}
}

func TestProducerSpoolFullIsReported(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.ListenAddrs()
	c.Close()
	ctx := context.Background()
	p, err := NewProducer(ctx, addrs, "runner-a", WithAckTimeout(100*time.Millisecond), WithSpool(t.TempDir(), 2048))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	var lastErr error
	for i := 0; i < 20 && lastErr == nil; i++ {
		time.Sleep(p.retryAfter) // let each call try Kafka
		lastErr = p.EmitAfter(ctx, sampleEvent(t, TypeToolCallCompleted, "s1", i))
	}
	if !errors.Is(lastErr, ErrSpoolFull) {
		t.Fatalf("EmitAfter into a full spool = %v, want ErrSpoolFull", lastErr)
	}
	if p.Stats().SpoolFailure.Load() == 0 {
		t.Fatal("a lost event was not counted")
	}
}

// consumeAll reads n events from the topics and decodes them.
func consumeAll(t testing.TB, brokers []string, n int, topics ...string) []*Envelope {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*Envelope
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d events before the deadline", len(out), n)
		}
		f.EachRecord(func(r *kgo.Record) {
			env, err := Decode(r.Value)
			if err != nil {
				t.Fatalf("decode %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			out = append(out, env)
		})
	}
	return out
}

func TestEmitAfterBatch(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, DefaultTopics.Events, DefaultTopics.Approvals, DefaultTopics.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	p, err := NewProducer(ctx, c.ListenAddrs(), "runner-a", WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.Emit(ctx, sampleEvent(t, TypeSessionStarted, "s1", 0)); err != nil {
		t.Fatal(err)
	}
	var batch []*Envelope
	for i := 1; i <= 6; i++ {
		batch = append(batch, sampleEvent(t, TypeProcessExec, "s1", i))
	}
	bad := sampleEvent(t, TypeProcessExec, "s1", 7)
	bad.Tenant = "" // invalid: refused, the rest recorded
	batch = append(batch[:3], append([]*Envelope{bad}, batch[3:]...)...)
	err = p.EmitAfterBatch(ctx, batch)
	if !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("EmitAfterBatch with one invalid event = %v, want ErrInvalidEvent", err)
	}
	var seqs []uint64
	for _, e := range batch {
		if e != bad {
			seqs = append(seqs, e.Seq)
		}
	}
	if diff := cmp.Diff([]uint64{2, 3, 4, 5, 6, 7}, seqs); diff != "" {
		t.Errorf("seqs in batch order (-want +got):\n%s", diff)
	}
	got := consumeAll(t, c.ListenAddrs(), 7, DefaultTopics.Events)
	sortBySeq(got)
	if err := VerifyChain(got); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if n := p.Stats().Acked.Load(); n != 7 {
		t.Errorf("acked = %d, want 7", n)
	}

	// With the broker gone the batch is spooled, in order.
	addrs := c.ListenAddrs()
	c.Close()
	q, err := NewProducer(ctx, addrs, "runner-b", WithAckTimeout(300*time.Millisecond), WithSpool(t.TempDir(), 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		q.Close(cctx)
	}()
	var down []*Envelope
	for i := 0; i < 4; i++ {
		down = append(down, sampleEvent(t, TypeProcessExec, "s2", i))
	}
	if err := q.EmitAfterBatch(ctx, down); err != nil {
		t.Fatalf("EmitAfterBatch with no broker: %v", err)
	}
	if q.Pending() != 4 {
		t.Errorf("pending = %d, want 4", q.Pending())
	}
}
