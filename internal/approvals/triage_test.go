package approvals

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

var triageIDs = func() *events.IDGen {
	g, err := events.NewIDGen(977)
	if err != nil {
		panic(err)
	}
	return g
}()

// triageEnv builds and signs a triage event with s.
func triageEnv(t *testing.T, s signing.Signer, p events.Payload, session, parent string, at time.Time) *events.Envelope {
	t.Helper()
	opts := []events.Option{events.WithIDs(triageIDs), events.WithSession(session, "approvals-test"), events.WithTenant(tenant),
		events.WithTime(at), events.WithActor(events.ActorHuman, "alice")}
	if parent != "" {
		opts = append(opts, events.WithParent(parent))
	}
	env, err := events.New(p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SignTriage(env); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestTriageFold(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	signer, pub := mustKey(t, "svc-k1")
	other, _ := mustKey(t, "svc-k1") // same id, another key: a forgery
	ks := mustKeySet(t, []signing.PublicKey{pub}, t0)
	alice := events.Actor{Type: events.ActorHuman, ID: "alice"}
	const alert = "7301"
	triaged := func(a events.TriageAction, assignee, comment string, at time.Time) events.Payload {
		return &events.AlertTriaged{Action: a, AlertEventID: alert, RuleID: "egress-burst", Assignee: assignee,
			Comment: comment, By: alice, TriagedAt: events.At(at)}
	}
	sup := &events.RuleSuppressed{RuleID: "egress-burst", Scope: events.SuppressionScope{Kind: events.SuppressGroupKey, Value: "pkg.internal"},
		ExpiresAt: events.At(t0.Add(2 * time.Hour)), Comment: "mirror rollout", By: alice, SuppressedAt: events.At(t0)}
	st := NewTriageState(ks)
	supEnv := triageEnv(t, signer, sup, "triage/egress-burst", "", t0)
	cases := []struct {
		name string
		env  *events.Envelope
		want ChangeKind
		code signing.Code
	}{
		{"acknowledge", triageEnv(t, signer, triaged(events.TriageAcknowledge, "", "", t0.Add(time.Minute)), "s1", alert, t0), ChangeTriaged, ""},
		{"assign", triageEnv(t, signer, triaged(events.TriageAssign, "bob", "", t0.Add(2*time.Minute)), "s1", alert, t0), ChangeTriaged, ""},
		{"assign without assignee", triageEnv(t, signer, triaged(events.TriageAssign, "", "", t0), "s1", alert, t0), ChangeRejected, CodeInvalidTriage},
		{"fp without comment", triageEnv(t, signer, triaged(events.TriageFalsePositive, "", "", t0), "s1", alert, t0), ChangeRejected, CodeInvalidTriage},
		{"forged", triageEnv(t, other, triaged(events.TriageTruePositive, "", "", t0), "s1", alert, t0), ChangeRejected, signing.CodeBadSignature},
		{"tp", triageEnv(t, signer, triaged(events.TriageTruePositive, "", "", t0.Add(3*time.Minute)), "s1", alert, t0), ChangeTriaged, ""},
		{"fp replaces tp", triageEnv(t, signer, triaged(events.TriageFalsePositive, "", "a backup job", t0.Add(4*time.Minute)), "s1", alert, t0), ChangeTriaged, ""},
		{"suppress", supEnv, ChangeTriaged, ""},
		{"lift unknown", triageEnv(t, signer, &events.RuleUnsuppressed{SuppressionEventID: "99", RuleID: "egress-burst", By: alice,
			UnsuppressedAt: events.At(t0)}, "triage/egress-burst", "", t0), ChangeRejected, CodeUnknownSuppression},
		{"not triage", func() *events.Envelope {
			e, _ := events.New(events.SessionReleased{Reason: "x", By: alice}, events.WithIDs(triageIDs), events.WithSession("s1", "r"), events.WithTenant(tenant), events.WithActor(events.ActorHuman, "alice"))
			return e
		}(), ChangeIgnored, ""},
	}
	for _, c := range cases {
		ch := st.Apply(c.env)
		if ch.Kind != c.want || ch.Rejection != c.code {
			t.Errorf("%s: %s %s, want %s %s", c.name, ch.Kind, ch.Rejection, c.want, c.code)
		}
	}
	if ch := st.Apply(cases[0].env); ch.Kind != ChangeDuplicate {
		t.Errorf("redelivery: %s", ch.Kind)
	}
	got, ok := st.Alert(alert)
	if !ok {
		t.Fatal("no triage state")
	}
	got.History = nil
	want := AlertTriage{AlertEventID: alert, RuleID: "egress-burst", Tenant: tenant, SessionID: "s1", Acknowledged: true,
		FirstTriagedAt: t0.Add(time.Minute), Assignee: "bob", Verdict: events.TriageFalsePositive, VerdictBy: "alice"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("triage state (-want +got):\n%s", diff)
	}

	suppressed := []struct {
		name                                 string
		rule, tenant, session, agent, groupK string
		at                                   time.Time
		want                                 bool
	}{
		{"covered", "egress-burst", tenant, "s9", "", "pkg.internal", t0.Add(time.Hour), true},
		{"other group key", "egress-burst", tenant, "s9", "", "evil.example", t0.Add(time.Hour), false},
		{"other rule", "egress-new", tenant, "s9", "", "pkg.internal", t0.Add(time.Hour), false},
		{"other tenant", "egress-burst", "globex", "s9", "", "pkg.internal", t0.Add(time.Hour), false},
		{"before", "egress-burst", tenant, "s9", "", "pkg.internal", t0.Add(-time.Second), false},
		{"expired", "egress-burst", tenant, "s9", "", "pkg.internal", t0.Add(2 * time.Hour), false},
	}
	for _, c := range suppressed {
		by, ok := st.Suppressed(c.rule, c.tenant, c.session, c.agent, c.groupK, c.at)
		if ok != c.want || (ok && by != supEnv.EventID) {
			t.Errorf("%s: suppressed %v by %q, want %v", c.name, ok, by, c.want)
		}
	}
	lift := triageEnv(t, signer, &events.RuleUnsuppressed{SuppressionEventID: supEnv.EventID, RuleID: "egress-burst", By: alice,
		UnsuppressedAt: events.At(t0.Add(30 * time.Minute))}, "triage/egress-burst", supEnv.EventID, t0)
	if ch := st.Apply(lift); ch.Kind != ChangeTriaged {
		t.Fatalf("lift: %s %s", ch.Kind, ch.Rejection)
	}
	if _, ok := st.Suppressed("egress-burst", tenant, "s9", "", "pkg.internal", t0.Add(time.Hour)); ok {
		t.Error("suppressed after it was lifted")
	}
	if _, ok := st.Suppressed("egress-burst", tenant, "s9", "", "pkg.internal", t0.Add(10*time.Minute)); !ok {
		t.Error("not suppressed before it was lifted (a rebuild must judge each alert at its own time)")
	}
	// Scopes.
	for _, c := range []struct {
		scope events.SuppressionScope
		want  bool
	}{
		{events.SuppressionScope{Kind: events.SuppressTenant, Value: tenant}, true},
		{events.SuppressionScope{Kind: events.SuppressSession, Value: "s9"}, true},
		{events.SuppressionScope{Kind: events.SuppressSession, Value: "s8"}, false},
		{events.SuppressionScope{Kind: events.SuppressAgent, Value: "codex"}, true},
		{events.SuppressionScope{Kind: events.SuppressAgent, Value: "claude-code"}, false},
	} {
		s := Suppression{Tenant: tenant, RuleID: "r", Scope: c.scope}
		if got := s.Covers("r", tenant, "s9", "codex", "k"); got != c.want {
			t.Errorf("scope %v covers = %v, want %v", c.scope, got, c.want)
		}
	}
}

// TestTriageAPI drives triage and suppression through the HTTP API over
// kfake, and again over the real Kafka.
func TestTriageAPI(t *testing.T) {
	t.Run("kfake", func(t *testing.T) { testTriageAPI(t, newHarness(t, harnessConfig{})) })
	t.Run("kafka", func(t *testing.T) { testTriageAPI(t, realHarness(t)) })
}

func testTriageAPI(t *testing.T, h *harness) {
	session := "sess-triage-" + h.ids.Next().String()
	h.alertAndHold(t, session)
	alerts := h.svc.recent.list(1)
	alert := alerts[0]
	post := func(path, who string, body any) (int, []byte) { return h.call(http.MethodPost, path, who, body, nil) }
	triage := "/api/v1/alerts/" + alert.EventID + "/triage"
	refusals := []struct {
		name, who string
		body      any
		status    int
		code      string
	}{
		{"dave has no may_triage", "dave", map[string]any{"action": "acknowledge"}, 403, "wrong_group"},
		{"fp needs a comment", "alice", map[string]any{"action": "false_positive"}, 422, "invalid_triage"},
		{"unknown action", "alice", map[string]any{"action": "escalate"}, 422, "invalid_triage"},
		{"unknown field", "alice", map[string]any{"action": "acknowledge", "severity": "low"}, 400, "bad_request"},
	}
	for _, c := range refusals {
		if status, body := post(triage, c.who, c.body); status != c.status || errCode(body) != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
		}
	}
	if status, body := post("/api/v1/alerts/12345/triage", "alice", map[string]any{"action": "acknowledge"}); status != 404 || errCode(body) != "unknown_alert" {
		t.Errorf("unknown alert: %d %s", status, body)
	}
	for _, in := range []map[string]any{
		{"action": "acknowledge"},
		{"action": "assign", "assignee": "bob"},
		{"action": "false_positive", "comment": "the backup job's mirror"},
	} {
		if status, body := post(triage, "alice", in); status != 200 {
			t.Fatalf("%v: %d %s", in, status, body)
		}
	}
	status, body := h.call(http.MethodGet, "/api/v1/triage/alerts", "alice", nil, nil)
	var list []TriagedAlertView
	if status != 200 || json.Unmarshal(body, &list) != nil || len(list) == 0 {
		t.Fatalf("triage list: %d %s", status, body)
	}
	var got *TriagedAlertView
	for i := range list {
		if list[i].EventID == alert.EventID {
			got = &list[i]
		}
	}
	if got == nil || got.Triage == nil || got.Triage.Verdict != events.TriageFalsePositive || got.Triage.Assignee != "bob" || !got.MayTriage || len(got.Triage.History) != 3 {
		t.Fatalf("triaged alert: %+v", got)
	}

	sup := map[string]any{"alert_event_id": alert.EventID, "scope": map[string]any{"kind": "session", "value": session},
		"for": "1h", "comment": "known backup window"}
	if status, body := post("/api/v1/suppressions", "alice", sup); status != 403 || errCode(body) != "wrong_group" {
		t.Errorf("alice suppresses: %d %s, want 403 wrong_group", status, body)
	}
	bad := map[string]any{"alert_event_id": alert.EventID, "scope": map[string]any{"kind": "session", "value": session}, "for": "90d", "comment": "x"}
	if status, body := post("/api/v1/suppressions", "dave", bad); status != 422 || errCode(body) != "invalid_triage" {
		t.Errorf("too long: %d %s", status, body)
	}
	status, body = post("/api/v1/suppressions", "dave", sup)
	var out SuppressOutput
	if status != 200 || json.Unmarshal(body, &out) != nil || out.Suppression.RuleID != "egress-burst" {
		t.Fatalf("suppress: %d %s", status, body)
	}
	if by, ok := h.svc.Triage().Suppressed("egress-burst", tenant, session, "", "", h.now()); !ok || by != out.EventID {
		t.Errorf("not suppressed after suppress: %q %v", by, ok)
	}
	status, body = h.call(http.MethodGet, "/api/v1/suppressions", "alice", nil, nil)
	var sups []Suppression
	if status != 200 || json.Unmarshal(body, &sups) != nil || len(sups) != 1 {
		t.Fatalf("suppressions: %d %s", status, body)
	}
	if status, body := post("/api/v1/suppressions/"+out.EventID+"/lift", "dave", map[string]any{"comment": "window over"}); status != 200 {
		t.Fatalf("lift: %d %s", status, body)
	}
	if _, ok := h.svc.Triage().Suppressed("egress-burst", tenant, session, "", "", h.now().Add(time.Second)); ok {
		t.Error("still suppressed after lift")
	}
	if status, body := post("/api/v1/suppressions/"+out.EventID+"/lift", "dave", map[string]any{}); status != 404 || errCode(body) != "unknown_suppression" {
		t.Errorf("lift twice: %d %s", status, body)
	}

	// A rebuild from the topic gives the same triage state.
	re := h.rebuilt(t)
	waitFor(t, 10*time.Second, "rebuilt triage", func() bool {
		a, ok := re.Triage().Alert(alert.EventID)
		return ok && a.Verdict == events.TriageFalsePositive && len(re.Triage().Suppressions(h.now(), true)) == 1
	})
}

// FuzzTriageApply: whatever a triage event's payload holds (anyone with
// write access to the topic can put one there), the fold neither panics
// nor applies an event whose signature does not verify.
func FuzzTriageApply(f *testing.F) {
	signer, pub := mustKey(f, "svc-k1")
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	ks := mustKeySet(f, []signing.PublicKey{pub}, t0)
	good := &events.AlertTriaged{Action: events.TriageAcknowledge, AlertEventID: "7301", RuleID: "r",
		By: events.Actor{Type: events.ActorHuman, ID: "alice"}, TriagedAt: events.At(t0)}
	env, err := events.New(good, events.WithIDs(triageIDs), events.WithSession("s1", "a"), events.WithTenant(tenant),
		events.WithTime(t0), events.WithActor(events.ActorHuman, "alice"))
	if err != nil {
		f.Fatal(err)
	}
	if err := signer.SignTriage(env); err != nil {
		f.Fatal(err)
	}
	for _, typ := range []string{events.TypeAlertTriaged, events.TypeRuleSuppressed, events.TypeRuleUnsuppressed} {
		f.Add(typ, []byte(env.Payload))
	}
	f.Add(events.TypeRuleSuppressed, []byte(`{"rule_id":"r","scope":{"kind":"tenant","value":"acme"}}`))
	f.Fuzz(func(t *testing.T, typ string, payload []byte) {
		e := *env
		e.EventType, e.Payload = typ, payload
		st := NewTriageState(ks)
		ch := st.Apply(&e)
		if ch.Kind == ChangeTriaged && (typ != env.EventType || string(payload) != string(env.Payload)) {
			if _, err := ks.VerifyTriage(&e); err != nil {
				t.Fatalf("applied an event that does not verify: %v", err)
			}
		}
	})
}
