package store

import "time"

// flattenTriage maps one payload member of alert.triaged, rule.suppressed
// or rule.unsuppressed onto r (columns of migration 0014 and the shared
// ones: rule_id, reason for the comment, by_id, ref_event_id for the
// alert or the suppression named, decided_at for when the analyst acted,
// expires_at, key_id). t and id are flattenPayload's readers.
func flattenTriage(r *EventRow, k, v string, t func(*time.Time, string), id func(*uint64, string)) {
	switch k {
	case "action":
		r.TriageAction = str(v)
	case "rule_id":
		r.RuleID = str(v)
	case "assignee":
		r.Assignee = str(v)
	case "comment":
		r.Reason = str(v)
	case "by":
		r.ByID = str(field(v, "id"))
	case "alert_event_id", "suppression_event_id":
		id(&r.RefEventID, v)
	case "triaged_at", "suppressed_at", "unsuppressed_at":
		t(&r.DecidedAt, v)
	case "expires_at":
		t(&r.ExpiresAt, v)
	case "key_id":
		r.KeyID = str(v)
	case "scope":
		r.ScopeKind, r.ScopeValue = str(field(v, "kind")), str(field(v, "value"))
	}
}
