package policy

import "strings"

// Bash evaluates some expansions twice: arithmetic reads a variable's value
// as another expression, and an array subscript in that value runs command
// substitutions (x='a[$(git push)]'; echo $((x)) pushes). ${!x} and ${x@P}
// expand a value again. These checks accept only the forms whose result
// cannot run anything; everything else is an error, which asks.

// checkParam accepts ${name}, ${#name}, ${name[@]}, ${name[N]} and the
// operators that only substitute or trim (:- := :+ :? # % / ^ ,), with a
// numeric :offset:length, and whose words pass checkExpansions.
func checkParam(raw string) error {
	if len(raw) < 3 || !strings.HasPrefix(raw, "${") || raw[len(raw)-1] != '}' {
		return shellErrorf("malformed %q", raw)
	}
	s := raw[2 : len(raw)-1]
	if s == "" {
		return shellErrorf("bad substitution ${}")
	}
	if s[0] == '!' {
		return shellErrorf("indirect expansion %s", raw)
	}
	length := false
	if s[0] == '#' && len(s) > 1 {
		length = true
		s = s[1:]
	}
	// the parameter's name
	n := 0
	switch {
	case isNameStart(s[0]):
		for n < len(s) && isNameByte(s[n]) {
			n++
		}
	case s[0] >= '0' && s[0] <= '9':
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
	case strings.IndexByte("@*#?$!-", s[0]) >= 0:
		n = 1
	default:
		return shellErrorf("bad substitution %s", raw)
	}
	rest := s[n:]
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return shellErrorf("bad subscript in %s", raw)
		}
		if !safeSubscript(rest[1:end]) {
			return shellErrorf("array subscript %q is arithmetic the policy does not evaluate", rest[1:end])
		}
		rest = rest[end+1:]
	}
	if rest == "" {
		return nil
	}
	if length {
		return shellErrorf("bad substitution %s", raw)
	}
	for _, op := range []string{":-", ":=", ":+", ":?", "##", "%%", "//", "/#", "/%", "^^", ",,", "-", "=", "+", "?", "#", "%", "/", "^", ","} {
		if strings.HasPrefix(rest, op) {
			return checkExpansions(rest[len(op):])
		}
	}
	if rest[0] == ':' {
		// ${x:offset:length}: both are arithmetic; only numbers are safe.
		if strings.Trim(rest[1:], "0123456789 -:") != "" {
			return shellErrorf("substring offset in %s is arithmetic the policy does not evaluate", raw)
		}
		return nil
	}
	return shellErrorf("parameter transformation %s is not supported", raw)
}

func safeSubscript(sub string) bool {
	if sub == "@" || sub == "*" {
		return true
	}
	sub = strings.TrimPrefix(sub, "-")
	return sub != "" && allDigits(sub)
}

// checkExpansions checks the ${…}, $((…)) and $[…] expansions inside text
// that bash expands (a here-document body, a word inside ${…}).
func checkExpansions(text string) error {
	for i := 0; i < len(text); i++ {
		switch {
		case text[i] == '\\':
			i++
		case text[i] != '$' || i+1 >= len(text):
		case text[i+1] == '[':
			return shellErrorf("$[ … ] arithmetic is not supported")
		case strings.HasPrefix(text[i:], "$(("):
			end := matchParens(text, i+1)
			if end < 0 || end < i+4 || text[end-1] != ')' {
				return shellErrorf("unterminated $((")
			}
			if err := checkArith(text[i+3 : end-1]); err != nil {
				return err
			}
			i = end
		case text[i+1] == '(':
			return shellErrorf("command substitution inside an expansion")
		case text[i+1] == '{':
			end := matchBrace(text, i+1)
			if end < 0 {
				return shellErrorf("unterminated ${")
			}
			if err := checkParam(text[i : end+1]); err != nil {
				return err
			}
			i = end
		}
	}
	return nil
}

// matchParens returns the index of the ")" that closes the "(" at open.
func matchParens(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// matchBrace returns the index of the "}" that closes the "{" at open.
// Like bash, it skips quoted text: "${x:-'}'}" is one expansion.
func matchBrace(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return -1
			}
			i += end + 1
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			if i >= len(s) {
				return -1
			}
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// checkArith accepts an arithmetic expression made of numbers, operators
// and the numeric specials ($#, $?, $$, $!, ${#name}). A variable name is
// refused: bash would evaluate its value, which the policy cannot see, as
// another expression.
func checkArith(expr string) error {
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c >= '0' && c <= '9':
			// 10, 0x1f, 16#ff, 64#@_: the rest of a number
			for i+1 < len(expr) && (isNameByte(expr[i+1]) || expr[i+1] == '#' || expr[i+1] == '@') {
				i++
			}
		case c == '$' && i+1 < len(expr) && strings.IndexByte("#?$!", expr[i+1]) >= 0:
			i++
		case c == '$' && strings.HasPrefix(expr[i:], "${#"):
			end := strings.IndexByte(expr[i:], '}')
			if end < 0 {
				return shellErrorf("unterminated ${ in arithmetic")
			}
			name := expr[i+3 : i+end]
			if name == "" || !isNameStart(name[0]) || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
				return shellErrorf("arithmetic on %q is not supported", expr[i:i+end+1])
			}
			i += end
		case strings.IndexByte(" \t\n+-*/%<>=!&|^~?:,()", c) >= 0:
		default:
			return shellErrorf("arithmetic %q names a variable or uses %q, which the policy does not evaluate", expr, string(c))
		}
	}
	return nil
}
