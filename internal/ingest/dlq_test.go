package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
)

// TestDeadLetterCorpus writes malformed records straight to the topic with
// kcat, between valid sessions: every malformed record lands in the DLQ
// topic and dlq_events with its reason, and every valid event loads.
func TestDeadLetterCorpus(t *testing.T) {
	e := newEnv(t)
	valid := sessions(t, e.cfg.Topics, 2, "dlq")
	half := len(valid) / 2
	first := string(valid[0].Value)
	var requested string
	for _, r := range valid[:half] {
		if strings.Contains(string(r.Value), `"event_type":"tool_call.requested"`) {
			requested = string(r.Value)
			break
		}
	}
	mutate := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("corpus: %q not in %s", old, s)
		}
		return strings.Replace(s, old, new, 1)
	}
	seq := fmt.Sprintf(`"seq":%d`, 1)
	corpus := []struct{ name, value, code string }{
		{"not_json", "this is not json at all", events.CodeSyntax},
		{"truncated", first[:len(first)/2], events.CodeSyntax},
		{"wrong_types", mutate(first, seq, `"seq":"1"`), events.CodeType},
		{"unknown_type", mutate(first, `"event_type":"session.started"`, `"event_type":"tool_call.exploded"`), events.CodeUnknownEventType},
		{"oversized", `{"event_type":"session.started","pad":"` + strings.Repeat("x", events.MaxEventSize) + `"}`, events.CodeTooLarge},
		{"wrong_schema_version", mutate(first, `"schema_version":"1.0"`, `"schema_version":"2.0"`), events.CodeUnsupportedVersion},
		{"missing_required", mutate(first, `"tenant":"acme",`, ``), events.CodeRequired},
		// The same event_id as an event already loaded, other content.
		{"duplicate_id_other_content", mutate(requested, `"tenant":"acme"`, `"tenant":"acmf"`), ReasonDuplicateID},
	}
	dir := t.TempDir()
	var files []string
	write := func(name string, b []byte) {
		p := filepath.Join(dir, fmt.Sprintf("%03d_%s", len(files), name))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	for i, r := range valid[:half] {
		write(fmt.Sprintf("valid%d", i), r.Value)
	}
	wantCodes := map[int64]string{}
	for _, c := range corpus {
		wantCodes[int64(len(files))] = c.name + ": " + c.code
		write(c.name, []byte(c.value))
	}
	for i, r := range valid[half:] {
		write(fmt.Sprintf("valid%d", half+i), r.Value)
	}
	// One partition, so offsets follow the file order.
	args := append([]string{"-P", "-b", strings.Join(e.brokers, ","), "-t", e.cfg.Topics.Events, "-p", "0",
		"-X", "message.max.bytes=3000000"}, files...)
	if out, err := exec.Command("kcat", args...).CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}

	e.run(e.cfg)
	e.waitRows("SELECT count() FROM {db}.events FINAL", uint64(len(valid)), 60*time.Second)
	e.waitRows("SELECT count() FROM {db}.dlq_events FINAL", uint64(len(corpus)), 30*time.Second)

	ctx := context.Background()
	rows, err := e.admin.Conn().Query(ctx, "SELECT offset, reason_code, reason, raw_length FROM "+e.cfg.Database+".dlq_events FINAL ORDER BY offset")
	if err != nil {
		t.Fatal(err)
	}
	gotCodes := map[int64]string{}
	name := map[int64]string{}
	for off, s := range wantCodes {
		name[off], _, _ = strings.Cut(s, ":")
	}
	for rows.Next() {
		var off int64
		var code, reason string
		var rawLen uint64
		if err := rows.Scan(&off, &code, &reason, &rawLen); err != nil {
			t.Fatal(err)
		}
		if reason == "" {
			t.Errorf("offset %d: empty reason", off)
		}
		gotCodes[off] = name[off] + ": " + code
		t.Logf("dlq offset %d %s: %s (%d bytes)", off, code, reason, rawLen)
	}
	rows.Close()
	if diff := cmp.Diff(wantCodes, gotCodes); diff != "" {
		t.Errorf("dlq_events by offset (-want +got):\n%s", diff)
	}
	if n := e.uint64("SELECT count() FROM {db}.chain_breaks"); n != 0 {
		t.Errorf("chain_breaks = %d, want 0 (dead letters must not break chains)", n)
	}
	if n := e.uint64("SELECT count() FROM {db}.events FINAL WHERE tenant = 'acmf'"); n != 0 {
		t.Errorf("the event reusing an id was loaded (%d rows)", n)
	}

	// The DLQ topic has the same records, with their reasons in headers.
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(e.cfg.Topics.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	gotTopic := map[int64]string{}
	var oversized *kgo.Record
	deadline, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(gotTopic) < len(corpus) && deadline.Err() == nil {
		cl.PollFetches(deadline).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h["source_topic"] != e.cfg.Topics.Events || h["source_partition"] != "0" || h["reason"] == "" {
				t.Errorf("dlq record headers %v", h)
			}
			var off int64
			fmt.Sscan(h["source_offset"], &off)
			gotTopic[off] = name[off] + ": " + h["reason_code"]
			if name[off] == "oversized" {
				oversized = r
			} else if want := corpusValue(corpus, name[off]); !bytes.Equal(r.Value, []byte(want)) {
				t.Errorf("dlq record %s: value is not the raw record", name[off])
			}
		})
	}
	if diff := cmp.Diff(wantCodes, gotTopic); diff != "" {
		t.Errorf("DLQ topic by source offset (-want +got):\n%s", diff)
	}
	if oversized == nil {
		t.Fatal("oversized record not in the DLQ topic")
	}
	h := map[string]string{}
	for _, kv := range oversized.Headers {
		h[kv.Key] = string(kv.Value)
	}
	if h["truncated"] != "true" || h["raw_length"] != fmt.Sprint(len(corpusValue(corpus, "oversized"))) || len(oversized.Value) == 0 {
		t.Errorf("oversized dead letter: headers %v, %d bytes; want a bounded prefix marked truncated", h, len(oversized.Value))
	}
	keys := make([]int64, 0, len(gotTopic))
	for k := range gotTopic {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
}

func corpusValue(c []struct{ name, value, code string }, name string) string {
	for _, x := range c {
		if x.name == name {
			return x.value
		}
	}
	return ""
}
