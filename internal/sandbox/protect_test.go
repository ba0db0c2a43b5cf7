package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// oldExpand is how protected globs were expanded before they took package
// glob's dialect: filepath.Glob from the workspace root. It is the
// reference for the patterns whose meaning did not change.
func oldExpand(ws, g string) []string {
	pat := strings.TrimSuffix(g, "/")
	var out []string
	m, _ := filepath.Glob(filepath.Join(ws, filepath.FromSlash(pat)))
	for _, full := range m {
		if rel, ok := inside(ws, full); ok {
			out = append(out, rel)
		}
	}
	return out
}

func tree(t *testing.T, files ...string) string {
	t.Helper()
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		full := filepath.Join(ws, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(f, "@"); ok {
			from, to, _ := strings.Cut(target, "->")
			if err := os.Symlink(to, filepath.Join(ws, from)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if strings.HasSuffix(f, "/") {
			continue
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

func TestExpandProtected(t *testing.T) {
	files := []string{".env", "sub/.env.local", "sub/deep/.env", "ci/deploy", "ci/x/y", "keys/a.pem", "keys/b.txt", "a.pem",
		"real/c.pem", "@link->real", "@loop->.", ".git/hooks/"}
	tests := []struct {
		globs []string
		want  []string
	}{
		{[]string{".env*"}, []string{".env", "sub/.env.local", "sub/deep/.env"}},
		{[]string{"/.env*"}, []string{".env"}},
		{[]string{"*.pem"}, []string{"a.pem", "keys/a.pem", "real/c.pem"}},
		{[]string{"ci/*"}, []string{"ci/deploy", "ci/x"}},
		{[]string{"ci/**"}, []string{"ci/deploy", "ci/x"}},
		{[]string{"**/y"}, []string{"ci/x/y"}},
		{[]string{"link/*.pem"}, []string{"real/c.pem"}},
		{[]string{".git/hooks/"}, []string{".git/hooks"}},
	}
	for _, tc := range tests {
		ws := tree(t, files...)
		got, err := expandProtected(ws, tc.globs)
		if err != nil {
			t.Fatalf("%v: %v", tc.globs, err)
		}
		if diff := cmp.Diff(tc.want, got.paths); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tc.globs, diff)
		}
	}
}

// TestExpandProtectedAsBefore: an anchored pattern without "**" expands as
// filepath.Glob expanded it.
func TestExpandProtectedAsBefore(t *testing.T) {
	ws := tree(t, ".env", "ci/deploy", "ci/x/y", "keys/a.pem", "keys/b.txt", "keys/[x].pem", ".git/hooks/pre-commit", ".git/config")
	for _, g := range []string{"ci/*", "keys/*.pem", "keys/?.*", "keys/[ab].*", `keys/\[x\].pem`, ".git/hooks/", ".git/*", "*/x/y", "*/*"} {
		got, err := expandProtected(ws, []string{g})
		if err != nil {
			t.Fatal(err)
		}
		want := oldExpand(ws, g)
		// Under another match: mounted with it, as before.
		var kept []string
		for _, w := range want {
			if !coveredBy(w, setOf(want)) {
				kept = append(kept, w)
			}
		}
		if diff := cmp.Diff(kept, got.paths); diff != "" {
			t.Errorf("%q (-filepath.Glob +now):\n%s", g, diff)
		}
	}
}

func setOf(ss []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		m[s] = true
	}
	return m
}

// BenchmarkExpandProtected expands the default globs in a workspace of
// 20,000 files, with filepath.Glob's root-only expansion as the peer: the
// price of ".env*" at any depth.
func BenchmarkExpandProtected(b *testing.B) {
	ws, err := filepath.EvalSymlinks(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	for d := range 200 {
		dir := filepath.Join(ws, "src", strconv.Itoa(d/20), strconv.Itoa(d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(f)+".go"), nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			if _, err := expandProtected(ws, DefaultProtectedPaths); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("old", func(b *testing.B) {
		for b.Loop() {
			for _, g := range DefaultProtectedPaths {
				oldExpand(ws, g)
			}
		}
	})
}
