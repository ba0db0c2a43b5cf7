package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
)

// retentionTables are the monthly-partitioned tables and the time column
// each is partitioned by.
var retentionTables = []struct{ table, timeCol string }{
	{"events", "event_time"},
	{"dlq_events", "received_at"},
	{"chain_breaks", "event_time"},
	{"activity_sessions", "day"}, // migration 0015: per-day states of events
	{"call_folds", "day"},        // migration 0016: per-day states of tool calls
}

// RetentionOption changes what Retention does.
type RetentionOption func(*retentionConfig)

type retentionConfig struct{ dryRun bool }

// DryRun makes Retention report what it would drop and change nothing.
func DryRun() RetentionOption { return func(c *retentionConfig) { c.dryRun = true } }

// retentionSQL is the SQL Retention sends, for one server (cluster "") or
// for a cluster. On a cluster the tables of retentionTables are
// Distributed: they hold no parts and take no TTL, so it works on their
// Replicated local tables instead.
type retentionSQL struct {
	db, cluster string
}

// table is the name that holds t's parts.
func (r retentionSQL) table(t string) string {
	if r.cluster == "" {
		return t
	}
	return t + chschema.LocalSuffix
}

// parts lists (table, partition) of the active parts; name turns its
// table back into a name of retentionTables. On a cluster it reads one
// replica of every shard, so a partition only one shard holds is found too.
func (r retentionSQL) parts() string {
	names := make([]string, 0, len(retentionTables))
	for _, t := range retentionTables {
		names = append(names, "'"+r.table(t.table)+"'")
	}
	from := "system.parts"
	if r.cluster != "" {
		from = "cluster('" + r.cluster + "', system, parts)"
	}
	return "SELECT DISTINCT table, partition FROM " + from +
		" WHERE database = ? AND active AND table IN (" + strings.Join(names, ", ") + ")"
}

// name is the inverse of table.
func (r retentionSQL) name(table string) string {
	if r.cluster == "" {
		return table
	}
	return strings.TrimSuffix(table, chschema.LocalSuffix)
}

// drop drops monthly partition month of table (named as in
// retentionTables).
func (r retentionSQL) drop(table string, month int) string {
	return fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %d", r.db, r.table(table), month)
}

// ttl returns the ALTERs that make a TTL-capable server expire rows older
// than keep (whole parts, per migration 0009).
func (r retentionSQL) ttl(keep time.Duration) []string {
	days := int64((keep + 24*time.Hour - 1) / (24 * time.Hour))
	out := make([]string, 0, len(retentionTables))
	for _, t := range retentionTables {
		out = append(out, fmt.Sprintf("ALTER TABLE %s.%s MODIFY TTL %s + toIntervalDay(%d)", r.db, r.table(t.table), t.timeCol, days))
	}
	return out
}

// Retention drops whole monthly partitions whose every day is older than
// keep at now, and returns them as "table/YYYYMM". A partition that still
// holds one day inside keep stays, so data lives at least keep, at most a
// month longer. On servers with TTL (ModernVersion and newer) it also sets
// each table's TTL to keep, so the server goes on expiring parts by itself.
//
// On a cluster (Config.Cluster) it does this to the Replicated local
// tables behind the Distributed ones, sending each ALTER to one replica of
// every shard (execPerShard): a replicated DROP PARTITION or MODIFY TTL
// reaches the shard's other replicas through ZooKeeper, also a replica
// that is down now once it is back. ALTER … ON CLUSTER would have every
// replica run it through its DDL worker, which on 18.16 can stop the
// worker (see perShard) and waits for a replica that is down.
func (s *Store) Retention(ctx context.Context, keep time.Duration, now time.Time, opts ...RetentionOption) ([]string, error) {
	var cfg retentionConfig
	for _, o := range opts {
		o(&cfg)
	}
	if keep <= 0 {
		return nil, fmt.Errorf("%w: retention keep must be positive, got %s", ErrConfig, keep)
	}
	sql := retentionSQL{db: s.db, cluster: s.cfg.Cluster}
	cutoff := now.UTC().Add(-keep)
	rows, err := s.conn.Query(ctx, sql.parts(), s.db)
	if err != nil {
		return nil, fmt.Errorf("store: retention: %w", err)
	}
	type part struct {
		table string
		month int
	}
	var drop []part
	for rows.Next() {
		var table, partition string
		if err := rows.Scan(&table, &partition); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: retention: %w", err)
		}
		month, err := strconv.Atoi(partition)
		if err != nil || month < 197001 || month%100 < 1 || month%100 > 12 {
			continue // not a toYYYYMM partition; not ours to drop
		}
		end := time.Date(month/100, time.Month(month%100)+1, 1, 0, 0, 0, 0, time.UTC)
		if !end.After(cutoff) {
			drop = append(drop, part{sql.name(table), month})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: retention: %w", err)
	}
	sort.Slice(drop, func(i, j int) bool {
		if drop[i].table != drop[j].table {
			return drop[i].table < drop[j].table
		}
		return drop[i].month < drop[j].month
	})
	var out []string
	for _, p := range drop {
		if !cfg.dryRun {
			if err := s.execRetention(ctx, sql.drop(p.table, p.month)); err != nil {
				return out, fmt.Errorf("store: retention: drop %s/%d: %w", p.table, p.month, err)
			}
			s.log.Info("retention dropped partition", "table", sql.table(p.table), "partition", p.month)
		}
		out = append(out, fmt.Sprintf("%s/%d", p.table, p.month))
	}
	if cfg.dryRun {
		return out, nil
	}
	ver, err := s.ServerVersion(ctx)
	if err != nil {
		return out, err
	}
	if ver.AtLeast(ModernVersion) {
		for _, stmt := range sql.ttl(keep) {
			if err := s.execRetention(ctx, stmt); err != nil {
				return out, fmt.Errorf("store: retention: %w", err)
			}
		}
	}
	return out, nil
}

// execRetention runs one of Retention's ALTERs: on the connected server,
// or on a cluster on one replica of every shard. Neither ALTER fails when
// rerun (a dropped partition is empty, a TTL is set again), so no server
// error counts as done.
func (s *Store) execRetention(ctx context.Context, stmt string) error {
	if s.cfg.Cluster == "" {
		return s.conn.Exec(ctx, stmt)
	}
	return s.execPerShard(ctx, stmt, func(error) bool { return false })
}

// TTLStatements returns the ALTERs that make a TTL-capable single server
// expire rows older than keep (whole parts, per migration 0009).
func TTLStatements(db string, keep time.Duration) []string {
	return retentionSQL{db: db}.ttl(keep)
}
