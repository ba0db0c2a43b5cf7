package runner

import (
	"context"
	"log/slog"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Egress is the per-session egress component: internal/netpol's proxy,
// started with the session and stopped when it ends. The sandbox has no
// network; the proxy is its only way out, reached through what Attach
// returns (a Unix socket bind mount and the variables that point at it).
type Egress interface {
	Start(ctx context.Context, s EgressSession) (EgressAttachment, error)
}

// EgressSession is what the egress component knows of its session. It
// writes net.egress events on the session's chain with Emitter and the
// envelope options from Envelope, and may ask a human through Ask.
type EgressSession struct {
	SessionID string
	Tenant    string
	RunnerID  string
	Emitter   Emitter
	// Envelope returns the options every event of this session carries
	// (ids, tenant, session, actor, agent).
	Envelope func() []events.Option
	// Ask runs the approval flow for an egress destination and reports
	// whether a human approved it, with the reason code of the outcome.
	Ask    func(ctx context.Context, req AskRequest) (approved bool, reason events.ReasonCode)
	Logger *slog.Logger
}

// AskRequest is an approval an egress component asks for.
type AskRequest struct {
	Summary        string // one line: "CONNECT example.com:443"
	Reason         string // why approval is needed
	ReasonCode     events.ReasonCode
	RuleID         string
	RequestEventID string // the net.egress decision event
}

// EgressAttachment is the running component: what to add to the sandbox,
// and how to stop it.
type EgressAttachment interface {
	Mounts() []Mount
	Env() map[string]string
	Close(ctx context.Context) error
}
