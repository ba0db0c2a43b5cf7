package runner

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/supervisor"
)

// bgSandbox is the fake sandbox with a profile that lets a call's
// processes outlive it.
type bgSandbox struct{ *fakeSandbox }

func (b bgSandbox) Start(ctx context.Context, id string, spec SandboxSpec) (SandboxSession, error) {
	s, err := b.fakeSandbox.Start(ctx, id, spec)
	if err != nil {
		return nil, err
	}
	return bgSession{s.(*fakeSandboxSession)}, nil
}

type bgSession struct{ *fakeSandboxSession }

func (b bgSession) Info() SandboxInfo {
	i := b.fakeSandboxSession.Info()
	i.Background = true
	return i
}

// A background session keeps the state of its last maxEndedCalls calls
// for their leftover processes, not of every call it ever ran: that grew
// a long session's heap by ~350 bytes a call. The execs of an older
// call's processes are still judged by the policy and recorded.
func TestBackgroundCallStateIsBounded(t *testing.T) {
	g := newRig(t)
	g.r.sandbox = bgSandbox{g.sb}
	s := g.open(t)
	ctx := context.Background()
	var ids []string
	for i := range maxEndedCalls + 50 {
		res, err := s.Call(ctx, Call{Tool: ToolShell, Argv: []string{"echo", fmt.Sprint(i)}, Raw: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ToolCallID)
	}
	s.mu.Lock()
	kept := len(s.running)
	_, oldKept := s.running[ids[0]]
	_, newKept := s.running[ids[len(ids)-1]]
	s.mu.Unlock()
	if kept != maxEndedCalls || oldKept || !newKept {
		t.Fatalf("call states kept: %d (want %d), oldest kept %v, newest kept %v", kept, maxEndedCalls, oldKept, newKept)
	}
	for _, c := range []struct {
		name  string
		check supervisor.Check
		allow bool
		why   events.ReasonCode
	}{
		{"a recent call's background process", supervisor.Check{CallID: ids[len(ids)-1], PID: 40, Argv: []string{"ls"}, Exe: "/usr/bin/ls", Cwd: "/workspace", Background: true}, true, events.ReasonAllowlisted},
		{"an evicted call's background process", supervisor.Check{CallID: ids[0], PID: 41, Argv: []string{"ls"}, Exe: "/usr/bin/ls", Cwd: "/workspace", Background: true}, true, events.ReasonAllowlisted},
		{"the policy still denies", supervisor.Check{CallID: ids[0], PID: 42, Argv: []string{"rm", "-rf", "/"}, Exe: "/usr/bin/rm", Cwd: "/workspace", Background: true}, false, events.ReasonDeniedByRule},
		{"not a background process", supervisor.Check{CallID: ids[0], PID: 43, Argv: []string{"ls"}, Exe: "/usr/bin/ls", Cwd: "/workspace"}, false, events.ReasonSandboxError},
		{"a call id the runner never sent", supervisor.Check{CallID: "bogus", PID: 44, Argv: []string{"ls"}, Exe: "/usr/bin/ls", Cwd: "/workspace", Background: true}, false, events.ReasonSandboxError},
	} {
		v := s.CheckExec(ctx, &c.check)
		if v.Allow != c.allow || events.ReasonCode(v.Reason) != c.why {
			t.Errorf("%s: allow=%v reason=%s, want allow=%v reason=%s", c.name, v.Allow, v.Reason, c.allow, c.why)
		}
	}
}
