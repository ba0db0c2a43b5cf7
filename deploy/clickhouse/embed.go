// Package chschema holds the ClickHouse schema migrations, embedded, and parses them.
package chschema

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql bootstrap.sql
var files embed.FS

// DBPlaceholder stands for the database name in migration SQL; Statements
// replaces it, so one file serves every database.
const DBPlaceholder = "{db}"

// Features a migration can require besides a server version.
const (
	// FeatureRBAC: SQL access management (CREATE ROLE, GRANT). A server
	// can be new enough and still not allow it to the migrating user.
	FeatureRBAC = "rbac"
)

// ErrMigration reports a malformed migration file.
var ErrMigration = errors.New("chschema: malformed migration")

// Migration is one numbered schema change.
type Migration struct {
	Version int
	// Name is the file name without the number and extension.
	Name string
	// File is the path inside the embedded tree, for messages.
	File string
	// MinVersion is the oldest server version ("23.8") the migration runs
	// on; empty for the portable core.
	MinVersion string
	// Requires lists features beyond the version (FeatureRBAC).
	Requires []string
	// SQL is the file as written, with DBPlaceholder unreplaced.
	SQL string
	// Checksum is the hex sha256 of SQL: an applied migration whose file
	// changed afterwards is refused.
	Checksum string
}

// Portable reports whether m belongs to the core every server runs.
func (m Migration) Portable() bool { return m.MinVersion == "" && len(m.Requires) == 0 }

// Statements returns m's statements with the database name filled in.
func (m Migration) Statements(db string) []string {
	stmts := Split(m.SQL)
	for i, s := range stmts {
		stmts[i] = strings.ReplaceAll(s, DBPlaceholder, db)
	}
	return stmts
}

// Bootstrap returns the statements that create the runner's own tables
// (schema_migrations, schema_lock) in db. They are idempotent and run before
// the lock is taken.
func Bootstrap(db string) []string {
	b, err := files.ReadFile("bootstrap.sql")
	if err != nil {
		panic(err) // embedded at build time
	}
	return Migration{SQL: string(b)}.Statements(db)
}

// All returns the embedded migrations in version order.
func All() ([]Migration, error) { return Load(files, "migrations") }

// Load reads NNNN_name.sql files from dir in fsys. Versions must be unique.
// Header comments at the top of a file set MinVersion ("-- min_version: 23.8")
// and Requires ("-- requires: rbac").
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("chschema: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		file := path.Join(dir, e.Name())
		b, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("chschema: %w", err)
		}
		m, err := Parse(file, string(b))
		if err != nil {
			return nil, err
		}
		if other, dup := seen[m.Version]; dup {
			return nil, fmt.Errorf("%w: %s and %s share version %d", ErrMigration, other, file, m.Version)
		}
		seen[m.Version] = file
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Parse reads one migration; file is its path, "dir/NNNN_name.sql".
func Parse(file, sql string) (Migration, error) {
	base := strings.TrimSuffix(path.Base(file), ".sql")
	num, name, ok := strings.Cut(base, "_")
	v, err := strconv.Atoi(num)
	if !ok || err != nil || v <= 0 || name == "" {
		return Migration{}, fmt.Errorf("%w: %s: name must be NNNN_name.sql", ErrMigration, file)
	}
	sum := sha256.Sum256([]byte(sql))
	m := Migration{Version: v, Name: name, File: file, SQL: sql, Checksum: hex.EncodeToString(sum[:])}
	for _, line := range strings.Split(sql, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		c, isComment := strings.CutPrefix(line, "--")
		if !isComment {
			break // headers end at the first statement
		}
		key, val, ok := strings.Cut(strings.TrimSpace(c), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(key) {
		case "min_version":
			if _, err := ParseVersion(val); err != nil {
				return Migration{}, fmt.Errorf("%w: %s: min_version %q", ErrMigration, file, val)
			}
			m.MinVersion = val
		case "requires":
			for _, f := range strings.Split(val, ",") {
				f = strings.TrimSpace(f)
				if f != FeatureRBAC {
					return Migration{}, fmt.Errorf("%w: %s: unknown feature %q", ErrMigration, file, f)
				}
				m.Requires = append(m.Requires, f)
			}
		}
	}
	if len(Split(sql)) == 0 {
		return Migration{}, fmt.Errorf("%w: %s: no statements", ErrMigration, file)
	}
	return m, nil
}

// Version is a ClickHouse server version, compared by its numbers.
type Version struct {
	Parts []int
	Raw   string
}

// ParseVersion reads "18.16.1" or "26.5.1.1".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	fields := strings.Split(s, ".")
	v := Version{Raw: s}
	for _, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("chschema: bad server version %q", s)
		}
		v.Parts = append(v.Parts, n)
	}
	return v, nil
}

// AtLeast reports whether v >= min; missing parts count as zero.
func (v Version) AtLeast(min Version) bool {
	for i := 0; i < len(v.Parts) || i < len(min.Parts); i++ {
		a, b := part(v.Parts, i), part(min.Parts, i)
		if a != b {
			return a > b
		}
	}
	return true
}

func part(p []int, i int) int {
	if i < len(p) {
		return p[i]
	}
	return 0
}

func (v Version) String() string { return v.Raw }

// Split cuts SQL text into statements at semicolons outside quotes and
// comments, and drops comment-only pieces. The native protocol runs one
// statement per query.
func Split(sql string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := trimComments(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = len(sql) - i
			}
			cur.WriteString(sql[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			j := strings.Index(sql[i+2:], "*/")
			end := len(sql)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			cur.WriteString(sql[i:end])
			i = end - 1
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(sql) && sql[j] != c {
				if sql[j] == '\\' {
					j++
				}
				j++
			}
			end := min(j+1, len(sql))
			cur.WriteString(sql[i:end])
			i = end - 1
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// trimComments drops the comment lines and blank lines before a statement,
// so logs and errors show the statement itself; "" when nothing else is left.
func trimComments(s string) string {
	for {
		s = strings.TrimSpace(s)
		if !strings.HasPrefix(s, "--") {
			return s
		}
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
}
