package events

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds a strict JSON parser that builds a flat tree of byte
// ranges. The validator, the decoder and the canonical encoder share it, and
// other packages read JSON through it with ReadJSON (jsonvalue.go), so all
// agree on what an event says. It is stricter than encoding/json,
// because hashes are computed over the decoded content and two readings of
// one byte string must not exist: invalid UTF-8, lone surrogate escapes and
// trailing data are errors (duplicate keys are caught by the validator and
// the canonicalizer, which see the keys of each object).

// Limits on untrusted input.
const (
	// MaxEventSize bounds an encoded event (Kafka's default message limit).
	MaxEventSize = 1 << 20
	maxDepth     = 32
)

type jkind uint8

const (
	jNull jkind = iota
	jFalse
	jTrue
	jNumber
	jString
	jArray
	jObject
)

func (k jkind) String() string {
	switch k {
	case jNull:
		return "null"
	case jFalse, jTrue:
		return "boolean"
	case jNumber:
		return "number"
	case jString:
		return "string"
	case jArray:
		return "array"
	case jObject:
		return "object"
	}
	return "invalid"
}

// jnode is one value. Objects and arrays are followed by their children in
// document order; an object's children alternate key (a string node) and
// value. next is the index just past the node's subtree.
type jnode struct {
	kind jkind
	// esc: a string with escapes; ascii: a string whose raw bytes are all
	// ASCII (so, without escapes, its length counts its characters);
	// integer: a number with neither fraction nor exponent; uniq: an object
	// whose keys are known to be distinct because they come in strictly
	// increasing byte order without escapes, as in every canonical event
	// (false says nothing: the validator then compares keys itself).
	esc     bool
	ascii   bool
	integer bool
	uniq    bool
	start   int32 // string: first byte after the quote; number: first byte
	end     int32 // string: the closing quote; number: one past the last byte
	n       int32 // object: members; array: elements
	next    int32
}

type jtree struct {
	data  []byte
	nodes []jnode
	// frac is the index of the first number with a fraction or exponent,
	// or -1: events carry integers only, and dispatch reports it.
	frac int
	v    validator // reused with the tree, so validating allocates nothing
	// scratch is the canonical encoder's scratch space for sorting keys.
	scratch []member
}

// syntaxError is a parse failure at a byte offset.
type syntaxError struct {
	code   string // syntax, invalid_utf8, too_deep, too_large
	offset int
	msg    string
}

type parser struct {
	data  []byte
	pos   int
	nodes []jnode
	frac  int
}

// parse parses data into t, reusing t's node slice.
func (t *jtree) parse(data []byte) *syntaxError {
	if len(data) > MaxEventSize {
		return &syntaxError{code: CodeTooLarge, offset: MaxEventSize, msg: "event larger than " + strconv.Itoa(MaxEventSize) + " bytes"}
	}
	p := parser{data: data, nodes: t.nodes[:0], frac: -1}
	p.ws()
	if err := p.value(0); err != nil {
		t.nodes = p.nodes
		return err
	}
	p.ws()
	t.nodes, t.frac = p.nodes, p.frac
	if p.pos != len(data) {
		return p.fail("trailing data after JSON value")
	}
	t.data = data
	return nil
}

func (p *parser) fail(msg string) *syntaxError {
	return &syntaxError{code: CodeSyntax, offset: p.pos, msg: msg}
}

func (p *parser) ws() {
	if p.pos < len(p.data) && p.data[p.pos] > ' ' {
		return // the usual case: canonical events have no whitespace
	}
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) *syntaxError {
	if depth > maxDepth {
		return &syntaxError{code: CodeTooDeep, offset: p.pos, msg: "nesting deeper than " + strconv.Itoa(maxDepth)}
	}
	if p.pos >= len(p.data) {
		return p.fail("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.lit("true", jTrue)
	case c == 'f':
		return p.lit("false", jFalse)
	case c == 'n':
		return p.lit("null", jNull)
	}
	return p.fail("invalid character " + strconv.QuoteRune(rune(p.data[p.pos])))
}

// member parses a value inside an object or array, going straight to the
// string scanner for the commonest kind.
func (p *parser) member(depth int) *syntaxError {
	if depth <= maxDepth && p.pos < len(p.data) && p.data[p.pos] == '"' {
		return p.str()
	}
	return p.value(depth)
}

func (p *parser) lit(word string, k jkind) *syntaxError {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return p.fail("invalid literal")
	}
	p.nodes = append(p.nodes, jnode{kind: k, start: int32(p.pos), end: int32(p.pos + len(word)), next: int32(len(p.nodes) + 1)})
	p.pos += len(word)
	return nil
}

func (p *parser) object(depth int) *syntaxError {
	idx := len(p.nodes)
	p.nodes = append(p.nodes, jnode{kind: jObject, start: int32(p.pos)})
	p.pos++
	p.ws()
	var n int32
	uniq := true
	var prev []byte    // the last key, while uniq
	var prevPre uint64 // and its first eight bytes
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
	} else {
		for {
			p.ws()
			if p.pos >= len(p.data) || p.data[p.pos] != '"' {
				return p.fail("expected object key")
			}
			if err := p.str(); err != nil {
				return err
			}
			if uniq {
				k := &p.nodes[len(p.nodes)-1]
				key := p.data[k.start:k.end]
				pre := prefix8(p.data, int(k.start), len(key))
				switch {
				case k.esc:
					uniq = false
				case n > 0 && pre != prevPre:
					uniq = prevPre < pre
				case n > 0:
					uniq = bytes.Compare(prev, key) < 0
				}
				prev, prevPre = key, pre
			}
			if p.pos < len(p.data) && p.data[p.pos] == ':' {
				p.pos++
			} else {
				p.ws()
				if p.pos >= len(p.data) || p.data[p.pos] != ':' {
					return p.fail("expected ':' after object key")
				}
				p.pos++
			}
			p.ws()
			if err := p.member(depth + 1); err != nil {
				return err
			}
			n++
			if p.pos < len(p.data) && p.data[p.pos] == ',' {
				p.pos++
				continue
			}
			p.ws()
			if p.pos >= len(p.data) {
				return p.fail("unexpected end of input in object")
			}
			if p.data[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.data[p.pos] == '}' {
				p.pos++
				break
			}
			return p.fail("expected ',' or '}' in object")
		}
	}
	p.nodes[idx].n = n
	p.nodes[idx].uniq = uniq
	p.nodes[idx].end = int32(p.pos)
	p.nodes[idx].next = int32(len(p.nodes))
	return nil
}

func (p *parser) array(depth int) *syntaxError {
	idx := len(p.nodes)
	p.nodes = append(p.nodes, jnode{kind: jArray, start: int32(p.pos)})
	p.pos++
	p.ws()
	var n int32
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
	} else {
		for {
			p.ws()
			if err := p.member(depth + 1); err != nil {
				return err
			}
			n++
			p.ws()
			if p.pos >= len(p.data) {
				return p.fail("unexpected end of input in array")
			}
			if p.data[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.data[p.pos] == ']' {
				p.pos++
				break
			}
			return p.fail("expected ',' or ']' in array")
		}
	}
	p.nodes[idx].n = n
	p.nodes[idx].end = int32(p.pos)
	p.nodes[idx].next = int32(len(p.nodes))
	return nil
}

// plain marks bytes that may appear in a string as they are: printable
// ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// special sets the high bit of each byte of x (eight string bytes, little
// endian) that is not plain: '"', '\\', a control character or a non-ASCII
// byte. For an ASCII byte c, c^'"' - 1 has its high bit set only when c is
// '"', likewise for '\\', and c - 0x20 only when c < 0x20; the high bit of
// x itself flags the rest. Borrows can also flag bytes above a flagged one,
// so only the lowest flag is exact, which is the one the scan uses.
func special(x uint64) uint64 {
	return (((x ^ (lsbs * '"')) - lsbs) | ((x ^ (lsbs * '\\')) - lsbs) | (x - lsbs*0x20) | x) & msbs
}

// plainRun returns the index of the first byte at or after i that is not
// plain, or len(d). Strings in events are mostly ids and hashes of plain
// ASCII, so it looks at eight bytes at a time.
func plainRun(d []byte, i int) int {
	for i+8 <= len(d) {
		if m := special(binary.LittleEndian.Uint64(d[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(d) && plain[d[i]] {
		i++
	}
	return i
}

// prefix8 returns the first eight bytes of the l-byte key at d[start:] as a
// big-endian number, zero-padded. Keys without escapes hold no zero byte
// (control characters must be escaped), so when two prefixes differ they
// order the keys as their bytes do, and most key pairs need no more.
func prefix8(d []byte, start, l int) uint64 {
	if start+8 > len(d) {
		var pre uint64
		for k := 0; k < 8 && k < l; k++ {
			pre |= uint64(d[start+k]) << (56 - 8*k)
		}
		return pre
	}
	pre := binary.BigEndian.Uint64(d[start:])
	if l < 8 {
		pre &= ^uint64(0) << (8 * (8 - l)) // << 64 is 0 in Go
	}
	return pre
}

func (p *parser) str() *syntaxError {
	p.pos++ // opening quote
	start := p.pos
	esc, ascii := false, true
	d := p.data
	for {
		i := plainRun(d, p.pos)
		p.pos = i
		if i >= len(d) {
			return p.fail("unterminated string")
		}
		c := d[i]
		switch {
		case c == '"':
			p.nodes = append(p.nodes, jnode{kind: jString, esc: esc, ascii: ascii, start: int32(start), end: int32(i), next: int32(len(p.nodes) + 1)})
			p.pos++
			return nil
		case c == '\\':
			esc = true
			if err := p.escape(); err != nil {
				return err
			}
		case c < 0x20:
			return p.fail("control character in string")
		default:
			ascii = false
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				return &syntaxError{code: CodeInvalidUTF8, offset: i, msg: "invalid UTF-8 in string"}
			}
			p.pos += size
		}
	}
}

func (p *parser) escape() *syntaxError {
	d := p.data
	if p.pos+1 >= len(d) {
		return p.fail("unterminated escape")
	}
	switch d[p.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		p.pos += 2
		return nil
	case 'u':
		r, ok := hex4(d, p.pos+2)
		if !ok {
			return p.fail("invalid \\u escape")
		}
		p.pos += 6
		if utf16.IsSurrogate(r) {
			// A high surrogate must be followed by an escaped low one.
			r2, ok := rune(0), false
			if r < 0xdc00 && p.pos+1 < len(d) && d[p.pos] == '\\' && d[p.pos+1] == 'u' {
				r2, ok = hex4(d, p.pos+2)
			}
			if !ok || utf16.DecodeRune(r, r2) == utf8.RuneError {
				return &syntaxError{code: CodeInvalidUTF8, offset: p.pos - 6, msg: "lone surrogate in \\u escape"}
			}
			p.pos += 6
		}
		return nil
	}
	return p.fail("invalid escape")
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (p *parser) number() *syntaxError {
	d := p.data
	start := p.pos
	integer := true
	if d[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(d) && d[p.pos] == '0':
		p.pos++
	case p.pos < len(d) && d[p.pos] >= '1' && d[p.pos] <= '9':
		for p.pos < len(d) && d[p.pos] >= '0' && d[p.pos] <= '9' {
			p.pos++
		}
	default:
		return p.fail("invalid number")
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		integer = false
		p.pos++
		if p.pos >= len(d) || d[p.pos] < '0' || d[p.pos] > '9' {
			return p.fail("invalid number")
		}
		for p.pos < len(d) && d[p.pos] >= '0' && d[p.pos] <= '9' {
			p.pos++
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		integer = false
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if p.pos >= len(d) || d[p.pos] < '0' || d[p.pos] > '9' {
			return p.fail("invalid number")
		}
		for p.pos < len(d) && d[p.pos] >= '0' && d[p.pos] <= '9' {
			p.pos++
		}
	}
	if !integer && p.frac < 0 {
		p.frac = len(p.nodes)
	}
	p.nodes = append(p.nodes, jnode{kind: jNumber, integer: integer, start: int32(start), end: int32(p.pos), next: int32(len(p.nodes) + 1)})
	return nil
}

// raw returns the bytes of a string's content (escapes not decoded) or a
// number's literal.
func (t *jtree) raw(i int) []byte { n := &t.nodes[i]; return t.data[n.start:n.end] }

// str returns a string node's decoded content, appending to buf when it has
// escapes (the parser has checked them) and aliasing the input otherwise.
func (t *jtree) str(i int, buf []byte) []byte {
	n := &t.nodes[i]
	if !n.esc {
		return t.data[n.start:n.end]
	}
	return unescape(buf[:0], t.data[n.start:n.end])
}

func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(s, i+2)
			i += 6
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(s, i+2)
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // " \ /
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// int64Value parses an integer literal; ok is false when it does not fit.
func (t *jtree) int64Value(i int) (int64, bool) {
	v, err := strconv.ParseInt(string(t.raw(i)), 10, 64)
	return v, err == nil
}
