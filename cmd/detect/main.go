// Command detect is the detection service and the detection engineers' CLI.
//
//	detect run [flags]                          the service: consume, evaluate, alert
//	detect test [--overrides F] DIR             run every rule's inline tests
//	detect lint [--overrides F] DIR             load errors, unused lists/macros, rules that cannot match their tests
//	detect import-sigma [-o FILE] SIGMA.yml…    convert Sigma rules into rules with tests
//	detect docs                                 print the rule language reference (docs/rules.md)
//	detect replay --from T --to T [--rule ID] [--json] [--emit]
//	                                            run the rules over stored events (ClickHouse)
//	detect bench [flags]                        alert latency at a steady event rate on the real broker
//	detect outputs --output FORMAT=URL …        alerts to webhooks, Slack and Alertmanager
//
// Flags default to the environment (.testenv/env names): KAFKA_BROKERS,
// CLICKHOUSE_ADDR, CLICKHOUSE_READONLY_USER, CLICKHOUSE_READONLY_PASSWORD,
// CLICKHOUSE_DATABASE, DETECT_OVERRIDES.
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
  detect run [flags]              the detection service (see detect run -h)
  detect test [--overrides F] DIR load the rules in DIR, run their inline tests, print a table
  detect lint [--overrides F] DIR report load errors, unused lists and macros, rules that cannot match their tests
  detect import-sigma [-o FILE] SIGMA.yml...
                                  convert Sigma rules into rules with generated tests
  detect docs                     print the rule language reference (fields, functions, syntax)
  detect replay --from T --to T [--rule ID] [--json] [--emit]
                                  run the rules over stored events and report what would have fired
  detect bench [flags]            event-produced to alert-emitted latency at a steady rate
  detect outputs --output FORMAT=URL …
                                  deliver alerts to webhooks (json), Slack (slack) and Alertmanager (alertmanager)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "test":
		os.Exit(runTest(args))
	case "lint":
		os.Exit(runLint(args))
	case "import-sigma":
		os.Exit(importSigmaCmd(args))
	case "docs":
		os.Exit(docsCmd(args))
	case "run":
		err = runCmd(ctx, args)
	case "replay":
		var code int
		code, err = replayCmd(ctx, args)
		if err == nil {
			os.Exit(code)
		}
	case "bench":
		err = benchCmd(ctx, args)
	case "outputs":
		err = outputsCmd(ctx, args)
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "detect:", err)
		os.Exit(1)
	}
}
