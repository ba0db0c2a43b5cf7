package glob

import (
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Seeds shared by the fuzz targets: the shipped patterns and the corners.
var fuzzSeeds = []struct{ pattern, name string }{
	{".git/hooks/**", ".git/hooks/pre-commit"},
	{".git/hooks/**", ".git"},
	{".env*", "sub/.env.local"},
	{"*.pem", "/home/a/key.pem"},
	{"**/.ssh/id_*", "/home/a/.ssh/id_ed25519"},
	{"/etc/agentaudit/**", "/etc/agentaudit/x.yaml"},
	{"a/**/b/**/c/**/d/**", "a/x/b/c/y/d/z"},
	{"--output=*", "--output=/tmp/x"},
	{"src/[abc]*.go", "src/b1.go"},
	{`a\*b`, "a*b"},
	{"?", "é"},
	{"**", ""},
	{"/", "/"},
	{"./x/", "x"},
	{"a//b", "a//b"},
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.pattern, s.name)
	}
}

// relName turns fuzz input into a clean workspace-relative path, or "".
func relName(s string) string {
	c := path.Clean(s)
	if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return ""
	}
	return c
}

func segments(p string) []string { return strings.Split(p, "/") }

// FuzzPolicyPath compares Relative patterns with the policy's path globs.
// Documented difference: more than three "**" segments now compile.
func FuzzPolicyPath(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, pattern, name string) {
		old, oerr := oldCompilePolicyGlob(pattern)
		g, nerr := Compile(pattern, Relative())
		if oerr != nil && strings.Contains(oerr.Error(), "more than") {
			return
		}
		if (oerr == nil) != (nerr == nil) {
			t.Fatalf("Compile(%q): old error %v, new error %v", pattern, oerr, nerr)
		}
		if oerr != nil {
			return
		}
		rel := relName(name)
		if rel == "" {
			return
		}
		if o, n := old.match(rel), g.Match(rel); o != n {
			t.Fatalf("%q.Match(%q) = %v, old %v", pattern, rel, n, o)
		}
		if o, n := old.holds(rel), g.Holds(rel); o != n {
			t.Fatalf("%q.Holds(%q) = %v, old %v", pattern, rel, n, o)
		}
		if g.Last() != old.segs[len(old.segs)-1] {
			t.Fatalf("%q.Last() = %q, old %q", pattern, g.Last(), old.segs[len(old.segs)-1])
		}
	})
}

// FuzzPolicyArg compares Whole patterns with the policy's argument globs.
// Documented differences: "**" inside a longer segment is an error (it was
// "*"), more than three "**" compile, and a trailing "**" no longer matches
// zero segments ("x/**" matched "x").
func FuzzPolicyArg(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, pattern, arg string) {
		old, oerr := oldCompileArgGlob(pattern)
		if oerr != nil && strings.Contains(oerr.Error(), "more than") {
			return
		}
		for _, s := range segments(pattern) {
			if s != "**" && strings.Contains(s, "**") {
				return
			}
		}
		g, nerr := Compile(pattern, Whole())
		if (oerr == nil) != (nerr == nil) {
			t.Fatalf("Compile(%q): old error %v, new error %v", pattern, oerr, nerr)
		}
		if oerr != nil {
			return
		}
		o, n := old.match(arg), g.Match(arg)
		if o && !n && zeroTrailingStars(pattern, arg) {
			return
		}
		if o != n {
			t.Fatalf("%q.Match(%q) = %v, old %v", pattern, arg, n, o)
		}
	})
}

// zeroTrailingStars reports whether arg matched the old argument glob only
// by its trailing "**" segments matching nothing.
func zeroTrailingStars(pattern, arg string) bool {
	segs := segments(pattern)
	if segs[len(segs)-1] != "**" {
		return false
	}
	for len(segs) > 0 && segs[len(segs)-1] == "**" {
		segs = segs[:len(segs)-1]
	}
	if len(segs) == 0 {
		return false
	}
	old, err := oldCompileArgGlob(strings.Join(segs, "/"))
	return err == nil && old.match(arg)
}

// FuzzDetect compares default patterns with the detection rules' glob
// function, where a pattern that does not compile matches nothing.
// Documented differences: "[" and "\" are special, "**" inside a longer
// segment is an error (it crossed "/"), "?" is one UTF-8 character (it was
// a byte), a trailing "/" of the pattern is dropped, a pattern of slashes
// does not compile, and the empty name matches nothing.
func FuzzDetect(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 256 || len(name) > 256 {
			return // the old matcher's memo is quadratic in memory
		}
		switch {
		case strings.ContainsAny(pattern, `[\`),
			strings.HasSuffix(pattern, "/"),
			name == "",
			strings.Contains(pattern, "?") && !ascii(name):
			return
		}
		for _, s := range segments(pattern) {
			if s != "**" && strings.Contains(s, "**") {
				return
			}
		}
		n := false
		if g, err := Compile(pattern); err == nil {
			n = g.Match(name)
		} else if pattern != "" {
			t.Fatalf("Compile(%q): %v", pattern, err)
		}
		if o := oldCompileDetectGlob(pattern).match(name); o != n {
			t.Fatalf("glob(%q, %q) = %v, old %v", name, pattern, n, o)
		}
	})
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzSandbox compares Relative patterns with sandbox profiles' protected
// paths, which filepath.Glob expanded from the workspace root: a file
// matched when filepath.Match matched its relative path. Documented
// differences: a pattern without "/" matches at any depth (it was the root
// only), "**" is the dialect's (it was "*"), a leading "/" anchors at the
// root (it was refused), and a "/" inside [ ] or a malformed class after a
// "*" ("a*[", which filepath.Match lets through) is refused when the
// profile loads.
func FuzzSandbox(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, pattern, name string) {
		trimmed := strings.TrimSuffix(pattern, "/")
		if trimmed == "" || path.IsAbs(trimmed) || path.Clean(trimmed) != trimmed || trimmed == "." || trimmed == ".." || strings.HasPrefix(trimmed, "../") {
			return // the profile refused it
		}
		if _, err := filepath.Match(trimmed, ""); err != nil {
			if _, nerr := Compile(pattern, Relative()); nerr == nil {
				t.Fatalf("Compile(%q) succeeded; filepath.Match: %v", pattern, err)
			}
			return
		}
		if strings.Contains(trimmed, "**") {
			return
		}
		g, err := Compile(pattern, Relative())
		if err != nil {
			for _, s := range segments(trimmed) {
				if _, serr := path.Match(s, ""); serr != nil {
					return // "/" inside [ ], or a malformed class filepath.Match missed
				}
			}
			t.Fatalf("Compile(%q): %v", pattern, err)
		}
		rel := relName(name)
		if rel == "" || rel == "." {
			return
		}
		if !strings.Contains(trimmed, "/") && strings.Contains(rel, "/") {
			return
		}
		o, _ := filepath.Match(trimmed, rel)
		if n := g.Match(rel); o != n {
			t.Fatalf("%q.Match(%q) = %v, filepath.Match %v", pattern, rel, n, o)
		}
	})
}

// FuzzCompile feeds untrusted patterns to the compiler: no panic, errors
// wrap ErrBadPattern, and matching stays fast on names built to make a
// backtracking matcher explode.
func FuzzCompile(f *testing.F) {
	addSeeds(f)
	f.Add(strings.Repeat("**/a*", 40)+"b", strings.Repeat("a/", 300))
	f.Add(strings.Repeat("*a", 60)+"b", strings.Repeat("a", 900))
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 1024 || len(name) > 4096 {
			return
		}
		hostile := []string{
			name,
			strings.NewReplacer("*", "aaaa", "?", "a").Replace(pattern),
			strings.Repeat(strings.NewReplacer("*", "", "?", "").Replace(pattern)+"/", 8),
		}
		for _, opts := range [][]Option{nil, {Relative()}, {Whole()}} {
			g, err := Compile(pattern, opts...)
			if err != nil {
				if !errorsIs(err) {
					t.Fatalf("Compile(%q): %v does not wrap ErrBadPattern", pattern, err)
				}
				continue
			}
			if g.String() != pattern {
				t.Fatalf("String() = %q, want %q", g.String(), pattern)
			}
			start := time.Now()
			for _, n := range hostile {
				g.Match(n)
				g.MayContain(n)
				g.Holds(n)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("matching %q took %v", pattern, d)
			}
		}
	})
}
