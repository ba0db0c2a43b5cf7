package query

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

// TestRulePrecision: alerts of two rules go through Kafka and the
// ingester into ClickHouse with the analysts' signed triage; the report
// counts each alert's latest verdict and the time to its first action.
func TestRulePrecision(t *testing.T) {
	s := testDB(t)
	p := newPipeline(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := signing.NewSigner("svc-k1", priv)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	at := func(h, m, sec int) time.Time {
		return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second)
	}
	alert := func(rule string, when time.Time) *events.Envelope {
		return p.emit("detect-1", events.AlertRaised{RuleID: rule, RuleVersion: "1", Severity: events.SeverityHigh, GroupKey: "sess-rp",
			Count: 1, FirstSeen: events.At(when), LastSeen: events.At(when), MatchedEventIDs: []string{"1"}, Message: rule, Action: events.AlertNotify},
			events.WithSession("sess-rp", "detect-1"), events.WithTenant("acme"), events.WithTime(when), events.WithActor(events.ActorRule, rule))
	}
	triage := func(a *events.Envelope, rule string, action events.TriageAction, when time.Time) {
		t.Helper()
		env, err := events.New(events.AlertTriaged{Action: action, AlertEventID: a.EventID, RuleID: rule, Comment: "checked",
			By: events.Actor{Type: events.ActorHuman, ID: "carol"}, TriagedAt: events.At(when)},
			events.WithIDs(p.ids), events.WithSession("sess-rp", "approvals-1"), events.WithTenant("acme"),
			events.WithParent(a.EventID), events.WithTime(when), events.WithActor(events.ActorHuman, "carol"))
		if err != nil {
			t.Fatal(err)
		}
		if err := signer.SignTriage(env); err != nil {
			t.Fatal(err)
		}
		if err := p.producer("approvals-1").Emit(context.Background(), env); err != nil {
			t.Fatal(err)
		}
		p.sent++
	}
	// noisy: 3 alerts; one true positive, one false positive that was
	// first called true, one never judged (only acknowledged).
	n1, n2, n3 := alert("egress.noisy", at(9, 0, 0)), alert("egress.noisy", at(10, 0, 0)), alert("egress.noisy", at(11, 0, 0))
	triage(n1, "egress.noisy", events.TriageTruePositive, at(9, 1, 0))
	triage(n2, "egress.noisy", events.TriageTruePositive, at(10, 2, 0))
	triage(n2, "egress.noisy", events.TriageFalsePositive, at(10, 30, 0))
	triage(n3, "egress.noisy", events.TriageAcknowledge, at(11, 10, 0))
	// quiet: one alert nobody looked at; and one outside the period.
	alert("cred.read", at(12, 0, 0))
	alert("cred.read", day.AddDate(0, 0, 1).Add(time.Hour))
	p.load(s)

	q := openReader(t, s.Database())
	r, err := FindReport("rule_precision")
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.RunReport(context.Background(), r, Period{day, day.AddDate(0, 0, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"rule_id", "alerts", "tp", "fp", "precision", "triaged", "median_seconds_to_triage"},
		{"egress.noisy", "3", "1", "1", "0.5", "3", "120"},
		{"cred.read", "1", "0", "0", "NULL", "0", "NULL"},
	}
	if diff := cmp.Diff(want, cells(res)); diff != "" {
		t.Errorf("rule_precision (-want +got):\n%s", diff)
	}
}
