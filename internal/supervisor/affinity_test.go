package supervisor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cpusOf reads every "Cpus_allowed_list:" line of out, in order.
func cpusOf(t *testing.T, out []byte) []string {
	t.Helper()
	var lists []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			lists = append(lists, strings.TrimSpace(v))
		}
	}
	return lists
}

// ownCPUs is the test's own Cpus_allowed_list: the set the supervisor
// starts with.
func ownCPUs(t *testing.T) (string, unix.CPUSet) {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	lists := cpusOf(t, b)
	if len(lists) != 1 {
		t.Fatalf("no Cpus_allowed_list in /proc/self/status")
	}
	return lists[0], set
}

// busy keeps the shell on a CPU for a few hundred milliseconds with
// builtins only: no exec and no signal, so no stop. (A sleep would end
// in a SIGCHLD, whose delivery is a stop.)
const busy = `x=0; while ((x < 150000)); do ((x++)); done; `

// printCPUs prints the shell's own Cpus_allowed_list with builtins only.
const printCPUs = `while IFS= read -r l; do case $l in Cpus_allowed_list*) echo "$l";; esac; done < /proc/self/status`

// envPinIdle sets the supervisor's pinIdle (a duration) in the child the
// tests start.
const envPinIdle = "AGENTAUDIT_TEST_PIN_IDLE"

// tracerCPU is the CPU the supervisor h's tracer thread keeps: the one
// thread of it allowed a single CPU.
func tracerCPU(t *testing.T, h *harness) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", h.cmd.Process.Pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, tk.Name(), "status"))
		if err != nil {
			continue
		}
		if l := cpusOf(t, b); len(l) == 1 {
			if cpu, err := strconv.Atoi(l[0]); err == nil {
				return cpu
			}
		}
	}
	t.Fatalf("no thread of the supervisor (pid %d) keeps one CPU", h.cmd.Process.Pid)
	return -1
}

// A process that execs runs on the tracer's CPU; once it stops exec'ing
// it has the whole set again; and a set the program chose for itself is
// left alone, both while it execs and after.
func TestTracerCPU(t *testing.T) {
	all, set := ownCPUs(t)
	if set.Count() < 2 {
		// Nothing to choose from: the supervisor pins nothing.
		h := startSupervisor(t, nil)
		r := run(t, h, Request{Argv: []string{"cat", "/proc/self/status"}})
		if got := cpusOf(t, r.Stdout); len(got) != 1 || got[0] != all {
			t.Errorf("one CPU: the process has %q, want %q", got, all)
		}
		return
	}
	// held keeps a pin for a minute: longer than a loaded machine's delay
	// between a process's resume and its reading of its own status.
	t.Setenv(envPinIdle, "1m")
	held := startSupervisor(t, nil)
	t.Setenv(envPinIdle, "")
	h := startSupervisor(t, nil)

	// Just exec'd: on the tracer's CPU.
	r := run(t, held, Request{Argv: []string{"cat", "/proc/self/status"}})
	if got, want := cpusOf(t, r.Stdout), strconv.Itoa(tracerCPU(t, held)); len(got) != 1 || got[0] != want {
		t.Fatalf("a process that exec'd has CPUs %q, want the tracer's %q", got, want)
	}

	// Busy without a stop, the shell has its CPUs back.
	r = run(t, h, Request{Argv: []string{"bash", "-c", busy + printCPUs}})
	if got := cpusOf(t, r.Stdout); len(got) != 1 || got[0] != all {
		t.Errorf("busy without a stop, the shell has CPUs %q, want %q; stderr %s", got, all, r.Stderr)
	}

	// The program's own choice, another CPU than the tracer's: kept while
	// it execs and after it stops.
	cpu, other := tracerCPU(t, h), -1
	for c := range 1024 {
		if set.IsSet(c) && c != cpu {
			other = c
			break
		}
	}
	mine := strconv.Itoa(other)
	r = run(t, h, Request{Argv: []string{"taskset", "-c", mine, "bash", "-c",
		"cat /proc/self/status; " + busy + printCPUs}})
	if got := cpusOf(t, r.Stdout); len(got) != 2 || got[0] != mine || got[1] != mine {
		t.Errorf("taskset -c %s: CPUs %q, want %q twice; stderr %s", mine, got, mine, r.Stderr)
	}
}

// Processes started without tracing (benchmarks) do not inherit the
// tracer's CPU from the thread that forks them.
func TestUntracedRunsOnEveryCPU(t *testing.T) {
	all, _ := ownCPUs(t)
	h := startSupervisor(t, nil)
	r := run(t, h, Request{Argv: []string{"bash", "-c", printCPUs}, Untraced: true})
	if got := cpusOf(t, r.Stdout); len(got) != 1 || got[0] != all {
		t.Errorf("untraced: CPUs %q, want %q", got, all)
	}
}
