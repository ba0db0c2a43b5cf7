package policy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEvaluateExec(t *testing.T) {
	p := mustDefault(t)
	var (
		allow  = verdict{Allow, ReasonAllowlisted, "sandboxed-shell"}
		push   = verdict{Ask, ReasonNeedsApproval, "git-push"}
		unsure = verdict{Ask, ReasonInvalidArguments, ""}
	)
	tests := []struct {
		name string
		call ExecCall
		want verdict
	}{
		{"plain", ExecCall{Argv: []string{"ls", "-la"}, Cwd: "/workspace"}, allow},
		{"git-core program", ExecCall{Argv: []string{"/usr/lib/git-core/git-push", "origin"}, Cwd: "/workspace"}, push},
		{"git-push through the git binary", ExecCall{Argv: []string{"git-push", "origin"}, Exe: "/usr/lib/git-core/git", Cwd: "/workspace"}, push},
		{"git-receive-pack through the git binary", ExecCall{Argv: []string{"git-receive-pack", "/workspace/r"}, Exe: "/usr/lib/git-core/git", Cwd: "/workspace"}, allow},
		{"argv[0] names another program", ExecCall{Argv: []string{"ls", "push"}, Exe: "/usr/bin/git", Cwd: "/workspace"}, push},
		{"exe names a wrapper", ExecCall{Argv: []string{"ls", "1", "git", "push"}, Exe: "/usr/bin/taskset", Cwd: "/workspace"}, push},
		{"same program twice", ExecCall{Argv: []string{"/usr/bin/git", "status"}, Exe: "/usr/bin/git", Cwd: "/workspace"}, allow},
		{"alias", ExecCall{Argv: []string{"git", "-c", "alias.p=push", "p"}, Cwd: "/workspace"}, push},
		{"inline perl", ExecCall{Argv: []string{"perl", "-e", `system("git push")`}, Cwd: "/workspace"}, unsure},
		{"interpreter exe under another name", ExecCall{Argv: []string{"x", "-e", "1"}, Exe: "/usr/bin/perl5.36", Cwd: "/workspace"}, unsure},
		{"#! script", ExecCall{Argv: []string{"/bin/sh", "./configure", "--prefix=/x"}, Exe: "/usr/bin/dash", Cwd: "/workspace"}, allow},
		{"env #! script", ExecCall{Argv: []string{"/usr/bin/env", "node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "test"}, Exe: "/usr/bin/env", Cwd: "/workspace"}, allow},
		{"env -S #! line", ExecCall{Argv: []string{"/usr/bin/env", "-S deno run -A", "./x.ts"}, Exe: "/usr/bin/env", Cwd: "/workspace"}, allow},
		{"env -S pushing", ExecCall{Argv: []string{"/usr/bin/env", "-S git push", "origin"}, Cwd: "/workspace"}, push},
		{"env -S quoted", ExecCall{Argv: []string{"/usr/bin/env", "-S sh -c 'x'"}, Cwd: "/workspace"}, unsure},
		{"agent shell", ExecCall{Argv: []string{"bash", "-c", "-l", "source /root/.snap.sh && eval 'go test ./...' < /dev/null && pwd -P >| /tmp/cwd"}, Cwd: "/workspace"}, allow},
		{"agent shell pushing", ExecCall{Argv: []string{"bash", "-c", "-l", "source /root/.snap.sh && eval 'git push' < /dev/null"}, Cwd: "/workspace"}, push},
		{"argv is literal", ExecCall{Argv: []string{"echo", "$(git push)", "`id`"}, Cwd: "/workspace"}, allow},
		{"wipe from the root", ExecCall{Argv: []string{"find", ".", "-delete"}, Cwd: "/workspace"}, verdict{Deny, ReasonDeniedByRule, "destroy-workspace"}},
		{"same find in a subdirectory", ExecCall{Argv: []string{"find", ".", "-delete"}, Cwd: "/workspace/build"}, allow},
		{"cwd outside", ExecCall{Argv: []string{"rm", "-rf", "x"}, Cwd: "/tmp"}, verdict{Ask, ReasonPathOutsideWorkspace, "destructive-outside-workspace"}},
		{"cwd unknown", ExecCall{Argv: []string{"rm", "-rf", "x"}}, verdict{Ask, ReasonNeedsApproval, "destroy-workspace"}},
		{"cwd relative is unknown", ExecCall{Argv: []string{"rm", "-rf", "x"}, Cwd: "src"}, verdict{Ask, ReasonNeedsApproval, "destroy-workspace"}},
		{"cwd unknown, absolute path", ExecCall{Argv: []string{"rm", "-rf", "/workspace/build"}}, allow},
		{"protected write", ExecCall{Argv: []string{"tee", ".git/hooks/pre-commit"}, Cwd: "/workspace"}, verdict{Ask, ReasonProtectedPath, "protected-path-writes"}},
		{"protected write from a subdirectory", ExecCall{Argv: []string{"tee", "../.env"}, Cwd: "/workspace/src"}, verdict{Ask, ReasonProtectedPath, "protected-path-writes"}},
		{"no argv, exe only", ExecCall{Exe: "/usr/bin/git"}, allow},
		{"no argv, exe names push", ExecCall{Exe: "/usr/lib/git-core/git-push"}, push},
		{"nothing", ExecCall{}, unsure},
		{"empty argv[0]", ExecCall{Argv: []string{""}, Exe: "/usr/bin/ls", Cwd: "/workspace"}, allow},
		{"loader", ExecCall{Argv: []string{"/lib64/ld-linux-x86-64.so.2", "--argv0", "ls", "/usr/bin/git", "push"}, Exe: "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", Cwd: "/workspace"}, push},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.EvaluateExec(tt.call)
			if diff := cmp.Diff(tt.want, short(d)); diff != "" {
				t.Errorf("EvaluateExec(%+v) mismatch (-want +got):\n%s\njustification: %s", tt.call, diff, d.Justification)
			}
			if d.PolicyID != p.ID() || d.PolicySHA256 != p.SHA256() || d.Justification == "" {
				t.Errorf("decision not stamped or unexplained: %+v", d)
			}
		})
	}
}

func TestEvaluateExecModes(t *testing.T) {
	tests := []struct {
		mode Mode
		argv []string
		want verdict
	}{
		{Never, []string{"git", "push"}, verdict{Deny, ReasonNeverAsk, "git-push"}},
		{Never, []string{"perl", "-e", "1"}, verdict{Deny, ReasonNeverAsk, ""}},
		{Never, []string{"ls"}, verdict{Allow, ReasonAllowlisted, "sandboxed-shell"}},
		{Untrusted, []string{"ls"}, verdict{Allow, ReasonAllowlisted, "sandboxed-shell"}},
		{Untrusted, []string{"make"}, verdict{Ask, ReasonNeedsApproval, "sandboxed-shell"}},
		{Untrusted, []string{"git", "-c", "color.ui=never", "status"}, verdict{Ask, ReasonNeedsApproval, "sandboxed-shell"}},
	}
	for _, tt := range tests {
		p := mustDefault(t, WithApprovalMode(tt.mode))
		d := p.EvaluateExec(ExecCall{Argv: tt.argv, Cwd: "/workspace"})
		if diff := cmp.Diff(tt.want, short(d)); diff != "" {
			t.Errorf("%s: EvaluateExec(%q) mismatch (-want +got):\n%s\njustification: %s", tt.mode, tt.argv, diff, d.Justification)
		}
	}
}

func TestExecWorkspaceOption(t *testing.T) {
	p := mustDefault(t, WithWorkspace("/home/agent/repo"))
	got := []verdict{
		short(p.EvaluateExec(ExecCall{Argv: []string{"rm", "-rf", "."}, Cwd: "/home/agent/repo"})),
		short(p.EvaluateExec(ExecCall{Argv: []string{"rm", "-rf", "."}, Cwd: "/workspace"})),
		short(p.EvaluateExec(ExecCall{Argv: []string{"git", "config", "user.name", "x"}, Cwd: "/home/agent/repo/src"})),
	}
	want := []verdict{
		{Deny, ReasonDeniedByRule, "destroy-workspace"},
		{Ask, ReasonPathOutsideWorkspace, "destructive-outside-workspace"},
		{Ask, ReasonProtectedPath, "protected-path-writes"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestProtectedPaths(t *testing.T) {
	p := mustDefault(t)
	want := []string{".git/hooks/**", ".git/config", ".env", ".env.*", ".git/info/attributes", ".github/workflows/**",
		".gitlab-ci.yml", ".gitmodules", ".envrc", ".npmrc", ".pypirc"}
	if diff := cmp.Diff(want, p.ProtectedPaths()); diff != "" {
		t.Errorf("ProtectedPaths mismatch (-want +got):\n%s", diff)
	}
	q, err := Parse("t.yaml", []byte("id: t\ndefault_protected_paths: false\nprotected_paths: [secrets/**]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"secrets/**"}, q.ProtectedPaths()); diff != "" {
		t.Errorf("ProtectedPaths without defaults mismatch (-want +got):\n%s", diff)
	}
}

func TestPathMatcher(t *testing.T) {
	p := mustDefault(t)
	m, err := NewPathMatcher(p.ProtectedPaths())
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{
		".git/hooks/pre-commit", ".git/config", ".git", ".git/objects/ab/cdef", ".env", "src/.env", "config/.env.local",
		".github/workflows/ci.yml", ".github/dependabot.yml", "sub/.git/config", "./.envrc", "a/../.npmrc", "src/main.go",
		"../.env", "/workspace/.env", "", ".", ".gitlab-ci.yml/x", "env",
	}
	got := map[string]bool{}
	for _, rel := range paths {
		got[rel] = m.Match(rel)
	}
	want := map[string]bool{
		".git/hooks/pre-commit": true, ".git/config": true, ".git": false, ".git/objects/ab/cdef": false, ".env": true,
		"src/.env": true, "config/.env.local": true, ".github/workflows/ci.yml": true, ".github/dependabot.yml": false,
		"sub/.git/config": false, "./.envrc": true, "a/../.npmrc": true, "src/main.go": false, "../.env": false,
		"/workspace/.env": false, "": false, ".": false, ".gitlab-ci.yml/x": false, "env": false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Match mismatch (-want +got):\n%s", diff)
	}
	if _, err := NewPathMatcher([]string{"ok/**", "bad["}); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("NewPathMatcher(bad glob) error = %v, want ErrInvalidPolicy", err)
	}
	if _, err := NewPathMatcher([]string{""}); err == nil {
		t.Error("NewPathMatcher(empty glob) succeeded")
	}
}

func TestSedScript(t *testing.T) {
	tests := []struct {
		script string
		writes []string
		err    bool
	}{
		{"s/a/b/g", nil, false},
		{"s|a|b|w out.txt", []string{"out.txt"}, false},
		{"s/[/]/x/", nil, false},
		{"1,/re/d;$!N", nil, false},
		{"/x/{p;d}", nil, false},
		{"0~2 w evens; p", []string{"evens; p"}, false},
		{"w /dev/stdout", nil, false},
		{"a text; e cmd", nil, false},
		{"i\\\nline one\\\nline two", nil, false},
		{":a;N;$!ba;s/\\n/ /g", nil, false},
		{"y/abc/xyz/", nil, false},
		{"\\,x,d", nil, false},
		{"1e date", nil, true},
		{"s/x/date/e", nil, true},
		{"s/x/y/gew f", nil, true},
		{"/x/{\ne id\n}", nil, true},
		{"s/a/b", nil, true},
		{"k", nil, true},
		{"w", nil, true},
		{"s/a/b\nc/", nil, true},
		{"r /etc/passwd", nil, false},
		{"W .env", []string{".env"}, false},
	}
	for _, tt := range tests {
		writes, err := sedScript(tt.script)
		if (err != nil) != tt.err {
			t.Errorf("sedScript(%q) error = %v, want error %v", tt.script, err, tt.err)
			continue
		}
		if diff := cmp.Diff(tt.writes, writes); diff != "" {
			t.Errorf("sedScript(%q) writes mismatch (-want +got):\n%s", tt.script, diff)
		}
	}
}

func TestAwkRisk(t *testing.T) {
	tests := []struct {
		prog  string
		risky bool
	}{
		{`{print $1}`, false},
		{`$3 > 100 {print $1, ($2 > 3)}`, false},
		{`{ if ($1 > 0) print $1 }`, false},
		{`/a|b/ {n++} END {print n / 2}`, false},
		{`{ split($0, a, /,|;/); print a[1] }`, false},
		{`{ x = a / 2 / 3 } # system(`, false},
		{`{ print "a|b > c" }`, false},
		{`$1 ~ /x/ || $2 ~ /y/`, false},
		{`BEGIN { while ((getline line < "f") > 0) n++ }`, false},
		{`BEGIN{system("id")}`, true},
		{`{print | "sh"}`, true},
		{`{print |& "sh"}`, true},
		{`BEGIN{"date" | getline d}`, true},
		{`{print > "out"}`, true},
		{`{printf("%s\n", $1) >> "out"}`, true},
		{`@load "filefuncs"`, true},
		{`BEGIN{f="system"; @f("id")}`, true},
		{`{print "unterminated}`, true},
	}
	for _, tt := range tests {
		if err := awkRisk(tt.prog); (err != nil) != tt.risky {
			t.Errorf("awkRisk(%q) = %v, want risky %v", tt.prog, err, tt.risky)
		}
	}
}

func TestExpansionChecks(t *testing.T) {
	tests := []struct {
		word string
		ok   bool
	}{
		{"${x}", true}, {"${#x}", true}, {"${x:-a b}", true}, {"${x%%.*}", true}, {"${x//a/b}", true},
		{"${arr[@]}", true}, {"${arr[3]}", true}, {"${@:2}", true}, {"${x:1:2}", true}, {"${x:-${y}}", true},
		{"${x:-$((1+2))}", true}, {"${#}", true}, {"${x^^}", true},
		{"${!x}", false}, {"${!p*}", false}, {"${x@P}", false}, {"${x@Q}", false}, {"${arr[i]}", false},
		{"${x:i}", false}, {"${x:-${!y}}", false}, {"${x:-$((y))}", false}, {"${}", false}, {"${x:-$[1]}", false},
	}
	for _, tt := range tests {
		if err := checkParam(tt.word); (err == nil) != tt.ok {
			t.Errorf("checkParam(%q) = %v, want ok %v", tt.word, err, tt.ok)
		}
	}
	arith := []struct {
		expr string
		ok   bool
	}{
		{"1+2", true}, {"0x1f * 16#ff", true}, {"$# > 0 ? 1 : 0", true}, {"${#x} * 2", true}, {"(1<<3)|4", true},
		{"x", false}, {"$x", false}, {"a[0]", false}, {"${x}", false}, {"'1'", false},
	}
	for _, tt := range arith {
		if err := checkArith(tt.expr); (err == nil) != tt.ok {
			t.Errorf("checkArith(%q) = %v, want ok %v", tt.expr, err, tt.ok)
		}
	}
}
