package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/agentaudit/agentaudit/internal/detect"
	"github.com/agentaudit/agentaudit/internal/envflag"
)

// brokersFlag binds --brokers. Like every other binary, detect has no
// default: a missing KAFKA_BROKERS is an error (needBrokers), never a
// silent 127.0.0.1:9092.
func brokersFlag(fs *envflag.FlagSet, dst *[]string) {
	fs.ListEnv(dst, "brokers", "KAFKA_BROKERS", nil, "Kafka brokers, comma-separated (required)")
}

// needBrokers names the missing setting.
func needBrokers(b []string) error {
	if len(b) == 0 || len(b) == 1 && b[0] == "" {
		return errors.New("no Kafka brokers: set KAFKA_BROKERS or --brokers")
	}
	return nil
}

// clickHouseFlags binds the read-only ClickHouse connection.
func clickHouseFlags(fs *envflag.FlagSet, c *detect.ClickHouseConfig) {
	fs.StringEnv(&c.Addr, "clickhouse-addr", "CLICKHOUSE_ADDR", "127.0.0.1:9000", "ClickHouse native address; empty disables SQL rules")
	fs.StringEnv(&c.User, "clickhouse-user", "CLICKHOUSE_READONLY_USER", "default", "read-only ClickHouse user")
	fs.FromEnv(&c.Password, "CLICKHOUSE_READONLY_PASSWORD", "password of the read-only ClickHouse user")
	fs.StringEnv(&c.Database, "database", "CLICKHOUSE_DATABASE", "agentaudit", "ClickHouse database")
}

var logLevel = new(slog.LevelVar)

func logFlags(fs *envflag.FlagSet) {
	fs.TextEnv(logLevel, "log-level", "DETECT_LOG_LEVEL", slog.LevelInfo, "debug, info, warn or error")
}

func logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
}

// overridesFlag binds --overrides, the rule override file.
func overridesFlag(fs *envflag.FlagSet, p *string) {
	fs.StringEnv(p, "overrides", "DETECT_OVERRIDES", "", "override file that tunes rules without copying them")
}

// rulesFlag binds --rules, the rule directory.
func rulesFlag(fs *envflag.FlagSet, p *string) {
	fs.StringEnv(p, "rules", "DETECT_RULES", "rules", "rule directory")
}

// topicFlags binds how `detect run --create-topics` creates the topics it
// finds missing. Replication defaults to -1, the brokers'
// default.replication.factor: 3 on a cluster set up for it, 1 on one
// development broker.
func topicFlags(fs *envflag.FlagSet, c *detect.Config) {
	c.Partitions, c.RepartitionPartitions, c.Replication = 6, 6, -1
	fs.VarEnv(intFlag[int32]{&c.Partitions}, "topic-partitions", "DETECT_TOPIC_PARTITIONS", "`n` partitions for the events, approvals and DLQ topics it creates")
	fs.VarEnv(intFlag[int32]{&c.RepartitionPartitions}, "repartition-partitions", "DETECT_REPARTITION_PARTITIONS", "`n` partitions for the repartition topic it creates")
	fs.VarEnv(intFlag[int16]{&c.Replication}, "topic-replication", "DETECT_TOPIC_REPLICATION", "replication `factor` of the topics it creates; -1 is the brokers' default.replication.factor")
}

// intFlag is a flag of a sized integer (the Kafka protocol's int16 and
// int32), refusing a value that does not fit.
type intFlag[T int16 | int32] struct{ p *T }

func (f intFlag[T]) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return err
	}
	if int64(T(n)) != n {
		return fmt.Errorf("%s is out of range", s)
	}
	*f.p = T(n)
	return nil
}

func (f intFlag[T]) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*f.p), 10)
}
