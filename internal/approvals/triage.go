package approvals

import (
	"slices"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

// TriageNote is one accepted alert.triaged.
type TriageNote struct {
	EventID  string              `json:"event_id"`
	Action   events.TriageAction `json:"action"`
	Assignee string              `json:"assignee,omitempty"`
	Comment  string              `json:"comment,omitempty"`
	By       events.Actor        `json:"by"`
	At       time.Time           `json:"at"`
}

// AlertTriage is an alert's current triage state: the fold of its
// alert.triaged events.
type AlertTriage struct {
	AlertEventID string `json:"alert_event_id"`
	RuleID       string `json:"rule_id"`
	Tenant       string `json:"tenant"`
	SessionID    string `json:"session_id"`
	// Acknowledged: some analyst acted on it; FirstTriagedAt is when.
	Acknowledged   bool      `json:"acknowledged"`
	FirstTriagedAt time.Time `json:"first_triaged_at"`
	Assignee       string    `json:"assignee,omitempty"`
	// Verdict is the latest true_positive or false_positive, or "".
	Verdict   events.TriageAction `json:"verdict,omitempty"`
	VerdictBy string              `json:"verdict_by,omitempty"`
	History   []TriageNote        `json:"history"`
}

// Suppression is a rule.suppressed and, once lifted, when and by whom.
type Suppression struct {
	EventID      string                  `json:"event_id"`
	Tenant       string                  `json:"tenant"`
	RuleID       string                  `json:"rule_id"`
	Scope        events.SuppressionScope `json:"scope"`
	From         time.Time               `json:"from"`
	ExpiresAt    time.Time               `json:"expires_at"`
	Comment      string                  `json:"comment"`
	AlertEventID string                  `json:"alert_event_id,omitempty"`
	By           events.Actor            `json:"by"`
	LiftedAt     time.Time               `json:"lifted_at,omitzero"`
	LiftedBy     string                  `json:"lifted_by,omitempty"`
}

// ActiveAt reports whether the suppression silences alerts at t.
func (s Suppression) ActiveAt(t time.Time) bool {
	return !t.Before(s.From) && t.Before(s.ExpiresAt) && (s.LiftedAt.IsZero() || t.Before(s.LiftedAt))
}

// Covers reports whether the suppression's rule, tenant and scope take in
// an alert of rule in tenant, session, from agent, with groupKey.
func (s Suppression) Covers(rule, tenant, session, agent, groupKey string) bool {
	if s.RuleID != rule || s.Tenant != tenant {
		return false
	}
	switch s.Scope.Kind {
	case events.SuppressTenant:
		return s.Scope.Value == tenant
	case events.SuppressSession:
		return s.Scope.Value == session
	case events.SuppressAgent:
		return agent != "" && s.Scope.Value == agent
	case events.SuppressGroupKey:
		return s.Scope.Value == groupKey
	}
	return false
}

// TriageState is the fold of the triage events of the approvals topic:
// each alert's triage state and the suppressions. With a key set it
// applies only events whose signature verifies (an event written by anyone
// but the service changes nothing); without one it trusts them, which is
// for tests. It is safe for concurrent use.
type TriageState struct {
	mu           sync.Mutex
	verifier     *signing.KeySet
	alerts       map[string]*AlertTriage
	order        []string // alert event ids, first triage first
	suppressions map[string]*Suppression
	supOrder     []string
	seen         map[string]struct{}
	rejected     uint64
}

// NewTriageState returns an empty fold that verifies with ks (nil: no
// verification).
func NewTriageState(ks *signing.KeySet) *TriageState {
	return &TriageState{verifier: ks, alerts: map[string]*AlertTriage{},
		suppressions: map[string]*Suppression{}, seen: map[string]struct{}{}}
}

// Apply folds one event. Events of other types change nothing
// (ChangeIgnored); an unverifiable or inconsistent triage event is
// ChangeRejected with its code.
func (t *TriageState) Apply(env *events.Envelope) Change {
	ch := Change{Kind: ChangeIgnored}
	if env == nil || !signing.IsTriage(env.EventType) {
		return ch
	}
	ch.EventID, ch.SessionID = env.EventID, env.SessionID
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.seen[env.EventID]; dup {
		ch.Kind = ChangeDuplicate
		return ch
	}
	var p events.Payload
	var err error
	if t.verifier != nil {
		p, err = t.verifier.VerifyTriage(env)
	} else {
		p, err = signing.TriageOf(env)
	}
	if err == nil {
		err = t.apply(env, p)
	}
	t.seen[env.EventID] = struct{}{}
	if err != nil {
		t.rejected++
		ch.Kind, ch.Rejection = ChangeRejected, signing.CodeOf(err)
		return ch
	}
	ch.Kind = ChangeTriaged
	return ch
}

// ChangeTriaged: a triage event was applied.
const ChangeTriaged ChangeKind = "triaged"

func (t *TriageState) apply(env *events.Envelope, p events.Payload) error {
	switch v := p.(type) {
	case *events.AlertTriaged:
		if err := CheckTriage(v.Action, v.Assignee, v.Comment); err != nil {
			return err
		}
		a := t.alerts[v.AlertEventID]
		if a == nil {
			a = &AlertTriage{AlertEventID: v.AlertEventID, RuleID: v.RuleID, Tenant: env.Tenant,
				SessionID: env.SessionID, FirstTriagedAt: v.TriagedAt.Time, History: []TriageNote{}}
			t.alerts[v.AlertEventID] = a
			t.order = append(t.order, v.AlertEventID)
		}
		if a.Tenant != env.Tenant || a.RuleID != v.RuleID {
			return fail(CodeInvalidTriage, "alert %s is of tenant %s, rule %s", v.AlertEventID, a.Tenant, a.RuleID)
		}
		a.Acknowledged = true
		if v.TriagedAt.Time.Before(a.FirstTriagedAt) {
			a.FirstTriagedAt = v.TriagedAt.Time
		}
		switch v.Action {
		case events.TriageAssign:
			a.Assignee = v.Assignee
		case events.TriageTruePositive, events.TriageFalsePositive:
			a.Verdict, a.VerdictBy = v.Action, v.By.ID
		}
		a.History = append(a.History, TriageNote{EventID: env.EventID, Action: v.Action, Assignee: v.Assignee,
			Comment: v.Comment, By: v.By, At: v.TriagedAt.Time})
	case *events.RuleSuppressed:
		if !v.ExpiresAt.Time.After(v.SuppressedAt.Time) {
			return fail(CodeInvalidTriage, "suppression expires at %s, before it starts", stampOf(v.ExpiresAt.Time))
		}
		t.suppressions[env.EventID] = &Suppression{EventID: env.EventID, Tenant: env.Tenant, RuleID: v.RuleID,
			Scope: v.Scope, From: v.SuppressedAt.Time, ExpiresAt: v.ExpiresAt.Time, Comment: v.Comment,
			AlertEventID: v.AlertEventID, By: v.By}
		t.supOrder = append(t.supOrder, env.EventID)
	case *events.RuleUnsuppressed:
		s := t.suppressions[v.SuppressionEventID]
		if s == nil || s.Tenant != env.Tenant || s.RuleID != v.RuleID {
			return fail(CodeUnknownSuppression, "%s", v.SuppressionEventID)
		}
		if s.LiftedAt.IsZero() || v.UnsuppressedAt.Time.Before(s.LiftedAt) {
			s.LiftedAt, s.LiftedBy = v.UnsuppressedAt.Time, v.By.ID
		}
	}
	return nil
}

// CheckTriage checks that an action has what it needs: an assignee for
// assign, a comment for false_positive and comment.
func CheckTriage(action events.TriageAction, assignee, comment string) error {
	switch action {
	case events.TriageAssign:
		if assignee == "" {
			return fail(CodeInvalidTriage, "assign needs an assignee")
		}
	case events.TriageFalsePositive, events.TriageComment:
		if comment == "" {
			return fail(CodeInvalidTriage, "%s needs a comment", action)
		}
	case events.TriageAcknowledge, events.TriageTruePositive:
	default:
		return fail(CodeInvalidTriage, "unknown action %q (want one of %v)", action, events.TriageActions)
	}
	return nil
}

// Alert returns a copy of an alert's triage state.
func (t *TriageState) Alert(alertEventID string) (AlertTriage, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.alerts[alertEventID]
	if !ok {
		return AlertTriage{}, false
	}
	c := *a
	c.History = slices.Clone(a.History)
	return c, true
}

// Suppressions returns copies of the suppressions active at now, oldest
// first (all of them, lifted and expired too, when all is set).
func (t *TriageState) Suppressions(now time.Time, all bool) []Suppression {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []Suppression{}
	for _, id := range t.supOrder {
		if s := t.suppressions[id]; all || s.ActiveAt(now) {
			out = append(out, *s)
		}
	}
	return out
}

// Suppression returns a copy of the suppression with event id id.
func (t *TriageState) Suppression(id string) (Suppression, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.suppressions[id]
	if !ok {
		return Suppression{}, false
	}
	return *s, true
}

// Suppressed returns the event id of the oldest suppression that silences
// an alert of rule (tenant, session, agent, group key) at at. It is what
// detect's Suppressions interface asks.
func (t *TriageState) Suppressed(rule, tenant, session, agent, groupKey string, at time.Time) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range t.supOrder {
		s := t.suppressions[id]
		if s.ActiveAt(at) && s.Covers(rule, tenant, session, agent, groupKey) {
			return id, true
		}
	}
	return "", false
}

// Rejected counts the triage events the fold refused.
func (t *TriageState) Rejected() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rejected
}
