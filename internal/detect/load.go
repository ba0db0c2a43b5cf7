package detect

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RuleSet is a loaded, compiled rule directory.
type RuleSet struct {
	Rules    []*Rule
	SQLRules []*SQLRule
	Lists    []*List
	Macros   []*Macro

	env *celEnv
}

// Rule returns the stream rule with the given id, or nil.
func (rs *RuleSet) Rule(id string) *Rule {
	for _, r := range rs.Rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Load reads every *.yaml and *.yml file under dir (test event files
// referenced by rules are read relative to the rule file).
func Load(dir string, opts ...LoadOption) (*RuleSet, error) {
	return LoadFS(os.DirFS(dir), opts...)
}

// LoadFS loads a rule directory from fsys. The error, if any, is LoadErrors
// listing every problem found with its file and line; the RuleSet is then
// nil.
func LoadFS(fsys fs.FS, opts ...LoadOption) (*RuleSet, error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return fs.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, LoadErrors{{File: ".", Reason: err.Error()}}
	}
	if len(files) == 0 {
		return nil, LoadErrors{{File: ".", Reason: "no *.yaml rule files"}}
	}
	l := &loader{fsys: fsys}
	for _, o := range opts {
		o(l)
	}
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			l.fail(f, 0, "%v", err)
			continue
		}
		l.parseFile(f, data)
	}
	return l.finish()
}

type loader struct {
	fsys   fs.FS
	errs   LoadErrors
	lists  []*List
	macros []*Macro
	rules  []pendingRule
	sql    []pendingSQL

	// The override file (WithOverrides): its path as given, as reported,
	// and its entries.
	overridesPath string
	overridesName string
	overrides     []overrideDoc
}

type pendingRule struct {
	file string
	line int
	doc  ruleDoc
}

type pendingSQL struct {
	file string
	line int
	doc  sqlRuleDoc
}

func (l *loader) fail(file string, line int, format string, args ...any) {
	l.errs = append(l.errs, &LoadError{File: file, Line: line, Reason: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (l *loader) parseFile(file string, data []byte) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			l.fail(file, n, "%s", m[2])
		} else {
			l.fail(file, 0, "%s", cleanYAMLError(err))
		}
		return
	}
	if len(doc.Content) == 0 {
		return // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		l.fail(file, root.Line, "a rule file is a mapping with lists, macros, rules and sql_rules")
		return
	}
	var fd fileDoc
	if line, err := decodeStrict(root, &fd); err != nil {
		l.fail(file, line, "%v", err)
		return
	}
	if fd.Lists.Kind != 0 {
		l.parseLists(file, &fd.Lists)
	}
	if fd.Macros.Kind != 0 {
		l.parseMacros(file, &fd.Macros)
	}
	// Rule lines come from the nodes, which Decode does not keep.
	ruleNodes := childSeq(root, "rules")
	for i, d := range fd.Rules {
		line := root.Line
		if i < len(ruleNodes) {
			line = ruleNodes[i].Line
		}
		l.rules = append(l.rules, pendingRule{file, line, d})
	}
	sqlNodes := childSeq(root, "sql_rules")
	for i, d := range fd.SQLRules {
		line := root.Line
		if i < len(sqlNodes) {
			line = sqlNodes[i].Line
		}
		l.sql = append(l.sql, pendingSQL{file, line, d})
	}
}

func childSeq(m *yaml.Node, key string) []*yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.SequenceNode {
			return m.Content[i+1].Content
		}
	}
	return nil
}

func (l *loader) parseLists(file string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.fail(file, n.Line, "lists must map names to lists of strings")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !namePattern.MatchString(k.Value) {
			l.fail(file, k.Line, "list name %q must match [a-z][a-z0-9_]*", k.Value)
			continue
		}
		var vals []string
		if v.Kind != yaml.SequenceNode || v.Decode(&vals) != nil {
			l.fail(file, v.Line, "list %s must be a list of strings", k.Value)
			continue
		}
		if prev := findByName(l.lists, k.Value, func(x *List) string { return x.Name }); prev != nil {
			l.fail(file, k.Line, "list %s is already defined at %s:%d", k.Value, prev.File, prev.Line)
			continue
		}
		l.lists = append(l.lists, &List{Name: k.Value, Values: vals, File: file, Line: k.Line})
	}
}

func (l *loader) parseMacros(file string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		l.fail(file, n.Line, "macros must map names to CEL expressions")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !namePattern.MatchString(k.Value) {
			l.fail(file, k.Line, "macro name %q must match [a-z][a-z0-9_]*", k.Value)
			continue
		}
		if slices.Contains(functionNames, k.Value) || slices.Contains(reservedNames, k.Value) {
			l.fail(file, k.Line, "macro name %q is a built-in function", k.Value)
			continue
		}
		if v.Kind != yaml.ScalarNode {
			l.fail(file, v.Line, "macro %s must be a CEL expression string", k.Value)
			continue
		}
		if prev := findByName(l.macros, k.Value, func(x *Macro) string { return x.Name }); prev != nil {
			l.fail(file, k.Line, "macro %s is already defined at %s:%d", k.Value, prev.File, prev.Line)
			continue
		}
		line := v.Line
		if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			line++
		}
		l.macros = append(l.macros, &Macro{Name: k.Value, Expr: v.Value, File: file, Line: line})
	}
}

// reservedNames are CEL's own macros and common functions a macro must not
// shadow.
var reservedNames = []string{"has", "all", "exists", "exists_one", "map", "filter", "size", "matches", "contains", "startsWith", "endsWith", "int", "uint", "string", "bool", "double", "timestamp", "duration", "type", "dyn"}

func findByName[T any](xs []T, name string, f func(T) string) T {
	for _, x := range xs {
		if f(x) == name {
			return x
		}
	}
	var zero T
	return zero
}

func (l *loader) finish() (*RuleSet, error) {
	env, err := newCELEnv(l.lists, l.macros)
	if err != nil {
		l.fail(".", 0, "CEL environment: %v", err)
		return nil, l.errs.sorted()
	}
	rs := &RuleSet{Lists: l.lists, Macros: l.macros, env: env}
	l.readOverrides()
	l.applyOverrides(env)
	// Every macro must parse, used or not.
	for _, m := range l.macros {
		env.used = nil
		if _, err := env.expand(m.Name); err != nil {
			l.fail(m.File, m.Line, "%v", err)
		}
	}
	seen := map[string]string{}
	for _, p := range l.rules {
		if prev, dup := seen[p.doc.ID]; dup && p.doc.ID != "" {
			l.fail(p.file, p.line, "rule id %s is already used at %s", p.doc.ID, prev)
			continue
		}
		seen[p.doc.ID] = fmt.Sprintf("%s:%d", p.file, p.line)
		r, errs := env.compileRule(p.file, p.line, &p.doc)
		l.errs = append(l.errs, errs...)
		if r == nil || len(errs) > 0 {
			continue
		}
		tests, errs := l.buildTests(l.testsFile(p.file, p.doc.ID), r.ID, p.doc.Tests, false)
		l.errs = append(l.errs, errs...)
		r.Tests = tests
		rs.Rules = append(rs.Rules, r)
	}
	for _, p := range l.sql {
		if prev, dup := seen[p.doc.ID]; dup && p.doc.ID != "" {
			l.fail(p.file, p.line, "rule id %s is already used at %s", p.doc.ID, prev)
			continue
		}
		seen[p.doc.ID] = fmt.Sprintf("%s:%d", p.file, p.line)
		r, errs := compileSQLRule(p.file, p.line, &p.doc)
		l.errs = append(l.errs, errs...)
		if r == nil || len(errs) > 0 {
			continue
		}
		tests, errs := l.buildTests(l.testsFile(p.file, p.doc.ID), r.ID, p.doc.Tests, true)
		l.errs = append(l.errs, errs...)
		r.Tests = tests
		rs.SQLRules = append(rs.SQLRules, r)
	}
	if len(l.errs) > 0 {
		return nil, l.errs.sorted()
	}
	return rs, nil
}

// dirOf is the directory test event files are relative to.
func dirOf(file string) string { return path.Dir(file) }
