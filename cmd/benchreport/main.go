// Command benchreport runs every benchmark of the project (`make bench`)
// and writes one table of ours, the peer's, the ratio and the target to
// BENCHMARKS.md. It needs the services `testenv/up` starts and the
// binaries `make build` writes to bin/.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"

	"github.com/agentaudit/agentaudit/internal/benchreport"
	"github.com/agentaudit/agentaudit/internal/testenv/envfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	out := fs.String("out", "BENCHMARKS.md", "the table's file")
	count := fs.Int("count", 5, "runs of each Go benchmark; medians are reported")
	only := fs.String("only", "", "run only the benchmarks whose name matches this regexp (events, otlp, ingest, runner, runner-soak, sandbox, netpol, approvals, detect-engine, detect-latency, query, query-cluster, policy)")
	bin := fs.String("bin", "bin", "directory with the ingest, detect, runner and query binaries")
	tags := fs.String("tags", "remote,containers_image_openpgp,exclude_graphdriver_btrfs,exclude_graphdriver_devicemapper", "build tags for go test")
	ingestN := fs.Int("ingest-n", 1_000_000, "events for ingest bench")
	queryN := fs.Int("query-n", 10_000_000, "events for query bench")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := benchreport.Config{Count: *count, GoTags: *tags, IngestN: *ingestN, QueryN: *queryN, Log: os.Stderr}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: -only: %v\n", err)
			return 2
		}
		cfg.Only = re
	}
	root, err := envfile.Root()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	env, err := envfile.Load(envfile.Path(root))
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v (start the services with testenv/up)\n", err)
		return 1
	}
	cfg.Root = root
	cfg.Bin, _ = filepath.Abs(*bin)
	cfg.Raw = filepath.Join(root, ".testenv", "artifacts", "bench")
	// The Podman bindings build only without cgo.
	cfg.Env = append(os.Environ(), "CGO_ENABLED=0")
	for k, v := range env {
		cfg.Env = append(cfg.Env, k+"="+v)
	}
	rep, err := benchreport.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	if err := benchreport.WriteMarkdown(f, rep); err != nil {
		f.Close()
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "benchreport: wrote %s (%d rows, %d failures)\n", *out, len(rep.Rows), len(rep.Failures))
	if len(rep.Failures) > 0 {
		return 1
	}
	return 0
}
