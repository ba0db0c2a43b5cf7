package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/runner"
)

// execCmd is `runner exec [flags] -- CMD…`.
func execCmd(ctx context.Context, args []string) int {
	fs := envflag.New("runner exec", flag.ContinueOnError)
	cfg, level := loadConfig(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Logger = logger(*level)
	code, err := runner.RunExec(ctx, *cfg, fs.Args(), os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner exec: %v\n", err)
	}
	return code
}
