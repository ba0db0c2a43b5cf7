package detect

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// srcExpr is a CEL expression (or template) with the line it starts on, so
// compile errors point into the YAML file.
type srcExpr struct {
	Src  string
	Line int
}

func (e *srcExpr) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a string expression", n.Line)
	}
	e.Src, e.Line = n.Value, n.Line
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		e.Line++ // block scalars start on the next line
	}
	return nil
}

// duration is a time.Duration written as "90s", "5m", "2h" or "1d".
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not a duration (like 30s, 5m, 2h, 1d)", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, err
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

var (
	srcExprType  = reflect.TypeFor[srcExpr]()
	durationType = reflect.TypeFor[duration]()
	nodeType     = reflect.TypeFor[yaml.Node]()
)

// checkKeys rejects mapping keys that t has no field for, recursively, so
// a misspelt key ("treshold") is a load error rather than a silent default.
// It returns the first offending node and a reason.
func checkKeys(n *yaml.Node, t reflect.Type) (*yaml.Node, string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		return n, "aliases are not allowed in rule files"
	}
	switch {
	case t == srcExprType || t == durationType || t == nodeType:
		return nil, ""
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil, "" // Decode reports the type error with its line
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				return k, fmt.Sprintf("unknown key %q (known: %s)", k.Value, strings.Join(names, ", "))
			}
			if bad, why := checkKeys(v, ft); bad != nil {
				return bad, why
			}
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil, ""
		}
		for _, c := range n.Content {
			if bad, why := checkKeys(c, t.Elem()); bad != nil {
				return bad, why
			}
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil, ""
		}
		for i := 1; i < len(n.Content); i += 2 {
			if bad, why := checkKeys(n.Content[i], t.Elem()); bad != nil {
				return bad, why
			}
		}
	}
	return nil, ""
}

// decodeStrict checks keys then decodes n into out.
func decodeStrict(n *yaml.Node, out any) (line int, err error) {
	if bad, why := checkKeys(n, reflect.TypeOf(out)); bad != nil {
		return bad.Line, fmt.Errorf("%s", why)
	}
	if err := n.Decode(out); err != nil {
		return n.Line, fmt.Errorf("%s", cleanYAMLError(err))
	}
	return 0, nil
}

// cleanYAMLError drops the "yaml: unmarshal errors:" preamble.
func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = strings.TrimPrefix(s, "yaml: ")
	return strings.TrimSpace(strings.ReplaceAll(s, "\n ", ";"))
}

// yamlToJSONValue converts a decoded YAML value into one encoding/json
// accepts (maps with string keys).
func yamlToJSONValue(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := yamlToJSONValue(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("non-string key %v", k)
			}
			c, err := yamlToJSONValue(e)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := yamlToJSONValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case float64:
		return nil, fmt.Errorf("non-integer number %v (events carry integers only)", x)
	case time.Time:
		return nil, fmt.Errorf("timestamp %v must be quoted", x)
	}
	return v, nil
}
