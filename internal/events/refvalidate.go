package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/agentaudit/agentaudit/schemas"
	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The reference validator: the embedded schemas compiled by jsonschema/v5,
// a complete draft 2020-12 implementation. It is several times slower than
// the fast validator that Decode uses, and exists to hold that one to the
// standard: tests require both to agree on every example and on fuzzed
// input. Checks that JSON Schema cannot express (strict UTF-8, duplicate
// keys, integers only, the schema_version major, known event types) run
// before it exactly as before the fast validator.

type refRegistry struct {
	envelope *jsonschema.Schema
	types    map[string]*jsonschema.Schema
}

var refSchemas = sync.OnceValues(func() (*refRegistry, error) {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.AssertFormat = true
	files, err := fs.Glob(schemas.FS, "v1/*.json")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := fs.ReadFile(schemas.FS, f)
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(schemaBase+strings.TrimPrefix(f, "v1/"), bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("events: schema %s: %w", f, err)
		}
	}
	r := &refRegistry{types: map[string]*jsonschema.Schema{}}
	if r.envelope, err = c.Compile(schemaBase + "envelope.json"); err != nil {
		return nil, err
	}
	for _, t := range EventTypes {
		if r.types[t], err = c.Compile(schemaBase + t + ".json"); err != nil {
			return nil, err
		}
	}
	return r, nil
})

// ValidateReference validates an encoded event with jsonschema/v5 instead of
// the fast validator. Same verdicts, same *ValidationError codes for the
// checks made before the schema; for schema failures the pointer and code
// come from jsonschema/v5's first failing keyword. For tools and tests, not
// the hot path.
func ValidateReference(data []byte) error {
	reg, err := registry()
	if err != nil {
		return err
	}
	ref, err := refSchemas()
	if err != nil {
		return err
	}
	t := &jtree{}
	s, verr := reg.dispatch(t, data)
	if verr != nil {
		return verr
	}
	if verr := t.duplicateKeys(); verr != nil {
		return verr
	}
	schema := ref.envelope
	for typ, sn := range reg.types {
		if sn == s {
			schema = ref.types[typ]
		}
	}
	// jsonschema/v5 wants numbers as json.Number.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return &ValidationError{Code: CodeSyntax, Reason: err.Error()}
	}
	err = schema.Validate(doc)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return fromJSONSchema(ve)
	}
	return err
}

// duplicateKeys reports the first object with a key twice.
func (t *jtree) duplicateKeys() *ValidationError {
	for i := range t.nodes {
		if t.nodes[i].kind != jObject {
			continue
		}
		seen := map[string]bool{}
		for c, k := i+1, int32(0); k < t.nodes[i].n; k++ {
			key := string(t.str(c, nil))
			if seen[key] {
				p := t.pointerTo(i)
				return &ValidationError{Pointer: p + "/" + strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1"), Code: CodeDuplicateKey, Reason: "duplicate key"}
			}
			seen[key] = true
			c = int(t.nodes[c+1].next)
		}
	}
	return nil
}

// fromJSONSchema reduces jsonschema/v5's error tree to its first leaf (or
// the anyOf that failed as a whole), named like the fast validator's errors:
// required and additionalProperties point at the property concerned.
func fromJSONSchema(ve *jsonschema.ValidationError) *ValidationError {
	for len(ve.Causes) > 0 && !strings.HasSuffix(ve.KeywordLocation, "/anyOf") {
		ve = ve.Causes[0]
	}
	kw := ve.KeywordLocation[strings.LastIndexByte(ve.KeywordLocation, '/')+1:]
	ptr := ve.InstanceLocation
	switch kw {
	case "required", "additionalProperties":
		// Messages are "missing properties: 'x'" and
		// "additionalProperties 'x' not allowed".
		if a := strings.IndexByte(ve.Message, '\''); a >= 0 {
			if b := strings.IndexByte(ve.Message[a+1:], '\''); b >= 0 {
				ptr += "/" + ve.Message[a+1:a+1+b]
			}
		}
	}
	return &ValidationError{Pointer: ptr, Code: kw, Reason: ve.Message}
}
