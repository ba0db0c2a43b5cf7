package fsguard

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchWorkspace is ~20,000 files in ~2,000 directories, with a git
// repository (hooks, config, 1,000 loose objects that the walk skips) and
// a node_modules tree (skipped as well).
func benchWorkspace(b *testing.B) string {
	b.Helper()
	root := newWorkspace(b, baseTree...)
	for _, n := range []string{"applypatch-msg", "commit-msg", "post-update", "pre-applypatch", "pre-push", "pre-rebase", "prepare-commit-msg", "update"} {
		writeMode(".git/hooks/"+n+".sample", "#!/bin/sh\n# a sample hook of a few hundred bytes\nexit 0\n", 0o755)(b, root)
	}
	for i := range 1000 {
		write(fmt.Sprintf(".git/objects/%02x/%038x", i%256, i), "blob")(b, root)
	}
	for i := range 2000 {
		write(fmt.Sprintf("node_modules/p%d/index.js", i), "x")(b, root)
	}
	for d := range 40 {
		for s := range 50 {
			dir := filepath.Join(root, fmt.Sprintf("pkg%02d/mod%02d", d, s))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			for f := range 10 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file%d.go", f)), []byte("package x\n"), 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return root
}

// BenchmarkCheck is one Check of a quiet workspace; the runner makes two
// per tool call. "listed" lists every directory again (the first Check of
// a session, or every directory changed in the last second); the others
// reuse the listings of unchanged directories, as Checks do once the tree
// has been quiet for a second.
func BenchmarkCheck(b *testing.B) {
	root := benchWorkspace(b)
	time.Sleep(1100 * time.Millisecond) // the workspace predates the session
	for _, bc := range []struct {
		name   string
		m      Matcher
		listed bool
	}{
		{"builtin", nil, false},
		{"builtin+3globs", globMatcher{"secrets/**", "**/*.pem", "deploy/*.yaml"}, false},
		{"builtin/listed", nil, true},
		{"builtin+3globs/listed", globMatcher{"secrets/**", "**/*.pem", "deploy/*.yaml"}, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g, err := New(root, bc.m)
			if err != nil {
				b.Fatal(err)
			}
			if err := g.Snapshot(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if bc.listed {
					g.cache = nil
				}
				cs, err := g.Check()
				if err != nil || len(cs) > 0 {
					b.Fatalf("Check = %v, %v", summary(cs), err)
				}
			}
		})
	}
}
