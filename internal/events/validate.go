package events

import (
	"errors"
	"fmt"
	"math/bits"
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
	var rs rootScan
	if reg.canon.scan(data, &rs) {
		return nil // canonical and valid; anything else is judged below
	}
	t := treePool.Get().(*jtree)
	defer treePool.Put(t)
	if verr := reg.validate(t, data); verr != nil {
		return verr
	}
	return nil
}

// Decode parses and validates one encoded event. Its payload is kept as
// bytes; read it with DecodePayload. Canonical events (all that producers
// write) are checked in one pass by the fast path in canonfast.go; the
// rest, and every event that fails, take the general path, which gives
// the verdict and the error.
func Decode(data []byte) (*Envelope, error) {
	reg, err := registry()
	if err != nil {
		return nil, err
	}
	if env, ok := reg.canon.decode(data); ok {
		return env, nil // canonical and valid; anything else is judged below
	}
	return reg.decodeTree(data)
}

// decodeTree is Decode's general path: parse into a tree, validate it,
// build the Envelope (copied out of data) from it.
func (r *schemaRegistry) decodeTree(data []byte) (*Envelope, error) {
	t := treePool.Get().(*jtree)
	defer treePool.Put(t)
	if verr := r.validate(t, data); verr != nil {
		return nil, verr
	}
	return t.envelope(r)
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
	t.v.rec, t.v.recSeen = r.envelope, 0
	return t.v.check(s, 0)
}

// dispatch parses data and picks the schema to check it with: the schema of
// its event_type, or the envelope schema when event_type is missing or not
// a string (which that schema then reports).
func (r *schemaRegistry) dispatch(t *jtree, data []byte) (*snode, *ValidationError) {
	if serr := t.parse(data); serr != nil {
		return nil, &ValidationError{Code: serr.code, Reason: serr.msg + " at byte " + strconv.Itoa(serr.offset)}
	}
	if i := t.frac; i >= 0 {
		return nil, &ValidationError{Pointer: t.pointerTo(i), Code: CodeType,
			Reason: "expected integer, got number (events carry integers only, without fraction or exponent)"}
	}
	if t.nodes[0].kind != jObject {
		return r.envelope, nil
	}
	var ver, et = -1, -1
	for c, k := 1, int32(0); k < t.nodes[0].n; k++ {
		// Only a key with escapes or of the right length can be one of
		// the two: the rest are not decoded.
		if n := &t.nodes[c]; n.esc || n.end-n.start == int32(len("event_type")) || n.end-n.start == int32(len("schema_version")) {
			switch t.key(c) {
			case "schema_version":
				ver = c + 1
			case "event_type":
				et = c + 1
			}
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

// envelopeParts holds an Envelope and the optional parts it points to, so
// that decoding allocates them together.
type envelopeParts struct {
	env    Envelope
	agent  Agent
	policy PolicyRef
}

// textBuf copies the strings of one decoded event into a single buffer
// sized up front, and hands them out as strings over it: one allocation
// for all of them, none of them sharing memory with the input, so callers
// may reuse data. The buffer never grows (unescaping only shrinks text),
// and nothing writes to it after a string is taken except through
// Envelope.Payload, whose bytes no string covers.
type textBuf struct {
	t   *jtree
	buf []byte
}

func (b *textBuf) text(i int) string {
	n := &b.t.nodes[i]
	start := len(b.buf)
	if n.esc {
		b.buf = unescape(b.buf, b.t.raw(i))
	} else {
		b.buf = append(b.buf, b.t.raw(i)...)
	}
	s := b.buf[start:]
	if len(s) == 0 {
		return ""
	}
	return unsafe.String(&s[0], len(s))
}

// bytes copies the raw bytes of node i; the result's capacity ends with
// them, so appending to it cannot reach the strings after it.
func (b *textBuf) bytes(i int) []byte {
	n := &b.t.nodes[i]
	start := len(b.buf)
	b.buf = append(b.buf, b.t.data[n.start:n.end]...)
	return b.buf[start:len(b.buf):len(b.buf)]
}

// envField names an Envelope field that Decode sets.
type envField uint8

const (
	fNone envField = iota
	fEventID
	fEventType
	fSchemaVersion
	fEventTime
	fTenant
	fSessionID
	fRunnerID
	fSeq
	fPrevHash
	fHash
	fToolCallID
	fApprovalID
	fParentEventID
	fTraceID
	fPayload
	fActor
	fAgent
	fPolicy
)

var envFieldNames = map[string]envField{
	"event_id": fEventID, "event_type": fEventType, "schema_version": fSchemaVersion,
	"event_time": fEventTime, "tenant": fTenant, "session_id": fSessionID,
	"runner_id": fRunnerID, "seq": fSeq, "prev_hash": fPrevHash, "hash": fHash,
	"tool_call_id": fToolCallID, "approval_id": fApprovalID,
	"parent_event_id": fParentEventID, "trace_id": fTraceID, "payload": fPayload,
	"actor": fActor, "agent": fAgent, "policy": fPolicy,
}

// envelope builds the Envelope of a tree that passed validation. It finds
// each key among the envelope schema's properties the way the validator
// does (canonical order makes that one comparison), then switches on a
// small integer instead of on the key.
func (t *jtree) envelope(r *schemaRegistry) (*Envelope, error) {
	root := &t.nodes[0]
	size := 0 // the top-level strings and objects bound every byte kept
	for c, k := 1, int32(0); k < root.n; k++ {
		n := &t.nodes[c+1]
		if n.kind == jString || n.kind == jObject {
			size += int(n.end - n.start)
		}
		c = int(n.next)
	}
	tb := textBuf{t: t, buf: make([]byte, 0, size)}
	parts := &envelopeParts{}
	e := &parts.env
	var err error
	if t.v.rec != r.envelope || t.v.recSeen == 0 {
		t.recordRoot(r.envelope) // not validated as an event: look up the keys
	}
	for seen := t.v.recSeen; seen != 0; seen &= seen - 1 {
		j := bits.TrailingZeros64(seen)
		v := int(t.v.recAt[j])
		f := fNone
		if j < len(r.fields) {
			f = r.fields[j]
		}
		switch f {
		case fEventID:
			e.EventID = tb.text(v)
		case fEventType:
			e.EventType = tb.text(v)
		case fSchemaVersion:
			e.SchemaVersion = tb.text(v)
		case fEventTime:
			e.EventTime, err = parseTime(t.key(v))
		case fTenant:
			e.Tenant = tb.text(v)
		case fSessionID:
			e.SessionID = tb.text(v)
		case fRunnerID:
			e.RunnerID = tb.text(v)
		case fSeq:
			var s int64
			s, _ = parseInt(t.raw(v))
			e.Seq = uint64(s)
		case fPrevHash:
			e.PrevHash = tb.text(v)
		case fHash:
			e.Hash = tb.text(v)
		case fToolCallID:
			e.ToolCallID = tb.text(v)
		case fApprovalID:
			e.ApprovalID = tb.text(v)
		case fParentEventID:
			e.ParentEventID = tb.text(v)
		case fTraceID:
			e.TraceID = tb.text(v)
		case fPayload:
			e.Payload = tb.bytes(v)
		case fActor:
			for c, k := v+1, int32(0); k < t.nodes[v].n; k++ {
				switch t.key(c) {
				case "type":
					e.Actor.Type = ActorType(tb.text(c + 1))
				case "id":
					e.Actor.ID = tb.text(c + 1)
				}
				c = int(t.nodes[c+1].next)
			}
		case fAgent:
			e.Agent = &parts.agent
			for c, k := v+1, int32(0); k < t.nodes[v].n; k++ {
				switch t.key(c) {
				case "name":
					e.Agent.Name = tb.text(c + 1)
				case "version":
					e.Agent.Version = tb.text(c + 1)
				}
				c = int(t.nodes[c+1].next)
			}
		case fPolicy:
			e.Policy = &parts.policy
			for c, k := v+1, int32(0); k < t.nodes[v].n; k++ {
				switch t.key(c) {
				case "id":
					e.Policy.ID = tb.text(c + 1)
				case "sha256":
					e.Policy.SHA256 = tb.text(c + 1)
				}
				c = int(t.nodes[c+1].next)
			}
		}
	}
	if err != nil {
		return nil, &ValidationError{Pointer: "/event_time", Code: CodeFormat, Reason: err.Error()}
	}
	return e, nil
}

// recordRoot finds the root object's envelope properties as the validator
// records them when it checks the root against the envelope schema.
func (t *jtree) recordRoot(env *snode) {
	t.v.rec, t.v.recSeen = env, 0
	last := -1
	for c, k := 1, int32(0); k < t.nodes[0].n; k++ {
		if j := env.lookup(t.str(c, t.v.buf[:0]), last); j >= 0 {
			last = j
			t.v.recSeen |= 1 << j
			t.v.recAt[j] = int32(c + 1)
		}
		c = int(t.nodes[c+1].next)
	}
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
