// Command ingest loads audit events from Kafka into ClickHouse.
//
//	ingest [run] [flags]                       consume and load (default)
//	ingest migrate [flags]                     apply pending ClickHouse migrations
//	ingest retention -keep 400d [-dry-run]     drop partitions older than keep
//	ingest bench [-n 1000000] [-runs 3]        measure ingest against kcat | clickhouse-client
//	ingest otlp [-listen 127.0.0.1:4318] -tokens FILE
//	                                           receive agents' OpenTelemetry, write agent.* events to Kafka
//	ingest otlp-token                          print a new OTLP bearer token and its token_sha256 line
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

const usage = `usage:
  ingest [run] [flags]                   consume the audit topics and load ClickHouse (the default)
  ingest migrate [flags]                 apply pending ClickHouse migrations
  ingest retention -keep 400d [-dry-run] drop partitions older than keep
  ingest bench [-n 1000000] [-runs 3]    measure ingest against kcat | clickhouse-client
  ingest otlp [-listen 127.0.0.1:4318] -tokens FILE
                                         receive agents' OpenTelemetry, write agent.* events to Kafka
  ingest otlp-token                      print a new OTLP bearer token and its token_sha256 line

ingest SUBCOMMAND -h lists a subcommand's flags. Flags default to the
environment (.testenv/env names): KAFKA_BROKERS, CLICKHOUSE_ADDR,
CLICKHOUSE_USER, CLICKHOUSE_PASSWORD, CLICKHOUSE_DATABASE.
`

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Print(usage)
			return
		}
	}
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
	case "otlp":
		err = otlpCmd(ctx, args)
	case "otlp-token":
		err = otlpTokenCmd(args)
	default:
		fmt.Fprintf(os.Stderr, "ingest: unknown subcommand %q\n%s", cmd, usage)
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
