package detect

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// storedDB creates a fresh migrated database holding evs, dropped when the
// test ends, and returns the read-only user's config for it.
func storedDB(t testing.TB, evs []*events.Envelope) ClickHouseConfig {
	t.Helper()
	ctx := context.Background()
	addr := testenv.ClickHouse(t)
	env, _ := testenv.Env()
	var b [4]byte
	rand.Read(b[:])
	db := fmt.Sprintf("test_detect_%d_%s", os.Getpid(), hex.EncodeToString(b[:]))
	admin, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"), Password: env["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Conn().Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		admin.Close()
	})
	w, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_USER"), Password: testenv.Get(t, "CLICKHOUSE_PASSWORD"), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rows := make([]store.EventRow, len(evs))
	for i, ev := range evs {
		if rows[i], err = store.RowFromEvent(ev, nil, store.Source{Topic: "audit.events", Offset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	return ClickHouseConfig{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_READONLY_USER"), Password: testenv.Get(t, "CLICKHOUSE_READONLY_PASSWORD"), Database: db}
}

// egressHistory adds allowed egress for the new-destination SQL rule: one
// host the agent used ten days before (not new) and one it never used.
func egressHistory(t testing.TB, t0 time.Time) (evs []*events.Envelope, newHostIDs []string) {
	s := newStream(t)
	s.ids = 8_100_000_000_000_000_000
	evs = append(evs,
		s.ev(egress("proxy.golang.org", events.DecisionAllow, events.ReasonAllowlisted), t0.Add(-10*24*time.Hour), "sess-old"),
		s.ev(egress("proxy.golang.org", events.DecisionAllow, events.ReasonAllowlisted), t0.Add(time.Hour), "sess-new"),
		s.ev(egress("paste.example", events.DecisionAllow, events.ReasonAllowlisted), t0.Add(time.Hour+time.Second), "sess-new"),
		s.ev(egress("paste.example", events.DecisionAllow, events.ReasonAllowlisted), t0.Add(time.Hour+2*time.Second), "sess-new"),
	)
	return evs, []string{evs[2].EventID, evs[3].EventID}
}

type firedAlert struct {
	Rule, Group string
	Count       uint64
	IDs         []string
}

func fired(as []Alert) []firedAlert {
	var out []firedAlert
	for _, a := range as {
		out = append(out, firedAlert{a.RuleID, a.GroupKey, a.Count, a.EventIDs})
	}
	slices.SortFunc(out, func(a, b firedAlert) int { return strings.Compare(a.Rule+a.Group, b.Rule+b.Group) })
	return out
}

func TestReplayFromClickHouse(t *testing.T) {
	stream := scenario(t)
	hist, newIDs := egressHistory(t, DefaultTestStart)
	cfg := storedDB(t, append(slices.Clone(stream), hist...))

	// The reference: one engine over the scenario in time order.
	rs, err := Load("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(stream)
	slices.SortStableFunc(sorted, func(a, b *events.Envelope) int { return a.EventTime.Compare(b.EventTime) })
	ref := NewEngine(rs)
	var want []Alert
	for _, ev := range sorted {
		as, err := ref.Eval(ev)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, as...)
	}
	want = append(want, ref.Flush()...)
	want = append(want, Alert{RuleID: "egress.new_destination", GroupKey: "acme/claude-code/paste.example", Count: 2, EventIDs: newIDs})

	var out bytes.Buffer
	res, err := Replay(context.Background(), ReplayConfig{
		RulesDir: "../../rules", ClickHouse: cfg, Out: &out,
		From: DefaultTestStart.Add(-time.Minute), To: DefaultTestStart.Add(2 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if d := cmp.Diff(fired(want), fired(res.Alerts)); d != "" {
		t.Errorf("replay alerts (-want +got):\n%s", d)
	}
	if res.Events != len(stream)+3 || res.Invalid != 0 {
		t.Errorf("replay read %d events (%d invalid), want %d", res.Events, res.Invalid, len(stream)+3)
	}
	if !strings.Contains(out.String(), "would have raised 6 alerts") {
		t.Errorf("report lacks the summary line:\n%s", out.String())
	}

	// --rule and --json: one rule, one JSON object per alert.
	out.Reset()
	if _, err := Replay(context.Background(), ReplayConfig{
		RulesDir: "../../rules", ClickHouse: cfg, Out: &out, JSON: true, Rules: []string{"approvals.fatigue"},
		From: DefaultTestStart.Add(-time.Minute), To: DefaultTestStart.Add(2 * time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	var lines []replayLine
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var l replayLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 1 || lines[0].RuleID != "approvals.fatigue" || lines[0].GroupKey != "alice" || lines[0].Count != 10 {
		t.Errorf("--json --rule approvals.fatigue printed %+v", lines)
	}
}

// TestSQLRuleOnClickHouse runs the shipped new-destination rule as the
// read-only user against stored events.
func TestSQLRuleOnClickHouse(t *testing.T) {
	hist, newIDs := egressHistory(t, DefaultTestStart)
	cfg := storedDB(t, hist)
	q, err := NewClickHouseQuerier(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rs, err := Load("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	r := NewSQLRunner(rs, q, nil)
	rule := r.Rules()[0]
	from, to := DefaultTestStart.Add(30*time.Minute), DefaultTestStart.Add(90*time.Minute)
	alerts, err := r.RunRule(context.Background(), rule, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts, want 1: %+v", len(alerts), alerts)
	}
	a := alerts[0]
	slices.Sort(a.EventIDs)
	if a.GroupKey != "acme/claude-code/paste.example" || a.Count != 2 || !slices.Equal(a.EventIDs, newIDs) ||
		!a.FirstSeen.Equal(DefaultTestStart.Add(time.Hour+time.Second)) {
		t.Errorf("alert %+v", a)
	}
	// A range without new hosts raises nothing; the read-only user cannot
	// write.
	if alerts, err := r.RunRule(context.Background(), rule, to, to.Add(time.Hour)); err != nil || len(alerts) != 0 {
		t.Errorf("empty range: %d alerts, %v", len(alerts), err)
	}
	if _, err := q.Query(context.Background(), "INSERT INTO events (event_id) VALUES (1)"); err == nil {
		t.Error("the read-only querier wrote")
	}
}

// TestServiceSQLRule: the service runs the SQL rule on its schedule, writes
// its alert, and after a restart goes on from where the last run ended
// instead of reporting the same rows again.
func TestServiceSQLRule(t *testing.T) {
	base := time.Now().UTC().Add(-time.Hour - 3*time.Minute)
	hist, newIDs := egressHistory(t, base)
	e := newSvcEnv(t)
	cfg := e.config("g", "detect-sql-1")
	cfg.ClickHouse = storedDB(t, hist)
	cfg.SQLEvery = 200 * time.Millisecond
	svc := startService(t, cfg)
	svc.waitReady(t)
	alerts := e.read(e.topics.Events, ofType(events.TypeAlertRaised), 1, time.Second)
	if m := httpGet(t, "http://"+svc.MetricsAddr()+"/metrics"); !strings.Contains(m, `detect_sql_alerts_total{rule="egress.new_destination"} 1`) {
		t.Error("metrics lack the SQL rule's alert")
	}
	svc.stop(t)

	cfg.RunnerID = "detect-sql-2"
	again := startService(t, cfg)
	again.waitReady(t)
	time.Sleep(2 * time.Second) // ten schedule ticks; the rule is not due again for 5m
	alerts = e.read(e.topics.Events, ofType(events.TypeAlertRaised), 1, time.Second)
	if len(alerts) != 1 {
		t.Fatalf("got %d alerts, want 1", len(alerts))
	}
	a := alertOf(t, alerts[0])
	slices.Sort(a.MatchedEventIDs)
	if a.RuleID != "egress.new_destination" || a.GroupKey != "acme/claude-code/paste.example" || !slices.Equal(a.MatchedEventIDs, newIDs) {
		t.Errorf("alert %+v", a)
	}
	if alerts[0].SessionID != "detect.sql/egress.new_destination" || alerts[0].Tenant != "system" {
		t.Errorf("SQL alert in tenant %q session %q", alerts[0].Tenant, alerts[0].SessionID)
	}
	if m := httpGet(t, "http://"+again.MetricsAddr()+"/metrics"); strings.Contains(m, "detect_sql_runs_total") {
		t.Error("the restarted service ran the rule again before it was due")
	}
}
