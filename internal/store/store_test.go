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
		Database: db, Logger: slog.New(slog.NewTextHandler(tlog{t}, nil)),
	}
}

type tlog struct{ t testing.TB }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

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
	wantTables := []string{"alerts", "approvals", "chain_breaks", "dlq_events", "egress", "events",
		"schema_lock", "schema_migrations", "sessions", "tool_calls"}
	if diff := cmp.Diff(wantTables, tables); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
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
	// Materialized columns (event_ts on modern servers) are not inserted.
	got := strs(t, s, "SELECT name FROM system.columns WHERE database = ? AND table = 'events' AND default_kind != 'MATERIALIZED'", s.db)
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
	var sessTools, sessDenials, sessEvents uint64
	if err := s.conn.QueryRow(ctx, "SELECT tool_calls, denials, events FROM "+s.db+".sessions").Scan(&sessTools, &sessDenials, &sessEvents); err != nil {
		t.Fatal(err)
	}
	if sessTools != 3 || sessDenials != 1 || sessEvents != uint64(len(rows)) {
		t.Errorf("sessions: tool_calls %d denials %d events %d; want 3 1 %d", sessTools, sessDenials, sessEvents, len(rows))
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
	if len(out) != 3 {
		t.Fatalf("examples hold %d tool calls, want 3", len(out))
	}
	return out
}
