package detect

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"go.yaml.in/yaml/v3"
)

// nodeMap is a YAML mapping kept as a node so its keys keep their lines.
type nodeMap = yaml.Node

// ChainInfo is what the engine knows about an event's place in its hash
// chain (session_id, runner_id), exposed to rules as `chain`. The engine
// remembers the last seq and hash of every chain it has seen.
type ChainInfo struct {
	// Seen: an earlier event of this chain was seen.
	Seen bool `json:"seen"`
	// PrevSeq is the highest seq seen before this event.
	PrevSeq uint64 `json:"prev_seq"`
	// Gap is how many seqs are missing before this event (0 if none).
	Gap uint64 `json:"gap"`
	// Regressed: seq is not above PrevSeq (a replay, duplicate or reorder).
	Regressed bool `json:"regressed"`
	// HashMismatch: seq follows PrevSeq but prev_hash is not the hash of
	// the event seen at PrevSeq (an edit or a forged insertion).
	HashMismatch bool `json:"hash_mismatch"`
}

// payloadTypes maps each event type to its Go payload struct.
var payloadTypes = map[string]reflect.Type{
	events.TypeSessionStarted:    reflect.TypeFor[events.SessionStarted](),
	events.TypeSessionEnded:      reflect.TypeFor[events.SessionEnded](),
	events.TypeToolCallRequested: reflect.TypeFor[events.ToolCallRequested](),
	events.TypePolicyDecision:    reflect.TypeFor[events.PolicyDecision](),
	events.TypeApprovalRequested: reflect.TypeFor[events.ApprovalRequested](),
	events.TypeApprovalDecided:   reflect.TypeFor[events.ApprovalDecided](),
	events.TypeToolCallCompleted: reflect.TypeFor[events.ToolCallCompleted](),
	events.TypeNetEgress:         reflect.TypeFor[events.NetEgress](),
	events.TypeSandboxViolation:  reflect.TypeFor[events.SandboxViolation](),
	events.TypeAlertRaised:       reflect.TypeFor[events.AlertRaised](),
	events.TypeSessionHeld:       reflect.TypeFor[events.SessionHeld](),
	events.TypeSessionReleased:   reflect.TypeFor[events.SessionReleased](),
	events.TypeProcessExec:       reflect.TypeFor[events.ProcessExec](),
	events.TypeAgentPrompt:       reflect.TypeFor[events.AgentPrompt](),
	events.TypeAgentModelCall:    reflect.TypeFor[events.AgentModelCall](),
	events.TypeAgentResponse:     reflect.TypeFor[events.AgentResponse](),
	events.TypeAgentToolDecision: reflect.TypeFor[events.AgentToolDecision](),
	events.TypeAgentToolResult:   reflect.TypeFor[events.AgentToolResult](),
	events.TypeAgentSession:      reflect.TypeFor[events.AgentSession](),
	events.TypeAgentOther:        reflect.TypeFor[events.AgentOther](),
	events.TypeAlertTriaged:      reflect.TypeFor[events.AlertTriaged](),
	events.TypeRuleSuppressed:    reflect.TypeFor[events.RuleSuppressed](),
	events.TypeRuleUnsuppressed:  reflect.TypeFor[events.RuleUnsuppressed](),
}

// List is a named list of strings usable in any rule as lists.NAME.
type List struct {
	Name   string
	Values []string
	File   string
	Line   int
}

// Macro is a named CEL snippet usable in any rule as NAME(); it is
// expanded in place and type-checked in the rule's context.
type Macro struct {
	Name string
	Expr string
	File string
	Line int

	parsed ast.Expr
	err    error
	state  int      // 0 unparsed, 1 parsing, 2 done
	deps   []string // macros it expands directly
}

// celEnv holds the CEL environments of one rule set: a base with the
// envelope, chain, helpers, lists and macros, and one per event type that
// adds a typed `payload`.
type celEnv struct {
	reg    *typeRegistry
	base   *cel.Env
	byType map[string]*cel.Env
	macros map[string]*Macro
	// used collects the macros expanded while parsing one expression.
	used map[string]bool
}

func newCELEnv(lists []*List, macros []*Macro) (*celEnv, error) {
	roots := []reflect.Type{reflect.TypeFor[events.Envelope](), reflect.TypeFor[ChainInfo]()}
	for _, t := range events.EventTypes {
		roots = append(roots, payloadTypes[t])
	}
	reg, err := newTypeRegistry(roots...)
	if err != nil {
		return nil, err
	}
	c := &celEnv{reg: reg, byType: map[string]*cel.Env{}, macros: map[string]*Macro{}}
	opts := []cel.EnvOption{
		cel.CustomTypeProvider(reg),
		cel.CustomTypeAdapter(reg),
		cel.Variable("event", reg.byGo[reflect.TypeFor[events.Envelope]()].celType),
		cel.Variable("chain", reg.byGo[reflect.TypeFor[ChainInfo]()].celType),
		ext.Strings(),
	}
	opts = append(opts, helperFunctions()...)
	for _, l := range lists {
		opts = append(opts, cel.Constant("lists."+l.Name, cel.ListType(cel.StringType), newConstList(reg, l.Values)))
	}
	var ms []cel.Macro
	for _, m := range macros {
		c.macros[m.Name] = m
		name := m.Name
		ms = append(ms, cel.GlobalMacro(name, 0, func(eh cel.MacroExprFactory, _ ast.Expr, _ []ast.Expr) (ast.Expr, *common.Error) {
			body, err := c.expand(name)
			if err != nil {
				return nil, eh.NewError(0, err.Error())
			}
			return eh.Copy(body), nil
		}))
	}
	opts = append(opts, cel.Macros(ms...))
	if c.base, err = cel.NewEnv(opts...); err != nil {
		return nil, err
	}
	return c, nil
}

// expand returns the parsed body of macro name, parsing it (and the macros
// it uses) on first use.
func (c *celEnv) expand(name string) (ast.Expr, error) {
	m := c.macros[name]
	if c.used != nil {
		c.used[name] = true
	}
	switch m.state {
	case 2:
		return m.parsed, m.err
	case 1:
		return nil, fmt.Errorf("macro %s() expands itself", name)
	}
	m.state = 1
	outer := c.used
	c.used = map[string]bool{}
	a, iss := c.base.Parse(m.Expr)
	for d := range c.used {
		m.deps = append(m.deps, d)
	}
	slices.Sort(m.deps)
	c.used = outer
	for _, d := range m.deps {
		if c.used != nil {
			c.used[d] = true
		}
	}
	m.state = 2
	if iss != nil && iss.Err() != nil {
		m.err = fmt.Errorf("in macro %s() (%s:%d): %s", name, m.File, m.Line, firstLine(iss.Err().Error()))
		return nil, m.err
	}
	m.parsed = a.NativeRep().Expr()
	return m.parsed, nil
}

// forType returns the environment for rules on event type t.
func (c *celEnv) forType(t string) (*cel.Env, error) {
	if t == AnyEventType {
		return c.base, nil
	}
	if env, ok := c.byType[t]; ok {
		return env, nil
	}
	pt, ok := payloadTypes[t]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", t)
	}
	env, err := c.base.Extend(cel.Variable("payload", c.reg.byGo[pt].celType))
	if err != nil {
		return nil, err
	}
	c.byType[t] = env
	return env, nil
}

// exprError is a CEL compile error placed in the YAML file.
type exprError struct {
	line   int
	reason string
}

func (e *exprError) Error() string { return e.reason }

// compile parses and checks src in env, requiring result type want (nil
// for any), and returns the program. Macro uses are added to used.
func (c *celEnv) compile(env *cel.Env, src srcExpr, want *cel.Type, used map[string]bool) (cel.Program, *cel.Ast, error) {
	c.used = used
	parsed, iss := env.Parse(src.Src)
	c.used = nil
	if iss == nil || iss.Err() == nil {
		var checked *cel.Ast
		checked, iss = env.Check(parsed)
		if iss == nil || iss.Err() == nil {
			if want != nil && !checked.OutputType().IsExactType(want) && !checked.OutputType().IsExactType(cel.DynType) {
				return nil, nil, &exprError{line: src.Line, reason: fmt.Sprintf("expression %q has type %s, want %s", src.Src, checked.OutputType(), want)}
			}
			prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
			if err != nil {
				return nil, nil, &exprError{line: src.Line, reason: err.Error()}
			}
			return prg, checked, nil
		}
	}
	line := src.Line
	var msgs []string
	for _, e := range iss.Errors() {
		if l := e.Location.Line(); l > 1 {
			line = src.Line + l - 1
		}
		msgs = append(msgs, fmt.Sprintf("%s (column %d)", e.Message, e.Location.Column()+1))
		break // the first error is the useful one; the rest follow from it
	}
	if len(msgs) == 0 {
		msgs = append(msgs, firstLine(iss.Err().Error()))
	}
	return nil, nil, &exprError{line: line, reason: "in " + quoteExpr(src.Src) + ": " + strings.Join(msgs, "; ")}
}

func quoteExpr(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return "`" + s + "`"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimPrefix(s, "ERROR: "), "\n")
	return s
}

// references returns the names of lists a checked expression uses.
func listRefs(a *cel.Ast) []string {
	var out []string
	for _, r := range a.NativeRep().ReferenceMap() {
		if n, ok := strings.CutPrefix(r.Name, "lists."); ok {
			out = append(out, n)
		}
	}
	return out
}

// constList is a rule file's list: a CEL list whose `in` is a set lookup
// rather than a scan boxing every element.
type constList struct {
	traits.Lister
	set   map[string]struct{}
	globs []globPattern // the values compiled as glob patterns
}

func newConstList(a types.Adapter, vals []string) *constList {
	c := &constList{Lister: types.NewStringList(a, vals).(traits.Lister), set: make(map[string]struct{}, len(vals))}
	for _, v := range vals {
		c.set[v] = struct{}{}
		c.globs = append(c.globs, compileGlob(v))
	}
	return c
}

// Contains implements traits.Container.
func (c *constList) Contains(v ref.Val) ref.Val {
	if s, ok := v.(types.String); ok {
		_, in := c.set[string(s)]
		return types.Bool(in)
	}
	return c.Lister.Contains(v)
}
