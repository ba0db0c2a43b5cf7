package eventlog

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// BenchmarkEmit is the audit-before-act cost a runner pays per action:
// Emit of one tool_call.requested to the real broker (acks=all,
// idempotent), one at a time, as a runner does. It reports the p50 and p99
// of the per-call latency; ns/op is their mean.
func BenchmarkEmit(b *testing.B) {
	brokers := testenv.Kafka(b)
	ctx := context.Background()
	p, err := NewProducer(ctx, brokers, "runner-bench", WithTopics(uniqueTopics(b, brokers)))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(ctx)
	// The first Emit pays for metadata and the producer id; leave it out.
	if err := p.Emit(ctx, sampleEvent(b, events.TypeToolCallRequested, "sess-bench-warm", 0)); err != nil {
		b.Fatal(err)
	}
	evs := make([]*events.Envelope, b.N)
	for i := range evs {
		evs[i] = sampleEvent(b, events.TypeToolCallRequested, "sess-bench-emit", i)
	}
	took := make([]time.Duration, b.N)
	b.ResetTimer()
	for i, env := range evs {
		start := time.Now()
		if err := p.Emit(ctx, env); err != nil {
			b.Fatal(err)
		}
		took[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(took)
	q := func(f float64) float64 { return float64(took[int(f*float64(len(took)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
