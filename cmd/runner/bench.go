package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/agentaudit/agentaudit/internal/bench/runnerbench"
	"github.com/agentaudit/agentaudit/internal/benchreport"
	"github.com/agentaudit/agentaudit/internal/envflag"
)

// benchCmd is `runner bench`: runner vs raw exec vs podman exec, and
// session start, measured in one run.
func benchCmd(ctx context.Context, args []string) int {
	fs := envflag.New("runner bench", flag.ContinueOnError)
	cfg, level := loadConfig(fs)
	n := fs.Int("n", 200, "exec round trips per path")
	sessions := fs.Int("sessions", 5, "session starts to time")
	traceRuns := fs.Int("trace-runs", 5, "runs of each exec-heavy workload, traced and untraced")
	user := fs.String("podman-user", "agentaudit-sbx", "user whose podman runs `podman exec`")
	jsonOut := fs.String("json", "", "also write the figures as JSON to this file (for make bench)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the runner over the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Logger = logger(*level)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runner bench: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "runner bench: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := runnerbench.Run(ctx, *cfg, runnerbench.Options{N: *n, Sessions: *sessions, PodmanUser: *user, TraceRuns: *traceRuns}, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner bench: %v\n", err)
		return 1
	}
	if *jsonOut != "" {
		q := func(row string, f float64) float64 { return float64(rep.Row(row).Quantile(f).Microseconds()) / 1000 }
		figs := benchreport.Figures{
			"runner_p50_ms":         q(runnerbench.RowRunner, 0.5),
			"runner_p99_ms":         q(runnerbench.RowRunner, 0.99),
			"bindings_p50_ms":       q(runnerbench.RowBindings, 0.5),
			"podman_exec_p50_ms":    q(runnerbench.RowPodmanCLI, 0.5),
			"overhead_p50_ms":       q(runnerbench.RowOverhead, 0.5),
			"session_start_p50_ms":  q(runnerbench.RowSessionStart, 0.5),
			"podman_path_p50_ms":    q(runnerbench.RowPodmanPath, 0.5),
			"sandbox_p50_ms":        q(runnerbench.RowSandbox, 0.5),
			"loop_traced_p50_ms":    q(runnerbench.RowLoopTraced, 0.5),
			"loop_untraced_p50_ms":  q(runnerbench.RowLoopUntraced, 0.5),
			"loop_events_p50_ms":    q(runnerbench.RowLoopEvents, 0.5),
			"git_traced_p50_ms":     q(runnerbench.RowGitTraced, 0.5),
			"git_untraced_p50_ms":   q(runnerbench.RowGitUntraced, 0.5),
			"loop_trace_price_pct":  rep.TracePrice(runnerbench.RowLoopTraced, runnerbench.RowLoopUntraced),
			"git_trace_price_pct":   rep.TracePrice(runnerbench.RowGitTraced, runnerbench.RowGitUntraced),
			"loop_ptrace_price_pct": rep.TracePrice(runnerbench.RowLoopPtrace, runnerbench.RowLoopUntraced),
			"git_ptrace_price_pct":  rep.TracePrice(runnerbench.RowGitPtrace, runnerbench.RowGitUntraced),
			"par_traced_p50_ms":     q(runnerbench.RowParTraced, 0.5),
			"par_untraced_p50_ms":   q(runnerbench.RowParUntraced, 0.5),
			"par_trace_price_pct":   rep.TracePrice(runnerbench.RowParTraced, runnerbench.RowParUntraced),
		}
		if err := benchreport.WriteFigures(*jsonOut, figs); err != nil {
			fmt.Fprintf(os.Stderr, "runner bench: %v\n", err)
			return 1
		}
	}
	return 0
}
