package detect

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func loadYAML(t testing.TB, files map[string]string) (*RuleSet, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return LoadFS(fsys)
}

func mustLoad(t testing.TB, files map[string]string) *RuleSet {
	t.Helper()
	rs, err := loadYAML(t, files)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return rs
}

// TestShippedRules is `detect test rules/` and `detect lint rules/` under go test.
func TestShippedRules(t *testing.T) {
	rs, err := Load("../../rules")
	if err != nil {
		t.Fatalf("rules/ does not load:\n%v", err)
	}
	if n := len(rs.Rules) + len(rs.SQLRules); n < 12 {
		t.Errorf("rules/ has %d rules, want at least 12", n)
	}
	for _, res := range RunTests(rs) {
		if !res.Pass {
			t.Errorf("%s:%d: %s / %s: expected %s, got %d alerts %s", res.File, res.Line, res.Rule, res.Test, res.Expected(), res.Got, res.Err)
		}
	}
	for _, f := range Lint(rs) {
		t.Errorf("lint: %s", f)
	}
	for _, r := range rs.Rules {
		if len(r.Tags) == 0 || !strings.HasPrefix(strings.Join(r.Tags, " "), "attack.") {
			t.Errorf("rule %s has no MITRE ATT&CK tags", r.ID)
		}
	}
	var out, errOut bytes.Buffer
	if code := TestCommand("../../rules", &out, &errOut); code != ExitOK {
		t.Errorf("TestCommand = %d, stderr:\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "RULE") || !strings.Contains(out.String(), "0 failed") {
		t.Errorf("table output:\n%s", out.String())
	}
}

const ruleHead = `
rules:
  - id: t.rule
    version: "1"
    title: test rule
    severity: low
`

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		wantFile string
		wantLine int
		want     string // substring of the reason
	}{
		{
			name:     "misspelt payload field",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [tool_call.requested]\n    match: payload.tool_nme == \"bash\"\n"},
			wantFile: "r.yaml", wantLine: 8, want: "undefined field 'tool_nme'",
		},
		{
			name:     "field of another event type",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [net.egress]\n    match: payload.arguments.path == \"x\"\n"},
			wantFile: "r.yaml", wantLine: 8, want: "undefined field 'arguments'",
		},
		{
			name:     "misspelt envelope field in a block scalar",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [net.egress]\n    match: |\n      payload.host == \"x\" &&\n      event.sesion_id == \"s\"\n"},
			wantFile: "r.yaml", wantLine: 10, want: "undefined field 'sesion_id'",
		},
		{
			name:     "misspelt field in output",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [net.egress]\n    match: \"true\"\n    output: \"to {{payload.hots}}\"\n"},
			wantFile: "r.yaml", wantLine: 9, want: "undefined field 'hots'",
		},
		{
			name:     "unknown key",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [net.egress]\n    match: \"true\"\n    window: {duration: 5m, treshold: 3}\n"},
			wantFile: "r.yaml", wantLine: 9, want: `unknown key "treshold"`,
		},
		{
			name:     "match is not bool",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [net.egress]\n    match: payload.host\n"},
			wantFile: "r.yaml", wantLine: 8, want: "want bool",
		},
		{
			name:     "unknown event type",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [tool_call.request]\n    match: \"true\"\n"},
			wantFile: "r.yaml", wantLine: 3, want: `unknown event type "tool_call.request"`,
		},
		{
			name:     "payload in an any-type rule",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [\"*\"]\n    match: payload.host == \"x\"\n"},
			wantFile: "r.yaml", wantLine: 8, want: "undeclared reference to 'payload'",
		},
		{
			name:     "unknown list",
			files:    map[string]string{"r.yaml": ruleHead + "    on: [net.egress]\n    match: payload.host in lists.nope\n"},
			wantFile: "r.yaml", wantLine: 8, want: "undeclared reference",
		},
		{
			name: "macro cycle",
			files: map[string]string{
				"m.yaml": "macros:\n  a: b()\n  b: a()\n",
			},
			wantFile: "m.yaml", wantLine: 2, want: "expands itself",
		},
		{
			name:     "bad severity",
			files:    map[string]string{"r.yaml": strings.Replace(ruleHead, "severity: low", "severity: urgent", 1) + "    on: [net.egress]\n    match: \"true\"\n"},
			wantFile: "r.yaml", wantLine: 3, want: `severity "urgent"`,
		},
		{
			name: "duplicate rule id",
			files: map[string]string{
				"a.yaml": ruleHead + "    on: [net.egress]\n    match: \"true\"\n",
				"b.yaml": ruleHead + "    on: [net.egress]\n    match: \"true\"\n",
			},
			wantFile: "b.yaml", wantLine: 3, want: "already used at a.yaml:3",
		},
		{
			name: "test event that the schema rejects",
			files: map[string]string{"r.yaml": ruleHead + "    on: [net.egress]\n    match: \"true\"\n" +
				"    tests:\n      - name: bad\n        expect: fire\n        events:\n          - {type: net.egress, payload: {port: 70000}}\n"},
			wantFile: "r.yaml", wantLine: 13, want: "/payload/port",
		},
		{
			name: "test event with an unknown payload field",
			files: map[string]string{"r.yaml": ruleHead + "    on: [net.egress]\n    match: \"true\"\n" +
				"    tests:\n      - name: bad\n        expect: fire\n        events:\n          - {type: net.egress, payload: {hots: x}}\n"},
			wantFile: "r.yaml", wantLine: 13, want: "hots",
		},
		{
			name:     "SQL rule that writes",
			files:    map[string]string{"s.yaml": "sql_rules:\n  - id: s.r\n    version: \"1\"\n    title: t\n    severity: low\n    schedule: 1m\n    query: |\n      SELECT 1 AS group_key, 1 AS count, '' AS message, [] AS event_ids FROM events WHERE t >= {from} AND t < {to};\n      INSERT INTO x VALUES (1)\n"},
			wantFile: "s.yaml", wantLine: 8, want: "INSERT is not allowed",
		},
		{
			name:     "YAML syntax",
			files:    map[string]string{"r.yaml": "rules:\n  - id: [\n"},
			wantFile: "r.yaml", wantLine: 2, want: "did not find expected node content",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAML(t, tc.files)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			if !errors.Is(err, ErrInvalidRule) {
				t.Errorf("error %v is not ErrInvalidRule", err)
			}
			var les LoadErrors
			if !errors.As(err, &les) {
				t.Fatalf("error %T is not LoadErrors", err)
			}
			for _, le := range les {
				if le.File == tc.wantFile && le.Line == tc.wantLine && strings.Contains(le.Reason, tc.want) {
					return
				}
			}
			t.Errorf("no error at %s:%d containing %q; got:\n%v", tc.wantFile, tc.wantLine, tc.want, err)
		})
	}
}

func at(s int) time.Time {
	return time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).Add(time.Duration(s) * time.Second)
}

// alertView is what the table tests compare.
type alertView struct {
	Rule       string
	Group      string
	Count      uint64
	Suppressed uint64
	Summary    bool
	First      int // seconds after at(0)
	Last       int
	IDs        int
}

func view(as []Alert) []alertView {
	var out []alertView
	for _, a := range as {
		out = append(out, alertView{a.RuleID, a.GroupKey, a.Count, a.Suppressed, a.Summary,
			int(a.FirstSeen.Sub(at(0)) / time.Second), int(a.LastSeen.Sub(at(0)) / time.Second), len(a.EventIDs)})
	}
	return out
}

func runAll(t testing.TB, e *Engine, evs []*events.Envelope) []Alert {
	t.Helper()
	var out []Alert
	for _, ev := range evs {
		as, err := e.Eval(ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, as...)
	}
	return out
}

const windowRules = `
rules:
  - id: w.count
    version: "1"
    title: denials
    severity: low
    on: [net.egress]
    match: payload.decision == "deny"
    window: {duration: 60s, threshold: 3}
  - id: w.distinct
    version: "1"
    title: distinct hosts
    severity: low
    on: [net.egress]
    match: "true"
    window: {duration: 60s, threshold: 3, distinct: payload.host}
    output: "{{count}} hosts: {{distinct}}"
`

func TestWindow(t *testing.T) {
	type step struct {
		sec     int
		session string
		host    string
		deny    bool
	}
	tests := []struct {
		name  string
		rule  string
		steps []step
		want  []alertView
	}{
		{"count reaches threshold", "w.count", []step{{0, "s1", "a", true}, {10, "s1", "a", true}, {20, "s1", "a", true}},
			[]alertView{{"w.count", "s1", 3, 0, false, 0, 20, 3}}},
		{"non-matching events do not count", "w.count", []step{{0, "s1", "a", true}, {10, "s1", "a", false}, {20, "s1", "a", true}}, nil},
		{"old events slide out", "w.count", []step{{0, "s1", "a", true}, {30, "s1", "a", true}, {70, "s1", "a", true}}, nil},
		{"sliding keeps recent ones", "w.count", []step{{0, "s1", "a", true}, {30, "s1", "a", true}, {70, "s1", "a", true}, {80, "s1", "a", true}},
			[]alertView{{"w.count", "s1", 3, 0, false, 30, 80, 3}}},
		{"groups are separate", "w.count", []step{{0, "s1", "a", true}, {1, "s2", "a", true}, {2, "s1", "a", true}, {3, "s2", "a", true}}, nil},
		{"fires again after threshold new matches", "w.count", []step{{0, "s1", "a", true}, {1, "s1", "a", true}, {2, "s1", "a", true}, {3, "s1", "a", true}, {4, "s1", "a", true}, {5, "s1", "a", true}},
			[]alertView{{"w.count", "s1", 3, 0, false, 0, 2, 3}, {"w.count", "s1", 3, 0, false, 3, 5, 3}}},
		{"distinct ignores repeats", "w.distinct", []step{{0, "s1", "a", false}, {1, "s1", "a", false}, {2, "s1", "b", false}, {3, "s1", "b", false}}, nil},
		{"distinct reaches threshold", "w.distinct", []step{{0, "s1", "a", false}, {1, "s1", "a", false}, {2, "s1", "b", false}, {3, "s1", "c", false}},
			[]alertView{{"w.distinct", "s1", 3, 0, false, 1, 3, 3}}},
	}
	rs := mustLoad(t, map[string]string{"r.yaml": windowRules})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream(t)
			var evs []*events.Envelope
			for _, st := range tc.steps {
				d, rc := events.DecisionAllow, events.ReasonAllowlisted
				if st.deny {
					d, rc = events.DecisionDeny, events.ReasonDefaultDeny
				}
				evs = append(evs, s.ev(egress(st.host, d, rc), at(st.sec), st.session))
			}
			got := view(runAll(t, NewEngine(rs, WithRules(tc.rule)), evs))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
		})
	}
	// The distinct values reach the message.
	s := newStream(t)
	as := runAll(t, NewEngine(rs, WithRules("w.distinct")), []*events.Envelope{
		s.ev(egress("a", events.DecisionAllow, events.ReasonAllowlisted), at(0), "s1"),
		s.ev(egress("b", events.DecisionAllow, events.ReasonAllowlisted), at(1), "s1"),
		s.ev(egress("c", events.DecisionAllow, events.ReasonAllowlisted), at(2), "s1"),
	})
	if len(as) != 1 || as[0].Message != "3 hosts: a, b, c" {
		t.Errorf("message = %+v", as)
	}
}

const seqRules = `
rules:
  - id: s.seq
    version: "1"
    title: read then egress
    severity: high
    sequence:
      within: 60s
      steps:
        - on: [tool_call.requested]
          match: glob(payload.arguments.path, "**/.ssh/*")
          capture: {path: payload.arguments.path}
        - on: [net.egress]
          match: "true"
          capture: {host: payload.host}
    output: "{{capture.path}} -> {{capture.host}}"
  - id: s.three
    version: "1"
    title: a b c
    severity: low
    sequence:
      within: 60s
      steps:
        - {on: [tool_call.requested], match: 'payload.arguments.command == "a"'}
        - {on: [tool_call.requested], match: 'payload.arguments.command == "b"'}
        - {on: [tool_call.requested], match: 'payload.arguments.command == "c"'}
`

func TestSequence(t *testing.T) {
	type step struct {
		sec     int
		session string
		what    string // "key", "file", "net", or a command for shell
	}
	tests := []struct {
		name  string
		rule  string
		steps []step
		want  []alertView
	}{
		{"A then B", "s.seq", []step{{0, "s1", "key"}, {30, "s1", "net"}}, []alertView{{"s.seq", "s1", 2, 0, false, 0, 30, 2}}},
		{"B then A", "s.seq", []step{{0, "s1", "net"}, {30, "s1", "key"}}, nil},
		{"too late", "s.seq", []step{{0, "s1", "key"}, {61, "s1", "net"}}, nil},
		{"other session", "s.seq", []step{{0, "s1", "key"}, {10, "s2", "net"}}, nil},
		{"non-matching A", "s.seq", []step{{0, "s1", "file"}, {10, "s1", "net"}}, nil},
		{"A is consumed", "s.seq", []step{{0, "s1", "key"}, {10, "s1", "net"}, {20, "s1", "net"}}, []alertView{{"s.seq", "s1", 2, 0, false, 0, 10, 2}}},
		{"latest A counts", "s.seq", []step{{0, "s1", "key"}, {50, "s1", "key"}, {100, "s1", "net"}}, []alertView{{"s.seq", "s1", 2, 0, false, 50, 100, 2}}},
		{"three steps", "s.three", []step{{0, "s1", "a"}, {1, "s1", "b"}, {2, "s1", "c"}}, []alertView{{"s.three", "s1", 3, 0, false, 0, 2, 3}}},
		{"three steps out of order", "s.three", []step{{0, "s1", "a"}, {1, "s1", "c"}, {2, "s1", "b"}}, nil},
	}
	rs := mustLoad(t, map[string]string{"r.yaml": seqRules})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream(t)
			var evs []*events.Envelope
			for _, st := range tc.steps {
				var p events.Payload
				switch st.what {
				case "key":
					p = readFile("/home/u/.ssh/id_rsa")
				case "file":
					p = readFile("/w/main.go")
				case "net":
					p = egress("x.example", events.DecisionAllow, events.ReasonAllowlisted)
				default:
					p = shell(st.what)
				}
				evs = append(evs, s.ev(p, at(st.sec), st.session))
			}
			got := runAll(t, NewEngine(rs, WithRules(tc.rule)), evs)
			if diff := cmp.Diff(tc.want, view(got)); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
			if tc.rule == "s.seq" && len(got) == 1 && got[0].Message != "/home/u/.ssh/id_rsa -> x.example" {
				t.Errorf("message %q", got[0].Message)
			}
		})
	}
}

const dedupRule = `
rules:
  - id: d.rule
    version: "1"
    title: shell
    severity: medium
    on: [tool_call.requested]
    match: payload.tool_name == "bash"
    action: hold_session
    dedup: {suppress: 60s}
`

func TestDedupSuppression(t *testing.T) {
	rs := mustLoad(t, map[string]string{"r.yaml": dedupRule})
	tests := []struct {
		name     string
		secs     []int
		sessions []string
		advance  int // Advance to this second after the events (0: none)
		flush    bool
		want     []alertView
	}{
		{"first alert, then suppressed", []int{0, 10, 20}, nil, 0, false,
			[]alertView{{"d.rule", "s1", 1, 0, false, 0, 0, 1}}},
		{"suppressed count carried on the next alert", []int{0, 10, 20, 70}, nil, 0, false,
			[]alertView{{"d.rule", "s1", 1, 0, false, 0, 0, 1}, {"d.rule", "s1", 1, 2, false, 70, 70, 1}}},
		{"summary when the window ends without a next alert", []int{0, 10, 20}, nil, 61, false,
			[]alertView{{"d.rule", "s1", 1, 0, false, 0, 0, 1}, {"d.rule", "s1", 2, 2, true, 10, 20, 2}}},
		{"no summary when nothing was suppressed", []int{0}, nil, 120, false,
			[]alertView{{"d.rule", "s1", 1, 0, false, 0, 0, 1}}},
		{"flush reports what is pending", []int{0, 5}, nil, 0, true,
			[]alertView{{"d.rule", "s1", 1, 0, false, 0, 0, 1}, {"d.rule", "s1", 1, 1, true, 5, 5, 1}}},
		{"keys are separate", []int{0, 1, 2}, []string{"s1", "s2", "s1"}, 0, true,
			[]alertView{{"d.rule", "s1", 1, 0, false, 0, 0, 1}, {"d.rule", "s2", 1, 0, false, 1, 1, 1}, {"d.rule", "s1", 1, 1, true, 2, 2, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream(t)
			e := NewEngine(rs)
			var evs []*events.Envelope
			for i, sec := range tc.secs {
				sess := "s1"
				if tc.sessions != nil {
					sess = tc.sessions[i]
				}
				evs = append(evs, s.ev(shell("id"), at(sec), sess))
			}
			got := runAll(t, e, evs)
			if tc.advance > 0 {
				got = append(got, e.Advance(at(tc.advance))...)
			}
			if tc.flush {
				got = append(got, e.Flush()...)
			}
			if diff := cmp.Diff(tc.want, view(got)); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
			st := e.Stats()
			var suppressed uint64
			for _, a := range got {
				if !a.Summary {
					suppressed += a.Suppressed
				} else if !tc.flush && tc.advance == 0 {
					t.Error("summary without advance or flush")
				}
			}
			if st.Suppressed != uint64(len(tc.secs))-uint64(countAlerts(got, "d.rule")) {
				t.Errorf("stats suppressed %d, events %d, alerts %d", st.Suppressed, len(tc.secs), countAlerts(got, "d.rule"))
			}
		})
	}
}

// Nothing suppressed is ever lost: over a long random stream, alerts plus
// their suppressed counts (carried or in summaries) equal the matches.
func TestDedupNeverDrops(t *testing.T) {
	rs := mustLoad(t, map[string]string{"r.yaml": dedupRule})
	e := NewEngine(rs, WithMaxGroups(3)) // force evictions too
	s := newStream(t)
	var evs []*events.Envelope
	for i := range 500 {
		evs = append(evs, s.ev(shell("id"), at(i*7), []string{"a", "b", "c", "d", "e"}[i%5]))
	}
	got := append(runAll(t, e, evs), e.Flush()...)
	var total uint64
	for _, a := range got {
		if a.Summary {
			total += a.Count
		} else {
			total += a.Count
		}
	}
	if total != 500 {
		t.Errorf("alerts and summaries account for %d matches, want 500", total)
	}
}

func TestSnapshotRestoreEquivalence(t *testing.T) {
	rs, err := Load("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	evs := mix(t, 6000, 7)
	whole := NewEngine(rs)
	want := append(runAll(t, whole, evs), whole.Flush()...)

	first := NewEngine(rs)
	got := runAll(t, first, evs[:len(evs)/2])
	snap, err := first.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	second := NewEngine(rs)
	if dropped, err := second.Restore(snap); err != nil || dropped != 0 {
		t.Fatalf("restore: dropped %d, %v", dropped, err)
	}
	got = append(got, runAll(t, second, evs[len(evs)/2:])...)
	got = append(got, second.Flush()...)
	if len(want) < 10 {
		t.Fatalf("only %d alerts over the mix; the test would prove little", len(want))
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("alerts differ after snapshot/restore (-whole +split):\n%s", diff)
	}
	// A snapshot restores into the same bytes.
	again, _ := second.Snapshot()
	third := NewEngine(rs)
	if _, err := third.Restore(again); err != nil {
		t.Fatal(err)
	}
	if snap2, _ := third.Snapshot(); !bytes.Equal(again, snap2) {
		t.Error("snapshot of a restored engine differs")
	}
}

func TestRestoreDropsChangedRules(t *testing.T) {
	rs := mustLoad(t, map[string]string{"r.yaml": windowRules})
	e := NewEngine(rs)
	s := newStream(t)
	runAll(t, e, []*events.Envelope{s.ev(egress("a", events.DecisionDeny, events.ReasonDefaultDeny), at(0), "s1")})
	snap, _ := e.Snapshot()
	rs2 := mustLoad(t, map[string]string{"r.yaml": strings.Replace(windowRules, `version: "1"`, `version: "2"`, 1)})
	dropped, err := NewEngine(rs2).Restore(snap)
	if err != nil || dropped != 1 {
		t.Errorf("dropped %d, err %v; want 1 rule dropped", dropped, err)
	}
	if _, err := NewEngine(rs2).Restore([]byte("{")); !errors.Is(err, ErrSnapshot) {
		t.Errorf("bad snapshot: %v", err)
	}
}

func TestLintFindings(t *testing.T) {
	rs := mustLoad(t, map[string]string{
		"common.yaml": "lists:\n  used: [a]\n  unused: [b]\nmacros:\n  used_m: payload.host in lists.used\n  unused_m: \"true\"\n",
		"r.yaml": `
rules:
  - id: l.good
    version: "1"
    title: good
    severity: low
    on: [net.egress]
    match: used_m()
    tests:
      - {name: fires, expect: fire, events: [{type: net.egress, payload: {host: a}}]}
      - {name: quiet, expect: no_fire, events: [{type: net.egress, payload: {host: b}}]}
  - id: l.wrong_type
    version: "1"
    title: tests never reach it
    severity: low
    on: [net.egress]
    match: "true"
    tests:
      - {name: fires, expect: fire, events: [{type: session.started}]}
      - {name: quiet, expect: no_fire, events: [{type: session.started}]}
  - id: l.never
    version: "1"
    title: never fires
    severity: low
    on: [net.egress]
    match: payload.port == 1
    tests:
      - {name: fires, expect: fire, events: [{type: net.egress}]}
  - id: l.untested
    version: "1"
    title: no tests
    severity: low
    on: [net.egress]
    match: "false"
`,
	})
	type f struct{ Code, Rule string }
	var got []f
	for _, x := range Lint(rs) {
		got = append(got, f{x.Code, x.Rule})
	}
	want := []f{
		{LintUnusedList, ""}, {LintUnusedMacro, ""},
		{LintNeverMatches, "l.wrong_type"},
		{LintMissingNoFire, "l.never"}, {LintNeverMatches, "l.never"},
		{LintMissingFire, "l.untested"}, {LintMissingNoFire, "l.untested"},
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b f) bool { return a.Code+a.Rule < b.Code+b.Rule })); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	var out, errOut bytes.Buffer
	dir := t.TempDir()
	if code := LintCommand(dir, &out, &errOut); code != ExitFail || !strings.Contains(out.String(), "load_error") {
		t.Errorf("lint of an empty dir: %d %q", code, out.String())
	}
}

func TestAlertPayloadsValidate(t *testing.T) {
	rs := mustLoad(t, map[string]string{"r.yaml": dedupRule})
	s := newStream(t)
	as := runAll(t, NewEngine(rs), []*events.Envelope{s.ev(shell("id"), at(0), "s1")})
	if len(as) != 1 {
		t.Fatalf("%d alerts", len(as))
	}
	a := as[0]
	chain := events.NewChain(events.ChainKey{SessionID: "s1", RunnerID: "detect-1"})
	env, err := events.New(a.Raised(), events.WithEventID("9000000000000000001"), events.WithTenant("acme"), events.WithActor(events.ActorRule, a.RuleID))
	if err != nil {
		t.Fatal(err)
	}
	if err := chain.Stamp(env); err != nil {
		t.Fatalf("alert.raised does not validate: %v", err)
	}
	held, ok := a.Held(env.EventID)
	if !ok {
		t.Fatal("hold_session alert gave no session.held")
	}
	henv, _ := events.New(held, events.WithEventID("9000000000000000002"), events.WithTenant("acme"), events.WithActor(events.ActorRule, a.RuleID))
	if err := chain.Stamp(henv); err != nil {
		t.Fatalf("session.held does not validate: %v", err)
	}
	a.Action = ActionRequestApproval
	req, ok := a.ApprovalRequest(env.EventID, at(900))
	if !ok {
		t.Fatal("request_approval alert gave no approval.requested")
	}
	renv, _ := events.New(req, events.WithEventID("9000000000000000003"), events.WithTenant("acme"), events.WithActor(events.ActorRule, a.RuleID))
	if err := chain.Stamp(renv); err != nil {
		t.Fatalf("approval.requested does not validate: %v", err)
	}
	if _, ok := a.Held(env.EventID); ok {
		t.Error("request_approval alert asked for a hold")
	}
}

type sinkFunc func(Alert) error

func (f sinkFunc) Raise(_ context.Context, a Alert) error { return f(a) }

func TestProcessUsesSink(t *testing.T) {
	rs := mustLoad(t, map[string]string{"r.yaml": dedupRule})
	s := newStream(t)
	ev := s.ev(shell("id"), at(0), "s1")
	if err := NewEngine(rs).Process(context.Background(), ev); !errors.Is(err, ErrNoSink) {
		t.Errorf("no sink: %v", err)
	}
	var got []string
	e := NewEngine(rs, WithSink(sinkFunc(func(a Alert) error { got = append(got, a.RuleID); return nil })))
	if err := e.Process(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"d.rule"}, got); diff != "" {
		t.Error(diff)
	}
	boom := errors.New("kafka down")
	e = NewEngine(rs, WithSink(sinkFunc(func(Alert) error { return boom })))
	if err := e.Process(context.Background(), ev); !errors.Is(err, boom) {
		t.Errorf("sink error not returned: %v", err)
	}
}
