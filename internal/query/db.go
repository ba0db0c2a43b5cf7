package query

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/agentaudit/agentaudit/internal/store"
)

// Config says where to connect and how much a query may cost.
type Config struct {
	// Addr is the native-protocol address, host:port.
	Addr string
	// User and Password name the read-only account (CLICKHOUSE_READONLY_USER).
	User     string
	Password string
	// Database holds the audit tables; unqualified names in SQL resolve to it.
	Database string
	// Timeout bounds each query; on expiry the query is killed on the
	// server too. Default 60s.
	Timeout time.Duration
	// MaxRows bounds the rows read back; a larger result is cut and marked
	// truncated. Default 10000.
	MaxRows int
	// Cluster names the ClickHouse cluster (remote_servers) the database
	// is installed on (CLICKHOUSE_CLUSTER), empty for one server. Reports
	// read the Distributed tables either way; verify reads each shard's
	// local table from one of its replicas, at the addresses the server
	// lists in system.clusters, which must be reachable from here.
	Cluster string
	Logger  *slog.Logger
}

// Validate fills defaults and checks the connection settings (Database
// must be a plain identifier: it is spliced into SQL).
func (c *Config) Validate() error {
	if c.Addr == "" {
		return fmt.Errorf("%w: Addr is empty", ErrConfig)
	}
	if c.User == "" {
		return fmt.Errorf("%w: User is empty (the read-only account)", ErrConfig)
	}
	if !identRE.MatchString(c.Database) {
		return fmt.Errorf("%w: Database %q is not a plain identifier", ErrConfig, c.Database)
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.MaxRows <= 0 {
		c.MaxRows = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// DB is a read-only connection to the audit database.
type DB struct {
	conn driver.Conn
	cfg  Config
	// Readonly is the account's own readonly level as the server reported
	// it at Open, before anything this package sends.
	Readonly string
}

// Open connects as cfg.User through store.Dial's read-only connection: an
// account that could write gets readonly=2 on every statement, and every
// account but a readonly=1 one (whose server ignores or refuses settings)
// gets the time-out as max_execution_time.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secs := int((cfg.Timeout + time.Second - 1) / time.Second) // 18.16 takes int and bool settings only
	conn, err := store.Dial(ctx, cfg.Addr, store.WithAuth(cfg.User, cfg.Password), store.WithDatabase(cfg.Database),
		store.WithTimeouts(5*time.Second, cfg.Timeout+30*time.Second), store.WithMaxConns(4),
		store.WithReadOnly(), store.WithSettings(clickhouse.Settings{"max_execution_time": secs}),
		store.WithLogger(cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("query: connect %s as %s: %w", cfg.Addr, cfg.User, serverError(err))
	}
	return &DB{conn: conn.Conn, cfg: cfg, Readonly: conn.Readonly}, nil
}

// Close closes the connection pool.
func (db *DB) Close() error { return db.conn.Close() }

// Database returns the database name.
func (db *DB) Database() string { return db.cfg.Database }

// Column is one result column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Result is a query's rows as Go values (string, integers, float64,
// time.Time, slices), in column order.
type Result struct {
	SQL       string
	Columns   []Column
	Rows      [][]any
	Truncated bool // more rows existed than MaxRows
	Elapsed   time.Duration
}

// Query checks that sql is a read statement, binds params (@name in sql)
// and runs it with the time-out and row limit of the config.
func (db *DB) Query(ctx context.Context, sql string, params []Param) (*Result, error) {
	if err := CheckReadOnly(sql); err != nil {
		return nil, err
	}
	return db.query(ctx, sql, params, db.cfg.MaxRows)
}

func (db *DB) query(ctx context.Context, sql string, params []Param, maxRows int) (*Result, error) {
	var res *Result
	start := time.Now()
	err := db.stream(ctx, sql, params, func(rows driver.Rows, stop func()) error {
		var err error
		res, err = collect(rows, stop, maxRows)
		return err
	})
	if err != nil {
		return nil, err
	}
	res.SQL = sql
	res.Elapsed = time.Since(start)
	return res, nil
}

// stream runs sql with params bound, the readonly guard and the time-out,
// and hands the rows to read. read calls stop before it returns early, so
// that closing the rows does not drain the rest of the stream; the query
// is then killed on the server.
func (db *DB) stream(ctx context.Context, sql string, params []Param, read func(rows driver.Rows, stop func()) error) error {
	args := make([]any, len(params))
	for i, p := range params {
		args[i] = clickhouse.Named(p.Name, p.Value)
	}
	id := queryID()
	opts := []clickhouse.QueryOption{clickhouse.WithQueryID(id)}
	qctx, cancel := context.WithTimeout(ctx, db.cfg.Timeout)
	defer cancel()
	rctx, stop := context.WithCancel(qctx)
	defer stop()
	stopped := false
	err := func() error {
		rows, err := db.conn.Query(clickhouse.Context(rctx, opts...), sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return read(rows, func() { stopped = true; stop() })
	}()
	deadline, _ := qctx.Deadline()
	if err != nil && (qctx.Err() != nil || !time.Now().Before(deadline)) {
		// Cancelling the context closes the client side only; an 18.16
		// server keeps running the query until it next writes to the
		// socket, and a readonly=1 account cannot send max_execution_time.
		db.kill(id)
		// The driver reads with the context's deadline, so it may fail with
		// an i/o time-out a moment before the context itself expires.
		if ctx.Err() == nil {
			return fmt.Errorf("%w: query ran longer than %s and was killed", ErrTimeout, db.cfg.Timeout)
		}
		return ctx.Err()
	}
	if stopped {
		db.kill(id)
	}
	if err != nil {
		return serverError(err)
	}
	return nil
}

// collect scans at most maxRows rows (0: all).
func collect(rows driver.Rows, stop func(), maxRows int) (*Result, error) {
	cts := rows.ColumnTypes()
	res := &Result{Columns: make([]Column, len(cts)), Rows: [][]any{}}
	types := make([]reflect.Type, len(cts))
	for i, ct := range cts {
		res.Columns[i] = Column{Name: ct.Name(), Type: ct.DatabaseTypeName()}
		types[i] = ct.ScanType()
	}
	for rows.Next() {
		if maxRows > 0 && len(res.Rows) == maxRows {
			res.Truncated = true
			stop()
			return res, nil
		}
		ptrs := make([]any, len(types))
		for i, t := range types {
			ptrs[i] = reflect.New(t).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]any, len(ptrs))
		for i, p := range ptrs {
			row[i] = reflect.ValueOf(p).Elem().Interface()
			if t, ok := row[i].(time.Time); ok && res.Columns[i].Type == "Date" {
				// A Date is a day, not midnight.
				row[i] = t.Format(time.DateOnly)
			}
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

// Index returns the position of the column called name, or -1.
func (r *Result) Index(name string) int {
	for i, c := range r.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// kill stops a query on the server. A user may kill its own queries even
// with readonly=1.
func (db *DB) kill(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := db.conn.Exec(ctx, "KILL QUERY WHERE query_id = @id ASYNC", clickhouse.Named("id", id))
	if err != nil {
		db.cfg.Logger.Warn("kill query", "query_id", id, "err", err)
	}
}

func queryID() string {
	var b [12]byte
	rand.Read(b[:])
	return "agentaudit-query-" + hex.EncodeToString(b[:])
}
