package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/detect"
	"github.com/agentaudit/agentaudit/internal/events"
)

// replayCmd is `detect replay --from T --to T [--rule ID] [--json] [--emit]`.
func replayCmd(ctx context.Context, args []string) (int, error) {
	c := detect.ReplayConfig{Out: os.Stdout}
	var brokers []string
	var from, to, rules string
	fs := flag.NewFlagSet("detect replay", flag.ContinueOnError)
	fs.StringVar(&c.RulesDir, "rules", env("DETECT_RULES", "rules"), "rule directory (env DETECT_RULES)")
	fs.StringVar(&c.Overrides, "overrides", os.Getenv("DETECT_OVERRIDES"), "override file that tunes rules without copying them (env DETECT_OVERRIDES)")
	fs.StringVar(&from, "from", "", "start of the range, RFC 3339 (required)")
	fs.StringVar(&to, "to", "", "end of the range, RFC 3339 (required)")
	fs.StringVar(&rules, "rule", "", "only these rules (comma-separated ids)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object per alert instead of a table")
	fs.BoolVar(&c.Emit, "emit", false, "write the alerts to Kafka (default: only report them)")
	brokersFlag(fs, &brokers)
	node := int64(envInt("DETECT_NODE_ID", 1020))
	fs.Int64Var(&c.NodeID, "node-id", node, "snowflake node id for emitted events (env DETECT_NODE_ID)")
	clickHouseFlags(fs, &c.ClickHouse)
	logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	var err error
	if c.From, err = time.Parse(time.RFC3339Nano, from); err != nil {
		return 0, fmt.Errorf("--from %q: %w", from, err)
	}
	if c.To, err = time.Parse(time.RFC3339Nano, to); err != nil {
		return 0, fmt.Errorf("--to %q: %w", to, err)
	}
	if rules != "" {
		c.Rules = strings.Split(rules, ",")
	}
	c.Logger = logger()
	if c.Emit {
		if err := needBrokers(brokers); err != nil {
			return 0, fmt.Errorf("--emit: %w", err)
		}
		id := "detect-replay-" + time.Now().UTC().Format("20060102T150405")
		p, err := events.NewProducer(ctx, brokers, id, events.WithProducerLogger(c.Logger))
		if err != nil {
			return 0, err
		}
		defer p.Close(context.WithoutCancel(ctx))
		c.Emitter = p
	}
	if _, err := detect.Replay(ctx, c); err != nil {
		if errors.Is(err, detect.ErrConfig) {
			fmt.Fprintln(os.Stderr, "detect replay:", err)
			return detect.ExitUsage, nil
		}
		return 0, err
	}
	return detect.ExitOK, nil
}
