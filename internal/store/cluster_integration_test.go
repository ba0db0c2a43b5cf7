//go:build cluster

// The cluster suite: run with `make test-cluster` (or go test -tags
// cluster,… -run Cluster ./internal/store/) after `testenv/up --cluster`.
// It fails, naming that command, when the cluster is not running.

package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// clusterDB migrates a fresh database on the cluster through its first
// server and returns the store and one plain connection per server.
func clusterDB(t *testing.T) (*Store, []*Store, testenv.ClusterEnv) {
	t.Helper()
	env := testenv.Cluster(t)
	var b [4]byte
	rand.Read(b[:])
	db := "test_cluster_" + hex.EncodeToString(b[:])
	cfg := Config{Addr: env.ClickHouse[0], User: "default", Database: db, Cluster: env.Name,
		Logger: testenv.Logger(t, slog.LevelInfo)}
	s := open(t, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+env.Name); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	})
	var nodes []*Store
	for _, a := range env.ClickHouse {
		nodes = append(nodes, open(t, Config{Addr: a, User: "default", Database: db}))
	}
	return s, nodes, env
}

// TestIntegrationClusterMigrate installs every migration on the 2x2
// ClickHouse 18.16 cluster and checks each server: Replicated local
// tables, Distributed tables under the names queries use with the insert
// columns, the views, and the migration record replicated everywhere. A
// second Migrate through another server applies nothing.
func TestIntegrationClusterMigrate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, nodes, env := clusterDB(t)
	start := time.Now()
	applied, skipped, err := s.MigrateReport(ctx)
	if err != nil {
		t.Fatalf("Migrate on the cluster: %v", err)
	}
	t.Logf("migrated %d, skipped %d in %s", len(applied), len(skipped), time.Since(start).Round(time.Millisecond))
	all, err := chschema.All()
	if err != nil {
		t.Fatal(err)
	}
	ver, err := s.ServerVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, m := range all {
		if s.gate(m, ver) == "" {
			want = append(want, m.Version)
		}
	}
	if diff := cmp.Diff(want, versions(applied)); diff != "" {
		t.Errorf("applied versions (-want +got):\n%s", diff)
	}

	wantEngines := map[string]string{
		"events": "Distributed", "events_local": "ReplicatedReplacingMergeTree",
		"dlq_events": "Distributed", "dlq_events_local": "ReplicatedReplacingMergeTree",
		"chain_breaks": "Distributed", "chain_breaks_local": "ReplicatedReplacingMergeTree",
		"schema_migrations": "ReplicatedReplacingMergeTree", "schema_lock": "Log",
	}
	for i, n := range nodes {
		got := map[string]string{}
		rows, err := n.conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ?", n.db)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, engine string
			if err := rows.Scan(&name, &engine); err != nil {
				t.Fatal(err)
			}
			got[name] = engine
		}
		rows.Close()
		for name, engine := range wantEngines {
			if got[name] != engine {
				t.Errorf("server %s: %s engine = %q, want %s", env.ClickHouse[i], name, got[name], engine)
			}
		}
		for _, v := range []string{"tool_calls", "approvals", "egress", "alerts", "sessions", "execs", "model_calls"} {
			if got[v] != "View" {
				t.Errorf("server %s: view %s engine = %q", env.ClickHouse[i], v, got[v])
			}
		}
		// 0018: one row per shard, from any server.
		if got := count(t, n, "SELECT count() FROM "+n.db+".shards"); got != uint64(env.Shards) {
			t.Errorf("server %s: shards has %d rows, want one per shard (%d)", env.ClickHouse[i], got, env.Shards)
		}
		for _, tbl := range []string{"events", "events_local"} {
			cols := strs(t, n, "SELECT name FROM system.columns WHERE database = ? AND table = ? AND default_kind = ''", n.db, tbl)
			if diff := cmp.Diff(eventColumns, cols); diff != "" {
				t.Errorf("server %s: %s columns (-insert +table):\n%s", env.ClickHouse[i], tbl, diff)
			}
		}
		if err := n.conn.Exec(ctx, "SYSTEM SYNC REPLICA "+n.db+".schema_migrations"); err != nil {
			t.Fatal(err)
		}
		if got := count(t, n, "SELECT count() FROM "+n.db+".schema_migrations FINAL"); got != uint64(len(want)) {
			t.Errorf("server %s: schema_migrations has %d rows, want %d", env.ClickHouse[i], got, len(want))
		}
	}

	// Through the last server: everything is recorded, nothing to do.
	last := open(t, Config{Addr: env.ClickHouse[len(env.ClickHouse)-1], User: "default", Database: s.db, Cluster: env.Name})
	again, err := last.Migrate(ctx)
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if len(again) != 0 {
		t.Errorf("second Migrate applied %v", versions(again))
	}
}

// TestIntegrationClusterShardsBySession inserts 16 sessions (each twice,
// a redelivery) through the Distributed table and checks that every
// session lives on exactly one shard, on both of its replicas, that FINAL
// through Distributed collapses the redelivery, and that the views read
// the same as on one server.
func TestIntegrationClusterShardsBySession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, nodes, env := clusterDB(t)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on the cluster: %v", err)
	}
	base := mappedExamples(t)
	const sessions = 16
	var all []EventRow
	perSession := map[string][]EventRow{}
	for k := range sessions {
		for _, r := range base {
			r.SessionID = fmt.Sprintf("%s-c%02d", r.SessionID, k)
			if r.ApprovalID != "" {
				r.ApprovalID = fmt.Sprintf("%s-c%02d", r.ApprovalID, k)
			}
			all = append(all, r)
			perSession[r.SessionID] = append(perSession[r.SessionID], r)
		}
	}
	for range 2 {
		if err := s.InsertEvents(ctx, all); err != nil {
			t.Fatal(err)
		}
	}
	// 18.16 sends Distributed inserts in the background: wait until the
	// first replicas of the shards hold every event. (The redelivered
	// blocks may also be dropped whole by the Replicated tables' insert
	// deduplication, so only FINAL counts are exact.)
	total := func() uint64 {
		var n uint64
		for i := 0; i < len(nodes); i += env.Replicas {
			n += count(t, nodes[i], "SELECT count() FROM "+s.db+".events_local FINAL")
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for got := total(); got != uint64(len(all)); got = total() {
		if time.Now().After(deadline) {
			t.Fatalf("shards hold %d events after 60s, want %d", got, len(all))
		}
		time.Sleep(200 * time.Millisecond)
	}
	shardOf := map[string]int{}
	var perShard []map[string]uint64
	for i, n := range nodes {
		if err := n.conn.Exec(ctx, "SYSTEM SYNC REPLICA "+s.db+".events_local"); err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		rows, err := n.conn.Query(ctx, "SELECT session_id, count() FROM "+s.db+".events_local FINAL GROUP BY session_id")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var sid string
			var c uint64
			if err := rows.Scan(&sid, &c); err != nil {
				t.Fatal(err)
			}
			got[sid] = c
		}
		rows.Close()
		shard := i / env.Replicas
		if i%env.Replicas == 0 {
			perShard = append(perShard, got)
		} else if diff := cmp.Diff(perShard[shard], got); diff != "" {
			t.Errorf("shard %d: replica %s differs from its first replica (-first +this):\n%s", shard+1, env.ClickHouse[i], diff)
		}
		for sid := range got {
			if other, ok := shardOf[sid]; ok && other != shard {
				t.Errorf("session %s on shards %d and %d", sid, other+1, shard+1)
			}
			shardOf[sid] = shard
		}
	}
	for shard, m := range perShard {
		if len(m) == 0 {
			t.Errorf("shard %d holds no session: sharding by session is not spreading", shard+1)
		}
		t.Logf("shard %d: %d sessions", shard+1, len(m))
	}
	for sid, rows := range perSession {
		shard, ok := shardOf[sid]
		if !ok {
			t.Errorf("session %s is on no shard", sid)
			continue
		}
		if got := perShard[shard][sid]; got != uint64(len(rows)) {
			t.Errorf("session %s: %d rows FINAL on its shard, want %d", sid, got, len(rows))
		}
	}
	// Through Distributed, from a server of the other shard.
	q := nodes[len(nodes)-1]
	if got := count(t, q, "SELECT count() FROM "+s.db+".events FINAL"); got != uint64(len(all)) {
		t.Errorf("events FINAL through Distributed = %d, want %d", got, len(all))
	}
	if got := count(t, q, "SELECT count() FROM "+s.db+".sessions"); got != uint64(len(perSession)) {
		t.Errorf("sessions view = %d rows, want %d", got, len(perSession))
	}
	// The first copy of the examples, all its sessions (on both shards).
	var copy0 []EventRow
	for _, r := range all {
		if strings.HasSuffix(r.SessionID, "-c00") {
			copy0 = append(copy0, r)
		}
	}
	r, err := q.conn.Query(ctx, `SELECT tool_call_id, tool_name, command, initial_decision, decision, reason_code, rule_id,
	             approval_id, approval_status, approver, status, exit_code, duration_ms
	      FROM `+s.db+`.tool_calls WHERE session_id LIKE '%-c00' ORDER BY tool_call_id`)
	if err != nil {
		t.Fatal(err)
	}
	var calls []toolCallRow
	for r.Next() {
		var c toolCallRow
		if err := r.Scan(&c.ToolCallID, &c.ToolName, &c.Command, &c.Initial, &c.Decision, &c.ReasonCode, &c.RuleID,
			&c.ApprovalID, &c.ApprovalStatus, &c.Approver, &c.Status, &c.ExitCode, &c.DurationMS); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, c)
	}
	r.Close()
	if diff := cmp.Diff(expectedToolCalls(t, copy0), calls); diff != "" {
		t.Errorf("tool_calls of the first copy through Distributed (-want +got):\n%s", diff)
	}
}

// TestIntegrationClusterInsertModes measures inserting the same events
// (the examples copied into 2000 sessions, in batches of 10k rows) three
// ways: through the Distributed table synchronously (what a store on a
// cluster does), through it asynchronously (18.16's default: the insert
// returns once the rows are queued on the receiving server; timed until
// the shards hold them), and into the single-node server for reference.
// It checks counts and logs rows/s; the figures are in the README.
func TestIntegrationClusterInsertModes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	base := mappedExamples(t)
	var rows []EventRow
	for k := range 2000 {
		for _, r := range base {
			r.SessionID = fmt.Sprintf("%s-m%04d", r.SessionID, k)
			rows = append(rows, r)
		}
	}
	const batch = 10_000
	insertAll := func(t *testing.T, s *Store) time.Duration {
		start := time.Now()
		for i := 0; i < len(rows); i += batch {
			if err := s.InsertEvents(ctx, rows[i:min(i+batch, len(rows))]); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	landed := func(t *testing.T, nodes []*Store, replicas int, start time.Time) time.Duration {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var n uint64
			for i := 0; i < len(nodes); i += replicas {
				n += count(t, nodes[i], "SELECT count() FROM "+nodes[i].db+".events_local")
			}
			if n >= uint64(len(rows)) {
				return time.Since(start)
			}
			if time.Now().After(deadline) {
				t.Fatalf("shards hold %d rows after 2 min, want %d", n, len(rows))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	rate := func(d time.Duration) string { return fmt.Sprintf("%.0f rows/s", float64(len(rows))/d.Seconds()) }

	t.Run("distributed sync", func(t *testing.T) {
		s, nodes, env := clusterDB(t)
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		took := insertAll(t, s)
		// Synchronous: nothing to wait for once the inserts return.
		all := landed(t, nodes, env.Replicas, start)
		t.Logf("%d rows through Distributed, insert_distributed_sync=1: inserts returned in %s (%s); on the shards after %s",
			len(rows), took.Round(time.Millisecond), rate(took), all.Round(time.Millisecond))
	})
	t.Run("distributed async", func(t *testing.T) {
		s, nodes, env := clusterDB(t)
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		async := open(t, Config{Addr: env.ClickHouse[0], User: "default", Database: s.db})
		start := time.Now()
		took := insertAll(t, async)
		all := landed(t, nodes, env.Replicas, start)
		t.Logf("%d rows through Distributed, asynchronous: inserts returned in %s (%s); on the shards after %s (%s)",
			len(rows), took.Round(time.Millisecond), rate(took), all.Round(time.Millisecond), rate(all))
	})
	t.Run("single node", func(t *testing.T) {
		s := migrated(t)
		took := insertAll(t, s)
		t.Logf("%d rows into the single-node server: %s (%s)", len(rows), took.Round(time.Millisecond), rate(took))
	})
}

// TestIntegrationClusterMigrateRerun: ClickHouse DDL is not transactional,
// so a migration that failed halfway runs again in full. Forgetting the
// record of 0011 and 0012 after they ran makes the next Migrate rerun every
// ADD COLUMN on every shard, where the column exists: it must go through.
func TestIntegrationClusterMigrateRerun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, nodes, env := clusterDB(t)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.conn.Exec(ctx, "ALTER TABLE "+s.db+".schema_migrations DELETE WHERE version IN (11, 12)"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); count(t, s, "SELECT count() FROM "+s.db+".schema_migrations FINAL WHERE version IN (11, 12)") != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the records of 0011 and 0012 are still there after a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	again, err := s.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate rerunning 0011 and 0012: %v", err)
	}
	if diff := cmp.Diff([]int{11, 12}, versions(again)); diff != "" {
		t.Errorf("rerun versions (-want +got):\n%s", diff)
	}
	for i, n := range nodes {
		cols := strs(t, n, "SELECT name FROM system.columns WHERE database = ? AND table = 'events' AND default_kind = ''", n.db)
		if diff := cmp.Diff(eventColumns, cols); diff != "" {
			t.Errorf("server %s: events columns after the rerun (-insert +table):\n%s", env.ClickHouse[i], diff)
		}
	}
}

// TestIntegrationClusterRetention inserts events, DLQ rows and chain
// breaks into an old month, a month that reaches past the cutoff and a
// recent one through the Distributed tables, runs Retention through one
// server, and checks every server: the old month is gone from each local
// table, the other two stay. Sessions spread over both shards; the DLQ
// row and the chain break each land on one shard only, so the other
// shard is sent a DROP PARTITION of a partition it does not hold.
func TestIntegrationClusterRetention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, nodes, env := clusterDB(t)
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on the cluster: %v", err)
	}
	base := toolCallRequest(t, mappedExamples(t))
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	keep := 400 * 24 * time.Hour                            // cutoff 2025-05-11
	old := time.Date(2025, 3, 20, 0, 0, 0, 0, time.UTC)     // month ended before the cutoff: dropped
	straddle := time.Date(2025, 5, 2, 0, 0, 0, 0, time.UTC) // month reaches past the cutoff: kept
	recent := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var rows []EventRow
	id := uint64(1)
	for k := range 8 {
		for _, at := range []time.Time{old, straddle, recent} {
			r := rowAt(base, at, id)
			r.SessionID = fmt.Sprintf("%s-r%d", base.SessionID, k)
			rows = append(rows, r)
			id++
		}
	}
	if err := s.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertDLQ(ctx, []DLQRow{{ReceivedAt: old, Topic: "audit.events", Offset: 1, Raw: []byte("{")},
		{ReceivedAt: recent, Topic: "audit.events", Offset: 2, Raw: []byte("{")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertChainBreaks(ctx, []ChainBreak{{EventTime: old, SessionID: "s", Kind: BreakGap, EventID: 1}}); err != nil {
		t.Fatal(err)
	}
	tables := []string{"events_local", "dlq_events_local", "chain_breaks_local", "activity_sessions_local", "call_folds_local"}
	// partitions returns "table/partition" of the active parts on server
	// i, after it has fetched what its shard's other replica holds.
	partitions := func(i int) []string {
		n := nodes[i]
		for _, tbl := range tables {
			if err := n.conn.Exec(ctx, "SYSTEM SYNC REPLICA "+s.db+"."+tbl); err != nil {
				t.Fatalf("server %s: %v", env.ClickHouse[i], err)
			}
		}
		return strs(t, n, "SELECT DISTINCT concat(table, '/', partition) AS p FROM system.parts WHERE database = ? AND active AND table LIKE '%\\_local' ORDER BY p", s.db)
	}
	// The union over the shards, from their first replicas.
	union := func() []string {
		seen := map[string]bool{}
		var out []string
		for i := 0; i < len(nodes); i += env.Replicas {
			for _, p := range partitions(i) {
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
		sort.Strings(out)
		return out
	}
	before := union()
	wantBefore := []string{"activity_sessions_local/202503", "activity_sessions_local/202505", "activity_sessions_local/202606",
		"call_folds_local/202503", "call_folds_local/202505", "call_folds_local/202606",
		"chain_breaks_local/202503",
		"dlq_events_local/202503", "dlq_events_local/202606",
		"events_local/202503", "events_local/202505", "events_local/202606"}
	if diff := cmp.Diff(wantBefore, before); diff != "" {
		t.Fatalf("partitions before retention (-want +got):\n%s", diff)
	}
	for i := 0; i < len(nodes); i += env.Replicas {
		if p := partitions(i); !slices.Contains(p, "events_local/202503") {
			t.Fatalf("shard %d holds no old events (%v): the test needs both shards to hold some", i/env.Replicas+1, p)
		}
	}

	want := []string{"activity_sessions/202503", "call_folds/202503", "chain_breaks/202503", "dlq_events/202503", "events/202503"}
	dry, err := s.Retention(ctx, keep, now, DryRun())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, dry); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, union()); diff != "" {
		t.Fatalf("dry run changed partitions (-before +after):\n%s", diff)
	}
	got, err := s.Retention(ctx, keep, now)
	if err != nil {
		t.Fatalf("Retention on the cluster: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
	for i := range nodes {
		var left []string
		for _, p := range partitions(i) {
			if strings.HasSuffix(p, "/202503") {
				left = append(left, p)
			}
		}
		if len(left) != 0 {
			t.Errorf("server %s still holds %v", env.ClickHouse[i], left)
		}
		if n := count(t, nodes[i], "SELECT count() FROM "+s.db+".events_local WHERE toYYYYMM(event_time) = 202503"); n != 0 {
			t.Errorf("server %s: %d old events left", env.ClickHouse[i], n)
		}
	}
	after := union()
	wantAfter := []string{"activity_sessions_local/202505", "activity_sessions_local/202606",
		"call_folds_local/202505", "call_folds_local/202606",
		"dlq_events_local/202606", "events_local/202505", "events_local/202606"}
	if diff := cmp.Diff(wantAfter, after); diff != "" {
		t.Errorf("partitions after retention (-want +got):\n%s", diff)
	}
	// Through Distributed: the kept months, every row of them.
	if n := count(t, nodes[len(nodes)-1], "SELECT count() FROM "+s.db+".events"); n != 16 {
		t.Errorf("events through Distributed after retention = %d, want 16", n)
	}
	// A rerun has nothing left to drop.
	again, err := s.Retention(ctx, keep, now)
	if err != nil {
		t.Fatalf("second Retention: %v", err)
	}
	if len(again) != 0 {
		t.Errorf("second Retention dropped %v", again)
	}
}
