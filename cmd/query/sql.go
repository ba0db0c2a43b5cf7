package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"strings"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/query"
)

// runSQL is `query sql`.
func runSQL(ctx context.Context, args []string) error {
	var (
		cfg    Config
		file   string
		params multi
	)
	fs := envflag.New("sql", flag.ContinueOnError)
	cfg.flags(fs)
	fs.StringVar(&file, "f", "", "read the statement from FILE (- for stdin)")
	fs.Var(&params, "param", "bind @name: name=value or name:Type=value (repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	var sql string
	switch {
	case file != "" && len(pos) > 0:
		return errors.New("give the statement as an argument or with -f, not both")
	case len(pos) > 0:
		sql = strings.Join(pos, " ")
	default:
		r := io.Reader(os.Stdin)
		if file != "" && file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		sql = string(b)
	}
	cmd := query.SQLCommand{SQL: sql}
	for _, p := range params {
		v, err := query.ParseParam(p)
		if err != nil {
			return err
		}
		cmd.Params = append(cmd.Params, v)
	}
	out, done, err := cfg.output()
	if err != nil {
		return err
	}
	return errors.Join(query.RunSQL(ctx, cfg.query(), cmd, out), done())
}
