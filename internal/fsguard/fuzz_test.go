package fsguard

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Names and link targets the random trees are made of: the protected
// names, the directories the walk skips, and targets that point inside
// the workspace, beside it and nowhere. No target climbs to the
// workspace or above it, so the ops (which follow symlinks) stay inside
// the test's directory.
var (
	fuzzNames   = []string{".git", "config", "hooks", "pre-commit", ".env", ".env.x", "sub", "a", ".github", "workflows", "node_modules", "objects", "x"}
	fuzzTargets = []string{"a", "sub", ".git", "sub/.git", "x/y", "config", ".env", "../outside", "../../outside", "../a", "$OUT", "$OUT/target"}
	fuzzModes   = []fs.FileMode{0o600, 0o644, 0o700, 0o755}
)

// program decodes fuzz bytes into ops on a tree.
type program struct{ b []byte }

func (p *program) next() (int, bool) {
	if len(p.b) == 0 {
		return 0, false
	}
	c := int(p.b[0])
	p.b = p.b[1:]
	return c, true
}

func (p *program) path() string {
	n, _ := p.next()
	var segs []string
	for range 1 + n%3 {
		i, _ := p.next()
		segs = append(segs, fuzzNames[i%len(fuzzNames)])
	}
	return strings.Join(segs, "/")
}

// run applies the program's ops to root, ignoring the ones that fail.
func (p *program) run(root string) {
	out := filepath.Join(filepath.Dir(root), "outside")
	for {
		k, ok := p.next()
		if !ok {
			return
		}
		at := filepath.Join(root, p.path())
		switch k % 7 {
		case 0:
			c, _ := p.next()
			_ = os.WriteFile(at, []byte(strings.Repeat("c", c%5)+string(rune('a'+c%26))), 0o644)
		case 1:
			_ = os.MkdirAll(at, 0o755)
		case 2:
			t, _ := p.next()
			_ = os.Symlink(strings.ReplaceAll(fuzzTargets[t%len(fuzzTargets)], "$OUT", out), at)
		case 3:
			_ = os.Link(filepath.Join(root, p.path()), at)
		case 4:
			_ = os.RemoveAll(at)
		case 5:
			m, _ := p.next()
			mode := fuzzModes[m%len(fuzzModes)]
			if fi, err := os.Stat(at); err == nil && fi.IsDir() {
				mode |= 0o700 // the walk must be able to enter it when not root
			}
			_ = os.Chmod(at, mode)
		case 6:
			_ = os.Rename(at, filepath.Join(root, p.path()))
		}
	}
}

// enc writes ops for the seed corpus: each op is its kind and its bytes.
func enc(ops ...[]byte) []byte {
	var b []byte
	for _, o := range ops {
		b = append(b, o...)
	}
	return b
}

// Indexes into fuzzNames, for readable seeds.
const (
	nGit = iota
	nConfig
	nHooks
	nPreCommit
	nEnv
	nEnvX
	nSub
	nA
	nGithub
	nWorkflows
	nNodeModules
	nObjects
	nX
)

func p1(a byte) []byte       { return []byte{0, a} }
func p2(a, b byte) []byte    { return []byte{1, a, b} }
func p3(a, b, c byte) []byte { return []byte{2, a, b, c} }

func opWrite(p []byte, c byte) []byte   { return append(append([]byte{0}, p...), c) }
func opMkdir(p []byte) []byte           { return append([]byte{1}, p...) }
func opSymlink(p []byte, t byte) []byte { return append(append([]byte{2}, p...), t) }
func opLink(p, old []byte) []byte       { return append(append([]byte{3}, p...), old...) }
func opRemove(p []byte) []byte          { return append([]byte{4}, p...) }
func opChmod(p []byte, m byte) []byte   { return append(append([]byte{5}, p...), m) }
func opRename(p, to []byte) []byte      { return append(append([]byte{6}, p...), to...) }

// FuzzRevert builds a random tree of files, directories, symlinks and
// hard links, takes a baseline, changes the tree at random (with cached,
// after a pause, so that Check reuses the listings of the directories
// the changes leave alone), reverts every
// change Check reports, and asserts that the protected paths are the
// baseline's again, that Check is quiet, that nothing outside the
// workspace changed, and that no unprotected file went away except the
// hard links and the non-directories planted on the way to a protected
// path.
func FuzzRevert(f *testing.F) {
	base := enc(
		opWrite(p2(nGit, nConfig), 1), opWrite(p3(nGit, nHooks, nPreCommit), 2), opWrite(p1(nEnv), 3),
		opMkdir(p2(nGithub, nWorkflows)), opWrite(p3(nGithub, nWorkflows, nX), 4), opWrite(p2(nA, nX), 5),
	)
	f.Add(base, enc(opWrite(p2(nGit, nConfig), 9)), false)
	f.Add(base, enc(opLink(p1(nX), p2(nGit, nConfig)), opWrite(p1(nX), 7)), false)
	f.Add(base, enc(opRename(p1(nGit), p1(nSub)), opSymlink(p1(nGit), 2)), false)
	f.Add(base, enc(opRename(p2(nGit, nHooks), p1(nX)), opSymlink(p2(nGit, nHooks), 0)), false)
	f.Add(base, enc(opMkdir(p3(nSub, nGit, nHooks)), opWrite(p3(nSub, nGit, nConfig), 1), opSymlink(p2(nA, nGit), 10)), false)
	f.Add(base, enc(opRemove(p1(nEnv)), opMkdir(p2(nEnv, nX)), opChmod(p3(nGit, nHooks, nPreCommit), 1)), false)
	f.Add(base, enc(opRemove(p1(nA)), opWrite(p1(nA), 1), opLink(p2(nNodeModules, nX), p1(nEnv)), opWrite(p2(nNodeModules, nEnv), 2)), false)
	f.Add(enc(opWrite(p1(nEnv), 1), opLink(p1(nX), p1(nEnv))), enc(opLink(p1(nA), p1(nEnv)), opRemove(p1(nX))), false)
	f.Add(enc(opSymlink(p1(nEnv), 7), opMkdir(p3(nSub, nX, nGit))), enc(opSymlink(p2(nSub, nX), 3), opRename(p3(nSub, nX, nGit), p1(nA))), false)
	m := globMatcher{"sub/x/**"}
	f.Add(base, enc(opWrite(p2(nGit, nConfig), 9), opWrite(p3(nSub, nGit, nConfig), 1), opRemove(p1(nA))), true)
	f.Fuzz(func(t *testing.T, baseOps, mutOps []byte, cached bool) {
		if len(baseOps) > 200 || len(mutOps) > 200 {
			return
		}
		top := filepath.Join(t.TempDir(), "a", "b")
		root := filepath.Join(top, "ws")
		for _, d := range []string{root, filepath.Join(top, "outside")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(top, "outside", "target"), []byte("outside\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		(&program{baseOps}).run(root)
		g, err := New(root, m)
		if err != nil {
			t.Fatal(err)
		}
		if cached {
			// Let Check reuse the listings of the directories the ops
			// leave alone; the pause outlasts any timestamp granularity.
			g.hot = 0
		}
		if err := g.Snapshot(); err != nil {
			t.Fatal(err)
		}
		if cached {
			time.Sleep(15 * time.Millisecond)
		}
		prot := protectedRef(m)
		want := dump(t, root, prot)
		(&program{mutOps}).run(root)
		cs, err := g.Check()
		if err != nil {
			t.Fatal(err)
		}
		all := func(string, bool) bool { return true }
		beforeAll := dump(t, root, all)
		notWS := func(rel string, _ bool) bool { return rel != "a/b/ws" && !strings.HasPrefix(rel, "a/b/ws/") }
		outside := dump(t, filepath.Dir(filepath.Dir(top)), notWS)

		failed, err := g.Revert(cs)
		if err != nil || len(failed) > 0 {
			t.Fatalf("Revert(%v) failed on %v: %v", summary(cs), summary(failed), err)
		}
		if again, err := g.Check(); err != nil || len(again) > 0 {
			t.Fatalf("Check after Revert(%v) = %v, %v", summary(cs), summary(again), err)
		}
		if diff := cmp.Diff(want, dump(t, root, prot)); diff != "" {
			t.Fatalf("protected paths after Revert(%v) (-baseline +got):\n%s", summary(cs), diff)
		}
		if diff := cmp.Diff(outside, dump(t, filepath.Dir(filepath.Dir(top)), notWS)); diff != "" {
			t.Fatalf("Revert(%v) changed files outside the workspace (-before +after):\n%s", summary(cs), diff)
		}
		// Unprotected paths Revert may remove or change: names of hard
		// links it reported, names the baseline's protected files already
		// had (one file: restoring it restores them), what stood in place
		// of a directory on the way to a protected path of the baseline,
		// and what stands where the baseline has a non-directory.
		mayGo := map[string]bool{}
		for _, e := range g.base {
			for _, l := range e.links {
				mayGo[l] = true
			}
		}
		for _, c := range cs {
			for _, l := range c.Links {
				mayGo[l] = true
			}
		}
		for p := range want {
			for d := p; strings.Contains(d, "/"); {
				d, _ = splitRel(d)
				mayGo[d] = true
			}
		}
		afterAll := dump(t, root, all)
		for p, n := range beforeAll {
			if prot(p, n.Mode.IsDir()) || mayGo[p] || inBaselineNonDir(want, p) {
				continue
			}
			if got, ok := afterAll[p]; !ok || got != n {
				t.Fatalf("Revert(%v) changed the unprotected %s: %+v, then %+v (present %v)", summary(cs), p, n, got, ok)
			}
		}
		for p := range afterAll {
			if strings.Contains(p, ".fsguard-") {
				t.Fatalf("Revert left %s behind", p)
			}
		}
	})
}

// inBaselineNonDir reports whether p, or a directory above it, is a
// baseline path that was not a directory (a .git file, say): Revert puts
// it back, removing what stands there now with everything beneath it.
func inBaselineNonDir(base map[string]node, p string) bool {
	for {
		if n, ok := base[p]; ok && !n.Mode.IsDir() {
			return true
		}
		if !strings.Contains(p, "/") {
			return false
		}
		p, _ = splitRel(p)
	}
}
