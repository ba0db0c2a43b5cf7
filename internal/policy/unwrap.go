package policy

import (
	"path"
	"strings"
)

// unit is one program the call would run, after wrappers such as env,
// timeout, sudo, xargs and sh -c were looked through.
type unit struct {
	argv   []word
	writes []word // files the command writes: redirections and known writers
	piped  bool   // reads another command's output or inline data on stdin
	err    error  // the part of the call this unit stands for could not be analysed
}

// name is the program's base name, as rules match it.
func (u *unit) name() string {
	if len(u.argv) == 0 || u.argv[0].dynamic {
		return ""
	}
	return path.Base(u.argv[0].text)
}

// unitsFromCommand parses a shell string into units.
func unitsFromCommand(src string, depth int) ([]unit, error) {
	cmds, err := parseCommand(src, depth)
	if err != nil {
		return nil, err
	}
	var out []unit
	for _, c := range cmds {
		u := unit{argv: c.args, piped: c.piped}
		for _, r := range c.redirs {
			if t, ok := writeTarget(r); ok {
				u.writes = append(u.writes, t)
			}
		}
		out = expand(u, depth, out)
		if len(out) > maxUnits {
			return nil, shellErrorf("more than %d commands", maxUnits)
		}
	}
	return out, nil
}

// unitsFromArgv builds units from an argv that runs without a shell.
func unitsFromArgv(argv []string) []unit {
	u := unit{argv: make([]word, len(argv))}
	for i, a := range argv {
		u.argv[i] = literalWord(a)
	}
	return expand(u, 0, nil)
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

var shells = map[string]bool{
	"sh": true, "bash": true, "zsh": true, "dash": true, "ksh": true,
	"mksh": true, "ash": true, "posh": true, "yash": true,
}

// wrapper describes a program that runs its operands as another command.
// valued lists the short options that take a value; longValued the long ones.
type wrapper struct {
	valued     string
	longValued []string
	positional int // operands before the command (timeout's duration)
}

var wrappers = map[string]wrapper{
	"sudo":     {valued: "ughpCDrtUT", longValued: []string{"--user", "--group", "--host", "--prompt", "--close-from", "--chdir", "--role", "--type", "--other-user", "--command-timeout"}},
	"doas":     {valued: "uC"},
	"env":      {valued: "uCS", longValued: []string{"--unset", "--chdir", "--split-string"}},
	"nice":     {valued: "n", longValued: []string{"--adjustment"}},
	"nohup":    {},
	"time":     {valued: "fo", longValued: []string{"--format", "--output"}},
	"timeout":  {valued: "sk", longValued: []string{"--signal", "--kill-after"}, positional: 1},
	"stdbuf":   {valued: "ioe", longValued: []string{"--input", "--output", "--error"}},
	"ionice":   {valued: "cnpPu", longValued: []string{"--class", "--classdata", "--pid", "--pgid", "--uid"}},
	"setsid":   {},
	"builtin":  {},
	"exec":     {valued: "a"},
	"command":  {},
	"busybox":  {},
	"chronic":  {},
	"unbuffer": {},
	"xargs": {valued: "aEdIiLlnPs", longValued: []string{"--arg-file", "--eof", "--delimiter", "--replace", "--max-lines",
		"--max-args", "--max-procs", "--max-chars", "--process-slot-var"}},
	"watch": {valued: "nd", longValued: []string{"--interval", "--differences"}},
}

// expand looks through wrappers and appends the resulting units to out.
func expand(u unit, depth int, out []unit) []unit {
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
	name := u.name()
	if shells[name] {
		return expandShell(u, depth, out)
	}
	switch name {
	case "eval":
		var parts []string
		for _, a := range u.argv[1:] {
			if a.dynamic {
				return append(out, unit{err: shellErrorf("eval of a string known only at run time")})
			}
			parts = append(parts, a.text)
		}
		return expandScript(u, strings.Join(parts, " "), depth, out)
	case "find":
		return expandFind(u, depth, out)
	}
	w, ok := wrappers[name]
	if !ok {
		return append(out, withInferredWrites(u))
	}
	if (name == "ionice" && hasOption(u.argv[1:], "-p", "--pid", "-P", "--pgid", "-u", "--uid")) ||
		(name == "command" && hasOption(u.argv[1:], "-v", "-V")) {
		// These forms act on a process or look a name up; nothing runs.
		return append(out, u)
	}
	if name == "env" && hasOption(u.argv[1:], "-S", "--split-string") {
		return append(out, unit{err: shellErrorf("env -S is not supported")})
	}
	rest, ok := skipOptions(u.argv[1:], w)
	if !ok {
		return append(out, unit{err: shellErrorf("%s options known only at run time", name)})
	}
	if name == "env" {
		for len(rest) > 0 && isAssignment(rest[0]) {
			rest = rest[1:]
		}
	}
	if len(rest) < w.positional {
		return append(out, u)
	}
	rest = rest[w.positional:]
	if len(rest) == 0 {
		if name == "xargs" {
			rest = []word{literalWord("echo")}
		} else {
			// env, nice, sudo … alone run nothing else.
			return append(out, u)
		}
	}
	inner := unit{argv: rest, writes: u.writes, piped: u.piped}
	switch name {
	case "xargs":
		// xargs appends words read from stdin: unknown until run time.
		args := append(append([]word(nil), rest...), word{text: "{stdin}", pat: "*", dynamic: true})
		inner.argv = args
	case "watch":
		var parts []string
		for _, a := range rest {
			if a.dynamic {
				return append(out, unit{err: shellErrorf("watch of a command known only at run time")})
			}
			parts = append(parts, a.text)
		}
		return expandScript(inner, strings.Join(parts, " "), depth, out)
	}
	return expand(inner, depth, out)
}

func hasOption(args []word, opts ...string) bool {
	for _, a := range args {
		if a.text == "--" {
			return false
		}
		for _, o := range opts {
			if a.text == o || strings.HasPrefix(a.text, o+"=") || (len(o) == 2 && strings.HasPrefix(a.text, o)) {
				return true
			}
		}
		if !strings.HasPrefix(a.text, "-") {
			return false
		}
	}
	return false
}

// skipOptions drops a wrapper's options and returns its operands.
func skipOptions(args []word, w wrapper) ([]word, bool) {
	for len(args) > 0 {
		a := args[0]
		if a.dynamic {
			return nil, false
		}
		t := a.text
		switch {
		case t == "--":
			return args[1:], true
		case strings.HasPrefix(t, "--"):
			n := 1
			for _, l := range w.longValued {
				if t == l {
					n = 2
				}
			}
			if n > len(args) {
				return nil, true
			}
			args = args[n:]
		case len(t) > 1 && t[0] == '-':
			n := 1
			for i := 1; i < len(t); i++ {
				if strings.IndexByte(w.valued, t[i]) >= 0 {
					if i == len(t)-1 {
						n = 2 // value is the next word
					}
					break // value is attached
				}
			}
			if n > len(args) {
				return nil, true
			}
			args = args[n:]
		default:
			return args, true
		}
	}
	return args, true
}

// expandShell handles sh, bash and friends: -c runs its string, a script
// file or stdin stays as the shell itself.
func expandShell(u unit, depth int, out []unit) []unit {
	args := u.argv[1:]
	cflag := false
	i := 0
	for i < len(args) {
		a := args[i]
		if a.procSub && (strings.HasPrefix(a.text, "<(") || strings.HasPrefix(a.text, ">(")) {
			break // bash <(curl …): the script is another command's output
		}
		if a.dynamic {
			return append(out, unit{err: shellErrorf("shell options known only at run time")})
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
			if t == "--rcfile" || t == "--init-file" {
				i++
			}
			continue
		}
		if t[0] == '-' && strings.ContainsRune(t[1:], 'c') {
			cflag = true
		}
		if strings.ContainsAny(t[1:], "oO") {
			i++ // -o pipefail
		}
	}
	if !cflag {
		return append(out, u)
	}
	if i >= len(args) {
		return append(out, unit{err: shellErrorf("%s -c without a command string", u.name())})
	}
	script := args[i]
	if script.dynamic {
		return append(out, unit{err: shellErrorf("%s -c of a string known only at run time", u.name())})
	}
	return expandScript(u, script.text, depth, out)
}

// expandScript parses a script that u runs; u's redirections and stdin
// apply to every command in it.
func expandScript(u unit, script string, depth int, out []unit) []unit {
	inner, err := unitsFromCommand(script, depth+1)
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
func expandFind(u unit, depth int, out []unit) []unit {
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
		out = expand(unit{argv: inner, writes: u.writes}, depth, out)
		i = j
	}
	return out
}

// withInferredWrites adds the files that common file-changing commands
// write, so that protected paths also hold against "cp x .env".
func withInferredWrites(u unit) unit {
	operands := func() []word {
		var ops []word
		end := false
		for _, a := range u.argv[1:] {
			if !end && a.text == "--" && !a.dynamic {
				end = true
				continue
			}
			if !end && strings.HasPrefix(a.text, "-") && !a.dynamic {
				continue
			}
			ops = append(ops, a)
		}
		return ops
	}
	var add []word
	switch u.name() {
	case "tee", "touch", "rm", "rmdir", "truncate", "shred", "mkdir", "unlink":
		add = operands()
	case "chmod", "chown", "chgrp":
		if ops := operands(); len(ops) > 1 {
			add = ops[1:]
		}
	case "cp", "mv", "ln", "install":
		if ops := operands(); len(ops) > 1 {
			add = ops[len(ops)-1:]
		}
	case "dd":
		for _, a := range u.argv[1:] {
			if strings.HasPrefix(a.text, "of=") {
				t := a
				t.text = strings.TrimPrefix(a.text, "of=")
				t.pat = escapeGlob(t.text)
				if a.dynamic {
					t.pat = "*"
				}
				add = append(add, t)
			}
		}
	}
	if len(add) > 0 {
		u.writes = append(append([]word(nil), u.writes...), add...)
	}
	return u
}
