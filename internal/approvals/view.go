package approvals

import (
	"encoding/json"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

// The API's JSON documents. The server builds them from the State; the CLI
// client decodes them. Field names are snake_case like the events'.

// DecisionView is one decision event of a request.
type DecisionView struct {
	EventID    string                 `json:"event_id"`
	Decision   events.ApprovalOutcome `json:"decision"`
	ReasonCode events.ReasonCode      `json:"reason_code"`
	Scope      events.ApprovalScope   `json:"scope,omitempty"`
	Approver   events.Actor           `json:"approver"`
	Comment    string                 `json:"comment,omitempty"`
	DecidedAt  time.Time              `json:"decided_at"`
	KeyID      string                 `json:"key_id,omitempty"`
	// Result and Rejection say what the event did (history only).
	Result    Result       `json:"result,omitempty"`
	Rejection signing.Code `json:"rejection,omitempty"`
}

// SubjectView is the event a request is about (the tool call with its full
// arguments, the egress decision, the alert), when the service has seen it.
type SubjectView struct {
	EventID   string          `json:"event_id"`
	EventType string          `json:"event_type"`
	EventTime time.Time       `json:"event_time"`
	Payload   json.RawMessage `json:"payload"`
}

// RequestView is an approval request with everything an approver needs.
type RequestView struct {
	ID                string                 `json:"id"`
	EventID           string                 `json:"event_id"`
	Tenant            string                 `json:"tenant"`
	SessionID         string                 `json:"session_id"`
	RunnerID          string                 `json:"runner_id"`
	ToolCallID        string                 `json:"tool_call_id,omitempty"`
	RequestedAt       time.Time              `json:"requested_at"`
	Kind              string                 `json:"kind"`
	Summary           string                 `json:"summary"`
	Reason            string                 `json:"reason"`
	ReasonCode        events.ReasonCode      `json:"reason_code"`
	RuleID            string                 `json:"rule_id,omitempty"`
	Risk              events.Risk            `json:"risk"`
	Requester         events.Actor           `json:"requester"`
	Scopes            []events.ApprovalScope `json:"scopes"`
	ExpiresAt         time.Time              `json:"expires_at"`
	SubjectEventID    string                 `json:"subject_event_id,omitempty"`
	Policy            *events.PolicyRef      `json:"policy,omitempty"`
	Status            Status                 `json:"status"`
	RequiredApprovals int                    `json:"required_approvals"`
	Final             *DecisionView          `json:"final,omitempty"`
	Approvals         []DecisionView         `json:"approvals"`
	History           []DecisionView         `json:"history"`
	Subject           *SubjectView           `json:"subject,omitempty"`
	// What the approver needs to judge the action: the agent (as the
	// runner recorded it), the operator who started the session, the
	// working directory of the call, a file write's content and diff, the
	// tool call behind an egress request (linked by tool_call_id), and the
	// session's last actions and alerts.
	Agent    *events.Agent        `json:"agent,omitempty"`
	Operator string               `json:"operator,omitempty"`
	Cwd      string               `json:"cwd,omitempty"`
	Preview  *events.WritePreview `json:"preview,omitempty"`
	Cause    *SubjectView         `json:"cause,omitempty"`
	Session  *SessionView         `json:"session,omitempty"`
	// MayAnswer says whether the approver asking may answer the request
	// now; Refusal is the code when not.
	MayAnswer bool         `json:"may_answer"`
	Refusal   signing.Code `json:"refusal,omitempty"`
}

// HoldView is an active session hold.
type HoldView struct {
	EventID      string       `json:"event_id"`
	Tenant       string       `json:"tenant"`
	SessionID    string       `json:"session_id"`
	ApprovalID   string       `json:"approval_id,omitempty"`
	Reason       string       `json:"reason"`
	RuleID       string       `json:"rule_id,omitempty"`
	AlertEventID string       `json:"alert_event_id,omitempty"`
	By           events.Actor `json:"by"`
	HeldAt       time.Time    `json:"held_at"`
	Alert        *AlertView   `json:"alert,omitempty"`
	// Session is what the held session did before the hold.
	Session *SessionView `json:"session,omitempty"`
}

// SessionView is what the service saw of a session on the events topic
// within its window: who runs it, its last actions (oldest first) and the
// alerts raised on it (newest first).
type SessionView struct {
	Operator    string        `json:"operator,omitempty"`
	Agent       *events.Agent `json:"agent,omitempty"`
	Workspace   string        `json:"workspace,omitempty"`
	StartedAt   time.Time     `json:"started_at,omitzero"`
	LastActions []ActionView  `json:"last_actions"`
	Alerts      []AlertView   `json:"alerts"`
}

// ActionView is one thing a session did, in a line.
type ActionView struct {
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	EventTime  time.Time `json:"event_time"`
	ToolCallID string    `json:"tool_call_id,omitempty"`
	Text       string    `json:"text"`
	// Outcome is the verdict or result: allow, deny, exit 0, a severity.
	Outcome string `json:"outcome,omitempty"`
}

// AlertView is an alert.raised seen on the events topic.
type AlertView struct {
	EventID   string    `json:"event_id"`
	EventTime time.Time `json:"event_time"`
	Tenant    string    `json:"tenant"`
	SessionID string    `json:"session_id"`
	events.AlertRaised
}

// ApproverView is the authenticated approver.
type ApproverView struct {
	ID     string   `json:"id"`
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups"`
}

// DecisionInput is the body of POST /api/v1/requests/{id}/decision.
type DecisionInput struct {
	Decision string               `json:"decision"` // approve | deny
	Scope    events.ApprovalScope `json:"scope,omitempty"`
	Comment  string               `json:"comment,omitempty"`
}

// DecisionOutput answers a decision: what the decision event did and the
// request afterwards.
type DecisionOutput struct {
	EventID string      `json:"event_id"`
	Result  Result      `json:"result"`
	Request RequestView `json:"request"`
}

// ReleaseInput is the body of POST /api/v1/holds/{session}/release.
type ReleaseInput struct {
	Reason string `json:"reason"`
	// HeldEventID names one hold; empty releases every hold of the session.
	HeldEventID string `json:"held_event_id,omitempty"`
}

// ReleaseOutput answers a release.
type ReleaseOutput struct {
	EventID   string `json:"event_id"`
	SessionID string `json:"session_id"`
	Released  int    `json:"released"`
}

// ErrorView is the body of every error response.
type ErrorView struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ChangeView is what the event stream sends for every change of state.
type ChangeView struct {
	Kind       ChangeKind   `json:"kind"`
	EventID    string       `json:"event_id"`
	ApprovalID string       `json:"approval_id,omitempty"`
	SessionID  string       `json:"session_id,omitempty"`
	Status     Status       `json:"status,omitempty"`
	Rejection  signing.Code `json:"rejection,omitempty"`
}

func decisionView(d Decision) DecisionView {
	return DecisionView{
		EventID: d.EventID, Decision: d.Outcome, ReasonCode: d.ReasonCode, Scope: d.Scope,
		Approver: d.Approver, Comment: d.Comment, DecidedAt: d.DecidedAt, KeyID: d.KeyID,
	}
}

func holdView(h Hold) HoldView {
	return HoldView{
		EventID: h.EventID, Tenant: h.Tenant, SessionID: h.SessionID, ApprovalID: h.ApprovalID,
		Reason: h.Reason, RuleID: h.RuleID, AlertEventID: h.AlertEventID, By: h.By, HeldAt: h.HeldAt,
	}
}
