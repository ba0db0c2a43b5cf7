package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
)

var testKey = events.ChainKey{SessionID: "s1", RunnerID: "r1"}

func h(n int) string { return fmt.Sprintf("%064d", n) }

// lk is event seq of testKey linked to seq-1, with content hash h(seq).
func lk(seq int) link {
	prev := events.GenesisHash
	if seq > 1 {
		prev = h(seq - 1)
	}
	return link{key: testKey, seq: uint64(seq), prev: prev, hash: h(seq), eventID: uint64(1000 + seq), editOK: true,
		src: sourceAt(int64(seq))}
}

func sourceAt(off int64) store.Source { return store.Source{Topic: "t", Offset: off} }

// step is one thing that happens to the checker: an event, or a flush at
// a time after the start with what storage holds.
type step struct {
	add    *link
	flush  time.Duration
	stored map[chainSeq][]stored
	force  bool
}

func add(l link) step { return step{add: &l} }
func flushAt(d time.Duration, stored map[chainSeq][]stored) step {
	return step{flush: d, stored: stored}
}

func TestCheckerBreaks(t *testing.T) {
	edited := lk(2)
	edited.editOK = false
	wrongPrev := lk(2)
	wrongPrev.prev = h(99)
	badStart := lk(1)
	badStart.prev = h(7)
	other2 := lk(2)
	other2.hash, other2.eventID = h(222), 2222
	at := func(seq int) chainSeq { return chainSeq{testKey, uint64(seq)} }
	tests := []struct {
		name       string
		steps      []step
		want       []string // kind@seq
		parkedLeft int
	}{
		{"whole chain", []step{add(lk(1)), add(lk(2)), add(lk(3)), flushAt(0, nil)}, nil, 0},
		{"other topic late, within grace", []step{add(lk(1)), add(lk(3)), add(lk(4)), flushAt(0, nil), add(lk(2)), flushAt(0, nil)}, nil, 0},
		{"gap after grace", []step{add(lk(1)), add(lk(2)), add(lk(4)), flushAt(0, nil), flushAt(2*time.Second, nil)}, []string{"gap@4"}, 0},
		{"parked until grace", []step{add(lk(1)), add(lk(3)), flushAt(500*time.Millisecond, nil)}, nil, 1},
		{"edit", []step{add(lk(1)), add(edited), add(lk(3)), flushAt(0, nil)}, []string{"edit@2"}, 0},
		{"wrong_prev", []step{add(lk(1)), add(wrongPrev), add(lk(3)), flushAt(0, nil)}, []string{"wrong_prev@2"}, 0},
		{"bad_start", []step{add(badStart), add(lk(2)), flushAt(0, nil)}, []string{"bad_start@1"}, 0},
		{"resume from storage after restart", []step{add(lk(5)), add(lk(6)), flushAt(0, map[chainSeq][]stored{at(4): {{h(4), 1004}}})}, nil, 0},
		{"first seen mid-chain, nothing stored, then gap", []step{add(lk(5)), flushAt(0, nil), flushAt(3*time.Second, nil)}, []string{"gap@5"}, 0},
		{"redelivered head", []step{add(lk(1)), add(lk(2)), add(lk(2)), flushAt(0, nil)}, nil, 0},
		{"redelivered older event", []step{add(lk(1)), add(lk(2)), add(lk(3)), add(lk(2)), flushAt(0, map[chainSeq][]stored{at(2): {{h(2), 1002}}})}, nil, 0},
		{"second event with a seen seq", []step{add(lk(1)), add(lk(2)), add(lk(3)), add(other2),
			flushAt(0, map[chainSeq][]stored{at(2): {{h(2), 1002}, {h(222), 2222}}})}, []string{"duplicate_seq@2"}, 0},
		{"late after a gap", []step{add(lk(1)), add(lk(3)), flushAt(2*time.Second, nil), add(lk(2)),
			flushAt(2*time.Second, map[chainSeq][]stored{at(2): {{h(2), 1002}}})}, []string{"gap@3", "reorder@2"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecker(time.Second, newMetrics())
			t0 := time.Unix(1_700_000_000, 0)
			var got []string
			for _, s := range tc.steps {
				if s.add != nil {
					c.add(*s.add, t0)
					continue
				}
				now := t0.Add(s.flush)
				want := c.lookups(now, s.force)
				found := map[chainSeq][]stored{}
				for _, w := range want {
					if v, ok := s.stored[w]; ok {
						found[w] = v
					}
				}
				c.resolve(found, now, s.force)
				for _, b := range c.takeBreaks() {
					got = append(got, fmt.Sprintf("%s@%d", b.Kind, b.GotSeq))
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("breaks (-want +got):\n%s", diff)
			}
			if c.parked != tc.parkedLeft {
				t.Errorf("parked = %d, want %d", c.parked, tc.parkedLeft)
			}
		})
	}
}

// TestParkedFloorHoldsCommits: a parked event keeps its partition's commit
// below it, so a restart redelivers it.
func TestParkedFloorHoldsCommits(t *testing.T) {
	c := newChecker(time.Second, newMetrics())
	now := time.Now()
	c.add(lk(1), now)
	c.add(lk(3), now)
	want := map[topicPartition]int64{{"t", 0}: 3}
	if diff := cmp.Diff(want, c.parkedFloor()); diff != "" {
		t.Errorf("floor (-want +got):\n%s", diff)
	}
	c.add(lk(2), now)
	if got := c.parkedFloor(); len(got) != 0 {
		t.Errorf("floor after the gap filled = %v, want none", got)
	}
}

func TestDedup(t *testing.T) {
	d := newDedup(4)
	type r struct {
		fp    uint64
		known bool
	}
	var got []r
	for _, x := range []struct{ id, fp uint64 }{{1, 10}, {1, 10}, {1, 11}, {2, 20}, {3, 30}, {4, 40}, {1, 12}, {5, 50}, {6, 60}, {7, 70}, {1, 13}} {
		fp, ok := d.check(x.id, x.fp)
		got = append(got, r{fp, ok})
	}
	want := []r{{10, false}, {10, true}, {10, true}, {20, false}, {30, false}, {40, false}, {10, true}, {50, false}, {60, false}, {70, false}, {13, false}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(r{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestContentOK: the fast content check agrees with events.ComputeHash on
// every example, edited or not, canonical or not.
func TestContentOK(t *testing.T) {
	for _, rec := range sessions(t, eventlog.DefaultTopics, 1, "hash") {
		for _, v := range []struct {
			name string
			raw  string
		}{
			{"canonical", string(rec.Value)},
			{"edited", strings.Replace(string(rec.Value), `"tenant":"acme"`, `"tenant":"acmx"`, 1)},
			{"whitespace", strings.Replace(string(rec.Value), `{"actor":`, `{ "actor" :`, 1)},
		} {
			env, err := events.Decode([]byte(v.raw))
			if err != nil {
				t.Fatalf("%s: %v", v.name, err)
			}
			want, err := events.ComputeHash(env)
			if err != nil {
				t.Fatal(err)
			}
			if got := contentOK([]byte(v.raw), env); got != (want == env.Hash) {
				t.Errorf("%s %s: contentOK = %v, ComputeHash says %v", env.EventType, v.name, got, want == env.Hash)
			}
			if v.name == "canonical" && !fastHashOK([]byte(v.raw), env.PrevHash, env.Hash) {
				t.Errorf("%s: the fast path missed a canonical event", env.EventType)
			}
		}
	}
}

// TestCheckerWaitsForTheBatchInsert: links are fed as their batch streams,
// before its insert is accepted. A suspect is compared with storage, and a
// break is handed out for insertion, only once the batch it came in is
// stored; until then the event it collides with may not be stored yet.
func TestCheckerWaitsForTheBatchInsert(t *testing.T) {
	c := newChecker(time.Minute, newMetrics())
	now := time.Now()
	other2 := lk(2)
	other2.hash, other2.eventID = h(222), 2222
	edited := lk(3)
	edited.editOK = false

	c.gen = 1
	c.add(lk(1), now)
	c.add(lk(2), now)
	c.gen = 2 // batch 2 streams while batch 1's insert completes
	c.add(other2, now)
	c.add(edited, now)

	c.inserted = 1
	if got := c.lookups(now, false); len(got) != 0 {
		t.Errorf("lookups with batch 2 unstored = %v, want none", got)
	}
	c.resolve(nil, now, false)
	if got := c.takeBreaks(); len(got) != 0 {
		t.Errorf("breaks handed out with batch 2 unstored = %v, want none", got)
	}

	c.inserted = 2
	want := []chainSeq{{testKey, 2}}
	if diff := cmp.Diff(want, c.lookups(now, false), cmp.AllowUnexported(chainSeq{})); diff != "" {
		t.Errorf("lookups (-want +got):\n%s", diff)
	}
	c.resolve(map[chainSeq][]stored{{testKey, 2}: {{hash: h(2), eventID: 1002}, {hash: h(222), eventID: 2222}}}, now, false)
	var got []string
	for _, b := range c.takeBreaks() {
		got = append(got, fmt.Sprintf("%s@%d", b.Kind, b.GotSeq))
	}
	if diff := cmp.Diff([]string{"edit@3", "duplicate_seq@2"}, got); diff != "" {
		t.Errorf("breaks (-want +got):\n%s", diff)
	}
	if len(c.suspects) != 0 {
		t.Errorf("suspects left = %d, want 0", len(c.suspects))
	}
}

// TestCheckerGraceCountsFromTheInsert: an event that begins waiting while
// its batch streams waits its grace from the batch's insert, and not at
// all while the batch is unstored, so a predecessor fetched in the next
// poll is added in time even when the insert takes longer than the grace.
func TestCheckerGraceCountsFromTheInsert(t *testing.T) {
	c := newChecker(time.Second, newMetrics())
	t0 := time.Now()
	c.gen = 1
	c.add(lk(1), t0)
	c.gen = 2
	c.add(lk(3), t0) // waits for seq 2

	flush := func(gen uint64, at time.Duration) []string {
		now := t0.Add(at)
		c.settle(gen, now)
		found := map[chainSeq][]stored{}
		c.lookups(now, false)
		c.resolve(found, now, false)
		var got []string
		for _, b := range c.takeBreaks() {
			got = append(got, fmt.Sprintf("%s@%d", b.Kind, b.GotSeq))
		}
		return got
	}
	// Batch 1's insert took 3 s: seq 3 (batch 2) has not begun its grace.
	if got := flush(1, 3*time.Second); len(got) != 0 {
		t.Fatalf("breaks at batch 1's flush = %v, want none (seq 3's batch is unstored)", got)
	}
	// Batch 2 stored at 4 s: the grace runs from there.
	if got := flush(2, 4*time.Second); len(got) != 0 {
		t.Fatalf("breaks at batch 2's flush = %v, want none", got)
	}
	if got := flush(0, 4*time.Second+500*time.Millisecond); len(got) != 0 {
		t.Fatalf("breaks half a grace after the insert = %v, want none", got)
	}
	if diff := cmp.Diff([]string{"gap@3"}, flush(0, 5*time.Second+100*time.Millisecond)); diff != "" {
		t.Errorf("a grace after the insert (-want +got):\n%s", diff)
	}
}

// TestCheckerWaitsForTheOtherTopic: with the two topics paired, a missing
// predecessor is a gap only once the other topic's partition was read past
// the waiting event (record time), or to its end; however long that takes
// beyond the grace. A handover settles nothing: what still waits is read
// again by the next owner.
func TestCheckerWaitsForTheOtherTopic(t *testing.T) {
	ev, ap := topicPartition{"ev", 0}, topicPartition{"ap", 0}
	// on is seq of testKey from topic tp, produced at record time 100*seq.
	on := func(tp topicPartition, seq int) link {
		l := lk(seq)
		l.src = store.Source{Topic: tp.topic, Partition: tp.partition, Offset: int64(seq)}
		l.rts = int64(100 * seq)
		return l
	}
	type ev_ struct {
		at       time.Duration
		add      *link
		fed      *topicPartition // fed up to record time ts
		ts       int64
		listed   *[2]int64 // the other topic's start and end, listed at at
		flush    bool
		handover bool
	}
	addAt := func(at time.Duration, l link) ev_ { return ev_{at: at, add: &l} }
	fedAt := func(at time.Duration, tp topicPartition, ts int64) ev_ { return ev_{at: at, fed: &tp, ts: ts} }
	flush := func(at time.Duration) ev_ { return ev_{at: at, flush: true} }
	tests := []struct {
		name       string
		steps      []ev_
		want       []string
		parkedLeft int
	}{
		{"approvals lag the events by more than the grace", []ev_{
			addAt(0, on(ev, 1)), addAt(0, on(ev, 3)), fedAt(0, ev, 300),
			flush(0), flush(5 * time.Second),
			{at: 5 * time.Second, listed: &[2]int64{0, 50}}, flush(6 * time.Second),
			fedAt(20*time.Second, ap, 150), flush(21 * time.Second), // read, but not yet past seq 3
			addAt(40*time.Second, on(ap, 2)), fedAt(40*time.Second, ap, 200), flush(41 * time.Second),
		}, nil, 0},
		{"missing event: a gap once the other topic is past it", []ev_{
			addAt(0, on(ev, 1)), addAt(0, on(ev, 3)), fedAt(0, ev, 300),
			fedAt(0, ap, 250), flush(0), flush(5 * time.Second),
			fedAt(6*time.Second, ap, 301), flush(6 * time.Second),
		}, []string{"gap@3"}, 0},
		{"missing event: a gap once the other topic is read to its end", []ev_{
			addAt(0, on(ev, 1)), addAt(0, on(ev, 3)), fedAt(0, ev, 300),
			flush(5 * time.Second),
			{at: 5 * time.Second, listed: &[2]int64{7, 7}}, flush(5 * time.Second),
		}, []string{"gap@3"}, 0},
		{"an end listed before the event waited proves nothing", []ev_{
			{at: 0, listed: &[2]int64{7, 7}},
			addAt(time.Second, on(ev, 1)), addAt(time.Second, on(ev, 3)), fedAt(time.Second, ev, 300),
			flush(5 * time.Second),
		}, nil, 1},
		{"missing event on the other topic, other topic past it", []ev_{
			addAt(0, on(ap, 1)), addAt(0, on(ap, 3)), fedAt(0, ap, 300),
			fedAt(0, ev, 400), flush(500 * time.Millisecond), flush(2 * time.Second),
		}, []string{"gap@3"}, 0},
		{"handover settles nothing", []ev_{
			addAt(0, on(ev, 1)), addAt(0, on(ev, 3)), fedAt(0, ev, 300), fedAt(0, ap, 400),
			{at: 500 * time.Millisecond, handover: true},
		}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecker(time.Second, newMetrics())
			c.caughtUp = func() bool { return true } // the old rule would call a gap
			c.topics, c.paired = [2]string{"ev", "ap"}, true
			c.assign(map[string][]int32{"ev": {0}, "ap": {0}})
			t0 := time.Unix(1_700_000_000, 0)
			var got []string
			for _, s := range tc.steps {
				now := t0.Add(s.at)
				switch {
				case s.add != nil:
					c.add(*s.add, now)
				case s.fed != nil:
					c.fed(*s.fed, s.ts, s.ts/100+1)
				case s.listed != nil:
					c.listed(ap, s.listed[0], s.listed[1], now)
				case s.flush, s.handover:
					c.lookups(now, s.handover)
					c.resolve(nil, now, s.handover)
					for _, b := range c.takeBreaks() {
						got = append(got, fmt.Sprintf("%s@%d", b.Kind, b.GotSeq))
					}
					if s.handover {
						if diff := cmp.Diff(map[topicPartition]int64{ev: 3}, c.parkedFloor(), cmp.AllowUnexported(topicPartition{})); diff != "" {
							t.Errorf("floor at the handover (-want +got):\n%s", diff)
						}
						c.forget(map[string][]int32{"ev": {0}, "ap": {0}}, now)
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("breaks (-want +got):\n%s", diff)
			}
			if c.parked != tc.parkedLeft {
				t.Errorf("parked = %d, want %d", c.parked, tc.parkedLeft)
			}
		})
	}
}

// TestCheckerUnlisted: the ends of the other topic's partition are asked
// for only for events past their grace and not read past by record time.
func TestCheckerUnlisted(t *testing.T) {
	c := newChecker(time.Second, newMetrics())
	c.topics, c.paired = [2]string{"ev", "ap"}, true
	c.assign(map[string][]int32{"ev": {0}, "ap": {0}})
	t0 := time.Unix(1_700_000_000, 0)
	l1, l3 := lk(1), lk(3)
	l1.src, l3.src = store.Source{Topic: "ev"}, store.Source{Topic: "ev", Offset: 1}
	l3.rts = 300
	c.add(l1, t0)
	c.add(l3, t0)
	if got := c.unlisted(t0.Add(500 * time.Millisecond)); len(got) != 0 {
		t.Errorf("unlisted within the grace = %v, want none", got)
	}
	want := []topicPartition{{"ap", 0}}
	if diff := cmp.Diff(want, c.unlisted(t0.Add(2*time.Second)), cmp.AllowUnexported(topicPartition{})); diff != "" {
		t.Errorf("unlisted (-want +got):\n%s", diff)
	}
	c.listed(topicPartition{"ap", 0}, 0, 9, t0.Add(2*time.Second))
	if got := c.unlisted(t0.Add(3 * time.Second)); len(got) != 0 {
		t.Errorf("unlisted after a fresh listing = %v, want none", got)
	}
}
