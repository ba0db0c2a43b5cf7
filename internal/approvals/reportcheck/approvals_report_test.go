// Package reportcheck tests reports/approvals.sql against the real
// ClickHouse. It lives apart from package approvals so that the approvals
// tests do not depend on the store and query packages.
package reportcheck

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/query"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestApprovalsReportExpiredByRunner: a request the runner stopped waiting
// for (its policy.decision says approval_expired) is "expired" in the
// approvals report even without the service's expiry decision; one the
// service expired is "expired" too; one nobody recorded anything for is
// "pending", with no time shown for its decision.
func TestApprovalsReportExpiredByRunner(t *testing.T) {
	addr := testenv.ClickHouse(t)
	env, _ := testenv.Env()
	ctx := context.Background()
	admin, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"),
		Password: env["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"})
	if err != nil {
		t.Fatalf("open as admin: %v", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	db := "test_approvals_report_" + hex.EncodeToString(b)
	if err := admin.Conn().Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		admin.Close()
	})
	w, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_USER"),
		Password: testenv.Get(t, "CLICKHOUSE_PASSWORD"), Database: db, Logger: testenv.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	day := time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
	ids, _ := events.NewIDGen(11)
	chains := map[events.ChainKey]*events.Chain{}
	var rows []store.EventRow
	emit := func(at time.Time, p events.Payload, emitter string, opts ...events.Option) *events.Envelope {
		t.Helper()
		e, err := events.New(p, append([]events.Option{events.WithIDs(ids), events.WithTime(at), events.WithTenant("acme"),
			events.WithSession("sess-rep", emitter)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if chains[e.Key()] == nil {
			chains[e.Key()] = events.NewChain(e.Key())
		}
		if err := chains[e.Key()].Stamp(e); err != nil {
			t.Fatal(err)
		}
		raw, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		row, err := store.RowFromEvent(e, raw, store.Source{Topic: "t", Offset: int64(len(rows))})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
		return e
	}
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
	if err := w.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}

	q, err := query.Open(ctx, query.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_READONLY_USER"),
		Password: testenv.Get(t, "CLICKHOUSE_READONLY_PASSWORD"), Database: db, Timeout: 60 * time.Second,
		Logger: testenv.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rep, err := query.FindReport("approvals")
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.RunReport(ctx, rep, query.Period{From: day, To: day.AddDate(0, 0, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int {
		for i, c := range res.Columns {
			if c.Name == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	var got [][]string
	for _, r := range res.Rows {
		got = append(got, []string{query.Cell(r[col("approval_id")]), query.Cell(r[col("decision")]),
			query.Cell(r[col("decided_at")]), query.Cell(r[col("seconds_to_decide")])})
	}
	want := [][]string{
		{byRunner.EventID, "expired", "2026-02-03 09:01:00", "60.5"},
		{pending.EventID, "pending", "NULL", "NULL"},
		{bySvc.EventID, "expired", "2026-02-03 11:01:01", "61"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("approvals report (-want +got):\n%s", diff)
	}
}
