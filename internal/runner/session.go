package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/fsguard"
	"github.com/agentaudit/agentaudit/internal/policy"
)

// Tool names the runner serves.
const (
	ToolShell     = "shell"
	ToolReadFile  = "read_file"
	ToolWriteFile = "write_file"
	ToolListFiles = "list_files"
)

// ErrSandbox: the sandbox failed to run an allowed call (reason sandbox_error).
var ErrSandbox = errors.New("runner: sandbox_error")

// Call is one tool call as the agent made it.
type Call struct {
	Tool string
	// Raw is the arguments exactly as received; their sha256 is recorded.
	Raw []byte

	// shell: Argv runs without a shell; Command runs with sh -c.
	Argv    []string
	Command string
	Cwd     string
	Timeout time.Duration

	// file tools
	Path       string
	Content    []byte // write_file
	CreateDirs bool   // write_file: create missing parent directories
	Recursive  bool   // list_files

	// Meta is the agent's own correlation for the call (MCP _meta),
	// recorded in tool_call.requested.
	Meta *events.ClientMeta
}

// Result is what an allowed call produced.
type Result struct {
	ToolCallID string
	// Reason is the reason code of the decision that let it run
	// (allowlisted, known_safe, approved, approved_for_session).
	Reason events.ReasonCode
	RuleID string

	Exec *ExecResult // shell

	Data      []byte  // read_file: the first bytes
	Size      int64   // read_file: the file's size
	Entries   []Entry // list_files
	Truncated bool    // read_file or list_files was cut at its limit
	Written   int     // write_file
	Path      string  // file tools: the resolved path under /workspace
}

// Session is one agent session: one sandbox, one chain of events.
type Session struct {
	r       *Runner
	id      string
	ws      *Workspace
	sb      SandboxSession
	egress  EgressAttachment
	mode    string
	client  *events.ClientInfo
	actor   events.Actor
	started time.Time

	ctx    context.Context // cancelled when the session closes
	cancel context.CancelFunc

	// background: the sandbox profile lets a call's processes outlive it.
	background bool
	// guard keeps the protected paths as they were unless a call a human
	// approved changed them.
	guard *fsguard.Guard
	// hooks is the agent's hook calls, when the agent itself runs in the
	// sandbox (runner agent); nil otherwise.
	hooks *hookState

	mu           sync.Mutex
	running      map[string]*callState // calls whose execs are being checked
	ended        []string              // background: ended calls kept in running, a ring (endCall)
	endedNext    int
	aq           afterQueue
	holdMu       sync.Mutex
	held         bool
	heldBy       string
	sessionRules map[string]bool // rules approved for the rest of the session
	counts       events.SessionCounts
	closed       bool
	calls        sync.WaitGroup
	completions  inflight // tool_call.completed events being emitted
	closeOnce    sync.Once
	closeErr     error
}

// ID returns the session id.
func (s *Session) ID() string { return s.id }

// Workspace returns the session's workspace.
func (s *Session) Workspace() *Workspace { return s.ws }

// Sandbox returns the session's sandbox, for benchmarks that compare a raw
// exec with a call through the runner.
func (s *Session) Sandbox() SandboxSession { return s.sb }

// Counts returns what the session has done so far.
func (s *Session) Counts() events.SessionCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Held reports whether a session.held is in force.
func (s *Session) Held() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

func (s *Session) setHold(held bool, eventID string) {
	s.mu.Lock()
	changed := s.held != held
	s.held, s.heldBy = held, eventID
	s.mu.Unlock()
	if changed && s.sb != nil {
		// A held session does no work at all: every process in its
		// sandbox is stopped, not only the calls that start from now.
		go s.applyHold(held)
	}
}

func (s *Session) count(f func(c *events.SessionCounts)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.counts)
}

func (s *Session) envelope(p events.Payload, extra ...events.Option) (*events.Envelope, error) {
	opts := []events.Option{
		events.WithEventID(s.r.newID()),
		events.WithTenant(s.r.o.tenant),
		events.WithSession(s.id, s.r.RunnerID()),
		events.WithActor(s.actor.Type, s.actor.ID),
	}
	if s.client != nil && s.client.Name != "" {
		opts = append(opts, events.WithAgent(s.client.Name, s.client.Version))
	}
	return events.New(p, append(opts, extra...)...)
}

func (s *Session) egressSession() EgressSession {
	return EgressSession{
		SessionID: s.id, Tenant: s.r.o.tenant, RunnerID: s.r.RunnerID(), Emitter: egressEmitter{s.r.emit, s},
		Envelope: func() []events.Option {
			opts := []events.Option{events.WithEventID(s.r.newID()), events.WithTenant(s.r.o.tenant),
				events.WithSession(s.id, s.r.RunnerID()), events.WithActor(s.actor.Type, s.actor.ID)}
			if s.client != nil && s.client.Name != "" {
				opts = append(opts, events.WithAgent(s.client.Name, s.client.Version))
			}
			return opts
		},
		Ask:    s.askEgress,
		Logger: s.r.o.log.With("session", s.id),
	}
}

// countEgress counts a net.egress decision event into the session's counts.
func (s *Session) countEgress(env *events.Envelope) {
	if env.EventType != events.TypeNetEgress {
		return
	}
	p, err := env.DecodePayload()
	if err != nil {
		return
	}
	ne, ok := p.(*events.NetEgress)
	if !ok || ne.Phase != events.PhaseDecision {
		return
	}
	s.count(func(n *events.SessionCounts) {
		switch ne.Decision {
		case events.DecisionAllow:
			n.EgressAllowed++
		case events.DecisionDeny:
			n.EgressDenied++
		}
	})
}

func (s *Session) closeEgress(ctx context.Context) {
	if s.egress != nil {
		if err := s.egress.Close(ctx); err != nil {
			s.r.o.log.Warn("egress close failed", "session", s.id, "err", err)
		}
	}
}

// enter admits a call unless the session is closed.
func (s *Session) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.calls.Add(1)
	return true
}

// callContext ends when ctx or the session ends.
func (s *Session) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// target is a call's resolved paths.
type target struct {
	argv []string
	cwd  string // resolved, relative to the workspace
	path string // resolved, relative to the workspace
}

// Call runs one tool call through the gateway (see the package doc). A
// refusal is a *DeniedError; a failure of the sandbox wraps ErrSandbox.
func (s *Session) Call(ctx context.Context, c Call) (*Result, error) {
	if !s.enter() {
		return nil, ErrSessionClosed
	}
	defer s.calls.Done()
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	s.r.stats.Calls.Add(1)

	// Keep the chain in causal order: the previous call's completion
	// comes before this request.
	s.completions.wait()
	callID := "call-" + s.r.newID()
	args, truncated := auditArguments(c)
	sum := sha256.Sum256(c.Raw)
	reqEnv, err := s.envelope(events.ToolCallRequested{
		ToolName: c.Tool, Arguments: args,
		ArgumentsSHA256: hex.EncodeToString(sum[:]), ArgumentsTruncated: truncated, ClientMeta: c.Meta,
	}, events.WithToolCall(callID))
	if err != nil {
		return nil, fmt.Errorf("runner: build tool_call.requested: %w", err)
	}
	s.count(func(n *events.SessionCounts) { n.ToolCalls++ })
	if err := s.r.emit.Emit(ctx, reqEnv); err != nil {
		return nil, s.unavailable(ctx, callID, reqEnv.EventID, err)
	}

	if s.Held() {
		return nil, s.refuse(ctx, callID, reqEnv.EventID, deny(events.ReasonSessionHeld,
			"the session is held; no tool call runs until it is released"))
	}
	pc, t, derr := s.prepare(c)
	if derr != nil {
		return nil, s.refuse(ctx, callID, reqEnv.EventID, derr)
	}

	start := time.Now()
	d := s.r.policy.Evaluate(pc)
	evalUS := uint64(time.Since(start).Microseconds())
	verdict, reason, mode := d.Verdict, events.ReasonCode(d.ReasonCode), events.ApprovalModeNone
	switch {
	case verdict == policy.Ask && d.RuleID != "" && s.approvedForSession(d.RuleID):
		verdict, reason, mode = policy.Allow, events.ReasonApprovedForSession, events.ApprovalModeSession
	case verdict == policy.Ask:
		mode = events.ApprovalModeRequired
	}
	decEnv, err := s.decision(ctx, callID, reqEnv.EventID, verdict, reason, mode, d.RuleID, d.Justification, evalUS)
	if err != nil {
		return nil, s.unavailable(ctx, callID, reqEnv.EventID, err)
	}
	switch verdict {
	case policy.Deny:
		s.r.stats.Denied.Add(1)
		return nil, &DeniedError{Reason: reason, RuleID: d.RuleID, Detail: orDefault(d.Justification, "the policy denies this call")}
	case policy.Ask:
		var err error
		var preview *events.WritePreview
		if c.Tool == ToolWriteFile {
			preview = writePreview(s.ws.Dir(), t.path, SandboxPath(t.path), c.Content)
		}
		if reason, err = s.approveShowing(ctx, callID, reqEnv.EventID, decEnv.EventID, d, describe(c, t), preview); err != nil {
			return nil, err
		}
		if s.Held() {
			return nil, s.refuse(ctx, callID, reqEnv.EventID, deny(events.ReasonSessionHeld,
				"the session was held while the call waited for approval"))
		}
	}
	cs := &callState{id: callID, ctx: ctx, argv: t.argv, reason: reason, ruleID: d.RuleID,
		requestID: reqEnv.EventID, parent: decEnv.EventID, approved: map[string]bool{}}
	if reason == events.ReasonApproved && d.RuleID != "" {
		cs.approved[d.RuleID] = true
	}
	writes := c.Tool == ToolShell || c.Tool == ToolWriteFile
	if writes {
		// What changed since the last call (a background process, say) was
		// not this call's doing.
		s.guardCheck("", "", false, "between calls")
	}
	s.addCall(cs)
	res, err := s.execute(ctx, cs, c, t)
	s.endCall(cs, s.background)
	if res != nil {
		res.Reason, res.RuleID = reason, d.RuleID
	}
	if writes {
		approved := reason == events.ReasonApproved || reason == events.ReasonApprovedForSession
		if reverted, _ := s.guardCheck(callID, decEnv.EventID, approved, "by the call"); len(reverted) > 0 && err == nil {
			var paths []string
			for _, r := range reverted {
				paths = append(paths, SandboxPath(r.Path))
			}
			err = &DeniedError{Reason: events.ReasonProtectedPath, Detail: fmt.Sprintf(
				"the call changed protected paths without an approval; they were put back: %s", strings.Join(paths, ", "))}
		}
	}
	return res, err
}

// decision emits a policy.decision and counts it.
func (s *Session) decision(ctx context.Context, callID, parent string, v policy.Verdict, reason events.ReasonCode,
	mode events.ApprovalMode, ruleID, why string, evalUS uint64) (*events.Envelope, error) {
	env, err := s.envelope(events.PolicyDecision{
		Decision: events.Decision(v), ReasonCode: reason, RuleID: ruleID,
		Justification: clip(why, 2048), ApprovalMode: mode, EvalMicros: evalUS,
	}, events.WithToolCall(callID), events.WithParent(parent),
		events.WithPolicy(s.r.policyID, s.r.policy.SHA256()))
	if err != nil {
		return nil, err
	}
	s.count(func(n *events.SessionCounts) {
		switch v {
		case policy.Allow:
			n.Allowed++
		case policy.Ask:
			n.Asked++
		default:
			n.Denied++
		}
	})
	return env, s.r.emit.Emit(ctx, env)
}

// refuse records a denial the runner made before or after the policy (a
// hold, a path outside the workspace, malformed arguments).
func (s *Session) refuse(ctx context.Context, callID, parent string, d *DeniedError) error {
	s.r.stats.Denied.Add(1)
	if _, err := s.decision(ctx, callID, parent, policy.Deny, d.Reason, events.ApprovalModeNone, d.RuleID, d.Detail, 0); err != nil {
		return s.unavailable(ctx, callID, parent, err)
	}
	return d
}

// unavailable denies a call whose audit event Kafka did not acknowledge.
// The denial itself is recorded after the fact (spooled), so the record
// shows what was attempted and that it did not run.
func (s *Session) unavailable(ctx context.Context, callID, parent string, cause error) error {
	s.r.stats.Denied.Add(1)
	s.r.o.log.Warn("audit unavailable; call denied", "session", s.id, "tool_call_id", callID, "err", cause)
	d := &DeniedError{Reason: events.ReasonAuditUnavailable,
		Detail: "the audit log (Kafka) did not acknowledge the call, so nothing ran"}
	env, err := s.envelope(events.PolicyDecision{
		Decision: events.DecisionDeny, ReasonCode: d.Reason, Justification: d.Detail,
		ApprovalMode: events.ApprovalModeNone,
	}, events.WithToolCall(callID), events.WithParent(parent),
		events.WithPolicy(s.r.policyID, s.r.policy.SHA256()))
	if err == nil {
		s.count(func(n *events.SessionCounts) { n.Denied++ })
		err = s.r.emit.EmitAfter(context.WithoutCancel(ctx), env)
	}
	if err != nil {
		s.r.o.log.Error("audit_unavailable denial could not be recorded", "session", s.id, "err", err)
	}
	return d
}

func (s *Session) approvedForSession(rule string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionRules[rule]
}

// requester is who asks for an approval: the operator the runner runs for
// (RUNNER_OPERATOR, else the account that started it), never the name an
// MCP client gives itself. The approvals service refuses a requester
// answering their own request, so an operator cannot approve their own
// agent's actions, and an agent cannot block an approver by taking their
// name.
func (s *Session) requester() events.Actor {
	return events.Actor{Type: events.ActorHuman, ID: orDefault(s.r.o.operator, "operator")}
}

// approve asks a human and waits for a verified decision or the expiry.
// It returns the reason code that lets the call run, or the denial.
func (s *Session) approve(ctx context.Context, callID, requestEventID, decisionEventID string, d policy.Decision, what string) (events.ReasonCode, error) {
	return s.approveShowing(ctx, callID, requestEventID, decisionEventID, d, what, nil)
}

// approveShowing is approve with a file write's preview for the approver.
func (s *Session) approveShowing(ctx context.Context, callID, requestEventID, decisionEventID string, d policy.Decision, what string,
	preview *events.WritePreview) (events.ReasonCode, error) {
	ok, reason, rec, _, err := s.ask(ctx, callID, AskRequest{
		Summary: clip(what, 1024), Reason: d.Justification,
		ReasonCode: events.ReasonCode(d.ReasonCode), RuleID: d.RuleID, RequestEventID: requestEventID, Preview: preview,
	}, decisionEventID)
	if err != nil {
		return "", err
	}
	if !ok {
		s.r.stats.Denied.Add(1)
		return "", &DeniedError{Reason: reason, Asked: events.ReasonCode(d.ReasonCode), RuleID: d.RuleID, Detail: rec}
	}
	return reason, nil
}

// askEgress is the approval flow offered to the egress component. Its
// outcome is recorded by the egress component (net.egress with the
// approval id), not as a policy.decision, which is about tool calls.
func (s *Session) askEgress(ctx context.Context, req AskRequest) AskResult {
	if s.Held() {
		return AskResult{Reason: events.ReasonSessionHeld}
	}
	ok, reason, _, approvalID, err := s.ask(ctx, "", req, req.RequestEventID)
	if err != nil {
		r := ReasonOf(err)
		if r == "" {
			r = events.ReasonApprovalDenied
		}
		return AskResult{Reason: r, ApprovalID: approvalID}
	}
	res := AskResult{Approved: ok, Reason: reason, ApprovalID: approvalID}
	if ok {
		res.Scope = events.ScopeOnce
		if reason == events.ReasonApprovedForSession {
			res.Scope = events.ScopeSession
		}
	}
	return res
}

// ask emits approval.requested, waits, and (for a tool call) emits the
// outcome as a second policy.decision. It reports whether the action was
// approved, the outcome's reason code, a sentence for the agent and the
// approval id. callID "" is an egress approval.
func (s *Session) ask(ctx context.Context, callID string, req AskRequest, parent string) (bool, events.ReasonCode, string, string, error) {
	egress := callID == ""
	now := s.r.o.now()
	expires := now.Add(s.r.o.approvalTimeout)
	approvalID := s.r.newID()
	scopes := []events.ApprovalScope{events.ScopeOnce}
	// An egress session grant is per destination (the egress component
	// keeps it), so it needs no rule.
	if req.RuleID != "" || egress {
		scopes = append(scopes, events.ScopeSession)
	}
	kind := events.ApprovalKindToolCall
	policyID, policySHA := s.r.policyID, s.r.policy.SHA256()
	if egress {
		kind = events.ApprovalKindEgress
		if req.PolicyID != "" && req.PolicySHA256 != "" {
			policyID, policySHA = req.PolicyID, req.PolicySHA256
		}
		// The egress component holds the connection until its own
		// deadline; the request tells approvers the earlier of the two.
		if dl, ok := ctx.Deadline(); ok && dl.Before(expires) {
			expires = dl
		}
	}
	opts := []events.Option{events.WithEventID(approvalID), events.WithApproval(approvalID),
		events.WithPolicy(policyID, policySHA)}
	if parent != "" {
		opts = append(opts, events.WithParent(parent))
	}
	if callID != "" {
		opts = append(opts, events.WithToolCall(callID))
	}
	env, err := s.envelope(events.ApprovalRequested{
		Kind: kind, Summary: req.Summary, Reason: clip(orDefault(req.Reason, "the policy asks a human"), 2048),
		ReasonCode: req.ReasonCode, RuleID: req.RuleID, Risk: riskOf(req.ReasonCode),
		Requester: s.requester(), Scopes: scopes, ExpiresAt: events.At(expires), RequestEventID: req.RequestEventID,
		Preview: req.Preview,
	}, opts...)
	if err != nil {
		return false, "", "", "", fmt.Errorf("runner: build approval.requested: %w", err)
	}
	ref, err := signing.RefOf(env)
	if err != nil {
		return false, "", "", "", err
	}
	w := s.r.hub.wait(ref)
	defer s.r.hub.done(ref)
	if err := s.r.emit.Emit(ctx, env); err != nil {
		if egress {
			s.r.o.log.Warn("egress approval request not recorded; denying", "session", s.id, "err", err)
			return false, events.ReasonAuditUnavailable, "", "", nil
		}
		return false, "", "", "", s.unavailable(ctx, callID, approvalID, err)
	}
	s.r.o.log.Info("waiting for approval", "session", s.id, "approval_id", approvalID, "expires_at", expires)
	if s.r.o.onAsk != nil {
		s.r.o.onAsk(AskNotice{ApprovalID: approvalID, SessionID: s.id, Summary: req.Summary, Reason: req.Reason, Expires: expires})
	}

	timer := time.NewTimer(time.Until(expires))
	defer timer.Stop()
	var (
		v      policy.Verdict = policy.Deny
		reason events.ReasonCode
		mode   = events.ApprovalModeRequired
		why    string
	)
	parentOut := approvalID
	select {
	case got := <-w.ch:
		parentOut = got.env.EventID
		who := got.d.Approver.ID
		switch {
		case got.d.Decision == events.ApprovalApproved && got.d.Scope == events.ScopeSession:
			v, reason, mode = policy.Allow, events.ReasonApprovedForSession, events.ApprovalModeSession
			why = fmt.Sprintf("approved by %s for the rest of the session", who)
			if !egress {
				s.mu.Lock()
				s.sessionRules[req.RuleID] = true
				s.mu.Unlock()
			}
		case got.d.Decision == events.ApprovalApproved:
			v, reason, mode = policy.Allow, events.ReasonApproved, events.ApprovalModeOnce
			why = fmt.Sprintf("approved by %s", who)
		case got.d.Decision == events.ApprovalExpired:
			reason, why = events.ReasonApprovalExpired, "the approval request expired"
		default:
			reason, why = events.ReasonApprovalDenied, fmt.Sprintf("%s by %s", got.d.Decision, who)
		}
		if got.d.Comment != "" {
			why += ": " + got.d.Comment
		}
	case <-timer.C:
		reason = events.ReasonApprovalExpired
		why = fmt.Sprintf("nobody answered approval %s within %s", approvalID, s.r.o.approvalTimeout)
	case <-ctx.Done():
		reason = events.ReasonApprovalDenied
		why = "the call was cancelled before an approver answered"
		if egress && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			reason = events.ReasonApprovalExpired
		}
	}
	if v == policy.Allow {
		s.count(func(n *events.SessionCounts) { n.ApprovalsGranted++ })
	}
	if egress {
		return v == policy.Allow, reason, why, approvalID, nil
	}
	// The outcome is acknowledged before the call runs, like the first
	// decision; a cancelled call still records why it did not run.
	ectx := ctx
	if ctx.Err() != nil {
		ectx = context.WithoutCancel(ctx)
	}
	if _, err := s.decision(ectx, callID, parentOut, v, reason, mode, req.RuleID, why, 0); err != nil {
		return false, "", "", "", s.unavailable(ectx, callID, parentOut, err)
	}
	return v == policy.Allow, reason, why, approvalID, nil
}

// prepare validates the arguments and resolves paths in the workspace.
func (s *Session) prepare(c Call) (policy.ToolCall, target, *DeniedError) {
	var t target
	pc := policy.ToolCall{Tool: c.Tool}
	resolve := func(what, p string) (string, *DeniedError) {
		rel, err := s.ws.Resolve(p)
		switch {
		case errors.Is(err, ErrOutsideWorkspace):
			return "", deny(events.ReasonPathOutsideWorkspace, "%s %q resolves outside %s", what, p, SandboxWorkspace)
		case err != nil:
			return "", deny(events.ReasonInvalidArguments, "%s %q: %v", what, p, err)
		}
		return rel, nil
	}
	switch c.Tool {
	case ToolShell:
		switch {
		case len(c.Argv) > 0 && c.Command != "":
			return pc, t, deny(events.ReasonInvalidArguments, "give argv or command, not both")
		case len(c.Argv) > 0:
			if c.Argv[0] == "" {
				return pc, t, deny(events.ReasonInvalidArguments, "argv[0] is empty")
			}
			t.argv, pc.Argv = c.Argv, c.Argv
		case strings.TrimSpace(c.Command) != "":
			// bash: the dialect the policy's parser models.
			t.argv, pc.Command = []string{"bash", "-c", c.Command}, c.Command
		default:
			return pc, t, deny(events.ReasonInvalidArguments, "shell needs argv or command")
		}
		if c.Timeout < 0 {
			return pc, t, deny(events.ReasonInvalidArguments, "timeout must be positive")
		}
		rel, d := resolve("cwd", c.Cwd)
		if d != nil {
			return pc, t, d
		}
		t.cwd, pc.Cwd = rel, rel
	case ToolReadFile, ToolWriteFile, ToolListFiles:
		p := c.Path
		if p == "" && c.Tool == ToolListFiles {
			p = "."
		}
		if p == "" {
			return pc, t, deny(events.ReasonInvalidArguments, "%s needs a path", c.Tool)
		}
		rel, d := resolve("path", p)
		if d != nil {
			return pc, t, d
		}
		t.path, pc.Paths, pc.Write = rel, []string{rel}, c.Tool == ToolWriteFile
	default:
		return pc, t, deny(events.ReasonInvalidArguments, "unknown tool %q", c.Tool)
	}
	return pc, t, nil
}

// execute runs an allowed call and records tool_call.completed.
func (s *Session) execute(ctx context.Context, cs *callState, c Call, t target) (*Result, error) {
	callID, parent := cs.id, cs.parent
	s.r.stats.Executed.Add(1)
	res := &Result{ToolCallID: callID}
	done := events.ToolCallCompleted{ExitCode: 0}
	var out []byte
	var callErr error
	start := time.Now()
	switch c.Tool {
	case ToolShell:
		// Zero leaves the sandbox profile's default time-out.
		timeout := min(c.Timeout, s.r.o.execTimeout)
		er, err := s.sb.Exec(ctx, ExecRequest{CallID: callID, Argv: t.argv, Cwd: SandboxPath(t.cwd), Timeout: timeout,
			Background: s.background})
		if err != nil {
			done.ExitCode, done.ReasonCode, done.Error = -1, events.ReasonSandboxError, clip(err.Error(), 1024)
			done.KilledReason = er.Killed
			done.Stdout, done.Stderr = s.output(er.Stdout), s.output(er.Stderr)
			callErr = fmt.Errorf("%w: %v", ErrSandbox, err)
			break
		}
		res.Exec = &er
		done.ExitCode, done.TimedOut, done.KilledReason = er.ExitCode, er.TimedOut, er.Killed
		if done.ExitCode < -1 || done.ExitCode > 255 {
			done.ExitCode = -1
		}
		if er.TimedOut {
			done.ReasonCode = events.ReasonTimeout
		}
		done.Signal, done.LeftoversKilled = er.Signal, uint64(max(er.Leftovers, 0))
		done.Rusage = &events.ResourceUsage{UserMS: uint64(er.UserTime.Milliseconds()),
			SystemMS: uint64(er.SystemTime.Milliseconds()), MaxRSSKB: uint64(max(er.MaxRSSKB, 0))}
		if len(er.Denied) > 0 {
			done.ReasonCode = events.ReasonCode(er.Denied[0].Reason)
			if !done.ReasonCode.Valid() {
				done.ReasonCode = events.ReasonDeniedByRule
			}
			if done.KilledReason == "" {
				done.KilledReason = events.KillExecDenied
			}
		}
		s.execViolations(callID, parent, &er)
		done.Stdout, done.Stderr = s.output(er.Stdout), s.output(er.Stderr)
		if er.Duration > 0 {
			start = time.Now().Add(-er.Duration)
		}
	case ToolReadFile:
		res.Path = SandboxPath(t.path)
		data, size, err := s.ws.ReadFile(t.path, s.r.o.readLimit)
		if err != nil {
			callErr = err
			break
		}
		res.Data, res.Size, res.Truncated = data, size, int64(len(data)) < size
		out = data
	case ToolWriteFile:
		res.Path = SandboxPath(t.path)
		if err := s.ws.WriteFile(t.path, c.Content, c.CreateDirs); err != nil {
			callErr = err
			break
		}
		res.Written = len(c.Content)
	case ToolListFiles:
		res.Path = SandboxPath(t.path)
		ents, cut, err := s.ws.List(t.path, c.Recursive, s.r.o.listLimit)
		if err != nil {
			callErr = err
			break
		}
		res.Entries, res.Truncated = ents, cut
		out = []byte(FormatEntries(ents, cut))
	}
	if c.Tool != ToolShell {
		done.Stdout, done.Stderr = s.output(streamOf(out)), s.output(streamOf(nil))
		if callErr != nil {
			done.ExitCode, done.Error = 1, clip(callErr.Error(), 1024)
			done.Stderr = s.output(streamOf([]byte(callErr.Error())))
			switch {
			case errors.Is(callErr, ErrPathChanged):
				done.ReasonCode = events.ReasonPathOutsideWorkspace
			case errors.Is(callErr, ErrHardLink):
				done.ReasonCode = events.ReasonProtectedPath
			}
		}
	}
	done.DurationMS = uint64(time.Since(start).Milliseconds())
	env, err := s.envelope(done, events.WithToolCall(callID), events.WithParent(parent))
	if err != nil {
		s.r.o.log.Error("tool_call.completed could not be built", "session", s.id, "tool_call_id", callID, "err", err)
	} else {
		// The action has happened: its record need not delay the answer.
		// It is acknowledged or spooled before the session's next request
		// is emitted (Call waits for it) and before the session ends.
		s.after(env)
	}
	if res.Exec != nil && len(res.Exec.Denied) > 0 {
		d := res.Exec.Denied[0]
		return res, &DeniedError{Reason: done.ReasonCode, Detail: fmt.Sprintf(
			"the sandbox refused to start %s (%s); it never ran (%d exec(s) refused in this call, exit code %d)",
			quoteArgv(d.Argv), d.Reason, len(res.Exec.Denied), res.Exec.ExitCode)}
	}
	if errors.Is(callErr, ErrPathChanged) {
		return nil, &DeniedError{Reason: events.ReasonPathOutsideWorkspace, Detail: callErr.Error()}
	}
	if errors.Is(callErr, ErrHardLink) {
		return nil, &DeniedError{Reason: events.ReasonProtectedPath, Detail: callErr.Error() +
			"; writing it would write its other names too, so nothing was written"}
	}
	if callErr != nil && !errors.Is(callErr, ErrSandbox) && errors.Is(callErr, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %s: no such file or directory", c.Tool, SandboxPath(t.path))
	}
	return res, callErr
}

func streamOf(b []byte) Stream {
	sum := sha256.Sum256(b)
	return Stream{Data: b, Length: uint64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

// output is the audit copy of a stream: its full length and sha256, and at
// most the event output limit of valid UTF-8 text.
func (s *Session) output(st Stream) events.Output {
	if st.SHA256 == "" {
		full := streamOf(st.Data)
		st.SHA256 = full.SHA256
		if st.Length == 0 {
			st.Length = full.Length
		}
	}
	data, truncated := st.Data, st.Truncated()
	if len(data) > s.r.o.eventOutput {
		data, truncated = data[:s.r.o.eventOutput], true
	}
	return events.Output{Length: st.Length, SHA256: st.SHA256, Text: strings.ToValidUTF8(string(data), "\uFFFD"), Truncated: truncated}
}

// Close ends the session: running calls are cancelled, session.ended is
// recorded with the counts, the sandbox and the egress component are
// removed. reason is one of the events.End* constants.
func (s *Session) Close(ctx context.Context, reason string) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		// A sandbox that can be cut off is, first: every process in it is
		// killed at once, so a running call ends now instead of when its
		// program does (a cancelled exec is not stopped otherwise).
		d, detach := s.sb.(detacher)
		if detach {
			detach = d.Detach() == nil
		}
		s.calls.Wait()
		// The last word on the protected paths, before the sandbox goes.
		s.guardCheck("", "", false, "at session end")
		s.completions.wait()
		// The sandbox goes first, then its egress proxy, which records the
		// close of every connection still open; session.ended comes last
		// in the chain, with the egress counts complete. A sandbox that
		// can be cut off at once (its supervisor kills every process when
		// the runner lets go) is removed after session.ended: Podman's
		// removal takes 100–300 ms, more than an agent's shutdown budget
		// (Claude Code: SIGTERM about 100 ms after SIGINT).
		if !detach {
			s.closeErr = s.sb.Close(ctx)
		}
		s.closeEgress(ctx)
		ended := events.SessionEnded{Reason: reason, DurationMS: uint64(time.Since(s.started).Milliseconds()), Counts: s.Counts()}
		env, err := s.envelope(ended, events.WithActor(events.ActorSystem, s.r.RunnerID()))
		if err == nil {
			err = s.r.emit.EmitAfter(context.WithoutCancel(ctx), env)
		}
		if err != nil {
			s.r.o.log.Error("session.ended could not be recorded", "session", s.id, "err", err)
		} else {
			s.r.o.log.Info("session.ended recorded", "session", s.id, "reason", reason)
		}
		if detach {
			s.closeErr = s.sb.Close(ctx)
		}
		s.r.hub.removeSession(s.id)
		s.r.emit.Forget(s.id)
		s.r.sessions.Done()
	})
	return s.closeErr
}

// detacher is a sandbox that can be cut off, every process in it killed,
// before it is removed.
type detacher interface{ Detach() error }

// auditArguments is the bounded audit copy of a call's arguments.
func auditArguments(c Call) (events.ToolArguments, bool) {
	var a events.ToolArguments
	cut := false
	bound := func(s string, n int) string {
		if len(s) > n {
			cut = true
		}
		return clip(s, n)
	}
	for i, v := range c.Argv {
		if i == 256 {
			cut = true
			break
		}
		a.Argv = append(a.Argv, bound(v, 4096))
	}
	if c.Command != "" {
		a.Command = bound(c.Command, 16384)
	}
	if c.Cwd != "" {
		a.Cwd = bound(c.Cwd, 4096)
	}
	if c.Path != "" {
		a.Path = bound(c.Path, 4096)
	}
	if c.Tool == ToolWriteFile {
		n := uint64(len(c.Content))
		sum := sha256.Sum256(c.Content)
		a.ContentLength, a.ContentSHA256 = &n, hex.EncodeToString(sum[:])
	}
	if c.Timeout > 0 {
		a.TimeoutMS = uint64(c.Timeout.Milliseconds())
	}
	return a, cut
}

// clip cuts s to at most n bytes at a rune boundary, as valid UTF-8.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// describe says in one line what a call would do, for approvers.
func describe(c Call, t target) string {
	switch c.Tool {
	case ToolShell:
		cmd := c.Command
		if len(c.Argv) > 0 {
			cmd = quoteArgv(c.Argv)
		}
		if t.cwd != "" && t.cwd != "." {
			return fmt.Sprintf("shell in %s: %s", SandboxPath(t.cwd), cmd)
		}
		return "shell: " + cmd
	case ToolWriteFile:
		return fmt.Sprintf("write_file %s (%d bytes)", SandboxPath(t.path), len(c.Content))
	}
	return fmt.Sprintf("%s %s", c.Tool, SandboxPath(t.path))
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]{}~#!") {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func riskOf(reason events.ReasonCode) events.Risk {
	switch reason {
	case events.ReasonPathOutsideWorkspace, events.ReasonProtectedPath:
		return events.RiskHigh
	}
	return events.RiskMedium
}

// FormatEntries renders a listing for the agent, one entry a line.
func FormatEntries(ents []Entry, truncated bool) string {
	var b strings.Builder
	for _, e := range ents {
		switch e.Type {
		case "dir":
			fmt.Fprintf(&b, "%s/\n", e.Path)
		case "file":
			fmt.Fprintf(&b, "%s\t%d\n", e.Path, e.Size)
		default:
			fmt.Fprintf(&b, "%s\t(%s)\n", e.Path, e.Type)
		}
	}
	if truncated {
		b.WriteString("… (listing truncated)\n")
	}
	return b.String()
}

// inflight counts background work a session must wait for. Unlike a
// WaitGroup it may be added to while another goroutine waits.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil while n is 0
}

func (f *inflight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.zero = make(chan struct{})
	}
	f.n++
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n--; f.n == 0 {
		close(f.zero)
	}
}

func (f *inflight) wait() {
	f.mu.Lock()
	ch := f.zero
	n := f.n
	f.mu.Unlock()
	if n > 0 {
		<-ch
	}
}
