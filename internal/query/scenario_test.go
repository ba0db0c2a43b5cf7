package query

import (
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// The scenario: two sessions on 2026-01-05 and one the day before, with
// every kind of event the reports read. Findings are planted on purpose in
// sess-beta: a call that ran while its approval was pending, one that ran
// with no policy decision at all, and one that ran after a deny.
var day = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

func at(h, m, s, ms int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second + time.Duration(ms)*time.Millisecond)
}

const (
	policyA = "1111111111111111111111111111111111111111111111111111111111111111"
	policyB = "2222222222222222222222222222222222222222222222222222222222222222"
	egressP = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
	sig     = "G+BLbZSPe2GoUxFjbo5SZfgGt60E00/6BrTmRe88Jw0sldpQibsEVR7JDsSYrOSmGGT1IxR3oOCIJkXuTThUBA=="
	zeroSum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// scenario records the ids the reports must show.
type scenario struct {
	approvalA1, approvalA2, approvalA3 string // request event ids
	tc3Request                         string
	alphaEvents                        []*events.Envelope // runner-a chain of sess-alpha
}

// session emits the events of one runner in one session.
type session struct {
	p        *pipeline
	id       string
	runner   string
	agent    string
	policy   string
	runnerEv []*events.Envelope
}

func (s *session) opts(t time.Time, extra ...events.Option) []events.Option {
	return append([]events.Option{events.WithTime(t), events.WithTenant("acme"), events.WithSession(s.id, s.runner),
		events.WithAgent(s.agent, "1.0"), events.WithActor(events.ActorSystem, s.runner)}, extra...)
}

func (s *session) ev(t time.Time, pl events.Payload, extra ...events.Option) *events.Envelope {
	e := s.p.emit(s.runner, pl, s.opts(t, extra...)...)
	s.runnerEv = append(s.runnerEv, e)
	return e
}

func (s *session) start(t time.Time) {
	s.ev(t, events.SessionStarted{Workspace: "/srv/ws/" + s.id, SandboxProfileSHA256: strings.Repeat("a", 64),
		SandboxProfile: "default", Image: "localhost/agentaudit-sandbox:test", Operator: "ops@acme.example", Mode: "exec"})
}

func (s *session) request(t time.Time, tc string, argv ...string) *events.Envelope {
	return s.ev(t, events.ToolCallRequested{ToolName: "shell", Arguments: events.ToolArguments{Argv: argv, Cwd: "/workspace"},
		ArgumentsSHA256: strings.Repeat("b", 64)}, events.WithToolCall(tc), events.WithActor(events.ActorAgent, s.agent+"@laptop"))
}

func (s *session) decide(t time.Time, tc string, d events.Decision, code events.ReasonCode, rule string, mode events.ApprovalMode, extra ...events.Option) {
	pd := events.PolicyDecision{Decision: d, ReasonCode: code, RuleID: rule, ApprovalMode: mode, Risk: events.RiskHigh}
	s.ev(t, pd, append([]events.Option{events.WithToolCall(tc), events.WithPolicy("default-dev", s.policy)}, extra...)...)
}

func (s *session) askApproval(t time.Time, tc, rule, summary string) string {
	e := s.ev(t, events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: summary, Reason: "needs a human",
		ReasonCode: events.ReasonNeedsApproval, RuleID: rule, Risk: events.RiskHigh,
		Requester: events.Actor{Type: events.ActorAgent, ID: s.agent + "@laptop"},
		Scopes:    []events.ApprovalScope{events.ScopeOnce, events.ScopeSession}, ExpiresAt: events.At(t.Add(15 * time.Minute))},
		events.WithToolCall(tc))
	return e.EventID
}

func (s *session) complete(t time.Time, tc string, exit int) {
	s.ev(t, events.ToolCallCompleted{ExitCode: exit, DurationMS: 120,
		Stdout: events.Output{SHA256: zeroSum}, Stderr: events.Output{SHA256: zeroSum}}, events.WithToolCall(tc))
}

func (s *session) egress(t time.Time, phase, host string, port uint16, d events.Decision, code events.ReasonCode) {
	s.ev(t, events.NetEgress{Phase: phase, Host: host, Port: port, Decision: d, ReasonCode: code, BytesSent: 10, BytesReceived: 20},
		events.WithPolicy("egress-dev", egressP))
}

// approve emits an approval.decided from the approvals service.
func approve(p *pipeline, t time.Time, sess, approvalID, tc string, outcome events.ApprovalOutcome, approver string) {
	code := events.ReasonApproved
	if outcome != events.ApprovalApproved {
		code = events.ReasonApprovalDenied
	}
	p.emit("approvals-1", events.ApprovalDecided{Decision: outcome, ReasonCode: code, Scope: events.ScopeOnce,
		Approver: events.Actor{Type: events.ActorHuman, ID: approver}, DecidedAt: events.At(t), KeyID: "k1", Signature: sig},
		events.WithTime(t), events.WithTenant("acme"), events.WithSession(sess, "approvals-1"),
		events.WithActor(events.ActorHuman, approver), events.WithApproval(approvalID), events.WithToolCall(tc))
}

func alert(p *pipeline, t time.Time, sess, rule string, sev events.Severity, action string, count uint64, matched []string) *events.Envelope {
	return p.emit("detect-1", events.AlertRaised{RuleID: rule, RuleVersion: "1", Severity: sev, GroupKey: sess, Count: count,
		FirstSeen: events.At(t.Add(-time.Second)), LastSeen: events.At(t), MatchedEventIDs: matched, Message: rule + " fired", Action: action},
		events.WithTime(t), events.WithTenant("acme"), events.WithSession(sess, "detect-1"), events.WithActor(events.ActorRule, rule))
}

// buildScenario sends the scenario through p.
func buildScenario(p *pipeline) *scenario {
	sc := &scenario{}

	old := &session{p: p, id: "sess-old", runner: "runner-a", agent: "claude-code", policy: policyA}
	old.start(at(-1, 0, 0, 0)) // 2026-01-04 23:00, outside the period
	old.request(at(-1, 0, 1, 0), "tc0", "ls", "-la")
	old.decide(at(-1, 0, 1, 100), "tc0", events.DecisionAllow, events.ReasonAllowlisted, "fs/list", events.ApprovalModeNone)
	old.complete(at(-1, 0, 1, 500), "tc0", 0)

	a := &session{p: p, id: "sess-alpha", runner: "runner-a", agent: "claude-code", policy: policyA}
	a.start(at(10, 0, 0, 0))
	a.request(at(10, 0, 1, 0), "tc1", "ls", "-la")
	a.decide(at(10, 0, 1, 100), "tc1", events.DecisionAllow, events.ReasonAllowlisted, "fs/list", events.ApprovalModeNone)
	a.complete(at(10, 0, 1, 500), "tc1", 0)
	a.request(at(10, 1, 0, 0), "tc2", "git", "push", "origin", "main")
	a.decide(at(10, 1, 0, 100), "tc2", events.DecisionAsk, events.ReasonNeedsApproval, "deploy/git-push", events.ApprovalModeRequired)
	sc.approvalA1 = a.askApproval(at(10, 1, 0, 200), "tc2", "deploy/git-push", "git push origin main")
	approve(p, at(10, 1, 42, 700), "sess-alpha", sc.approvalA1, "tc2", events.ApprovalApproved, "bob@acme.example")
	a.decide(at(10, 1, 42, 800), "tc2", events.DecisionAllow, events.ReasonApproved, "deploy/git-push", events.ApprovalModeOnce, events.WithApproval(sc.approvalA1))
	a.complete(at(10, 1, 45, 0), "tc2", 0)
	sc.tc3Request = a.request(at(10, 2, 0, 0), "tc3", "curl", "http://169.254.169.254/latest/meta-data").EventID
	a.decide(at(10, 2, 0, 100), "tc3", events.DecisionDeny, events.ReasonDeniedByRule, "net/metadata", events.ApprovalModeNone)
	a.egress(at(10, 2, 0, 200), events.PhaseDecision, "169.254.169.254", 80, events.DecisionDeny, events.ReasonMetadataAddress)
	al := alert(p, at(10, 2, 5, 0), "sess-alpha", "sandbox/metadata-probe", events.SeverityHigh, events.AlertHold, 1, []string{sc.tc3Request})
	p.emit("detect-1", events.SessionHeld{Reason: "held by rule sandbox/metadata-probe", RuleID: "sandbox/metadata-probe",
		AlertEventID: al.EventID, By: events.Actor{Type: events.ActorRule, ID: "sandbox/metadata-probe"}},
		events.WithTime(at(10, 2, 6, 0)), events.WithTenant("acme"), events.WithSession("sess-alpha", "detect-1"),
		events.WithActor(events.ActorRule, "sandbox/metadata-probe"))
	a.egress(at(10, 3, 0, 0), events.PhaseDecision, "proxy.golang.org", 443, events.DecisionAllow, events.ReasonAllowlisted)
	a.egress(at(10, 3, 2, 0), events.PhaseClosed, "proxy.golang.org", 443, events.DecisionAllow, events.ReasonAllowlisted)
	a.ev(at(10, 5, 0, 0), events.SessionEnded{Reason: events.EndCompleted, DurationMS: 300000})
	sc.alphaEvents = a.runnerEv

	b := &session{p: p, id: "sess-beta", runner: "runner-b", agent: "codex", policy: policyB}
	b.start(at(11, 0, 0, 0))
	b.request(at(11, 0, 1, 0), "tc4", "rm", "-rf", "/workspace/build")
	b.decide(at(11, 0, 1, 100), "tc4", events.DecisionAsk, events.ReasonNeedsApproval, "fs/destructive", events.ApprovalModeRequired)
	sc.approvalA2 = b.askApproval(at(11, 0, 1, 200), "tc4", "fs/destructive", "rm -rf /workspace/build")
	approve(p, at(11, 0, 10, 200), "sess-beta", sc.approvalA2, "tc4", events.ApprovalDenied, "carol@acme.example")
	b.decide(at(11, 0, 10, 300), "tc4", events.DecisionDeny, events.ReasonApprovalDenied, "fs/destructive", events.ApprovalModeNone, events.WithApproval(sc.approvalA2))
	b.request(at(11, 1, 0, 0), "tc5", "make", "deploy")
	b.decide(at(11, 1, 0, 100), "tc5", events.DecisionAsk, events.ReasonNeedsApproval, "deploy/make", events.ApprovalModeRequired)
	sc.approvalA3 = b.askApproval(at(11, 1, 0, 200), "tc5", "deploy/make", "make deploy")
	b.complete(at(11, 1, 30, 0), "tc5", 0) // FINDING: ran while the approval was pending
	b.request(at(11, 2, 0, 0), "tc6", "echo", "hi")
	b.complete(at(11, 2, 1, 0), "tc6", 0) // FINDING: no policy decision
	tc7 := b.request(at(11, 3, 0, 0), "tc7", "git", "push", "--force")
	b.decide(at(11, 3, 0, 100), "tc7", events.DecisionDeny, events.ReasonDeniedByRule, "deploy/force-push", events.ApprovalModeNone)
	b.complete(at(11, 3, 2, 0), "tc7", 1) // FINDING: ran after a deny
	b.egress(at(11, 4, 0, 0), events.PhaseDecision, "evil.example.com", 443, events.DecisionDeny, events.ReasonDefaultDeny)
	b.egress(at(11, 4, 30, 0), events.PhaseDecision, "evil.example.com", 443, events.DecisionDeny, events.ReasonDefaultDeny)
	alert(p, at(11, 5, 0, 0), "sess-beta", "egress/denied-burst", events.SeverityMedium, events.AlertNotify, 2, []string{tc7.EventID})
	b.request(at(11, 6, 0, 0), "tc8", "ls", "-la")
	b.decide(at(11, 6, 0, 100), "tc8", events.DecisionAllow, events.ReasonAllowlisted, "fs/list", events.ApprovalModeNone)
	b.complete(at(11, 6, 1, 0), "tc8", 0)
	return sc
}
