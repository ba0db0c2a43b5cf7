package main

import (
	"context"
	"flag"
	"os"
	"strconv"
	"strings"

	"github.com/agentaudit/agentaudit/internal/ingest"
)

func benchCmd(ctx context.Context, args []string) error {
	var c ingest.Config
	var b ingest.BenchConfig
	fs := flag.NewFlagSet("ingest bench", flag.ContinueOnError)
	storeFlags(fs, &c)
	brokers := env("KAFKA_BROKERS", "127.0.0.1:9092")
	fs.StringVar(&brokers, "brokers", brokers, "Kafka brokers (env KAFKA_BROKERS)")
	fs.IntVar(&b.N, "n", 1_000_000, "events to generate")
	fs.IntVar(&b.Runs, "runs", 1, "runs of each side; medians are printed")
	var parts int
	fs.IntVar(&parts, "partitions", 3, "partitions per topic")
	fs.IntVar(&b.BatchRows, "batch-rows", 0, "ingest -batch-rows (default ingest's)")
	fs.IntVar(&b.Inserts, "inserts", 0, "ingest -inserts (default ingest's)")
	fs.StringVar(&b.AdminUser, "admin-user", env("CLICKHOUSE_ADMIN_USER", "default"), "ClickHouse user that creates the bench databases (env CLICKHOUSE_ADMIN_USER)")
	fs.StringVar(&b.AdminPassword, "admin-password", os.Getenv("CLICKHOUSE_ADMIN_PASSWORD"), "its password (env CLICKHOUSE_ADMIN_PASSWORD)")
	self, _ := os.Executable()
	fs.StringVar(&b.Ingest, "ingest", self, "ingest binary to measure")
	fs.StringVar(&b.Kcat, "kcat", "kcat", "kcat binary (the peer)")
	fs.StringVar(&b.ClickHouseClient, "clickhouse-client", "clickhouse-client", "clickhouse-client binary (the peer)")
	fs.BoolVar(&b.Keep, "keep", false, "keep the bench topics and databases")
	fs.StringVar(&b.JSON, "json", "", "also write the figures as JSON to this file (for make bench)")
	pidfile := fs.String("clickhouse-pidfile", env("CLICKHOUSE_PIDFILE", ".testenv/run/clickhouse.pid"), "ClickHouse server pid file, to report its CPU time per side (optional)")
	if err := parse(fs, args); err != nil {
		return err
	}
	b.Partitions = int32(parts)
	if raw, err := os.ReadFile(*pidfile); err == nil {
		b.ServerPID, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	}
	b.Brokers = strings.Split(brokers, ",")
	b.ClickHouseAddr, b.User, b.Password = c.ClickHouseAddr, c.ClickHouseUser, c.ClickHousePassword
	b.Log = os.Stderr
	return ingest.Bench(ctx, b, os.Stdout)
}
