// Command approve is the approvers' tool: the approvals service with its
// HTTP API and web inbox (approve serve), the CLI over that API (list,
// show, approve, deny, release, holds, alerts), and the generation of the
// signing key (keygen) and of approver tokens (token).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  approve serve   [--listen 127.0.0.1:8480] --keys signer.pem --approvers approvers.yaml [--brokers ...]
  approve list    [--status pending] [--kind K] [--session S] [--limit N] [--json]
  approve show    ID [--json]
  approve approve ID [--scope once|session] [--comment TEXT] [--json]
  approve deny    ID [--comment TEXT] [--json]
  approve holds   [--json]
  approve release SESSION [--reason TEXT] [--hold EVENT_ID] [--json]
  approve alerts  [list|ack|assign|tp|fp|comment|suppress|suppressions|unsuppress] ... ("approve alerts help")
  approve keygen  --id KID --out DIR
  approve token   [--id ID] [--name NAME] [--groups G1,G2]

The client commands talk to --server (APPROVE_URL, default http://127.0.0.1:8480)
with the token in APPROVE_TOKEN or --token-file. Run "approve CMD -h" for a
command's flags.

approve serve trusts the keys in keys.json beside its signing key (approve keygen
keeps earlier keys there across a rotation) or in --trust, and spools events
Kafka cannot take (--spool, on by default).

` + approversFormat

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stderr)
	case "list":
		return runList(ctx, rest, stdout, stderr)
	case "show":
		return runShow(ctx, rest, stdout, stderr)
	case "approve", "deny":
		return runDecide(ctx, cmd, rest, stdout, stderr)
	case "holds":
		return runHolds(ctx, rest, stdout, stderr)
	case "release":
		return runRelease(ctx, rest, stdout, stderr)
	case "alerts":
		return runAlerts(ctx, rest, stdout, stderr)
	case "keygen":
		return runKeygen(rest, stdout, stderr)
	case "token":
		return runToken(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "approve: unknown command %q\n%s", cmd, usage)
	return 2
}
