package detect

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Suppressions says whether an analyst silenced a rule's alert: a
// rule.suppressed on the approvals topic, signed by the approvals service,
// whose scope covers the alert (its tenant, session, agent or group key)
// at the alert's last match. It returns the suppression's event id.
// approvals.TriageState is one; FollowTriage keeps it current.
type Suppressions interface {
	Suppressed(rule, tenant, session, agent, groupKey string, at time.Time) (suppressionEventID string, ok bool)
}

// WithSuppressions makes the service honour sup: a suppressed alert is not
// written (nor its hold or approval request); the rule is still evaluated
// and what it suppressed is counted in
// detect_suppressed_alerts_total{rule,suppressed_by} and logged with its
// suppressed_by.
func WithSuppressions(sup Suppressions) ServiceOption {
	return func(s *Service) { s.suppressions = sup }
}

// newSuppressedCounter is the counter of alerts an analyst's suppression
// held back.
func newSuppressedCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detect_suppressed_alerts_total",
		Help: "Alerts not written because an analyst suppressed the rule for their scope, per rule and suppression (the rule.suppressed event id).",
	}, []string{"rule", "suppressed_by"})
}

// suppressedBy returns the suppression that silences a, counting it.
func (s *Service) suppressedBy(a Alert) (string, bool) {
	if s.suppressions == nil {
		return "", false
	}
	by, ok := s.suppressions.Suppressed(a.RuleID, a.Tenant, a.SessionID, a.Agent, a.GroupKey, a.LastSeen)
	if !ok {
		return "", false
	}
	s.metrics.suppressedAlerts.WithLabelValues(a.RuleID, by).Inc()
	s.log.Debug("alert suppressed", "rule", a.RuleID, "group_key", a.GroupKey, "session_id", a.SessionID,
		"count", a.Count, "suppressed_by", by)
	return by, true
}

// agentName is env's agent name, or "".
func agentName(env *events.Envelope) string {
	if env == nil || env.Agent == nil {
		return ""
	}
	return env.Agent.Name
}
