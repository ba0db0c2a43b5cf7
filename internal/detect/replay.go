package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// ReplayConfig is `detect replay`: run the rules over the events stored in
// ClickHouse between From and To and report what would have fired.
type ReplayConfig struct {
	RulesDir string
	// Overrides is an override file tuning the rules (WithOverrides).
	Overrides  string
	ClickHouse ClickHouseConfig
	From, To   time.Time
	// Rules restricts the replay to these rule ids (stream or SQL).
	Rules []string
	JSON  bool
	// Emit writes the alerts (alert.raised and what their actions ask
	// for) through Emitter; without it nothing is written anywhere.
	Emit    bool
	Emitter Emitter
	// NodeID issues the ids of emitted events.
	NodeID int64
	Out    io.Writer
	Logger *slog.Logger
}

// ReplayResult is what a replay found.
type ReplayResult struct {
	Events  int     // events read
	Invalid int     // stored events that no longer decode (counted, skipped)
	Alerts  []Alert // in the order they fired
	Emitted int
}

func (c *ReplayConfig) validate() error {
	switch {
	case c.RulesDir == "":
		return fmt.Errorf("%w: RulesDir is empty", ErrConfig)
	case c.From.IsZero() || c.To.IsZero():
		return fmt.Errorf("%w: --from and --to are required", ErrConfig)
	case !c.From.Before(c.To):
		return fmt.Errorf("%w: --from %s is not before --to %s", ErrConfig, c.From.Format(time.RFC3339), c.To.Format(time.RFC3339))
	case c.Emit && c.Emitter == nil:
		return fmt.Errorf("%w: --emit needs an emitter (Kafka brokers)", ErrConfig)
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// replaySource is what replay reads stored events through.
type replaySource interface {
	Querier
	Raw(ctx context.Context, sql string, f func([]byte) error, args ...any) error
}

// Replay runs the replay and prints its report to cfg.Out.
func Replay(ctx context.Context, cfg ReplayConfig) (*ReplayResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rs, err := Load(cfg.RulesDir, WithOverrides(cfg.Overrides))
	if err != nil {
		return nil, fmt.Errorf("detect: rules in %s: %w", cfg.RulesDir, err)
	}
	for _, id := range cfg.Rules {
		if rs.Rule(id) == nil && !slices.ContainsFunc(rs.SQLRules, func(r *SQLRule) bool { return r.ID == id }) {
			return nil, fmt.Errorf("%w: no rule %q in %s", ErrConfig, id, cfg.RulesDir)
		}
	}
	q, err := NewClickHouseQuerier(ctx, cfg.ClickHouse)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res, err := replay(ctx, rs, q, cfg)
	if err != nil {
		return res, err
	}
	return res, report(cfg, res)
}

func replay(ctx context.Context, rs *RuleSet, src replaySource, cfg ReplayConfig) (*ReplayResult, error) {
	var opts []EngineOption
	var sqlRules []*SQLRule
	if len(cfg.Rules) > 0 {
		opts = append(opts, WithRules(cfg.Rules...))
	}
	for _, r := range rs.SQLRules {
		if r.Enabled && (len(cfg.Rules) == 0 || slices.Contains(cfg.Rules, r.ID)) {
			sqlRules = append(sqlRules, r)
		}
	}
	// One engine over every event in time order is the reference the
	// partitioned service must agree with.
	e := NewEngine(rs, opts...)
	res := &ReplayResult{}
	from, to := cfg.From.UTC(), cfg.To.UTC()
	// event_time is stored to the second; event_time_us has the rest.
	const query = `SELECT raw FROM events FINAL
WHERE event_time >= toDateTime(?, 'UTC') AND event_time <= toDateTime(?, 'UTC')
ORDER BY event_time, event_time_us, event_id`
	err := src.Raw(ctx, query, func(raw []byte) error {
		env, err := events.Decode(raw)
		if err != nil {
			res.Invalid++
			return nil
		}
		if env.EventTime.Before(from) || env.EventTime.After(to) {
			return nil
		}
		res.Events++
		alerts, err := e.Eval(env)
		if err != nil {
			res.Invalid++
			return nil
		}
		res.Alerts = append(res.Alerts, alerts...)
		return nil
	}, from.Truncate(time.Second).Format(time.DateTime), to.Format(time.DateTime))
	if err != nil {
		return res, fmt.Errorf("%w: read events: %w", ErrQuery, err)
	}
	res.Alerts = append(res.Alerts, e.Flush()...)
	if len(sqlRules) > 0 {
		sr := NewSQLRunner(&RuleSet{SQLRules: sqlRules}, src, nil)
		for _, r := range sr.Rules() {
			// Run as the schedule would have: consecutive ranges.
			for t := from; t.Before(to); t = t.Add(r.Schedule) {
				end := t.Add(r.Schedule)
				if end.After(to) {
					end = to
				}
				start := end.Add(-r.Lookback)
				if start.Before(from) {
					start = from
				}
				alerts, err := sr.RunRule(ctx, r, start, end)
				if err != nil {
					return res, err
				}
				res.Alerts = append(res.Alerts, alerts...)
			}
		}
		res.Alerts = append(res.Alerts, sr.Flush()...)
	}
	if cfg.Emit {
		ids, err := events.NewIDGen(cfg.NodeID)
		if err != nil {
			return res, fmt.Errorf("%w: NodeID: %w", ErrConfig, err)
		}
		b := &alertBuilder{ids: ids, approvalTTL: 15 * time.Minute, systemTenant: "system", now: time.Now}
		for _, a := range res.Alerts {
			ps, err := b.build(a)
			if err != nil {
				return res, err
			}
			for _, p := range ps {
				if err := cfg.Emitter.Emit(ctx, p.envelope("")); err != nil {
					return res, fmt.Errorf("detect: emit %s: %w", p.EventType, err)
				}
				res.Emitted++
			}
		}
	}
	return res, nil
}

// replayLine is one alert of `detect replay --json`.
type replayLine struct {
	Tenant    string `json:"tenant"`
	SessionID string `json:"session_id,omitempty"`
	Summary   bool   `json:"summary,omitempty"`
	events.AlertRaised
}

func report(cfg ReplayConfig, res *ReplayResult) error {
	if cfg.JSON {
		enc := json.NewEncoder(cfg.Out)
		for _, a := range res.Alerts {
			if err := enc.Encode(replayLine{Tenant: a.Tenant, SessionID: a.SessionID, Summary: a.Summary, AlertRaised: a.Raised()}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(cfg.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LAST SEEN\tRULE\tSEVERITY\tACTION\tGROUP\tCOUNT\tSUPPRESSED\tMESSAGE")
	for _, a := range res.Alerts {
		msg := a.Message
		if len(msg) > 100 {
			msg = truncate(msg, 97) + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", a.LastSeen.UTC().Format(time.RFC3339), a.RuleID, a.Severity, a.Action, a.GroupKey, a.Count, a.Suppressed, msg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "would have raised"
	if cfg.Emit {
		verb = fmt.Sprintf("raised (%d events written)", res.Emitted)
	}
	_, err := fmt.Fprintf(cfg.Out, "%d events (%d invalid skipped) from %s to %s: %s %d alerts\n",
		res.Events, res.Invalid, cfg.From.UTC().Format(time.RFC3339), cfg.To.UTC().Format(time.RFC3339), verb, len(res.Alerts))
	return err
}
