package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
)

// ErrConfig: a Config field is missing or out of range; the message names
// the field and its flag.
var ErrConfig = errors.New("ingest: bad config")

// Config is the ingester's whole configuration. cmd/ingest fills it from
// flags whose defaults come from the environment (the names testenv/up
// writes into .testenv/env).
type Config struct {
	Brokers []string `flag:"brokers" env:"KAFKA_BROKERS"`
	Group   string   `flag:"group" env:"INGEST_GROUP"`
	// InstanceID, when set, makes the ingester a static member of its
	// group (Kafka's group.instance.id): restarted with the same id, it
	// gets its partitions back at once instead of after the group's
	// session timeout (45 s), which a crashed dynamic member costs. Every
	// running ingester of the group needs its own id (a pod's ordinal, a
	// host name). A static member that stops keeps its partitions until
	// it restarts or the session times out.
	InstanceID string `flag:"instance-id" env:"INGEST_INSTANCE_ID"`
	// Topics: Events and Approvals are consumed, DLQ receives dead letters.
	Topics eventlog.Topics `flag:"topic-events,topic-approvals,topic-dlq"`

	ClickHouseAddr     string `flag:"clickhouse-addr" env:"CLICKHOUSE_ADDR"`
	ClickHouseUser     string `flag:"clickhouse-user" env:"CLICKHOUSE_USER"`
	ClickHousePassword string `flag:"clickhouse-password" env:"CLICKHOUSE_PASSWORD"`
	Database           string `flag:"database" env:"CLICKHOUSE_DATABASE"`
	// ClickHouseCluster names the cluster (remote_servers) the migrations
	// install on: Replicated tables ON CLUSTER behind Distributed tables
	// sharded by session. Empty for one server.
	ClickHouseCluster string `flag:"clickhouse-cluster" env:"CLICKHOUSE_CLUSTER"`
	// Migrate applies pending migrations at start-up (under the migration
	// lock) before consuming.
	Migrate bool `flag:"migrate"`

	// BatchRows, BatchBytes (of records) and BatchWait cut batches:
	// whichever comes first. A batch is one INSERT, one part on the
	// server; its rows are streamed in blocks as it fills and nothing of
	// it is kept in the ingester (a failed insert is read again from
	// Kafka), so the bounds weigh the server's squashing memory and its
	// parts, not the ingester's memory.
	BatchRows  int           `flag:"batch-rows" env:"INGEST_BATCH_ROWS"`
	BatchBytes int           `flag:"batch-bytes" env:"INGEST_BATCH_BYTES"`
	BatchWait  time.Duration `flag:"batch-wait" env:"INGEST_BATCH_WAIT"`
	// Inserts is how many cut batches may wait for their inserts to
	// complete while the next one streams (default 1); commits stay in
	// order.
	Inserts int `flag:"inserts"`
	// Workers decode and validate in parallel; default GOMAXPROCS.
	Workers int `flag:"workers"`
	// ChainGrace is how long an event whose chain predecessor has not
	// arrived waits before it is looked up in ClickHouse and, if missing,
	// recorded as a gap.
	ChainGrace time.Duration `flag:"chain-grace"`
	// DedupWindow is how many recent event ids are remembered to catch an
	// id reused with other content (such events go to the DLQ).
	DedupWindow int `flag:"dedup-window"`
	// RetryMin and RetryMax bound the back-off of every retried write.
	RetryMin time.Duration `flag:"retry-min"`
	RetryMax time.Duration `flag:"retry-max"`
	// ShutdownTimeout bounds the final flush and commit after a stop
	// signal; what is not written by then is redelivered on restart.
	ShutdownTimeout time.Duration `flag:"shutdown-timeout"`

	// MetricsAddr serves /metrics and /healthz; it must be a loopback
	// address. "off" disables the listener.
	MetricsAddr string `flag:"metrics-addr" env:"INGEST_METRICS_ADDR"`

	Logger *slog.Logger `flag:"-"`
}

// Defaults of Config.
const (
	DefaultGroup       = "agentaudit-ingest"
	DefaultDatabase    = "agentaudit"
	DefaultMetricsAddr = "127.0.0.1:9464"
	DefaultBatchRows   = 100_000
	// DefaultBatchBytes leaves DefaultBatchRows the usual cut: 100k rows
	// of typical events are about 80 MiB of records.
	DefaultBatchBytes = 192 << 20
	// DefaultBatchWait: a batch is a part on the server, and on 18.16 a
	// part of this wide table costs about 0.1 CPU-second to write and
	// merge; at 1s the server spent a third more CPU per event than at 3s,
	// and 30k-row inserts cost it 1.25x the CPU per event of 100k-row ones.
	DefaultBatchWait   = 2 * time.Second
	DefaultChainGrace  = 30 * time.Second
	DefaultDedupWindow = 1 << 19
)

func bad(field, flag, format string, args ...any) error {
	return fmt.Errorf("%w: %s (-%s): %s", ErrConfig, field, flag, fmt.Sprintf(format, args...))
}

// Validate fills defaults and reports the first bad field by name.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 || c.Brokers[0] == "" {
		return bad("Brokers", "brokers", "no Kafka broker given (set KAFKA_BROKERS)")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return bad("Brokers", "brokers", "%q is not host:port", b)
		}
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.InstanceID != "" && !eventlog.ValidName(c.InstanceID) {
		return bad("InstanceID", "instance-id", "%q: want 1-249 of [A-Za-z0-9._-]", c.InstanceID)
	}
	if c.Topics == (eventlog.Topics{}) {
		c.Topics = eventlog.DefaultTopics
	}
	switch {
	case c.Topics.Events == "":
		return bad("Topics.Events", "topic-events", "empty")
	case c.Topics.Approvals == "":
		return bad("Topics.Approvals", "topic-approvals", "empty")
	case c.Topics.DLQ == "":
		return bad("Topics.DLQ", "topic-dlq", "empty")
	case c.Topics.DLQ == c.Topics.Events || c.Topics.DLQ == c.Topics.Approvals:
		return bad("Topics.DLQ", "topic-dlq", "%q is also consumed; dead letters would loop", c.Topics.DLQ)
	}
	if c.ClickHouseAddr == "" {
		return bad("ClickHouseAddr", "clickhouse-addr", "empty (set CLICKHOUSE_ADDR)")
	}
	if _, _, err := net.SplitHostPort(c.ClickHouseAddr); err != nil {
		return bad("ClickHouseAddr", "clickhouse-addr", "%q is not host:port", c.ClickHouseAddr)
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.BatchRows == 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.BatchRows < 1 || c.BatchRows > 1_000_000 {
		return bad("BatchRows", "batch-rows", "must be in 1..1000000, got %d", c.BatchRows)
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.BatchBytes < 1<<10 || c.BatchBytes > 1<<30 {
		return bad("BatchBytes", "batch-bytes", "must be in 1KiB..1GiB, got %d", c.BatchBytes)
	}
	if c.BatchWait == 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.BatchWait < time.Millisecond {
		return bad("BatchWait", "batch-wait", "must be at least 1ms, got %s", c.BatchWait)
	}
	if c.Inserts == 0 {
		c.Inserts = 1
	}
	if c.Inserts < 1 || c.Inserts > 16 {
		return bad("Inserts", "inserts", "must be in 1..16, got %d", c.Inserts)
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Workers < 1 || c.Workers > 256 {
		return bad("Workers", "workers", "must be in 1..256, got %d", c.Workers)
	}
	if c.ChainGrace == 0 {
		c.ChainGrace = DefaultChainGrace
	}
	if c.ChainGrace < 0 {
		return bad("ChainGrace", "chain-grace", "must be positive, got %s", c.ChainGrace)
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupWindow < 1 {
		return bad("DedupWindow", "dedup-window", "must be positive, got %d", c.DedupWindow)
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.RetryMin < 0 || c.RetryMax < c.RetryMin {
		return bad("RetryMax", "retry-max", "must be ≥ RetryMin (%s), got %s", c.RetryMin, c.RetryMax)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.ShutdownTimeout < 0 {
		return bad("ShutdownTimeout", "shutdown-timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = DefaultMetricsAddr
	}
	if c.MetricsAddr != "off" {
		if err := loopback(c.MetricsAddr); err != nil {
			return bad("MetricsAddr", "metrics-addr", "%v", err)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// loopback accepts host:port only when host is a loopback IP or localhost:
// the metrics endpoint is for a local scraper or a sidecar, never the
// network.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}
