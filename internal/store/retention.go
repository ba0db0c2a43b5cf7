package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// retentionTables are the monthly-partitioned tables and the time column
// each is partitioned by.
var retentionTables = []struct{ table, timeCol string }{
	{"events", "event_time"},
	{"dlq_events", "received_at"},
	{"chain_breaks", "event_time"},
}

// RetentionOption changes what Retention does.
type RetentionOption func(*retentionConfig)

type retentionConfig struct{ dryRun bool }

// DryRun makes Retention report what it would drop and change nothing.
func DryRun() RetentionOption { return func(c *retentionConfig) { c.dryRun = true } }

// Retention drops whole monthly partitions whose every day is older than
// keep at now, and returns them as "table/YYYYMM". A partition that still
// holds one day inside keep stays, so data lives at least keep, at most a
// month longer. On servers with TTL (ModernVersion and newer) it also sets
// each table's TTL to keep, so the server goes on expiring parts by itself.
func (s *Store) Retention(ctx context.Context, keep time.Duration, now time.Time, opts ...RetentionOption) ([]string, error) {
	var cfg retentionConfig
	for _, o := range opts {
		o(&cfg)
	}
	if keep <= 0 {
		return nil, fmt.Errorf("%w: retention keep must be positive, got %s", ErrConfig, keep)
	}
	cutoff := now.UTC().Add(-keep)
	rows, err := s.conn.Query(ctx,
		"SELECT DISTINCT table, partition FROM system.parts WHERE database = ? AND active AND table IN ('events', 'dlq_events', 'chain_breaks')", s.db)
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
			drop = append(drop, part{table, month})
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
			if err := s.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %d", s.db, p.table, p.month)); err != nil {
				return out, fmt.Errorf("store: retention: drop %s/%d: %w", p.table, p.month, err)
			}
			s.log.Info("retention dropped partition", "table", p.table, "partition", p.month)
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
		for _, stmt := range TTLStatements(s.db, keep) {
			if err := s.conn.Exec(ctx, stmt); err != nil {
				return out, fmt.Errorf("store: retention: %w", err)
			}
		}
	}
	return out, nil
}

// TTLStatements returns the ALTERs that make a TTL-capable server expire
// rows older than keep (whole parts, per migration 0009).
func TTLStatements(db string, keep time.Duration) []string {
	days := int64((keep + 24*time.Hour - 1) / (24 * time.Hour))
	out := make([]string, 0, len(retentionTables))
	for _, t := range retentionTables {
		out = append(out, fmt.Sprintf("ALTER TABLE %s.%s MODIFY TTL %s + toIntervalDay(%d)", db, t.table, t.timeCol, days))
	}
	return out
}
