package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrNotReadOnly: a connection asked to be read-only could not be made so;
// the server did not report readonly=2 after it was forced.
var ErrNotReadOnly = errors.New("store: connection is not read-only")

// Levels of the server's readonly setting, as system.settings reports them.
const (
	readonlyStrict   = "1" // no writes, no setting changes
	readonlySettings = "2" // no writes; settings other than readonly may change
)

// Conn is a pool of native-protocol connections to one ClickHouse server,
// opened by Dial. It is safe for concurrent use.
type Conn struct {
	driver.Conn
	// Readonly is the account's own readonly level ("0", "1" or "2") as the
	// server reported it before anything Dial sends; empty without
	// WithReadOnly.
	Readonly string
}

// DialOption configures Dial.
type DialOption func(*dialConfig)

type dialConfig struct {
	user, password string
	database       string
	dialTimeout    time.Duration
	readTimeout    time.Duration
	maxConns       int
	settings       clickhouse.Settings
	readOnly       bool
	log            *slog.Logger
}

// WithAuth sets the account (default: user "default", no password).
func WithAuth(user, password string) DialOption {
	return func(c *dialConfig) { c.user, c.password = user, password }
}

// WithDatabase sets the session's default database, which unqualified
// table names resolve to. Without it statements must name the database.
func WithDatabase(name string) DialOption { return func(c *dialConfig) { c.database = name } }

// WithTimeouts bounds connecting (default 5s) and waiting for the server
// while reading (default 5m); zero keeps a default.
func WithTimeouts(dial, read time.Duration) DialOption {
	return func(c *dialConfig) {
		if dial > 0 {
			c.dialTimeout = dial
		}
		if read > 0 {
			c.readTimeout = read
		}
	}
}

// WithMaxConns bounds the pool (default 4).
func WithMaxConns(n int) DialOption { return func(c *dialConfig) { c.maxConns = n } }

// WithSettings sends settings with every statement, for example
// max_execution_time. Values are int or bool: the driver refuses any other
// type on an 18.16 server. With WithReadOnly they are not sent on an account
// whose readonly level is 1: 18.16 ignores them there and newer servers
// refuse any statement that carries one.
func WithSettings(s clickhouse.Settings) DialOption {
	return func(c *dialConfig) { c.settings = maps.Clone(s) }
}

// WithReadOnly makes every statement on the connection read-only on the
// server, whatever the client sends: Dial learns the account's readonly
// level and, unless it is 1 or 2 already, forces readonly=2 on every
// statement and checks that the server applies it. (2 rather than 1: with
// 1 the server also ignores the time-out sent beside it. 2 forbids writes,
// DDL and changing readonly itself.) This is the second line behind
// chsql's statement guard.
func WithReadOnly() DialOption { return func(c *dialConfig) { c.readOnly = true } }

// WithLogger logs a writer account forced read-only (default: discard).
func WithLogger(l *slog.Logger) DialOption { return func(c *dialConfig) { c.log = l } }

// Dial opens a native-protocol connection pool to addr and checks that the
// server answers. The HTTP protocol does not work against the 18.16 server.
func Dial(ctx context.Context, addr string, opts ...DialOption) (*Conn, error) {
	c := dialConfig{user: "default", dialTimeout: 5 * time.Second, readTimeout: 5 * time.Minute, maxConns: 4}
	for _, o := range opts {
		o(&c)
	}
	if addr == "" {
		return nil, fmt.Errorf("%w: Addr is empty", ErrConfig)
	}
	if c.maxConns <= 0 {
		c.maxConns = 4
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if !c.readOnly {
		conn, err := c.open(ctx, addr, c.settings)
		if err != nil {
			return nil, err
		}
		return &Conn{Conn: conn}, nil
	}
	conn, err := c.open(ctx, addr, nil)
	if err != nil {
		return nil, err
	}
	level, err := readonlyLevel(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: readonly level of %s on %s: %w", c.user, addr, err)
	}
	settings := c.settings
	switch level {
	case readonlyStrict:
		return &Conn{Conn: conn, Readonly: level}, nil
	case readonlySettings:
		if len(settings) == 0 {
			return &Conn{Conn: conn, Readonly: level}, nil
		}
	default:
		// Any other level may write: default deny.
		c.log.Warn("the account may write; forcing readonly=2 on every statement", "user", c.user, "readonly", level)
		settings = maps.Clone(settings)
		if settings == nil {
			settings = clickhouse.Settings{}
		}
		settings["readonly"] = 2
	}
	conn.Close()
	if conn, err = c.open(ctx, addr, settings); err != nil {
		return nil, err
	}
	// Fail closed if the server does not apply what was sent.
	got, err := readonlyLevel(ctx, conn)
	if err == nil && got != readonlySettings {
		err = fmt.Errorf("%w: readonly is %q after forcing 2", ErrNotReadOnly, got)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: readonly level of %s on %s: %w", c.user, addr, err)
	}
	return &Conn{Conn: conn, Readonly: level}, nil
}

// open opens a pool that sends settings with every statement, and pings.
func (c *dialConfig) open(ctx context.Context, addr string, settings clickhouse.Settings) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol:     clickhouse.Native,
		Addr:         []string{addr},
		Auth:         clickhouse.Auth{Database: c.database, Username: c.user, Password: c.password},
		DialTimeout:  c.dialTimeout,
		ReadTimeout:  c.readTimeout,
		MaxOpenConns: c.maxConns,
		MaxIdleConns: c.maxConns,
		Settings:     settings,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: ping %s: %w", addr, err)
	}
	return conn, nil
}

func readonlyLevel(ctx context.Context, conn driver.Conn) (string, error) {
	var level string
	err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'readonly'").Scan(&level)
	return level, err
}
