package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/netpol"
)

// Egress is the per-session egress component: internal/netpol's proxy,
// started with the session and stopped when it ends. The sandbox has no
// network; the proxy is its only way out, reached through what Start
// returns (a Unix socket bind mount, the bridge that is the container's
// main process, and the variables that point clients at it).
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
	// Ask runs the approval flow for an egress destination: the same
	// approval.requested and signed approval.decided as a tool call's.
	Ask    func(ctx context.Context, req AskRequest) AskResult
	Logger *slog.Logger
}

// AskRequest is an approval an egress component asks for.
type AskRequest struct {
	Summary        string // one line: "network egress to example.com:443 (CONNECT)"
	Reason         string // why approval is needed
	ReasonCode     events.ReasonCode
	RuleID         string
	RequestEventID string // the net.egress decision event
	// PolicyID and PolicySHA256 name the policy that asked (the egress
	// policy); empty stamps the tool-call policy.
	PolicyID     string
	PolicySHA256 string
	// Preview shows a file write's content and diff (write_file only).
	Preview *events.WritePreview
}

// AskResult is how an approval ended.
type AskResult struct {
	Approved bool
	// Reason is approved, approved_for_session, approval_denied,
	// approval_expired or audit_unavailable.
	Reason     events.ReasonCode
	Scope      events.ApprovalScope // once or session, when approved
	ApprovalID string               // "" when no request was recorded
}

// EgressAttachment is the running component: what to add to the sandbox,
// and how to stop it.
type EgressAttachment interface {
	Mounts() []Mount
	Env() map[string]string
	// Socket is the proxy's socket inside the sandbox, which the
	// supervisor's egress bridge forwards to; "" for none.
	Socket() string
	Close(ctx context.Context) error
}

// NetpolEgress is the Egress of internal/netpol: one proxy per session on
// a Unix socket in a directory private to the session, reached from the
// container through the egress bridge that the sandbox supervisor serves.
type NetpolEgress struct {
	// Decider applies the egress policy (netpol.NewDecider).
	Decider *netpol.Decider
	// SocketRoot, BridgePath, UID and GID: see netpol.SandboxConfig.
	SocketRoot string
	BridgePath string
	UID, GID   int
	// ApprovalTimeout bounds how long a connection waits for an approval
	// before it is denied as approval_expired; zero: netpol's default.
	// The approval request carries the same expiry.
	ApprovalTimeout time.Duration
	// Options are extra proxy options (limits, logger).
	Options []netpol.ProxyOption
}

// Start implements Egress.
func (n *NetpolEgress) Start(ctx context.Context, s EgressSession) (EgressAttachment, error) {
	if n.Decider == nil {
		return nil, errors.New("runner: NetpolEgress needs a Decider")
	}
	pol := n.Decider.Policy()
	opts := []netpol.ProxyOption{netpol.WithApprover(egressApprover(s.Ask, pol))}
	if s.Logger != nil {
		opts = append(opts, netpol.WithProxyLogger(s.Logger))
	}
	if n.ApprovalTimeout > 0 {
		opts = append(opts, netpol.WithApprovalTimeout(n.ApprovalTimeout))
	}
	p, err := netpol.NewProxy(n.Decider, netpol.Session{ID: s.SessionID, Tenant: s.Tenant, RunnerID: s.RunnerID, Envelope: s.Envelope},
		s.Emitter, append(opts, n.Options...)...)
	if err != nil {
		return nil, err
	}
	sp, err := netpol.StartSession(netpol.SandboxConfig{SocketRoot: n.SocketRoot, BridgePath: n.BridgePath, UID: n.UID, GID: n.GID}, p)
	if err != nil {
		p.Close()
		return nil, err
	}
	return netpolAttachment{sp}, nil
}

// egressApprover asks through the runner's approval flow. netpol keeps
// session-scoped grants itself, per destination (host and port), and
// records their reuse as approved_for_session; the runner's session scope
// for tool calls (per rule) is not touched, so an egress approval never
// approves a tool call or the other way round.
func egressApprover(ask func(context.Context, AskRequest) AskResult, pol *netpol.Policy) netpol.Approver {
	return netpol.ApproverFunc(func(ctx context.Context, req netpol.ApprovalRequest) (netpol.Approval, error) {
		if ask == nil {
			return netpol.Approval{Reason: netpol.ReasonNeverAsk}, nil
		}
		why := fmt.Sprintf("egress policy %s asks a human before the sandbox connects to this destination", req.PolicyID)
		if req.RuleID != "" {
			why = fmt.Sprintf("egress policy %s, rule %s, asks a human before the sandbox connects to this destination", req.PolicyID, req.RuleID)
		}
		code := events.ReasonCode(req.Reason)
		if !code.Valid() {
			code = events.ReasonNeedsApproval
		}
		r := ask(ctx, AskRequest{
			Summary: req.Summary(), Reason: why, ReasonCode: code, RuleID: req.RuleID,
			RequestEventID: req.RequestEventID,
			PolicyID:       orDefault(req.PolicyID, pol.ID), PolicySHA256: orDefault(req.PolicySHA256, pol.SHA256),
		})
		if !r.Approved {
			return netpol.Approval{Reason: string(r.Reason), ApprovalID: r.ApprovalID}, nil
		}
		return netpol.Approval{Approved: true, Scope: r.Scope, ApprovalID: r.ApprovalID}, nil
	})
}

type netpolAttachment struct{ sp *netpol.SessionProxy }

// Mounts is the proxy's socket directory; the bridge is the supervisor's.
func (a netpolAttachment) Mounts() []Mount {
	var ms []Mount
	for _, m := range a.sp.Mounts() {
		if m.Destination == netpol.ContainerEgressDir {
			ms = append(ms, Mount{Source: m.Source, Destination: m.Destination, ReadOnly: m.ReadOnly})
		}
	}
	return ms
}

func (a netpolAttachment) Env() map[string]string          { return a.sp.Env() }
func (a netpolAttachment) Socket() string                  { return netpol.ContainerEgressDir + "/" + netpol.SocketName }
func (a netpolAttachment) Close(ctx context.Context) error { return a.sp.Close(ctx) }

// egressEmitter counts the egress component's decisions into the
// session's counts (session.ended: egress_allowed, egress_denied).
type egressEmitter struct {
	Emitter
	s *Session
}

func (e egressEmitter) Emit(ctx context.Context, env *events.Envelope) error {
	err := e.Emitter.Emit(ctx, env)
	if err == nil {
		e.s.countEgress(env)
	}
	return err
}

func (e egressEmitter) EmitAfter(ctx context.Context, env *events.Envelope) error {
	// Spooled when Kafka is down: recorded either way.
	e.s.countEgress(env)
	return e.Emitter.EmitAfter(ctx, env)
}
