package policy

import (
	"errors"
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
			d := p.Evaluate(call)
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
	})
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
