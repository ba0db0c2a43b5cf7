package approvals

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// triageBrowserResult is what triage.mjs reports.
type triageBrowserResult struct {
	OK                    bool     `json:"ok"`
	Error                 string   `json:"error"`
	InitialState          string   `json:"initial_state"`
	States                []string `json:"states"`
	FPRefusal             string   `json:"fp_refusal"`
	TypedThroughRefresh   string   `json:"typed_through_refresh"`
	FocusKept             bool     `json:"focus_kept"`
	Assignee              string   `json:"assignee"`
	Verdict               string   `json:"verdict"`
	History               []string `json:"history"`
	SuppressorNoRights    bool     `json:"suppressor_no_rights"`
	SuppressorAckDisabled bool     `json:"suppressor_ack_disabled"`
	SuppressionRow        string   `json:"suppression_row"`
	SuppressedNote        string   `json:"suppressed_note"`
	RowsAfterLift         int      `json:"rows_after_lift"`
	ScrollWidth           int      `json:"scroll_width"`
	ClientWidth           int      `json:"client_width"`
	ConsoleErrors         []string `json:"console_errors"`
}

// TestBrowserTriage triages an alert and suppresses its rule through the
// inbox in headless chromium, against the real Kafka, and checks the
// service's fold saw every action.
func TestBrowserTriage(t *testing.T) {
	dir := browserEnv(t)
	h := realHarness(t)
	session := "sess-browser-triage-" + h.ids.Next().String()
	h.alertAndHold(t, session)
	var alertID string
	for _, a := range h.svc.recent.list(10) {
		if a.SessionID == session {
			alertID = a.EventID
		}
	}
	shot := screenshotPath(t, "inbox-triage.png")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "triage.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "INBOX_URL="+h.srv.URL, "TRIAGE_TOKEN="+testTokens["alice"],
		"SUPPRESS_TOKEN="+testTokens["dave"], "ALERT_ID="+alertID, "SCREENSHOT="+shot)
	cmd.Stderr = testenv.Writer{T: t}
	out, err := cmd.Output()
	var res triageBrowserResult
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			if jerr := json.Unmarshal([]byte(rest), &res); jerr != nil {
				t.Fatalf("browser result: %v", jerr)
			}
		}
	}
	if !res.OK {
		t.Fatalf("browser run failed (%v): %s\n%s", err, res.Error, out)
	}
	t.Logf("triage screenshot: %s", shot)
	checks := []struct {
		what string
		ok   bool
	}{
		{"new alert shows as new", res.InitialState == "new"},
		{"states acknowledged then false positive", strings.Join(res.States, ",") == "acknowledged,false positive"},
		{"typing survives live refreshes", res.TypedThroughRefresh == "bob" && res.FocusKept},
		{"false positive without comment refused on the page", strings.Contains(res.FPRefusal, "needs a comment")},
		{"assignee shown", res.Assignee == "bob"},
		{"verdict shown", res.Verdict == "false positive by alice"},
		{"history of three actions", len(res.History) == 3 && strings.Contains(res.History[2], "a nightly backup")},
		{"analyst without may_triage sees buttons disabled", res.SuppressorNoRights && res.SuppressorAckDisabled},
		{"suppression listed", strings.Contains(res.SuppressionRow, "egress-burst") && strings.Contains(res.SuppressionRow, "session = "+session)},
		{"card says the rule is suppressed", strings.Contains(res.SuppressedNote, "suppressed")},
		{"lifted suppression leaves the list", res.RowsAfterLift == 0},
		{"page no wider than the window", res.ScrollWidth <= res.ClientWidth},
		{"no console errors", len(res.ConsoleErrors) == 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %+v", c.what, res)
		}
	}
	a, ok := h.svc.Triage().Alert(alertID)
	if !ok || a.Verdict != events.TriageFalsePositive || a.Assignee != "bob" || a.VerdictBy != "alice" {
		t.Errorf("fold after the browser: %+v", a)
	}
	sups := h.svc.Triage().Suppressions(h.now(), true)
	if len(sups) != 1 || sups[0].By.ID != "dave" || sups[0].LiftedBy != "dave" || sups[0].Scope.Value != session {
		t.Errorf("suppressions after the browser: %+v", sups)
	}
}
