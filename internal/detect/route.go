package detect

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// RuleStats counts what an engine did for one rule.
type RuleStats struct {
	Evaluations uint64 // match expressions evaluated
	Matches     uint64
	Alerts      uint64 // alerts raised (summaries not included)
	Summaries   uint64 // summaries of suppressed matches
	Suppressed  uint64 // matches folded into a dedup window
	Errors      uint64 // evaluations that failed
	// EvalTime estimates the time spent in match expressions: one
	// evaluation in evalTimeSample is timed.
	EvalTime time.Duration
}

const evalTimeSample = 8

// Add adds o's counts to s.
func (s *RuleStats) Add(o RuleStats) {
	s.Evaluations += o.Evaluations
	s.Matches += o.Matches
	s.Alerts += o.Alerts
	s.Summaries += o.Summaries
	s.Suppressed += o.Suppressed
	s.Errors += o.Errors
	s.EvalTime += o.EvalTime
}

// RuleStats returns the counters of every rule the engine runs, by id.
func (e *Engine) RuleStats() map[string]RuleStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]RuleStats, len(e.rules))
	for i, cr := range e.rules {
		out[cr.rule.ID] = e.perRule[i]
	}
	return out
}

// withoutChains makes an engine skip chain tracking: engines fed re-keyed
// matches see pieces of chains, and their rules do not read `chain`.
func withoutChains() EngineOption { return func(c *engineConfig) { c.noChains = true } }

func isSessionExpr(src string) bool { return strings.TrimSpace(src) == "event.session_id" }

// approvalTopicTypes are the event types that travel on the approvals
// topic. It is keyed by session too, but a detector is not promised the
// same partitions of both topics, so these never feed a local rule.
var approvalTopicTypes = func() []string {
	var out []string
	for _, t := range events.EventTypes {
		topic, _ := eventlog.DefaultTopics.TopicFor(&events.Envelope{EventType: t, SessionID: "s"})
		if topic == eventlog.DefaultTopics.Approvals {
			out = append(out, t)
		}
	}
	return out
}()

// Local reports whether the rule can run next to one partition of
// audit.events, which is keyed by session: every group (and dedup) key
// starts with event.session_id and the rule reads no event type of the
// approvals topic. Other rules see their matches re-keyed by group through
// a repartition topic, so their result does not depend on which instance
// reads which partition. A rule on "*" is local and sees the events topic
// only: the approvals topic's partitions may be read elsewhere, so per-session order
// (what such a rule relies on, chain checks for example) exists only on
// the events topic.
func (r *Rule) Local() bool {
	if r.compiled == nil || !r.compiled.keyedBySession {
		return false
	}
	for _, t := range r.On {
		if slices.Contains(approvalTopicTypes, t) {
			return false
		}
	}
	return true
}

// Route is where a matching event must go for a rule whose groups cross
// partitions: to the engine holding RuleID's state for Key.
type Route struct {
	RuleID string
	Key    string
}

// Route evaluates the matches of the engine's rules on env, without
// changing any state, and returns one Route per rule and group key that
// matched. A service calls it on an engine of non-local rules to re-key
// events; the receiving engine evaluates the event again in full.
func (e *Engine) Route(env *events.Envelope) ([]Route, error) {
	if _, ok := payloadTypes[env.EventType]; !ok {
		return nil, errUnknownType(env.EventType)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	act := &activation{event: env}
	act.chain = &act.chainInfo
	var out []Route
	visit := func(hs []hookRef) {
		for _, h := range hs {
			ok, err := evalBool(h.p.match, act)
			if err != nil {
				e.perRule[h.rule].Errors++
				e.stats.EvalErrors++
				continue
			}
			if !ok {
				continue
			}
			r := Route{RuleID: e.rules[h.rule].rule.ID, Key: e.key(h.p.groupBy, act)}
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	visit(e.byType[env.EventType])
	visit(e.any)
	return out, nil
}

func errUnknownType(t string) error { return fmt.Errorf("%w: %q", events.ErrUnknownEventType, t) }
