package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/ingest"
)

// env returns the variable or def.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// storeFlags binds the ClickHouse flags every subcommand shares.
func storeFlags(fs *flag.FlagSet, c *ingest.Config) {
	fs.StringVar(&c.ClickHouseAddr, "clickhouse-addr", env("CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native address `host:port` (env CLICKHOUSE_ADDR)")
	fs.StringVar(&c.ClickHouseUser, "clickhouse-user", env("CLICKHOUSE_USER", "default"), "ClickHouse user (env CLICKHOUSE_USER)")
	fs.StringVar(&c.ClickHousePassword, "clickhouse-password", os.Getenv("CLICKHOUSE_PASSWORD"), "ClickHouse password (env CLICKHOUSE_PASSWORD)")
	fs.StringVar(&c.Database, "database", env("CLICKHOUSE_DATABASE", ingest.DefaultDatabase), "ClickHouse database (env CLICKHOUSE_DATABASE)")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", os.Getenv("CLICKHOUSE_CLUSTER"), "ClickHouse cluster `name` to install the schema ON CLUSTER, sharded by session; empty for one server (env CLICKHOUSE_CLUSTER)")
}

var logLevel = new(slog.LevelVar)

func logFlags(fs *flag.FlagSet) {
	fs.Func("log-level", "debug, info, warn or error (env INGEST_LOG_LEVEL)", func(s string) error {
		return logLevel.UnmarshalText([]byte(s))
	})
	if v := os.Getenv("INGEST_LOG_LEVEL"); v != "" {
		logLevel.UnmarshalText([]byte(v))
	}
}

func logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
}

// runFlags binds every field of ingest.Config.
func runFlags(fs *flag.FlagSet, c *ingest.Config) {
	storeFlags(fs, c)
	logFlags(fs)
	fs.Func("brokers", "Kafka brokers, comma-separated (env KAFKA_BROKERS)", func(s string) error {
		c.Brokers = strings.Split(s, ",")
		return nil
	})
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		c.Brokers = strings.Split(v, ",")
	}
	fs.StringVar(&c.Group, "group", env("INGEST_GROUP", ingest.DefaultGroup), "consumer group (env INGEST_GROUP)")
	fs.StringVar(&c.InstanceID, "instance-id", os.Getenv("INGEST_INSTANCE_ID"), "static group member id, unique per running ingester: a restart with it resumes at once instead of after the 45s session timeout (env INGEST_INSTANCE_ID)")
	fs.StringVar(&c.Topics.Events, "topic-events", env("INGEST_TOPIC_EVENTS", events.DefaultTopics.Events), "events topic (env INGEST_TOPIC_EVENTS)")
	fs.StringVar(&c.Topics.Approvals, "topic-approvals", env("INGEST_TOPIC_APPROVALS", events.DefaultTopics.Approvals), "approvals topic (env INGEST_TOPIC_APPROVALS)")
	fs.StringVar(&c.Topics.DLQ, "topic-dlq", env("INGEST_TOPIC_DLQ", events.DefaultTopics.DLQ), "dead-letter topic (env INGEST_TOPIC_DLQ)")
	fs.BoolVar(&c.Migrate, "migrate", true, "apply pending migrations at start-up")
	fs.IntVar(&c.BatchRows, "batch-rows", envInt("INGEST_BATCH_ROWS", ingest.DefaultBatchRows), "rows per insert, at most (env INGEST_BATCH_ROWS)")
	fs.IntVar(&c.BatchBytes, "batch-bytes", envInt("INGEST_BATCH_BYTES", ingest.DefaultBatchBytes), "record bytes per insert, at most; bounds memory (env INGEST_BATCH_BYTES)")
	fs.DurationVar(&c.BatchWait, "batch-wait", envDur("INGEST_BATCH_WAIT", ingest.DefaultBatchWait), "longest a record waits for its batch (env INGEST_BATCH_WAIT)")
	fs.IntVar(&c.Inserts, "inserts", envInt("INGEST_INSERTS", 0), "cut batches whose inserts may complete while the next streams (default 1; env INGEST_INSERTS)")
	fs.IntVar(&c.Workers, "workers", envInt("INGEST_WORKERS", 0), "decode workers (default GOMAXPROCS; env INGEST_WORKERS)")
	fs.DurationVar(&c.ChainGrace, "chain-grace", envDur("INGEST_CHAIN_GRACE", ingest.DefaultChainGrace), "wait for a missing chain predecessor before recording a gap (env INGEST_CHAIN_GRACE)")
	fs.IntVar(&c.DedupWindow, "dedup-window", envInt("INGEST_DEDUP_WINDOW", ingest.DefaultDedupWindow), "recent event ids compared for reuse with other content")
	fs.DurationVar(&c.RetryMin, "retry-min", 100*time.Millisecond, "first retry back-off")
	fs.DurationVar(&c.RetryMax, "retry-max", 5*time.Second, "longest retry back-off")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", envDur("INGEST_SHUTDOWN_TIMEOUT", 30*time.Second), "bound of the final flush after SIGTERM (env INGEST_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("INGEST_METRICS_ADDR", ingest.DefaultMetricsAddr), "loopback `host:port` for /metrics and /healthz, or off (env INGEST_METRICS_ADDR)")
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
