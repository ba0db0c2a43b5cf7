package detect

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Finding is one lint result.
type Finding struct {
	File string
	Line int
	Rule string
	// Code is machine-readable: load_error, unused_list, unused_macro,
	// never_matches, missing_fire_test, missing_no_fire_test.
	Code    string
	Message string
}

func (f Finding) String() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return fmt.Sprintf("%s: %s: %s", loc, f.Code, f.Message)
}

// Lint codes.
const (
	LintLoadError     = "load_error"
	LintUnusedList    = "unused_list"
	LintUnusedMacro   = "unused_macro"
	LintNeverMatches  = "never_matches"
	LintMissingFire   = "missing_fire_test"
	LintMissingNoFire = "missing_no_fire_test"
)

// LoadFindings turns a Load error into findings.
func LoadFindings(err error) []Finding {
	var les LoadErrors
	if errors.As(err, &les) {
		out := make([]Finding, len(les))
		for i, e := range les {
			out[i] = Finding{File: e.File, Line: e.Line, Code: LintLoadError, Message: e.Reason}
		}
		return out
	}
	return []Finding{{File: ".", Code: LintLoadError, Message: err.Error()}}
}

// Lint reports unused lists and macros, rules without a firing and a
// non-firing test, and rules that can never match their own tests: none of
// their test events is of a type they read, or no fire test fires.
func Lint(rs *RuleSet) []Finding {
	var out []Finding
	usedLists, usedMacros := map[string]bool{}, map[string]bool{}
	for _, r := range rs.Rules {
		for _, l := range r.compiled.listsUsed {
			usedLists[l] = true
		}
		for _, m := range r.compiled.macroUsed {
			usedMacros[m] = true
		}
	}
	for _, l := range rs.Lists {
		if !usedLists[l.Name] {
			out = append(out, Finding{File: l.File, Line: l.Line, Code: LintUnusedList, Message: fmt.Sprintf("list %s is not used by any rule", l.Name)})
		}
	}
	for _, m := range rs.Macros {
		if !usedMacros[m.Name] {
			out = append(out, Finding{File: m.File, Line: m.Line, Code: LintUnusedMacro, Message: fmt.Sprintf("macro %s() is not used by any rule", m.Name)})
		}
	}
	results := map[string][]TestResult{}
	for _, res := range RunTests(rs) {
		results[res.Rule] = append(results[res.Rule], res)
	}
	type ruleInfo struct {
		id, file string
		line     int
		tests    []Test
		on       []string
	}
	var infos []ruleInfo
	for _, r := range rs.Rules {
		infos = append(infos, ruleInfo{r.ID, r.File, r.Line, r.Tests, r.On})
	}
	for _, r := range rs.SQLRules {
		infos = append(infos, ruleInfo{r.ID, r.File, r.Line, r.Tests, nil})
	}
	for _, r := range infos {
		var fire, noFire bool
		for _, t := range r.tests {
			fire = fire || t.Expect == ExpectFire
			noFire = noFire || t.Expect == ExpectNoFire
		}
		if !fire {
			out = append(out, Finding{File: r.file, Line: r.line, Rule: r.id, Code: LintMissingFire, Message: fmt.Sprintf("rule %s has no test that must fire", r.id)})
		}
		if !noFire {
			out = append(out, Finding{File: r.file, Line: r.line, Rule: r.id, Code: LintMissingNoFire, Message: fmt.Sprintf("rule %s has no test that must not fire", r.id)})
		}
		if r.on != nil && len(r.tests) > 0 && !slices.Contains(r.on, AnyEventType) {
			reads := false
			for _, t := range r.tests {
				for _, e := range t.Events {
					reads = reads || slices.Contains(r.on, e.EventType)
				}
			}
			if !reads {
				out = append(out, Finding{File: r.file, Line: r.line, Rule: r.id, Code: LintNeverMatches,
					Message: fmt.Sprintf("rule %s reads %v but none of its test events is of those types", r.id, r.on)})
				continue
			}
		}
		if fire {
			fired := false
			for _, res := range results[r.id] {
				fired = fired || (res.Expect == ExpectFire && res.Got > 0)
			}
			if !fired {
				out = append(out, Finding{File: r.file, Line: r.line, Rule: r.id, Code: LintNeverMatches,
					Message: fmt.Sprintf("rule %s fires on none of its own fire tests", r.id)})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out
}
