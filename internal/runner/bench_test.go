package runner

import (
	"context"
	"testing"

	"github.com/agentaudit/agentaudit/internal/events"
)

// BenchmarkCallFakes is the runner's own CPU cost per call: arguments,
// policy, three events built, validated and chained, on fakes.
func BenchmarkCallFakes(b *testing.B) {
	g := newRigB(b)
	s, err := g.r.OpenSession(context.Background(), SessionOptions{Workspace: b.TempDir(), Mode: "exec"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background(), events.EndCompleted)
	c := Call{Tool: ToolShell, Argv: []string{"true"}, Raw: []byte(`{"argv":["true"]}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Call(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}
