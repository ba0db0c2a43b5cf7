package runner

import (
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// BenchHooks reach into a session for `runner bench`
// (internal/bench/runnerbench), which times a call through the runner
// against raw execs in the same sandbox. Nothing else uses them.
type BenchHooks struct{ s *Session }

// BenchHooks returns the session's benchmark hooks.
func (s *Session) BenchHooks() BenchHooks { return BenchHooks{s} }

// Raw is the sandbox below the runner; nil unless it is Podman's.
func (h BenchHooks) Raw() *sandbox.Session {
	if ps, ok := h.s.sb.(*podmanSession); ok {
		return ps.Raw()
	}
	return nil
}

// AllowCall makes the session's exec checks take execs under call id as
// that call's argv, decided known safe: raw execs under it are checked
// like the runner's own.
func (h BenchHooks) AllowCall(id string, argv []string) {
	h.s.addCall(&callState{id: id, ctx: h.s.ctx, argv: argv, reason: events.ReasonKnownSafe, approved: map[string]bool{}})
}

// WrapSandbox makes the session's calls run in wrap(its sandbox), to time
// the exec inside each call. Call it between calls.
func (h BenchHooks) WrapSandbox(wrap func(SandboxSession) SandboxSession) { h.s.sb = wrap(h.s.sb) }

// WaitCompletions waits until the events the calls so far left behind
// (tool_call.completed, process.exec) are acknowledged.
func (h BenchHooks) WaitCompletions() { h.s.completions.wait() }
