package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// codeReadonly is ClickHouse's READONLY error: a write by a readonly=1 user.
const codeReadonly = 164

// smokeRow is one row of the smoke table.
type smokeRow struct {
	ID      uint64    `ch:"id"`
	Session string    `ch:"session_id"`
	At      time.Time `ch:"event_time"`
	Kind    string    `ch:"event_type"`
	Seq     uint32    `ch:"seq"`
}

// openCH opens a native-protocol connection as one of the testenv users.
func openCH(t *testing.T, addr, db, user, password string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: db, Username: user, Password: password},
		DialTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("open ClickHouse %s as %s: %v", addr, user, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestClickHouseSmoke checks that the ClickHouse testenv/up starts serves
// the writer (DDL, batch insert, select) and enforces the read-only user:
// it can SELECT and is refused a write with code 164.
func TestClickHouseSmoke(t *testing.T) {
	addr := testenv.ClickHouse(t)
	db := testenv.Get(t, "CLICKHOUSE_DATABASE")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	writer := openCH(t, addr, db, testenv.Get(t, "CLICKHOUSE_USER"), testenv.Get(t, "CLICKHOUSE_PASSWORD"))
	reader := openCH(t, addr, db, testenv.Get(t, "CLICKHOUSE_READONLY_USER"), testenv.Get(t, "CLICKHOUSE_READONLY_PASSWORD"))

	if err := writer.Ping(ctx); err != nil {
		t.Fatalf("ping as writer: %v", err)
	}
	table := "testenv_smoke_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := writer.Exec(ctx, `CREATE TABLE `+table+` (
		id UInt64,
		session_id String,
		event_time DateTime,
		event_type String,
		seq UInt32
	) ENGINE = MergeTree() ORDER BY (session_id, seq)`); err != nil {
		t.Fatalf("create table %s as writer: %v", table, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := writer.Exec(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
			t.Errorf("drop table %s: %v", table, err)
		}
	})

	// DateTime has second precision and the server runs in UTC.
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var want []smokeRow
	for i := 0; i < 100; i++ {
		want = append(want, smokeRow{
			ID:      uint64(1_000_000 + i),
			Session: fmt.Sprintf("s-%d", i%3),
			At:      base.Add(time.Duration(i) * time.Second),
			Kind:    []string{"tool_call.requested", "policy.decision", "tool_call.completed"}[i%3],
			Seq:     uint32(i/3 + 1),
		})
	}

	// An explicit column list: the 18.16 server needs it, and INSERT … VALUES
	// through Exec hangs with this client (DESIGN.md).
	batch, err := writer.PrepareBatch(ctx, "INSERT INTO "+table+" (id, session_id, event_time, event_type, seq)")
	if err != nil {
		t.Fatalf("prepare batch: %v", err)
	}
	for _, r := range want {
		if err := batch.Append(r.ID, r.Session, r.At, r.Kind, r.Seq); err != nil {
			t.Fatalf("append row %d: %v", r.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send batch: %v", err)
	}

	var got []smokeRow
	if err := writer.Select(ctx, &got, "SELECT id, session_id, event_time, event_type, seq FROM "+table+" ORDER BY id"); err != nil {
		t.Fatalf("select as writer: %v", err)
	}
	for i := range got {
		got[i].At = got[i].At.UTC()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows read back by the writer (-want +got):\n%s", diff)
	}

	// The read-only user can read what the writer wrote.
	var count uint64
	if err := reader.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&count); err != nil {
		t.Fatalf("select as read-only user: %v", err)
	}
	if count != uint64(len(want)) {
		t.Errorf("read-only user counts %d rows; want %d", count, len(want))
	}

	// …and is refused every kind of write with READONLY.
	writes := []struct {
		name string
		do   func() error
	}{
		{"insert", func() error {
			b, err := reader.PrepareBatch(ctx, "INSERT INTO "+table+" (id, session_id, event_time, event_type, seq)")
			if err != nil {
				return err
			}
			if err := b.Append(uint64(1), "s-x", base, "session.started", uint32(1)); err != nil {
				return err
			}
			return b.Send()
		}},
		{"create table", func() error {
			return reader.Exec(ctx, "CREATE TABLE "+table+"_ro (id UInt64) ENGINE = Memory")
		}},
		{"drop table", func() error {
			return reader.Exec(ctx, "DROP TABLE "+table)
		}},
	}
	for _, w := range writes {
		err := w.do()
		var exc *clickhouse.Exception
		if !errors.As(err, &exc) || exc.Code != codeReadonly {
			t.Errorf("%s as read-only user: err = %v; want a ClickHouse exception with code %d (READONLY)", w.name, err, codeReadonly)
		}
	}
	if err := writer.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&count); err != nil {
		t.Fatalf("count as writer: %v", err)
	}
	if count != uint64(len(want)) {
		t.Errorf("after the refused writes the table has %d rows; want %d", count, len(want))
	}
}
