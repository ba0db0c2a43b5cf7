package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A reusable verdict covers exactly the exec it was given for: the same
// argv run from another executable, in another directory, or as a copy of
// another program is asked again; only the very same exec is recorded.
func TestReusedVerdictOnlyForTheSameExec(t *testing.T) {
	dir := t.TempDir()
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	lsBin, err := exec.LookPath("ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "b", "c"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := startSupervisorWith(t, func(*Check) Verdict { return Verdict{Allow: true, Reuse: true} },
		WithIdentify([]string{"true", "ls"}))
	// prog is true in a and b, ls in c: the same argv each time.
	script := strings.Join([]string{
		"cp " + trueBin + " a/prog", "cp " + trueBin + " b/prog", "cp " + lsBin + " c/prog",
		"PATH=$PWD/a prog x", "PATH=$PWD/a prog x", // the same exec twice: recorded
		"PATH=$PWD/b prog x",              // another executable
		"(cd c && PATH=$PWD/../a prog x)", // another directory
		"PATH=$PWD/c prog x >/dev/null",   // another program
		// Replaced in place (same inode, other content): identified
		// again, and asked.
		"cat " + lsBin + " > a/prog", "PATH=$PWD/a prog x >/dev/null",
		// Replaced by rename with a copy of true: the first exec again,
		// whose verdict holds.
		"cp " + trueBin + " b/new && mv b/new a/prog", "PATH=$PWD/a prog x",
		"exit 0",
	}, "; ")
	r := run(t, h, Request{Argv: []string{"bash", "-c", script}, Cwd: dir})
	if r.ExitCode != 0 {
		t.Fatalf("exit %+v %s", r.Exit, r.Stderr)
	}
	type row struct {
		Exe, Cwd, Identity string
		Recorded           bool
	}
	var got []row
	for _, c := range h.checks.all() {
		if filepath.Base(c.Exe) != "prog" {
			continue
		}
		got = append(got, row{strings.TrimPrefix(c.Exe, dir+"/"), strings.TrimPrefix(c.Cwd, dir), c.Identity, c.Recorded})
	}
	want := []row{
		{"a/prog", "", "true", false},
		{"a/prog", "", "true", true},
		{"b/prog", "", "true", false},
		{"a/prog", "/c", "true", false},
		{"c/prog", "", "ls", false},
		{"a/prog", "", "ls", false},
		{"a/prog", "", "true", true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("execs of prog (-want +got):\n%s", diff)
	}
}

// A file rewritten in place to the same size, its mtime set back, is
// identified again: what was an unknown program is now a copy of true.
func TestRewrittenCopyIsIdentifiedAgain(t *testing.T) {
	dir := t.TempDir()
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(trueBin)
	if err != nil {
		t.Fatal(err)
	}
	// One byte changed near the end, past what is loaded (the section
	// headers): the same size, still runnable, not a copy of true.
	changed := append([]byte(nil), orig...)
	changed[len(changed)-8] ^= 0xff
	if err := os.WriteFile(filepath.Join(dir, "prog"), changed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real"), orig, 0o644); err != nil {
		t.Fatal(err)
	}
	h := startSupervisorWith(t, func(*Check) Verdict { return Verdict{Allow: true, Reuse: true} },
		WithIdentify([]string{"true"}))
	r := run(t, h, Request{Argv: []string{"bash", "-c",
		"./prog; touch -r prog stamp; cat real > prog; touch -r stamp prog; ./prog; exit 0"}, Cwd: dir})
	if r.ExitCode != 0 {
		t.Fatalf("exit %+v %s", r.Exit, r.Stderr)
	}
	var got []string
	for _, c := range h.checks.all() {
		if filepath.Base(c.Exe) == "prog" {
			got = append(got, c.Identity)
		}
	}
	if diff := cmp.Diff([]string{"", "true"}, got); diff != "" {
		t.Errorf("identities of prog (-want +got):\n%s", diff)
	}
}

// An argv longer than the first read, and one of arguments that are
// empty, come back whole.
func TestReadCmdlineWhole(t *testing.T) {
	long := strings.Repeat("y", 9000)
	for _, args := range [][]string{{"60", long, long}, {"60", "", "", ""}} {
		// Not the last command, so the shell does not exec sleep in
		// its place.
		want := append([]string{"/bin/sh", "-c", "sleep $0; :"}, args...)
		cmd := exec.Command(want[0], want[1:]...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if got, _ = readCmdline(cmd.Process.Pid); len(got) == len(want) {
				break
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("argv (-want +got):\n%s", diff)
		}
	}
}
