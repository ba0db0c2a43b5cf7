package ingest

import (
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/bench/eventgen"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestEndToEndEveryType: eventlog.Producer → Kafka → ingest → ClickHouse for
// every event type, each event once, whole chains, no dead letters, and
// the metrics say so.
func TestEndToEndEveryType(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := eventlog.NewProducer(ctx, e.brokers, "runner-e2e", eventlog.WithTopics(e.cfg.Topics))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	tmpl, err := eventgen.Examples()
	if err != nil {
		t.Fatal(err)
	}
	ids := testIDs(t)
	const nSessions = 4
	wantTypes := map[string]uint64{}
	for s := range nSessions {
		for _, env := range eventgen.ExampleSession(ids, tmpl, fmt.Sprintf("sess-e2e-%d", s), time.Now().UTC()) {
			if err := p.Emit(ctx, env); err != nil {
				t.Fatalf("emit %s: %v", env.EventType, err)
			}
			wantTypes[env.EventType]++
		}
	}
	if len(wantTypes) != len(events.EventTypes) {
		t.Fatalf("templates cover %d types, want all %d", len(wantTypes), len(events.EventTypes))
	}
	total := uint64(nSessions * len(tmpl))

	cfg := e.cfg
	cfg.MetricsAddr = freeAddr(t)
	stop := e.run(cfg)
	e.waitRows("SELECT count() FROM {db}.events FINAL", total, 60*time.Second)

	rows, err := e.admin.Conn().Query(ctx, "SELECT event_type, count() FROM "+cfg.Database+".events FINAL GROUP BY event_type")
	if err != nil {
		t.Fatal(err)
	}
	gotTypes := map[string]uint64{}
	for rows.Next() {
		var typ string
		var n uint64
		if err := rows.Scan(&typ, &n); err != nil {
			t.Fatal(err)
		}
		gotTypes[typ] = n
	}
	rows.Close()
	if diff := cmp.Diff(wantTypes, gotTypes); diff != "" {
		t.Errorf("events per type (-produced +stored):\n%s", diff)
	}
	// Flattened columns carry the payload.
	for q, want := range map[string]uint64{
		"SELECT count() FROM {db}.events FINAL WHERE event_type = 'tool_call.requested' AND (command != '' OR path != '')":     wantTypes["tool_call.requested"],
		"SELECT count() FROM {db}.events FINAL WHERE event_type = 'net.egress' AND host != '' AND port > 0":                    wantTypes["net.egress"],
		"SELECT count() FROM {db}.events FINAL WHERE event_type = 'approval.decided' AND approver != '' AND approval_id != ''": wantTypes["approval.decided"],
		"SELECT count() FROM {db}.events FINAL WHERE event_type = 'alert.raised' AND length(matched_event_ids) > 0":            wantTypes["alert.raised"],
		"SELECT uniqExact(event_id) FROM {db}.events":                                                                          total,
		"SELECT count() FROM {db}.chain_breaks":                                                                                0,
		"SELECT count() FROM {db}.dlq_events":                                                                                  0,
		"SELECT count() FROM {db}.tool_calls WHERE status = 'completed'":                                                       e.uint64("SELECT count() FROM {db}.events FINAL WHERE event_type = 'tool_call.completed'"),
	} {
		if got := e.uint64(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}

	code, body := get(t, "http://"+cfg.MetricsAddr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	var consumed float64
	for _, topic := range []string{cfg.Topics.Events, cfg.Topics.Approvals} {
		var v float64
		fmt.Sscan(metric(body, `agentaudit_ingest_records_consumed_total{topic="`+topic+`"}`), &v)
		consumed += v
	}
	got := map[string]string{
		"consumed":       fmt.Sprint(consumed),
		"rows_inserted":  metric(body, "agentaudit_ingest_rows_inserted_total"),
		"clickhouse_up":  metric(body, "agentaudit_ingest_clickhouse_up"),
		"chain_parked":   metric(body, "agentaudit_ingest_chain_parked_events"),
		"batch_rows_sum": metric(body, "agentaudit_ingest_batch_rows_sum"),
	}
	want := map[string]string{
		"consumed": fmt.Sprint(total), "rows_inserted": fmt.Sprint(total), "clickhouse_up": "1",
		"chain_parked": "0", "batch_rows_sum": fmt.Sprint(total),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s\n%s", diff, body)
	}
	for _, name := range []string{"agentaudit_ingest_insert_duration_seconds_count{table=\"events\"}", "agentaudit_ingest_commits_total"} {
		if metric(body, name) == "" {
			t.Errorf("metric %s missing", name)
		}
	}
	if code, body := get(t, "http://"+cfg.MetricsAddr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	stop()
	// Everything consumed was committed.
	lag := e.groupLag(cfg.Group)
	if lag != 0 {
		t.Errorf("group lag after stop = %d, want 0", lag)
	}
}

// groupLag sums end offset minus committed offset over the consumed topics.
func (e *env) groupLag(group string) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := newAdm(e)
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		e.t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, e.cfg.Topics.Events, e.cfg.Topics.Approvals)
	if err != nil {
		e.t.Fatal(err)
	}
	var lag int64
	ends.Each(func(o kadmListedOffset) {
		c, ok := committed.Lookup(o.Topic, o.Partition)
		at := int64(0)
		if ok {
			at = c.At
		}
		lag += o.Offset - at
	})
	return lag
}

func sortedKeys(m map[string]uint64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
