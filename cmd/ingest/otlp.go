package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/agentaudit/agentaudit/internal/otlp"
)

// otlpCmd runs the standalone OTLP/HTTP receiver: agents' own telemetry
// (Codex, Claude Code) in, agent.* events to Kafka.
func otlpCmd(ctx context.Context, args []string) error {
	var cfg otlp.Config
	fs := flag.NewFlagSet("ingest otlp", flag.ContinueOnError)
	logFlags(fs)
	fs.StringVar(&cfg.Listen, "listen", env("OTLP_LISTEN", "127.0.0.1:4318"), "loopback `host:port` to serve OTLP/HTTP on (env OTLP_LISTEN)")
	fs.StringVar(&cfg.TokenFile, "tokens", os.Getenv("OTLP_TOKENS"), "token file: tenants, their bearer tokens' sha256 and text settings (env OTLP_TOKENS; see internal/otlp.TokenFile)")
	fs.Func("brokers", "Kafka brokers, comma-separated (env KAFKA_BROKERS)", func(s string) error {
		cfg.Brokers = strings.Split(s, ",")
		return nil
	})
	if v := os.Getenv("KAFKA_BROKERS"); v != "" {
		cfg.Brokers = strings.Split(v, ",")
	}
	fs.StringVar(&cfg.Topics.Events, "topic-events", env("INGEST_TOPIC_EVENTS", "audit.events"), "events topic (env INGEST_TOPIC_EVENTS)")
	fs.StringVar(&cfg.Topics.Approvals, "topic-approvals", env("INGEST_TOPIC_APPROVALS", "audit.approvals"), "approvals topic (env INGEST_TOPIC_APPROVALS)")
	fs.StringVar(&cfg.Topics.DLQ, "topic-dlq", env("INGEST_TOPIC_DLQ", "audit.dlq"), "dead-letter topic (env INGEST_TOPIC_DLQ)")
	fs.Int64Var(&cfg.NodeID, "node-id", int64(envInt("OTLP_NODE_ID", 900)), "snowflake node id of this receiver, 0–1023, unique among emitters (env OTLP_NODE_ID)")
	fs.StringVar(&cfg.EmitterID, "emitter-id", env("OTLP_EMITTER_ID", "otlp"), "base of the runner_id on the events; a unique suffix is added per start (env OTLP_EMITTER_ID)")
	fs.StringVar(&cfg.SpoolDir, "spool", os.Getenv("OTLP_SPOOL"), "spool directory for events Kafka cannot take yet (env OTLP_SPOOL)")
	fs.StringVar(&cfg.PolicyFile, "policy", os.Getenv("OTLP_POLICY"), "tool-call policy that judges agents' own tool calls (default: the built-in policy; env OTLP_POLICY)")
	fs.Int64Var(&cfg.MaxBody, "max-body", 4<<20, "largest request body in bytes as sent (4× that once gunzipped)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Logger = logger()
	return otlp.Serve(ctx, cfg)
}

// otlpTokenCmd prints a new bearer token (first line, shown once) and the
// token_sha256 line for the token file (second).
func otlpTokenCmd(args []string) error {
	fs := flag.NewFlagSet("ingest otlp-token", flag.ContinueOnError)
	if err := parse(fs, args); err != nil {
		return err
	}
	token, sum, err := otlp.GenerateToken()
	if err != nil {
		return err
	}
	fmt.Println(token)
	fmt.Printf("token_sha256: %s\n", sum)
	return nil
}
