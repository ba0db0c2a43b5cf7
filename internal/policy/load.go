package policy

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultFile is the name the shipped policy loads under.
const DefaultFile = "default.yaml"

// DefaultYAML returns the shipped default policy file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Default loads the shipped default policy.
func Default(opts ...Option) (*Policy, error) {
	return Parse(DefaultFile, defaultYAML, opts...)
}

// Load reads and parses a policy file. A policy whose examples fail does
// not load.
func Load(file string, opts ...Option) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	return Parse(file, data, opts...)
}

// Parse parses policy file data; name is used in error positions.
func Parse(name string, data []byte, opts ...Option) (*Policy, error) {
	p, err := parse(name, data, opts...)
	if err != nil {
		return nil, err
	}
	if err := p.exampleErrors(name); err != nil {
		return nil, err
	}
	return p, nil
}

// defaultProtected are added to every policy unless default_protected_paths
// is false: hooks and config run code on the developer's machine later, and
// .env files hold secrets.
var defaultProtected = []string{".git/hooks/**", ".git/config", ".env", ".env.*"}

// defaultKnownSafe are programs that only read, added unless
// default_known_safe is false. forbid lists the arguments that make them
// write or run something else.
var defaultKnownSafe = []struct {
	prefix []string
	forbid []string
}{
	{[]string{"ls"}, nil}, {[]string{"cat"}, nil}, {[]string{"pwd"}, nil}, {[]string{"echo"}, nil},
	{[]string{"printf"}, []string{"-v"}}, {[]string{"true"}, nil}, {[]string{"false"}, nil},
	{[]string{"head"}, nil}, {[]string{"tail"}, nil}, {[]string{"wc"}, nil}, {[]string{"grep"}, nil},
	{[]string{"egrep"}, nil}, {[]string{"fgrep"}, nil},
	{[]string{"rg"}, []string{"--pre", "--pre=*", "--search-zip", "-z"}},
	{[]string{"find"}, []string{"-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf", "-fls"}},
	{[]string{"git", "status"}, nil},
	{[]string{"git", "diff"}, []string{"--output", "--output=*", "--ext-diff"}},
	{[]string{"git", "log"}, []string{"--output", "--output=*", "--ext-diff"}},
	{[]string{"git", "show"}, []string{"--output", "--output=*", "--ext-diff"}},
	{[]string{"git", "rev-parse"}, nil}, {[]string{"git", "ls-files"}, nil}, {[]string{"git", "blame"}, nil},
	{[]string{"wc"}, nil}, {[]string{"stat"}, nil}, {[]string{"file"}, nil}, {[]string{"which"}, nil},
	{[]string{"whoami"}, nil}, {[]string{"id"}, nil}, {[]string{"uname"}, nil}, {[]string{"date"}, []string{"-s", "--set", "--set=*"}},
	{[]string{"basename"}, nil}, {[]string{"dirname"}, nil}, {[]string{"realpath"}, nil}, {[]string{"readlink"}, nil},
	{[]string{"tree"}, []string{"-o"}}, {[]string{"du"}, nil}, {[]string{"df"}, nil}, {[]string{"diff"}, nil},
	{[]string{"cmp"}, nil}, {[]string{"sort"}, []string{"-o", "-o*", "--output", "--output=*"}},
	{[]string{"uniq"}, nil}, {[]string{"cut"}, nil}, {[]string{"tr"}, nil}, {[]string{"nl"}, nil},
	{[]string{"sha256sum"}, nil}, {[]string{"md5sum"}, nil}, {[]string{"printenv"}, nil},
	{[]string{"test"}, nil}, {[]string{"["}, nil}, {[]string{"[["}, nil},
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// loader decodes one policy file and remembers where errors are.
type loader struct {
	file string
}

func (l *loader) errAt(n *yaml.Node, format string, args ...any) error {
	e := &LoadError{File: l.file, Msg: fmt.Sprintf(format, args...), Err: ErrInvalidPolicy}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// example is a rule's example as loaded.
type example struct {
	rule    string
	want    string // "match" or "not_match"
	call    ToolCall
	display string
	line    int
	column  int
}

func parse(name string, data []byte, opts ...Option) (p *Policy, err error) {
	l := &loader{file: name}
	o := options{workspace: DefaultWorkspace}
	for _, opt := range opts {
		opt(&o)
	}
	if !path.IsAbs(o.workspace) {
		return nil, &LoadError{File: name, Msg: fmt.Sprintf("workspace %q is not absolute", o.workspace), Err: ErrInvalidPolicy}
	}
	root, err := l.decode(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	p = &Policy{sha256: hex.EncodeToString(sum[:]), mode: Untrusted, workspace: path.Clean(o.workspace)}
	var examples []example
	useDefaultProtected, useDefaultSafe := true, true
	var protected, ruleNodes, safeNodes *yaml.Node
	seen := map[string]bool{}
	err = l.fields(root, func(key string, k, v *yaml.Node) error {
		switch key {
		case "id":
			s, err := l.str(v)
			if err != nil {
				return err
			}
			if !idPattern.MatchString(s) {
				return l.errAt(v, "id %q: use letters, digits, '.', '_' and '-'", s)
			}
			p.id = s
		case "version":
			s, err := l.str(v)
			if err != nil {
				return err
			}
			p.version = s
		case "description":
			if _, err := l.str(v); err != nil {
				return err
			}
		case "approval_mode":
			s, err := l.str(v)
			if err != nil {
				return err
			}
			m := Mode(s)
			if m != Untrusted && m != OnRequest && m != Never {
				return l.errAt(v, "approval_mode %q: want untrusted, on-request or never", s)
			}
			p.mode = m
		case "protected_paths":
			protected = v
		case "default_protected_paths":
			b, err := l.boolean(v)
			if err != nil {
				return err
			}
			useDefaultProtected = b
		case "known_safe":
			safeNodes = v
		case "default_known_safe":
			b, err := l.boolean(v)
			if err != nil {
				return err
			}
			useDefaultSafe = b
		case "rules":
			ruleNodes = v
		default:
			return l.errAt(k, "unknown key %q", key)
		}
		seen[key] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !seen["id"] {
		return nil, l.errAt(root, "missing id")
	}
	if o.mode != "" {
		if o.mode != Untrusted && o.mode != OnRequest && o.mode != Never {
			return nil, &LoadError{File: name, Msg: fmt.Sprintf("approval mode %q: want untrusted, on-request or never", o.mode), Err: ErrInvalidPolicy}
		}
		p.mode = o.mode
	}
	if useDefaultProtected {
		for _, s := range defaultProtected {
			g, err := compileGlob(s)
			if err != nil {
				return nil, err
			}
			p.protected = append(p.protected, g)
		}
	}
	if protected != nil {
		gs, err := l.globs(protected)
		if err != nil {
			return nil, err
		}
		p.protected = append(p.protected, gs...)
	}
	if useDefaultSafe {
		for _, s := range defaultKnownSafe {
			e := safeEntry{prefix: s.prefix}
			for _, f := range s.forbid {
				g, err := compileArgGlob(f)
				if err != nil {
					return nil, err
				}
				e.forbid = append(e.forbid, g)
			}
			p.knownSafe = append(p.knownSafe, e)
		}
	}
	if safeNodes != nil {
		entries, err := l.knownSafe(safeNodes)
		if err != nil {
			return nil, err
		}
		p.knownSafe = append(p.knownSafe, entries...)
	}
	if ruleNodes != nil {
		if ruleNodes.Kind != yaml.SequenceNode {
			return nil, l.errAt(ruleNodes, "rules: want a list")
		}
		ids := map[string]bool{}
		for _, rn := range ruleNodes.Content {
			r, ex, err := l.rule(rn)
			if err != nil {
				return nil, err
			}
			if ids[r.id] {
				return nil, l.errAt(rn, "rule id %q is used twice", r.id)
			}
			ids[r.id] = true
			p.rules = append(p.rules, r)
			examples = append(examples, ex...)
		}
	}
	// Examples say which rule decides a call; the approval mode only
	// changes verdicts afterwards, so they are checked as on-request. They
	// are written for the workspace at its default mount point.
	ws := p.workspace
	p.workspace = DefaultWorkspace
	for _, ex := range examples {
		d := p.evaluateIn(ex.call, OnRequest)
		got := "not_match"
		if d.RuleID == ex.rule {
			got = "match"
		}
		p.examples = append(p.examples, ExampleResult{
			RuleID: ex.rule, Example: ex.display, Want: ex.want, Got: got,
			OK: got == ex.want, Decision: d, Line: ex.line, Column: ex.column,
		})
	}
	p.workspace = ws
	return p, nil
}

// exampleErrors joins a located error for each failing example.
func (p *Policy) exampleErrors(file string) error {
	var errs []error
	for _, ex := range p.examples {
		if ex.OK {
			continue
		}
		by := "no rule"
		if ex.Decision.RuleID != "" {
			by = "rule " + ex.Decision.RuleID
		}
		verb := "does not match"
		if ex.Want == "not_match" {
			verb = "matches"
		}
		errs = append(errs, &LoadError{File: file, Line: ex.Line, Column: ex.Column, Err: ErrExampleFailed,
			Msg: fmt.Sprintf("rule %s: example %s %s it: decided by %s (%s %s)",
				ex.RuleID, ex.Example, verb, by, ex.Decision.Verdict, ex.Decision.ReasonCode)})
	}
	return errors.Join(errs...)
}

func (l *loader) decode(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML library is third-party code fed a file we did not write;
		// a panic in it must become a load error.
		if r := recover(); r != nil {
			root, err = nil, &LoadError{File: l.file, Msg: fmt.Sprintf("yaml: %v", r), Err: ErrInvalidPolicy}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &LoadError{File: l.file, Msg: "empty policy", Err: ErrInvalidPolicy}
		}
		e := &LoadError{File: l.file, Msg: err.Error(), Err: ErrInvalidPolicy}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = strings.TrimPrefix(strings.Replace(err.Error(), "line "+m[1]+": ", "", 1), "yaml: ")
		}
		return nil, e
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &LoadError{File: l.file, Line: extra.Line, Msg: "more than one YAML document", Err: ErrInvalidPolicy}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, l.errAt(&doc, "empty policy")
	}
	root = doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, l.errAt(root, "policy: want a mapping")
	}
	return root, nil
}

// fields walks a mapping, rejecting aliases and repeated keys.
func (l *loader) fields(n *yaml.Node, f func(key string, k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode {
		return l.errAt(n, "aliases are not supported")
	}
	if n.Kind != yaml.MappingNode {
		return l.errAt(n, "want a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return l.errAt(k, "keys must be plain strings")
		}
		if v.Kind == yaml.AliasNode {
			return l.errAt(v, "aliases are not supported")
		}
		if seen[k.Value] {
			return l.errAt(k, "key %q repeated", k.Value)
		}
		seen[k.Value] = true
		if err := f(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) str(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", l.errAt(n, "want a string")
	}
	return n.Value, nil
}

func (l *loader) boolean(n *yaml.Node) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		switch strings.ToLower(n.Value) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, l.errAt(n, "want true or false")
}

// strs reads a string or a list of strings.
func (l *loader) strs(n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		s, err := l.str(n)
		if err != nil {
			return nil, err
		}
		return []string{s}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, l.errAt(n, "want a string or a list of strings")
	}
	var out []string
	for _, c := range n.Content {
		s, err := l.str(c)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (l *loader) globs(n *yaml.Node) ([]glob, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, l.errAt(n, "want a list of globs")
	}
	var out []glob
	for _, c := range n.Content {
		s, err := l.str(c)
		if err != nil {
			return nil, err
		}
		g, err := compileGlob(s)
		if err != nil {
			return nil, l.errAt(c, "%v", err)
		}
		out = append(out, g)
	}
	return out, nil
}

func (l *loader) argGlobs(n *yaml.Node) ([]argGlob, error) {
	ss, err := l.strs(n)
	if err != nil {
		return nil, err
	}
	var out []argGlob
	for i, s := range ss {
		g, err := compileArgGlob(s)
		if err != nil {
			at := n
			if n.Kind == yaml.SequenceNode {
				at = n.Content[i]
			}
			return nil, l.errAt(at, "%v", err)
		}
		out = append(out, g)
	}
	return out, nil
}

// prefix reads an argv prefix: a list whose elements are a word or a list
// of alternative words.
func (l *loader) prefix(n *yaml.Node) ([][]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, l.errAt(n, "prefix: want a list")
	}
	var out [][]string
	for _, c := range n.Content {
		alts, err := l.strs(c)
		if err != nil {
			return nil, err
		}
		if len(alts) == 0 {
			return nil, l.errAt(c, "prefix element: empty list of alternatives")
		}
		for _, a := range alts {
			if a == "" {
				return nil, l.errAt(c, "prefix element: empty word")
			}
		}
		out = append(out, alts)
	}
	return out, nil
}

func (l *loader) knownSafe(n *yaml.Node) ([]safeEntry, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, l.errAt(n, "known_safe: want a list")
	}
	var out []safeEntry
	for _, c := range n.Content {
		var e safeEntry
		switch c.Kind {
		case yaml.SequenceNode, yaml.ScalarNode:
			ss, err := l.strs(c)
			if err != nil {
				return nil, err
			}
			e.prefix = ss
		case yaml.MappingNode:
			err := l.fields(c, func(key string, k, v *yaml.Node) error {
				switch key {
				case "prefix":
					ss, err := l.strs(v)
					if err != nil {
						return err
					}
					e.prefix = ss
				case "forbid":
					gs, err := l.argGlobs(v)
					if err != nil {
						return err
					}
					e.forbid = gs
				default:
					return l.errAt(k, "unknown key %q in known_safe entry", key)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		default:
			return nil, l.errAt(c, "known_safe entry: want an argv prefix or {prefix, forbid}")
		}
		if len(e.prefix) == 0 || e.prefix[0] == "" {
			return nil, l.errAt(c, "known_safe entry: empty prefix")
		}
		out = append(out, e)
	}
	return out, nil
}

func (l *loader) rule(n *yaml.Node) (*rule, []example, error) {
	r := &rule{}
	var matchN, notMatchN, decisionN *yaml.Node
	reasonSet := false
	err := l.fields(n, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "id":
			r.id, err = l.str(v)
			if err == nil && !idPattern.MatchString(r.id) {
				err = l.errAt(v, "rule id %q: use letters, digits, '.', '_' and '-'", r.id)
			}
		case "description":
			_, err = l.str(v)
		case "tool":
			r.tools, err = l.strs(v)
			if err == nil && len(r.tools) == 0 {
				err = l.errAt(v, "tool: empty list")
			}
			for _, t := range r.tools {
				if _, perr := path.Match(t, ""); perr != nil || t == "" {
					return l.errAt(v, "tool %q: not a valid name or pattern", t)
				}
			}
		case "prefix":
			r.prefix, err = l.prefix(v)
			r.hasPrefix = true
		case "args":
			r.args, err = l.argGlobs(v)
		case "outside_workspace":
			r.outsideWorkspace, err = l.boolean(v)
		case "piped":
			var b bool
			b, err = l.boolean(v)
			r.piped = &b
		case "wipes_workspace":
			r.wipesWorkspace, err = l.boolean(v)
		case "paths":
			r.paths, err = l.globs(v)
		case "write":
			var b bool
			b, err = l.boolean(v)
			r.write = &b
		case "decision":
			var s string
			s, err = l.str(v)
			r.decision = Verdict(s)
			decisionN = v
			if err == nil && r.decision != Allow && r.decision != Ask && r.decision != Deny {
				err = l.errAt(v, "decision %q: want allow, ask or deny", s)
			}
		case "justification":
			r.justification, err = l.str(v)
		case "reason":
			r.reason, err = l.str(v)
			if err == nil && !reasonCodes[r.reason] {
				err = l.errAt(v, "reason %q is not a known reason code", r.reason)
			}
			reasonSet = true
		case "match":
			matchN = v
		case "not_match":
			notMatchN = v
		default:
			err = l.errAt(k, "unknown key %q in rule", key)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if r.id == "" {
		return nil, nil, l.errAt(n, "rule without id")
	}
	if decisionN == nil {
		return nil, nil, l.errAt(n, "rule %s: missing decision", r.id)
	}
	if strings.TrimSpace(r.justification) == "" {
		return nil, nil, l.errAt(n, "rule %s: missing justification", r.id)
	}
	if !reasonSet {
		r.reason = map[Verdict]string{Allow: ReasonAllowlisted, Ask: ReasonNeedsApproval, Deny: ReasonDeniedByRule}[r.decision]
	}
	var examples []example
	for _, ex := range []struct {
		n    *yaml.Node
		want string
	}{{matchN, "match"}, {notMatchN, "not_match"}} {
		if ex.n == nil {
			continue
		}
		if ex.n.Kind != yaml.SequenceNode {
			return nil, nil, l.errAt(ex.n, "%s: want a list of examples", ex.want)
		}
		for _, c := range ex.n.Content {
			e, err := l.example(c, r)
			if err != nil {
				return nil, nil, err
			}
			e.want = ex.want
			examples = append(examples, e)
		}
	}
	return r, examples, nil
}

// example reads one example: a command string, an argv list, or a mapping.
func (l *loader) example(n *yaml.Node, r *rule) (example, error) {
	e := example{rule: r.id, line: n.Line, column: n.Column}
	e.call.Tool = ShellTool
	for _, t := range r.tools {
		if !strings.ContainsAny(t, "*?[") {
			e.call.Tool = t
			break
		}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		s, err := l.str(n)
		if err != nil {
			return e, err
		}
		e.call.Command = s
		e.display = displayString(s)
	case yaml.SequenceNode:
		ss, err := l.strs(n)
		if err != nil {
			return e, err
		}
		if len(ss) == 0 {
			return e, l.errAt(n, "example: empty argv")
		}
		e.call.Argv = ss
		e.display = quoteArgv(ss)
	case yaml.MappingNode:
		err := l.fields(n, func(key string, k, v *yaml.Node) error {
			var err error
			switch key {
			case "tool":
				e.call.Tool, err = l.str(v)
			case "command":
				e.call.Command, err = l.str(v)
			case "argv":
				e.call.Argv, err = l.strs(v)
			case "path":
				var s string
				s, err = l.str(v)
				e.call.Paths = append(e.call.Paths, s)
			case "paths":
				var ss []string
				ss, err = l.strs(v)
				e.call.Paths = append(e.call.Paths, ss...)
			case "write":
				e.call.Write, err = l.boolean(v)
			case "cwd":
				e.call.Cwd, err = l.str(v)
			default:
				err = l.errAt(k, "unknown key %q in example", key)
			}
			return err
		})
		if err != nil {
			return e, err
		}
		e.display = displayCall(e.call)
	default:
		return e, l.errAt(n, "example: want a command string, an argv list or a mapping")
	}
	return e, nil
}

func displayString(s string) string {
	if strings.ContainsAny(s, "\n\t\r") {
		return strconv.Quote(s)
	}
	return s
}

// quoteArgv writes argv as a shell would need it typed.
func quoteArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = shellQuote(a)
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func displayCall(c ToolCall) string {
	var parts []string
	parts = append(parts, "tool="+c.Tool)
	if len(c.Argv) > 0 {
		parts = append(parts, "argv="+quoteArgv(c.Argv))
	}
	if c.Command != "" {
		parts = append(parts, "command="+displayString(c.Command))
	}
	for _, p := range c.Paths {
		parts = append(parts, "path="+p)
	}
	if c.Write {
		parts = append(parts, "write")
	}
	if c.Cwd != "" {
		parts = append(parts, "cwd="+c.Cwd)
	}
	return strings.Join(parts, " ")
}
