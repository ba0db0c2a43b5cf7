// Package runnerbench is `runner bench`: the shell tool running `true`
// through the runner against a raw exec through the sandbox package, the
// bare Podman bindings and `podman exec`, session starts, and the price of
// tracing every exec, all measured in one run.
package runnerbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/containers/podman/v5/pkg/api/handlers"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"

	"github.com/agentaudit/agentaudit/internal/runner"
	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// Options configure Run.
type Options struct {
	N          int    // exec round trips per path (default 200)
	Sessions   int    // session starts to time (default 5)
	PodmanUser string // user for `podman exec` (default agentaudit-sbx)
	// TraceRuns is how many times each exec-heavy workload runs traced
	// and untraced (default 5).
	TraceRuns int
}

// Row is one measured path.
type Row struct {
	Name    string
	Samples []time.Duration
}

// Quantile returns the q-quantile (nearest rank) of the samples.
func (r Row) Quantile(q float64) time.Duration {
	if len(r.Samples) == 0 {
		return 0
	}
	s := slices.Clone(r.Samples)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Report is what Run measured, in one run.
type Report struct {
	Rows []Row
}

// Row returns the row called name.
func (b *Report) Row(name string) Row {
	for _, r := range b.Rows {
		if r.Name == name {
			return r
		}
	}
	return Row{Name: name}
}

// Row names.
const (
	RowRunner       = "runner shell `true` via the supervisor (2 acked events + policy + traced exec)"
	RowSandbox      = "sandbox.Session.Exec `true` via the supervisor (traced, exec checked)"
	RowPodmanPath   = "old path: podman exec per call (bindings + watchdog, untraced)"
	RowBindings     = "raw bindings exec `true` (create, start+attach, inspect)"
	RowPodmanCLI    = "podman exec CLI `true` (as the podman user)"
	RowOverhead     = "runner's own cost per call (call − its exec)"
	RowSessionStart = "runner session start (container create+start + supervisor hello + session.started)"
	RowSandboxStart = "sandbox start (container create+start + supervisor hello)"

	RowLoopTraced   = "2,000 execs (shell loop) traced, each checked and recorded"
	RowLoopUntraced = "2,000 execs (shell loop) untraced"
	RowLoopPtrace   = "2,000 execs (shell loop) under ptrace alone (followed, nothing read or checked)"
	RowLoopEvents   = "2,000 execs: process.exec events acknowledged after the call"
	RowGitTraced    = "200 × git status traced, each exec checked and recorded"
	RowGitUntraced  = "200 × git status untraced"
	RowGitPtrace    = "200 × git status under ptrace alone"
	RowParTraced    = "2 CPU-bound shells in parallel, traced"
	RowParUntraced  = "2 CPU-bound shells in parallel, untraced"
	RowParPtrace    = "2 CPU-bound shells in parallel, under ptrace alone"
	TraceWorkload   = "for i in $(seq 2000); do /bin/true; done"
	// ParallelWorkload is work that needs every CPU and execs little: the
	// tracer keeps processes that exec on its own CPU, and this shows that
	// it gives them their CPUs back.
	ParallelWorkload = "for j in 1 2; do (for i in $(seq 600000); do :; done) & done; wait"
	GitWorkload      = "for i in $(seq 200); do git status --short >/dev/null; done"
)

// Run measures, in one run and interleaved so that they see the same
// machine, the shell tool running `true` through the runner against a raw
// exec through the sandbox package, through the bare bindings and through
// `podman exec`; and the time to start a session.
func Run(ctx context.Context, cfg runner.Config, o Options, w io.Writer) (*Report, error) {
	if o.N <= 0 {
		o.N = 200
	}
	if o.Sessions <= 0 {
		o.Sessions = 5
	}
	if o.PodmanUser == "" {
		o.PodmanUser = "agentaudit-sbx"
	}
	if o.TraceRuns <= 0 {
		o.TraceRuns = 5
	}
	cli, err := sandbox.PodmanCLIFor(o.PodmanUser)
	if err != nil {
		return nil, fmt.Errorf("runner bench: podman user: %w", err)
	}
	if cfg.Workspace == "" {
		dir, err := os.MkdirTemp("", "agentaudit-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		u, _ := user.Lookup(o.PodmanUser)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := sandbox.PrepareWorkspace(dir, uid, gid); err != nil {
			return nil, err
		}
		cfg.Workspace = dir
	}
	svc, err := runner.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer svc.Close(context.WithoutCancel(ctx))

	rep := &Report{}
	start := Row{Name: RowSessionStart}
	sbStart := Row{Name: RowSandboxStart}
	for i := range o.Sessions {
		t0 := time.Now()
		s, err := svc.OpenSession(ctx, runner.SessionOptions{Workspace: cfg.Workspace, Mode: "exec"})
		if err != nil {
			return nil, err
		}
		start.Samples = append(start.Samples, time.Since(t0))
		if err := s.Close(ctx, "completed"); err != nil {
			return nil, err
		}
		t0 = time.Now()
		sb, err := svc.Podman.Start(ctx, fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i), runner.SandboxSpec{Workspace: cfg.Workspace})
		if err != nil {
			return nil, err
		}
		sbStart.Samples = append(sbStart.Samples, time.Since(t0))
		if err := sb.Close(ctx); err != nil {
			return nil, err
		}
	}

	s, err := svc.OpenSession(ctx, runner.SessionOptions{Workspace: cfg.Workspace, Mode: "exec"})
	if err != nil {
		return nil, err
	}
	defer s.Close(context.WithoutCancel(ctx), "completed")
	hooks := s.BenchHooks()
	raw := hooks.Raw()
	if raw == nil {
		return nil, fmt.Errorf("runner bench: the session's sandbox is not Podman's")
	}
	// The sandbox path's execs are checked under a call the session
	// knows: the same `true` the runner path decides.
	const benchCall = "call-bench"
	hooks.AllowCall(benchCall, []string{"true"})
	// Time the exec inside each runner call, so the runner's own cost is
	// measured on the same call, free of the exec's noise.
	timed := &timedSession{}
	hooks.WrapSandbox(func(sb runner.SandboxSession) runner.SandboxSession { timed.SandboxSession = sb; return timed })
	overhead := &Row{Name: RowOverhead}
	conn, err := bindings.NewConnection(context.WithoutCancel(ctx), cfg.PodmanSocket)
	if err != nil {
		return nil, err
	}
	paths := []struct {
		row *Row
		run func() error
	}{
		{&Row{Name: RowRunner}, func() error {
			t0 := time.Now()
			res, err := s.Call(ctx, runner.Call{Tool: runner.ToolShell, Argv: []string{"true"}, Raw: []byte(`{"argv":["true"]}`)})
			if err == nil && res.Exec.ExitCode != 0 {
				err = fmt.Errorf("exit code %d", res.Exec.ExitCode)
			}
			overhead.Samples = append(overhead.Samples, time.Since(t0)-timed.last)
			return err
		}},
		{&Row{Name: RowSandbox}, func() error {
			// A call id the session knows, so the exec check allows it.
			res, err := raw.Exec(ctx, sandbox.ExecRequest{CallID: benchCall, Argv: []string{"true"}})
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("exit code %d: %s", res.ExitCode, res.Stderr)
			}
			return err
		}},
		{&Row{Name: RowPodmanPath}, func() error {
			res, err := raw.PodmanExec(ctx, sandbox.ExecRequest{Argv: []string{"true"}})
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("exit code %d", res.ExitCode)
			}
			return err
		}},
		{&Row{Name: RowBindings}, func() error { return bindingsExec(conn, raw.ContainerID()) }},
		{&Row{Name: RowPodmanCLI}, func() error {
			_, err := cli.Exec(ctx, raw.Name(), "true")
			return err
		}},
	}
	// Warm up every path once, then interleave.
	for _, p := range paths {
		if err := p.run(); err != nil {
			return nil, fmt.Errorf("runner bench: %s: %w", p.row.Name, err)
		}
	}
	for range o.N {
		for _, p := range paths {
			t0 := time.Now()
			if err := p.run(); err != nil {
				return nil, fmt.Errorf("runner bench: %s: %w", p.row.Name, err)
			}
			p.row.Samples = append(p.row.Samples, time.Since(t0))
		}
	}
	overhead.Samples = overhead.Samples[1:] // the warm-up call
	for _, p := range paths {
		rep.Rows = append(rep.Rows, *p.row)
	}
	rep.Rows = append(rep.Rows, *overhead)
	rep.Rows = append(rep.Rows, start, sbStart)
	trace, err := benchTracing(ctx, s, raw, o.TraceRuns)
	if err != nil {
		return nil, err
	}
	rep.Rows = append(rep.Rows, trace...)
	if w != nil {
		rep.Print(w)
	}
	return rep, nil
}

// benchTracing runs each exec-heavy workload through the runner (traced:
// every exec stopped, checked by the policy and recorded as process.exec)
// and untraced through the same supervisor, interleaved, and times the
// event backlog the traced call leaves.
func benchTracing(ctx context.Context, s *runner.Session, raw *sandbox.Session, runs int) ([]Row, error) {
	if _, err := s.Call(ctx, runner.Call{Tool: runner.ToolShell, Command: "git init -q . && git -c user.name=bench -c user.email=bench@localhost commit -q --allow-empty -m bench",
		Raw: []byte(`{"command":"git init"}`)}); err != nil {
		return nil, fmt.Errorf("runner bench: git init: %w", err)
	}
	rows := []Row{{Name: RowLoopTraced}, {Name: RowLoopUntraced}, {Name: RowLoopEvents},
		{Name: RowGitTraced}, {Name: RowGitUntraced}, {Name: RowLoopPtrace}, {Name: RowGitPtrace},
		{Name: RowParTraced}, {Name: RowParUntraced}, {Name: RowParPtrace}}
	type work struct {
		cmd                      string
		traced, untraced, ptrace *Row
		events                   *Row
	}
	works := []work{
		{TraceWorkload, &rows[0], &rows[1], &rows[5], &rows[2]},
		{GitWorkload, &rows[3], &rows[4], &rows[6], nil},
		{ParallelWorkload, &rows[7], &rows[8], &rows[9], nil},
	}
	hooks := s.BenchHooks()
	for i := 0; i <= runs; i++ {
		for _, w := range works {
			hooks.WaitCompletions()
			t0 := time.Now()
			res, err := s.Call(ctx, runner.Call{Tool: runner.ToolShell, Command: w.cmd, Raw: []byte(`{"command":"bench"}`)})
			if err == nil && res.Exec.ExitCode != 0 {
				err = fmt.Errorf("exit code %d: %s", res.Exec.ExitCode, res.Exec.Stderr.Data)
			}
			if err != nil {
				return nil, fmt.Errorf("runner bench: traced %q: %w", w.cmd, err)
			}
			d := time.Since(t0)
			t1 := time.Now()
			hooks.WaitCompletions()
			drain := time.Since(t1)
			t0 = time.Now()
			ur, err := raw.Exec(ctx, sandbox.ExecRequest{Argv: []string{"bash", "-c", w.cmd}, Untraced: true, Timeout: 5 * time.Minute})
			if err == nil && ur.ExitCode != 0 {
				err = fmt.Errorf("exit code %d: %s", ur.ExitCode, ur.Stderr)
			}
			if err != nil {
				return nil, fmt.Errorf("runner bench: untraced %q: %w", w.cmd, err)
			}
			u := time.Since(t0)
			t0 = time.Now()
			pr, err := raw.Exec(ctx, sandbox.ExecRequest{Argv: []string{"bash", "-c", w.cmd}, PtraceOnly: true, Timeout: 5 * time.Minute})
			if err == nil && pr.ExitCode != 0 {
				err = fmt.Errorf("exit code %d: %s", pr.ExitCode, pr.Stderr)
			}
			if err != nil {
				return nil, fmt.Errorf("runner bench: ptrace alone %q: %w", w.cmd, err)
			}
			p := time.Since(t0)
			if i == 0 {
				continue // warm-up
			}
			w.traced.Samples = append(w.traced.Samples, d)
			w.untraced.Samples = append(w.untraced.Samples, u)
			w.ptrace.Samples = append(w.ptrace.Samples, p)
			if w.events != nil {
				w.events.Samples = append(w.events.Samples, drain)
			}
		}
	}
	return rows, nil
}

// timedSession records how long the last exec took.
type timedSession struct {
	runner.SandboxSession
	last time.Duration
}

func (t *timedSession) Exec(ctx context.Context, req runner.ExecRequest) (runner.ExecResult, error) {
	t0 := time.Now()
	r, err := t.SandboxSession.Exec(ctx, req)
	t.last = time.Since(t0)
	return r, err
}

// bindingsExec is the least an exec through the bindings takes.
func bindingsExec(conn context.Context, ctrID string) error {
	cfg := new(handlers.ExecCreateConfig)
	cfg.Cmd = []string{"true"}
	cfg.AttachStdout, cfg.AttachStderr = true, true
	id, err := containers.ExecCreate(conn, ctrID, cfg)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	opts := new(containers.ExecStartAndAttachOptions).WithOutputStream(io.Writer(&out)).WithAttachOutput(true).
		WithErrorStream(io.Writer(&out)).WithAttachError(true)
	if err := containers.ExecStartAndAttach(conn, id, opts); err != nil {
		return err
	}
	insp, err := containers.ExecInspect(conn, id, nil)
	if err != nil {
		return err
	}
	if insp.ExitCode != 0 {
		return fmt.Errorf("exit code %d", insp.ExitCode)
	}
	return nil
}

// Print writes the report as a table with the target check.
func (b *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tn\tp50\tp90\tp99\t")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	for _, r := range b.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t\n", r.Name, len(r.Samples), ms(r.Quantile(0.5)), ms(r.Quantile(0.9)), ms(r.Quantile(0.99)))
	}
	tw.Flush()
	rn, sb, cli := b.Row(RowRunner).Quantile(0.5), b.Row(RowBindings).Quantile(0.5), b.Row(RowPodmanCLI).Quantile(0.5)
	fmt.Fprintf(w, "\nrunner p50 − raw bindings p50 = %s (target ≤ 5 ms): %s\n", ms(rn-sb), verdict(rn-sb <= 5*time.Millisecond))
	fmt.Fprintf(w, "runner's own cost p50 %s, p99 %s (measured inside the same calls)\n", ms(b.Row(RowOverhead).Quantile(0.5)), ms(b.Row(RowOverhead).Quantile(0.99)))
	fmt.Fprintf(w, "runner p50 %s vs podman exec p50 %s (target: faster): %s\n", ms(rn), ms(cli), verdict(rn < cli))
	fmt.Fprintf(w, "runner p50 %s through the supervisor (target ≤ 5 ms): %s; the old podman exec path p50 %s (%.1fx)\n",
		ms(rn), verdict(rn <= 5*time.Millisecond), ms(b.Row(RowPodmanPath).Quantile(0.5)),
		float64(b.Row(RowPodmanPath).Quantile(0.5))/float64(max(rn, 1)))
	// The ≤ 20% target is for the exec-heavy workloads; the parallel one
	// has none (it shows that pinned processes get their CPUs back).
	for _, p := range []struct {
		traced, untraced, ptrace string
		target                   bool
	}{{RowLoopTraced, RowLoopUntraced, RowLoopPtrace, true}, {RowGitTraced, RowGitUntraced, RowGitPtrace, true},
		{RowParTraced, RowParUntraced, RowParPtrace, false}} {
		if b.Row(p.untraced).Quantile(0.5) <= 0 {
			continue
		}
		added := b.TracePrice(p.traced, p.untraced)
		ptrace := b.TracePrice(p.ptrace, p.untraced)
		target := ""
		if p.target {
			target = fmt.Sprintf(" (target ≤ 20%%): %s", verdict(added <= 20))
		}
		fmt.Fprintf(w, "price of tracing, %s: %+.1f%% wall time%s; of which ptrace alone %+.1f%%, the checks and records %+.1f points\n",
			p.traced, added, target, ptrace, added-ptrace)
	}
}

// TracePrice returns the added wall time of tracing, in percent of the
// untraced median, for the row pair (traced, untraced).
func (b *Report) TracePrice(traced, untraced string) float64 {
	tr, un := b.Row(traced).Quantile(0.5), b.Row(untraced).Quantile(0.5)
	if un <= 0 {
		return 0
	}
	return float64(tr-un) / float64(un) * 100
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
