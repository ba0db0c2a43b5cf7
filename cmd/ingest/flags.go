package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/ingest"
)

// storeFlags binds the ClickHouse flags every subcommand shares.
func storeFlags(fs *envflag.FlagSet, c *ingest.Config) {
	fs.StringEnv(&c.ClickHouseAddr, "clickhouse-addr", "CLICKHOUSE_ADDR", "127.0.0.1:9000", "ClickHouse native address `host:port`")
	fs.StringEnv(&c.ClickHouseUser, "clickhouse-user", "CLICKHOUSE_USER", "default", "ClickHouse user")
	fs.StringEnv(&c.ClickHousePassword, "clickhouse-password", "CLICKHOUSE_PASSWORD", "", "ClickHouse password")
	fs.StringEnv(&c.Database, "database", "CLICKHOUSE_DATABASE", ingest.DefaultDatabase, "ClickHouse database")
	fs.StringEnv(&c.ClickHouseCluster, "clickhouse-cluster", "CLICKHOUSE_CLUSTER", "", "ClickHouse cluster `name`: the schema is installed ON CLUSTER, sharded by session, and retention drops old months on every shard; empty for one server")
}

var logLevel = new(slog.LevelVar)

func logFlags(fs *envflag.FlagSet) {
	fs.TextEnv(logLevel, "log-level", "INGEST_LOG_LEVEL", slog.LevelInfo, "debug, info, warn or error")
}

func logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
}

// brokersFlag binds --brokers (no default: ingest.Config names a missing
// one).
func brokersFlag(fs *envflag.FlagSet, dst *[]string) {
	fs.ListEnv(dst, "brokers", "KAFKA_BROKERS", nil, "Kafka brokers, comma-separated")
}

// topicFlags binds the three topics.
func topicFlags(fs *envflag.FlagSet, t *eventlog.Topics) {
	fs.StringEnv(&t.Events, "topic-events", "INGEST_TOPIC_EVENTS", eventlog.DefaultTopics.Events, "events topic")
	fs.StringEnv(&t.Approvals, "topic-approvals", "INGEST_TOPIC_APPROVALS", eventlog.DefaultTopics.Approvals, "approvals topic")
	fs.StringEnv(&t.DLQ, "topic-dlq", "INGEST_TOPIC_DLQ", eventlog.DefaultTopics.DLQ, "dead-letter topic")
}

// runFlags binds every field of ingest.Config.
func runFlags(fs *envflag.FlagSet, c *ingest.Config) {
	storeFlags(fs, c)
	logFlags(fs)
	brokersFlag(fs, &c.Brokers)
	fs.StringEnv(&c.Group, "group", "INGEST_GROUP", ingest.DefaultGroup, "consumer group")
	fs.StringEnv(&c.InstanceID, "instance-id", "INGEST_INSTANCE_ID", "", "static group member id, unique per running ingester: a restart with it resumes at once instead of after the 45s session timeout")
	topicFlags(fs, &c.Topics)
	fs.BoolVar(&c.Migrate, "migrate", true, "apply pending migrations at start-up")
	fs.IntEnv(&c.BatchRows, "batch-rows", "INGEST_BATCH_ROWS", ingest.DefaultBatchRows, "rows per insert, at most")
	fs.IntEnv(&c.BatchBytes, "batch-bytes", "INGEST_BATCH_BYTES", ingest.DefaultBatchBytes, "record bytes per insert, at most; bounds memory")
	fs.DurationEnv(&c.BatchWait, "batch-wait", "INGEST_BATCH_WAIT", ingest.DefaultBatchWait, "longest a record waits for its batch")
	fs.IntEnv(&c.Inserts, "inserts", "INGEST_INSERTS", 0, "cut batches whose inserts may complete while the next streams (default 1)")
	fs.IntEnv(&c.Workers, "workers", "INGEST_WORKERS", 0, "decode workers (default GOMAXPROCS)")
	fs.DurationEnv(&c.ChainGrace, "chain-grace", "INGEST_CHAIN_GRACE", ingest.DefaultChainGrace, "wait for a missing chain predecessor before recording a gap")
	fs.IntEnv(&c.DedupWindow, "dedup-window", "INGEST_DEDUP_WINDOW", ingest.DefaultDedupWindow, "recent event ids compared for reuse with other content")
	fs.DurationVar(&c.RetryMin, "retry-min", 100*time.Millisecond, "first retry back-off")
	fs.DurationVar(&c.RetryMax, "retry-max", 5*time.Second, "longest retry back-off")
	fs.DurationEnv(&c.ShutdownTimeout, "shutdown-timeout", "INGEST_SHUTDOWN_TIMEOUT", 30*time.Second, "bound of the final flush after SIGTERM")
	fs.StringEnv(&c.MetricsAddr, "metrics-addr", "INGEST_METRICS_ADDR", ingest.DefaultMetricsAddr, "loopback `host:port` for /metrics and /healthz, or off")
}

func parse(fs *envflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
