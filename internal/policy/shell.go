package policy

import (
	"errors"
	"fmt"
	"strings"
)

// The shell lexer reads what an agent asks a shell to run, in bash's dialect
// (shell commands run with bash -c). Its input is untrusted, so it resolves
// only what it can know without running anything and marks the rest: a word
// that holds an expansion is dynamic, a word with an unquoted glob is a
// pattern. Constructs it does not model are errors, and an error means the
// call is never allowed silently: case, select, coproc, function
// definitions, (( … )) and $[ … ] arithmetic, arithmetic that names a
// variable (bash evaluates a variable's value as an expression, and
// a[$(cmd)] in it runs cmd), ${…} forms that expand a value again
// (${!x}, ${x@P}) or evaluate arithmetic (subscripts, offsets), a carriage
// return outside quotes (bash reads it as part of a word, so "ls\r#" is
// not a comment), and command substitutions inside here-documents.

const (
	// maxCommandLen bounds a command string; longer ones are not analysed.
	maxCommandLen = 1 << 20
	// maxDepth bounds nesting of substitutions and sh -c strings.
	maxDepth = 16
	// maxUnits bounds how many simple commands one call may expand to.
	maxUnits = 512
)

// errShell is wrapped by every lexer and parser error.
var errShell = errors.New("cannot analyse shell command")

func shellErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errShell}, args...)...)
}

// word is one shell word after quote removal.
type word struct {
	text    string    // quote-removed text; expansions are kept as written
	pat     string    // text as a path.Match pattern (quoted metacharacters escaped)
	glob    bool      // has an unquoted *, ? or [
	dynamic bool      // has an expansion or a brace expansion: unknown until run time
	quoted  bool      // some part was quoted or escaped
	procSub bool      // has <(…) or >(…)
	subs    [][]token // command and process substitutions inside the word
	rootRel bool      // a path relative to the workspace root, not the cwd (.git/config)
}

func literalWord(s string) word {
	return word{text: s, pat: escapeGlob(s)}
}

func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[\`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type tokKind uint8

const (
	tkWord tokKind = iota
	tkOp
)

type token struct {
	kind tokKind
	op   string // operator text for tkOp
	w    word
}

type heredoc struct {
	delim  string
	strip  bool // <<- strips leading tabs
	quoted bool // a quoted delimiter turns off expansion in the body
}

type lexer struct {
	src     string
	pos     int
	depth   int
	pending []heredoc
}

// lex splits src into tokens.
func lex(src string, depth int) ([]token, error) {
	if depth > maxDepth {
		return nil, shellErrorf("nested more than %d levels", maxDepth)
	}
	if len(src) > maxCommandLen {
		return nil, shellErrorf("command longer than %d bytes", maxCommandLen)
	}
	lx := &lexer{src: src, depth: depth}
	return lx.run(false)
}

// operators, longest first so that the first prefix that matches is right.
var operators = []string{
	"<<<", "<<-", "&>>",
	"&&", "||", "|&", ";;", "((", "<<", ">>", "<&", ">&", "<>", ">|", "&>",
	";", "&", "|", "(", ")", "<", ">",
}

func isRedirect(op string) bool {
	switch op {
	case "<", ">", ">>", ">|", "<>", "<&", ">&", "&>", "&>>", "<<", "<<-", "<<<":
		return true
	}
	return false
}

// run lexes until the end of input or, inside $( … ), the closing paren.
func (lx *lexer) run(inSub bool) ([]token, error) {
	var toks []token
	parens := 0
	for {
		for lx.pos < len(lx.src) && (lx.src[lx.pos] == ' ' || lx.src[lx.pos] == '\t') {
			lx.pos++
		}
		if lx.pos >= len(lx.src) {
			if inSub {
				return nil, shellErrorf("unterminated $(")
			}
			if len(lx.pending) > 0 {
				return nil, shellErrorf("here-document without a body")
			}
			return toks, nil
		}
		c := lx.src[lx.pos]
		switch {
		case c == '\\' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '\n':
			lx.pos += 2
			continue
		case c == '#':
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.pos++
			}
			continue
		case c == '\n':
			lx.pos++
			toks = append(toks, token{kind: tkOp, op: "\n"})
			if err := lx.readHeredocs(); err != nil {
				return nil, err
			}
			continue
		case (c == '<' || c == '>') && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '(':
			// process substitution: a word, not a redirection
		case strings.IndexByte(";&|()<>", c) >= 0:
			op := lx.operator()
			lx.pos += len(op)
			switch op {
			case "(":
				parens++
			case "((":
				parens += 2
			case ")":
				if inSub && parens == 0 {
					return toks, nil
				}
				parens--
			case ";;":
				return nil, shellErrorf("case statements are not supported")
			}
			toks = append(toks, token{kind: tkOp, op: op})
			if op == "<<" || op == "<<-" {
				if err := lx.heredocDelim(op == "<<-", &toks); err != nil {
					return nil, err
				}
			}
			continue
		}
		w, ioNumber, err := lx.word()
		if err != nil {
			return nil, err
		}
		if ioNumber {
			// "2>" is one redirection; the digits only pick the descriptor.
			continue
		}
		toks = append(toks, token{kind: tkWord, w: w})
	}
}

func (lx *lexer) operator() string {
	rest := lx.src[lx.pos:]
	for _, op := range operators {
		if strings.HasPrefix(rest, op) {
			return op
		}
	}
	return rest[:1]
}

func (lx *lexer) heredocDelim(strip bool, toks *[]token) error {
	for lx.pos < len(lx.src) && (lx.src[lx.pos] == ' ' || lx.src[lx.pos] == '\t') {
		lx.pos++
	}
	if lx.pos >= len(lx.src) || strings.IndexByte(";&|()<>\n", lx.src[lx.pos]) >= 0 {
		return shellErrorf("here-document without a delimiter")
	}
	w, _, err := lx.word()
	if err != nil {
		return err
	}
	if w.dynamic || w.text == "" {
		return shellErrorf("here-document delimiter %q is not a plain word", w.text)
	}
	*toks = append(*toks, token{kind: tkWord, w: w})
	lx.pending = append(lx.pending, heredoc{delim: w.text, strip: strip, quoted: w.quoted})
	return nil
}

// readHeredocs consumes the bodies of here-documents started on the line
// that just ended. Bodies are data for the command's stdin.
func (lx *lexer) readHeredocs() error {
	for _, h := range lx.pending {
		found := false
		for lx.pos < len(lx.src) {
			end := strings.IndexByte(lx.src[lx.pos:], '\n')
			var line string
			if end < 0 {
				line = lx.src[lx.pos:]
				lx.pos = len(lx.src)
			} else {
				line = lx.src[lx.pos : lx.pos+end]
				lx.pos += end + 1
			}
			if h.strip {
				line = strings.TrimLeft(line, "\t")
			}
			if line == h.delim {
				found = true
				break
			}
			if !h.quoted {
				if strings.Contains(strings.ReplaceAll(line, "$((", ""), "$(") || strings.Contains(line, "`") {
					// The body would run commands we do not analyse.
					return shellErrorf("command substitution inside a here-document")
				}
				if err := checkExpansions(line); err != nil {
					return err
				}
			}
		}
		if !found {
			return shellErrorf("here-document %q is not terminated", h.delim)
		}
	}
	lx.pending = lx.pending[:0]
	return nil
}

type wordBuilder struct {
	text, pat strings.Builder
	w         word
	brace     bool
}

func (b *wordBuilder) lit(s string) {
	b.text.WriteString(s)
	b.pat.WriteString(escapeGlob(s))
}

func (b *wordBuilder) litByte(c byte) {
	b.text.WriteByte(c)
	if strings.IndexByte(`*?[\`, c) >= 0 {
		b.pat.WriteByte('\\')
	}
	b.pat.WriteByte(c)
}

// dyn records an expansion: kept as written, unknown until run time.
func (b *wordBuilder) dyn(raw string) {
	b.text.WriteString(raw)
	b.pat.WriteByte('*')
	b.w.dynamic = true
}

// word lexes one word. ioNumber reports digits directly before a redirection
// operator, which the caller drops.
func (lx *lexer) word() (word, bool, error) {
	var b wordBuilder
	start := lx.pos
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch c {
		case ' ', '\t', '\n', ';', '&', '|', '(', ')':
			return lx.finish(&b, start)
		case '\r':
			// bash reads a carriage return as part of the word ("push\r" is
			// not "push", and "\r#" starts no comment); nothing legitimate
			// needs one outside quotes.
			return word{}, false, shellErrorf("carriage return outside quotes")
		case '<', '>':
			if lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '(' {
				subStart := lx.pos
				lx.pos += 2
				toks, err := lx.sub()
				if err != nil {
					return word{}, false, err
				}
				b.w.subs = append(b.w.subs, toks)
				b.w.procSub = true
				b.dyn(lx.src[subStart:lx.pos])
				continue
			}
			return lx.finish(&b, start)
		case '\\':
			if lx.pos+1 >= len(lx.src) {
				b.litByte('\\')
				lx.pos++
				continue
			}
			if lx.src[lx.pos+1] == '\n' {
				lx.pos += 2
				continue
			}
			b.litByte(lx.src[lx.pos+1])
			b.w.quoted = true
			lx.pos += 2
		case '\'':
			end := strings.IndexByte(lx.src[lx.pos+1:], '\'')
			if end < 0 {
				return word{}, false, shellErrorf("unterminated single quote")
			}
			b.lit(lx.src[lx.pos+1 : lx.pos+1+end])
			b.w.quoted = true
			lx.pos += end + 2
		case '"':
			if err := lx.double(&b); err != nil {
				return word{}, false, err
			}
		case '$':
			if err := lx.dollar(&b, false); err != nil {
				return word{}, false, err
			}
		case '`':
			if err := lx.backtick(&b, false); err != nil {
				return word{}, false, err
			}
		case '*', '?', '[':
			b.text.WriteByte(c)
			b.pat.WriteByte(c)
			b.w.glob = true
			lx.pos++
		case '{':
			b.brace = true
			b.litByte(c)
			lx.pos++
		default:
			b.litByte(c)
			lx.pos++
		}
	}
	return lx.finish(&b, start)
}

func (lx *lexer) finish(b *wordBuilder, start int) (word, bool, error) {
	w := b.w
	w.text = b.text.String()
	w.pat = b.pat.String()
	if b.brace && (strings.Contains(w.text, ",") || strings.Contains(w.text, "..")) && strings.Contains(w.text, "}") {
		// Brace expansion can turn one word into others ({pu,}sh).
		w.dynamic = true
	}
	raw := lx.src[start:lx.pos]
	if lx.pos < len(lx.src) && (lx.src[lx.pos] == '<' || lx.src[lx.pos] == '>') && raw != "" && (allDigits(raw) || isFdName(raw)) {
		// "2>" and "{fd}>" are one redirection; the word only picks the
		// descriptor, and it is not the command's name.
		return w, true, nil
	}
	return w, false, nil
}

// isFdName reports bash's {name} before a redirection, which allocates a
// descriptor.
func isFdName(raw string) bool {
	if len(raw) < 3 || raw[0] != '{' || raw[len(raw)-1] != '}' || !isNameStart(raw[1]) {
		return false
	}
	for i := 2; i < len(raw)-1; i++ {
		if !isNameByte(raw[i]) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func (lx *lexer) double(b *wordBuilder) error {
	b.w.quoted = true
	lx.pos++
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		switch c {
		case '"':
			lx.pos++
			return nil
		case '\\':
			if lx.pos+1 < len(lx.src) && strings.IndexByte("$`\"\\\n", lx.src[lx.pos+1]) >= 0 {
				if lx.src[lx.pos+1] != '\n' {
					b.litByte(lx.src[lx.pos+1])
				}
				lx.pos += 2
				continue
			}
			b.litByte('\\')
			lx.pos++
		case '$':
			if err := lx.dollar(b, true); err != nil {
				return err
			}
		case '`':
			if err := lx.backtick(b, true); err != nil {
				return err
			}
		default:
			b.litByte(c)
			lx.pos++
		}
	}
	return shellErrorf("unterminated double quote")
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isNameByte(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }

func (lx *lexer) dollar(b *wordBuilder, inDouble bool) error {
	start := lx.pos
	if lx.pos+1 >= len(lx.src) {
		b.litByte('$')
		lx.pos++
		return nil
	}
	next := lx.src[lx.pos+1]
	switch {
	case next == '(' && lx.pos+2 < len(lx.src) && lx.src[lx.pos+2] == '(':
		return lx.arithmetic(b)
	case next == '(':
		lx.pos += 2
		toks, err := lx.sub()
		if err != nil {
			return err
		}
		b.w.subs = append(b.w.subs, toks)
		b.dyn(lx.src[start:lx.pos])
	case next == '{':
		i := matchBrace(lx.src, lx.pos+1)
		if i < 0 {
			return shellErrorf("unterminated ${")
		}
		raw := lx.src[start : i+1]
		if strings.Contains(strings.ReplaceAll(raw, "$((", ""), "$(") || strings.Contains(raw, "`") {
			return shellErrorf("command substitution inside ${…}")
		}
		if err := checkParam(raw); err != nil {
			return err
		}
		b.dyn(raw)
		lx.pos = i + 1
	case next == '\'' && !inDouble:
		s, n, err := ansiC(lx.src[lx.pos+2:])
		if err != nil {
			return err
		}
		b.lit(s)
		b.w.quoted = true
		lx.pos += 2 + n
	case next == '"' && !inDouble:
		lx.pos++
		return lx.double(b)
	case next == '[':
		// $[ … ] is bash's old arithmetic expansion.
		return shellErrorf("$[ … ] arithmetic is not supported")
	case isNameStart(next):
		i := lx.pos + 1
		for i < len(lx.src) && isNameByte(lx.src[i]) {
			i++
		}
		b.dyn(lx.src[start:i])
		lx.pos = i
	case (next >= '0' && next <= '9') || strings.IndexByte("@*#?$!-", next) >= 0:
		b.dyn(lx.src[start : start+2])
		lx.pos += 2
	default:
		b.litByte('$')
		lx.pos++
	}
	return nil
}

func (lx *lexer) arithmetic(b *wordBuilder) error {
	start := lx.pos
	depth := 0
	for i := lx.pos + 1; i < len(lx.src); i++ {
		switch lx.src[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				raw := lx.src[start : i+1]
				if !strings.HasSuffix(raw, "))") {
					return shellErrorf("malformed $((…))")
				}
				if strings.Contains(raw[3:], "$(") || strings.Contains(raw, "`") {
					return shellErrorf("command substitution inside $((…))")
				}
				if err := checkArith(raw[3 : len(raw)-2]); err != nil {
					return err
				}
				b.dyn(raw)
				lx.pos = i + 1
				return nil
			}
		}
	}
	return shellErrorf("unterminated $((")
}

// sub lexes a $( … ) or <( … ) body that starts at lx.pos.
func (lx *lexer) sub() ([]token, error) {
	if lx.depth+1 > maxDepth {
		return nil, shellErrorf("nested more than %d levels", maxDepth)
	}
	inner := &lexer{src: lx.src, pos: lx.pos, depth: lx.depth + 1}
	toks, err := inner.run(true)
	lx.pos = inner.pos
	return toks, err
}

func (lx *lexer) backtick(b *wordBuilder, inDouble bool) error {
	start := lx.pos
	var inner strings.Builder
	for i := lx.pos + 1; i < len(lx.src); i++ {
		c := lx.src[i]
		if c == '\\' && i+1 < len(lx.src) {
			n := lx.src[i+1]
			if n == '$' || n == '`' || n == '\\' || (inDouble && n == '"') {
				inner.WriteByte(n)
				i++
				continue
			}
			inner.WriteByte(c)
			continue
		}
		if c == '`' {
			toks, err := lex(inner.String(), lx.depth+1)
			if err != nil {
				return err
			}
			b.w.subs = append(b.w.subs, toks)
			lx.pos = i + 1
			b.dyn(lx.src[start:lx.pos])
			return nil
		}
		inner.WriteByte(c)
	}
	return shellErrorf("unterminated backquote")
}

// ansiC decodes the body of $'…' up to its closing quote and returns the
// text and how many bytes it consumed, the quote included.
//
// Like bash, a NUL (\0, \x00, \u0000) ends the text: what follows it up to
// the closing quote is dropped ($'push\0x' is "push").
func ansiC(s string) (string, int, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' {
			text := b.String()
			if nul := strings.IndexByte(text, 0); nul >= 0 {
				text = text[:nul]
			}
			return text, i + 1, nil
		}
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'e', 'E':
			b.WriteByte(0x1b)
		case 'x':
			v, n := hexVal(s[i+1:], 2)
			if n == 0 {
				b.WriteString(`\x`)
				continue
			}
			b.WriteByte(byte(v))
			i += n
		case 'u', 'U':
			max := 4
			if e == 'U' {
				max = 8
			}
			v, n := hexVal(s[i+1:], max)
			if n == 0 {
				b.WriteByte('\\')
				b.WriteByte(e)
				continue
			}
			b.WriteRune(rune(v))
			i += n
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v, n := 0, 0
			for n < 3 && i+n < len(s) && s[i+n] >= '0' && s[i+n] <= '7' {
				v = v*8 + int(s[i+n]-'0')
				n++
			}
			b.WriteByte(byte(v))
			i += n - 1
		case 'c':
			if i+1 < len(s) {
				switch ctl := s[i+1]; ctl {
				case '?':
					b.WriteByte(0x7f)
				case '\\':
					b.WriteByte(0x1c)
					if i+2 < len(s) && s[i+2] == '\\' {
						i++ // bash reads \c\\ as one control-backslash
					}
				default:
					b.WriteByte(ctl & 0x1f)
				}
				i++
			}
		case '\\', '\'', '"', '?':
			b.WriteByte(e)
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return "", 0, shellErrorf("unterminated $'")
}

func hexVal(s string, max int) (int, int) {
	v, n := 0, 0
	for n < max && n < len(s) {
		c := s[n]
		switch {
		case c >= '0' && c <= '9':
			v = v*16 + int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v*16 + int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v*16 + int(c-'A'+10)
		default:
			return v, n
		}
		n++
	}
	return v, n
}

// redirect is one redirection of a simple command.
type redirect struct {
	op     string
	target word
}

// simpleCmd is one simple command: the words that run and their redirections.
type simpleCmd struct {
	args    []word
	assigns []word // NAME=value words before the command name
	redirs  []redirect
	piped   bool // stdin comes from another command or inline data
}

var keywords = map[string]bool{
	"!": true, "{": true, "}": true, "if": true, "then": true, "else": true, "elif": true,
	"fi": true, "do": true, "done": true, "while": true, "until": true,
}

// parseCommand parses a shell command string into simple commands,
// including those inside substitutions.
func parseCommand(src string, depth int) ([]simpleCmd, error) {
	toks, err := lex(src, depth)
	if err != nil {
		return nil, err
	}
	var out []simpleCmd
	if err := parseTokens(toks, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func parseTokens(toks []token, out *[]simpleCmd) error {
	var cur simpleCmd
	pipedNext := false
	needCmd := false
	parens := 0
	empty := func() bool { return len(cur.args) == 0 && len(cur.redirs) == 0 && len(cur.assigns) == 0 }
	finish := func() {
		if !empty() {
			cur.piped = cur.piped || pipedNext
			*out = append(*out, cur)
			pipedNext = false
			needCmd = false
		}
		cur = simpleCmd{}
	}
	subs := func(w word) error {
		for _, s := range w.subs {
			if err := parseTokens(s, out); err != nil {
				return err
			}
		}
		if len(*out) > maxUnits {
			return shellErrorf("more than %d commands", maxUnits)
		}
		return nil
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind == tkWord {
			w := t.w
			if err := subs(w); err != nil {
				return err
			}
			if len(cur.args) == 0 && !w.quoted && !w.dynamic {
				switch {
				case keywords[w.text]:
					continue
				case w.text == "select":
					return shellErrorf("select is not supported")
				case w.text == "for":
					if i+1 < len(toks) && toks[i+1].kind == tkOp && toks[i+1].op == "((" {
						return shellErrorf("arithmetic for loops are not supported")
					}
					// Skip the loop header up to "do"; its words only name
					// the values, and their substitutions were parsed above.
					j := i + 1
					for ; j < len(toks); j++ {
						if toks[j].kind == tkWord {
							if err := subs(toks[j].w); err != nil {
								return err
							}
							if toks[j].w.text == "do" && !toks[j].w.quoted {
								break
							}
						}
					}
					if j >= len(toks) {
						return shellErrorf("%s without do", w.text)
					}
					i = j
					continue
				case w.text == "case" || w.text == "function" || w.text == "coproc":
					return shellErrorf("%q is not supported", w.text)
				case w.text == "[[":
					// Inside [[ ]] operators are operands, not control.
					cur.args = append(cur.args, w)
					j := i + 1
					for ; j < len(toks); j++ {
						if toks[j].kind == tkOp {
							cur.args = append(cur.args, literalWord(toks[j].op))
							continue
						}
						if err := subs(toks[j].w); err != nil {
							return err
						}
						cur.args = append(cur.args, toks[j].w)
						if toks[j].w.text == "]]" {
							break
						}
					}
					if j >= len(toks) {
						return shellErrorf("[[ without ]]")
					}
					if err := checkCondArith(cur.args); err != nil {
						return err
					}
					i = j
					continue
				}
			}
			if len(cur.args) == 0 && isAssignment(w) {
				cur.assigns = append(cur.assigns, w)
				continue
			}
			if w.procSub {
				cur.piped = true
			}
			cur.args = append(cur.args, w)
			continue
		}
		switch op := t.op; {
		case op == "\n":
			if !needCmd || len(cur.args) > 0 || len(cur.redirs) > 0 {
				finish()
			}
		case op == ";" || op == "&":
			if needCmd && empty() {
				return shellErrorf("missing command before %q", op)
			}
			finish()
		case op == "&&" || op == "||" || op == "|" || op == "|&":
			if needCmd && empty() {
				return shellErrorf("missing command before %q", op)
			}
			finish()
			needCmd = true
			if op == "|" || op == "|&" {
				pipedNext = true
			}
		case op == "((":
			return shellErrorf("arithmetic commands (( … )) are not supported")
		case op == "(":
			if len(cur.args) > 0 {
				return shellErrorf("function definitions are not supported")
			}
			if len(cur.assigns) > 0 {
				return shellErrorf("array assignments are not supported")
			}
			parens++
		case op == ")":
			finish()
			parens--
			if parens < 0 {
				return shellErrorf("unbalanced )")
			}
		case isRedirect(op):
			if i+1 >= len(toks) || toks[i+1].kind != tkWord {
				return shellErrorf("redirection %q without a target", op)
			}
			i++
			if err := subs(toks[i].w); err != nil {
				return err
			}
			cur.redirs = append(cur.redirs, redirect{op: op, target: toks[i].w})
			if op == "<<" || op == "<<-" || op == "<<<" {
				cur.piped = true
			}
		default:
			return shellErrorf("unexpected %q", op)
		}
	}
	if parens != 0 {
		return shellErrorf("unbalanced (")
	}
	if needCmd && empty() {
		return shellErrorf("command ends with an operator")
	}
	finish()
	return nil
}

// checkCondArith checks a [[ … ]] command. Its arithmetic comparisons
// (-eq, -lt …) evaluate both operands as expressions and -v evaluates a
// subscript, so only numbers and numeric specials are accepted there.
func checkCondArith(args []word) error {
	for k, w := range args {
		if w.quoted || w.dynamic {
			continue
		}
		switch w.text {
		case "-eq", "-ne", "-lt", "-le", "-gt", "-ge":
			for _, j := range []int{k - 1, k + 1} {
				if j < 1 || j >= len(args) || !numericWord(args[j]) {
					return shellErrorf("[[ %s ]] evaluates operands as arithmetic; only numbers are supported", w.text)
				}
			}
		case "-v":
			if k+1 < len(args) && (args[k+1].dynamic || strings.Contains(args[k+1].text, "[")) {
				return shellErrorf("[[ -v ]] of an array element evaluates its subscript")
			}
		}
	}
	return nil
}

// numericWord reports a word whose value is a number whatever runs before:
// an integer literal or $#, $?, $$, $!, ${#name}.
func numericWord(w word) bool {
	if !w.dynamic && !w.glob {
		t := strings.TrimLeft(w.text, "+-")
		return t != "" && allDigits(t)
	}
	if w.glob || len(w.subs) > 0 {
		return false
	}
	switch w.text {
	case "$#", "$?", "$$", "$!", "${#}":
		return true
	}
	if strings.HasPrefix(w.text, "${#") && strings.HasSuffix(w.text, "}") {
		name := w.text[3 : len(w.text)-1]
		return name != "" && isNameStart(name[0]) && strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == ""
	}
	return false
}

// isAssignment reports NAME=value, NAME+=value or NAME[sub]=value before
// the command name.
func isAssignment(w word) bool {
	t := w.text
	if t == "" || !isNameStart(t[0]) {
		return false
	}
	i := 1
	for i < len(t) && isNameByte(t[i]) {
		i++
	}
	if i < len(t) && t[i] == '[' {
		depth := 0
		for ; i < len(t); i++ {
			if t[i] == '[' {
				depth++
			} else if t[i] == ']' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if i >= len(t) {
			return false
		}
		i++
	}
	return strings.HasPrefix(t[i:], "=") || strings.HasPrefix(t[i:], "+=")
}
