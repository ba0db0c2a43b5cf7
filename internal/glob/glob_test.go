package glob

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func errorsIs(err error) bool { return errors.Is(err, ErrBadPattern) }

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern string
		opts    []Option
		yes, no []string
	}{
		{"*.pem", nil, []string{"key.pem", "/home/a/key.pem", "a/b.pem/"}, []string{"key.pem.bak", "", "/"}},
		{"/etc/*", nil, []string{"/etc/passwd"}, []string{"etc/passwd", "/etc/a/b", "/etc"}},
		{"**/.ssh/id_*", nil, []string{"/home/a/.ssh/id_rsa", ".ssh/id_x", "a/b/.ssh/id_"}, []string{"/home/a/.ssh/known_hosts"}},
		{"a/**", nil, []string{"a/b", "a/b/c", "a/"}, []string{"a", "b/a/c"}},
		{"a/**/b", nil, []string{"a/b", "a/x/b", "a/x/y/b"}, []string{"a/x/c", "ab"}},
		{"**", nil, []string{"a", "/a/b"}, []string{""}},
		{"src/[abc]?.go", nil, []string{"src/a1.go", "src/cé.go"}, []string{"src/d1.go", "src/a12.go"}},
		{`a\*b`, nil, []string{"a*b", "x/a*b"}, []string{"axb"}},
		{".env*", []Option{Relative()}, []string{".env", "sub/.env.local"}, []string{"env", ".", ""}},
		{"/.env", []Option{Relative()}, []string{".env"}, []string{"sub/.env"}},
		{"./.env", []Option{Relative()}, []string{".env", "sub/.env"}, nil},
		{".git/hooks/", []Option{Relative()}, []string{".git/hooks"}, []string{"x/.git/hooks"}},
		{"--output=*", []Option{Whole()}, []string{"--output=", "--output=x"}, []string{"x/--output=y", "--output=/tmp/x"}},
		{"*", []Option{Whole()}, []string{"", "-f"}, []string{"a/b"}},
		{"x/", []Option{Whole()}, []string{"x/"}, []string{"x"}},
	}
	for _, tc := range tests {
		g, err := Compile(tc.pattern, tc.opts...)
		if err != nil {
			t.Errorf("Compile(%q): %v", tc.pattern, err)
			continue
		}
		for _, n := range tc.yes {
			if !g.Match(n) {
				t.Errorf("%q does not match %q", tc.pattern, n)
			}
		}
		for _, n := range tc.no {
			if g.Match(n) {
				t.Errorf("%q matches %q", tc.pattern, n)
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, p := range []string{"", "/", "a**", "a/**b/c", "***", "[x", `x\`} {
		if _, err := Compile(p); !errors.Is(err, ErrBadPattern) {
			t.Errorf("Compile(%q) error = %v, want ErrBadPattern", p, err)
		}
	}
	_, err := Compile("src/[abc")
	if got, want := err.Error(), `glob "src/[abc": syntax error in pattern`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestMayContainAndHolds(t *testing.T) {
	g, err := Compile(".git/hooks/**", Relative())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range []string{".", ".git", ".git/hooks", ".git/hooks/x", "src", ".github"} {
		if g.MayContain(d) {
			got = append(got, "may:"+d)
		}
		if g.Holds(d) {
			got = append(got, "holds:"+d)
		}
	}
	want := []string{"may:.", "holds:.", "may:.git", "holds:.git", "may:.git/hooks", "holds:.git/hooks", "may:.git/hooks/x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// TestManyStars: time grows with the product of the lengths, not
// exponentially with the number of stars.
func TestManyStars(t *testing.T) {
	g, err := Compile(strings.Repeat("**/a*/", 50) + "b")
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("a/", 2000)
	start := time.Now()
	if g.Match(name) {
		t.Error("matched")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}
