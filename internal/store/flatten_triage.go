package store

import "github.com/agentaudit/agentaudit/internal/events"

// flattenTriage maps one payload member of alert.triaged, rule.suppressed
// or rule.unsuppressed onto r (columns of migration 0014 and the shared
// ones: rule_id, reason for the comment, by_id, ref_event_id for the
// alert or the suppression named, decided_at for when the analyst acted,
// expires_at, key_id).
func flattenTriage(r *EventRow, k string, v events.JSONValue) error {
	switch k {
	case "action":
		r.TriageAction = v.Str()
	case "rule_id":
		r.RuleID = v.Str()
	case "assignee":
		r.Assignee = v.Str()
	case "comment":
		r.Reason = v.Str()
	case "by":
		r.ByID = v.Field("id").Str()
	case "alert_event_id", "suppression_event_id":
		return setID(&r.RefEventID, v)
	case "triaged_at", "suppressed_at", "unsuppressed_at":
		return setTime(&r.DecidedAt, v)
	case "expires_at":
		return setTime(&r.ExpiresAt, v)
	case "key_id":
		r.KeyID = v.Str()
	case "scope":
		r.ScopeKind, r.ScopeValue = v.Field("kind").Str(), v.Field("value").Str()
	}
	return nil
}
