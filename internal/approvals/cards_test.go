package approvals

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/preview"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// cardScenario is what a runner and a detector would have written about
// two sessions: one with a file write and an egress request pending, an
// alert and a few actions; one held after a burst of denied egress.
type cardScenario struct {
	session, held    string
	write, egress    string // approval ids
	decided          string // a decided request with a 1,000-character word in its summary
	secret           string // in the file content; must never be shown
	egressCommand    string
	operator, agent  string
	writeCwd         string
	heldCommand      string
	sessionAlertRule string
}

// emitOn writes an event of the runner's on session.
func (h *harness) emitOn(t *testing.T, session string, p events.Payload, opts ...events.Option) *events.Envelope {
	t.Helper()
	env, err := events.New(p, append([]events.Option{events.WithIDs(h.ids), events.WithSession(session, "runner-test"),
		events.WithTenant(tenant), events.WithTime(time.Now())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.runner.Emit(t.Context(), env); err != nil {
		t.Fatal(err)
	}
	return env
}

func (h *harness) cardScenario(t *testing.T) cardScenario {
	t.Helper()
	sfx := h.ids.Next().String()
	sc := cardScenario{
		session: "sess-cards-" + sfx, held: "sess-cards-held-" + sfx,
		secret: "AKIAIOSFODNN7EXAMPLE", egressCommand: "curl -sS https://pkg.example.org/install.sh",
		operator: "erin@acme.example", agent: "claude-code 2.1.3", writeCwd: "/workspace/app",
		heldCommand: "nc -z 10.0.0.5 22", sessionAlertRule: "recon.port_scan",
	}
	agent := []events.Option{events.WithActor(events.ActorAgent, requesterA), events.WithAgent("claude-code", "2.1.3")}
	sys := []events.Option{events.WithActor(events.ActorSystem, "runner-test")}
	for _, s := range []string{sc.session, sc.held} {
		h.emitOn(t, s, events.SessionStarted{Workspace: "/srv/work/" + s, SandboxProfileSHA256: strings.Repeat("a", 64),
			Image: "localhost/agentaudit-sandbox:test", Operator: sc.operator, Mode: "mcp",
			Client: &events.ClientInfo{Name: "claude-code", Version: "2.1.3"}},
			events.WithActor(events.ActorHuman, sc.operator), events.WithAgent("claude-code", "2.1.3"))
	}
	// An ordinary call that ran.
	ls := h.emitOn(t, sc.session, events.ToolCallRequested{ToolName: "shell",
		Arguments: events.ToolArguments{Argv: []string{"ls", "-la"}, Cwd: "/workspace"}, ArgumentsSHA256: strings.Repeat("b", 64)},
		append(agent, events.WithToolCall("call-ls-"+sfx))...)
	h.emitOn(t, sc.session, events.PolicyDecision{Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted,
		RuleID: "dev-tools/ls", ApprovalMode: events.ApprovalModeNone}, append(sys, events.WithToolCall("call-ls-"+sfx), events.WithParent(ls.EventID))...)
	h.emitOn(t, sc.session, events.ToolCallCompleted{ExitCode: 0, DurationMS: 12,
		Stdout: events.Output{Length: 0, SHA256: strings.Repeat("c", 64)}, Stderr: events.Output{Length: 0, SHA256: strings.Repeat("c", 64)}},
		append(sys, events.WithToolCall("call-ls-"+sfx))...)
	// An alert on the session.
	h.emitOn(t, sc.session, events.AlertRaised{RuleID: sc.sessionAlertRule, RuleVersion: "1", Severity: events.SeverityHigh,
		GroupKey: sc.session, Count: 3, FirstSeen: events.At(time.Now()), LastSeen: events.At(time.Now()),
		MatchedEventIDs: []string{ls.EventID}, Message: "three hosts probed in 10s", Action: events.AlertNotify},
		events.WithActor(events.ActorRule, sc.sessionAlertRule))

	// A file write: the runner sends its preview with the request.
	cur := "name: app\nreplicas: 2\nimage: app:1.4\n"
	next := "name: app\nreplicas: 3\nimage: app:1.5\naws_key: " + sc.secret + "\n"
	wr := h.emitOn(t, sc.session, events.ToolCallRequested{ToolName: "write_file",
		Arguments: events.ToolArguments{Path: "/workspace/app/deploy.yaml", Cwd: sc.writeCwd, ContentLength: new(uint64(len(next))),
			ContentSHA256: strings.Repeat("d", 64)}, ArgumentsSHA256: strings.Repeat("e", 64)},
		append(agent, events.WithToolCall("call-write-"+sfx))...)
	sc.write = h.requestOn(t, sc.session, "call-write-"+sfx, wr.EventID, events.ApprovalRequested{Kind: events.ApprovalKindToolCall,
		Summary: "write_file /workspace/app/deploy.yaml", RuleID: "protected/deploy-config",
		Preview: preview.FileWrite("/workspace/app/deploy.yaml", []byte(cur), true, []byte(next))})

	// An egress request, and the command that caused it.
	curl := h.emitOn(t, sc.session, events.ToolCallRequested{ToolName: "shell",
		Arguments: events.ToolArguments{Command: sc.egressCommand, Cwd: "/workspace"}, ArgumentsSHA256: strings.Repeat("f", 64)},
		append(agent, events.WithToolCall("call-curl-"+sfx))...)
	eg := h.emitOn(t, sc.session, events.NetEgress{Phase: events.PhaseDecision, Host: "pkg.example.org", Port: 443, Method: "CONNECT",
		Decision: events.DecisionAsk, ReasonCode: events.ReasonNeedsApproval, RuleID: "egress/unknown"},
		append(sys, events.WithToolCall("call-curl-"+sfx), events.WithParent(curl.EventID))...)
	sc.egress = h.requestOn(t, sc.session, "call-curl-"+sfx, eg.EventID, events.ApprovalRequested{Kind: events.ApprovalKindEgress,
		Summary: "CONNECT pkg.example.org:443", RuleID: "egress/unknown"})

	// A held session that did something first.
	nc := h.emitOn(t, sc.held, events.ToolCallRequested{ToolName: "shell",
		Arguments: events.ToolArguments{Command: sc.heldCommand, Cwd: "/workspace"}, ArgumentsSHA256: strings.Repeat("9", 64)},
		append(agent, events.WithToolCall("call-nc-"+sfx))...)
	h.emitOn(t, sc.held, events.NetEgress{Phase: events.PhaseDecision, Host: "10.0.0.5", Port: 22,
		Decision: events.DecisionDeny, ReasonCode: events.ReasonPrivateAddress},
		append(sys, events.WithToolCall("call-nc-"+sfx), events.WithParent(nc.EventID))...)
	h.alertAndHold(t, sc.held)

	// A decided request whose summary and comment are one long word each.
	long := h.requestOn(t, sc.session, "call-long-"+sfx, "", events.ApprovalRequested{Kind: events.ApprovalKindToolCall,
		Summary: "echo " + strings.Repeat("x", 1000), RuleID: "kubectl-apply"})
	if status, b := h.call(http.MethodPost, "/api/v1/requests/"+long+"/decision", "bob",
		map[string]any{"decision": "deny", "comment": strings.Repeat("y", 2000)}, nil); status != 200 {
		t.Fatalf("deny: %d %s", status, b)
	}
	sc.decided = long
	waitFor(t, 10*time.Second, "scenario seen", func() bool {
		s := h.svc.recent.sessionView(sc.held)
		v := h.svc.recent.sessionView(sc.session)
		return s != nil && len(s.LastActions) >= 2 && len(v.Alerts) > 0 && h.svc.recent.call(sc.session, "call-curl-"+sfx) != nil
	})
	return sc
}

// requestOn writes an approval.requested like the runner's, with the
// fields a test leaves out filled in, and waits until the service has it.
func (h *harness) requestOn(t *testing.T, session, call, subject string, p events.ApprovalRequested) string {
	t.Helper()
	p.Reason = "the policy asks a human"
	p.ReasonCode, p.Risk = events.ReasonNeedsApproval, events.RiskHigh
	p.Requester = events.Actor{Type: events.ActorAgent, ID: requesterA}
	p.Scopes = []events.ApprovalScope{events.ScopeOnce, events.ScopeSession}
	p.ExpiresAt = events.At(time.Now().Add(15 * time.Minute))
	p.RequestEventID = subject
	id := h.ids.Next().String()
	opts := []events.Option{events.WithEventID(id), events.WithApproval(id), events.WithActor(events.ActorAgent, requesterA),
		events.WithAgent("claude-code", "2.1.3"), events.WithToolCall(call)}
	if subject != "" {
		opts = append(opts, events.WithParent(subject))
	}
	h.emitOn(t, session, p, opts...)
	waitFor(t, 10*time.Second, "request "+id+" folded", func() bool { _, ok := h.svc.State().Get(id); return ok })
	return id
}

// TestRequestContext: the API gives each request what an approver needs to
// judge it, and `approve show` prints it.
func TestRequestContext(t *testing.T) {
	h := newHarness(t, harnessConfig{})
	sc := h.cardScenario(t)
	get := func(id string) RequestView {
		t.Helper()
		status, b := h.call(http.MethodGet, "/api/v1/requests/"+id, "alice", nil, nil)
		if status != 200 {
			t.Fatalf("get %s: %d %s", id, status, b)
		}
		var v RequestView
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	w := get(sc.write)
	if w.Preview == nil || w.Agent == nil || w.Agent.Name != "claude-code" || w.Operator != sc.operator || w.Cwd != sc.writeCwd || w.Tenant != tenant {
		t.Fatalf("write request: preview %v agent %v operator %q cwd %q tenant %q", w.Preview, w.Agent, w.Operator, w.Cwd, w.Tenant)
	}
	if !strings.Contains(w.Preview.Diff, "-replicas: 2\n-image: app:1.4\n+replicas: 3\n") || strings.Contains(w.Preview.Diff+w.Preview.Content, sc.secret) {
		t.Errorf("preview diff %q content %q", w.Preview.Diff, w.Preview.Content)
	}
	if w.Session == nil || len(w.Session.Alerts) != 1 || w.Session.Alerts[0].RuleID != sc.sessionAlertRule {
		t.Errorf("session alerts %+v", w.Session)
	}
	var texts []string
	for _, a := range w.Session.LastActions {
		texts = append(texts, a.Text)
	}
	if !strings.Contains(strings.Join(texts, "|"), "shell ls -la") || !strings.Contains(strings.Join(texts, "|"), "policy allow (dev-tools/ls)") {
		t.Errorf("last actions %q", texts)
	}
	e := get(sc.egress)
	if e.Cause == nil || e.Cause.EventType != events.TypeToolCallRequested || !strings.Contains(string(e.Cause.Payload), sc.egressCommand) {
		t.Errorf("egress cause %+v", e.Cause)
	}
	var holds []HoldView
	if status, b := h.call(http.MethodGet, "/api/v1/holds", "alice", nil, nil); status != 200 || json.Unmarshal(b, &holds) != nil {
		t.Fatalf("holds: %d %s", status, b)
	}
	if len(holds) != 1 || holds[0].Session == nil || !slicesContainsText(holds[0].Session.LastActions, sc.heldCommand) {
		t.Errorf("hold %+v", holds)
	}

	// approve show prints the same.
	var out strings.Builder
	if err := WriteRequest(&out, w, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Agent              claude-code 2.1.3", "Operator           " + sc.operator,
		"Tenant             " + tenant, "Working directory  " + sc.writeCwd, "File write: /workspace/app/deploy.yaml",
		"  -replicas: 2\n  -image: app:1.4\n  +replicas: 3\n", "[REDACTED:", "Alerts on this session:", sc.sessionAlertRule, "Last actions of the session:",
		"shell ls -la"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("approve show lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), sc.secret) {
		t.Errorf("approve show printed the secret:\n%s", out.String())
	}
	out.Reset()
	if err := WriteRequest(&out, e, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Caused by:\n  shell "+sc.egressCommand) {
		t.Errorf("approve show of the egress request:\n%s", out.String())
	}
	out.Reset()
	if err := WriteHolds(&out, holds); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), sc.heldCommand) {
		t.Errorf("approve holds does not show what the session did:\n%s", out.String())
	}
}

// missingTimeRE matches what a zero time looks like on the page: the year
// 1970 or 0001 standing alone, or a "1/1/1," date.
var missingTimeRE = regexp.MustCompile(`(^|[^0-9])(1970|0001)([^0-9]|$)|1/1/1,`)

// cardsResult is what cards.mjs reports.
type cardsResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Cards map[string]struct {
		Agent          string   `json:"agent"`
		Operator       string   `json:"operator"`
		Tenant         string   `json:"tenant"`
		Cwd            string   `json:"cwd"`
		PreviewVisible bool     `json:"preview_visible"`
		PreviewFacts   string   `json:"preview_facts"`
		Diff           string   `json:"diff"`
		DiffAdded      []string `json:"diff_added"`
		DiffRemoved    []string `json:"diff_removed"`
		Content        string   `json:"content"`
		CauseVisible   bool     `json:"cause_visible"`
		Cause          string   `json:"cause"`
		Actions        []string `json:"actions"`
		AlertsVisible  bool     `json:"alerts_visible"`
		Alerts         []string `json:"alerts"`
		Requested      string   `json:"requested"`
	} `json:"cards"`
	Hold *struct {
		Operator string   `json:"operator"`
		Actions  []string `json:"actions"`
		Alerts   []string `json:"alerts"`
	} `json:"hold"`
	DecidedRowHeight float64  `json:"decided_row_height"`
	PageText         string   `json:"page_text"`
	ScrollWidth      int      `json:"scroll_width"`
	ClientWidth      int      `json:"client_width"`
	ConsoleErrors    []string `json:"console_errors"`
}

// TestBrowserCards reads the cards in headless chromium against the real
// Kafka: a file write shows its diff and content with the secret redacted;
// every card its agent, operator, tenant and working directory; an egress
// request the command that caused it; the session's last actions and open
// alerts; a hold card what the session did; and one long decided request
// does not make the page wider than the window.
func TestBrowserCards(t *testing.T) {
	dir := browserEnv(t)
	h := realHarness(t)
	sc := h.cardScenario(t)
	shot := screenshotPath(t, "inbox-cards.png")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "cards.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "INBOX_URL="+h.srv.URL, "INBOX_TOKEN="+testTokens["alice"], "SCREENSHOT="+shot,
		"CARD_IDS="+sc.write+","+sc.egress, "HOLD_SESSION="+sc.held, "DECIDED_ID="+sc.decided)
	cmd.Stderr = testenv.Writer{T: t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res cardsResult
	sc2 := bufio.NewScanner(stdout)
	sc2.Buffer(make([]byte, 4<<20), 4<<20)
	for sc2.Scan() {
		if line, ok := strings.CutPrefix(sc2.Text(), "RESULT "); ok {
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				t.Fatalf("browser result: %v", err)
			}
		}
	}
	werr := cmd.Wait()
	if !res.OK {
		t.Fatalf("browser run failed (%v): %s", werr, res.Error)
	}
	t.Logf("cards screenshot: %s", shot)

	w := res.Cards[sc.write]
	if w.Agent != sc.agent || w.Operator != sc.operator || w.Tenant != tenant || w.Cwd != sc.writeCwd {
		t.Errorf("write card facts: agent %q operator %q tenant %q cwd %q", w.Agent, w.Operator, w.Tenant, w.Cwd)
	}
	if !w.PreviewVisible || !strings.Contains(w.PreviewFacts, "/workspace/app/deploy.yaml") || !strings.Contains(w.PreviewFacts, "1 secret(s) redacted") {
		t.Errorf("write card preview: visible %v facts %q", w.PreviewVisible, w.PreviewFacts)
	}
	if !contains(w.DiffRemoved, "-replicas: 2") || !contains(w.DiffAdded, "+replicas: 3") || !contains(w.DiffAdded, "+aws_key: [REDACTED:aws_access_key]") {
		t.Errorf("write card diff: removed %q added %q", w.DiffRemoved, w.DiffAdded)
	}
	if !strings.Contains(w.Content, "replicas: 3") || strings.Contains(res.PageText, sc.secret) {
		t.Errorf("write card content %q (or the secret is on the page)", w.Content)
	}
	if !w.AlertsVisible || len(w.Alerts) != 1 || !strings.Contains(w.Alerts[0], sc.sessionAlertRule) {
		t.Errorf("write card alerts: visible %v %q", w.AlertsVisible, w.Alerts)
	}
	if !containsSub(w.Actions, "shell ls -la") || !containsSub(w.Actions, "completed, exit 0") {
		t.Errorf("write card last actions %q", w.Actions)
	}
	if w.CauseVisible {
		t.Errorf("write card shows a cause: %q", w.Cause)
	}
	e := res.Cards[sc.egress]
	if !e.CauseVisible || !strings.Contains(e.Cause, "shell "+sc.egressCommand) || e.PreviewVisible {
		t.Errorf("egress card: cause visible %v %q, preview visible %v", e.CauseVisible, e.Cause, e.PreviewVisible)
	}
	if e.Agent != sc.agent || e.Operator != sc.operator || e.Cwd != "/workspace" {
		t.Errorf("egress card facts: agent %q operator %q cwd %q", e.Agent, e.Operator, e.Cwd)
	}
	if res.Hold == nil || res.Hold.Operator != sc.operator || !containsSub(res.Hold.Actions, sc.heldCommand) ||
		!containsSub(res.Hold.Actions, "deny") || !containsSub(res.Hold.Alerts, "egress-burst") {
		t.Errorf("hold card %+v", res.Hold)
	}
	if res.ScrollWidth > res.ClientWidth {
		t.Errorf("the page is %d px wide in a %d px window", res.ScrollWidth, res.ClientWidth)
	}
	if res.DecidedRowHeight > 200 {
		t.Errorf("the long decided row is %.0f px high", res.DecidedRowHeight)
	}
	// A zero time rendered as a date: the year as a number of its own (ids
	// are long numbers that may contain "1970" or "0001" by chance).
	if m := missingTimeRE.FindStringIndex(res.PageText); m != nil {
		t.Errorf("the page shows a missing time: %q", res.PageText[max(0, m[0]-40):min(len(res.PageText), m[1]+40)])
	}
	if len(res.ConsoleErrors) > 0 {
		t.Errorf("console errors: %v", res.ConsoleErrors)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func containsSub(list []string, s string) bool {
	for _, l := range list {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func slicesContainsText(as []ActionView, s string) bool {
	for _, a := range as {
		if strings.Contains(a.Text, s) {
			return true
		}
	}
	return false
}
