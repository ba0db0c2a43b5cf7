package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"time"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/query"
)

// runVerify is `query verify`.
func runVerify(ctx context.Context, args []string) error {
	var (
		cfg     Config
		per     period
		session string
	)
	fs := envflag.New("verify", flag.ContinueOnError)
	cfg.flags(fs)
	per.flags(fs)
	fs.StringVar(&session, "session", "", "verify this session's chains (default: every session with events in --from/--to)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return errors.New("usage: query verify [--session ID | --from T --to T]")
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	scope := query.VerifyScope{SessionID: session}
	if session == "" {
		if scope.Period, err = per.value(time.Now()); err != nil {
			return err
		}
	}
	out, done, err := cfg.output()
	if err != nil {
		return err
	}
	return errors.Join(query.RunVerify(ctx, cfg.query(), scope, out, os.Stderr), done())
}
