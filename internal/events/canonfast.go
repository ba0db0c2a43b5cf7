package events

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// The canonical fast path. Every event our producers write is canonical
// (sorted keys, no whitespace, integers only, see canonical.go), so Decode
// and ValidateBytes first try a scanner that checks such bytes against the
// schema in one pass, with no tree: it walks each object's keys and the
// merged, sorted properties of its schemas together, checks every value
// from the bytes as it meets it, and notes where the Envelope's fields are.
//
// It never rejects. Anything it does not handle simply (whitespace,
// unsorted or duplicate keys, an escape, non-ASCII text, a number that is
// not a canonical integer, an unknown key, a schema violation) makes it
// give up, and the general path runs from the start and gives the verdict
// and the error it always gave. So it only has to be right about what it
// accepts, and FuzzCanonicalFastPath holds it to the general path there.

// canonMaxDepth bounds the nesting the fast path follows, well inside the
// parser's maxDepth.
const canonMaxDepth = 16

const allTypes = tObject | tArray | tString | tInteger | tBoolean | tNull

// cnode is the conjunction of the schemas one value must satisfy (a schema
// with its $ref and allOf, and the schemas of the same property in each of
// them), merged so that the scanner meets each value once.
type cnode struct {
	types typeMask // kinds every schema allows
	never bool     // the fast path does not handle this node
	// strs are the schemas with string keywords; enum says one of them
	// has const or enum, which any value but a string fails.
	strs []*snode
	enum bool
	// lenOnly: strs have no keyword but minLength and maxLength, and
	// there is no anyOf.
	lenOnly bool
	// plainPat: one of strs has a pattern of plain bytes only, so a string
	// that matches it has no escapes and ends at the first quote.
	plainPat bool
	anyOf    [][]*cnode // per schema with anyOf, its alternatives

	hasMin, hasMax bool
	min, max       int64

	props    []cprop // sorted by name, the union over the schemas
	required uint64  // bit j: props[j] is required by some schema
	closed   bool    // some schema has additionalProperties false

	items              *cnode // nil: items unconstrained
	minItems, maxItems int    // -1: no bound
	unique             bool
}

type cprop struct {
	name    string
	c       *cnode
	allowed bool // declared by every closed schema
}

// canonPlan is the fast path compiled from the registry.
type canonPlan struct {
	envelope *cnode            // the root, until event_type is read
	types    map[string]*cnode // the root of each event type it handles
	etIndex  int               // index of event_type in the root's props
	fields   []envField        // the Envelope field of each root property
}

type canonCompiler struct{ memo map[*snode]*cnode }

// flatten appends s, its $ref and its allOf, recursively, once each.
func flatten(s *snode, out []*snode) []*snode {
	if slices.Contains(out, s) {
		return out
	}
	out = append(out, s)
	if s.ref != nil {
		out = flatten(s.ref, out)
	}
	for _, a := range s.allOf {
		out = flatten(a, out)
	}
	return out
}

func (cc *canonCompiler) node(conj []*snode, depth int) *cnode {
	if len(conj) == 1 {
		if c := cc.memo[conj[0]]; c != nil {
			return c
		}
	}
	c := &cnode{types: allTypes, minItems: -1, maxItems: -1}
	if len(conj) == 1 {
		cc.memo[conj[0]] = c // before the children: recursive schemas end
	}
	if depth > canonMaxDepth {
		c.never = true
		return c
	}
	var flat []*snode
	for _, s := range conj {
		flat = flatten(s, flat)
	}
	props := map[string][]*snode{}
	var closed []*snode
	var required []string
	var items []*snode
	for _, s := range flat {
		if s.types != 0 {
			c.types &= s.types
		}
		if s.hasConst || s.enum != nil || s.minLen >= 0 || s.maxLen >= 0 || s.pattern != nil || s.format != "" {
			c.strs = append(c.strs, s)
		}
		c.plainPat = c.plainPat || plainPattern(s.pattern)
		c.enum = c.enum || s.hasConst || s.enum != nil
		if s.hasMin && (!c.hasMin || s.min > c.min) {
			c.hasMin, c.min = true, s.min
		}
		if s.hasMax && (!c.hasMax || s.max < c.max) {
			c.hasMax, c.max = true, s.max
		}
		if len(s.anyOf) > 0 {
			var alts []*cnode
			for _, a := range s.anyOf {
				alts = append(alts, cc.node([]*snode{a}, depth+1))
			}
			c.anyOf = append(c.anyOf, alts)
		}
		for _, p := range s.props {
			props[p.name] = append(props[p.name], p.s)
		}
		if s.closed {
			closed = append(closed, s)
		}
		for _, j := range s.required {
			required = append(required, s.props[j].name)
		}
		if s.items != nil {
			items = append(items, s.items)
		}
		if s.minItems >= 0 && s.minItems > c.minItems {
			c.minItems = s.minItems
		}
		if s.maxItems >= 0 && (c.maxItems < 0 || s.maxItems < c.maxItems) {
			c.maxItems = s.maxItems
		}
		c.unique = c.unique || s.unique
	}
	c.lenOnly = c.anyOf == nil
	for _, s := range c.strs {
		c.lenOnly = c.lenOnly && !s.hasConst && s.enum == nil && s.pattern == nil && s.format == ""
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) > 64 {
		c.never = true
		return c
	}
	c.closed = len(closed) > 0
	for _, name := range names {
		if !plainKey([]byte(name)) {
			c.never = true // rawKey relies on plain names
		}
		allowed := true
		for _, s := range closed {
			allowed = allowed && slices.ContainsFunc(s.props, func(p sprop) bool { return p.name == name })
		}
		c.props = append(c.props, cprop{name: name, c: cc.node(props[name], depth+1), allowed: allowed})
	}
	for _, name := range required {
		c.required |= 1 << slices.Index(names, name)
	}
	if items != nil {
		c.items = cc.node(items, depth+1)
	}
	return c
}

// plainPattern says every byte a pattern matches is plain (printable
// ASCII but '"' and '\\').
func plainPattern(p *pattern) bool {
	if p == nil || p.alts == nil {
		return false
	}
	for _, items := range p.alts {
		for _, it := range items {
			for b := 0; b < 256; b++ {
				if it.in[b] && !plain[b] {
					return false
				}
			}
		}
	}
	return true
}

// compileCanon builds the fast path. An event type whose root schema
// constrains a property that sorts before event_type differently from the
// envelope (which the scanner uses until it has read event_type) is left
// to the general path.
func compileCanon(r *schemaRegistry) *canonPlan {
	cc := &canonCompiler{memo: map[*snode]*cnode{}}
	p := &canonPlan{envelope: cc.node([]*snode{r.envelope}, 0), types: map[string]*cnode{}}
	env := p.envelope
	p.etIndex = slices.IndexFunc(env.props, func(q cprop) bool { return q.name == "event_type" })
	if p.etIndex < 0 || env.never || env.types&tObject == 0 || env.enum || env.anyOf != nil {
		return p // no type is handled
	}
	for _, q := range env.props {
		p.fields = append(p.fields, envFieldNames[q.name])
	}
	for typ, s := range r.types {
		c := cc.node([]*snode{s}, 0)
		ok := !c.never && c.types&tObject != 0 && !c.enum && c.anyOf == nil && len(c.props) == len(env.props)
		for j := 0; ok && j < len(c.props); j++ {
			ok = c.props[j].name == env.props[j].name &&
				(j >= p.etIndex || c.props[j] == env.props[j])
		}
		if ok {
			p.types[typ] = c
		}
	}
	return p
}

// span is a value's bytes in the input: [start, end).
type span struct{ start, end int32 }

// canonScan checks canonical bytes; every method returns false to give up.
type canonScan struct {
	d   []byte
	pos int
	esc bool // the last string value read had escapes
}

// str reads a string and returns its content's bounds; plain says it
// is ASCII without escapes. Escapes must be valid and not surrogates (the
// canonical form writes non-ASCII as UTF-8), UTF-8 must be valid.
func (s *canonScan) str() (start, end int, plain, ok bool) {
	d := s.d
	if s.pos >= len(d) || d[s.pos] != '"' {
		return 0, 0, false, false
	}
	start = s.pos + 1
	plain = true
	for i := start; ; {
		i = plainRun(d, i)
		if i >= len(d) {
			return 0, 0, false, false
		}
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return start, i, plain, true
		case c == '\\':
			if i+1 >= len(d) {
				return 0, 0, false, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok || utf16.IsSurrogate(r) {
					return 0, 0, false, false
				}
				i += 6
			default:
				return 0, 0, false, false
			}
		case c < 0x20:
			return 0, 0, false, false
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, 0, false, false
			}
			i += size
		}
		plain = false
	}
}

// key reads an object key (plain, as every schema's names are) and its
// colon.
func (s *canonScan) key() ([]byte, bool) {
	ks, ke, plain, ok := s.str()
	if !ok || !plain || s.pos >= len(s.d) || s.d[s.pos] != ':' {
		return nil, false
	}
	s.pos++
	return s.d[ks:ke], true
}

// quote returns the index of the first '"' at or after i, or -1. Keys and
// ids are short, so eight bytes at a time in line beats a call.
func quote(d []byte, i int) int {
	for ; i+8 <= len(d); i += 8 {
		x := binary.LittleEndian.Uint64(d[i:]) ^ (lsbs * '"')
		if m := (x - lsbs) &^ x & msbs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(d); i++ {
		if d[i] == '"' {
			return i
		}
	}
	return -1
}

// rawKey reads an object key up to the first quote, and its colon, for
// find: a key equal to a property name is plain because names are, so
// only a key that is not one needs the plain check (plainKey).
func (s *canonScan) rawKey() ([]byte, bool) {
	if s.pos >= len(s.d) || s.d[s.pos] != '"' {
		return nil, false
	}
	start := s.pos + 1
	q := quote(s.d, start)
	if q < 0 || q+1 >= len(s.d) || s.d[q+1] != ':' {
		return nil, false
	}
	s.pos = q + 2
	return s.d[start:q], true
}

func plainKey(key []byte) bool { return plainRun(key, 0) == len(key) }

// find returns the index of key among props[j:], or -1. Keys and names
// are both sorted, so a key found after the previous one found sorts
// after it, with no comparison of the two.
func (c *cnode) find(key []byte, j int) int {
	for ; j < len(c.props); j++ {
		if c.props[j].name == string(key) {
			return j
		}
	}
	return -1
}

// lit reads a literal word.
func (s *canonScan) lit(word string) bool {
	if len(s.d)-s.pos < len(word) || string(s.d[s.pos:s.pos+len(word)]) != word {
		return false
	}
	s.pos += len(word)
	return true
}

// integer reads a canonical integer: no fraction, exponent, leading zero
// or "-0".
func (s *canonScan) integer() ([]byte, bool) {
	d, start := s.d, s.pos
	if s.pos < len(d) && d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		if s.pos > start {
			return nil, false // -0
		}
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		for s.pos < len(d) && d[s.pos] >= '0' && d[s.pos] <= '9' {
			s.pos++
		}
	default:
		return nil, false
	}
	if s.pos < len(d) && (d[s.pos] == '.' || d[s.pos] == 'e' || d[s.pos] == 'E') {
		return nil, false
	}
	return d[start:s.pos], true
}

// end reads the ',' or the closing byte after a member; more says a
// member follows.
func (s *canonScan) end(close byte) (more, ok bool) {
	if s.pos >= len(s.d) {
		return false, false
	}
	switch s.d[s.pos] {
	case ',':
		s.pos++
		return true, true
	case close:
		s.pos++
		return false, true
	}
	return false, false
}

// value checks the value at pos against c.
func (s *canonScan) value(c *cnode, depth int) bool {
	if c.never || s.pos >= len(s.d) {
		return false
	}
	b := s.d[s.pos]
	if b == '"' {
		if c.types&tString == 0 {
			return false
		}
		if c.plainPat {
			// The pattern checks the bytes the string scan would.
			start := s.pos + 1
			q := quote(s.d, start)
			if q < 0 {
				return false
			}
			s.pos = q + 1
			return c.stringOK(s.d[start:q], q-start)
		}
		start, end, plain, ok := s.str()
		if !ok {
			return false
		}
		s.esc = !plain && bytes.IndexByte(s.d[start:end], '\\') >= 0
		if plain || (c.strs == nil && c.anyOf == nil) {
			return c.stringOK(s.d[start:end], end-start)
		}
		// Escapes or non-ASCII, under length bounds alone (free text):
		// count the characters the raw text decodes to. Text under other
		// keywords is left to the general path.
		return c.lenOnly && c.stringOK(nil, rawRunes(s.d[start:end]))
	}
	if c.enum || c.anyOf != nil {
		return false // only strings meet const, enum or anyOf here
	}
	switch {
	case b == '{':
		return c.types&tObject != 0 && s.object(c, depth)
	case b == '[':
		return c.types&tArray != 0 && s.array(c, depth)
	case b == 't':
		return c.types&tBoolean != 0 && s.lit("true")
	case b == 'f':
		return c.types&tBoolean != 0 && s.lit("false")
	case b == 'n':
		return c.types&tNull != 0 && s.lit("null")
	}
	if c.types&tInteger == 0 {
		return false
	}
	lit, ok := s.integer()
	if !ok {
		return false
	}
	x, ok := parseInt(lit)
	return ok && (!c.hasMin || x >= c.min) && (!c.hasMax || x <= c.max)
}

// rawRunes counts the characters of string content str has checked:
// an escape is one (str refuses surrogate escapes), so is a UTF-8 sequence.
func rawRunes(raw []byte) int {
	n := 0
	for i := 0; i < len(raw); n++ {
		switch c := raw[i]; {
		case c == '\\' && raw[i+1] == 'u':
			i += 6
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			_, size := utf8.DecodeRune(raw[i:])
			i += size
		}
	}
	return n
}

// stringOK checks a decoded string of n characters against c's string
// keywords, as validator.string does.
func (c *cnode) stringOK(str []byte, n int) bool {
	for _, s := range c.strs {
		if s.hasConst && string(str) != s.constStr {
			return false
		}
		if s.enum != nil && !slices.Contains(s.enum, string(str)) {
			return false
		}
		if (s.minLen >= 0 && n < s.minLen) || (s.maxLen >= 0 && n > s.maxLen) {
			return false
		}
		if s.pattern != nil && !s.pattern.match(str) {
			return false
		}
		if s.format != "" && !checkFormat(s.format, str) {
			return false
		}
	}
	for _, alts := range c.anyOf {
		ok := false
		for _, a := range alts {
			if !a.never && a.types&tString != 0 && a.stringOK(str, n) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (s *canonScan) object(c *cnode, depth int) bool {
	if depth >= canonMaxDepth {
		return false
	}
	s.pos++
	if s.pos < len(s.d) && s.d[s.pos] == '}' {
		s.pos++
		return c.required == 0
	}
	var seen uint64
	var prev []byte  // the last key
	prevProp := true // it was a property (none yet: nothing to compare)
	j := 0
	for more := true; more; {
		key, ok := s.rawKey()
		if !ok {
			return false
		}
		k := c.find(key, j)
		if k < 0 && !plainKey(key) {
			return false
		}
		// Two properties found in turn are in order; any other pair of
		// keys is compared, which also catches a duplicate.
		if !(k >= 0 && prevProp) && bytes.Compare(prev, key) >= 0 {
			return false
		}
		prev, prevProp = key, k >= 0
		if k >= 0 {
			if !c.props[k].allowed || !s.value(c.props[k].c, depth+1) {
				return false
			}
			seen |= 1 << k
			j = k + 1
		} else if c.closed || !s.skip(depth+1) {
			return false
		}
		if more, ok = s.end('}'); !ok {
			return false
		}
	}
	return seen&c.required == c.required
}

// maxUnique bounds the items compared pairwise for uniqueItems here.
const maxUnique = 256

func (s *canonScan) array(c *cnode, depth int) bool {
	if depth >= canonMaxDepth {
		return false
	}
	s.pos++
	first := s.pos
	n := 0
	if s.pos < len(s.d) && s.d[s.pos] == ']' {
		s.pos++
	} else {
		for more := true; more; {
			start := s.pos
			if c.items != nil {
				if !s.value(c.items, depth+1) {
					return false
				}
			} else if !s.skip(depth + 1) {
				return false
			}
			n++
			if c.maxItems >= 0 && n > c.maxItems {
				return false
			}
			if c.unique && !s.uniqueString(first, start, n) {
				return false
			}
			var ok bool
			if more, ok = s.end(']'); !ok {
				return false
			}
		}
	}
	return n >= c.minItems
}

// uniqueString checks that item n-1, just read at d[start:pos], is a
// string without escapes unlike the items before it, which begin at
// first. Without escapes, equal text is equal bytes.
func (s *canonScan) uniqueString(first, start, n int) bool {
	item := s.d[start:s.pos] // with its quotes: the text holds none
	if n > maxUnique || item[0] != '"' || bytes.IndexByte(item, '\\') >= 0 {
		return false
	}
	for p := first; p < start; {
		e := p + 1 + bytes.IndexByte(s.d[p+1:], '"') + 1
		if bytes.Equal(s.d[p:e], item) {
			return false
		}
		p = e + 1 // past the comma
	}
	return true
}

// skip checks a value no schema constrains: canonical JSON of plain
// strings, sorted keys and integers.
func (s *canonScan) skip(depth int) bool {
	if depth >= canonMaxDepth || s.pos >= len(s.d) {
		return false
	}
	switch s.d[s.pos] {
	case '"':
		_, _, _, ok := s.str()
		return ok
	case '{':
		s.pos++
		if s.pos < len(s.d) && s.d[s.pos] == '}' {
			s.pos++
			return true
		}
		var prev []byte
		for more, first := true, true; more; first = false {
			key, ok := s.key()
			if !ok || (!first && bytes.Compare(prev, key) >= 0) || !s.skip(depth+1) {
				return false
			}
			prev = key
			if more, ok = s.end('}'); !ok {
				return false
			}
		}
		return true
	case '[':
		s.pos++
		if s.pos < len(s.d) && s.d[s.pos] == ']' {
			s.pos++
			return true
		}
		for more := true; more; {
			if !s.skip(depth + 1) {
				return false
			}
			var ok bool
			if more, ok = s.end(']'); !ok {
				return false
			}
		}
		return true
	case 't':
		return s.lit("true")
	case 'f':
		return s.lit("false")
	case 'n':
		return s.lit("null")
	}
	_, ok := s.integer()
	return ok
}

// rootScan is what the scan of an event found: which root properties are
// present and where their values are.
type rootScan struct {
	seen uint64
	esc  uint64 // strings with escapes
	at   [64]span
}

// scan checks a whole event, switching from the envelope to the schema of
// its event type when it reads event_type (which sorts before payload and
// every property a type schema constrains differently).
func (p *canonPlan) scan(data []byte, out *rootScan) bool {
	if len(data) > MaxEventSize || len(data) < 2 || data[0] != '{' {
		return false
	}
	s := canonScan{d: data, pos: 1}
	c := p.envelope
	typed := false
	j := 0
	for more := true; more; {
		key, ok := s.rawKey()
		if !ok {
			return false
		}
		if j = c.find(key, j); j < 0 {
			return false // unknown at the root
		}
		if j == p.etIndex {
			start, end, _, ok := s.str()
			if !ok {
				return false
			}
			if c = p.types[string(data[start:end])]; c == nil {
				return false
			}
			typed = true
			s.pos = start - 1
		}
		start := s.pos
		s.esc = false
		if !c.props[j].allowed || !s.value(c.props[j].c, 1) {
			return false
		}
		if s.esc {
			out.esc |= 1 << j
		}
		out.seen |= 1 << j
		out.at[j] = span{int32(start), int32(s.pos)}
		j++
		if more, ok = s.end('}'); !ok {
			return false
		}
	}
	return typed && s.pos == len(data) && out.seen&c.required == c.required
}

// decode returns the Envelope of a canonical event the scan accepts, with
// the fields Decode's general path gives it, sharing no memory with data:
// one allocation for the Envelope and its parts, one for every string.
func (p *canonPlan) decode(data []byte) (*Envelope, bool) {
	var rs rootScan
	if !p.scan(data, &rs) {
		return nil, false
	}
	b := canonBuf{d: data, buf: make([]byte, 0, p.textSize(data, &rs))}
	parts := &envelopeParts{}
	if !p.fill(&parts.env, &rs, &b, &parts.agent, &parts.policy) {
		return nil, false
	}
	return &parts.env, true
}

// decodeInto is decode into e, with e's strings and Payload aliasing data
// (see DecodeInto). It reuses the Agent and PolicyRef e points to, so on
// a canonical event without escapes it allocates nothing. When it gives
// up, e holds a partial event.
func (p *canonPlan) decodeInto(e *Envelope, data []byte) bool {
	var rs rootScan
	if !p.scan(data, &rs) {
		return false
	}
	b := canonBuf{d: data, alias: true}
	if n := p.escapedSize(data, &rs); n > 0 {
		// Rare: only escaped strings are copied, into one buffer that
		// unescaping (which only shrinks text) never outgrows.
		b.buf = make([]byte, 0, n)
	}
	agent, policy := e.Agent, e.Policy
	*e = Envelope{} // no field of the previous event survives
	return p.fill(e, &rs, &b, agent, policy)
}

// textSize bounds the bytes decode copies: string contents and objects,
// as in jtree.envelope.
func (p *canonPlan) textSize(data []byte, rs *rootScan) int {
	size := 0
	for seen := rs.seen; seen != 0; seen &= seen - 1 {
		sp := rs.at[bits.TrailingZeros64(seen)]
		switch data[sp.start] {
		case '"':
			size += int(sp.end-sp.start) - 2
		case '{':
			size += int(sp.end - sp.start)
		}
	}
	return size
}

// escapedSize bounds the bytes decodeInto copies: the root strings with
// escapes, and the actor, agent and policy objects (whose members the
// scan does not flag) when they hold one. The payload is never copied.
func (p *canonPlan) escapedSize(data []byte, rs *rootScan) int {
	size := 0
	for seen := rs.seen; seen != 0; seen &= seen - 1 {
		j := bits.TrailingZeros64(seen)
		sp := rs.at[j]
		switch p.fields[j] {
		case fActor, fAgent, fPolicy:
			if bytes.IndexByte(data[sp.start:sp.end], '\\') >= 0 {
				size += int(sp.end - sp.start)
			}
		case fPayload:
		default:
			if rs.esc&(1<<j) != 0 && data[sp.start] == '"' {
				size += int(sp.end-sp.start) - 2
			}
		}
	}
	return size
}

// fill sets the fields of a zero e from a scanned event through b, which
// copies or aliases its strings. agent and policy are where e.Agent and
// e.Policy point when the event has them; nil: allocate one.
func (p *canonPlan) fill(e *Envelope, rs *rootScan, b *canonBuf, agent *Agent, policy *PolicyRef) bool {
	data := b.d
	for seen := rs.seen; seen != 0; seen &= seen - 1 {
		j := bits.TrailingZeros64(seen)
		sp := rs.at[j]
		b.esc = rs.esc&(1<<j) != 0
		switch p.fields[j] {
		case fEventID:
			e.EventID = b.text(sp)
		case fEventType:
			e.EventType = b.text(sp)
		case fSchemaVersion:
			e.SchemaVersion = b.text(sp)
		case fEventTime:
			t, err := parseTime(unsafeString(data[sp.start+1 : sp.end-1]))
			if err != nil {
				return false // the general path reports it
			}
			e.EventTime = t
		case fTenant:
			e.Tenant = b.text(sp)
		case fSessionID:
			e.SessionID = b.text(sp)
		case fRunnerID:
			e.RunnerID = b.text(sp)
		case fSeq:
			x, _ := parseInt(data[sp.start:sp.end])
			e.Seq = uint64(x)
		case fPrevHash:
			e.PrevHash = b.text(sp)
		case fHash:
			e.Hash = b.text(sp)
		case fToolCallID:
			e.ToolCallID = b.text(sp)
		case fApprovalID:
			e.ApprovalID = b.text(sp)
		case fParentEventID:
			e.ParentEventID = b.text(sp)
		case fTraceID:
			e.TraceID = b.text(sp)
		case fPayload:
			e.Payload = b.bytes(sp)
		case fActor:
			b.esc = true // not recorded for members
			for k, v := range canonMembers(data, sp) {
				switch string(data[k.start:k.end]) {
				case "type":
					e.Actor.Type = ActorType(b.text(v))
				case "id":
					e.Actor.ID = b.text(v)
				}
			}
		case fAgent:
			b.esc = true // not recorded for members
			if agent == nil {
				agent = new(Agent)
			}
			*agent = Agent{}
			e.Agent = agent
			for k, v := range canonMembers(data, sp) {
				switch string(data[k.start:k.end]) {
				case "name":
					agent.Name = b.text(v)
				case "version":
					agent.Version = b.text(v)
				}
			}
		case fPolicy:
			b.esc = true // not recorded for members
			if policy == nil {
				policy = new(PolicyRef)
			}
			*policy = PolicyRef{}
			e.Policy = policy
			for k, v := range canonMembers(data, sp) {
				switch string(data[k.start:k.end]) {
				case "id":
					policy.ID = b.text(v)
				case "sha256":
					policy.SHA256 = b.text(v)
				}
			}
		}
	}
	return true
}

// canonMembers yields the keys (contents) and values (with quotes) of a
// scanned object whose values are all plain strings, as the schemas of
// actor, agent and policy make them.
func canonMembers(d []byte, obj span) func(yield func(k, v span) bool) {
	return func(yield func(k, v span) bool) {
		for p := int(obj.start) + 1; p < int(obj.end)-1; {
			ke := p + 1 + bytes.IndexByte(d[p+1:obj.end], '"') // keys are plain
			vs := ke + 2
			if d[vs] != '"' {
				return // not a string: the scan accepted no such object
			}
			ve := closeQuote(d, vs+1) + 1
			if !yield(span{int32(p + 1), int32(ke)}, span{int32(vs), int32(ve)}) {
				return
			}
			p = ve + 1
		}
	}
}

// closeQuote returns the index of the quote that ends the scanned string
// whose content starts at i.
func closeQuote(d []byte, i int) int {
	for {
		i = plainRun(d, i)
		switch d[i] {
		case '"':
			return i
		case '\\':
			i += 2 // \uXXXX: its hex digits are plain
		default:
			i++
		}
	}
}

// canonBuf copies the strings of one event into a single buffer, as
// textBuf does for the general path, or (alias) hands out those without
// escapes as views of the input and copies only the rest.
type canonBuf struct {
	d     []byte
	buf   []byte
	esc   bool // the string to copy may have escapes
	alias bool // strings without escapes, and the payload, alias d
}

// text returns the decoded content of the scanned string at sp.
func (b *canonBuf) text(sp span) string {
	raw := b.d[sp.start+1 : sp.end-1]
	plain := !b.esc || bytes.IndexByte(raw, '\\') < 0
	if plain && b.alias {
		return unsafeString(raw)
	}
	start := len(b.buf)
	if plain {
		b.buf = append(b.buf, raw...)
	} else {
		b.buf = unescape(b.buf, raw)
	}
	s := b.buf[start:]
	if len(s) == 0 {
		return ""
	}
	return unsafe.String(&s[0], len(s))
}

// bytes returns the raw bytes at sp; the result's capacity ends with
// them, so appending to it can reach neither the strings after it nor,
// when it aliases, the rest of the input.
func (b *canonBuf) bytes(sp span) []byte {
	if b.alias {
		return b.d[sp.start:sp.end:sp.end]
	}
	start := len(b.buf)
	b.buf = append(b.buf, b.d[sp.start:sp.end]...)
	return b.buf[start:len(b.buf):len(b.buf)]
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
