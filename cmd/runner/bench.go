package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/runner"
)

// benchCmd is `runner bench`: runner vs raw exec vs podman exec, and
// session start, measured in one run.
func benchCmd(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("runner bench", flag.ContinueOnError)
	cfg, level, err := loadConfig(fs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner bench: %v\n", err)
		return 1
	}
	n := fs.Int("n", 200, "exec round trips per path")
	sessions := fs.Int("sessions", 5, "session starts to time")
	user := fs.String("podman-user", "agentaudit-sbx", "user whose podman runs `podman exec`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Logger = logger(*level)
	if _, err := runner.Bench(ctx, *cfg, runner.BenchOptions{N: *n, Sessions: *sessions, PodmanUser: *user}, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "runner bench: %v\n", err)
		return 1
	}
	return 0
}
