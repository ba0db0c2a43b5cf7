package docs

import (
	"testing"

	"github.com/agentaudit/agentaudit/internal/glob"
	"github.com/agentaudit/agentaudit/internal/policy"
)

// TestGlobExamples checks the glob examples of policy.md: path globs as
// the policy's path matcher takes them, argument globs as the dialect's
// whole-argument globs.
func TestGlobExamples(t *testing.T) {
	for _, e := range globExamples {
		var match func(string) bool
		if e.arg {
			g, err := glob.Compile(e.glob, glob.Whole())
			if err != nil {
				t.Fatalf("%s: %v", e.glob, err)
			}
			match = g.Match
		} else {
			m, err := policy.NewPathMatcher([]string{e.glob})
			if err != nil {
				t.Fatalf("%s: %v", e.glob, err)
			}
			match = m.Match
		}
		for _, n := range e.yes {
			if !match(n) {
				t.Errorf("policy.md says %s matches %s; it does not", e.glob, n)
			}
		}
		for _, n := range e.no {
			if match(n) {
				t.Errorf("policy.md says %s does not match %s; it does", e.glob, n)
			}
		}
	}
}
