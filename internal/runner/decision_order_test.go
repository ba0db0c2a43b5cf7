package runner

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
)

// TestFirstDecisionInLogOrderWins: with two approvals services, two valid
// signed decisions for one request can both reach the topic. The runner
// acts on the first it reads (the feed hands records over in partition
// order) and refuses every later one as a replay, as the services' folds
// and the approvals report do.
func TestFirstDecisionInLogOrderWins(t *testing.T) {
	ask := [3]string{"ask", "needs_approval", "required"}
	cases := []struct {
		name       string
		order      []events.ApprovalOutcome
		wantReason events.ReasonCode // "" when the call runs
		wantDec    [][3]string
	}{
		{name: "deny then approve", order: []events.ApprovalOutcome{events.ApprovalDenied, events.ApprovalApproved},
			wantReason: events.ReasonApprovalDenied, wantDec: [][3]string{ask, {"deny", "approval_denied", "required"}}},
		{name: "approve then deny", order: []events.ApprovalOutcome{events.ApprovalApproved, events.ApprovalDenied},
			wantDec: [][3]string{ask, {"allow", "approved", "once"}}},
		{name: "approve then approve", order: []events.ApprovalOutcome{events.ApprovalApproved, events.ApprovalApproved},
			wantDec: [][3]string{ask, {"allow", "approved", "once"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, WithApprovalTimeout(5*time.Second))
			s := g.open(t)
			ch := asyncCall(s, Call{Tool: ToolShell, Command: "git push origin main"})
			req := g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 0)
			// Both in one go, as one fetch of the partition delivers them.
			for _, o := range tc.order {
				g.r.Dispatch(g.decide(t, g.signer, req, o, events.ScopeOnce))
			}
			o := waitOutcome(t, ch)
			if got := ReasonOf(o.err); got != tc.wantReason {
				t.Errorf("reason = %q (err %v), want %q", got, o.err, tc.wantReason)
			}
			if ran := len(g.sb.ran()) > 0; ran != (tc.wantReason == "") {
				t.Errorf("ran = %v, want %v", ran, tc.wantReason == "")
			}
			if diff := cmp.Diff(tc.wantDec, g.em.decisions(t, s.ID())); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
			if n := g.r.Stats().Rejected(signing.CodeReplay); n != 1 {
				t.Errorf("later decisions refused as replays = %d, want 1", n)
			}
		})
	}
}
