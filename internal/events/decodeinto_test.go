package events

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decodeIntoInputs returns every example, valid and invalid, as stored
// (indented: the general path) and in canonical form (the fast path for
// the valid ones), by name, in a stable order.
func decodeIntoInputs(t testing.TB) (names []string, inputs [][]byte) {
	t.Helper()
	for _, dir := range []string{"valid", "invalid"} {
		ex := readExamples(t, dir)
		for _, name := range slices.Sorted(maps.Keys(ex)) {
			names = append(names, dir+"/"+name)
			inputs = append(inputs, ex[name])
			if c, err := Canonicalize(ex[name]); err == nil && !bytes.Equal(c, ex[name]) {
				names = append(names, dir+"/"+name+" (canonical)")
				inputs = append(inputs, c)
			}
		}
	}
	return names, inputs
}

// errDiff compares two errors as Decode's callers see them: the verdict
// and, for a *ValidationError, its pointer, code and reason.
func errDiff(want, got error) string {
	var wv, gv *ValidationError
	if errors.As(want, &wv) && errors.As(got, &gv) {
		return cmp.Diff(wv, gv)
	}
	return cmp.Diff(fmt.Sprint(want), fmt.Sprint(got))
}

// checkDecodeInto fails unless DecodeInto(env, data) gives what Decode
// gives: the same error, or an equal Envelope (the zero one on error).
func checkDecodeInto(t testing.TB, env *Envelope, data []byte) {
	t.Helper()
	want, wantErr := Decode(data)
	gotErr := DecodeInto(env, data)
	if diff := errDiff(wantErr, gotErr); diff != "" {
		t.Fatalf("errors differ (-Decode +DecodeInto):\n%s\n%s", diff, data)
	}
	if want == nil {
		want = &Envelope{}
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Fatalf("envelopes differ (-Decode +DecodeInto):\n%s\n%s", diff, data)
	}
}

// TestDecodeIntoExamples: on every example, valid or not, canonical or
// not, DecodeInto into a fresh Envelope agrees with Decode.
func TestDecodeIntoExamples(t *testing.T) {
	names, inputs := decodeIntoInputs(t)
	valid := 0
	for i, in := range inputs {
		t.Run(names[i], func(t *testing.T) {
			var env Envelope
			checkDecodeInto(t, &env, in)
			if env.EventID != "" {
				valid++
			}
		})
	}
	if want := 2 * len(readExamples(t, "valid")); valid != want {
		t.Errorf("%d inputs decoded, want %d (every valid example, stored and canonical)", valid, want)
	}
}

// TestDecodeIntoReuse: one Envelope reused across every ordered pair of
// examples keeps nothing of the first event once it holds the second,
// whichever path (fast, general, error) each took.
func TestDecodeIntoReuse(t *testing.T) {
	names, inputs := decodeIntoInputs(t)
	for i, first := range inputs {
		for j, second := range inputs {
			var env Envelope
			_ = DecodeInto(&env, first) // checked by TestDecodeIntoExamples
			t.Run(names[i]+" then "+names[j], func(t *testing.T) { checkDecodeInto(t, &env, second) })
		}
	}
}

// TestDecodeIntoNoStaleFields: after an event that sets every optional
// field, a sparse event leaves them empty, including the members of the
// Agent that DecodeInto reuses in place.
func TestDecodeIntoNoStaleFields(t *testing.T) {
	valid := readExamples(t, "valid")
	variant := func(name string, edit func(*Envelope)) []byte {
		t.Helper()
		env, err := Decode(valid[name])
		if err != nil {
			t.Fatal(err)
		}
		edit(env)
		wire, err := Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeFast(t, wire); !ok {
			t.Fatalf("%s variant does not take the fast path:\n%s", name, wire)
		}
		return wire
	}
	rich := variant("policy.decision.approved.json", func(e *Envelope) {
		e.Agent = &Agent{Name: "claude-code", Version: "1.0.31"}
	})
	richEnv, _ := Decode(rich)
	if richEnv.Agent == nil || richEnv.Policy == nil || richEnv.ToolCallID == "" || richEnv.ApprovalID == "" ||
		richEnv.ParentEventID == "" || richEnv.TraceID == "" {
		t.Fatalf("rich event lacks an optional field: %+v", richEnv)
	}
	sparse := variant("session.ended.json", func(e *Envelope) { e.TraceID = "" })
	noVersion := variant("tool_call.requested.json", func(e *Envelope) { e.Agent.Version = "" })
	tests := []struct {
		name   string
		events [][]byte
	}{
		{"rich then sparse", [][]byte{rich, sparse}},
		{"rich then agent without version", [][]byte{rich, noVersion}},
		{"rich, sparse, rich", [][]byte{rich, sparse, rich}},
		{"rich then invalid", [][]byte{rich, []byte(`{"event_type":"session.ended"}`)}},
		{"rich then general path", [][]byte{rich, valid["session.ended.json"]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var env Envelope
			for _, ev := range tc.events {
				checkDecodeInto(t, &env, ev)
			}
		})
	}
}

// canonicalExample returns a valid example in canonical form, checking
// that it takes the fast path.
func canonicalExample(t testing.TB, name string) []byte {
	t.Helper()
	wire, err := Canonicalize(readExamples(t, "valid")[name])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeFast(t, wire); !ok {
		t.Fatalf("canonical %s does not take the fast path", name)
	}
	return wire
}

// TestDecodeIntoAllocs: the ingester relies on this. A canonical event
// decoded into a reused Envelope allocates nothing (after the first
// event, which may allocate the Agent and PolicyRef that the rest reuse);
// one with escaped strings allocates their buffer only.
func TestDecodeIntoAllocs(t *testing.T) {
	wire := canonicalExample(t, "tool_call.requested.json")
	var env Envelope
	if n := testing.AllocsPerRun(100, func() {
		if err := DecodeInto(&env, wire); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("DecodeInto of canonical tool_call.requested: %v allocs/op, want 0", n)
	}
	for name := range readExamples(t, "valid") {
		wire := canonicalExample(t, name)
		if n := testing.AllocsPerRun(20, func() { _ = DecodeInto(&env, wire) }); n != 0 {
			t.Errorf("DecodeInto of canonical %s: %v allocs/op, want 0", name, n)
		}
	}
	escaped := bytes.Replace(wire, []byte(`"1.0.31"`), []byte(`"1.0.31\u00e9\n"`), 1)
	escaped = bytes.Replace(escaped, []byte(`"claude-code"`), []byte(`"claude\u002dcode"`), 1)
	if _, ok := decodeFast(t, escaped); !ok || bytes.Equal(escaped, wire) {
		t.Fatalf("escaped variant does not take the fast path:\n%s", escaped)
	}
	checkDecodeInto(t, &env, escaped)
	if env.Agent.Name != "claude-code" || env.Agent.Version != "1.0.31é\n" {
		t.Fatalf("escapes decoded to agent name %q, version %q", env.Agent.Name, env.Agent.Version)
	}
	if n := testing.AllocsPerRun(20, func() { _ = DecodeInto(&env, escaped) }); n != 1 {
		t.Errorf("DecodeInto with escapes: %v allocs/op, want 1 (the buffer of unescaped text)", n)
	}
}

// TestDecodeIntoAliases documents the contract: the Envelope is a view of
// its input, so changing the input changes it; appending to Payload does
// not write into the input.
func TestDecodeIntoAliases(t *testing.T) {
	wire := bytes.Clone(canonicalExample(t, "tool_call.requested.json"))
	var env Envelope
	if err := DecodeInto(&env, wire); err != nil {
		t.Fatal(err)
	}
	if env.Tenant != "acme" {
		t.Fatalf("tenant %q", env.Tenant)
	}
	at := bytes.Index(wire, []byte(`"tenant":"acme"`)) + len(`"tenant":"`)
	copy(wire[at:], "ACME")
	if env.Tenant != "ACME" {
		t.Errorf("after the input changed, tenant is %q: not a view of the input", env.Tenant)
	}
	before := bytes.Clone(wire)
	_ = append(env.Payload, "overwrite"...)
	if !bytes.Equal(before, wire) {
		t.Error("appending to Payload wrote into the input")
	}
	if !strings.HasPrefix(string(env.Payload), "{") || !bytes.Contains(wire, env.Payload) {
		t.Errorf("payload %q is not the input's", env.Payload)
	}
}

// FuzzDecodeInto: for any input, DecodeInto agrees with Decode on the
// verdict, the error and the Envelope, also into an Envelope that held a
// rich event before; and the Envelope, copied, survives its input being
// overwritten.
func FuzzDecodeInto(f *testing.F) {
	addCanonicalSeeds(f)
	rich := canonicalExample(f, "policy.decision.approved.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := Decode(data)
		var fresh, reused Envelope
		if err := DecodeInto(&reused, rich); err != nil {
			t.Fatal(err)
		}
		reused.Agent = &Agent{Name: "stale", Version: "stale"}
		in := bytes.Clone(data)
		for _, env := range []*Envelope{&fresh, &reused} {
			err := DecodeInto(env, in)
			if diff := errDiff(wantErr, err); diff != "" {
				t.Fatalf("errors differ (-Decode +DecodeInto):\n%s", diff)
			}
			if want == nil {
				want = &Envelope{}
			}
			kept := cloneEnvelope(env)
			for i := range in {
				in[i] = 'x'
			}
			if diff := cmp.Diff(want, kept); diff != "" {
				t.Fatalf("envelopes differ (-Decode +DecodeInto):\n%s", diff)
			}
			copy(in, data)
		}
	})
}

// cloneEnvelope deep-copies env, as a caller of DecodeInto that keeps
// an event must.
func cloneEnvelope(env *Envelope) *Envelope {
	c := *env
	for _, s := range []*string{&c.EventID, &c.EventType, &c.SchemaVersion, &c.Tenant, &c.SessionID,
		&c.RunnerID, &c.PrevHash, &c.Hash, &c.Actor.ID, &c.ToolCallID, &c.ApprovalID, &c.ParentEventID, &c.TraceID} {
		*s = strings.Clone(*s)
	}
	c.Actor.Type = ActorType(strings.Clone(string(c.Actor.Type)))
	if env.Agent != nil {
		c.Agent = &Agent{Name: strings.Clone(env.Agent.Name), Version: strings.Clone(env.Agent.Version)}
	}
	if env.Policy != nil {
		c.Policy = &PolicyRef{ID: strings.Clone(env.Policy.ID), SHA256: strings.Clone(env.Policy.SHA256)}
	}
	c.Payload = bytes.Clone(env.Payload)
	return &c
}

// BenchmarkDecodeIntoValidate: the same bytes as BenchmarkDecodeValidate
// into one reused Envelope, as the ingester decodes.
func BenchmarkDecodeIntoValidate(b *testing.B) {
	_, wire := benchEvent(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	var env Envelope
	clk := startCPU()
	for b.Loop() {
		if err := DecodeInto(&env, wire); err != nil {
			b.Fatal(err)
		}
	}
	clk.report(b)
}
