package demo

import (
	"strings"
	"testing"
)

// The demo ends by saying its inbox is gone and what to run next.
func TestNextSteps(t *testing.T) {
	s := nextSteps(&Result{SessionID: "sess-42", Agent: &AgentResult{Agent: "codex", SessionID: "sess-43"}})
	for _, want := range []string{"no longer answers", "bin/query session sess-42", "bin/query session sess-43    the codex session",
		"--interactive", "--agent=claude", "--agent=none", "README.md"} {
		if !strings.Contains(s, want) {
			t.Errorf("next steps lack %q:\n%s", want, s)
		}
	}
}
