package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// rowAt returns a copy of r moved to t with a new id, so it lands in t's
// monthly partition.
func rowAt(r EventRow, t time.Time, id uint64) EventRow {
	r.EventID, r.EventTime, r.Hash = id, t.Truncate(time.Second), r.Hash+"x"
	return r
}

func TestRetentionDropsOnlyOldPartitions(t *testing.T) {
	ctx := context.Background()
	s := migrated(t)
	base := toolCallRequest(t, exampleRows(t))
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	keep := 400 * 24 * time.Hour                            // cutoff 2025-05-11
	old := time.Date(2025, 3, 20, 0, 0, 0, 0, time.UTC)     // month ended before the cutoff: dropped
	straddle := time.Date(2025, 5, 2, 0, 0, 0, 0, time.UTC) // month reaches past the cutoff: kept
	recent := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := s.InsertEvents(ctx, []EventRow{rowAt(base, old, 1), rowAt(base, straddle, 2), rowAt(base, recent, 3)}); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertDLQ(ctx, []DLQRow{{ReceivedAt: old, Topic: "audit.events", Offset: 1, Raw: []byte("{")}, {ReceivedAt: recent, Topic: "audit.events", Offset: 2, Raw: []byte("{")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertChainBreaks(ctx, []ChainBreak{{EventTime: old, SessionID: "s", Kind: BreakGap, EventID: 1}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"activity_sessions/202503", "call_folds/202503", "chain_breaks/202503", "dlq_events/202503", "events/202503"}
	dry, err := s.Retention(ctx, keep, now, DryRun())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, dry); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	if got := count(t, s, "SELECT count() FROM "+s.db+".events"); got != 3 {
		t.Fatalf("dry run changed events: %d rows", got)
	}
	got, err := s.Retention(ctx, keep, now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
	ids := strs(t, s, "SELECT toString(event_id) FROM "+s.db+".events ORDER BY event_id")
	if diff := cmp.Diff([]string{"2", "3"}, ids); diff != "" {
		t.Errorf("events left (-want +got):\n%s", diff)
	}
	if n := count(t, s, "SELECT count() FROM "+s.db+".dlq_events"); n != 1 {
		t.Errorf("dlq rows left %d, want 1", n)
	}
	if n := count(t, s, "SELECT count() FROM "+s.db+".chain_breaks"); n != 0 {
		t.Errorf("chain breaks left %d, want 0", n)
	}
	if _, err := s.Retention(ctx, 0, now); !errors.Is(err, ErrConfig) {
		t.Errorf("keep 0: %v, want ErrConfig", err)
	}
}

func TestReadOnlyUserReadsViewsCannotWrite(t *testing.T) {
	ctx := context.Background()
	w := migrated(t)
	if err := w.InsertEvents(ctx, exampleRows(t)); err != nil {
		t.Fatal(err)
	}
	cfg := w.cfg
	cfg.User, cfg.Password = testenv.Get(t, "CLICKHOUSE_READONLY_USER"), testenv.Get(t, "CLICKHOUSE_READONLY_PASSWORD")
	r := open(t, cfg)
	for _, v := range []string{"tool_calls", "approvals", "egress", "alerts", "sessions"} {
		if n := count(t, r, "SELECT count() FROM "+w.db+"."+v); n == 0 {
			t.Errorf("reader sees no rows in %s", v)
		}
	}
	err := r.InsertEvents(ctx, exampleRows(t)[:1])
	if err == nil {
		t.Fatal("read-only user inserted an event")
	}
	if code, ok := ErrorCode(err); !ok || code != CodeReadonly {
		t.Errorf("insert error %v: code %d (%v), want %d", err, code, ok, CodeReadonly)
	}
	if _, err := r.Migrate(ctx); err == nil {
		t.Error("read-only user ran Migrate")
	}
}

func TestInsertDLQAndChainBreaks(t *testing.T) {
	ctx := context.Background()
	s := migrated(t)
	big := []byte(strings.Repeat("é", MaxDLQRaw)) // 2 bytes a rune: cut mid-way
	dlq := []DLQRow{{Topic: "audit.events", Partition: 2, Offset: 7, Key: "sess-1", Reason: "payload.exit_code: not an integer",
		ReasonCode: "schema", ErrorPointer: "/payload/exit_code", Raw: big}}
	for range 2 { // a redelivery collapses
		if err := s.InsertDLQ(ctx, dlq); err != nil {
			t.Fatal(err)
		}
	}
	var n, rawLen, stored uint64
	var ptr string
	if err := s.conn.QueryRow(ctx, "SELECT count(), any(raw_length), any(length(raw)), any(error_pointer) FROM "+s.db+".dlq_events FINAL").
		Scan(&n, &rawLen, &stored, &ptr); err != nil {
		t.Fatal(err)
	}
	if n != 1 || rawLen != uint64(len(big)) || stored > MaxDLQRaw || ptr != "/payload/exit_code" {
		t.Errorf("dlq: count %d raw_length %d stored %d pointer %q", n, rawLen, stored, ptr)
	}
	br := ChainBreak{EventTime: time.Now(), Tenant: "acme", SessionID: "s", RunnerID: "r", Kind: BreakGap,
		EventID: 42, ExpectedSeq: 3, GotSeq: 5, Detail: "seq 4 missing", Source: Source{Topic: "audit.events", Offset: 9}}
	if err := s.InsertChainBreaks(ctx, []ChainBreak{br, br}); err != nil {
		t.Fatal(err)
	}
	var kind string
	var exp, got uint64
	if err := s.conn.QueryRow(ctx, "SELECT kind, expected_seq, got_seq FROM "+s.db+".chain_breaks FINAL").Scan(&kind, &exp, &got); err != nil {
		t.Fatal(err)
	}
	if kind != BreakGap || exp != 3 || got != 5 {
		t.Errorf("chain break = %s %d %d", kind, exp, got)
	}
}

func TestRowFromEvent(t *testing.T) {
	ts := time.Date(2025, 3, 14, 9, 26, 53, 737793000, time.UTC)
	mk := func(p events.Payload, opts ...events.Option) *events.Envelope {
		base := []events.Option{events.WithEventID("1900478732771069952"), events.WithTime(ts), events.WithTenant("acme"),
			events.WithSession("sess-1", "runner-1"), events.WithActor(events.ActorAgent, "agent-1")}
		env, err := events.New(p, append(base, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	tests := []struct {
		name string
		env  *events.Envelope
		want func(r *EventRow)
	}{
		{"argv is shell-quoted", mk(&events.ToolCallRequested{ToolName: "bash",
			Arguments: events.ToolArguments{Argv: []string{"git", "commit", "-m", "it's done"}}}), func(r *EventRow) {
			r.ToolName, r.Command = "bash", `git commit -m 'it'\''s done'`
		}},
		{"command string kept", mk(&events.ToolCallRequested{ToolName: "shell",
			Arguments: events.ToolArguments{Command: "ls -la"}}), func(r *EventRow) { r.ToolName, r.Command = "shell", "ls -la" }},
		{"approval id defaults to the request's event id", mk(&events.ApprovalRequested{Kind: "tool_call", Requester: events.Actor{ID: "agent-1"},
			RequestEventID: "1900478732460691456"}), func(r *EventRow) {
			r.ApprovalID, r.Kind, r.Requester, r.RefEventID = "1900478732771069952", "tool_call", "agent-1", 1900478732460691456
		}},
		{"egress", mk(&events.NetEgress{Phase: "decision", Host: "example.com", Port: 443, Decision: events.DecisionDeny,
			ReasonCode: events.ReasonPrivateAddress}), func(r *EventRow) {
			r.EgressPhase, r.Host, r.Port, r.Decision, r.ReasonCode = "decision", "example.com", 443, "deny", "private_address"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RowFromEvent(tt.env, []byte("raw"), Source{Topic: "t", Partition: 1, Offset: 2})
			if err != nil {
				t.Fatal(err)
			}
			want := EventRow{EventID: 1900478732771069952, EventType: tt.env.EventType, SchemaVersion: events.SchemaVersion,
				EventTime: ts.Truncate(time.Second), EventTimeUS: 737793, Tenant: "acme", SessionID: "sess-1", RunnerID: "runner-1",
				ActorType: "agent", ActorID: "agent-1", Raw: []byte("raw"), Source: Source{Topic: "t", Partition: 1, Offset: 2}}
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
		})
	}
	bad := mk(&events.SessionEnded{Reason: "completed"})
	bad.EventID = "01"
	if _, err := RowFromEvent(bad, nil, Source{}); !errors.Is(err, ErrEvent) {
		t.Errorf("bad id: %v, want ErrEvent", err)
	}
}

func TestBound(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"é€", 4, "é"}, {"", 0, ""},
	} {
		if got := bound(tt.in, tt.n); got != tt.want {
			t.Errorf("bound(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// FuzzRowFromEvent: every event Decode accepts maps to a row without panic.
func FuzzRowFromEvent(f *testing.F) {
	_, raws := examples(f)
	for _, r := range raws {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := events.Decode(data)
		if err != nil {
			return
		}
		r, err := RowFromEvent(env, data, Source{})
		if err != nil {
			t.Fatalf("valid event refused: %v", err)
		}
		if len(r.values(time.Now())) != len(eventColumns) {
			t.Fatal("values and columns differ in length")
		}
		if len(r.Command) > MaxCommandLen {
			t.Fatalf("command %d bytes", len(r.Command))
		}
	})
}

func BenchmarkRowFromEvent(b *testing.B) {
	envs, raws := examples(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(envs)
		if _, err := RowFromEvent(envs[j], raws[j], Source{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertEvents10k inserts batches of 10,000 rows into the real
// server and reports rows/s.
func BenchmarkInsertEvents10k(b *testing.B) {
	ctx := context.Background()
	s := open(b, testDB(b))
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	base := exampleRows(b)
	const batch = 10000
	rows := make([]EventRow, batch)
	var id uint64 = 1 << 40
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for k := range rows {
			id++
			rows[k] = base[k%len(base)]
			rows[k].EventID = id
		}
		b.StartTimer()
		if err := s.InsertEvents(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
}
