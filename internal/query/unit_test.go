package query

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckReadOnly(t *testing.T) {
	tests := []struct {
		sql string
		ok  bool
	}{
		{"SELECT 1", true},
		{"  select 1;", true},
		{"(SELECT 1) UNION ALL (SELECT 2)", true},
		{"WITH 1 AS x SELECT x", true},
		{"-- comment\n/* nested /* */ */ SELECT 1", true},
		{"SHOW TABLES", true},
		{"DESCRIBE events", true},
		{"EXISTS TABLE events", true},
		{"SELECT 'DROP TABLE x; DELETE'", true},
		{"SELECT `INSERT` FROM t", true},
		{"SELECT 1 -- ; DROP TABLE x", true},
		{"INSERT INTO t VALUES (1)", false},
		{"insert into t select 1", false},
		{"DROP TABLE t", false},
		{"ALTER TABLE t DELETE WHERE 1", false},
		{"SELECT 1; SELECT 2", false},
		{"SELECT 1; DROP TABLE t", false},
		{"/* SELECT */ DROP TABLE t", false},
		{"SELECT * FROM t INTO OUTFILE 'x'", false},
		{"SELECT 1 SETTINGS readonly = 0", false},
		{"SET max_threads = 1", false},
		{"", false},
		{"   ;  ", false},
		{"SELECT 'unterminated", false},
		{"/* unterminated SELECT 1", false},
		{"RENAME TABLE a TO b", false},
		{"KILL QUERY WHERE 1", false},
		{"OPTIMIZE TABLE t", false},
	}
	for _, tc := range tests {
		err := CheckReadOnly(tc.sql)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrWriteStatement) {
			t.Errorf("CheckReadOnly(%q) = %v, want ok=%v", tc.sql, err, tc.ok)
		}
	}
}

func TestParseParam(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want Param
		err  bool
	}{
		{"n=5", Param{"n", uint64(5)}, false},
		{"n=05", Param{"n", "05"}, false},
		{"n=-5", Param{"n", "-5"}, false},
		{"s=hello world", Param{"s", "hello world"}, false},
		{"s=", Param{"s", ""}, false},
		{"s=a=b", Param{"s", "a=b"}, false},
		{"t=2026-01-02T03:04:05Z", Param{"t", ts}, false},
		{"n:UInt64=5", Param{"n", uint64(5)}, false},
		{"n:Int32=-5", Param{"n", int64(-5)}, false},
		{"f:Float64=1.5", Param{"f", 1.5}, false},
		{"s:String=42", Param{"s", "42"}, false},
		{"d:Date=2026-01-02", Param{"d", "2026-01-02"}, false},
		{"t:DateTime=2026-01-02T03:04:05Z", Param{"t", ts}, false},
		{"n:UInt8=256", Param{}, true},
		{"n:UInt64=1 OR 1=1", Param{}, true},
		{"f:Float64=NaN", Param{}, true},
		{"x:Weird=1", Param{}, true},
		{"novalue", Param{}, true},
		{"bad name=1", Param{}, true},
		{"1n=1", Param{}, true},
	}
	for _, tc := range tests {
		got, err := ParseParam(tc.in)
		if tc.err {
			if !errors.Is(err, ErrParam) {
				t.Errorf("ParseParam(%q) = %v, %v; want ErrParam", tc.in, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseParam(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseParam(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 30, 45, 123456789, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"now", time.Date(2026, 3, 10, 12, 30, 45, 0, time.UTC), false},
		{"-24h", time.Date(2026, 3, 9, 12, 30, 45, 0, time.UTC), false},
		{"7d", time.Date(2026, 3, 3, 12, 30, 45, 0, time.UTC), false},
		{"-7d", time.Date(2026, 3, 3, 12, 30, 45, 0, time.UTC), false},
		{"+1h", time.Date(2026, 3, 10, 13, 30, 45, 0, time.UTC), false},
		{"90m", time.Date(2026, 3, 10, 11, 0, 45, 0, time.UTC), false},
		{"1w", time.Date(2026, 3, 3, 12, 30, 45, 0, time.UTC), false},
		{"2026-01-02T03:04:05Z", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), false},
		{"2026-01-02T04:04:05+01:00", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), false},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), false},
		{"yesterday", time.Time{}, true},
		{"24", time.Time{}, true},
		{"-h", time.Time{}, true},
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in, now)
		if tc.err != (err != nil) || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestReportHeaders(t *testing.T) {
	all, err := Reports()
	if err != nil {
		t.Fatal(err)
	}
	var names, findings []string
	for _, r := range all {
		names = append(names, r.Name)
		if r.Findings {
			findings = append(findings, r.Name)
		}
		for _, c := range r.Charts {
			if c.Source != "self" {
				if _, err := FindReport(c.Source); err != nil {
					t.Errorf("%s: chart source: %v", r.Name, err)
				}
			}
		}
	}
	want := []string{"activity", "agent_self_approved", "agent_usage", "alerts", "approvals", "chain_breaks", "dangling_calls", "decisions", "denied_egress",
		"events_per_day", "policy_versions", "prompts_to_actions", "rule_precision", "top_commands", "unapproved_actions"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"agent_self_approved", "chain_breaks", "dangling_calls", "unapproved_actions"}, findings); diff != "" {
		t.Errorf("findings reports (-want +got):\n%s", diff)
	}
	bad := []string{
		"SELECT 1",
		"-- title: x\n-- purpose: y\nSELECT 1",
		"-- title: x\n-- purpose: y\n-- param: from DateTime\n-- param: to DateTime\n-- findings: maybe\nSELECT 1",
		"-- title: x\n-- purpose: y\n-- param: from DateTime\n-- param: to DateTime\n-- param: n UInt8 = 300\nSELECT 1",
		"-- title: x\n-- purpose: y\n-- param: from DateTime\n-- param: to DateTime\nDROP TABLE events",
		"-- title: x\n-- purpose: y\n-- param: from DateTime\n-- param: to DateTime\n-- chart: self a b total\nSELECT 1",
		"-- title: x\n-- purpose: y\n-- param: from DateTime\n-- param: to DateTime\n-- chart: self a\nSELECT 1",
	}
	for _, src := range bad {
		if _, err := ParseReport("bad", src); !errors.Is(err, ErrReport) {
			t.Errorf("ParseReport(%q) = %v, want ErrReport", src, err)
		}
	}
	if _, err := FindReport("nope"); !errors.Is(err, ErrUnknownReport) {
		t.Errorf("FindReport(nope) = %v", err)
	}
}

func TestTableFitsTheTerminal(t *testing.T) {
	res := &Result{
		Columns: []Column{{"id", "UInt64"}, {"command", "String"}, {"note", "String"}},
		Rows: [][]any{
			{uint64(1), strings.Repeat("x", 100), "short"},
			{uint64(22), "ls\n-la", "a"},
		},
	}
	var b strings.Builder
	if err := WriteTable(&b, res, TableOptions{Width: 40}); err != nil {
		t.Fatal(err)
	}
	// 2 + 2 + 29 + 2 + 5 = 40: the widest column gave way.
	want := "id  " + pad("command", 29) + "  note\n" +
		"──  " + strings.Repeat("─", 29) + "  ─────\n" +
		" 1  " + strings.Repeat("x", 28) + "…  short\n" +
		"22  " + pad("ls -la", 29) + "  a\n" +
		"(2 rows; cells cut to 40 columns, --wide or --format csv shows them whole)\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for _, line := range lines[:len(lines)-1] {
		if n := len([]rune(line)); n > 40 {
			t.Errorf("line %q is %d wide", line, n)
		}
	}
	b.Reset()
	WriteTable(&b, res, TableOptions{}) // --wide
	if !strings.Contains(b.String(), strings.Repeat("x", 100)) {
		t.Error("wide table cut a cell")
	}
}

func FuzzCheckReadOnly(f *testing.F) {
	for _, s := range []string{"SELECT 1", "DROP TABLE t", "SELECT ';' ; DROP", "/* /* */ SELECT", "`a``b`", "'\\''"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		err := CheckReadOnly(sql)
		if err != nil && !errors.Is(err, ErrWriteStatement) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if err == nil {
			// Whatever passes starts with a read keyword.
			toks, _ := tokens(sql)
			i := 0
			for i < len(toks) && toks[i] == "(" {
				i++
			}
			if i == len(toks) || !readKeywords[strings.ToUpper(toks[i])] {
				t.Fatalf("%q passed without a read keyword", sql)
			}
		}
	})
}

func FuzzParseParam(f *testing.F) {
	for _, s := range []string{"n=5", "n:UInt64=5", "s=' OR 1=1", "t:DateTime=-24h", "d:Date=2026-01-02", "=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParam(s)
		if err != nil {
			if !errors.Is(err, ErrParam) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !paramNameRE.MatchString(p.Name) {
			t.Fatalf("name %q passed", p.Name)
		}
	})
}

func FuzzParseReport(f *testing.F) {
	all, _ := Reports()
	for _, r := range all {
		f.Add(r.SQL)
	}
	f.Fuzz(func(t *testing.T, src string) {
		r, err := ParseReport("fuzz", src)
		if err != nil {
			if !errors.Is(err, ErrReport) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if r.Title == "" || CheckReadOnly(r.SQL) != nil {
			t.Fatalf("accepted a report without a title or with a write: %q", src)
		}
	})
}

func pad(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }

func TestChartFrom(t *testing.T) {
	res := &Result{
		Columns: []Column{{"summary", "String"}, {"decision", "String"}, {"seconds", "Nullable(Float64)"}, {"day", "Date"}},
	}
	secs := func(f float64) *float64 { return &f }
	for _, r := range []struct {
		summary, decision string
		secs              *float64
	}{
		{"git push", "approved", secs(40)},
		{"make deploy", "pending", nil},
		{"git push", "denied", secs(9)},
		{"git push", "approved", secs(2)},
		{"rm -rf build", "approved", secs(5)},
	} {
		res.Rows = append(res.Rows, []any{r.summary, r.decision, r.secs, "2026-01-05"})
	}
	type bar struct {
		Label string
		Value float64
	}
	tests := []struct {
		spec ChartSpec
		want []bar
	}{
		// The rows of a label fold into one bar; a NULL adds nothing and a
		// label with only NULLs draws none.
		{ChartSpec{Label: "summary", Value: "seconds", Agg: AggSum}, []bar{{"git push", 51}, {"rm -rf build", 5}}},
		{ChartSpec{Label: "summary", Value: "seconds", Agg: AggMax}, []bar{{"git push", 40}, {"rm -rf build", 5}}},
		{ChartSpec{Label: "summary", Value: "seconds", Agg: AggAvg}, []bar{{"git push", 17}, {"rm -rf build", 5}}},
		{ChartSpec{Label: "summary", Value: "seconds", Agg: AggMedian}, []bar{{"git push", 9}, {"rm -rf build", 5}}},
		{ChartSpec{Label: "decision", Value: "seconds", Agg: AggMedian}, []bar{{"approved", 5}, {"denied", 9}}},
		{ChartSpec{Label: "decision", Value: "summary", Agg: AggCount}, []bar{{"approved", 3}, {"pending", 1}, {"denied", 1}}},
		{ChartSpec{Label: "decision", Value: "seconds", Agg: AggCount}, []bar{{"approved", 3}, {"pending", 0}, {"denied", 1}}},
		{ChartSpec{Label: "day", Value: "seconds", Agg: AggSum}, []bar{{"2026-01-05", 56}}},
	}
	for _, tc := range tests {
		c, err := ChartFrom("t", res, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		var got []bar
		for i, l := range c.Labels {
			got = append(got, bar{l, c.Values[i]})
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.spec.Title(), diff)
		}
	}
	if _, err := ChartFrom("t", res, ChartSpec{Label: "summary", Value: "nope"}); !errors.Is(err, ErrReport) {
		t.Errorf("missing column: %v, want ErrReport", err)
	}
	many := &Result{Columns: []Column{{"k", "String"}, {"v", "UInt64"}}}
	for i := range 3 * MaxBars {
		many.Rows = append(many.Rows, []any{strconv.Itoa(i % (MaxBars + 5)), uint64(1)})
	}
	if c, _ := ChartFrom("t", many, ChartSpec{Label: "k", Value: "v", Agg: AggSum}); len(c.Labels) != MaxBars || c.Values[0] != 3 {
		t.Errorf("%d bars, first %v; want %d, 3", len(c.Labels), c.Values, MaxBars)
	}
}

// A session runner exec started has no agent; its timeline line names none.
func TestDescribeSessionStarted(t *testing.T) {
	tests := []struct {
		fields map[string]string
		want   string
	}{
		{map[string]string{"agent_name": "codex", "agent_version": "0.9", "workspace": "/ws", "image": "img", "operator": "ops"},
			"agent codex 0.9 in /ws, image img operator ops"},
		{map[string]string{"workspace": "/ws", "image": "img", "sandbox_profile": "default"},
			"in /ws, image img profile default"},
	}
	for _, tc := range tests {
		tc.fields["event_type"] = "session.started"
		if got := describe(func(k string) string { return tc.fields[k] }); got != tc.want {
			t.Errorf("describe(%v) = %q, want %q", tc.fields, got, tc.want)
		}
	}
}
