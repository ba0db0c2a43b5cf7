package query

import (
	"fmt"

	"github.com/agentaudit/agentaudit/internal/chsql"
)

// CheckReadOnly reports whether sql is exactly one read statement, by the
// one guard in chsql (its package doc says what it refuses and why). The
// refusal wraps both ErrWriteStatement and chsql.ErrRefused. The server's
// readonly setting is the second line: Open forces readonly=2 on an
// account that could write.
func CheckReadOnly(sql string) error {
	if _, err := chsql.Check(sql); err != nil {
		return fmt.Errorf("%w: %w", ErrWriteStatement, err)
	}
	return nil
}

// readKeywords and tokens keep unit_test.go's older guard tests compiling;
// the guard's own tests are in chsql.
var readKeywords = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range chsql.ReadKinds() {
		m[k] = true
	}
	return m
}()

// tokens returns sql's tokens as chsql reads them, without white space
// and comments.
func tokens(sql string) ([]string, error) {
	toks, err := chsql.Tokenize(sql)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range toks {
		if t.Kind != chsql.Space && t.Kind != chsql.Comment {
			out = append(out, t.Text)
		}
	}
	return out, nil
}
