package runner

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/internal/fsguard"
)

func TestInertCreation(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a/.git/config", "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n"+
		"[remote \"origin\"]\n\turl = /workspace/remote.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n")
	write("b/.git/config", "[core]\n\tbare = false\n\thooksPath = /tmp/hooks\n")
	write("c/.git/config", "[include]\n\tpath = ../x\n")
	write("d/.git/config", "[core]\n\tbare = false\n[alias]\n\tp = !sh -c evil\n")
	write("e/.git/config", "[core]\n\tfsmonitor = /tmp/x\n")
	write("f/.git/config", "[core]\n\tbare = \"false\"\n")
	os.Symlink(filepath.Join(root, "a/.git/config"), filepath.Join(root, "g-config"))
	os.MkdirAll(filepath.Join(root, "g/.git"), 0o755)
	os.Symlink(filepath.Join(root, "a/.git/config"), filepath.Join(root, "g/.git/config"))
	file, dir := fs.FileMode(0o644), fs.ModeDir|0o755
	cases := []struct {
		c    fsguard.Change
		want bool
	}{
		{fsguard.Change{Path: "a/.git/config", Kind: fsguard.KindCreated, AfterMode: file}, true},
		{fsguard.Change{Path: "a/.git/config", Kind: fsguard.KindModified, AfterMode: file}, false},
		{fsguard.Change{Path: "b/.git/config", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: "c/.git/config", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: "d/.git/config", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: "e/.git/config", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: "f/.git/config", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: "g/.git/config", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: "a/.git/hooks", Kind: fsguard.KindCreated, AfterMode: dir}, true},
		{fsguard.Change{Path: "a/.git/hooks/pre-commit.sample", Kind: fsguard.KindCreated, AfterMode: file}, true},
		{fsguard.Change{Path: ".git/hooks/pre-commit.sample", Kind: fsguard.KindCreated, AfterMode: file}, true},
		{fsguard.Change{Path: "a/.git/hooks/pre-commit", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: "a/.git/hooks/x.sample", Kind: fsguard.KindModified, AfterMode: file}, false},
		{fsguard.Change{Path: "a/hooks/x.sample", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: "a/.env", Kind: fsguard.KindCreated, AfterMode: file}, false},
		{fsguard.Change{Path: ".github/workflows/ci.yml", Kind: fsguard.KindCreated, AfterMode: file}, false},
	}
	for _, tc := range cases {
		if got := inertCreation(root, tc.c); got != tc.want {
			t.Errorf("inertCreation(%s %s) = %v, want %v", tc.c.Kind, tc.c.Path, got, tc.want)
		}
	}
}

// FuzzPlainGitConfig: whatever a session writes as a new repository's
// config, the check never panics, and accepts only text whose every key
// line names a key of plainKeys.
func FuzzPlainGitConfig(f *testing.F) {
	for _, s := range []string{"[core]\n\tbare = false\n", "[core]\n\thooksPath = x\n", "[remote \"o\"]\n\turl = x\n",
		"[include]\npath=x", "bare = false", "[core", "[core]]\n", "\x00", "[core]\n\tbare = \"x\\\"\"\n"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		p := filepath.Join(dir, "config")
		os.Remove(p)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Skip()
		}
		if !plainGitConfig(p) {
			return
		}
		allowed := map[string]bool{}
		for _, keys := range plainKeys {
			for k := range keys {
				allowed[k] = true
			}
		}
		for _, line := range strings.Split(body, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
				continue
			}
			key, _, _ := strings.Cut(line, "=")
			if !allowed[strings.ToLower(strings.TrimSpace(key))] {
				t.Fatalf("accepted a config with key line %q: %q", line, body)
			}
		}
	})
}
