package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/runner"
)

// serveCmd is `runner serve --mcp stdio|http`.
func serveCmd(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("runner serve", flag.ContinueOnError)
	cfg, level, err := loadConfig(fs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner serve: %v\n", err)
		return 1
	}
	transport := fs.String("mcp", "stdio", "MCP transport: stdio or http")
	listen := fs.String("listen", "127.0.0.1:8765", "http: loopback address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Logger = logger(*level)
	err = runner.Serve(ctx, *cfg, runner.ServeOptions{
		Transport: *transport, Listen: *listen,
		Ready: func(addr string) { fmt.Fprintf(os.Stderr, "runner: MCP over HTTP on http://%s/\n", addr) },
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner serve: %v\n", err)
		return 1
	}
	return 0
}
