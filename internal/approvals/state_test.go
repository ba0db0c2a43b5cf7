package approvals

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/google/go-cmp/cmp"
)

// pendingRequest is the Request the fold makes of requestEnv(t, id).
func pendingRequest(id string) Request {
	return Request{
		ID: id, EventID: id, Tenant: tenant, SessionID: session, RunnerID: "runner-1", ToolCallID: "call-7",
		RequestedAt: t0,
		Kind:        events.ApprovalKindToolCall, Summary: "kubectl apply -f deploy.yaml",
		Reason: "deploy commands need a release approver", ReasonCode: events.ReasonNeedsApproval,
		RuleID: "deploy-prod", Risk: events.RiskHigh,
		Requester:      events.Actor{Type: events.ActorAgent, ID: requesterA},
		Scopes:         []events.ApprovalScope{events.ScopeOnce, events.ScopeSession},
		ExpiresAt:      t0.Add(15 * time.Minute),
		SubjectEventID: "900",
		Status:         StatusPending,
	}
}

// decisionOf is the Decision the fold keeps for a signed event.
func decisionOf(t *testing.T, env *events.Envelope) Decision {
	t.Helper()
	p, err := env.DecodePayload()
	if err != nil {
		t.Fatal(err)
	}
	d := p.(*events.ApprovalDecided)
	return Decision{EventID: env.EventID, Outcome: d.Decision, ReasonCode: d.ReasonCode, Scope: d.Scope,
		Approver: d.Approver, Comment: d.Comment, DecidedAt: d.DecidedAt.Time, KeyID: d.KeyID}
}

func TestStateMachine(t *testing.T) {
	s, pub := mustKey(t, "k1")
	forger, _ := mustKey(t, "k1")
	req := requestEnv(t, "1001")
	ref := refOf(t, req)
	at := t0.Add(time.Minute)
	sys := events.Actor{Type: events.ActorSystem, ID: serviceID}

	approved := signed(t, s, ref, "2001", approve("alice", events.ScopeOnce, at))
	denied := signed(t, s, ref, "2002", deny("bob", at.Add(time.Second)))
	self := signed(t, s, ref, "2003", approve(requesterA, events.ScopeOnce, at))
	late := signed(t, s, ref, "2004", approve("alice", events.ScopeOnce, ref.ExpiresAt.Add(time.Second)))
	expired := signed(t, s, ref, "2005", mustExpiry(t, req, ref.ExpiresAt.Add(time.Second)))
	early := signed(t, s, ref, "2006", events.ApprovalDecided{Decision: events.ApprovalExpired,
		ReasonCode: events.ReasonApprovalExpired, Approver: sys, DecidedAt: events.At(at)})
	partA := signed(t, s, ref, "2007", partial("alice", events.ScopeSession, at))
	partA2 := signed(t, s, ref, "2008", partial("alice", events.ScopeOnce, at.Add(time.Second)))
	finalA := signed(t, s, ref, "2009", approve("alice", events.ScopeOnce, at.Add(2*time.Second)))
	finalB := signed(t, s, ref, "2010", approve("bob", events.ScopeOnce, at.Add(3*time.Second)))
	partOnce := signed(t, s, ref, "2011", partial("alice", events.ScopeOnce, at))
	widerB := signed(t, s, ref, "2012", approve("bob", events.ScopeSession, at.Add(3*time.Second)))
	forged := signed(t, forger, ref, "2013", approve("mallory", events.ScopeSession, at))
	cancelD, _ := CancelDecision(pendingRequest("1001"), at, sys, "session ended")
	cancelled := signed(t, s, ref, "2014", cancelD)
	// A decision signed for another session, then moved onto this request.
	otherRef := ref
	otherRef.SessionID = "sess-2"
	moved := signed(t, s, otherRef, "2015", approve("alice", events.ScopeOnce, at))
	moved.SessionID = session
	orphanRef := refOf(t, requestEnv(t, "1099"))
	orphan := signed(t, s, orphanRef, "2016", approve("alice", events.ScopeOnce, at))

	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	accepted := func(env *events.Envelope) Attempt {
		return Attempt{Decision: decisionOf(t, env), Result: ResultAccepted}
	}
	rejected := func(env *events.Envelope, c signing.Code) Attempt {
		return Attempt{Decision: decisionOf(t, env), Result: ResultRejected, Rejection: c}
	}
	part := func(env *events.Envelope) Attempt {
		return Attempt{Decision: decisionOf(t, env), Result: ResultPartial}
	}
	final := func(env *events.Envelope) *Decision { d := decisionOf(t, env); return &d }

	cases := []struct {
		name    string
		events  []*events.Envelope
		want    []Request
		changes []ChangeKind
	}{
		{"requested is pending", []*events.Envelope{req}, []Request{pendingRequest("1001")}, []ChangeKind{ChangeRequested}},
		{"approved", []*events.Envelope{req, approved},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.Status, r.Final, r.History = StatusApproved, final(approved), []Attempt{accepted(approved)}
			})}, []ChangeKind{ChangeRequested, ChangeDecided}},
		{"first valid decision wins, later ones recorded", []*events.Envelope{req, denied, approved},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.Status, r.Final = StatusDenied, final(denied)
				r.History = []Attempt{accepted(denied), rejected(approved, CodeAlreadyDecided)}
			})}, []ChangeKind{ChangeRequested, ChangeDecided, ChangeRejected}},
		{"self-approval refused", []*events.Envelope{req, self, approved},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.Status, r.Final = StatusApproved, final(approved)
				r.History = []Attempt{rejected(self, CodeSelfApproval), accepted(approved)}
			})}, []ChangeKind{ChangeRequested, ChangeRejected, ChangeDecided}},
		{"late approval refused, expiry accepted", []*events.Envelope{req, late, expired},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.Status, r.Final = StatusExpired, final(expired)
				r.History = []Attempt{rejected(late, signing.CodeExpired), accepted(expired)}
			})}, []ChangeKind{ChangeRequested, ChangeRejected, ChangeDecided}},
		{"expiry before the deadline refused", []*events.Envelope{req, early},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.History = []Attempt{rejected(early, signing.CodeNotDue)}
			})}, []ChangeKind{ChangeRequested, ChangeRejected}},
		{"two-person: partial, same approver again, second approver", []*events.Envelope{req, partA, partA2, finalA, finalB},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.Status, r.Final = StatusApproved, final(finalB)
				r.Approvals = []Decision{decisionOf(t, partA)}
				r.History = []Attempt{part(partA), rejected(partA2, CodeDuplicateApprover),
					rejected(finalA, CodeDuplicateApprover), accepted(finalB)}
			})}, []ChangeKind{ChangeRequested, ChangePartial, ChangeRejected, ChangeRejected, ChangeDecided}},
		{"two-person: second approver cannot widen the scope", []*events.Envelope{req, partOnce, widerB},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.Approvals = []Decision{decisionOf(t, partOnce)}
				r.History = []Attempt{part(partOnce), rejected(widerB, signing.CodeInvalidDecision)}
			})}, []ChangeKind{ChangeRequested, ChangePartial, ChangeRejected}},
		{"forged signature refused", []*events.Envelope{req, forged},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.History = []Attempt{rejected(forged, signing.CodeBadSignature)}
			})}, []ChangeKind{ChangeRequested, ChangeRejected}},
		{"decision moved from another session refused", []*events.Envelope{req, moved},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.History = []Attempt{rejected(moved, signing.CodeBadSignature)}
			})}, []ChangeKind{ChangeRequested, ChangeRejected}},
		{"cancelled", []*events.Envelope{req, cancelled, approved},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.Status, r.Final = StatusCancelled, final(cancelled)
				r.History = []Attempt{accepted(cancelled), rejected(approved, CodeAlreadyDecided)}
			})}, []ChangeKind{ChangeRequested, ChangeDecided, ChangeRejected}},
		{"redelivered events change nothing", []*events.Envelope{req, req, approved, approved},
			[]Request{with(pendingRequest("1001"), func(r *Request) {
				r.Status, r.Final, r.History = StatusApproved, final(approved), []Attempt{accepted(approved)}
			})}, []ChangeKind{ChangeRequested, ChangeDuplicate, ChangeDecided, ChangeDuplicate}},
		{"decision for an unknown request", []*events.Envelope{orphan, req},
			[]Request{pendingRequest("1001")}, []ChangeKind{ChangeRejected, ChangeRequested}},
	}
	ks := mustKeySet(t, []signing.PublicKey{pub}, t0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := NewState(WithVerifier(ks))
			var kinds []ChangeKind
			for _, env := range c.events {
				ch, err := st.Apply(env)
				if err != nil {
					t.Fatalf("Apply(%s %s): %v", env.EventType, env.EventID, err)
				}
				kinds = append(kinds, ch.Kind)
			}
			if diff := cmp.Diff(c.want, st.Requests()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.changes, kinds); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			// Rebuilding from the same events in the same order gives the
			// same state.
			again := NewState(WithVerifier(ks))
			for _, env := range c.events {
				if _, err := again.Apply(env); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(st.Requests(), again.Requests()); diff != "" {
				t.Errorf("rebuild differs (-first +rebuild):\n%s", diff)
			}
		})
	}
}

// TestStateWithoutVerifier: without a key set the fold still enforces
// everything but the signature.
func TestStateWithoutVerifier(t *testing.T) {
	s, _ := mustKey(t, "k1")
	req := requestEnv(t, "1001")
	ref := refOf(t, req)
	otherRef := ref
	otherRef.RequestEventID = "1777"
	moved := signed(t, s, otherRef, "2001", approve("alice", events.ScopeOnce, t0))
	st := NewState()
	if _, err := st.Apply(req); err != nil {
		t.Fatal(err)
	}
	ch, err := st.Apply(moved)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Kind != ChangeRejected || ch.Rejection != signing.CodeRequestMismatch {
		t.Fatalf("change = %+v, want rejected request_mismatch", ch)
	}
}

func TestStateMalformed(t *testing.T) {
	st := NewState()
	req := requestEnv(t, "1001")
	if _, err := st.Apply(req); err != nil {
		t.Fatal(err)
	}
	dupID := requestEnv(t, "1001")
	dupID.EventID = "1002"
	bad := requestEnv(t, "1003")
	bad.Payload = []byte(`{"kind":`)
	noID := requestEnv(t, "1004")
	noID.EventID = ""
	for name, env := range map[string]*events.Envelope{"reused approval id": dupID, "bad payload": bad, "no event id": noID, "nil": nil} {
		if _, err := st.Apply(env); !errors.Is(err, signing.ErrMalformed) {
			t.Errorf("%s: Apply = %v, want ErrMalformed", name, err)
		}
	}
	if n := len(st.Requests()); n != 1 {
		t.Errorf("%d requests after malformed events, want 1", n)
	}
	// A refused event can be applied once fixed: it was not marked seen.
	fixed := requestEnv(t, "1003")
	if ch, err := st.Apply(fixed); err != nil || ch.Kind != ChangeRequested {
		t.Errorf("fixed event: %+v, %v", ch, err)
	}
}

func holdEnv(t *testing.T, id, sess string, p events.Payload) *events.Envelope {
	t.Helper()
	env, err := events.New(p, events.WithEventID(id), events.WithSession(sess, "detect-1"),
		events.WithTenant(tenant), events.WithTime(t0), events.WithActor(events.ActorRule, "exfil"))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestHolds(t *testing.T) {
	by := events.Actor{Type: events.ActorRule, ID: "exfil"}
	h1 := holdEnv(t, "3001", "s1", events.SessionHeld{Reason: "exfiltration pattern", RuleID: "exfil", AlertEventID: "2999", By: by})
	h2 := holdEnv(t, "3002", "s1", events.SessionHeld{Reason: "second alert", RuleID: "burst", By: by})
	h3 := holdEnv(t, "3003", "s2", events.SessionHeld{Reason: "other session", By: by})
	rel1 := holdEnv(t, "3004", "s1", events.SessionReleased{Reason: "false positive", HeldEventID: "3001", By: events.Actor{Type: events.ActorHuman, ID: "alice"}})
	relAll := holdEnv(t, "3005", "s1", events.SessionReleased{Reason: "all clear", By: events.Actor{Type: events.ActorHuman, ID: "alice"}})

	st := NewState()
	apply := func(env *events.Envelope) Change {
		ch, err := st.Apply(env)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	apply(h1)
	apply(h2)
	apply(h3)
	if diff := cmp.Diff([]string{"s1", "s2"}, st.HeldSessions()); diff != "" {
		t.Errorf("held sessions (-want +got):\n%s", diff)
	}
	if ch := apply(rel1); ch.Kind != ChangeReleased || ch.Released != 1 {
		t.Errorf("release one: %+v", ch)
	}
	want := []Hold{{EventID: "3002", Tenant: tenant, SessionID: "s1", Reason: "second alert", RuleID: "burst", By: by, HeldAt: t0}}
	if diff := cmp.Diff(want, st.Holds("s1")); diff != "" {
		t.Errorf("holds of s1 (-want +got):\n%s", diff)
	}
	if ch := apply(relAll); ch.Released != 1 {
		t.Errorf("release all: %+v", ch)
	}
	if st.Held("s1") || !st.Held("s2") {
		t.Errorf("Held(s1)=%v Held(s2)=%v, want false true", st.Held("s1"), st.Held("s2"))
	}
}

// TestExpireDue: the live state expires a request, the service signs the
// expiry, and the state then equals a rebuild from the topic.
func TestExpireDue(t *testing.T) {
	s, pub := mustKey(t, "k1")
	ks := mustKeySet(t, []signing.PublicKey{pub}, t0)
	soon := requestEnv(t, "1001")
	later := requestEnv(t, "1002", func(p *events.ApprovalRequested) { p.ExpiresAt = events.At(t0.Add(time.Hour)) })
	live := NewState(WithVerifier(ks))
	for _, env := range []*events.Envelope{soon, later} {
		if _, err := live.Apply(env); err != nil {
			t.Fatal(err)
		}
	}
	if got := live.ExpireDue(t0.Add(15 * time.Minute)); len(got) != 0 {
		t.Fatalf("expired at the deadline itself: %v", got)
	}
	now := t0.Add(20 * time.Minute)
	due := live.ExpireDue(now)
	if len(due) != 1 || due[0].ID != "1001" || due[0].Status != StatusExpired || !due[0].Open() {
		t.Fatalf("ExpireDue = %+v, want 1001 expired and still open", due)
	}
	if p := live.Pending(); len(p) != 1 || p[0].ID != "1002" {
		t.Fatalf("Pending = %+v, want only 1002", p)
	}
	if again := live.ExpireDue(now); len(again) != 0 {
		t.Errorf("ExpireDue twice returned %d requests", len(again))
	}
	d, err := ExpiryDecision(due[0], now, events.Actor{Type: events.ActorSystem, ID: serviceID})
	if err != nil {
		t.Fatal(err)
	}
	exp := signed(t, s, due[0].Ref(), "2001", d)
	if ch, err := live.Apply(exp); err != nil || ch.Kind != ChangeDecided || ch.Status != StatusExpired {
		t.Fatalf("Apply expiry: %+v %v", ch, err)
	}
	rebuilt := NewState(WithVerifier(ks))
	for _, env := range []*events.Envelope{soon, later, exp} {
		if _, err := rebuilt.Apply(env); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(rebuilt.Requests(), live.Requests()); diff != "" {
		t.Errorf("live state differs from rebuild (-rebuild +live):\n%s", diff)
	}
	if _, err := ExpiryDecision(due[0], t0, events.Actor{}); !errors.Is(err, signing.ErrNotDue) {
		t.Errorf("ExpiryDecision before the deadline: %v", err)
	}
}

// TestExpireDueRace: an approval decided before the deadline but applied
// after ExpireDue still wins, as it does in a rebuild where it precedes the
// expiry in the topic.
func TestExpireDueRace(t *testing.T) {
	s, _ := mustKey(t, "k1")
	req := requestEnv(t, "1001")
	st := NewState()
	if _, err := st.Apply(req); err != nil {
		t.Fatal(err)
	}
	st.ExpireDue(t0.Add(20 * time.Minute))
	ok := signed(t, s, refOf(t, req), "2001", approve("alice", events.ScopeOnce, t0.Add(14*time.Minute)))
	ch, err := st.Apply(ok)
	if err != nil || ch.Kind != ChangeDecided || ch.Status != StatusApproved {
		t.Fatalf("Apply = %+v %v, want decided approved", ch, err)
	}
}

// TestStateConcurrent: the service applies consumed events while HTTP
// handlers read; run with -race.
func TestStateConcurrent(t *testing.T) {
	s, _ := mustKey(t, "k1")
	st := NewState()
	var envs []*events.Envelope
	for i := range 50 {
		req := requestEnv(t, fmt.Sprint(1000+i))
		envs = append(envs, req, signed(t, s, refOf(t, req), fmt.Sprint(5000+i), approve("alice", events.ScopeOnce, t0)))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			_ = st.Pending()
			_, _ = st.Get("1010")
			_ = st.ExpireDue(t0)
		}
	}()
	for _, env := range envs {
		if _, err := st.Apply(env); err != nil {
			t.Error(err)
		}
	}
	<-done
	if p := st.Pending(); len(p) != 0 {
		t.Errorf("%d pending after every request was approved", len(p))
	}
}

// TestSignedEventsValidate checks that the decisions this package builds,
// signed, pass the event schemas: requests, partial, final, expired and cancelled decisions.
func TestSignedEventsValidate(t *testing.T) {
	s, _ := mustKey(t, "k1")
	req := requestEnv(t, "1001")
	ref := refOf(t, req)
	st := NewState()
	if _, err := st.Apply(req); err != nil {
		t.Fatal(err)
	}
	r, _ := st.Get("1001")
	cancel, err := CancelDecision(r, t0.Add(time.Minute), events.Actor{Type: events.ActorSystem, ID: serviceID}, "session ended")
	if err != nil {
		t.Fatal(err)
	}
	expiry, err := ExpiryDecision(r, t0.Add(16*time.Minute), events.Actor{Type: events.ActorSystem, ID: serviceID})
	if err != nil {
		t.Fatal(err)
	}
	chainR := events.NewChain(events.ChainKey{SessionID: session, RunnerID: "runner-1"})
	if err := chainR.Stamp(req); err != nil {
		t.Fatalf("approval.requested: %v", err)
	}
	chainS := events.NewChain(events.ChainKey{SessionID: session, RunnerID: serviceID})
	for i, d := range []events.ApprovalDecided{
		partial("alice", events.ScopeSession, t0.Add(time.Minute)),
		approve("bob", events.ScopeOnce, t0.Add(2*time.Minute)),
		deny("bob", t0.Add(2*time.Minute)),
		expiry,
		cancel,
	} {
		env := signed(t, s, ref, []string{"2001", "2002", "2003", "2004", "2005"}[i], d)
		if err := chainS.Stamp(env); err != nil {
			t.Errorf("%s/%s: %v", d.Decision, d.ReasonCode, err)
		}
	}
}

func mustExpiry(t *testing.T, req *events.Envelope, at time.Time) events.ApprovalDecided {
	t.Helper()
	st := NewState()
	if _, err := st.Apply(req); err != nil {
		t.Fatal(err)
	}
	r, _ := st.Get(req.ApprovalID)
	d, err := ExpiryDecision(r, at, events.Actor{Type: events.ActorSystem, ID: serviceID})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
