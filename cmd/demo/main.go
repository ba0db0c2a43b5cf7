// Command demo runs the end-to-end demonstration (`make demo`): it starts
// ingest, detect and the approvals service, drives one scripted agent
// session through `runner serve --mcp http`, and prints the audit record
// it leaves; then it runs Codex (or, with --agent claude, Claude Code)
// itself in a sandbox (runner agent), its own tools governed; --agent none
// skips that part. See internal/demo.
//
//	demo [--interactive] [--agent codex|claude|none] [--dir DIR] [--bin DIR] [--rules DIR] [--prefix NAME] [--approve-listen 127.0.0.1:PORT]
//
// Run `testenv/up` and `make build` first (`make demo` does both).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agentaudit/agentaudit/internal/demo"
)

func main() {
	var cfg demo.Config
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	fs.BoolVar(&cfg.Interactive, "interactive", false, "wait for a person to answer approvals and release the hold in the inbox (or with bin/approve) instead of the scripted approver")
	fs.StringVar(&cfg.Agent, "agent", "codex", "the real agent CLI run in the sandbox after the MCP session, driven by a scripted model (runner agent): codex, claude, or none")
	fs.StringVar(&cfg.Dir, "dir", "", "state, logs, workspace and reports (default .testenv/demo)")
	fs.StringVar(&cfg.BinDir, "bin", "", "directory of the built binaries (default bin/)")
	fs.StringVar(&cfg.RulesDir, "rules", "", "detection rule pack (default rules/)")
	fs.StringVar(&cfg.Prefix, "prefix", "", "prefix of the demo's topics and consumer groups (default demo)")
	fs.StringVar(&cfg.ApproveListen, "approve-listen", "", "approvals service address (default 127.0.0.1:8480 when free)")
	fs.DurationVar(&cfg.StepTimeout, "step-timeout", 90*time.Second, "bound of each wait")
	fs.Parse(os.Args[1:])
	if cfg.Agent == "none" {
		cfg.Agent = ""
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := demo.Run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		stop()
		os.Exit(1)
	}
}
