package policy

import (
	"strings"
)

// git runs programs and reads configuration in more ways than its argv
// shows plainly. The policy normalises what it can (git-push is git push,
// git -c alias.p=push p is git push) and asks about the rest: -c keys it
// does not know to be harmless, --config-env, --exec-path, --git-dir,
// subcommands it does not know (an alias from a config file, or a git-X
// helper), and subcommand options that run programs.

// gitCommands are git's own commands; any other name may be an alias.
var gitCommands = setOf(`add am annotate apply archimport archive backfill bisect blame branch bugreport bundle cat-file
check-attr check-ignore check-mailmap check-ref-format checkout checkout-index checkout--worker cherry cherry-pick
citool clean clone column commit commit-graph commit-tree config count-objects credential credential-cache
credential-cache--daemon credential-store cvsexportcommit cvsimport cvsserver daemon describe diagnose diff
diff-files diff-index diff-pairs diff-tree difftool difftool--helper env--helper fast-export fast-import fetch fetch-pack
filter-branch fmt-merge-msg for-each-ref for-each-repo format-patch fsck fsck-objects fsmonitor--daemon gc
get-tar-commit-id grep gui hash-object help hook http-backend http-fetch http-push imap-send index-pack init
init-db instaweb interpret-trailers last-modified lfs log ls-files ls-remote ls-tree mailinfo mailsplit maintenance
merge merge-base merge-file merge-index merge-octopus merge-one-file merge-ours merge-recursive merge-resolve
merge-subtree merge-tree mergetool mktag mktree multi-pack-index mv name-rev notes p4 pack-objects
pack-redundant pack-refs patch-id prune prune-packed pull push quiltimport range-diff read-tree rebase
receive-pack reflog refs remote remote-ext remote-fd remote-ftp remote-ftps remote-http remote-https repack
replace replay repo request-pull rerere reset restore rev-list rev-parse revert rm scalar send-email send-pack
sh-i18n--envsubst shortlog show show-branch show-index show-ref sparse-checkout stage stash status stripspace
submodule submodule--helper subtree svn switch symbolic-ref tag unpack-file unpack-objects update-index update-ref
update-server-info upload-archive upload-pack var verify-commit verify-pack verify-tag version web--browse
whatchanged worktree write-tree`)

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// gitFlags are git's global options without a value.
var gitFlags = setOf(`-p -P --paginate --no-pager --bare --no-replace-objects --no-lazy-fetch --literal-pathspecs
--glob-pathspecs --noglob-pathspecs --icase-pathspecs --no-optional-locks --no-advice --html-path --man-path
--info-path --version -v --help -h --exec-path`)

// safeGitConfig are -c keys (lower case) and key prefixes that change how
// git formats, names or merges things, never which program it runs or
// where it reads configuration and hooks from.
var safeGitConfig = []string{
	"user.", "author.", "committer.", "color.", "advice.", "i18n.", "column.", "status.", "log.", "pretty.",
	"blame.", "init.defaultbranch", "commit.gpgsign", "tag.gpgsign", "commit.verbose", "commit.cleanup",
	"merge.conflictstyle", "merge.ff", "merge.renames", "merge.stat", "pull.rebase", "pull.ff", "push.default",
	"push.autosetupremote", "push.followtags", "fetch.prune", "fetch.prunetags", "fetch.parallel",
	"rebase.autosquash", "rebase.autostash", "rebase.updaterefs", "rebase.stat", "diff.noprefix", "diff.renames",
	"diff.algorithm", "diff.mnemonicprefix", "diff.colormoved", "diff.context", "diff.indentheuristic",
	"diff.relative", "diff.statgraphwidth", "diff.submodule", "core.quotepath", "core.autocrlf", "core.eol",
	"core.filemode", "core.abbrev", "core.safecrlf", "core.whitespace", "core.ignorecase", "core.precomposeunicode",
	"core.longpaths", "core.symlinks", "core.untrackedcache", "core.commentchar", "core.commentstring",
	"core.compression", "core.bigfilethreshold", "core.preloadindex", "gc.auto", "gc.autodetach",
	"maintenance.auto", "protocol.version", "checkout.defaultremote", "branch.autosetupmerge",
	"branch.autosetuprebase", "branch.sort", "tag.sort", "versionsort.suffix", "rerere.enabled", "rerere.autoupdate",
	"format.numbered", "format.signoff", "grep.linenumber", "grep.patterntype", "grep.extendedregexp",
	"transfer.fsckobjects", "fetch.fsckobjects", "receive.fsckobjects", "index.version", "pack.threads",
	"feature.manyfiles", "core.pager=cat",
	// Turning hooks and the file-system monitor off runs nothing (agents'
	// own housekeeping does this: git -c core.hooksPath=/dev/null …).
	"core.hookspath=/dev/null", "core.fsmonitor=", "core.fsmonitor=false", "safe.barerepository=explicit",
}

func safeGitKey(key, value string) bool {
	for _, s := range safeGitConfig {
		if k, v, ok := strings.Cut(s, "="); ok {
			if key == k && value == v {
				return true
			}
			continue
		}
		if key == s || (strings.HasSuffix(s, ".") && strings.HasPrefix(key, s)) {
			return true
		}
	}
	return false
}

// maxAliasDepth bounds alias chains (git itself refuses loops).
const maxAliasDepth = 8

// expandGit normalises a git invocation and looks into what it runs.
func (x expander) expandGit(u unit, depth int, out []unit, aliasDepth int) []unit {
	argv := u.argv
	if name := u.name(); name != "git" {
		// /usr/lib/git-core/git-push is git push.
		argv = append([]word{literalWord("git"), literalWord(strings.TrimPrefix(name, "git-"))}, argv[1:]...)
		u.argv = argv
	}
	var markers []unit
	aliases := map[string]word{}
	i := 1
	sub := -1
options:
	for i < len(argv) {
		a := argv[i]
		if a.dynamic {
			markers = fail(markers, "git options known only at run time")
			break
		}
		t := a.text
		name, value, hasValue := strings.Cut(t, "=")
		switch {
		case !strings.HasPrefix(t, "-"):
			sub = i
			break options
		case t == "-C":
			i += 2
		case t == "-c":
			if i+1 < len(argv) {
				markers = append(markers, gitConfigArg(argv[i+1], aliases)...)
			}
			i += 2
		case name == "--config-env":
			markers = fail(markers, "git --config-env sets configuration from the environment, which the policy cannot see")
			if !hasValue {
				i++
			}
			i++
		case name == "--exec-path" && hasValue:
			markers = fail(markers, "git --exec-path=%s runs git commands from another directory", value)
			i++
		case name == "--git-dir" || name == "--work-tree":
			markers = fail(markers, "git %s reads configuration and hooks from elsewhere", name)
			if !hasValue {
				i++
			}
			i++
		case name == "--namespace" || name == "--super-prefix" || name == "--attr-source" || name == "--list-cmds":
			if !hasValue && name != "--list-cmds" {
				i++
			}
			i++
		case gitFlags[t]:
			i++
		default:
			markers = fail(markers, "git option %s is not modelled", t)
			i++
		}
	}
	if sub < 0 || sub >= len(argv) {
		return append(append(out, u), markers...)
	}
	s := argv[sub].text
	if al, ok := aliases[strings.ToLower(s)]; ok && !gitCommands[s] {
		return append(x.gitAlias(u, sub, al, depth, out, aliasDepth), markers...)
	}
	if !gitCommands[s] {
		markers = fail(markers, "git %s is not a git command the policy knows: it may be an alias or a helper from a config file", s)
	}
	writes, risks := gitSubcommand(s, argv[sub+1:])
	if len(writes) > 0 {
		u.writes = append(append([]word(nil), u.writes...), writes...)
	}
	out = append(out, u)
	for _, r := range risks {
		out = append(out, unit{err: r})
	}
	return append(out, markers...)
}

// gitConfigArg reads one -c KEY=VALUE: aliases are kept, keys that are not
// known to be harmless ask.
func gitConfigArg(w word, aliases map[string]word) []unit {
	if w.dynamic {
		return fail(nil, "git -c %s is known only at run time", w.text)
	}
	key, value, _ := strings.Cut(w.text, "=")
	lower := strings.ToLower(key)
	if name, ok := strings.CutPrefix(lower, "alias."); ok && name != "" {
		aliases[name] = literalWordFrom(w, value)
		return nil
	}
	if safeGitKey(lower, value) {
		return nil
	}
	return fail(nil, "git -c %s can make git run programs or read configuration the policy cannot see", key)
}

// gitAlias expands git -c alias.NAME=VALUE … NAME: a "!" alias is a shell
// command with the rest of the argv appended; any other is more git words.
func (x expander) gitAlias(u unit, sub int, al word, depth int, out []unit, aliasDepth int) []unit {
	if aliasDepth >= maxAliasDepth {
		return append(out, unit{err: shellErrorf("git aliases nested more than %d levels", maxAliasDepth)})
	}
	rest := u.argv[sub+1:]
	if script, ok := strings.CutPrefix(al.text, "!"); ok {
		// git runs: sh -c 'VALUE "$@"' VALUE ARGS…
		for _, a := range rest {
			if a.dynamic {
				script += " " + a.text
				continue
			}
			script += " " + shellQuote(a.text)
		}
		return x.script(unit{argv: u.argv[:1], writes: u.writes, piped: u.piped}, script, depth, out)
	}
	words, err := splitGitCmdline(al.text)
	if err != nil || len(words) == 0 {
		return append(out, unit{err: shellErrorf("git alias %q is not understood", al.text)})
	}
	argv := append(append(append([]word(nil), u.argv[:sub]...), literalWords(words)...), rest...)
	return x.expandGit(unit{argv: argv, writes: u.writes, piped: u.piped, redirected: u.redirected}, depth, out, aliasDepth+1)
}

// splitGitCmdline splits an alias value as git does: blanks separate
// words, and single quotes, double quotes and backslashes quote.
func splitGitCmdline(s string) ([]string, error) {
	var words []string
	var b strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == 0 && (c == ' ' || c == '\t' || c == '\n'):
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		case c == '\\' && quote != '\'':
			i++
			if i >= len(s) {
				return nil, shellErrorf("git alias ends with a backslash")
			}
			b.WriteByte(s[i])
			inWord = true
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
			inWord = true
		case c == quote:
			quote = 0
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, shellErrorf("unterminated quote in git alias")
	}
	if inWord {
		words = append(words, b.String())
	}
	return words, nil
}

// gitConfigFile is the repository's config file, wherever in the
// workspace git runs.
var gitConfigFile = word{text: ".git/config", pat: ".git/config", rootRel: true}

// gitSubcommand returns the files a git subcommand writes that protected
// paths guard, and the options that make it run a program.
func gitSubcommand(sub string, args []word) (writes []word, risks []error) {
	opt := func(names ...string) string {
		for _, a := range args {
			if a.dynamic {
				continue
			}
			if a.text == "--" {
				return ""
			}
			for _, n := range names {
				if a.text == n || (strings.HasPrefix(n, "--") && strings.HasPrefix(a.text, n+"=")) ||
					(len(n) == 2 && !strings.HasPrefix(a.text, "--") && strings.HasPrefix(a.text, n) && len(a.text) > 2) {
					return n
				}
			}
		}
		return ""
	}
	runs := func(o string) {
		if o != "" {
			risks = append(risks, shellErrorf("git %s %s runs a program", sub, o))
		}
	}
	first := ""
	for _, a := range args {
		if !a.dynamic && !strings.HasPrefix(a.text, "-") {
			first = a.text
			break
		}
	}
	switch sub {
	case "config":
		return gitConfigWrites(args)
	case "clean":
		if opt("-n", "--dry-run") == "" {
			if paths := operands(args); len(paths) > 0 {
				for _, p := range paths {
					writes = append(writes, unknownUnder(p))
				}
			} else {
				writes = append(writes, unknownUnder(literalWord(".")))
			}
		}
	case "remote":
		switch first {
		case "add", "set-url", "rename", "remove", "rm", "set-head", "set-branches", "prune":
			writes = append(writes, gitConfigFile)
		}
	case "submodule":
		switch first {
		case "foreach":
			runs("foreach")
		case "add", "init", "set-url", "set-branch", "deinit", "sync", "absorbgitdirs":
			writes = append(writes, gitConfigFile, word{text: ".gitmodules", pat: ".gitmodules", rootRel: true})
		}
	case "lfs":
		switch first {
		case "install", "update", "uninstall":
			writes = append(writes, word{text: ".git/hooks", pat: ".git/hooks", rootRel: true}, gitConfigFile)
		}
	case "init", "init-db":
		// A fresh repository is what git clone makes too: a plain config
		// and sample hooks, which run nothing. The runner's file system
		// guard accepts exactly that and puts back anything more; only a
		// template, which can bring hooks, is a question here.
		if o := opt("--template"); o != "" {
			risks = append(risks, shellErrorf("git init --template copies hooks from a template"))
		}
	case "clone":
		runs(opt("-u", "--upload-pack"))
		if opt("--template") != "" {
			risks = append(risks, shellErrorf("git clone --template copies hooks from a template"))
		}
		for k, a := range args {
			if (a.text == "-c" || a.text == "--config") && k+1 < len(args) {
				for _, m := range gitConfigArg(args[k+1], map[string]word{}) {
					risks = append(risks, m.err)
				}
			}
		}
	case "fetch", "pull", "ls-remote", "fetch-pack":
		runs(opt("--upload-pack", "--exec"))
	case "push", "send-pack":
		runs(opt("--receive-pack", "--exec"))
	case "archive":
		runs(opt("--exec"))
		writes = append(writes, gitOutputs(args, "-o", "--output")...)
	case "rebase":
		runs(opt("-x", "--exec"))
	case "bisect":
		if first == "run" {
			runs("run")
		}
	case "grep":
		runs(opt("-O", "--open-files-in-pager"))
	case "difftool", "mergetool", "filter-branch", "instaweb", "web--browse", "send-email", "daemon", "shell", "p4", "svn", "cvsserver":
		risks = append(risks, shellErrorf("git %s runs programs the policy does not model", sub))
	case "diff", "log", "show", "format-patch":
		writes = append(writes, gitOutputs(args, "", "--output")...)
		for _, d := range gitOutputs(args, "-o", "--output-directory") {
			writes = append(writes, unknownUnder(d))
		}
	}
	return writes, risks
}

// gitOutputs are the values of an output option.
func gitOutputs(args []word, short, long string) []word {
	var out []word
	for k, a := range args {
		switch {
		case a.dynamic:
		case (short != "" && a.text == short) || a.text == long:
			if k+1 < len(args) {
				out = append(out, args[k+1])
			}
		case strings.HasPrefix(a.text, long+"="):
			out = append(out, suffixWord(a, long+"="))
		}
	}
	return out
}

func joinWord(dir word, name string) word {
	if dir.dynamic {
		return word{text: dir.text + "/" + name, pat: "*", dynamic: true}
	}
	return literalWordFrom(dir, strings.TrimSuffix(dir.text, "/")+"/"+name)
}

// gitConfigWrites reads git config: a setting writes the repository's
// config (or --file's, --global's), and keys that make git run programs
// ask wherever they are set.
func gitConfigWrites(args []word) (writes []word, risks []error) {
	var target *word
	write, edit := false, false
	var ops []word
	for k := 0; k < len(args); k++ {
		a := args[k]
		t := a.text
		if a.dynamic {
			ops = append(ops, a)
			continue
		}
		name, value, hasValue := strings.Cut(t, "=")
		switch {
		case k == 0 && (t == "set" || t == "unset" || t == "rename-section" || t == "remove-section"):
			write = true
		case k == 0 && t == "edit":
			edit = true
		case k == 0 && (t == "get" || t == "list"):
			return nil, nil
		case t == "-e" || t == "--edit":
			edit = true
		case t == "--add" || t == "--replace-all" || t == "--unset" || t == "--unset-all" || t == "--rename-section" || t == "--remove-section":
			write = true
		case t == "--get" || t == "--get-all" || t == "--get-regexp" || t == "--get-urlmatch" || t == "--get-color" ||
			t == "--get-colorbool" || t == "-l" || t == "--list":
			return nil, nil
		case name == "--file" || t == "-f":
			var f word
			if hasValue {
				f = literalWordFrom(a, value)
			} else if k+1 < len(args) {
				k++
				f = args[k]
			}
			target = &f
		case t == "--global":
			f := literalWord("~/.gitconfig")
			target = &f
		case t == "--system":
			f := literalWord("/etc/gitconfig")
			target = &f
		case t == "--worktree":
			f := word{text: ".git/config.worktree", pat: ".git/config.worktree", rootRel: true}
			target = &f
		case name == "--blob" || name == "--type" || name == "--default" || name == "--comment" || name == "--value" || name == "--url":
			if !hasValue {
				k++
			}
		case strings.HasPrefix(t, "-"):
		default:
			ops = append(ops, a)
		}
	}
	if edit {
		return nil, []error{shellErrorf("git config --edit runs an editor")}
	}
	if len(ops) >= 2 {
		write = true
	}
	if !write {
		return nil, nil
	}
	if target != nil {
		writes = append(writes, *target)
	} else {
		writes = append(writes, gitConfigFile)
	}
	if len(ops) > 0 {
		key := ops[0]
		value := ""
		if len(ops) > 1 {
			value = ops[1].text
		}
		if key.dynamic || !safeGitKey(strings.ToLower(key.text), value) {
			risks = append(risks, shellErrorf("git config %s can make git run programs or read configuration the policy cannot see", key.text))
		}
	}
	return writes, risks
}
