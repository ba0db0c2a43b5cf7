//go:build cluster

package ingest

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/query"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestIntegrationClusterTwoIngesters runs two ingesters in one consumer
// group against the cluster of testenv/up --cluster (3 Kafka brokers,
// topics with 3 replicas; ClickHouse 2 shards x 2 replicas), each talking
// to a server of a different shard and inserting through the Distributed
// tables. The second joins while the first is loading (a rebalance).
// Every event is stored once (FINAL), none is dead-lettered, no chain break
// is recorded, and query verify finds every chain intact.
func TestIntegrationClusterTwoIngesters(t *testing.T) {
	t.Run("one ingester", func(t *testing.T) { clusterIngest(t, 1) })
	t.Run("two ingesters", func(t *testing.T) { clusterIngest(t, 2) })
}

func clusterIngest(t *testing.T, instances int) {
	c := testenv.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sfx := suffix(t)
	db := "test_cluster_ingest_" + sfx
	admin, err := store.Open(ctx, store.Config{Addr: c.ClickHouse[0], User: "default", Database: db, Cluster: c.Name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := admin.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+c.Name); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
		admin.Close()
	})
	if _, err := admin.Migrate(ctx); err != nil {
		t.Fatalf("migrate on the cluster: %v", err)
	}

	kcl, err := kgo.NewClient(kgo.SeedBrokers(c.Kafka...), kgo.ProducerBatchMaxBytes(4<<20),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(kcl)
	name := strings.ReplaceAll(sfx, "_", ".")
	topics := eventlog.Topics{Events: "test.cluster.events." + name, Approvals: "test.cluster.approvals." + name, DLQ: "test.cluster.dlq." + name}
	big := "2097152"
	// Replication factor -1: the brokers' default, 3 (min.insync.replicas 2).
	if _, err := adm.CreateTopics(ctx, 6, -1, map[string]*string{"max.message.bytes": &big}, topics.Events, topics.Approvals); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, topics.DLQ); err != nil {
		t.Fatal(err)
	}
	eventlogtest.WaitLeaders(t, ctx, adm, topics.Events, topics.Approvals, topics.DLQ)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		adm.DeleteTopics(ctx, topics.Events, topics.Approvals, topics.DLQ)
		kcl.Close()
	})

	base := Config{
		Brokers: c.Kafka, Group: "test-cluster-ingest-" + sfx, Topics: topics,
		ClickHouseUser: "default", Database: db, ClickHouseCluster: c.Name,
		BatchRows: 1000, BatchWait: 200 * time.Millisecond, ChainGrace: DefaultChainGrace,
		RetryMin: 50 * time.Millisecond, RetryMax: time.Second, MetricsAddr: "off",
		Logger: testenv.Logger(t, slog.LevelWarn),
	}
	e := &env{t: t, admin: admin, kcl: kcl, brokers: c.Kafka, cfg: base}

	const n = 300
	recs := sessions(t, topics, n, "cl")
	first := base
	first.ClickHouseAddr = c.ClickHouse[0]
	second := base
	second.ClickHouseAddr = c.ClickHouse[len(c.ClickHouse)-1]

	start := time.Now()
	e.run(first)
	e.produce(recs[:len(recs)/2]...)
	if instances == 2 {
		e.run(second) // joins the group: a rebalance while the first loads
	}
	e.produce(recs[len(recs)/2:]...)
	e.waitRows("SELECT count() FROM {db}.events FINAL", uint64(len(recs)), 3*time.Minute)
	took := time.Since(start)
	// Counts and verify below may read either replica of a shard: let
	// every replica catch up first.
	for _, a := range c.ClickHouse {
		n, err := store.Open(ctx, store.Config{Addr: a, User: "default", Database: db})
		if err != nil {
			t.Fatal(err)
		}
		for _, tbl := range []string{"events_local", "dlq_events_local", "chain_breaks_local"} {
			if err := n.Conn().Exec(ctx, "SYSTEM SYNC REPLICA "+db+"."+tbl); err != nil {
				t.Fatalf("%s: sync %s: %v", a, tbl, err)
			}
		}
		n.Close()
	}
	stored := e.uint64("SELECT count() FROM {db}.events")
	t.Logf("%d events of %d sessions stored once (FINAL) in %s by %d ingester(s); %d rows before merges (%d redelivered)",
		len(recs), n, took.Round(time.Millisecond), instances, stored, stored-uint64(len(recs)))
	if got := e.uint64("SELECT count() FROM {db}.dlq_events"); got != 0 {
		t.Errorf("%d dead letters, want 0", got)
	}
	breaks := e.uint64("SELECT count() FROM {db}.chain_breaks")
	if breaks > 0 {
		r, err := admin.Conn().Query(ctx, "SELECT kind, runner_id, count() FROM "+db+".chain_breaks GROUP BY kind, runner_id ORDER BY kind, runner_id")
		if err == nil {
			for r.Next() {
				var kind, runner string
				var n uint64
				r.Scan(&kind, &runner, &n)
				t.Logf("chain breaks: %s on %s: %d", kind, runner, n)
			}
			r.Close()
		}
	}
	// Both topics are keyed by session and each member is assigned the
	// same partitions of both, so with two ingesters, one joining mid-load,
	// every chain is still checked whole: no break may be recorded.
	if breaks != 0 {
		t.Errorf("%d chain breaks with %d ingester(s), want 0", breaks, instances)
	}
	if got := e.uint64("SELECT uniqExact(event_id) FROM {db}.events"); got != uint64(len(recs)) {
		t.Errorf("%d distinct event ids, want %d", got, len(recs))
	}

	q, err := query.Open(ctx, query.Config{Addr: c.ClickHouse[1], User: "default", Database: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rep, err := q.Verify(ctx, query.VerifyScope{Period: query.Period{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatalf("query verify on the cluster: %v", err)
	}
	t.Logf("query verify: %d events, %d chains, %d findings in %s", rep.Events, rep.Chains, len(rep.Findings), rep.Elapsed.Round(time.Millisecond))
	if rep.Events != len(recs) || len(rep.Findings) != 0 {
		t.Errorf("verify: %d events (want %d), findings %+v", rep.Events, len(recs), rep.Findings)
	}
}
