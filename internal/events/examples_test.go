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
	emit("tool_call.completed", runnerIDs, runner, ToolCallCompleted{
		ExitCode: 1, DurationMS: 8421,
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
	eg := emit("net.egress", runnerIDs, runner, NetEgress{
		Phase: PhaseDecision, Host: "git.acme.example", Port: 443, ResolvedIP: "203.0.113.10", Method: "CONNECT", SNI: "git.acme.example",
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "egress/acme-git",
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"))...)
	emit("net.egress.closed", runnerIDs, runner, NetEgress{
		Phase: PhaseClosed, Host: "git.acme.example", Port: 443, ResolvedIP: "203.0.113.10", Method: "CONNECT", SNI: "git.acme.example",
		Decision: DecisionAllow, ReasonCode: ReasonAllowlisted, RuleID: "egress/acme-git", StatusCode: 200,
		BytesSent: 48213, BytesReceived: 9312, DurationMS: 1840,
	}, append(sys, WithToolCall("toolu_01B7xk2n9p4s8d1f6g3h5j0kw"), WithParent(eg.EventID))...)
	emit("tool_call.completed.push", runnerIDs, runner, ToolCallCompleted{
		ExitCode: 0, DurationMS: 2290,
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
		Counts: SessionCounts{ToolCalls: 3, Allowed: 2, Asked: 1, Denied: 1, ApprovalsGranted: 1, EgressAllowed: 1, Violations: 1},
	}, sys...)
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
	}
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
