package eventlog

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

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

var testIDs = func() *events.IDGen {
	g, err := events.NewIDGen(7)
	if err != nil {
		panic(err)
	}
	return g
}()

// sampleEvent builds a valid event of the given type for session sid.
func sampleEvent(t testing.TB, typ, sid string, i int) *events.Envelope {
	t.Helper()
	now := time.Now()
	var p events.Payload
	switch typ {
	case events.TypeSessionStarted:
		p = events.SessionStarted{Workspace: "/srv/work/" + sid, SandboxProfileSHA256: sha(1), Image: "localhost/agentaudit-sandbox:test", Mode: "exec"}
	case events.TypeSessionEnded:
		p = events.SessionEnded{Reason: events.EndCompleted, DurationMS: 1200}
	case events.TypeToolCallRequested:
		p = events.ToolCallRequested{ToolName: "shell", Arguments: events.ToolArguments{Argv: []string{"git", "status", fmt.Sprint(i)}, Cwd: "/workspace"}, ArgumentsSHA256: sha(2)}
	case events.TypePolicyDecision:
		p = events.PolicyDecision{Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted, RuleID: "dev-tools", ApprovalMode: events.ApprovalModeNone}
	case events.TypeApprovalRequested:
		p = events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: "git push origin main", Reason: "deploy-like command", ReasonCode: events.ReasonNeedsApproval, RuleID: "deploy", Risk: events.RiskHigh,
			Requester: events.Actor{Type: events.ActorAgent, ID: "agent-1"}, Scopes: []events.ApprovalScope{events.ScopeOnce, events.ScopeSession}, ExpiresAt: events.At(now.Add(15 * time.Minute))}
	case events.TypeApprovalDecided:
		p = events.ApprovalDecided{Decision: events.ApprovalApproved, ReasonCode: events.ReasonApproved, Scope: events.ScopeOnce, Approver: events.Actor{Type: events.ActorHuman, ID: "alice"}, DecidedAt: events.At(now), KeyID: "k1",
			Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	case events.TypeToolCallCompleted:
		p = events.ToolCallCompleted{ExitCode: 0, DurationMS: 12, Stdout: events.Output{Length: 3, SHA256: sha(3), Text: "ok\n"}, Stderr: events.Output{SHA256: sha(4)}}
	case events.TypeNetEgress:
		p = events.NetEgress{Phase: events.PhaseDecision, Host: "pypi.example", Port: 443, ResolvedIP: "127.0.0.1", Decision: events.DecisionDeny, ReasonCode: events.ReasonLoopbackAddress}
	case events.TypeSandboxViolation:
		p = events.SandboxViolation{Kind: events.ViolationPath, Detail: "write to read-only root", Path: "/etc/passwd"}
	case events.TypeAlertRaised:
		p = events.AlertRaised{RuleID: "egress-deny-burst", RuleVersion: "1", Severity: events.SeverityHigh, GroupKey: sid, Count: 5, FirstSeen: events.At(now), LastSeen: events.At(now),
			MatchedEventIDs: []string{"1"}, Message: "5 egress denials", Action: events.AlertNotify}
	case events.TypeSessionHeld:
		p = events.SessionHeld{Reason: "detection hold", RuleID: "cred-then-egress", By: events.Actor{Type: events.ActorRule, ID: "cred-then-egress"}}
	case events.TypeSessionReleased:
		p = events.SessionReleased{Reason: "reviewed", By: events.Actor{Type: events.ActorHuman, ID: "alice"}}
	case events.TypeProcessExec:
		argv, cut := events.BoundArgv([]string{"git", "status", fmt.Sprint(i)})
		p = events.ProcessExec{PID: 2 + i, PPID: 1, Argv: argv, ArgvTruncated: cut, Exe: "/usr/bin/git", Cwd: "/workspace",
			Decision: events.DecisionAllow, ReasonCode: events.ReasonKnownSafe, Root: true}
	case events.TypeAgentPrompt:
		p = events.AgentPrompt{Source: events.AgentSourceCodex, EventName: "codex.user_prompt", ConversationID: sid, Length: 12, Text: &events.AgentText{Mode: events.TextHash, Length: 12, SHA256: sha(5)}}
	case events.TypeAgentModelCall:
		p = events.AgentModelCall{Source: events.AgentSourceClaudeCode, EventName: "claude_code.api_request", Kind: events.ModelCallCall, Model: "claude-sonnet-4-5", InputTokens: 100, OutputTokens: uint64(i), CostMicroUSD: 420}
	case events.TypeAgentResponse:
		p = events.AgentResponse{Source: events.AgentSourceClaudeCode, EventName: "claude_code.assistant_response", Length: 3, Text: &events.AgentText{Mode: events.TextDrop, Length: 3}}
	case events.TypeAgentToolDecision:
		p = events.AgentToolDecision{Source: events.AgentSourceCodex, EventName: "codex.tool_decision", ToolName: "exec_command", CallID: "call_1", Decision: "approved", Verdict: events.VerdictAllow, DecisionSource: "config"}
	case events.TypeAgentToolResult:
		p = events.AgentToolResult{Source: events.AgentSourceCodex, EventName: "codex.tool_result", ToolName: "exec_command", CallID: "call_1", Success: true, DurationMS: 5}
	case events.TypeAgentSession:
		p = events.AgentSession{Source: events.AgentSourceCodex, EventName: "codex.conversation_starts", ConversationID: sid, ApprovalPolicy: "never"}
	case events.TypeAgentOther:
		p = events.AgentOther{Source: events.AgentSourceClaudeCode, EventName: "claude_code.mcp_server_connection", Attributes: []string{"status=connected"}}
	case events.TypeAlertTriaged:
		p = events.AlertTriaged{Action: events.TriageTruePositive, AlertEventID: "1", RuleID: "egress-deny-burst", By: events.Actor{Type: events.ActorHuman, ID: "alice"}, TriagedAt: events.At(now),
			KeyID: "k1", Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	case events.TypeRuleSuppressed:
		p = events.RuleSuppressed{RuleID: "egress-deny-burst", Scope: events.SuppressionScope{Kind: events.SuppressSession, Value: sid}, ExpiresAt: events.At(now.Add(time.Hour)),
			Comment: "noisy", By: events.Actor{Type: events.ActorHuman, ID: "alice"}, SuppressedAt: events.At(now), KeyID: "k1", Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	case events.TypeRuleUnsuppressed:
		p = events.RuleUnsuppressed{SuppressionEventID: "1", RuleID: "egress-deny-burst", By: events.Actor{Type: events.ActorHuman, ID: "alice"}, UnsuppressedAt: events.At(now),
			KeyID: "k1", Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))}
	default:
		t.Fatalf("no sample for %s", typ)
	}
	opts := []events.Option{events.WithIDs(testIDs), events.WithTenant("acme"), events.WithSession(sid, ""), events.WithActor(events.ActorAgent, "agent-1"), events.WithAgent("claude-code", "1.0")}
	switch typ {
	case events.TypeApprovalRequested, events.TypeApprovalDecided:
		opts = append(opts, events.WithApproval(fmt.Sprintf("apr-%s-%d", sid, i)))
	}
	if typ == events.TypePolicyDecision {
		opts = append(opts, events.WithPolicy("default", sha(5)))
	}
	if typ == events.TypeApprovalDecided {
		opts = append(opts, events.WithPolicy("default", sha(5)))
	}
	env, err := events.New(p, opts...)
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
	for i, typ := range events.EventTypes {
		if err := p.Emit(ctx, sampleEvent(t, typ, "s1", i)); err != nil {
			t.Fatalf("Emit(%s): %v", typ, err)
		}
	}
	got := consumeAll(t, c.ListenAddrs(), len(events.EventTypes), DefaultTopics.Events, DefaultTopics.Approvals)
	sortBySeq(got)
	if err := events.VerifyChain(got); err != nil {
		t.Fatalf("chain: %v", err)
	}
	if n := p.Stats().Acked.Load(); n != int64(len(events.EventTypes)) {
		t.Fatalf("acked = %d, want %d", n, len(events.EventTypes))
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
	env := sampleEvent(t, events.TypeToolCallRequested, "s1", 0)
	env.Tenant = "" // required
	if err := p.Emit(ctx, env); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("Emit(invalid) = %v, want ErrInvalidEvent", err)
	}
	// The refused event did not consume a sequence number.
	ok := sampleEvent(t, events.TypeToolCallRequested, "s1", 1)
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
	err = p.Emit(ctx, sampleEvent(t, events.TypeToolCallRequested, "s1", 0))
	if !errors.Is(err, ErrAuditUnavailable) {
		t.Fatalf("Emit with no broker = %v, want ErrAuditUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Emit took %v with a 300ms ack bound", d)
	}
	if err := p.EmitAfter(ctx, sampleEvent(t, events.TypeToolCallCompleted, "s1", 1)); err != nil {
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
		lastErr = p.EmitAfter(ctx, sampleEvent(t, events.TypeToolCallCompleted, "s1", i))
	}
	if !errors.Is(lastErr, ErrSpoolFull) {
		t.Fatalf("EmitAfter into a full spool = %v, want ErrSpoolFull", lastErr)
	}
	if p.Stats().SpoolFailure.Load() == 0 {
		t.Fatal("a lost event was not counted")
	}
}

// consumeAll reads n events from the topics and decodes them.
func consumeAll(t testing.TB, brokers []string, n int, topics ...string) []*events.Envelope {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*events.Envelope
	for len(out) < n {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d events before the deadline", len(out), n)
		}
		f.EachRecord(func(r *kgo.Record) {
			env, err := events.Decode(r.Value)
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
	if err := p.Emit(ctx, sampleEvent(t, events.TypeSessionStarted, "s1", 0)); err != nil {
		t.Fatal(err)
	}
	var batch []*events.Envelope
	for i := 1; i <= 6; i++ {
		batch = append(batch, sampleEvent(t, events.TypeProcessExec, "s1", i))
	}
	bad := sampleEvent(t, events.TypeProcessExec, "s1", 7)
	bad.Tenant = "" // invalid: refused, the rest recorded
	batch = append(batch[:3], append([]*events.Envelope{bad}, batch[3:]...)...)
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
	if err := events.VerifyChain(got); err != nil {
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
	var down []*events.Envelope
	for i := 0; i < 4; i++ {
		down = append(down, sampleEvent(t, events.TypeProcessExec, "s2", i))
	}
	if err := q.EmitAfterBatch(ctx, down); err != nil {
		t.Fatalf("EmitAfterBatch with no broker: %v", err)
	}
	if q.Pending() != 4 {
		t.Errorf("pending = %d, want 4", q.Pending())
	}
}
