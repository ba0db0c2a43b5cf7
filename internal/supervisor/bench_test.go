package supervisor

import (
	"context"
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
