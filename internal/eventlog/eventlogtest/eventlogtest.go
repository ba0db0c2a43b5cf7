// Package eventlogtest gives integration tests private Kafka topics on the
// real broker that testenv/up starts.
package eventlogtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// Topics creates an events, an approvals and a DLQ topic private to t, with
// three partitions each, waits until every partition has a leader (so the
// first produce does not spend its ack budget on a topic still being
// created), and deletes them when t ends.
func Topics(t testing.TB, brokers []string) eventlog.Topics {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", ".", " ", "_").Replace(t.Name()))
	suffix := fmt.Sprintf("%s.%d", name, time.Now().UnixNano())
	tp := eventlog.Topics{Events: "test.events." + suffix, Approvals: "test.approvals." + suffix, DLQ: "test.dlq." + suffix}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventlog.EnsureTopics(ctx, cl, tp, 3, 1); err != nil {
		t.Fatalf("create topics: %v (is Kafka up? run %s)", err, testenv.StartCommand)
	}
	WaitLeaders(t, ctx, kadm.NewClient(cl), tp.Events, tp.Approvals, tp.DLQ)
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		kadm.NewClient(cl).DeleteTopics(ctx, tp.Events, tp.Approvals, tp.DLQ)
	})
	return tp
}

// WaitLeaders returns once every partition of topics has a leader, and
// fails t when ctx ends first.
func WaitLeaders(t testing.TB, ctx context.Context, adm *kadm.Client, topics ...string) {
	t.Helper()
	for !leadersReady(ctx, adm, topics) {
		if ctx.Err() != nil {
			t.Fatalf("topics %v have no leaders", topics)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func leadersReady(ctx context.Context, adm *kadm.Client, topics []string) bool {
	md, err := adm.ListTopics(ctx, topics...)
	if err != nil || len(md) != len(topics) {
		return false
	}
	for _, td := range md {
		if td.Err != nil || len(td.Partitions) == 0 {
			return false
		}
		for _, pd := range td.Partitions {
			if pd.Leader < 0 || pd.Err != nil {
				return false
			}
		}
	}
	return true
}
