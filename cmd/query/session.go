package main

import (
	"context"
	"errors"
	"flag"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/query"
)

// runSession is `query session ID`.
func runSession(ctx context.Context, args []string) error {
	var cfg Config
	fs := envflag.New("session", flag.ContinueOnError)
	cfg.flags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: query session [flags] SESSION_ID")
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	out, done, err := cfg.output()
	if err != nil {
		return err
	}
	return errors.Join(query.RunSession(ctx, cfg.query(), pos[0], out), done())
}
