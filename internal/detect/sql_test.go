package detect

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckSQL(t *testing.T) {
	const cols = "SELECT g AS group_key, count() AS count, m AS message, groupArray(toString(event_id)) AS event_ids FROM events WHERE "
	tests := []struct {
		name       string
		q          string
		wantBound  string
		wantParams []string
		wantErr    string
	}{
		{"select with range", cols + "t >= {from} AND t < {to}", cols + "t >= ? AND t < ?", []string{"from", "to"}, ""},
		{"params repeat", cols + "t >= {from} AND t < {to} AND x < {from}", cols + "t >= ? AND t < ? AND x < ?", []string{"from", "to", "from"}, ""},
		{"placeholder text in a string is a placeholder token only outside quotes", cols + "s = '{from}' AND t >= {from} AND t < {to}", cols + "s = '{from}' AND t >= ? AND t < ?", []string{"from", "to"}, ""},
		{"trailing semicolon", cols + "t >= {from} AND t < {to};", cols + "t >= ? AND t < ?", []string{"from", "to"}, ""},
		{"comments dropped", "-- new hosts\n" + cols + "t >= {from} /* lower */ AND t < {to}", cols + "t >= ?   AND t < ?", []string{"from", "to"}, ""},
		{"not a select", "DROP TABLE events", "", nil, "must be a SELECT"},
		{"two statements", cols + "t >= {from} AND t < {to}; SELECT 1", "", nil, "one statement"},
		{"forbidden word inside a string is fine", cols + "reason = 'drop it' AND t >= {from} AND t < {to}", cols + "reason = 'drop it' AND t >= ? AND t < ?", []string{"from", "to"}, ""},
		{"no range", cols + "1", "", nil, "{from} and {to}"},
		{"unknown placeholder", cols + "t >= {since} AND t < {to}", "", nil, "unknown placeholder {since}"},
		{"missing column", "SELECT 1 AS group_key, 2 AS count, '' AS message FROM e WHERE t >= {from} AND t < {to}", "", nil, "event_ids"},
		{"insert", "INSERT INTO events SELECT * FROM events WHERE t >= {from} AND t < {to}", "", nil, "must be a SELECT"},
		{"insert inside", cols + "t >= {from} AND t < {to} UNION ALL INSERT INTO x VALUES (1)", "", nil, "INSERT is not allowed"},
		{"into outfile", cols + "t >= {from} AND t < {to} INTO OUTFILE 'x'", "", nil, "OUTFILE is not allowed"},
		{"unterminated string", cols + "s = 'x AND t >= {from} AND t < {to}", "", nil, "unterminated"},
		// The guard is chsql's (its tests hold the cases); these are the
		// ones where this package's old guard read a rule differently.
		{"nested comment", "/* a /* b */ c */ " + cols + "t >= {from} AND t < {to}", "", nil, "must be a SELECT"},
		{"nested comment that hides nothing", "/* a /* b */ */ " + cols + "t >= {from} AND t < {to} # end", cols + "t >= ? AND t < ?", []string{"from", "to"}, ""},
		{"hash comment hides no quote", cols + "t >= {from} AND t < {to} # '\n; SELECT 1 -- '", "", nil, "one statement"},
		{"slash comment", cols + "t >= {from} AND t < {to} // DROP", cols + "t >= ? AND t < ?", []string{"from", "to"}, ""},
		{"parenthesised", "(" + cols + "t >= {from} AND t < {to})", "(" + cols + "t >= ? AND t < ?)", []string{"from", "to"}, ""},
		{"malformed placeholder", cols + "t >= {from} AND t < {to} AND {a b}", "", nil, "malformed placeholder"},
		{"placeholder with spaces", cols + "t >= { from } AND t < {to}", cols + "t >= ? AND t < ?", []string{"from", "to"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bound, params, err := checkSQL(tc.q)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantBound, bound); diff != "" {
				t.Errorf("bound (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantParams, params); diff != "" {
				t.Errorf("params (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeQuerier records queries and answers with rows per call.
type fakeQuerier struct {
	calls [][]any
	sql   []string
	rows  [][]map[string]any
	err   error
}

func (f *fakeQuerier) Query(_ context.Context, sql string, args ...any) ([]map[string]any, error) {
	f.sql = append(f.sql, sql)
	f.calls = append(f.calls, args)
	if f.err != nil {
		return nil, f.err
	}
	if len(f.rows) == 0 {
		return nil, nil
	}
	r := f.rows[0]
	f.rows = f.rows[1:]
	return r, nil
}

func TestSQLRunner(t *testing.T) {
	rs, err := Load("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	row := func(key string, n int, last time.Time) map[string]any {
		return map[string]any{"group_key": key, "count": uint64(n), "message": "new " + key, "event_ids": []string{"7000000000000000001"}, "last_seen": last}
	}
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	q := &fakeQuerier{rows: [][]map[string]any{
		{row("acme/a/x", 2, t0), row("acme/a/y", 1, t0)},
		{row("acme/a/x", 3, t0.Add(5*time.Minute))}, // within the 24h dedup: suppressed
		{},
	}}
	var raised []Alert
	runner := NewSQLRunner(rs, q, sinkFunc(func(a Alert) error { raised = append(raised, a); return nil }))
	for _, now := range []time.Time{t0, t0.Add(time.Minute), t0.Add(5 * time.Minute), t0.Add(10 * time.Minute)} {
		if err := runner.RunDue(context.Background(), now); err != nil {
			t.Fatal(err)
		}
	}
	// Runs at 10:00, 10:05, 10:10 (10:01 is not due).
	if len(q.calls) != 3 {
		t.Fatalf("%d queries, want 3", len(q.calls))
	}
	if diff := cmp.Diff([]any{t0.Add(-5 * time.Minute), t0, t0.Add(-5 * time.Minute), t0.Add(-5 * time.Minute)}, q.calls[0]); diff != "" {
		t.Errorf("first run's bound parameters (-want +got):\n%s", diff)
	}
	if strings.Contains(q.sql[0], "{from}") || !strings.Contains(q.sql[0], "?") {
		t.Errorf("placeholders not bound: %s", q.sql[0])
	}
	var keys []string
	for _, a := range raised {
		keys = append(keys, a.GroupKey)
	}
	if diff := cmp.Diff([]string{"acme/a/x", "acme/a/y"}, keys); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	sum := runner.Flush()
	if len(sum) != 1 || !sum[0].Summary || sum[0].Suppressed != 3 || sum[0].GroupKey != "acme/a/x" {
		t.Errorf("flush = %+v, want one summary of 3 suppressed for acme/a/x", sum)
	}

	boom := errors.New("connection refused")
	bad := NewSQLRunner(rs, &fakeQuerier{err: boom}, nil)
	if err := bad.RunDue(context.Background(), t0); !errors.Is(err, ErrQuery) || !errors.Is(err, boom) {
		t.Errorf("query error = %v", err)
	}
	badRow := NewSQLRunner(rs, &fakeQuerier{rows: [][]map[string]any{{{"group_key": 7}}}}, nil)
	if _, err := badRow.RunRule(context.Background(), rs.SQLRules[0], t0, t0); !errors.Is(err, ErrQuery) {
		t.Errorf("bad row error = %v", err)
	}
}
