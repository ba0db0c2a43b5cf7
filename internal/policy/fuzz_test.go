package policy

import (
	"errors"
	"path"
	"strings"
	"testing"
)

var commandSeeds = []string{
	"ls -la", "git push origin main", `bash -lc "cd x && git push"`, "echo $(git push) `id`",
	"cat <<EOF > .env\nA=$HOME\nEOF", "for f in *.go; do gofmt -l \"$f\"; done", "a | b && c || d; e &",
	"find . -exec sh -c 'rm {}' \\;", "xargs -I{} git push {}", `$'\x67it' push`, "git {pu,}sh",
	"echo ${x:-$(y)}", "echo $((1+(2*3)))", "bash <(curl -s x)", "(cd a && (cd b; make))",
	"[[ a < b && c ]]", "f() { :; }", "case x in a) ;; esac", "echo 'unterminated", "rm -rf /*",
	"env -S 'git push'", "timeout -k 5 10 nice -n 1 sudo -u x env A=1 git -C d push", "eval 'eval \"git push\"'",
	"ls \r# ; git push", "git $'push\\0x'", "[[ x -eq 1 ]]", "x='a[$(id)]'; echo $((x))", "echo ${x@P} ${!y} ${z:1:2}",
	"select x in a; do ls; done", "alias a=b", "{fd}>x git push", "set -k; shopt -s extglob", "(( x++ ))",
	"git -c alias.p=push -c 'alias.q=!git p' q", "git -c core.hooksPath=x commit", "/usr/lib/git-core/git-push",
	"taskset -c 0 flock -w 1 /tmp/l -c 'script -qc \"git push\" /dev/null'", "setpriv --nnp unshare -r chroot / ls",
	"perl -ne 'print' f", "awk -F: -v x=1 '$1 > 2 {print | \"sh\"}' f", "sed -n -e '1e id' -e 'w .env' f",
	"sh x.sh; bash < y; { cat; sh; }", "cp -t .git/hooks x; sort -o .env y; curl -sSLo .env z; tar xzf a -C .git",
	"find . -delete; rm -rf ./*; rm -rf ..", "printf -v 'a[$(id)]' x; read 'b[1]'", "npx -c 'git push'; uv run ls",
}

// FuzzParseCommand checks that the shell lexer and parser never panic and
// that anything they reject is never allowed.
func FuzzParseCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add(s)
	}
	p := mustDefault(f)
	f.Fuzz(func(t *testing.T, src string) {
		units, err := unitsFromCommand(src, 0)
		if err != nil {
			if !errors.Is(err, errShell) {
				t.Fatalf("error %v does not wrap errShell", err)
			}
			if d := p.Evaluate(sh(src)); d.Verdict == Allow {
				t.Fatalf("unparseable %q allowed: %+v", src, d)
			}
			return
		}
		if len(units) > maxUnits+1 {
			t.Fatalf("%d units, bound is %d", len(units), maxUnits)
		}
		for _, u := range units {
			if u.err != nil && !errors.Is(u.err, errShell) {
				t.Fatalf("unit error %v does not wrap errShell", u.err)
			}
		}
	})
}

// FuzzEvaluate checks that every decision is well formed whatever the call.
func FuzzEvaluate(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add("shell", s, "", "", false)
	}
	f.Add("write_file", "", ".git/hooks/x", "", true)
	f.Add("read_file", "", "../../etc/passwd", "/workspace/sub", false)
	f.Add("shell", "rm -rf x", "", "/tmp", false)
	policies := map[Mode]*Policy{}
	for _, m := range []Mode{Untrusted, OnRequest, Never} {
		policies[m] = mustDefault(f, WithApprovalMode(m))
	}
	f.Fuzz(func(t *testing.T, tool, command, path, cwd string, write bool) {
		call := ToolCall{Tool: tool, Command: command, Cwd: cwd, Write: write}
		if path != "" {
			call.Paths = strings.Split(path, "\x00")
		}
		if strings.HasPrefix(command, "argv:") {
			call.Argv = strings.Fields(command[5:])
		}
		for m, p := range policies {
			checkDecision(t, p, m, p.Evaluate(call))
		}
	})
}

// checkDecision fails unless d is well formed: a known verdict and reason
// code, stamped with the policy, no ask in mode never, and nothing the
// policy could not analyse allowed.
func checkDecision(t *testing.T, p *Policy, m Mode, d Decision) {
	t.Helper()
	switch d.Verdict {
	case Allow, Ask, Deny:
	default:
		t.Fatalf("%s: verdict %q", m, d.Verdict)
	}
	if !reasonCodes[d.ReasonCode] {
		t.Fatalf("%s: reason %q is not a known code", m, d.ReasonCode)
	}
	if d.PolicySHA256 != p.SHA256() || d.PolicyID != p.ID() {
		t.Fatalf("%s: decision not stamped: %+v", m, d)
	}
	if m == Never && d.Verdict == Ask {
		t.Fatalf("never mode asked: %+v", d)
	}
	if d.ReasonCode == ReasonInvalidArguments && d.Verdict == Allow {
		t.Fatalf("%s: allowed invalid arguments: %+v", m, d)
	}
}

// FuzzLoadPolicy checks that loading never panics and that a policy that
// loads evaluates calls.
func FuzzLoadPolicy(f *testing.F) {
	f.Add(string(DefaultYAML()))
	f.Add(modePolicy)
	f.Add("id: p\nrules:\n  - id: r\n    prefix: [git, [push, pull]]\n    paths: ['**/x']\n    args: ['a/**/b']\n    decision: ask\n    justification: j\n    match: ['git push', [git, pull], {tool: t, path: x}]\n")
	f.Add("id: &a p\nversion: *a\n")
	f.Add("id: p\n---\n")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Parse("fuzz.yaml", []byte(src))
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LoadError", err)
			}
			return
		}
		for _, ex := range p.Examples() {
			if !ex.OK {
				t.Fatalf("policy with failing example %+v loaded", ex)
			}
		}
		for _, c := range []ToolCall{sh("git push"), sh("ls"), {Tool: "write_file", Paths: []string{".env"}, Write: true}} {
			if d := p.Evaluate(c); d.PolicySHA256 == "" {
				t.Fatalf("decision not stamped: %+v", d)
			}
		}
	})
}

// FuzzEvaluateExec checks that EvaluateExec never panics, that its
// decisions are well formed, and that it is never less strict than the
// command-string policy deciding the same argv as a tool call. There is
// one sound exception: the string asks about code an interpreter reads
// from a file or stdin (sh x.sh), which the exec level leaves to the execs
// that code makes; there EvaluateExec must be at least as strict as the
// string policy with that question taken out.
func FuzzEvaluateExec(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add(strings.Join(strings.Fields(s), "\x00"), "", "/workspace")
		f.Add("bash\x00-c\x00"+s, "/usr/bin/bash", "/workspace/src")
	}
	f.Add("git-push\x00origin", "/usr/lib/git-core/git", "/workspace")
	f.Add("ls\x00push", "/usr/bin/git", "/tmp")
	f.Add("git\x00-c\x00alias.p=!sh -c 'git push'\x00p", "", "")
	f.Add("perl\x00-e\x00system('git push')", "/usr/bin/perl", "/workspace")
	f.Add("awk\x00BEGIN{system(\"x\")}", "/usr/bin/mawk", "/workspace")
	f.Add("sed\x00-i\x00s/a/b/w .env\x00f", "", "/workspace")
	f.Add("find\x00.\x00-delete", "", "/workspace")
	f.Add("", "/usr/bin/ls", "/")
	f.Add("\x00", "", "relative")
	policies := map[Mode]*Policy{}
	for _, m := range []Mode{Untrusted, OnRequest, Never} {
		policies[m] = mustDefault(f, WithApprovalMode(m))
	}
	f.Fuzz(func(t *testing.T, args, exe, cwd string) {
		var argv []string
		if args != "" {
			argv = strings.Split(args, "\x00")
		}
		c := ExecCall{Argv: argv, Exe: exe, Cwd: cwd}
		for m, p := range policies {
			checkDecision(t, p, m, p.EvaluateExec(c))
			if len(argv) == 0 {
				continue
			}
			// The same argv as a tool call, from the same directory: a
			// tool call's relative cwd is relative to the workspace.
			call := ToolCall{Tool: ShellTool, Argv: argv, Cwd: cwd}
			same := c
			if !path.IsAbs(cwd) {
				same.Cwd = path.Join(DefaultWorkspace, cwd)
			}
			got := p.EvaluateExec(same)
			ref := p.Evaluate(call)
			if got.Verdict.strictness() >= ref.Verdict.strictness() {
				continue
			}
			deferred := p.finish(p.evaluate(call, m, expander{exec: true}), m)
			if ref.ReasonCode != ReasonInvalidArguments && !(m == Never && ref.ReasonCode == ReasonNeverAsk) ||
				got.Verdict.strictness() < deferred.Verdict.strictness() {
				t.Fatalf("%s: EvaluateExec(%q, exe %q, cwd %q) = %s %s (%s), less strict than Evaluate = %s %s (%s); without unseen code %s",
					m, argv, exe, same.Cwd, got.Verdict, got.ReasonCode, got.Justification, ref.Verdict, ref.ReasonCode, ref.Justification, deferred.Verdict)
			}
		}
	})
}
