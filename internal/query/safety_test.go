package query

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

var injections = []string{
	`' OR 1=1 --`,
	`sess-alpha' OR '1'='1`,
	`x'; DROP TABLE events; --`,
	`\' OR 1=1 #`,
	"sess-alpha\x00' OR 1=1",
	`@session`,
}

// TestInjectionIsAValue binds payloads that would widen the WHERE clause if
// they reached the SQL text, and checks they match nothing (and that the
// tables are still there).
func TestInjectionIsAValue(t *testing.T) {
	db, _ := scenarioDB(t)
	q := openReader(t, db)
	ctx := context.Background()
	for _, inj := range injections {
		for _, raw := range []string{"s=" + inj, "s:String=" + inj} {
			p, err := ParseParam(raw)
			if err != nil {
				t.Fatal(err)
			}
			res, err := q.Query(ctx, "SELECT (SELECT count() FROM events WHERE session_id = @s) AS n, @s AS echoed", []Param{p})
			if err != nil {
				t.Fatalf("%q: %v", inj, err)
			}
			if diff := cmp.Diff([][]string{{"n", "echoed"}, {"0", inj}}, cells(res)); diff != "" {
				t.Errorf("%q (-want +got):\n%s", inj, diff)
			}
		}
		if _, err := q.Timeline(ctx, inj); !errors.Is(err, ErrNotFound) {
			t.Errorf("session %q: %v, want ErrNotFound", inj, err)
		}
		r, _ := FindReport("top_commands")
		if _, err := q.RunReport(ctx, r, period, map[string]string{"limit": "1 OR 1=1"}); !errors.Is(err, ErrParam) {
			t.Errorf("limit %q: %v, want ErrParam", "1 OR 1=1", err)
		}
	}
	res, err := q.Query(ctx, "SELECT count() FROM events", nil)
	if err != nil || Cell(res.Rows[0][0]) != "43" {
		t.Errorf("events after the payloads: %v %v, want 43", res, err)
	}
}

func TestWriteRefused(t *testing.T) {
	db, _ := scenarioDB(t)
	ctx := context.Background()
	writes := []string{
		"INSERT INTO events (event_id) VALUES (1)",
		"DROP TABLE events",
		"ALTER TABLE events DELETE WHERE 1",
		"CREATE TABLE x (a UInt8) ENGINE = Memory",
		"TRUNCATE TABLE events",
		"OPTIMIZE TABLE events FINAL",
		"SET readonly = 0",
		"SELECT 1; DROP TABLE events",
		"/* SELECT */ DROP TABLE events",
		"SELECT 1 SETTINGS readonly = 0",
		"KILL QUERY WHERE 1",
		"SYSTEM SHUTDOWN",
	}
	// The client refuses them before they are sent.
	q := openReader(t, db)
	for _, w := range writes {
		if _, err := q.Query(ctx, w, nil); !errors.Is(err, ErrWriteStatement) {
			t.Errorf("%q: %v, want ErrWriteStatement", w, err)
		}
	}
	// The server refuses them too: the read-only account (readonly=1), and
	// a misconfigured writer account the package restricts with readonly=2.
	wcfg := readerConfig(t, db)
	wcfg.User, wcfg.Password = testenv.Get(t, "CLICKHOUSE_USER"), testenv.Get(t, "CLICKHOUSE_PASSWORD")
	writer, err := Open(ctx, wcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	for _, c := range []struct {
		db       *DB
		readonly string
	}{{q, "1"}, {writer, "0"}} {
		if c.db.Readonly != c.readonly {
			t.Errorf("%s: readonly %q, want %q", c.db.cfg.User, c.db.Readonly, c.readonly)
		}
		for _, w := range []string{"CREATE TABLE " + db + ".x (a UInt8) ENGINE = Memory", "DROP TABLE " + db + ".events",
			"ALTER TABLE " + db + ".events DELETE WHERE 1", "SET readonly = 0"} {
			_, err := c.db.query(ctx, w, nil, 0) // past the client check
			var se *ServerError
			if !errors.As(err, &se) || se.Code != store.CodeReadonly {
				t.Errorf("%s: %q: %v, want ClickHouse error %d", c.db.cfg.User, w, err, store.CodeReadonly)
			}
		}
	}
	res, err := q.Query(ctx, "SELECT count() FROM events", nil)
	if err != nil || Cell(res.Rows[0][0]) != "43" {
		t.Errorf("events after the writes: %v %v, want 43", res, err)
	}
}

func TestServerErrorIsShort(t *testing.T) {
	db, _ := scenarioDB(t)
	q := openReader(t, db)
	_, err := q.Query(context.Background(), "SELECT no_such_column FROM events", nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != 47 {
		t.Fatalf("%v, want ClickHouse error 47", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, "DB::Exception") || !strings.HasPrefix(msg, "ClickHouse error 47: ") {
		t.Errorf("message %q is not short and readable", msg)
	}
}

func TestTimeoutKillsTheQuery(t *testing.T) {
	db, _ := scenarioDB(t)
	cfg := readerConfig(t, db)
	cfg.Timeout = time.Second
	q, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	marker := "timeout-" + randHex(6) // finds this run's query among others
	start := time.Now()
	_, err = q.Query(context.Background(), "SELECT count() FROM system.numbers WHERE number % 7 = 8 AND '"+marker+"' != ''", nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("%v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("time-out took %s", d)
	}
	// The server no longer runs it.
	admin := openReader(t, db)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		res, err := admin.Query(context.Background(), "SELECT count() FROM system.processes WHERE position(query, @m) > 0 AND position(query, 'system.processes') = 0", []Param{{"m", marker}})
		if err != nil {
			t.Fatal(err)
		}
		if Cell(res.Rows[0][0]) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timed-out query still runs on the server")
		}
	}
}

func TestMaxRows(t *testing.T) {
	db, _ := scenarioDB(t)
	cfg := readerConfig(t, db)
	cfg.MaxRows = 10
	q, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	start := time.Now()
	res, err := q.Query(context.Background(), "SELECT number FROM system.numbers", nil) // endless
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 10 || !res.Truncated || Cell(res.Rows[9][0]) != "9" {
		t.Errorf("%d rows, truncated %v; want 10, true", len(res.Rows), res.Truncated)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("row limit took %s", d)
	}
	var b strings.Builder
	WriteTable(&b, res, TableOptions{})
	if !strings.Contains(b.String(), "(10 rows (truncated") {
		t.Errorf("table does not say it was cut:\n%s", b.String())
	}
}

func TestSQLOutputs(t *testing.T) {
	db, _ := scenarioDB(t)
	sql := "SELECT session_id, count() AS n, max(event_id) > 0 AS ok FROM events WHERE tenant = @t AND session_id != '' GROUP BY session_id ORDER BY session_id"
	params := []Param{{"t", "acme"}}
	tests := []struct{ format, want string }{
		{FormatCSV, "session_id,n,ok\nsess-alpha,18,1\nsess-beta,21,1\nsess-old,4,1\n"},
		{FormatNDJSON, `{"session_id":"sess-alpha","n":"18","ok":1}` + "\n" + `{"session_id":"sess-beta","n":"21","ok":1}` + "\n" + `{"session_id":"sess-old","n":"4","ok":1}` + "\n"},
		{FormatJSON, `{"columns":[{"name":"session_id","type":"String"},{"name":"n","type":"UInt64"},{"name":"ok","type":"UInt8"}],"rows":[` + "\n" +
			`{"session_id":"sess-alpha","n":"18","ok":1},` + "\n" + `{"session_id":"sess-beta","n":"21","ok":1},` + "\n" +
			`{"session_id":"sess-old","n":"4","ok":1}],"row_count":3,"truncated":false}` + "\n"},
		{FormatTable, "session_id   n  ok\n──────────  ──  ──\nsess-alpha  18   1\nsess-beta   21   1\nsess-old     4   1\n(3 rows)\n"},
	}
	for _, tc := range tests {
		var b strings.Builder
		if err := RunSQL(context.Background(), readerConfig(t, db), SQLCommand{SQL: sql, Params: params}, Output{Format: tc.format, W: &b}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, b.String()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.format, diff)
		}
	}
	if err := RunSQL(context.Background(), readerConfig(t, db), SQLCommand{SQL: "DROP TABLE events"}, Output{W: io.Discard}); !errors.Is(err, ErrWriteStatement) || ExitCode(err) != 2 {
		t.Errorf("RunSQL(DROP): %v", err)
	}
}
