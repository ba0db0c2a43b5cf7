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
