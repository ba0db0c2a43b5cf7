package main

import (
	"context"
	"flag"
	"os"
	"runtime/debug"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/ingest"
)

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT is set. The collector runs when the heap reaches it, not at
// every doubling of the live data (GOGC=100 overshot the 256 MiB RSS
// budget). At full load 85-100 MB is live (chain heads, the dedup window,
// the insert's column buffers, fetch buffers), so the limit sets how much
// garbage is made between collections: 42 collections per million events
// at 192 MiB (peak RSS 200 MiB), 30 at 224 MiB (peak RSS 231 MiB).
const defaultMemoryLimit = 224 << 20

func runCmd(ctx context.Context, args []string) error {
	var cfg ingest.Config
	fs := envflag.New("ingest run", flag.ContinueOnError)
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
