// Command runner is the enforcement gateway: it runs an agent's tool calls
// in a rootless Podman sandbox after recording them in Kafka and deciding
// them by policy.
//
//	runner exec [--policy F] [--profile F] --workspace DIR -- CMD…
//	runner serve --mcp stdio|http [--listen 127.0.0.1:PORT] --workspace DIR
//	runner agent [--agent codex|claude] --egress-policy F --workspace DIR -- AGENT ARGS…
//	runner policy check FILE
//	runner bench [--n N] --workspace DIR
//	runner soak [--calls N] [--workspace DIR]
//
// Configuration comes from flags and the environment (KAFKA_BROKERS,
// PODMAN_SOCKET, SANDBOX_IMAGE, RUNNER_ID, RUNNER_TENANT, RUNNER_OPERATOR,
// APPROVAL_KEYS, APPROVAL_TIMEOUT, SPOOL_DIR, AUDIT_ACK_TIMEOUT,
// AUDIT_TOPIC_EVENTS, AUDIT_TOPIC_APPROVALS, AUDIT_TOPIC_DLQ).
//
// Every sandbox's PID 1 is the sandbox supervisor (SANDBOX_SUPERVISOR;
// default bin/sandbox-supervisor next to the runner, else built from the
// module source), which connects back to the runner over a per-session
// Unix socket under SANDBOX_SOCKET_ROOT (default /run/agentaudit/sandbox,
// created 0711), runs each tool call and asks the runner about every exec.
//
// Egress: without --egress-policy (EGRESS_POLICY) the sandbox has no
// network at all. With one, every session gets an egress proxy on a Unix
// socket under EGRESS_SOCKET_ROOT (default /run/agentaudit/egress, created
// 0711), reached from the sandbox through the supervisor's egress bridge
// on 127.0.0.1:3128; HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (both
// cases) point there. PODMAN_UID names the sandbox user that owns the
// socket directories (default: the Podman socket's owner). Every
// connection is a net.egress event on the session's chain; ask rules
// raise approval.requested like tool calls. deploy/policies/egress.yaml is
// a starting point.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  runner exec [--policy F] [--profile F] [--egress-policy F] --workspace DIR -- CMD…
  runner serve --mcp stdio|http [--listen 127.0.0.1:PORT] [--idle-timeout D] [--max-message-bytes N] [--policy F] [--profile F] [--egress-policy F] --workspace DIR
  runner agent [--agent codex|claude] [--model-url URL] [--api-key-file F] --egress-policy F --workspace DIR -- AGENT ARGS…
  runner policy check FILE
  runner bench [--n N] [--profile F] --workspace DIR
  runner soak [--calls N] [--heap-profile DIR] [--json F] [--workspace DIR]
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "exec":
		return execCmd(ctx, args[1:])
	case "serve":
		return serveCmd(ctx, args[1:])
	case "agent":
		return agentCmd(ctx, args[1:])
	case "policy":
		return policyCmd(args[1:])
	case "bench":
		return benchCmd(ctx, args[1:])
	case "soak":
		return soakCmd(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "runner: unknown command %q\n%s", args[0], usage)
	return 2
}
