package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/runner"
)

// serveCmd is `runner serve --mcp stdio|http`.
func serveCmd(ctx context.Context, args []string) int {
	// An agent that ends the runner closes its pipes first (Codex sends
	// SIGTERM and closes stdin, stdout and stderr): a log line written to
	// the closed stderr would raise SIGPIPE and kill the runner before it
	// recorded session.ended. Ignored, the write fails with EPIPE instead.
	signal.Ignore(syscall.SIGPIPE)
	fs := envflag.New("runner serve", flag.ContinueOnError)
	cfg, level := loadConfig(fs)
	transport := fs.String("mcp", "stdio", "MCP transport: stdio or http")
	listen := fs.String("listen", "127.0.0.1:8765", "http: loopback address to listen on")
	idle := fs.Duration("idle-timeout", 30*time.Minute,
		"http: end an MCP session (and its sandbox) after this long without a request; clients such as Claude Code never send DELETE")
	maxFrame := fs.Int("max-message-bytes", runner.DefaultMaxFrame,
		"stdio: largest JSON-RPC message accepted; a larger one is refused with an error and the session goes on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *idle <= 0 {
		fmt.Fprintf(os.Stderr, "runner serve: --idle-timeout: must be positive\n")
		return 2
	}
	cfg.Logger = logger(*level)
	err := runner.Serve(ctx, *cfg, runner.ServeOptions{
		Transport: *transport, Listen: *listen, IdleTimeout: *idle, MaxFrame: *maxFrame,
		Ready: func(addr string) { fmt.Fprintf(os.Stderr, "runner: MCP over HTTP on http://%s/\n", addr) },
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "runner serve: %v\n", err)
		return 1
	}
	return 0
}
