// Command query is the compliance CLI: read-only SQL over the audit tables,
// the built-in reports, a session's timeline and hash-chain verification.
// It always connects as the read-only ClickHouse user.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/agentaudit/agentaudit/internal/query"
)

const usage = `usage:
  query sql [flags] "SELECT …" | -f FILE | (stdin)   run one read-only statement
  query report NAME --from T --to T [flags]          run a report from reports/
  query report --list                                 list the reports
  query session [flags] ID                            a session's timeline
  query verify [--session ID | --from T --to T]       recompute hash chains
  query bench [-n EVENTS]                             time every report (writes a bench database)

Common flags: --format table|csv|json|ndjson|html, --wide, -o FILE,
  --timeout 60s, --max-rows 10000.
Connection (environment): CLICKHOUSE_ADDR, CLICKHOUSE_READONLY_USER,
  CLICKHOUSE_READONLY_PASSWORD, CLICKHOUSE_DATABASE.
Times T: RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02), now, or
  relative to now (-24h, 7d, 90m). Default period: the last 24 hours.
Exit status: 0 ok, 1 findings or a broken chain, 2 error.
Run "query COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "sql":
		err = runSQL(ctx, args)
	case "report":
		err = runReport(ctx, args)
	case "session":
		err = runSession(ctx, args)
	case "verify":
		err = runVerify(ctx, args)
	case "bench":
		err = runBench(ctx, args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
	}
	os.Exit(query.ExitCode(err))
}
