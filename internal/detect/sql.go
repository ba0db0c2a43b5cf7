package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/chsql"
	"github.com/agentaudit/agentaudit/internal/events"
)

// SQLRule is a ClickHouse query run on a schedule as the read-only user.
// Each row it returns is an alert for its group_key. The query must be a
// single SELECT; it reads the time range [{from}, {to}) through those two
// placeholders, which the runner binds as parameters, and returns the
// columns group_key, count, message and event_ids, optionally first_seen
// and last_seen.
type SQLRule struct {
	ID          string
	Version     string
	Title       string
	Description string
	Severity    events.Severity
	Tags        []string
	Enabled     bool
	Action      Action
	// Schedule is how often the query runs; Lookback how far back each
	// run reads (default Schedule, so runs tile time).
	Schedule time.Duration
	Lookback time.Duration
	Query    string
	// MinCount drops rows whose count is below it (default 1).
	MinCount uint64
	Dedup    *Dedup
	Tests    []Test
	File     string
	Line     int

	bound  string   // Query with ? placeholders
	params []string // "from" or "to", in placeholder order
}

type sqlRuleDoc struct {
	ID          string    `yaml:"id"`
	Version     string    `yaml:"version"`
	Title       string    `yaml:"title"`
	Description string    `yaml:"description"`
	Severity    string    `yaml:"severity"`
	Tags        []string  `yaml:"tags"`
	Enabled     *bool     `yaml:"enabled"`
	Action      string    `yaml:"action"`
	Schedule    duration  `yaml:"schedule"`
	Lookback    duration  `yaml:"lookback"`
	Query       *srcExpr  `yaml:"query"`
	MinCount    uint64    `yaml:"min_count"`
	Dedup       *dedupDoc `yaml:"dedup"`
	Tests       []testDoc `yaml:"tests"`
}

// Querier runs a read-only query and returns its rows by column name.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) ([]map[string]any, error)
}

// Keywords of write statements a detection query must never contain
// outside literals, comments and quoted identifiers. The read-only
// connection refuses the writes too; this catches them at load.
var sqlForbidden = []string{"INSERT", "ALTER", "DROP", "CREATE", "TRUNCATE", "RENAME", "OPTIMIZE", "ATTACH", "DETACH", "KILL", "SYSTEM", "GRANT", "REVOKE", "SET", "DELETE", "UPDATE", "OUTFILE", "EXCHANGE", "USE", "INFILE"}

var sqlRequiredColumns = []string{"group_key", "count", "message", "event_ids"}

func compileSQLRule(file string, line int, d *sqlRuleDoc) (*SQLRule, []*LoadError) {
	var errs []*LoadError
	fail := func(l int, format string, args ...any) {
		errs = append(errs, &LoadError{File: file, Line: l, Reason: fmt.Sprintf(format, args...)})
	}
	r := &SQLRule{
		ID: d.ID, Version: d.Version, Title: d.Title, Description: d.Description,
		Severity: events.Severity(d.Severity), Tags: d.Tags, Enabled: d.Enabled == nil || *d.Enabled,
		Action: Action(d.Action), Schedule: time.Duration(d.Schedule), Lookback: time.Duration(d.Lookback),
		MinCount: d.MinCount, File: file, Line: line,
	}
	r.Action = checkHeader(fail, line, d.ID, d.Version, d.Title, r.Severity, r.Action, "")
	if r.Schedule < time.Second {
		fail(line, "rule %s: schedule must be at least 1s", d.ID)
	}
	if r.Lookback == 0 {
		r.Lookback = r.Schedule
	}
	if r.MinCount == 0 {
		r.MinCount = 1
	}
	if d.Dedup != nil {
		if len(d.Dedup.Key) > 0 {
			fail(line, "rule %s: a SQL rule's dedup key is its group_key column; drop dedup.key", d.ID)
		}
		if d.Dedup.Suppress <= 0 {
			fail(line, "rule %s: dedup.suppress must be a positive duration", d.ID)
		}
		r.Dedup = &Dedup{Suppress: time.Duration(d.Dedup.Suppress)}
	}
	if d.Query == nil {
		fail(line, "rule %s: query is required", d.ID)
		return r, errs
	}
	r.Query = d.Query.Src
	bound, params, err := checkSQL(d.Query.Src)
	if err != nil {
		fail(d.Query.Line, "rule %s: %v", d.ID, err)
	}
	r.bound, r.params = bound, params
	return r, errs
}

// checkSQL accepts one SELECT (or WITH … SELECT) statement by the one
// guard in chsql, with no write statement's keyword anywhere; replaces the
// {from} and {to} placeholders by positional parameters and comments by a
// space (so the server reads the statement as the guard did); and checks
// that the required columns are named.
func checkSQL(q string) (bound string, params []string, err error) {
	toks, err := chsql.Check(q, chsql.Kinds("SELECT", "WITH"), chsql.Forbid(sqlForbidden...))
	if err != nil {
		return "", nil, err
	}
	// Drop leading and trailing space, comments and semicolons.
	blank := func(t chsql.Token) bool {
		return t.Kind == chsql.Space || t.Kind == chsql.Comment || t.Kind == chsql.Punct && t.Text == ";"
	}
	for len(toks) > 0 && blank(toks[0]) {
		toks = toks[1:]
	}
	for len(toks) > 0 && blank(toks[len(toks)-1]) {
		toks = toks[:len(toks)-1]
	}
	words := map[string]bool{}
	var b strings.Builder
	for _, t := range toks {
		switch t.Kind {
		case chsql.Word, chsql.Ident:
			words[strings.ToLower(t.Name())] = true
		case chsql.Space, chsql.Comment:
			b.WriteString(" ")
			continue
		case chsql.Param:
			if t.Name() != "from" && t.Name() != "to" {
				return "", nil, fmt.Errorf("unknown placeholder {%s} (only {from} and {to})", t.Name())
			}
			params = append(params, t.Name())
			b.WriteString("?")
			continue
		case chsql.Punct:
			if t.Text == "{" || t.Text == "}" {
				return "", nil, fmt.Errorf("malformed placeholder at %q (only {from} and {to})", t.Text)
			}
		}
		b.WriteString(t.Text)
	}
	if !slices.Contains(params, "from") || !slices.Contains(params, "to") {
		return "", nil, fmt.Errorf("query must read its time range through {from} and {to}")
	}
	for _, c := range sqlRequiredColumns {
		if !words[c] {
			return "", nil, fmt.Errorf("query must return a %s column", c)
		}
	}
	return b.String(), params, nil
}

// SQLRunner runs a rule set's SQL rules through a Querier.
type SQLRunner struct {
	mu    sync.Mutex
	rules []*SQLRule
	q     Querier
	sink  AlertSink
	next  map[string]time.Time
	dedup map[string]map[string]*dedupEntry
	stats Stats
}

// NewSQLRunner builds a runner for rs's enabled SQL rules. sink may be nil
// when only RunRule's returned alerts are used.
func NewSQLRunner(rs *RuleSet, q Querier, sink AlertSink) *SQLRunner {
	r := &SQLRunner{q: q, sink: sink, next: map[string]time.Time{}, dedup: map[string]map[string]*dedupEntry{}}
	for _, s := range rs.SQLRules {
		if s.Enabled {
			r.rules = append(r.rules, s)
		}
	}
	return r
}

// Rules returns the enabled SQL rules the runner runs.
func (r *SQLRunner) Rules() []*SQLRule { return r.rules }

// RunDue runs every rule whose schedule is due at now over [now-lookback,
// now) and sends the alerts to the sink. A rule's first run is at the first
// call.
func (r *SQLRunner) RunDue(ctx context.Context, now time.Time) error {
	for _, rule := range r.rules {
		r.mu.Lock()
		due := !now.Before(r.next[rule.ID])
		if due {
			r.next[rule.ID] = now.Add(rule.Schedule)
		}
		r.mu.Unlock()
		if !due {
			continue
		}
		alerts, err := r.RunRule(ctx, rule, now.Add(-rule.Lookback), now)
		if err != nil {
			return err
		}
		if r.sink == nil {
			continue
		}
		for _, a := range alerts {
			if err := r.sink.Raise(ctx, a); err != nil {
				return fmt.Errorf("detect: raise %s: %w", a.RuleID, err)
			}
		}
	}
	return nil
}

// RunRule runs one rule over [from, to) and returns its alerts after dedup
// (at time to).
func (r *SQLRunner) RunRule(ctx context.Context, rule *SQLRule, from, to time.Time) ([]Alert, error) {
	args := make([]any, len(rule.params))
	for i, p := range rule.params {
		if p == "from" {
			args[i] = from.UTC()
		} else {
			args[i] = to.UTC()
		}
	}
	rows, err := r.q.Query(ctx, rule.bound, args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrQuery, rule.ID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rowsToAlerts(rule, rows, from, to)
}

func (r *SQLRunner) rowsToAlerts(rule *SQLRule, rows []map[string]any, from, to time.Time) ([]Alert, error) {
	var out []Alert
	d := r.dedup[rule.ID]
	if d == nil {
		d = map[string]*dedupEntry{}
		r.dedup[rule.ID] = d
	}
	// Summaries first: windows that ended before this run.
	for _, k := range sortedKeys(d) {
		e := d[k]
		if to.Before(e.Until) {
			continue
		}
		if e.Suppressed > 0 {
			out = append(out, sqlSummary(rule, e))
		}
		delete(d, k)
	}
	for i, row := range rows {
		a, err := rowAlert(rule, row, from, to)
		if err != nil {
			return out, fmt.Errorf("%w: %s: row %d: %w", ErrQuery, rule.ID, i+1, err)
		}
		if a.Count < rule.MinCount {
			continue
		}
		if rule.Dedup == nil {
			out = append(out, a)
			continue
		}
		e := d[a.GroupKey]
		if e != nil && a.LastSeen.Before(e.Until) {
			if e.Suppressed == 0 {
				e.First = a.FirstSeen
			}
			e.Suppressed += a.Count
			e.Last = a.LastSeen
			for _, id := range a.EventIDs {
				e.IDs = appendBounded(e.IDs, id)
			}
			r.stats.Suppressed += a.Count
			continue
		}
		if e != nil {
			a.Suppressed = e.Suppressed
		}
		d[a.GroupKey] = &dedupEntry{Key: a.GroupKey, Until: a.LastSeen.Add(rule.Dedup.Suppress), Message: a.Message}
		out = append(out, a)
	}
	return out, nil
}

// Flush returns summaries of every suppressed row not yet reported.
func (r *SQLRunner) Flush() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Alert
	for _, rule := range r.rules {
		d := r.dedup[rule.ID]
		for _, k := range sortedKeys(d) {
			if d[k].Suppressed > 0 {
				out = append(out, sqlSummary(rule, d[k]))
			}
			delete(d, k)
		}
	}
	return out
}

func sqlSummary(rule *SQLRule, e *dedupEntry) Alert {
	return Alert{
		RuleID: rule.ID, RuleVersion: rule.Version, Title: rule.Title, Severity: rule.Severity, Action: rule.Action,
		Tags: rule.Tags, GroupKey: e.Key, Count: e.Suppressed, Suppressed: e.Suppressed, FirstSeen: e.First,
		LastSeen: e.Last, EventIDs: e.IDs, Summary: true,
		Message: truncate(fmt.Sprintf("%d further matches suppressed by dedup: %s", e.Suppressed, e.Message), maxMessageLen),
	}
}

func rowAlert(rule *SQLRule, row map[string]any, from, to time.Time) (Alert, error) {
	a := Alert{
		RuleID: rule.ID, RuleVersion: rule.Version, Title: rule.Title, Severity: rule.Severity,
		Action: rule.Action, Tags: rule.Tags, FirstSeen: from, LastSeen: to,
	}
	gk, ok := row["group_key"].(string)
	if !ok || gk == "" {
		return a, fmt.Errorf("group_key must be a non-empty string, got %T", row["group_key"])
	}
	a.GroupKey = truncate(gk, maxGroupKeyLen)
	n, ok := asUint(row["count"])
	if !ok {
		return a, fmt.Errorf("count must be a non-negative integer, got %T", row["count"])
	}
	a.Count = n
	msg, _ := row["message"].(string)
	if msg == "" {
		msg = rule.Title
	}
	a.Message = truncate(msg, maxMessageLen)
	switch ids := row["event_ids"].(type) {
	case []string:
		a.EventIDs = ids
	case []any:
		for _, x := range ids {
			s, ok := x.(string)
			if !ok {
				return a, fmt.Errorf("event_ids must be strings, got %T", x)
			}
			a.EventIDs = append(a.EventIDs, s)
		}
	default:
		return a, fmt.Errorf("event_ids must be a list of event ids, got %T", row["event_ids"])
	}
	if len(a.EventIDs) > maxMatchedIDs {
		a.EventIDs = a.EventIDs[len(a.EventIDs)-maxMatchedIDs:]
	}
	for col, dst := range map[string]*time.Time{"first_seen": &a.FirstSeen, "last_seen": &a.LastSeen} {
		switch v := row[col].(type) {
		case nil:
		case time.Time:
			*dst = v.UTC()
		case string:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return a, fmt.Errorf("%s: %v", col, err)
			}
			*dst = t.UTC()
		default:
			return a, fmt.Errorf("%s must be a time, got %T", col, v)
		}
	}
	return a, nil
}

func asUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case int:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case uint64:
		return x, true
	case uint32:
		return uint64(x), true
	case uint:
		return uint64(x), true
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	}
	return 0, false
}
