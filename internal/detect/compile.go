package detect

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// compiledRule is a rule's programs, indexed by the event types it reads.
type compiledRule struct {
	rule *Rule
	// parts by event type; a sequence has one entry per step that reads
	// the type, last step first, so one event never completes two steps.
	parts     map[string][]*part
	steps     int
	within    time.Duration
	duration  time.Duration
	threshold int
	distinct  bool
	suppress  time.Duration
	listsUsed []string
	macroUsed []string
	// keyedBySession: every group and dedup key starts with
	// event.session_id, so all of a group's events share a session (and
	// so a partition of audit.events).
	keyedBySession bool
}

// part is a rule, or one step of a sequence, compiled for one event type.
type part struct {
	step     int
	match    cel.Program
	groupBy  []cel.Program
	distinct cel.Program
	captures []capture
	// Set only where an occurrence can complete: every part of a match or
	// window rule, the last step of a sequence.
	dedupKey []cel.Program
	output   *template
}

type capture struct {
	name string
	prg  cel.Program
}

// checkHeader checks the fields every kind of rule shares, reporting through
// fail, and returns the action with its default filled in. versionHint ends
// the version message.
func checkHeader(fail func(int, string, ...any), line int, id, version, title string, sev events.Severity, action Action, versionHint string) Action {
	if !ruleIDPattern.MatchString(id) || len(id) > 128 {
		fail(line, "rule id %q must be lower-case letters, digits and . _ / - (at most 128)", id)
	}
	if !versionPattern.MatchString(version) || len(version) > 64 {
		fail(line, "rule %s: version %q must be letters, digits and . _ -%s", id, version, versionHint)
	}
	if title == "" {
		fail(line, "rule %s: title is required", id)
	}
	if !slices.Contains(severities, sev) {
		fail(line, "rule %s: severity %q is not one of info, low, medium, high, critical", id, sev)
	}
	if action == "" {
		action = ActionAlert
	}
	if !slices.Contains([]Action{ActionAlert, ActionHoldSession, ActionRequestApproval}, action) {
		fail(line, "rule %s: action %q is not one of alert, hold_session, request_approval", id, action)
	}
	return action
}

// compileRule checks a rule document and compiles it. Errors carry lines.
func (c *celEnv) compileRule(file string, line int, d *ruleDoc) (*Rule, []*LoadError) {
	var errs []*LoadError
	fail := func(l int, format string, args ...any) {
		if l == 0 {
			l = line
		}
		errs = append(errs, &LoadError{File: file, Line: l, Reason: fmt.Sprintf(format, args...)})
	}
	failExpr := func(err error) {
		if ee, ok := err.(*exprError); ok {
			fail(ee.line, "rule %s: %s", d.ID, ee.reason)
			return
		}
		fail(line, "rule %s: %v", d.ID, err)
	}
	r := &Rule{
		ID: d.ID, Version: d.Version, Title: d.Title, Description: d.Description,
		Severity: events.Severity(d.Severity), Tags: d.Tags, Enabled: d.Enabled == nil || *d.Enabled,
		Action: Action(d.Action), File: file, Line: line, Kind: KindMatch,
	}
	r.Action = checkHeader(fail, line, d.ID, d.Version, d.Title, r.Severity, r.Action, ` (quote numbers: "1")`)
	if d.Window != nil && d.Sequence != nil {
		fail(line, "rule %s: a rule has a window or a sequence, not both", d.ID)
		return nil, errs
	}
	cr := &compiledRule{rule: r, parts: map[string][]*part{}, keyedBySession: true}
	r.compiled = cr
	used := map[string]bool{}
	var lists []string

	// compileFor compiles the expressions of one step (or the rule) for
	// event type t.
	compileFor := func(t string, step int, match *srcExpr, groupBy []srcExpr, caps *nodeMap, final bool) *part {
		env, err := c.forType(t)
		if err != nil {
			fail(line, "rule %s: %v", d.ID, err)
			return nil
		}
		p := &part{step: step}
		prg, a, err := c.compile(env, *match, cel.BoolType, used)
		if err != nil {
			failExpr(err)
			return nil
		}
		p.match = prg
		lists = append(lists, listRefs(a)...)
		if len(groupBy) == 0 {
			groupBy = []srcExpr{{Src: "event.session_id", Line: line}}
		}
		if !isSessionExpr(groupBy[0].Src) {
			cr.keyedBySession = false
		}
		for _, g := range groupBy {
			prg, a, err := c.compile(env, g, nil, used)
			if err != nil {
				failExpr(err)
				return nil
			}
			lists = append(lists, listRefs(a)...)
			p.groupBy = append(p.groupBy, prg)
		}
		if d.Window != nil && d.Window.Distinct != nil {
			prg, _, err := c.compile(env, *d.Window.Distinct, nil, used)
			if err != nil {
				failExpr(err)
				return nil
			}
			p.distinct = prg
		}
		if caps != nil && caps.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(caps.Content); i += 2 {
				k, v := caps.Content[i], caps.Content[i+1]
				if !namePattern.MatchString(k.Value) {
					fail(k.Line, "rule %s: capture name %q must match [a-z][a-z0-9_]*", d.ID, k.Value)
					continue
				}
				prg, _, err := c.compile(env, srcExpr{Src: v.Value, Line: v.Line}, nil, used)
				if err != nil {
					failExpr(err)
					continue
				}
				p.captures = append(p.captures, capture{name: k.Value, prg: prg})
			}
		}
		if !final {
			return p
		}
		oenv, err := c.outputEnv(env, d)
		if err != nil {
			fail(line, "rule %s: %v", d.ID, err)
			return nil
		}
		if d.Dedup != nil {
			if len(d.Dedup.Key) > 0 && !isSessionExpr(d.Dedup.Key[0].Src) {
				cr.keyedBySession = false
			}
			for _, k := range d.Dedup.Key {
				prg, _, err := c.compile(env, k, nil, used)
				if err != nil {
					failExpr(err)
					return nil
				}
				p.dedupKey = append(p.dedupKey, prg)
			}
		}
		out := srcExpr{Src: d.Title, Line: line}
		if d.Output != nil {
			out = *d.Output
		}
		if p.output, err = compileTemplate(c, oenv, out, used); err != nil {
			failExpr(err)
			return nil
		}
		return p
	}

	switch {
	case d.Sequence != nil:
		r.Kind = KindSequence
		seq := d.Sequence
		if d.Match != nil {
			fail(d.Match.Line, "rule %s: a sequence rule has a match per step, not a rule match", d.ID)
		}
		if len(d.On) > 0 {
			fail(line, "rule %s: a sequence rule has `on` per step, not for the rule", d.ID)
		}
		if len(seq.Steps) < 2 || len(seq.Steps) > maxSteps {
			fail(line, "rule %s: a sequence has 2 to %d steps, not %d", d.ID, maxSteps, len(seq.Steps))
			return nil, errs
		}
		if seq.Within <= 0 {
			fail(line, "rule %s: sequence.within must be a positive duration", d.ID)
		}
		cr.steps, cr.within = len(seq.Steps), time.Duration(seq.Within)
		r.Sequence = &Sequence{Within: cr.within}
		for i, s := range seq.Steps {
			if err := checkOn(s.On); err != nil {
				fail(line, "rule %s: step %d: %v", d.ID, i+1, err)
				continue
			}
			if s.Match == nil {
				fail(line, "rule %s: step %d has no match", d.ID, i+1)
				continue
			}
			r.Sequence.Steps = append(r.Sequence.Steps, Step{Name: s.Name, On: s.On, Match: s.Match.Src})
			gb := s.GroupBy
			if len(gb) == 0 {
				gb = d.GroupBy
			}
			for _, t := range s.On {
				cap := s.Capture
				if p := compileFor(t, i, s.Match, gb, &cap, i == len(seq.Steps)-1); p != nil {
					cr.parts[t] = append(cr.parts[t], p)
				}
				if !slices.Contains(r.On, t) {
					r.On = append(r.On, t)
				}
			}
		}
		for _, ps := range cr.parts {
			sort.Slice(ps, func(i, j int) bool { return ps[i].step > ps[j].step })
		}
	default:
		if err := checkOn(d.On); err != nil {
			fail(line, "rule %s: %v", d.ID, err)
			return nil, errs
		}
		if d.Match == nil {
			fail(line, "rule %s: match is required", d.ID)
			return nil, errs
		}
		r.On = d.On
		if w := d.Window; w != nil {
			r.Kind = KindWindow
			if w.Duration <= 0 {
				fail(line, "rule %s: window.duration must be a positive duration", d.ID)
			}
			if w.Threshold < 1 || w.Threshold > maxThreshold {
				fail(line, "rule %s: window.threshold must be 1 to %d", d.ID, maxThreshold)
			}
			cr.duration, cr.threshold, cr.distinct = time.Duration(w.Duration), w.Threshold, w.Distinct != nil
			r.Window = &Window{Duration: cr.duration, Threshold: w.Threshold}
			if w.Distinct != nil {
				r.Window.Distinct = w.Distinct.Src
			}
		}
		for _, t := range d.On {
			if p := compileFor(t, 0, d.Match, d.GroupBy, nil, true); p != nil {
				cr.parts[t] = append(cr.parts[t], p)
			}
		}
	}
	if d.Dedup != nil {
		if d.Dedup.Suppress <= 0 {
			fail(line, "rule %s: dedup.suppress must be a positive duration", d.ID)
		}
		cr.suppress = time.Duration(d.Dedup.Suppress)
		r.Dedup = &Dedup{Suppress: cr.suppress}
	}
	for m := range used {
		cr.macroUsed = append(cr.macroUsed, m)
	}
	slices.Sort(cr.macroUsed)
	slices.Sort(lists)
	cr.listsUsed = slices.Compact(lists)
	return r, errs
}

// outputEnv adds the variables an output template may use.
func (c *celEnv) outputEnv(env *cel.Env, d *ruleDoc) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.Variable("count", cel.IntType),
		cel.Variable("group", cel.StringType),
		cel.Variable("distinct", cel.ListType(cel.StringType)),
		cel.Variable("first_seen", cel.TimestampType),
		cel.Variable("last_seen", cel.TimestampType),
	}
	if d.Sequence != nil {
		seen := map[string]bool{}
		for _, s := range d.Sequence.Steps {
			for i := 0; i+1 < len(s.Capture.Content); i += 2 {
				name := s.Capture.Content[i].Value
				if namePattern.MatchString(name) && !seen[name] {
					seen[name] = true
					opts = append(opts, cel.Variable("capture."+name, cel.StringType))
				}
			}
		}
	}
	return env.Extend(opts...)
}
