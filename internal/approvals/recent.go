package approvals

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// recent keeps what the inbox shows from the events topic: the latest
// alerts, the events approval requests are about (a tool call's full
// arguments, an egress decision, an alert), and per session what it is
// (operator, agent) and its last actions, so an approver sees what led to
// a request. Everything is bounded in number. The window is how far back
// the service starts reading.
type recent struct {
	window      time.Duration
	maxAlerts   int
	maxSubj     int
	maxSessions int

	mu        sync.Mutex
	alerts    []AlertView // oldest first
	subjects  map[string]SubjectView
	order     []string // subject ids, oldest first
	sessions  map[string]*sessionState
	sessOrder []string // session ids, oldest first
}

// Bounds per session: the actions an approver sees, and the tool calls
// remembered for linking an egress request to the command behind it.
const (
	maxActions      = 10
	maxSessionCalls = 16
	maxActionText   = 300
)

// sessionState is what recent keeps of one session.
type sessionState struct {
	info    SessionView
	actions []ActionView           // oldest first, at most maxActions
	calls   map[string]SubjectView // tool_call_id → its tool_call.requested
	callIDs []string               // oldest first
}

func newRecent(window time.Duration, alerts, subjects int) *recent {
	return &recent{window: window, maxAlerts: max(alerts, 1), maxSubj: max(subjects, 1),
		maxSessions: max(subjects/20, 1), subjects: map[string]SubjectView{}, sessions: map[string]*sessionState{}}
}

// subjectTypes are the event types a request can be about. Events are
// canonical JSON, so the type can be recognised before the event is
// decoded and validated; the rest of the topic is skipped cheaply.
var subjectTypes = [][]byte{
	[]byte(`"event_type":"` + events.TypeAlertRaised + `"`),
	[]byte(`"event_type":"` + events.TypeToolCallRequested + `"`),
	[]byte(`"event_type":"` + events.TypeNetEgress + `"`),
}

// actionTypes are the further event types that say what a session did.
var actionTypes = [][]byte{
	[]byte(`"event_type":"` + events.TypePolicyDecision + `"`),
	[]byte(`"event_type":"` + events.TypeToolCallCompleted + `"`),
	[]byte(`"event_type":"` + events.TypeProcessExec + `"`),
	[]byte(`"event_type":"` + events.TypeSandboxViolation + `"`),
	[]byte(`"event_type":"` + events.TypeSessionStarted + `"`),
	[]byte(`"event_type":"` + events.TypeSessionEnded + `"`),
}

func hasType(value []byte, types [][]byte) bool {
	return slices.ContainsFunc(types, func(t []byte) bool { return bytes.Contains(value, t) })
}

// add takes one record of the events topic and returns the alert it
// carried, if any.
func (r *recent) add(value []byte, log *slog.Logger) *AlertView {
	subject := hasType(value, subjectTypes)
	if !subject && !hasType(value, actionTypes) {
		return nil
	}
	env, err := events.Decode(value)
	if err != nil {
		log.Warn("undecodable record on the events topic", "err", err)
		return nil
	}
	p, err := env.DecodePayloadFast()
	if err != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.subjects[env.EventID]; dup {
		return nil
	}
	r.session(env, p)
	if !subject {
		return nil
	}
	r.subjects[env.EventID] = SubjectView{EventID: env.EventID, EventType: env.EventType, EventTime: env.EventTime, Payload: env.Payload}
	r.order = append(r.order, env.EventID)
	if len(r.order) > r.maxSubj {
		delete(r.subjects, r.order[0])
		r.order = r.order[1:]
	}
	if env.EventType != events.TypeAlertRaised {
		return nil
	}
	a := AlertView{EventID: env.EventID, EventTime: env.EventTime, Tenant: env.Tenant, SessionID: env.SessionID, AlertRaised: *p.(*events.AlertRaised)}
	r.alerts = append(r.alerts, a)
	if len(r.alerts) > r.maxAlerts {
		r.alerts = slices.Delete(r.alerts, 0, len(r.alerts)-r.maxAlerts)
	}
	return &a
}

// session records what env says about its session (r.mu held).
func (r *recent) session(env *events.Envelope, p events.Payload) {
	if env.SessionID == "" {
		return
	}
	st := r.sessions[env.SessionID]
	if st == nil {
		st = &sessionState{calls: map[string]SubjectView{}}
		r.sessions[env.SessionID] = st
		r.sessOrder = append(r.sessOrder, env.SessionID)
		if len(r.sessOrder) > r.maxSessions {
			delete(r.sessions, r.sessOrder[0])
			r.sessOrder = r.sessOrder[1:]
		}
	}
	if env.Agent != nil && env.Actor.Type == events.ActorAgent {
		a := *env.Agent
		st.info.Agent = &a
	}
	switch v := p.(type) {
	case *events.SessionStarted:
		st.info.Operator, st.info.Workspace, st.info.StartedAt = v.Operator, v.Workspace, env.EventTime
		if v.Client != nil && st.info.Agent == nil {
			st.info.Agent = &events.Agent{Name: v.Client.Name, Version: v.Client.Version}
		}
	case *events.ToolCallRequested:
		if env.ToolCallID != "" {
			if _, ok := st.calls[env.ToolCallID]; !ok {
				st.callIDs = append(st.callIDs, env.ToolCallID)
			}
			st.calls[env.ToolCallID] = SubjectView{EventID: env.EventID, EventType: env.EventType, EventTime: env.EventTime, Payload: env.Payload}
			if len(st.callIDs) > maxSessionCalls {
				delete(st.calls, st.callIDs[0])
				st.callIDs = st.callIDs[1:]
			}
		}
	}
	text, outcome := describe(p)
	if text == "" {
		return
	}
	st.actions = append(st.actions, ActionView{EventID: env.EventID, EventType: env.EventType, EventTime: env.EventTime,
		ToolCallID: env.ToolCallID, Text: clip(oneLine(text), maxActionText), Outcome: outcome})
	if len(st.actions) > maxActions {
		st.actions = slices.Delete(st.actions, 0, len(st.actions)-maxActions)
	}
}

// describe puts an event in one line for the approver, with its outcome.
func describe(p events.Payload) (text, outcome string) {
	switch v := p.(type) {
	case *events.ToolCallRequested:
		return v.ToolName + " " + CommandOf(v.Arguments), ""
	case *events.PolicyDecision:
		return "policy " + string(v.Decision) + ruleSuffix(v.RuleID), string(v.Decision)
	case *events.ToolCallCompleted:
		return fmt.Sprintf("completed, exit %d in %d ms", v.ExitCode, v.DurationMS), fmt.Sprintf("exit %d", v.ExitCode)
	case *events.NetEgress:
		if v.Phase != events.PhaseDecision {
			return "", ""
		}
		return strings.TrimSpace(v.Method+" "+net.JoinHostPort(v.Host, strconv.Itoa(int(v.Port)))) + ruleSuffix(v.RuleID), string(v.Decision)
	case *events.ProcessExec:
		return "exec " + strings.Join(v.Argv, " "), string(v.Decision)
	case *events.SandboxViolation:
		return "violation " + v.Kind + ": " + v.Detail, "violation"
	case *events.SessionStarted:
		return "session started in " + v.Workspace, ""
	case *events.SessionEnded:
		return "session ended: " + v.Reason, ""
	case *events.AlertRaised:
		return "alert " + v.RuleID + ": " + v.Message, string(v.Severity)
	}
	return "", ""
}

func ruleSuffix(rule string) string {
	if rule == "" {
		return ""
	}
	return " (" + rule + ")"
}

// CommandOf is a tool call's arguments as a person reads them: the
// command line, else the path or URL it acts on.
func CommandOf(a events.ToolArguments) string {
	switch {
	case a.Command != "":
		return a.Command
	case len(a.Argv) > 0:
		return strings.Join(a.Argv, " ")
	case a.Path != "":
		return a.Path
	}
	return a.URL
}

// sessionView returns what is known of session id: its operator and
// agent, its last actions and the alerts raised on it (newest first).
func (r *recent) sessionView(id string) *SessionView {
	if id == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v := SessionView{LastActions: []ActionView{}, Alerts: []AlertView{}}
	if st := r.sessions[id]; st != nil {
		v = st.info
		v.LastActions = slices.Clone(st.actions)
		v.Alerts = []AlertView{}
	}
	for i := len(r.alerts) - 1; i >= 0; i-- {
		if r.alerts[i].SessionID == id {
			v.Alerts = append(v.Alerts, r.alerts[i])
		}
	}
	return &v
}

// call returns the tool_call.requested of a session's tool call.
func (r *recent) call(sessionID, toolCallID string) *SubjectView {
	if toolCallID == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.sessions[sessionID]
	if st == nil {
		return nil
	}
	v, ok := st.calls[toolCallID]
	if !ok {
		return nil
	}
	return &v
}

func (r *recent) subject(id string) *SubjectView {
	if id == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.subjects[id]
	if !ok {
		return nil
	}
	return &v
}

func (r *recent) alert(id string) *AlertView {
	if id == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.alerts) - 1; i >= 0; i-- {
		if r.alerts[i].EventID == id {
			a := r.alerts[i]
			return &a
		}
	}
	return nil
}

// list returns the alerts newest first, at most limit.
func (r *recent) list(limit int) []AlertView {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]AlertView, 0, min(limit, len(r.alerts)))
	for i := len(r.alerts) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, r.alerts[i])
	}
	return out
}
