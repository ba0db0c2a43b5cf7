package approvals

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

// MaxSuppression bounds how long one suppression lasts: a rule silenced
// for good is a rule to change, not to suppress.
const MaxSuppression = 30 * 24 * time.Hour

// TriageInput is the body of POST /api/v1/alerts/{id}/triage.
type TriageInput struct {
	Action   events.TriageAction `json:"action"`
	Assignee string              `json:"assignee,omitempty"`
	Comment  string              `json:"comment,omitempty"`
}

// SuppressInput is the body of POST /api/v1/suppressions: suppress
// rule_id for a scope (of the alert's tenant when alert_event_id is
// given, else of tenant) for a duration such as "4h".
type SuppressInput struct {
	RuleID       string                  `json:"rule_id"`
	Tenant       string                  `json:"tenant,omitempty"`
	AlertEventID string                  `json:"alert_event_id,omitempty"`
	Scope        events.SuppressionScope `json:"scope"`
	For          string                  `json:"for"`
	Comment      string                  `json:"comment"`
}

// LiftInput is the body of POST /api/v1/suppressions/{id}/lift.
type LiftInput struct {
	Comment string `json:"comment,omitempty"`
}

// TriagedAlertView is an alert with its triage state.
type TriagedAlertView struct {
	AlertView
	Triage      *AlertTriage `json:"triage,omitempty"`
	MayTriage   bool         `json:"may_triage"`
	MaySuppress bool         `json:"may_suppress"`
	// Suppressed names the active suppression that covers the alert's
	// rule, session or group key now, if any.
	Suppressed string `json:"suppressed_by,omitempty"`
}

// TriageOutput is what a triage action returns.
type TriageOutput struct {
	EventID string           `json:"event_id"`
	Alert   TriagedAlertView `json:"alert"`
}

// SuppressOutput is what a suppression or its lifting returns.
type SuppressOutput struct {
	EventID     string      `json:"event_id"`
	Suppression Suppression `json:"suppression"`
}

// Triage returns the service's triage fold. Callers must not apply events
// to it.
func (s *Service) Triage() *TriageState { return s.triage }

// TriageAlert records ap's action on an alert the service has seen: it
// authorizes (may_triage), builds and signs an alert.triaged, emits it and
// returns once the fold applied it.
func (s *Service) TriageAlert(ctx context.Context, ap Approver, alertEventID string, in TriageInput) (TriageOutput, error) {
	if err := CheckTriage(in.Action, in.Assignee, in.Comment); err != nil {
		return TriageOutput{}, err
	}
	a := s.recent.alert(alertEventID)
	if a == nil {
		return TriageOutput{}, fail(CodeUnknownAlert, "%s (not among the alerts of the last %s)", alertEventID, s.recent.window)
	}
	if err := s.auth.AuthorizeTriage(ap, a.RuleID, a.Severity); err != nil {
		return TriageOutput{}, err
	}
	if in.Action == events.TriageAssign {
		if err := checkApproverID(in.Assignee); err != nil {
			return TriageOutput{}, fail(CodeInvalidTriage, "assignee: %v", err)
		}
	}
	now := s.now()
	p := events.AlertTriaged{Action: in.Action, AlertEventID: a.EventID, RuleID: a.RuleID, Assignee: in.Assignee,
		Comment: in.Comment, By: ap.Actor(), TriagedAt: events.At(now)}
	env, err := events.New(p, events.WithIDs(s.ids), events.WithSession(a.SessionID, s.emitID),
		events.WithTenant(a.Tenant), events.WithParent(a.EventID), events.WithTime(now),
		events.WithActor(events.ActorHuman, ap.ID))
	if err != nil {
		return TriageOutput{}, err
	}
	if err := s.emitTriage(ctx, env); err != nil {
		return TriageOutput{}, err
	}
	s.log.Info("triage", "alert_event_id", a.EventID, "event_id", env.EventID, "approver", ap.ID, "action", in.Action)
	return TriageOutput{EventID: env.EventID, Alert: s.triagedView(*a, &ap)}, nil
}

// Suppress silences a rule for a scope and a time with a signed
// rule.suppressed by ap (may_suppress).
func (s *Service) Suppress(ctx context.Context, ap Approver, in SuppressInput) (SuppressOutput, error) {
	tenant := in.Tenant
	if in.AlertEventID != "" {
		a := s.recent.alert(in.AlertEventID)
		if a == nil {
			return SuppressOutput{}, fail(CodeUnknownAlert, "%s", in.AlertEventID)
		}
		if in.RuleID == "" {
			in.RuleID = a.RuleID
		}
		if in.RuleID != a.RuleID || (tenant != "" && tenant != a.Tenant) {
			return SuppressOutput{}, fail(CodeInvalidTriage, "alert %s is of rule %s, tenant %s", a.EventID, a.RuleID, a.Tenant)
		}
		tenant = a.Tenant
	}
	d, err := time.ParseDuration(in.For)
	switch {
	case in.RuleID == "" || tenant == "":
		return SuppressOutput{}, fail(CodeInvalidTriage, "a suppression needs a rule_id and a tenant (or an alert_event_id)")
	case err != nil || d <= 0 || d > MaxSuppression:
		return SuppressOutput{}, fail(CodeInvalidTriage, "for: a duration such as 4h, at most %s, got %q", MaxSuppression, in.For)
	case !slices.Contains(events.SuppressionKinds, in.Scope.Kind) || in.Scope.Value == "":
		return SuppressOutput{}, fail(CodeInvalidTriage, "scope: kind one of %v and a value", events.SuppressionKinds)
	case in.Scope.Kind == events.SuppressTenant && in.Scope.Value != tenant:
		return SuppressOutput{}, fail(CodeInvalidTriage, "a tenant scope names the suppression's tenant %s", tenant)
	case in.Comment == "":
		return SuppressOutput{}, fail(CodeInvalidTriage, "a suppression needs a comment")
	}
	if err := s.auth.AuthorizeSuppress(ap, in.RuleID); err != nil {
		return SuppressOutput{}, err
	}
	now := s.now()
	p := events.RuleSuppressed{RuleID: in.RuleID, Scope: in.Scope, ExpiresAt: events.At(now.Add(d)), Comment: in.Comment,
		AlertEventID: in.AlertEventID, By: ap.Actor(), SuppressedAt: events.At(now)}
	env, err := events.New(p, events.WithIDs(s.ids), events.WithSession("triage/"+in.RuleID, s.emitID),
		events.WithTenant(tenant), events.WithTime(now), events.WithActor(events.ActorHuman, ap.ID))
	if err != nil {
		return SuppressOutput{}, err
	}
	if err := s.emitTriage(ctx, env); err != nil {
		return SuppressOutput{}, err
	}
	sup, _ := s.triage.Suppression(env.EventID)
	s.log.Info("suppress", "rule", in.RuleID, "event_id", env.EventID, "approver", ap.ID, "scope", in.Scope.Kind, "for", d)
	return SuppressOutput{EventID: env.EventID, Suppression: sup}, nil
}

// Unsuppress lifts an active suppression with a signed rule.unsuppressed.
func (s *Service) Unsuppress(ctx context.Context, ap Approver, suppressionEventID string, in LiftInput) (SuppressOutput, error) {
	now := s.now()
	sup, ok := s.triage.Suppression(suppressionEventID)
	if !ok || !sup.ActiveAt(now) {
		return SuppressOutput{}, fail(CodeUnknownSuppression, "%s", suppressionEventID)
	}
	if err := s.auth.AuthorizeSuppress(ap, sup.RuleID); err != nil {
		return SuppressOutput{}, err
	}
	p := events.RuleUnsuppressed{SuppressionEventID: sup.EventID, RuleID: sup.RuleID, Comment: in.Comment,
		By: ap.Actor(), UnsuppressedAt: events.At(now)}
	env, err := events.New(p, events.WithIDs(s.ids), events.WithSession("triage/"+sup.RuleID, s.emitID),
		events.WithTenant(sup.Tenant), events.WithParent(sup.EventID), events.WithTime(now),
		events.WithActor(events.ActorHuman, ap.ID))
	if err != nil {
		return SuppressOutput{}, err
	}
	if err := s.emitTriage(ctx, env); err != nil {
		return SuppressOutput{}, err
	}
	sup, _ = s.triage.Suppression(suppressionEventID)
	s.log.Info("unsuppress", "rule", sup.RuleID, "event_id", env.EventID, "approver", ap.ID)
	return SuppressOutput{EventID: env.EventID, Suppression: sup}, nil
}

// emitTriage signs env, emits it and waits for the fold; a rejection by
// the fold is an error with its code.
func (s *Service) emitTriage(ctx context.Context, env *events.Envelope) error {
	if err := s.signer.SignTriage(env); err != nil {
		return err
	}
	ch, err := s.emitApplied(ctx, env)
	if err != nil {
		return err
	}
	if ch.Kind != ChangeTriaged {
		return fail(ch.Rejection, "%s %s was recorded but rejected", env.EventType, env.EventID)
	}
	return nil
}

func (s *Service) triagedView(a AlertView, ap *Approver) TriagedAlertView {
	v := TriagedAlertView{AlertView: a}
	if t, ok := s.triage.Alert(a.EventID); ok {
		v.Triage = &t
	}
	if ap != nil {
		v.MayTriage = s.auth.MayTriage(*ap, a.RuleID, a.Severity)
		v.MaySuppress = s.auth.AuthorizeSuppress(*ap, a.RuleID) == nil
	}
	v.Suppressed, _ = s.triage.Suppressed(a.RuleID, a.Tenant, a.SessionID, "", a.GroupKey, s.now())
	return v
}

// HTTP handlers of the triage routes (registered in Handler):
//
//	GET  /api/v1/triage/alerts?limit=&open=1     alerts with their triage state
//	POST /api/v1/alerts/{id}/triage              {"action","assignee","comment"}
//	GET  /api/v1/suppressions?all=1
//	POST /api/v1/suppressions                    {"rule_id","tenant","alert_event_id","scope":{"kind","value"},"for","comment"}
//	POST /api/v1/suppressions/{id}/lift          {"comment"}
func (s *Service) listTriaged(w http.ResponseWriter, r *http.Request, ap Approver) {
	limit, ok := parseLimit(r.URL.Query().Get("limit"), 100)
	if !ok {
		writeError(w, http.StatusBadRequest, codeBadRequest, "limit must be 1..10000")
		return
	}
	open := r.URL.Query().Get("open") == "1"
	out := []TriagedAlertView{}
	for _, a := range s.recent.list(10000) {
		if len(out) >= limit {
			break
		}
		v := s.triagedView(a, &ap)
		if open && v.Triage != nil && v.Triage.Verdict != "" {
			continue
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) triageAlert(w http.ResponseWriter, r *http.Request, ap Approver) {
	var in TriageInput
	if !readBody(w, r, &in) {
		return
	}
	if err := checkText("comment", in.Comment); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	out, err := s.TriageAlert(r.Context(), ap, r.PathValue("id"), in)
	if err != nil {
		s.writeTriageRefusal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) listSuppressions(w http.ResponseWriter, r *http.Request, ap Approver) {
	writeJSON(w, http.StatusOK, s.triage.Suppressions(s.now(), r.URL.Query().Get("all") == "1"))
}

func (s *Service) suppress(w http.ResponseWriter, r *http.Request, ap Approver) {
	var in SuppressInput
	if !readBody(w, r, &in) {
		return
	}
	if err := checkText("comment", in.Comment); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	out, err := s.Suppress(r.Context(), ap, in)
	if err != nil {
		s.writeTriageRefusal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) liftSuppression(w http.ResponseWriter, r *http.Request, ap Approver) {
	var in LiftInput
	if !readBody(w, r, &in) {
		return
	}
	if err := checkText("comment", in.Comment); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	out, err := s.Unsuppress(r.Context(), ap, r.PathValue("id"), in)
	if err != nil {
		s.writeTriageRefusal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// readBody reads a small JSON body strictly into v, or answers 400/413.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, codeBadRequest, "body too large")
		return false
	}
	if err := decodeStrict(body, v); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return false
	}
	return true
}

func (s *Service) writeTriageRefusal(w http.ResponseWriter, err error) {
	switch signing.CodeOf(err) {
	case CodeUnknownAlert, CodeUnknownSuppression:
		writeError(w, http.StatusNotFound, string(signing.CodeOf(err)), err.Error())
	default:
		s.writeRefusal(w, err)
	}
}

// String is for logs.
func (sup Suppression) String() string {
	return fmt.Sprintf("%s %s %s=%s until %s", sup.EventID, sup.RuleID, sup.Scope.Kind, sup.Scope.Value, stampOf(sup.ExpiresAt))
}
