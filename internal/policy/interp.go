package policy

import (
	"path"
	"strings"
)

// Interpreters run code that is not a shell command. Inline code in a
// language the policy does not judge asks; awk programs and sed scripts are
// read, and ask only when they can run commands (system(), pipes, sed's e)
// or write files the policy cannot name. Code from a file or stdin is
// unseen code (see expander).

// interp describes an interpreter's options.
type interp struct {
	inline     string   // short options whose value is inline code
	inlineLong []string // long options whose value is inline code
	file       string   // short options whose value names a file of code
	fileLong   []string
	valued     string // other short options that take a value, attached or the next word
	valuedLong []string
	attached   string   // short options whose value, if any, is attached (perl -i.bak)
	module     string   // option naming an installed module; the rest are its arguments (python -m)
	info       []string // options that only print (--version)
	// noStdin: the program does not read code from stdin when it has none
	noStdin bool
	// programOperand: without a code option, the first operand is the
	// program text (awk, sed), not a file.
	programOperand bool
}

var interpreters = map[string]*interp{
	// -M and -m load a module with import arguments, which perl evaluates.
	"perl": {inline: "eEMm", valued: "I", attached: "ixl0CdDFV", info: []string{"-v", "--version", "-h", "--help"}},
	"python": {inline: "c", module: "m", valued: "WX", valuedLong: []string{"--check-hash-based-pycs"},
		info: []string{"-V", "--version", "-h", "--help", "-?"}},
	"pypy":    {inline: "c", module: "m", valued: "WX", info: []string{"-V", "--version", "-h", "--help"}},
	"ruby":    {inline: "e", file: "r", valued: "ICE", attached: "x0iKTWFl", info: []string{"-v", "--version", "-h", "--help"}},
	"node":    {inline: "ep", inlineLong: []string{"--eval", "--print"}, file: "r", fileLong: []string{"--require", "--import", "--loader", "--experimental-loader"}, info: []string{"-v", "--version", "-h", "--help"}},
	"bun":     {inline: "ep", inlineLong: []string{"--eval", "--print"}},
	"php":     {inline: "rBRE", file: "fF", valued: "cdztS", info: []string{"-v", "--version", "-h", "--help", "-i", "-m"}},
	"lua":     {inline: "e", file: "l", info: []string{"-v"}},
	"luajit":  {inline: "e", file: "l", valued: "jO", info: []string{"-v"}},
	"rscript": {inline: "e", info: []string{"--version", "--help"}},
	"r":       {inline: "e", file: "f", fileLong: []string{"--file"}, info: []string{"--version", "--help"}},
	"julia":   {inline: "eE", inlineLong: []string{"--eval", "--print"}, file: "L", fileLong: []string{"--load"}, valued: "JtpC", info: []string{"-v", "--version", "-h", "--help"}},
	"tclsh":   {info: []string{"-version"}},
	"wish":    {info: []string{"-version"}},
	"fish":    {inline: "cC", inlineLong: []string{"--command", "--init-command"}, info: []string{"-v", "--version", "-h", "--help"}},
	"csh":     {inline: "c"},
	"tcsh":    {inline: "c", info: []string{"--version", "--help"}},
	"deno":    {},
}

// interpName maps a program name to its interpreter family: python3.12 is
// python, nodejs is node.
func interpName(name string) string {
	n := strings.ToLower(name)
	switch n {
	case "nodejs":
		return "node"
	case "rscript":
		return "rscript"
	}
	trimmed := strings.TrimRight(n, "0123456789.")
	switch trimmed {
	case "python", "pypy", "perl", "ruby", "php", "lua", "tclsh", "wish", "julia", "node":
		return trimmed
	}
	if strings.HasPrefix(n, "luajit") {
		return "luajit"
	}
	return n
}

var awks = map[string]bool{"awk": true, "gawk": true, "mawk": true, "nawk": true, "original-awk": true, "busybox-awk": true}

// code is where an interpreter's argv puts its program.
type code struct {
	inline  []word // inline code
	file    bool   // code from a file: an option's value or the first operand
	stdin   bool   // code read from stdin
	module  bool
	info    bool
	dynamic bool   // options known only at run time
	rest    []word // operands after the code
}

// scanInterp reads an interpreter's options.
func scanInterp(args []word, spec *interp) code {
	var c code
	i := 0
	for i < len(args) {
		a := args[i]
		if a.dynamic {
			c.dynamic = true
			return c
		}
		t := a.text
		switch {
		case t == "--":
			i++
			if i < len(args) {
				i = c.operand(args, i, spec)
			}
			c.rest = args[i:]
			return c
		case t == "-":
			c.stdin = true
			c.rest = args[i+1:]
			return c
		case contains(spec.info, t):
			c.info = true
			i++
		case strings.HasPrefix(t, "--"):
			name, val, hasVal := strings.Cut(t, "=")
			value := func() (word, int) {
				if hasVal {
					return literalWordFrom(a, val), 1
				}
				if i+1 < len(args) {
					return args[i+1], 2
				}
				return word{}, 1
			}
			n := 1
			switch {
			case contains(spec.inlineLong, name):
				var v word
				v, n = value()
				c.inline = append(c.inline, v)
			case contains(spec.fileLong, name):
				_, n = value()
				c.file = true
			case contains(spec.valuedLong, name):
				_, n = value()
			}
			i += n
		case len(t) > 1 && t[0] == '-':
			i++
			for k := 1; k < len(t); k++ {
				ch := t[k]
				rest := t[k+1:]
				value := func() word {
					if rest != "" {
						return literalWordFrom(a, rest)
					}
					if i < len(args) {
						i++
						return args[i-1]
					}
					return word{}
				}
				switch {
				case strings.IndexByte(spec.inline, ch) >= 0:
					c.inline = append(c.inline, value())
				case strings.IndexByte(spec.file, ch) >= 0:
					value()
					c.file = true
				case strings.IndexByte(spec.module, ch) >= 0:
					value()
					c.module = true
					c.rest = args[i:]
					return c
				case strings.IndexByte(spec.valued, ch) >= 0:
					value()
				case strings.IndexByte(spec.attached, ch) >= 0:
				default:
					continue
				}
				break
			}
		default:
			i = c.operand(args, i, spec)
			c.rest = args[i:]
			return c
		}
	}
	if len(c.inline) == 0 && !c.file && !c.module && !c.info && !spec.noStdin {
		c.stdin = true
	}
	return c
}

// operand reads the first operand at args[i]: the program text, a file
// of code, or (after inline code or a module) the first argument. It
// returns where the arguments start.
func (c *code) operand(args []word, i int, spec *interp) int {
	switch {
	case len(c.inline) > 0 || c.module || (c.file && spec.programOperand):
		return i
	case spec.programOperand:
		c.inline = append(c.inline, args[i])
	default:
		c.file = true
	}
	return i + 1
}

// scanSubcommands reads deno and bun, whose operands are subcommands:
// deno eval CODE, deno run FILE, bun -e CODE, bun FILE.ts.
func scanSubcommands(args []word, spec *interp) code {
	c := scanInterp(args, spec)
	c.file, c.stdin = false, false
	for _, a := range args {
		if a.dynamic {
			c.dynamic = true
			return c
		}
		if strings.HasPrefix(a.text, "-") {
			continue
		}
		switch {
		case a.text == "eval":
			c.inline = append(c.inline, a)
		case a.text == "repl" || scriptExts[path.Ext(a.text)]:
			c.file = true
		case a.text == "run":
			continue // deno run FILE, bun run SCRIPT
		}
		return c
	}
	return c
}

func (x expander) expandInterp(u unit, iname string, spec *interp, out []unit) []unit {
	var c code
	if iname == "deno" || iname == "bun" {
		c = scanSubcommands(u.argv[1:], spec)
	} else {
		c = scanInterp(u.argv[1:], spec)
	}
	out = x.program(u, out)
	switch {
	case c.dynamic:
		return fail(out, "%s options known only at run time", u.name())
	case len(c.inline) > 0:
		return fail(out, "%s runs inline code, which the policy cannot judge", u.name())
	case c.file:
		return x.unseen(out, "%s runs code from a file the policy cannot see", u.name())
	case c.stdin:
		return x.unseen(out, "%s reads code from stdin, which the policy cannot see", u.name())
	}
	return out
}

var awkSpec = &interp{
	inline: "e", inlineLong: []string{"--source"}, file: "fiE", fileLong: []string{"--file", "--include", "--exec"},
	valued: "FvW", valuedLong: []string{"--field-separator", "--assign"},
	info: []string{"--version", "-V", "--help", "-h"}, programOperand: true,
}

// expandAwk reads an awk program: its program is -e/--source or the first
// operand, and it may only read files.
func (x expander) expandAwk(u unit, out []unit) []unit {
	args := u.argv[1:]
	name := u.name()
	// Options scanInterp does not need to know: gawk's sandbox, and the
	// ones that load extensions or write files.
scan:
	for i := 0; i < len(args); {
		a := args[i]
		t := a.text
		if a.dynamic || t == "--" || !strings.HasPrefix(t, "-") || len(t) < 2 {
			break
		}
		i++
		if strings.HasPrefix(t, "--") {
			opt, _, hasVal := strings.Cut(t, "=")
			switch opt {
			case "--sandbox":
				// gawk refuses system(), pipes, redirections and
				// extensions; other awks refuse the option.
				return x.program(u, out)
			case "--load", "--dump-variables", "--profile", "--pretty-print", "--debug":
				out = append(out, u)
				return fail(out, "%s %s loads code or writes a file", name, opt)
			case "--field-separator", "--assign", "--file", "--include", "--exec", "--source":
				if !hasVal {
					i++
				}
			}
			continue
		}
		for k := 1; k < len(t); k++ {
			c := t[k]
			rest := t[k+1:]
			switch {
			case c == 'S':
				return x.program(u, out)
			case strings.IndexByte("ldpoD", c) >= 0:
				out = append(out, u)
				return fail(out, "%s -%c loads code or writes a file", name, c)
			case c == 'W':
				// mawk -W exec FILE reads its program from FILE
				v := rest
				if v == "" && i < len(args) {
					v = args[i].text
					i++
				}
				if strings.HasPrefix(v, "e") {
					out = append(out, u)
					return x.unseen(out, "%s -W %s reads its program from a file", name, v)
				}
				continue scan
			case strings.IndexByte("FvfeiE", c) >= 0:
				if rest == "" {
					i++
				}
				continue scan
			}
		}
	}
	c := scanInterp(args, awkSpec)
	out = append(out, u)
	switch {
	case c.dynamic:
		return fail(out, "%s options known only at run time", name)
	case c.info || c.stdin:
		return out // awk without a program only prints its usage
	}
	for _, p := range c.inline {
		if p.dynamic {
			return fail(out, "%s program known only at run time", name)
		}
		if err := awkRisk(p.text); err != nil {
			return append(out, unit{err: err})
		}
	}
	if c.file {
		return x.unseen(out, "%s runs a program from a file the policy cannot see", name)
	}
	return out
}

// awkRisk reports whether an awk program can run commands or write files:
// system(), a pipe to or from a command (|, |&), output redirection after
// print or printf, and gawk's @ directives and indirect calls.
func awkRisk(prog string) error {
	operand := false // the last token ends an operand, so / divides
	depth := 0
	printDepth := -1 // paren depth of the current print statement
	for i := 0; i < len(prog); {
		c := prog[i]
		switch {
		case c == '#':
			for i < len(prog) && prog[i] != '\n' {
				i++
			}
		case c == '\\' && i+1 < len(prog) && (prog[i+1] == '\n' || prog[i+1] == '\r'):
			i += 2
		case c == '\n' || c == ';' || c == '{' || c == '}':
			printDepth = -1
			operand = false
			i++
		case c == '"':
			i++
			for i < len(prog) && prog[i] != '"' {
				if prog[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(prog) {
				return shellErrorf("awk program: unterminated string")
			}
			i++
			operand = true
		case c == '/' && !operand:
			end, ok := skipRegex(prog, i, '/')
			if !ok {
				return shellErrorf("awk program: unterminated regular expression")
			}
			i = end
			operand = true
		case c == '|':
			if i+1 < len(prog) && prog[i+1] == '|' {
				i += 2
				operand = false
				continue
			}
			return shellErrorf("awk program pipes to or from a command")
		case c == '>':
			if printDepth >= 0 && depth == printDepth {
				return shellErrorf("awk program redirects output to a file")
			}
			i++
			operand = false
		case c == '@':
			return shellErrorf("awk program uses gawk @ directives or indirect calls")
		case c == '(' || c == '[':
			depth++
			i++
			operand = false
		case c == ')' || c == ']':
			depth--
			i++
			operand = true
		case isNameStart(c):
			j := i
			for j < len(prog) && isNameByte(prog[j]) {
				j++
			}
			id := prog[i:j]
			i = j
			switch id {
			case "system":
				return shellErrorf("awk program calls system()")
			case "print", "printf":
				printDepth = depth
				operand = false
			case "in", "return", "case", "do", "else", "getline":
				operand = false
			default:
				operand = true
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(prog) && (isNameByte(prog[i]) || prog[i] == '.') {
				i++
			}
			operand = true
		case c == '+' || c == '-':
			if i+1 < len(prog) && prog[i+1] == c {
				i += 2 // ++ and --: keep the operand state
				continue
			}
			i++
			operand = false
		case c == ' ' || c == '\t' || c == '\r':
			i++
		default:
			i++
			operand = false
		}
	}
	return nil
}

// skipRegex skips a regular expression that starts with the delimiter at
// s[start] and returns the index after its closing delimiter. Bracket
// expressions may hold the delimiter.
func skipRegex(s string, start int, delim byte) (int, bool) {
	i := start + 1
	for i < len(s) {
		switch c := s[i]; {
		case c == '\\':
			i += 2
		case c == '[':
			i = skipBracket(s, i)
		case c == delim:
			return i + 1, true
		case c == '\n':
			return 0, false
		default:
			i++
		}
	}
	return 0, false
}

// skipBracket skips a bracket expression starting at s[i] == '['.
func skipBracket(s string, i int) int {
	j := i + 1
	if j < len(s) && s[j] == '^' {
		j++
	}
	if j < len(s) && s[j] == ']' {
		j++
	}
	for j < len(s) {
		switch {
		case s[j] == '[' && j+1 < len(s) && strings.IndexByte(":.=", s[j+1]) >= 0:
			end := strings.Index(s[j+2:], string(s[j+1])+"]")
			if end < 0 {
				return len(s)
			}
			j += end + 4
		case s[j] == ']':
			return j + 1
		case s[j] == '\n':
			return j
		default:
			j++
		}
	}
	return j
}

var sedSpec = &interp{
	inline: "e", inlineLong: []string{"--expression"}, file: "f", fileLong: []string{"--file"},
	valued: "l", valuedLong: []string{"--line-length"}, attached: "i",
	info: []string{"--version", "--help"}, noStdin: true, programOperand: true,
}

// expandSed reads a sed command: -i writes its files, w and W commands and
// flags write theirs, and e runs a command.
func (x expander) expandSed(u unit, out []unit) []unit {
	args := u.argv[1:]
	inPlace := false
	for _, a := range args {
		t := a.text
		if a.dynamic || t == "--" {
			break
		}
		if strings.HasPrefix(t, "--in-place") || (len(t) > 1 && t[0] == '-' && t[1] != '-' && sedClusterHasI(t)) {
			inPlace = true
		}
	}
	c := scanInterp(args, sedSpec)
	name := u.name()
	if c.dynamic {
		out = append(out, u)
		return fail(out, "%s options known only at run time", name)
	}
	if inPlace {
		u.writes = append(append([]word(nil), u.writes...), operandsOf(c.rest)...)
	}
	var risk error
	for _, s := range c.inline {
		if s.dynamic {
			risk = shellErrorf("%s script known only at run time", name)
			break
		}
		w, err := sedScript(s.text)
		if err != nil {
			risk = err
			break
		}
		for _, f := range w {
			u.writes = append(u.writes, literalWordFrom(s, f))
		}
	}
	out = append(out, u)
	if risk != nil {
		return append(out, unit{err: risk})
	}
	if c.file {
		return x.unseen(out, "%s runs a script file the policy cannot see", name)
	}
	return out
}

// sedClusterHasI reports -i in a cluster of short sed options; what
// follows -i in its word is the backup suffix.
func sedClusterHasI(t string) bool {
	for k := 1; k < len(t); k++ {
		switch t[k] {
		case 'i':
			return true
		case 'e', 'f', 'l':
			return false // the rest is their value
		}
	}
	return false
}

// operandsOf drops options from a file list.
func operandsOf(ws []word) []word {
	var out []word
	end := false
	for _, w := range ws {
		if !end && !w.dynamic && w.text == "--" {
			end = true
			continue
		}
		if !end && !w.dynamic && strings.HasPrefix(w.text, "-") && len(w.text) > 1 {
			continue
		}
		out = append(out, w)
	}
	return out
}

// sedScript reads a GNU sed script and returns the files its w and W
// commands and s///w flags write. It is an error if the script runs a
// command (e, s///e) or is not understood.
func sedScript(s string) ([]string, error) {
	var writes []string
	i := 0
	skipBlank := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	toEOL := func() string {
		start := i
		for i < len(s) && s[i] != '\n' {
			i++
		}
		return s[start:i]
	}
	number := func() bool {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > start
	}
	address := func(second bool) error {
		switch {
		case i >= len(s):
		case s[i] >= '0' && s[i] <= '9':
			number()
			if !second && i < len(s) && s[i] == '~' {
				i++
				number()
			}
		case s[i] == '$':
			i++
		case s[i] == '/' || s[i] == '\\':
			delim := byte('/')
			if s[i] == '\\' {
				if i+1 >= len(s) || s[i+1] == '\n' || s[i+1] == '\\' {
					return shellErrorf("sed script: bad address delimiter")
				}
				i++
				delim = s[i]
			}
			end, ok := skipRegex(s, i, delim)
			if !ok {
				return shellErrorf("sed script: unterminated address")
			}
			i = end
			for i < len(s) && (s[i] == 'I' || s[i] == 'M') {
				i++
			}
		case second && (s[i] == '+' || s[i] == '~'):
			i++
			if !number() {
				return shellErrorf("sed script: bad address")
			}
		}
		return nil
	}
	endCmd := func() error {
		skipBlank()
		if i < len(s) && strings.IndexByte(";\n}#", s[i]) < 0 {
			return shellErrorf("sed script: unexpected %q", s[i:i+1])
		}
		return nil
	}
	fileArg := func(write bool) error {
		skipBlank()
		f := toEOL()
		if f == "" {
			return shellErrorf("sed script: missing file name")
		}
		if write && f != "/dev/stdout" && f != "/dev/stderr" {
			writes = append(writes, f)
		}
		return nil
	}
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == ';') {
			i++
		}
		if i >= len(s) {
			return writes, nil
		}
		if s[i] == '#' {
			toEOL()
			continue
		}
		if err := address(false); err != nil {
			return nil, err
		}
		skipBlank()
		if i < len(s) && s[i] == ',' {
			i++
			skipBlank()
			if err := address(true); err != nil {
				return nil, err
			}
		}
		skipBlank()
		for i < len(s) && s[i] == '!' {
			i++
			skipBlank()
		}
		if i >= len(s) {
			return nil, shellErrorf("sed script: missing command")
		}
		cmd := s[i]
		i++
		switch cmd {
		case '{', '}':
		case '=', 'd', 'D', 'g', 'G', 'h', 'H', 'n', 'N', 'p', 'P', 'x', 'z', 'F':
			if err := endCmd(); err != nil {
				return nil, err
			}
		case 'l', 'L', 'q', 'Q':
			skipBlank()
			number()
			if err := endCmd(); err != nil {
				return nil, err
			}
		case 'a', 'i', 'c':
			// text to the end of the line; a backslash-newline continues it
			skipBlank()
			if i < len(s) && s[i] == '\\' {
				i++
				if i < len(s) && s[i] == '\n' {
					i++
				}
			}
			for i < len(s) && s[i] != '\n' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
		case ':':
			skipBlank()
			start := i
			for i < len(s) && s[i] != '\n' && s[i] != ';' {
				i++
			}
			if i == start {
				return nil, shellErrorf("sed script: label without a name")
			}
		case 'b', 't', 'T', 'v':
			skipBlank()
			for i < len(s) && s[i] != '\n' && s[i] != ';' && s[i] != '}' {
				i++
			}
		case 'r', 'R':
			if err := fileArg(false); err != nil {
				return nil, err
			}
		case 'w', 'W':
			if err := fileArg(true); err != nil {
				return nil, err
			}
		case 'e':
			return nil, shellErrorf("sed script runs a command (e)")
		case 's', 'y':
			if i >= len(s) || s[i] == '\n' || s[i] == '\\' {
				return nil, shellErrorf("sed script: bad delimiter")
			}
			delim := s[i]
			end, ok := skipRegex(s, i, delim)
			if cmd == 'y' {
				end, ok = skipPlain(s, i, delim)
			}
			if !ok {
				return nil, shellErrorf("sed script: unterminated %c command", cmd)
			}
			i = end - 1
			end, ok = skipPlain(s, i, delim)
			if !ok {
				return nil, shellErrorf("sed script: unterminated %c command", cmd)
			}
			i = end
			if cmd == 'y' {
				if err := endCmd(); err != nil {
					return nil, err
				}
				break
			}
		flags:
			for i < len(s) {
				switch f := s[i]; {
				case f == 'g' || f == 'p' || f == 'i' || f == 'I' || f == 'm' || f == 'M' || (f >= '0' && f <= '9'):
					i++
				case f == 'e':
					return nil, shellErrorf("sed script runs a command (s///e)")
				case f == 'w':
					i++
					if err := fileArg(true); err != nil {
						return nil, err
					}
					break flags
				default:
					break flags
				}
			}
			if err := endCmd(); err != nil {
				return nil, err
			}
		default:
			return nil, shellErrorf("sed script: unknown command %q", string(cmd))
		}
	}
}

// skipPlain skips text up to an unescaped delimiter, the one at s[start]
// excluded, and returns the index after it.
func skipPlain(s string, start int, delim byte) (int, bool) {
	for i := start + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case delim:
			return i + 1, true
		case '\n':
			return 0, false
		}
	}
	return 0, false
}
