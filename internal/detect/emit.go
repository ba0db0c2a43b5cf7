package detect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Emitter writes one event and returns once Kafka acknowledged it;
// eventlog.Producer's Emit is one. An error wrapping eventlog.ErrInvalidEvent
// is permanent; any other error is retried.
type Emitter interface {
	Emit(ctx context.Context, e *events.Envelope) error
}

// pendingEvent is an event the service decided to write but may not have
// written yet: alert.raised, session.held or approval.requested. It is
// part of the checkpoint (the outbox) before it is emitted, so a crash in
// between neither loses it nor, thanks to its fixed event id, doubles it.
// Chain fields are stamped at emission, by the emitting process.
type pendingEvent struct {
	EventID    string          `json:"event_id"`
	EventType  string          `json:"event_type"`
	EventTime  time.Time       `json:"event_time"`
	Tenant     string          `json:"tenant"`
	SessionID  string          `json:"session_id"`
	RuleID     string          `json:"rule_id"`
	ApprovalID string          `json:"approval_id,omitempty"`
	Parent     string          `json:"parent_event_id,omitempty"`
	Payload    json.RawMessage `json:"payload"`
	// MaybeSent: recovered from a checkpoint; look for it on the topic
	// before writing it again.
	MaybeSent bool `json:"-"`
	// queued: a delivery holds it. tried, acked: its delivery tried to
	// write it, and Kafka took it; sent: acked, as the poll loop saw once
	// the delivery was done.
	queued, tried, acked, sent bool
}

// envelope returns the unstamped event. runnerID names the chain; empty
// lets the producer use its own.
func (p *pendingEvent) envelope(runnerID string) *events.Envelope {
	return &events.Envelope{
		EventID: p.EventID, EventType: p.EventType, SchemaVersion: events.SchemaVersion,
		EventTime: p.EventTime, Tenant: p.Tenant, SessionID: p.SessionID, RunnerID: runnerID,
		Actor:      events.Actor{Type: events.ActorRule, ID: p.RuleID},
		ApprovalID: p.ApprovalID, ParentEventID: p.Parent, Payload: p.Payload,
	}
}

// onApprovalsTopic: session.held and approval.requested travel on the
// approvals topic.
func (p *pendingEvent) onApprovalsTopic() bool {
	return p.EventType == events.TypeSessionHeld || p.EventType == events.TypeApprovalRequested
}

// alertBuilder turns alerts into the events they ask for.
type alertBuilder struct {
	ids          *events.IDGen
	approvalTTL  time.Duration
	systemTenant string
	now          func() time.Time
}

// build returns alert.raised and, per the rule's action, session.held or
// approval.requested, with their ids drawn now.
func (b *alertBuilder) build(a Alert) ([]*pendingEvent, error) {
	now := b.now().UTC().Truncate(time.Microsecond)
	tenant, session := a.Tenant, a.SessionID
	if tenant == "" {
		tenant = b.systemTenant
	}
	if session == "" {
		// SQL rules find patterns across sessions: their alerts live in a
		// session of their own per rule.
		session = "detect.sql/" + a.RuleID
	}
	parent := ""
	if len(a.EventIDs) > 0 {
		parent = a.EventIDs[len(a.EventIDs)-1]
	}
	mk := func(p events.Payload, parent, approvalID string) (*pendingEvent, error) {
		env, err := events.New(p)
		if err != nil {
			return nil, err
		}
		return &pendingEvent{
			EventID: b.ids.Next().String(), EventType: env.EventType, EventTime: now,
			Tenant: tenant, SessionID: session, RuleID: a.RuleID, ApprovalID: approvalID,
			Parent: parent, Payload: env.Payload,
		}, nil
	}
	raised, err := mk(a.Raised(), parent, "")
	if err != nil {
		return nil, fmt.Errorf("detect: alert %s: %w", a.RuleID, err)
	}
	out := []*pendingEvent{raised}
	if a.SessionID == "" {
		// Holds and approval requests act on a session; a cross-session
		// (SQL) alert only notifies.
		return out, nil
	}
	if held, ok := a.Held(raised.EventID); ok {
		p, err := mk(held, raised.EventID, "")
		if err != nil {
			return nil, fmt.Errorf("detect: hold for %s: %w", a.RuleID, err)
		}
		out = append(out, p)
	}
	if req, ok := a.ApprovalRequest(raised.EventID, now.Add(b.approvalTTL)); ok {
		p, err := mk(req, raised.EventID, b.ids.Next().String())
		if err != nil {
			return nil, fmt.Errorf("detect: approval request for %s: %w", a.RuleID, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// permanent reports whether an emit error will not go away by retrying.
func permanent(err error) bool { return errors.Is(err, eventlog.ErrInvalidEvent) }
