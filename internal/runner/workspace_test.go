package runner

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newTestWorkspace(t testing.TB) *Workspace {
	t.Helper()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "src/main.go"), "package main\n")
	mustWrite(t, filepath.Join(dir, ".git/hooks/pre-commit"), "#!/bin/sh\n")
	for name, target := range map[string]string{
		"pw":        "/etc/passwd",
		"up":        "../..",
		"abs-in":    "/workspace/src",
		"rel-in":    "src/main.go",
		"hook":      ".git/hooks/pre-commit",
		"loop":      "loop",
		"src/back":  "..",
		"src/out":   "../../etc",
		"dangling":  "nowhere/file",
		"ws-escape": "/workspace/../etc/passwd",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := OpenWorkspace(dir)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestResolve(t *testing.T) {
	w := newTestWorkspace(t)
	cases := []struct {
		in   string
		want string
		err  error
	}{
		{"", ".", nil},
		{".", ".", nil},
		{"src/main.go", "src/main.go", nil},
		{"./src/../src/main.go", "src/main.go", nil},
		{"/workspace", ".", nil},
		{"/workspace/src/main.go", "src/main.go", nil},
		{"abs-in/main.go", "src/main.go", nil},
		{"rel-in", "src/main.go", nil},
		{"hook", ".git/hooks/pre-commit", nil},
		{"src/back/src/main.go", "src/main.go", nil},
		{"dangling", "nowhere/file", nil},
		{"new/dir/file.txt", "new/dir/file.txt", nil},
		{"..", "", ErrOutsideWorkspace},
		{"../x", "", ErrOutsideWorkspace},
		{"src/../../x", "", ErrOutsideWorkspace},
		{"/etc/passwd", "", ErrOutsideWorkspace},
		{"/workspace/../etc/passwd", "", ErrOutsideWorkspace},
		{"/workspacex/a", "", ErrOutsideWorkspace},
		{"pw", "", ErrOutsideWorkspace},
		{"up/etc", "", ErrOutsideWorkspace},
		{"src/out/passwd", "", ErrOutsideWorkspace},
		{"ws-escape", "", ErrOutsideWorkspace},
		{"loop", "", ErrBadPath},
		{"a\x00b", "", ErrBadPath},
	}
	for _, tc := range cases {
		got, err := w.Resolve(tc.in)
		if !errors.Is(err, tc.err) || (tc.err != nil) != (err != nil) {
			t.Errorf("Resolve(%q) error = %v, want %v", tc.in, err, tc.err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Resolve(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestOpenRefusesSymlinkSwappedIn(t *testing.T) {
	w := newTestWorkspace(t)
	// Resolve saw a directory; the sandbox then replaces it with a link
	// to /etc before the runner opens the file.
	rel, err := w.Resolve("victim/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(w.Dir(), "victim")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.ReadFile(rel, 1<<20); !errors.Is(err, ErrPathChanged) {
		t.Errorf("read through a swapped-in symlink: %v, want ErrPathChanged", err)
	}
	if err := w.WriteFile(rel, []byte("x"), true); !errors.Is(err, ErrPathChanged) {
		t.Errorf("write through a swapped-in symlink: %v, want ErrPathChanged", err)
	}
	// The final component as a symlink is refused as well.
	if err := w.WriteFile("pw", []byte("x"), false); !errors.Is(err, ErrPathChanged) {
		t.Errorf("write to a symlink: %v, want ErrPathChanged", err)
	}
}

// FuzzResolve checks that whatever the agent sends, a resolved path is
// clean, relative and inside the workspace.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"", "..", "../x", "/workspace/../etc", "src/back/../..", "pw", "up/x", "a//b/./c", "/workspace//x", "loop/x", "src/out"} {
		f.Add(s)
	}
	w := newTestWorkspace(f)
	f.Fuzz(func(t *testing.T, p string) {
		rel, err := w.Resolve(p)
		if err != nil {
			return
		}
		if rel != path.Clean(rel) || path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
			t.Fatalf("Resolve(%q) = %q: not a clean path inside the workspace", p, rel)
		}
	})
}

// TestWriteFileRefusesHardLink: a file with a second name (a protected one
// among them, made with `ln .git/config x`) is not written through any of
// its names, and keeps its content.
func TestWriteFileRefusesHardLink(t *testing.T) {
	cases := []struct {
		name  string
		link  [2]string // existing file, new name for it; empty: no link
		write string
		want  error
	}{
		{name: "alias of a protected file", link: [2]string{".git/config", "x"}, write: "x", want: ErrHardLink},
		{name: "protected file itself", link: [2]string{".git/config", "x"}, write: ".git/config", want: ErrHardLink},
		{name: "alias in a subdirectory", link: [2]string{".git/hooks/pre-commit", "src/hook"}, write: "src/hook", want: ErrHardLink},
		{name: "single link", write: "src/main.go"},
		{name: "new file", write: "src/new.go"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWorkspace(t)
			mustWrite(t, filepath.Join(w.Dir(), ".git/config"), "[core]\n")
			readString := func(t *testing.T, p string) string {
				t.Helper()
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			before := map[string]string{}
			if tc.link[0] != "" {
				if err := os.Link(filepath.Join(w.Dir(), tc.link[0]), filepath.Join(w.Dir(), tc.link[1])); err != nil {
					t.Fatal(err)
				}
				for _, p := range tc.link {
					before[p] = readString(t, filepath.Join(w.Dir(), p))
				}
			}
			err := w.WriteFile(tc.write, []byte("evil\n"), false)
			if !errors.Is(err, tc.want) || (tc.want != nil) != (err != nil) {
				t.Fatalf("WriteFile(%q) = %v, want %v", tc.write, err, tc.want)
			}
			if tc.want != nil {
				if !strings.Contains(err.Error(), tc.write) {
					t.Errorf("error %q does not name %s", err, tc.write)
				}
				after := map[string]string{}
				for _, p := range tc.link {
					after[p] = readString(t, filepath.Join(w.Dir(), p))
				}
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("a refused write changed the file (-before +after):\n%s", diff)
				}
				return
			}
			if got := readString(t, filepath.Join(w.Dir(), tc.write)); got != "evil\n" {
				t.Errorf("after WriteFile(%q): content %q", tc.write, got)
			}
		})
	}
}
