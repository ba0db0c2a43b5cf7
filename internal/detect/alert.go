package detect

import (
	"context"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Alert is one finding of a rule, after dedup.
type Alert struct {
	RuleID      string
	RuleVersion string
	Title       string
	Severity    events.Severity
	Action      Action
	Tags        []string
	// GroupKey is the dedup key the alert stands for.
	GroupKey string
	// Count is the matches this alert reports (events in a window, steps
	// of a sequence, 1 for a plain match, the suppressed matches of a
	// summary); Suppressed the duplicate matches dedup folded into it.
	Count      uint64
	Suppressed uint64
	FirstSeen  time.Time
	LastSeen   time.Time
	// EventIDs are the matched events, at most 100.
	EventIDs []string
	Message  string
	// Summary: this alert only reports occurrences dedup suppressed after
	// the last alert, because no further alert came to carry their count.
	Summary bool
	// Tenant and SessionID are those of the last matched event: where a
	// hold applies.
	Tenant    string
	SessionID string
	// Agent is the last matched event's agent name ("" for summaries and
	// SQL rules): what an agent-scoped suppression compares.
	Agent string
}

// AlertSink receives alerts; the detect service turns them into events.
type AlertSink interface {
	Raise(ctx context.Context, a Alert) error
}

// Raised returns the alert.raised payload of a.
func (a Alert) Raised() events.AlertRaised {
	action := events.AlertNotify
	if a.Action == ActionHoldSession {
		action = events.AlertHold
	}
	ids := a.EventIDs
	if len(ids) > maxMatchedIDs {
		ids = ids[len(ids)-maxMatchedIDs:]
	}
	return events.AlertRaised{
		RuleID: a.RuleID, RuleVersion: a.RuleVersion, Severity: a.Severity,
		GroupKey: a.GroupKey, Count: a.Count, Suppressed: a.Suppressed,
		FirstSeen: events.At(a.FirstSeen), LastSeen: events.At(a.LastSeen),
		MatchedEventIDs: ids, Message: a.Message, Action: action,
	}
}

// Held returns the session.held payload a hold_session alert asks for,
// naming the alert event that caused it; ok is false for other actions and
// for summaries (the session was held by the first alert already).
func (a Alert) Held(alertEventID string) (p events.SessionHeld, ok bool) {
	if a.Action != ActionHoldSession || a.Summary || a.SessionID == "" {
		return p, false
	}
	return events.SessionHeld{
		Reason:       truncate(a.Message, maxMessageLen),
		RuleID:       a.RuleID,
		AlertEventID: alertEventID,
		By:           events.Actor{Type: events.ActorRule, ID: a.RuleID},
	}, true
}

// ApprovalRequest returns the approval.requested payload a request_approval
// alert asks for; ok is false for other actions and for summaries.
func (a Alert) ApprovalRequest(alertEventID string, expires time.Time) (p events.ApprovalRequested, ok bool) {
	if a.Action != ActionRequestApproval || a.Summary {
		return p, false
	}
	return events.ApprovalRequested{
		Kind:           events.ApprovalKindSessionHold,
		Summary:        truncate(a.Title, maxMessageLen),
		Reason:         truncate(a.Message, maxMessageLen),
		ReasonCode:     events.ReasonNeedsApproval,
		RuleID:         a.RuleID,
		Risk:           riskOf(a.Severity),
		Requester:      events.Actor{Type: events.ActorRule, ID: a.RuleID},
		Scopes:         []events.ApprovalScope{events.ScopeOnce, events.ScopeSession},
		ExpiresAt:      events.At(expires),
		RequestEventID: alertEventID,
	}, true
}

func riskOf(s events.Severity) events.Risk {
	switch s {
	case events.SeverityCritical:
		return events.RiskCritical
	case events.SeverityHigh:
		return events.RiskHigh
	case events.SeverityMedium:
		return events.RiskMedium
	}
	return events.RiskLow
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
