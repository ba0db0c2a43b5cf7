package detect

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// TestResult is the outcome of one inline rule test.
type TestResult struct {
	Rule   string
	Test   string
	File   string
	Line   int
	Expect Expect
	// Want is the exact alert count the test asks for, or -1 for "at
	// least one" (fire) and 0 for no_fire.
	Want int
	// Got is the alerts the rule raised (summaries not included).
	Got  int
	Pass bool
	// Err is set when the test could not run.
	Err string
}

// Expected renders the expectation for a table.
func (r TestResult) Expected() string {
	if r.Want > 0 {
		return fmt.Sprintf("fire x%d", r.Want)
	}
	return string(r.Expect)
}

func judge(t Test, got int) (want int, pass bool) {
	switch {
	case t.Count != nil:
		return *t.Count, got == *t.Count
	case t.Expect == ExpectFire:
		return -1, got > 0
	default:
		return 0, got == 0
	}
}

// RunTests runs every inline test of every rule (disabled rules too), each
// test on a fresh engine holding only its rule, and returns the results in
// rule file order.
func RunTests(rs *RuleSet) []TestResult {
	var out []TestResult
	for _, r := range rs.Rules {
		for _, t := range r.Tests {
			e := NewEngine(rs, WithRules(r.ID), WithDisabled())
			got := 0
			res := TestResult{Rule: r.ID, Test: t.Name, File: cmp.Or(t.File, r.File), Line: t.Line, Expect: t.Expect}
			for _, ev := range t.Events {
				alerts, err := e.Eval(ev)
				if err != nil {
					res.Err = fmt.Sprintf("event %s: %v", ev.EventID, err)
					break
				}
				got += countAlerts(alerts, r.ID)
			}
			got += countAlerts(e.Flush(), r.ID)
			res.Got = got
			res.Want, res.Pass = judge(t, got)
			res.Pass = res.Pass && res.Err == ""
			out = append(out, res)
		}
	}
	for _, r := range rs.SQLRules {
		for _, t := range r.Tests {
			res := TestResult{Rule: r.ID, Test: t.Name, File: cmp.Or(t.File, r.File), Line: t.Line, Expect: t.Expect}
			runner := &SQLRunner{rules: []*SQLRule{r}, q: rowsQuerier(t.Rows), next: map[string]time.Time{}, dedup: map[string]map[string]*dedupEntry{}}
			to := DefaultTestStart
			alerts, err := runner.RunRule(context.Background(), r, to.Add(-r.Lookback), to)
			if err != nil {
				res.Err = err.Error()
			}
			res.Got = countAlerts(alerts, r.ID) + countAlerts(runner.Flush(), r.ID)
			res.Want, res.Pass = judge(t, res.Got)
			res.Pass = res.Pass && res.Err == ""
			out = append(out, res)
		}
	}
	return out
}

func countAlerts(as []Alert, rule string) int {
	n := 0
	for _, a := range as {
		if a.RuleID == rule && !a.Summary {
			n++
		}
	}
	return n
}

// rowsQuerier answers every query with fixed rows: a SQL rule test checks
// what the rule does with rows, not ClickHouse.
type rowsQuerier []map[string]any

func (q rowsQuerier) Query(context.Context, string, ...any) ([]map[string]any, error) {
	return q, nil
}
