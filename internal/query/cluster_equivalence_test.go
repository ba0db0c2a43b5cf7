//go:build cluster

// The cluster suite: run with `make test-cluster` after
// `testenv/up --cluster`, beside the single-node services. It fails,
// naming that command, when the cluster is not running.

package query

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestIntegrationClusterReportsMatchGroundTruth stores the equivalence
// test's troubled data (late events, redeliveries kept unmerged, planted
// findings) on the 2-shard × 2-replica cluster and on the single node,
// and requires every shipped report, read through the cluster's
// Distributed tables as the read-only account, to equal its plain, slow
// ground truth run on the single node (a report that reads FINAL is
// compared with itself there). The ground truth never sees a Distributed
// table, so it does not share the cluster's assumptions: a report that
// needs rows from two shards in one group, join or IN set (a session's
// events, its calls' approvals) would differ here.
func TestIntegrationClusterReportsMatchGroundTruth(t *testing.T) {
	env := testenv.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	db := "test_cluster_query_" + randHex(4)
	cw, err := store.Open(ctx, store.Config{Addr: env.ClickHouse[0], User: "default", Database: db, Cluster: env.Name,
		Logger: testenv.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cw.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+env.Name); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
		cw.Close()
	})
	if _, err := cw.Migrate(ctx); err != nil {
		t.Fatalf("migrate on the cluster: %v", err)
	}
	var nodes []*store.Conn
	for _, a := range env.ClickHouse {
		c, err := store.Dial(ctx, a, store.WithDatabase(db))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		nodes = append(nodes, c)
		// Keep the redeliveries as separate rows on every replica.
		if err := c.Exec(ctx, "SYSTEM STOP MERGES "+db+".events_local"); err != nil {
			t.Fatalf("%s: stop merges: %v", a, err)
		}
	}
	single := testDB(t)
	if err := single.Conn().Exec(ctx, "SYSTEM STOP MERGES "+single.Database()+".events"); err != nil {
		t.Fatalf("stop merges: %v", err)
	}
	start := storeTroubled(t, single, cw)
	// The inserts returned once a replica of each shard held the rows;
	// reads may go to the other. (Not SYSTEM SYNC REPLICA: with merges
	// stopped it waits for merges that never run.)
	counts := func() []uint64 {
		out := make([]uint64, len(nodes))
		for i, c := range nodes {
			if err := c.QueryRow(ctx, "SELECT count() FROM "+db+".events_local").Scan(&out[i]); err != nil {
				t.Fatalf("%s: %v", env.ClickHouse[i], err)
			}
		}
		return out
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		n := counts()
		same := true
		for i := range n {
			same = same && n[i] == n[i-i%env.Replicas]
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas still differ after a minute: rows per server %v", n)
		}
	}
	cfg := readerConfig(t, db)
	cfg.Addr = env.ClickHouse[0]
	cfg.Cluster = env.Name
	q, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	truth := openReader(t, single.Database())
	periods := equivalencePeriods(start)
	nonEmpty := reportsMatchGroundTruth(t, q, truth, periods)
	exercised(t, nonEmpty)

	// Verify reads each shard's local table on a cluster: it must find on
	// the cluster exactly what it finds on the single node, in one batch
	// and in batches of a few sessions (the planted event id stored in two
	// sessions may then lie on two shards).
	t.Run("verify", func(t *testing.T) {
		for _, p := range periods {
			want, err := truth.Verify(ctx, VerifyScope{Period: p})
			if err != nil {
				t.Fatal(err)
			}
			want.Elapsed = 0
			for _, small := range []bool{false, true} {
				rows, n := verifyBatchRows, verifyBatch
				if small {
					verifyBatchRows, verifyBatch = 200, 7
				}
				got, err := q.Verify(ctx, VerifyScope{Period: p})
				verifyBatchRows, verifyBatch = rows, n
				if err != nil {
					t.Fatal(err)
				}
				got.Elapsed = 0
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%v, small batches %v (-single node +cluster):\n%s", p, small, diff)
				}
				if len(got.Findings) == 0 {
					t.Errorf("%v: no findings: the planted breaks are not in scope", p)
				}
			}
		}
		// A cluster the server does not know is a configuration error.
		bad := cfg
		bad.Cluster = "no_such_cluster"
		qb, err := Open(ctx, bad)
		if err != nil {
			t.Fatal(err)
		}
		defer qb.Close()
		if _, err := qb.Verify(ctx, VerifyScope{Period: periods[0]}); !errors.Is(err, ErrConfig) {
			t.Errorf("verify with an unknown cluster: %v, want ErrConfig", err)
		}
	})
}
