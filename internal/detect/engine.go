package detect

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Engine runs a rule set's stream rules over events. It is safe for
// concurrent use, but events must arrive in an order that makes sense per
// group (Kafka's per-session order does): state is keyed by event time.
type Engine struct {
	mu    sync.Mutex
	rs    *RuleSet
	rules []*compiledRule
	// byType lists, per event type, the rule parts that read it.
	byType map[string][]hookRef
	any    []hookRef
	st     *state
	cfg    engineConfig
	stats  Stats
	// perRule counts per rule, indexed like rules.
	perRule []RuleStats
	// When each rule's windows and sequences, and the chains, were last
	// swept; not part of snapshots (a restored engine sweeps at once).
	ruleSwept   []time.Time
	chainsSwept time.Time
}

type hookRef struct {
	rule int // index into Engine.rules and state.rules
	p    *part
}

// Stats counts what an engine did. Every dropped piece of state is counted.
type Stats struct {
	Events     uint64
	Matches    uint64
	Alerts     uint64
	Summaries  uint64
	Suppressed uint64
	EvalErrors uint64
	// Evicted counts groups dropped to stay under the group limit before
	// their time was up.
	Evicted uint64
}

type engineConfig struct {
	sink       AlertSink
	log        *slog.Logger
	maxGroups  int
	only       map[string]bool
	disabled   bool
	chainIdle  time.Duration
	sweepEvery time.Duration
	noChains   bool
}

// EngineOption configures NewEngine.
type EngineOption func(*engineConfig)

// WithSink sets where Process sends alerts.
func WithSink(s AlertSink) EngineOption { return func(c *engineConfig) { c.sink = s } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) EngineOption { return func(c *engineConfig) { c.log = l } }

// WithMaxGroups bounds the groups (window, sequence, dedup and chain
// entries) each rule keeps; past it the oldest are evicted and counted.
// Default 100000.
func WithMaxGroups(n int) EngineOption { return func(c *engineConfig) { c.maxGroups = n } }

// WithRules restricts the engine to the named rules.
func WithRules(ids ...string) EngineOption {
	return func(c *engineConfig) {
		c.only = map[string]bool{}
		for _, id := range ids {
			c.only[id] = true
		}
	}
}

// WithDisabled runs disabled rules too (rule tests do).
func WithDisabled() EngineOption { return func(c *engineConfig) { c.disabled = true } }

// NewEngine builds an engine over rs's stream rules.
func NewEngine(rs *RuleSet, opts ...EngineOption) *Engine {
	// Sweeping walks all state, so it runs every 30s of event time: a
	// summary of suppressed matches is at most that late.
	cfg := engineConfig{log: slog.New(slog.DiscardHandler), maxGroups: 100000, chainIdle: 24 * time.Hour, sweepEvery: 30 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	e := &Engine{rs: rs, byType: map[string][]hookRef{}, cfg: cfg}
	for _, r := range rs.Rules {
		if r.compiled == nil || (!r.Enabled && !cfg.disabled) || (cfg.only != nil && !cfg.only[r.ID]) {
			continue
		}
		idx := len(e.rules)
		e.rules = append(e.rules, r.compiled)
		for t, ps := range r.compiled.parts {
			for _, p := range ps {
				if t == AnyEventType {
					e.any = append(e.any, hookRef{idx, p})
				} else {
					e.byType[t] = append(e.byType[t], hookRef{idx, p})
				}
			}
		}
	}
	e.st = newState(len(e.rules))
	e.perRule = make([]RuleStats, len(e.rules))
	e.ruleSwept = make([]time.Time, len(e.rules))
	return e
}

// Stats returns a copy of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Process evaluates env and sends its alerts to the sink.
func (e *Engine) Process(ctx context.Context, env *events.Envelope) error {
	if e.cfg.sink == nil {
		return ErrNoSink
	}
	alerts, err := e.Eval(env)
	if err != nil {
		return err
	}
	for _, a := range alerts {
		if err := e.cfg.sink.Raise(ctx, a); err != nil {
			return fmt.Errorf("detect: raise %s: %w", a.RuleID, err)
		}
	}
	return nil
}

// activation gives CEL the event being evaluated; one per event, shared by
// every rule, so the payload is decoded once.
type activation struct {
	event *events.Envelope
	// payload is decoded on first use: many events (decisions, chain-only
	// rules) are evaluated without reading it.
	payload    events.Payload
	payloadErr error
	decoded    bool
	chain      *ChainInfo
	chainInfo  ChainInfo // chain points here: one allocation per event
	out        *outputVars
}

type outputVars struct {
	count    int64
	group    string
	distinct []string
	first    time.Time
	last     time.Time
	captures map[string]string
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		return a.event, true
	case "payload":
		if !a.decoded {
			a.decoded = true
			a.payload, a.payloadErr = a.event.DecodePayloadFast()
		}
		return a.payload, a.payloadErr == nil
	case "chain":
		return a.chain, true
	}
	if o := a.out; o != nil {
		switch name {
		case "count":
			return types.Int(o.count), true
		case "group":
			return types.String(o.group), true
		case "distinct":
			return types.NewStringList(types.DefaultTypeAdapter, o.distinct), true
		case "first_seen":
			return types.Timestamp{Time: o.first}, true
		case "last_seen":
			return types.Timestamp{Time: o.last}, true
		}
		if c, ok := strings.CutPrefix(name, "capture."); ok {
			return types.String(o.captures[c]), true
		}
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Eval runs every enabled rule on env and returns the alerts it raises,
// including summaries of suppressed occurrences whose window ended before
// env's time.
func (e *Engine) Eval(env *events.Envelope) ([]Alert, error) {
	if _, ok := payloadTypes[env.EventType]; !ok {
		return nil, fmt.Errorf("%w: %q", events.ErrUnknownEventType, env.EventType)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Events++
	t := env.EventTime
	var alerts []Alert
	act := &activation{event: env}
	act.chain = &act.chainInfo
	if !e.cfg.noChains {
		e.st.chainStep(env, e.cfg.maxGroups, &e.stats, act.chain)
	}
	for _, h := range e.byType[env.EventType] {
		alerts = e.evalPart(h, act, alerts)
	}
	for _, h := range e.any {
		alerts = e.evalPart(h, act, alerts)
	}
	// Sweep after the rules ran, so an alert that ends a suppression window
	// carries its suppressed count; windows nobody ends get a summary.
	if t.After(e.st.watermark) {
		e.st.watermark = t
		if t.Sub(e.st.lastSweep) >= e.cfg.sweepEvery {
			alerts = e.sweep(t, alerts)
		}
	}
	return alerts, nil
}

// Advance moves event time to t without an event (an idle stream), emitting
// summaries whose suppression window has ended.
func (e *Engine) Advance(t time.Time) []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !t.After(e.st.watermark) {
		return nil
	}
	e.st.watermark = t
	return e.sweep(t, nil)
}

// Flush emits the summaries of every suppressed occurrence not yet
// reported, as at the end of a replay or a test.
func (e *Engine) Flush() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	for i, rs := range e.st.rules {
		for _, k := range sortedKeys(rs.dedup) {
			d := rs.dedup[k]
			if d.Suppressed > 0 {
				out = append(out, e.summary(i, d))
			}
			delete(rs.dedup, k)
		}
	}
	return out
}

func (e *Engine) evalPart(h hookRef, act *activation, alerts []Alert) []Alert {
	rst := &e.perRule[h.rule]
	rst.Evaluations++
	var ok bool
	var err error
	if rst.Evaluations%evalTimeSample == 0 {
		// Reading the clock costs as much as a cheap match, so one
		// evaluation in evalTimeSample is timed and stands for the rest.
		start := time.Now()
		ok, err = evalBool(h.p.match, act)
		rst.EvalTime += time.Since(start) * evalTimeSample
	} else {
		ok, err = evalBool(h.p.match, act)
	}
	if err != nil {
		rst.Errors++
		e.stats.EvalErrors++
		e.cfg.log.Debug("rule evaluation failed", "rule", e.rules[h.rule].rule.ID, "event_id", act.event.EventID, "err", err)
		return alerts
	}
	if !ok {
		return alerts
	}
	e.stats.Matches++
	rst.Matches++
	cr := e.rules[h.rule]
	rs := e.st.rules[h.rule]
	group := e.key(h.p.groupBy, act)
	t := act.event.EventTime
	var occ *occurrence
	switch cr.rule.Kind {
	case KindMatch:
		occ = &occurrence{count: 1, first: t, last: t, ids: []string{act.event.EventID}}
	case KindWindow:
		occ = e.window(cr, rs, h.p, group, act, rst)
	case KindSequence:
		occ = e.sequence(cr, rs, h.p, group, act, rst)
	}
	if occ == nil {
		return alerts
	}
	occ.group = group
	return e.raise(h, occ, act, alerts)
}

// occurrence is a rule firing before dedup.
type occurrence struct {
	group    string
	count    uint64
	first    time.Time
	last     time.Time
	ids      []string
	distinct []string
	captures map[string]string
}

func (e *Engine) window(cr *compiledRule, rs *ruleState, p *part, group string, act *activation, rst *RuleStats) *occurrence {
	t := act.event.EventTime
	w := rs.windows[group]
	if w == nil {
		if len(rs.windows) >= e.cfg.maxGroups {
			e.stats.Evicted += evictOldest(rs.windows, func(w *winGroup) time.Time { return w.last() })
		}
		w = &winGroup{}
		rs.windows[group] = w
	}
	entry := winEntry{T: t, ID: act.event.EventID}
	if p.distinct != nil {
		v, _, err := p.distinct.Eval(act)
		if err != nil {
			e.stats.EvalErrors++
			rst.Errors++
			return nil
		}
		entry.V = formatValue(v)
		// Keep one entry per distinct value (its latest), so memory is
		// bounded by the threshold.
		w.Entries = slices.DeleteFunc(w.Entries, func(x winEntry) bool { return x.V == entry.V })
	}
	w.Entries = append(w.Entries, entry)
	cut := t.Add(-cr.duration)
	i := 0
	for i < len(w.Entries) && w.Entries[i].T.Before(cut) {
		i++
	}
	w.Entries = w.Entries[i:]
	if len(w.Entries) < cr.threshold {
		return nil
	}
	occ := &occurrence{count: uint64(len(w.Entries)), first: w.Entries[0].T, last: t}
	for _, x := range w.Entries {
		occ.ids = append(occ.ids, x.ID)
		if cr.distinct {
			occ.distinct = append(occ.distinct, x.V)
		}
	}
	// Start over: the next alert needs threshold new matches.
	delete(rs.windows, group)
	return occ
}

func (e *Engine) sequence(cr *compiledRule, rs *ruleState, p *part, group string, act *activation, rst *RuleStats) *occurrence {
	t := act.event.EventTime
	s := rs.seqs[group]
	caps, err := evalCaptures(p.captures, act)
	if err != nil {
		e.stats.EvalErrors++
		rst.Errors++
		return nil
	}
	if p.step == 0 {
		if s == nil {
			if len(rs.seqs) >= e.cfg.maxGroups {
				e.stats.Evicted += evictOldest(rs.seqs, func(s *seqGroup) time.Time { return s.last() })
			}
			s = &seqGroup{Partials: make([]*seqPartial, cr.steps-1)}
			rs.seqs[group] = s
		}
		// The latest start is kept: it has the most time left to complete.
		s.Partials[0] = &seqPartial{Start: t, Last: t, IDs: []string{act.event.EventID}, Captures: caps}
		return nil
	}
	if s == nil {
		return nil
	}
	prev := s.Partials[p.step-1]
	if prev == nil || t.Sub(prev.Start) > cr.within || t.Before(prev.Last) {
		return nil
	}
	next := &seqPartial{Start: prev.Start, Last: t, IDs: appendBounded(slices.Clone(prev.IDs), act.event.EventID), Captures: mergeCaps(prev.Captures, caps)}
	s.Partials[p.step-1] = nil // consumed
	if p.step < cr.steps-1 {
		s.Partials[p.step] = next
		return nil
	}
	if s.empty() {
		delete(rs.seqs, group)
	}
	return &occurrence{count: uint64(len(next.IDs)), first: next.Start, last: t, ids: next.IDs, captures: next.Captures}
}

func evalCaptures(cs []capture, act *activation) (map[string]string, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(cs))
	for _, c := range cs {
		v, _, err := c.prg.Eval(act)
		if err != nil {
			return nil, err
		}
		out[c.name] = formatValue(v)
	}
	return out, nil
}

func mergeCaps(a, b map[string]string) map[string]string {
	if len(b) == 0 {
		return a
	}
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func appendBounded(ids []string, id string) []string {
	ids = append(ids, id)
	if len(ids) > maxMatchedIDs {
		ids = ids[len(ids)-maxMatchedIDs:]
	}
	return ids
}

// raise renders occ and passes it through dedup.
func (e *Engine) raise(h hookRef, occ *occurrence, act *activation, alerts []Alert) []Alert {
	cr := e.rules[h.rule]
	r := cr.rule
	act.out = &outputVars{count: int64(occ.count), group: occ.group, distinct: occ.distinct, first: occ.first, last: occ.last, captures: occ.captures}
	msg := truncate(h.p.output.render(act), maxMessageLen)
	act.out = nil
	if msg == "" {
		msg = r.Title
	}
	a := Alert{
		RuleID: r.ID, RuleVersion: r.Version, Title: r.Title, Severity: r.Severity, Action: r.Action, Tags: r.Tags,
		GroupKey: occ.group, Count: occ.count, FirstSeen: occ.first, LastSeen: occ.last, EventIDs: occ.ids,
		Message: msg, Tenant: act.event.Tenant, SessionID: act.event.SessionID, Agent: agentName(act.event),
	}
	if cr.suppress == 0 {
		e.stats.Alerts++
		e.perRule[h.rule].Alerts++
		return append(alerts, a)
	}
	key := occ.group
	if len(h.p.dedupKey) > 0 {
		key = e.key(h.p.dedupKey, act)
	}
	a.GroupKey = key
	rs := e.st.rules[h.rule]
	if rs.dedup == nil {
		rs.dedup = map[string]*dedupEntry{}
	}
	d := rs.dedup[key]
	if d != nil && occ.last.Before(d.Until) {
		d.Suppressed += occ.count
		e.stats.Suppressed += occ.count
		e.perRule[h.rule].Suppressed += occ.count
		if d.Suppressed == occ.count {
			d.First = occ.first
		}
		d.Last = occ.last
		for _, id := range occ.ids {
			d.IDs = appendBounded(d.IDs, id)
		}
		d.Tenant, d.Session = act.event.Tenant, act.event.SessionID
		return alerts
	}
	if d == nil && len(rs.dedup) >= e.cfg.maxGroups {
		// Never drop a pending count: summarise what is evicted.
		for _, k := range oldestKeys(rs.dedup, func(d *dedupEntry) time.Time { return d.Until }) {
			if old := rs.dedup[k]; old.Suppressed > 0 {
				alerts = append(alerts, e.summary(h.rule, old))
			}
			delete(rs.dedup, k)
			e.stats.Evicted++
		}
	}
	if d != nil {
		a.Suppressed = d.Suppressed // carried from the window that just ended
	}
	rs.dedup[key] = &dedupEntry{Key: key, Until: occ.last.Add(cr.suppress), Message: msg}
	e.stats.Alerts++
	e.perRule[h.rule].Alerts++
	return append(alerts, a)
}

func (e *Engine) summary(rule int, d *dedupEntry) Alert {
	r := e.rules[rule].rule
	e.stats.Summaries++
	e.perRule[rule].Summaries++
	return Alert{
		RuleID: r.ID, RuleVersion: r.Version, Title: r.Title, Severity: r.Severity, Action: r.Action, Tags: r.Tags,
		GroupKey: d.Key, Count: d.Suppressed, Suppressed: d.Suppressed, FirstSeen: d.First, LastSeen: d.Last,
		EventIDs: d.IDs, Summary: true, Tenant: d.Tenant, SessionID: d.Session,
		Message: truncate(fmt.Sprintf("%d further matches suppressed by dedup: %s", d.Suppressed, d.Message), maxMessageLen),
	}
}

// sweep drops state whose time is up at watermark t and emits summaries
// for dedup windows that ended with suppressed matches.
func (e *Engine) sweep(t time.Time, alerts []Alert) []Alert {
	e.st.lastSweep = t
	var expired []string // reused: sweeps run often and rarely find much
	for i, rs := range e.st.rules {
		cr := e.rules[i]
		// Windows and sequences are dropped a tenth of their span late at
		// most: a 24h sequence need not be walked every 30s.
		stateDue := t.Sub(e.ruleSwept[i]) >= max(e.cfg.sweepEvery, (cr.duration+cr.within)/10)
		expired = expired[:0]
		for k, d := range rs.dedup {
			if !t.Before(d.Until) {
				expired = append(expired, k)
			}
		}
		// Summaries go out in key order, so replays agree.
		slices.Sort(expired)
		for _, k := range expired {
			if d := rs.dedup[k]; d.Suppressed > 0 {
				alerts = append(alerts, e.summary(i, d))
			}
			delete(rs.dedup, k)
		}
		if !stateDue {
			continue
		}
		e.ruleSwept[i] = t
		if len(rs.windows) > 0 {
			cut := t.Add(-cr.duration)
			for k, w := range rs.windows {
				if w.last().Before(cut) {
					delete(rs.windows, k)
				}
			}
		}
		if len(rs.seqs) > 0 {
			cut := t.Add(-cr.within)
			for k, s := range rs.seqs {
				for j, p := range s.Partials {
					if p != nil && p.Start.Before(cut) {
						s.Partials[j] = nil
					}
				}
				if s.empty() {
					delete(rs.seqs, k)
				}
			}
		}
	}
	if t.Sub(e.chainsSwept) < e.cfg.chainIdle/100 {
		return alerts
	}
	e.chainsSwept = t
	cut := t.Add(-e.cfg.chainIdle)
	for k, c := range e.st.chains {
		if c.Last.Before(cut) {
			delete(e.st.chains, k)
		}
	}
	return alerts
}

// key evaluates group-by expressions into one key.
func (e *Engine) key(prgs []cel.Program, act *activation) string {
	if len(prgs) == 1 {
		return truncate(evalString(prgs[0], act), maxGroupKeyLen)
	}
	parts := make([]string, len(prgs))
	for i, p := range prgs {
		parts[i] = evalString(p, act)
	}
	return truncate(strings.Join(parts, "|"), maxGroupKeyLen)
}

func evalString(p cel.Program, act *activation) string {
	v, _, err := p.Eval(act)
	if err != nil {
		return "<?>"
	}
	s := formatValue(v)
	if s == "" {
		return "-" // alert.raised needs a non-empty group key
	}
	return s
}

func evalBool(p cel.Program, act *activation) (bool, error) {
	v, _, err := p.Eval(act)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("match gave %s, not bool", typeName(v))
	}
	return bool(b), nil
}

func typeName(v ref.Val) string { return v.Type().TypeName() }

func (s *state) chainStep(env *events.Envelope, maxGroups int, st *Stats, info *ChainInfo) {
	k := env.Key()
	c := s.chains[k]
	if c == nil {
		if len(s.chains) >= maxGroups {
			st.Evicted += evictOldest(s.chains, func(c *chainPos) time.Time { return c.Last })
		}
		s.chains[k] = &chainPos{Seq: env.Seq, Hash: env.Hash, Last: env.EventTime}
		return
	}
	info.Seen, info.PrevSeq = true, c.Seq
	switch {
	case env.Seq <= c.Seq:
		info.Regressed = true
	default:
		switch gap := env.Seq - c.Seq - 1; {
		case gap > 0 && gap <= c.OffTopic:
			// The missing seqs are approval requests on the other
			// topic; their hashes are not here to link against.
			c.OffTopic -= gap
		case gap > 0:
			info.Gap = gap
		case env.PrevHash != c.Hash:
			info.HashMismatch = true
		}
		c.Seq, c.Hash = env.Seq, env.Hash
	}
	if asksApproval(env) {
		c.OffTopic++
	}
	if env.EventTime.After(c.Last) {
		c.Last = env.EventTime
	}
}

// askDecision is how an ask verdict reads in a canonical payload (no
// insignificant whitespace), so spotting one needs no decoding.
var askDecision = []byte(`"decision":"ask"`)

// asksApproval reports whether env is an ask decision, which its emitter
// follows with an approval.requested on the approvals topic.
func asksApproval(env *events.Envelope) bool {
	switch env.EventType {
	case events.TypePolicyDecision, events.TypeNetEgress:
		return bytes.Contains(env.Payload, askDecision)
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// evictOldest removes the oldest tenth of m (at least one entry) and
// returns how many it removed; ties break by key so replays agree.
func evictOldest[K comparable, V any](m map[K]V, last func(V) time.Time) uint64 {
	keys := oldestKeys(m, last)
	for _, k := range keys {
		delete(m, k)
	}
	return uint64(len(keys))
}

func oldestKeys[K comparable, V any](m map[K]V, last func(V) time.Time) []K {
	type kt struct {
		k K
		t time.Time
		s string
	}
	all := make([]kt, 0, len(m))
	for k, v := range m {
		all = append(all, kt{k, last(v), fmt.Sprint(k)})
	}
	slices.SortFunc(all, func(a, b kt) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return strings.Compare(a.s, b.s)
	})
	n := max(1, len(all)/10)
	out := make([]K, n)
	for i := range n {
		out[i] = all[i].k
	}
	return out
}
