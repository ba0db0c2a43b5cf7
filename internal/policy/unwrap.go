package policy

import (
	"path"
	"strings"
)

// unit is one program the call would run, after wrappers such as env,
// timeout, sudo, xargs and sh -c were looked through.
type unit struct {
	argv       []word
	writes     []word // files the command writes: redirections and known writers
	piped      bool   // reads another command's output or inline data on stdin
	redirected bool   // the command has redirections of its own
	err        error  // the part of the call this unit stands for could not be analysed
}

// name is the program's base name, as rules match it.
func (u *unit) name() string {
	if len(u.argv) == 0 || u.argv[0].dynamic {
		return ""
	}
	return path.Base(u.argv[0].text)
}

// expander turns parsed commands into units.
//
// Two kinds of code stay out of sight of the parser. Inline code (perl -e,
// python -c, an awk program that calls system()) is in the argv but is a
// language the policy does not judge; it asks at both levels. Code read
// from a file or from stdin (sh x.sh, python x.py, source x, … | sh) is not
// in the argv at all; the command string asks about it, but at exec level
// (exec true) the interpreter is decided alone, because every program that
// code starts is an exec of its own, decided when it starts — and every
// script started through its #! line reaches the exec level in this form.
type expander struct {
	exec bool
}

// fail appends a unit that asks because the policy cannot judge what it
// stands for. It goes after the program's own unit, so that a rule that
// denies the program still decides.
func fail(out []unit, format string, args ...any) []unit {
	return append(out, unit{err: shellErrorf(format, args...)})
}

// unseen is fail for code read from a file or stdin: asked about in a
// command string, left to the exec level there.
func (x expander) unseen(out []unit, format string, args ...any) []unit {
	if x.exec {
		return out
	}
	return fail(out, format, args...)
}

// unitsFromCommand parses a shell string into units, as the command string
// policy sees it.
func unitsFromCommand(src string, depth int) ([]unit, error) {
	return expander{}.command(src, depth)
}

// unitsFromArgv builds units from an argv that runs without a shell.
func unitsFromArgv(argv []string) []unit {
	return expander{}.argv(argv)
}

func (x expander) command(src string, depth int) ([]unit, error) {
	cmds, err := parseCommand(src, depth)
	if err != nil {
		return nil, err
	}
	var out []unit
	for _, c := range cmds {
		if len(c.args) > 0 || len(c.redirs) > 0 {
			u := unit{argv: c.args, piped: c.piped, redirected: len(c.redirs) > 0}
			for _, r := range c.redirs {
				if t, ok := writeTarget(r); ok {
					u.writes = append(u.writes, t)
				}
			}
			out = x.expand(u, depth, out)
		}
		for _, a := range c.assigns {
			if err := assignmentRisk(a); err != nil {
				out = append(out, unit{err: err})
			}
		}
		if len(out) > maxUnits {
			return nil, shellErrorf("more than %d commands", maxUnits)
		}
	}
	return out, nil
}

func (x expander) argv(argv []string) []unit {
	u := unit{argv: literalWords(argv)}
	return x.expand(u, 0, nil)
}

func literalWords(ss []string) []word {
	ws := make([]word, len(ss))
	for i, s := range ss {
		ws[i] = literalWord(s)
	}
	return ws
}

// writeTarget returns the file a redirection writes, if any.
func writeTarget(r redirect) (word, bool) {
	switch r.op {
	case ">", ">>", ">|", "&>", "&>>", "<>":
	case ">&":
		if allDigits(r.target.text) || r.target.text == "-" {
			return word{}, false
		}
	default:
		return word{}, false
	}
	switch r.target.text {
	case "/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty":
		if !r.target.dynamic {
			return word{}, false
		}
	}
	return r.target, true
}

// expand looks through wrappers and interpreters and appends the resulting
// units to out.
func (x expander) expand(u unit, depth int, out []unit) []unit {
	if len(out) > maxUnits {
		return append(out, unit{err: shellErrorf("more than %d commands", maxUnits)})
	}
	if depth > maxDepth {
		return append(out, unit{err: shellErrorf("nested more than %d levels", maxDepth)})
	}
	if len(u.argv) == 0 {
		if len(u.writes) > 0 {
			// A bare redirection ("> file") still writes.
			return append(out, u)
		}
		return out
	}
	if u.argv[0].dynamic {
		// Rules that ask or deny may still match it ("may match"), but
		// nothing may allow a program chosen at run time.
		out = append(out, withInferredWrites(u))
		return fail(out, "the program %s is known only at run time", u.argv[0].text)
	}
	name := u.name()
	switch {
	case name == "git" || strings.HasPrefix(name, "git-"):
		return x.expandGit(u, depth, out, 0)
	case shells[name]:
		return x.expandShell(u, depth, out)
	case isLoader(name):
		return x.expandWrapper(u, name, loaderWrapper, depth, out)
	}
	if done, res := x.expandBuiltin(u, name, depth, out); done {
		return res
	}
	switch iname := interpName(name); {
	case awks[iname]:
		return x.expandAwk(u, out)
	case iname == "sed":
		return x.expandSed(u, out)
	case interpreters[iname] != nil:
		return x.expandInterp(u, iname, interpreters[iname], out)
	}
	switch name {
	case "find":
		return x.expandFind(u, depth, out)
	case "flock":
		return x.expandFlock(u, depth, out)
	case "script":
		return x.expandScriptCmd(u, depth, out)
	}
	if w, ok := wrappers[name]; ok {
		return x.expandWrapper(u, name, w, depth, out)
	}
	if r, ok := runners[name]; ok {
		return x.expandRunner(u, name, r, depth, out)
	}
	if why, ok := opaque[name]; ok {
		out = append(out, withInferredWrites(u))
		return fail(out, "%s %s", name, why)
	}
	return x.program(u, out)
}

// program appends a plain program with the files it writes and any option
// that makes it run code.
func (x expander) program(u unit, out []unit) []unit {
	u, risks := inferWrites(u)
	out = append(out, u)
	for _, r := range risks {
		out = append(out, unit{err: r})
	}
	return out
}

// optScan is what scanOptions found before a wrapper's operands.
type optScan struct {
	rest    []word
	seen    map[string]bool   // options as "-x" or "--long"
	values  map[string][]word // values of valued options
	unknown string            // a strict wrapper's option not in its spec
	dynamic bool              // an option known only at run time
}

// scanOptions drops a wrapper's options and returns its operands.
func scanOptions(args []word, w wrapper) optScan {
	sc := optScan{seen: map[string]bool{}, values: map[string][]word{}}
	take := func(name string, v word) { sc.values[name] = append(sc.values[name], v) }
	for len(args) > 0 {
		a := args[0]
		if a.dynamic {
			sc.dynamic = true
			return sc
		}
		t := a.text
		switch {
		case t == "--":
			sc.rest = args[1:]
			return sc
		case strings.HasPrefix(t, "--"):
			name, val, hasVal := strings.Cut(t, "=")
			sc.seen[name] = true
			n := 1
			switch {
			case contains(w.longValued, name):
				if hasVal {
					take(name, literalWordFrom(a, val))
				} else {
					n = 2
					if len(args) > 1 {
						take(name, args[1])
					}
				}
			case contains(w.longOpt, name):
				if hasVal {
					take(name, literalWordFrom(a, val))
				}
			case w.strict && !contains(w.longFlags, name):
				sc.unknown = name
				return sc
			}
			if n > len(args) {
				return sc
			}
			args = args[n:]
		case len(t) > 1 && t[0] == '-':
			n := 1
			for i := 1; i < len(t); i++ {
				c := t[i]
				opt := "-" + string(c)
				sc.seen[opt] = true
				if strings.IndexByte(w.valued, c) >= 0 {
					if i == len(t)-1 {
						n = 2 // value is the next word
						if len(args) > 1 {
							take(opt, args[1])
						}
					} else {
						take(opt, literalWordFrom(a, t[i+1:]))
					}
					break
				}
				if strings.IndexByte(w.optional, c) >= 0 {
					if i < len(t)-1 {
						take(opt, literalWordFrom(a, t[i+1:]))
					}
					break // any value is attached
				}
				if w.strict && strings.IndexByte(w.flags, c) < 0 {
					sc.unknown = opt
					return sc
				}
			}
			if n > len(args) {
				return sc
			}
			args = args[n:]
		default:
			sc.rest = args
			return sc
		}
	}
	return sc
}

// literalWordFrom is part of a word, keeping whether it was quoted.
func literalWordFrom(w word, text string) word {
	v := literalWord(text)
	v.quoted = w.quoted
	return v
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func (sc optScan) any(opts []string) string {
	for _, o := range opts {
		if sc.seen[o] {
			return o
		}
	}
	return ""
}

// expandWrapper looks through a program that runs its operands as another
// command.
func (x expander) expandWrapper(u unit, name string, w wrapper, depth int, out []unit) []unit {
	sc := scanOptions(u.argv[1:], w)
	switch {
	case sc.dynamic:
		out = append(out, u)
		return fail(out, "%s options known only at run time", name)
	case sc.unknown != "":
		out = append(out, u)
		return fail(out, "%s option %s is not modelled, so what it runs is unknown", name, sc.unknown)
	}
	if o := sc.any(w.code); o != "" {
		out = append(out, u)
		return fail(out, "%s %s loads code or runs a program the policy cannot judge", name, o)
	}
	if sc.any(w.idle) != "" {
		// These forms act on a process or look a name up; nothing runs.
		return append(out, u)
	}
	var markers []unit
	if o := sc.any(w.chdir); o != "" {
		markers = fail(markers, "%s %s runs the command in another directory, where relative paths are not checked", name, o)
	}
	if name == "env" && (sc.seen["-S"] || sc.seen["--split-string"]) {
		// env -S "deno run -A" script (a #! line): the string is more
		// arguments; only plain words are split here.
		vals := append(append([]word(nil), sc.values["-S"]...), sc.values["--split-string"]...)
		if len(vals) != 1 || vals[0].dynamic || strings.ContainsAny(vals[0].text, "$\\'\"#") {
			return append(append(out, unit{err: shellErrorf("env -S of a string the policy does not split")}), markers...)
		}
		argv := append(append([]word{u.argv[0]}, literalWords(strings.Fields(vals[0].text))...), sc.rest...)
		inner := unit{argv: argv, writes: u.writes, piped: u.piped, redirected: u.redirected}
		return append(x.expand(inner, depth+1, out), markers...)
	}
	rest := sc.rest
	if name == "env" {
		for len(rest) > 0 && isAssignment(rest[0]) {
			if err := assignmentRisk(rest[0]); err != nil {
				markers = append(markers, unit{err: err})
			}
			rest = rest[1:]
		}
	}
	writes := u.writes
	for _, o := range w.writes {
		writes = append(append([]word(nil), writes...), sc.values[o]...)
	}
	if len(rest) < w.positional {
		return append(append(out, u), markers...)
	}
	rest = rest[w.positional:]
	if len(rest) == 0 {
		switch {
		case name == "xargs":
			rest = []word{literalWord("echo")}
		case w.shell || sc.any(w.shellOpts) != "":
			out = append(append(out, u), markers...)
			return x.unseen(out, "%s starts a shell that reads its commands from stdin", name)
		case name == "exec" && u.redirected:
			out = append(append(out, u), markers...)
			return fail(out, "exec with only redirections changes the files of every later command")
		default:
			// env, nice, sudo … alone run nothing else.
			return append(append(out, u), markers...)
		}
	}
	inner := unit{argv: rest, writes: writes, piped: u.piped, redirected: u.redirected}
	switch name {
	case "xargs":
		// xargs appends words read from stdin, and -I puts them in place
		// of its replace string: unknown until run time.
		repl := xargsReplace(sc)
		args := make([]word, 0, len(rest)+1)
		for _, a := range rest {
			if repl != "" && strings.Contains(a.text, repl) {
				a = word{text: a.text, pat: "*", dynamic: true}
			}
			args = append(args, a)
		}
		inner.argv = append(args, word{text: "{stdin}", pat: "*", dynamic: true})
	case "watch":
		script, ok := joinLiteral(rest)
		if !ok {
			return append(out, unit{err: shellErrorf("watch of a command known only at run time")})
		}
		return append(x.script(inner, script, depth, out), markers...)
	}
	return append(x.expand(inner, depth, out), markers...)
}

// xargsReplace is the string xargs -I/-i/--replace substitutes, if any.
func xargsReplace(sc optScan) string {
	for _, o := range []string{"-I", "-i", "--replace"} {
		if vs := sc.values[o]; len(vs) > 0 {
			return vs[len(vs)-1].text
		}
		if sc.seen[o] {
			return "{}"
		}
	}
	return ""
}

func joinLiteral(ws []word) (string, bool) {
	parts := make([]string, 0, len(ws))
	for _, a := range ws {
		if a.dynamic {
			return "", false
		}
		parts = append(parts, a.text)
	}
	return strings.Join(parts, " "), true
}

// expandRunner looks through a package tool's command runner: npx cmd,
// uv run cmd, bundle exec cmd.
func (x expander) expandRunner(u unit, name string, r runner, depth int, out []unit) []unit {
	args := u.argv[1:]
	if len(r.subs) > 0 {
		if len(args) == 0 || args[0].dynamic || !contains(r.subs, args[0].text) {
			for _, a := range args {
				if !a.dynamic && contains(r.subs, a.text) {
					out = append(out, withInferredWrites(u))
					return fail(out, "%s options before %s are not modelled", name, a.text)
				}
			}
			return x.program(u, out)
		}
		args = args[1:]
	}
	var markers []unit
	for len(args) > 0 {
		a := args[0]
		if a.dynamic {
			out = append(out, u)
			return fail(out, "%s options known only at run time", name)
		}
		t := a.text
		if t == "--" {
			args = args[1:]
			break
		}
		if !strings.HasPrefix(t, "-") {
			break
		}
		opt, val, hasVal := strings.Cut(t, "=")
		switch {
		case contains(r.shellOpts, opt):
			if !hasVal {
				if len(args) < 2 {
					return append(out, unit{err: shellErrorf("%s %s without a command", name, opt)})
				}
				val, args = args[1].text, args[1:]
				if args[0].dynamic {
					return append(out, unit{err: shellErrorf("%s %s of a command known only at run time", name, opt)})
				}
			}
			return append(x.script(u, val, depth, out), markers...)
		case contains(r.valued, opt):
			if !hasVal {
				args = args[1:]
			}
		case contains(r.chdir, opt):
			markers = fail(markers, "%s %s runs the command in another directory, where relative paths are not checked", name, opt)
			if !hasVal {
				args = args[1:]
			}
		case contains(r.flags, opt):
		default:
			out = append(out, u)
			return fail(out, "%s option %s is not modelled, so what it runs is unknown", name, opt)
		}
		if len(args) > 0 {
			args = args[1:]
		}
	}
	if len(args) < r.positional {
		return append(append(out, u), markers...)
	}
	args = args[r.positional:]
	if len(args) == 0 {
		return append(append(out, u), markers...)
	}
	inner := unit{argv: args, writes: u.writes, piped: u.piped, redirected: u.redirected}
	out = x.expand(inner, depth, out)
	if ext := path.Ext(args[0].text); !args[0].dynamic && scriptExts[ext] {
		out = x.unseen(out, "%s runs the script %s, whose code the policy cannot see", name, args[0].text)
	}
	return append(out, markers...)
}

// expandShell handles sh, bash and friends: -c runs its string; a script
// file or stdin is code the string does not show.
func (x expander) expandShell(u unit, depth int, out []unit) []unit {
	name := u.name()
	args := u.argv[1:]
	cflag, stdin, info := false, false, false
	var risky []unit
	i := 0
	for i < len(args) {
		a := args[i]
		if a.procSub && (strings.HasPrefix(a.text, "<(") || strings.HasPrefix(a.text, ">(")) {
			break // bash <(curl …): the script is another command's output
		}
		if a.dynamic {
			out = append(out, u)
			return fail(out, "shell options known only at run time")
		}
		t := a.text
		if t == "--" || t == "-" {
			i++
			break
		}
		if len(t) < 2 || (t[0] != '-' && t[0] != '+') {
			break
		}
		i++
		if strings.HasPrefix(t, "--") {
			switch {
			case t == "--rcfile" || t == "--init-file":
				i++ // read by interactive shells, which ask anyway
			case t == "--version" || t == "--help":
				info = true
			case !contains(safeShellLongOpts, t):
				risky = fail(risky, "%s option %s is not modelled", name, t)
			}
			continue
		}
		for k := 1; k < len(t); k++ {
			c := t[k]
			switch {
			case c == 'c' && t[0] == '-':
				cflag = true
			case (c == 's' || c == 'i') && t[0] == '-':
				stdin = true // -s reads stdin, -i is interactive
			case c == 'o' || c == 'O':
				// -o pipefail, -O globstar: the option name is the next word
				if i < len(args) {
					if opt := args[i]; t[0] == '-' && (opt.dynamic || !safeShellOpt(c, opt.text)) {
						risky = fail(risky, "%s %c %s changes how the shell reads commands", name, c, opt.text)
					}
					i++
				}
			case t[0] == '+' || strings.IndexByte(safeSetFlags+"lrD", c) >= 0:
			default:
				risky = fail(risky, "%s option -%c is not modelled", name, c)
			}
		}
	}
	if cflag {
		if i >= len(args) {
			return append(out, unit{err: shellErrorf("%s -c without a command string", name)})
		}
		script := args[i]
		if script.dynamic {
			return append(out, unit{err: shellErrorf("%s -c of a string known only at run time", name)})
		}
		return append(x.script(u, script.text, depth, out), risky...)
	}
	out = append(append(out, u), risky...)
	switch {
	case i < len(args) && !stdin:
		return x.unseen(out, "%s runs the script %s, whose commands the policy cannot see", name, args[i].text)
	case info && !stdin:
		return out
	}
	return x.unseen(out, "%s reads its commands from stdin, which the policy cannot see", name)
}

// script parses a script that u runs; u's redirections and stdin apply to
// every command in it.
func (x expander) script(u unit, script string, depth int, out []unit) []unit {
	inner, err := x.command(script, depth+1)
	if err != nil {
		return append(out, unit{err: err})
	}
	if len(inner) == 0 {
		return append(out, unit{err: shellErrorf("%s runs an empty script", u.name())})
	}
	for _, in := range inner {
		in.writes = append(in.writes, u.writes...)
		in.piped = in.piped || u.piped
		out = append(out, in)
		if len(out) > maxUnits {
			return append(out, unit{err: shellErrorf("more than %d commands", maxUnits)})
		}
	}
	return out
}

// expandFind keeps find itself (rules see -exec and -delete) and adds each
// -exec command, whose {} is a file found at run time.
func (x expander) expandFind(u unit, depth int, out []unit) []unit {
	out = append(out, withInferredWrites(u))
	args := u.argv
	for i := 1; i < len(args); i++ {
		switch args[i].text {
		case "-exec", "-execdir", "-ok", "-okdir":
		default:
			continue
		}
		var inner []word
		j := i + 1
		for ; j < len(args); j++ {
			t := args[j].text
			if t == ";" || t == "+" {
				break
			}
			if strings.Contains(t, "{}") {
				inner = append(inner, word{text: t, pat: "*", dynamic: true})
				continue
			}
			inner = append(inner, args[j])
		}
		if j >= len(args) {
			return append(out, unit{err: shellErrorf("find %s without ; or +", args[i].text)})
		}
		out = x.expand(unit{argv: inner, writes: u.writes}, depth, out)
		i = j
	}
	return out
}

// expandFlock handles flock FILE COMMAND… and flock FILE -c STRING; the
// lock file is created if it is missing.
func (x expander) expandFlock(u unit, depth int, out []unit) []unit {
	sc := scanOptions(u.argv[1:], flockWrapper)
	switch {
	case sc.dynamic:
		return fail(append(out, u), "flock options known only at run time")
	case sc.unknown != "":
		return fail(append(out, u), "flock option %s is not modelled, so what it runs is unknown", sc.unknown)
	case len(sc.rest) == 0:
		return append(out, u)
	}
	lock := sc.rest[0]
	if len(sc.rest) == 1 {
		return append(out, u) // flock FD: locks a descriptor, runs nothing
	}
	w := append(append([]word(nil), u.writes...), lock)
	rest := sc.rest[1:]
	if t := rest[0].text; !rest[0].dynamic && (t == "-c" || t == "--command") {
		if len(rest) != 2 || rest[1].dynamic {
			return append(out, unit{err: shellErrorf("flock -c needs one command string known before it runs")})
		}
		return x.script(unit{argv: u.argv[:1], writes: w, piped: u.piped}, rest[1].text, depth, out)
	}
	return x.expand(unit{argv: rest, writes: w, piped: u.piped, redirected: u.redirected}, depth, out)
}

// expandScriptCmd handles script(1): -c runs a string through the shell;
// without it script starts an interactive shell. It writes its typescript.
func (x expander) expandScriptCmd(u unit, depth int, out []unit) []unit {
	sc := scanOptions(u.argv[1:], scriptWrapper)
	switch {
	case sc.dynamic:
		return fail(append(out, u), "script options known only at run time")
	case sc.unknown != "":
		return fail(append(out, u), "script option %s is not modelled, so what it runs is unknown", sc.unknown)
	}
	w := append([]word(nil), u.writes...)
	for _, o := range []string{"-I", "--log-in", "-O", "--log-out", "-B", "--log-io", "-T", "--log-timing", "-t"} {
		w = append(w, sc.values[o]...)
	}
	if len(sc.rest) > 0 {
		w = append(w, sc.rest[0])
	} else if !sc.seen["-O"] && !sc.seen["--log-out"] && !sc.seen["-B"] && !sc.seen["--log-io"] {
		w = append(w, literalWord("typescript"))
	}
	var cmd []word
	cmd = append(cmd, sc.values["-c"]...)
	cmd = append(cmd, sc.values["--command"]...)
	if len(cmd) == 0 {
		out = append(out, unit{argv: u.argv, writes: w, piped: u.piped})
		return x.unseen(out, "script starts a shell that reads its commands from stdin")
	}
	c := cmd[len(cmd)-1]
	if c.dynamic {
		return append(out, unit{err: shellErrorf("script -c of a command known only at run time")})
	}
	return x.script(unit{argv: u.argv[:1], writes: w, piped: u.piped}, c.text, depth, out)
}

// expandBuiltin handles bash builtins that run strings, change how later
// words are read, or evaluate names and arithmetic. done is false for
// anything else.
func (x expander) expandBuiltin(u unit, name string, depth int, out []unit) (done bool, res []unit) {
	args := u.argv[1:]
	var err error
	switch name {
	case "eval":
		script, ok := joinLiteral(args)
		if !ok {
			return true, append(out, unit{err: shellErrorf("eval of a string known only at run time")})
		}
		return true, x.script(u, script, depth, out)
	case "source", ".":
		out = append(out, u)
		return true, x.unseen(out, "%s runs a script file whose commands the policy cannot see", name)
	case "alias":
		err = shellErrorf("alias changes what later words run")
	case "trap":
		err = shellErrorf("trap runs a string when a signal or event arrives")
	case "enable":
		err = shellErrorf("enable loads or hides builtins")
	case "let":
		err = shellErrorf("let evaluates arithmetic, which can run commands through a variable's value")
	case "compgen", "complete", "fc", "bind":
		err = shellErrorf("%s can run commands or functions", name)
	case "hash":
		if hasShortOpt(args, 'p') {
			err = shellErrorf("hash -p makes a name run another program")
		}
	case "shopt":
		err = checkShopt(args)
	case "set":
		err = checkSet(args)
	case "declare", "typeset", "local", "readonly", "export":
		err = checkDeclare(name, args)
	case "printf":
		err = checkNames(args, "v", "v", "")
	case "read":
		err = checkNames(args, "adinNptu", "a", "all")
	case "mapfile", "readarray":
		if hasShortOpt(args, 'C') {
			err = shellErrorf("%s -C runs a callback", name)
		} else {
			err = checkNames(args, "dnOsuCc", "", "all")
		}
	case "unset":
		err = checkNames(args, "", "", "all")
	case "test", "[":
		for k, a := range args {
			if a.text == "-v" && k+1 < len(args) && (args[k+1].dynamic || strings.Contains(args[k+1].text, "[")) {
				err = shellErrorf("%s -v of an array element evaluates its subscript", name)
			}
		}
	default:
		return false, out
	}
	out = x.program(u, out)
	if err != nil {
		out = append(out, unit{err: err})
	}
	return true, out
}

// hasShortOpt reports whether c is among the leading short options.
func hasShortOpt(args []word, c byte) bool {
	for _, a := range args {
		t := a.text
		if a.dynamic || t == "--" || len(t) < 2 || (t[0] != '-' && t[0] != '+') {
			return false
		}
		if strings.IndexByte(t[1:], c) >= 0 {
			return true
		}
	}
	return false
}

// checkNames checks the variable names a builtin assigns: a subscript in a
// name is evaluated as arithmetic, and a name known only at run time could
// be one. valued lists options that take a value; nameOpts those whose
// value is a name; operands "all" means every operand is a name.
func checkNames(args []word, valued, nameOpts, operands string) error {
	bad := func(w word) bool { return w.dynamic || strings.Contains(w.text, "[") }
	i := 0
	for i < len(args) {
		a := args[i]
		t := a.text
		if a.dynamic {
			return shellErrorf("options known only at run time")
		}
		if t == "--" {
			i++
			break
		}
		if len(t) < 2 || t[0] != '-' {
			break
		}
		i++
		for k := 1; k < len(t); k++ {
			c := t[k]
			if strings.IndexByte(valued, c) < 0 {
				continue
			}
			var v word
			if k < len(t)-1 {
				v = literalWordFrom(a, t[k+1:])
			} else if i < len(args) {
				v = args[i]
				i++
			}
			if strings.IndexByte(nameOpts, c) >= 0 && bad(v) {
				return shellErrorf("-%c %s assigns a variable whose name is evaluated", c, v.text)
			}
			break
		}
	}
	if operands == "all" {
		for _, a := range args[i:] {
			if bad(a) {
				return shellErrorf("variable name %s is evaluated", a.text)
			}
		}
	}
	return nil
}

func checkDeclare(name string, args []word) error {
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		t := a.text
		if a.dynamic {
			break // an operand; checked below
		}
		if t == "--" {
			i++
			break
		}
		if len(t) < 2 || (t[0] != '-' && t[0] != '+') {
			break
		}
		if t[0] == '-' && strings.ContainsAny(t[1:], "inftFI") {
			return shellErrorf("%s %s gives variables or functions behaviour the policy does not model", name, t)
		}
	}
	for _, a := range args[i:] {
		if a.dynamic && !isAssignment(a) {
			return shellErrorf("%s of names known only at run time", name)
		}
		if isAssignment(a) {
			if err := assignmentRisk(a); err != nil {
				return err
			}
		} else if strings.Contains(a.text, "[") {
			return shellErrorf("%s %s evaluates a subscript", name, a.text)
		}
	}
	return nil
}

func checkSet(args []word) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		t := a.text
		if a.dynamic {
			return shellErrorf("set options known only at run time")
		}
		if t == "--" || t == "-" || len(t) < 2 || (t[0] != '-' && t[0] != '+') {
			return nil // the rest are positional parameters
		}
		for k := 1; k < len(t); k++ {
			c := t[k]
			switch {
			case c == 'o':
				if i+1 < len(args) {
					i++
					if t[0] == '-' && (args[i].dynamic || !safeSetO[args[i].text]) {
						return shellErrorf("set -o %s changes how the shell reads commands", args[i].text)
					}
				}
			case t[0] == '+' || strings.IndexByte(safeSetFlags, c) >= 0:
			default:
				return shellErrorf("set -%c changes how the shell reads commands", c)
			}
		}
	}
	return nil
}

func checkShopt(args []word) error {
	set, setO := false, false
	for _, a := range args {
		t := a.text
		if a.dynamic {
			return shellErrorf("shopt of options known only at run time")
		}
		if len(t) > 1 && t[0] == '-' {
			set = set || strings.ContainsRune(t, 's')
			setO = setO || strings.ContainsRune(t, 'o')
			continue
		}
		if !set {
			continue
		}
		if (setO && !safeSetO[t]) || (!setO && !safeShopt[t]) {
			return shellErrorf("shopt -s %s changes how the shell reads commands", t)
		}
	}
	return nil
}

func safeShellOpt(c byte, name string) bool {
	if c == 'O' {
		return safeShopt[name]
	}
	return safeSetO[name]
}

// assignmentRisk says why NAME=value is not modelled: a subscript that is
// arithmetic, or a variable that changes which code later commands run.
func assignmentRisk(w word) error {
	t := w.text
	eq := strings.IndexByte(t, '=')
	if eq <= 0 {
		return nil
	}
	name := strings.TrimSuffix(t[:eq], "+")
	if open := strings.IndexByte(name, '['); open > 0 {
		if !safeSubscript(strings.TrimSuffix(name[open+1:], "]")) {
			return shellErrorf("assignment %s evaluates its subscript as arithmetic", name)
		}
		name = name[:open]
	}
	if why := envRisk(name); why != "" {
		value := t[eq+1:]
		switch {
		case programVar(name) && !w.dynamic && harmlessPrograms[value]:
			return nil // PAGER=cat, CC=clang: a program like any other
		case name == "PATH" && len(w.subs) == 0 && (strings.HasPrefix(value, "$PATH:") || strings.HasPrefix(value, "${PATH}:")):
			return nil // appending cannot change what an existing name runs
		}
		return shellErrorf("setting %s %s", name, why)
	}
	return nil
}
