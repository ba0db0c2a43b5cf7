package events

// Alert triage: what analysts decide about alerts and rules. The approvals
// service signs these like approval decisions and writes them to the
// approvals topic; its state and the detectors fold them. Each has a
// schema schemas/v1/<type>.json.
const (
	TypeAlertTriaged     = "alert.triaged"
	TypeRuleSuppressed   = "rule.suppressed"
	TypeRuleUnsuppressed = "rule.unsuppressed"
)

// TriageAction is what an alert.triaged does to its alert.
type TriageAction string

// Triage actions. A true or false positive is a verdict; a later verdict
// replaces an earlier one. false_positive needs a comment.
const (
	TriageAcknowledge   TriageAction = "acknowledge"
	TriageAssign        TriageAction = "assign"
	TriageTruePositive  TriageAction = "true_positive"
	TriageFalsePositive TriageAction = "false_positive"
	TriageComment       TriageAction = "comment"
)

// TriageActions lists every triage action.
var TriageActions = []TriageAction{TriageAcknowledge, TriageAssign, TriageTruePositive, TriageFalsePositive, TriageComment}

// SuppressionKind says what part of the alerts a suppression covers.
type SuppressionKind string

// Suppression scopes: every alert of the rule in a tenant, in a session,
// from an agent, or with a group key (the value of the rule's dedup
// field, for example a host).
const (
	SuppressTenant   SuppressionKind = "tenant"
	SuppressSession  SuppressionKind = "session"
	SuppressAgent    SuppressionKind = "agent"
	SuppressGroupKey SuppressionKind = "group_key"
)

// SuppressionKinds lists every suppression scope kind.
var SuppressionKinds = []SuppressionKind{SuppressTenant, SuppressSession, SuppressAgent, SuppressGroupKey}

// SuppressionScope is what a suppression covers besides its rule. The
// envelope's tenant always bounds it.
type SuppressionScope struct {
	Kind  SuppressionKind `json:"kind"`
	Value string          `json:"value"`
}

// AlertTriaged records one analyst action on one alert.
type AlertTriaged struct {
	Action       TriageAction `json:"action"`
	AlertEventID string       `json:"alert_event_id"`
	RuleID       string       `json:"rule_id"`
	// Assignee is who the alert is assigned to (action assign).
	Assignee  string `json:"assignee,omitempty"`
	Comment   string `json:"comment,omitempty"`
	By        Actor  `json:"by"`
	TriagedAt Time   `json:"triaged_at"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
}

// EventType implements Payload.
func (AlertTriaged) EventType() string { return TypeAlertTriaged }

// RuleSuppressed silences a rule's alerts in a scope until ExpiresAt.
type RuleSuppressed struct {
	RuleID    string           `json:"rule_id"`
	Scope     SuppressionScope `json:"scope"`
	ExpiresAt Time             `json:"expires_at"`
	Comment   string           `json:"comment"`
	// AlertEventID is the alert that prompted the suppression, if any.
	AlertEventID string `json:"alert_event_id,omitempty"`
	By           Actor  `json:"by"`
	SuppressedAt Time   `json:"suppressed_at"`
	KeyID        string `json:"key_id"`
	Signature    string `json:"signature"`
}

// EventType implements Payload.
func (RuleSuppressed) EventType() string { return TypeRuleSuppressed }

// RuleUnsuppressed lifts a suppression before it expires.
type RuleUnsuppressed struct {
	SuppressionEventID string `json:"suppression_event_id"`
	RuleID             string `json:"rule_id"`
	Comment            string `json:"comment,omitempty"`
	By                 Actor  `json:"by"`
	UnsuppressedAt     Time   `json:"unsuppressed_at"`
	KeyID              string `json:"key_id"`
	Signature          string `json:"signature"`
}

// EventType implements Payload.
func (RuleUnsuppressed) EventType() string { return TypeRuleUnsuppressed }
