package main

import (
	"fmt"
	"io"

	"github.com/agentaudit/agentaudit/internal/approvals"
)

// runToken prints a new token on the first line (for the approver, shown
// once) and its token_sha256 line for approvers.yaml on the second.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("token", stderr)
	if _, err := parseArgs(fs, args); err != nil {
		return 2
	}
	token, sum, err := approvals.GenerateToken()
	if err != nil {
		return fail(stderr, "token", err)
	}
	fmt.Fprintln(stdout, token)
	fmt.Fprintf(stdout, "token_sha256: %s\n", sum)
	return 0
}
