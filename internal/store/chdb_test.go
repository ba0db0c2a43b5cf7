//go:build chdb

package store

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	// Must come before chdb-go's init: sets CHDB_LIB_PATH from .testenv/env.
	"github.com/agentaudit/agentaudit/internal/store/internal/chdbpath"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
	"github.com/chdb-io/chdb-go/chdb"
)

// chdbSession opens the process's one chDB engine with Go's signal handlers
// kept (see chdbpath.SaveHandlers).
func chdbSession(t *testing.T) *chdb.Session {
	t.Helper()
	dir, err := os.MkdirTemp("", "chdb_store_")
	if err != nil {
		t.Fatal(err)
	}
	saved := chdbpath.SaveHandlers()
	s, err := chdb.NewSession(dir)
	saved.Restore()
	if err != nil {
		t.Fatalf("chdb.NewSession: %v", err)
	}
	t.Cleanup(func() { s.Cleanup() })
	return s
}

func chdbQuery(t *testing.T, s *chdb.Session, q string) string {
	t.Helper()
	r, err := s.Query(q, "TSV")
	if err != nil {
		t.Fatalf("chdb: %v\nquery: %s", err, q)
	}
	if r == nil {
		return ""
	}
	defer r.Free()
	return strings.TrimSpace(r.String())
}

func TestChdbMigrations(t *testing.T) {
	s := chdbSession(t)
	t.Logf("chDB engine %s", chdbQuery(t, s, "SELECT version()"))
	// Go's SIGSEGV handler survived chdb_connect: a nil dereference panics
	// (with chDB's handler it would hang until the test times out).
	func() {
		defer func() {
			if recover() == nil {
				t.Error("nil dereference did not panic")
			}
		}()
		var p *int
		_ = *p
	}()
	const db = "audit_chdb"
	chdbQuery(t, s, "CREATE DATABASE IF NOT EXISTS "+db)
	ms, err := chschema.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, stmt := range m.Statements(db) {
			if len(m.Requires) > 0 {
				// chDB has no writable access storage: check the syntax only.
				got := chdbQuery(t, s, fmt.Sprintf("SELECT formatQuery('%s')", strings.ReplaceAll(stmt, "'", "\\'")))
				t.Logf("%s: formatted %q", m.File, got)
				continue
			}
			chdbQuery(t, s, stmt)
		}
	}
	for _, stmt := range chschema.Bootstrap(db) {
		chdbQuery(t, s, stmt)
	}
	// The example session, inserted twice (a redelivery), through every view.
	rows := exampleRows(t)
	var body strings.Builder
	for range 2 {
		for i := range rows {
			body.Write(jsonEachRow(t, &rows[i]))
			body.WriteByte('\n')
		}
	}
	chdbQuery(t, s, "INSERT INTO "+db+".events ("+strings.Join(eventColumns, ", ")+") FORMAT JSONEachRow\n"+body.String())
	if got := chdbQuery(t, s, "SELECT count() FROM "+db+".events FINAL"); got != strconv.Itoa(len(rows)) {
		t.Errorf("events FINAL = %s, want %d", got, len(rows))
	}
	// event_ts (migration 0006) carries the microseconds.
	if got := chdbQuery(t, s, "SELECT toString(event_ts) FROM "+db+".events FINAL WHERE event_id = "+strconv.FormatUint(rows[0].EventID, 10)); got != rows[0].EventTime.Add(time.Duration(rows[0].EventTimeUS)*time.Microsecond).Format("2006-01-02 15:04:05.000000") {
		t.Errorf("event_ts = %s", got)
	}
	for _, tbl := range []string{"events", "dlq_events", "chain_breaks", "schema_migrations", "schema_lock",
		"tool_calls", "approvals", "egress", "alerts", "sessions", "execs", "model_calls"} {
		got := chdbQuery(t, s, fmt.Sprintf("SELECT count() FROM %s.%s", db, tbl))
		t.Logf("%s: %s rows", tbl, got)
	}
	out := chdbQuery(t, s, `SELECT tool_call_id, tool_name, command, initial_decision, decision, reason_code, rule_id,
	       approval_id, approval_status, approver, status, exit_code, duration_ms
	FROM `+db+`.tool_calls ORDER BY tool_call_id FORMAT JSONEachRow`)
	var calls []toolCallRow
	for _, line := range strings.Split(out, "\n") {
		var c struct {
			ToolCallID      string `json:"tool_call_id"`
			ToolName        string `json:"tool_name"`
			Command         string `json:"command"`
			InitialDecision string `json:"initial_decision"`
			Decision        string `json:"decision"`
			ReasonCode      string `json:"reason_code"`
			RuleID          string `json:"rule_id"`
			ApprovalID      string `json:"approval_id"`
			ApprovalStatus  string `json:"approval_status"`
			Approver        string `json:"approver"`
			Status          string `json:"status"`
			ExitCode        int32  `json:"exit_code"`
			DurationMS      uint64 `json:"duration_ms"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("tool_calls row %q: %v", line, err)
		}
		calls = append(calls, toolCallRow{c.ToolCallID, c.ToolName, c.Command, c.InitialDecision, c.Decision, c.ReasonCode,
			c.RuleID, c.ApprovalID, c.ApprovalStatus, c.Approver, c.Status, c.ExitCode, c.DurationMS})
	}
	if diff := cmp.Diff(expectedToolCalls(t, rows), calls); diff != "" {
		t.Errorf("tool_calls on chDB (-want +got):\n%s", diff)
	}
	// Migrations 0012 and 0013: the agent columns (LowCardinality on the
	// modern path), the model_calls view, and the join of an agent's call
	// to the runner's through agent_call_id.
	var modelCalls, tokens, cost uint64
	for _, r := range rows {
		if r.EventType == "agent.model_call" {
			modelCalls++
			tokens += r.InputTokens + r.OutputTokens
			cost += r.CostMicroUSD
		}
	}
	if got := chdbQuery(t, s, "SELECT count(), sum(input_tokens + output_tokens), sum(cost_micro_usd) FROM "+db+".model_calls"); got != fmt.Sprintf("%d\t%d\t%d", modelCalls, tokens, cost) {
		t.Errorf("model_calls on chDB: %q, want %d calls, %d tokens, %d micro-USD", got, modelCalls, tokens, cost)
	}
	if got := chdbQuery(t, s, "SELECT toTypeName(model), toTypeName(agent_source) FROM "+db+".events LIMIT 1"); got != "LowCardinality(String)\tLowCardinality(String)" {
		t.Errorf("agent column types on chDB: %q", got)
	}
	joined := chdbQuery(t, s, `SELECT count() FROM `+db+`.events AS a FINAL
		INNER JOIN (SELECT tenant, agent_call_id, tool_call_id AS runner_call FROM `+db+`.events FINAL
		            WHERE event_type = 'tool_call.requested' AND agent_call_id != '') AS r USING (tenant, agent_call_id)
		WHERE a.event_type = 'agent.tool_result'`)
	if joined != "1" {
		t.Errorf("agent.tool_result joined to a runner tool call on chDB: %s, want 1", joined)
	}
	// Migration 0011: the execs view and the supervisor's columns.
	var execs, signals int
	for _, r := range rows {
		if r.EventType == "process.exec" {
			execs++
		}
		if r.Signal != 0 && r.UserMS+r.SystemMS+r.MaxRSSKB > 0 {
			signals++
		}
	}
	if got := chdbQuery(t, s, "SELECT count(), sum(root_process) > 0, sum(background) > 0 FROM "+db+".execs"); got != strconv.Itoa(execs)+"\t1\t1" {
		t.Errorf("execs on chDB: %q, want %d execs, some root, some background", got, execs)
	}
	if got := chdbQuery(t, s, "SELECT count() FROM "+db+".events FINAL WHERE signal != 0 AND user_ms + system_ms + max_rss_kb > 0"); got != strconv.Itoa(signals) {
		t.Errorf("events with a signal and rusage on chDB: %s, want %d", got, signals)
	}
	if got := chdbQuery(t, s, "SELECT sum(execs), sum(execs_denied) FROM "+db+".sessions"); got != strconv.Itoa(execs)+"\t1" {
		t.Errorf("sessions' execs on chDB: %q", got)
	}
	// The examples hold one decided request and one still pending.
	if got := chdbQuery(t, s, "SELECT countIf(status = 'approved' AND approver != ''), countIf(status = 'pending' AND approver = '') FROM "+db+".approvals"); got != "1\t1" {
		t.Errorf("approvals on chDB (approved with an approver, pending): %q, want 1 and 1", got)
	}

	// TTL retention as Retention sets it on modern servers: a keep that
	// covers the examples keeps them, a shorter one expires them.
	age := time.Since(rows[0].EventTime)
	for _, tc := range []struct {
		keep time.Duration
		want string
	}{{age + 60*24*time.Hour, strconv.Itoa(len(rows))}, {age - 30*24*time.Hour, "0"}} {
		for _, stmt := range TTLStatements(db, tc.keep) {
			chdbQuery(t, s, stmt)
		}
		if got := chdbQuery(t, s, "SELECT count() FROM "+db+".events FINAL"); got != tc.want {
			t.Errorf("after TTL keep %s: %s events, want %s", tc.keep.Round(time.Hour), got, tc.want)
		}
	}
}

// jsonEachRow encodes r for INSERT … FORMAT JSONEachRow.
func jsonEachRow(t *testing.T, r *EventRow) []byte {
	t.Helper()
	obj := map[string]any{}
	for i, v := range r.values(time.Now()) {
		if tm, ok := v.(time.Time); ok {
			v = tm.UTC().Format("2006-01-02 15:04:05")
		}
		obj[eventColumns[i]] = v
	}
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
