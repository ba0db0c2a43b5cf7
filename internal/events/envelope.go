package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the version this package writes: major.minor. The minor
// grows when optional fields are added; a new major is a breaking change and
// Decode refuses majors it does not know.
const SchemaVersion = "1.0"

// SchemaMajor is the only major version this package reads.
const SchemaMajor = "1"

// Errors of building and decoding events. Validation failures are
// *ValidationError; chain failures are *ChainError.
var (
	// ErrUnknownEventType: the event type has no schema in this version.
	ErrUnknownEventType = errors.New("events: unknown event_type")
	// ErrPayloadType: the payload does not match the envelope's event_type.
	ErrPayloadType = errors.New("events: payload does not match event_type")
)

// Actor is who caused an event, after Kubernetes audit's user field.
type Actor struct {
	Type ActorType `json:"type"`
	ID   string    `json:"id"`
}

// Agent identifies the AI agent, after gen_ai.agent.name / gen_ai.agent.version.
type Agent struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// PolicyRef pins the policy document a decision was made under.
type PolicyRef struct {
	ID     string `json:"id"`
	SHA256 string `json:"sha256"`
}

// Envelope is one audit event. It mirrors schemas/v1/envelope.json; the
// payload is kept as canonical JSON and read with DecodePayload.
//
// The chain fields (Seq, PrevHash, Hash) are set by Chain.Stamp. Optional
// strings are omitted from the encoding when empty.
type Envelope struct {
	EventID       string    `json:"event_id"`
	EventType     string    `json:"event_type"`
	SchemaVersion string    `json:"schema_version"`
	EventTime     time.Time `json:"event_time"`
	Tenant        string    `json:"tenant"`
	SessionID     string    `json:"session_id"`
	// RunnerID names the emitting process; with SessionID it keys the chain.
	RunnerID string `json:"runner_id"`
	Seq      uint64 `json:"seq"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`

	Actor Actor  `json:"actor"`
	Agent *Agent `json:"agent,omitempty"`

	// Correlation. ToolCallID follows gen_ai.tool.call.id; TraceID is a W3C
	// trace id.
	ToolCallID    string `json:"tool_call_id,omitempty"`
	ApprovalID    string `json:"approval_id,omitempty"`
	ParentEventID string `json:"parent_event_id,omitempty"`
	TraceID       string `json:"trace_id,omitempty"`

	Policy *PolicyRef `json:"policy,omitempty"`

	Payload json.RawMessage `json:"payload"`
}

// Option sets an envelope field in New.
type Option func(*Envelope) error

// WithIDs draws the event id from g.
func WithIDs(g *IDGen) Option {
	return func(e *Envelope) error { e.EventID = g.Next().String(); return nil }
}

// WithEventID sets the event id.
func WithEventID(id string) Option { return func(e *Envelope) error { e.EventID = id; return nil } }

// WithTime sets the event time (normalised to UTC microseconds).
func WithTime(t time.Time) Option {
	return func(e *Envelope) error { e.EventTime = normTime(t); return nil }
}

// WithTenant sets the tenant.
func WithTenant(t string) Option { return func(e *Envelope) error { e.Tenant = t; return nil } }

// WithSession sets the chain key: session id and emitting runner id.
func WithSession(sessionID, runnerID string) Option {
	return func(e *Envelope) error { e.SessionID, e.RunnerID = sessionID, runnerID; return nil }
}

// WithActor sets who caused the event.
func WithActor(t ActorType, id string) Option {
	return func(e *Envelope) error { e.Actor = Actor{Type: t, ID: id}; return nil }
}

// WithAgent sets the agent's name and version.
func WithAgent(name, version string) Option {
	return func(e *Envelope) error { e.Agent = &Agent{Name: name, Version: version}; return nil }
}

// WithToolCall sets the tool call id.
func WithToolCall(id string) Option { return func(e *Envelope) error { e.ToolCallID = id; return nil } }

// WithApproval sets the approval id.
func WithApproval(id string) Option { return func(e *Envelope) error { e.ApprovalID = id; return nil } }

// WithParent sets the id of the event this one follows from.
func WithParent(id string) Option {
	return func(e *Envelope) error { e.ParentEventID = id; return nil }
}

// WithTrace sets the W3C trace id.
func WithTrace(id string) Option { return func(e *Envelope) error { e.TraceID = id; return nil } }

// WithPolicy pins the policy a decision was made under.
func WithPolicy(id, sha256 string) Option {
	return func(e *Envelope) error { e.Policy = &PolicyRef{ID: id, SHA256: sha256}; return nil }
}

// New builds an unstamped envelope around p: event type and schema version
// from p, event time now (unless WithTime), then the options in order.
// The result still needs Chain.Stamp before it is valid.
func New(p Payload, opts ...Option) (*Envelope, error) {
	e := &Envelope{SchemaVersion: SchemaVersion, EventTime: normTime(time.Now())}
	if err := e.SetPayload(p); err != nil {
		return nil, err
	}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// SetPayload encodes p canonically into e.Payload and sets e.EventType.
func (e *Envelope) SetPayload(p Payload) error {
	if p == nil {
		return fmt.Errorf("%w: nil payload", ErrPayloadType)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("events: encode %s payload: %w", p.EventType(), err)
	}
	canon, err := Canonicalize(raw)
	if err != nil {
		return fmt.Errorf("events: encode %s payload: %w", p.EventType(), err)
	}
	e.EventType = p.EventType()
	e.Payload = canon
	return nil
}

// DecodePayload decodes e.Payload into the payload type of e.EventType and
// returns a pointer to it (for example *ToolCallRequested). It does not
// validate; Decode has done that for events read from the wire.
func (e *Envelope) DecodePayload() (Payload, error) {
	p := newPayload(e.EventType)
	if p == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, e.EventType)
	}
	if err := json.Unmarshal(e.Payload, p); err != nil {
		return nil, fmt.Errorf("events: decode %s payload: %w", e.EventType, err)
	}
	return p, nil
}

// Key returns the chain key of e.
func (e *Envelope) Key() ChainKey { return ChainKey{SessionID: e.SessionID, RunnerID: e.RunnerID} }
