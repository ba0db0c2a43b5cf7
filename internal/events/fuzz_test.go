package events

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addExampleSeeds(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, b := range readExamples(f, dir) {
			f.Add(b)
			if c, err := Canonicalize(b); err == nil {
				f.Add(c)
			}
		}
	}
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Add([]byte(`[1.5, "\ud800", -0]`))
}

// FuzzDecode: Decode never panics; the fast validator and jsonschema/v5
// give the same verdict; a decoded event re-encodes canonically, decodes to
// the same Envelope and keeps its hash.
func FuzzDecode(f *testing.F) {
	addExampleSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Decode(data)
		fastErr := ValidateBytes(data)
		refErr := ValidateReference(data)
		if (fastErr == nil) != (refErr == nil) {
			t.Fatalf("validators disagree on %q:\nfast: %v\njsonschema/v5: %v", data, fastErr, refErr)
		}
		if (err == nil) != (fastErr == nil) {
			t.Fatalf("Decode (%v) and ValidateBytes (%v) disagree", err, fastErr)
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Decode error %v is not a *ValidationError", err)
			}
			return
		}
		wire, err := Marshal(env)
		if err != nil {
			t.Fatalf("Marshal(decoded): %v", err)
		}
		again, err := Decode(wire)
		if err != nil {
			t.Fatalf("Decode(Marshal(decoded)): %v\n%s", err, wire)
		}
		if diff := cmp.Diff(env, again, cmp.Comparer(func(a, b []byte) bool {
			ca, _ := Canonicalize(a)
			cb, _ := Canonicalize(b)
			return bytes.Equal(ca, cb)
		})); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		wire2, _ := Marshal(again)
		if !bytes.Equal(wire, wire2) {
			t.Fatalf("canonical encoding not stable:\n%s\n%s", wire, wire2)
		}
		h1, err1 := ComputeHash(env)
		h2, err2 := ComputeHash(again)
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Fatalf("hash changed through a round trip: %s %v, %s %v", h1, err1, h2, err2)
		}
		if _, err := env.DecodePayload(); err != nil {
			t.Fatalf("DecodePayload of a valid event: %v", err)
		}
	})
}

// FuzzVerifyChain tampers with the example session (ops: delete, swap,
// duplicate, edit, relink) or checks arbitrary events: the verifier never
// panics, and whenever it passes a stream, every chain in it really is
// whole.
func FuzzVerifyChain(f *testing.F) {
	var lines [][]byte
	for _, ne := range exampleChain(f) {
		b, err := Marshal(ne.env)
		if err != nil {
			f.Fatal(err)
		}
		lines = append(lines, b)
	}
	session := bytes.Join(lines, []byte("\n"))
	f.Add(session, []byte{})
	f.Add(session, []byte{0, 3, 0})
	f.Add(session, []byte{1, 2, 3})
	f.Add(session, []byte{2, 5, 0, 3, 1, 0})
	f.Add(session, []byte{4, 7, 2})
	f.Fuzz(func(t *testing.T, stream, ops []byte) {
		var evs []*Envelope
		for _, line := range bytes.Split(stream, []byte("\n")) {
			if e, err := Decode(line); err == nil {
				evs = append(evs, e)
			}
		}
		if len(evs) == 0 {
			return
		}
		for k := 0; k+2 < len(ops) && len(evs) > 0; k += 3 {
			i, j := int(ops[k+1])%len(evs), int(ops[k+2])%len(evs)
			switch ops[k] % 5 {
			case 0:
				evs = slices.Delete(evs, i, i+1)
			case 1:
				evs[i], evs[j] = evs[j], evs[i]
			case 2:
				evs = slices.Insert(evs, j, evs[i])
			case 3:
				c := *evs[i]
				c.Tenant += "x"
				evs[i] = &c
			case 4:
				c := *evs[i]
				c.PrevHash = evs[j].Hash
				if h, err := ComputeHash(&c); err == nil {
					c.Hash = h
				}
				evs[i] = &c
			}
		}
		for _, opts := range [][]VerifyOption{nil, {AnyOrder()}, {FromAnywhere()}, {AnyOrder(), FromAnywhere()}} {
			err := VerifyChain(evs, opts...)
			var ce *ChainError
			if err != nil && !errors.As(err, &ce) {
				t.Fatalf("VerifyChain error %v is not a *ChainError", err)
			}
			if err == nil && len(opts) == 0 {
				assertWhole(t, evs)
			}
		}
		v := NewVerifier()
		for _, e := range evs {
			_ = v.Add(e)
		}
	})
}

// assertWhole checks, independently of Verifier, that each chain in evs
// runs seq 1, 2, … with every hash and link correct.
func assertWhole(t *testing.T, evs []*Envelope) {
	t.Helper()
	last := map[ChainKey]*Envelope{}
	for _, e := range evs {
		p := last[e.Key()]
		wantSeq, wantPrev := uint64(1), GenesisHash
		if p != nil {
			wantSeq, wantPrev = p.Seq+1, p.Hash
		}
		wire, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		without := strings.Replace(string(wire), `"hash":"`+e.Hash+`",`, "", 1)
		if e.Seq != wantSeq || e.PrevHash != wantPrev || sha256Hex(e.PrevHash+without) != e.Hash {
			t.Fatalf("VerifyChain passed a broken chain at event %s (seq %d)", e.EventID, e.Seq)
		}
		last[e.Key()] = e
	}
}

// TestPatternsAgreeWithRegexp holds the byte matcher to Go regexp on every
// schema pattern, over strings built from the characters that matter.
func TestPatternsAgreeWithRegexp(t *testing.T) {
	pats := schemaPatterns(t)
	rng := rand.New(rand.NewPCG(7, 7))
	alphabet := []byte("0123456789abcdefABCDEFTZz.:-_/+=@ ~é\x00")
	for _, src := range pats {
		p, err := compilePattern(src)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(src)
		for i := 0; i < 20000; i++ {
			b := make([]byte, rng.IntN(90))
			for k := range b {
				b[k] = alphabet[rng.IntN(len(alphabet))]
			}
			if p.match(b) != re.Match(b) {
				t.Fatalf("pattern %s on %q: matcher %v, regexp %v", src, b, p.match(b), re.Match(b))
			}
		}
		// Random strings rarely come near a long pattern: also try
		// strings built from the pattern's own items, then bent a little.
		for i := 0; i < 10000 && p.alts != nil; i++ {
			b := samplePattern(rng, p.alts[rng.IntN(len(p.alts))])
			for k := rng.IntN(3); k > 0 && len(b) > 0; k-- {
				j := rng.IntN(len(b))
				switch rng.IntN(3) {
				case 0:
					b[j] = alphabet[rng.IntN(len(alphabet))]
				case 1:
					b = append(b[:j], b[j+1:]...)
				case 2:
					b = append(b[:j+1], b[j:]...)
				}
			}
			if p.match(b) != re.Match(b) {
				t.Fatalf("pattern %s on %q: matcher %v, regexp %v", src, b, p.match(b), re.Match(b))
			}
		}
	}
}

// samplePattern returns a string an item sequence matches.
func samplePattern(rng *rand.Rand, items []patItem) []byte {
	var b []byte
	for _, it := range items {
		var class []byte
		for c := 0; c < 128; c++ {
			if it.has(byte(c)) {
				class = append(class, byte(c))
			}
		}
		n := it.min + rng.IntN(10)
		if it.max < n {
			n = it.max
		}
		for ; n > 0; n-- {
			b = append(b, class[rng.IntN(len(class))])
		}
	}
	return b
}

// FuzzPattern: the byte matcher agrees with Go regexp on any input.
func FuzzPattern(f *testing.F) {
	pats := schemaPatterns(f)
	f.Add("2025-03-14T09:26:53.663793Z")
	f.Add("1900478732460691456")
	f.Add(strings.Repeat("ab", 32))
	f.Add("sha256:8f2d1c0b9a7e")
	f.Fuzz(func(t *testing.T, s string) {
		for _, src := range pats {
			p, _ := compilePattern(src)
			if got, want := p.match([]byte(s)), regexp.MustCompile(src).MatchString(s); got != want {
				t.Fatalf("pattern %s on %q: matcher %v, regexp %v", src, s, got, want)
			}
		}
	})
}

func schemaPatterns(t testing.TB) []string {
	t.Helper()
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[*snode]bool{}
	var out []string
	var walk func(*snode)
	walk = func(n *snode) {
		if n == nil || seen[n] {
			return
		}
		seen[n] = true
		if n.pattern != nil && !slices.Contains(out, n.pattern.String()) {
			out = append(out, n.pattern.String())
		}
		walk(n.ref)
		walk(n.items)
		for _, p := range n.props {
			walk(p.s)
		}
		for _, s := range append(slices.Clone(n.allOf), n.anyOf...) {
			walk(s)
		}
	}
	walk(reg.envelope)
	for _, s := range reg.types {
		walk(s)
	}
	if len(out) < 10 {
		t.Fatalf("found only %d patterns", len(out))
	}
	fast := 0
	for _, src := range out {
		if p, _ := compilePattern(src); p.alts != nil {
			fast++
		}
	}
	if testing.Verbose() {
		fmt.Printf("%d schema patterns, %d on the byte matcher\n", len(out), fast)
	}
	return out
}
