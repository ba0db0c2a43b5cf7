package main

import (
	"context"
	"fmt"
	"io"

	"github.com/agentaudit/agentaudit/internal/approvals"
)

func runHolds(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("holds", stderr)
	var cc clientConfig
	cc.flags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "approve holds: takes no arguments")
		return 2
	}
	if err := cc.validate(); err != nil {
		return fail(stderr, "holds", err)
	}
	c, err := cc.client()
	if err != nil {
		return fail(stderr, "holds", err)
	}
	hs, err := c.Holds(ctx)
	if err != nil {
		return fail(stderr, "holds", err)
	}
	if cc.JSON {
		err = printJSON(stdout, hs)
	} else {
		err = approvals.WriteHolds(stdout, hs)
	}
	if err != nil {
		return fail(stderr, "holds", err)
	}
	return 0
}
