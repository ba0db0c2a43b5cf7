package runner

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// A write_file that asks shows the approver what it would write: the new
// content and the diff against the file it replaces, secrets redacted.
func TestWriteApprovalShowsPreview(t *testing.T) {
	g := newRig(t, WithApprovalTimeout(5*time.Second))
	s := g.open(t)
	mustWrite(t, filepath.Join(g.ws, ".env"), "MODE=dev\n")
	secret := "ghp_" + strings.Repeat("a1B2", 9)
	ch := asyncCall(s, Call{Tool: ToolWriteFile, Path: ".env", Content: []byte("MODE=prod\nGITHUB_TOKEN=" + secret + "\n")})
	req := g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 0)
	g.r.Dispatch(g.decide(t, g.signer, req, events.ApprovalDenied, ""))
	waitOutcome(t, ch)

	p, err := req.DecodePayload()
	if err != nil {
		t.Fatal(err)
	}
	pv := p.(*events.ApprovalRequested).Preview
	if pv == nil {
		t.Fatal("approval.requested for a write_file has no preview")
	}
	if pv.Path != "/workspace/.env" || pv.NewFile || pv.Binary {
		t.Errorf("preview %+v", pv)
	}
	for _, want := range []string{"-MODE=dev", "+MODE=prod", "+GITHUB_TOKEN="} {
		if !strings.Contains(pv.Diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, pv.Diff)
		}
	}
	if strings.Contains(pv.Diff+pv.Content, secret) || pv.Redacted == 0 {
		t.Errorf("the token is shown (redacted %d):\n%s\n%s", pv.Redacted, pv.Content, pv.Diff)
	}

	// A shell call's request has none.
	ch = asyncCall(s, Call{Tool: ToolShell, Command: "git push origin main"})
	req = g.em.waitFor(t, s.ID(), events.TypeApprovalRequested, 1)
	g.r.Dispatch(g.decide(t, g.signer, req, events.ApprovalDenied, ""))
	waitOutcome(t, ch)
	p, _ = req.DecodePayload()
	if p.(*events.ApprovalRequested).Preview != nil {
		t.Error("a shell call's approval request carries a write preview")
	}
}
