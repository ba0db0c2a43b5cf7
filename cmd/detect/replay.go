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
	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/query"
)

// replayRange reads --from and --to as query reads its times, so that a
// range written for one works for the other.
func replayRange(from, to string, now time.Time) (time.Time, time.Time, error) {
	if from == "" {
		return time.Time{}, time.Time{}, errors.New("--from is required (RFC 3339, a date, or relative like -24h)")
	}
	f, err := query.ParseTime(from, now)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--from: %w", err)
	}
	t, err := query.ParseTime(to, now)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--to: %w", err)
	}
	if !t.After(f) {
		return time.Time{}, time.Time{}, fmt.Errorf("--to %s is not after --from %s", t.Format(time.RFC3339), f.Format(time.RFC3339))
	}
	return f, t, nil
}

// replayCmd is `detect replay --from T --to T [--rule ID] [--json] [--emit]`.
func replayCmd(ctx context.Context, args []string) (int, error) {
	c := detect.ReplayConfig{Out: os.Stdout}
	var brokers []string
	var from, to, rules string
	fs := envflag.New("detect replay", flag.ContinueOnError)
	rulesFlag(fs, &c.RulesDir)
	overridesFlag(fs, &c.Overrides)
	fs.StringVar(&from, "from", "", "start of the range: RFC 3339, a date, or relative to now like -24h or 7d (required)")
	fs.StringVar(&to, "to", "now", "end of the range, in the same forms as --from")
	fs.StringVar(&rules, "rule", "", "only these rules (comma-separated ids)")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object per alert instead of a table")
	fs.BoolVar(&c.Emit, "emit", false, "write the alerts to Kafka (default: only report them)")
	brokersFlag(fs, &brokers)
	fs.Int64Env(&c.NodeID, "node-id", "DETECT_NODE_ID", 1020, "snowflake node id for emitted events")
	clickHouseFlags(fs, &c.ClickHouse)
	logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	var err error
	if c.From, c.To, err = replayRange(from, to, time.Now()); err != nil {
		return 0, err
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
		p, err := eventlog.NewProducer(ctx, brokers, id, eventlog.WithProducerLogger(c.Logger))
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
