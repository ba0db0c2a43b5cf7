package approvals

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/events"
)

// The CLI's human-readable output: aligned tables and a detail view.

// WriteRequests writes requests as an aligned table.
func WriteRequests(w io.Writer, rs []RequestView, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tKIND\tRISK\tRULE\tREQUESTER\tSESSION\tEXPIRES\tSUMMARY")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, statusCell(r), r.Kind, r.Risk, dash(r.RuleID),
			r.Requester.ID, r.SessionID, expiresCell(r, now), clip(oneLine(r.Summary), 60))
	}
	return tw.Flush()
}

// WriteRequest writes one request in full.
func WriteRequest(w io.Writer, r RequestView, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", r.ID)
	row("Status", statusCell(r))
	row("Kind", r.Kind)
	row("Summary", oneLine(r.Summary))
	row("Why", oneLine(r.Reason))
	row("Reason code", string(r.ReasonCode))
	row("Rule", dash(r.RuleID))
	row("Risk", string(r.Risk))
	row("Requester", string(r.Requester.Type)+":"+r.Requester.ID)
	row("Agent", agentCell(r.Agent))
	row("Operator", dash(r.Operator))
	row("Tenant", dash(r.Tenant))
	row("Session", r.Tenant+" / "+r.SessionID)
	row("Working directory", dash(r.Cwd))
	row("Runner", r.RunnerID)
	row("Tool call", dash(r.ToolCallID))
	row("Requested", stamp(r.RequestedAt))
	row("Expires", stamp(r.ExpiresAt)+" ("+expiresCell(r, now)+")")
	scopes := make([]string, len(r.Scopes))
	for i, s := range r.Scopes {
		scopes[i] = string(s)
	}
	row("Scopes", strings.Join(scopes, ", "))
	row("Approvals", fmt.Sprintf("%d of %d", len(r.Approvals), r.RequiredApprovals))
	if r.MayAnswer {
		row("You may answer", "yes")
	} else {
		row("You may answer", "no ("+string(r.Refusal)+")")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.History) > 0 {
		fmt.Fprintln(w, "\nHistory:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  EVENT\tDECISION\tSCOPE\tBY\tAT\tRESULT\tCOMMENT")
		for _, d := range r.History {
			res := string(d.Result)
			if d.Rejection != "" {
				res += " (" + string(d.Rejection) + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.EventID, d.Decision, dash(string(d.Scope)),
				d.Approver.ID, stamp(d.DecidedAt), res, clip(oneLine(d.Comment), 50))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if p := r.Preview; p != nil {
		writePreview(w, p)
	}
	if r.Cause != nil {
		fmt.Fprintln(w, "\nCaused by:")
		var tc events.ToolCallRequested
		_ = json.Unmarshal(r.Cause.Payload, &tc)
		fmt.Fprintf(w, "  %s %s\n  (tool call %s, event %s)\n", oneLine(tc.ToolName), oneLine(CommandOf(tc.Arguments)), r.ToolCallID, r.Cause.EventID)
	}
	if err := writeSession(w, r.Session); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSubject:")
	switch {
	case r.Subject != nil:
		var pretty strings.Builder
		var v any
		if json.Unmarshal(r.Subject.Payload, &v) == nil {
			b, _ := json.MarshalIndent(v, "  ", "  ")
			pretty.Write(b)
		}
		fmt.Fprintf(w, "  %s %s\n  %s\n", r.Subject.EventType, r.Subject.EventID, pretty.String())
	case r.SubjectEventID != "":
		fmt.Fprintf(w, "  event %s (not in the service's recent window)\n", r.SubjectEventID)
	default:
		fmt.Fprintln(w, "  (none)")
	}
	return nil
}

// writePreview writes a file write's facts, diff and content. Diff and
// content lines keep their text but lose control characters, so a file
// cannot repaint the approver's terminal.
func writePreview(w io.Writer, p *events.WritePreview) {
	facts := []string{fmt.Sprintf("%d bytes", p.ContentLength), "sha256 " + p.ContentSHA256}
	if p.NewFile {
		facts = append(facts, "new file")
	}
	if p.Truncated {
		facts = append(facts, "cut to its bound")
	}
	if p.Redacted > 0 {
		facts = append(facts, fmt.Sprintf("%d secret(s) redacted", p.Redacted))
	}
	fmt.Fprintf(w, "\nFile write: %s (%s)\n", oneLine(p.Path), strings.Join(facts, ", "))
	switch {
	case p.Binary:
		fmt.Fprintln(w, "  binary content: not shown")
		return
	case p.Diff != "":
		fmt.Fprintln(w, "Diff:")
		writeIndented(w, p.Diff)
	}
	if p.Content != "" {
		fmt.Fprintln(w, "New content:")
		writeIndented(w, p.Content)
	}
}

func writeIndented(w io.Writer, text string) {
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", oneLine(l))
	}
}

// writeSession writes a session's operator, alerts and last actions.
func writeSession(w io.Writer, s *SessionView) error {
	if s == nil {
		return nil
	}
	if len(s.Alerts) > 0 {
		fmt.Fprintln(w, "\nAlerts on this session:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range s.Alerts {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", stamp(a.EventTime), a.Severity, a.RuleID, a.Count, clip(oneLine(a.Message), 80))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nLast actions of the session:")
	if len(s.LastActions) == 0 {
		fmt.Fprintln(w, "  (none seen)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, a := range s.LastActions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", stamp(a.EventTime), dash(a.Outcome), clip(oneLine(a.Text), 100))
	}
	return tw.Flush()
}

func agentCell(a *events.Agent) string {
	if a == nil {
		return "-"
	}
	if a.Version == "" {
		return a.Name
	}
	return a.Name + " " + a.Version
}

// WriteDecision writes what a decision did.
func WriteDecision(w io.Writer, out DecisionOutput) error {
	r := out.Request
	switch out.Result {
	case ResultPartial:
		_, err := fmt.Fprintf(w, "%s: approval recorded (event %s); %d of %d approvals, still pending\n",
			r.ID, out.EventID, len(r.Approvals), r.RequiredApprovals)
		return err
	default:
		scope := ""
		if r.Final != nil && r.Final.Scope != "" {
			scope = ", scope " + string(r.Final.Scope)
		}
		_, err := fmt.Fprintf(w, "%s: %s%s (event %s)\n", r.ID, r.Status, scope, out.EventID)
		return err
	}
}

// WriteHolds writes active holds as a table.
func WriteHolds(w io.Writer, hs []HoldView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tHOLD EVENT\tRULE\tBY\tHELD AT\tREASON")
	for _, h := range hs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.SessionID, h.EventID, dash(h.RuleID), h.By.ID, stamp(h.HeldAt), clip(oneLine(h.Reason), 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// What each held session did, so a release is not decided blind.
	for _, h := range hs {
		if h.Session == nil {
			continue
		}
		fmt.Fprintf(w, "\nSession %s (operator %s, agent %s):", h.SessionID, dash(h.Session.Operator), agentCell(h.Session.Agent))
		if err := writeSession(w, h.Session); err != nil {
			return err
		}
	}
	return nil
}

// WriteAlerts writes alerts as a table.
func WriteAlerts(w io.Writer, as []AlertView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSEVERITY\tRULE\tSESSION\tCOUNT\tACTION\tMESSAGE")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", stamp(a.EventTime), a.Severity, a.RuleID, a.SessionID, a.Count, a.Action, clip(oneLine(a.Message), 60))
	}
	return tw.Flush()
}

func statusCell(r RequestView) string {
	if r.Status == StatusPending && r.RequiredApprovals > 1 {
		return fmt.Sprintf("pending %d/%d", len(r.Approvals), r.RequiredApprovals)
	}
	return string(r.Status)
}

func expiresCell(r RequestView, now time.Time) string {
	if r.Status != StatusPending {
		return "-"
	}
	left := r.ExpiresAt.Sub(now).Round(time.Second)
	if left <= 0 {
		return "overdue"
	}
	return "in " + left.String()
}

// stamp formats t, or "-" when it is missing: the zero time, or the Unix
// epoch that a store's empty DateTime reads back as.
func stamp(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table row on one line and its columns aligned whatever
// the text holds: control characters (tabs, newlines, escapes that could
// repaint a terminal) become spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
