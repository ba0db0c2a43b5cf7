package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ExecCall is one program the sandbox is about to start, as the kernel shows it.
type ExecCall struct {
	Argv []string // the real argv of the new program
	Exe  string   // resolved executable path inside the sandbox (from /proc/PID/exe), may be ""
	Cwd  string   // absolute cwd inside the sandbox
}

// EvaluateExec decides one exec. It never panics on any input.
//
// The argv is decided like a shell tool call's argv, by the same rules, as
// the program named by argv[0] and again as the program Exe names; the
// strictest decision wins, so renaming a program in argv[0] hides nothing.
// git-X programs are git X, and git -c alias.NAME=… NAME is what the alias
// runs. Wrappers are looked through as in a command string, which is
// stricter than needed (their children are execs of their own) but shows
// intent early.
//
// Reason codes: a rule's own code (needs_approval, denied_by_rule,
// protected_path, path_outside_workspace, allowlisted); known_safe,
// default_deny or protected_path when no rule matches; invalid_arguments
// for an ask about what the policy cannot judge — inline code (perl -e,
// python -c, an awk program calling system(), sed's e), wrappers and
// options it does not model, git configuration that runs programs, and an
// empty argv; never_ask for any ask in approval mode never.
//
// Unlike in a command string, code an interpreter reads from a file or
// stdin (sh x.sh, python x.py, source x) does not ask here: what it starts
// is decided exec by exec, and every #! script reaches this point as
// "interpreter script args".
func (p *Policy) EvaluateExec(c ExecCall) Decision {
	return p.finish(p.evaluateExec(c, p.mode), p.mode)
}

func (p *Policy) evaluateExec(c ExecCall, mode Mode) Decision {
	variants := execVariants(c)
	if len(variants) == 0 {
		return invalid(errors.New("exec without a program"))
	}
	x := expander{exec: true}
	var best Decision
	bestRank := -1
	for _, argv := range variants {
		e := &env{call: ToolCall{Tool: ShellTool, Argv: argv, Cwd: c.Cwd}, mode: mode, cwds: []cwd{p.execCwd(c.Cwd)}}
		units := x.argv(argv)
		if len(units) == 0 {
			continue
		}
		if d, rank := p.decideUnits(e, units); rank > bestRank {
			best, bestRank = d, rank
		}
	}
	if bestRank < 0 {
		return invalid(errors.New("exec runs nothing"))
	}
	return best
}

// execVariants are the argvs an exec is decided as: as argv[0] names it and
// as Exe names it. Multi-call git dispatches on argv[0] (git-push run
// through the git binary is git push), so there only argv[0] counts.
func execVariants(c ExecCall) [][]string {
	var out [][]string
	exe := c.Exe
	if len(c.Argv) == 0 {
		if exe == "" {
			return nil
		}
		return [][]string{{exe}}
	}
	out = append(out, c.Argv)
	if exe == "" {
		return out
	}
	base, base0 := path.Base(exe), path.Base(c.Argv[0])
	switch {
	case base == base0:
	case base == "git" && strings.HasPrefix(base0, "git-"):
	default:
		v := append([]string{exe}, c.Argv[1:]...)
		out = append(out, v)
	}
	return out
}

// execCwd resolves an exec's working directory; one that is not absolute
// is unknown, so relative paths ask.
func (p *Policy) execCwd(dir string) cwd {
	if !path.IsAbs(dir) {
		return cwd{unknown: true}
	}
	return p.resolveCwd(dir)
}

// finish applies approval mode never and stamps the policy.
func (p *Policy) finish(d Decision, mode Mode) Decision {
	if mode == Never && d.Verdict == Ask {
		d.Justification = fmt.Sprintf("approval mode never: would ask (%s): %s", d.ReasonCode, d.Justification)
		d.Verdict, d.ReasonCode = Deny, ReasonNeverAsk
	}
	d.PolicyID, d.PolicySHA256 = p.id, p.sha256
	return d
}
