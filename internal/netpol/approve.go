package netpol

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Reason codes the proxy adds to the policy's own.
const (
	ReasonApproved           = string(events.ReasonApproved)
	ReasonApprovedForSession = string(events.ReasonApprovedForSession)
	ReasonApprovalDenied     = string(events.ReasonApprovalDenied)
	ReasonApprovalExpired    = string(events.ReasonApprovalExpired)
	ReasonNeverAsk           = string(events.ReasonNeverAsk)
	ReasonAuditUnavailable   = string(events.ReasonAuditUnavailable)
	ReasonSNIMismatch        = string(events.ReasonSNIMismatch)
	ReasonConnectionLimit    = string(events.ReasonConnectionLimit)
	ReasonHeaderTooLarge     = string(events.ReasonHeaderTooLarge)
	ReasonIdleTimeout        = string(events.ReasonIdleTimeout)
	ReasonUpstreamError      = string(events.ReasonUpstreamError)
	ReasonTimeout            = string(events.ReasonTimeout)
)

// ApprovalRequest asks a human whether the sandbox may reach a
// destination the policy marked ask.
type ApprovalRequest struct {
	SessionID string
	Host      string // normalised host name or canonical IP
	Port      uint16
	Method    string       // HTTP method, or CONNECT
	Addrs     []netip.Addr // the checked addresses the proxy would dial
	RuleID    string       // the ask rule, "" for an ask default
	// Reason is the policy's reason code (needs_approval).
	Reason       string
	PolicyID     string
	PolicySHA256 string
	// RequestEventID is the net.egress decision event (decision ask) the
	// approval.requested event should point at.
	RequestEventID string
	// ExpiresAt is when the proxy stops waiting and denies with
	// approval_expired.
	ExpiresAt time.Time
}

// Summary is a one-line description for approvers.
func (r ApprovalRequest) Summary() string {
	return fmt.Sprintf("network egress to %s (%s)", hostPort(r.Host, r.Port), r.Method)
}

// Approval is an approver's answer.
type Approval struct {
	Approved bool
	// Scope is once (this connection) or session (every later connection
	// of the session to the same host and port).
	Scope events.ApprovalScope
	// Reason is the reason code of a refusal (approval_denied,
	// approval_expired, …); ignored when Approved.
	Reason string
	// ApprovalID correlates the proxy's events with the approval.
	ApprovalID string
}

// Approver asks for approvals the way the runner does for tool calls. It
// must return when ctx ends; the proxy then denies with approval_expired.
type Approver interface {
	RequestApproval(ctx context.Context, req ApprovalRequest) (Approval, error)
}

// ApproverFunc adapts a function to Approver.
type ApproverFunc func(ctx context.Context, req ApprovalRequest) (Approval, error)

// RequestApproval calls f.
func (f ApproverFunc) RequestApproval(ctx context.Context, req ApprovalRequest) (Approval, error) {
	return f(ctx, req)
}

// grants remembers session-scoped approvals, keyed by host:port, and
// serialises asks for one destination so concurrent connections raise one
// approval request, not one each.
type grants struct {
	mu      sync.Mutex
	granted map[string]string // destination → approval id
	asking  map[string]*sync.Mutex
}

func newGrants() *grants {
	return &grants{granted: map[string]string{}, asking: map[string]*sync.Mutex{}}
}

func grantKey(host string, port uint16) string { return hostPort(host, port) }

func (g *grants) lookup(key string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id, ok := g.granted[key]
	return id, ok
}

func (g *grants) grant(key, approvalID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.granted[key] = approvalID
}

// lock serialises approval requests for key; the caller must call the
// returned unlock. Per-destination locks are never freed: a session asks
// for few destinations, and each costs one small mutex.
func (g *grants) lock(ctx context.Context, key string) (unlock func(), err error) {
	g.mu.Lock()
	m, ok := g.asking[key]
	if !ok {
		m = new(sync.Mutex)
		g.asking[key] = m
	}
	g.mu.Unlock()
	got := make(chan struct{})
	go func() { m.Lock(); close(got) }()
	select {
	case <-got:
		return m.Unlock, nil
	case <-ctx.Done():
		// Hand the lock back as soon as the goroutine gets it.
		go func() { <-got; m.Unlock() }()
		return nil, ctx.Err()
	}
}

// approve resolves an Ask decision: a session grant for the destination,
// or a fresh approval. It returns the verdict, reason and approval id to
// record. The ask itself is recorded first (acknowledged) so that the
// approval request can name its event.
func (p *Proxy) approve(ctx context.Context, d Decision, rec *egressRecord) (Verdict, string, string) {
	key := grantKey(d.Host, d.Port)
	if id, ok := p.grants.lookup(key); ok {
		return Allow, ReasonApprovedForSession, id
	}
	if p.cfg.approver == nil {
		return Deny, ReasonNeverAsk, ""
	}
	expires := time.Now().Add(p.cfg.approvalTimeout)
	ctx, cancel := context.WithDeadline(ctx, expires)
	defer cancel()
	unlock, err := p.grants.lock(ctx, key)
	if err != nil {
		return Deny, ReasonApprovalExpired, ""
	}
	defer unlock()
	// Another connection may have been granted the session while this one
	// waited for the lock.
	if id, ok := p.grants.lookup(key); ok {
		return Allow, ReasonApprovedForSession, id
	}
	ask := *rec
	ask.Verdict, ask.Reason, ask.RuleID = Ask, d.Reason, d.RuleID
	eventID, err := p.emit(ctx, events.PhaseDecision, &ask)
	if err != nil {
		p.log.Warn("egress ask not recorded; denying", "host", d.Host, "port", d.Port, "err", err)
		return Deny, ReasonAuditUnavailable, ""
	}
	p.stats.Asked.Add(1)
	a, err := p.cfg.approver.RequestApproval(ctx, ApprovalRequest{
		SessionID:      p.session.ID,
		Host:           d.Host,
		Port:           d.Port,
		Method:         rec.Method,
		Addrs:          d.Addrs,
		RuleID:         d.RuleID,
		Reason:         d.Reason,
		PolicyID:       d.PolicyID,
		PolicySHA256:   d.PolicySHA256,
		RequestEventID: eventID,
		ExpiresAt:      expires,
	})
	switch {
	case err != nil && errors.Is(err, eventlog.ErrAuditUnavailable):
		return Deny, ReasonAuditUnavailable, ""
	case err != nil:
		// No answer came back: whether the wait ran out or the approval
		// path failed, the connection is denied as unanswered.
		if ctx.Err() == nil {
			p.log.Warn("egress approval failed", "host", d.Host, "port", d.Port, "err", err)
		}
		return Deny, ReasonApprovalExpired, ""
	case !a.Approved:
		reason := a.Reason
		if !events.ReasonCode(reason).Valid() || reason == ReasonApproved || reason == ReasonApprovedForSession {
			reason = ReasonApprovalDenied
		}
		return Deny, reason, a.ApprovalID
	case a.Scope == events.ScopeSession:
		p.grants.grant(key, a.ApprovalID)
		return Allow, ReasonApproved, a.ApprovalID
	default:
		return Allow, ReasonApproved, a.ApprovalID
	}
}

func hostPort(host string, port uint16) string {
	if containsColon(host) {
		return "[" + host + "]:" + strconv.Itoa(int(port))
	}
	return host + ":" + strconv.Itoa(int(port))
}
