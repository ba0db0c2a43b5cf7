package fsguard

import (
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refMatch is the reference for builtinMatch: the built-in globs matched
// segment by segment, the way the policy's glob dialect matches them.
func refMatch(rel string) bool {
	for _, g := range builtinGlobs {
		if refGlob(g, rel) {
			return true
		}
	}
	return false
}

func refGlob(glob, rel string) bool {
	return refSegs(strings.Split(glob, "/"), strings.Split(rel, "/"))
}

// refSegs: "**" matches any number of segments, at least one at the end.
func refSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			pat = pat[1:]
			if len(pat) == 0 {
				return len(segs) > 0
			}
			for i := range segs {
				if refSegs(pat, segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], segs[0]); !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

func TestBuiltinMatch(t *testing.T) {
	cases := map[string]bool{
		".git/config":                  true,
		".git/hooks/pre-commit":        true,
		".git/hooks/d/e":               true,
		".git/hooks":                   false,
		".git":                         false,
		".git/HEAD":                    false,
		".git/config.worktree":         false,
		".git/configx":                 false,
		"sub/.git/config":              true,
		"a/b/c/.git/hooks/post-update": true,
		"x.git/config":                 false,
		"sub/.git/hooks":               false,
		".github/workflows/ci.yml":     true,
		".github/workflows/a/b.yml":    true,
		".github/workflows":            false,
		".github/CODEOWNERS":           false,
		"sub/.github/workflows/ci.yml": false,
		".gitlab-ci.yml":               true,
		"sub/.gitlab-ci.yml":           false,
		".env":                         true,
		".env.local":                   true,
		".env.":                        true,
		"a/b/.env":                     true,
		"a/b/.env.production":          true,
		".envrc":                       false,
		"x.env":                        false,
		".env/x":                       false, // protected as the child of a protected directory, not by the pattern
		"src/main.go":                  false,
	}
	got := map[string]bool{}
	for p := range cases {
		got[p] = builtinMatch(p)
		if r := refMatch(p); r != cases[p] {
			t.Errorf("reference matcher disagrees with the table on %q: %v", p, r)
		}
	}
	if diff := cmp.Diff(cases, got); diff != "" {
		t.Errorf("builtinMatch (-want +got):\n%s", diff)
	}
}

func TestCleanRel(t *testing.T) {
	cases := map[string]bool{
		"a": true, "a/b": true, ".env": true, "a/.git/config": true, "..a": true,
		"": false, ".": false, "..": false, "/a": false, "a/": false, "a//b": false,
		"a/./b": false, "a/../b": false, "../a": false, "a\x00b": false,
		strings.Repeat("a", 4097): false,
	}
	got := map[string]bool{}
	for p := range cases {
		got[p] = cleanRel(p)
	}
	if diff := cmp.Diff(cases, got); diff != "" {
		t.Errorf("cleanRel (-want +got):\n%s", diff)
	}
}

// FuzzPaths holds the path handling to its references: cleanRel accepts
// exactly the clean, relative paths below the root, builtinMatch agrees
// with the glob reference, and splitRel/join round-trip.
func FuzzPaths(f *testing.F) {
	for _, s := range []string{
		".git/config", "a/.git/hooks/x", ".git/hooks", ".env.x", "a/.env", ".github/workflows/a",
		".gitlab-ci.yml", "a/../b", "./a", "a//b", "/a", "a/", "", ".", "..", "a/.git/.git/config",
		".git/hooks/", "x/.git/hooks/.git/config", ".env/.env.", "a\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		ok := cleanRel(p)
		ref := p != "" && len(p) <= 4096 && !strings.ContainsRune(p, 0) && !path.IsAbs(p) &&
			path.Clean(p) == p && p != "." && p != ".." && !strings.HasPrefix(p, "../")
		if ok != ref {
			t.Fatalf("cleanRel(%q) = %v, reference %v", p, ok, ref)
		}
		if !ok {
			return
		}
		if got, want := builtinMatch(p), refMatch(p); got != want {
			t.Fatalf("builtinMatch(%q) = %v, reference %v", p, got, want)
		}
		dir, name := splitRel(p)
		if join(dir, name) != p || name == "" || strings.Contains(name, "/") {
			t.Fatalf("splitRel(%q) = %q, %q", p, dir, name)
		}
		if builtinHolds(p) && !strings.HasSuffix(p, ".git") && !strings.HasSuffix(p, "hooks") && !strings.HasPrefix(p, ".github") {
			t.Fatalf("builtinHolds(%q): not a directory of the built-in set", p)
		}
	})
}
