package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/schemas"
	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The fast validator. Generic JSON Schema validation (jsonschema/v5 over a
// decoded interface{}) costs several times the budget of the hot path, so
// the embedded schemas are compiled here into a tree of checks that runs
// directly over the parsed bytes. It implements only the keywords the
// schemas use, and compiling refuses any other, so a schema change cannot
// silently go unchecked; tests hold it to the same verdicts as jsonschema/v5
// (ValidateReference) and ajv on every example and on fuzzed input. Formats
// and patterns are evaluated by the same code jsonschema/v5 uses
// (jsonschema.Formats, Go regexp).

type typeMask uint8

const (
	tObject typeMask = 1 << iota
	tArray
	tString
	tInteger
	tBoolean
	tNull
)

var typeNames = map[string]typeMask{
	"object": tObject, "array": tArray, "string": tString,
	"integer": tInteger, "boolean": tBoolean, "null": tNull,
}

type sprop struct {
	name string
	s    *snode
}

// snode is one compiled schema.
type snode struct {
	loc   string // keyword location, for compile errors
	types typeMask

	props    []sprop
	required []int // indices into props
	// requiredMask has bit j set for each j in required.
	requiredMask uint64
	// lens has bit l set when a property name is l bytes long (63: or
	// longer), so that most unknown keys fail lookup at once.
	lens   uint64
	closed bool

	items              *snode
	minItems, maxItems int
	unique             bool

	minLen, maxLen int
	pattern        *pattern
	format         string
	enum           []string
	hasConst       bool
	constStr       string

	hasMin, hasMax bool
	min, max       int64

	allOf, anyOf []*snode
	ref          *snode
	refURL       string

	// leaf is types when that is one type and the node has no $ref,
	// allOf or anyOf: check goes straight to the value.
	leaf typeMask
}

type schemaRegistry struct {
	envelope *snode
	types    map[string]*snode
	// fields maps each property of the envelope schema (by index) to the
	// Envelope field Decode sets from it.
	fields []envField
	// canon is the single-pass fast path for canonical events.
	canon *canonPlan
}

const schemaBase = "https://agentaudit.dev/schemas/v1/"

// schemaDocs reads the embedded v1 schemas, keyed by $id.
func schemaDocs() (map[string]map[string]any, error) {
	docs := map[string]map[string]any{}
	files, err := fs.Glob(schemas.FS, "v1/*.json")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := fs.ReadFile(schemas.FS, f)
		if err != nil {
			return nil, err
		}
		var d map[string]any
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("events: schema %s: %w", f, err)
		}
		id, _ := d["$id"].(string)
		if id != schemaBase+strings.TrimPrefix(f, "v1/") {
			return nil, fmt.Errorf("events: schema %s: $id %q does not match its file name", f, id)
		}
		docs[id] = d
	}
	return docs, nil
}

type compiler struct {
	docs  map[string]map[string]any
	nodes map[string]*snode // by absolute URL with fragment
}

func compileRegistry() (*schemaRegistry, error) {
	docs, err := schemaDocs()
	if err != nil {
		return nil, err
	}
	c := &compiler{docs: docs, nodes: map[string]*snode{}}
	r := &schemaRegistry{types: map[string]*snode{}}
	if r.envelope, err = c.resolve(schemaBase + "envelope.json"); err != nil {
		return nil, err
	}
	for _, p := range r.envelope.props {
		r.fields = append(r.fields, envFieldNames[p.name]) // fNone if unknown
	}
	for _, typ := range EventTypes {
		if r.types[typ], err = c.resolve(schemaBase + typ + ".json"); err != nil {
			return nil, err
		}
	}
	if len(docs) != len(EventTypes)+1 {
		return nil, fmt.Errorf("events: %d schema files, want envelope + %d event types", len(docs), len(EventTypes))
	}
	r.canon = compileCanon(r)
	return r, nil
}

// resolve returns the compiled schema at an absolute URL (with an optional
// JSON pointer fragment), compiling it on first use.
func (c *compiler) resolve(u string) (*snode, error) {
	if !strings.Contains(u, "#") {
		u += "#"
	}
	if n := c.nodes[u]; n != nil {
		return n, nil
	}
	base, frag, _ := strings.Cut(u, "#")
	doc, ok := c.docs[base]
	if !ok {
		return nil, fmt.Errorf("events: schema %s not found", base)
	}
	var v any = doc
	if frag != "" {
		for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("events: schema ref %s not found", u)
			}
			if v, ok = m[tok]; !ok {
				return nil, fmt.Errorf("events: schema ref %s not found", u)
			}
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("events: schema %s is not an object", u)
	}
	n := &snode{loc: u}
	c.nodes[u] = n // before compiling, so recursive refs terminate
	if err := c.compile(n, m, base); err != nil {
		return nil, err
	}
	return n, nil
}

func (c *compiler) sub(v any, base, loc string) (*snode, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("events: schema %s: not an object", loc)
	}
	n := &snode{loc: loc}
	if err := c.compile(n, m, base); err != nil {
		return nil, err
	}
	if n.ref != nil && onlyRef(m) {
		// {"$ref": …, "description": …} checks exactly what its target
		// does; skipping it saves a call per referencing property.
		return n.ref, nil
	}
	return n, nil
}

// onlyRef says a schema has no keyword but $ref and annotations.
func onlyRef(m map[string]any) bool {
	for k := range m {
		switch k {
		case "$ref", "$schema", "$id", "$comment", "title", "description", "examples", "$defs":
		default:
			return false
		}
	}
	return true
}

func intOf(v any, loc string) (int64, error) {
	f, ok := v.(float64)
	if !ok || f != float64(int64(f)) || f > 1<<53 || f < -(1<<53) {
		return 0, fmt.Errorf("events: schema %s: want an integer", loc)
	}
	return int64(f), nil
}

func (c *compiler) compile(n *snode, m map[string]any, base string) error {
	n.minItems, n.maxItems, n.minLen, n.maxLen = -1, -1, -1, -1
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		loc := n.loc + "/" + k
		var err error
		switch k {
		case "$schema", "$id", "$comment", "title", "description", "examples", "$defs":
			// Annotations; $defs are compiled when referenced.
		case "$ref":
			ref, _ := v.(string)
			bu, _ := url.Parse(base)
			ru, perr := url.Parse(ref)
			if perr != nil {
				return fmt.Errorf("events: schema %s: %w", loc, perr)
			}
			n.refURL = bu.ResolveReference(ru).String()
		case "type":
			switch t := v.(type) {
			case string:
				n.types, err = typeOf(t, loc)
			case []any:
				for _, e := range t {
					s, _ := e.(string)
					var tm typeMask
					if tm, err = typeOf(s, loc); err != nil {
						break
					}
					n.types |= tm
				}
			default:
				err = fmt.Errorf("events: schema %s: bad type", loc)
			}
		case "properties":
			pm, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("events: schema %s: bad properties", loc)
			}
			names := make([]string, 0, len(pm))
			for name := range pm {
				names = append(names, name)
			}
			slices.Sort(names)
			if len(names) > 64 {
				return fmt.Errorf("events: schema %s: more than 64 properties", loc)
			}
			for _, name := range names {
				s, err := c.sub(pm[name], base, loc+"/"+name)
				if err != nil {
					return err
				}
				n.props = append(n.props, sprop{name: name, s: s})
				n.lens |= 1 << min(len(name), 63)
			}
		case "required", "additionalProperties":
			// After properties, below.
		case "items":
			n.items, err = c.sub(v, base, loc)
		case "minItems":
			var x int64
			x, err = intOf(v, loc)
			n.minItems = int(x)
		case "maxItems":
			var x int64
			x, err = intOf(v, loc)
			n.maxItems = int(x)
		case "uniqueItems":
			n.unique, _ = v.(bool)
		case "minLength":
			var x int64
			x, err = intOf(v, loc)
			n.minLen = int(x)
		case "maxLength":
			var x int64
			x, err = intOf(v, loc)
			n.maxLen = int(x)
		case "pattern":
			p, _ := v.(string)
			n.pattern, err = compilePattern(p)
		case "format":
			n.format, _ = v.(string)
			if _, ok := jsonschema.Formats[n.format]; !ok {
				err = fmt.Errorf("events: schema %s: unknown format %q", loc, n.format)
			}
		case "enum":
			arr, _ := v.([]any)
			for _, e := range arr {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("events: schema %s: only string enums are supported", loc)
				}
				n.enum = append(n.enum, s)
			}
		case "const":
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("events: schema %s: only string consts are supported", loc)
			}
			n.hasConst, n.constStr = true, s
		case "minimum":
			n.hasMin = true
			n.min, err = intOf(v, loc)
		case "maximum":
			n.hasMax = true
			n.max, err = intOf(v, loc)
		case "allOf", "anyOf":
			arr, _ := v.([]any)
			for j, e := range arr {
				s, err := c.sub(e, base, loc+"/"+strconv.Itoa(j))
				if err != nil {
					return err
				}
				if k == "allOf" {
					n.allOf = append(n.allOf, s)
				} else {
					n.anyOf = append(n.anyOf, s)
				}
			}
		default:
			return fmt.Errorf("events: schema %s: keyword %q is not supported by the fast validator", loc, k)
		}
		if err != nil {
			return err
		}
	}
	if ap, ok := m["additionalProperties"]; ok {
		if b, _ := ap.(bool); b || ap == nil {
			return fmt.Errorf("events: schema %s/additionalProperties: only false is supported", n.loc)
		}
		n.closed = true
	}
	if req, ok := m["required"].([]any); ok {
		for _, r := range req {
			name, _ := r.(string)
			j := slices.IndexFunc(n.props, func(p sprop) bool { return p.name == name })
			if j < 0 {
				return fmt.Errorf("events: schema %s/required: %q is not a declared property", n.loc, name)
			}
			n.required = append(n.required, j)
			n.requiredMask |= 1 << j
		}
	}
	if n.types&tInteger != 0 && (!n.hasMin || !n.hasMax) {
		// Bounds on both sides make int64 overflow a plain range error.
		return fmt.Errorf("events: schema %s: integers need minimum and maximum", n.loc)
	}
	if n.refURL != "" {
		var err error
		if n.ref, err = c.resolve(n.refURL); err != nil {
			return err
		}
	}
	if n.refURL == "" && n.allOf == nil && n.anyOf == nil && n.types&(n.types-1) == 0 {
		n.leaf = n.types
	}
	return nil
}

func typeOf(s, loc string) (typeMask, error) {
	t, ok := typeNames[s]
	if !ok {
		return 0, fmt.Errorf("events: schema %s: type %q is not supported (events carry integers only)", loc, s)
	}
	return t, nil
}

// validator checks one parsed document. path is the current JSON pointer,
// kept as node indices so it costs nothing until an error is reported.
type validator struct {
	t    *jtree
	path []pathSeg
	buf  [256]byte
	// When the root object passes the schema rec (the envelope), recSeen
	// has bit j set for each of its properties present, with the value at
	// node recAt[j]: Decode builds the Envelope from that without looking
	// the keys up again.
	rec     *snode
	recSeen uint64
	recAt   [64]int32
}

type pathSeg struct {
	key   int // index of the key node, or -1
	index int
}

func (v *validator) pointer(extra string) string {
	var b strings.Builder
	for _, s := range v.path {
		b.WriteByte('/')
		if s.key >= 0 {
			writePtrToken(&b, string(v.t.str(s.key, nil)))
		} else {
			b.WriteString(strconv.Itoa(s.index))
		}
	}
	if extra != "" {
		b.WriteByte('/')
		writePtrToken(&b, extra)
	}
	return b.String()
}

func writePtrToken(b *strings.Builder, s string) {
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1"))
}

func (v *validator) fail(code, reason string) *ValidationError {
	return &ValidationError{Pointer: v.pointer(""), Code: code, Reason: reason}
}

func kindName(n *jnode) string {
	if n.kind == jNumber && n.integer {
		return "integer"
	}
	return n.kind.String()
}

func (m typeMask) String() string {
	var names []string
	for _, name := range []string{"object", "array", "string", "integer", "boolean", "null"} {
		if m&typeNames[name] != 0 {
			names = append(names, name)
		}
	}
	return strings.Join(names, " or ")
}

func (v *validator) check(s *snode, i int) *ValidationError {
	n := &v.t.nodes[i]
	if s.leaf == tString && n.kind == jString {
		return v.string(s, i) // all that is left to do, below
	}
	if s.ref != nil {
		if err := v.check(s.ref, i); err != nil {
			return err
		}
	}
	for _, a := range s.allOf {
		if err := v.check(a, i); err != nil {
			return err
		}
	}
	if len(s.anyOf) > 0 {
		ok := false
		for _, a := range s.anyOf {
			if v.check(a, i) == nil {
				ok = true
				break
			}
		}
		if !ok {
			return v.fail(CodeAnyOf, "matches none of the allowed forms")
		}
	}
	if s.types != 0 {
		var have typeMask
		switch n.kind {
		case jObject:
			have = tObject
		case jArray:
			have = tArray
		case jString:
			have = tString
		case jNumber:
			if n.integer {
				have = tInteger
			}
		case jTrue, jFalse:
			have = tBoolean
		case jNull:
			have = tNull
		}
		if s.types&have == 0 {
			return v.fail(CodeType, "expected "+s.types.String()+", got "+kindName(n))
		}
	}
	switch n.kind {
	case jObject:
		return v.object(s, i)
	case jArray:
		return v.array(s, i)
	case jString:
		return v.string(s, i)
	case jNumber:
		return v.number(s, i)
	}
	return v.notString(s, kindName(n))
}

// notString fails a const or enum (string-only in these schemas) on a value
// of another kind.
func (v *validator) notString(s *snode, kind string) *ValidationError {
	switch {
	case s.hasConst:
		return v.fail(CodeConst, strconv.Quote(s.constStr)+" expected, got "+kind)
	case s.enum != nil:
		return v.fail(CodeEnum, "expected one of the allowed strings, got "+kind)
	}
	return nil
}

func (v *validator) object(s *snode, i int) *ValidationError {
	if s.props == nil && !s.closed && s.required == nil {
		return nil
	}
	// The tree does not change while it is checked: keep its slices at hand
	// across the recursive calls.
	nodes, data := v.t.nodes, v.t.data
	uniq := nodes[i].uniq
	rec := i == 0 && s == v.rec
	var seen uint64
	last := -1
	c := i + 1
	for k := int32(0); k < nodes[i].n; k++ {
		var key []byte
		if kn := &nodes[c]; !kn.esc {
			key = data[kn.start:kn.end]
		} else {
			key = v.t.str(c, v.buf[:0])
		}
		j := s.lookup(key, last)
		if j >= 0 {
			last = j
		}
		switch {
		case j >= 0 && seen&(1<<j) != 0:
			return &ValidationError{Pointer: v.pointer(string(key)), Code: CodeDuplicateKey, Reason: "duplicate key"}
		case j >= 0:
			seen |= 1 << j
			if rec {
				v.recAt[j] = int32(c + 1)
			}
			v.path = append(v.path, pathSeg{key: c})
			err := v.check(s.props[j].s, c+1)
			v.path = v.path[:len(v.path)-1]
			if err != nil {
				return err
			}
		case s.closed:
			return &ValidationError{Pointer: v.pointer(string(key)), Code: CodeAdditional, Reason: "property not allowed"}
		case uniq:
			// Open object whose keys the parser saw distinct.
		default:
			// Open object: only duplicates to check.
			for c2, k2 := i+1, int32(0); k2 < k; k2++ {
				if bytes.Equal(v.t.str(c2, nil), v.t.str(c, nil)) {
					return &ValidationError{Pointer: v.pointer(string(v.t.str(c, nil))), Code: CodeDuplicateKey, Reason: "duplicate key"}
				}
				c2 = int(nodes[c2+1].next)
			}
		}
		c = int(nodes[c+1].next)
	}
	if seen&s.requiredMask != s.requiredMask {
		for _, j := range s.required {
			if seen&(1<<j) == 0 {
				return &ValidationError{Pointer: v.pointer(s.props[j].name), Code: CodeRequired, Reason: "required property missing"}
			}
		}
	}
	if rec {
		v.recSeen = seen
	}
	return nil
}

// lookup returns the index of property key, or -1. Canonical events list
// keys in the order of props (both sorted), so the properties after the
// last one found are tried first: a key is usually one of the next few,
// and most names differ from it in length. Schemas have at most 64
// properties, so the rest are simply tried in turn.
func (s *snode) lookup(key []byte, last int) int {
	if s.lens&(1<<min(len(key), 63)) == 0 {
		return -1 // no property has a name this long
	}
	for j := last + 1; j < len(s.props); j++ {
		if s.props[j].name == string(key) {
			return j
		}
	}
	for j := 0; j <= last && j < len(s.props); j++ {
		if s.props[j].name == string(key) {
			return j
		}
	}
	return -1
}

func (v *validator) array(s *snode, i int) *ValidationError {
	n := v.t.nodes[i]
	if s.minItems >= 0 && int(n.n) < s.minItems {
		return v.fail(CodeMinItems, fmt.Sprintf("%d items, want at least %d", n.n, s.minItems))
	}
	if s.maxItems >= 0 && int(n.n) > s.maxItems {
		return v.fail(CodeMaxItems, fmt.Sprintf("%d items, want at most %d", n.n, s.maxItems))
	}
	c := i + 1
	for k := 0; k < int(n.n); k++ {
		if s.items != nil {
			v.path = append(v.path, pathSeg{key: -1, index: k})
			err := v.check(s.items, c)
			v.path = v.path[:len(v.path)-1]
			if err != nil {
				return err
			}
		}
		if s.unique {
			for c2, k2 := i+1, 0; k2 < k; k2++ {
				if v.equal(c2, c) {
					return v.fail(CodeUniqueItems, fmt.Sprintf("items %d and %d are equal", k2, k))
				}
				c2 = int(v.t.nodes[c2].next)
			}
		}
		c = int(v.t.nodes[c].next)
	}
	return nil
}

// equal compares two scalar values (the schemas use uniqueItems on string
// arrays only; containers compare by canonical bytes).
func (v *validator) equal(a, b int) bool {
	na, nb := &v.t.nodes[a], &v.t.nodes[b]
	if na.kind != nb.kind {
		return false
	}
	switch na.kind {
	case jString:
		return bytes.Equal(v.t.str(a, nil), v.t.str(b, nil))
	case jNumber:
		x, okx := parseInt(v.t.raw(a))
		y, oky := parseInt(v.t.raw(b))
		return okx && oky && x == y || bytes.Equal(v.t.raw(a), v.t.raw(b))
	case jNull, jTrue, jFalse:
		return true
	}
	ca, _, erra := v.t.appendCanonical(nil, a, nil)
	cb, _, errb := v.t.appendCanonical(nil, b, nil)
	return erra == nil && errb == nil && bytes.Equal(ca, cb)
}

func (v *validator) string(s *snode, i int) *ValidationError {
	var str []byte
	if n := &v.t.nodes[i]; !n.esc {
		str = v.t.data[n.start:n.end] // str, inlined: this is the hot path
	} else {
		str = v.t.str(i, v.buf[:0])
	}
	if s.hasConst && string(str) != s.constStr {
		return v.fail(CodeConst, strconv.Quote(s.constStr)+" expected")
	}
	if s.enum != nil {
		found := false
		for _, e := range s.enum {
			if e == string(str) {
				found = true
				break
			}
		}
		if !found {
			return v.fail(CodeEnum, fmt.Sprintf("%s is not one of the allowed values", truncQuote(str)))
		}
	}
	if s.minLen >= 0 || s.maxLen >= 0 {
		l := len(str)
		if n := &v.t.nodes[i]; !n.ascii || n.esc {
			l = utf8.RuneCount(str)
		}
		if s.minLen >= 0 && l < s.minLen {
			return v.fail(CodeMinLength, fmt.Sprintf("length %d, want at least %d", l, s.minLen))
		}
		if s.maxLen >= 0 && l > s.maxLen {
			return v.fail(CodeMaxLength, fmt.Sprintf("length %d, want at most %d", l, s.maxLen))
		}
	}
	if s.pattern != nil && !s.pattern.match(str) {
		return v.fail(CodePattern, fmt.Sprintf("%s does not match %s", truncQuote(str), s.pattern))
	}
	if s.format != "" && !checkFormat(s.format, str) {
		return v.fail(CodeFormat, fmt.Sprintf("%s is not a valid %s", truncQuote(str), s.format))
	}
	return nil
}

func truncQuote(b []byte) string {
	if len(b) > 40 {
		return strconv.Quote(string(b[:40])) + "…"
	}
	return strconv.Quote(string(b))
}

// checkFormat evaluates a format. date-time strings of the fixed event
// layout are checked here without allocating; anything else goes to
// jsonschema/v5's own implementation, so both validators agree.
func checkFormat(format string, b []byte) bool {
	switch format {
	case "date-time":
		if ok, sure := fastDateTime(b); sure {
			return ok
		}
	case "ipv4":
		if fastIPv4(b) {
			return true
		}
	}
	return jsonschema.Formats[format](string(b))
}

// fastIPv4 says b is four dot-separated decimal numbers up to 255 without
// leading zeros, the plain form jsonschema/v5's ipv4 accepts. It allocates
// nothing; other strings go to that implementation, which also accepts
// some odder forms.
func fastIPv4(b []byte) bool {
	groups := 0
	for i := 0; i < len(b); {
		if groups > 0 {
			if b[i] != '.' {
				return false
			}
			i++
		}
		x, digits := 0, 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && digits < 4; i++ {
			x = x*10 + int(b[i]-'0')
			digits++
		}
		if digits == 0 || digits > 3 || x > 255 || (digits > 1 && b[i-digits] == '0') {
			return false
		}
		groups++
	}
	return groups == 4
}

// fastDateTime checks YYYY-MM-DDTHH:MM:SS.ffffffZ. sure is false for other
// shapes and for second 60, which jsonschema/v5 judges itself.
func fastDateTime(b []byte) (ok, sure bool) {
	if len(b) != len(TimeLayout) || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[26] != 'Z' {
		return false, false
	}
	num := func(s []byte) int {
		x := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			x = x*10 + int(c-'0')
		}
		return x
	}
	y, mo, d, h, mi, sec := num(b[0:4]), num(b[5:7]), num(b[8:10]), num(b[11:13]), num(b[14:16]), num(b[17:19])
	if y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0 || num(b[20:26]) < 0 {
		return false, false
	}
	if sec == 60 {
		return false, false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		days[2] = 29
	}
	return mo >= 1 && mo <= 12 && d >= 1 && d <= days[mo] && h <= 23 && mi <= 59 && sec <= 59, true
}

func (v *validator) number(s *snode, i int) *ValidationError {
	if !v.t.nodes[i].integer {
		// dispatch rejects non-integers before any schema runs.
		return v.fail(CodeType, "expected integer, got number")
	}
	if err := v.notString(s, "integer"); err != nil {
		return err
	}
	x, ok := parseInt(v.t.raw(i))
	neg := v.t.raw(i)[0] == '-'
	if s.hasMin && ((!ok && neg) || (ok && x < s.min)) {
		return v.fail(CodeMinimum, fmt.Sprintf("%s is less than %d", v.t.raw(i), s.min))
	}
	if s.hasMax && ((!ok && !neg) || (ok && x > s.max)) {
		return v.fail(CodeMaximum, fmt.Sprintf("%s is greater than %d", v.t.raw(i), s.max))
	}
	return nil
}
