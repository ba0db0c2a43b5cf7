package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/events"
)

// The requester of an approval is the operator the runner runs for, never
// the name the agent gives itself: the operator cannot approve their own
// agent's request, and an agent named after an approver does not stop
// that approver from answering.
func TestRequesterIsTheOperator(t *testing.T) {
	g := newRig(t, WithOperator("alice"))
	// The agent calls itself bob, an approver.
	s, err := g.r.OpenSession(context.Background(), SessionOptions{Workspace: g.ws, Mode: "mcp",
		Client: &events.ClientInfo{Name: "bob", Version: "1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), events.EndCompleted)
	ch := asyncCall(s, Call{Tool: ToolShell, Command: "git push origin main"})
	req := g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 0)
	defer func() {
		g.r.Dispatch(g.decide(t, g.signer, req, events.ApprovalDenied, ""))
		waitOutcome(t, ch)
	}()
	p, err := req.DecodePayload()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.(*events.ApprovalRequested).Requester; got != (events.Actor{Type: events.ActorHuman, ID: "alice"}) {
		t.Fatalf("requester %+v, want the operator alice", got)
	}

	cfg, err := approvals.ParseConfig([]byte(`approvers:
  - {id: alice, groups: [oncall], token_sha256: "` + sha256hex("a") + `"}
  - {id: bob, groups: [oncall], token_sha256: "` + sha256hex("b") + `"}
groups:
  - name: oncall
    may_answer: [{kinds: [tool_call]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := approvals.NewAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := approvals.NewState()
	if _, err := st.Apply(req); err != nil {
		t.Fatal(err)
	}
	r, ok := st.Get(req.ApprovalID)
	if !ok {
		t.Fatal("request not in the state")
	}
	if err := auth.Authorize(approvals.Approver{ID: "alice", Groups: []string{"oncall"}}, r); !errors.Is(err, approvals.ErrSelfApproval) {
		t.Errorf("the operator answering their own agent's request: %v, want self-approval refused", err)
	}
	if err := auth.Authorize(approvals.Approver{ID: "bob", Groups: []string{"oncall"}}, r); err != nil {
		t.Errorf("bob, whose name the agent took, may not answer: %v", err)
	}
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A runner asked to say when it waits for an approval says so, with the
// request's id, as soon as the request is recorded (runner exec prints it).
func TestOnAskSaysWhatItWaitsFor(t *testing.T) {
	notes := make(chan AskNotice, 1)
	g := newRig(t, WithOnAsk(func(a AskNotice) { notes <- a }))
	s := g.open(t)
	ch := asyncCall(s, Call{Tool: ToolShell, Command: "git push origin main"})
	req := g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 0)
	select {
	case n := <-notes:
		if n.ApprovalID != req.ApprovalID || n.SessionID != s.ID() || n.Summary == "" || n.Expires.IsZero() {
			t.Errorf("notice %+v for request %s", n, req.ApprovalID)
		}
	case <-time.After(5 * time.Second):
		t.Error("no notice of the approval wait")
	}
	g.r.Dispatch(g.decide(t, g.signer, req, events.ApprovalDenied, ""))
	waitOutcome(t, ch)
}
