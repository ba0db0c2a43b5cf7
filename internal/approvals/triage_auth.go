package approvals

import (
	"fmt"
	"slices"

	"github.com/agentaudit/agentaudit/internal/events"
)

// validateTriageMatches checks a group's may_triage and may_suppress:
// they select by rule and severity, so kinds must be empty.
func validateTriageMatches(field string, g GroupPolicy) error {
	for _, list := range []struct {
		name string
		ms   []Match
	}{{"may_triage", g.MayTriage}, {"may_suppress", g.MaySuppress}} {
		for j, m := range list.ms {
			f := fmt.Sprintf("%s.%s[%d]", field, list.name, j)
			if len(m.Kinds) > 0 {
				return fmt.Errorf("%w: %s.kinds: alerts have no request kind; select by rule_ids and min_risk/max_risk", ErrConfig, f)
			}
			if err := m.validate(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// alertRequest is how an alert of rule with severity looks to a Match:
// its severity stands for the risk.
func alertRequest(rule string, sev events.Severity) Request {
	if sev == events.SeverityInfo {
		sev = events.SeverityLow
	}
	return Request{RuleID: rule, Risk: events.Risk(sev)}
}

// AuthorizeTriage decides whether ap may triage an alert of rule with
// severity sev: some group of ap's must have a may_triage entry that
// matches. Default deny.
func (a *Authenticator) AuthorizeTriage(ap Approver, rule string, sev events.Severity) error {
	if ap.ID == "" {
		return fail(CodeUnauthenticated, "no approver")
	}
	if !a.groupsMatch(ap, alertRequest(rule, sev), func(g GroupPolicy) []Match { return g.MayTriage }) {
		return fail(CodeWrongGroup, "%s (groups %v) may not triage alerts of rule %q (severity %s)", ap.ID, ap.Groups, rule, sev)
	}
	return nil
}

// AuthorizeSuppress decides whether ap may suppress (or lift a suppression
// of) rule: some group of ap's must have a may_suppress entry whose
// rule_ids match (a severity bound in it matches nothing: a suppression
// covers every severity).
func (a *Authenticator) AuthorizeSuppress(ap Approver, rule string) error {
	if ap.ID == "" {
		return fail(CodeUnauthenticated, "no approver")
	}
	if !a.groupsMatch(ap, alertRequest(rule, events.SeverityCritical), func(g GroupPolicy) []Match {
		return slices.DeleteFunc(slices.Clone(g.MaySuppress), func(m Match) bool { return m.MinRisk != "" || m.MaxRisk != "" })
	}) {
		return fail(CodeWrongGroup, "%s (groups %v) may not suppress rule %q", ap.ID, ap.Groups, rule)
	}
	return nil
}

func (a *Authenticator) groupsMatch(ap Approver, r Request, list func(GroupPolicy) []Match) bool {
	for _, g := range a.cfg.Groups {
		if !slices.Contains(ap.Groups, g.Name) {
			continue
		}
		for _, m := range list(g) {
			if m.Matches(r) {
				return true
			}
		}
	}
	return false
}

// MayTriage reports whether ap may triage an alert of rule with severity
// sev, for views.
func (a *Authenticator) MayTriage(ap Approver, rule string, sev events.Severity) bool {
	return a.AuthorizeTriage(ap, rule, sev) == nil
}
