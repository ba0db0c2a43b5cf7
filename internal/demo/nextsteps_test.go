package demo

import (
	"strings"
	"testing"
)

// The demo ends by saying its inbox is gone and what to run next.
func TestNextSteps(t *testing.T) {
	s := nextSteps(&Result{SessionID: "sess-42"})
	for _, want := range []string{"no longer answers", "bin/query session sess-42", "--interactive", "--agent=codex", "README.md"} {
		if !strings.Contains(s, want) {
			t.Errorf("next steps lack %q:\n%s", want, s)
		}
	}
}
