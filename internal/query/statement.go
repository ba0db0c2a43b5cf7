package query

import (
	"fmt"
	"strings"
)

// readKeywords are the statement kinds that only read. Anything else
// (INSERT, ALTER, CREATE, DROP, TRUNCATE, RENAME, OPTIMIZE, KILL, SET,
// SYSTEM, ATTACH, DETACH, GRANT, USE …) is refused before it is sent; the
// server's readonly setting is the second line.
var readKeywords = map[string]bool{
	"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true,
	"EXISTS": true, "EXPLAIN": true,
}

// CheckReadOnly reports whether sql is exactly one read statement. It
// looks at the first keyword after comments, white space and opening
// parentheses, and refuses a second statement after a `;`, INTO OUTFILE,
// and a SETTINGS clause's readonly override.
func CheckReadOnly(sql string) error {
	toks, err := tokens(sql)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWriteStatement, err)
	}
	// Trailing semicolons are harmless; anything after one is a second
	// statement.
	for len(toks) > 0 && toks[len(toks)-1] == ";" {
		toks = toks[:len(toks)-1]
	}
	if len(toks) == 0 {
		return fmt.Errorf("%w: empty statement", ErrWriteStatement)
	}
	i := 0
	for i < len(toks) && toks[i] == "(" {
		i++
	}
	if i == len(toks) {
		return fmt.Errorf("%w: no statement", ErrWriteStatement)
	}
	kind := strings.ToUpper(toks[i])
	if !readKeywords[kind] {
		return fmt.Errorf("%w: %s is not a read statement", ErrWriteStatement, kind)
	}
	for j, t := range toks {
		switch up := strings.ToUpper(t); {
		case t == ";":
			return fmt.Errorf("%w: only one statement per query", ErrWriteStatement)
		case up == "OUTFILE" && j > 0 && strings.EqualFold(toks[j-1], "INTO"):
			return fmt.Errorf("%w: INTO OUTFILE writes a file", ErrWriteStatement)
		case up == "READONLY" || up == "ALLOW_DDL":
			// A SETTINGS clause could try to lower the account's limits.
			return fmt.Errorf("%w: the %s setting cannot be changed", ErrWriteStatement, strings.ToLower(t))
		}
	}
	return nil
}

// tokens splits sql into words, punctuation and literals, dropping
// comments and white space. Quoted strings and identifiers come back whole
// (with their quotes) so that keywords inside them are not mistaken for
// statements.
func tokens(sql string) ([]string, error) {
	var out []string
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-', c == '#':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			// ClickHouse block comments nest.
			depth := 0
			for i < len(sql) {
				if strings.HasPrefix(sql[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(sql[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			if depth != 0 {
				return nil, fmt.Errorf("unterminated comment")
			}
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for ; j < len(sql); j++ {
				if sql[j] == '\\' {
					j++
					continue
				}
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c { // doubled quote
						j++
						continue
					}
					break
				}
			}
			if j >= len(sql) {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			out = append(out, sql[i:j+1])
			i = j + 1
		case isWord(c):
			j := i
			for j < len(sql) && isWord(sql[j]) {
				j++
			}
			out = append(out, sql[i:j])
			i = j
		default:
			out = append(out, sql[i:i+1])
			i++
		}
	}
	return out, nil
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
