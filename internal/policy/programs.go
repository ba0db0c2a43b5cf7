package policy

import "strings"

// What the policy knows about programs that run other programs. A program
// is looked through only when its argv layout is certain; otherwise it
// asks.

var shells = map[string]bool{
	"sh": true, "bash": true, "zsh": true, "dash": true, "ksh": true,
	"mksh": true, "ash": true, "posh": true, "yash": true, "rbash": true,
}

// wrapper describes a program that runs its operands as another command.
type wrapper struct {
	valued     string   // short options that take a value, attached or the next word
	optional   string   // short options whose value, if any, is attached (xargs -i)
	longValued []string // long options that take a value, after = or as the next word
	longOpt    []string // long options whose value, if any, follows = (xargs --replace=R)
	positional int      // operands before the command (timeout's duration)
	// strict: only the options listed here are known; any other asks,
	// because it might take a value and shift where the command starts.
	strict    bool
	flags     string   // strict: short options without a value
	longFlags []string // strict: long options without a value
	idle      []string // options after which no command runs (taskset -p)
	chdir     []string // options that run the command in another directory
	code      []string // options that load code or run a program of their own
	shell     bool     // without a command it starts a shell reading stdin
	shellOpts []string // options that, without a command, start such a shell
	writes    []string // options whose value is a file the wrapper writes
}

var wrappers = map[string]wrapper{
	"sudo": {valued: "ughpCDrtUT", longValued: []string{"--user", "--group", "--host", "--prompt", "--close-from", "--chdir", "--role", "--type", "--other-user", "--command-timeout"},
		idle: []string{"-l", "--list", "-v", "--validate", "-K", "--remove-timestamp", "-V", "--version"},
		code: []string{"-e", "--edit"}, chdir: []string{"-D", "--chdir"}, shellOpts: []string{"-s", "--shell", "-i", "--login"}},
	"doas": {valued: "uC", shellOpts: []string{"-s"}},
	"env": {valued: "uCS", longValued: []string{"--unset", "--chdir", "--split-string"},
		chdir: []string{"-C", "--chdir"}},
	"nice":    {valued: "n", longValued: []string{"--adjustment"}},
	"nohup":   {},
	"time":    {valued: "fo", longValued: []string{"--format", "--output"}, writes: []string{"-o", "--output"}},
	"timeout": {valued: "sk", longValued: []string{"--signal", "--kill-after"}, positional: 1},
	"stdbuf":  {valued: "ioe", longValued: []string{"--input", "--output", "--error"}},
	"ionice": {valued: "cnpPu", longValued: []string{"--class", "--classdata", "--pid", "--pgid", "--uid"},
		idle: []string{"-p", "--pid", "-P", "--pgid", "-u", "--uid"}},
	"setsid":    {strict: true, flags: "cfwhV", longFlags: []string{"--ctty", "--fork", "--wait", "--help", "--version"}},
	"builtin":   {},
	"exec":      {valued: "a"},
	"command":   {idle: []string{"-v", "-V"}},
	"busybox":   {},
	"toybox":    {},
	"chronic":   {},
	"unbuffer":  {},
	"catchsegv": {strict: true},
	"nocache":   {strict: true},
	"eatmydata": {strict: true},
	"xargs": {valued: "adEILnPs", optional: "eil", longValued: []string{"--arg-file", "--delimiter", "--max-args", "--max-procs", "--max-chars", "--process-slot-var"},
		longOpt: []string{"--replace", "--eof", "--max-lines"}},
	"watch": {valued: "nq", optional: "d", longValued: []string{"--interval", "--equexit"}, longOpt: []string{"--differences"}},
	"taskset": {strict: true, flags: "apchV", longFlags: []string{"--all-tasks", "--pid", "--cpu-list", "--help", "--version"},
		positional: 1, idle: []string{"-p", "--pid"}},
	"chrt": {strict: true, flags: "abdfiomprRvVhe", valued: "DPT",
		longFlags:  []string{"--all-tasks", "--batch", "--deadline", "--fifo", "--idle", "--other", "--rr", "--ext", "--reset-on-fork", "--max", "--pid", "--verbose", "--help", "--version"},
		longValued: []string{"--sched-runtime", "--sched-period", "--sched-deadline"},
		positional: 1, idle: []string{"-p", "--pid", "-m", "--max"}},
	"setpriv": {strict: true, flags: "dhV",
		longFlags: []string{"--dump", "--nnp", "--no-new-privs", "--init-groups", "--clear-groups", "--keep-groups", "--reset-env", "--help", "--version"},
		longValued: []string{"--reuid", "--regid", "--ruid", "--euid", "--rgid", "--egid", "--groups", "--inh-caps", "--ambient-caps",
			"--bounding-set", "--securebits", "--pdeathsig", "--selinux-label", "--apparmor-profile"},
		idle: []string{"-d", "--dump"}},
	// Namespace options take an optional attached file; -R and -w move the
	// command elsewhere.
	"unshare": {strict: true, flags: "frchV", optional: "muinpUCT", valued: "RwSG",
		longFlags: []string{"--fork", "--mount", "--uts", "--ipc", "--net", "--pid", "--user", "--cgroup", "--time", "--map-root-user",
			"--map-current-user", "--map-auto", "--kill-child", "--mount-proc", "--keep-caps", "--help", "--version"},
		longValued: []string{"--map-user", "--map-group", "--map-users", "--map-groups", "--propagation", "--setgroups", "--root", "--wd",
			"--setuid", "--setgid", "--monotonic", "--boottime"},
		chdir: []string{"-R", "--root", "-w", "--wd"}, shell: true},
	"nsenter": {strict: true, flags: "aFZhV", optional: "muinpCUTrw", valued: "tSGW",
		longFlags: []string{"--all", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--user", "--time", "--root", "--wd",
			"--preserve-credentials", "--no-fork", "--follow-context", "--help", "--version"},
		longValued: []string{"--target", "--setuid", "--setgid", "--wdns"},
		chdir:      []string{"-r", "--root", "-w", "--wd", "-W", "--wdns"}, shell: true},
	"chroot": {strict: true, longValued: []string{"--userspec", "--groups"}, longFlags: []string{"--skip-chdir", "--help", "--version"},
		positional: 1, shell: true},
	"setarch": {strict: true, flags: "3BFILRSTXZvhV", longFlags: []string{"--32bit", "--fdpic-funcptrs", "--short-inode", "--addr-compat-layout",
		"--addr-no-randomize", "--whole-seconds", "--sticky-timeouts", "--read-implies-exec", "--mmap-page-zero", "--3gb", "--4gb",
		"--uname-2.6", "--verbose", "--help", "--version"}, idle: []string{"--list"}, positional: 1, shell: true},
	"linux32":   {strict: true, flags: "3BFILRSTXZv", shell: true},
	"linux64":   {strict: true, flags: "3BFILRSTXZv", shell: true},
	"faketime":  {strict: true, flags: "mf", positional: 1},
	"fakeroot":  {strict: true, flags: "uhv", valued: "sibl", longValued: []string{"--lib", "--faked"}, longFlags: []string{"--unknown-is-real"}, code: []string{"-l", "--lib", "--faked", "-i", "-s"}, shell: true},
	"ssh-agent": {strict: true, flags: "cDdsk", valued: "aEOPt", shell: true},
}

// loaderWrapper is the dynamic loader run as a program
// (/lib64/ld-linux-x86-64.so.2 /usr/bin/git push).
var loaderWrapper = wrapper{strict: true, longValued: []string{"--argv0", "--preload", "--audit", "--library-path", "--inhibit-rpath",
	"--glibc-hwcaps-prefix", "--glibc-hwcaps-mask"}, longFlags: []string{"--inhibit-cache", "--list", "--verify", "--help", "--version", "--list-tunables", "--list-diagnostics"},
	code: []string{"--preload", "--audit", "--library-path", "--inhibit-rpath", "--glibc-hwcaps-prefix", "--glibc-hwcaps-mask"},
	idle: []string{"--list", "--verify", "--help", "--version", "--list-tunables", "--list-diagnostics"}}

func isLoader(name string) bool {
	return name == "ld.so" || strings.HasPrefix(name, "ld-linux") || strings.HasPrefix(name, "ld-musl-") || strings.HasPrefix(name, "ld64.so")
}

var flockWrapper = wrapper{strict: true, flags: "sexnuoFhV", valued: "wE",
	longFlags:  []string{"--shared", "--exclusive", "--unlock", "--nonblock", "--nb", "--close", "--no-fork", "--verbose", "--help", "--version"},
	longValued: []string{"--timeout", "--wait", "--conflict-exit-code"}}

var scriptWrapper = wrapper{strict: true, flags: "aefqhV", valued: "cIOBTEmo", optional: "t",
	longFlags:  []string{"--append", "--return", "--flush", "--force", "--quiet", "--help", "--version", "--timing"},
	longValued: []string{"--command", "--log-in", "--log-out", "--log-io", "--log-timing", "--echo", "--logging-format", "--output-limit"}}

// runner is a package tool's way to run a command: npx CMD, uv run CMD.
type runner struct {
	subs       []string // the subcommand that runs (uv run); empty: the tool itself (npx)
	flags      []string // options without a value
	valued     []string // options with a value
	shellOpts  []string // options whose value is a shell string (npx -c)
	chdir      []string // options that run the command in another directory
	positional int      // operands before the command (direnv exec DIR)
}

var (
	npmExec = runner{subs: []string{"exec", "x"}, flags: []string{"-y", "--yes", "--no", "-q", "--quiet", "--no-install", "--ignore-existing"},
		valued: []string{"-p", "--package"}, shellOpts: []string{"-c", "--call"}}
	runners = map[string]runner{
		"npx":    {flags: npmExec.flags, valued: npmExec.valued, shellOpts: npmExec.shellOpts},
		"npm":    npmExec,
		"pnpm":   {subs: []string{"exec", "dlx"}, shellOpts: []string{"-c", "--shell-mode"}},
		"yarn":   {subs: []string{"exec", "dlx"}},
		"bunx":   {},
		"uv":     {subs: []string{"run"}},
		"uvx":    {},
		"poetry": {subs: []string{"run"}},
		"pipenv": {subs: []string{"run"}},
		"pdm":    {subs: []string{"run"}},
		"hatch":  {subs: []string{"run"}},
		"rye":    {subs: []string{"run"}},
		"bundle": {subs: []string{"exec"}},
		"conda": {subs: []string{"run"}, flags: []string{"--no-capture-output", "--live-stream", "-v", "--debug"},
			valued: []string{"-n", "--name", "-p", "--prefix"}, chdir: []string{"--cwd"}},
		"direnv": {subs: []string{"exec"}, positional: 1},
	}
)

// scriptExts are file names a runner hands to an interpreter.
var scriptExts = map[string]bool{".py": true, ".js": true, ".mjs": true, ".cjs": true, ".ts": true, ".mts": true, ".rb": true,
	".pl": true, ".sh": true, ".bash": true, ".php": true, ".lua": true}

// opaque programs run commands, code or scripts in ways the policy does
// not model; they always ask.
var opaque = map[string]string{
	"su":                "runs a shell as another user",
	"runuser":           "runs a shell as another user",
	"sg":                "runs a shell string with another group",
	"newgrp":            "starts a shell with another group",
	"pkexec":            "runs a program as another user",
	"parallel":          "builds and runs shell commands from its arguments and input",
	"sem":               "builds and runs shell commands from its arguments",
	"rush":              "builds and runs shell commands from its input",
	"expect":            "runs Tcl code",
	"socat":             "can run programs and write files named in its addresses",
	"gdb":               "can run shell commands and code",
	"lldb":              "can run shell commands and code",
	"strace":            "runs a program with options the policy does not model",
	"ltrace":            "runs a program with options the policy does not model",
	"valgrind":          "runs a program with options the policy does not model",
	"perf":              "runs a program with options the policy does not model",
	"hyperfine":         "runs shell strings",
	"entr":              "runs a command when files change",
	"tmux":              "runs shell commands in a terminal server",
	"screen":            "runs shell commands in a terminal server",
	"at":                "schedules commands read from stdin",
	"batch":             "schedules commands read from stdin",
	"crontab":           "schedules commands",
	"systemd-run":       "runs a program as a service",
	"run-parts":         "runs every script in a directory",
	"start-stop-daemon": "runs a program as a daemon",
	"daemonize":         "runs a program as a daemon",
	"firejail":          "runs a program in a sandbox with options the policy does not model",
	"bwrap":             "runs a program in a sandbox with options the policy does not model",
	"proot":             "runs a program with options the policy does not model",
	"xvfb-run":          "runs a program with options the policy does not model",
	"dbus-run-session":  "runs a program with options the policy does not model",
	"torsocks":          "runs a program with options the policy does not model",
	"proxychains":       "runs a program with options the policy does not model",
	"proxychains4":      "runs a program with options the policy does not model",
	"sshpass":           "runs a program with options the policy does not model",
	"vi":                "can run shell commands from its command line",
	"vim":               "can run shell commands from its command line",
	"nvim":              "can run shell commands from its command line",
	"view":              "can run shell commands from its command line",
	"vimdiff":           "can run shell commands from its command line",
	"ex":                "runs editor commands, which can run shell commands",
	"ed":                "runs editor commands, which can run shell commands",
	"emacs":             "can run code from its command line",
	"emacsclient":       "can run code from its command line",
	"m4":                "runs macros, which can run shell commands",
	"sqlite3":           "runs dot-commands, which can run shell commands and write files",
	"pwsh":              "runs PowerShell code",
	"powershell":        "runs PowerShell code",
}

// safeSetFlags are set and shell flags that do not change how commands
// are read or which code runs.
const safeSetFlags = "abBCeEfhHmnpPtuvx"

// safeSetO are set -o options of the same kind.
var safeSetO = map[string]bool{
	"errexit": true, "nounset": true, "pipefail": true, "xtrace": true, "verbose": true, "noglob": true,
	"noclobber": true, "noexec": true, "hashall": true, "braceexpand": true, "allexport": true, "errtrace": true,
	"physical": true, "notify": true, "monitor": true, "privileged": true, "onecmd": true, "ignoreeof": true,
	"interactive-comments": true, "nolog": true, "emacs": true, "vi": true, "history": true, "histexpand": true,
}

// safeShopt are shopt options of the same kind: globbing and error
// handling, not aliases, extglob patterns or the debugger.
var safeShopt = map[string]bool{
	"globstar": true, "nullglob": true, "dotglob": true, "failglob": true, "nocaseglob": true, "nocasematch": true,
	"globasciiranges": true, "globskipdots": true, "inherit_errexit": true, "lastpipe": true, "checkwinsize": true,
	"cmdhist": true, "lithist": true, "histappend": true, "xpg_echo": true, "shift_verbose": true, "huponexit": true,
	"checkjobs": true, "checkhash": true, "execfail": true, "gnu_errfmt": true, "assoc_expand_once": true,
	"localvar_inherit": true, "localvar_unset": true, "noexpand_translation": true, "varredir_close": true,
	"patsub_replacement": true, "progcomp": true, "promptvars": true, "extquote": true,
}

var safeShellLongOpts = []string{"--norc", "--noprofile", "--login", "--noediting", "--restricted", "--verbose", "--dump-strings", "--dump-po-strings", "--help", "--version"}

// envRisk says why setting a variable changes which code later commands
// run, or "" when the policy does not know it to.
func envRisk(name string) string {
	switch name {
	case "PATH", "CDPATH", "EXECIGNORE":
		return "changes which program a name runs or where cd goes"
	case "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "PS0", "HOME", "XDG_CONFIG_HOME", "ZDOTDIR",
		"INPUTRC", "BASH_LOADABLES_PATH", "SHELL", "GLOBIGNORE":
		return "makes shells and tools read code or configuration from elsewhere"
	case "EDITOR", "VISUAL", "PAGER", "MANPAGER", "BROWSER", "LESSOPEN", "LESSCLOSE", "SUDO_ASKPASS", "SSH_ASKPASS",
		"RSYNC_RSH", "CVS_RSH", "TAR_OPTIONS", "GNUPGHOME", "SUDO_EDITOR":
		return "names a program that tools run"
	case "PERL5OPT", "PERL5LIB", "PERLLIB", "PERL5DB", "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE",
		"NODE_OPTIONS", "NODE_PATH", "RUBYOPT", "RUBYLIB", "GOFLAGS", "RUSTC_WRAPPER", "RUSTC", "RUSTDOC", "RUSTFLAGS",
		"CC", "CXX", "CPP", "LD", "AR", "AS", "MAKEFLAGS", "MFLAGS", "MAKE", "CLASSPATH", "JAVA_TOOL_OPTIONS",
		"_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "MAVEN_OPTS", "GRADLE_OPTS", "SBT_OPTS", "LUA_INIT", "LUA_PATH", "LUA_CPATH":
		return "makes an interpreter or build tool load other code"
	}
	upper := strings.ToUpper(name)
	for _, p := range []string{"LD_", "DYLD_", "BASH_FUNC_", "NPM_CONFIG_", "YARN_", "CARGO_", "PIP_", "UV_"} {
		if strings.HasPrefix(upper, p) {
			return "makes a loader, shell or package tool run other code"
		}
	}
	for _, s := range []string{"_COMMAND", "_RUNNER", "_WRAPPER", "_LINKER", "_EDITOR", "_PAGER", "_ASKPASS", "_RSH"} {
		if strings.HasSuffix(upper, s) {
			return "names a program that tools run"
		}
	}
	if strings.HasPrefix(name, "GIT_") && !safeGitEnv(name) {
		return "changes where git reads its configuration, hooks or programs from"
	}
	return ""
}

// programVar reports a variable that names one program for tools to run.
func programVar(name string) bool {
	switch name {
	case "EDITOR", "VISUAL", "PAGER", "MANPAGER", "GIT_PAGER", "GIT_EDITOR", "GIT_SEQUENCE_EDITOR", "SUDO_EDITOR",
		"CC", "CXX", "CPP", "LD", "AR", "AS", "MAKE", "RUSTC":
		return true
	}
	return false
}

// harmlessPrograms are values of such variables that run nothing else.
var harmlessPrograms = map[string]bool{
	"": true, "cat": true, "true": true, "false": true, ":": true, "less": true, "more": true, "head": true, "tail": true,
	"gcc": true, "g++": true, "cc": true, "c++": true, "clang": true, "clang++": true, "ld": true, "ar": true, "as": true,
	"make": true, "rustc": true,
}

func safeGitEnv(name string) bool {
	for _, p := range []string{"GIT_TRACE", "GIT_AUTHOR_", "GIT_COMMITTER_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	switch name {
	case "GIT_TERMINAL_PROMPT", "GIT_CURL_VERBOSE", "GIT_PROGRESS_DELAY", "GIT_OPTIONAL_LOCKS", "GIT_MERGE_AUTOEDIT",
		"GIT_FLUSH", "GIT_LFS_SKIP_SMUDGE", "GIT_DEFAULT_HASH", "GIT_LITERAL_PATHSPECS", "GIT_GLOB_PATHSPECS",
		"GIT_NOGLOB_PATHSPECS", "GIT_ICASE_PATHSPECS", "GIT_REDACT_COOKIES", "GIT_ADVICE":
		return true
	}
	return false
}
