package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// testDB creates a fresh database as the admin user, drops it when the test
// ends, and returns a writer Config for it.
func testDB(t testing.TB) Config {
	t.Helper()
	addr := testenv.ClickHouse(t)
	env, _ := testenv.Env()
	admin := Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"), Password: env["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"}
	var b [4]byte
	rand.Read(b[:])
	db := fmt.Sprintf("test_store_%d_%s", os.Getpid(), hex.EncodeToString(b[:]))
	ctx := context.Background()
	as, err := Open(ctx, admin)
	if err != nil {
		t.Fatalf("open as admin: %v", err)
	}
	if err := as.conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := as.conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
		as.Close()
	})
	return Config{
		Addr: addr, User: testenv.Get(t, "CLICKHOUSE_USER"), Password: testenv.Get(t, "CLICKHOUSE_PASSWORD"),
		Database: db, Logger: testenv.Logger(t, slog.LevelInfo),
	}
}

func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func migrated(t testing.TB) *Store {
	t.Helper()
	s := open(t, testDB(t))
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// expectedVersions lists the migrations the test server should apply.
func expectedVersions(t *testing.T, s *Store) []int {
	t.Helper()
	ver, err := s.ServerVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	all, err := chschema.All()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, m := range all {
		if s.gate(m, ver) == "" {
			out = append(out, m.Version)
		}
	}
	return out
}

func versions(as []Applied) []int {
	out := []int{}
	for _, a := range as {
		out = append(out, a.Version)
	}
	sort.Ints(out)
	return out
}

func strs(t *testing.T, s *Store, q string, args ...any) []string {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func count(t *testing.T, s *Store, q string) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestMigrateFromEmptyThenNoop(t *testing.T) {
	ctx := context.Background()
	s := open(t, testDB(t))
	want := expectedVersions(t, s)
	got, skipped, err := s.MigrateReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, versions(got)); diff != "" {
		t.Errorf("applied versions (-want +got):\n%s", diff)
	}
	ver, _ := s.ServerVersion(ctx)
	t.Logf("server %s: applied %v, skipped %+v", ver, versions(got), skipped)
	if !ver.AtLeast(ModernVersion) && len(skipped) == 0 {
		t.Errorf("server %s: expected the modern migrations to be skipped", ver)
	}
	tables := strs(t, s, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", s.db)
	wantTables := []string{"activity_sessions", "activity_sessions_mv", "alerts", "approvals", "call_folds", "call_folds_mv", "chain_breaks", "dlq_events", "egress", "events", "execs",
		"model_calls", "schema_lock", "schema_migrations", "sessions", "shards", "tool_calls"}
	if diff := cmp.Diff(wantTables, tables); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}
	// 0018: one row on one server (the reports join their folds to it).
	if got := strs(t, s, "SELECT toString(dummy) FROM "+s.db+".shards"); !slices.Equal(got, []string{"0"}) {
		t.Errorf("shards = %v, want one row [0]", got)
	}
	again, err := s.Migrate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Errorf("second Migrate applied %v, want nothing", versions(again))
	}
	recorded, err := s.AppliedMigrations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := chschema.All()
	for _, m := range all {
		if sum, ok := recorded[m.Version]; ok && sum != m.Checksum {
			t.Errorf("version %d recorded checksum %s, file %s", m.Version, sum, m.Checksum)
		}
	}
	if len(recorded) != len(want) {
		t.Errorf("recorded %d migrations, want %d", len(recorded), len(want))
	}
}

func TestMigrateConcurrent(t *testing.T) {
	cfg := testDB(t)
	const n = 4
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = open(t, cfg)
	}
	want := expectedVersions(t, stores[0])
	var wg sync.WaitGroup
	results := make([][]Applied, n)
	errs := make([]error, n)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			results[i], errs[i] = stores[i].Migrate(ctx)
		}()
	}
	wg.Wait()
	var all []Applied
	for i := range stores {
		if errs[i] != nil {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		all = append(all, results[i]...)
	}
	// Each migration applied by exactly one migrator, recorded exactly once.
	if diff := cmp.Diff(want, versions(all)); diff != "" {
		t.Errorf("versions applied across migrators (-want +got):\n%s", diff)
	}
	if got := count(t, stores[0], "SELECT count() FROM "+cfg.Database+".schema_migrations"); got != uint64(len(want)) {
		t.Errorf("schema_migrations holds %d rows, want %d", got, len(want))
	}
}

func TestMigrateWaitsForLockAndTakesExpiredLease(t *testing.T) {
	ctx := context.Background()
	cfg := testDB(t)
	cfg.LockLease = 2 * time.Second
	holder := open(t, cfg)
	if err := holder.bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := holder.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := open(t, cfg)
	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	if _, err := other.Migrate(short); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("Migrate while locked: got %v, want ErrLockHeld", err)
	}
	// The holder never releases (a crash); its lease runs out.
	got, err := other.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate after the lease ran out: %v", err)
	}
	if len(got) == 0 {
		t.Fatal("nothing applied after taking over the lock")
	}
	if err := l.renew(ctx); !errors.Is(err, ErrLockLost) && err != nil {
		t.Fatalf("renew by the crashed holder: %v", err)
	} else if err == nil {
		// other released the lock, so the old holder can take it again: that
		// is fine; what matters is that both never held it at once, which
		// lockHolder's table test covers.
		l.release()
	}
}

func TestLockHolder(t *testing.T) {
	acq := func(o string, at, until uint64) lockEntry {
		return lockEntry{owner: o, op: lockAcquire, at: at, leaseTo: until}
	}
	rel := func(o string, at uint64) lockEntry { return lockEntry{owner: o, op: lockRelease, at: at} }
	tests := []struct {
		name string
		log  []lockEntry
		want string
	}{
		{"empty", nil, ""},
		{"first wins", []lockEntry{acq("a", 10, 100), acq("b", 5, 95)}, "a"},
		{"release frees", []lockEntry{acq("a", 10, 100), acq("b", 11, 101), rel("a", 12), acq("b", 13, 103)}, "b"},
		{"loser's old row does not win after release", []lockEntry{acq("a", 10, 100), acq("b", 11, 101), rel("a", 12)}, ""},
		{"expired lease taken", []lockEntry{acq("a", 10, 100), acq("b", 100, 200)}, "b"},
		{"renew extends", []lockEntry{acq("a", 10, 100), acq("a", 90, 190), acq("b", 150, 250)}, "a"},
		{"release by non-holder ignored", []lockEntry{acq("a", 10, 100), rel("b", 11)}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := lockHolder(tt.log)
			if got != tt.want {
				t.Errorf("holder = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMigrateRefusesChangedChecksum(t *testing.T) {
	ctx := context.Background()
	s := migrated(t)
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db+".schema_migrations (version, name, checksum, applied_at)")
	if err != nil {
		t.Fatal(err)
	}
	// A later applied_at wins in ReplacingMergeTree(applied_at).
	if err := b.Append(uint32(1), "events", "0000", time.Now().Add(time.Hour).UTC()); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Migrate(ctx)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Migrate = %v, want ErrChecksumMismatch", err)
	}
}

// examples reads schemas/examples/valid: one coherent session with three
// tool calls (allowed, approved, denied), an approval, egress and an alert.
func examples(t testing.TB) (envs []*events.Envelope, raws [][]byte) {
	t.Helper()
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "schemas", "examples", "valid", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		env, err := events.Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		envs = append(envs, env)
		raws = append(raws, raw)
	}
	return envs, raws
}

func exampleRows(t testing.TB) []EventRow {
	t.Helper()
	envs, raws := examples(t)
	var rows []EventRow
	for i, env := range envs {
		r, err := RowFromEvent(env, raws[i], Source{Topic: "audit.events", Partition: 0, Offset: int64(i)})
		if err != nil {
			t.Fatalf("RowFromEvent(%s): %v", env.EventType, err)
		}
		rows = append(rows, r)
	}
	return rows
}

func TestEventColumnsMatchTable(t *testing.T) {
	s := migrated(t)
	// Computed columns (event_ts on modern servers, MATERIALIZED; call_key,
	// DEFAULT) are not inserted: the server fills them.
	got := strs(t, s, "SELECT name FROM system.columns WHERE database = ? AND table = 'events' AND default_kind = ''", s.db)
	if diff := cmp.Diff(eventColumns, got); diff != "" {
		t.Errorf("insert columns vs table (-store +table):\n%s", diff)
	}
	if n := len((&EventRow{}).values(time.Now())); n != len(eventColumns) {
		t.Errorf("values() has %d entries for %d columns", n, len(eventColumns))
	}
}

func TestInsertEveryTypeAndReadViews(t *testing.T) {
	ctx := context.Background()
	s := migrated(t)
	rows := exampleRows(t)
	// Twice: a redelivery must collapse.
	for range 2 {
		if err := s.InsertEvents(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	if got := count(t, s, "SELECT count() FROM "+s.db+".events FINAL"); got != uint64(len(rows)) {
		t.Errorf("events FINAL = %d, want %d", got, len(rows))
	}
	types := strs(t, s, "SELECT DISTINCT event_type FROM "+s.db+".events FINAL ORDER BY event_type")
	want := append([]string(nil), events.EventTypes...)
	sort.Strings(want)
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("event types stored (-want +got):\n%s", diff)
	}

	// raw is stored byte for byte.
	envs, raws := examples(t)
	var raw string
	if err := s.conn.QueryRow(ctx, "SELECT raw FROM "+s.db+".events FINAL WHERE event_id = ?", rows[0].EventID).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if raw != string(raws[0]) {
		t.Errorf("raw of %s differs from the input", envs[0].EventID)
	}

	type toolCall = toolCallRow
	q := `SELECT tool_call_id, tool_name, command, initial_decision, decision, reason_code, rule_id,
	             approval_id, approval_status, approver, status, exit_code, duration_ms
	      FROM ` + s.db + `.tool_calls ORDER BY tool_call_id`
	r, err := s.conn.Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var calls []toolCall
	for r.Next() {
		var c toolCall
		if err := r.Scan(&c.ToolCallID, &c.ToolName, &c.Command, &c.Initial, &c.Decision, &c.ReasonCode, &c.RuleID,
			&c.ApprovalID, &c.ApprovalStatus, &c.Approver, &c.Status, &c.ExitCode, &c.DurationMS); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, c)
	}
	r.Close()
	wantCalls := expectedToolCalls(t, rows)
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("tool_calls (-want +got):\n%s", diff)
	}

	// approvals: request and decision on one row.
	var apID, status, approver, scope, kind string
	var decisions uint64
	if err := s.conn.QueryRow(ctx, "SELECT approval_id, status, approver, scope, kind, decisions FROM "+s.db+".approvals").
		Scan(&apID, &status, &approver, &scope, &kind, &decisions); err != nil {
		t.Fatal(err)
	}
	dec := find(t, rows, events.TypeApprovalDecided)
	req := find(t, rows, events.TypeApprovalRequested)
	if got, want := []any{apID, status, approver, scope, kind, decisions},
		[]any{req.ApprovalID, dec.ApprovalOutcome, dec.Approver, dec.ApprovalScope, req.Kind, uint64(1)}; !cmp.Equal(got, want) {
		t.Errorf("approvals row = %v, want %v", got, want)
	}
	if dec.ApprovalID != req.ApprovalID {
		t.Errorf("decision's approval_id %s != request's %s", dec.ApprovalID, req.ApprovalID)
	}

	for view, typ := range map[string]string{"egress": events.TypeNetEgress, "alerts": events.TypeAlertRaised} {
		want := 0
		for _, r := range rows {
			if r.EventType == typ {
				want++
			}
		}
		if got := count(t, s, "SELECT count() FROM "+s.db+"."+view); got != uint64(want) || want == 0 {
			t.Errorf("%s rows = %d, want %d (> 0)", view, got, want)
		}
	}
	var alertRule string
	var matched []uint64
	if err := s.conn.QueryRow(ctx, "SELECT rule_id, matched_event_ids FROM "+s.db+".alerts").Scan(&alertRule, &matched); err != nil {
		t.Fatal(err)
	}
	al := find(t, rows, events.TypeAlertRaised)
	if alertRule != al.RuleID || !cmp.Equal(matched, al.MatchedEventIDs) {
		t.Errorf("alert = %s %v, want %s %v", alertRule, matched, al.RuleID, al.MatchedEventIDs)
	}
	// sessions: one row per session, counted from its events.
	type sessionRow struct {
		ID, EndReason                                              string
		ToolCalls, Denials, Violations, Events, Execs, ExecsDenied uint64
	}
	// Every session with events: the runner's, and the agent conversations
	// a standalone OTLP receiver recorded (no session.started).
	var wantSessions []sessionRow
	seenSession := map[string]bool{}
	for _, r := range rows {
		if !seenSession[r.SessionID] {
			seenSession[r.SessionID] = true
			wantSessions = append(wantSessions, sessionRow{ID: r.SessionID})
		}
	}
	sort.Slice(wantSessions, func(i, j int) bool { return wantSessions[i].ID < wantSessions[j].ID })
	for i := range wantSessions {
		w := &wantSessions[i]
		for _, r := range rows {
			if r.SessionID != w.ID {
				continue
			}
			w.Events++
			switch r.EventType {
			case events.TypeSessionEnded:
				w.EndReason = r.Reason
			case events.TypeToolCallRequested:
				w.ToolCalls++
			case events.TypePolicyDecision:
				if r.Decision == "deny" {
					w.Denials++
				}
			case events.TypeSandboxViolation:
				w.Violations++
			case events.TypeProcessExec:
				w.Execs++
				if r.Decision == "deny" {
					w.ExecsDenied++
				}
			}
		}
	}
	sr, err := s.conn.Query(ctx, "SELECT session_id, end_reason, tool_calls, denials, violations, events, execs, execs_denied FROM "+s.db+".sessions ORDER BY session_id")
	if err != nil {
		t.Fatal(err)
	}
	var sessions []sessionRow
	for sr.Next() {
		var x sessionRow
		if err := sr.Scan(&x.ID, &x.EndReason, &x.ToolCalls, &x.Denials, &x.Violations, &x.Events, &x.Execs, &x.ExecsDenied); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, x)
	}
	sr.Close()
	if diff := cmp.Diff(wantSessions, sessions); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
	first := slices.IndexFunc(sessions, func(x sessionRow) bool { return x.ID == "sess-01JQ4Z8K7YV3F6R2M9TB5XH0DN" })
	if first < 0 || sessions[first].ToolCalls != 3 || sessions[first].Execs != 6 || sessions[first].ExecsDenied != 1 {
		t.Errorf("sessions = %+v; want the examples' first runner session with 3 calls and 6 execs, 1 denied", sessions)
	}
}

// TestSupervisorColumns: the columns of migration 0011 hold what each
// example flattens to, and the execs view lists every process.exec.
func TestSupervisorColumns(t *testing.T) {
	ctx := context.Background()
	s := migrated(t)
	rows := exampleRows(t)
	if err := s.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	type cols struct {
		EventID                          uint64
		Command, Exe                     string
		PID, PPID                        uint32
		Background, RootProcess, Signal  uint8
		UserMS, SystemMS, MaxRSSKB, Proc uint64
	}
	var want []cols
	for _, r := range rows {
		want = append(want, cols{r.EventID, r.Command, r.Exe, r.PID, r.PPID, b2u(r.Background), b2u(r.RootProcess), r.Signal,
			r.UserMS, r.SystemMS, r.MaxRSSKB, r.ProcessCount})
	}
	sort.Slice(want, func(i, j int) bool { return want[i].EventID < want[j].EventID })
	q, err := s.conn.Query(ctx, `SELECT event_id, command, exe, pid, ppid, background, root_process, signal,
	       user_ms, system_ms, max_rss_kb, process_count FROM `+s.db+`.events FINAL ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []cols
	for q.Next() {
		var c cols
		if err := q.Scan(&c.EventID, &c.Command, &c.Exe, &c.PID, &c.PPID, &c.Background, &c.RootProcess, &c.Signal,
			&c.UserMS, &c.SystemMS, &c.MaxRSSKB, &c.Proc); err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	q.Close()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("supervisor columns (-rows +table):\n%s", diff)
	}
	var execs []string
	for _, r := range rows {
		if r.EventType == events.TypeProcessExec {
			execs = append(execs, fmt.Sprintf("%d %s %s %s %d/%d", r.EventID, r.Decision, r.Exe, r.Command, r.PID, r.PPID))
		}
	}
	sort.Strings(execs)
	if n := len(execs); n != 10 {
		t.Errorf("examples hold %d process.exec events, want 10", n)
	}
	vq, err := s.conn.Query(ctx, "SELECT event_id, decision, exe, command, pid, ppid FROM "+s.db+".execs ORDER BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	var view []string
	for vq.Next() {
		var id uint64
		var dec, exe, cmd string
		var pid, ppid uint32
		if err := vq.Scan(&id, &dec, &exe, &cmd, &pid, &ppid); err != nil {
			t.Fatal(err)
		}
		view = append(view, fmt.Sprintf("%d %s %s %s %d/%d", id, dec, exe, cmd, pid, ppid))
	}
	vq.Close()
	sort.Strings(view)
	if diff := cmp.Diff(execs, view); diff != "" {
		t.Errorf("execs view (-events +view):\n%s", diff)
	}
}

// TestMigrateRerunsAddColumn: a migration that failed after adding some of
// its columns runs again in full; the 18.16 server has no ADD COLUMN IF
// NOT EXISTS, so Migrate takes "column exists" from such a statement as
// done.
func TestMigrateRerunsAddColumn(t *testing.T) {
	ctx := context.Background()
	s := open(t, testDB(t))
	all, err := chschema.All()
	if err != nil {
		t.Fatal(err)
	}
	var m0011 chschema.Migration
	for _, m := range all {
		switch m.Version {
		case 1:
			for _, stmt := range m.Statements(s.db) {
				if err := s.conn.Exec(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
		case 11:
			m0011 = m
		}
	}
	// The first two columns of 0011 were added before the failure.
	for _, stmt := range m0011.Statements(s.db)[:2] {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after a half-applied 0011: %v", err)
	}
	got := strs(t, s, "SELECT name FROM system.columns WHERE database = ? AND table = 'events' AND default_kind = ''", s.db)
	if diff := cmp.Diff(eventColumns, got); diff != "" {
		t.Errorf("columns (-store +table):\n%s", diff)
	}
	// Anything else that fails is still a failure.
	for _, tc := range []struct {
		stmt string
		err  error
		want bool
	}{
		{"ALTER TABLE " + s.db + ".events ADD COLUMN pid UInt32 AFTER client_name", s.conn.Exec(ctx, "ALTER TABLE "+s.db+".events ADD COLUMN pid UInt32 AFTER client_name"), true},
		{"ALTER TABLE " + s.db + ".events ADD COLUMN pid UInt32, ADD COLUMN zz UInt8", s.conn.Exec(ctx, "ALTER TABLE "+s.db+".events ADD COLUMN pid UInt32, ADD COLUMN zz UInt8"), false},
		{"ALTER TABLE " + s.db + ".nope ADD COLUMN pid UInt32", s.conn.Exec(ctx, "ALTER TABLE "+s.db+".nope ADD COLUMN pid UInt32"), false},
		// 0017: a comma inside the expression's parentheses is no second clause.
		{"ALTER TABLE " + s.db + ".events ADD COLUMN call_key UInt64 MATERIALIZED cityHash64(tenant, session_id, tool_call_id)",
			s.conn.Exec(ctx, "ALTER TABLE "+s.db+".events ADD COLUMN call_key UInt64 MATERIALIZED cityHash64(tenant, session_id, tool_call_id)"), true},
		{"ALTER TABLE " + s.db + ".events ADD COLUMN call_key UInt64 MATERIALIZED cityHash64(tenant, session_id), ADD COLUMN zz UInt8",
			s.conn.Exec(ctx, "ALTER TABLE "+s.db+".events ADD COLUMN call_key UInt64 MATERIALIZED cityHash64(tenant, session_id), ADD COLUMN zz UInt8"), false},
		{"CREATE TABLE " + s.db + ".events (a UInt8) ENGINE = Log", s.conn.Exec(ctx, "CREATE TABLE "+s.db+".events (a UInt8) ENGINE = Log"), false},
	} {
		if tc.err == nil {
			t.Fatalf("%s: no error", tc.stmt)
		}
		if got := addsExistingColumn(tc.stmt, tc.err); got != tc.want {
			t.Errorf("addsExistingColumn(%s, %v) = %v, want %v", tc.stmt, tc.err, got, tc.want)
		}
	}
}

func find(t *testing.T, rows []EventRow, typ string) EventRow {
	t.Helper()
	for _, r := range rows {
		if r.EventType == typ {
			return r
		}
	}
	t.Fatalf("no %s example", typ)
	return EventRow{}
}

// toolCallRow is what the tool_calls test reads from the view.
type toolCallRow struct {
	ToolCallID, ToolName, Command, Initial, Decision, ReasonCode, RuleID string
	ApprovalID, ApprovalStatus, Approver, Status                         string
	ExitCode                                                             int32
	DurationMS                                                           uint64
}

// expectedToolCalls folds the example rows the way the view should, in Go.
func expectedToolCalls(t *testing.T, rows []EventRow) []toolCallRow {
	type tc = toolCallRow
	byID := map[string]*tc{}
	minSeq, maxSeq := map[string]uint64{}, map[string]uint64{}
	outcome, approver := map[string]string{}, map[string]string{}
	for _, r := range rows {
		if r.EventType == events.TypeApprovalDecided {
			outcome[r.ApprovalID], approver[r.ApprovalID] = r.ApprovalOutcome, r.Approver
		}
	}
	for _, r := range rows {
		if r.ToolCallID == "" {
			continue
		}
		c := byID[r.ToolCallID]
		if c == nil {
			c = &tc{ToolCallID: r.ToolCallID}
			byID[r.ToolCallID] = c
		}
		switch r.EventType {
		case events.TypeToolCallRequested:
			c.ToolName, c.Command = r.ToolName, r.Command
		case events.TypePolicyDecision:
			if s, ok := minSeq[r.ToolCallID]; !ok || r.Seq < s {
				minSeq[r.ToolCallID], c.Initial = r.Seq, r.Decision
			}
			if r.Seq >= maxSeq[r.ToolCallID] {
				maxSeq[r.ToolCallID] = r.Seq
				c.Decision, c.ReasonCode, c.RuleID = r.Decision, r.ReasonCode, r.RuleID
			}
		case events.TypeToolCallCompleted:
			c.ExitCode, c.DurationMS, c.Status = r.ExitCode, r.DurationMS, "completed"
		}
		if r.ApprovalID != "" {
			c.ApprovalID = r.ApprovalID
		}
	}
	var out []tc
	for _, c := range byID {
		if c.ApprovalID != "" {
			c.ApprovalStatus, c.Approver = outcome[c.ApprovalID], approver[c.ApprovalID]
			if c.ApprovalStatus == "" {
				c.ApprovalStatus = "pending"
			}
		}
		if c.Status == "" {
			switch c.Decision {
			case "deny":
				c.Status = "denied"
			case "ask":
				c.Status = "awaiting_approval"
			case "allow":
				c.Status = "running"
			default:
				c.Status = "requested"
			}
		}
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ToolCallID < out[j].ToolCallID })
	if len(out) != 7 {
		t.Fatalf("examples hold %d tool calls, want 7", len(out))
	}
	return out
}
