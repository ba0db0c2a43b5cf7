package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/otlp"
)

// otlpCmd runs the standalone OTLP/HTTP receiver: agents' own telemetry
// (Codex, Claude Code) in, agent.* events to Kafka.
func otlpCmd(ctx context.Context, args []string) error {
	var cfg otlp.Config
	fs := envflag.New("ingest otlp", flag.ContinueOnError)
	logFlags(fs)
	fs.StringEnv(&cfg.Listen, "listen", "OTLP_LISTEN", "127.0.0.1:4318", "loopback `host:port` to serve OTLP/HTTP on")
	fs.StringEnv(&cfg.TokenFile, "tokens", "OTLP_TOKENS", "", "token file: tenants, their bearer tokens' sha256 and text settings (see internal/otlp.TokenFile)")
	brokersFlag(fs, &cfg.Brokers)
	topicFlags(fs, &cfg.Topics)
	fs.Int64Env(&cfg.NodeID, "node-id", "OTLP_NODE_ID", 900, "snowflake node id of this receiver, 0–1023, unique among emitters")
	fs.StringEnv(&cfg.EmitterID, "emitter-id", "OTLP_EMITTER_ID", "otlp", "base of the runner_id on the events; a unique suffix is added per start")
	fs.StringEnv(&cfg.SpoolDir, "spool", "OTLP_SPOOL", "", "spool directory for events Kafka cannot take yet")
	fs.StringEnv(&cfg.PolicyFile, "policy", "OTLP_POLICY", "", "tool-call policy that judges agents' own tool calls (default: the built-in policy)")
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
	fs := envflag.New("ingest otlp-token", flag.ContinueOnError)
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
