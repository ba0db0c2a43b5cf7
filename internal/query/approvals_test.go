package query

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
)

// TestApprovalsExpiredByRunner: a request the approvals service never
// answered shows expired, not pending, once the runner recorded that it
// stopped waiting (reason approval_expired on its decision, naming the
// request by approval id, or on its egress record, naming it as parent);
// a request nobody gave up on stays pending.
func TestApprovalsExpiredByRunner(t *testing.T) {
	s := testDB(t)
	p := newPipeline(t)
	day := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	at := func(m, sec int) time.Time {
		return day.Add(9*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second)
	}
	sess := &session{p: p, id: "sess-exp", runner: "runner-x", agent: "codex", policy: policyA}
	sess.start(at(0, 0))

	sess.request(at(1, 0), "tc1", "make", "deploy")
	sess.decide(at(1, 1), "tc1", events.DecisionAsk, events.ReasonNeedsApproval, "deploy/make", events.ApprovalModeRequired)
	byDecision := sess.askApproval(at(1, 2), "tc1", "deploy/make", "make deploy")
	sess.decide(at(16, 2), "tc1", events.DecisionDeny, events.ReasonApprovalExpired, "deploy/make", events.ApprovalModeNone,
		events.WithApproval(byDecision))

	byEgress := sess.ev(at(20, 0), events.ApprovalRequested{Kind: events.ApprovalKindEgress, Summary: "pkg.example.org:443",
		Reason: "needs a human", ReasonCode: events.ReasonNeedsApproval, RuleID: "egress/ask", Risk: events.RiskHigh,
		Requester: events.Actor{Type: events.ActorHuman, ID: "ops@acme.example"},
		Scopes:    []events.ApprovalScope{events.ScopeOnce}, ExpiresAt: events.At(at(35, 0))}).EventID
	sess.ev(at(35, 1), events.NetEgress{Phase: events.PhaseDecision, Host: "pkg.example.org", Port: 443,
		Decision: events.DecisionDeny, ReasonCode: events.ReasonApprovalExpired},
		events.WithPolicy("egress-dev", egressP), events.WithParent(byEgress))

	sess.request(at(40, 0), "tc2", "make", "release")
	sess.decide(at(40, 1), "tc2", events.DecisionAsk, events.ReasonNeedsApproval, "deploy/make", events.ApprovalModeRequired)
	pending := sess.askApproval(at(40, 2), "tc2", "deploy/make", "make release")
	p.load(s)

	q := openReader(t, s.Database())
	r, err := FindReport("approvals")
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.RunReport(context.Background(), r, Period{day, day.AddDate(0, 0, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int { return res.Index(name) }
	var got [][]string
	for _, row := range res.Rows {
		got = append(got, []string{Cell(row[col("approval_id")]), Cell(row[col("decision")]),
			Cell(row[col("decided_at")]), Cell(row[col("seconds_to_decide")])})
	}
	want := [][]string{
		{byDecision, "expired", "2026-11-03 09:16:02", "900"},
		{byEgress, "expired", "2026-11-03 09:35:01", "901"},
		{pending, "pending", "NULL", "NULL"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("approvals (-want +got):\n%s", diff)
	}
}
