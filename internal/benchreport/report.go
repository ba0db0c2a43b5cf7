package benchreport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// Verdict says how a row compares with its target.
type Verdict string

const (
	Met      Verdict = "met"
	NotMet   Verdict = "**not met**"
	NoTarget Verdict = "—"
	Failed   Verdict = "**failed**"
)

// Row is one line of the table.
type Row struct {
	What    string
	Ours    string
	Peer    string // the peer's figure, or the reference it is compared with
	Ratio   string
	Target  string
	Verdict Verdict
	Command string
}

func verdict(ok bool) Verdict {
	if ok {
		return Met
	}
	return NotMet
}

// Config configures Run.
type Config struct {
	Root    string // the repository root; commands run there
	GoTags  string // build tags for go test
	Count   int    // -count for Go benchmarks; medians are reported (default 5)
	Only    *regexp.Regexp
	Bin     string    // directory with the built binaries (ingest, detect, runner, query)
	Env     []string  // environment for every command (.testenv/env applied)
	Raw     string    // directory for each benchmark's raw output
	Log     io.Writer // progress
	IngestN int       // events for `ingest bench` (default 1,000,000)
	QueryN  int       // events for `query bench` (default 10,000,000)
}

// item is one benchmark run, giving one or more rows.
type item struct {
	name string
	run  func(ctx context.Context, r *runner) ([]Row, error)
}

type runner struct {
	cfg Config
}

// Report is what Run measured.
type Report struct {
	Start, End time.Time
	Machine    Machine
	Rows       []Row
	Failures   []string
}

// Run runs every benchmark (or those cfg.Only matches) and returns the
// rows. A benchmark that fails gives a failed row and Run goes on; the
// failures are listed in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Count <= 0 {
		cfg.Count = 5
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.IngestN <= 0 {
		cfg.IngestN = 1_000_000
	}
	if cfg.QueryN <= 0 {
		cfg.QueryN = 10_000_000
	}
	if err := os.MkdirAll(cfg.Raw, 0o755); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg}
	rep := &Report{Start: time.Now()}
	rep.Machine = probeMachine(ctx, cfg)
	for _, it := range items() {
		if cfg.Only != nil && !cfg.Only.MatchString(it.name) {
			continue
		}
		fmt.Fprintf(cfg.Log, "benchreport: %s …\n", it.name)
		start := time.Now()
		rows, err := it.run(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", it.name, err))
			rows = append(rows, Row{What: it.name, Verdict: Failed, Ours: "see failures below"})
		}
		fmt.Fprintf(cfg.Log, "benchreport: %s done in %s\n", it.name, time.Since(start).Round(time.Second))
		rep.Rows = append(rep.Rows, rows...)
	}
	rep.End = time.Now()
	rep.Machine.LoadEnd = loadAvg()
	return rep, nil
}

// command runs name args in the root with the configured environment,
// saving its combined output under Raw as file.
func (r *runner) command(ctx context.Context, file, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = r.cfg.Root
	cmd.Env = r.cfg.Env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if werr := os.WriteFile(filepath.Join(r.cfg.Raw, file), out.Bytes(), 0o644); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		tail := out.Bytes()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return out.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail)
	}
	return out.Bytes(), nil
}

// goBench runs `go test -bench` on pkg and parses the result.
func (r *runner) goBench(ctx context.Context, file, pkg, bench string, extra ...string) (Results, error) {
	args := []string{"test", "-tags", r.cfg.GoTags, "-count", fmt.Sprint(r.cfg.Count), "-run", "^$", "-bench", bench, "-benchmem"}
	args = append(args, extra...)
	args = append(args, pkg)
	out, err := r.command(ctx, file, "go", args...)
	if err != nil {
		return nil, err
	}
	res, err := ParseGoBench(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("go test -bench %s %s: no benchmark results", bench, pkg)
	}
	return res, nil
}

// figures runs a whole-system benchmark binary with -json and reads it.
func (r *runner) figures(ctx context.Context, file, bin string, args ...string) (Figures, error) {
	path := filepath.Join(r.cfg.Raw, file+".json")
	os.Remove(path)
	args = append(args, "-json", path)
	_, err := r.command(ctx, file+".txt", filepath.Join(r.cfg.Bin, bin), args...)
	figs, rerr := ReadFigures(path)
	if err != nil {
		// A bench that measured but failed a check (a report over its
		// memory limit) still wrote its figures; the caller decides.
		return figs, err
	}
	return figs, rerr
}

// need returns a Go benchmark's median for unit, or an error naming it.
func need(res Results, bench, unit string) (float64, error) {
	v, ok := res.Median(bench, unit)
	if !ok {
		return 0, fmt.Errorf("%s: no %q figure", bench, unit)
	}
	return v, nil
}

// Machine describes where the benchmarks ran.
type Machine struct {
	CPU                string
	Cores              int
	MemGiB             float64
	Kernel, OS, Go     string
	Commit             string
	LoadStart, LoadEnd string
	Services           string // testenv/status output
}

func probeMachine(ctx context.Context, cfg Config) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.MemGiB = kb / (1 << 20)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		m.OS = "Debian " + strings.TrimSpace(string(b))
	}
	run := func(name string, args ...string) string {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = cfg.Root
		cmd.Env = cfg.Env
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out))
	}
	m.Commit = run("git", "rev-parse", "--short=12", "HEAD")
	if run("git", "status", "--porcelain") != "" {
		m.Commit += " (with uncommitted changes)"
	}
	m.Services = run(filepath.Join(cfg.Root, "testenv", "status"))
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
