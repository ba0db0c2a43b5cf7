// Package reportcheck tests reports/approvals.sql against the real
// ClickHouse. It lives apart from package approvals so that the approvals
// tests do not depend on the store and query packages.
package reportcheck

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/query"
)

// TestApprovalsReportExpiredByRunner: a request the runner stopped waiting
// for (its policy.decision says approval_expired) is "expired" in the
// approvals report even without the service's expiry decision; one the
// service expired is "expired" too; one nobody recorded anything for is
// "pending", with no time shown for its decision.
func TestApprovalsReportExpiredByRunner(t *testing.T) {
	r := newReportDB(t, "test_approvals_report_", 11, "sess-rep")
	day := time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
	emit, ids := r.emit, r.ids
	request := func(at time.Time, call, summary string) *events.Envelope {
		id := ids.Next().String()
		return emit(at, events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: summary, Reason: "asks",
			ReasonCode: events.ReasonNeedsApproval, RuleID: "deploy/make", Risk: events.RiskHigh,
			Requester: events.Actor{Type: events.ActorAgent, ID: "codex"}, Scopes: []events.ApprovalScope{events.ScopeOnce},
			ExpiresAt: events.At(at.Add(time.Minute))}, "runner-1",
			events.WithEventID(id), events.WithApproval(id), events.WithToolCall(call), events.WithActor(events.ActorSystem, "runner-1"))
	}
	t0 := day.Add(9 * time.Hour)
	byRunner := request(t0, "tc1", "make deploy")
	emit(t0.Add(time.Minute+500*time.Millisecond), events.PolicyDecision{Decision: events.DecisionDeny, ReasonCode: events.ReasonApprovalExpired,
		RuleID: "deploy/make", Justification: "nobody answered", ApprovalMode: events.ApprovalModeRequired}, "runner-1",
		events.WithToolCall("tc1"), events.WithParent(byRunner.EventID), events.WithActor(events.ActorSystem, "runner-1"))
	pending := request(t0.Add(time.Hour), "tc2", "make release")
	bySvc := request(t0.Add(2*time.Hour), "tc3", "make publish")
	emit(t0.Add(2*time.Hour+61*time.Second), events.ApprovalDecided{Decision: events.ApprovalExpired, ReasonCode: events.ReasonApprovalExpired,
		Approver: events.Actor{Type: events.ActorSystem, ID: "approvals-1"}, DecidedAt: events.At(t0.Add(2*time.Hour + 61*time.Second)),
		KeyID: "k1", Signature: strings.Repeat("A", 86) + "=="}, "approvals-1",
		events.WithApproval(bySvc.EventID), events.WithToolCall("tc3"), events.WithParent(bySvc.EventID), events.WithActor(events.ActorSystem, "approvals-1"))
	got := r.report("approvals", query.Period{From: day, To: day.AddDate(0, 0, 1)}, "approval_id", "decision", "decided_at", "seconds_to_decide")
	want := [][]string{
		{byRunner.EventID, "expired", "2026-02-03 09:01:00", "60.5"},
		{pending.EventID, "pending", "NULL", "NULL"},
		{bySvc.EventID, "expired", "2026-02-03 11:01:01", "61"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("approvals report (-want +got):\n%s", diff)
	}
}
