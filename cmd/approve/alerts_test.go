package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// triageService runs an approvals service on an in-process Kafka where
// alice may triage and suppress, and returns its URL, alice's token and
// the id of an alert raised on session sess-tri.
func triageService(t *testing.T) (url, token, alertID string, svc *approvals.Service) {
	t.Helper()
	tp := eventlog.DefaultTopics
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, tp.Events, tp.Approvals, tp.DLQ))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithCancel(context.Background())
	tok, sum, _ := approvals.GenerateToken()
	cfg, err := approvals.ParseConfig([]byte(fmt.Sprintf(`
approvers: [{id: alice, groups: [secops], token_sha256: %s}]
groups: [{name: secops, may_triage: [{rule_ids: ["*"]}], may_suppress: [{rule_ids: ["egress.*"]}]}]
`, sum)))
	if err != nil {
		t.Fatal(err)
	}
	auth, _ := approvals.NewAuthenticator(cfg)
	signer, _, _ := signing.GenerateKey("k1")
	ids, _ := events.NewIDGen(7)
	emitID := approvals.NewEmitterID("approvals-cli", ids)
	prod, err := eventlog.NewProducer(ctx, brokers, emitID)
	if err != nil {
		t.Fatal(err)
	}
	detector, err := eventlog.NewProducer(ctx, brokers, "detect-cli")
	if err != nil {
		t.Fatal(err)
	}
	svc, err = approvals.NewService(brokers, prod, signer, auth, ids, emitID)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		prod.Close(context.Background())
		detector.Close(context.Background())
	})
	<-svc.Ready()
	dids, _ := events.NewIDGen(9)
	now := time.Now()
	alert, err := events.New(events.AlertRaised{RuleID: "egress.repeated_denials", RuleVersion: "1", Severity: events.SeverityMedium,
		GroupKey: "sess-tri", Count: 5, FirstSeen: events.At(now), LastSeen: events.At(now), MatchedEventIDs: []string{"1"},
		Message: "5 denied egress attempts", Action: events.AlertNotify},
		events.WithIDs(dids), events.WithSession("sess-tri", "detect-cli"), events.WithTenant("acme"),
		events.WithActor(events.ActorRule, "egress.repeated_denials"))
	if err != nil {
		t.Fatal(err)
	}
	if err := detector.Emit(ctx, alert); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, _ := func() (int, string, string) {
			t.Setenv("APPROVE_TOKEN", tok)
			t.Setenv("APPROVE_URL", srv.URL)
			return runCLI(t, "alerts", "--json")
		}()
		if code == 0 && strings.Contains(out, alert.EventID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert not seen by the service")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return srv.URL, tok, alert.EventID, svc
}

func TestAlertsCLI(t *testing.T) {
	_, _, id, svc := triageService(t)
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"alerts", "ack", id}, 0, id + ": acknowledge"},
		{[]string{"alerts", "assign", id, "--to", "bob"}, 0, id + ": assign"},
		{[]string{"alerts", "fp", id}, 1, ""}, // refused before any request: a false positive needs a comment
		{[]string{"alerts", "fp", id, "--comment", "the mirror rollout"}, 0, id + ": false_positive"},
		{[]string{"alerts", "list"}, 0, "false_positive"},
		{[]string{"alerts", "suppress", id, "--scope", "session", "--for", "2h", "--comment", "rollout"}, 0, "suppressed egress.repeated_denials for session=sess-tri in acme"},
		{[]string{"alerts", "suppress", "--rule", "cred.read", "--tenant", "acme", "--scope", "tenant", "--for", "2h", "--comment", "x"}, 3, ""},
		{[]string{"alerts", "suppressions"}, 0, "session=sess-tri"},
		{[]string{"alerts", "nonsense"}, 2, ""},
	}
	for _, s := range steps {
		code, out, errs := runCLI(t, s.args...)
		if code != s.code || !strings.Contains(out, s.out) {
			t.Errorf("approve %v: %d %q %q, want %d and %q", s.args, code, out, errs, s.code, s.out)
		}
	}
	a, ok := svc.Triage().Alert(id)
	if !ok || a.Verdict != events.TriageFalsePositive || a.Assignee != "bob" {
		t.Errorf("triage state %+v", a)
	}
	sups := svc.Triage().Suppressions(time.Now(), false)
	if len(sups) != 1 {
		t.Fatalf("suppressions %+v", sups)
	}
	if code, out, errs := runCLI(t, "alerts", "unsuppress", sups[0].EventID, "--comment", "done"); code != 0 || !strings.Contains(out, "lifted") {
		t.Errorf("unsuppress: %d %q %q", code, out, errs)
	}
	if n := len(svc.Triage().Suppressions(time.Now().Add(time.Second), false)); n != 0 {
		t.Errorf("%d active after unsuppress", n)
	}
}
