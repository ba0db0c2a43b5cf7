package detect

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/agentaudit/agentaudit/internal/store"
)

// ClickHouseConfig says how SQL rules and replay reach ClickHouse: the
// read-only user, over the native protocol.
type ClickHouseConfig struct {
	Addr     string `env:"CLICKHOUSE_ADDR"`
	User     string `env:"CLICKHOUSE_READONLY_USER"`
	Password string `env:"CLICKHOUSE_READONLY_PASSWORD"`
	Database string `env:"CLICKHOUSE_DATABASE"`
	// Timeout bounds one query (default 1m).
	Timeout time.Duration
	// Logger says when the account could write and is forced read-only.
	Logger *slog.Logger `env:"-"`
}

// ClickHouseQuerier is a Querier over clickhouse-go. Rule queries name
// tables without a database; the connection's default database is
// Config.Database.
type ClickHouseQuerier struct {
	conn    driver.Conn
	timeout time.Duration
}

// NewClickHouseQuerier connects through store.Dial's read-only connection:
// whatever account cfg names, every statement runs with the server's
// readonly setting at 1 or 2, so no rule can write even if one got past
// checkSQL.
func NewClickHouseQuerier(ctx context.Context, cfg ClickHouseConfig) (*ClickHouseQuerier, error) {
	if cfg.Addr == "" || cfg.Database == "" {
		return nil, fmt.Errorf("%w: ClickHouse needs Addr and Database", ErrConfig)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	secs := int((cfg.Timeout + time.Second - 1) / time.Second) // 18.16 takes int and bool settings only
	conn, err := store.Dial(ctx, cfg.Addr, store.WithAuth(cfg.User, cfg.Password), store.WithDatabase(cfg.Database),
		store.WithTimeouts(5*time.Second, cfg.Timeout), store.WithReadOnly(),
		store.WithSettings(clickhouse.Settings{"max_execution_time": secs}), store.WithLogger(cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	return &ClickHouseQuerier{conn: conn.Conn, timeout: cfg.Timeout}, nil
}

// Close closes the connection.
func (q *ClickHouseQuerier) Close() error { return q.conn.Close() }

// Query implements Querier: every row as a map from column name to a Go
// value of the column's scan type (String → string, UInt64 → uint64,
// Array(String) → []string, DateTime → time.Time).
func (q *ClickHouseQuerier) Query(ctx context.Context, sql string, args ...any) ([]map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	rows, err := q.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := rows.ColumnTypes()
	var out []map[string]any
	for rows.Next() {
		ptrs := make([]any, len(cols))
		for i, c := range cols {
			ptrs[i] = reflect.New(c.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			row[c.Name()] = reflect.ValueOf(ptrs[i]).Elem().Interface()
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// Raw runs sql and passes each row's first column, a String, to f.
func (q *ClickHouseQuerier) Raw(ctx context.Context, sql string, f func([]byte) error, args ...any) error {
	rows, err := q.conn.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var s string
	for rows.Next() {
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if err := f([]byte(s)); err != nil {
			return err
		}
	}
	return rows.Err()
}
