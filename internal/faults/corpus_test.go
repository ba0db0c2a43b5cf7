package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/ingest"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// malformed is one record of the corpus and the reason code it must be
// dead-lettered with.
type malformed struct{ name, value, code string }

// corpus is the malformed records of internal/ingest's dead-letter test,
// derived from valid wire events: first is a session's first event,
// requested a tool_call.requested already written before the corpus.
func corpus(t testing.TB, first, requested string) []malformed {
	t.Helper()
	mutate := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("corpus: %q not in %s", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	return []malformed{
		{"not_json", "this is not json at all", events.CodeSyntax},
		{"truncated", first[:len(first)/2], events.CodeSyntax},
		{"wrong_types", mutate(first, `"seq":1,`, `"seq":"1",`), events.CodeType},
		{"unknown_type", mutate(first, `"event_type":"session.started"`, `"event_type":"tool_call.exploded"`), events.CodeUnknownEventType},
		{"oversized", `{"event_type":"session.started","pad":"` + strings.Repeat("x", events.MaxEventSize) + `"}`, events.CodeTooLarge},
		{"wrong_schema_version", mutate(first, `"schema_version":"`+events.SchemaVersion+`"`, `"schema_version":"2.0"`), events.CodeUnsupportedVersion},
		{"missing_required", mutate(first, `,"tenant":"acme"`, ``), events.CodeRequired},
		// The id of an event already loaded, with other content.
		{"duplicate_id_other_content", mutate(requested, `"tenant":"acme"`, `"tenant":"acmf"`), ingest.ReasonDuplicateID},
	}
}

// validSessions returns n stamped sessions of tool calls as wire records.
func validSessions(t testing.TB, n int) (wire [][]byte, ids []string) {
	t.Helper()
	g, err := events.NewIDGen(401)
	if err != nil {
		t.Fatal(err)
	}
	for s := range n {
		sid := fmt.Sprintf("sess-corpus-%d", s)
		ch := events.NewChain(events.ChainKey{SessionID: sid, RunnerID: "fault-corpus"})
		add := func(p events.Payload, opts ...events.Option) {
			env, err := events.New(p, append([]events.Option{events.WithIDs(g), events.WithTenant("acme"),
				events.WithSession(sid, "fault-corpus"), events.WithActor(events.ActorAgent, "fault-agent"), events.WithAgent("fault-agent", "1")}, opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ch.StampAppend(nil, env)
			if err != nil {
				t.Fatal(err)
			}
			wire, ids = append(wire, b), append(ids, env.EventID)
		}
		add(events.SessionStarted{Workspace: "/srv/work/" + sid, SandboxProfileSHA256: hexOf(sid), Image: "localhost/agentaudit-sandbox:fault", Mode: "exec"})
		for i := range 3 {
			call := fmt.Sprintf("call-%s-%d", sid, i)
			add(events.ToolCallRequested{ToolName: "shell", Arguments: events.ToolArguments{Argv: []string{"true"}, Cwd: "/workspace"}, ArgumentsSHA256: hexOf(call)}, events.WithToolCall(call))
			add(events.PolicyDecision{Decision: events.DecisionAllow, ReasonCode: events.ReasonAllowlisted, RuleID: "dev-tools", ApprovalMode: events.ApprovalModeNone},
				events.WithToolCall(call), events.WithPolicy("fault", hexOf("policy")))
			add(events.ToolCallCompleted{DurationMS: 2, Stdout: events.Output{SHA256: hexOf("")}, Stderr: events.Output{SHA256: hexOf("")}}, events.WithToolCall(call))
		}
		add(events.SessionEnded{Reason: events.EndCompleted, DurationMS: 40})
	}
	return wire, ids
}

// TestFaultMalformedCorpus writes a corpus of malformed records with kcat
// straight to the events topic, between valid sessions, and runs the
// ingest binary over it: every malformed record is in dlq_events and on
// the DLQ topic with its reason, every valid event is stored once, and no
// dead letter breaks a chain.
func TestFaultMalformedCorpus(t *testing.T) {
	record := caseRow(t, "malformed records written with kcat")
	e := newEnv(t)
	valid, validIDs := validSessions(t, 4)
	half := len(valid) / 2
	bad := corpus(t, string(valid[0]), string(valid[1]))

	dir := t.TempDir()
	var files []string
	write := func(name string, b []byte) {
		p := filepath.Join(dir, fmt.Sprintf("%03d_%s", len(files), name))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	for i, v := range valid[:half] {
		write(fmt.Sprintf("valid%d", i), v)
	}
	// Offsets follow the file order: one partition.
	want := map[int64]string{} // offset → name: reason code
	for _, m := range bad {
		want[int64(len(files))] = m.name + ": " + m.code
		write(m.name, []byte(m.value))
	}
	for i, v := range valid[half:] {
		write(fmt.Sprintf("valid%d", half+i), v)
	}
	args := append([]string{"-P", "-b", strings.Join(e.brokers, ","), "-t", e.topics.Events, "-p", "0",
		"-X", "message.max.bytes=3000000"}, files...)
	if out, err := exec.Command("kcat", args...).CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
	produced := int64(len(files))

	ing := e.ingest(t)
	e.waitStored(len(validIDs), 60*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for n, _ := e.count("SELECT count() FROM {db}.dlq_events FINAL"); n < uint64(len(bad)) && time.Now().Before(deadline); n, _ = e.count("SELECT count() FROM {db}.dlq_events FINAL") {
		time.Sleep(200 * time.Millisecond)
	}
	ing.term(t, 60*time.Second)

	a := e.account(validIDs)
	if a.Unexpected != 0 || a.ChainBreak != 0 {
		t.Errorf("%d stored events never produced (the forged duplicate id?), %d chain breaks", a.Unexpected, a.ChainBreak)
	}
	if n := e.mustCount("SELECT count() FROM {db}.events FINAL WHERE tenant = 'acmf'"); n != 0 {
		t.Errorf("the record reusing an id was loaded (%d rows)", n)
	}

	// dlq_events: one row per malformed offset, each with a reason.
	ctx := context.Background()
	rows, err := e.admin.Conn().Query(ctx, "SELECT offset, reason_code, reason FROM "+e.db+".dlq_events FINAL ORDER BY offset")
	if err != nil {
		t.Fatal(err)
	}
	name := map[int64]string{}
	for off, s := range want {
		name[off], _, _ = strings.Cut(s, ":")
	}
	got := map[int64]string{}
	var dlqRows, dlqDup int64
	for rows.Next() {
		var off int64
		var code, reason string
		if err := rows.Scan(&off, &code, &reason); err != nil {
			t.Fatal(err)
		}
		dlqRows++
		if _, ok := got[off]; ok {
			dlqDup++
		}
		if reason == "" {
			t.Errorf("dead letter at offset %d has no reason", off)
		}
		got[off] = name[off] + ": " + code
	}
	rows.Close()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("dlq_events by offset (-want +got):\n%s", d)
	}
	var dlqLost int64
	for off := range want {
		if _, ok := got[off]; !ok {
			dlqLost++
		}
	}

	// The DLQ topic holds the same records, reasons in headers.
	onTopic := dlqTopic(t, e, len(bad))
	if d := cmp.Diff(want, func() map[int64]string {
		m := map[int64]string{}
		for off, code := range onTopic {
			m[off] = name[off] + ": " + code
		}
		return m
	}()); d != "" {
		t.Errorf("DLQ topic by source offset (-want +got):\n%s", d)
	}

	record(faultreport.Case{
		Produced: produced, Stored: a.Stored, DLQ: dlqRows,
		Lost: a.Lost + dlqLost, Duplicated: a.Duplicated + dlqDup,
		Detail: fmt.Sprintf("%d valid events around %d malformed (%d reason codes); %d on the DLQ topic; %d chain breaks",
			len(validIDs), len(bad), len(distinct(want)), len(onTopic), a.ChainBreak),
	})
}

func distinct(m map[int64]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range m {
		_, code, _ := strings.Cut(v, ": ")
		out[code] = true
	}
	return out
}

// dlqTopic reads the DLQ topic: source offset → reason code.
func dlqTopic(t testing.TB, e *env, want int) map[int64]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(e.topics.DLQ), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := map[int64]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	for n < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			n++
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h["source_topic"] != e.topics.Events || h["reason"] == "" {
				t.Errorf("dead letter headers %v", h)
			}
			var off int64
			fmt.Sscan(h["source_offset"], &off)
			if _, ok := out[off]; ok {
				t.Errorf("source offset %d dead-lettered twice on the topic", off)
			}
			out[off] = h["reason_code"]
		})
	}
	return out
}
