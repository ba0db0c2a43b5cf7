package store

import (
	"context"
	"testing"
)

// TestEventStream: the rows of one stream, sent in several data blocks,
// land in one part when it closes; an aborted stream writes nothing.
func TestEventStream(t *testing.T) {
	ctx := context.Background()
	s := migrated(t)
	base := exampleRows(t)
	block := func(from, n int) *EventBlock {
		b := NewEventBlock(n)
		for i := range n {
			r := base[i%len(base)]
			r.EventID = uint64(1<<40 + from + i)
			b.Append(&r)
		}
		return b
	}
	const per, blocks = 3000, 4 // more than streamBlockRows: several data blocks
	w, err := s.OpenEventStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blocks {
		b := block(i*per, per)
		b.Drop(0)
		if err := w.Write(b); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if got, want := w.Rows(), blocks*(per-1); got != want {
		t.Errorf("Rows = %d, want %d", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	q := "SELECT count() FROM " + s.db + ".events"
	if got, want := count(t, s, q), uint64(blocks*(per-1)); got != want {
		t.Errorf("rows after Close = %d, want %d", got, want)
	}
	parts := "SELECT count() FROM system.parts WHERE database = '" + s.db + "' AND table = 'events' AND active"
	if got := count(t, s, parts); got != 1 {
		t.Errorf("active parts = %d, want 1 (the server squashes a stream's blocks)", got)
	}
	if err := w.Write(block(0, 1)); err == nil {
		t.Error("Write after Close succeeded")
	}

	w, err = s.OpenEventStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range blocks {
		if err := w.Write(block(100_000+i*per, per)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	w.Abort()
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded")
	}
	if got, want := count(t, s, q), uint64(blocks*(per-1)); got != want {
		t.Errorf("rows after an aborted stream = %d, want %d", got, want)
	}
}
