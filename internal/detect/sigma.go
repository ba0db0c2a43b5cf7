package detect

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Sigma import: a Sigma rule (https://sigmahq.io) becomes one or two
// stream rules with generated tests. Only a subset is understood; anything
// outside it is refused by name, never approximated, so an imported rule
// means what its author meant or does not exist.
//
// Supported: logsource category process_creation (product linux or none)
// onto process.exec and shell tool calls; proxy, network_connection and
// firewall onto net.egress. Field modifiers contains, startswith,
// endswith, all, re, cidr; wildcards * and ? in values; conditions and,
// or, not, parentheses, `1 of X`, `all of X` (X a name, a name with *, or
// them, which leaves out names starting with _), and a list of conditions
// (any of them). Plain values match case-insensitively, as Sigma specifies; re is
// case-sensitive.

// Errors of the Sigma import.
var (
	// ErrSigmaUnsupported: the rule uses a construct the importer does not
	// convert (a modifier, an aggregation, a log source, a field).
	ErrSigmaUnsupported = errors.New("detect: unsupported Sigma construct")
	// ErrSigmaInvalid: the document is not a well-formed Sigma rule.
	ErrSigmaInvalid = errors.New("detect: invalid Sigma rule")
)

// SigmaError says which construct of which Sigma file was refused.
type SigmaError struct {
	File string
	// Code is machine-readable: unsupported_modifier,
	// unsupported_condition, unsupported_logsource, unknown_field,
	// unmapped_field, unsupported_value, invalid, no_test.
	Code string
	// Construct names what was refused (a modifier, a field, a token).
	Construct string
	Reason    string
}

func (e *SigmaError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.File, e.Code, e.Reason)
}

// Unwrap lets errors.Is tell a refused construct from a broken file.
func (e *SigmaError) Unwrap() error {
	if e.Code == "invalid" {
		return ErrSigmaInvalid
	}
	return ErrSigmaUnsupported
}

// Sigma error codes.
const (
	sigmaUnsupportedModifier  = "unsupported_modifier"
	sigmaUnsupportedCondition = "unsupported_condition"
	sigmaUnsupportedLogsource = "unsupported_logsource"
	sigmaUnknownField         = "unknown_field"
	sigmaUnmappedField        = "unmapped_field"
	sigmaUnsupportedValue     = "unsupported_value"
	sigmaInvalid              = "invalid"
	sigmaNoTest               = "no_test"
)

// Bounds on untrusted Sigma input.
const (
	maxSigmaSize       = 256 << 10
	maxSigmaSearches   = 64
	maxSigmaValues     = 256
	maxSigmaCondTokens = 512
	maxSigmaDepth      = 64
)

// sigmaDoc is the part of a Sigma rule the importer reads; other keys
// (author, status, fields, custom attributes) are metadata it ignores.
type sigmaDoc struct {
	Title          string     `yaml:"title"`
	ID             string     `yaml:"id"`
	Status         string     `yaml:"status"`
	Description    string     `yaml:"description"`
	References     []string   `yaml:"references"`
	Date           string     `yaml:"date"`
	Modified       string     `yaml:"modified"`
	Tags           []string   `yaml:"tags"`
	Level          string     `yaml:"level"`
	FalsePositives []string   `yaml:"falsepositives"`
	Logsource      yaml.Node  `yaml:"logsource"`
	Detection      yaml.Node  `yaml:"detection"`
	Action         string     `yaml:"action"`
	Correlation    *yaml.Node `yaml:"correlation"`
}

// sigmaRule is a parsed Sigma rule.
type sigmaRule struct {
	file      string
	doc       sigmaDoc
	category  string
	product   string
	searches  []*sigmaSearch // in file order
	condition *sigmaCond
}

// sigmaSearch is one search identifier: alternatives (a list of maps) of
// which one must hold; each alternative is fields that must all hold.
type sigmaSearch struct {
	name string
	alts [][]*sigmaField
}

// sigmaField is `Field|mods: values`.
type sigmaField struct {
	field string
	op    string // "", contains, startswith, endswith, re, cidr
	all   bool
	vals  []sigmaValue
}

type sigmaValue struct {
	s     string
	num   bool
	n     int64
	quote bool // a YAML string, as opposed to a number
}

// sigmaCond is a condition tree.
type sigmaCond struct {
	op   string // search, and, or, not
	name string // op search
	kids []*sigmaCond
}

func (c *sigmaRule) fail(code, construct, format string, args ...any) error {
	return &SigmaError{File: c.file, Code: code, Construct: construct, Reason: fmt.Sprintf(format, args...)}
}

// parseSigma parses one Sigma document.
func parseSigma(file string, data []byte) (*sigmaRule, error) {
	r := &sigmaRule{file: file}
	if len(data) > maxSigmaSize {
		return nil, r.fail(sigmaInvalid, "", "file is over %d bytes", maxSigmaSize)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		return nil, r.fail(sigmaInvalid, "", "not YAML: %s", cleanYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, r.fail(sigmaUnsupportedCondition, "multiple documents", "multi-document Sigma files (action: global, rule collections) are not supported; split them into one rule per file")
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, r.fail(sigmaInvalid, "", "a Sigma rule is a YAML mapping")
	}
	if bad := findAlias(root.Content[0], 0); bad != "" {
		return nil, r.fail(sigmaInvalid, "", "%s", bad)
	}
	if err := root.Content[0].Decode(&r.doc); err != nil {
		return nil, r.fail(sigmaInvalid, "", "%s", cleanYAMLError(err))
	}
	d := &r.doc
	if d.Action != "" || d.Correlation != nil {
		return nil, r.fail(sigmaUnsupportedCondition, "correlation", "Sigma correlation and meta rules (action, correlation) are not supported")
	}
	if strings.TrimSpace(d.Title) == "" {
		return nil, r.fail(sigmaInvalid, "title", "title is required")
	}
	if err := r.parseLogsource(); err != nil {
		return nil, err
	}
	if err := r.parseDetection(); err != nil {
		return nil, err
	}
	return r, nil
}

// findAlias rejects YAML aliases (a billion-laughs vector) and deep nesting.
func findAlias(n *yaml.Node, depth int) string {
	if depth > maxSigmaDepth {
		return "nesting is too deep"
	}
	if n.Kind == yaml.AliasNode {
		return "YAML aliases are not allowed"
	}
	for _, c := range n.Content {
		if s := findAlias(c, depth+1); s != "" {
			return s
		}
	}
	return ""
}

func (r *sigmaRule) parseLogsource() error {
	var ls map[string]string
	if r.doc.Logsource.Kind != yaml.MappingNode || r.doc.Logsource.Decode(&ls) != nil {
		return r.fail(sigmaInvalid, "logsource", "logsource must be a mapping of strings")
	}
	r.category, r.product = strings.ToLower(ls["category"]), strings.ToLower(ls["product"])
	if svc := ls["service"]; svc != "" {
		return r.fail(sigmaUnsupportedLogsource, "service: "+svc, "logsource service %q is not supported (only categories %s)", svc, strings.Join(sigmaCategories(), ", "))
	}
	if _, ok := sigmaTargets[r.category]; !ok {
		return r.fail(sigmaUnsupportedLogsource, "category: "+r.category, "logsource category %q is not supported (supported: %s)", r.category, strings.Join(sigmaCategories(), ", "))
	}
	if r.category == "process_creation" && r.product != "" && r.product != "linux" {
		return r.fail(sigmaUnsupportedLogsource, "product: "+r.product, "process_creation is supported for product linux only, not %q: sandboxes run Linux", r.product)
	}
	return nil
}

func (r *sigmaRule) parseDetection() error {
	det := &r.doc.Detection
	if det.Kind != yaml.MappingNode {
		return r.fail(sigmaInvalid, "detection", "detection must be a mapping")
	}
	var cond string
	for i := 0; i+1 < len(det.Content); i += 2 {
		k, v := det.Content[i], det.Content[i+1]
		switch k.Value {
		case "condition":
			switch v.Kind {
			case yaml.ScalarNode:
				cond = v.Value
			case yaml.SequenceNode:
				// A list of conditions means any of them.
				var parts []string
				for _, c := range v.Content {
					if c.Kind != yaml.ScalarNode || strings.TrimSpace(c.Value) == "" {
						return r.fail(sigmaInvalid, "condition", "condition list items must be non-empty strings")
					}
					parts = append(parts, "("+c.Value+")")
				}
				cond = strings.Join(parts, " or ")
			default:
				return r.fail(sigmaInvalid, "condition", "condition must be a string")
			}
		case "timeframe":
			return r.fail(sigmaUnsupportedCondition, "timeframe", "timeframe (used by aggregations) is not supported")
		default:
			if len(r.searches) >= maxSigmaSearches {
				return r.fail(sigmaInvalid, "", "more than %d search identifiers", maxSigmaSearches)
			}
			s, err := r.parseSearch(k.Value, v)
			if err != nil {
				return err
			}
			r.searches = append(r.searches, s)
		}
	}
	if strings.TrimSpace(cond) == "" {
		return r.fail(sigmaInvalid, "condition", "detection.condition is required")
	}
	c, err := r.parseCondition(cond)
	if err != nil {
		return err
	}
	r.condition = c
	return nil
}

var sigmaIdent = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

func (r *sigmaRule) parseSearch(name string, n *yaml.Node) (*sigmaSearch, error) {
	if !sigmaIdent.MatchString(name) {
		return nil, r.fail(sigmaInvalid, name, "search identifier %q must be letters, digits and _", name)
	}
	s := &sigmaSearch{name: name}
	switch n.Kind {
	case yaml.MappingNode:
		alt, err := r.parseMap(name, n)
		if err != nil {
			return nil, err
		}
		s.alts = append(s.alts, alt)
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.MappingNode {
				return nil, r.fail(sigmaUnsupportedValue, "keywords", "search %s: keyword lists (values without a field) are not supported; name the field", name)
			}
			alt, err := r.parseMap(name, c)
			if err != nil {
				return nil, err
			}
			s.alts = append(s.alts, alt)
		}
		if len(s.alts) == 0 {
			return nil, r.fail(sigmaInvalid, name, "search %s is an empty list", name)
		}
	default:
		return nil, r.fail(sigmaUnsupportedValue, "keywords", "search %s: keyword searches (values without a field) are not supported; name the field", name)
	}
	return s, nil
}

var sigmaSupportedMods = []string{"contains", "startswith", "endswith", "all", "re", "cidr"}

func (r *sigmaRule) parseMap(search string, n *yaml.Node) ([]*sigmaField, error) {
	var out []*sigmaField
	if len(n.Content) == 0 {
		return nil, r.fail(sigmaInvalid, search, "search %s has an empty mapping", search)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		parts := strings.Split(k.Value, "|")
		f := &sigmaField{field: parts[0]}
		if f.field == "" {
			return nil, r.fail(sigmaInvalid, k.Value, "search %s: empty field name", search)
		}
		for _, m := range parts[1:] {
			if !slices.Contains(sigmaSupportedMods, m) {
				return nil, r.fail(sigmaUnsupportedModifier, m, "search %s, field %s: modifier %q is not supported (supported: %s)", search, f.field, m, strings.Join(sigmaSupportedMods, ", "))
			}
			if m == "all" {
				if f.all {
					return nil, r.fail(sigmaInvalid, k.Value, "search %s: modifier all given twice", search)
				}
				f.all = true
				continue
			}
			if f.op != "" {
				return nil, r.fail(sigmaUnsupportedModifier, f.op+"|"+m, "search %s, field %s: modifiers %s and %s cannot be combined", search, f.field, f.op, m)
			}
			f.op = m
		}
		switch v.Kind {
		case yaml.ScalarNode:
			val, err := r.scalar(search, f.field, v)
			if err != nil {
				return nil, err
			}
			f.vals = []sigmaValue{val}
		case yaml.SequenceNode:
			if len(v.Content) > maxSigmaValues {
				return nil, r.fail(sigmaInvalid, f.field, "search %s, field %s: more than %d values", search, f.field, maxSigmaValues)
			}
			for _, c := range v.Content {
				if c.Kind != yaml.ScalarNode {
					return nil, r.fail(sigmaUnsupportedValue, f.field, "search %s, field %s: values must be strings or numbers", search, f.field)
				}
				val, err := r.scalar(search, f.field, c)
				if err != nil {
					return nil, err
				}
				f.vals = append(f.vals, val)
			}
			if len(f.vals) == 0 {
				return nil, r.fail(sigmaInvalid, f.field, "search %s, field %s: empty value list", search, f.field)
			}
		default:
			return nil, r.fail(sigmaUnsupportedValue, f.field, "search %s, field %s: values must be strings or numbers, not a mapping", search, f.field)
		}
		if f.op == "re" {
			for _, v := range f.vals {
				if _, err := regexp.Compile(v.s); err != nil {
					return nil, r.fail(sigmaUnsupportedValue, "re", "search %s, field %s: %q is not an RE2 regular expression (no lookaround or backreferences): %v", search, f.field, v.s, err)
				}
			}
		}
		if f.op == "cidr" {
			for _, v := range f.vals {
				if _, err := netip.ParsePrefix(v.s); err != nil {
					return nil, r.fail(sigmaInvalid, "cidr", "search %s, field %s: %q is not a CIDR prefix", search, f.field, v.s)
				}
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func (r *sigmaRule) scalar(search, field string, n *yaml.Node) (sigmaValue, error) {
	switch n.Tag {
	case "!!null":
		return sigmaValue{}, r.fail(sigmaUnsupportedValue, "null", "search %s, field %s: null (field absent) is not supported", search, field)
	case "!!int":
		v, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			return sigmaValue{}, r.fail(sigmaInvalid, field, "search %s, field %s: %q is not an integer", search, field, n.Value)
		}
		return sigmaValue{s: strconv.FormatInt(v, 10), num: true, n: v}, nil
	case "!!str":
		return sigmaValue{s: n.Value, quote: true}, nil
	case "!!bool", "!!float":
		return sigmaValue{}, r.fail(sigmaUnsupportedValue, n.Value, "search %s, field %s: %s values are not supported; quote the value", search, field, strings.TrimPrefix(n.Tag, "!!"))
	}
	return sigmaValue{}, r.fail(sigmaUnsupportedValue, n.Value, "search %s, field %s: value of YAML type %s is not supported", search, field, n.Tag)
}

// ---- conditions ----

// parseCondition parses a condition: not binds tighter than and, and
// tighter than or; `1 of X` and `all of X` expand to or / and over the
// search identifiers X names.
func (r *sigmaRule) parseCondition(s string) (*sigmaCond, error) {
	if strings.Contains(s, "|") {
		return nil, r.fail(sigmaUnsupportedCondition, "|", "aggregations (`| count() ...`, `| near`) are not supported")
	}
	toks := strings.FieldsFunc(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(s), func(c rune) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' })
	if len(toks) > maxSigmaCondTokens {
		return nil, r.fail(sigmaInvalid, "condition", "condition has more than %d tokens", maxSigmaCondTokens)
	}
	p := &condParser{r: r, toks: toks}
	c, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(toks) {
		return nil, r.fail(sigmaInvalid, toks[p.i], "condition: unexpected %q", toks[p.i])
	}
	return c, nil
}

type condParser struct {
	r    *sigmaRule
	toks []string
	i    int
}

func (p *condParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *condParser) or(depth int) (*sigmaCond, error) {
	return p.binary(depth, "or", p.and)
}

func (p *condParser) and(depth int) (*sigmaCond, error) {
	return p.binary(depth, "and", p.unary)
}

func (p *condParser) binary(depth int, op string, next func(int) (*sigmaCond, error)) (*sigmaCond, error) {
	l, err := next(depth)
	if err != nil {
		return nil, err
	}
	kids := []*sigmaCond{l}
	for strings.EqualFold(p.peek(), op) {
		p.i++
		r, err := next(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, r)
	}
	if len(kids) == 1 {
		return l, nil
	}
	return &sigmaCond{op: op, kids: kids}, nil
}

func (p *condParser) unary(depth int) (*sigmaCond, error) {
	if depth > maxSigmaDepth {
		return nil, p.r.fail(sigmaInvalid, "condition", "condition is nested too deeply")
	}
	t := p.peek()
	switch {
	case t == "":
		return nil, p.r.fail(sigmaInvalid, "condition", "condition ends early")
	case strings.EqualFold(t, "not"):
		p.i++
		c, err := p.unary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &sigmaCond{op: "not", kids: []*sigmaCond{c}}, nil
	case t == "(":
		p.i++
		c, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, p.r.fail(sigmaInvalid, "condition", "condition: missing )")
		}
		p.i++
		return c, nil
	case t == ")":
		return nil, p.r.fail(sigmaInvalid, ")", "condition: unexpected )")
	case p.i+1 < len(p.toks) && strings.EqualFold(p.toks[p.i+1], "of"):
		return p.quantifier()
	}
	lt := strings.ToLower(t)
	if lt == "and" || lt == "or" || lt == "of" {
		return nil, p.r.fail(sigmaInvalid, t, "condition: unexpected %q", t)
	}
	if lt == "near" || strings.HasPrefix(lt, "count") {
		return nil, p.r.fail(sigmaUnsupportedCondition, t, "condition: %q is not supported", t)
	}
	p.i++
	if strings.Contains(t, "*") {
		return nil, p.r.fail(sigmaInvalid, t, "condition: wildcard %q needs `1 of` or `all of`", t)
	}
	if p.r.search(t) == nil {
		return nil, p.r.fail(sigmaInvalid, t, "condition names %q, which is not a search identifier in detection", t)
	}
	return &sigmaCond{op: "search", name: t}, nil
}

// quantifier parses `1 of X` / `all of X`.
func (p *condParser) quantifier() (*sigmaCond, error) {
	q := strings.ToLower(p.toks[p.i])
	if q != "1" && q != "all" {
		return nil, p.r.fail(sigmaUnsupportedCondition, q+" of", "condition: %q of is not supported (only `1 of` and `all of`)", q)
	}
	p.i += 2
	target := p.peek()
	if target == "" || target == "(" || target == ")" {
		return nil, p.r.fail(sigmaInvalid, q+" of", "condition: %s of needs a search identifier, a pattern or them", q)
	}
	p.i++
	var names []string
	for _, s := range p.r.searches {
		switch {
		case strings.EqualFold(target, "them"):
			if !strings.HasPrefix(s.name, "_") {
				names = append(names, s.name)
			}
		case sigmaWildcardMatch(target, s.name):
			names = append(names, s.name)
		}
	}
	if len(names) == 0 {
		return nil, p.r.fail(sigmaInvalid, target, "condition: %s of %s matches no search identifier", q, target)
	}
	op := "or"
	if q == "all" {
		op = "and"
	}
	if len(names) == 1 {
		return &sigmaCond{op: "search", name: names[0]}, nil
	}
	c := &sigmaCond{op: op}
	for _, n := range names {
		c.kids = append(c.kids, &sigmaCond{op: "search", name: n})
	}
	return c, nil
}

// sigmaWildcardMatch matches a condition pattern (only * is special).
func sigmaWildcardMatch(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for i, part := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(name, part)
		}
		j := strings.Index(name, part)
		if j < 0 {
			return false
		}
		name = name[j+len(part):]
	}
	return true
}

func (r *sigmaRule) search(name string) *sigmaSearch {
	for _, s := range r.searches {
		if s.name == name {
			return s
		}
	}
	return nil
}
