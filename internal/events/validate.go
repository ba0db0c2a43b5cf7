package events

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// Codes of ValidationError. Schema failures use the name of the JSON Schema
// keyword that failed; the rest are checks made before the schema.
const (
	CodeSyntax             = "syntax"                     // not JSON
	CodeInvalidUTF8        = "invalid_utf8"               // invalid UTF-8 or a lone surrogate escape
	CodeTooLarge           = "too_large"                  // over MaxEventSize
	CodeTooDeep            = "too_deep"                   // nested too deep
	CodeDuplicateKey       = "duplicate_key"              // a key twice in one object
	CodeUnknownEventType   = "unknown_event_type"         // event_type has no schema
	CodeUnsupportedVersion = "unsupported_schema_version" // schema_version major is not 1
	CodeType               = "type"
	CodeRequired           = "required"
	CodeAdditional         = "additionalProperties"
	CodeEnum               = "enum"
	CodeConst              = "const"
	CodePattern            = "pattern"
	CodeMinLength          = "minLength"
	CodeMaxLength          = "maxLength"
	CodeMinimum            = "minimum"
	CodeMaximum            = "maximum"
	CodeFormat             = "format"
	CodeMinItems           = "minItems"
	CodeMaxItems           = "maxItems"
	CodeUniqueItems        = "uniqueItems"
	CodeAnyOf              = "anyOf"
)

// Sentinels matched with errors.Is on a *ValidationError.
var (
	// ErrValidation: every *ValidationError is one.
	ErrValidation = errors.New("events: event fails validation")
	// ErrUnsupportedVersion: schema_version has a major this package does
	// not read.
	ErrUnsupportedVersion = errors.New("events: unsupported schema_version")
)

// ValidationError says why an event is invalid: where (a JSON pointer into
// the event, "" for the whole document) and why (a stable Code and a short
// human Reason). When an event has several faults, one is reported.
type ValidationError struct {
	Pointer string
	Code    string
	Reason  string
}

func (e *ValidationError) Error() string {
	p := e.Pointer
	if p == "" {
		p = "(root)"
	}
	return p + ": " + e.Reason
}

// Unwrap lets errors.Is match ErrValidation, and ErrUnknownEventType or
// ErrUnsupportedVersion for those codes.
func (e *ValidationError) Unwrap() []error {
	switch e.Code {
	case CodeUnknownEventType:
		return []error{ErrValidation, ErrUnknownEventType}
	case CodeUnsupportedVersion:
		return []error{ErrValidation, ErrUnsupportedVersion}
	}
	return []error{ErrValidation}
}

// Validate checks env's canonical encoding against its schema.
func Validate(env *Envelope) error {
	b, err := Marshal(env)
	if err != nil {
		return err
	}
	return ValidateBytes(b)
}

// ValidateBytes checks an encoded event against the envelope schema and the
// schema of its event_type. The error is a *ValidationError, or an error
// about the embedded schemas themselves.
func ValidateBytes(data []byte) error {
	reg, err := registry()
	if err != nil {
		return err
	}
	t := treePool.Get().(*jtree)
	defer treePool.Put(t)
	if verr := reg.validate(t, data); verr != nil {
		return verr
	}
	return nil
}

// Decode parses and validates one encoded event. Its payload is kept as
// bytes; read it with DecodePayload.
func Decode(data []byte) (*Envelope, error) {
	reg, err := registry()
	if err != nil {
		return nil, err
	}
	t := treePool.Get().(*jtree)
	defer treePool.Put(t)
	if verr := reg.validate(t, data); verr != nil {
		return nil, verr
	}
	return t.envelope()
}

// UnmarshalJSON implements json.Unmarshaler with Decode: an Envelope read
// from JSON is always valid.
func (e *Envelope) UnmarshalJSON(data []byte) error {
	d, err := Decode(data)
	if err != nil {
		return err
	}
	*e = *d
	return nil
}

var registry = sync.OnceValues(compileRegistry)

// validate runs the checks shared by both validators, then the fast one.
func (r *schemaRegistry) validate(t *jtree, data []byte) *ValidationError {
	s, verr := r.dispatch(t, data)
	if verr != nil {
		return verr
	}
	t.v.t, t.v.path = t, t.v.path[:0]
	return t.v.check(s, 0)
}

// dispatch parses data and picks the schema to check it with: the schema of
// its event_type, or the envelope schema when event_type is missing or not
// a string (which that schema then reports).
func (r *schemaRegistry) dispatch(t *jtree, data []byte) (*snode, *ValidationError) {
	if serr := t.parse(data); serr != nil {
		return nil, &ValidationError{Code: serr.code, Reason: serr.msg + " at byte " + strconv.Itoa(serr.offset)}
	}
	for i := range t.nodes {
		if t.nodes[i].kind == jNumber && !t.nodes[i].integer {
			return nil, &ValidationError{Pointer: t.pointerTo(i), Code: CodeType,
				Reason: "expected integer, got number (events carry integers only, without fraction or exponent)"}
		}
	}
	if t.nodes[0].kind != jObject {
		return r.envelope, nil
	}
	var ver, et = -1, -1
	for c, k := 1, int32(0); k < t.nodes[0].n; k++ {
		switch t.key(c) {
		case "schema_version":
			ver = c + 1
		case "event_type":
			et = c + 1
		}
		c = int(t.nodes[c+1].next)
	}
	if ver >= 0 && t.nodes[ver].kind == jString {
		v := t.key(ver)
		if major, _, _ := strings.Cut(v, "."); major != SchemaMajor {
			return nil, &ValidationError{Pointer: "/schema_version", Code: CodeUnsupportedVersion,
				Reason: fmt.Sprintf("schema_version %q: this reader supports major version %s only", v, SchemaMajor)}
		}
	}
	if et < 0 || t.nodes[et].kind != jString {
		return r.envelope, nil
	}
	s := r.types[t.key(et)]
	if s == nil {
		return nil, &ValidationError{Pointer: "/event_type", Code: CodeUnknownEventType,
			Reason: fmt.Sprintf("unknown event_type %q", t.str(et, nil))}
	}
	return s, nil
}

// envelope builds the Envelope of a validated tree. All strings share one
// copy of the input; the payload gets its own, so callers may reuse data.
func (t *jtree) envelope() (*Envelope, error) {
	all := string(t.data)
	text := func(i int) string {
		n := &t.nodes[i]
		if n.esc {
			return string(unescape(nil, t.raw(i)))
		}
		return all[n.start:n.end]
	}
	e := &Envelope{}
	var err error
	root := t.nodes[0]
	for c, k := 1, int32(0); k < root.n; k++ {
		v := c + 1
		switch t.key(c) {
		case "event_id":
			e.EventID = text(v)
		case "event_type":
			e.EventType = text(v)
		case "schema_version":
			e.SchemaVersion = text(v)
		case "event_time":
			e.EventTime, err = parseTime(text(v))
		case "tenant":
			e.Tenant = text(v)
		case "session_id":
			e.SessionID = text(v)
		case "runner_id":
			e.RunnerID = text(v)
		case "seq":
			var s int64
			s, _ = parseInt(t.raw(v))
			e.Seq = uint64(s)
		case "prev_hash":
			e.PrevHash = text(v)
		case "hash":
			e.Hash = text(v)
		case "tool_call_id":
			e.ToolCallID = text(v)
		case "approval_id":
			e.ApprovalID = text(v)
		case "parent_event_id":
			e.ParentEventID = text(v)
		case "trace_id":
			e.TraceID = text(v)
		case "payload":
			n := &t.nodes[v]
			e.Payload = append([]byte(nil), t.data[n.start:n.end]...)
		case "actor":
			t.members(v, func(k string, i int) {
				switch k {
				case "type":
					e.Actor.Type = ActorType(text(i))
				case "id":
					e.Actor.ID = text(i)
				}
			})
		case "agent":
			e.Agent = &Agent{}
			t.members(v, func(k string, i int) {
				switch k {
				case "name":
					e.Agent.Name = text(i)
				case "version":
					e.Agent.Version = text(i)
				}
			})
		case "policy":
			e.Policy = &PolicyRef{}
			t.members(v, func(k string, i int) {
				switch k {
				case "id":
					e.Policy.ID = text(i)
				case "sha256":
					e.Policy.SHA256 = text(i)
				}
			})
		}
		c = int(t.nodes[v].next)
	}
	if err != nil {
		return nil, &ValidationError{Pointer: "/event_time", Code: CodeFormat, Reason: err.Error()}
	}
	return e, nil
}

// pointerTo returns the JSON pointer of value node i.
func (t *jtree) pointerTo(i int) string {
	var b strings.Builder
	for n := 0; n != i; {
		node := &t.nodes[n]
		next := -1
		c := n + 1
		for k := int32(0); k < node.n && next < 0; k++ {
			val := c
			if node.kind == jObject {
				val = c + 1
			}
			end := int(t.nodes[val].next)
			if i >= val && i < end {
				b.WriteByte('/')
				if node.kind == jObject {
					writePtrToken(&b, string(t.str(c, nil)))
				} else {
					b.WriteString(strconv.Itoa(int(k)))
				}
				next = val
			}
			c = end
		}
		if next < 0 {
			break
		}
		n = next
	}
	return b.String()
}

// members calls f with each key and value index of object i.
func (t *jtree) members(i int, f func(key string, value int)) {
	for c, k := i+1, int32(0); k < t.nodes[i].n; k++ {
		f(t.key(c), c+1)
		c = int(t.nodes[c+1].next)
	}
}

// key returns the decoded text of string node i for a comparison; it
// aliases the input when the string has no escapes, so it must not be kept.
func (t *jtree) key(i int) string {
	b := t.str(i, nil)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// parseInt parses an integer literal the parser accepted; ok is false when
// it does not fit in an int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if u > 1<<63 || (!neg && u == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}
