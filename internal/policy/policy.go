// Package policy decides whether an agent's tool call, and each program it
// starts, may run: allow, ask or deny, with a reason.
//
// A policy is a YAML file (see default.yaml, the shipped one) with an id,
// a version, an approval_mode (untrusted, on-request or never),
// protected_paths, known_safe argv prefixes and an ordered list of rules.
// A rule matches on tool (names or path.Match patterns), prefix (an argv
// prefix whose elements are a word or a list of alternatives, as in Codex's
// execpolicy), args (patterns any argument matches), outside_workspace,
// wipes_workspace (the program deletes every file in the workspace: rm -r
// of its root or of *, find from the root with -delete), piped (stdin is
// another command's output), paths (globs over the files a file tool
// touches or a command writes) and write; it carries a decision, a
// justification and a reason code, and match / not_match examples that
// must hold for the file to load.
//
// Two questions are asked. Evaluate decides a tool call: the command
// string is the early, readable question an approver sees. EvaluateExec
// decides one exec inside the sandbox, on the real argv, the executable
// and the working directory, before the program runs; the sandbox
// supervisor asks it for every program every call starts, and that is the
// boundary. Both use the same rules.
//
// Shell strings are parsed as bash parses them (tool calls run with
// bash -c), not matched as text: wrappers (env, sudo, timeout, nice,
// taskset, flock, setpriv, script -c, xargs, find -exec, sh -c, eval …)
// are looked through where their argv layout is certain, git-X is git X,
// git -c alias.X=… X is what the alias runs, and each program in a chain,
// pipeline or substitution is decided on its own; the strictest decision
// wins. Words known only at run time ($X, $(…), globs) can make an ask or
// deny rule match, which then asks, but never make an allow rule match.
//
// The policy fails safe: what it does not fully model asks with reason
// invalid_arguments and is never allowed. That covers bash it does not
// model (select, coproc, alias, trap, (( )), arithmetic on variables,
// ${!x} and ${x@P}, a carriage return outside quotes, set -k …), programs
// named at run time, wrappers with options it does not know (su, parallel,
// socat, strace …), variables that change which code runs (PATH,
// LD_PRELOAD, BASH_ENV, GIT_CONFIG_* …), git configuration that runs
// programs (-c core.hooksPath, --config-env, a subcommand it does not know,
// which may be an alias), and inline code in a language it does not judge
// (perl -e, python -c, node -e, an awk program that calls system() or pipes,
// a sed script with e). Code read from a file or stdin (sh x.sh, python
// x.py, source x, … | sh) asks in a command string, because the string does
// not show it; EvaluateExec decides such an interpreter alone, because each
// program that code starts is an exec of its own, and every #! script
// reaches the exec level as "interpreter script". Running a workspace
// program directly (./build.sh, make, go test) is decided as that program
// at both levels: what it starts is decided exec by exec.
//
// First matching rule wins. An allow is still raised to ask when the call
// writes a protected path, and, in untrusted mode, when the program is not
// known safe. Writes are redirections and the files that common programs
// name (cp -t, tee, sed -i and w, sort -o, curl -o, dd of=, tar -x -C,
// git config …). With no matching rule: a protected write asks, a
// known-safe program is allowed, anything else is denied (default_deny).
// In never mode every ask becomes a deny with reason never_ask.
//
// ProtectedPaths and NewPathMatcher give a file-system guard the protected
// globs, in the dialect of package glob that policy files share with
// detection rules and sandbox profiles.
package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Verdict is what the policy says about a tool call.
type Verdict string

// Verdicts, from least to most strict.
const (
	Allow Verdict = "allow"
	Ask   Verdict = "ask"
	Deny  Verdict = "deny"
)

func (v Verdict) strictness() int {
	switch v {
	case Allow:
		return 0
	case Ask:
		return 1
	default:
		return 2
	}
}

// Mode is an approval mode, as in Codex.
type Mode string

const (
	// Untrusted asks for everything that is not known safe.
	Untrusted Mode = "untrusted"
	// OnRequest asks only where a rule or a protected path says so.
	OnRequest Mode = "on-request"
	// Never asks nobody: what would ask is denied with reason never_ask.
	Never Mode = "never"
)

// Reason codes a Decision carries; the shared event schema enumerates them.
const (
	ReasonAllowlisted          = "allowlisted"
	ReasonKnownSafe            = "known_safe"
	ReasonDeniedByRule         = "denied_by_rule"
	ReasonDefaultDeny          = "default_deny"
	ReasonNeedsApproval        = "needs_approval"
	ReasonNeverAsk             = "never_ask"
	ReasonProtectedPath        = "protected_path"
	ReasonPathOutsideWorkspace = "path_outside_workspace"
	ReasonInvalidArguments     = "invalid_arguments"
)

// reasonCodes are the codes a rule may name in "reason".
var reasonCodes = map[string]bool{
	"allowlisted": true, "known_safe": true, "denied_by_rule": true, "default_deny": true,
	"needs_approval": true, "approved": true, "approved_for_session": true, "approval_denied": true,
	"approval_expired": true, "never_ask": true, "audit_unavailable": true, "session_held": true,
	"path_outside_workspace": true, "protected_path": true, "invalid_arguments": true,
	"private_address": true, "loopback_address": true, "link_local_address": true,
	"metadata_address": true, "multicast_address": true, "unspecified_address": true,
	"reserved_address": true, "sni_mismatch": true, "dns_failure": true, "connection_limit": true,
	"header_too_large": true, "idle_timeout": true, "bad_request": true, "upstream_error": true,
	"timeout": true, "sandbox_error": true,
}

// ShellTool is the tool name that examples written as an argv or a command
// string use unless their rule names another tool.
const ShellTool = "shell"

// DefaultWorkspace is where the workspace is mounted in the sandbox.
const DefaultWorkspace = "/workspace"

// ToolCall is what an agent asks to do.
type ToolCall struct {
	Tool string
	// Argv is the program and its arguments when the call runs without a shell.
	Argv []string
	// Command is a shell string, parsed when Argv is empty.
	Command string
	// Cwd is the working directory: absolute in the sandbox, or relative to
	// the workspace. Empty means the workspace root.
	Cwd string
	// Paths are the files a file tool touches, relative to the workspace and
	// already resolved by the caller.
	Paths []string
	// Write says the tool changes the files in Paths.
	Write bool
}

// IsCommand reports whether the call runs a program.
func (c ToolCall) IsCommand() bool { return len(c.Argv) > 0 || c.Command != "" }

// Decision is the policy's answer for one tool call.
type Decision struct {
	Verdict       Verdict `json:"verdict"`
	ReasonCode    string  `json:"reason_code"`
	RuleID        string  `json:"rule_id,omitempty"`
	Justification string  `json:"justification,omitempty"`
	PolicyID      string  `json:"policy_id"`
	PolicySHA256  string  `json:"policy_sha256"`
}

// Errors returned when a policy does not load.
var (
	// ErrInvalidPolicy: the file is not a valid policy.
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrExampleFailed: a rule's match or not_match example does not hold.
	ErrExampleFailed = errors.New("policy example failed")
)

// LoadError locates a problem in a policy file.
type LoadError struct {
	File   string
	Line   int // 0 when unknown
	Column int
	Msg    string
	Err    error // ErrInvalidPolicy or ErrExampleFailed
}

func (e *LoadError) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

func (e *LoadError) Unwrap() error { return e.Err }

// Policy is a loaded policy file. It is immutable and safe for concurrent use.
type Policy struct {
	id        string
	version   string
	mode      Mode
	sha256    string
	workspace string
	protected []glob
	knownSafe []safeEntry
	rules     []*rule
	examples  []ExampleResult
}

// ProtectedPaths returns the protected_paths globs as written: the
// defaults (unless default_protected_paths is false) and then the file's.
// NewPathMatcher compiles them for a file-system guard.
func (p *Policy) ProtectedPaths() []string {
	out := make([]string, len(p.protected))
	for i, g := range p.protected {
		out[i] = g.p.String()
	}
	return out
}

// ID is the policy's id field.
func (p *Policy) ID() string { return p.id }

// Version is the policy's version field.
func (p *Policy) Version() string { return p.version }

// SHA256 is the hex sha256 of the policy file's bytes.
func (p *Policy) SHA256() string { return p.sha256 }

// Mode is the approval mode in force.
func (p *Policy) Mode() Mode { return p.mode }

// Examples returns every rule example and whether it held, in file order.
func (p *Policy) Examples() []ExampleResult {
	return append([]ExampleResult(nil), p.examples...)
}

// Option changes how a policy loads.
type Option func(*options)

type options struct {
	mode      Mode
	workspace string
}

// WithApprovalMode overrides the file's approval_mode.
func WithApprovalMode(m Mode) Option { return func(o *options) { o.mode = m } }

// WithWorkspace sets where the workspace is mounted in the sandbox
// (default /workspace); absolute paths below it count as inside.
func WithWorkspace(dir string) Option { return func(o *options) { o.workspace = dir } }

type tri uint8

const (
	no tri = iota
	maybe
	yes
)

func minTri(a, b tri) tri {
	if a < b {
		return a
	}
	return b
}

type rule struct {
	id               string
	tools            []string
	prefix           [][]string
	args             []argGlob
	outsideWorkspace bool
	piped            *bool
	paths            []glob
	write            *bool
	wipesWorkspace   bool
	decision         Verdict
	justification    string
	reason           string
	hasPrefix        bool
}

// safeEntry is a known_safe argv prefix and the arguments that make it unsafe.
type safeEntry struct {
	prefix []string
	forbid []argGlob
}

// Evaluate decides a tool call. It never panics on any input and never
// allows a call it could not analyse.
func (p *Policy) Evaluate(call ToolCall) Decision {
	return p.evaluateIn(call, p.mode)
}

func (p *Policy) evaluateIn(call ToolCall, mode Mode) Decision {
	return p.finish(p.evaluate(call, mode, expander{}), mode)
}

// env is what evaluation knows about the call beyond its units.
type env struct {
	call ToolCall
	mode Mode
	cwds []cwd
}

// cwd is a possible working directory: relative to the workspace, outside
// it, or unknown (cd to a path known only at run time).
type cwd struct {
	rel     string
	outside bool
	unknown bool
}

func (p *Policy) evaluate(call ToolCall, mode Mode, x expander) Decision {
	e := &env{call: call, mode: mode, cwds: []cwd{p.resolveCwd(call.Cwd)}}
	if call.Tool == ShellTool && !call.IsCommand() {
		return invalid(errors.New("shell call without a command"))
	}
	if !call.IsCommand() {
		for _, raw := range call.Paths {
			if _, ok := workspaceRel(raw); !ok {
				return Decision{Verdict: Deny, ReasonCode: ReasonPathOutsideWorkspace,
					Justification: fmt.Sprintf("path %q is not inside the workspace", raw)}
			}
		}
		d, _ := p.decideUnit(e, nil)
		return d
	}
	var units []unit
	if len(call.Argv) > 0 {
		units = x.argv(call.Argv)
	} else {
		var err error
		units, err = x.command(call.Command, 0)
		if err != nil {
			return invalid(err)
		}
	}
	if len(units) == 0 {
		return invalid(errors.New("the command runs nothing"))
	}
	d, _ := p.decideUnits(e, units)
	return d
}

// decideUnits decides each program and returns the strictest decision
// with its rank; among equals, a decision a rule made outranks one the
// approval mode derived, then the first wins.
func (p *Policy) decideUnits(e *env, units []unit) (Decision, int) {
	var best Decision
	bestRank := -1
	for i := range units {
		u := &units[i]
		d, derived := p.decideUnit(e, u)
		rank := 2 * d.Verdict.strictness()
		if !derived {
			rank++
		}
		if rank > bestRank {
			best, bestRank = d, rank
		}
		p.trackCd(e, u)
	}
	return best, bestRank
}

func invalid(err error) Decision {
	return Decision{Verdict: Ask, ReasonCode: ReasonInvalidArguments, Justification: err.Error()}
}

// decideUnit decides one program of a command call, or a non-command call
// when u is nil.
func (p *Policy) decideUnit(e *env, u *unit) (d Decision, derived bool) {
	if u != nil && u.err != nil {
		return invalid(u.err), false
	}
	matched := false
	var pending *Decision
	for _, r := range p.rules {
		m := r.match(p, e, u)
		if m == no {
			continue
		}
		if m == maybe {
			// Only ask and deny rules can match on words known at run time;
			// such a match asks rather than denies, and later rules still
			// get a say.
			if pending == nil {
				pending = &Decision{Verdict: Ask, ReasonCode: ReasonNeedsApproval, RuleID: r.id,
					Justification: fmt.Sprintf("may match rule %s (%s) once run-time words are known: %s", r.id, r.decision, r.justification)}
			}
			continue
		}
		d = Decision{Verdict: r.decision, ReasonCode: r.reason, RuleID: r.id, Justification: r.justification}
		matched = true
		break
	}
	if !matched {
		if pending != nil {
			return *pending, false
		}
		if pr := p.writesProtected(e, u); pr != no {
			return Decision{Verdict: Ask, ReasonCode: ReasonProtectedPath, Justification: protectedWhy(pr)}, false
		}
		if p.isKnownSafe(e, u) {
			return Decision{Verdict: Allow, ReasonCode: ReasonKnownSafe, Justification: "known safe: reads only"}, false
		}
		return Decision{Verdict: Deny, ReasonCode: ReasonDefaultDeny, Justification: "no rule matched"}, false
	}
	if pending != nil && pending.Verdict.strictness() > d.Verdict.strictness() {
		return *pending, false
	}
	if d.Verdict != Allow {
		return d, false
	}
	if pr := p.writesProtected(e, u); pr != no {
		return Decision{Verdict: Ask, ReasonCode: ReasonProtectedPath, RuleID: d.RuleID, Justification: protectedWhy(pr)}, false
	}
	if e.mode == Untrusted && !p.isKnownSafe(e, u) {
		if u != nil || e.call.Write {
			d.Verdict, d.ReasonCode = Ask, ReasonNeedsApproval
			d.Justification = "approval mode untrusted: not known safe; rule " + d.RuleID + " would allow: " + d.Justification
			return d, true
		}
	}
	return d, false
}

func protectedWhy(t tri) string {
	if t == maybe {
		return "writes a file known only at run time, which may be a protected path"
	}
	return "writes a protected path"
}

// match says whether r applies to the call (u nil) or one of its programs.
func (r *rule) match(p *Policy, e *env, u *unit) tri {
	res := yes
	if len(r.tools) > 0 {
		ok := false
		for _, t := range r.tools {
			if m, _ := path.Match(t, e.call.Tool); m {
				ok = true
				break
			}
		}
		if !ok {
			return no
		}
	}
	if r.hasPrefix {
		if u == nil {
			return no
		}
		res = minTri(res, r.matchPrefix(u.argv))
		if res == no {
			return no
		}
	}
	if len(r.args) > 0 {
		if u == nil {
			return no
		}
		res = minTri(res, r.matchArgs(u.argv))
		if res == no {
			return no
		}
	}
	if r.outsideWorkspace {
		if u == nil {
			return no
		}
		res = minTri(res, p.argsOutside(e, u))
		if res == no {
			return no
		}
	}
	if r.wipesWorkspace {
		if u == nil {
			return no
		}
		res = minTri(res, p.wipesWorkspace(e, u))
		if res == no {
			return no
		}
	}
	if r.piped != nil {
		if u == nil || u.piped != *r.piped {
			return no
		}
	}
	if r.write != nil {
		w := e.call.Write || (u != nil && len(u.writes) > 0)
		if w != *r.write {
			return no
		}
	}
	if len(r.paths) > 0 {
		res = minTri(res, p.matchPaths(e, u, r.paths, false))
		if res == no {
			return no
		}
	}
	if res == maybe && r.decision == Allow {
		// Allowing on a guess would let run-time words pick what runs.
		return no
	}
	return res
}

// wordIs compares a word with a literal: exact for plain words, a guess for
// globs and expansions.
func wordIs(w word, lit string) tri {
	switch {
	case w.dynamic:
		return maybe
	case w.glob:
		if ok, err := path.Match(w.pat, lit); err == nil && ok {
			return maybe
		}
		if w.text == lit {
			return maybe
		}
		return no
	case w.text == lit:
		return yes
	}
	return no
}

func nameIs(w word, lit string) tri {
	return elemIs(w, []string{lit}, true)
}

func elemIs(w word, alts []string, first bool) tri {
	if first && !w.dynamic && !w.glob && strings.Contains(w.text, "/") {
		// A program named by path is matched by its base name.
		w = literalWord(path.Base(w.text))
	}
	best := no
	for _, a := range alts {
		if t := wordIs(w, a); t > best {
			best = t
			if best == yes {
				break
			}
		}
	}
	return best
}

// matchPrefix matches the rule's argv prefix. Allow rules match word by
// word, as Codex's prefix rules do. Ask and deny rules also skip options
// between the elements, each with at most one value, so "git -C dir push"
// and "kubectl -n prod apply" still match.
func (r *rule) matchPrefix(argv []word) tri {
	if len(r.prefix) == 0 {
		return yes
	}
	if len(argv) < 1 {
		return no
	}
	first := elemIs(argv[0], r.prefix[0], true)
	if first == no {
		return no
	}
	if r.decision == Allow {
		if len(argv) < len(r.prefix) {
			return no
		}
		res := first
		for i := 1; i < len(r.prefix); i++ {
			res = minTri(res, elemIs(argv[i], r.prefix[i], false))
			if res == no {
				return no
			}
		}
		return res
	}
	// reach[s] is how well the elements so far matched with argv[s] next.
	reach := make([]tri, len(argv)+1)
	reach[1] = first
	for k := 1; k < len(r.prefix); k++ {
		next := make([]tri, len(argv)+1)
		for s := 1; s < len(argv); s++ {
			if reach[s] == no {
				continue
			}
			if m := minTri(reach[s], elemIs(argv[s], r.prefix[k], false)); m > next[s+1] {
				next[s+1] = m
			}
			if !isOption(argv[s]) {
				continue
			}
			// skip the option, or the option and one value
			if reach[s] > reach[s+1] {
				reach[s+1] = reach[s]
			}
			if s+2 <= len(argv) && !isOption(argv[s+1]) && !strings.Contains(argv[s].text, "=") && reach[s] > reach[s+2] {
				reach[s+2] = reach[s]
			}
		}
		reach = next
	}
	res := no
	for _, t := range reach {
		if t > res {
			res = t
		}
	}
	return res
}

func isOption(w word) bool {
	return !w.dynamic && len(w.text) > 1 && w.text[0] == '-'
}

func (r *rule) matchArgs(argv []word) tri {
	best := no
	for _, a := range argv[1:] {
		if h, ok := homeWord(a); ok {
			a = literalWord(h)
		}
		if a.dynamic {
			best = maybe
			continue
		}
		for _, g := range r.args {
			switch {
			case g.match(a.text):
				// A shell glob whose own text the rule's glob matches only
				// expands to words it matches too (/* against "/*").
				return yes
			case a.glob && globArgMay(a, g):
				best = maybe
			}
		}
	}
	return best
}

// homeWord rewrites $HOME and ${HOME} at the start of a word to ~, when
// nothing else in the word is known only at run time.
func homeWord(w word) (string, bool) {
	if !w.dynamic {
		return "", false
	}
	for _, h := range []string{"${HOME}", "$HOME"} {
		rest, ok := strings.CutPrefix(w.text, h)
		if !ok || (rest != "" && rest[0] != '/') || strings.ContainsAny(rest, "$`") || w.glob || len(w.subs) > 0 {
			continue
		}
		return "~" + rest, true
	}
	return "", false
}

// argsOutside says whether a non-option argument names a path outside the
// workspace.
func (p *Policy) argsOutside(e *env, u *unit) tri {
	best := no
	for _, a := range u.argv[1:] {
		if isOption(a) {
			continue
		}
		for _, c := range e.cwds {
			loc := p.locate(a, c)
			switch {
			case loc.outside:
				return yes
			case loc.unknown:
				best = maybe
			}
		}
	}
	return best
}

// location is where a word names a file.
type location struct {
	rel     string // workspace-relative, when inside
	dir     string // for a glob: the fixed directory part, workspace-relative
	glob    string // for a glob: the pattern's last part
	outside bool
	unknown bool
}

func (p *Policy) resolveCwd(c string) cwd {
	if c == "" {
		return cwd{rel: "."}
	}
	if path.IsAbs(c) {
		rel, ok := p.underWorkspace(path.Clean(c))
		if !ok {
			return cwd{outside: true}
		}
		return cwd{rel: rel}
	}
	rel, ok := workspaceRel(c)
	if !ok {
		return cwd{outside: true}
	}
	return cwd{rel: rel}
}

func (p *Policy) underWorkspace(abs string) (string, bool) {
	ws := p.workspace
	if abs == ws {
		return ".", true
	}
	if ws == "/" {
		return strings.TrimPrefix(abs, "/"), true
	}
	if strings.HasPrefix(abs, ws+"/") {
		return abs[len(ws)+1:], true
	}
	return "", false
}

// workspaceRel cleans a workspace-relative path and reports whether it
// stays inside.
func workspaceRel(p string) (string, bool) {
	if p == "" || path.IsAbs(p) {
		return "", false
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}

func (p *Policy) locate(w word, c cwd) location {
	t := w.text
	if w.rootRel {
		c = cwd{rel: "."}
	}
	switch {
	case w.dynamic:
		if strings.HasPrefix(t, "$HOME") || strings.HasPrefix(t, "${HOME}") {
			return location{outside: true}
		}
		return location{unknown: true}
	case strings.HasPrefix(t, "~"):
		return location{outside: true}
	}
	var rel string
	if path.IsAbs(t) {
		r, ok := p.underWorkspace(path.Clean(t))
		if !ok {
			return location{outside: true}
		}
		rel = r
	} else {
		if c.unknown {
			return location{unknown: true}
		}
		if c.outside {
			return location{outside: true}
		}
		r, ok := workspaceRel(path.Join(c.rel, t))
		if !ok {
			return location{outside: true}
		}
		rel = r
	}
	if w.glob {
		dir, last := path.Split(rel)
		if strings.ContainsAny(dir, "*?[") {
			return location{unknown: true}
		}
		return location{dir: path.Clean(dir), glob: last}
	}
	return location{rel: rel}
}

// trackCd records where a cd may have moved later commands. Every target is
// kept as a possibility: subshells and failed cds are not modelled.
func (p *Policy) trackCd(e *env, u *unit) {
	switch u.name() {
	case "cd", "pushd":
	default:
		return
	}
	var target *word
	for i := 1; i < len(u.argv); i++ {
		if !isOption(u.argv[i]) {
			target = &u.argv[i]
			break
		}
	}
	if len(e.cwds) > 16 {
		return
	}
	if target == nil {
		e.cwds = append(e.cwds, cwd{outside: true}) // home
		return
	}
	var next []cwd
	for _, c := range e.cwds {
		loc := p.locate(*target, c)
		switch {
		case loc.outside:
			next = append(next, cwd{outside: true})
		case loc.unknown || loc.glob != "":
			next = append(next, cwd{unknown: true})
		default:
			next = append(next, cwd{rel: loc.rel})
		}
	}
	e.cwds = append(e.cwds, next...)
}

// writesProtected says whether the call or program writes a protected path.
func (p *Policy) writesProtected(e *env, u *unit) tri {
	if u == nil {
		if !e.call.Write {
			return no
		}
		return p.matchPaths(e, nil, p.protected, true)
	}
	if len(u.writes) == 0 {
		return no
	}
	return p.matchPaths(e, u, p.protected, true)
}

// matchPaths matches the call's paths (non-command calls) or the program's
// write targets against globs. holds also counts a directory that contains
// a match, for protected paths.
func (p *Policy) matchPaths(e *env, u *unit, globs []glob, holds bool) tri {
	if u == nil {
		for _, raw := range e.call.Paths {
			rel, ok := workspaceRel(raw)
			if !ok {
				continue
			}
			for _, g := range globs {
				if g.match(rel) || (holds && g.holds(rel)) {
					return yes
				}
			}
		}
		return no
	}
	best := no
	for _, w := range u.writes {
		for _, c := range e.cwds {
			loc := p.locate(w, c)
			switch {
			case loc.outside:
				continue
			case loc.unknown:
				best = maybe
				continue
			case loc.glob != "":
				for _, g := range globs {
					if g.match(loc.dir) || g.holds(loc.dir) || globMayMatch(g, loc) {
						best = maybe
					}
				}
				continue
			}
			for _, g := range globs {
				if g.match(loc.rel) || (holds && g.holds(loc.rel)) {
					return yes
				}
			}
		}
	}
	return best
}

// globMayMatch guesses whether a shell glob in directory loc.dir can name a
// file the policy glob matches.
func globMayMatch(g glob, loc location) bool {
	last := g.p.Last()
	if ok, _ := path.Match(loc.glob, last); ok {
		return true
	}
	if last == "**" || strings.ContainsAny(last, "*?[") {
		return g.match(path.Join(loc.dir, "x")) || g.holds(loc.dir)
	}
	return false
}

// isKnownSafe says whether a program only reads (or, for a non-command call,
// whether it does not write).
func (p *Policy) isKnownSafe(e *env, u *unit) bool {
	if u == nil {
		return false
	}
	if len(u.writes) > 0 || len(u.argv) == 0 {
		return false
	}
	for _, s := range p.knownSafe {
		if s.matches(u.argv) {
			return true
		}
	}
	return false
}

func (s safeEntry) matches(argv []word) bool {
	if len(argv) < len(s.prefix) {
		return false
	}
	for i, lit := range s.prefix {
		var t tri
		if i == 0 {
			t = nameIs(argv[i], lit)
		} else {
			t = wordIs(argv[i], lit)
		}
		if t != yes {
			return false
		}
	}
	for _, a := range argv[1:] {
		if a.dynamic && len(s.forbid) > 0 {
			return false
		}
		for _, f := range s.forbid {
			if f.forbids(a.text) || (a.glob && globArgMay(a, f)) {
				return false
			}
		}
	}
	return true
}

// globArgMay guesses whether a shell glob can expand to a word the pattern
// matches: the glob matches the pattern's text.
func globArgMay(a word, f argGlob) bool {
	ok, _ := path.Match(a.pat, f.src)
	return ok
}

// wipesWorkspace says whether a program deletes the whole workspace: rm
// -r of its root or of every name in it (., ./*, *, .. from a
// subdirectory), or find starting at the root with -delete or -exec rm and
// no test that picks files by name, path, time, size or owner.
func (p *Policy) wipesWorkspace(e *env, u *unit) tri {
	if len(u.argv) == 0 {
		return no
	}
	switch u.name() {
	case "rm":
		return p.rmWipes(e, u.argv[1:])
	case "find":
		return p.findWipes(e, u.argv[1:])
	}
	return no
}

func (p *Policy) rmWipes(e *env, args []word) tri {
	recursive := no
	var ops []word
	end := false
	for _, a := range args {
		switch {
		case a.dynamic && !end:
			// an option or an operand, known only at run time
			recursive = maxTri(recursive, maybe)
			ops = append(ops, a)
		case end || !strings.HasPrefix(a.text, "-") || a.text == "-":
			ops = append(ops, a)
		case a.text == "--":
			end = true
		case a.text == "--recursive" || (!strings.HasPrefix(a.text, "--") && strings.ContainsAny(a.text, "rR")):
			recursive = yes
		}
	}
	if recursive == no {
		return no
	}
	best := no
	for _, op := range ops {
		if t := p.namesRoot(e, op); t > best {
			best = t
		}
	}
	return minTri(recursive, best)
}

// namesRoot says whether a word names the workspace root or every name in
// it.
func (p *Policy) namesRoot(e *env, w word) tri {
	best := no
	for _, c := range e.cwds {
		loc := p.locate(w, c)
		switch {
		case loc.outside:
		case loc.unknown:
			best = maxTri(best, maybe)
		case loc.glob != "":
			if loc.dir == "." && allNames[loc.glob] {
				return yes
			}
		case loc.rel == ".":
			return yes
		}
	}
	return best
}

// allNames are globs that match every name in a directory but dot files.
var allNames = map[string]bool{"*": true, "?*": true, "**": true}

// findSelects are find tests that pick some files, so that -delete does
// not take everything.
var findSelects = setOf(`-name -iname -path -ipath -wholename -iwholename -regex -iregex -lname -ilname -newer -anewer
-cnewer -newerXY -mtime -mmin -ctime -cmin -atime -amin -size -user -group -uid -gid -perm -inum -samefile -links
-empty -nouser -nogroup -used -context -maxdepth`)

func (p *Policy) findWipes(e *env, args []word) tri {
	var starts []word
	i := 0
	for ; i < len(args); i++ {
		t := args[i].text
		if t == "-H" || t == "-L" || t == "-P" || strings.HasPrefix(t, "-O") {
			continue
		}
		if t == "-D" {
			i++
			continue
		}
		break
	}
	for ; i < len(args); i++ {
		a := args[i]
		if !a.dynamic && (strings.HasPrefix(a.text, "-") || a.text == "(" || a.text == "!") {
			break
		}
		starts = append(starts, a)
	}
	deletes := false
	for k := i; k < len(args); k++ {
		a := args[k]
		if a.dynamic {
			continue
		}
		switch {
		case findSelects[a.text] || strings.HasPrefix(a.text, "-newer"):
			return no
		case a.text == "-delete":
			deletes = true
		case a.text == "-exec" || a.text == "-execdir" || a.text == "-ok" || a.text == "-okdir":
			if k+1 < len(args) && !args[k+1].dynamic && path.Base(args[k+1].text) == "rm" {
				deletes = true
			}
		}
	}
	if !deletes {
		return no
	}
	if len(starts) == 0 {
		starts = []word{literalWord(".")}
	}
	best := no
	for _, s := range starts {
		best = maxTri(best, p.namesRoot(e, s))
	}
	return best
}

func maxTri(a, b tri) tri {
	if a > b {
		return a
	}
	return b
}
