package events

import (
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/schemas"
	"github.com/google/go-cmp/cmp"
)

func readExamples(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := fs.Glob(schemas.FS, "examples/"+dir+"/*.json")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		if path.Base(f) == "manifest.json" {
			continue
		}
		b, err := fs.ReadFile(schemas.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		out[path.Base(f)] = b
	}
	if len(out) == 0 {
		t.Fatalf("no examples in %s", dir)
	}
	return out
}

func invalidManifest(t testing.TB) map[string]invalidExample {
	t.Helper()
	b, err := fs.ReadFile(schemas.FS, "examples/invalid/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]invalidExample
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestValidExamples(t *testing.T) {
	types := map[string]bool{}
	var all []*Envelope
	for name, b := range readExamples(t, "valid") {
		env, err := Decode(b)
		if err != nil {
			t.Errorf("%s: Decode: %v", name, err)
			continue
		}
		if err := ValidateReference(b); err != nil {
			t.Errorf("%s: jsonschema/v5: %v", name, err)
		}
		if _, err := env.DecodePayload(); err != nil {
			t.Errorf("%s: DecodePayload: %v", name, err)
		}
		types[env.EventType] = true
		all = append(all, env)
	}
	for _, typ := range EventTypes {
		if !types[typ] {
			t.Errorf("no valid example of %s", typ)
		}
	}
	// The examples form one session of three chains.
	slices.SortFunc(all, func(a, b *Envelope) int { return int(a.Seq) - int(b.Seq) })
	if err := VerifyChain(all); err != nil {
		t.Errorf("examples' chains: %v", err)
	}
}

func TestInvalidExamples(t *testing.T) {
	m := invalidManifest(t)
	ex := readExamples(t, "invalid")
	if len(m) != len(ex) {
		t.Errorf("%d invalid examples, %d in manifest", len(ex), len(m))
	}
	for name, b := range ex {
		want, ok := m[name]
		if !ok {
			t.Errorf("%s: not in manifest", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, err := Decode(b)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Decode: got %v, want *ValidationError", err)
			}
			if diff := cmp.Diff([2]string{want.Pointer, want.Code}, [2]string{ve.Pointer, ve.Code}); diff != "" {
				t.Errorf("Decode error %q: (pointer, code) differ (-want +got):\n%s", ve, diff)
			}
			if !errors.Is(err, ErrValidation) {
				t.Errorf("errors.Is(%v, ErrValidation) = false", err)
			}
			err = ValidateReference(b)
			if !errors.As(err, &ve) {
				t.Fatalf("jsonschema/v5: got %v, want *ValidationError", err)
			}
			if diff := cmp.Diff([2]string{want.Pointer, want.Code}, [2]string{ve.Pointer, ve.Code}); diff != "" {
				t.Errorf("jsonschema/v5 error %q: (pointer, code) differ (-want +got):\n%s", ve, diff)
			}
		})
	}
}

// TestMarshalEveryType marshals an event of every Go payload type and
// validates it with both validators, and decodes it back unchanged.
func TestMarshalEveryType(t *testing.T) {
	seen := map[string]bool{}
	for _, ne := range exampleChain(t) {
		wire, err := Marshal(ne.env)
		if err != nil {
			t.Fatalf("%s: %v", ne.name, err)
		}
		if err := ValidateReference(wire); err != nil {
			t.Errorf("%s: jsonschema/v5: %v", ne.name, err)
		}
		got, err := Decode(wire)
		if err != nil {
			t.Errorf("%s: Decode: %v", ne.name, err)
			continue
		}
		if diff := cmp.Diff(ne.env, got); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", ne.name, diff)
		}
		p, err := got.DecodePayload()
		if err != nil {
			t.Fatalf("%s: %v", ne.name, err)
		}
		again := *got
		if err := again.SetPayload(p); err != nil {
			t.Fatal(err)
		}
		if string(again.Payload) != string(got.Payload) {
			t.Errorf("%s: payload changed through its Go type:\n%s\n%s", ne.name, got.Payload, again.Payload)
		}
		seen[ne.env.EventType] = true
	}
	for _, typ := range EventTypes {
		if !seen[typ] {
			t.Errorf("%s: not marshalled", typ)
		}
		if p := newPayload(typ); p == nil || p.EventType() != typ {
			t.Errorf("newPayload(%s) = %v", typ, p)
		}
	}
}

// TestSchemaListsMatchGo keeps the schema's enums and the Go constants equal.
func TestSchemaListsMatchGo(t *testing.T) {
	b, err := fs.ReadFile(schemas.FS, "v1/envelope.json")
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Properties struct {
			EventType struct{ Enum []string } `json:"event_type"`
		}
		Defs struct {
			ReasonCode struct{ Enum []string } `json:"reason_code"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, c := range ReasonCodes {
		codes = append(codes, string(c))
	}
	if diff := cmp.Diff(codes, env.Defs.ReasonCode.Enum); diff != "" {
		t.Errorf("reason codes (-Go +schema):\n%s", diff)
	}
	if diff := cmp.Diff(EventTypes, env.Properties.EventType.Enum); diff != "" {
		t.Errorf("event types (-Go +schema):\n%s", diff)
	}
	for _, c := range ReasonCodes {
		if !c.Valid() {
			t.Errorf("%s not Valid", c)
		}
	}
	if ReasonCode("nope").Valid() {
		t.Error("unknown reason code Valid")
	}
}

var seqRE = regexp.MustCompile(`"seq": [0-9]+`)

// TestStrictInput covers what JSON Schema cannot say but events require.
func TestStrictInput(t *testing.T) {
	good := string(readExamples(t, "valid")["session.ended.json"])
	tests := []struct {
		name    string
		in      string
		pointer string
		code    string
	}{
		{"not json", `{"a":`, "", CodeSyntax},
		{"trailing data", good + "{}", "", CodeSyntax},
		{"empty", ``, "", CodeSyntax},
		{"invalid utf8", strings.Replace(good, `"completed"`, "\"compl\xffeted\"", 1), "", CodeInvalidUTF8},
		{"lone surrogate", strings.Replace(good, `"completed"`, `"\ud800"`, 1), "", CodeInvalidUTF8},
		{"duplicate envelope key", strings.Replace(good, `"tenant": "acme"`, `"tenant": "acme", "tenant": "evil"`, 1), "/tenant", CodeDuplicateKey},
		{"duplicate payload key", strings.Replace(good, `"reason": "completed"`, `"reason": "completed", "reason": "held"`, 1), "/payload/reason", CodeDuplicateKey},
		{"fraction", seqRE.ReplaceAllString(good, `"seq": 2.0`), "/seq", CodeType},
		{"exponent", strings.Replace(good, `"duration_ms": `, `"duration_ms": 1e3, "x": `, 1), "/payload/duration_ms", CodeType},
		{"int64 overflow", seqRE.ReplaceAllString(good, `"seq": 99999999999999999999999`), "/seq", CodeMaximum},
		{"negative overflow", seqRE.ReplaceAllString(good, `"seq": -99999999999999999999999`), "/seq", CodeMinimum},
		{"deep", strings.Repeat("[", 40) + strings.Repeat("]", 40), "", CodeTooDeep},
		{"too large", `"` + strings.Repeat("a", MaxEventSize) + `"`, "", CodeTooLarge},
		{"not an object", `[]`, "", CodeType},
		{"schema v2", strings.Replace(good, `"1.0"`, `"2.1"`, 1), "/schema_version", CodeUnsupportedVersion},
		{"escaped key", strings.Replace(good, `"tenant": "acme"`, `"tena\u006et": "acme"`, 1), "", ""},
		{"escaped value", strings.Replace(good, `"tenant": "acme"`, `"tenant": "ac\u006de"`, 1), "", ""},
		{"escaped duplicate", strings.Replace(good, `"tenant": "acme"`, `"tenant": "acme", "tena\u006et": "acme"`, 1), "/tenant", CodeDuplicateKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []struct {
				name string
				f    func([]byte) error
			}{{"fast", ValidateBytes}, {"reference", ValidateReference}} {
				err := v.f([]byte(tc.in))
				if tc.code == "" {
					if err != nil {
						t.Errorf("%s: %v", v.name, err)
					}
					continue
				}
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("%s: got %v, want *ValidationError", v.name, err)
				}
				if diff := cmp.Diff([2]string{tc.pointer, tc.code}, [2]string{ve.Pointer, ve.Code}); diff != "" {
					t.Errorf("%s: %q (-want +got):\n%s", v.name, ve, diff)
				}
			}
		})
	}
	// Escapes decode to the same envelope as plain text.
	env, err := Decode([]byte(strings.Replace(good, `"tenant": "acme"`, `"tena\u006et": "ac\u006de"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if env.Tenant != "acme" {
		t.Errorf("Tenant = %q", env.Tenant)
	}
	if err := VerifyChain([]*Envelope{env}, FromAnywhere()); err != nil {
		t.Errorf("escaped copy no longer matches its hash: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := string(readExamples(t, "valid")["session.ended.json"])
	_, err := Decode([]byte(strings.Replace(good, `"session.ended"`, `"session.paused"`, 1)))
	if !errors.Is(err, ErrUnknownEventType) || !errors.Is(err, ErrValidation) {
		t.Errorf("unknown type: %v", err)
	}
	_, err = Decode([]byte(strings.Replace(good, `"1.0"`, `"3.0"`, 1)))
	if !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("v3: %v", err)
	}
	// A later minor of major 1 is read.
	if _, err := Decode([]byte(strings.Replace(good, `"1.0"`, `"1.7"`, 1))); err != nil {
		t.Errorf("v1.7: %v", err)
	}
	var ve *ValidationError
	_, err = Decode([]byte(strings.Replace(good, `"duration_ms": `, `"duration_ms": "`, 1)))
	if !errors.As(err, &ve) || ve.Code != CodeSyntax {
		t.Errorf("syntax: %v", err)
	}
	want := "/payload/duration_ms: expected integer, got string"
	_, err = Decode([]byte(strings.Replace(strings.Replace(good, `"duration_ms": `, `"duration_ms": "`, 1), `,
    "reason"`, `",
    "reason"`, 1)))
	if err == nil || err.Error() != want {
		t.Errorf("message: got %v, want %s", err, want)
	}
}

// TestFastValidatorCompiler checks that the fast validator refuses keywords
// it does not implement instead of ignoring them.
func TestFastValidatorCompiler(t *testing.T) {
	for _, kw := range []string{`"oneOf": [{}]`, `"type": "number"`, `"additionalProperties": true`, `"enum": [1]`, `"type": "integer"`, `"patternProperties": {}`, `"format": "nope"`} {
		var m map[string]any
		if err := json.Unmarshal([]byte("{"+kw+"}"), &m); err != nil {
			t.Fatal(err)
		}
		c := &compiler{docs: map[string]map[string]any{schemaBase + "x.json": m}, nodes: map[string]*snode{}}
		if _, err := c.resolve(schemaBase + "x.json"); err == nil {
			t.Errorf("%s: compiled", kw)
		}
	}
	if _, err := registry(); err != nil {
		t.Fatal(err)
	}
}
