package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
)

// Applied describes a migration Migrate applied.
type Applied struct {
	Version  int
	Name     string
	Checksum string
	// Statements is how many statements ran.
	Statements int
	Took       time.Duration
}

// Skipped describes a migration left pending because the server or the
// config does not allow it; it is applied by a later Migrate once it does.
type Skipped struct {
	Version int
	Name    string
	// Why is "server 18.16.1 < 23.8" or "requires rbac".
	Why string
}

// lockPoll is how often a waiting migrator looks at the lock again.
var lockPoll = 200 * time.Millisecond

// Migrate creates the database if needed and applies the pending embedded
// migrations in version order, under the migration lock, recording each in
// schema_migrations. It refuses (ErrChecksumMismatch, before applying
// anything) when an applied migration's file has changed. Migrations gated
// on a newer server or on RBAC are skipped and stay pending.
//
// ClickHouse DDL is not transactional: a migration that fails halfway is
// not recorded and runs again in full next time, so every statement in a
// migration is idempotent (IF NOT EXISTS and the like).
func (s *Store) Migrate(ctx context.Context) ([]Applied, error) {
	applied, _, err := s.migrate(ctx)
	return applied, err
}

// MigrateReport is Migrate that also returns what it skipped and why.
func (s *Store) MigrateReport(ctx context.Context) ([]Applied, []Skipped, error) {
	return s.migrate(ctx)
}

func (s *Store) migrate(ctx context.Context) ([]Applied, []Skipped, error) {
	all, err := chschema.All()
	if err != nil {
		return nil, nil, err
	}
	// One server runs the files' statements as written; a cluster runs them
	// rendered (chschema.Render). Checksums are the files' either way.
	rendered, err := chschema.Render(all, s.db, chschema.Cluster{Name: s.cfg.Cluster})
	if err != nil {
		return nil, nil, err
	}
	if err := s.bootstrap(ctx); err != nil {
		return nil, nil, err
	}
	l, err := s.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer l.release()

	ver, err := s.ServerVersion(ctx)
	if err != nil {
		return nil, nil, err
	}
	done, err := s.appliedVersions(ctx)
	if err != nil {
		return nil, nil, err
	}
	known := map[int]bool{}
	for _, m := range all {
		known[m.Version] = true
		if sum, ok := done[m.Version]; ok && sum != m.Checksum {
			return nil, nil, fmt.Errorf("%w: %s (version %d): recorded checksum %s, file has %s",
				ErrChecksumMismatch, m.File, m.Version, sum, m.Checksum)
		}
	}
	for v := range done {
		if !known[v] {
			// A newer binary migrated further. Older code keeps working on
			// an extended schema, so this is worth a warning, not a refusal.
			s.log.Warn("schema has a migration this binary does not know", "version", v)
		}
	}

	var out []Applied
	var skipped []Skipped
	for _, m := range all {
		if _, ok := done[m.Version]; ok {
			continue
		}
		if why := s.gate(m, ver); why != "" {
			skipped = append(skipped, Skipped{Version: m.Version, Name: m.Name, Why: why})
			s.log.Info("migration skipped", "version", m.Version, "name", m.Name, "why", why)
			continue
		}
		// Renewing also proves the lease has not run out and passed to
		// another migrator while the previous migration ran.
		if err := l.renew(ctx); err != nil {
			return out, skipped, err
		}
		start := time.Now()
		stmts := rendered[m.Version]
		for i, stmt := range stmts {
			if local, ok := perShard(stmt); ok && s.cfg.Cluster != "" {
				err := s.execPerShard(ctx, local, func(err error) bool { return addsExistingColumn(local, err) })
				if err != nil {
					return out, skipped, fmt.Errorf("store: migration %s statement %d: %w", m.File, i+1, err)
				}
				continue
			}
			if err := s.conn.Exec(ctx, stmt); err != nil {
				if addsExistingColumn(stmt, err) {
					s.log.Info("column exists already; statement done by an earlier run", "version", m.Version, "statement", i+1)
					continue
				}
				return out, skipped, fmt.Errorf("store: migration %s statement %d: %w", m.File, i+1, err)
			}
		}
		if err := s.record(ctx, m, ver, l.owner); err != nil {
			return out, skipped, err
		}
		a := Applied{Version: m.Version, Name: m.Name, Checksum: m.Checksum, Statements: len(stmts), Took: time.Since(start)}
		s.log.Info("migration applied", "version", a.Version, "name", a.Name, "took", a.Took)
		out = append(out, a)
	}
	return out, skipped, nil
}

// addColumnRE matches an ALTER TABLE that adds exactly one column (on a
// cluster, ON CLUSTER; the server then reports the first failing host's
// error, code and message included).
// A comma inside parentheses (a function's arguments in a DEFAULT or
// MATERIALIZED expression) does not start another clause.
var addColumnRE = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+\S+(\s+ON\s+CLUSTER\s+\S+)?\s+ADD\s+COLUMN\s+(?:[^,;()]|\([^,;()]*(?:,[^,;()]*)*\))+$`)

// addsExistingColumn reports that stmt adds one column and failed because
// the column exists. The 18.16 server has no ADD COLUMN IF NOT EXISTS, so
// a portable migration adds each column with a statement of its own, and a
// rerun of a migration that failed after such a statement (ClickHouse DDL
// is not transactional) finds the column there: that statement is done.
func addsExistingColumn(stmt string, err error) bool {
	c, ok := ErrorCode(err)
	return ok && c == CodeIllegalColumn && addColumnRE.MatchString(strings.TrimSpace(stmt)) &&
		strings.Contains(err.Error(), "already exists")
}

// gate returns why m cannot run on this server, or "".
func (s *Store) gate(m chschema.Migration, ver chschema.Version) string {
	if m.MinVersion != "" {
		min, err := chschema.ParseVersion(m.MinVersion)
		if err != nil || !ver.AtLeast(min) {
			return fmt.Sprintf("server %s < %s", ver, m.MinVersion)
		}
	}
	if slices.Contains(m.Requires, chschema.FeatureRBAC) && !s.cfg.RBAC {
		return "requires rbac (Config.RBAC)"
	}
	return ""
}

// bootstrap creates the database and the runner's own tables. Two
// migrators may race on CREATE … IF NOT EXISTS; an "already exists" from
// the loser is success.
func (s *Store) bootstrap(ctx context.Context) error {
	create := "CREATE DATABASE IF NOT EXISTS " + s.db
	if s.cfg.Cluster != "" {
		create += " ON CLUSTER " + s.cfg.Cluster
	}
	boot, err := chschema.RenderBootstrap(s.db, chschema.Cluster{Name: s.cfg.Cluster})
	if err != nil {
		return err
	}
	stmts := append([]string{create}, boot...)
	for _, stmt := range stmts {
		var err error
		// A concurrent CREATE of the same table can fail in ways other than
		// "already exists" while the other one is half done (directory
		// exists, table is being created); the retry then finds it and
		// IF NOT EXISTS makes it a no-op.
		for attempt := 0; attempt < 5; attempt++ {
			if err = s.conn.Exec(ctx, stmt); err == nil {
				break
			}
			if c, ok := ErrorCode(err); ok && (c == CodeTableExists || c == CodeDatabaseExists) {
				err = nil
				break
			}
			if ctx.Err() != nil {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("store: bootstrap: %w", err)
		}
	}
	return nil
}

func (s *Store) appliedVersions(ctx context.Context) (map[int]string, error) {
	rows, err := s.conn.Query(ctx, "SELECT version, checksum FROM "+s.db+".schema_migrations FINAL")
	if err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var v uint32
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("store: read schema_migrations: %w", err)
		}
		out[int(v)] = sum
	}
	return out, rows.Err()
}

func (s *Store) record(ctx context.Context, m chschema.Migration, ver chschema.Version, owner string) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db+".schema_migrations (version, name, checksum, min_version, server_version, applied_by, applied_at)")
	if err != nil {
		return fmt.Errorf("store: record migration %d: %w", m.Version, err)
	}
	if err := b.Append(uint32(m.Version), m.Name, m.Checksum, m.MinVersion, ver.Raw, owner, time.Now().UTC()); err != nil {
		b.Abort()
		return fmt.Errorf("store: record migration %d: %w", m.Version, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("store: record migration %d: %w", m.Version, err)
	}
	return nil
}

// AppliedMigrations returns the recorded versions and their checksums.
func (s *Store) AppliedMigrations(ctx context.Context) (map[int]string, error) {
	return s.appliedVersions(ctx)
}

// migrationLock is a held lease on schema_lock.
type migrationLock struct {
	s     *Store
	owner string
}

// lockEntry is one row of schema_lock.
type lockEntry struct {
	owner       string
	op          string
	at, leaseTo uint64
}

const (
	lockAcquire = "acquire"
	lockRelease = "release"
)

// lockHolder replays the lock log in insertion order. An acquire takes the
// lock when it is free, when the holder's lease had run out at the time of
// the acquire, or when the holder renews. Every reader sees the same log
// prefix order, so no two owners can both find themselves holding it.
func lockHolder(log []lockEntry) (owner string, leaseTo uint64) {
	for _, e := range log {
		switch e.op {
		case lockAcquire:
			if owner == "" || owner == e.owner || e.at >= leaseTo {
				owner, leaseTo = e.owner, e.leaseTo
			}
		case lockRelease:
			if owner == e.owner {
				owner, leaseTo = "", 0
			}
		}
	}
	return owner, leaseTo
}

func newOwner() string {
	var b [8]byte
	rand.Read(b[:])
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// acquire appends acquire rows until the replayed log names this owner,
// or ctx ends (ErrLockHeld).
func (s *Store) acquire(ctx context.Context) (*migrationLock, error) {
	l := &migrationLock{s: s, owner: newOwner()}
	var last string
	for {
		holder, err := l.try(ctx)
		if err != nil {
			if last != "" && ctx.Err() != nil {
				// ctx ran out while waiting: the lock was held, say so.
				return nil, fmt.Errorf("%w: %s: %w", ErrLockHeld, last, err)
			}
			return nil, err
		}
		last = holder
		if holder == l.owner {
			return l, nil
		}
		s.log.Info("waiting for the migration lock", "holder", holder)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %s: %w", ErrLockHeld, holder, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// try appends one acquire row and returns the holder after it.
func (l *migrationLock) try(ctx context.Context) (string, error) {
	now := time.Now()
	if err := l.s.appendLock(ctx, lockEntry{
		owner: l.owner, op: lockAcquire,
		at: uint64(now.UnixMilli()), leaseTo: uint64(now.Add(l.s.cfg.LockLease).UnixMilli()),
	}); err != nil {
		return "", err
	}
	log, err := l.s.readLock(ctx)
	if err != nil {
		return "", err
	}
	holder, _ := lockHolder(log)
	return holder, nil
}

// renew extends the lease, or reports ErrLockLost when another migrator
// took the lock after this one's lease ran out.
func (l *migrationLock) renew(ctx context.Context) error {
	holder, err := l.try(ctx)
	if err != nil {
		return err
	}
	if holder != l.owner {
		return fmt.Errorf("%w: now held by %s", ErrLockLost, holder)
	}
	return nil
}

// release appends a release row. It runs on a fresh context so that a
// cancelled Migrate still frees the lock; if even that fails, the lease
// runs out.
func (l *migrationLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.s.appendLock(ctx, lockEntry{owner: l.owner, op: lockRelease, at: uint64(time.Now().UnixMilli())}); err != nil {
		l.s.log.Warn("releasing the migration lock failed; it frees when the lease ends", "err", err)
	}
}

func (s *Store) appendLock(ctx context.Context, e lockEntry) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db+".schema_lock (owner, op, at_ms, lease_until)")
	if err != nil {
		return fmt.Errorf("store: migration lock: %w", err)
	}
	if err := b.Append(e.owner, e.op, e.at, e.leaseTo); err != nil {
		b.Abort()
		return fmt.Errorf("store: migration lock: %w", err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("store: migration lock: %w", err)
	}
	return nil
}

// readLock reads the lock log in insertion order: a Log table read by one
// thread returns its blocks in the order they were appended.
func (s *Store) readLock(ctx context.Context) ([]lockEntry, error) {
	rows, err := s.conn.Query(ctx, "SELECT owner, op, at_ms, lease_until FROM "+s.db+".schema_lock SETTINGS max_threads = 1")
	if err != nil {
		return nil, fmt.Errorf("store: migration lock: %w", err)
	}
	defer rows.Close()
	var out []lockEntry
	for rows.Next() {
		var e lockEntry
		if err := rows.Scan(&e.owner, &e.op, &e.at, &e.leaseTo); err != nil {
			return nil, fmt.Errorf("store: migration lock: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
