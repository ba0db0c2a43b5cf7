package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/query"
)

// Config is what every subcommand shares: the connection (from the
// environment, as .testenv/env names it) and the output.
type Config struct {
	Addr     string        `env:"CLICKHOUSE_ADDR"`
	User     string        `env:"CLICKHOUSE_READONLY_USER"`
	Password string        `env:"CLICKHOUSE_READONLY_PASSWORD"`
	Database string        `env:"CLICKHOUSE_DATABASE"`
	Timeout  time.Duration `flag:"timeout"`
	MaxRows  int           `flag:"max-rows"`
	Format   string        `flag:"format"`
	Wide     bool          `flag:"wide"`
	OutFile  string        `flag:"o"`
	Cluster  string        `env:"CLICKHOUSE_CLUSTER"`
}

func (c *Config) flags(fs *envflag.FlagSet) {
	c.connFlags(fs)
	fs.StringEnv(&c.Database, "database", "CLICKHOUSE_DATABASE", "agentaudit", "audit database")
	c.outputFlags(fs)
}

// connFlags binds the connection but the database, which `query bench`
// binds apart.
func (c *Config) connFlags(fs *envflag.FlagSet) {
	fs.StringEnv(&c.Addr, "addr", "CLICKHOUSE_ADDR", "127.0.0.1:9000", "ClickHouse native address")
	fs.StringEnv(&c.User, "user", "CLICKHOUSE_READONLY_USER", "agentaudit_reader", "read-only ClickHouse user")
	fs.FromEnv(&c.Password, "CLICKHOUSE_READONLY_PASSWORD", "password of the read-only ClickHouse user")
}

func (c *Config) outputFlags(fs *envflag.FlagSet) {
	fs.DurationVar(&c.Timeout, "timeout", 60*time.Second, "per-query time-out; the query is killed on the server after it")
	fs.IntVar(&c.MaxRows, "max-rows", 10000, "most rows read back; more are cut and marked truncated")
	fs.StringVar(&c.Format, "format", query.FormatTable, "output: table, csv, json, ndjson or html")
	fs.BoolVar(&c.Wide, "wide", false, "table: do not cut cells to the terminal width")
	fs.StringVar(&c.OutFile, "o", "", "write the output to this file instead of stdout")
}

// validate fills defaults and names the bad field.
func (c *Config) validate() error {
	if err := query.CheckFormat(c.Format); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	if c.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	if c.MaxRows <= 0 {
		return errors.New("--max-rows must be positive")
	}
	if c.Addr == "" {
		return errors.New("--addr (CLICKHOUSE_ADDR) is empty")
	}
	return nil
}

func (c *Config) query() query.Config {
	return query.Config{Addr: c.Addr, User: c.User, Password: c.Password, Database: c.Database,
		Timeout: c.Timeout, MaxRows: c.MaxRows, Cluster: c.Cluster}
}

// output opens the output; close flushes a file.
func (c *Config) output() (query.Output, func() error, error) {
	out := query.Output{Format: c.Format, Wide: c.Wide, W: os.Stdout, Width: query.TerminalWidth(os.Stdout)}
	if c.OutFile == "" {
		return out, func() error { return nil }, nil
	}
	f, err := os.Create(c.OutFile)
	if err != nil {
		return out, nil, err
	}
	out.W, out.Width = f, 0
	return out, f.Close, nil
}

// parse parses args with interspersed flags and positionals (Go's flag
// stops at the first positional); errors are printed by main.
func parse(fs *envflag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	pos, err := fs.ParseInterspersed(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stderr)
		fs.PrintDefaults()
	}
	return pos, err
}

// multi is a repeatable flag.
type multi []string

func (m *multi) String() string     { return fmt.Sprint(*m) }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// period reads --from and --to (default: the last 24 hours).
type period struct{ from, to string }

func (p *period) flags(fs *envflag.FlagSet) {
	fs.StringVar(&p.from, "from", "-24h", "start of the period: RFC 3339, a date, or relative (-24h, 7d)")
	fs.StringVar(&p.to, "to", "now", "end of the period (excluded; now includes the current second)")
}

func (p *period) value(now time.Time) (query.Period, error) {
	from, err := query.ParseTime(p.from, now)
	if err != nil {
		return query.Period{}, fmt.Errorf("--from: %w", err)
	}
	to, err := query.ParseTime(p.to, now)
	if err != nil {
		return query.Period{}, fmt.Errorf("--to: %w", err)
	}
	if strings.TrimSpace(p.to) == "now" {
		// Event times are whole seconds and the end is excluded: an end of
		// now truncated to the second would leave out what was recorded in
		// this very second, such as the last events of a session that has
		// just ended.
		to = to.Add(time.Second)
	}
	if !from.Before(to) {
		return query.Period{}, fmt.Errorf("--from %s is not before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return query.Period{From: from, To: to}, nil
}
