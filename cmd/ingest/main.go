// Command ingest loads audit events from Kafka into ClickHouse.
//
//	ingest [run] [flags]                       consume and load (default)
//	ingest migrate [flags]                     apply pending ClickHouse migrations
//	ingest retention -keep 400d [-dry-run]     drop partitions older than keep
//	ingest bench [-n 1000000] [-runs 3]        measure ingest against kcat | clickhouse-client
//
// Flags default to the environment (.testenv/env names): KAFKA_BROKERS,
// CLICKHOUSE_ADDR, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD, CLICKHOUSE_DATABASE.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd {
	case "run":
		err = runCmd(ctx, args)
	case "migrate":
		err = migrateCmd(ctx, args)
	case "retention":
		err = retentionCmd(ctx, args)
	case "bench":
		err = benchCmd(ctx, args)
	default:
		fmt.Fprintf(os.Stderr, "ingest: unknown subcommand %q (run, migrate, retention, bench)\n", cmd)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}
