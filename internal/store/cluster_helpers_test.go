package store

import (
	"errors"
	"testing"
)

// mappedExamples is exampleRows without the examples of event types the
// store does not map (yet): the cluster tests check layout and sharding,
// not the mapping of every type, which the single-node suite covers.
func mappedExamples(t *testing.T) []EventRow {
	t.Helper()
	var rows []EventRow
	envs, raws := examples(t)
	for i, e := range envs {
		r, err := RowFromEvent(e, raws[i], Source{Topic: "audit.events", Offset: int64(i)})
		if errors.Is(err, ErrEvent) {
			t.Logf("example %s not mapped: %v", e.EventType, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

// toolCallRequest is an example tool_call.requested row: the retention
// tests store it in each month so that every pre-aggregated table (the
// per-session and the per-call states) has that month's rows to drop.
func toolCallRequest(t *testing.T, rows []EventRow) EventRow {
	t.Helper()
	for _, r := range rows {
		if r.EventType == "tool_call.requested" && r.ToolCallID != "" {
			return r
		}
	}
	t.Fatal("no tool_call.requested example")
	return EventRow{}
}
