package detect

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestServiceHonoursSuppressions: an analyst's signed rule.suppressed on
// the approvals topic, followed by approvals.FollowTriage, keeps the
// detector from writing the rule's alert in that scope; the other rules
// still fire; the suppressed alert is counted with its suppressed_by. A
// suppression signed with another key changes nothing.
func TestServiceHonoursSuppressions(t *testing.T) {
	e := newSvcEnv(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := signing.NewSigner("svc-k1", priv)
	if err != nil {
		t.Fatal(err)
	}
	_, forgedKey, _ := ed25519.GenerateKey(rand.Reader)
	forger, _ := signing.NewSigner("svc-k1", forgedKey)
	ks, err := signing.NewKeySet([]signing.PublicKey{signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := events.NewIDGen(611)
	suppress := func(s signing.Signer, rule string, scope events.SuppressionScope) *events.Envelope {
		t.Helper()
		t0 := DefaultTestStart.Add(-time.Hour)
		env, err := events.New(events.RuleSuppressed{RuleID: rule, Scope: scope, ExpiresAt: events.At(t0.Add(48 * time.Hour)),
			Comment: "known noise", By: events.Actor{Type: events.ActorHuman, ID: "carol"}, SuppressedAt: events.At(t0)},
			events.WithIDs(ids), events.WithTenant("acme"), events.WithSession("triage/"+rule, "approvals-test"),
			events.WithActor(events.ActorHuman, "carol"), events.WithTime(t0))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SignTriage(env); err != nil {
			t.Fatal(err)
		}
		if err := events.NewChain(env.Key()).Stamp(env); err != nil {
			t.Fatal(err)
		}
		return env
	}
	real := suppress(signer, "egress.repeated_denials", events.SuppressionScope{Kind: events.SuppressSession, Value: "sess-deny"})
	forged := suppress(forger, "defense_evasion.policy_tamper", events.SuppressionScope{Kind: events.SuppressTenant, Value: "acme"})
	e.produce(real, forged)

	st := approvals.NewTriageState(ks)
	ctx, cancel := context.WithCancel(context.Background())
	followed := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		followed <- approvals.FollowTriage(ctx, e.brokers, e.topics.Approvals, st, testenv.Logger(t, slog.LevelDebug), ready)
	}()
	t.Cleanup(func() { cancel(); <-followed })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("suppressions not followed within 30s")
	}
	if st.Rejected() != 1 {
		t.Errorf("forged suppression: rejected %d, want 1", st.Rejected())
	}

	svc := startService(t, e.config("g", "detect-suppress"), WithSuppressions(st))
	svc.waitReady(t)
	e.produce(scenario(t)...)
	alerts := e.read(e.topics.Events, ofType(events.TypeAlertRaised), 4, 3*time.Second)
	var got []string
	for _, env := range alerts {
		got = append(got, alertOf(t, env).RuleID)
	}
	slices.Sort(got)
	want := []string{"approvals.fatigue", "approvals.rubber_stamp", "credential.read_then_egress", "defense_evasion.policy_tamper"}
	if !slices.Equal(got, want) {
		t.Errorf("rules that fired: %v, want %v (egress.repeated_denials suppressed)", got, want)
	}
	metric := `detect_suppressed_alerts_total{rule="egress.repeated_denials",suppressed_by="` + real.EventID + `"} 1`
	deadline := time.Now().Add(10 * time.Second)
	for m := httpGet(t, "http://"+svc.MetricsAddr()+"/metrics"); !strings.Contains(m, metric); m = httpGet(t, "http://"+svc.MetricsAddr()+"/metrics") {
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s", metric)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
