package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/query"
)

// runReport is `query report NAME` and `query report --list`.
func runReport(ctx context.Context, args []string) error {
	var (
		cfg    Config
		per    period
		list   bool
		fail   bool
		params multi
	)
	fs := envflag.New("report", flag.ContinueOnError)
	cfg.flags(fs)
	per.flags(fs)
	fs.BoolVar(&list, "list", false, "list the reports with their purpose and parameters")
	fs.BoolVar(&fail, "fail-on-findings", false, "exit 1 when a findings report returns rows")
	fs.Var(&params, "param", "report parameter name=value (typed by the report's header; repeatable)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if list {
		return query.RunList(os.Stdout)
	}
	if len(pos) != 1 {
		return errors.New("usage: query report NAME [--from T] [--to T] (query report --list names them)")
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	p, err := per.value(time.Now())
	if err != nil {
		return err
	}
	cmd := query.ReportCommand{Name: pos[0], Period: p, FailOnFindings: fail, Params: map[string]string{}}
	for _, kv := range params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--param %q is not name=value", kv)
		}
		cmd.Params[k] = v
	}
	out, done, err := cfg.output()
	if err != nil {
		return err
	}
	return errors.Join(query.RunReport(ctx, cfg.query(), cmd, out), done())
}
