package main

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"

	"github.com/agentaudit/agentaudit/internal/bench/ingestbench"
	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/ingest"
)

func benchCmd(ctx context.Context, args []string) error {
	var c ingest.Config
	var b ingestbench.Config
	fs := envflag.New("ingest bench", flag.ContinueOnError)
	storeFlags(fs, &c)
	fs.ListEnv(&b.Brokers, "brokers", "KAFKA_BROKERS", []string{"127.0.0.1:9092"}, "Kafka brokers, comma-separated")
	fs.IntVar(&b.N, "n", 1_000_000, "events to generate")
	fs.IntVar(&b.Runs, "runs", 1, "runs of each side; medians are printed")
	var parts int
	fs.IntVar(&parts, "partitions", 3, "partitions per topic")
	fs.IntVar(&b.BatchRows, "batch-rows", 0, "ingest -batch-rows (default ingest's)")
	fs.IntVar(&b.Inserts, "inserts", 0, "ingest -inserts (default ingest's)")
	fs.StringEnv(&b.AdminUser, "admin-user", "CLICKHOUSE_ADMIN_USER", "default", "ClickHouse user that creates the bench databases")
	fs.StringEnv(&b.AdminPassword, "admin-password", "CLICKHOUSE_ADMIN_PASSWORD", "", "its password")
	self, _ := os.Executable()
	fs.StringVar(&b.Ingest, "ingest", self, "ingest binary to measure")
	fs.StringVar(&b.Kcat, "kcat", "kcat", "kcat binary (the peer)")
	fs.StringVar(&b.ClickHouseClient, "clickhouse-client", "clickhouse-client", "clickhouse-client binary (the peer)")
	fs.BoolVar(&b.Keep, "keep", false, "keep the bench topics and databases")
	fs.StringVar(&b.JSON, "json", "", "also write the figures as JSON to this file (for make bench)")
	var pidfile string
	fs.StringEnv(&pidfile, "clickhouse-pidfile", "CLICKHOUSE_PIDFILE", ".testenv/run/clickhouse.pid", "ClickHouse server pid file, to report its CPU time per side (optional)")
	if err := parse(fs, args); err != nil {
		return err
	}
	b.Partitions = int32(parts)
	if raw, err := os.ReadFile(pidfile); err == nil {
		b.ServerPID, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	b.ClickHouseAddr, b.User, b.Password = c.ClickHouseAddr, c.ClickHouseUser, c.ClickHousePassword
	b.Log = os.Stderr
	return ingestbench.Run(ctx, b, os.Stdout)
}
