package events

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v5"
)

// decodeGeneral is Decode without the canonical fast path.
func decodeGeneral(data []byte) (*Envelope, error) {
	reg, err := registry()
	if err != nil {
		return nil, err
	}
	t := treePool.Get().(*jtree)
	defer treePool.Put(t)
	if verr := reg.validate(t, data); verr != nil {
		return nil, verr
	}
	return t.envelope(reg)
}

// decodeFast is the canonical fast path alone; ok false: it gave up.
func decodeFast(t testing.TB, data []byte) (*Envelope, bool) {
	t.Helper()
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	return reg.canon.decode(data)
}

// checkAgrees fails unless the general path accepts data and decodes it
// to env, payload included.
func checkAgrees(t *testing.T, data []byte, env *Envelope) {
	t.Helper()
	want, err := decodeGeneral(data)
	if err != nil {
		t.Fatalf("fast path accepted what the general path rejects (%v):\n%s", err, data)
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Fatalf("fast path decoded differently (-general +fast):\n%s\n%s", diff, data)
	}
	if !bytes.Equal(want.Payload, env.Payload) {
		t.Fatalf("payloads differ:\n%s\n%s", want.Payload, env.Payload)
	}
	pw, errw := want.DecodePayload()
	pf, errf := env.DecodePayload()
	if errw != nil || errf != nil {
		t.Fatalf("DecodePayload: general %v, fast %v", errw, errf)
	}
	if diff := cmp.Diff(pw, pf); diff != "" {
		t.Fatalf("decoded payloads differ (-general +fast):\n%s", diff)
	}
}

// TestCanonicalFastPathTaken: every valid example, and every event of the
// example session, in canonical form takes the fast path (so the
// benchmark measures what production gets) and decodes exactly as the
// general path does; the same events as stored (indented) and every
// invalid example do not.
func TestCanonicalFastPathTaken(t *testing.T) {
	var canon [][]byte
	valid := readExamples(t, "valid")
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range valid {
			if !yield(k) {
				return
			}
		}
	}) {
		c, err := Canonicalize(valid[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		canon = append(canon, c)
		if !bytes.Equal(c, valid[name]) {
			if _, ok := decodeFast(t, valid[name]); ok {
				t.Errorf("%s as stored (not canonical) took the fast path", name)
			}
		}
	}
	for _, ne := range exampleChain(t) {
		wire, err := Marshal(ne.env)
		if err != nil {
			t.Fatal(err)
		}
		canon = append(canon, wire)
	}
	types := map[string]bool{}
	for _, c := range canon {
		env, ok := decodeFast(t, c)
		if !ok {
			t.Errorf("canonical valid event did not take the fast path:\n%s", c)
			continue
		}
		types[env.EventType] = true
		checkAgrees(t, c, env)
	}
	if len(types) != len(EventTypes) {
		t.Errorf("fast path covered %d event types, want all %d", len(types), len(EventTypes))
	}
	t.Logf("%d canonical events (%d valid examples, %d of the example session) on the fast path, %d event types",
		len(canon), len(valid), len(canon)-len(valid), len(types))
	for name, b := range readExamples(t, "invalid") {
		for _, in := range [][]byte{b, mustCanon(b)} {
			if _, ok := decodeFast(t, in); ok {
				t.Errorf("invalid example %s took the fast path", name)
			}
		}
	}
}

// seqMember and hashStart find the text the cases below edit in a
// canonical event: its "seq" member, and its "hash" up to the first digit.
func seqMember(good string) string { return seqMemberRE.FindString(good) }
func hashStart(good string) string { return hashStartRE.FindString(good) }

var (
	seqMemberRE = regexp.MustCompile(`"seq":[0-9]+`)
	hashStartRE = regexp.MustCompile(`"hash":"[0-9a-f]`)
)

func mustCanon(b []byte) []byte {
	if c, err := Canonicalize(b); err == nil {
		return c
	}
	return b
}

// canonCase is an edit of a canonical event, with the verdicts on it.
type canonCase struct {
	name  string
	in    string
	valid bool // the general path's verdict
	fast  bool // the fast path accepts it
}

func canonCases(good string) []canonCase {
	return []canonCase{
		{"space after colon", strings.Replace(good, `"tenant":"acme"`, `"tenant": "acme"`, 1), true, false},
		{"newline at end", good + "\n", true, false},
		{"keys out of order", strings.Replace(strings.Replace(good, `"tenant":"acme",`, ``, 1), `"actor":`, `"tenant":"acme","actor":`, 1), true, false},
		{"escape in value", strings.Replace(good, `"1.0.31"`, `"1.0.3\u0031"`, 1), true, true},
		{"escapes in value", strings.Replace(good, `"1.0.31"`, `"1.0\"\\\/\b\f\n\r\t\u00e9"`, 1), true, true},
		{"non-ASCII value", strings.Replace(good, `"1.0.31"`, `"1.0.31é"`, 1), true, true},
		{"64 characters", strings.Replace(good, `"1.0.31"`, `"`+strings.Repeat("é", 64)+`"`, 1), true, true},
		{"65 characters", strings.Replace(good, `"1.0.31"`, `"`+strings.Repeat("é", 65)+`"`, 1), false, false},
		{"64 escaped", strings.Replace(good, `"1.0.31"`, `"`+strings.Repeat(`\u00e9`, 64)+`"`, 1), true, true},
		{"surrogate pair escape", strings.Replace(good, `"1.0.31"`, `"\ud83d\ude00"`, 1), true, false},
		{"lone surrogate", strings.Replace(good, `"1.0.31"`, `"\ud83d"`, 1), false, false},
		{"invalid UTF-8", strings.Replace(good, `"1.0.31"`, "\"1.0\xff\"", 1), false, false},
		{"control character", strings.Replace(good, `"1.0.31"`, "\"1.0\x01\"", 1), false, false},
		{"escaped quote in argv", strings.Replace(good, `"origin"`, `"or\"igin"`, 1), true, true},
		{"escape in a unique item", strings.Replace(good, `"cwd":"/workspace"`, `"cwd":"/workspace","env_keys":["A\u0042","AB"]`, 1), false, false},
		{"unique items", strings.Replace(good, `"cwd":"/workspace"`, `"cwd":"/workspace","env_keys":["AB","AC"]`, 1), true, true},
		{"duplicate items", strings.Replace(good, `"cwd":"/workspace"`, `"cwd":"/workspace","env_keys":["AB","AB"]`, 1), false, false},
		{"escape in key", strings.Replace(good, `"tenant":"acme"`, `"tena\u006et":"acme"`, 1), true, false},
		{"duplicate key", strings.Replace(good, `"tenant":"acme"`, `"tenant":"acme","tenant":"acme"`, 1), false, false},
		{"unknown key", strings.Replace(good, `"tenant":"acme"`, `"tenant":"acme","tenantx":"acme"`, 1), false, false},
		{"fraction", strings.Replace(good, seqMember(good), seqMember(good)+".0", 1), false, false},
		{"leading zero", strings.Replace(good, seqMember(good), `"seq":0`+strings.TrimPrefix(seqMember(good), `"seq":`), 1), false, false},
		{"seq zero", strings.Replace(good, seqMember(good), `"seq":0`, 1), false, false},
		{"hash upper case", strings.Replace(good, hashStart(good), `"hash":"F`, 1), false, false},
		{"trailing data", good + "{}", false, false},
		{"truncated", good[:len(good)-1], false, false},
		{"unknown event type", strings.Replace(good, `"event_type":"tool_call.requested"`, `"event_type":"tool_call.nope"`, 1), false, false},
		{"wrong payload for type", strings.Replace(good, `"event_type":"tool_call.requested"`, `"event_type":"policy.decision"`, 1), false, false},
	}
}

// TestCanonicalFastPathGivesUp: inputs the fast path leaves to the general
// path, which still gives its usual verdict on each, and text it handles
// itself (escapes, non-ASCII), decoded as the general path does.
func TestCanonicalFastPathGivesUp(t *testing.T) {
	_, wire := benchEvent(t)
	good := string(wire)
	tests := canonCases(good)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in == good {
				t.Fatal("replacement did not apply")
			}
			if env, ok := decodeFast(t, []byte(tc.in)); ok != tc.fast {
				t.Errorf("fast path took it: %v, want %v: %s", ok, tc.fast, tc.in)
			} else if ok {
				checkAgrees(t, []byte(tc.in), env)
			}
			_, err := Decode([]byte(tc.in))
			if (err == nil) != tc.valid {
				t.Errorf("Decode: %v, want valid %v", err, tc.valid)
			}
			if verr := ValidateBytes([]byte(tc.in)); (verr == nil) != tc.valid {
				t.Errorf("ValidateBytes: %v, want valid %v", verr, tc.valid)
			}
		})
	}
}

// addCanonicalSeeds seeds a fuzz target of the canonical decoders: the
// examples, a stamped chain of them in canonical form, and the canonical
// edge cases of the bench event.
func addCanonicalSeeds(f *testing.F) {
	f.Helper()
	addExampleSeeds(f)
	for _, ne := range exampleChain(f) {
		if wire, err := Marshal(ne.env); err == nil {
			f.Add(wire)
		}
	}
	_, wire := benchEvent(f)
	for _, tc := range canonCases(string(wire)) {
		f.Add([]byte(tc.in))
	}
}

// FuzzCanonicalFastPath: whenever the fast path accepts an input, the
// general path accepts it too and decodes it to an equal Envelope and
// payload, and ValidateBytes agrees.
func FuzzCanonicalFastPath(f *testing.F) {
	addCanonicalSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, ok := decodeFast(t, data)
		var rs rootScan
		reg, _ := registry()
		scanned := reg.canon.scan(data, &rs)
		if ok && !scanned {
			t.Fatal("decode accepted what scan did not")
		}
		if scanned && ValidateBytes(data) != nil {
			t.Fatalf("ValidateBytes rejects what its fast path accepts:\n%s", data)
		}
		if !ok {
			return
		}
		checkAgrees(t, data, env)
		if err := ValidateReference(data); err != nil {
			t.Fatalf("fast path accepted what jsonschema/v5 rejects: %v\n%s", err, data)
		}
	})
}

// TestCanonicalOpenObject: in an object its schemas leave open, keys that
// are not properties are still held to strictly increasing order, so a
// duplicate of a property is never taken.
func TestCanonicalOpenObject(t *testing.T) {
	num := &snode{types: tInteger, hasMin: true, hasMax: true, min: 0, max: 9, minLen: -1, maxLen: -1, minItems: -1, maxItems: -1}
	open := &snode{types: tObject, props: []sprop{{name: "b", s: num}, {name: "d", s: num}},
		required: []int{1}, requiredMask: 2, minLen: -1, maxLen: -1, minItems: -1, maxItems: -1}
	c := (&canonCompiler{memo: map[*snode]*cnode{}}).node([]*snode{open}, 0)
	tests := []struct {
		in   string
		want bool
	}{
		{`{"d":1}`, true},
		{`{"a":"x","b":1,"c":[1,{"p":null}],"d":2,"e":true}`, true},
		{`{"b":1,"b":2,"d":1}`, false},
		{`{"b":1,"c":1,"c":1,"d":1}`, false},
		{`{"c":1,"b":1,"d":1}`, false},
		{`{"b":1,"d":1,"c":1}`, false},
		{`{"b":1}`, false},
		{`{"d":10}`, false},
		{`{"c":{"y":1,"x":2},"d":1}`, false},
		{`{"c":1.5,"d":1}`, false},
		{`{"c":-0,"d":1}`, false},
		{`{"d":1,"e":"\u00e9"}`, true},
		{`{"d":1,"e\u0065":1}`, false},
	}
	for _, tc := range tests {
		s := canonScan{d: []byte(tc.in)}
		got := s.value(c, 0) && s.pos == len(s.d)
		if got != tc.want {
			t.Errorf("%s: %v, want %v", tc.in, got, tc.want)
		}
		if got {
			if err := (&jtree{}).parse([]byte(tc.in)); err != nil {
				t.Errorf("%s: accepted, but the parser says %s", tc.in, err.msg)
			}
		}
	}
}

// TestPatternSWAR holds the eight-bytes-at-a-time range test of every
// schema pattern's classes to the class table: every byte value at every
// position of a word of members.
func TestPatternSWAR(t *testing.T) {
	tested := 0
	for _, src := range schemaPatterns(t) {
		p, err := compilePattern(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, items := range p.alts {
			for k := range items {
				it := &items[k]
				if it.nr == 0 {
					continue
				}
				tested++
				var member byte
				for c := 0; c < 256; c++ {
					if it.in[c] {
						member = byte(c)
					}
				}
				for pos := 0; pos < 8; pos++ {
					for c := 0; c < 256; c++ {
						w := bytes.Repeat([]byte{member}, 8)
						w[pos] = byte(c)
						x := uint64(0)
						for i := 7; i >= 0; i-- {
							x = x<<8 | uint64(w[i])
						}
						if got, want := it.swar(x), it.in[c]; got != want {
							t.Fatalf("pattern %s, item %d, byte %#x at %d: swar %v, table %v", src, k, c, pos, got, want)
						}
					}
				}
			}
		}
	}
	if tested == 0 {
		t.Fatal("no pattern item uses the word test")
	}
}

// TestCanonicalFastPathAllocs: decoding any example event in canonical
// form, escaped free text included, allocates twice (the Envelope and one
// buffer for its strings and payload).
func TestCanonicalFastPathAllocs(t *testing.T) {
	for _, ne := range exampleChain(t) {
		wire, err := Marshal(ne.env)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeFast(t, wire); !ok {
			t.Fatalf("%s: not on the fast path", ne.name)
		}
		if n := testing.AllocsPerRun(20, func() { _, _ = Decode(wire) }); n > 2 {
			t.Errorf("%s: %v allocations per Decode, want at most 2", ne.name, n)
		}
	}
}

// TestIPv4Fast: whatever the allocation-free IPv4 check accepts, the
// jsonschema/v5 format accepts too, and it accepts the plain forms.
func TestIPv4Fast(t *testing.T) {
	ref := jsonschema.Formats["ipv4"]
	rng := rand.New(rand.NewPCG(9, 9))
	alphabet := []byte("0123456789....+-: a")
	accepted := 0
	for i := 0; i < 200000; i++ {
		b := make([]byte, rng.IntN(18))
		for k := range b {
			b[k] = alphabet[rng.IntN(len(alphabet))]
		}
		if rng.IntN(2) == 0 {
			b = fmt.Appendf(nil, "%d.%d.%d.%d", rng.IntN(300), rng.IntN(300), rng.IntN(300), rng.IntN(300))
		}
		if fastIPv4(b) {
			accepted++
			if !ref(string(b)) {
				t.Fatalf("%q: fast check accepts, jsonschema/v5 does not", b)
			}
		}
	}
	for _, s := range []string{"0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.100.20"} {
		if !fastIPv4([]byte(s)) {
			t.Errorf("%s: not accepted", s)
		}
	}
	for _, s := range []string{"256.0.0.1", "01.0.0.1", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.0004", "+1.2.3.4", ""} {
		if fastIPv4([]byte(s)) {
			t.Errorf("%q: accepted", s)
		}
	}
	if accepted < 1000 {
		t.Fatalf("only %d accepted", accepted)
	}
}

// TestQuote holds the in-line quote search to bytes.IndexByte at every
// offset of random strings, including bytes one away from '"'.
func TestQuote(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	alphabet := []byte("\"!#\x00\x80\xa2\xffa")
	for n := 0; n < 5000; n++ {
		d := make([]byte, rng.IntN(40))
		for k := range d {
			d[k] = alphabet[rng.IntN(len(alphabet))]
			if rng.IntN(3) > 0 {
				d[k] = byte('a' + rng.IntN(26))
			}
		}
		for i := 0; i <= len(d); i++ {
			want := bytes.IndexByte(d[i:], '"')
			if want >= 0 {
				want += i
			}
			if got := quote(d, i); got != want {
				t.Fatalf("quote(%q, %d) = %d, want %d", d, i, got, want)
			}
		}
	}
}
