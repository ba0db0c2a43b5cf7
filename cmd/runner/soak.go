package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/agentaudit/agentaudit/internal/benchreport"
	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/runner"
	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// soakCmd is `runner soak`: one long session on the MCP path and one on
// the agent hook path, each reporting the live heap at its start and its
// end (make bench).
func soakCmd(ctx context.Context, args []string) int {
	fs := envflag.New("runner soak", flag.ContinueOnError)
	cfg, level := loadConfig(fs)
	calls := fs.Int("calls", 10000, "measured calls in the one session")
	warmup := fs.Int("warmup", 200, "calls before the start figure")
	heapProfile := fs.String("heap-profile", "", "write heap profiles (pprof, inuse_space) at the start and the end into this directory")
	podmanUser := fs.String("podman-user", "agentaudit-sbx", "owner of the scratch workspace when --workspace is not given")
	jsonOut := fs.String("json", "", "also write the figures as JSON to this file (for make bench)")
	paths := fs.String("path", "mcp,hook", "the paths to soak, comma-separated: mcp (runner serve --mcp), hook (runner agent's hooks)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Logger = logger(*level)
	if cfg.Workspace == "" {
		dir, err := scratchWorkspace(*podmanUser)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runner soak: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		cfg.Workspace = dir
	}
	figs, code := benchreport.Figures{}, 0
	for _, path := range strings.Split(*paths, ",") {
		o := runner.SoakOptions{Calls: *calls, Warmup: *warmup, ProfileDir: *heapProfile}
		var rep *runner.SoakReport
		var err error
		switch strings.TrimSpace(path) {
		case "mcp":
			rep, err = runner.SoakMCP(ctx, *cfg, o, os.Stdout)
		case "hook":
			rep, err = runner.SoakHook(ctx, *cfg, o, os.Stdout)
		default:
			fmt.Fprintf(os.Stderr, "runner soak: --path %q: want mcp or hook\n", path)
			return 2
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "runner soak: %s: %v\n", path, err)
			return 1
		}
		maps.Copy(figs, soakFigures(rep))
		if rep.Errors > 0 || !rep.Met() {
			code = 1
		}
	}
	if *jsonOut != "" {
		if err := benchreport.WriteFigures(*jsonOut, figs); err != nil {
			fmt.Fprintf(os.Stderr, "runner soak: %v\n", err)
			return 1
		}
	}
	return code
}

// soakFigures names a soak's figures after its path ("mcp_heap_start_mib"),
// so soaks of other paths sit beside it in one file.
func soakFigures(r *runner.SoakReport) benchreport.Figures {
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	p := r.Path + "_"
	return benchreport.Figures{
		p + "calls":          float64(r.Calls),
		p + "errors":         float64(r.Errors),
		p + "calls_per_s":    float64(r.Calls) / max(r.Duration.Seconds(), 1e-9),
		p + "heap_start_mib": mib(r.HeapStart),
		p + "heap_end_mib":   mib(r.HeapEnd),
		p + "growth_kib":     float64(r.Growth()) / 1024,
		p + "per_call_b":     r.PerCall(),
		p + "rss_start_mib":  mib(r.RSSStart),
		p + "rss_end_mib":    mib(r.RSSEnd),
	}
}

// scratchWorkspace is a fresh workspace the sandbox user owns.
func scratchWorkspace(podmanUser string) (string, error) {
	u, err := user.Lookup(podmanUser)
	if err != nil {
		return "", fmt.Errorf("--podman-user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "agentaudit-soak-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	if err := sandbox.PrepareWorkspace(dir, uid, gid); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}
