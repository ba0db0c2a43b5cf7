// Package demo runs the end-to-end demonstration: the services, one scripted agent session through the runner's MCP server, and the audit record it leaves.
//
// Run brings up ingest, detect and the approvals service as subprocesses
// (binaries from Config.BinDir, logs under Config.Dir/logs), starts two
// HTTP servers on the host's 127.0.0.1 that the demo egress policy allows
// and asks for, and drives `runner serve --mcp http` with the MCP Go
// SDK's client as the agent:
//
//  1. ordinary commands in the workspace            allowed
//  2. egress to a destination the policy denies     403 with X-Deny-Reason
//  3. egress that needs approval                    the approver approves
//  4. write_file .git/hooks/pre-commit              asks; the approver denies
//  5. the same write trips the detection rule
//     persistence.git_hooks_write (hold_session)   the next call is denied
//     session_held; the
//     approver releases; the
//     session continues
//  6. the session's timeline, the compliance reports of the run's period,
//     `query verify --session`, and the HTML reports on disk.
//
// The approver is scripted (the approvals HTTP API with a bearer token)
// unless Config.Interactive is set; then the demo prints the inbox URL and
// the token and waits for a person to answer in the browser or with
// `approve`.
//
// Every step's outcome is returned in a Result, so a test asserts on what
// the system did rather than on printed text.
package demo
