package approvals

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Status is where a request is in its life: pending until a final decision,
// then approved, denied, expired or cancelled for good.
type Status string

// Request statuses.
const (
	StatusPending   Status = "pending"
	StatusApproved  Status = "approved"
	StatusDenied    Status = "denied"
	StatusExpired   Status = "expired"
	StatusCancelled Status = "cancelled"
)

// Decision is one approval.decided event as the state keeps it.
type Decision struct {
	EventID    string
	Outcome    events.ApprovalOutcome
	ReasonCode events.ReasonCode
	Scope      events.ApprovalScope
	Approver   events.Actor
	Comment    string
	DecidedAt  time.Time
	KeyID      string
}

// Partial reports whether d is the first approval of a two-person request.
func (d Decision) Partial() bool {
	return d.Outcome == events.ApprovalApproved && d.ReasonCode == events.ReasonNeedsApproval
}

// Result says what a decision event did to its request.
type Result string

// Results of a decision event.
const (
	ResultAccepted Result = "accepted" // it is the request's final decision
	ResultPartial  Result = "partial"  // first of two approvals; the request stays pending
	ResultRejected Result = "rejected" // it changed nothing; Attempt.Rejection says why
)

// Attempt is a decision event in a request's history with what it did.
type Attempt struct {
	Decision
	Result    Result
	Rejection signing.Code
}

// Request is an approval request and everything decided about it.
type Request struct {
	ID string // approval id
	// EventID is the approval.requested event; decisions name it as their
	// parent_event_id.
	EventID     string
	Tenant      string
	SessionID   string
	RunnerID    string
	ToolCallID  string
	RequestedAt time.Time

	// What is asked and why, from the approval.requested payload.
	Kind           string
	Summary        string
	Reason         string
	ReasonCode     events.ReasonCode
	RuleID         string
	Risk           events.Risk
	Requester      events.Actor
	Scopes         []events.ApprovalScope
	ExpiresAt      time.Time
	SubjectEventID string
	Policy         *events.PolicyRef
	// Agent is the envelope's agent; Preview a file write's content and
	// diff, when the runner sent them.
	Agent   *events.Agent
	Preview *events.WritePreview

	Status Status
	// Final is the decision that settled the request; nil while pending,
	// and for a request ExpireDue marked expired whose approval.decided
	// has not been applied yet.
	Final *Decision
	// Approvals are the partial approvals counted toward a two-person rule.
	Approvals []Decision
	// History is every decision event for the request, in order, with what
	// it did.
	History []Attempt
}

// Ref returns what a verifier needs to know about r.
func (r Request) Ref() signing.RequestRef {
	return signing.RequestRef{
		ApprovalID: r.ID, Tenant: r.Tenant, SessionID: r.SessionID,
		RequestEventID: r.EventID, SubjectEventID: r.SubjectEventID,
		Kind: r.Kind, RuleID: r.RuleID, Requester: r.Requester,
		Scopes: slices.Clone(r.Scopes), ExpiresAt: r.ExpiresAt,
	}
}

// Open reports whether a decision event can still settle r.
func (r Request) Open() bool { return r.Final == nil }

// Offers reports whether r offers scope s.
func (r Request) Offers(s events.ApprovalScope) bool { return slices.Contains(r.Scopes, s) }

func (r Request) clone() Request {
	r.Scopes = slices.Clone(r.Scopes)
	r.Approvals = slices.Clone(r.Approvals)
	r.History = slices.Clone(r.History)
	if r.Final != nil {
		f := *r.Final
		r.Final = &f
	}
	if r.Policy != nil {
		p := *r.Policy
		r.Policy = &p
	}
	if r.Agent != nil {
		a := *r.Agent
		r.Agent = &a
	}
	if r.Preview != nil {
		p := *r.Preview
		r.Preview = &p
	}
	return r
}

// Hold is an active session.held.
type Hold struct {
	EventID      string
	Tenant       string
	SessionID    string
	ApprovalID   string
	Reason       string
	RuleID       string
	AlertEventID string
	By           events.Actor
	HeldAt       time.Time
}

// ChangeKind says what applying an event did.
type ChangeKind string

// Kinds of change.
const (
	ChangeRequested ChangeKind = "requested" // a new pending request
	ChangeDecided   ChangeKind = "decided"   // a final decision; Change.Status says which
	ChangePartial   ChangeKind = "partial"   // a first approval of two
	ChangeRejected  ChangeKind = "rejected"  // a decision that changed nothing; Change.Rejection says why
	ChangeHeld      ChangeKind = "held"
	ChangeReleased  ChangeKind = "released"
	ChangeDuplicate ChangeKind = "duplicate" // an event id already applied (redelivery)
	ChangeIgnored   ChangeKind = "ignored"   // an event type the state does not track
)

// Change is what Apply did.
type Change struct {
	Kind       ChangeKind
	EventID    string
	ApprovalID string
	SessionID  string
	Status     Status
	Rejection  signing.Code
	// Released counts the holds a session.released lifted.
	Released int
}

// State is the approvals state machine: a deterministic fold over the
// events of the audit.approvals topic. The same events in the same order
// give the same state; the wall clock enters only through ExpireDue. It is
// safe for concurrent use.
//
// Decisions are checked again when folded (session, request event, outcome,
// deadline, self-approval, distinct approvers and, with WithVerifier, the
// signature), so an event written to the topic by anyone but the service
// cannot settle a request; it is kept in the history as rejected.
type State struct {
	mu       sync.Mutex
	verifier *signing.KeySet
	requests map[string]*Request
	order    []string            // approval ids in arrival order
	holds    map[string][]Hold   // session id → active holds in arrival order
	seen     map[string]struct{} // applied event ids
}

// StateOption configures a State.
type StateOption func(*State)

// WithVerifier makes the state check every decision's signature with ks.
// Key retirement is judged at the decision's decided_at, not the wall
// clock, so that a rebuild long after a rotation gives the same state.
func WithVerifier(ks *signing.KeySet) StateOption { return func(s *State) { s.verifier = ks } }

// NewState returns an empty state.
func NewState(opts ...StateOption) *State {
	s := &State{
		requests: make(map[string]*Request),
		holds:    make(map[string][]Hold),
		seen:     make(map[string]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Apply folds one event into the state. An error (wrapping ErrMalformed)
// means the event could not be read at all and changed nothing; a decision
// that is readable but invalid is not an error: it is recorded in its
// request's history and reported as ChangeRejected.
func (s *State) Apply(env *events.Envelope) (Change, error) {
	if env == nil || env.EventID == "" {
		return Change{}, fail(signing.CodeMalformed, "event without event_id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := Change{EventID: env.EventID, ApprovalID: env.ApprovalID, SessionID: env.SessionID}
	if _, dup := s.seen[env.EventID]; dup {
		ch.Kind = ChangeDuplicate
		return ch, nil
	}
	var err error
	switch env.EventType {
	case events.TypeApprovalRequested:
		err = s.applyRequested(env, &ch)
	case events.TypeApprovalDecided:
		err = s.applyDecided(env, &ch)
	case events.TypeSessionHeld:
		err = s.applyHeld(env, &ch)
	case events.TypeSessionReleased:
		err = s.applyReleased(env, &ch)
	default:
		ch.Kind = ChangeIgnored
	}
	if err != nil {
		return Change{}, err
	}
	s.seen[env.EventID] = struct{}{}
	return ch, nil
}

func (s *State) applyRequested(env *events.Envelope, ch *Change) error {
	p, err := env.DecodePayload()
	if err != nil {
		return fail(signing.CodeMalformed, "%v", err)
	}
	ar := p.(*events.ApprovalRequested)
	if env.ApprovalID == "" {
		return fail(signing.CodeMalformed, "approval.requested %s without approval_id", env.EventID)
	}
	if _, exists := s.requests[env.ApprovalID]; exists {
		return fail(signing.CodeMalformed, "approval.requested %s reuses approval id %s", env.EventID, env.ApprovalID)
	}
	r := &Request{
		ID: env.ApprovalID, EventID: env.EventID, Tenant: env.Tenant,
		SessionID: env.SessionID, RunnerID: env.RunnerID, ToolCallID: env.ToolCallID,
		RequestedAt: env.EventTime,
		Kind:        ar.Kind, Summary: ar.Summary, Reason: ar.Reason, ReasonCode: ar.ReasonCode,
		RuleID: ar.RuleID, Risk: ar.Risk, Requester: ar.Requester,
		Scopes: slices.Clone(ar.Scopes), ExpiresAt: ar.ExpiresAt.Time,
		SubjectEventID: ar.RequestEventID,
		Status:         StatusPending,
	}
	if env.Policy != nil {
		pol := *env.Policy
		r.Policy = &pol
	}
	if env.Agent != nil {
		a := *env.Agent
		r.Agent = &a
	}
	if ar.Preview != nil {
		pv := *ar.Preview
		r.Preview = &pv
	}
	s.requests[r.ID] = r
	s.order = append(s.order, r.ID)
	ch.Kind, ch.Status = ChangeRequested, StatusPending
	return nil
}

func (s *State) applyDecided(env *events.Envelope, ch *Change) error {
	d, err := signing.DecisionOf(env)
	if err != nil {
		return err
	}
	dec := Decision{
		EventID: env.EventID, Outcome: d.Decision, ReasonCode: d.ReasonCode, Scope: d.Scope,
		Approver: d.Approver, Comment: d.Comment, DecidedAt: d.DecidedAt.Time, KeyID: d.KeyID,
	}
	r, ok := s.requests[env.ApprovalID]
	if !ok {
		// Nothing to attach it to; the topic keys by approval id, so this
		// is a decision for a request this state never had.
		ch.Kind, ch.Rejection = ChangeRejected, CodeUnknownApproval
		return nil
	}
	code := s.judge(r, env, d, dec)
	ch.Status = r.Status
	switch {
	case code != "":
		r.History = append(r.History, Attempt{Decision: dec, Result: ResultRejected, Rejection: code})
		ch.Kind, ch.Rejection = ChangeRejected, code
	case dec.Partial():
		r.Approvals = append(r.Approvals, dec)
		r.History = append(r.History, Attempt{Decision: dec, Result: ResultPartial})
		ch.Kind = ChangePartial
	default:
		r.Final = &dec
		r.Status = statusOf(dec.Outcome)
		r.History = append(r.History, Attempt{Decision: dec, Result: ResultAccepted})
		ch.Kind, ch.Status = ChangeDecided, r.Status
	}
	return nil
}

// judge returns why dec cannot count for r, or "" when it can.
func (s *State) judge(r *Request, env *events.Envelope, d *events.ApprovalDecided, dec Decision) signing.Code {
	if !r.Open() {
		return CodeAlreadyDecided
	}
	ref := r.Ref()
	if s.verifier != nil {
		if _, err := s.verifier.VerifyAt(env, ref, dec.DecidedAt); err != nil {
			return signing.CodeOf(err)
		}
	} else {
		if err := signing.Check(env, d, ref); err != nil {
			return signing.CodeOf(err)
		}
	}
	if dec.Outcome == events.ApprovalApproved || dec.Outcome == events.ApprovalDenied {
		if dec.Approver.ID == r.Requester.ID {
			return CodeSelfApproval
		}
	}
	if dec.Outcome == events.ApprovalApproved {
		for _, a := range r.Approvals {
			if a.Approver.ID == dec.Approver.ID {
				return CodeDuplicateApprover
			}
			// A second approver cannot widen what the first agreed to.
			if scopeRank(dec.Scope) > scopeRank(a.Scope) {
				return signing.CodeInvalidDecision
			}
		}
	}
	return ""
}

func statusOf(o events.ApprovalOutcome) Status {
	switch o {
	case events.ApprovalApproved:
		return StatusApproved
	case events.ApprovalDenied:
		return StatusDenied
	case events.ApprovalExpired:
		return StatusExpired
	}
	return StatusCancelled
}

// scopeRank orders scopes by reach.
func scopeRank(s events.ApprovalScope) int {
	if s == events.ScopeSession {
		return 2
	}
	return 1
}

// NarrowestScope returns the scope of least reach among scopes (once when
// empty): the scope a two-person approval gets is the one both agreed to.
func NarrowestScope(scopes ...events.ApprovalScope) events.ApprovalScope {
	out := events.ScopeSession
	for _, s := range scopes {
		if scopeRank(s) < scopeRank(out) {
			out = s
		}
	}
	if len(scopes) == 0 {
		return events.ScopeOnce
	}
	return out
}

func (s *State) applyHeld(env *events.Envelope, ch *Change) error {
	p, err := env.DecodePayload()
	if err != nil {
		return fail(signing.CodeMalformed, "%v", err)
	}
	if env.SessionID == "" {
		return fail(signing.CodeMalformed, "session.held %s without session_id", env.EventID)
	}
	h := p.(*events.SessionHeld)
	s.holds[env.SessionID] = append(s.holds[env.SessionID], Hold{
		EventID: env.EventID, Tenant: env.Tenant, SessionID: env.SessionID, ApprovalID: env.ApprovalID,
		Reason: h.Reason, RuleID: h.RuleID, AlertEventID: h.AlertEventID, By: h.By, HeldAt: env.EventTime,
	})
	ch.Kind = ChangeHeld
	return nil
}

// applyReleased lifts the hold named by held_event_id, or every hold of the
// session when it names none.
func (s *State) applyReleased(env *events.Envelope, ch *Change) error {
	p, err := env.DecodePayload()
	if err != nil {
		return fail(signing.CodeMalformed, "%v", err)
	}
	rel := p.(*events.SessionReleased)
	held := s.holds[env.SessionID]
	kept := held[:0:0]
	for _, h := range held {
		if rel.HeldEventID != "" && h.EventID != rel.HeldEventID {
			kept = append(kept, h)
		}
	}
	ch.Kind, ch.Released = ChangeReleased, len(held)-len(kept)
	if len(kept) == 0 {
		delete(s.holds, env.SessionID)
	} else {
		s.holds[env.SessionID] = kept
	}
	return nil
}

// Get returns a copy of the request with approval id id.
func (s *State) Get(id string) (Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return Request{}, false
	}
	return r.clone(), true
}

// Pending returns copies of the pending requests in arrival order.
func (s *State) Pending() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, id := range s.order {
		if r := s.requests[id]; r.Status == StatusPending {
			out = append(out, r.clone())
		}
	}
	return out
}

// Requests returns copies of every request in arrival order.
func (s *State) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.requests[id].clone())
	}
	return out
}

// Holds returns the active holds of a session in arrival order.
func (s *State) Holds(sessionID string) []Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.holds[sessionID])
}

// Held reports whether a session has an active hold.
func (s *State) Held(sessionID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.holds[sessionID]) > 0
}

// HeldSessions returns the held session ids, sorted.
func (s *State) HeldSessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.holds))
	for id := range s.holds {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// ExpireDue marks every pending request whose deadline is before now as
// expired and returns them, in arrival order. It is the one place the wall
// clock enters: the caller (the service) must then emit, for each, a signed
// approval.decided built with ExpiryDecision, which becomes the request's
// Final when applied. Until it is, the request stays open to a decision
// event already on its way, so the live state converges on the state a
// rebuild from the topic gives.
func (s *State) ExpireDue(now time.Time) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, id := range s.order {
		r := s.requests[id]
		if r.Status == StatusPending && now.After(r.ExpiresAt) && !r.answeredWithUntrustedKey() {
			r.Status = StatusExpired
			out = append(out, r.clone())
		}
	}
	return out
}

// answeredWithUntrustedKey reports whether a decision for r was signed
// with a key the state does not trust. Such a request is never expired: a
// runner trusting that key may have acted on the answer, and an "expired"
// on top of it would be a false record. It stays pending, with the
// rejected decision in its history, until the key is trusted.
func (r *Request) answeredWithUntrustedKey() bool {
	for _, a := range r.History {
		if a.Result == ResultRejected && a.Rejection == signing.CodeUnknownKey {
			return true
		}
	}
	return false
}

// ExpiryDecision returns the approval.decided payload that records r's
// expiry at now by the service (actor by), ready to sign. now must be after
// r.ExpiresAt.
func ExpiryDecision(r Request, now time.Time, by events.Actor) (events.ApprovalDecided, error) {
	if !now.After(r.ExpiresAt) {
		return events.ApprovalDecided{}, fail(signing.CodeNotDue, "request %s expires at %s", r.ID, stampOf(r.ExpiresAt))
	}
	return events.ApprovalDecided{
		Decision: events.ApprovalExpired, ReasonCode: events.ReasonApprovalExpired,
		Approver: by, DecidedAt: events.At(now),
	}, nil
}

// CancelDecision returns the approval.decided payload that cancels r, for
// example because its session ended, ready to sign.
func CancelDecision(r Request, now time.Time, by events.Actor, comment string) (events.ApprovalDecided, error) {
	if !r.Open() {
		return events.ApprovalDecided{}, fail(CodeAlreadyDecided, "request %s is %s", r.ID, r.Status)
	}
	return events.ApprovalDecided{
		Decision: events.ApprovalCancelled, ReasonCode: events.ReasonApprovalDenied,
		Approver: by, Comment: comment, DecidedAt: events.At(now),
	}, nil
}

// String is for logs.
func (c Change) String() string {
	if c.Rejection != "" {
		return fmt.Sprintf("%s %s (%s)", c.Kind, c.ApprovalID, c.Rejection)
	}
	return fmt.Sprintf("%s %s %s", c.Kind, c.ApprovalID, c.Status)
}

func stampOf(t time.Time) string { return t.UTC().Format(events.TimeLayout) }
