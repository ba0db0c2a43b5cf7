package querybench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
	"github.com/agentaudit/agentaudit/internal/store"
)

// readTimeout bounds waiting for the server: generation, merges and a
// month of reports at 10M events take minutes.
const readTimeout = 30 * time.Minute

// topology is what the bench measures: one server, or a cluster whose
// tables are Replicated *_local tables behind Distributed ones.
type topology struct {
	addr    string
	cluster string     // "" for one server
	servers [][]string // shard by shard, replicas in order (cluster only)
}

// readTopology lists the cluster's servers from system.clusters of the
// server at addr.
func readTopology(ctx context.Context, w *store.Store, addr, cluster string) (topology, error) {
	t := topology{addr: addr, cluster: cluster}
	if cluster == "" {
		return t, nil
	}
	servers, err := w.ClusterShards(ctx)
	if err != nil {
		return t, fmt.Errorf("bench: %w", err)
	}
	t.servers = servers
	if len(t.servers) == 0 {
		return t, fmt.Errorf("bench: cluster %q is not in system.clusters of %s", cluster, addr)
	}
	return t, nil
}

func (t topology) shards() int {
	if t.cluster == "" {
		return 1
	}
	return len(t.servers)
}

func (t topology) replicas() int {
	if t.cluster == "" {
		return 1
	}
	return len(t.servers[0])
}

// String names the topology in the bench's output.
func (t topology) String() string {
	if t.cluster == "" {
		return "single server " + t.addr
	}
	var sh []string
	for _, rs := range t.servers {
		sh = append(sh, strings.Join(rs, " "))
	}
	return fmt.Sprintf("cluster %s, %d shards × %d replicas (%s), reports through the Distributed tables from %s",
		t.cluster, t.shards(), t.replicas(), strings.Join(sh, " | "), t.addr)
}

// drop is the DROP of the bench database, on every server of a cluster.
func (t topology) drop(db string) string {
	if t.cluster == "" {
		return "DROP DATABASE IF EXISTS " + db
	}
	return "DROP DATABASE IF EXISTS " + db + " ON CLUSTER " + t.cluster
}

// merge merges the events as production would have by the time anyone
// reports. On a cluster that is OPTIMIZE of the local tables, not of the
// Distributed table (it does not reach the shards), and not ON CLUSTER
// either: there every replica runs it, and 18.16's non-leader replica
// forwards it to the leader, which fails with "Unknown log entry type: 0"
// and leaves that shard unmerged (measured here). So it goes to each
// shard's leader replica, which puts the merge in the shard's replication
// log; every replica then catches up (SYSTEM SYNC REPLICA), so a read that
// lands on either sees merged parts. It returns the active parts per
// server, for the output.
func (t topology) merge(ctx context.Context, w *store.Store, db string, cfg Config) (string, error) {
	if t.cluster == "" {
		if err := optimize(ctx, w.Conn(), db, "events", cfg); err != nil {
			return "", err
		}
		var n, rows uint64
		err := w.Conn().QueryRow(ctx, "SELECT count(), sum(rows) FROM system.parts WHERE database = ? AND table = 'events' AND active", db).Scan(&n, &rows)
		return fmt.Sprintf("%s %d parts %d rows", t.addr, n, rows), err
	}
	table := "events" + chschema.LocalSuffix
	local := db + "." + table
	dial := func(addr string) (*store.Conn, error) {
		c, err := store.Dial(ctx, addr, store.WithAuth(cfg.WriterUser, cfg.WriterPassword),
			store.WithTimeouts(0, readTimeout), store.WithMaxConns(1), store.WithLogger(cfg.Logger))
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", addr, err)
		}
		return c, nil
	}
	for i, rs := range t.servers {
		leader := ""
		for _, addr := range rs {
			c, err := dial(addr)
			if err != nil {
				return "", err
			}
			var n uint64
			err = c.QueryRow(ctx, "SELECT count() FROM system.replicas WHERE database = ? AND table = ? AND is_leader", db, table).Scan(&n)
			c.Close()
			if err != nil {
				return "", fmt.Errorf("bench: %s: %w", addr, err)
			}
			if n > 0 {
				leader = addr
				break
			}
		}
		if leader == "" {
			return "", fmt.Errorf("bench: shard %d of %s has no leader replica for %s", i+1, t.cluster, local)
		}
		c, err := dial(leader)
		if err != nil {
			return "", err
		}
		err = optimize(ctx, c, db, table, cfg)
		c.Close()
		if err != nil {
			return "", fmt.Errorf("bench: optimize on %s: %w", leader, err)
		}
	}
	var parts []string
	for _, rs := range t.servers {
		for _, addr := range rs {
			c, err := dial(addr)
			if err != nil {
				return "", err
			}
			var n, rows uint64
			err = c.Exec(ctx, "SYSTEM SYNC REPLICA "+local)
			if err == nil {
				err = c.QueryRow(ctx, "SELECT count(), sum(rows) FROM system.parts WHERE database = ? AND table = ? AND active",
					db, table).Scan(&n, &rows)
			}
			c.Close()
			if err != nil {
				return "", fmt.Errorf("bench: %s: %w", addr, err)
			}
			parts = append(parts, fmt.Sprintf("%s %d parts %d rows", addr, n, rows))
		}
	}
	return strings.Join(parts, ", "), nil
}

// optimize merges every partition of db.table into one part, and waits
// until it has. OPTIMIZE FINAL without a partition skips, silently, a
// partition that a background merge is working on (18.16 Replicated: one
// month of one shard left in 8 parts at 10M events, measured), and with a
// partition it is a no-op then unless asked to throw. So it is repeated
// until no partition has more than one active part. A table already in
// one part per partition is left alone: OPTIMIZE FINAL would rewrite it.
func optimize(ctx context.Context, c driver.Conn, db, table string, cfg Config) error {
	octx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"optimize_throw_if_noop": 1}))
	for attempt := 0; ; attempt++ {
		var left uint64
		if err := c.QueryRow(ctx, `SELECT count() FROM (SELECT partition FROM system.parts
			WHERE database = ? AND table = ? AND active GROUP BY partition HAVING count() > 1)`, db, table).Scan(&left); err != nil {
			return err
		}
		if left == 0 {
			return nil
		}
		if attempt > 0 {
			cfg.Logger.Info("bench: partitions still in several parts (a merge was running); optimize again", "table", table, "partitions", left, "attempt", attempt)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
			}
		}
		err := c.Exec(octx, "OPTIMIZE TABLE "+db+"."+table+" FINAL")
		if code, _ := store.ErrorCode(err); err != nil && code != codeCannotAssignOptimize {
			return err
		}
		if attempt == 120 {
			return fmt.Errorf("bench: %s.%s: %d partitions still in several parts after %d OPTIMIZE", db, table, left, attempt)
		}
	}
}

// codeCannotAssignOptimize is the server's CANNOT_ASSIGN_OPTIMIZE.
const codeCannotAssignOptimize = 388
