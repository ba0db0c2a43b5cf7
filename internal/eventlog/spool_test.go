package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func rec(i int) SpoolRecord {
	return SpoolRecord{Topic: "audit.events", Key: []byte(fmt.Sprintf("s%d", i%3)), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}
}

func TestSpoolFIFOAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var want []SpoolRecord
	for i := 0; i < 10; i++ {
		if err := s.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec(i))
	}
	got, err := s.Peek(4)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want[:4], got); d != "" {
		t.Fatalf("peek (-want +got):\n%s", d)
	}
	if err := s.Ack(4); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// A restart resumes from the acknowledged head.
	s, err = OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 6 {
		t.Fatalf("after restart Len = %d, want 6", s.Len())
	}
	got, err = s.Peek(100)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want[4:], got); d != "" {
		t.Fatalf("resume (-want +got):\n%s", d)
	}
	if err := s.Ack(6); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, spoolLogName)); st.Size() != 0 {
		t.Fatalf("empty spool log is %d bytes, want truncated to 0", st.Size())
	}
	if err := s.Ack(1); err == nil {
		t.Fatal("ack on an empty spool succeeded")
	}
}

func TestSpoolFullIsAnError(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	for ; n < 100; n++ {
		if err = s.Append(rec(n)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("append past the bound: err = %v, want ErrSpoolFull", err)
	}
	if s.Len() != n {
		t.Fatalf("Len = %d after %d successful appends", s.Len(), n)
	}
	// Acknowledging frees room again.
	if err := s.Ack(n); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(rec(0)); err != nil {
		t.Fatalf("append after ack: %v", err)
	}
}

func TestSpoolTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Simulate a crash in the middle of a fourth append.
	f, err := os.OpenFile(filepath.Join(dir, spoolLogName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 40, 1, 2, 3})
	f.Close()

	s, err = OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Peek(10)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]SpoolRecord{rec(0), rec(1), rec(2)}, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if err := s.Append(rec(3)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Peek(10); len(got) != 4 {
		t.Fatalf("after append past a cut tail: %d records, want 4", len(got))
	}
}

func TestSpoolCrashDuringEmptying(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	s.Append(rec(1))
	s.Append(rec(2))
	end := s.size
	s.Close()
	// The state Ack leaves if it crashes after truncating the log but
	// before resetting the head: head past the end of an empty log.
	if err := os.Truncate(filepath.Join(dir, spoolLogName), 0); err != nil {
		t.Fatal(err)
	}
	s2 := &Spool{dir: dir, headFile: filepath.Join(dir, spoolHeadName)}
	if err := s2.writeHead(end); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSpool(dir, 1<<20)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if s.Len() != 0 {
		t.Fatalf("Len = %d, want 0", s.Len())
	}
}

func FuzzSpoolOpen(f *testing.F) {
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 1, 'x', 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, spoolLogName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSpool(dir, 1<<20)
		if err != nil {
			return
		}
		defer s.Close()
		recs, err := s.Peek(s.Len() + 1)
		if err != nil {
			t.Fatalf("peek after a successful open: %v", err)
		}
		if len(recs) != s.Len() {
			t.Fatalf("peek returned %d records, Len says %d", len(recs), s.Len())
		}
	})
}
