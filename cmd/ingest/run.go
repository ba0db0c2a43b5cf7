package main

import (
	"context"
	"flag"
	"os"
	"runtime/debug"

	"github.com/agentaudit/agentaudit/internal/ingest"
)

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT is set: batches are large and short-lived, so without it the
// heap grows to twice the live data before a collection (GOGC=100) and
// peak RSS overshoots the 256 MiB budget.
const defaultMemoryLimit = 192 << 20

func runCmd(ctx context.Context, args []string) error {
	var cfg ingest.Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	runFlags(fs, &cfg)
	memLimit := fs.Int64("memory-limit", defaultMemoryLimit, "Go soft memory limit in bytes (ignored when GOMEMLIMIT is set)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" && *memLimit > 0 {
		debug.SetMemoryLimit(*memLimit)
		// With the limit as the bound, collect by it rather than at every
		// doubling of the live heap: fewer cycles, same peak.
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(400)
		}
	}
	cfg.Logger = logger()
	return ingest.Run(ctx, cfg)
}
