package runner

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/policy"
)

// Emitter writes audit events: *eventlog.Producer. Emit returns only after
// Kafka acknowledged the event (eventlog.ErrAuditUnavailable otherwise);
// EmitAfter records what already happened and spools when Kafka is down.
type Emitter interface {
	Emit(ctx context.Context, e *events.Envelope) error
	EmitAfter(ctx context.Context, e *events.Envelope) error
	RunnerID() string
	Forget(sessionID string)
}

// Version is the runner version stamped on session.started.
var Version = "0.1.0"

// Runner is the process-wide gateway state shared by its sessions.
type Runner struct {
	emit     Emitter
	sandbox  Sandbox
	policy   *policy.Policy
	policyID string
	ids      *events.IDGen
	hub      *hub
	o        options

	sessions sync.WaitGroup
	stats    Stats
}

// Stats counts what the runner did; every refused approval decision is
// counted by its approvals code.
type Stats struct {
	Calls    atomic.Int64
	Executed atomic.Int64
	Denied   atomic.Int64
	// DecisionsAccepted and DecisionsRejected count approval.decided
	// events for this runner's requests.
	DecisionsAccepted atomic.Int64
	DecisionsRejected atomic.Int64
	// DecisionsUnknown counts approval.decided events for approval ids this
	// runner never asked for (other runners', or stale replays).
	DecisionsUnknown atomic.Int64
	// InvalidRecords counts records on audit.approvals that failed
	// validation.
	InvalidRecords atomic.Int64

	mu       sync.Mutex
	rejected map[signing.Code]int64
}

// Rejected returns how many decisions were refused with code.
func (s *Stats) Rejected(code signing.Code) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected[code]
}

func (s *Stats) reject(code signing.Code) {
	s.DecisionsRejected.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rejected == nil {
		s.rejected = map[signing.Code]int64{}
	}
	s.rejected[code]++
}

type options struct {
	tenant          string
	operator        string
	approvalTimeout time.Duration
	eventOutput     int
	readLimit       int64
	listLimit       int
	execTimeout     time.Duration
	keys            *signing.KeySet
	now             func() time.Time
	egress          Egress
	log             *slog.Logger
	nodeID          int64
	onAsk           func(AskNotice)
}

// Option configures a Runner.
type Option func(*options)

// AskNotice is an approval the runner is waiting for.
type AskNotice struct {
	ApprovalID string
	SessionID  string
	Summary    string
	Reason     string
	Expires    time.Time
}

// WithOnAsk is told of every approval the runner starts waiting for (the
// request is recorded by then), so a person at a terminal sees why their
// command is not running yet.
func WithOnAsk(f func(AskNotice)) Option { return func(o *options) { o.onAsk = f } }

// WithTenant sets the tenant of every event (default "default").
func WithTenant(t string) Option { return func(o *options) { o.tenant = t } }

// WithOperator names the human or service account running the runner.
func WithOperator(op string) Option { return func(o *options) { o.operator = op } }

// WithApprovalTimeout sets how long an approval request waits before the
// call is denied as approval_expired (default 15 minutes).
func WithApprovalTimeout(d time.Duration) Option {
	return func(o *options) { o.approvalTimeout = d }
}

// WithApprovalKeys sets the public keys approval decisions must be signed
// with. Without keys every ask is denied once it expires: nothing can
// approve.
func WithApprovalKeys(ks *signing.KeySet) Option { return func(o *options) { o.keys = ks } }

// WithEventOutputLimit bounds the output text kept in tool_call.completed
// (default 16 KiB per stream; the full length and sha256 are always kept).
func WithEventOutputLimit(n int) Option { return func(o *options) { o.eventOutput = n } }

// WithExecTimeout sets the default and maximum time a shell call may run
// (default 10 minutes).
func WithExecTimeout(d time.Duration) Option { return func(o *options) { o.execTimeout = d } }

// WithEgress starts an egress component with every session.
func WithEgress(e Egress) Option { return func(o *options) { o.egress = e } }

// WithNodeID sets the snowflake node of the runner's event ids; a negative
// value derives it from the runner id.
func WithNodeID(n int64) Option { return func(o *options) { o.nodeID = n } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock of approval expiry. For tests.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New returns a runner that records with emit, confines with sb and decides
// with pol.
func New(emit Emitter, sb Sandbox, pol *policy.Policy, opts ...Option) (*Runner, error) {
	if emit == nil || sb == nil || pol == nil {
		return nil, errors.New("runner: New needs an emitter, a sandbox and a policy")
	}
	o := options{
		tenant:          "default",
		approvalTimeout: 15 * time.Minute,
		eventOutput:     16 << 10,
		readLimit:       1 << 20,
		listLimit:       2000,
		execTimeout:     10 * time.Minute,
		now:             time.Now,
		log:             slog.New(slog.DiscardHandler),
		nodeID:          -1,
	}
	for _, f := range opts {
		f(&o)
	}
	node := o.nodeID
	if node < 0 {
		node = nodeOf(emit.RunnerID())
	}
	ids, err := events.NewIDGen(node)
	if err != nil {
		return nil, err
	}
	r := &Runner{emit: emit, sandbox: sb, policy: pol, policyID: pol.ID(), ids: ids, o: o}
	r.hub = newHub(o.keys, o.now, &r.stats, o.log)
	return r, nil
}

// maxRunnerNode is the highest snowflake node a runner may use; the nodes
// above it belong to the services.
const maxRunnerNode = 999

// nodeOf derives a snowflake node from a runner id, for runners that were
// not assigned one. Two ids can map to the same node, so deployments with
// more than a handful of runners set RUNNER_NODE_ID.
func nodeOf(runnerID string) int64 {
	h := fnv.New32a()
	h.Write([]byte(runnerID))
	return int64(h.Sum32() % (maxRunnerNode + 1))
}

// Stats returns the runner's counters.
func (r *Runner) Stats() *Stats { return &r.stats }

// RunnerID returns the id stamped on this runner's events.
func (r *Runner) RunnerID() string { return r.emit.RunnerID() }

// Policy returns the policy in force.
func (r *Runner) Policy() *policy.Policy { return r.policy }

// Dispatch hands one event read from audit.approvals to the runner: a
// decision to the call waiting for it, a hold or release to its session.
func (r *Runner) Dispatch(env *events.Envelope) { r.hub.dispatch(env) }

// Wait blocks until every session has been closed.
func (r *Runner) Wait() { r.sessions.Wait() }

func (r *Runner) newID() string { return r.ids.Next().String() }

// SessionOptions describe a new session.
type SessionOptions struct {
	// Workspace is the host directory mounted at /workspace.
	Workspace string
	// Mode is how the agent talks to the runner: "mcp", "exec" or "agent".
	Mode string
	// Client is the agent as it introduced itself (MCP clientInfo).
	Client *events.ClientInfo
	// Actor is who makes the calls; default the client (an agent) or, in
	// exec mode, the operator (a human).
	Actor *events.Actor
	// Mounts and Env are added to the sandbox (runner agent: the agent's
	// binaries, its managed configuration and the hook socket).
	Mounts []Mount
	Env    map[string]string
	// Agent names the agent whose hooks the session answers (AgentCodex,
	// AgentClaude); empty when the agent is not in the sandbox.
	Agent string
	// OTLPSocket is the runner's telemetry receiver inside the sandbox
	// (one of Mounts); the agent exports to 127.0.0.1:4318 and the
	// supervisor relays it there.
	OTLPSocket string
}

// OpenSession starts a sandbox and records session.started. When Kafka does
// not acknowledge session.started the sandbox is removed again and the
// error wraps eventlog.ErrAuditUnavailable: no session runs unrecorded.
func (r *Runner) OpenSession(ctx context.Context, so SessionOptions) (*Session, error) {
	ws, err := OpenWorkspace(so.Workspace)
	if err != nil {
		return nil, err
	}
	s := &Session{
		r: r, id: "sess-" + r.newID(), ws: ws, mode: so.Mode, client: so.Client,
		started: time.Now(), sessionRules: map[string]bool{}, running: map[string]*callState{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	switch {
	case so.Actor != nil:
		s.actor = *so.Actor
	case so.Mode == "exec":
		s.actor = events.Actor{Type: events.ActorHuman, ID: orDefault(r.o.operator, "operator")}
	case so.Client != nil && so.Client.Name != "":
		s.actor = events.Actor{Type: events.ActorAgent, ID: so.Client.Name}
	default:
		s.actor = events.Actor{Type: events.ActorAgent, ID: "agent"}
	}
	spec := SandboxSpec{Workspace: ws.Dir(), Checker: s, OnNotice: s.onNotice, Identify: identifyPrograms(r.policy)}
	if so.Agent != "" {
		s.hooks = newHookState(so.Agent)
	}
	if r.o.egress != nil {
		att, err := r.o.egress.Start(ctx, s.egressSession())
		if err != nil {
			return nil, fmt.Errorf("runner: start egress: %w", err)
		}
		s.egress = att
		spec.Mounts, spec.Env, spec.EgressSocket = att.Mounts(), att.Env(), att.Socket()
	}
	spec.Mounts = append(spec.Mounts, so.Mounts...)
	spec.OTLPSocket = so.OTLPSocket
	if len(so.Env) > 0 {
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		for k, v := range so.Env {
			spec.Env[k] = v
		}
	}
	sb, err := r.sandbox.Start(ctx, s.id, spec)
	if err != nil {
		s.cancel()
		s.closeEgress(ctx)
		return nil, fmt.Errorf("runner: start sandbox: %w", err)
	}
	s.sb = sb
	info := sb.Info()
	s.background = info.Background
	if s.guard, err = openGuard(ws, r.policy, info.Protected); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = sb.Close(cctx)
		s.cancel()
		s.closeEgress(cctx)
		return nil, err
	}
	env, err := s.envelope(events.SessionStarted{
		Workspace:            ws.Dir(),
		SandboxProfile:       info.Profile,
		SandboxProfileSHA256: info.ProfileSHA256,
		Image:                info.Image,
		ImageID:              info.ImageID,
		Operator:             r.o.operator,
		Mode:                 so.Mode,
		Client:               so.Client,
		RunnerVersion:        Version,
	}, events.WithActor(events.ActorSystem, r.RunnerID()))
	if err == nil {
		err = r.emit.Emit(ctx, env)
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = sb.Close(cctx)
		s.cancel()
		s.closeEgress(cctx)
		r.emit.Forget(s.id)
		return nil, fmt.Errorf("runner: session.started: %w", err)
	}
	r.hub.addSession(s)
	r.sessions.Add(1)
	go s.watchSandbox()
	return s, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
