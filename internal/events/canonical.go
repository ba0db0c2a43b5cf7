package events

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
)

// The canonical encoding of an event is the one byte string hashed into the
// chain and sent on the wire:
//
//   - object keys sorted by their UTF-8 bytes, no duplicates;
//   - no whitespace outside strings;
//   - strings escaped minimally: only '"', '\\' and control characters
//     (as \b \f \n \r \t, or \u00xx in lower-case hex); everything else,
//     '<', '>', '&', U+2028 included, is written as raw UTF-8; invalid
//     UTF-8 is an error;
//   - numbers are integers written in decimal without fraction, exponent,
//     leading zeros or "-0" (events carry no other numbers);
//   - optional envelope fields that are empty are left out;
//   - timestamps in TimeLayout.
//
// This is RFC 8785 (JCS) restricted to integers and ASCII keys, where byte
// order and JCS's UTF-16 order agree.

// ErrNotCanonical reports JSON that has no canonical form: invalid syntax, a
// duplicate key, a non-integer number or invalid UTF-8.
var ErrNotCanonical = errors.New("events: JSON has no canonical form")

var treePool = sync.Pool{New: func() any { return &jtree{nodes: make([]jnode, 0, 128)} }}

// Canonicalize returns the canonical encoding of a JSON document.
func Canonicalize(data []byte) ([]byte, error) {
	t := treePool.Get().(*jtree)
	defer treePool.Put(t)
	if serr := t.parse(data); serr != nil {
		return nil, fmt.Errorf("%w: %s at byte %d", ErrNotCanonical, serr.msg, serr.offset)
	}
	var err error
	out := make([]byte, 0, len(data))
	out, t.scratch, err = t.appendCanonical(out, 0, t.scratch[:0])
	if err != nil {
		return nil, err
	}
	return out, nil
}

type member struct {
	key      []byte
	keyNode  int
	valueIdx int
}

// appendCanonical appends node i canonically; scratch is reused for key
// sorting. It returns the index after node i's subtree.
func (t *jtree) appendCanonical(dst []byte, i int, scratch []member) ([]byte, []member, error) {
	n := t.nodes[i]
	switch n.kind {
	case jNull:
		return append(dst, "null"...), scratch, nil
	case jTrue:
		return append(dst, "true"...), scratch, nil
	case jFalse:
		return append(dst, "false"...), scratch, nil
	case jNumber:
		lit := t.raw(i)
		if !n.integer {
			return dst, scratch, fmt.Errorf("%w: non-integer number %s", ErrNotCanonical, lit)
		}
		if string(lit) == "-0" {
			return append(dst, '0'), scratch, nil
		}
		return append(dst, lit...), scratch, nil
	case jString:
		if !n.esc {
			return appendPlain(dst, t.raw(i)), scratch, nil
		}
		var buf [128]byte
		return appendPlain(dst, t.str(i, buf[:0])), scratch, nil
	case jArray:
		dst = append(dst, '[')
		c := i + 1
		for k := int32(0); k < n.n; k++ {
			if k > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, scratch, err = t.appendCanonical(dst, c, scratch); err != nil {
				return dst, scratch, err
			}
			c = int(t.nodes[c].next)
		}
		return append(dst, ']'), scratch, nil
	}
	// Object: collect members, sort if needed.
	base := len(scratch)
	c := i + 1
	sorted := true
	for k := int32(0); k < n.n; k++ {
		var kb []byte
		if t.nodes[c].esc {
			kb = unescape(nil, t.raw(c))
		} else {
			kb = t.raw(c)
		}
		if len(scratch) > base {
			switch bytes.Compare(scratch[len(scratch)-1].key, kb) {
			case 0:
				return dst, scratch, fmt.Errorf("%w: duplicate key %q", ErrNotCanonical, kb)
			case 1:
				sorted = false
			}
		}
		scratch = append(scratch, member{key: kb, keyNode: c, valueIdx: c + 1})
		c = int(t.nodes[c+1].next)
	}
	ms := scratch[base:]
	if !sorted {
		slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
		for k := 1; k < len(ms); k++ {
			if bytes.Equal(ms[k-1].key, ms[k].key) {
				return dst, scratch, fmt.Errorf("%w: duplicate key %q", ErrNotCanonical, ms[k].key)
			}
		}
	}
	dst = append(dst, '{')
	for k := range ms {
		if k > 0 {
			dst = append(dst, ',')
		}
		m := scratch[base+k]
		dst = appendPlain(dst, m.key)
		dst = append(dst, ':')
		var err error
		if dst, scratch, err = t.appendCanonical(dst, m.valueIdx, scratch); err != nil {
			return dst, scratch, err
		}
	}
	return append(dst, '}'), scratch[:base], nil
}

const hexDigits = "0123456789abcdef"

// appendPlain appends s as a canonical JSON string. s must be valid UTF-8
// (callers check).
func appendPlain[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// encoder appends envelope fields, remembering the first invalid string.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) key(k string) {
	if len(e.b) > 0 && e.b[len(e.b)-1] != '{' {
		e.b = append(e.b, ',')
	}
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *encoder) str(k, v string) {
	e.key(k)
	if !utf8.ValidString(v) {
		if e.err == nil {
			e.err = fmt.Errorf("%w: invalid UTF-8 in %s", ErrNotCanonical, k)
		}
	}
	e.b = appendPlain(e.b, v)
}

func (e *encoder) opt(k, v string) {
	if v != "" {
		e.str(k, v)
	}
}

// appendEnvelope appends the canonical encoding of env, with or without its
// hash field. Keys are written in sorted order by hand: this is the hot path
// of every emit.
func appendEnvelope(dst []byte, env *Envelope, withHash bool) ([]byte, error) {
	b, _, err := encodeEnvelope(dst, env, withHash)
	return b, err
}

// encodeEnvelope is appendEnvelope that also returns the offset in the
// result where the hash member goes (or is).
func encodeEnvelope(dst []byte, env *Envelope, withHash bool) ([]byte, int, error) {
	e := encoder{b: append(dst, '{')}
	e.key("actor")
	e.b = append(e.b, '{')
	e.str("id", env.Actor.ID)
	e.str("type", string(env.Actor.Type))
	e.b = append(e.b, '}')
	if env.Agent != nil {
		e.key("agent")
		e.b = append(e.b, '{')
		e.str("name", env.Agent.Name)
		e.opt("version", env.Agent.Version)
		e.b = append(e.b, '}')
	}
	e.opt("approval_id", env.ApprovalID)
	e.str("event_id", env.EventID)
	e.key("event_time")
	e.b = append(e.b, '"')
	e.b = appendTime(e.b, env.EventTime)
	e.b = append(e.b, '"')
	e.str("event_type", env.EventType)
	hashAt := len(e.b)
	if withHash {
		e.str("hash", env.Hash)
	}
	e.opt("parent_event_id", env.ParentEventID)
	e.key("payload")
	if len(env.Payload) == 0 {
		e.b = append(e.b, "null"...)
	} else {
		// Payloads are canonical when set by SetPayload or Decode; check
		// cheaply and canonicalize otherwise, so a hand-built payload
		// cannot change the hash by its formatting.
		t := treePool.Get().(*jtree)
		if serr := t.parse(env.Payload); serr != nil {
			treePool.Put(t)
			return dst, 0, fmt.Errorf("%w: payload: %s at byte %d", ErrNotCanonical, serr.msg, serr.offset)
		}
		var err error
		e.b, t.scratch, err = t.appendCanonical(e.b, 0, t.scratch[:0])
		treePool.Put(t)
		if err != nil {
			return dst, 0, fmt.Errorf("payload: %w", err)
		}
	}
	if env.Policy != nil {
		e.key("policy")
		e.b = append(e.b, '{')
		e.str("id", env.Policy.ID)
		e.str("sha256", env.Policy.SHA256)
		e.b = append(e.b, '}')
	}
	e.str("prev_hash", env.PrevHash)
	e.str("runner_id", env.RunnerID)
	e.str("schema_version", env.SchemaVersion)
	e.key("seq")
	e.b = strconv.AppendUint(e.b, env.Seq, 10)
	e.str("session_id", env.SessionID)
	e.str("tenant", env.Tenant)
	e.opt("tool_call_id", env.ToolCallID)
	e.opt("trace_id", env.TraceID)
	e.b = append(e.b, '}')
	if e.err != nil {
		return dst, 0, e.err
	}
	return e.b, hashAt, nil
}

// Marshal returns the canonical encoding of env, hash included: the bytes
// that go on the wire. It does not validate; Chain.Stamp and Validate do.
func Marshal(env *Envelope) ([]byte, error) {
	return appendEnvelope(make([]byte, 0, 512+len(env.Payload)), env, true)
}

// AppendMarshal appends the canonical encoding of env to dst.
func AppendMarshal(dst []byte, env *Envelope) ([]byte, error) {
	return appendEnvelope(dst, env, true)
}

// MarshalJSON implements json.Marshaler with the canonical encoding.
func (e Envelope) MarshalJSON() ([]byte, error) { return Marshal(&e) }
