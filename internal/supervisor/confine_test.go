package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// envArgvAttack runs the test binary as the attacker of
// TestArgvCannotBeRewrittenWhileChecked, in the directory it names.
const envArgvAttack = "AGENTAUDIT_TEST_ARGV_ATTACK"

// The attack: a program starts `echo harmless-argv`, which stops before
// its first instruction while its check is pending (here the checker holds
// it, as a pending approval would), and tries to overwrite the argv the
// check has read, through /proc/PID/mem and through process_vm_writev. Had
// either worked, the approved argv would not be the one that ran.
func TestArgvCannotBeRewrittenWhileChecked(t *testing.T) {
	dir := t.TempDir()
	done := filepath.Join(dir, "attempted")
	h := startSupervisor(t, func(c *Check) Verdict {
		if len(c.Argv) > 1 && c.Argv[1] == "harmless-argv" {
			// Hold the verdict until the attacker has tried.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if _, err := os.Stat(done); err == nil {
					break
				}
			}
		}
		return Verdict{Allow: true}
	})
	r := run(t, h, Request{Argv: []string{os.Args[0]}, Cwd: dir, Env: []string{envArgvAttack + "=" + done}})
	out := string(r.Stdout)
	t.Logf("attacker:\n%s", out)
	if r.ExitCode != 0 {
		t.Fatalf("attacker exit %+v\nstdout %s\nstderr %s", r.Exit, out, r.Stderr)
	}
	if _, err := os.Stat(done); err != nil {
		t.Fatalf("the attacker never reported its attempts: %s %s", out, r.Stderr)
	}
	for _, want := range []string{"mem: refused", "vm: refused", "ran: harmless-argv"} {
		if !strings.Contains(out, want) {
			t.Errorf("attacker output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "EVIL") {
		t.Errorf("the checked program ran with a rewritten argv:\n%s", out)
	}
}

// argvAttack is the attacker's side; it reports each attempt on stdout
// and creates the file named by envArgvAttack when it has tried both.
func argvAttack(done string) {
	cmd := exec.Command("/bin/echo", "harmless-argv")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	pid := cmd.Process.Pid
	// Start returns once the exec happened: the child is stopped at its
	// exec, before its first instruction, waiting for the verdict.
	argStart, err := argStartOf(pid)
	if err != nil {
		fmt.Println("stat:", err)
		os.Exit(1)
	}
	// Overwrite "harmless" (after "/bin/echo\0").
	at := argStart + uint64(len("/bin/echo")+1)
	evil := []byte("EVILEVIL")
	report := func(what string, err error) {
		if err != nil {
			fmt.Printf("%s: refused (%v)\n", what, err)
		} else {
			fmt.Printf("%s: WROTE\n", what)
		}
	}
	f, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", os.O_RDWR, 0)
	if err == nil {
		_, err = f.WriteAt(evil, int64(at))
		f.Close()
	}
	report("mem", err)
	_, err = unix.ProcessVMWritev(pid, []unix.Iovec{{Base: &evil[0], Len: uint64(len(evil))}},
		[]unix.RemoteIovec{{Base: uintptr(at), Len: len(evil)}}, 0)
	report("vm", err)
	if err := os.WriteFile(done, nil, 0o600); err != nil {
		fmt.Println("done:", err)
	}
	if err := cmd.Wait(); err != nil {
		fmt.Println("wait:", err)
	}
	fmt.Print("ran: ", out.String())
	os.Exit(0)
}

// argStartOf reads where a process's argv begins (field 48 of its stat).
func argStartOf(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	// Fields after the command start at field 3.
	if len(f) < 48-2 {
		return 0, errors.New("short stat")
	}
	return strconv.ParseUint(f[48-3], 10, 64)
}

// The guard must not get in the way of ordinary work: files made,
// written, renamed and linked across directories, and written through
// /dev/null, /dev/stdout and a pipe's /proc/self/fd name.
func TestGuardLeavesOrdinaryWritesAlone(t *testing.T) {
	dir := t.TempDir()
	h := startSupervisor(t, nil)
	script := `set -e
mkdir -p a b
echo one > a/f
mv a/f b/f
ln b/f a/g
cp b/f a/h
echo two >> a/g
echo x > /dev/null
echo out > /dev/stdout
echo piped | cat > /proc/self/fd/1
cat b/f`
	r := run(t, h, Request{Argv: []string{"bash", "-c", script}, Cwd: dir})
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	if got, want := string(r.Stdout), "out\npiped\none\ntwo\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}
