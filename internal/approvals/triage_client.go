package approvals

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"
)

// TriagedAlerts returns recent alerts with their triage state, newest
// first; open leaves out those with a verdict.
func (c *Client) TriagedAlerts(ctx context.Context, limit int, open bool) ([]TriagedAlertView, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if open {
		q.Set("open", "1")
	}
	var out []TriagedAlertView
	return out, c.do(ctx, http.MethodGet, "/api/v1/triage/alerts?"+q.Encode(), nil, &out)
}

// TriageAlert records an action on an alert.
func (c *Client) TriageAlert(ctx context.Context, alertEventID string, in TriageInput) (TriageOutput, error) {
	var out TriageOutput
	return out, c.do(ctx, http.MethodPost, "/api/v1/alerts/"+url.PathEscape(alertEventID)+"/triage", in, &out)
}

// Suppressions returns the active suppressions (all, also lifted and
// expired ones).
func (c *Client) Suppressions(ctx context.Context, all bool) ([]Suppression, error) {
	path := "/api/v1/suppressions"
	if all {
		path += "?all=1"
	}
	var out []Suppression
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Suppress silences a rule for a scope and a time.
func (c *Client) Suppress(ctx context.Context, in SuppressInput) (SuppressOutput, error) {
	var out SuppressOutput
	return out, c.do(ctx, http.MethodPost, "/api/v1/suppressions", in, &out)
}

// Unsuppress lifts a suppression.
func (c *Client) Unsuppress(ctx context.Context, suppressionEventID string, in LiftInput) (SuppressOutput, error) {
	var out SuppressOutput
	return out, c.do(ctx, http.MethodPost, "/api/v1/suppressions/"+url.PathEscape(suppressionEventID)+"/lift", in, &out)
}

// WriteTriagedAlerts prints alerts with their triage state as a table.
func WriteTriagedAlerts(w io.Writer, as []TriagedAlertView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tTIME\tSEVERITY\tRULE\tSESSION\tTRIAGE\tASSIGNEE\tMESSAGE")
	for _, a := range as {
		state, assignee := "new", "-"
		if t := a.Triage; t != nil {
			state = "acknowledged"
			if t.Verdict != "" {
				state = string(t.Verdict)
			}
			if t.Assignee != "" {
				assignee = t.Assignee
			}
		}
		if a.Suppressed != "" {
			state += " (suppressed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.EventID, stamp(a.EventTime), a.Severity, a.RuleID, a.SessionID,
			state, assignee, clip(oneLine(a.Message), 60))
	}
	return tw.Flush()
}

// WriteSuppressions prints suppressions as a table.
func WriteSuppressions(w io.Writer, ss []Suppression, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SUPPRESSION\tRULE\tTENANT\tSCOPE\tUNTIL\tBY\tSTATE\tCOMMENT")
	for _, s := range ss {
		state := "active"
		switch {
		case !s.LiftedAt.IsZero() && !now.Before(s.LiftedAt):
			state = "lifted by " + s.LiftedBy
		case !now.Before(s.ExpiresAt):
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s=%s\t%s\t%s\t%s\t%s\n", s.EventID, s.RuleID, s.Tenant, s.Scope.Kind, s.Scope.Value,
			stamp(s.ExpiresAt), s.By.ID, state, clip(oneLine(s.Comment), 50))
	}
	return tw.Flush()
}
