package detect

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// An override file tunes shipped rules without copying them:
//
//	overrides:
//	  - rule: egress.repeated_denials
//	    window: {threshold: 10}
//	    exceptions:
//	      - name: the module proxy
//	        match: payload.host == "proxy.golang.org"
//	  - rule: agent.prompt_injection_phrases
//	    enabled: false
//
// It names rules by id; each entry may switch a rule on or off, change its
// severity or action, change the numbers of its window, sequence, dedup or
// schedule, add exceptions (CEL conditions under which the rule does not
// match) and replace its tests. Everything is checked as strictly as the
// rule files: an unknown rule, key or field, or an exception that does not
// type-check, is a load error naming the override file and line.

type overrideFile struct {
	Overrides []overrideDoc `yaml:"overrides"`
}

type overrideDoc struct {
	Rule       string         `yaml:"rule"`
	Enabled    *bool          `yaml:"enabled"`
	Severity   string         `yaml:"severity"`
	Action     string         `yaml:"action"`
	Window     *windowTune    `yaml:"window"`
	Sequence   *sequenceTune  `yaml:"sequence"`
	Dedup      *dedupTune     `yaml:"dedup"`
	Schedule   *duration      `yaml:"schedule"`
	Lookback   *duration      `yaml:"lookback"`
	MinCount   *uint64        `yaml:"min_count"`
	Exceptions []exceptionDoc `yaml:"exceptions"`
	Tests      []testDoc      `yaml:"tests"`
	line       int
}

type windowTune struct {
	Duration  *duration `yaml:"duration"`
	Threshold *int      `yaml:"threshold"`
}

type sequenceTune struct {
	Within *duration `yaml:"within"`
}

type dedupTune struct {
	Suppress *duration `yaml:"suppress"`
}

type exceptionDoc struct {
	Name  string   `yaml:"name"`
	Match *srcExpr `yaml:"match"`
	// Step names the sequence step the exception applies to; empty
	// applies it to every step.
	Step string `yaml:"step"`
	line int
}

func (o *overrideDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain overrideDoc
	if err := n.Decode((*plain)(o)); err != nil {
		return err
	}
	o.line = n.Line
	return nil
}

func (e *exceptionDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain exceptionDoc
	if err := n.Decode((*plain)(e)); err != nil {
		return err
	}
	e.line = n.Line
	return nil
}

// LoadOption changes how a rule directory loads.
type LoadOption func(*loader)

// WithOverrides applies the override file at path (see the package's
// override format); "" applies none.
func WithOverrides(path string) LoadOption {
	return func(l *loader) { l.overridesPath = path }
}

// readOverrides parses the override file into l.overrides.
func (l *loader) readOverrides() {
	if l.overridesPath == "" {
		return
	}
	// Override errors carry the file's absolute path: it is outside the
	// rule directory that other error paths are relative to.
	name, err := filepath.Abs(l.overridesPath)
	if err != nil {
		name = l.overridesPath
	}
	l.overridesName = name
	data, err := os.ReadFile(l.overridesPath)
	if err != nil {
		l.fail(name, 0, "override file: %v", err)
		return
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.fail(name, 0, "%s", cleanYAMLError(err))
		return
	}
	if len(doc.Content) == 0 {
		return
	}
	var of overrideFile
	if line, err := decodeStrict(doc.Content[0], &of); err != nil {
		l.fail(name, line, "%v", err)
		return
	}
	seen := map[string]int{}
	for _, o := range of.Overrides {
		if o.Rule == "" {
			l.fail(name, o.line, "an override names its rule with `rule`")
			continue
		}
		if prev, dup := seen[o.Rule]; dup {
			l.fail(name, o.line, "rule %s is already overridden at line %d", o.Rule, prev)
			continue
		}
		seen[o.Rule] = o.line
		l.overrides = append(l.overrides, o)
	}
}

// applyOverrides changes the pending rule documents; env type-checks the
// exceptions so their errors point into the override file.
func (l *loader) applyOverrides(env *celEnv) {
	file := l.overridesName
	for _, o := range l.overrides {
		fail := func(format string, args ...any) {
			l.fail(file, o.line, "override of %s: %s", o.Rule, fmt.Sprintf(format, args...))
		}
		for _, t := range o.Tests {
			for _, e := range t.Events {
				if e.File != "" {
					l.fail(file, e.line, "override of %s: test %q: events in an override file are written inline, not read from files", o.Rule, t.Name)
				}
			}
		}
		if i := l.pendingRule(o.Rule); i >= 0 {
			l.overrideStream(env, &l.rules[i].doc, o, fail)
			continue
		}
		if i := l.pendingSQL(o.Rule); i >= 0 {
			l.overrideSQL(&l.sql[i].doc, o, fail)
			continue
		}
		fail("no rule has this id")
	}
}

func (l *loader) pendingRule(id string) int {
	for i, p := range l.rules {
		if p.doc.ID == id {
			return i
		}
	}
	return -1
}

func (l *loader) pendingSQL(id string) int {
	for i, p := range l.sql {
		if p.doc.ID == id {
			return i
		}
	}
	return -1
}

func (l *loader) overrideStream(env *celEnv, d *ruleDoc, o overrideDoc, fail func(string, ...any)) {
	if o.Enabled != nil {
		d.Enabled = o.Enabled
	}
	if o.Severity != "" {
		d.Severity = o.Severity
	}
	if o.Action != "" {
		d.Action = o.Action
	}
	if o.Schedule != nil || o.Lookback != nil || o.MinCount != nil {
		fail("schedule, lookback and min_count belong to SQL rules; %s is a stream rule", d.ID)
	}
	if w := o.Window; w != nil {
		if d.Window == nil {
			fail("the rule has no window, so window cannot be tuned")
		} else {
			if w.Duration != nil {
				d.Window.Duration = *w.Duration
			}
			if w.Threshold != nil {
				d.Window.Threshold = *w.Threshold
			}
		}
	}
	if s := o.Sequence; s != nil {
		if d.Sequence == nil {
			fail("the rule is not a sequence, so sequence cannot be tuned")
		} else if s.Within != nil {
			d.Sequence.Within = *s.Within
		}
	}
	if o.Dedup != nil && o.Dedup.Suppress != nil {
		if d.Dedup == nil {
			d.Dedup = &dedupDoc{}
		}
		d.Dedup.Suppress = *o.Dedup.Suppress
	}
	for _, e := range o.Exceptions {
		l.addException(env, d, e)
	}
	if o.Tests != nil {
		d.Tests = o.Tests
	}
}

// addException appends `&& !(exception)` to the rule's match, or to the
// match of the step it names (every step when it names none).
func (l *loader) addException(env *celEnv, d *ruleDoc, e exceptionDoc) {
	file := l.overridesName
	if e.Match == nil || strings.TrimSpace(e.Match.Src) == "" {
		l.fail(file, e.line, "override of %s: exception %q has no match", d.ID, e.Name)
		return
	}
	// Each target is a match expression and the event types it reads.
	type target struct {
		match *srcExpr
		on    []string
	}
	var targets []target
	if d.Sequence != nil {
		found := false
		for i := range d.Sequence.Steps {
			s := &d.Sequence.Steps[i]
			if e.Step == "" || e.Step == s.Name {
				found = true
				if s.Match != nil {
					targets = append(targets, target{s.Match, s.On})
				}
			}
		}
		if !found {
			l.fail(file, e.line, "override of %s: exception %q names step %q, which the sequence does not have", d.ID, e.Name, e.Step)
			return
		}
	} else {
		if e.Step != "" {
			l.fail(file, e.line, "override of %s: exception %q names a step, but the rule is not a sequence", d.ID, e.Name)
			return
		}
		if d.Match == nil {
			return // the rule's own error says so
		}
		targets = append(targets, target{d.Match, d.On})
	}
	for _, t := range targets {
		for _, typ := range t.on {
			cenv, err := env.forType(typ)
			if err != nil {
				continue // the rule's own error says so
			}
			if _, _, err := env.compile(cenv, *e.Match, cel.BoolType, map[string]bool{}); err != nil {
				line := e.Match.Line
				reason := err.Error()
				if ee, ok := err.(*exprError); ok {
					line, reason = ee.line, ee.reason
				}
				l.fail(file, line, "override of %s: exception %q on %s: %s", d.ID, e.Name, typ, reason)
				return
			}
		}
	}
	for _, t := range targets {
		t.match.Src = "(" + t.match.Src + ") && !(" + e.Match.Src + ")"
	}
}

func (l *loader) overrideSQL(d *sqlRuleDoc, o overrideDoc, fail func(string, ...any)) {
	if o.Enabled != nil {
		d.Enabled = o.Enabled
	}
	if o.Severity != "" {
		d.Severity = o.Severity
	}
	if o.Action != "" {
		d.Action = o.Action
	}
	if o.Window != nil || o.Sequence != nil || len(o.Exceptions) > 0 {
		fail("window, sequence and exceptions belong to stream rules; %s is a SQL rule (tune its query in a copy)", d.ID)
	}
	if o.Schedule != nil {
		d.Schedule = *o.Schedule
	}
	if o.Lookback != nil {
		d.Lookback = *o.Lookback
	}
	if o.MinCount != nil {
		d.MinCount = *o.MinCount
	}
	if o.Dedup != nil && o.Dedup.Suppress != nil {
		if d.Dedup == nil {
			d.Dedup = &dedupDoc{}
		}
		d.Dedup.Suppress = *o.Dedup.Suppress
	}
	if o.Tests != nil {
		d.Tests = o.Tests
	}
}

// testsFile is the file a rule's tests come from: the override file when
// an override replaced them.
func (l *loader) testsFile(ruleFile, id string) string {
	for _, o := range l.overrides {
		if o.Rule == id && o.Tests != nil {
			return l.overridesName
		}
	}
	return ruleFile
}
