package runnerbench_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/bench/runnerbench"
	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/runner"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// BenchmarkGateway compares, on the real Kafka and Podman, the shell tool
// running `true` through the runner with a raw exec through the bindings
// and with `podman exec`; `runner bench` prints the same as a table.
func BenchmarkGateway(b *testing.B) {
	brokers := testenv.Kafka(b)
	tp := eventlogtest.Topics(b, brokers)
	cfg := runner.Config{
		KafkaBrokers: brokers, PodmanSocket: testenv.Podman(b), SandboxImage: testenv.Get(b, "SANDBOX_IMAGE"),
		RunnerID: "runner-bench-" + time.Now().Format("150405.000"), SpoolDir: b.TempDir(),
		TopicEvents: tp.Events, TopicApprovals: tp.Approvals, TopicDLQ: tp.DLQ,
	}
	rep, err := runnerbench.Run(context.Background(), cfg, runnerbench.Options{N: max(b.N, 20), Sessions: 3}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range []struct{ name, row string }{
		{"runner", runnerbench.RowRunner}, {"bindings", runnerbench.RowBindings}, {"podman-exec", runnerbench.RowPodmanCLI},
		{"own-cost", runnerbench.RowOverhead}, {"session-start", runnerbench.RowSessionStart},
	} {
		row := rep.Row(r.row)
		b.ReportMetric(float64(row.Quantile(0.5).Microseconds())/1000, r.name+"-p50-ms")
		b.ReportMetric(float64(row.Quantile(0.99).Microseconds())/1000, r.name+"-p99-ms")
	}
}
