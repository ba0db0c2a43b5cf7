package supervisor

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkExecLoop runs a shell loop of 100 execs under the supervisor,
// traced (every exec stopped and checked by a checker that allows it at
// once) and untraced: the supervisor's own share of the price of tracing.
// The runner's policy and events come on top (`make bench-runner`).
func BenchmarkExecLoop(b *testing.B) {
	// Verdicts are reusable, as the runner marks a plain policy allow.
	h := startSupervisor(b, func(*Check) Verdict { return Verdict{Allow: true, Reuse: true} })
	const loop = "for i in $(seq 100); do /bin/true; done"
	for _, untraced := range []bool{false, true} {
		b.Run(fmt.Sprintf("untraced=%v", untraced), func(b *testing.B) {
			dir := b.TempDir()
			for b.Loop() {
				r, err := h.conn.Run(context.Background(), Request{Argv: []string{"bash", "-c", loop}, Cwd: dir,
					Timeout: time.Minute, OutputLimit: 100, Untraced: untraced})
				if err != nil || r.ExitCode != 0 {
					b.Fatalf("%v %+v", err, r)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/exec")
		})
	}
	h.conn.Close()
}
