package fsguard

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// op changes the tree under root. Ops run through the os package, which
// follows symlinks, the way an agent's commands would.
type op func(t testing.TB, root string)

func write(p, body string) op { return writeMode(p, body, 0o644) }

func writeMode(p, body string, mode fs.FileMode) op {
	return func(t testing.TB, root string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func mkdir(p string) op {
	return func(t testing.TB, root string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(target, p string) op {
	return func(t testing.TB, root string) {
		t.Helper()
		target := strings.ReplaceAll(target, "$OUT", filepath.Join(filepath.Dir(root), "outside"))
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
}

func link(old, p string) op {
	return func(t testing.TB, root string) {
		t.Helper()
		if err := os.Link(filepath.Join(root, old), filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
}

func remove(p string) op {
	return func(t testing.TB, root string) {
		t.Helper()
		if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
}

func rename(a, b string) op {
	return func(t testing.TB, root string) {
		t.Helper()
		if err := os.Rename(filepath.Join(root, a), filepath.Join(root, b)); err != nil {
			t.Fatal(err)
		}
	}
}

func chmod(p string, mode fs.FileMode) op {
	return func(t testing.TB, root string) {
		t.Helper()
		if err := os.Chmod(filepath.Join(root, p), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// baseTree is every case's workspace before the session.
var baseTree = []op{
	write(".git/config", "[core]\n\tbare = false\n"),
	write(".git/HEAD", "ref: refs/heads/main\n"),
	writeMode(".git/hooks/pre-commit.sample", "#!/bin/sh\n", 0o755),
	writeMode(".git/hooks/pre-commit", "#!/bin/sh\nexit 0\n", 0o755),
	write(".git/objects/ab/cdef", "blob"),
	write(".github/workflows/ci.yml", "on: push\n"),
	write(".gitlab-ci.yml", "stages: [test]\n"),
	writeMode(".env", "SECRET=1\n", 0o600),
	write("src/main.go", "package main\n"),
	write("node_modules/pkg/index.js", "x"),
	write("secrets/key.pem", "KEY\n"),
}

// globMatcher is a test Matcher in the policy's dialect, with Holds.
type globMatcher []string

func (m globMatcher) Match(rel string) bool {
	for _, g := range m {
		if refGlob(g, rel) {
			return true
		}
	}
	return false
}

// Holds: dir matches a proper prefix of a pattern that ends in a segment
// other than "**".
func (m globMatcher) Holds(dir string) bool {
	ds := strings.Split(dir, "/")
	for _, g := range m {
		segs := strings.Split(g, "/")
		for k := 1; k < len(segs); k++ {
			if segs[k-1] != "**" && refSegs(segs[:k], ds) {
				return true
			}
		}
	}
	return false
}

// newWorkspace builds root/ws from ops, and root/outside beside it.
func newWorkspace(t testing.TB, ops ...op) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "ws")
	for _, p := range []string{root, filepath.Join(base, "outside")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("target", "outside\n")(t, filepath.Join(base, "outside"))
	for _, o := range ops {
		o(t, root)
	}
	return root
}

// node is what dump records of one path.
type node struct {
	Mode   fs.FileMode
	Sum    string
	Target string
}

// dump records every path under dir for which keep is true, never
// following symlinks.
func dump(t testing.TB, dir string, keep func(rel string, isDir bool) bool) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if !keep(rel, d.IsDir()) {
			if d.IsDir() && skippedRef(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := node{Mode: fi.Mode()}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Sum = sha(string(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			n.Target, _ = os.Readlink(p)
			n.Mode = fs.ModeSymlink
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// skippedRef: a directory the guard does not walk (unless protected).
func skippedRef(rel string) bool {
	dir, name := splitRel(rel)
	return name == "node_modules" || (name == "objects" || name == "lfs") && (dir == ".git" || strings.HasSuffix(dir, "/.git"))
}

// protectedRef is the reference of what the guard keeps: a path matched
// by the built-in globs or m, or beneath one; and a non-directory where
// protected paths may lie beneath. Paths inside skipped directories are
// out unless protected.
func protectedRef(m Matcher) func(rel string, isDir bool) bool {
	return func(rel string, isDir bool) bool {
		segs := strings.Split(rel, "/")
		for i := range segs {
			p := strings.Join(segs[:i+1], "/")
			if refMatch(p) || m != nil && m.Match(p) {
				return true
			}
		}
		for i := range segs[:len(segs)-1] {
			if skippedRef(strings.Join(segs[:i+1], "/")) {
				if h, ok := m.(Holder); !ok || !h.Holds(strings.Join(segs[:i+1], "/")) {
					return false
				}
			}
		}
		if isDir {
			return false
		}
		return builtinHolds(rel) || m != nil && m.(Holder).Holds(rel)
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func inode(t testing.TB, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// summary is a change without its hashes: "kind path [links]".
func summary(cs []Change) []string {
	var out []string
	for _, c := range cs {
		s := string(c.Kind) + " " + c.Path
		if len(c.Links) > 0 {
			s += " " + fmt.Sprint(c.Links)
		}
		out = append(out, s)
	}
	return out
}

// guardCase is one case of TestGuard: the base tree, then mutate, then
// Check, Revert and Check again.
type guardCase struct {
	name    string
	matcher Matcher
	opts    []Option
	base    []op // added to baseTree
	mutate  []op
	want    []string // Check's changes, as summary gives them
	failed  []string // changes Revert cannot undo
	inPlace []string // files whose inode must survive the revert
}

func TestGuard(t *testing.T) {
	cases := []guardCase{
		{name: "nothing changed"},
		{
			name:    "unprotected files are not reported",
			mutate:  []op{write("src/main.go", "changed"), write("src/new.go", "x"), remove("src"), write(".git/HEAD", "x"), write("node_modules/a/.env", "x")},
			inPlace: []string{".git/config"},
		},
		{
			name:    "config rewritten",
			mutate:  []op{write(".git/config", "[core]\n\thooksPath = /tmp/evil\n")},
			want:    []string{"modified .git/config"},
			inPlace: []string{".git/config"},
		},
		{
			name:   "mode changes",
			mutate: []op{chmod(".env", 0o644), chmod(".git/hooks/pre-commit", 0o644)},
			want:   []string{"mode .env", "mode .git/hooks/pre-commit"},
		},
		{
			name:   "hook deleted, CI files changed",
			mutate: []op{remove(".git/hooks/pre-commit"), write(".github/workflows/ci.yml", "on: push\nrun: curl evil\n"), write(".github/workflows/new.yml", "x"), remove(".gitlab-ci.yml")},
			want:   []string{"deleted .git/hooks/pre-commit", "modified .github/workflows/ci.yml", "created .github/workflows/new.yml", "deleted .gitlab-ci.yml"},
		},
		{
			name:   "env files created at any depth",
			mutate: []op{write(".env.local", "A=1"), write("app/config/.env", "B=2"), write("app/.env.production", "C=3")},
			want:   []string{"created .env.local", "created app/.env.production", "created app/config/.env"},
		},
		{
			name: "git init of a nested repository",
			mutate: []op{
				write("sub/.git/config", "[core]\n\tfsmonitor = evil\n"), write("sub/.git/HEAD", "ref"),
				writeMode("sub/.git/hooks/pre-push", "#!/bin/sh\nevil\n", 0o755), mkdir("sub/.git/hooks/d.d"), write("sub/.git/hooks/d.d/x", "y"),
			},
			want: []string{"created sub/.git/config", "created sub/.git/hooks/d.d", "created sub/.git/hooks/d.d/x", "created sub/.git/hooks/pre-push"},
		},
		{
			name:    "write through a hard link",
			mutate:  []op{link(".git/config", "x"), write("x", "[core]\n\tfsmonitor = evil\n")},
			want:    []string{"hardlink .git/config [x]"},
			inPlace: []string{".git/config"},
		},
		{
			name:    "hard links kept for later",
			mutate:  []op{link(".env", "src/env"), link(".git/hooks/pre-commit", "node_modules/hook")},
			want:    []string{"hardlink .env [src/env]", "hardlink .git/hooks/pre-commit"},
			inPlace: []string{".env"},
		},
		{
			name:    "a known hard link swapped for a new one",
			base:    []op{link(".env", "old-alias")},
			mutate:  []op{remove("old-alias"), link(".env", "new-alias"), write("new-alias", "SECRET=evil\n")},
			want:    []string{"hardlink .env [new-alias]"},
			inPlace: []string{".env"},
		},
		{
			name:   "two protected paths of one file",
			base:   []op{link(".env", ".env.x")},
			mutate: []op{write(".env", "SECRET=evil\n")},
			want:   []string{"modified .env", "modified .env.x"},
		},
		{
			name:   "new protected file linked to a workspace file",
			mutate: []op{link("src/main.go", ".env.local")},
			want:   []string{"created .env.local"},
		},
		{
			name:   "protected file replaced by a symlink out of the workspace",
			mutate: []op{remove(".env"), symlink("$OUT/target", ".env"), remove(".gitlab-ci.yml"), symlink("../outside/target", ".gitlab-ci.yml")},
			want:   []string{"type .env", "type .gitlab-ci.yml"},
		},
		{
			name:   "hooks directory replaced by a symlink",
			mutate: []op{rename(".git/hooks", "evilhooks"), write("evilhooks/post-checkout", "evil"), symlink("../evilhooks", ".git/hooks")},
			want:   []string{"type .git/hooks", "deleted .git/hooks/pre-commit", "deleted .git/hooks/pre-commit.sample"},
		},
		{
			name:   ".git replaced by a symlink to a directory outside",
			mutate: []op{rename(".git", "old"), write("../outside/config", "[core]\n\tfsmonitor = evil\n"), symlink("$OUT", ".git")},
			want:   []string{"type .git", "deleted .git/config", "deleted .git/hooks/pre-commit", "deleted .git/hooks/pre-commit.sample"},
		},
		{
			name:   "nested .git symlink and gitdir file",
			mutate: []op{mkdir("sub"), symlink("../evil", "sub/.git"), write("sub2/.git", "gitdir: ../evil\n")},
			want:   []string{"created sub/.git", "created sub2/.git"},
		},
		{
			name:   "protected file replaced by a directory",
			mutate: []op{remove(".env"), write(".env/inner", "x"), symlink("/etc", ".env/etc")},
			want:   []string{"type .env", "created .env/etc", "created .env/inner"},
		},
		{
			name:    "caller's globs, and a symlink where they hold",
			matcher: globMatcher{"secrets/**", "**/*.pem", "deploy/prod.yaml"},
			mutate: []op{
				write("secrets/key.pem", "stolen"), write("a/b/c.pem", "x"), rename("secrets", "s2"), symlink("s2", "secrets"),
				mkdir("deploy-real"), write("deploy-real/prod.yaml", "evil"), symlink("deploy-real", "deploy"),
				write("node_modules/x.pem", "not walked: **/*.pem names no directory"), symlink("a", "pem-link"),
			},
			want: []string{"created a/b/c.pem", "created deploy", "created s2/key.pem", "type secrets", "deleted secrets/key.pem"},
		},
		{
			name:    "caller's Holds enters a skipped directory",
			matcher: globMatcher{"node_modules/.bin/**", "**/.svn/config"},
			mutate: []op{
				write("node_modules/.bin/tool", "evil"), write("node_modules/pkg/.env", "not walked"),
				write("elsewhere/config", "evil"), mkdir("vendor"), symlink("../elsewhere", "vendor/.svn"),
			},
			want: []string{"created node_modules/.bin/tool", "created vendor/.svn"},
		},
		{
			name:   "content over the limit is guarded by hash",
			opts:   []Option{WithContentLimits(12, 1<<20)},
			mutate: []op{write(".gitlab-ci.yml", "stages: [evil]\n"), chmod(".github/workflows/ci.yml", 0o600), link(".git/config", "y")},
			want:   []string{"hardlink .git/config [y]", "mode .github/workflows/ci.yml", "modified .gitlab-ci.yml"},
			failed: []string{"modified .gitlab-ci.yml"},
		},
		{
			name:   "total content limit",
			opts:   []Option{WithContentLimits(1<<20, 20)},
			mutate: []op{write(".git/config", "x"), write(".gitlab-ci.yml", "x"), write(".env", "x")},
			want:   []string{"modified .env", "modified .git/config", "modified .gitlab-ci.yml"},
			// Walk order decides which files fit; at least one does not.
		},
	}
	for _, tc := range cases {
		for _, cached := range []bool{false, true} {
			name := tc.name
			if cached {
				name += "/cached"
			}
			t.Run(name, func(t *testing.T) { testGuardCase(t, tc, cached) })
		}
	}
}

// testGuardCase runs one case of TestGuard. cached: the walk may reuse
// the listing of every directory the case does not change (the tree is
// new, so by default every directory is listed again).
func testGuardCase(t *testing.T, tc guardCase, cached bool) {
	root := newWorkspace(t, append(slices.Clone(baseTree), tc.base...)...)
	g, err := New(root, tc.matcher, tc.opts...)
	if err != nil {
		t.Fatal(err)
	}
	if cached {
		g.hot = 0
	}
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if cached {
		if cs, err := g.Check(); err != nil || len(cs) > 0 {
			t.Fatalf("Check of an unchanged tree = %v, %v", summary(cs), err)
		}
		if len(g.cache) == 0 {
			t.Fatal("no directory listing kept")
		}
		time.Sleep(20 * time.Millisecond) // past any timestamp granularity
	}
	keep := protectedRef(tc.matcher)
	before := dump(t, root, keep)
	inodes := map[string]uint64{}
	for _, p := range tc.inPlace {
		inodes[p] = inode(t, filepath.Join(root, p))
	}
	for _, o := range tc.mutate {
		o(t, root)
	}
	cs, err := g.Check()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tc.want, summary(cs)); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
	outside := dump(t, filepath.Dir(root), func(rel string, _ bool) bool { return !strings.HasPrefix(rel, "ws/") && rel != "ws" })
	failed, err := g.Revert(cs)
	if tc.name == "total content limit" {
		if len(failed) == 0 || !errors.Is(err, ErrUnrevertable) {
			t.Errorf("Revert over the total limit: failed %v, err %v", summary(failed), err)
		}
		return
	}
	if diff := cmp.Diff(tc.failed, summary(failed)); diff != "" {
		t.Errorf("Revert's failures (-want +got):\n%s\nerr: %v", diff, err)
	}
	if (len(tc.failed) > 0) != (err != nil) || err != nil && !errors.Is(err, ErrUnrevertable) {
		t.Errorf("Revert error = %v", err)
	}
	if diff := cmp.Diff(outside, dump(t, filepath.Dir(root), func(rel string, _ bool) bool { return !strings.HasPrefix(rel, "ws/") && rel != "ws" })); diff != "" {
		t.Errorf("Revert changed files outside the workspace (-before +after):\n%s", diff)
	}
	after, err := g.Check()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tc.failed, summary(after)); diff != "" {
		t.Errorf("Check after Revert (-want +got):\n%s", diff)
	}
	got := dump(t, root, keep)
	for _, c := range tc.failed {
		p := c[strings.IndexByte(c, ' ')+1:]
		delete(got, p)
		delete(before, p)
	}
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("protected paths after Revert (-baseline +got):\n%s", diff)
	}
	for p, ino := range inodes {
		if got := inode(t, filepath.Join(root, p)); got != ino {
			t.Errorf("%s: inode %d after Revert, want %d (restored in place)", p, got, ino)
		}
	}
	for _, c := range cs {
		for _, l := range c.Links {
			if _, err := os.Lstat(filepath.Join(root, l)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("hard link %s still exists after Revert (%v)", l, err)
			}
		}
	}
}

func TestChangeFields(t *testing.T) {
	root := newWorkspace(t, baseTree...)
	g, err := New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []op{
		writeMode(".env", "SECRET=2\n", 0o644), write(".env.new", "N"), remove(".gitlab-ci.yml"), symlink("/x", ".env.link"),
		mkdir(".github/workflows/d"),
	} {
		o(t, root)
	}
	cs, err := g.Check()
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{Path: ".env", Kind: KindModified, Before: sha("SECRET=1\n"), After: sha("SECRET=2\n"), BeforeMode: 0o600, AfterMode: 0o644},
		{Path: ".env.link", Kind: KindCreated, After: "/x", AfterMode: fs.ModeSymlink | 0o777},
		{Path: ".env.new", Kind: KindCreated, After: sha("N"), AfterMode: 0o644},
		{Path: ".github/workflows/d", Kind: KindCreated, AfterMode: fs.ModeDir | 0o755},
		{Path: ".gitlab-ci.yml", Kind: KindDeleted, Before: sha("stages: [test]\n"), BeforeMode: 0o644},
	}
	if diff := cmp.Diff(want, cs); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}

func TestAccept(t *testing.T) {
	root := newWorkspace(t, baseTree...)
	g, err := New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// An approved call changes .env and adds a hook; another change is not approved.
	write(".env", "SECRET=approved\n")(t, root)
	writeMode(".git/hooks/post-commit", "#!/bin/sh\n", 0o755)(t, root)
	link(".git/config", "alias")(t, root)
	cs, err := g.Check()
	if err != nil {
		t.Fatal(err)
	}
	g.Accept(cs)
	if cs, err := g.Check(); err != nil || len(cs) != 0 {
		t.Fatalf("Check after Accept = %v, %v; want no change", summary(cs), err)
	}
	// Later unapproved changes go back to the approved state.
	write(".env", "SECRET=evil\n")(t, root)
	remove(".git/hooks/post-commit")(t, root)
	link(".git/config", "alias2")(t, root)
	cs, err = g.Check()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"modified .env", "hardlink .git/config [alias2]", "deleted .git/hooks/post-commit"}, summary(cs)); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
	if failed, err := g.Revert(cs); err != nil || len(failed) > 0 {
		t.Fatalf("Revert: %v %v", summary(failed), err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, ".env")); string(b) != "SECRET=approved\n" {
		t.Errorf(".env after Revert = %q, want the approved content", b)
	}
	if _, err := os.Stat(filepath.Join(root, ".git/hooks/post-commit")); err != nil {
		t.Errorf("approved hook not restored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "alias")); err != nil {
		t.Errorf("approved link removed: %v", err)
	}
	if cs, err := g.Check(); err != nil || len(cs) != 0 {
		t.Fatalf("Check after Revert = %v, %v; want no change", summary(cs), err)
	}
}

func TestLimits(t *testing.T) {
	var many []op
	for i := range 30 {
		many = append(many, write(fmt.Sprintf("d/f%02d", i), "x"))
	}
	root := newWorkspace(t, append(slices.Clone(baseTree), many...)...)
	g, err := New(root, nil, WithMaxEntries(20))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Snapshot(); !errors.Is(err, ErrLimit) {
		t.Errorf("Snapshot of a workspace over the bound: %v, want ErrLimit", err)
	}
	if _, err := g.Check(); !errors.Is(err, ErrNoBaseline) {
		t.Errorf("Check without a baseline: %v, want ErrNoBaseline", err)
	}
	g, err = New(root, nil, WithMaxEntries(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		write(fmt.Sprintf("e/f%03d", i), "x")(t, root)
	}
	if cs, err := g.Check(); !errors.Is(err, ErrLimit) || cs != nil {
		t.Errorf("Check over the bound = %v, %v; want ErrLimit and no changes", cs, err)
	}
	deep := root
	for range maxDepth + 1 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	remove("e")(t, root)
	if _, err := g.Check(); !errors.Is(err, ErrLimit) {
		t.Errorf("Check of a too deep tree: %v, want ErrLimit", err)
	}
}

func TestRevertRefusesForeignPaths(t *testing.T) {
	root := newWorkspace(t, baseTree...)
	g, err := New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Snapshot(); err != nil {
		t.Fatal(err)
	}
	write(".env", "changed")(t, root)
	cs := []Change{
		{Path: "../outside/target", Kind: KindCreated},
		{Path: "src/main.go", Kind: KindCreated},
		{Path: "/etc/passwd", Kind: KindCreated},
		{Path: ".env", Kind: KindHardLink, Links: []string{"../outside/target"}},
	}
	failed, err := g.Revert(cs)
	if !errors.Is(err, ErrBadPath) {
		t.Errorf("Revert error = %v, want ErrBadPath", err)
	}
	if diff := cmp.Diff([]string{"created ../outside/target", "hardlink .env [../outside/target]", "created /etc/passwd", "created src/main.go"}, summary(failed)); diff != "" {
		t.Errorf("Revert's failures (-want +got):\n%s", diff)
	}
	for _, p := range []string{"src/main.go", "../outside/target"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
