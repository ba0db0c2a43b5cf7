package netpol

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Auditor records the proxy's net.egress events. *eventlog.Producer
// satisfies it. Emit must return only once the event is durable (Kafka
// acknowledged it): the proxy dials nothing until then. EmitAfter records
// what already happened and may spool.
type Auditor interface {
	Emit(ctx context.Context, e *events.Envelope) error
	EmitAfter(ctx context.Context, e *events.Envelope) error
}

// Session names the sandbox session a proxy serves; its fields go into
// every event's envelope, as the runner's own events carry them.
type Session struct {
	ID     string // session_id
	Tenant string
	// RunnerID is stamped on events; when empty the Auditor fills its own
	// (eventlog.Producer does), so proxy and runner events share one chain.
	RunnerID string
	// Actor defaults to the agent (type agent, id Agent.Name): a sandbox
	// connection is the agent's act.
	Actor events.Actor
	Agent *events.Agent
	// IDs draws event ids; required unless Envelope is set.
	IDs *events.IDGen
	// Envelope, when set, returns the envelope options of every event
	// (id, tenant, session, actor, agent) instead of the fields above, so
	// a runner can hand over exactly the options its own events use.
	Envelope func() []events.Option
}

func (s *Session) validate() error {
	if s.ID == "" {
		return fmt.Errorf("%w: ID is required", ErrInvalidSession)
	}
	if s.Envelope == nil && (s.Tenant == "" || s.IDs == nil) {
		return fmt.Errorf("%w: Tenant and IDs are required without Envelope", ErrInvalidSession)
	}
	if s.Actor.Type == "" {
		s.Actor = events.Actor{Type: events.ActorAgent, ID: "sandbox"}
		if s.Agent != nil && s.Agent.Name != "" {
			s.Actor.ID = s.Agent.Name
		}
	}
	return nil
}

// ErrInvalidSession means a Session lacks a required field.
var ErrInvalidSession = errors.New("netpol: invalid proxy session")

// egressRecord accumulates what one connection's events say.
type egressRecord struct {
	Host       string
	Port       uint16
	Method     string
	SNI        string
	ResolvedIP netip.Addr
	Verdict    Verdict
	Reason     string
	RuleID     string
	Status     int
	Sent, Recv int64
	Started    time.Time
	PolicyID   string
	PolicySHA  string
	ApprovalID string
}

// invalidHost is the event host of a request whose host could not be
// parsed: the schema requires one, and ".invalid" is reserved (RFC 6761)
// so it can never name a real destination.
const invalidHost = "invalid"

var (
	eventHostRE   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,253}$`)
	eventMethodRE = regexp.MustCompile(`^[A-Z]{1,16}$`)
	eventRuleRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]{0,127}$`)
)

// event builds a net.egress envelope for phase from r.
func (p *Proxy) event(phase string, r *egressRecord) (*events.Envelope, error) {
	pl := &events.NetEgress{
		Phase:      phase,
		Host:       r.Host,
		Port:       r.Port,
		Decision:   events.Decision(r.Verdict),
		ReasonCode: events.ReasonCode(r.Reason),
	}
	if !eventHostRE.MatchString(pl.Host) {
		pl.Host = invalidHost
	}
	if pl.Port == 0 {
		// The schema needs a port; a request without a parsable one is
		// recorded against the port its method implies.
		pl.Port = 80
		if r.Method == "CONNECT" {
			pl.Port = 443
		}
	}
	if r.ResolvedIP.IsValid() {
		pl.ResolvedIP = r.ResolvedIP.String()
	}
	if eventMethodRE.MatchString(r.Method) {
		pl.Method = r.Method
	}
	if r.SNI != "" && eventHostRE.MatchString(r.SNI) && !containsColon(r.SNI) {
		pl.SNI = r.SNI
	}
	if r.RuleID != "" && eventRuleRE.MatchString(r.RuleID) {
		pl.RuleID = r.RuleID
	}
	if r.Status >= 100 && r.Status <= 599 {
		pl.StatusCode = uint16(r.Status)
	}
	if phase == events.PhaseClosed {
		pl.BytesSent, pl.BytesReceived = uint64(max(r.Sent, 0)), uint64(max(r.Recv, 0))
		pl.DurationMS = uint64(max(time.Since(r.Started).Milliseconds(), 0))
	}
	s := &p.session
	var opts []events.Option
	if s.Envelope != nil {
		opts = s.Envelope()
	} else {
		opts = []events.Option{
			events.WithIDs(s.IDs),
			events.WithTenant(s.Tenant),
			events.WithSession(s.ID, s.RunnerID),
			events.WithActor(s.Actor.Type, s.Actor.ID),
		}
		if s.Agent != nil {
			opts = append(opts, events.WithAgent(s.Agent.Name, s.Agent.Version))
		}
	}
	if r.PolicyID != "" && r.PolicySHA != "" {
		opts = append(opts, events.WithPolicy(r.PolicyID, r.PolicySHA))
	}
	if r.ApprovalID != "" {
		opts = append(opts, events.WithApproval(r.ApprovalID))
	}
	return events.New(pl, opts...)
}

func containsColon(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// emit records r and waits for the auditor's acknowledgement. The
// returned event id lets an approval request point at it.
func (p *Proxy) emit(ctx context.Context, phase string, r *egressRecord) (string, error) {
	e, err := p.event(phase, r)
	if err != nil {
		p.stats.AuditFailures.Add(1)
		return "", err
	}
	if err := p.audit.Emit(ctx, e); err != nil {
		p.stats.AuditFailures.Add(1)
		return "", err
	}
	return e.EventID, nil
}

// emitAfter records what already happened; a failure is logged and
// counted, never hidden: the auditor has already tried to spool it.
func (p *Proxy) emitAfter(phase string, r *egressRecord) {
	e, err := p.event(phase, r)
	if err == nil {
		// Not the connection's context: closing events must be written
		// even when the proxy is shutting down.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), p.cfg.auditTimeout)
		err = p.audit.EmitAfter(ctx, e)
		cancel()
	}
	if err != nil {
		p.stats.AuditFailures.Add(1)
		p.log.Error("net.egress event not recorded", "phase", phase, "host", r.Host, "port", r.Port, "reason", r.Reason, "err", err)
	}
}
