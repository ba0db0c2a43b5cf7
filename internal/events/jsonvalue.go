package events

import (
	"strconv"
	"unsafe"
)

// This file lets other packages read JSON, payloads above all, with the
// parser that Decode, the validator and the canonical encoder use
// (jsontree.go), so that no second scanner reads an event's bytes
// differently from the one that accepted them.

// ReadJSON parses data and calls f with its root value. The tree is pooled:
// a JSONValue is valid only during f, but the strings read from it alias
// data (or, for strings with escapes, own memory) and stay valid. A syntax
// error is a *ValidationError with its code.
func ReadJSON(data []byte, f func(root JSONValue) error) error {
	t := treePool.Get().(*jtree)
	defer treePool.Put(t)
	if serr := t.parse(data); serr != nil {
		return &ValidationError{Code: serr.code, Reason: serr.msg + " at byte " + strconv.Itoa(serr.offset)}
	}
	return f(JSONValue{t: t})
}

// JSONValue is one value of a document ReadJSON parsed. The zero JSONValue
// stands for an absent value: it is no object, no array, and reads as "".
type JSONValue struct {
	t *jtree
	i int
}

// Object calls f with each member of v in document order (keys decoded;
// they alias the input, so f must not keep them) and reports whether v is
// an object.
func (v JSONValue) Object(f func(key string, val JSONValue)) bool {
	if v.t == nil || v.t.nodes[v.i].kind != jObject {
		return false
	}
	t := v.t
	for c, k := v.i+1, int32(0); k < t.nodes[v.i].n; k++ {
		f(t.key(c), JSONValue{t: t, i: c + 1})
		c = int(t.nodes[c+1].next)
	}
	return true
}

// Field returns the value of the last member of object v named key, as
// encoding/json would read it; the zero JSONValue when there is none.
func (v JSONValue) Field(key string) JSONValue {
	var out JSONValue
	v.Object(func(k string, val JSONValue) {
		if k == key {
			out = val
		}
	})
	return out
}

// Str returns the decoded content of a string, "" for any other value.
// Without escapes it aliases the input.
func (v JSONValue) Str() string {
	if v.t == nil {
		return ""
	}
	n := &v.t.nodes[v.i]
	if n.kind != jString {
		return ""
	}
	b := v.t.data[n.start:n.end]
	if n.esc {
		b = unescape(make([]byte, 0, len(b)), b)
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Raw returns v's JSON text as it appears in the input (a string with its
// quotes), "" for the zero JSONValue: numbers and literals are read from it.
func (v JSONValue) Raw() string {
	if v.t == nil {
		return ""
	}
	n := &v.t.nodes[v.i]
	start, end := n.start, n.end
	if n.kind == jString {
		start, end = start-1, end+1
	}
	b := v.t.data[start:end]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Strings returns the elements of an array read with Str, and whether v is
// an array.
func (v JSONValue) Strings() ([]string, bool) {
	if v.t == nil || v.t.nodes[v.i].kind != jArray {
		return nil, false
	}
	n := v.t.nodes[v.i].n
	if n == 0 {
		return nil, true
	}
	out := make([]string, 0, n)
	for c, k := v.i+1, int32(0); k < n; k++ {
		out = append(out, JSONValue{t: v.t, i: c}.Str())
		c = int(v.t.nodes[c].next)
	}
	return out, true
}
