package main

import (
	"context"
	"fmt"
	"io"

	"github.com/agentaudit/agentaudit/internal/approvals"
)

func runRelease(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("release", stderr)
	var cc clientConfig
	cc.flags(fs)
	var in approvals.ReleaseInput
	fs.StringVar(&in.Reason, "reason", "", "why the session may go on")
	fs.StringVar(&in.HeldEventID, "hold", "", "release only this session.held event (default: every hold of the session)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: approve release SESSION [--reason TEXT] [--hold EVENT_ID] [--json]")
		return 2
	}
	if err := cc.validate(); err != nil {
		return fail(stderr, "release", err)
	}
	c, err := cc.client()
	if err != nil {
		return fail(stderr, "release", err)
	}
	out, err := c.Release(ctx, pos[0], in)
	if err != nil {
		return fail(stderr, "release", err)
	}
	if cc.JSON {
		err = printJSON(stdout, out)
	} else {
		_, err = fmt.Fprintf(stdout, "%s: released %d hold(s) (event %s)\n", out.SessionID, out.Released, out.EventID)
	}
	if err != nil {
		return fail(stderr, "release", err)
	}
	return 0
}
