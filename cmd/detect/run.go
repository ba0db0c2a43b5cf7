package main

import (
	"context"
	"flag"

	"github.com/agentaudit/agentaudit/internal/detect"
	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/eventlog"
)

// runCmd is `detect run`.
func runCmd(ctx context.Context, args []string) error {
	var c detect.Config
	fs := envflag.New("detect run", flag.ContinueOnError)
	brokersFlag(fs, &c.Brokers)
	fs.StringEnv(&c.Group, "group", "DETECT_GROUP", "detect", "consumer group shared by every instance")
	fs.StringEnv(&c.InstanceID, "instance-id", "DETECT_INSTANCE_ID", "", "static group member id, unique per running detector: a restart with it resumes at once instead of after the session timeout")
	fs.DurationEnv(&c.SessionTimeout, "session-timeout", "DETECT_SESSION_TIMEOUT", 0, "how long the group waits for a silent instance before others take its partitions (default 45s, at least the brokers' 6s)")
	rulesFlag(fs, &c.RulesDir)
	overridesFlag(fs, &c.Overrides)
	fs.StringEnv(&c.RunnerID, "id", "DETECT_ID", "", "runner_id of the events it writes (default detect-<host>-<start time>)")
	fs.Int64Env(&c.NodeID, "node-id", "DETECT_NODE_ID", -1, "snowflake node id 0..1023, unique among emitters (set one per instance of a group); -1 derives one from the id")
	c.Topics = eventlog.DefaultTopics
	fs.StringEnv(&c.Topics.Events, "events-topic", "DETECT_EVENTS_TOPIC", c.Topics.Events, "events topic")
	fs.StringEnv(&c.Topics.Approvals, "approvals-topic", "DETECT_APPROVALS_TOPIC", c.Topics.Approvals, "approvals topic")
	fs.StringEnv(&c.StateTopic, "state-topic", "DETECT_STATE_TOPIC", "audit.detect.state", "compacted checkpoint topic")
	fs.StringEnv(&c.RepartitionTopic, "repartition-topic", "DETECT_REPARTITION_TOPIC", "audit.detect.repartition", "topic re-keying matches by group")
	fs.BoolEnv(&c.CreateTopics, "create-topics", "DETECT_CREATE_TOPICS", true, "create missing topics")
	topicFlags(fs, &c)
	fs.StringEnv(&c.StartAt, "start-at", "DETECT_START_AT", "earliest", "where a partition without a checkpoint starts: earliest or latest")
	fs.StringEnv(&c.MetricsAddr, "metrics", "DETECT_METRICS_ADDR", "127.0.0.1:9466", "loopback address for /metrics and /healthz; empty disables")
	fs.DurationEnv(&c.CheckpointEvery, "checkpoint-every", "DETECT_CHECKPOINT_EVERY", 0, "checkpoint interval (default 5s)")
	fs.DurationEnv(&c.SQLEvery, "sql-every", "DETECT_SQL_EVERY", 0, "how often due SQL rules are looked for (default 10s)")
	fs.DurationEnv(&c.SQLDelay, "sql-delay", "DETECT_SQL_DELAY", 0, "how far behind now SQL rule ranges end")
	clickHouseFlags(fs, &c.ClickHouse)
	var trust string
	fs.StringEnv(&trust, "trust", "DETECT_TRUST", "", "the approvals service's public keys (keys.json): honour the rule suppressions it signs")
	logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needBrokers(c.Brokers); err != nil {
		return err
	}
	c.Logger = logger()
	opts, err := suppressions(ctx, trust, c, c.Logger)
	if err != nil {
		return err
	}
	return detect.Run(ctx, c, opts...)
}
