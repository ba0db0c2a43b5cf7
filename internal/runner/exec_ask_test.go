package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// An exec the command string does not show (a push inside a workspace
// script) is asked at the exec: the program waits, stopped before its
// first instruction, for the signed decision, and then runs (approved) or
// is killed without having run (denied). The bare remote says which.
func TestIntegrationExecAsk(t *testing.T) {
	e := newITEnv(t, 30*time.Second)
	tpl := corpusTemplate(t)
	for _, tc := range []struct {
		name    string
		outcome events.ApprovalOutcome
	}{{"approved", events.ApprovalApproved}, {"denied", events.ApprovalDenied}} {
		t.Run(tc.name, func(t *testing.T) {
			ws := copyWorkspace(t, tpl)
			mustWrite(t, filepath.Join(ws, "ship.sh"), "#!/bin/sh\ngit push -q origin main\n")
			if err := os.Chmod(filepath.Join(ws, "ship.sh"), 0o755); err != nil {
				t.Fatal(err)
			}
			before := remoteHead(t, ws)
			s := e.open(t, ws)
			ch := asyncCall(s, shell("./ship.sh"))
			req := e.requests.next(t, s.ID(), 0)
			p, err := req.DecodePayload()
			if err != nil {
				t.Fatal(err)
			}
			if ar := p.(*events.ApprovalRequested); ar.RuleID != "git-push" {
				t.Fatalf("approval.requested for rule %q, want git-push: %+v", ar.RuleID, ar)
			}
			// Asked and not answered: the push has not run, and stays so.
			time.Sleep(300 * time.Millisecond)
			if got := remoteHead(t, ws); got != before {
				t.Fatalf("the remote moved to %s before the decision", got)
			}
			e.answer(t, e.signer, req, tc.outcome, events.ScopeOnce)
			if tc.outcome == events.ApprovalApproved {
				// The push, let go, runs the receiving side of a local
				// remote in the sandbox too, and its `git --git-dir=…
				// for-each-ref` is asked about as well: --git-dir is git
				// configuration the policy does not model.
				r2 := e.requests.next(t, s.ID(), 1)
				p2, err := r2.DecodePayload()
				if err != nil {
					t.Fatal(err)
				}
				if ar := p2.(*events.ApprovalRequested); ar.ReasonCode != events.ReasonInvalidArguments || !strings.Contains(ar.Summary, "for-each-ref") {
					t.Fatalf("second approval.requested: %+v", ar)
				}
				e.answer(t, e.signer, r2, tc.outcome, events.ScopeOnce)
			}
			o := waitOutcome(t, ch)
			after := remoteHead(t, ws)
			switch tc.outcome {
			case events.ApprovalApproved:
				if o.err != nil || o.res.Exec.ExitCode != 0 {
					t.Fatalf("approved: err %v, result %+v", o.err, o.res)
				}
				if after == before {
					t.Errorf("approved, but the remote is still at %s", before)
				}
			default:
				if after != before {
					t.Errorf("denied, but the remote moved from %s to %s", before, after)
				}
				if o.err == nil && o.res.Exec.ExitCode == 0 {
					t.Errorf("denied, but the call succeeded: %+v", o.res.Exec)
				}
			}
		})
	}
}
