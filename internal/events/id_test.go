package events

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestIDsUniqueConcurrent(t *testing.T) {
	g, err := NewIDGen(5)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 20000
	out := make([][]ID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				out[w] = append(out[w], g.Next())
			}
		})
	}
	wg.Wait()
	seen := make(map[ID]bool, workers*each)
	for _, ids := range out {
		for i, id := range ids {
			if seen[id] {
				t.Fatalf("duplicate id %d", id)
			}
			seen[id] = true
			if i > 0 && id <= ids[i-1] {
				t.Fatalf("ids not increasing: %d after %d", id, ids[i-1])
			}
			if id.Node() != 5 {
				t.Fatalf("id %d has node %d", id, id.Node())
			}
		}
	}
}

// TestIDsClockStepBack drives the generator with a clock that steps back
// 5 s, stands still for more ids than one millisecond holds, then catches
// up: ids stay unique and increasing throughout, and follow the clock again
// once it has caught up.
func TestIDsClockStepBack(t *testing.T) {
	now := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	g, err := NewIDGen(9, WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	var ids []ID
	for range 10 {
		ids = append(ids, g.Next())
		now = now.Add(time.Millisecond)
	}
	top := ids[len(ids)-1]
	now = now.Add(-5 * time.Second)
	for range 5000 { // > 4096 per millisecond: borrows the next milliseconds
		ids = append(ids, g.Next())
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d: %d not above %d", i, ids[i], ids[i-1])
		}
	}
	if IDTime(ids[len(ids)-1]).Before(IDTime(top)) {
		t.Errorf("ids went back in time")
	}
	now = now.Add(10 * time.Second)
	id := g.Next()
	if got := IDTime(id); !got.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("after catching up, id time %v, want %v", got, now)
	}
}

// TestIDsFloor: a restarted generator whose clock is behind the last id it
// wrote before the restart continues above it.
func TestIDsFloor(t *testing.T) {
	now := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	before, _ := NewIDGen(3, WithClock(func() time.Time { return now }))
	last := before.Next()
	now = now.Add(-time.Hour)
	after, _ := NewIDGen(3, WithClock(func() time.Time { return now }), WithFloor(last))
	if id := after.Next(); id <= last {
		t.Fatalf("id %d not above floor %d", id, last)
	}
	// Without the floor the same clock repeats old ids' range.
	naive, _ := NewIDGen(3, WithClock(func() time.Time { return now }))
	if id := naive.Next(); id > last {
		t.Fatalf("test premise: naive id %d above %d", id, last)
	}
}

func TestIDGenNode(t *testing.T) {
	for _, n := range []int64{-1, 1024} {
		if _, err := NewIDGen(n); !errors.Is(err, ErrNodeID) {
			t.Errorf("NewIDGen(%d) = %v", n, err)
		}
	}
	g, err := NewIDGen(1023)
	if err != nil {
		t.Fatal(err)
	}
	id := g.Next()
	if id.Node() != 1023 {
		t.Errorf("node %d", id.Node())
	}
	if d := time.Since(IDTime(id)); d < 0 || d > time.Minute {
		t.Errorf("id time %v is not now", IDTime(id))
	}
}

func TestParseID(t *testing.T) {
	for _, s := range []string{"1", "1900478732460691456", "9223372036854775807"} {
		id, err := ParseID(s)
		if err != nil || id.String() != s {
			t.Errorf("ParseID(%s) = %v, %v", s, id, err)
		}
	}
	for _, s := range []string{"", "0", "01", "-1", "9223372036854775808", "12a", "99999999999999999999"} {
		if _, err := ParseID(s); !errors.Is(err, ErrID) {
			t.Errorf("ParseID(%q) = %v", s, err)
		}
	}
}
