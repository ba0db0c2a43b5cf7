package main

import (
	"context"
	"flag"
	"os"

	"github.com/agentaudit/agentaudit/internal/detect"
	"github.com/agentaudit/agentaudit/internal/events"
)

// runCmd is `detect run`.
func runCmd(ctx context.Context, args []string) error {
	var c detect.Config
	fs := flag.NewFlagSet("detect run", flag.ContinueOnError)
	brokersFlag(fs, &c.Brokers)
	fs.StringVar(&c.Group, "group", env("DETECT_GROUP", "detect"), "consumer group shared by every instance (env DETECT_GROUP)")
	fs.StringVar(&c.RulesDir, "rules", env("DETECT_RULES", "rules"), "rule directory (env DETECT_RULES)")
	fs.StringVar(&c.Overrides, "overrides", os.Getenv("DETECT_OVERRIDES"), "override file that tunes rules without copying them (env DETECT_OVERRIDES)")
	fs.StringVar(&c.RunnerID, "id", os.Getenv("DETECT_ID"), "runner_id of the events it writes (default detect-<host>-<start time>) (env DETECT_ID)")
	node := int64(envInt("DETECT_NODE_ID", -1))
	fs.Int64Var(&c.NodeID, "node-id", node, "snowflake node id 0..1023, unique among emitters; -1 derives one from the id (env DETECT_NODE_ID)")
	c.Topics = events.DefaultTopics
	fs.StringVar(&c.Topics.Events, "events-topic", env("DETECT_EVENTS_TOPIC", c.Topics.Events), "events topic (env DETECT_EVENTS_TOPIC)")
	fs.StringVar(&c.Topics.Approvals, "approvals-topic", env("DETECT_APPROVALS_TOPIC", c.Topics.Approvals), "approvals topic (env DETECT_APPROVALS_TOPIC)")
	fs.StringVar(&c.StateTopic, "state-topic", env("DETECT_STATE_TOPIC", "audit.detect.state"), "compacted checkpoint topic (env DETECT_STATE_TOPIC)")
	fs.StringVar(&c.RepartitionTopic, "repartition-topic", env("DETECT_REPARTITION_TOPIC", "audit.detect.repartition"), "topic re-keying matches by group (env DETECT_REPARTITION_TOPIC)")
	fs.BoolVar(&c.CreateTopics, "create-topics", env("DETECT_CREATE_TOPICS", "true") == "true", "create missing topics (env DETECT_CREATE_TOPICS)")
	fs.StringVar(&c.StartAt, "start-at", env("DETECT_START_AT", "earliest"), "where a partition without a checkpoint starts: earliest or latest (env DETECT_START_AT)")
	fs.StringVar(&c.MetricsAddr, "metrics", env("DETECT_METRICS_ADDR", "127.0.0.1:9466"), "loopback address for /metrics and /healthz; empty disables (env DETECT_METRICS_ADDR)")
	fs.DurationVar(&c.CheckpointEvery, "checkpoint-every", envDur("DETECT_CHECKPOINT_EVERY", 0), "checkpoint interval (default 5s) (env DETECT_CHECKPOINT_EVERY)")
	fs.DurationVar(&c.SQLEvery, "sql-every", envDur("DETECT_SQL_EVERY", 0), "how often due SQL rules are looked for (default 10s) (env DETECT_SQL_EVERY)")
	fs.DurationVar(&c.SQLDelay, "sql-delay", envDur("DETECT_SQL_DELAY", 0), "how far behind now SQL rule ranges end (env DETECT_SQL_DELAY)")
	clickHouseFlags(fs, &c.ClickHouse)
	trust := fs.String("trust", os.Getenv("DETECT_TRUST"), "the approvals service's public keys (keys.json): honour the rule suppressions it signs (env DETECT_TRUST)")
	logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needBrokers(c.Brokers); err != nil {
		return err
	}
	c.Logger = logger()
	opts, err := suppressions(ctx, *trust, c, c.Logger)
	if err != nil {
		return err
	}
	return detect.Run(ctx, c, opts...)
}
