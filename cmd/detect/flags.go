package main

import (
	"errors"
	"flag"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/detect"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
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

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// brokersFlag binds --brokers. Like every other binary, detect has no
// default: a missing KAFKA_BROKERS is an error (needBrokers), never a
// silent 127.0.0.1:9092.
func brokersFlag(fs *flag.FlagSet, dst *[]string) {
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		*dst = strings.Split(v, ",")
	}
	fs.Func("brokers", "Kafka brokers, comma-separated (env KAFKA_BROKERS; required)", func(s string) error {
		*dst = strings.Split(s, ",")
		return nil
	})
}

// needBrokers names the missing setting.
func needBrokers(b []string) error {
	if len(b) == 0 || len(b) == 1 && b[0] == "" {
		return errors.New("no Kafka brokers: set KAFKA_BROKERS or --brokers")
	}
	return nil
}

// clickHouseFlags binds the read-only ClickHouse connection.
func clickHouseFlags(fs *flag.FlagSet, c *detect.ClickHouseConfig) {
	fs.StringVar(&c.Addr, "clickhouse-addr", env("CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native address (env CLICKHOUSE_ADDR); empty disables SQL rules")
	fs.StringVar(&c.User, "clickhouse-user", env("CLICKHOUSE_READONLY_USER", "default"), "read-only ClickHouse user (env CLICKHOUSE_READONLY_USER)")
	c.Password = os.Getenv("CLICKHOUSE_READONLY_PASSWORD") // not a flag: it would show in ps
	fs.StringVar(&c.Database, "database", env("CLICKHOUSE_DATABASE", "agentaudit"), "ClickHouse database (env CLICKHOUSE_DATABASE)")
}

var logLevel = new(slog.LevelVar)

func logFlags(fs *flag.FlagSet) {
	if v := os.Getenv("DETECT_LOG_LEVEL"); v != "" {
		logLevel.UnmarshalText([]byte(v))
	}
	fs.Func("log-level", "debug, info, warn or error (env DETECT_LOG_LEVEL)", func(s string) error {
		return logLevel.UnmarshalText([]byte(s))
	})
}

func logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
}

// overridesFlag binds --overrides, the rule override file.
func overridesFlag(fs *flag.FlagSet) *string {
	return fs.String("overrides", os.Getenv("DETECT_OVERRIDES"), "override file that tunes rules without copying them (env DETECT_OVERRIDES)")
}
