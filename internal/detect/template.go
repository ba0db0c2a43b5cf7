package detect

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// template is an output message: text with {{ CEL }} placeholders, each
// type-checked at load like a match, so a misspelt field in a message is a
// load error too.
type template struct {
	parts []tmplPart
}

type tmplPart struct {
	text string
	prg  cel.Program // nil for text
}

func compileTemplate(c *celEnv, env *cel.Env, src srcExpr, used map[string]bool) (*template, error) {
	t := &template{}
	s := src.Src
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			if s != "" {
				t.parts = append(t.parts, tmplPart{text: s})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{text: s[:i]})
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return nil, &exprError{line: src.Line, reason: "output: `{{` without `}}`"}
		}
		expr := strings.TrimSpace(s[i+2 : i+j])
		if expr == "" {
			return nil, &exprError{line: src.Line, reason: "output: empty {{ }}"}
		}
		prg, _, err := c.compile(env, srcExpr{Src: expr, Line: src.Line}, nil, used)
		if err != nil {
			return nil, err
		}
		t.parts = append(t.parts, tmplPart{prg: prg})
		s = s[i+j+2:]
	}
}

func (t *template) render(act *activation) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.prg == nil {
			b.WriteString(p.text)
			continue
		}
		v, _, err := p.prg.Eval(act)
		if err != nil {
			b.WriteString("<?>")
			continue
		}
		b.WriteString(formatValue(v))
	}
	return b.String()
}

func formatValue(v ref.Val) string {
	switch x := v.(type) {
	case types.String:
		return string(x)
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339)
	case types.Duration:
		return x.Duration.String()
	case traits.Lister:
		var parts []string
		it := x.Iterator()
		for it.HasNext() == types.True {
			parts = append(parts, formatValue(it.Next()))
		}
		return strings.Join(parts, ", ")
	}
	return fmt.Sprint(v.Value())
}
