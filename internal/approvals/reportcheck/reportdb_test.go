package reportcheck

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/query"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// reportDB is a fresh, migrated database on the real ClickHouse that a
// test fills with one session's events, in the order it emits them (their
// source offsets follow that order, as in one Kafka partition), and then
// reads through a report as the read-only user.
type reportDB struct {
	t       *testing.T
	ctx     context.Context
	name    string
	w       *store.Store
	ids     *events.IDGen
	session string
	chains  map[events.ChainKey]*events.Chain
	rows    []store.EventRow
}

func newReportDB(t *testing.T, prefix string, node int64, session string) *reportDB {
	t.Helper()
	addr := testenv.ClickHouse(t)
	env, _ := testenv.Env()
	ctx := context.Background()
	admin, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"),
		Password: env["CLICKHOUSE_ADMIN_PASSWORD"], Database: "default"})
	if err != nil {
		t.Fatalf("open as admin: %v", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	db := prefix + hex.EncodeToString(b)
	if err := admin.Conn().Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		admin.Close()
	})
	w, err := store.Open(ctx, store.Config{Addr: addr, User: testenv.Get(t, "CLICKHOUSE_USER"),
		Password: testenv.Get(t, "CLICKHOUSE_PASSWORD"), Database: db, Logger: testenv.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if _, err := w.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	ids, err := events.NewIDGen(node)
	if err != nil {
		t.Fatal(err)
	}
	return &reportDB{t: t, ctx: ctx, name: db, w: w, ids: ids, session: session, chains: map[events.ChainKey]*events.Chain{}}
}

// emit stamps an event of the session on emitter's chain and keeps its row.
func (r *reportDB) emit(at time.Time, p events.Payload, emitter string, opts ...events.Option) *events.Envelope {
	t := r.t
	t.Helper()
	e, err := events.New(p, append([]events.Option{events.WithIDs(r.ids), events.WithTime(at), events.WithTenant("acme"),
		events.WithSession(r.session, emitter)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if r.chains[e.Key()] == nil {
		r.chains[e.Key()] = events.NewChain(e.Key())
	}
	if err := r.chains[e.Key()].Stamp(e); err != nil {
		t.Fatal(err)
	}
	raw, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	row, err := store.RowFromEvent(e, raw, store.Source{Topic: "audit.approvals", Partition: 1, Offset: int64(100 + len(r.rows))})
	if err != nil {
		t.Fatal(err)
	}
	r.rows = append(r.rows, row)
	return e
}

// report inserts what was emitted (once) and returns the named report's
// columns cols for period p, each cell as query prints it.
func (r *reportDB) report(name string, p query.Period, cols ...string) [][]string {
	t := r.t
	t.Helper()
	if len(r.rows) > 0 {
		if err := r.w.InsertEvents(r.ctx, r.rows); err != nil {
			t.Fatal(err)
		}
		r.rows = nil
	}
	q, err := query.Open(r.ctx, query.Config{Addr: testenv.ClickHouse(t), User: testenv.Get(t, "CLICKHOUSE_READONLY_USER"),
		Password: testenv.Get(t, "CLICKHOUSE_READONLY_PASSWORD"), Database: r.name, Timeout: 60 * time.Second,
		Logger: testenv.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rep, err := query.FindReport(name)
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.RunReport(r.ctx, rep, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := map[string]int{}
	for i, c := range res.Columns {
		at[c.Name] = i
	}
	var out [][]string
	for _, row := range res.Rows {
		var line []string
		for _, c := range cols {
			i, ok := at[c]
			if !ok {
				t.Fatalf("%s has no column %s", name, c)
			}
			line = append(line, query.Cell(row[i]))
		}
		out = append(out, line)
	}
	return out
}
