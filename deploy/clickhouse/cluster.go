package chschema

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Rendering for a ClickHouse cluster.
//
// The migration files are written for one server. A sharded, replicated
// install runs the same files through Render, which rewrites each statement:
//
//   - CREATE TABLE {db}.t … ENGINE = XMergeTree(args) becomes the local table
//     {db}.t_local ON CLUSTER with ENGINE = ReplicatedXMergeTree(
//     '/clickhouse/tables/{shard}/{db}/t_local', '{replica}', args), plus
//     {db}.t ON CLUSTER AS {db}.t_local ENGINE = Distributed(cluster, {db},
//     t_local, key): queries keep using {db}.t. key is sipHash64(session_id)
//     when the table has a session_id column (a session's events, chain
//     breaks and duplicates live on one shard), else sipHash64 of the
//     sorting key (equal keys, which ReplacingMergeTree and the summing
//     engines collapse, land on one shard).
//   - ALTER TABLE {db}.t goes to {db}.t_local ON CLUSTER. A run of ALTERs
//     that changes columns is followed by a re-creation of the Distributed
//     table, before the next other statement (18.16 refuses ALTER … ON CLUSTER on a Distributed
//     table in a replicated cluster; a Distributed table holds no data once
//     its inserts are sent, and inserts through it are synchronous here).
//   - CREATE VIEW: ON CLUSTER, body unchanged (it reads the Distributed
//     names, so aggregates merge across shards).
//   - CREATE MATERIALIZED VIEW … TO {db}.t: ON CLUSTER, fed by the local
//     source tables and writing to {db}.t_local, so each shard aggregates
//     its own inserts; {db}.t (Distributed) reads them all. Without TO, the
//     view is created as {db}.v_local with a Replicated inner engine and
//     {db}.v is a Distributed table over it.
//   - DROP TABLE of a sharded table drops both; other DDL gains ON CLUSTER.
//
// A statement the renderer does not understand is an error, never passed
// through unchanged: a migration that cannot be installed on a cluster
// must fail its test, not install half a schema.

// ErrCluster reports a migration statement Render cannot turn into
// cluster DDL.
var ErrCluster = errors.New("chschema: statement not renderable for a cluster")

// Cluster names the cluster a schema is installed on.
type Cluster struct {
	// Name is the cluster in the servers' remote_servers; "" means a single
	// server, for which Render returns the files' statements unchanged.
	Name string
}

// LocalSuffix names the per-shard table behind a Distributed table.
const LocalSuffix = "_local"

// zkPrefix is where sharded tables keep their replication state; {shard}
// and {replica} are the servers' macros.
const zkPrefix = "/clickhouse/tables/{shard}/"

// globalZKPrefix holds tables every server keeps a full copy of.
const globalZKPrefix = "/clickhouse/tables/all/"

// Render returns the statements of every migration in all, in order, for
// database db on cluster c, keyed by version. It renders all of them, not
// only the pending ones, because a later migration's ALTER needs to know
// which tables an earlier one sharded.
func Render(all []Migration, db string, c Cluster) (map[int][]string, error) {
	out := make(map[int][]string, len(all))
	r := newRenderer(db, c)
	for _, m := range all {
		if c.Name == "" {
			out[m.Version] = m.Statements(db)
			continue
		}
		stmts, err := r.migration(m.SQL)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrCluster, m.File, err)
		}
		out[m.Version] = fill(stmts, db)
	}
	return out, nil
}

// RenderBootstrap returns Bootstrap's statements for cluster c: the
// migration record is replicated to every server (one ZooKeeper path
// without {shard}), so any server answers which migrations ran; the lock
// log is a Log table on each server, and migrators share the one they all
// connect to first (Log tables cannot replicate).
func RenderBootstrap(db string, c Cluster) ([]string, error) {
	if c.Name == "" {
		return Bootstrap(db), nil
	}
	b, err := files.ReadFile("bootstrap.sql")
	if err != nil {
		panic(err) // embedded at build time
	}
	r := newRenderer(db, c)
	r.global = true
	stmts, err := r.migration(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap.sql: %w", ErrCluster, err)
	}
	return fill(stmts, db), nil
}

func fill(stmts []string, db string) []string {
	for i, s := range stmts {
		stmts[i] = strings.ReplaceAll(s, DBPlaceholder, db)
	}
	return stmts
}

// sharded is what the renderer knows of a table it split into local and
// Distributed parts.
type sharded struct {
	key string // sharding expression
}

type renderer struct {
	db      string
	c       Cluster
	on      string // " ON CLUSTER name"
	tables  map[string]sharded
	global  bool // replicate to every server instead of sharding
	refresh []string
}

func newRenderer(db string, c Cluster) *renderer {
	return &renderer{db: db, c: c, on: " ON CLUSTER " + c.Name, tables: map[string]sharded{}}
}

var (
	createTableRE = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?\{db\}\.(\w+)\s*(.*)$`)
	createViewRE  = regexp.MustCompile(`(?is)^CREATE\s+(MATERIALIZED\s+)?VIEW\s+(IF\s+NOT\s+EXISTS\s+)?\{db\}\.(\w+)\s*(.*)$`)
	alterRE       = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+\{db\}\.(\w+)\s+(.*)$`)
	dropRE        = regexp.MustCompile(`(?is)^DROP\s+(TABLE|VIEW)\s+(IF\s+EXISTS\s+)?\{db\}\.(\w+)\s*$`)
	optimizeRE    = regexp.MustCompile(`(?is)^OPTIMIZE\s+TABLE\s+\{db\}\.(\w+)(.*)$`)
	insertRE      = regexp.MustCompile(`(?is)^INSERT\s+INTO\s+\{db\}\.\w+`)
	createRoleRE  = regexp.MustCompile(`(?is)^CREATE\s+(ROLE|USER|SETTINGS\s+PROFILE|QUOTA|ROW\s+POLICY)\s+(IF\s+NOT\s+EXISTS\s+)?(\w+)(.*)$`)
	grantRE       = regexp.MustCompile(`(?is)^(GRANT|REVOKE)\s+(.*)$`)
	engineRE      = regexp.MustCompile(`(?is)\bENGINE\s*=\s*(\w+)\s*`)
	orderByRE     = regexp.MustCompile(`(?is)\bORDER\s+BY\s+`)
	toRE          = regexp.MustCompile(`(?is)^TO\s+\{db\}\.(\w+)\s*`)
	tableRefRE    = regexp.MustCompile(`\{db\}\.(\w+)`)
	// A table that reads one system table: AS system.x ENGINE = Merge(system, '^x$').
	systemMergeRE = regexp.MustCompile(`(?is)^AS\s+system\.(\w+)\s+ENGINE\s*=\s*Merge\(\s*system\s*,\s*'\^(\w+)\$'\s*\)\s*$`)
	// An ALTER that changes the columns a Distributed table must mirror.
	columnAlterRE = regexp.MustCompile(`(?is)\b(ADD|DROP|MODIFY|RENAME)\s+COLUMN\b`)
	// Clauses that end a sorting key written without parentheses.
	clauseRE = regexp.MustCompile(`(?is)\s(PARTITION\s+BY|PRIMARY\s+KEY|SAMPLE\s+BY|TTL|SETTINGS)\s`)
)

// migration renders one file's statements (with {db} unreplaced) and the
// Distributed re-creations its column changes need.
func (r *renderer) migration(sql string) ([]string, error) {
	r.refresh = nil
	var out []string
	for _, stmt := range Split(sql) {
		if !alterRE.MatchString(stmt) {
			// What follows a run of ALTERs (a view, say) may read the new
			// columns through the Distributed name: re-create it first.
			out = append(out, r.flush()...)
		}
		got, err := r.statement(stmt)
		if err != nil {
			return nil, fmt.Errorf("%w\nstatement: %s", err, firstLine(stmt))
		}
		out = append(out, got...)
	}
	return append(out, r.flush()...), nil
}

// flush re-creates the Distributed tables whose local tables' columns
// changed since the last flush.
func (r *renderer) flush() []string {
	var out []string
	for _, t := range r.refresh {
		if _, ok := r.tables[t]; ok {
			out = append(out, "DROP TABLE IF EXISTS {db}."+t+r.on, r.distributed(t, true))
		}
	}
	r.refresh = nil
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func (r *renderer) statement(stmt string) ([]string, error) {
	switch {
	case createTableRE.MatchString(stmt):
		return r.createTable(stmt)
	case createViewRE.MatchString(stmt):
		return r.createView(stmt)
	case alterRE.MatchString(stmt):
		m := alterRE.FindStringSubmatch(stmt)
		name, rest := m[1], m[2]
		if _, ok := r.tables[name]; !ok {
			return []string{"ALTER TABLE {db}." + name + r.on + " " + rest}, nil
		}
		if columnAlterRE.MatchString(rest) && !contains(r.refresh, name) {
			r.refresh = append(r.refresh, name)
		}
		return []string{"ALTER TABLE {db}." + name + LocalSuffix + r.on + " " + rest}, nil
	case dropRE.MatchString(stmt):
		m := dropRE.FindStringSubmatch(stmt)
		ifExists, name := m[2], m[3]
		out := []string{"DROP TABLE " + ifExists + "{db}." + name + r.on}
		if _, ok := r.tables[name]; ok {
			out = append(out, "DROP TABLE "+ifExists+"{db}."+name+LocalSuffix+r.on)
			delete(r.tables, name)
		}
		return out, nil
	case optimizeRE.MatchString(stmt):
		m := optimizeRE.FindStringSubmatch(stmt)
		name := m[1]
		if _, ok := r.tables[name]; ok {
			name += LocalSuffix
		}
		return []string{"OPTIMIZE TABLE {db}." + name + r.on + m[2]}, nil
	case insertRE.MatchString(stmt):
		// A backfill: the Distributed target routes each row to its shard,
		// and the SELECT reads every shard.
		return []string{stmt}, nil
	case createRoleRE.MatchString(stmt):
		m := createRoleRE.FindStringSubmatch(stmt)
		return []string{"CREATE " + m[1] + " " + m[2] + m[3] + r.on + m[4]}, nil
	case grantRE.MatchString(stmt):
		m := grantRE.FindStringSubmatch(stmt)
		return []string{m[1] + r.on + " " + m[2]}, nil
	}
	return nil, errors.New("unknown statement kind (teach deploy/clickhouse/cluster.go)")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// createTable splits a MergeTree-family table into a Replicated local
// table and a Distributed table of the original name.
func (r *renderer) createTable(stmt string) ([]string, error) {
	m := createTableRE.FindStringSubmatch(stmt)
	ifNot, name, rest := m[1], m[2], m[3]
	if strings.HasSuffix(name, LocalSuffix) {
		return nil, fmt.Errorf("table name %s ends in %s, which the cluster layout reserves", name, LocalSuffix)
	}
	var columns string
	if strings.HasPrefix(rest, "(") {
		end := matchParen(rest, 0)
		if end < 0 {
			return nil, errors.New("unbalanced column list")
		}
		columns = rest[1:end]
	}
	loc := engineRE.FindStringSubmatchIndex(rest)
	if loc == nil {
		return nil, errors.New("CREATE TABLE without ENGINE")
	}
	engine := rest[loc[2]:loc[3]]
	if m := systemMergeRE.FindStringSubmatch(rest); m != nil && m[1] == m[2] {
		// A table over one per-server system table: on a cluster, over
		// that table on every shard (shards, 0018: one row per shard).
		return []string{"CREATE TABLE " + ifNot + "{db}." + name + r.on + " AS system." + m[1] +
			" ENGINE = Distributed(" + r.c.Name + ", system, " + m[1] + ", rand())"}, nil
	}
	if !strings.HasSuffix(engine, "MergeTree") {
		// Not replicable (Log, Memory…): one per server.
		return []string{"CREATE TABLE " + ifNot + "{db}." + name + r.on + " " + rest}, nil
	}
	if strings.HasPrefix(engine, "Replicated") {
		return nil, errors.New("migration files name plain engines; the renderer adds Replicated")
	}
	after := rest[loc[1]:]
	var args string
	if strings.HasPrefix(after, "(") {
		end := matchParen(after, 0)
		if end < 0 {
			return nil, errors.New("unbalanced engine arguments")
		}
		args = strings.TrimSpace(after[1:end])
		after = after[end+1:]
	} else if after != "" {
		after = " " + after // ENGINE = MergeTree ORDER BY …: keep the space
	}
	local := name + LocalSuffix
	prefix := zkPrefix
	if r.global {
		local, prefix = name, globalZKPrefix
	}
	repl := fmt.Sprintf("Replicated%s('%s{db}/%s', '{replica}'", engine, prefix, local)
	if args != "" {
		repl += ", " + args
	}
	repl += ")"
	head := strings.TrimRight(rest[:loc[0]], " \t\n")
	created := "CREATE TABLE " + ifNot + "{db}." + local + r.on + " " + head + "\nENGINE = " + repl + after
	if r.global {
		return []string{created}, nil
	}
	key, err := shardKey(columns, after)
	if err != nil {
		return nil, err
	}
	r.tables[name] = sharded{key: key}
	return []string{created, r.distributed(name, ifNot != "")}, nil
}

// distributed is the CREATE of the Distributed table over name's local table.
func (r *renderer) distributed(name string, ifNot bool) string {
	s := "CREATE TABLE "
	if ifNot {
		s += "IF NOT EXISTS "
	}
	return s + "{db}." + name + r.on + " AS {db}." + name + LocalSuffix +
		" ENGINE = Distributed(" + r.c.Name + ", {db}, " + name + LocalSuffix + ", " + r.tables[name].key + ")"
}

var (
	sessionColumnRE = regexp.MustCompile(`(?is)^\s*session_id\s`)
	lineCommentRE   = regexp.MustCompile(`--[^\n]*`)
)

// shardKey picks the sharding expression: the session when the table has
// one, else the sorting key.
func shardKey(columns, tail string) (string, error) {
	columns = lineCommentRE.ReplaceAllString(columns, "")
	for _, col := range splitTop(columns) {
		if sessionColumnRE.MatchString(col + " ") {
			return "sipHash64(session_id)", nil
		}
	}
	loc := orderByRE.FindStringIndex(tail)
	if loc == nil {
		return "", errors.New("no session_id column and no ORDER BY to shard by")
	}
	key := tail[loc[1]:]
	if strings.HasPrefix(key, "(") {
		end := matchParen(key, 0)
		if end < 0 {
			return "", errors.New("unbalanced ORDER BY")
		}
		key = key[1:end]
	} else if c := clauseRE.FindStringIndex(key); c != nil {
		key = key[:c[0]]
	}
	key = strings.TrimSpace(key)
	if key == "" || key == "tuple()" {
		return "", errors.New("empty sorting key: nothing to shard by")
	}
	return "sipHash64(" + key + ")", nil
}

// createView renders a view. A plain view reads the Distributed names; a
// materialized view reads and writes the local tables of its shard.
func (r *renderer) createView(stmt string) ([]string, error) {
	m := createViewRE.FindStringSubmatch(stmt)
	mat, ifNot, name, rest := m[1] != "", m[2], m[3], m[4]
	kind := "VIEW "
	if !mat {
		return []string{"CREATE " + kind + ifNot + "{db}." + name + r.on + " " + rest}, nil
	}
	kind = "MATERIALIZED VIEW "
	asAt := regexp.MustCompile(`(?is)\bAS\s+SELECT\b`).FindStringIndex(rest)
	if asAt == nil {
		return nil, errors.New("materialized view without AS SELECT")
	}
	head, query := rest[:asAt[0]], rest[asAt[0]:]
	query = tableRefRE.ReplaceAllStringFunc(query, func(ref string) string {
		t := strings.TrimPrefix(ref, "{db}.")
		if _, ok := r.tables[t]; ok {
			return ref + LocalSuffix
		}
		return ref
	})
	if to := toRE.FindStringSubmatch(head); to != nil {
		target := to[1]
		if _, ok := r.tables[target]; ok {
			head = "TO {db}." + target + LocalSuffix + " " + head[len(to[0]):]
		}
		return []string{"CREATE " + kind + ifNot + "{db}." + name + r.on + " " + head + query}, nil
	}
	// An inner table: render it like a CREATE TABLE (Replicated engine,
	// local name) and put a Distributed table over it under the view's name.
	loc := engineRE.FindStringSubmatchIndex(head)
	if loc == nil || !strings.HasSuffix(head[loc[2]:loc[3]], "MergeTree") {
		return nil, errors.New("materialized view needs TO or a MergeTree-family ENGINE")
	}
	engine := head[loc[2]:loc[3]]
	after := head[loc[1]:]
	var args string
	if strings.HasPrefix(after, "(") {
		end := matchParen(after, 0)
		if end < 0 {
			return nil, errors.New("unbalanced engine arguments")
		}
		args = strings.TrimSpace(after[1:end])
		after = after[end+1:]
	} else if after != "" {
		after = " " + after // ENGINE = MergeTree ORDER BY …: keep the space
	}
	local := name + LocalSuffix
	repl := fmt.Sprintf("Replicated%s('%s{db}/%s', '{replica}'", engine, zkPrefix, local)
	if args != "" {
		repl += ", " + args
	}
	repl += ")"
	key, err := shardKey("", after)
	if err != nil {
		return nil, err
	}
	r.tables[name] = sharded{key: key}
	created := "CREATE " + kind + ifNot + "{db}." + local + r.on + " "
	if pre := strings.TrimSpace(head[:loc[0]]); pre != "" {
		created += pre + " "
	}
	created += "ENGINE = " + repl + after + query
	return []string{created, r.distributed(name, ifNot != "")}, nil
}

// matchParen returns the index of the parenthesis closing the one at open,
// skipping quoted text, or -1.
func matchParen(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"', '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			i = j
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// splitTop splits s at commas outside parentheses and quotes.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"', '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			i = j
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		out = append(out, s[start:])
	}
	return out
}
