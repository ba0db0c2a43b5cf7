package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals"
)

func runShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("show", stderr)
	var cc clientConfig
	cc.flags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: approve show ID [--json]")
		return 2
	}
	if err := cc.validate(); err != nil {
		return fail(stderr, "show", err)
	}
	c, err := cc.client()
	if err != nil {
		return fail(stderr, "show", err)
	}
	r, err := c.Get(ctx, pos[0])
	if err != nil {
		return fail(stderr, "show", err)
	}
	if cc.JSON {
		err = printJSON(stdout, r)
	} else {
		err = approvals.WriteRequest(stdout, r, time.Now())
	}
	if err != nil {
		return fail(stderr, "show", err)
	}
	return 0
}
