package runner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/policy"
	"github.com/agentaudit/agentaudit/internal/supervisor"
)

// callState is what the exec checks of one running call need: the argv its
// decision covered, that decision, and the rules a human approved while it
// ran.
type callState struct {
	id        string
	ctx       context.Context // the call's; the session's once the call has ended
	argv      []string
	reason    events.ReasonCode
	ruleID    string
	requestID string // tool_call.requested
	parent    string // the decision that let the call run

	mu       sync.Mutex
	approved map[string]bool
	denied   []DeniedExec
}

func (cs *callState) approve(rule string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.approved[rule] = true
}

func (cs *callState) isApproved(rule string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.approved[rule]
}

func (s *Session) addCall(cs *callState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running[cs.id] = cs
}

// maxEndedCalls bounds the ended calls of a background session whose state
// is kept for their leftover processes' execs. Kept for every call, it
// grew a long session's heap by a few hundred bytes a call, for ever.
const maxEndedCalls = 256

// endCall forgets a call once it ended, unless its processes may live on
// in the background: their execs are still checked under its id, with the
// call's state for the last maxEndedCalls calls (approvals a human gave
// during the call still count), and as a background exec of the session
// (the policy alone decides) for older ones (see CheckExec).
func (s *Session) endCall(cs *callState, background bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !background {
		delete(s.running, cs.id)
		return
	}
	cs.ctx = s.ctx
	cs.argv = nil // its first program ran; only later execs come
	if len(s.ended) < maxEndedCalls {
		s.ended = append(s.ended, cs.id)
		return
	}
	i := s.endedNext % maxEndedCalls
	delete(s.running, s.ended[i])
	s.ended[i] = cs.id
	s.endedNext++
}

func (s *Session) callState(id string) *callState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[id]
}

// CheckExec rules on one program the sandbox is about to start (the
// supervisor holds it stopped before its first instruction). The call's
// own first program was decided with the call; every other exec is judged
// on its real argv by the policy's exec rules. An ask waits for a human
// (the process stays stopped), a deny kills the program, and every exec is
// recorded as process.exec: allowed ones after the fact, the others before
// the verdict is given (audit before act).
func (s *Session) CheckExec(ctx context.Context, c *supervisor.Check) supervisor.Verdict {
	cs := s.callState(c.CallID)
	pe := processExec(c)
	argv := pe.Argv
	callID, parent := c.CallID, ""
	var approvalID string
	decide := func(v policy.Verdict, reason events.ReasonCode, rule string) {
		pe.Decision, pe.ReasonCode, pe.RuleID = events.Decision(v), reason, rule
	}
	if cs == nil && s.background && c.Background && !c.Root && strings.HasPrefix(c.CallID, "call-") {
		// A process that outlived a call whose state is no longer kept
		// (maxEndedCalls): judged by the policy like any exec, without the
		// call's approvals.
		cs = &callState{id: c.CallID, ctx: s.ctx, approved: map[string]bool{}}
	}
	switch {
	case cs == nil:
		// No call is running under this id: nothing the runner sent.
		decide(policy.Deny, events.ReasonSandboxError, "")
		callID = ""
	case s.Held():
		decide(policy.Deny, events.ReasonSessionHeld, "")
	case s.hooks.ungated(c):
		// The agent's shell tool, with no PreToolUse the runner allowed
		// for it: its hook failed open (killed, removed, replaced).
		decide(policy.Deny, events.ReasonDefaultDeny, "")
		parent = cs.parent
	case c.Root && slices.Equal(c.Argv, cs.argv):
		decide(policy.Allow, cs.reason, cs.ruleID)
		parent = cs.parent
	default:
		parent = cs.parent
		d := evaluateExec(s.r.policy, c)
		v, reason := d.Verdict, events.ReasonCode(d.ReasonCode)
		switch {
		case v == policy.Ask && d.RuleID != "" && cs.isApproved(d.RuleID):
			v, reason = policy.Allow, events.ReasonApproved
		case v == policy.Ask && d.RuleID != "" && s.approvedForSession(d.RuleID):
			v, reason = policy.Allow, events.ReasonApprovedForSession
		case v == policy.Ask && s.hooks.granted(d.RuleID):
			// The agent's tool call a human approved is running this.
			v, reason = policy.Allow, events.ReasonApproved
		case v == policy.Ask && s.hooks.housekeeping(c.Argv):
			v, reason = policy.Allow, events.ReasonKnownSafe
		case v == policy.Ask:
			actx := cs.ctx
			if actx.Err() != nil {
				actx = ctx
			}
			// Earlier after-the-fact records go first, so the chain
			// reads in the order things happened.
			s.completions.wait()
			ok, r, _, id, err := s.ask(actx, cs.id, AskRequest{
				Summary: clip("exec in "+pe.Cwd+": "+quoteArgv(c.Argv), 1024), Reason: d.Justification,
				ReasonCode: reason, RuleID: d.RuleID, RequestEventID: cs.requestID,
			}, cs.parent)
			approvalID = id
			switch {
			case err != nil:
				v, reason = policy.Deny, ReasonOf(err)
			case ok:
				v, reason = policy.Allow, r
				if d.RuleID != "" && r == events.ReasonApproved {
					cs.approve(d.RuleID)
				}
			default:
				v, reason = policy.Deny, r
			}
		}
		decide(v, reason, d.RuleID)
	}

	opts := []events.Option{}
	if callID != "" {
		opts = append(opts, events.WithToolCall(callID))
	}
	if parent != "" {
		opts = append(opts, events.WithParent(parent))
	}
	if approvalID != "" {
		opts = append(opts, events.WithApproval(approvalID))
	}
	env, err := s.envelope(pe, opts...)
	if err != nil {
		s.r.o.log.Error("process.exec could not be built; denying", "session", s.id, "pid", c.PID, "err", err)
		return supervisor.Verdict{Allow: false, Reason: string(events.ReasonSandboxError)}
	}
	s.count(func(n *events.SessionCounts) {
		n.Execs++
		if pe.Decision == events.DecisionDeny {
			n.ExecsDenied++
		}
	})
	if pe.Decision == events.DecisionAllow && approvalID == "" {
		s.after(env)
		// The policy alone allowed it: the same exec may run again in
		// this call without asking, and is still recorded (RecordExecs).
		reuse := !c.Root && (pe.ReasonCode == events.ReasonAllowlisted || pe.ReasonCode == events.ReasonKnownSafe)
		return supervisor.Verdict{Allow: true, Reason: string(pe.ReasonCode), Rule: pe.RuleID, Reuse: reuse}
	}
	s.completions.wait()
	if err := s.r.emit.Emit(context.WithoutCancel(ctx), env); err != nil {
		// Not recorded: it does not run.
		s.r.o.log.Warn("process.exec not acknowledged; exec denied", "session", s.id, "pid", c.PID, "err", err)
		pe.Decision, pe.ReasonCode = events.DecisionDeny, events.ReasonAuditUnavailable
	}
	if pe.Decision == events.DecisionAllow {
		return supervisor.Verdict{Allow: true, Reason: string(pe.ReasonCode)}
	}
	if cs != nil {
		cs.mu.Lock()
		cs.denied = append(cs.denied, DeniedExec{PID: c.PID, Argv: c.Argv, Reason: string(pe.ReasonCode)})
		cs.mu.Unlock()
	}
	s.violation(callID, events.SandboxViolation{Kind: events.ViolationExec, ReasonCode: pe.ReasonCode, PID: c.PID,
		Argv: argv, ArgvTruncated: pe.ArgvTruncated,
		Detail: clip(fmt.Sprintf("exec of %s refused (%s)", quoteArgv(c.Argv), pe.ReasonCode), 2048)}, env.EventID)
	return supervisor.Verdict{Allow: false, Reason: string(pe.ReasonCode)}
}

// RecordExecs records execs the supervisor let run on a reusable verdict:
// the same argv, executable and cwd the policy allowed earlier in the
// call. They are queued together, in order, for one round trip.
func (s *Session) RecordExecs(_ context.Context, cs []*supervisor.Check) {
	envs := make([]*events.Envelope, 0, len(cs))
	var state *callState
	for _, c := range cs {
		pe := processExec(c)
		pe.Decision, pe.ReasonCode, pe.RuleID = events.DecisionAllow, events.ReasonCode(c.Reason), c.Rule
		if !pe.ReasonCode.Valid() {
			pe.ReasonCode = events.ReasonAllowlisted
		}
		opts := []events.Option{events.WithToolCall(c.CallID)}
		if state == nil || state.id != c.CallID {
			state = s.callState(c.CallID)
		}
		if state != nil {
			opts = append(opts, events.WithParent(state.parent))
		}
		env, err := s.envelope(pe, opts...)
		if err != nil {
			s.r.o.log.Error("process.exec could not be built", "session", s.id, "pid", c.PID, "err", err)
			continue
		}
		envs = append(envs, env)
	}
	if len(envs) == 0 {
		return
	}
	s.count(func(n *events.SessionCounts) { n.Execs += uint64(len(envs)) })
	s.after(envs...)
}

// processExec is the record of what a check saw, bounded for the event.
func processExec(c *supervisor.Check) events.ProcessExec {
	argv, trunc := events.BoundArgv(c.Argv)
	return events.ProcessExec{PID: c.PID, PPID: c.PPID, Argv: argv, ArgvTruncated: trunc || c.ArgvTruncated,
		Exe: clip(c.Exe, 4096), Cwd: clip(c.Cwd, 4096), Background: c.Background, Root: c.Root}
}

// violation records a sandbox.violation after the fact and counts it.
func (s *Session) violation(callID string, v events.SandboxViolation, parent string) {
	var opts []events.Option
	if callID != "" {
		opts = append(opts, events.WithToolCall(callID))
	}
	if parent != "" {
		opts = append(opts, events.WithParent(parent))
	}
	env, err := s.envelope(v, opts...)
	if err != nil {
		s.r.o.log.Error("sandbox.violation could not be built", "session", s.id, "kind", v.Kind, "err", err)
		return
	}
	s.count(func(n *events.SessionCounts) { n.Violations++ })
	s.after(env)
}

// onNotice turns what the supervisor did on its own into violations.
// Leftovers killed at a call's end are reported with the call's result.
func (s *Session) onNotice(n supervisor.Notice) {
	if n.Kind != supervisor.NoticeSupervisor {
		return
	}
	argv, trunc := events.BoundArgv(n.Argv)
	s.violation(n.CallID, events.SandboxViolation{Kind: events.ViolationSupervisor, PID: n.PID, Argv: argv,
		ArgvTruncated: trunc, Detail: clip(orDefault(n.Detail, "supervisor failure"), 2048)}, "")
}

// execViolations records what the sandbox enforced on a finished call.
func (s *Session) execViolations(callID, parent string, er *ExecResult) {
	if er.TimedOut {
		s.violation(callID, events.SandboxViolation{Kind: events.ViolationTimeout, ReasonCode: events.ReasonTimeout,
			Detail: fmt.Sprintf("the call ran past its time-out (%s) and its processes were killed", er.Duration.Round(1e6))}, parent)
	}
	if er.Leftovers > 0 {
		s.violation(callID, events.SandboxViolation{Kind: events.ViolationLeftover, Count: uint64(er.Leftovers),
			Detail: fmt.Sprintf("%d process(es) outlived the call and were killed", er.Leftovers)}, parent)
	}
	if er.PidsLimit {
		s.violation(callID, events.SandboxViolation{Kind: events.ViolationPids,
			Detail: "the call's processes reached the sandbox's process limit"}, parent)
	}
	if outOfMemory(er) {
		s.violation(callID, events.SandboxViolation{Kind: events.ViolationMemory,
			Detail: "a process ran out of memory or address space"}, parent)
	}
}

// outOfMemory reports a call whose program failed for lack of memory: the
// address-space limit makes allocations fail, which programs report in
// their own words. Advice for the record, not a boundary.
func outOfMemory(er *ExecResult) bool {
	if er.ExitCode == 0 {
		return false
	}
	text := strings.ToLower(string(er.Stderr.Data))
	for _, s := range []string{"cannot allocate memory", "out of memory", "memoryerror", "memory exhausted", "memoryexhaustion", "std::bad_alloc"} {
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

// after queues events that record what already happened; the session's
// queue emits them in order (acknowledged or spooled), and Call and Close
// wait for it.
func (s *Session) after(envs ...*events.Envelope) {
	for range envs {
		s.completions.add()
	}
	s.aq.mu.Lock()
	s.aq.q = append(s.aq.q, envs...)
	start := !s.aq.running
	s.aq.running = true
	s.aq.mu.Unlock()
	if start {
		go s.drainAfter()
	}
}

type afterQueue struct {
	mu      sync.Mutex
	q       []*events.Envelope
	running bool
}

// batchEmitter is an Emitter that can record several events of one chain
// in one round trip (eventlog.Producer).
type batchEmitter interface {
	EmitAfterBatch(ctx context.Context, es []*events.Envelope) error
}

// maxAfterBatch bounds the events recorded in one round trip.
const maxAfterBatch = 500

func (s *Session) drainAfter() {
	batcher, _ := s.r.emit.(batchEmitter)
	for {
		s.aq.mu.Lock()
		if len(s.aq.q) == 0 {
			s.aq.running = false
			s.aq.q = nil
			s.aq.mu.Unlock()
			return
		}
		n := 1
		if batcher != nil {
			n = min(len(s.aq.q), maxAfterBatch)
		}
		batch := append([]*events.Envelope(nil), s.aq.q[:n]...)
		clear(s.aq.q[:n])
		s.aq.q = s.aq.q[n:]
		s.aq.mu.Unlock()
		var err error
		if batcher != nil {
			err = batcher.EmitAfterBatch(context.Background(), batch)
		} else {
			err = s.r.emit.EmitAfter(context.Background(), batch[0])
		}
		if err != nil {
			s.r.o.log.Error("events could not be recorded", "session", s.id, "events", len(batch),
				"first_type", batch[0].EventType, "first_event_id", batch[0].EventID, "err", err)
		}
		for range batch {
			s.completions.done()
		}
	}
}

// watchSandbox ends the session as failed when its sandbox dies under it
// (the supervisor is gone: every process in it was killed with it).
func (s *Session) watchSandbox() {
	select {
	case <-s.ctx.Done():
		return
	case <-s.sb.Done():
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	s.r.o.log.Error("sandbox supervisor gone; ending the session as failed", "session", s.id)
	s.violation("", events.SandboxViolation{Kind: events.ViolationSupervisor, ReasonCode: events.ReasonSandboxError,
		Detail: "the sandbox supervisor died; every process in the sandbox was killed with it"}, "")
	_ = s.Close(context.Background(), events.EndSandboxFailed)
}

// applyHold freezes or thaws the sandbox's processes for a session.held or
// session.released; holds are applied in the order they arrive.
func (s *Session) applyHold(held bool) {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	var err error
	if held {
		err = s.sb.Hold(s.ctx)
	} else {
		err = s.sb.Release()
	}
	if err != nil && s.ctx.Err() == nil {
		s.r.o.log.Warn("sandbox hold change failed", "session", s.id, "held", held, "err", err)
	}
}

// evaluateExec decides one exec on its real argv. A copy of a known
// program on a writable file system is judged as that program.
func evaluateExec(p *policy.Policy, c *supervisor.Check) policy.Decision {
	exe := c.Exe
	if c.Identity != "" {
		exe = "/usr/bin/" + c.Identity
	}
	return p.EvaluateExec(policy.ExecCall{Argv: c.Argv, Exe: exe, Cwd: c.Cwd})
}

// identifyPrograms are the programs whose renamed copies the sandbox must
// still recognise: the ones policies commonly name, the shells and
// interpreters that run code given inline, and the wrappers that run
// other programs.
func identifyPrograms(*policy.Policy) []string {
	return []string{
		"git", "curl", "wget", "ssh", "scp", "sftp", "rsync", "nc", "ncat", "socat", "telnet",
		"bash", "sh", "dash", "zsh", "busybox", "perl", "python3", "python", "ruby", "node", "php",
		"awk", "gawk", "mawk", "sed", "find", "xargs", "env", "timeout", "nice", "nohup", "setsid",
		"taskset", "flock", "setpriv", "script", "stdbuf", "chrt", "ionice", "unshare", "nsenter",
		"rm", "dd", "shred", "chmod", "chown", "mv", "cp", "tee", "install", "ln", "tar",
		"kubectl", "helm", "terraform", "docker", "podman", "npm", "npx", "yarn", "pnpm", "pip", "pip3",
		"gh", "aws", "gcloud", "az", "make",
	}
}
