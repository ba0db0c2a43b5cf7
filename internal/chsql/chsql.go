// Package chsql decides whether SQL sent to ClickHouse only reads: the one
// read-only statement guard, for compliance queries and detection rules.
//
// Check lets through exactly one read statement and refuses, each with a
// Code:
//
//   - a first word (after opening parentheses) that is not a read
//     statement's (SELECT, WITH, SHOW, DESCRIBE, DESC, EXISTS, EXPLAIN), or
//     not one of the kinds a caller narrowed them to: the first word decides
//     what the server does;
//   - a second statement after a ';' (trailing semicolons are fine);
//   - INTO OUTFILE, which writes a file;
//   - the readonly and allow_ddl settings, bare or quoted: a SETTINGS clause
//     must not lower the account's limits;
//   - '$' outside literals: newer servers read $$…$$ as a string, so the
//     guard and the server could disagree on where a quote ends;
//   - words a caller forbids anywhere outside literals (detection rules
//     forbid every write statement's keyword);
//   - an unterminated quote or comment, and an empty statement.
//
// Comments are read as the most generous server reads them, so a comment
// cannot hide a quote from the guard: --, // and # run to the end of the
// line. Block comments nest on current servers but not on 18.16, where the
// first */ ends one, so Check reads the statement both ways and refuses
// anything either reading refuses.
//
// The guard is the first line, not the only one: the server's readonly
// setting is the second. Connections for these statements are opened with
// store.WithReadOnly, which forces readonly=2 on an account that could
// write.
package chsql

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrRefused: the statement is not exactly one read statement. Every error
// Check returns is an *Error that unwraps to it.
var ErrRefused = errors.New("chsql: not a single read statement")

// Code is the machine-readable reason Check refused a statement.
type Code string

// Codes of Check.
const (
	CodeSyntax    Code = "syntax"              // unterminated quote or comment
	CodeEmpty     Code = "empty"               // nothing but comments, spaces, parentheses or ';'
	CodeNotRead   Code = "not_read"            // the first word is not an allowed read statement
	CodeMultiple  Code = "multiple_statements" // a ';' before the end
	CodeOutfile   Code = "into_outfile"        // INTO OUTFILE
	CodeSetting   Code = "readonly_setting"    // readonly or allow_ddl named
	CodeDollar    Code = "dollar"              // '$' outside literals
	CodeForbidden Code = "forbidden_word"      // a word the caller forbids
)

// Error is a refusal with its code and a reason for people.
type Error struct {
	Code   Code
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Unwrap lets errors.Is match ErrRefused.
func (e *Error) Unwrap() error { return ErrRefused }

// readKinds are the first words of the statements that only read.
var readKinds = []string{"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"}

// ReadKinds returns the first words Check allows by default.
func ReadKinds() []string { return slices.Clone(readKinds) }

// Option narrows what Check lets through.
type Option func(*config)

type config struct {
	kinds     []string
	forbidden []string
}

// Kinds narrows the statement kinds (first words) allowed; words that are
// not read kinds are ignored.
func Kinds(words ...string) Option {
	return func(c *config) {
		c.kinds = nil
		for _, w := range words {
			if w = strings.ToUpper(w); slices.Contains(readKinds, w) {
				c.kinds = append(c.kinds, w)
			}
		}
	}
}

// Forbid refuses these words anywhere outside literals, comments and
// quoted identifiers, whatever their case.
func Forbid(words ...string) Option {
	return func(c *config) {
		for _, w := range words {
			c.forbidden = append(c.forbidden, strings.ToUpper(w))
		}
	}
}

// Check reports whether sql is exactly one read statement and returns its
// tokens (as Tokenize reads them) for callers that rewrite it. See the
// package doc for what it refuses.
func Check(sql string, opts ...Option) ([]Token, error) {
	c := config{kinds: readKinds}
	for _, o := range opts {
		o(&c)
	}
	toks, err := Tokenize(sql)
	if err != nil {
		return nil, &Error{Code: CodeSyntax, Reason: err.Error()}
	}
	if err := c.check(toks, false); err != nil {
		return nil, err
	}
	if strings.Count(sql, "/*") > 1 {
		// A nested comment: read it as 18.16 does too.
		var e *Error
		if flat, err := tokenize(sql, false); err != nil {
			e = &Error{Code: CodeSyntax, Reason: err.Error()}
		} else {
			e = c.check(flat, true)
		}
		if e != nil {
			e.Reason += " (where the first */ ends a comment, as on ClickHouse 18.16)"
			return nil, e
		}
	}
	return toks, nil
}

// check applies the rules to one reading. In the flat reading the tail of
// a nested comment (`*/`) comes before the first word; it is a syntax error
// there, so any leading punctuation is passed over to find the word.
func (c *config) check(toks []Token, flat bool) *Error {
	var sig []Token
	for _, t := range toks {
		if t.Kind != Space && t.Kind != Comment {
			sig = append(sig, t)
		}
	}
	for len(sig) > 0 && sig[len(sig)-1].Kind == Punct && sig[len(sig)-1].Text == ";" {
		sig = sig[:len(sig)-1]
	}
	i := 0
	for i < len(sig) && sig[i].Kind == Punct && (sig[i].Text == "(" || flat && sig[i].Text != ";") {
		i++
	}
	if i == len(sig) {
		return &Error{Code: CodeEmpty, Reason: "empty statement"}
	}
	if first := sig[i]; first.Kind != Word || !slices.Contains(c.kinds, strings.ToUpper(first.Text)) {
		return c.notRead(first)
	}
	// A forbidden word is the clearest reason, so it wins over the others.
	var first *Error
	for j, t := range sig {
		up := strings.ToUpper(t.Name())
		var e *Error
		switch {
		case t.Kind == Word && slices.Contains(c.forbidden, up):
			return &Error{Code: CodeForbidden, Reason: up + " is not allowed"}
		case t.Kind == Punct && t.Text == ";":
			e = &Error{Code: CodeMultiple, Reason: "must be one statement (found ';')"}
		case t.Kind == Punct && t.Text == "$":
			e = &Error{Code: CodeDollar, Reason: "$ is not allowed outside quotes: newer servers read $$…$$ as a string"}
		case t.Kind == Word && up == "OUTFILE" && j > 0 && strings.EqualFold(sig[j-1].Text, "INTO"):
			e = &Error{Code: CodeOutfile, Reason: "OUTFILE is not allowed: INTO OUTFILE writes a file"}
		case (t.Kind == Word || t.Kind == Ident) && (up == "READONLY" || up == "ALLOW_DDL"):
			e = &Error{Code: CodeSetting, Reason: fmt.Sprintf("the %s setting cannot be changed", strings.ToLower(up))}
		}
		if first == nil {
			first = e
		}
	}
	return first
}

func (c *config) notRead(t Token) *Error {
	word := t.Text
	if t.Kind == Word {
		word = strings.ToUpper(word)
	} else {
		word = fmt.Sprintf("%q", word)
	}
	reason := word + " is not a read statement"
	if slices.Contains(readKinds, word) {
		reason = word + " is not allowed here"
	}
	if !slices.Equal(c.kinds, readKinds) {
		reason += ": must be a " + orList(c.kinds) + " statement"
	}
	return &Error{Code: CodeNotRead, Reason: reason}
}

func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
