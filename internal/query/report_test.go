package query

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// loaded is the scenario in one database, shared by the report tests.
var loaded struct {
	once sync.Once
	db   string
	sc   *scenario
}

func scenarioDB(t *testing.T) (string, *scenario) {
	t.Helper()
	loaded.once.Do(func() {
		// The database outlives this test: TestMain drops it.
		s := testDBNoCleanup(t)
		p := newPipeline(t)
		loaded.sc = buildScenario(p)
		p.load(s)
		loaded.db = s.Database()
	})
	if loaded.db == "" {
		t.Fatal("scenario database was not built (see the first test's log)")
	}
	return loaded.db, loaded.sc
}

// cells renders a result as its header followed by its rows.
func cells(res *Result) [][]string {
	head := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		head[i] = c.Name
	}
	out := [][]string{head}
	for _, r := range res.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			row[i] = Cell(v)
		}
		out = append(out, row)
	}
	return out
}

var period = Period{From: day, To: day.AddDate(0, 0, 1)}

func TestReports(t *testing.T) {
	db, sc := scenarioDB(t)
	q := openReader(t, db)
	p1 := "1111111111111111111111111111111111111111111111111111111111111111"
	p2 := "2222222222222222222222222222222222222222222222222222222222222222"
	tests := []struct {
		report string
		period Period
		params map[string]string
		want   [][]string
	}{
		{"activity", period, nil, [][]string{
			{"tenant", "agent", "session_id", "first_event", "last_event", "event_count", "tool_call_count", "allowed", "asked", "denied", "approval_requests", "egress_decisions", "alert_count"},
			{"acme", "claude-code", "sess-alpha", "2026-01-05 10:00:00", "2026-01-05 10:05:00", "18", "3", "2", "1", "1", "1", "2", "1"},
			{"acme", "codex", "sess-beta", "2026-01-05 11:00:00", "2026-01-05 11:06:01", "21", "5", "1", "2", "2", "2", "2", "1"},
		}},
		// Two days: the session of the day before appears.
		{"activity", Period{day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)}, nil, [][]string{
			{"tenant", "agent", "session_id", "first_event", "last_event", "event_count", "tool_call_count", "allowed", "asked", "denied", "approval_requests", "egress_decisions", "alert_count"},
			{"acme", "claude-code", "sess-alpha", "2026-01-05 10:00:00", "2026-01-05 10:05:00", "18", "3", "2", "1", "1", "1", "2", "1"},
			{"acme", "claude-code", "sess-old", "2026-01-04 23:00:00", "2026-01-04 23:00:01", "4", "1", "1", "0", "0", "0", "0", "0"},
			{"acme", "codex", "sess-beta", "2026-01-05 11:00:00", "2026-01-05 11:06:01", "21", "5", "1", "2", "2", "2", "2", "1"},
		}},
		{"approvals", period, nil, [][]string{
			{"tenant", "approval_id", "session_id", "tool_call_id", "kind", "rule_id", "risk", "requester", "summary", "requested_at", "decision", "scope", "approver", "decided_at", "seconds_to_decide", "decision_count"},
			{"acme", sc.approvalA1, "sess-alpha", "tc2", "tool_call", "deploy/git-push", "high", "claude-code@laptop", "git push origin main", "2026-01-05 10:01:00", "approved", "once", "bob@acme.example", "2026-01-05 10:01:42", "42.5", "1"},
			{"acme", sc.approvalA2, "sess-beta", "tc4", "tool_call", "fs/destructive", "high", "codex@laptop", "rm -rf /workspace/build", "2026-01-05 11:00:01", "denied", "once", "carol@acme.example", "2026-01-05 11:00:10", "9", "1"},
			{"acme", sc.approvalA3, "sess-beta", "tc5", "tool_call", "deploy/make", "high", "codex@laptop", "make deploy", "2026-01-05 11:01:00", "pending", "", "", "NULL", "NULL", "0"},
		}},
		{"unapproved_actions", period, nil, [][]string{
			{"tenant", "session_id", "tool_call_id", "completed_at", "command", "first_decision", "last_decision", "approval_ids", "finding"},
			{"acme", "sess-beta", "tc5", "2026-01-05 11:01:30", "make deploy", "ask", "ask", "[" + sc.approvalA3 + "]", "ask_without_approval"},
			{"acme", "sess-beta", "tc6", "2026-01-05 11:02:01", "echo hi", "", "", "[]", "no_policy_decision"},
			{"acme", "sess-beta", "tc7", "2026-01-05 11:03:02", "git push --force", "deny", "deny", "[]", "executed_after_deny"},
		}},
		// The approved push of sess-alpha is not a finding; the day before
		// has none either.
		{"unapproved_actions", Period{day.AddDate(0, 0, -1), day}, nil, [][]string{
			{"tenant", "session_id", "tool_call_id", "completed_at", "command", "first_decision", "last_decision", "approval_ids", "finding"},
		}},
		{"denied_egress", period, nil, [][]string{
			{"host", "port", "reason_code", "attempts", "sessions", "first_attempt", "last_attempt"},
			{"evil.example.com", "443", "default_deny", "2", "1", "2026-01-05 11:04:00", "2026-01-05 11:04:30"},
			{"169.254.169.254", "80", "metadata_address", "1", "1", "2026-01-05 10:02:00", "2026-01-05 10:02:00"},
		}},
		{"alerts", period, nil, [][]string{
			{"rule_id", "severity", "alerts", "matches", "sessions", "holds", "first_alert", "last_alert"},
			{"sandbox/metadata-probe", "high", "1", "1", "1", "1", "2026-01-05 10:02:05", "2026-01-05 10:02:05"},
			{"egress/denied-burst", "medium", "1", "2", "1", "0", "2026-01-05 11:05:00", "2026-01-05 11:05:00"},
		}},
		// Every allowed call of the scenario completed.
		{"dangling_calls", Period{day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)}, nil, [][]string{
			{"tenant", "session_id", "runner_id", "tool_call_id", "tool_name", "command", "requested_at", "allowed_at", "session_ended", "end_reason", "finding"},
		}},
		{"chain_breaks", period, nil, [][]string{
			{"tenant", "session_id", "runner_id", "kind", "event_id", "expected_seq", "got_seq", "detail", "source"},
		}},
		{"top_commands", period, nil, [][]string{
			{"tool_name", "command", "calls", "allowed", "asked", "denied", "executed"},
			{"shell", "ls -la", "2", "2", "0", "0", "2"},
			{"shell", "curl http://169.254.169.254/latest/meta-data", "1", "0", "0", "1", "0"},
			{"shell", "echo hi", "1", "0", "0", "0", "1"},
			{"shell", "git push --force", "1", "0", "0", "1", "1"},
			{"shell", "git push origin main", "1", "1", "1", "0", "1"},
			{"shell", "make deploy", "1", "0", "1", "0", "1"},
			{"shell", "rm -rf /workspace/build", "1", "0", "1", "1", "0"},
		}},
		{"top_commands", period, map[string]string{"limit": "2"}, [][]string{
			{"tool_name", "command", "calls", "allowed", "asked", "denied", "executed"},
			{"shell", "ls -la", "2", "2", "0", "0", "2"},
			{"shell", "curl http://169.254.169.254/latest/meta-data", "1", "0", "0", "1", "0"},
		}},
		{"policy_versions", period, nil, [][]string{
			{"policy_id", "policy_sha256", "first_used", "last_used", "decisions", "denials", "sessions", "emitters"},
			{"default-dev", p1, "2026-01-05 10:00:01", "2026-01-05 10:02:00", "4", "1", "1", "1"},
			{"egress-dev", egressP, "2026-01-05 10:02:00", "2026-01-05 11:04:30", "5", "3", "2", "2"},
			{"default-dev", p2, "2026-01-05 11:00:01", "2026-01-05 11:06:00", "5", "2", "1", "1"},
		}},
		{"events_per_day", Period{day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)}, nil, [][]string{
			{"day", "event_count"}, {"2026-01-04", "4"}, {"2026-01-05", "39"},
		}},
		{"decisions", period, nil, [][]string{
			{"decision_type", "decisions"},
			{"egress allow", "1"}, {"egress deny", "3"},
			{"tool call allow", "3"}, {"tool call ask", "3"}, {"tool call deny", "3"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.report, func(t *testing.T) {
			r, err := FindReport(tc.report)
			if err != nil {
				t.Fatal(err)
			}
			res, err := q.RunReport(context.Background(), r, tc.period, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cells(res)); diff != "" {
				t.Errorf("%s rows (-want +got):\n%s", tc.report, diff)
			}
		})
	}
}

// TestEveryReportIsTested keeps TestReports complete as reports are added.
func TestEveryReportRuns(t *testing.T) {
	db, _ := scenarioDB(t)
	all, err := Reports()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 10 {
		t.Fatalf("%d reports; want the 10 of reports/", len(all))
	}
	for _, r := range all {
		for _, f := range []string{FormatTable, FormatCSV, FormatJSON, FormatNDJSON, FormatHTML} {
			err := RunReport(context.Background(), readerConfig(t, db), ReportCommand{Name: r.Name, Period: period},
				Output{Format: f, W: io.Discard})
			if err != nil {
				t.Errorf("%s as %s: %v", r.Name, f, err)
			}
		}
	}
}

func TestFailOnFindings(t *testing.T) {
	db, _ := scenarioDB(t)
	cfg := readerConfig(t, db)
	tests := []struct {
		report string
		fail   bool
		want   error
		code   int
	}{
		{"unapproved_actions", true, ErrFindings, 1},
		{"unapproved_actions", false, nil, 0},
		{"chain_breaks", true, nil, 0},   // intact chains: no findings
		{"dangling_calls", true, nil, 0}, // every allowed call completed
		{"activity", true, nil, 0},       // not a findings report
	}
	for _, tc := range tests {
		err := RunReport(context.Background(), cfg, ReportCommand{Name: tc.report, Period: period, FailOnFindings: tc.fail},
			Output{Format: FormatTable, W: io.Discard})
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s fail=%v: err %v, want %v", tc.report, tc.fail, err, tc.want)
		}
		if got := ExitCode(err); got != tc.code {
			t.Errorf("%s fail=%v: exit %d, want %d", tc.report, tc.fail, got, tc.code)
		}
	}
}

// TestReportCharts draws every chart of every shipped report over the
// scenario: one bar per distinct label, whatever the report groups by (the
// approvals chart once drew one bar per approval).
func TestReportCharts(t *testing.T) {
	db, _ := scenarioDB(t)
	q := openReader(t, db)
	all, err := Reports()
	if err != nil {
		t.Fatal(err)
	}
	type bar struct {
		Label string
		Value float64
	}
	want := map[string][][]bar{
		"activity":       {{{"2026-01-05", 39}}, {{"egress allow", 1}, {"egress deny", 3}, {"tool call allow", 3}, {"tool call ask", 3}, {"tool call deny", 3}}},
		"approvals":      {{{"approved", 1}, {"denied", 1}, {"pending", 1}}, {{"tool_call", 25.75}}},
		"alerts":         {{{"sandbox/metadata-probe", 1}, {"egress/denied-burst", 1}}},
		"denied_egress":  {{{"evil.example.com", 2}, {"169.254.169.254", 1}}},
		"events_per_day": {{{"2026-01-05", 39}}},
		"decisions":      {{{"egress allow", 1}, {"egress deny", 3}, {"tool call allow", 3}, {"tool call ask", 3}, {"tool call deny", 3}}},
	}
	for _, r := range all {
		if len(r.Charts) == 0 {
			continue
		}
		t.Run(r.Name, func(t *testing.T) {
			res, err := q.RunReport(context.Background(), r, period, nil)
			if err != nil {
				t.Fatal(err)
			}
			charts, err := q.charts(context.Background(), r, res, period)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]bar
			for _, c := range charts {
				seen := map[string]bool{}
				var bars []bar
				for i, l := range c.Labels {
					if seen[l] {
						t.Errorf("%s: label %q drawn twice", c.Title, l)
					}
					seen[l] = true
					bars = append(bars, bar{l, c.Values[i]})
				}
				got = append(got, bars)
			}
			if w, ok := want[r.Name]; ok {
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("charts (-want +got):\n%s", diff)
				}
			}
		})
	}
}
