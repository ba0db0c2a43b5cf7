package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bashC is the exec a shell tool call starts: the supervisor sees the
// command string as bash -c's argument.
func bashC(cmd string) []string { return []string{"bash", "-c", cmd} }

// TestEscapes holds every escape of the command-string policy the red team
// found, decided at string level (the tool call's command) and at exec
// level (an argv the supervisor sees).
func TestEscapes(t *testing.T) {
	p := mustDefault(t)
	var (
		allow  = verdict{Allow, ReasonAllowlisted, "sandboxed-shell"}
		push   = verdict{Ask, ReasonNeedsApproval, "git-push"}
		unsure = verdict{Ask, ReasonInvalidArguments, ""}
		prot   = verdict{Ask, ReasonProtectedPath, "protected-path-writes"}
		// a write whose file is known only at run time may be protected
		mayProt = verdict{Ask, ReasonNeedsApproval, "protected-path-writes"}
		wipe    = verdict{Deny, ReasonDeniedByRule, "destroy-workspace"}
		piped   = verdict{Ask, ReasonNeedsApproval, "pipe-to-shell"}
	)
	tests := []struct {
		name     string
		cmd      string // the command string
		cwd      string // absolute; empty is the workspace root
		want     verdict
		argv     []string // the exec; nil is bash -c cmd
		wantExec verdict
	}{
		// bash dialect
		{"cr before comment", "ls \r# ; git push", "", unsure, nil, unsure},
		{"cr inside a word", "git push\r", "", unsure, nil, unsure},
		{"ansi-c NUL ends the text", `git $'push\0xyz'`, "", push, []string{"git", "push"}, push},
		{"ansi-c hex", `$'\x67\x69\x74' push`, "", push, nil, push},
		{"ansi-c control is not a letter", `git $'\cApush'`, "", unsure, nil, unsure},
		{"[[ arithmetic on a name", "[[ x -eq 1 ]] && ls", "", unsure, nil, unsure},
		{"[[ arithmetic on a variable", `x='a[$(git push)]'; [[ $x -eq 1 ]]`, "", unsure, nil, unsure},
		{"[[ arithmetic on numbers", "[[ $# -eq 0 ]] && ls", "", allow, nil, allow},
		{"[[ decides its substitutions", "[[ -n $(git push) ]]", "", push, nil, push},
		{"[[ -v subscript", `[[ -v 'a[$(git push)]' ]]`, "", unsure, nil, unsure},
		{"arithmetic on a variable", `x='a[$(git push)]'; echo $((x))`, "", unsure, nil, unsure},
		{"arithmetic command", "(( a[0] = 1 ))", "", unsure, nil, unsure},
		{"arithmetic for", "for ((i=0; i<3; i++)); do ls; done", "", unsure, nil, unsure},
		{"old arithmetic", "echo $[x]", "", unsure, nil, unsure},
		{"indirect expansion", "echo ${!x}", "", unsure, nil, unsure},
		{"prompt expansion", `x='$(git push)'; echo ${x@P}`, "", unsure, nil, unsure},
		{"plain expansion", `echo "${x:-default}" "${arr[@]}"`, "", allow, nil, allow},
		{"quoted brace inside an expansion", `echo ${x:-'}'} ; git push ; echo 'a' 'b'`, "", push, nil, push},
		{"select", "select x in a; do ls; done", "", unsure, nil, unsure},
		{"alias", "alias ls='git push'", "", unsure, nil, unsure},
		{"coproc", "coproc git push", "", unsure, nil, unsure},
		{"eval of a variable", `eval "$X"`, "", unsure, nil, unsure},
		{"eval of a literal", `eval 'git push'`, "", push, nil, push},
		{"source a file", "source ./env.sh && ls", "", unsure, nil, allow},
		{"dot a file", ". ./env.sh", "", unsure, nil, allow},
		{"exec with only redirections", "exec 3>out.txt", "", unsure, nil, unsure},
		{"exec redirection into a hook", "exec > .git/hooks/pre-commit", "", prot, nil, prot},
		{"trap", "trap 'git push' EXIT", "", unsure, nil, unsure},
		{"enable", "enable -f ./x.so x", "", unsure, nil, unsure},
		{"function shadows a command", "ls() { git push; }; ls", "", unsure, nil, unsure},
		{"function keyword", "function ls { git push; }; ls", "", unsure, nil, unsure},
		{"named descriptor is not the program", "{fd}>log git push", "", push, nil, push},
		{"set -k moves assignments", "set -k; git X=1 push", "", unsure, []string{"git", "push"}, push},
		{"shopt expand_aliases", "shopt -s expand_aliases", "", unsure, nil, unsure},
		{"shopt globstar", "shopt -s globstar; ls **/*.go", "", allow, nil, allow},
		{"declare -i", "declare -i n; n=x", "", unsure, nil, unsure},
		{"printf -v subscript", `printf -v 'a[$(git push)]' x`, "", unsure, nil, unsure},
		{"read into a subscript", `read 'a[$(git push)]' <<< x`, "", unsure, nil, unsure},
		{"let", "let x=1", "", unsure, nil, unsure},
		{"PATH into the workspace", "PATH=.:$PATH ls", "", unsure, []string{"ls"}, allow},
		{"exported PATH", "export PATH=./bin:$PATH; ls", "", unsure, nil, unsure},
		{"appended PATH", `export PATH="$PATH:/usr/local/go/bin"; go version`, "", allow, nil, allow},
		{"LD_PRELOAD", "env LD_PRELOAD=./x.so ls", "", unsure, []string{"env", "LD_PRELOAD=./x.so", "ls"}, unsure},
		{"GIT_CONFIG env", "GIT_CONFIG_PARAMETERS=\"'alias.st=push'\" git st", "", unsure, nil, unsure},
		{"harmless assignment", "CGO_ENABLED=0 PAGER=cat go test ./...", "", allow, nil, allow},
		{"program known at run time", "$CMD status", "", verdict{Ask, ReasonNeedsApproval, "disk-devices"}, nil, verdict{Ask, ReasonNeedsApproval, "disk-devices"}},
		{"xargs replace string as program", "echo git | xargs -I{} {} push", "", verdict{Ask, ReasonNeedsApproval, "destroy-root"}, []string{"xargs", "-I{}", "{}", "push"}, verdict{Ask, ReasonNeedsApproval, "destroy-root"}},
		{"xargs -l takes no word", "xargs -l git push", "", push, []string{"xargs", "-l", "git", "push"}, push},
		{"xargs --replace", "echo git | xargs --replace=R R push", "", verdict{Ask, ReasonNeedsApproval, "destroy-root"}, nil, verdict{Ask, ReasonNeedsApproval, "destroy-root"}},

		// other spellings of git push
		{"git-core program", "/usr/lib/git-core/git-push origin", "", push, []string{"/usr/lib/git-core/git-push", "origin"}, push},
		{"git-send-email", "git-send-email 0001.patch", "", push, []string{"git-send-email", "0001.patch"}, push},
		{"git send-pack", "git send-pack origin main", "", push, []string{"git", "send-pack", "origin", "main"}, push},
		{"git alias", "git -c alias.p=push p origin", "", push, []string{"git", "-c", "alias.p=push", "p", "origin"}, push},
		{"git alias with options", "git -c 'alias.p=-c user.name=x push' p", "", push, []string{"git", "-c", "alias.p=-c user.name=x push", "p"}, push},
		{"git shell alias", `git -c 'alias.x=!sh -c "git push"' x`, "", push, []string{"git", "-c", `alias.x=!sh -c "git push"`, "x"}, push},
		{"git shell alias unparsable", `git -c 'alias.x=!f() { git push; }; f' x`, "", unsure, []string{"git", "-c", "alias.x=!f() { git push; }; f", "x"}, unsure},
		{"git alias from a config file", "git st", "", unsure, []string{"git", "st"}, unsure},
		{"git -c hooksPath", "git -c core.hooksPath=/tmp/h commit -m x", "", unsure, []string{"git", "-c", "core.hooksPath=/tmp/h", "commit", "-m", "x"}, unsure},
		{"git -c sshCommand", "git -c core.sshCommand='sh -c x' fetch", "", unsure, []string{"git", "-c", "core.sshCommand=sh -c x", "fetch"}, unsure},
		{"git -c pager", "git -c core.pager='sh -c x' log", "", unsure, nil, unsure},
		{"git -c editor", "git -c core.editor=x commit", "", unsure, nil, unsure},
		{"git -c packObjectsHook", "git -c uploadpack.packObjectsHook=x fetch", "", unsure, nil, unsure},
		{"git --config-env", "git --config-env=core.pager=P log", "", unsure, []string{"git", "--config-env=core.pager=P", "log"}, unsure},
		{"git --git-dir", "git --git-dir=fake commit", "", unsure, nil, unsure},
		{"git -c harmless", "git -c user.name=x commit -m y", "", allow, []string{"git", "-c", "user.name=x", "commit", "-m", "y"}, allow},
		{"git rebase --exec", "git rebase -x 'make test' main", "", unsure, nil, unsure},
		{"git upload-pack option", "git fetch --upload-pack='sh -c x' origin", "", unsure, nil, unsure},

		// wrappers
		{"taskset", "taskset 1 git push", "", push, []string{"taskset", "1", "git", "push"}, push},
		{"taskset -c", "taskset -c 0-1 git push", "", push, []string{"taskset", "-c", "0-1", "git", "push"}, push},
		{"taskset -p", "taskset -p 1", "", allow, nil, allow},
		{"flock", "flock /tmp/l git push", "", push, []string{"flock", "/tmp/l", "git", "push"}, push},
		{"flock -c", "flock -w 5 /tmp/l -c 'git push'", "", push, []string{"flock", "-w", "5", "/tmp/l", "-c", "git push"}, push},
		{"setpriv", "setpriv --nnp git push", "", push, []string{"setpriv", "--nnp", "git", "push"}, push},
		{"setpriv unknown option", "setpriv --bogus x git push", "", unsure, []string{"setpriv", "--bogus", "x", "git", "push"}, unsure},
		{"script -qc", "script -qc 'git push' /dev/null", "", push, []string{"script", "-qc", "git push", "/dev/null"}, push},
		{"script without a command", "script -q log", "", unsure, []string{"script", "-q", "log"}, allow},
		{"chrt", "chrt -f 1 git push", "", push, []string{"chrt", "-f", "1", "git", "push"}, push},
		{"ionice", "ionice -c3 git push", "", push, nil, push},
		{"stdbuf", "stdbuf -oL git push", "", push, nil, push},
		{"unshare", "unshare -r git push", "", push, []string{"unshare", "-r", "git", "push"}, push},
		{"unshare -w", "unshare --wd=/ rm -rf x", "", unsure, nil, unsure},
		{"nsenter", "nsenter -t 1 -m git push", "", push, nil, push},
		{"chroot", "chroot / git push", "", push, []string{"chroot", "/", "git", "push"}, push},
		{"chroot shell", "chroot /", "", unsure, []string{"chroot", "/"}, allow},
		{"setsid", "setsid -f git push", "", push, nil, push},
		{"busybox", "busybox sh -c 'git push'", "", push, []string{"busybox", "sh", "-c", "git push"}, push},
		{"watch -d", "watch -d git push", "", push, []string{"watch", "-d", "git", "push"}, push},
		{"faketime", "faketime 2020-01-01 git push", "", push, nil, push},
		{"doas", "doas git push", "", push, nil, push},
		{"env -C", "env -C / rm -rf etc", "", unsure, []string{"env", "-C", "/", "rm", "-rf", "etc"}, unsure},
		{"loader", "/lib64/ld-linux-x86-64.so.2 /usr/bin/git push", "", push, []string{"/lib64/ld-linux-x86-64.so.2", "/usr/bin/git", "push"}, push},
		{"loader preload", "/lib64/ld-linux-x86-64.so.2 --preload ./x.so /bin/ls", "", unsure, nil, unsure},
		{"npx -c", "npx -c 'git push'", "", push, []string{"npx", "-c", "git push"}, push},
		{"uv run", "uv run git push", "", push, []string{"uv", "run", "git", "push"}, push},
		{"parallel", "parallel git push ::: a", "", unsure, []string{"parallel", "git", "push", ":::", "a"}, unsure},
		{"su", "su -c 'git push'", "", unsure, []string{"su", "-c", "git push"}, unsure},
		{"runuser", "runuser -u x -- git push", "", unsure, nil, unsure},
		{"expect", "expect -c 'spawn git push'", "", unsure, []string{"expect", "-c", "spawn git push"}, unsure},
		{"socat", "socat - EXEC:'git push'", "", unsure, []string{"socat", "-", "EXEC:git push"}, unsure},
		{"strace", "strace -f git push", "", unsure, nil, unsure},

		// interpreters with inline code
		{"perl -e", `perl -e 'system("git push")'`, "", unsure, []string{"perl", "-e", `system("git push")`}, unsure},
		{"perl -ne", `perl -ne 'print if /x/' f`, "", unsure, []string{"perl", "-ne", "print if /x/", "f"}, unsure},
		{"perl -M", `perl '-Mstrict;system("x")' f.pl`, "", unsure, []string{"perl", `-Mstrict;system("x")`, "f.pl"}, unsure},
		{"python -c", "python3 -c 'import os'", "", unsure, []string{"python3", "-c", "import os"}, unsure},
		{"python -m", "python3 -m pytest -q", "", allow, []string{"python3.12", "-m", "pytest", "-q"}, allow},
		{"ruby -e", "ruby -e 'x'", "", unsure, []string{"ruby", "-e", "x"}, unsure},
		{"node -e", "node -e 'x'", "", unsure, []string{"node", "-e", "x"}, unsure},
		{"node --print", "node --print 1", "", unsure, []string{"nodejs", "--print", "1"}, unsure},
		{"php -r", "php -r 'x'", "", unsure, []string{"php", "-r", "x"}, unsure},
		{"fish -c", "fish -c 'git push'", "", unsure, []string{"fish", "-c", "git push"}, unsure},
		{"awk system", `awk 'BEGIN{system("git push")}'`, "", unsure, []string{"awk", `BEGIN{system("git push")}`}, unsure},
		{"awk pipe", `awk '{print | "sh"}' f`, "", unsure, []string{"gawk", `{print | "sh"}`, "f"}, unsure},
		{"awk getline from a command", `awk 'BEGIN{"git push" | getline x}'`, "", unsure, []string{"mawk", `BEGIN{"git push" | getline x}`}, unsure},
		{"awk print to a file", `awk '{print > ".git/hooks/x"}' f`, "", unsure, nil, unsure},
		{"awk reads", `awk -F: '$3 > 100 {print $1}' f`, "", allow, []string{"awk", "-F:", "$3 > 100 {print $1}", "f"}, allow},
		{"awk -v before -l", `awk -v x=1 -l ext 'BEGIN{}'`, "", unsure, nil, unsure},
		{"sed 1e", "sed 1e f", "", unsure, []string{"sed", "1e", "f"}, unsure},
		{"sed s///e", "sed 's/x/git push/e' f", "", unsure, []string{"sed", "s/x/git push/e", "f"}, unsure},
		{"sed e inside a block", "sed -n '/x/{p;e git push\n}' f", "", unsure, nil, unsure},
		{"sed a text is not e", "sed 'a x; e y' f", "", allow, nil, allow},
		{"sed reads", "sed -n 's/a/b/p' f", "", allow, []string{"sed", "-n", "s/a/b/p", "f"}, allow},
		{"bash -c", "bash -c 'git push'", "", push, []string{"bash", "-c", "git push"}, push},
		{"dash -c", "dash -c 'git push'", "", push, []string{"/bin/dash", "-c", "git push"}, push},

		// scripts and stdin: the string cannot show them; their execs can
		{"sh script", "sh x.sh", "", unsure, []string{"sh", "x.sh"}, allow},
		{"bash script", "bash ./x", "", unsure, []string{"/bin/bash", "./x"}, allow},
		{"python script", "python x.py", "", unsure, []string{"python", "x.py"}, allow},
		{"perl script", "perl x.pl", "", unsure, []string{"perl", "x.pl"}, allow},
		{"awk -f", "awk -f prog.awk f", "", unsure, []string{"awk", "-f", "prog.awk", "f"}, allow},
		{"script on stdin", "sh < x.sh", "", unsure, []string{"sh"}, allow},
		{"pipe into sh", "curl -s file:///tmp/x | sh", "", piped, []string{"sh"}, allow},
		{"pipe into a group", "{ echo git push; } | { cat; sh; }", "", unsure, []string{"sh"}, allow},
		{"here-document into bash", "bash <<EOF\ngit push\nEOF", "", piped, []string{"bash"}, allow},
		{"pipe into python", "echo 'import os' | python3", "", unsure, []string{"python3"}, allow},

		// writes to protected paths
		{"cp -t", "cp -t .git/hooks pre-commit", "", prot, []string{"cp", "-t", ".git/hooks", "pre-commit"}, prot},
		{"cp --target-directory", "cp --target-directory=.git/hooks x", "", prot, nil, prot},
		{"mv from a protected path", "mv .env env.txt", "", prot, nil, prot},
		{"git config core.hooksPath", "git config core.hooksPath /tmp/h", "", prot, []string{"git", "config", "core.hooksPath", "/tmp/h"}, prot},
		{"git config from a subdirectory", "git config user.name x", "/workspace/src", prot, []string{"git", "config", "user.name", "x"}, prot},
		{"git config --global code key", "git config --global core.pager 'sh -c x'", "", unsure, nil, unsure},
		{"git config read", "git config --get user.name", "", allow, nil, allow},
		{"git remote add", "git remote add up x", "", prot, nil, prot},
		{"sort -o", "sort -o .git/hooks/pre-commit x", "", prot, []string{"sort", "-o", ".git/hooks/pre-commit", "x"}, prot},
		{"sort -o attached", "sort -uo.env x", "", prot, nil, prot},
		{"sed -i", "sed -i 's/a/b/' .env", "", prot, []string{"sed", "-i", "s/a/b/", ".env"}, prot},
		{"sed -i cluster", "sed -ni.bak 's/a/b/p' .envrc", "", verdict{Ask, ReasonProtectedPath, "sandboxed-shell"}, nil, verdict{Ask, ReasonProtectedPath, "sandboxed-shell"}},
		{"sed w", "sed -n 'w .git/hooks/pre-commit' x", "", prot, []string{"sed", "-n", "w .git/hooks/pre-commit", "x"}, prot},
		{"sed s///w", "sed 's/a/b/w .env' f", "", prot, nil, prot},
		{"curl -o", "curl -o .git/hooks/pre-commit file:///tmp/x", "", prot, []string{"curl", "-o", ".git/hooks/pre-commit", "file:///tmp/x"}, prot},
		{"curl --output", "curl -sS --output .env file:///tmp/x", "", prot, nil, prot},
		{"curl cluster", "curl -sSLo .env file:///tmp/x", "", prot, nil, prot},
		{"curl -O", "curl -O file:///tmp/.env", "", prot, nil, prot},
		{"curl to stdout", "curl -sS file:///tmp/x", "", allow, nil, allow},
		{"wget -O", "wget -qO .env file:///x", "", prot, nil, prot},
		{"tee", "echo x | tee .env", "", prot, []string{"tee", ".env"}, prot},
		{"install", "install -m 755 x .git/hooks/pre-push", "", prot, []string{"install", "-m", "755", "x", ".git/hooks/pre-push"}, prot},
		{"ln", "ln -sf /tmp/x .git/hooks/pre-push", "", prot, []string{"ln", "-sf", "/tmp/x", ".git/hooks/pre-push"}, prot},
		{"dd of=", "dd if=x of=.env", "", prot, []string{"dd", "if=x", "of=.env"}, prot},
		{"rsync", "rsync -a x/ .github/workflows/", "", verdict{Ask, ReasonProtectedPath, "sandboxed-shell"}, nil, verdict{Ask, ReasonProtectedPath, "sandboxed-shell"}},
		{"rsync -e", "rsync -e 'sh -c x' a b", "", unsure, nil, unsure},
		{"tar -x -C", "tar -xf x.tar -C .git/hooks", "", mayProt, []string{"tar", "-xf", "x.tar", "-C", ".git/hooks"}, mayProt},
		{"tar old style", "tar xzf x.tgz -C .git", "", mayProt, nil, mayProt},
		{"tar runs a compressor", "tar -cf - --use-compress-program='sh -c x' src", "", unsure, nil, unsure},
		{"tar to stdout", "tar -xOf x.tar", "", allow, nil, allow},
		{"tar create", "tar -czf out.tgz src", "", allow, nil, allow},
		{"unzip -d", "unzip -d .git/hooks x.zip", "", mayProt, []string{"unzip", "-d", ".git/hooks", "x.zip"}, mayProt},
		{"unzip list", "unzip -l x.zip", "", allow, nil, allow},
		{"find -fprint", "find . -fprint .env", "", prot, nil, prot},
		{"gunzip", "gunzip .env.gz", "", prot, nil, prot},

		// wiping the workspace
		{"find workspace -delete", "find /workspace -delete", "", wipe, []string{"find", "/workspace", "-delete"}, wipe},
		{"find . -delete", "find . -delete", "", wipe, []string{"find", ".", "-delete"}, wipe},
		{"find -delete", "find -delete", "", wipe, []string{"find", "-delete"}, wipe},
		{"find ./ -delete", "find ./ -mindepth 1 -delete", "", wipe, nil, wipe},
		{"find from a subdirectory", "find .. -delete", "/workspace/src", wipe, []string{"find", "..", "-delete"}, wipe},
		{"find -exec rm", "find . -exec rm -rf {} +", "", wipe, nil, wipe},
		{"find by name", "find . -name '*.o' -delete", "", allow, []string{"find", ".", "-name", "*.o", "-delete"}, allow},
		{"rm -rf .", "rm -rf .", "", wipe, []string{"rm", "-rf", "."}, wipe},
		// At exec level bash has already expanded the glob into names, so
		// only the bash -c exec shows the wipe.
		{"rm -rf ./*", "rm -rf ./*", "", wipe, nil, wipe},
		{"rm -rf *", "rm -rf *", "", wipe, nil, wipe},
		{"rm -rf .. from a subdirectory", "rm -rf ..", "/workspace/src", wipe, []string{"rm", "-rf", ".."}, wipe},
		{"rm -rf . in a subdirectory", "rm -rf .", "/workspace/build", allow, []string{"rm", "-rf", "."}, allow},
		{"rm -rf /workspace", "rm -rf /workspace", "", verdict{Deny, ReasonDeniedByRule, "destroy-root"}, []string{"rm", "-rf", "/workspace"}, verdict{Deny, ReasonDeniedByRule, "destroy-root"}},
		{"git clean -fdx", "git clean -fdx", "", mayProt, []string{"git", "clean", "-fdx"}, mayProt},

		// ordinary work stays allowed
		{"ls", "ls -la", "", allow, []string{"ls", "-la"}, allow},
		{"go test", "go test ./...", "", allow, []string{"go", "test", "./..."}, allow},
		{"build and run", "make build && ./bin/app --version", "", allow, []string{"./bin/app", "--version"}, allow},
		{"commit", "git commit -am 'fix: x'", "", allow, []string{"git", "commit", "-am", "fix: x"}, allow},
		{"strict shell", "set -euo pipefail; make test", "", allow, nil, allow},
		{"links", "ln -s /etc/passwd pw && ln -s ../../../.. up", "", allow, nil, allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(ToolCall{Tool: ShellTool, Command: tt.cmd, Cwd: tt.cwd})
			if diff := cmp.Diff(tt.want, short(d)); diff != "" {
				t.Errorf("Evaluate(%q) mismatch (-want +got):\n%s\njustification: %s", tt.cmd, diff, d.Justification)
			}
			argv := tt.argv
			if argv == nil {
				argv = bashC(tt.cmd)
			}
			cwd := tt.cwd
			if cwd == "" {
				cwd = DefaultWorkspace
			}
			c := ExecCall{Argv: argv, Cwd: cwd}
			d = p.EvaluateExec(c)
			if diff := cmp.Diff(tt.wantExec, short(d)); diff != "" {
				t.Errorf("EvaluateExec(%q) mismatch (-want +got):\n%s\njustification: %s", argv, diff, d.Justification)
			}
		})
	}
}
