package approvals

import (
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

// t0 is the fixed time every fixture is built around.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const (
	tenant     = "acme"
	session    = "sess-1"
	serviceID  = "approvals-1"
	requesterA = "claude-1"
)

// requestEnv builds an approval.requested whose event id is its approval id,
// as the runner writes it.
func requestEnv(t testing.TB, id string, mutate ...func(*events.ApprovalRequested)) *events.Envelope {
	t.Helper()
	p := events.ApprovalRequested{
		Kind:           events.ApprovalKindToolCall,
		Summary:        "kubectl apply -f deploy.yaml",
		Reason:         "deploy commands need a release approver",
		ReasonCode:     events.ReasonNeedsApproval,
		RuleID:         "deploy-prod",
		Risk:           events.RiskHigh,
		Requester:      events.Actor{Type: events.ActorAgent, ID: requesterA},
		Scopes:         []events.ApprovalScope{events.ScopeOnce, events.ScopeSession},
		ExpiresAt:      events.At(t0.Add(15 * time.Minute)),
		RequestEventID: "900",
	}
	for _, m := range mutate {
		m(&p)
	}
	env, err := events.New(p, events.WithEventID(id), events.WithApproval(id),
		events.WithSession(session, "runner-1"), events.WithTenant(tenant), events.WithTime(t0),
		events.WithActor(events.ActorAgent, requesterA), events.WithToolCall("call-7"))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func refOf(t testing.TB, env *events.Envelope) signing.RequestRef {
	t.Helper()
	ref, err := signing.RefOf(env)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// decisionEnv builds an unsigned approval.decided answering ref.
func decisionEnv(t testing.TB, ref signing.RequestRef, eventID string, d events.ApprovalDecided) *events.Envelope {
	t.Helper()
	env, err := events.New(d, events.WithEventID(eventID), events.WithApproval(ref.ApprovalID),
		events.WithSession(ref.SessionID, serviceID), events.WithTenant(ref.Tenant),
		events.WithParent(ref.RequestEventID), events.WithTime(d.DecidedAt.Time),
		events.WithActor(d.Approver.Type, d.Approver.ID))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// signed builds and signs an approval.decided answering ref.
func signed(t testing.TB, s signing.Signer, ref signing.RequestRef, eventID string, d events.ApprovalDecided) *events.Envelope {
	t.Helper()
	env := decisionEnv(t, ref, eventID, d)
	if err := s.Sign(env, ref); err != nil {
		t.Fatal(err)
	}
	return env
}

func approve(who string, scope events.ApprovalScope, at time.Time) events.ApprovalDecided {
	rc := events.ReasonApproved
	if scope == events.ScopeSession {
		rc = events.ReasonApprovedForSession
	}
	return events.ApprovalDecided{Decision: events.ApprovalApproved, ReasonCode: rc, Scope: scope,
		Approver: events.Actor{Type: events.ActorHuman, ID: who}, DecidedAt: events.At(at)}
}

func partial(who string, scope events.ApprovalScope, at time.Time) events.ApprovalDecided {
	d := approve(who, scope, at)
	d.ReasonCode = events.ReasonNeedsApproval
	return d
}

func deny(who string, at time.Time) events.ApprovalDecided {
	return events.ApprovalDecided{Decision: events.ApprovalDenied, ReasonCode: events.ReasonApprovalDenied,
		Approver: events.Actor{Type: events.ActorHuman, ID: who}, Comment: "not now", DecidedAt: events.At(at)}
}

func mustKey(t testing.TB, id string) (signing.Signer, signing.PublicKey) {
	t.Helper()
	s, p, err := signing.GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

func mustKeySet(t testing.TB, keys []signing.PublicKey, now time.Time) *signing.KeySet {
	t.Helper()
	ks, err := signing.NewKeySet(keys, signing.WithKeyClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock(t time.Time) *clock    { return &clock{t: t} }
