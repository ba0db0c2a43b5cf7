package main

import (
	"errors"
	"log/slog"
	"os"

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
