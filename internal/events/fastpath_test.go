package events

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPlainRun holds the eight-bytes-at-a-time string scan to the byte
// table it replaces, at every offset of random strings rich in the bytes
// that end a plain run.
func TestPlainRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("aZ09 ~\x7f\"\\\x00\x1f\x20\x21\x5b\x5d\x80\xc3\xa9\xff")
	naive := func(d []byte, i int) int {
		for i < len(d) && plain[d[i]] {
			i++
		}
		return i
	}
	for n := 0; n < 5000; n++ {
		d := make([]byte, rng.IntN(40))
		for k := range d {
			if rng.IntN(4) == 0 {
				d[k] = alphabet[rng.IntN(len(alphabet))]
			} else {
				d[k] = byte('a' + rng.IntN(26))
			}
		}
		for i := 0; i <= len(d); i++ {
			if got, want := plainRun(d, i), naive(d, i); got != want {
				t.Fatalf("plainRun(%q, %d) = %d, want %d", d, i, got, want)
			}
		}
	}
	for c := 0; c < 256; c++ {
		d := bytes.Repeat([]byte{'a'}, 16)
		d[11] = byte(c)
		if got, want := plainRun(d, 0), naive(d, 0); got != want {
			t.Fatalf("byte %#x: plainRun = %d, want %d", c, got, want)
		}
	}
}

// TestTreeFlags checks what the parser records for the validator's fast
// paths: which objects have keys known distinct (in strictly increasing
// order, none escaped), which strings are plain ASCII, and the first
// number that is not an integer.
func TestTreeFlags(t *testing.T) {
	type flags struct {
		Uniq  []bool // objects, in document order
		ASCII []bool // strings (keys included), in document order
		Frac  int
	}
	tests := []struct {
		in   string
		want flags
	}{
		{`{}`, flags{Uniq: []bool{true}, Frac: -1}},
		{`{"a":1,"b":2}`, flags{Uniq: []bool{true}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"b":1,"a":2}`, flags{Uniq: []bool{false}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"a":1,"a":2}`, flags{Uniq: []bool{false}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"a":1,"ab":2,"b":3}`, flags{Uniq: []bool{true}, ASCII: []bool{true, true, true}, Frac: -1}},
		{`{"\u0061":1,"b":2}`, flags{Uniq: []bool{false}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"a":{"z":1,"y":2},"b":"é"}`, flags{Uniq: []bool{true, false}, ASCII: []bool{true, true, true, true, false}, Frac: -1}},
		{`[1,2.5,{"a":1e3}]`, flags{Uniq: []bool{true}, ASCII: []bool{true}, Frac: 2}},
		{`{"abcdefgh1":1,"abcdefgh2":2}`, flags{Uniq: []bool{true}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"abcdefgh2":1,"abcdefgh1":2}`, flags{Uniq: []bool{false}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"abcdefgh":1,"abcdefgh":2}`, flags{Uniq: []bool{false}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"abc":1,"abcd":2}`, flags{Uniq: []bool{true}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"abcd":1,"abc":2}`, flags{Uniq: []bool{false}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"":1,"a":2}`, flags{Uniq: []bool{true}, ASCII: []bool{true, true}, Frac: -1}},
		{`{"a":1,"":2}`, flags{Uniq: []bool{false}, ASCII: []bool{true, true}, Frac: -1}},
	}
	for _, tc := range tests {
		tr := &jtree{}
		if err := tr.parse([]byte(tc.in)); err != nil {
			t.Fatalf("%s: %s", tc.in, err.msg)
		}
		got := flags{Frac: tr.frac}
		for _, n := range tr.nodes {
			switch n.kind {
			case jObject:
				got.Uniq = append(got.Uniq, n.uniq)
			case jString:
				got.ASCII = append(got.ASCII, n.ascii)
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.in, diff)
		}
	}
}

// TestUniqKeys: an object is marked uniq exactly when its keys are
// strictly increasing, none escaped, on random objects whose keys share
// long prefixes and sit at every distance from the end of the input.
func TestUniqKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for n := 0; n < 20000; n++ {
		keys := make([]string, rng.IntN(5))
		for k := range keys {
			parts := make([]string, rng.IntN(12))
			for c := range parts {
				parts[c] = "k"
				if rng.IntN(4) == 0 {
					parts[c] = []string{"j", "l", `\`, "é"}[rng.IntN(4)]
				}
			}
			keys[k] = strings.Join(parts, "")
		}
		var doc strings.Builder
		doc.WriteString("{")
		want := true
		for k, key := range keys {
			if k > 0 {
				doc.WriteString(",")
				want = want && keys[k-1] < key
			}
			if strings.Contains(key, `\`) {
				key = strings.ReplaceAll(key, `\`, `\u006b`)
				want = false
			}
			doc.WriteString(`"` + key + `":0`)
		}
		doc.WriteString("}")
		tr := &jtree{}
		if err := tr.parse([]byte(doc.String())); err != nil {
			t.Fatalf("%s: %s", doc.String(), err.msg)
		}
		if tr.nodes[0].uniq != want {
			t.Fatalf("%s: uniq %v, want %v", doc.String(), tr.nodes[0].uniq, want)
		}
	}
}

// TestCanonicalInput runs the strict-input cases on canonical bytes, the
// form every event on the wire has and the one the fast paths are for:
// keys in order, no whitespace.
func TestCanonicalInput(t *testing.T) {
	_, wire := benchEvent(t)
	good := string(wire)
	if !strings.Contains(good, `"tenant":"acme","tool_call_id"`) || !strings.Contains(good, `"agent":{"name":"claude-code","version":"1.0.31"}`) {
		t.Fatalf("example changed: %s", good)
	}
	tests := []struct {
		name    string
		in      string
		pointer string
		code    string
	}{
		{"canonical", good, "", ""},
		{"keys out of order", strings.Replace(good, `"tenant":"acme","tool_call_id"`, `"tool_call_id":"x","tenant":"acme","tool_call_id"`, 1), "/tool_call_id", CodeDuplicateKey},
		{"adjacent duplicate", strings.Replace(good, `"tenant":"acme"`, `"tenant":"acme","tenant":"acme"`, 1), "/tenant", CodeDuplicateKey},
		{"escaped duplicate", strings.Replace(good, `"tenant":"acme"`, `"tenant":"acme","tena\u006et":"acme"`, 1), "/tenant", CodeDuplicateKey},
		{"duplicate in payload", strings.Replace(good, `"tool_name":"shell"`, `"tool_name":"shell","tool_name":"shell"`, 1), "/payload/tool_name", CodeDuplicateKey},
		{"unknown key", strings.Replace(good, `"tenant":"acme"`, `"tenant":"acme","tenantx":"acme"`, 1), "/tenantx", CodeAdditional},
		{"reordered, valid", strings.Replace(strings.Replace(good, `"tenant":"acme",`, ``, 1), `"actor":`, `"tenant":"acme","actor":`, 1), "", ""},
		{"64 characters", strings.Replace(good, `"1.0.31"`, `"`+strings.Repeat("é", 64)+`"`, 1), "", ""},
		{"65 characters", strings.Replace(good, `"1.0.31"`, `"`+strings.Repeat("é", 65)+`"`, 1), "/agent/version", CodeMaxLength},
		{"65 ASCII", strings.Replace(good, `"1.0.31"`, `"`+strings.Repeat("v", 65)+`"`, 1), "/agent/version", CodeMaxLength},
		{"64 escaped", strings.Replace(good, `"1.0.31"`, `"`+strings.Repeat(`\u00e9`, 64)+`"`, 1), "", ""},
		{"hash too long", strings.Replace(good, `"hash":"`, `"hash":"0`, 1), "/hash", CodePattern},
		{"hash upper case", strings.Replace(good, hashStart(good), `"hash":"F`, 1), "/hash", CodePattern},
		{"schema 1.10", strings.Replace(good, `"1.0"`, `"1.10"`, 1), "", ""},
		{"schema 1.01", strings.Replace(good, `"1.0"`, `"1.01"`, 1), "/schema_version", CodePattern},
		{"fraction", strings.Replace(good, seqMember(good), seqMember(good)+".0", 1), "/seq", CodeType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []struct {
				name string
				f    func([]byte) error
			}{{"fast", ValidateBytes}, {"reference", ValidateReference}, {"decode", func(b []byte) error { _, err := Decode(b); return err }}} {
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
}

// TestDecodeCopies: a decoded Envelope shares no memory with its input,
// and writing to its Payload leaves its strings alone.
func TestDecodeCopies(t *testing.T) {
	_, wire := benchEvent(t)
	in := bytes.Clone(wire)
	env, err := Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	want := *env
	wantAgent := *env.Agent
	wantPayload := bytes.Clone(env.Payload)
	for i := range in {
		in[i] = 'x'
	}
	if diff := cmp.Diff(want, *env); diff != "" || *env.Agent != wantAgent || !bytes.Equal(env.Payload, wantPayload) {
		t.Fatalf("overwriting the input changed the Envelope (-want +got):\n%s", diff)
	}
	for i := range env.Payload {
		env.Payload[i] = 'y'
	}
	env.Payload = append(env.Payload, "more"...)
	want.Payload = env.Payload
	if diff := cmp.Diff(want, *env); diff != "" || *env.Agent != wantAgent {
		t.Fatalf("writing to Payload changed other fields (-want +got):\n%s", diff)
	}
}
