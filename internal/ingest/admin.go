package ingest

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/agentaudit/agentaudit/internal/store"
)

// validateStore checks only the ClickHouse fields, for the subcommands
// that do not consume (migrate, retention).
func (c *Config) validateStore() error {
	if c.ClickHouseAddr == "" {
		return bad("ClickHouseAddr", "clickhouse-addr", "empty (set CLICKHOUSE_ADDR)")
	}
	if _, _, err := net.SplitHostPort(c.ClickHouseAddr); err != nil {
		return bad("ClickHouseAddr", "clickhouse-addr", "%q is not host:port", c.ClickHouseAddr)
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	return nil
}

func (c *Config) openStore(ctx context.Context) (*store.Store, error) {
	if err := c.validateStore(); err != nil {
		return nil, err
	}
	return store.Open(ctx, store.Config{
		Addr: c.ClickHouseAddr, User: c.ClickHouseUser, Password: c.ClickHousePassword,
		Database: c.Database, Cluster: c.ClickHouseCluster, Logger: c.Logger,
	})
}

// Migrate applies pending migrations and prints the applied versions.
func Migrate(ctx context.Context, cfg Config, out io.Writer) error {
	st, err := cfg.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	applied, skipped, err := st.MigrateReport(ctx)
	for _, a := range applied {
		fmt.Fprintf(out, "applied %04d_%s (%d statements, %s)\n", a.Version, a.Name, a.Statements, a.Took.Round(time.Millisecond))
	}
	for _, s := range skipped {
		fmt.Fprintf(out, "skipped %04d_%s: %s\n", s.Version, s.Name, s.Why)
	}
	if err == nil && len(applied) == 0 {
		fmt.Fprintln(out, "up to date")
	}
	return err
}

// Retention drops monthly partitions older than keep (and sets TTLs on
// servers that have them) and prints what it dropped, or with dryRun what
// it would drop.
func Retention(ctx context.Context, cfg Config, keep time.Duration, dryRun bool, out io.Writer) error {
	st, err := cfg.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	var opts []store.RetentionOption
	if dryRun {
		opts = append(opts, store.DryRun())
	}
	parts, err := st.Retention(ctx, keep, time.Now(), opts...)
	for _, p := range parts {
		if dryRun {
			fmt.Fprintln(out, "would drop", p)
		} else {
			fmt.Fprintln(out, "dropped", p)
		}
	}
	if len(parts) == 0 {
		fmt.Fprintln(out, "nothing older than", keep)
	}
	return err
}
