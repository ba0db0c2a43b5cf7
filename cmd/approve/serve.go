package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/eventlog"
)

// serveConfig is `approve serve`'s configuration: flags, with defaults
// from the environment named in each tag.
type serveConfig struct {
	Listen         string        `env:"APPROVE_LISTEN"`
	Keys           string        `env:"APPROVE_KEYS"`
	Trust          string        `env:"APPROVE_TRUST"`
	Approvers      string        `env:"APPROVE_APPROVERS"`
	Brokers        string        `env:"KAFKA_BROKERS"`
	ApprovalsTopic string        `env:"APPROVE_APPROVALS_TOPIC"`
	EventsTopic    string        `env:"APPROVE_EVENTS_TOPIC"`
	NodeID         int64         `env:"APPROVE_NODE_ID"`
	ID             string        `env:"APPROVE_ID"`
	Expire         bool          `env:"APPROVE_EXPIRE"`
	ExpiryEvery    time.Duration `env:"APPROVE_EXPIRY_EVERY"`
	AlertWindow    time.Duration `env:"APPROVE_ALERT_WINDOW"`
	CreateTopics   bool          `env:"APPROVE_CREATE_TOPICS"`
	Spool          string        `env:"APPROVE_SPOOL"`
	Origins        string        `env:"APPROVE_ORIGINS"`
	LogLevel       string        `env:"APPROVE_LOG_LEVEL"`
}

func (c *serveConfig) flags(fs *envflag.FlagSet) {
	fs.StringEnv(&c.Listen, "listen", "APPROVE_LISTEN", "127.0.0.1:8480", "address to listen on")
	fs.StringEnv(&c.Keys, "keys", "APPROVE_KEYS", "", "the signing key, signer.pem from approve keygen")
	fs.StringEnv(&c.Trust, "trust", "APPROVE_TRUST", "", "optional public key set (keys.json) to verify decisions with after a key rotation")
	fs.StringEnv(&c.Approvers, "approvers", "APPROVE_APPROVERS", "", "approvers.yaml: approvers, token hashes, groups")
	fs.StringEnv(&c.Brokers, "brokers", "KAFKA_BROKERS", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	fs.StringEnv(&c.ApprovalsTopic, "approvals-topic", "APPROVE_APPROVALS_TOPIC", eventlog.DefaultTopics.Approvals, "approvals topic")
	fs.StringEnv(&c.EventsTopic, "events-topic", "APPROVE_EVENTS_TOPIC", eventlog.DefaultTopics.Events, "events topic (alerts)")
	fs.Int64Env(&c.NodeID, "node-id", "APPROVE_NODE_ID", 1001, "snowflake node id (0..1023), unique among all emitters")
	fs.StringEnv(&c.ID, "id", "APPROVE_ID", "approvals", "service name; the runner_id of its events is NAME-<start id>")
	fs.BoolEnv(&c.Expire, "expire", "APPROVE_EXPIRE", true, "expire overdue requests (safe on every instance: the first expiry in the log counts)")
	fs.DurationEnv(&c.ExpiryEvery, "expiry-every", "APPROVE_EXPIRY_EVERY", time.Second, "how often to look for overdue requests")
	fs.DurationEnv(&c.AlertWindow, "alert-window", "APPROVE_ALERT_WINDOW", time.Hour, "how far back to read alerts at start")
	fs.BoolEnv(&c.CreateTopics, "create-topics", "APPROVE_CREATE_TOPICS", false, "create missing topics")
	fs.StringEnv(&c.Spool, "spool", "APPROVE_SPOOL", "", "spool directory for events Kafka cannot take yet (always on; default <user cache dir>/agentaudit/spool/<id>)")
	fs.StringEnv(&c.Origins, "origins", "APPROVE_ORIGINS", "", "extra origins allowed to POST (comma-separated scheme://host:port)")
	fs.StringEnv(&c.LogLevel, "log-level", "APPROVE_LOG_LEVEL", "info", "debug, info, warn or error")
}

// validate fills defaults and names the bad field.
func (c *serveConfig) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: %v", c.Listen, err)
	}
	if c.Keys == "" {
		return errors.New("--keys: the signing key is required (approve keygen writes one)")
	}
	if c.Approvers == "" {
		return errors.New("--approvers: the approvers file is required")
	}
	if strings.Trim(c.Brokers, ", ") == "" {
		return errors.New("--brokers: at least one broker")
	}
	if c.NodeID < 0 || c.NodeID > 1023 {
		return fmt.Errorf("--node-id %d: must be 0..1023", c.NodeID)
	}
	if c.ID == "" {
		return errors.New("--id: empty")
	}
	if c.Spool == "" {
		// Spooling is not optional: an event the service stamped on its
		// chain and Kafka refused would otherwise leave a gap.
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		c.Spool = filepath.Join(base, "agentaudit", "spool", strings.ReplaceAll(c.ID, "/", "_"))
	}
	if c.ExpiryEvery <= 0 {
		return fmt.Errorf("--expiry-every %s: must be positive", c.ExpiryEvery)
	}
	if c.AlertWindow <= 0 {
		return fmt.Errorf("--alert-window %s: must be positive", c.AlertWindow)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %v", c.LogLevel, err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	var c serveConfig
	c.flags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: approve serve --keys signer.pem --approvers approvers.yaml [flags]")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+approversFormat)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "approve serve: takes no arguments")
		return 2
	}
	if err := c.validate(); err != nil {
		fmt.Fprintf(stderr, "approve serve: %v\n", err)
		return 2
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	err = approvals.Serve(ctx, approvals.ServeConfig{
		Listen: c.Listen, KeyFile: c.Keys, TrustFile: c.Trust, ApproversFile: c.Approvers,
		Brokers: splitList(c.Brokers),
		Topics:  eventlog.Topics{Events: c.EventsTopic, Approvals: c.ApprovalsTopic, DLQ: eventlog.DefaultTopics.DLQ},
		NodeID:  c.NodeID, ServiceID: c.ID, Expire: c.Expire, ExpiryEvery: c.ExpiryEvery,
		AlertWindow: c.AlertWindow, CreateTopics: c.CreateTopics, SpoolDir: c.Spool,
		Origins: splitList(c.Origins), Logger: log,
	})
	if err != nil {
		log.Error("approve serve stopped", "err", err)
		return 1
	}
	return 0
}
