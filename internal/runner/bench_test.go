package runner

import (
	"context"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/events/eventstest"
	"github.com/agentaudit/agentaudit/internal/testenv"
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

// BenchmarkGateway compares, on the real Kafka and Podman, the shell tool
// running `true` through the runner with a raw exec through the bindings
// and with `podman exec`; `runner bench` prints the same as a table.
func BenchmarkGateway(b *testing.B) {
	brokers := testenv.Kafka(b)
	tp := eventstest.Topics(b, brokers)
	cfg := Config{
		KafkaBrokers: brokers, PodmanSocket: testenv.Podman(b), SandboxImage: testenv.Get(b, "SANDBOX_IMAGE"),
		RunnerID: "runner-bench-" + time.Now().Format("150405.000"), SpoolDir: b.TempDir(),
		TopicEvents: tp.Events, TopicApprovals: tp.Approvals, TopicDLQ: tp.DLQ,
	}
	rep, err := Bench(context.Background(), cfg, BenchOptions{N: max(b.N, 20), Sessions: 3}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct{ name, row string }{
		{"runner", BenchRunner}, {"bindings", BenchBindings}, {"podman-exec", BenchPodmanCLI},
		{"own-cost", BenchOverhead}, {"session-start", BenchSessionStart},
	} {
		row := rep.Row(r.row)
		b.ReportMetric(float64(row.Quantile(0.5).Microseconds())/1000, r.name+"-p50-ms")
		b.ReportMetric(float64(row.Quantile(0.99).Microseconds())/1000, r.name+"-p99-ms")
	}
}
