// Package store reads and writes the audit tables in ClickHouse.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
)

// Errors of the store. Server errors are wrapped as they come; ErrorCode
// reads their ClickHouse code.
var (
	// ErrConfig: a Config field is missing or malformed.
	ErrConfig = errors.New("store: bad config")
	// ErrChecksumMismatch: an applied migration's file has changed since.
	// Migrations are never edited after release; add a new one.
	ErrChecksumMismatch = errors.New("store: applied migration changed")
	// ErrLockHeld: another migrator held the lock until ctx ended.
	ErrLockHeld = errors.New("store: migration lock held by another migrator")
	// ErrLockLost: this migrator's lease ran out and another took the lock.
	ErrLockLost = errors.New("store: migration lock lost")
	// ErrEvent: an event cannot be mapped to a row.
	ErrEvent = errors.New("store: event cannot be mapped to a row")
)

// ClickHouse error codes the store and its callers act on.
const (
	CodeUnknownTable    int32 = 60
	CodeTableExists     int32 = 57
	CodeDatabaseExists  int32 = 82
	CodeUnknownDatabase int32 = 81
	CodeReadonly        int32 = 164
	CodeNotEnoughRights int32 = 497
	CodeAccessDenied    int32 = 516
	// CodeIllegalColumn: among others, ADD COLUMN of a column that exists.
	CodeIllegalColumn int32 = 44
)

// ErrorCode returns the ClickHouse server error code inside err, if any.
func ErrorCode(err error) (int32, bool) {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return ex.Code, true
	}
	return 0, false
}

// Config says where and how to connect.
type Config struct {
	// Addr is the native-protocol address, host:port (the HTTP protocol
	// does not work against the 18.16 server).
	Addr     string
	User     string
	Password string
	// Database holds the audit tables; Migrate creates it.
	Database     string
	DialTimeout  time.Duration // default 5s
	ReadTimeout  time.Duration // default 5m: migrations and FINAL reads take a while
	MaxOpenConns int           // default 4
	// LockLease is how long a migrator may hold the migration lock without
	// renewing it; a crashed migrator blocks others for at most this long.
	// Default 2m. Leases compare wall clocks of the migrating hosts, so it
	// must be far longer than their clock skew.
	LockLease time.Duration
	// Cluster names the ClickHouse cluster (remote_servers) to install the
	// schema on: Replicated local tables ON CLUSTER behind Distributed
	// tables sharded by session (chschema.Render). Empty for one server.
	Cluster string
	// RBAC applies the migrations that create SQL roles (requires: rbac).
	// Off by default: the migrating user needs access management rights.
	RBAC   bool
	Logger *slog.Logger
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) validate() error {
	if c.Addr == "" {
		return fmt.Errorf("%w: Addr is empty", ErrConfig)
	}
	if !identRE.MatchString(c.Database) {
		// The name is spliced into DDL, so only plain identifiers pass.
		return fmt.Errorf("%w: Database %q is not a plain identifier", ErrConfig, c.Database)
	}
	if c.Cluster != "" && !identRE.MatchString(c.Cluster) {
		return fmt.Errorf("%w: Cluster %q is not a plain identifier", ErrConfig, c.Cluster)
	}
	if c.User == "" {
		c.User = "default"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Minute
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 4
	}
	if c.LockLease <= 0 {
		c.LockLease = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store is a connection pool to one ClickHouse database of audit tables.
// It is safe for concurrent use.
type Store struct {
	conn driver.Conn
	cfg  Config
	db   string
	log  *slog.Logger
}

// Open connects and pings. It does not create or migrate anything.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// No default database: it may not exist before Migrate, and every
	// statement names it anyway.
	opts := []DialOption{WithAuth(cfg.User, cfg.Password),
		WithTimeouts(cfg.DialTimeout, cfg.ReadTimeout), WithMaxConns(cfg.MaxOpenConns), WithLogger(cfg.Logger)}
	if cfg.Cluster != "" {
		opts = append(opts, WithSettings(clusterSettings))
	}
	conn, err := Dial(ctx, cfg.Addr, opts...)
	if err != nil {
		return nil, err
	}
	return &Store{conn: conn.Conn, cfg: cfg, db: cfg.Database, log: cfg.Logger}, nil
}

// Close closes the pool.
func (s *Store) Close() error { return s.conn.Close() }

// Conn returns the underlying connection for queries the store does not
// wrap (reports, verification).
func (s *Store) Conn() driver.Conn { return s.conn }

// Database returns the database name.
func (s *Store) Database() string { return s.db }

// ServerVersion returns the server's version().
func (s *Store) ServerVersion(ctx context.Context) (chschema.Version, error) {
	var raw string
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&raw); err != nil {
		return chschema.Version{}, fmt.Errorf("store: server version: %w", err)
	}
	return chschema.ParseVersion(raw)
}

// ModernVersion is the oldest server the version-gated enhancements are
// written for (DESIGN.md's production floor); Retention sets TTLs from it on.
var ModernVersion = chschema.Version{Parts: []int{23, 8}, Raw: "23.8"}
