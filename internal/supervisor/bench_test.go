package supervisor

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkExecLoop runs a shell loop of 100 execs under the supervisor:
// checked (every exec stopped, read and checked by a checker that allows
// it at once), ptrace-only (followed and stopped, nothing read: what the
// kernel's ptrace costs by itself) and untraced. checked − ptrace-only is
// the supervisor's own share of the price of tracing; the runner's policy
// and events come on top (`make bench-runner`).
func BenchmarkExecLoop(b *testing.B) {
	// Verdicts are reusable, as the runner marks a plain policy allow.
	h := startSupervisor(b, func(*Check) Verdict { return Verdict{Allow: true, Reuse: true} })
	const loop = "for i in $(seq 100); do /bin/true; done"
	for _, mode := range []string{"checked", "ptrace-only", "untraced"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			for b.Loop() {
				r, err := h.conn.Run(context.Background(), Request{Argv: []string{"bash", "-c", loop}, Cwd: dir,
					Timeout: time.Minute, OutputLimit: 100, Untraced: mode == "untraced", PtraceOnly: mode == "ptrace-only"})
				if err != nil || r.ExitCode != 0 {
					b.Fatalf("%v %+v", err, r)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/exec")
		})
	}
	h.conn.Close()
}

// BenchmarkReadExec reads what an exec stop reads of a process (argv,
// executable, cwd, identity): the supervisor's share of each exec's wait.
func BenchmarkReadExec(b *testing.B) {
	cmd := exec.Command("sleep", "60", "1", "1")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(50 * time.Millisecond) // past its exec
	id := newIdentifier([]string{"git", "curl", "bash", "python3", "true"}, os.Getenv("PATH"))
	var r procReader
	for b.Loop() {
		if x := r.read(cmd.Process.Pid, id); len(x.argv) != 4 || x.exe == "" || x.cwd == "" {
			b.Fatalf("%+v", x)
		}
	}
}
