package detect

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestSQLRuleWriterCannotWrite runs detection SQL with the writer account
// against the real ClickHouse and sends writes that chsql would refuse
// straight to the connection, past checkSQL: the server's readonly setting,
// forced by the connection, must refuse every one.
func TestSQLRuleWriterCannotWrite(t *testing.T) {
	ctx := context.Background()
	evs, _ := egressHistory(t, DefaultTestStart)
	cfg := storedDB(t, evs)
	cfg.User, cfg.Password = testenv.Get(t, "CLICKHOUSE_USER"), testenv.Get(t, "CLICKHOUSE_PASSWORD")

	// The account can write: without the read-only option the server says so.
	plain, err := store.Dial(ctx, cfg.Addr, store.WithAuth(cfg.User, cfg.Password), store.WithDatabase(cfg.Database), store.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	plain.Close()
	if plain.Readonly != "0" {
		t.Fatalf("writer account's readonly = %q, want 0: the test needs an account that can write", plain.Readonly)
	}

	q, err := NewClickHouseQuerier(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rows, err := q.Query(ctx, "SELECT value AS v FROM system.settings WHERE name = 'readonly'")
	if err != nil || len(rows) != 1 || rows[0]["v"] != "2" {
		t.Fatalf("readonly on the detect connection = %v, %v; want 2", rows, err)
	}
	count := func() uint64 {
		t.Helper()
		rows, err := q.Query(ctx, "SELECT count() AS n FROM events")
		if err != nil || len(rows) != 1 {
			t.Fatalf("count: %v, %v", rows, err)
		}
		return rows[0]["n"].(uint64)
	}
	before := count()

	wantReadonly := func(what string, err error) {
		t.Helper()
		if code, ok := store.ErrorCode(err); !ok || code != store.CodeReadonly {
			t.Errorf("%s: %v, want ClickHouse error %d (readonly)", what, err, store.CodeReadonly)
		}
	}
	// A rule whose query got past the guard: RunRule sends its bound SQL.
	smuggled := &SQLRule{ID: "smuggled.insert", params: []string{"from", "to"},
		bound: "INSERT INTO events SELECT * FROM events WHERE event_time >= ? AND event_time < ?"}
	_, err = NewSQLRunner(&RuleSet{}, q, nil).RunRule(ctx, smuggled, DefaultTestStart.Add(-time.Hour), DefaultTestStart.Add(24*time.Hour))
	if !errors.Is(err, ErrQuery) {
		t.Errorf("smuggled rule: %v, want ErrQuery", err)
	}
	wantReadonly("smuggled rule", err)
	// Writes of every kind, straight on the connection.
	for _, w := range []string{
		"INSERT INTO events SELECT * FROM events",
		"CREATE TABLE " + cfg.Database + ".x (a UInt8) ENGINE = Memory",
		"DROP TABLE " + cfg.Database + ".events",
		"ALTER TABLE " + cfg.Database + ".events DELETE WHERE 1",
		"TRUNCATE TABLE " + cfg.Database + ".events",
		"SET readonly = 0",
		"SELECT 1 SETTINGS readonly = 0",
	} {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := q.Query(wctx, w)
		cancel()
		wantReadonly(w, err)
	}
	// The batch insert path, the one the ingester writes with.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := q.conn.PrepareBatch(wctx, "INSERT INTO events (event_id)")
	if err == nil {
		if err = b.Append(uint64(1)); err == nil {
			err = b.Send()
		}
		b.Abort()
	}
	wantReadonly("batch insert", err)

	if after := count(); after != before {
		t.Errorf("events: %d before, %d after the writes", before, after)
	}
	rows, err = q.Query(ctx, fmt.Sprintf("SELECT count() AS n FROM system.tables WHERE database = '%s' AND name = 'x'", cfg.Database))
	if err != nil || rows[0]["n"] != uint64(0) {
		t.Errorf("table x: %v, %v; want none", rows, err)
	}
}
