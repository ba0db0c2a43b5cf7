package chsql

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind is what a token is.
type Kind uint8

// Token kinds.
const (
	// Word is a keyword, an identifier or a number: a run of ASCII letters,
	// digits and '_'. Anything else splits words, so a keyword cannot hide
	// inside a word the server would split.
	Word Kind = iota + 1
	// Space is a run of white space, ASCII or Unicode (newer servers skip
	// Unicode white space too).
	Space
	// Comment is -- …, // … or # … up to the end of the line, or /* … */.
	Comment
	// String is a '…' literal, quotes included.
	String
	// Ident is a "…" or `…` quoted identifier, quotes included.
	Ident
	// Param is a {name} placeholder, braces included.
	Param
	// Punct is any other character, one at a time.
	Punct
)

// Token is one piece of a statement. The texts of a statement's tokens,
// joined, are the statement.
type Token struct {
	Kind Kind
	Text string
}

// Name is a Word's text, a quoted identifier's inside, or a placeholder's
// name; the text of any other token.
func (t Token) Name() string {
	switch t.Kind {
	case Ident:
		return t.Text[1 : len(t.Text)-1]
	case Param:
		return strings.TrimSpace(t.Text[1 : len(t.Text)-1])
	}
	return t.Text
}

// Tokenize splits sql into tokens the way current ClickHouse servers read
// it, with nested block comments. Check also reads a statement the way
// 18.16 does, where the first */ ends a comment.
func Tokenize(sql string) ([]Token, error) { return tokenize(sql, true) }

// tokenize reads block comments nested, as newer servers do, or flat (the
// first */ ends the comment), as 18.16 does.
func tokenize(sql string, nested bool) ([]Token, error) {
	var out []Token
	for i := 0; i < len(sql); {
		c := sql[i]
		j := i + 1
		kind := Punct
		switch {
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '/' && strings.HasPrefix(sql[i:], "//"), c == '#':
			// 18.16 reads // as a comment and refuses #; newer servers read
			// both as comments. Reading either as code where a server reads
			// a comment could hide a quote from the check, so both are
			// comments here. The comment ends at \r too: where a server
			// reads on to \n, the guard checks more, not less.
			kind = Comment
			j = i + strings.IndexAny(sql[i:]+"\n", "\r\n")
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			kind = Comment
			end := blockCommentEnd(sql, i, nested)
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment")
			}
			j = end
		case c == '\'' || c == '"' || c == '`':
			kind = Ident
			if c == '\'' {
				kind = String
			}
			j = quoteEnd(sql, i)
			if j < 0 {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
		case c == '{':
			if end := paramEnd(sql, i); end > 0 {
				kind, j = Param, end
			}
		case isWordByte(c):
			kind = Word
			for j < len(sql) && isWordByte(sql[j]) {
				j++
			}
		case isSpaceAt(sql, i) > 0:
			kind = Space
			for j = i; j < len(sql) && isSpaceAt(sql, j) > 0; {
				j += isSpaceAt(sql, j)
			}
		case c >= utf8.RuneSelf:
			// One rune of anything else: the server refuses it outside
			// literals.
			_, n := utf8.DecodeRuneInString(sql[i:])
			j = i + n
		}
		out = append(out, Token{Kind: kind, Text: sql[i:j]})
		i = j
	}
	return out, nil
}

// blockCommentEnd returns the index just after the comment that opens at
// i, or -1 if it never closes.
func blockCommentEnd(sql string, i int, nested bool) int {
	if !nested {
		end := strings.Index(sql[i+2:], "*/")
		if end < 0 {
			return -1
		}
		return i + 2 + end + 2
	}
	depth := 1
	for j := i + 2; j+1 < len(sql); {
		switch {
		case sql[j] == '/' && sql[j+1] == '*':
			depth++
			j += 2
		case sql[j] == '*' && sql[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j
			}
		default:
			j++
		}
	}
	return -1
}

// quoteEnd returns the index just after the literal that opens at i, or -1.
// A backslash escapes the next byte; a doubled quote is one quote.
func quoteEnd(sql string, i int) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		switch {
		case sql[j] == '\\':
			j++
		case sql[j] == q && j+1 < len(sql) && sql[j+1] == q:
			j++
		case sql[j] == q:
			return j + 1
		}
	}
	return -1
}

// paramEnd returns the index just after a {name} placeholder at i (spaces
// around the name allowed), or -1: a lone brace is punctuation.
func paramEnd(sql string, i int) int {
	j := i + 1
	for j < len(sql) && sql[j] == ' ' {
		j++
	}
	start := j
	for j < len(sql) && isWordByte(sql[j]) {
		j++
	}
	if j == start || sql[start] >= '0' && sql[start] <= '9' {
		return -1
	}
	for j < len(sql) && sql[j] == ' ' {
		j++
	}
	if j < len(sql) && sql[j] == '}' {
		return j + 1
	}
	return -1
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isSpaceAt returns the length of the white-space rune at i, or 0.
func isSpaceAt(sql string, i int) int {
	if c := sql[i]; c < utf8.RuneSelf {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
			return 1
		}
		return 0
	}
	r, n := utf8.DecodeRuneInString(sql[i:])
	if r != utf8.RuneError && unicode.IsSpace(r) {
		return n
	}
	return 0
}
