package main

import (
	"context"
	"fmt"
	"io"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/events"
)

// runDecide is "approve approve ID" and "approve deny ID".
func runDecide(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	fs := newFlags(cmd, stderr)
	var cc clientConfig
	cc.flags(fs)
	comment := fs.String("comment", "", "why (recorded in the signed decision)")
	scope := "once"
	if cmd == "approve" {
		fs.StringVar(&scope, "scope", "once", "once (this call) or session (this rule for the rest of the session)")
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: approve %s ID [--comment TEXT] [--json]\n", cmd)
		return 2
	}
	in := approvals.DecisionInput{Decision: cmd, Comment: *comment}
	if cmd == "approve" {
		if scope != "once" && scope != "session" {
			fmt.Fprintf(stderr, "approve approve: --scope must be once or session, got %q\n", scope)
			return 2
		}
		in.Scope = events.ApprovalScope(scope)
	}
	if err := cc.validate(); err != nil {
		return fail(stderr, cmd, err)
	}
	c, err := cc.client()
	if err != nil {
		return fail(stderr, cmd, err)
	}
	out, err := c.Decide(ctx, pos[0], in)
	if err != nil {
		return fail(stderr, cmd, err)
	}
	if cc.JSON {
		err = printJSON(stdout, out)
	} else {
		err = approvals.WriteDecision(stdout, out)
	}
	if err != nil {
		return fail(stderr, cmd, err)
	}
	return 0
}
