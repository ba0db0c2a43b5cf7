package main

import (
	"context"
	"fmt"
	"io"

	"github.com/agentaudit/agentaudit/internal/approvals"
)

func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("alerts", stderr)
	var cc clientConfig
	cc.flags(fs)
	limit := fs.Int("limit", 50, "at most this many, newest first")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "approve alerts: takes no arguments")
		return 2
	}
	if err := cc.validate(); err != nil {
		return fail(stderr, "alerts", err)
	}
	c, err := cc.client()
	if err != nil {
		return fail(stderr, "alerts", err)
	}
	as, err := c.Alerts(ctx, *limit)
	if err != nil {
		return fail(stderr, "alerts", err)
	}
	if cc.JSON {
		err = printJSON(stdout, as)
	} else {
		err = approvals.WriteAlerts(stdout, as)
	}
	if err != nil {
		return fail(stderr, "alerts", err)
	}
	return 0
}
