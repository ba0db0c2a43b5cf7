package events

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var chainIDs = func() *IDGen {
	g, err := NewIDGen(11)
	if err != nil {
		panic(err)
	}
	return g
}()

func testEvent(t testing.TB, session, runner string, i int) *Envelope {
	t.Helper()
	env, err := New(ToolCallRequested{
		ToolName:        "shell",
		Arguments:       ToolArguments{Argv: []string{"echo", fmt.Sprint(i)}, Cwd: "/workspace"},
		ArgumentsSHA256: strings.Repeat("ab", 32),
	}, WithIDs(chainIDs), WithTenant("acme"), WithSession(session, runner), WithActor(ActorAgent, "agent-1"))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// buildChain stamps n events on one chain.
func buildChain(t testing.TB, session, runner string, n int) []*Envelope {
	t.Helper()
	c := NewChain(ChainKey{session, runner})
	var out []*Envelope
	for i := range n {
		env := testEvent(t, session, runner, i)
		if err := c.Stamp(env); err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func clone(evs []*Envelope) []*Envelope {
	out := make([]*Envelope, len(evs))
	for i, e := range evs {
		c := *e
		c.Payload = slices.Clone(e.Payload)
		out[i] = &c
	}
	return out
}

func rehash(t testing.TB, e *Envelope) {
	t.Helper()
	h, err := ComputeHash(e)
	if err != nil {
		t.Fatal(err)
	}
	e.Hash = h
}

func TestChainStamp(t *testing.T) {
	evs := buildChain(t, "s1", "r1", 5)
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d: seq %d", i, e.Seq)
		}
		want := GenesisHash
		if i > 0 {
			want = evs[i-1].Hash
		}
		if e.PrevHash != want {
			t.Errorf("event %d: prev_hash %s, want %s", i, e.PrevHash, want)
		}
		// The hash is reproducible from the definition alone.
		wire, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		withoutHash := strings.Replace(string(wire), `"hash":"`+e.Hash+`",`, "", 1)
		if got := sha256Hex(e.PrevHash + withoutHash); got != e.Hash {
			t.Errorf("event %d: hash %s, sha256(prev_hash || canonical without hash) = %s", i, e.Hash, got)
		}
	}
	if err := VerifyChain(evs); err != nil {
		t.Fatal(err)
	}
}

func TestChainTamper(t *testing.T) {
	evs := buildChain(t, "s1", "r1", 10)
	id := func(i int) string { return evs[i].EventID }
	tests := []struct {
		name   string
		tamper func([]*Envelope) []*Envelope
		opts   []VerifyOption
		want   *ChainError
	}{
		{"delete one", func(e []*Envelope) []*Envelope { return slices.Delete(e, 4, 5) }, nil,
			&ChainError{Break: BreakGap, EventID: id(5), PrevEventID: id(3), WantSeq: 5, GotSeq: 6}},
		{"delete first", func(e []*Envelope) []*Envelope { return e[1:] }, nil,
			&ChainError{Break: BreakGap, EventID: id(1), WantSeq: 1, GotSeq: 2}},
		{"delete last is invisible", func(e []*Envelope) []*Envelope { return e[:9] }, nil, nil},
		{"swap two", func(e []*Envelope) []*Envelope { e[4], e[5] = e[5], e[4]; return e }, nil,
			&ChainError{Break: BreakReorder, EventID: id(5), PrevEventID: id(4), WantSeq: 5, GotSeq: 6}},
		{"move back", func(e []*Envelope) []*Envelope { m := e[2]; e = slices.Delete(e, 2, 3); return slices.Insert(e, 6, m) }, nil,
			&ChainError{Break: BreakReorder, EventID: id(3), PrevEventID: id(2), WantSeq: 3, GotSeq: 4}},
		{"edit payload", func(e []*Envelope) []*Envelope {
			e[4].Payload = []byte(strings.Replace(string(e[4].Payload), `"echo"`, `"rm"`, 1))
			return e
		}, nil, &ChainError{Break: BreakEdit, EventID: id(4), PrevEventID: id(3), WantSeq: 5, GotSeq: 5}},
		{"edit envelope", func(e []*Envelope) []*Envelope { e[4].Actor.ID = "someone-else"; return e }, nil,
			&ChainError{Break: BreakEdit, EventID: id(4), PrevEventID: id(3), WantSeq: 5, GotSeq: 5}},
		{"edit and rehash", func(e []*Envelope) []*Envelope { e[4].Tenant = "other"; rehash(t, e[4]); return e }, nil,
			&ChainError{Break: BreakWrongPrev, EventID: id(5), PrevEventID: id(4), WantSeq: 6, GotSeq: 6}},
		{"wrong prev", func(e []*Envelope) []*Envelope { e[4].PrevHash = e[2].Hash; rehash(t, e[4]); return e }, nil,
			&ChainError{Break: BreakWrongPrev, EventID: id(4), PrevEventID: id(3), WantSeq: 5, GotSeq: 5}},
		{"bad start", func(e []*Envelope) []*Envelope { e[0].PrevHash = e[5].Hash; rehash(t, e[0]); return e }, nil,
			&ChainError{Break: BreakBadStart, EventID: id(0), WantSeq: 1, GotSeq: 1}},
		{"duplicate", func(e []*Envelope) []*Envelope { return slices.Insert(e, 5, e[4]) }, nil,
			&ChainError{Break: BreakDuplicate, EventID: id(4), PrevEventID: id(4), WantSeq: 6, GotSeq: 5}},
		{"window", func(e []*Envelope) []*Envelope { return e[3:7] }, []VerifyOption{FromAnywhere()}, nil},
		{"window with gap", func(e []*Envelope) []*Envelope { return slices.Delete(e[3:8], 2, 3) }, []VerifyOption{FromAnywhere()},
			&ChainError{Break: BreakGap, EventID: id(6), PrevEventID: id(4), WantSeq: 6, GotSeq: 7}},
		{"any order", func(e []*Envelope) []*Envelope {
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(e), func(i, j int) { e[i], e[j] = e[j], e[i] })
			return e
		}, []VerifyOption{AnyOrder()}, nil},
		{"any order with a gap", func(e []*Envelope) []*Envelope {
			e = slices.Delete(e, 6, 7)
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(e), func(i, j int) { e[i], e[j] = e[j], e[i] })
			return e
		}, []VerifyOption{AnyOrder()}, &ChainError{Break: BreakGap, EventID: id(7), PrevEventID: id(5), WantSeq: 7, GotSeq: 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyChain(tc.tamper(clone(evs)), tc.opts...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyChain: %v", err)
				}
				return
			}
			tc.want.Key = ChainKey{"s1", "r1"}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("VerifyChain: got %v, want %v", err, tc.want)
			}
			if diff := cmp.Diff(tc.want, ce); diff != "" {
				t.Errorf("VerifyChain: %v (-want +got):\n%s", err, diff)
			}
			if !errors.Is(err, ErrChainBroken) {
				t.Error("not ErrChainBroken")
			}
		})
	}
}

// TestChainInterleaved: several emitters write into one session, and
// several sessions interleave; each chain is checked on its own.
func TestChainInterleaved(t *testing.T) {
	a := buildChain(t, "s1", "runner", 6)
	b := buildChain(t, "s1", "approvals", 4)
	c := buildChain(t, "s2", "runner", 5)
	var all []*Envelope
	for i := range 6 {
		for _, ch := range [][]*Envelope{a, b, c} {
			if i < len(ch) {
				all = append(all, ch[i])
			}
		}
	}
	if err := VerifyChain(all); err != nil {
		t.Fatal(err)
	}
	// Seq 3 of s1/approvals lost: reported on that chain only.
	var cut []*Envelope
	for _, e := range all {
		if e != b[2] {
			cut = append(cut, e)
		}
	}
	err := VerifyChain(cut)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Key != (ChainKey{"s1", "approvals"}) || ce.Break != BreakGap || ce.EventID != b[3].EventID {
		t.Fatalf("got %v, want gap at %s on s1/approvals", err, b[3].EventID)
	}
}

// TestVerifierStreaming: Add reports a forward jump as a gap, then goes on
// from the event it saw.
func TestVerifierStreaming(t *testing.T) {
	evs := buildChain(t, "s1", "r1", 6)
	v := NewVerifier()
	var breaks []ChainBreak
	for _, e := range []*Envelope{evs[0], evs[1], evs[3], evs[2], evs[4], evs[4], evs[5]} {
		var ce *ChainError
		if err := v.Add(e); errors.As(err, &ce) {
			breaks = append(breaks, ce.Break)
		}
	}
	if diff := cmp.Diff([]ChainBreak{BreakGap, BreakReorder, BreakDuplicate}, breaks); diff != "" {
		t.Errorf("breaks (-want +got):\n%s", diff)
	}
	seq, hash, id, ok := v.Head(ChainKey{"s1", "r1"})
	if !ok || seq != 6 || hash != evs[5].Hash || id != evs[5].EventID {
		t.Errorf("Head = %d %s %s %v", seq, hash, id, ok)
	}
	// Resume continues a chain verified earlier.
	v2 := NewVerifier()
	v2.Resume(ChainKey{"s1", "r1"}, 3, evs[2].Hash, evs[2].EventID)
	for _, e := range evs[3:] {
		if err := v2.Add(e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChainStampConcurrent(t *testing.T) {
	c := NewChain(ChainKey{"s1", "r1"})
	const workers, each = 4, 100
	var mu sync.Mutex
	var all []*Envelope
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				env := testEvent(t, "s1", "r1", w*each+i)
				if err := c.Stamp(env); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, env)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := VerifyChain(all, AnyOrder()); err != nil {
		t.Fatal(err)
	}
	if seq, _ := c.Head(); seq != workers*each {
		t.Errorf("head seq %d", seq)
	}
}

func TestChainStampRefusesInvalid(t *testing.T) {
	c := NewChain(ChainKey{"s1", "r1"})
	good := testEvent(t, "s1", "r1", 0)
	if err := c.Stamp(good); err != nil {
		t.Fatal(err)
	}
	bad := testEvent(t, "s1", "r1", 1)
	bad.Tenant = "Not A Tenant"
	var ve *ValidationError
	if err := c.Stamp(bad); !errors.As(err, &ve) || ve.Pointer != "/tenant" {
		t.Fatalf("Stamp(invalid) = %v", err)
	}
	if seq, hash := c.Head(); seq != 1 || hash != good.Hash {
		t.Fatalf("chain advanced on an invalid event: %d %s", seq, hash)
	}
	next := testEvent(t, "s1", "r1", 2)
	if err := c.Stamp(next); err != nil || next.Seq != 2 {
		t.Fatalf("Stamp after refusal: seq %d, %v", next.Seq, err)
	}
	if err := VerifyChain([]*Envelope{good, next}); err != nil {
		t.Fatal(err)
	}
	other := testEvent(t, "s2", "r1", 3)
	if err := c.Stamp(other); !errors.Is(err, ErrChainKey) {
		t.Fatalf("Stamp(other session) = %v", err)
	}
	// Session and runner default to the chain's.
	blank := testEvent(t, "", "", 4)
	if err := c.Stamp(blank); err != nil || blank.Key() != c.Key() {
		t.Fatalf("Stamp(blank) = %v, key %v", err, blank.Key())
	}
}

func TestResumeChain(t *testing.T) {
	evs := buildChain(t, "s1", "r1", 3)
	c := ResumeChain(ChainKey{"s1", "r1"}, 3, evs[2].Hash)
	for i := range 2 {
		e := testEvent(t, "s1", "r1", 10+i)
		if err := c.Stamp(e); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if err := VerifyChain(evs); err != nil {
		t.Fatal(err)
	}
}

func TestStampTruncatesTime(t *testing.T) {
	c := NewChain(ChainKey{"s1", "r1"})
	e := testEvent(t, "s1", "r1", 0)
	e.EventTime = time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	if err := c.Stamp(e); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 1, 2, 2, 4, 5, 123456000, time.UTC)
	if !e.EventTime.Equal(want) || e.EventTime.Location() != time.UTC {
		t.Errorf("EventTime = %v, want %v", e.EventTime, want)
	}
	wire, _ := Marshal(e)
	got, err := Decode(wire)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// TestAppendHashSplice: the wire bytes built by splicing the hash in are
// exactly Marshal's.
func TestAppendHashSplice(t *testing.T) {
	for _, ne := range exampleChain(t) {
		e := *ne.env
		wire, _, err := appendHash(nil, nil, &e)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Marshal(&e)
		if string(wire) != string(want) || e.Hash != ne.env.Hash {
			t.Errorf("%s: spliced\n%s\nMarshal\n%s", ne.name, wire, want)
		}
	}
}

func TestStampAppend(t *testing.T) {
	c := NewChain(ChainKey{"s1", "r1"})
	e := testEvent(t, "s1", "r1", 0)
	wire, err := c.StampAppend([]byte("prefix"), e)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Marshal(e)
	if string(wire) != "prefix"+string(want) {
		t.Errorf("StampAppend = %s, want prefix + %s", wire, want)
	}
}
