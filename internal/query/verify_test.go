package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

func TestVerifyIntact(t *testing.T) {
	db, _ := scenarioDB(t)
	q := openReader(t, db)
	tests := []struct {
		scope                VerifyScope
		rows, events, chains int
	}{
		{VerifyScope{SessionID: "sess-alpha"}, 18, 18, 3},
		{VerifyScope{SessionID: "sess-beta"}, 21, 21, 3},
		{VerifyScope{Period: period}, 39, 39, 6},
		{VerifyScope{Period: Period{day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)}}, 43, 43, 7},
	}
	for _, tc := range tests {
		rep, err := q.Verify(context.Background(), tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Findings) != 0 || rep.Rows != tc.rows || rep.Events != tc.events || rep.Chains != tc.chains {
			t.Errorf("%+v: rows %d events %d chains %d findings %v; want %d %d %d none",
				tc.scope, rep.Rows, rep.Events, rep.Chains, rep.Findings, tc.rows, tc.events, tc.chains)
		}
	}
}

// tamperDB is a fresh database holding the scenario, for a test that
// changes rows behind the pipeline's back as the admin user.
func tamperDB(t *testing.T) (w *store.Store, admin *store.Store, sc *scenario) {
	t.Helper()
	w = testDB(t)
	p := newPipeline(t)
	sc = buildScenario(p)
	p.load(w)
	env, _ := testenv.Env()
	admin, err := store.Open(context.Background(), store.Config{Addr: testenv.ClickHouse(t),
		User: testenv.Get(t, "CLICKHOUSE_ADMIN_USER"), Password: env["CLICKHOUSE_ADMIN_PASSWORD"], Database: w.Database()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return w, admin, sc
}

func execAs(t *testing.T, s *store.Store, sql string) {
	t.Helper()
	if err := s.Conn().Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// waitMutations waits for ALTER … DELETE to finish (18.16 has no
// mutations_sync).
func waitMutations(t *testing.T, admin *store.Store) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var n uint64
		err := admin.Conn().QueryRow(context.Background(),
			"SELECT count() FROM system.mutations WHERE database = '"+admin.Database()+"' AND is_done = 0").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("mutation not done after 30s")
}

// insertRaw stores raw as a new row of the events table, flattened like
// the ingester would.
func insertRaw(t *testing.T, w *store.Store, raw []byte) {
	t.Helper()
	env, err := events.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	row, err := store.RowFromEvent(env, raw, store.Source{Topic: "tampered"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.InsertEvents(context.Background(), []store.EventRow{row}); err != nil {
		t.Fatal(err)
	}
}

func marshal(t *testing.T, e *events.Envelope) []byte {
	t.Helper()
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyCatchesTampering(t *testing.T) {
	alpha := func(f Finding) Finding {
		f.Tenant, f.SessionID, f.RunnerID = "acme", "sess-alpha", "runner-a"
		return f
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, w, admin *store.Store, sc *scenario)
		want   func(sc *scenario) []Finding
		// breaks is the chain_breaks report's seq_check detail after it.
		breaks [][]string
	}{
		{
			name: "row deleted",
			tamper: func(t *testing.T, w, admin *store.Store, sc *scenario) {
				execAs(t, admin, "ALTER TABLE "+admin.Database()+".events DELETE WHERE event_id = "+sc.alphaEvents[4].EventID)
				waitMutations(t, admin)
			},
			want: func(sc *scenario) []Finding {
				return []Finding{alpha(Finding{Kind: "gap", Seq: 6, EventID: sc.alphaEvents[5].EventID,
					OtherEventID: sc.alphaEvents[3].EventID, Detail: "seq 5 missing before this event"})}
			},
			breaks: [][]string{{"acme", "sess-alpha", "runner-a", "gap", "0", "14", "15", "14 rows, 14 distinct seq, max seq 15, missing after seq 4", "seq_check"}},
		},
		{
			name: "row edited in place (same hash column)",
			tamper: func(t *testing.T, w, admin *store.Store, sc *scenario) {
				raw := marshal(t, sc.alphaEvents[1])
				edited := bytes.Replace(raw, []byte(`"-la"`), []byte(`"-la","/etc/shadow"`), 1)
				if bytes.Equal(raw, edited) {
					t.Fatal("edit did not apply")
				}
				insertRaw(t, w, edited)
			},
			want: func(sc *scenario) []Finding {
				id := sc.alphaEvents[1].EventID
				h := sc.alphaEvents[1].Hash[:12] + "…"
				e, _ := events.Decode(bytes.Replace(marshal(t, sc.alphaEvents[1]), []byte(`"-la"`), []byte(`"-la","/etc/shadow"`), 1))
				got, _ := events.ComputeHash(e)
				return []Finding{
					alpha(Finding{Kind: BreakDuplicateID, Seq: 2, EventID: id, Detail: fmt.Sprintf("2 rows with different content (hashes [%s %s])", h, h)}),
					alpha(Finding{Kind: "edit", Seq: 2, EventID: id, Detail: fmt.Sprintf("content hashes to %s, the event says %s", got[:12]+"…", h)}),
				}
			},
			// Same sorting key: FINAL shows one of the two rows, so only
			// verify, which reads every row and rehashes it, sees the edit.
			breaks: [][]string{},
		},
		{
			name: "forged copy with a recomputed hash",
			tamper: func(t *testing.T, w, admin *store.Store, sc *scenario) {
				// The ask of tc2 (seq 6) rewritten as an allow, rehashed on
				// the same predecessor: it links back, nothing links to it.
				e := *sc.alphaEvents[5]
				if err := e.SetPayload(events.PolicyDecision{Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted,
					ApprovalMode: events.ApprovalModeNone}); err != nil {
					t.Fatal(err)
				}
				var err error
				if e.Hash, err = events.ComputeHash(&e); err != nil {
					t.Fatal(err)
				}
				insertRaw(t, w, marshal(t, &e))
			},
			want: func(sc *scenario) []Finding {
				orig := sc.alphaEvents[5]
				e := *orig
				e.SetPayload(events.PolicyDecision{Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted, ApprovalMode: events.ApprovalModeNone})
				forged, _ := events.ComputeHash(&e)
				hs := []string{orig.Hash[:12] + "…", forged[:12] + "…"}
				got := fmt.Sprintf("2 rows with different content (hashes %v)", hs)
				return []Finding{alpha(Finding{Kind: BreakDuplicateID, Seq: 6, EventID: orig.EventID, Detail: got})}
			},
			breaks: [][]string{{"acme", "sess-alpha", "runner-a", "duplicate_seq", "0", "16", "15", "16 rows, 15 distinct seq, max seq 15", "seq_check"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, admin, sc := tamperDB(t)
			q := openReader(t, w.Database())
			rep, err := q.Verify(context.Background(), VerifyScope{SessionID: "sess-alpha"})
			if err != nil || len(rep.Findings) != 0 {
				t.Fatalf("before tampering: %v %v", rep, err)
			}
			tc.tamper(t, w, admin, sc)
			rep, err = q.Verify(context.Background(), VerifyScope{SessionID: "sess-alpha"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want(sc), rep.Findings, hashOrder); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			// The command exits non-zero.
			err = RunVerify(context.Background(), readerConfig(t, w.Database()), VerifyScope{Period: period},
				Output{Format: FormatTable, W: io.Discard}, io.Discard)
			if !errors.Is(err, ErrChainBroken) || ExitCode(err) != 1 {
				t.Errorf("RunVerify: %v (exit %d); want ErrChainBroken, exit 1", err, ExitCode(err))
			}
			// The report sees it too, from the rows alone.
			r, _ := FindReport("chain_breaks")
			res, err := q.RunReport(context.Background(), r, period, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.breaks, cells(res)[1:]); diff != "" {
				t.Errorf("chain_breaks report (-want +got):\n%s", diff)
			}
		})
	}
}

// hashOrder makes the hash list of a duplicate_id finding order-free.
var hashOrder = cmp.Comparer(func(a, b Finding) bool {
	if a.Kind == BreakDuplicateID && b.Kind == BreakDuplicateID {
		a.Detail, b.Detail = sortedDetail(a.Detail), sortedDetail(b.Detail)
	}
	return a == b
})

func sortedDetail(s string) string {
	var pre, h1, h2 string
	if n, _ := fmt.Sscanf(s, "2 rows with different content (hashes [%s %s", &h1, &h2); n == 2 {
		h2 = h2[:len(h2)-2]
		if h2 < h1 {
			h1, h2 = h2, h1
		}
		return pre + h1 + " " + h2
	}
	return s
}

// TestVerifyAfterMerge shows an in-place edit that ClickHouse merged away
// (the tampered row replaced the original) is still an edit.
func TestVerifyAfterMerge(t *testing.T) {
	w, admin, sc := tamperDB(t)
	raw := bytes.Replace(marshal(t, sc.alphaEvents[1]), []byte(`"-la"`), []byte(`"-lah"`), 1)
	insertRaw(t, w, raw)
	execAs(t, admin, "OPTIMIZE TABLE "+w.Database()+".events FINAL")
	q := openReader(t, w.Database())
	rep, err := q.Verify(context.Background(), VerifyScope{SessionID: "sess-alpha"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, f := range rep.Findings {
		kinds = append(kinds, f.Kind+" "+f.EventID)
	}
	if diff := cmp.Diff([]string{"edit " + sc.alphaEvents[1].EventID}, kinds); diff != "" {
		t.Errorf("findings after merge (-want +got):\n%s", diff)
	}
}
