package detect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOverridesShippedRules tunes the shipped rules with the example
// override file: the tuned rules load and their (replaced) tests pass.
func TestOverridesShippedRules(t *testing.T) {
	rs, err := Load("../../rules", WithOverrides("testdata/overrides/example.yaml"))
	if err != nil {
		t.Fatalf("rules with overrides do not load: %v", err)
	}
	for _, res := range RunTests(rs) {
		if !res.Pass {
			t.Errorf("rule %s, test %q: expected %s, got %d %s", res.Rule, res.Test, res.Expected(), res.Got, res.Err)
		}
	}
	r := rs.Rule("egress.repeated_denials")
	got := struct {
		Sev       string
		Threshold int
		Duration  time.Duration
		Suppress  time.Duration
		Tests     int
	}{string(r.Severity), r.Window.Threshold, r.Window.Duration, r.Dedup.Suppress, len(r.Tests)}
	want := struct {
		Sev       string
		Threshold int
		Duration  time.Duration
		Suppress  time.Duration
		Tests     int
	}{"low", 10, 10 * time.Minute, time.Hour, 3}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("egress.repeated_denials (-want +got):\n%s", d)
	}
	if a := rs.Rule("egress.cloud_metadata").Action; a != ActionAlert {
		t.Errorf("egress.cloud_metadata action %s, want alert", a)
	}
	if w := rs.Rule("agent.injection_then_egress").Sequence.Within; w != 2*time.Minute {
		t.Errorf("agent.injection_then_egress within %v, want 2m", w)
	}
	for _, s := range rs.SQLRules {
		if s.ID == "egress.new_destination" && (s.Enabled || s.Schedule != 15*time.Minute) {
			t.Errorf("egress.new_destination enabled=%v schedule=%v, want false and 15m", s.Enabled, s.Schedule)
		}
	}
	// Without the overrides the shipped values stand.
	plain, err := Load("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	if th := plain.Rule("egress.repeated_denials").Window.Threshold; th != 5 {
		t.Errorf("shipped threshold %d, want 5", th)
	}
}

const overrideRules = `
rules:
  - id: t.match
    version: "1"
    title: match
    severity: low
    on: [net.egress]
    match: payload.decision == "deny"
    tests:
      - {name: fires, expect: fire, events: [{type: net.egress, payload: {decision: deny, reason_code: default_deny}}]}
  - id: t.window
    version: "1"
    title: window
    severity: low
    on: [net.egress]
    match: payload.decision == "deny"
    window: {duration: 1m, threshold: 2}
  - id: t.seq
    version: "1"
    title: seq
    severity: low
    sequence:
      within: 5m
      steps:
        - {name: ask, on: [tool_call.requested], match: payload.tool_name == "bash"}
        - {name: out, on: [net.egress], match: payload.decision == "deny"}
sql_rules:
  - id: t.sql
    version: "1"
    title: sql
    severity: low
    schedule: 5m
    query: SELECT 'g' AS group_key, 1 AS count, 'm' AS message, [] AS event_ids FROM events WHERE event_time >= {from} AND event_time < {to}
`

func TestOverrides(t *testing.T) {
	tests := []struct {
		name     string
		override string
		// check inspects the loaded rules when err is "".
		check func(*testing.T, *RuleSet)
		err   string
	}{
		{name: "disable", override: "overrides:\n  - {rule: t.match, enabled: false}\n",
			check: func(t *testing.T, rs *RuleSet) {
				if rs.Rule("t.match").Enabled {
					t.Error("t.match still enabled")
				}
			}},
		{name: "exception stops a match", override: `overrides:
  - rule: t.match
    exceptions:
      - {name: lab, match: 'payload.host.endsWith(".lab")'}
    tests:
      - {name: lab host, expect: no_fire, events: [{type: net.egress, payload: {host: a.lab, decision: deny, reason_code: default_deny}}]}
      - {name: other host, expect: fire, events: [{type: net.egress, payload: {host: a.com, decision: deny, reason_code: default_deny}}]}
`, check: func(t *testing.T, rs *RuleSet) {
			for _, res := range RunTests(rs) {
				if !res.Pass {
					t.Errorf("%s %q failed: got %d", res.Rule, res.Test, res.Got)
				}
			}
		}},
		{name: "exception on one step", override: "overrides:\n  - rule: t.seq\n    exceptions:\n      - {name: x, step: out, match: 'payload.port == 22'}\n",
			check: func(t *testing.T, rs *RuleSet) {
				if m := rs.Rule("t.seq").Sequence.Steps[1].Match; !strings.Contains(m, "payload.port == 22") {
					t.Errorf("step out match %q lacks the exception", m)
				}
			}},
		{name: "sql schedule", override: "overrides:\n  - {rule: t.sql, schedule: 1m, lookback: 10m, min_count: 2, dedup: {suppress: 1h}}\n",
			check: func(t *testing.T, rs *RuleSet) {
				s := rs.SQLRules[0]
				if s.Schedule != time.Minute || s.Lookback != 10*time.Minute || s.MinCount != 2 || s.Dedup == nil {
					t.Errorf("got %+v", s)
				}
			}},
		{name: "unknown rule", override: "overrides:\n  - {rule: t.nope, enabled: false}\n", err: "overrides.yaml:2: override of t.nope: no rule has this id"},
		{name: "unknown key", override: "overrides:\n  - {rule: t.window, window: {treshold: 3}}\n", err: `overrides.yaml:2: unknown key "treshold" (known: duration, threshold)`},
		{name: "unknown top key", override: "override:\n  - {rule: t.window}\n", err: `overrides.yaml:1: unknown key "override" (known: overrides)`},
		{name: "no window", override: "overrides:\n  - {rule: t.match, window: {threshold: 3}}\n", err: "override of t.match: the rule has no window"},
		{name: "not a sequence", override: "overrides:\n  - {rule: t.match, sequence: {within: 1m}}\n", err: "override of t.match: the rule is not a sequence"},
		{name: "exception with unknown field", override: "overrides:\n  - rule: t.match\n    exceptions:\n      - name: typo\n        match: payload.hots == \"x\"\n",
			err: `overrides.yaml:5: override of t.match: exception "typo" on net.egress: in ` + "`payload.hots == \"x\"`" + `: undefined field 'hots'`},
		{name: "step on a match rule", override: "overrides:\n  - rule: t.match\n    exceptions:\n      - {name: x, step: out, match: 'true'}\n", err: "names a step, but the rule is not a sequence"},
		{name: "unknown step", override: "overrides:\n  - rule: t.seq\n    exceptions:\n      - {name: x, step: nope, match: 'true'}\n", err: `names step "nope", which the sequence does not have`},
		{name: "schedule on a stream rule", override: "overrides:\n  - {rule: t.match, schedule: 1m}\n", err: "belong to SQL rules"},
		{name: "exception on a sql rule", override: "overrides:\n  - rule: t.sql\n    exceptions:\n      - {name: x, match: 'true'}\n", err: "is a SQL rule"},
		{name: "twice", override: "overrides:\n  - {rule: t.match}\n  - {rule: t.match}\n", err: "rule t.match is already overridden at line 2"},
		{name: "event file in a test", override: "overrides:\n  - rule: t.match\n    tests:\n      - {name: x, expect: fire, events: [{file: e.json}]}\n", err: "events in an override file are written inline"},
		{name: "bad threshold", override: "overrides:\n  - {rule: t.window, window: {threshold: 0}}\n", err: "window.threshold must be 1 to 10000"},
		{name: "missing file", err: "override file: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "overrides.yaml")
			if tt.override != "" {
				if err := os.WriteFile(path, []byte(tt.override), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rs, err := LoadFS(fstest.MapFS{"r.yaml": {Data: []byte(overrideRules)}}, WithOverrides(path))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error containing %q", err, tt.err)
				}
				if !errors.Is(err, ErrInvalidRule) {
					t.Errorf("%v is not ErrInvalidRule", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, rs)
		})
	}
}

// FuzzOverrides: no override file may panic the loader.
func FuzzOverrides(f *testing.F) {
	seed, _ := os.ReadFile("testdata/overrides/example.yaml")
	f.Add(seed)
	f.Add([]byte("overrides:\n  - {rule: t.window, window: {threshold: 3}, exceptions: [{name: x, match: 'payload.port > 1'}]}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "o.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = LoadFS(fstest.MapFS{"r.yaml": {Data: []byte(overrideRules)}}, WithOverrides(path))
	})
}

// TestOverrideTestsReportTheirFile: a test an override file wrote is
// reported at the override file, a shipped test at the rule file.
func TestOverrideTestsReportTheirFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.yaml")
	o := "overrides:\n  - rule: t.match\n    tests:\n      - {name: wrong, expect: no_fire, events: [{type: net.egress, payload: {decision: deny, reason_code: default_deny}}]}\n"
	if err := os.WriteFile(path, []byte(o), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := LoadFS(fstest.MapFS{"r.yaml": {Data: []byte(overrideRules)}}, WithOverrides(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range RunTests(rs) {
		if res.Rule == "t.match" && (res.File != path || res.Line != 4 || res.Pass) {
			t.Errorf("got %s:%d pass=%v, want %s:4 failing", res.File, res.Line, res.Pass, path)
		}
	}
}
