package events

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestBoundArgv(t *testing.T) {
	long := strings.Repeat("a", MaxArgBytes)
	many := make([]string, MaxArgvItems+3)
	for i := range many {
		many[i] = "x"
	}
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantCut bool
	}{
		{"nil", nil, []string{}, false},
		{"plain", []string{"git", "status"}, []string{"git", "status"}, false},
		{"empty argument kept", []string{"echo", ""}, []string{"echo", ""}, false},
		{"invalid UTF-8 replaced", []string{"a\xffb", "\xc3"}, []string{"a\uFFFDb", "\uFFFD"}, false},
		{"exactly the bound", []string{long}, []string{long}, false},
		{"one byte over", []string{long + "b"}, []string{long}, true},
		{"cut inside a character", []string{strings.Repeat("a", MaxArgBytes-1) + "é"}, []string{strings.Repeat("a", MaxArgBytes-1)}, true},
		{"cut after a replacement", []string{strings.Repeat("a", MaxArgBytes-3) + "\xff\xff"}, []string{strings.Repeat("a", MaxArgBytes-3) + "\uFFFD"}, false},
		{"replacement cut", []string{strings.Repeat("a", MaxArgBytes-2) + "\xff"}, []string{strings.Repeat("a", MaxArgBytes-2)}, true},
		{"too many entries", many, many[:MaxArgvItems], true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, cut := BoundArgv(tc.in)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
			if cut != tc.wantCut {
				t.Errorf("truncated = %v, want %v", cut, tc.wantCut)
			}
		})
	}
}

// FuzzBoundArgv: whatever bytes a program gets as arguments, the bounded
// argv fits the schema (a process.exec carrying it validates), keeps every
// valid argument that was within bounds, and says when it cut one.
func FuzzBoundArgv(f *testing.F) {
	f.Add("git\x00push\x00origin", 1)
	f.Add("\xff\xfe\x00\xc3", 0)
	f.Add(strings.Repeat("é", 2100), 3)
	f.Add(strings.Repeat("\x00", 300), 0)
	f.Fuzz(func(t *testing.T, joined string, repeat int) {
		argv := strings.Split(joined, "\x00")
		for range min(max(repeat, 0), 3) {
			argv = append(argv, argv...) // long argument lists
		}
		got, cut := BoundArgv(argv)
		if len(got) > MaxArgvItems || got == nil {
			t.Fatalf("%d entries (nil %v)", len(got), got == nil)
		}
		wantCut := len(argv) > MaxArgvItems
		for i, a := range got {
			if len(a) > MaxArgBytes || !utf8.ValidString(a) {
				t.Fatalf("entry %d out of bounds: %d bytes, valid %v", i, len(a), utf8.ValidString(a))
			}
			valid := strings.ToValidUTF8(argv[i], "\uFFFD")
			if len(valid) <= MaxArgBytes && a != valid {
				t.Fatalf("entry %d changed within bounds: %q -> %q", i, argv[i], a)
			}
			if len(valid) > MaxArgBytes {
				wantCut = true
				if !strings.HasPrefix(valid, a) {
					t.Fatalf("entry %d is not a prefix of its argument", i)
				}
			}
		}
		if cut != wantCut {
			t.Fatalf("truncated = %v, want %v", cut, wantCut)
		}
		env, err := New(ProcessExec{PID: 2, PPID: 1, Argv: got, ArgvTruncated: cut, Exe: "/bin/x", Decision: DecisionDeny, ReasonCode: ReasonDefaultDeny},
			WithEventID("1"), WithTenant("acme"), WithSession("s", "r"), WithActor(ActorSystem, "r"))
		if err != nil {
			t.Fatal(err)
		}
		if err := NewChain(env.Key()).Stamp(env); err != nil {
			t.Fatalf("bounded argv does not validate: %v", err)
		}
	})
}
