package detect

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"go.yaml.in/yaml/v3"
)

// Action is what a rule does when it fires, beyond raising the alert.
type Action string

// Actions of a rule.
const (
	// ActionAlert raises alert.raised only.
	ActionAlert Action = "alert"
	// ActionHoldSession also emits session.held; the runner stops the
	// session's tool calls until an approver releases it.
	ActionHoldSession Action = "hold_session"
	// ActionRequestApproval also emits approval.requested (kind
	// session_hold) so an approver decides whether the session goes on.
	ActionRequestApproval Action = "request_approval"
)

// Kind is the shape of a stream rule.
type Kind string

// Rule kinds.
const (
	KindMatch    Kind = "match"    // every matching event
	KindWindow   Kind = "window"   // count or distinct count over a sliding window
	KindSequence Kind = "sequence" // step A then step B within a bound
)

// AnyEventType in a rule's `on` makes it see every event; such a rule has
// no `payload` variable.
const AnyEventType = "*"

// Expect is what a rule test expects.
type Expect string

// Test expectations.
const (
	ExpectFire   Expect = "fire"
	ExpectNoFire Expect = "no_fire"
)

// Rule is one loaded stream rule.
type Rule struct {
	ID          string
	Version     string
	Title       string
	Description string
	Severity    events.Severity
	Tags        []string
	Enabled     bool
	Kind        Kind
	// On lists the event types the rule (or, for a sequence, any step)
	// reads.
	On     []string
	Action Action
	// Window and Sequence describe the rule's state, when it has any.
	Window   *Window
	Sequence *Sequence
	// Dedup suppresses repeats; nil raises every occurrence.
	Dedup *Dedup
	Tests []Test
	// File and Line locate the rule for error messages and reports.
	File string
	Line int

	compiled *compiledRule
}

// Window is a sliding event-time window per group.
type Window struct {
	Duration  time.Duration
	Threshold int
	// Distinct is the CEL expression counted distinctly, "" to count
	// events.
	Distinct string
}

// Sequence is a chain of steps that must happen in order within a bound
// and in the same group.
type Sequence struct {
	Within time.Duration
	Steps  []Step
}

// Step is one step of a sequence.
type Step struct {
	Name  string
	On    []string
	Match string
}

// Dedup folds repeats of an alert with the same key into one within a
// suppression window, counting them.
type Dedup struct {
	Suppress time.Duration
}

// Test is an inline rule test.
type Test struct {
	Name   string
	Expect Expect
	// Count, when set, is the exact number of alerts expected (summaries
	// of suppressed occurrences not included).
	Count  *int
	Events []*events.Envelope
	// Rows feed a SQL rule's test.
	Rows []map[string]any
	// File is where the test is written when it is not the rule's file
	// (an override file replaced the rule's tests).
	File string
	Line int
}

var (
	ruleIDPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]*$`)
	versionPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	namePattern    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

var severities = []events.Severity{events.SeverityInfo, events.SeverityLow, events.SeverityMedium, events.SeverityHigh, events.SeverityCritical}

// Limits keep a hostile or careless rule file from exhausting memory.
const (
	maxThreshold   = 10000
	maxSteps       = 8
	maxTestEvents  = 1000 // per test; a burst rule needs tens
	maxMatchedIDs  = 100  // alert.raised carries at most 100 ids
	maxMessageLen  = 2048
	maxGroupKeyLen = 512
)

// ---- YAML documents ----

type fileDoc struct {
	Lists    nodeMap      `yaml:"lists"`
	Macros   nodeMap      `yaml:"macros"`
	Rules    []ruleDoc    `yaml:"rules"`
	SQLRules []sqlRuleDoc `yaml:"sql_rules"`
}

type ruleDoc struct {
	ID          string       `yaml:"id"`
	Version     string       `yaml:"version"`
	Title       string       `yaml:"title"`
	Description string       `yaml:"description"`
	Severity    string       `yaml:"severity"`
	Tags        []string     `yaml:"tags"`
	Enabled     *bool        `yaml:"enabled"`
	On          []string     `yaml:"on"`
	Match       *srcExpr     `yaml:"match"`
	GroupBy     []srcExpr    `yaml:"group_by"`
	Window      *windowDoc   `yaml:"window"`
	Sequence    *sequenceDoc `yaml:"sequence"`
	Action      string       `yaml:"action"`
	Dedup       *dedupDoc    `yaml:"dedup"`
	Output      *srcExpr     `yaml:"output"`
	Tests       []testDoc    `yaml:"tests"`
}

type windowDoc struct {
	Duration  duration `yaml:"duration"`
	Threshold int      `yaml:"threshold"`
	Distinct  *srcExpr `yaml:"distinct"`
}

type sequenceDoc struct {
	Within duration  `yaml:"within"`
	Steps  []stepDoc `yaml:"steps"`
}

type stepDoc struct {
	Name    string    `yaml:"name"`
	On      []string  `yaml:"on"`
	Match   *srcExpr  `yaml:"match"`
	GroupBy []srcExpr `yaml:"group_by"`
	Capture nodeMap   `yaml:"capture"`
}

type dedupDoc struct {
	Key      []srcExpr `yaml:"key"`
	Suppress duration  `yaml:"suppress"`
}

type testDoc struct {
	Name   string           `yaml:"name"`
	Expect string           `yaml:"expect"`
	Count  *int             `yaml:"count"`
	Start  string           `yaml:"start"`
	Events []eventDoc       `yaml:"events"`
	Rows   []map[string]any `yaml:"rows"`
	line   int
}

type eventDoc struct {
	File     string         `yaml:"file"`
	Type     string         `yaml:"type"`
	At       string         `yaml:"at"`
	Repeat   int            `yaml:"repeat"`
	Every    duration       `yaml:"every"`
	Envelope map[string]any `yaml:"envelope"`
	Payload  map[string]any `yaml:"payload"`
	line     int
}

func validEventType(t string) bool { return slices.Contains(events.EventTypes, t) }

func checkOn(on []string) error {
	if len(on) == 0 {
		return fmt.Errorf("`on` must list the event types the rule reads (or %q)", AnyEventType)
	}
	for _, t := range on {
		if t == AnyEventType {
			if len(on) > 1 {
				return fmt.Errorf("%q cannot be combined with other event types", AnyEventType)
			}
			continue
		}
		if !validEventType(t) {
			return fmt.Errorf("unknown event type %q in `on`", t)
		}
	}
	return nil
}

func (t *testDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain testDoc
	if err := n.Decode((*plain)(t)); err != nil {
		return err
	}
	t.line = n.Line
	return nil
}

func (e *eventDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain eventDoc
	if err := n.Decode((*plain)(e)); err != nil {
		return err
	}
	e.line = n.Line
	return nil
}
