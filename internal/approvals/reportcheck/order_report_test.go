package reportcheck

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/query"
)

// TestReportsTakeTheFirstDecisionInLogOrder: two approvals services can
// both write a decision for one request. The one first in the partition
// took effect (the services' folds and the runner act on it), even when
// the other was signed earlier on its instance's clock. The approvals
// report shows that one, and unapproved_actions does not let the losing
// approval count; a partial approval alone is still pending and approves
// nothing.
func TestReportsTakeTheFirstDecisionInLogOrder(t *testing.T) {
	r := newReportDB(t, "test_approvals_order_", 12, "sess-order")
	day := time.Date(2026, 2, 4, 0, 0, 0, 0, time.UTC)
	emit, ids := r.emit, r.ids
	// Rows get offsets in the order they are emitted here: the log order.
	ask := func(at time.Time, call string) *events.Envelope {
		id := ids.Next().String()
		emit(at, events.PolicyDecision{Decision: events.DecisionAsk, ReasonCode: events.ReasonNeedsApproval, RuleID: "deploy/make",
			ApprovalMode: events.ApprovalModeRequired, Risk: events.RiskHigh}, "runner-1",
			events.WithToolCall(call), events.WithActor(events.ActorSystem, "runner-1"))
		return emit(at, events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: "make deploy", Reason: "asks",
			ReasonCode: events.ReasonNeedsApproval, RuleID: "deploy/make", Risk: events.RiskHigh,
			Requester: events.Actor{Type: events.ActorAgent, ID: "codex"}, Scopes: []events.ApprovalScope{events.ScopeOnce},
			ExpiresAt: events.At(at.Add(time.Minute))}, "runner-1",
			events.WithEventID(id), events.WithApproval(id), events.WithToolCall(call), events.WithActor(events.ActorSystem, "runner-1"))
	}
	decide := func(at time.Time, req *events.Envelope, who, instance string, outcome events.ApprovalOutcome, code events.ReasonCode) {
		d := events.ApprovalDecided{Decision: outcome, ReasonCode: code,
			Approver: events.Actor{Type: events.ActorHuman, ID: who}, DecidedAt: events.At(at),
			KeyID: "k1", Signature: strings.Repeat("A", 86) + "=="}
		if outcome == events.ApprovalApproved {
			d.Scope = events.ScopeOnce
		}
		emit(at, d, instance, events.WithApproval(req.EventID), events.WithToolCall(req.ToolCallID),
			events.WithParent(req.EventID), events.WithActor(events.ActorHuman, who))
	}
	complete := func(at time.Time, call string) {
		empty := events.Output{SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
		emit(at, events.ToolCallCompleted{ExitCode: 0, DurationMS: 5, Stdout: empty, Stderr: empty}, "runner-1",
			events.WithToolCall(call), events.WithActor(events.ActorSystem, "runner-1"))
	}
	t0 := day.Add(9 * time.Hour)
	// bob's denial on instance 2 reached the log first; alice's approval,
	// signed 10 s earlier on instance 1, second. The call ran anyway: a
	// finding.
	raced := ask(t0, "tc1")
	decide(t0.Add(20*time.Second), raced, "bob", "approvals-2", events.ApprovalDenied, events.ReasonApprovalDenied)
	decide(t0.Add(10*time.Second), raced, "alice", "approvals-1", events.ApprovalApproved, events.ReasonApproved)
	complete(t0.Add(30*time.Second), "tc1")
	// Only the first of two approvals: pending, and the call that ran
	// anyway is a finding.
	half := ask(t0.Add(time.Hour), "tc2")
	decide(t0.Add(time.Hour+5*time.Second), half, "alice", "approvals-1", events.ApprovalApproved, events.ReasonNeedsApproval)
	complete(t0.Add(time.Hour+30*time.Second), "tc2")
	// Approved first, a losing denial after: not a finding.
	fine := ask(t0.Add(2*time.Hour), "tc3")
	decide(t0.Add(2*time.Hour+7*time.Second), fine, "alice", "approvals-1", events.ApprovalApproved, events.ReasonApproved)
	decide(t0.Add(2*time.Hour+6*time.Second), fine, "bob", "approvals-2", events.ApprovalDenied, events.ReasonApprovalDenied)
	complete(t0.Add(2*time.Hour+30*time.Second), "tc3")
	period := query.Period{From: day, To: day.AddDate(0, 0, 1)}
	run := func(name string, cols ...string) [][]string { t.Helper(); return r.report(name, period, cols...) }
	wantApprovals := [][]string{
		{raced.EventID, "denied", "bob", "2026-02-04 09:00:20", "2"},
		{half.EventID, "pending", "", "NULL", "0"},
		{fine.EventID, "approved", "alice", "2026-02-04 11:00:07", "2"},
	}
	if diff := cmp.Diff(wantApprovals, run("approvals", "approval_id", "decision", "approver", "decided_at", "decision_count")); diff != "" {
		t.Errorf("approvals report (-want +got):\n%s", diff)
	}
	wantFindings := [][]string{{"tc1", "ask_without_approval"}, {"tc2", "ask_without_approval"}}
	if diff := cmp.Diff(wantFindings, run("unapproved_actions", "tool_call_id", "finding")); diff != "" {
		t.Errorf("unapproved_actions (-want +got):\n%s", diff)
	}
}
