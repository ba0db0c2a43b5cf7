package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Retention's SQL on one server (the tables themselves, as before the
// cluster mode existed) and on a cluster (the Replicated local tables,
// listed on one replica of every shard; never the Distributed tables,
// which hold no parts and take no TTL).
func TestRetentionSQL(t *testing.T) {
	type out struct {
		Parts string
		Drop  string
		Name  string
		TTL   []string
	}
	cases := []struct {
		name    string
		cluster string
		want    out
	}{
		{"single server", "", out{
			Parts: "SELECT DISTINCT table, partition FROM system.parts WHERE database = ? AND active AND table IN ('events', 'dlq_events', 'chain_breaks', 'activity_sessions', 'call_folds')",
			Drop:  "ALTER TABLE audit.events DROP PARTITION 202503",
			Name:  "events",
			TTL: []string{
				"ALTER TABLE audit.events MODIFY TTL event_time + toIntervalDay(400)",
				"ALTER TABLE audit.dlq_events MODIFY TTL received_at + toIntervalDay(400)",
				"ALTER TABLE audit.chain_breaks MODIFY TTL event_time + toIntervalDay(400)",
				"ALTER TABLE audit.activity_sessions MODIFY TTL day + toIntervalDay(400)",
				"ALTER TABLE audit.call_folds MODIFY TTL day + toIntervalDay(400)",
			},
		}},
		{"cluster", "agentaudit", out{
			Parts: "SELECT DISTINCT table, partition FROM cluster('agentaudit', system, parts) WHERE database = ? AND active AND table IN ('events_local', 'dlq_events_local', 'chain_breaks_local', 'activity_sessions_local', 'call_folds_local')",
			Drop:  "ALTER TABLE audit.events_local DROP PARTITION 202503",
			Name:  "events",
			TTL: []string{
				"ALTER TABLE audit.events_local MODIFY TTL event_time + toIntervalDay(400)",
				"ALTER TABLE audit.dlq_events_local MODIFY TTL received_at + toIntervalDay(400)",
				"ALTER TABLE audit.chain_breaks_local MODIFY TTL event_time + toIntervalDay(400)",
				"ALTER TABLE audit.activity_sessions_local MODIFY TTL day + toIntervalDay(400)",
				"ALTER TABLE audit.call_folds_local MODIFY TTL day + toIntervalDay(400)",
			},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := retentionSQL{db: "audit", cluster: tc.cluster}
			got := out{
				Parts: r.parts(),
				Drop:  r.drop("events", 202503),
				Name:  r.name(r.table("events")),
				TTL:   r.ttl(400 * 24 * time.Hour),
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// TTLStatements, which the chDB test applies, is the single-server form.
	if diff := cmp.Diff(cases[0].want.TTL, TTLStatements("audit", 400*24*time.Hour)); diff != "" {
		t.Errorf("TTLStatements (-want +got):\n%s", diff)
	}
	// A keep that is not whole days rounds up: data lives at least keep.
	if got := (retentionSQL{db: "audit"}).ttl(36 * time.Hour)[0]; got != "ALTER TABLE audit.events MODIFY TTL event_time + toIntervalDay(2)" {
		t.Errorf("36h keep: %s", got)
	}
}
