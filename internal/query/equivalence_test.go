package query

import (
	"context"
	"embed"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
	"github.com/agentaudit/agentaudit/internal/bench/eventgen"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
)

// groundTruth holds every report as it was before the reports stopped
// reading `events FINAL`: plain, slow folds over the deduplicated raw
// events. The shipped reports must return exactly what these return.
//
//go:embed testdata/groundtruth/*.sql
var groundTruth embed.FS

// TestReportsMatchGroundTruth generates bench sessions over three days and
// stores them the way a troubled pipeline would: out of order (a later
// day first, then the earlier ones: late events), with redeliveries (about
// one row in eight stored twice, some within one insert, most in a later
// one) kept unmerged, and with planted findings (a deleted policy
// decision, approval decision or completion, a second event with a used
// seq, an event id reused in another session, a deny after a call ran, a
// runner_lost completion, a chain's last event under another tenant). Every report, over several periods, must equal its ground truth.
func TestReportsMatchGroundTruth(t *testing.T) {
	w := testDB(t)
	ctx := context.Background()
	db := w.Database()
	// Keep the redeliveries as separate rows: FINAL must matter.
	if err := w.Conn().Exec(ctx, "SYSTEM STOP MERGES "+db+".events"); err != nil {
		t.Fatalf("stop merges: %v", err)
	}
	start := storeTroubled(t, w)
	q := openReader(t, db)
	periods := equivalencePeriods(start)
	nonEmpty := reportsMatchGroundTruth(t, q, q, periods)
	// The comparison must catch a wrong answer: each report with one of
	// its candidate filters broken loses a planted finding.
	t.Run("wrong reports differ", func(t *testing.T) {
		for _, m := range []struct{ report, old, new string }{
			// No call without a decision is a candidate any more.
			{"unapproved_actions", "AND (call_key NOT IN", "AND (0 AND call_key NOT IN"},
			// The first phase no longer finds asks left unapproved.
			{"unapproved_actions", "OR (ask_count > 0 AND NOT approved_before)", ""},
			// A runner_lost completion counts as a completion.
			{"dangling_calls", "WHERE event_type = 'tool_call.completed' AND killed_reason != 'runner_lost' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1)))",
				"WHERE event_type = 'tool_call.completed' AND event_time >= @from AND toDate(event_time) >= toDate(@from) - 1)))"},
			// A pair under two tenants is judged by its merged counts.
			{"chain_breaks", " OR k_tenant_lo != k_tenant_hi", ""},
			// A partial day without a decision wins the first decision.
			{"top_commands", "18446744073709551615))                                                     AS s_first", "0)) AS s_first"},
			// The whole days are left out.
			{"top_commands", "FROM call_folds\n", "FROM call_folds PREWHERE 0\n"},
		} {
			r, err := FindReport(m.report)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(r.SQL, m.old) != 1 {
				t.Fatalf("%s: the mutation %q matches %d times, want once", m.report, m.old, strings.Count(r.SQL, m.old))
			}
			wrong := *r
			wrong.SQL = strings.Replace(r.SQL, m.old, m.new, 1)
			differs := false
			for _, p := range periods {
				got, want := againstGroundTruth(t, q, q, &wrong, groundTruthOf(t, m.report), p)
				differs = differs || !cmp.Equal(canonical(want), canonical(got))
			}
			if !differs {
				t.Errorf("%s with %q broken still equals its ground truth over every period: the data plants no finding that needs it", m.report, m.old)
			}
		}
	})
	// activity and top_commands read activity_sessions and call_folds,
	// filled above by their views from every insert. Filled instead by
	// their migrations' backfills, twice (a backfill overlapping inserts
	// the view already saw), they must still equal the ground truth.
	for _, v := range []struct{ migration, table, report string }{
		{"activity_sessions", "activity_sessions", "activity"},
		{"call_folds", "call_folds", "top_commands"},
	} {
		t.Run(v.report+" after backfill", func(t *testing.T) {
			backfill := migrationBackfill(t, v.migration, db)
			if err := w.Conn().Exec(ctx, "TRUNCATE TABLE "+db+"."+v.table); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if err := w.Conn().Exec(ctx, backfill); err != nil {
					t.Fatal(err)
				}
			}
			r, err := FindReport(v.report)
			if err != nil {
				t.Fatal(err)
			}
			gt := groundTruthOf(t, v.report)
			for _, p := range periods {
				got, want := againstGroundTruth(t, q, q, r, gt, p)
				if len(want.Rows) == 0 {
					t.Errorf("%v: ground truth is empty", p)
				}
				if diff := cmp.Diff(canonical(want), canonical(got)); diff != "" {
					t.Errorf("%v (-ground truth +report):\n%s", p, diff)
				}
			}
		})
	}
	// Verify must find the same whatever its batches: one batch of
	// everything, and batches of a few sessions (chains and the id stored
	// in two sessions then span batches).
	t.Run("verify batches", func(t *testing.T) {
		scope := VerifyScope{Period: periods[0]}
		whole, err := q.Verify(ctx, scope)
		if err != nil {
			t.Fatal(err)
		}
		defer func(r uint64, n int) { verifyBatchRows, verifyBatch = r, n }(verifyBatchRows, verifyBatch)
		verifyBatchRows, verifyBatch = 200, 7
		small, err := q.Verify(ctx, scope)
		if err != nil {
			t.Fatal(err)
		}
		whole.Elapsed, small.Elapsed = 0, 0
		if diff := cmp.Diff(whole, small); diff != "" {
			t.Errorf("(-one batch +small batches):\n%s", diff)
		}
		kinds := map[string]int{}
		for _, f := range whole.Findings {
			kinds[f.Kind]++
		}
		if kinds[BreakDuplicateID] == 0 || kinds[string(events.BreakGap)] == 0 {
			t.Errorf("findings by kind %v: want the planted duplicate ids and gaps", kinds)
		}
	})
	exercised(t, nonEmpty)
}

// exercised fails the test unless the data gave every report that reads
// it rows in some period.
func exercised(t *testing.T, nonEmpty map[string]bool) {
	t.Helper()
	for _, n := range []string{"activity", "approvals", "unapproved_actions", "dangling_calls", "chain_breaks",
		"top_commands", "policy_versions", "events_per_day", "decisions", "denied_egress", "alerts"} {
		if !nonEmpty[n] {
			t.Errorf("%s is empty in every period: the generated data does not exercise it", n)
		}
	}
}

// storeTroubled generates bench sessions over three days, with planted
// findings, and stores them through each of ws (the same rows in the same
// batches) the way a troubled pipeline would:
// out of order (a later day first, then the earlier ones: late events),
// with redeliveries (about one row in eight stored twice, some within one
// insert, most in a later one). The caller keeps them unmerged. It
// returns the first day's start.
func storeTroubled(t *testing.T, ws ...*store.Store) time.Time {
	t.Helper()
	ctx := context.Background()
	const sessions, days = 240, 3
	ids, err := events.NewIDGen(7)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var byDay [days][]store.EventRow
	single := map[string]bool{}
	start := eventgen.PeriodEnd.AddDate(0, 0, -days)
	for s := 0; s < sessions; s++ {
		rows, err := eventgen.PeriodSession(s, sessions, days, ids)
		if err != nil {
			t.Fatal(err)
		}
		rows = plant(s, rows)
		if s%10 == 8 {
			// Its pair's merged counts must look intact: no redelivery.
			single[rows[0].SessionID] = true
		}
		d := int(rows[0].EventTime.Sub(start) / (24 * time.Hour))
		byDay[min(d, days-1)] = append(byDay[min(d, days-1)], rows...)
	}
	var redelivered []store.EventRow
	for _, d := range []int{2, 0, 1} { // the last day arrives first
		rows := byDay[d]
		var batch []store.EventRow
		for _, r := range rows {
			batch = append(batch, r)
			switch n := rng.IntN(16); {
			case single[r.SessionID]:
			case n == 0:
				batch = append(batch, r) // twice in one insert
			case n == 1:
				redelivered = append(redelivered, r)
			}
			if len(batch) >= 500 {
				insertAll(t, ws, batch)
				batch = nil
			}
		}
		insertAll(t, ws, batch)
	}
	insertAll(t, ws, redelivered)

	for _, w := range ws {
		var all, final uint64
		if err := w.Conn().QueryRow(ctx, "SELECT count() FROM "+w.Database()+".events").Scan(&all); err != nil {
			t.Fatal(err)
		}
		if err := w.Conn().QueryRow(ctx, "SELECT count() FROM "+w.Database()+".events FINAL").Scan(&final); err != nil {
			t.Fatal(err)
		}
		if all <= final {
			t.Fatalf("%s: %d rows, %d after FINAL: the test needs unmerged duplicates", w.Database(), all, final)
		}
		t.Logf("%s: %d rows, %d events", w.Database(), all, final)
	}
	return start
}

func insertAll(t *testing.T, ws []*store.Store, rows []store.EventRow) {
	t.Helper()
	for _, w := range ws {
		insert(t, w, rows)
	}
}

// equivalencePeriods are the periods every report is compared over, from
// the first day of storeTroubled's data.
func equivalencePeriods(start time.Time) []Period {
	return []Period{
		{From: start, To: eventgen.PeriodEnd},
		{From: start.AddDate(0, 0, 1), To: start.AddDate(0, 0, 2)},
		{From: start.Add(31*time.Hour + 17*time.Minute + 3*time.Second), To: start.Add(50*time.Hour + 1*time.Second)},
		// A whole day between two partial ones: the pre-aggregated reports
		// merge calls and sessions that span the day's edges.
		{From: start.Add(7*time.Hour + 13*time.Minute), To: eventgen.PeriodEnd.Add(-3 * time.Hour)},
	}
}

// reportsMatchGroundTruth runs every shipped report on q and its plain,
// slow ground truth on truth (the same data) over each period, and
// reports which returned rows.
func reportsMatchGroundTruth(t *testing.T, q, truth *DB, periods []Period) map[string]bool {
	t.Helper()
	reports, err := Reports()
	if err != nil {
		t.Fatal(err)
	}
	nonEmpty := map[string]bool{}
	for _, r := range reports {
		gt := r
		if src, err := groundTruth.ReadFile("testdata/groundtruth/" + r.Name + ".sql"); err == nil {
			if gt, err = ParseReport(r.Name, string(src)); err != nil {
				t.Fatal(err)
			}
		} else if !strings.Contains(r.SQL, "FINAL") {
			// A report that reads FINAL is its own ground truth; one that
			// does not must keep its slow, plain form here.
			t.Errorf("%s reads no FINAL and has no testdata/groundtruth/%s.sql", r.Name, r.Name)
			continue
		}
		for _, p := range periods {
			name := fmt.Sprintf("%s/%s..%s", r.Name, p.From.Format("02T15:04:05"), p.To.Format("02T15:04:05"))
			t.Run(name, func(t *testing.T) {
				got, want := againstGroundTruth(t, q, truth, r, gt, p)
				// Rows that tie on the report's ORDER BY may come in any
				// order, and so may the elements of groupUniqArray.
				if diff := cmp.Diff(canonical(want), canonical(got)); diff != "" {
					t.Errorf("(-ground truth +report):\n%s", diff)
				}
				if len(got.Rows) > 0 {
					nonEmpty[r.Name] = true
				}
			})
		}
	}
	return nonEmpty
}

// plant deletes or adds rows in some sessions so that the findings
// reports have findings: a call with no policy decision, an asked call
// whose approval decision is missing, an allowed call that never
// completed, and a second event with a used seq.
func plant(s int, rows []store.EventRow) []store.EventRow {
	drop := func(pred func(store.EventRow) bool) []store.EventRow {
		for i, r := range rows {
			if pred(r) {
				return slices.Delete(rows, i, i+1)
			}
		}
		return rows
	}
	switch s % 10 {
	case 1:
		return drop(func(r store.EventRow) bool { return r.EventType == "policy.decision" })
	case 2:
		return drop(func(r store.EventRow) bool { return r.EventType == "approval.decided" })
	case 3:
		return drop(func(r store.EventRow) bool { return r.EventType == "tool_call.completed" })
	case 5:
		// An egress event's id reused in the next session with other
		// content: one id in two chains.
		for _, r := range rows {
			if r.EventType == "net.egress" {
				forged := r
				forged.SessionID = fmt.Sprintf("bench-%08d", s+1)
				forged.AgentName = []string{"claude-code", "codex", "aider", "goose"}[(s+1)%4] // as eventgen.PeriodSession names it
				forged.Hash = strings.Repeat("e", 64)
				return append(rows, forged)
			}
		}
	case 9:
		// (Not 6: case 5 forges an event into session s+1.)
		// A completed call decided once more, deny, after it ran:
		// executed_after_deny.
		last := maxSeq(rows)
		for i := len(rows) - 1; i >= 0; i-- {
			if rows[i].EventType != "tool_call.completed" {
				continue
			}
			for _, d := range rows {
				if d.EventType == "policy.decision" && d.ToolCallID == rows[i].ToolCallID {
					forged := d
					forged.Decision, forged.Seq = "deny", last+1
					forged.EventID += 1 << 41
					forged.Hash = strings.Repeat("d", 64)
					return append(rows, forged)
				}
			}
		}
	case 7:
		// A call closed by a later runner: a runner_lost completion.
		for i, r := range rows {
			if r.EventType == "tool_call.completed" {
				rows[i].KilledReason = "runner_lost"
				return rows
			}
		}
	case 8:
		// The chain's last event stored under another tenant: each
		// tenant's rows alone are a gap-free prefix or a gap, together
		// they hold seq 1..n once each.
		var last uint64
		for _, r := range rows {
			if r.RunnerID == rows[0].RunnerID {
				last = max(last, r.Seq)
			}
		}
		for i, r := range rows {
			if r.Seq == last && r.RunnerID == rows[0].RunnerID {
				rows[i].Tenant = "other"
				return rows
			}
		}
	case 4:
		for _, r := range rows {
			// A forged egress decision with the seq of the real one (an
			// event no fold has to choose between, so the ground truth is
			// deterministic).
			if r.EventType == "net.egress" {
				forged := r
				forged.EventID += 1 << 40
				forged.Hash = strings.Repeat("f", 64)
				forged.Host = "forged.example.com"
				return append(rows, forged)
			}
		}
	}
	return rows
}

func maxSeq(rows []store.EventRow) uint64 {
	var m uint64
	for _, r := range rows {
		m = max(m, r.Seq)
	}
	return m
}

// migrationBackfill returns the backfill statement (its INSERT) of the
// migration named name, for db.
func migrationBackfill(t *testing.T, name, db string) string {
	t.Helper()
	all, err := chschema.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Name != name {
			continue
		}
		for _, st := range m.Statements(db) {
			if strings.HasPrefix(st, "INSERT INTO") {
				return st
			}
		}
	}
	t.Fatalf("migration %s has no INSERT backfill", name)
	return ""
}

func insert(t *testing.T, w *store.Store, rows []store.EventRow) {
	t.Helper()
	if err := w.InsertEvents(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
}

// canonical renders a result as sorted rows, with arrays' elements sorted.
// groundTruthOf is the plain, slow form of report name kept in
// testdata/groundtruth.
func groundTruthOf(t testing.TB, name string) *Report {
	t.Helper()
	src, err := groundTruth.ReadFile("testdata/groundtruth/" + name + ".sql")
	if err != nil {
		t.Fatal(err)
	}
	gt, err := ParseReport(name, string(src))
	if err != nil {
		t.Fatal(err)
	}
	return gt
}

// againstGroundTruth runs report r on q and its ground truth gt on truth
// (the same data, or the same database) over p.
func againstGroundTruth(t testing.TB, q, truth *DB, r, gt *Report, p Period) (got, want *Result) {
	t.Helper()
	res, err := q.RunReport(context.Background(), r, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err = truth.RunReport(context.Background(), gt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res, want
}

func canonical(res *Result) [][]string {
	c := cells(res)
	if len(c) == 0 {
		return c
	}
	body := c[1:]
	for _, row := range body {
		for i, v := range row {
			if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") && strings.Contains(v, " ") {
				el := strings.Fields(strings.Trim(v, "[]"))
				slices.Sort(el)
				row[i] = "[" + strings.Join(el, " ") + "]"
			}
		}
	}
	slices.SortFunc(body, func(a, b []string) int { return slices.Compare(a, b) })
	return c
}
