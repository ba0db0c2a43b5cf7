package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals"
)

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("list", stderr)
	var cc clientConfig
	cc.flags(fs)
	var f approvals.RequestFilter
	status := fs.String("status", "pending", "pending, approved, denied, expired, cancelled, or all")
	fs.StringVar(&f.Kind, "kind", "", "tool_call, egress or session_hold")
	fs.StringVar(&f.Session, "session", "", "only this session")
	fs.IntVar(&f.Limit, "limit", 100, "at most this many, newest first")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "approve list: takes no arguments")
		return 2
	}
	if *status != "all" {
		f.Status = approvals.Status(*status)
	}
	if err := cc.validate(); err != nil {
		return fail(stderr, "list", err)
	}
	c, err := cc.client()
	if err != nil {
		return fail(stderr, "list", err)
	}
	rs, err := c.List(ctx, f)
	if err != nil {
		return fail(stderr, "list", err)
	}
	if cc.JSON {
		err = printJSON(stdout, rs)
	} else {
		err = approvals.WriteRequests(stdout, rs, time.Now())
	}
	if err != nil {
		return fail(stderr, "list", err)
	}
	return 0
}
